"""HTTP edges of acting for others: switching to the record of someone the person may act
for (a child in custody, a citizen who granted a power of attorney) and back, and the
citizen granting and revoking powers of attorney.

The switch is a cookie signed with the portal session (health/portal/proxies.py); the
right behind it is checked again on every request (health/portal/citizen.py). Every
form posts the session's CSRF token; every action is in the access log of the citizen
whose record it concerns, naming the proxy when a proxy did it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from health.access.disclosure import entry_for
from health.audit.entries import AuditEntry
from health.fhir.errors import FhirError
from health.fhir.interactions import Interactions
from health.fhir.validation import check
from health.portal import attorney
from health.portal.citizen import (
    HOME,
    SignedIn,
    as_signed_in,
    fhir_config_of,
    settings_of,
)
from health.portal.errors import PortalError
from health.portal.proxies import ACTING_COOKIE, Principal, acting_cookie
from health.portal.rendering import render_page
from health.portal.sessions import (
    SESSION_COOKIE,
    PortalSession,
    clear_portal_cookie,
    csrf_matches,
    set_portal_cookie,
)

router = APIRouter(prefix="/portal", include_in_schema=False)

ATTORNEY_PAGE = "/portal/attorney"
# What the access log calls these actions.
ACT_FOR_ACTION = "act-for"
ATTORNEY_ACTION = "power-of-attorney"


def _require_csrf(person: SignedIn, csrf_token: str) -> None:
    if not csrf_matches(person.session, csrf_token):
        raise PortalError(
            403,
            "The form could not be verified (its token is missing or wrong). "
            "Go back to the page and try again.",
        )


@router.post("/act-for")
def act_for(
    request: Request,
    patient: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Show the record of someone the person may act for (`patient`), or their own ("")."""

    def build(person: SignedIn) -> Response:
        _require_csrf(person, csrf_token)
        response = RedirectResponse(HOME, status_code=303)
        settings = settings_of(request)
        if not patient:
            clear_portal_cookie(response, settings, ACTING_COOKIE)
            return response
        principal = next((p for p in person.principals if p.patient_id == patient), None)
        if principal is None:
            raise PortalError(403, "You may not act for this person.")
        session_cookie = request.cookies.get(SESSION_COOKIE, "")
        set_portal_cookie(
            response,
            settings,
            ACTING_COOKIE,
            acting_cookie(settings.session_secret, session_cookie, principal.patient_id),
        )
        person.log.append(_act_for_entry(person.session, principal))
        return response

    return as_signed_in(request, build)


def _act_for_entry(citizen: PortalSession, principal: Principal) -> AuditEntry:
    """The log's note that a proxy began to act for the citizen."""
    return AuditEntry(
        action=ACT_FOR_ACTION,
        outcome="success",
        purpose="proxy",
        agent_kind="citizen",
        agent=f"RelatedPerson/{principal.right.related_person_id}",
        agent_name=citizen.name,
        organization=None,
        client_id=None,
        on_behalf_of=f"Patient/{principal.patient_id}",
        patient_id=principal.patient_id,
        entities=(f"Patient/{principal.patient_id}",),
        detail=principal.right.basis.value,
    )


@router.get("/attorney")
def attorney_page(request: Request) -> Response:
    """Powers of attorney: whom the citizen has given one, and the form to give one."""
    return as_signed_in(
        request, lambda person: _render(request, person, attorney.Grant("", "", None))
    )


def _render(
    request: Request, person: SignedIn, grant: attorney.Grant, status: int = 200
) -> Response:
    record = person.records.load(types=("RelatedPerson",))
    settings = settings_of(request)
    return render_page(
        request,
        "portal/attorney.html",
        {
            "citizen": person.session,
            "person": person,
            "attorneys": attorney.attorneys(
                record.of_type("RelatedPerson"), settings.national_id_systems
            ),
            "grant": grant,
            "today": person.now.date().isoformat(),
            "max_years": attorney.MAX_YEARS,
        },
        status=status,
    )


def _own_record(person: SignedIn) -> str:
    """The citizen's own record (never a principal's: a proxy does not pass the right on)."""
    if person.acting_for is not None:
        raise PortalError(
            403, "Powers of attorney are given by the citizen themself, not by a proxy."
        )
    if person.patient_id is None:
        raise PortalError(404, "You have no record yet to give access to.")
    return person.patient_id


def _store(request: Request, person: SignedIn, write: Callable[[Interactions], str]) -> None:
    """Write one RelatedPerson as the citizen and log it in the same transaction."""
    repository = person.records.repository
    assert repository is not None
    interactions = Interactions(repository, fhir_config_of(request))
    try:
        detail = write(interactions)
        interactions.flush()
    except FhirError as error:
        raise PortalError(
            error.status, "The power of attorney could not be saved:", detail_text=str(error)
        ) from None
    for written in interactions.written:
        person.log.append(
            entry_for(
                repository,
                action=ATTORNEY_ACTION,
                patient_id=written.patient_id,
                entities=[f"{written.resource_type}/{written.id}"],
                detail=detail,
            )
        )


@router.post("/attorney")
def grant_attorney(
    request: Request,
    national_id: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    end: Annotated[str, Form(max_length=10)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Give someone a power of attorney for the citizen's record, until `end`."""

    def build(person: SignedIn) -> Response:
        _require_csrf(person, csrf_token)
        patient_id = _own_record(person)
        today = person.now.date()
        grant = attorney.check_grant(national_id, name, end, today)
        if grant.problems:
            return _render(request, person, grant, status=400)
        system = settings_of(request).national_id_systems[0]
        related = attorney.related_person(grant, patient_id, system, today)

        def write(interactions: Interactions) -> str:
            interactions.create(check(related, "RelatedPerson", interactions.config.types))
            return f"granted until {grant.end}"

        _store(request, person, write)
        return RedirectResponse(ATTORNEY_PAGE, status_code=303)

    return as_signed_in(request, build, write=True)


@router.post("/attorney/revoke")
def revoke_attorney(
    request: Request,
    related_person: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Withdraw a power of attorney: its RelatedPerson is written again, inactive."""

    def build(person: SignedIn) -> Response:
        _require_csrf(person, csrf_token)
        _own_record(person)
        # Read as the citizen: another citizen's RelatedPerson is simply not found.
        current = person.records.read("RelatedPerson", related_person) if related_person else None
        found = attorney.attorneys([current] if current else [], [])
        if current is None or not found or not found[0].revocable:
            raise PortalError(404, "This power of attorney is not in your record.")

        def write(interactions: Interactions) -> str:
            body = attorney.revoked(current)
            interactions.update(
                related_person, check(body, "RelatedPerson", interactions.config.types)
            )
            return "revoked"

        _store(request, person, write)
        return RedirectResponse(ATTORNEY_PAGE, status_code=303)

    return as_signed_in(request, build, write=True)
