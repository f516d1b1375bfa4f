"""The logged-in citizen of a request: their session, and their record read as them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse

from health.db.engine import Database
from health.portal.record import CitizenRecords
from health.portal.sessions import SESSION_COOKIE, PortalSession, PortalSessionStore
from health.settings import Settings

HOME = "/portal/"


@dataclass(frozen=True)
class SignedIn:
    """A request's citizen: who (the session) and their record (read as them)."""

    session: PortalSession
    records: CitizenRecords


class NotSignedIn(Exception):
    """The request carries no open portal session."""


def settings_of(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def database_of(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


@contextmanager
def signed_in(request: Request) -> Iterator[SignedIn]:
    """The citizen's session and their record; NotSignedIn if there is no open session.

    Two transactions: the session (seen now, or deleted when it has ended) is written and
    committed first, whatever the page does next; the record is then read in a read-only
    transaction of its own (a read replica may serve it).
    """
    settings = settings_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotSignedIn
    database = database_of(request)
    with database.session(write=True) as session:
        citizen = PortalSessionStore(session, settings).load(cookie)
    if citizen is None:
        raise NotSignedIn
    with database.session(write=False) as session:
        records = CitizenRecords(
            session, citizen.national_id, citizen.name, settings.national_id_systems
        )
        yield SignedIn(citizen, records)


def to_front_page() -> RedirectResponse:
    """Where a page sends a browser that is not logged in: the way in."""
    return RedirectResponse(HOME, status_code=303)
