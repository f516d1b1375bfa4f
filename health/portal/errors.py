"""Errors a portal page shows its reader, in the reader's language.

A route raises `PortalError` with the English text, which is also the gettext message
id (placeholders as `%(name)s`, filled in after translation, so that a value is never
part of what is translated). The app's error handler (health/fhir/http.py) renders
`error_page` for every error under /portal, a `PortalError` or not: the page, its title
and the words around a technical detail are in the reader's language.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse

from health.pages import ERROR_TITLES, OTHER_ERROR_TITLE
from health.portal import languages
from health.portal.rendering import render_page, request_language


class PortalError(HTTPException):
    """An error for the reader: `message` in English (a gettext message id), `values`
    for its placeholders, and `detail_text` from elsewhere (the eID's or the record's
    own explanation, in English) shown after it as it is."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail_text: str | None = None,
        headers: dict[str, str] | None = None,
        **values: str,
    ) -> None:
        self.message = message
        self.values = values
        self.detail_text = detail_text
        super().__init__(status, self.text(None), headers)

    def text(self, language: str | None) -> str:
        """The message in `language` (English for None), with its values and detail."""
        words = self.message if language is None else languages.translate(language, self.message)
        if self.values:
            words = words % self.values
        return f"{words} {self.detail_text}" if self.detail_text else words


def error_page(
    request: Request, status: int, error: Exception | None, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The portal's page for an error: what went wrong in the reader's language, never a
    stack trace. `error` is what was raised (None for a failure of the server)."""
    language = request_language(request)
    if isinstance(error, PortalError):
        message = error.text(language)
    elif status == 404:
        message = languages.translate(language, "There is no page at this address.")
    elif status == 405:
        message = languages.translate(language, "This page cannot be used that way.")
    elif status >= 500 or error is None:
        message = languages.translate(language, "The server failed to process the request.")
    elif isinstance(error, HTTPException):
        message = str(error.detail)
    else:
        message = languages.translate(language, "The address holds a value the page cannot use.")
    title = languages.translate(language, ERROR_TITLES.get(status, OTHER_ERROR_TITLE))
    return render_page(
        request,
        "portal/error.html",
        # The language links keep the path, not the query: an error page does not echo
        # what a crafted link put there (an eID's error description, say).
        {"title": title, "message": message, "query": ""},
        status=status,
        headers=headers,
    )
