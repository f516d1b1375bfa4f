"""HTTP edges of the citizen portal at /portal: the front page, language, eID login and
logout (the record's pages are in record_routes.py).

Errors raise PortalError (health/portal/errors.py), which the app's error handler turns
into the portal's error page in the reader's language (health/fhir/http.py).
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from health.access.actor import ActorKind
from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.auth.eid_login import EidLoginError, EidRelyingParty, callback_error
from health.db.engine import Database
from health.portal.access_log import (
    EMERGENCY_NOTICE_DAYS,
    EmergencyAccess,
    emergency_accesses,
    emergency_references,
)
from health.portal.citizen import NotSignedIn, SignedIn, signed_in
from health.portal.errors import PortalError
from health.portal.front_page import read_front_page
from health.portal.languages import LANGUAGE_COOKIE, LANGUAGES
from health.portal.proxies import ACTING_COOKIE
from health.portal.record import find_patient_ids
from health.portal.rendering import render_page
from health.portal.sessions import (
    SESSION_COOKIE,
    PortalSessionStore,
    clear_portal_cookie,
    set_portal_cookie,
)
from health.settings import Settings

router = APIRouter(prefix="/portal", include_in_schema=False)

# Binds a login at the eID to the browser that started it (login CSRF protection).
BROWSER_COOKIE = "health_portal_browser"
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")
PURPOSE = "portal"
HOME = "/portal/"
# The language choice outlives a session (a year), and is no secret.
_LANGUAGE_MAX_AGE = 365 * 24 * 3600


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


def _relying_party(request: Request) -> EidRelyingParty:
    return request.app.state.eid_relying_party  # type: ignore[no-any-return]


def _redirect_uri(settings: Settings) -> str:
    return f"{settings.base_url}/portal/callback"


@router.get("/")
def home(request: Request) -> Response:
    """Logged out: the way in. Logged in: who, alerts, and the short lists."""
    settings = _settings(request)
    try:
        with signed_in(request) as person:
            record, front = read_front_page(person.records, person.now, _emergencies(person))
            return render_page(
                request,
                "portal/home.html",
                {"citizen": person.session, "person": person, "record": record, "front": front},
            )
    except NotSignedIn:
        pass
    response = render_page(request, "portal/login.html", {"dev_eid": settings.dev_eid})
    if request.cookies.get(SESSION_COOKIE):
        clear_portal_cookie(response, settings, SESSION_COOKIE)
    return response


def _emergencies(person: SignedIn) -> list[EmergencyAccess]:
    """Emergency accesses to the record in the last 90 days, with names."""
    repository = person.records.repository
    if repository is None or person.patient_id is None:
        return []
    since = person.now - timedelta(days=EMERGENCY_NOTICE_DAYS)
    rows = repository.emergency_accesses_to(person.patient_id, since)
    return emergency_accesses(rows, person.records.names(emergency_references(rows)))


@router.get("/language")
def choose_language(request: Request, lang: str = "", next: str = HOME) -> Response:
    """Remember the reader's language (a cookie) and go back to the page they were on.

    A link rather than a form: it changes nothing but how pages are worded, and it must
    work before the login. `next` must be a portal path (no open redirect).
    """
    if lang not in LANGUAGES:
        raise PortalError(400, "There is no language %(language)s; choose da or en.", language=lang)
    target = next if next.startswith(HOME) and "//" not in next and "\\" not in next else HOME
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        lang,
        max_age=_LANGUAGE_MAX_AGE,
        path="/",
        samesite="lax",
        secure=_settings(request).base_url.startswith("https://"),
    )
    return response


# Named apart from the development eID's "login" route, whose form finds its action
# with url_for("login"): the first route of that name in the app wins.
@router.get("/login", name="portal_login")
def login(request: Request) -> Response:
    """Send the browser to the eID, with a login bound to this browser."""
    settings = _settings(request)
    browser_id = request.cookies.get(BROWSER_COOKIE, "")
    if not _BROWSER_ID.fullmatch(browser_id):
        browser_id = secrets.token_urlsafe(32)
    try:
        with _database(request).session(write=True) as session:
            authorize_url = _relying_party(request).start_login(
                session,
                purpose=PURPOSE,
                continue_to=HOME,
                browser_id=browser_id,
                redirect_uri=_redirect_uri(settings),
            )
    except EidLoginError as error:
        # The eID's messages are fixed sentences, translated where the catalog has them.
        raise PortalError(error.status, str(error)) from None
    response = RedirectResponse(authorize_url, status_code=302)
    set_portal_cookie(response, settings, BROWSER_COOKIE, browser_id)
    return response


@router.get("/callback")
def callback(request: Request) -> Response:
    """The eID's answer: verify the login, start a new portal session, go on."""
    settings = _settings(request)
    query = request.query_params
    if query.get("error"):
        raise PortalError(400, str(callback_error(query["error"])))
    state, code = query.get("state", ""), query.get("code", "")
    if not state or not code:
        raise PortalError(
            400, "The answer from the eID lacks its state or code. Log in again from the portal."
        )
    with _database(request).session(write=True) as session:
        try:
            identity, purpose, continue_to = _relying_party(request).finish_login(
                session,
                state=state,
                code=code,
                browser_id=request.cookies.get(BROWSER_COOKIE, ""),
                redirect_uri=_redirect_uri(settings),
            )
        except EidLoginError as error:
            raise PortalError(error.status, str(error)) from None
        if purpose != PURPOSE:
            raise PortalError(400, "This login was not started by the portal. Log in again.")
        sessions = PortalSessionStore(session, settings)
        # A session from before the login ends, and the login gets a new id: whoever
        # planted a cookie in this browser does not share the citizen's session.
        sessions.end(request.cookies.get(SESSION_COOKIE))
        cookie = sessions.create(identity)
        _log_session_event(session, settings, "login", identity.national_id, identity.name)
    response = RedirectResponse(continue_to if continue_to.startswith(HOME) else HOME, 303)
    set_portal_cookie(response, settings, SESSION_COOKIE, cookie)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    """End the portal session, then the eID session (RP-initiated logout) when offered."""
    settings = _settings(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    with _database(request).session(write=True) as session:
        sessions = PortalSessionStore(session, settings)
        citizen = sessions.load(cookie)
        if citizen is not None:
            if not hmac.compare_digest(citizen.csrf_token.encode(), csrf_token.encode()):
                raise PortalError(
                    403,
                    "The logout could not be verified (the form's token is missing or wrong). "
                    "Go back to the portal and use its Log out button.",
                )
            sessions.end(cookie)
            _log_session_event(session, settings, "logout", citizen.national_id, citizen.name)
    end_session = None
    if citizen is not None and citizen.id_token:
        end_session = _relying_party(request).end_session_url(
            id_token_hint=citizen.id_token, post_logout_redirect_uri=f"{settings.base_url}{HOME}"
        )
    response = RedirectResponse(end_session or HOME, status_code=303)
    clear_portal_cookie(response, settings, SESSION_COOKIE)
    clear_portal_cookie(response, settings, ACTING_COOKIE)
    return response


def _log_session_event(
    session: Session, settings: Settings, action: str, national_id: str, name: str
) -> None:
    """A login or logout in the citizen's access log, in the session's transaction.

    A person with no record of their own (a relative who only acts for others) is
    logged without a patient: auditors see it, no citizen's log lists it.
    """
    patient_ids = find_patient_ids(session, national_id, settings.national_id_systems)
    patient_id = patient_ids[0] if patient_ids else None
    entry = AuditEntry(
        action=action,
        outcome="success",
        purpose="self",
        agent_kind=ActorKind.citizen.value,
        agent=f"Patient/{patient_id}" if patient_id else None,
        agent_name=name,
        organization=None,
        client_id=None,
        on_behalf_of=None,
        patient_id=patient_id,
        entities=(f"Patient/{patient_id}",) if patient_id else (),
    )
    AuditLog(session, settings.audit_key.encode()).append([entry], datetime.now(UTC))
