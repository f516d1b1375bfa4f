"""Authlib's OAuth 2 server side, adapted to Starlette: parameters in, responses out, PKCE.

Authlib ships server integrations for Flask and Django only. The two authorization
servers of this app, the development eID (health/eid/server.py) and the SMART
authorization server (health/auth/server.py), build on these pieces.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin
from fastapi.responses import Response

from health.fhir.errors import challenge_text

# Authlib refuses request URLs that are not https or loopback (RFC 6749 section 3.1), and
# uses the URL for nothing else. Transport security is decided once for the whole app:
# production refuses a base URL that is not https (health.app.production_problems), and
# development and tests run over plain HTTP (http://testserver). So no real URL is passed.
REQUEST_URI = "https://authorization.invalid/"


class RequestParameters(OAuth2Payload):
    """Request parameters (query and form together), first value and every value."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class ParameterRequest(OAuth2Request):  # type: ignore[misc]
    """A request as Authlib's grants read it: method, headers, and its parameters."""

    def __init__(
        self,
        method: str,
        headers: Any,
        items: list[tuple[str, str]],
        form: dict[str, str] | None = None,
    ) -> None:
        super().__init__(method, REQUEST_URI, headers=headers)
        self.payload = RequestParameters(items)
        self._form = form or {}

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self._form


class StoredCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """An issued authorization code as Authlib's grants read it.

    `issued` is the store's record of the code: it has redirect_uri, scope, nonce,
    code_challenge and code_challenge_method. No auth_time unless a subclass knows it.
    """

    def __init__(self, issued: Any) -> None:
        self.issued = issued
        self.code_challenge = issued.code_challenge
        self.code_challenge_method = issued.code_challenge_method

    def get_redirect_uri(self) -> str:
        return str(self.issued.redirect_uri)

    def get_scope(self) -> str:
        return str(self.issued.scope)

    def get_nonce(self) -> str | None:
        nonce: str | None = self.issued.nonce
        return nonce

    def get_auth_time(self) -> int | None:
        return None


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 on every authorization request, public and confidential clients alike."""

    def validate_code_challenge(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE (S256) is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


def oauth_text(text: str) -> str:
    """`text` as an OAuth error_description may carry it (Authlib raises on anything
    else): `challenge_text`."""
    return challenge_text(text)


def oauth_response(status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    """An Authlib (status, body, headers) triple as a Starlette response."""
    content = orjson.dumps(body) if isinstance(body, dict) else body
    return Response(content, status_code=status, headers=dict(headers))


class QuotingAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server, refusing a response_type it could not quote.

    Authlib quotes an unsupported response_type in its error's description, then
    refuses (ValueError, a 500) a description with characters OAuth does not allow
    there: https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2.1.
    """

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        response_type = request.payload.response_type
        if isinstance(response_type, str) and invalid_error_characters(response_type):
            raise InvalidRequestError(
                description="response_type holds characters that OAuth does not allow."
            )
        return super().get_authorization_grant(request)
