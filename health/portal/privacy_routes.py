"""HTTP edges of the citizen's privacy pages: "who has looked at my record" (the access
log) and "who may look" (treatment relationships, blocks, permits, hidden episodes).

Each choice is one FHIR Consent in the record the person is looking at (their own, or
that of someone they act for), written through the FHIR interactions as that person,
so the access rules are compiled from it exactly as from a Consent written by an app
(health/access/consent.py), and logged as a consent change in the same transaction.
Every form posts the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from health.access.disclosure import consent_entries
from health.audit.log import AuditLog
from health.fhir.errors import FhirError
from health.fhir.interactions import Interactions
from health.fhir.search.params import SearchLimits, parse_search
from health.fhir.validation import check
from health.numbers import INT64_DIGITS
from health.portal import access_log, consent_choices
from health.portal.citizen import (
    SignedIn,
    as_signed_in,
    fhir_config_of,
    settings_of,
)
from health.portal.datatypes import display_name
from health.portal.errors import PortalError
from health.portal.rendering import render_page
from health.portal.sessions import csrf_matches
from health.portal.who_may_look import party_references, who_may_look

router = APIRouter(prefix="/portal", include_in_schema=False)

ACCESS_PAGE = "/portal/access"
# Directory entries offered for one name search.
_SEARCH_RESULTS = 20
_SEARCH_TYPES = ("Practitioner", "Organization")


def _context(person: SignedIn, **values: object) -> dict[str, object]:
    return {"citizen": person.session, "person": person, **values}


@router.get("/log")
def log_page(
    request: Request,
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
    # A sequence number of the access log: what a 64-bit column holds (health/numbers.py).
    before: Annotated[int | None, Query(ge=1, lt=10**INT64_DIGITS)] = None,
) -> Response:
    """Who has looked at the record: newest first, by period, a page at a time."""

    def build(person: SignedIn) -> Response:
        chosen = access_log.period_of(start, end)
        page = access_log.LogPage(lines=[], older=None)
        if person.patient_id is not None:
            key = settings_of(request).audit_key.encode()
            rows = AuditLog(person.transaction, key).for_patient(
                person.patient_id,
                since=chosen.since,
                until=chosen.until,
                before_seq=before,
                limit=access_log.LOG_PAGE_SIZE + 1,
            )
            names = person.records.names(access_log.references_in(rows))
            own = {f"Patient/{patient_id}" for patient_id in person.own_patient_ids}
            page = access_log.log_page(rows, names, own, access_log.LOG_PAGE_SIZE)
        return render_page(request, "portal/log.html", _context(person, page=page, period=chosen))

    return as_signed_in(request, build)


@router.get("/access")
def access_page(
    request: Request,
    kind: Annotated[str, Query(max_length=20)] = "",
    name: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Who may look: treatment relationships, the person's choices, the name search."""

    def build(person: SignedIn) -> Response:
        record = person.records.load(types=("Consent", "Encounter", "EpisodeOfCare"))
        repository = person.records.repository
        relationships = (
            repository.care_relationships_of(person.patient_id)
            if repository is not None and person.patient_id is not None
            else []
        )
        names = person.records.names(party_references(relationships, record))
        chosen_kind = kind if kind in _SEARCH_TYPES else "Practitioner"
        found = _directory_search(request, person, chosen_kind, name.strip()) if name else []
        return render_page(
            request,
            "portal/access.html",
            _context(
                person,
                record=record,
                view=who_may_look(record, relationships, names),
                search={"kind": chosen_kind, "name": name, "found": found},
                opt_in=settings_of(request).access_policy == "opt-in",
            ),
        )

    return as_signed_in(request, build)


def _directory_search(
    request: Request, person: SignedIn, resource_type: str, name: str
) -> list[tuple[str, str]]:
    """(`Type/id`, name) of the directory entries whose name matches, through the
    person's repository and the FHIR search machinery (`name:contains`)."""
    repository = person.records.repository
    if repository is None:
        return []
    config = fhir_config_of(request)
    settings = config.settings
    try:
        search = parse_search(
            resource_type,
            [("name:contains", name), ("_count", str(_SEARCH_RESULTS)), ("_total", "none")],
            config.search,
            base_url=settings.fhir_base_url,
            limits=SearchLimits(settings.default_page_size, settings.max_page_size),
        )
    except FhirError as error:
        raise PortalError(400, "The search could not be used:", detail_text=str(error)) from None
    page = repository.search(search, limit=_SEARCH_RESULTS)
    return [
        (f"{v.resource_type}/{v.id}", display_name(orjson.loads(v.body)) or v.id)
        for v in page.matches
        if v.body is not None
    ]


