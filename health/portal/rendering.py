"""Rendering portal pages: Jinja2 with gettext in the reader's language.

One Environment for the portal's templates, with the i18n extension; the translation
and formatting functions read the page's language from the template context, so one
environment serves every language at once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context

from health import PROJECT_ROOT
from health.portal import languages

# Pages that show who is logged in (and forms with CSRF tokens) are not cached.
PRIVATE = {"Cache-Control": "no-store"}

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
)


@pass_context
def _gettext(context: Context, message: str) -> str:
    return languages.translate(context.get("lang", languages.DEFAULT_LANGUAGE), message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    language = context.get("lang", languages.DEFAULT_LANGUAGE)
    return languages.translate_plural(language, singular, plural, count)


@pass_context
def _date(context: Context, value: date | datetime | None, form: str = "medium") -> str:
    return languages.local_date(value, context.get("lang", languages.DEFAULT_LANGUAGE), form)


@pass_context
def _datetime(context: Context, value: datetime | None, form: str = "medium") -> str:
    return languages.local_datetime(value, context.get("lang", languages.DEFAULT_LANGUAGE), form)


@pass_context
def _month(context: Context, value: datetime | None) -> str:
    return languages.local_month(value, context.get("lang", languages.DEFAULT_LANGUAGE))


@pass_context
def _number(context: Context, value: float | None) -> str:
    return languages.local_number(value, context.get("lang", languages.DEFAULT_LANGUAGE))


templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    _gettext, _ngettext, newstyle=True
)
templates.env.filters.update(date=_date, datetime=_datetime, month=_month, number=_number)


def request_language(request: Request) -> str:
    return languages.language_of(request.cookies.get(languages.LANGUAGE_COOKIE))


def render_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A portal page in the reader's language, never cached."""
    language = request_language(request)
    page_context = {
        "lang": language,
        "languages": languages.LANGUAGES,
        "path": request.url.path,
        "query": request.url.query,
        **context,
    }
    return templates.TemplateResponse(
        request,
        template,
        page_context,
        status_code=status,
        headers={**PRIVATE, **(headers or {})},
    )
