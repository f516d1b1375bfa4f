"""HTML pages outside /fhir: the Jinja2 templates (templates/) and the one error page."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from health import PROJECT_ROOT

templates = Jinja2Templates(directory=PROJECT_ROOT / "templates")

# Error page titles by status (English; the portal shows them translated:
# health/portal/errors.py), and the title of any other status.
ERROR_TITLES = {
    400: "The request could not be used",
    401: "Not logged in",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    500: "Something went wrong",
}
OTHER_ERROR_TITLE = "The request could not be completed"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, context, status_code=status, headers=headers
    )


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """An HTML error page that says what was wrong, never a stack trace."""
    title = ERROR_TITLES.get(status, OTHER_ERROR_TITLE)
    return render(
        request,
        "error.html",
        {"title": title, "message": message, "status": status},
        status=status,
        headers=headers,
    )