def _change(
    request: Request, csrf_token: str, change: Callable[[SignedIn, Interactions], None]
) -> Response:
    """Run one change of the person's choices, as them, in one transaction with its log
    entries; then back to the "who may look" page."""

    def build(person: SignedIn) -> Response:
        if not csrf_matches(person.session, csrf_token):
            raise PortalError(
                403,
                "The change could not be verified (the form's token is missing or wrong). "
                "Go back to the page and try again.",
            )
        repository = person.records.repository
        if repository is None or person.patient_id is None:
            raise PortalError(404, "There is no record to change yet.")
        interactions = Interactions(repository, fhir_config_of(request))
        try:
            change(person, interactions)
            interactions.flush()
        except FhirError as error:
            raise PortalError(
                error.status, "The change could not be saved:", detail_text=str(error)
            ) from None
        person.log.extend(consent_entries(repository, interactions.written))
        return RedirectResponse(ACCESS_PAGE, status_code=303)

    return as_signed_in(request, build, write=True)


def _create_consent(interactions: Interactions, consent: dict[str, object]) -> None:
    interactions.create(check(consent, "Consent", interactions.config.types))


def _named_party(person: SignedIn, reference: str, types: tuple[str, ...]) -> str:
    """The name of a directory entry the form names; 404 when there is none."""
    if reference.partition("/")[0] not in types or not consent_choices.is_party(reference):
        raise PortalError(
            400, "%(reference)s is not a clinician or an organisation.", reference=reference
        )
    name = person.records.names([reference]).get(reference)
    if name is None:
        raise PortalError(404, "%(reference)s is not in the directory.", reference=reference)
    return name


def _active_choice(person: SignedIn, kind: str, reference: str) -> bool:
    record = person.records.load(types=("Consent",))
    return any(
        c.kind == kind and c.reference == reference
        for c in consent_choices.choices(record.of_type("Consent"))
    )


@router.post("/access/block")
def block(
    request: Request,
    party: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Shut a clinician or an organisation out of the record."""

    def change(person: SignedIn, interactions: Interactions) -> None:
        name = _named_party(person, party, consent_choices.PARTY_TYPES)
        if not _active_choice(person, "block", party):
            assert person.patient_id is not None
            _create_consent(
                interactions, consent_choices.block(person.patient_id, party, name, person.now)
            )

    return _change(request, csrf_token, change)


@router.post("/access/permit")
def permit(
    request: Request,
    party: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Under the opt-in policy: let an organisation that treats the citizen look."""

    def change(person: SignedIn, interactions: Interactions) -> None:
        if settings_of(request).access_policy != "opt-in":
            raise PortalError(
                400, "Organisations that treat you may already look; there is nothing to permit."
            )
        name = _named_party(person, party, ("Organization",))
        if not _active_choice(person, "permit", party):
            assert person.patient_id is not None
            _create_consent(
                interactions, consent_choices.permit(person.patient_id, party, name, person.now)
            )

    return _change(request, csrf_token, change)


@router.post("/access/hide")
def hide(
    request: Request,
    episode: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Hide an Encounter or EpisodeOfCare from every organisation but its own."""

    def change(person: SignedIn, interactions: Interactions) -> None:
        kind, _, episode_id = episode.partition("/")
        if not consent_choices.is_episode(episode) or person.records.read(kind, episode_id) is None:
            raise PortalError(404, "This contact is not in the record.")
        if not _active_choice(person, "hide", episode):
            assert person.patient_id is not None
            _create_consent(
                interactions, consent_choices.hide(person.patient_id, episode, person.now)
            )

    return _change(request, csrf_token, change)


@router.post("/access/withdraw")
def withdraw(
    request: Request,
    consent: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Undo a choice (unblock, unhide, take back a permit): delete its Consent."""

    def change(person: SignedIn, interactions: Interactions) -> None:
        # Read as the person: another citizen's Consent is simply not found.
        if not consent or person.records.read("Consent", consent) is None:
            raise PortalError(404, "This choice is not in the record.")
        interactions.delete("Consent", consent)

    return _change(request, csrf_token, change)
