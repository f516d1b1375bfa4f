"""HTTP edges of the development eID, mounted at /eid when HEALTH_DEV_EID is on.

https://openid.net/specs/openid-connect-core-1_0.html (code flow),
https://openid.net/specs/openid-connect-discovery-1_0.html,
https://openid.net/specs/openid-connect-rpinitiated-1_0.html.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from health.db.engine import Database
from health.eid.national_id import InvalidNationalId, parse_national_id
from health.eid.server import ACR_VALUES, SCOPES, EidRequest, EidServer, Subject
from health.eid.store import Authentication, EidStore, LoginRequest
from health.pages import error_page, render
from health.seed import DemoPerson, demo_persons

router = APIRouter(prefix="/eid", include_in_schema=False)

# Ties a login form to the browser that asked for it (with the form's CSRF token).
BROWSER_COOKIE = "health_eid_browser"
DEFAULT_LEVEL = "substantial"
UNKNOWN_PERSON_NAME = "Test Person"


@cache
def _test_persons() -> tuple[DemoPerson, ...]:
    return tuple(demo_persons())


def _server(request: Request) -> EidServer:
    return request.app.state.eid_server  # type: ignore[no-any-return]


@contextmanager
def _store(request: Request, *, write: bool) -> Iterator[EidStore]:
    database: Database = request.app.state.database
    with database.session(write=write) as session:
        yield EidStore(session)


@router.get("/.well-known/openid-configuration")
def discovery(request: Request) -> JSONResponse:
    server = _server(request)
    issuer = server.settings.dev_eid_issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/logout",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [server.signing_key.algorithm],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": list(ACR_VALUES.values()),
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "name",
                "birthdate",
                server.settings.eid_national_id_claim,
            ],
        }
    )


@router.get("/jwks")
def jwks(request: Request) -> JSONResponse:
    return JSONResponse(_server(request).signing_key.public_jwks())


@router.get("/authorize")
def authorize(request: Request) -> Response:
    """Validate the authentication request, then show the login form."""
    server = _server(request)
    items = list(request.query_params.multi_items())
    with _store(request, write=True) as store:
        eid_request = EidRequest("GET", request.headers, items, store)
        try:
            server.get_consent_grant(eid_request)
        except OAuth2Error as error:
            return _authorization_error(request, server, eid_request, error)
        browser_id = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(32)
        login = store.begin_login(dict(eid_request.payload.data), browser_id)
    response = _login_form(request, login, acr=_requested_level(login.parameters))
    response.set_cookie(
        BROWSER_COOKIE,
        browser_id,
        httponly=True,
        samesite="lax",
        path="/eid",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """The login form's answer: check it, then redirect to the client with a code."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    server = _server(request)
    with _store(request, write=True) as store:
        pending = store.login_request(fields.get("login_id", ""))
        if pending is None:
            return error_page(
                request,
                400,
                "This login has expired or was already completed. Go back to the service "
                "you came from and log in again.",
            )
        if not _form_is_genuine(request, pending, fields.get("csrf_token", "")):
            return error_page(
                request,
                400,
                "The login form could not be verified (its CSRF token is missing or wrong, or "
                "it was sent from another browser). Go back to the service and log in again.",
            )
        level = fields.get("acr", DEFAULT_LEVEL)
        typed = fields.get("person") or fields.get("national_id", "")
        try:
            national_id = parse_national_id(typed)
        except InvalidNationalId as invalid:
            return _login_form(request, pending, acr=level, national_id=typed, error=str(invalid))
        if level not in ACR_VALUES:
            return error_page(request, 400, f"Unknown level of assurance {level!r}.")
        if not store.finish_login(pending.id):
            return error_page(request, 400, "This login was already completed.")
        eid_request = EidRequest("GET", {}, list(pending.parameters.items()), store)
        try:
            grant = server.get_consent_grant(eid_request)
        except OAuth2Error as error:
            return _authorization_error(request, server, eid_request, error)
        known = {person.national_id: person.name for person in _test_persons()}
        authentication = Authentication(
            national_id=national_id.value,
            name=known.get(national_id.value, UNKNOWN_PERSON_NAME),
            birth_date=national_id.birth_date.isoformat() if national_id.birth_date else None,
            acr=ACR_VALUES[level],
            auth_time=datetime.now(UTC),
        )
        response: Response = server.create_authorization_response(
            eid_request, grant_user=authentication, grant=grant
        )
        return response


