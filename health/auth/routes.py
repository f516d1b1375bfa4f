"""HTTP edges of the SMART authorization server, at /auth.

The standalone launch (https://hl7.org/fhir/smart-app-launch/app-launch.html):
`GET /auth/authorize` checks the app's request and sends the user to the eID;
`GET /auth/callback` learns who logged in and shows the approval page;
`POST /auth/approve` takes the user's answer back to the app (a code, or access_denied).
Then `POST /auth/token` (codes, refresh tokens, backend client credentials),
`POST /auth/revoke` (RFC 7009), `GET /auth/jwks` (the key access and ID tokens are signed
with) and `GET /auth/.well-known/openid-configuration`. The SMART configuration itself is
served under /fhir (health/fhir/routes.py, from health/auth/discovery.py).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from authlib.oauth2.rfc6749 import AccessDeniedError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from health.access.actor import ActorKind
from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.auth.authlib_starlette import oauth_response, oauth_text
from health.auth.discovery import openid_configuration
from health.auth.eid_login import EidLoginError, EidRelyingParty, callback_error
from health.auth.identity import identify
from health.auth.keys import SigningKey
from health.auth.launch import (
    Launch,
    LaunchRefused,
    describe,
    grant_lifetime,
    granted_scopes,
)
from health.auth.scopes import Scopes
from health.auth.server import SmartAuthorization, SmartRequest, SmartServer
from health.auth.store import CODE_LIFETIME, PendingAuthorization
from health.db.engine import Database
from health.pages import error_page, render
from health.settings import Settings

router = APIRouter(prefix="/auth", include_in_schema=False)

# Ties an authorize request, its eID login and its approval form to one browser.
BROWSER_COOKIE = "health_auth_browser"
# What this server puts in that cookie (secrets.token_urlsafe(32)); anything else is
# replaced, never stored.
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")
# The eID login's purpose, for the relying party (health/auth/eid_login.py).
LOGIN_PURPOSE = "smart"
# The authorize request parameters kept while the user logs in and decides.
_KEPT_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)
# Pages that carry a CSRF token or an approval must not be cached or framed (a framed
# approval page could be clicked through by another site).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def mount_authorization_server(app: FastAPI, settings: Settings, signing_key: SigningKey) -> None:
    """Serve the SMART authorization server under /auth, signing with `signing_key`."""
    app.state.smart_authorization = SmartAuthorization(
        settings=settings, access_tokens=app.state.access_tokens, signing_key=signing_key
    )
    app.include_router(router)


def _authorization(request: Request) -> SmartAuthorization:
    return request.app.state.smart_authorization  # type: ignore[no-any-return]


def _relying_party(request: Request) -> EidRelyingParty:
    return request.app.state.eid_relying_party  # type: ignore[no-any-return]


def _callback_url(request: Request) -> str:
    return f"{_authorization(request).settings.auth_issuer}/callback"


@contextmanager
def _server(request: Request) -> Iterator[SmartServer]:
    """The authorization server for this request, in one write transaction."""
    database: Database = request.app.state.database
    with database.session(write=True) as session:
        yield _authorization(request).server(session)


@router.get("/authorize")
def authorize(request: Request) -> Response:
    """Check the app's request, remember it, and send the user to log in at the eID."""
    items = list(request.query_params.multi_items())
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    if not _BROWSER_ID.fullmatch(browser_id):
        browser_id = secrets.token_urlsafe(32)
    with _server(request) as server:
        smart_request = SmartRequest("GET", request.headers, items)
        try:
            server.get_consent_grant(smart_request)
        except OAuth2Error as error:
            return _authorization_error(request, server, smart_request, error)
        data = smart_request.payload.data
        parameters = {name: data[name] for name in _KEPT_PARAMETERS if name in data}
        pending = server.store.begin_authorization(parameters, browser_id)
        try:
            login_url = _relying_party(request).start_login(
                server.store.session,
                purpose=LOGIN_PURPOSE,
                continue_to=pending.id,
                browser_id=browser_id,
                redirect_uri=_callback_url(request),
            )
        except EidLoginError as error:
            return error_page(request, error.status, str(error))
    response = RedirectResponse(login_url, status_code=302)
    response.set_cookie(
        BROWSER_COOKIE,
        browser_id,
        httponly=True,
        samesite="lax",
        path="/auth",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/callback")
def callback(request: Request) -> Response:
    """Back from the eID: who logged in, and what they may grant; then the approval page."""
    params = request.query_params
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    database: Database = request.app.state.database
    with database.session(write=True) as session:
        # The relying party's own transaction comes first (EidRelyingParty.finish_login).
        try:
            if "error" in params:
                raise callback_error(params["error"])
            identity, purpose, continue_to = _relying_party(request).finish_login(
                session,
                state=params.get("state", ""),
                code=params.get("code", ""),
                browser_id=browser_id,
                redirect_uri=_callback_url(request),
            )
        except EidLoginError as error:
            return error_page(request, error.status, str(error))
        server = _authorization(request).server(session)
        pending = server.store.pending(continue_to) if purpose == LOGIN_PURPOSE else None
        if pending is None or not _same_browser(pending, browser_id):
            return _expired(request)
        smart_request, code_grant = _revalidated(request, server, pending)
        if isinstance(code_grant, Response):
            server.store.finish_authorization(pending.id)
            return code_grant
        try:
            person = identify(session, identity.national_id, server.settings.national_id_systems)
            scopes = granted_scopes(Scopes.parse(smart_request.scope), person)
        except LaunchRefused as refused:
            server.store.finish_authorization(pending.id)
            error = AccessDeniedError(
                oauth_text(str(refused)), redirect_uri=code_grant.redirect_uri
            )
            return _authorization_error(request, server, smart_request, error)
        launch = Launch(
            national_id=identity.national_id,
            kind=person.kind,
            fhir_user=person.fhir_user,
            patient_id=person.patient_id,
            scope=str(scopes),
        )
        server.store.set_identity(pending.id, launch.as_json())
        app_name = code_grant.client.registered.name
    settings = server.settings
    context = {
        "app_name": app_name,
        "person_name": identity.name,
        "clinician": person.kind is ActorKind.clinician,
        "permissions": describe(
            scopes,
            person,
            offline_days=settings.refresh_grant_days,
            online_hours=settings.session_absolute_hours,
        ),
        "action": request.url_for("approve").path,
        "request_id": pending.id,
        "csrf_token": pending.csrf_token,
    }
    return render(request, "auth/approve.html", context, headers=_PAGE_HEADERS)


@router.post("/approve")
async def approve(request: Request) -> Response:
    """The approval form's answer: Allow gives the app a code, Deny an access_denied."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    return await run_in_threadpool(_approve, request, fields)


def _approve(request: Request, fields: dict[str, str]) -> Response:
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    with _server(request) as server:
        pending = server.store.pending(fields.get("request_id", ""))
        if pending is None or pending.identity is None:
            return _expired(request)
        csrf_token = fields.get("csrf_token", "")
        if not (
            hmac.compare_digest(pending.csrf_token.encode(), csrf_token.encode())
            and _same_browser(pending, browser_id)
        ):
            return error_page(
                request,
                400,
                "The approval form could not be verified (its CSRF token is missing or wrong, "
                "or it was sent from another browser). Go back to the app and start again.",
                headers=_PAGE_HEADERS,
            )
        if not server.store.finish_authorization(pending.id):
            return _expired(request)
        smart_request, code_grant = _revalidated(request, server, pending)
        if isinstance(code_grant, Response):
            return code_grant
        if fields.get("decision") != "allow":
            return server.create_authorization_response(  # type: ignore[no-any-return]
                smart_request, grant_user=None, grant=code_grant
            )
        launch = Launch.from_json(pending.identity)
        scopes = Scopes.parse(launch.scope)
        settings = server.settings
        grant = server.grants.create(
            client_id=code_grant.client.client_id,
            scope=launch.scope,
            actor_kind=launch.kind.value,
            lifetime=grant_lifetime(
                scopes,
                single_token=CODE_LIFETIME + timedelta(minutes=settings.access_token_minutes),
                online=timedelta(hours=settings.session_absolute_hours),
                offline=timedelta(days=settings.refresh_grant_days),
            ),
            national_id=launch.national_id,
            fhir_user=launch.fhir_user,
            patient_id=launch.patient_id,
        )
        # The login that let an app in is part of the citizen's access log.
        AuditLog(server.session, settings.audit_key.encode()).append(
            [app_login_entry(launch, code_grant.client.client_id)], datetime.now(UTC)
        )
        return server.create_authorization_response(  # type: ignore[no-any-return]
            smart_request, grant_user=grant, grant=code_grant
        )


def app_login_entry(launch: Launch, client_id: str) -> AuditEntry:
    """A person's login at the eID that authorised an app, as the access log records it."""
    return AuditEntry(
        action="login",
        outcome="success",
        purpose="self" if launch.kind is ActorKind.citizen else "treatment",
        agent_kind=launch.kind.value,
        agent=launch.fhir_user,
        agent_name=None,
        organization=None,
        client_id=client_id,
        on_behalf_of=None,
        patient_id=launch.patient_id,
        entities=(),
        detail=f"authorised the app {client_id} ({launch.scope})",
    )


@router.post("/token")
async def token(request: Request) -> Response:
    """https://datatracker.ietf.org/doc/html/rfc6749#section-3.2"""
    items = await _form_items(request)
    if isinstance(items, Response):
        return items
    return await run_in_threadpool(_endpoint, request, items, None)


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    """https://datatracker.ietf.org/doc/html/rfc7009#section-2"""
    items = await _form_items(request)
    if isinstance(items, Response):
        return items
    return await run_in_threadpool(_endpoint, request, items, "revocation")


@router.get("/.well-known/openid-configuration")
def openid_discovery(request: Request) -> JSONResponse:
    authorization = _authorization(request)
    return JSONResponse(
        openid_configuration(authorization.settings, authorization.signing_key.algorithm)
    )


@router.get("/jwks")
def jwks(request: Request) -> JSONResponse:
    """The public key access tokens and ID tokens are signed with."""
    return JSONResponse(_authorization(request).signing_key.public_jwks())


def _endpoint(request: Request, items: list[tuple[str, str]], name: str | None) -> Response:
    with _server(request) as server:
        smart_request = SmartRequest("POST", request.headers, items, form=dict(items))
        if name is None:
            return server.create_token_response(smart_request)  # type: ignore[no-any-return]
        return server.create_endpoint_response(name, smart_request)  # type: ignore[no-any-return]


async def _form_items(request: Request) -> list[tuple[str, str]] | Response:
    """The form parameters; a JSON error when one is repeated (RFC 6749 section 3.2)."""
    form = await request.form()
    items = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    names = [key for key, _ in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return oauth_response(
            400,
            {
                "error": "invalid_request",
                "error_description": oauth_text(f"Parameters sent more than once: {repeated}"),
            },
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )
    return items


def _revalidated(
    request: Request, server: SmartServer, pending: PendingAuthorization
) -> tuple[SmartRequest, AuthorizationCodeGrant | Response]:
    """The stored authorize request, checked again (the app may have been removed since)."""
    smart_request = SmartRequest("GET", {}, list(pending.parameters.items()))
    try:
        return smart_request, server.get_consent_grant(smart_request)
    except OAuth2Error as error:
        return smart_request, _authorization_error(request, server, smart_request, error)


def _authorization_error(
    request: Request, server: SmartServer, smart_request: SmartRequest, error: OAuth2Error
) -> Response:
    """Back to the app when its redirect URI is known good, else an error page here.

    https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2.1: never redirect to an
    unregistered redirect_uri or for an unknown client.
    """
    if error.redirect_uri:
        return _error_response(server, smart_request, error)
    reason = error.get_error_description() or error.error
    return error_page(request, 400, f"The app's request was refused: {reason}")


def _error_response(
    server: SmartServer, smart_request: SmartRequest, error: OAuth2Error
) -> Response:
    error.state = smart_request.payload.state
    return server.handle_error_response(smart_request, error)


def _same_browser(pending: PendingAuthorization, browser_id: str) -> bool:
    return hmac.compare_digest(pending.browser_id.encode(), browser_id.encode())


def _expired(request: Request) -> Response:
    return error_page(
        request,
        400,
        "This authorization has expired, was already answered, or was started in another "
        "browser. Go back to the app and start again.",
        headers=_PAGE_HEADERS,
    )
