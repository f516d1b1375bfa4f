"""The logged-in person of a request: their session, the record they are looking at
(their own, or that of someone they act for), and the access log of what they saw.

`signed_in` is the portal's one door: every page that reads the record reads it inside
it, and it writes what the page disclosed (and was refused, and changed) to the access
log before the page leaves. If the log cannot be written, the page is not shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from health.access.disclosure import disclosure_entries, refusal_entries
from health.access.policy import care_rules
from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.audit.writer import LogWriter
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.portal.proxies import (
    ACTING_COOKIE,
    Principal,
    chosen_patient_id,
    principals_of,
    proxy_actor,
)
from health.portal.record import CitizenRecords, citizen_actor, find_patient_ids
from health.portal.sessions import SESSION_COOKIE, PortalSession, PortalSessionStore
from health.settings import Settings

HOME = "/portal/"
# What the access log calls a look at the record through the portal.
PORTAL_ACTION = "portal"


@dataclass
class SignedIn:
    """A request's person: who (the session), whose record they look at (their own, or
    the principal's when acting for someone), and what to log besides the reads."""

    session: PortalSession
    records: CitizenRecords
    # The people the person may act for, and the one they act for now (None: themself).
    principals: list[Principal]
    acting_for: Principal | None
    # The person's own Patient ids (empty when they have no record).
    own_patient_ids: tuple[str, ...]
    now: datetime
    # The request's transaction (for the access log; the record is read through
    # `records`, never through this).
    transaction: Session
    # Entries a page adds (consent changes, powers of attorney), logged with its reads.
    log: list[AuditEntry] = field(default_factory=list)

    @property
    def patient_id(self) -> str | None:
        return self.records.patient_id


class NotSignedIn(Exception):
    """The request carries no open portal session."""


def settings_of(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def database_of(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


def fhir_config_of(request: Request) -> FhirConfig:
    return request.app.state.fhir_config  # type: ignore[no-any-return]


def open_session(request: Request) -> PortalSession:
    """The open portal session of the request (seen now, committed); else NotSignedIn."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotSignedIn
    with database_of(request).session(write=True) as session:
        citizen = PortalSessionStore(session, settings_of(request)).load(cookie)
    if citizen is None:
        raise NotSignedIn
    return citizen


@contextmanager
def signed_in(request: Request, *, write: bool = False) -> Iterator[SignedIn]:
    """The person's session and the record they look at; NotSignedIn without a session.

    The session (seen now, or deleted when it has ended) is committed first, whatever
    the page does next. The record is then read (and, with `write`, changed) in one
    transaction of its own. What the repository disclosed and refused, and the page's
    own entries, go to the access log: in that transaction when it writes, else right
    after it through the process's LogWriter, committed before the page is returned.
    """
    settings = settings_of(request)
    database = database_of(request)
    log_writer: LogWriter = request.app.state.log_writer
    citizen = open_session(request)
    key = settings.audit_key.encode()
    after: list[AuditEntry] = []
    person: SignedIn | None = None
    try:
        with database.session(write=write) as session:
            person = _person(session, request, citizen, settings)
            yield person
            entries = portal_entries(person)
            if write:
                AuditLog(session, key).append(entries, person.now)
            else:
                after = entries
    except HTTPException:
        # A page that was not shown still leaves the attempts it refused in the log.
        repository = person.records.repository if person is not None else None
        if repository is not None and repository.refused:
            log_writer.append(refusal_entries(repository, PORTAL_ACTION, "not visible"))
        raise
    finally:
        if person is not None:
            # The page's template context can outlive the request in reference cycles
            # (Jinja's), until a collection finds them: without the record read.
            person.records.release()
    log_writer.append(after)


def portal_entries(person: SignedIn) -> list[AuditEntry]:
    """What a portal request leaves in the access log."""
    repository = person.records.repository
    if repository is None:
        return list(person.log)
    return [
        *person.log,
        *disclosure_entries(repository, PORTAL_ACTION),
        *refusal_entries(repository, PORTAL_ACTION, "not visible"),
    ]


def _person(
    session: Session, request: Request, citizen: PortalSession, settings: Settings
) -> SignedIn:
    """Whose record this request shows, and as whom it is read."""
    now = datetime.now(UTC)
    own_ids = find_patient_ids(session, citizen.national_id, settings.national_id_systems)
    principals = principals_of(session, citizen, settings, now)
    chosen = chosen_patient_id(
        settings.session_secret,
        request.cookies.get(SESSION_COOKIE, ""),
        request.cookies.get(ACTING_COOKIE),
    )
    # Checked again on every request: a revoked right, or a child who has come of age,
    # takes the person back to their own record.
    acting_for = next((p for p in principals if p.patient_id == chosen), None)
    if acting_for is not None:
        actor = proxy_actor(citizen, acting_for.right)
        patient_ids: tuple[str, ...] = (acting_for.patient_id,)
    elif own_ids:
        actor = citizen_actor(own_ids[0], citizen.national_id, citizen.name)
        patient_ids = own_ids
    else:
        actor, patient_ids = None, ()
    records = CitizenRecords(
        session, actor, patient_ids, care_rules(settings), fhir_config_of(request)
    )
    return SignedIn(
        session=citizen,
        records=records,
        principals=principals,
        acting_for=acting_for,
        own_patient_ids=own_ids,
        now=now,
        transaction=session,
    )


def as_signed_in(
    request: Request, build: Callable[[SignedIn], Response], *, write: bool = False
) -> Response:
    """Run `build` for the logged-in person (logged, see `signed_in`); send anyone else
    to the front page."""
    try:
        with signed_in(request, write=write) as person:
            return build(person)
    except NotSignedIn:
        return to_front_page()


def to_front_page() -> RedirectResponse:
    """Where a page sends a browser that is not logged in: the way in."""
    return RedirectResponse(HOME, status_code=303)