@router.post("/token")
async def token(request: Request) -> Response:
    form = await request.form()
    items = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    with _store(request, write=True) as store:
        eid_request = EidRequest("POST", request.headers, items, store, form=dict(items))
        response: Response = _server(request).create_token_response(eid_request)
        return response


@router.api_route("/userinfo", methods=["GET", "POST"])
def userinfo(request: Request) -> Response:
    """The claims about the person behind a bearer access token."""
    server = _server(request)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    issued = None
    if scheme.lower() == "bearer" and credentials.strip():
        with _store(request, write=False) as store:
            issued = store.access_token(credentials.strip())
    if issued is None:
        # https://datatracker.ietf.org/doc/html/rfc6750#section-3.1
        return JSONResponse(
            {"error": "invalid_token", "error_description": "Missing, unknown or expired token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    sub = server.pairwise_sub(issued.client_id, issued.authentication.national_id)
    return JSONResponse(server.person_claims(Subject(sub, issued.authentication)))


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    """RP-initiated logout: back to a registered post_logout_redirect_uri, or a page."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    server = _server(request)
    with _store(request, write=True) as store:
        eid_request = EidRequest(request.method, request.headers, items, store)
        try:
            validated = server.validate_endpoint_request("end_session", eid_request)
        except OAuth2Error as error:
            return error_page(request, 400, f"Logout refused: {error.description}")
        redirect = server.create_endpoint_response("end_session", validated)
    if redirect is not None:
        return redirect  # type: ignore[no-any-return]
    client_id = validated.client.get_client_id() if validated.client else None
    return render(request, "eid/logged_out.html", {"client_id": client_id})


def _authorization_error(
    request: Request, server: EidServer, eid_request: EidRequest, error: OAuth2Error
) -> Response:
    """Back to the client when its redirect URI is known good, else an error page here.

    https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2.1: never redirect to an
    unregistered redirect_uri or for an unknown client.
    """
    if error.redirect_uri:
        error.state = eid_request.payload.state
        response: Response = server.handle_error_response(eid_request, error)
        return response
    return error_page(request, 400, f"The login request was refused: {error.description}")


def _form_is_genuine(request: Request, pending: LoginRequest, csrf_token: str) -> bool:
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    return hmac.compare_digest(pending.csrf_token.encode(), csrf_token.encode()) and (
        hmac.compare_digest(pending.browser_id.encode(), browser_id.encode())
    )


def _requested_level(parameters: dict[str, str]) -> str:
    """The first eIDAS level named in acr_values (URI or short name), else substantial."""
    by_uri = {uri: level for level, uri in ACR_VALUES.items()}
    for value in parameters.get("acr_values", "").split():
        if value in ACR_VALUES:
            return value
        if value in by_uri:
            return by_uri[value]
    return DEFAULT_LEVEL


def _login_form(
    request: Request,
    pending: LoginRequest,
    *,
    acr: str,
    national_id: str = "",
    error: str | None = None,
) -> Response:
    context: dict[str, Any] = {
        "action": request.url_for("login").path,
        "login_id": pending.id,
        "csrf_token": pending.csrf_token,
        "client_id": pending.parameters.get("client_id", ""),
        "national_id": national_id,
        "error": error,
        "acr": acr if acr in ACR_VALUES else DEFAULT_LEVEL,
        "levels": list(ACR_VALUES),
        "persons": _test_persons(),
    }
    # The form carries a CSRF token and must not be cached or framed.
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    return render(request, "eid/login.html", context, status=400 if error else 200, headers=headers)
