"""Portal sessions: who is logged in to the portal, behind a signed cookie (portal_session).

The cookie holds a random session id and its HMAC under settings.session_secret; the
table holds the id's SHA-256, so a copy of the database opens no session. Every login
gets a new id (no session fixation). A session ends after settings.session_idle_minutes
without a request, settings.session_absolute_hours after the login in any case, and at
logout. Ended sessions are deleted when next seen; the rest are swept at each login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from starlette.responses import Response

from health.auth.eid_login import EidIdentity
from health.db.tables import portal_session
from health.settings import Settings

SESSION_COOKIE = "health_portal_session"
# The cookies of the portal are sent to the portal only.
COOKIE_PATH = "/portal"


@dataclass(frozen=True)
class PortalSession:
    national_id: str
    name: str
    birth_date: str | None
    acr: str
    # The logout form's CSRF token.
    csrf_token: str
    id_token: str | None
    created_at: datetime
    last_seen_at: datetime


class PortalSessionStore:
    """Reads and writes portal_session in the caller's session (one transaction)."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self._session = session
        self._secret = settings.session_secret.encode()
        self._idle = timedelta(minutes=settings.session_idle_minutes)
        self._absolute = timedelta(hours=settings.session_absolute_hours)

    def create(self, identity: EidIdentity) -> str:
        """A new session for a citizen who just logged in; returns the cookie value."""
        now = datetime.now(UTC)
        self._session.execute(delete(portal_session).where(portal_session.c.expires_at <= now))
        session_id = secrets.token_urlsafe(32)
        self._session.execute(
            insert(portal_session).values(
                id_hash=_digest(session_id),
                national_id=identity.national_id,
                name=identity.name,
                birth_date=identity.birth_date,
                acr=identity.acr,
                csrf_token=secrets.token_urlsafe(32),
                id_token=identity.id_token,
                created_at=now,
                last_seen_at=now,
                expires_at=self._expires_at(now, now),
            )
        )
        return f"{session_id}.{self._signature(session_id)}"

    def load(self, cookie: str | None) -> PortalSession | None:
        """The session the cookie names if it is still open, marked as seen now."""
        id_hash = self._id_hash(cookie)
        if id_hash is None:
            return None
        row = self._session.execute(
            select(portal_session).where(portal_session.c.id_hash == id_hash)
        ).one_or_none()
        if row is None:
            return None
        now = datetime.now(UTC)
        if now >= row.last_seen_at + self._idle or now >= row.created_at + self._absolute:
            self._session.execute(delete(portal_session).where(portal_session.c.id_hash == id_hash))
            return None
        self._session.execute(
            update(portal_session)
            .where(portal_session.c.id_hash == id_hash)
            .values(last_seen_at=now, expires_at=self._expires_at(row.created_at, now))
        )
        return PortalSession(
            national_id=row.national_id,
            name=row.name,
            birth_date=row.birth_date,
            acr=row.acr,
            csrf_token=row.csrf_token,
            id_token=row.id_token,
            created_at=row.created_at,
            last_seen_at=now,
        )

    def end(self, cookie: str | None) -> None:
        """Delete the session the cookie names (logout, or a new login in this browser)."""
        id_hash = self._id_hash(cookie)
        if id_hash is not None:
            self._session.execute(delete(portal_session).where(portal_session.c.id_hash == id_hash))

    def _expires_at(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        """When the session ends unless it is used again (what the sweep goes by)."""
        return min(created_at + self._absolute, last_seen_at + self._idle)

    def _id_hash(self, cookie: str | None) -> str | None:
        """The stored hash of the cookie's session id, if the cookie is genuine."""
        session_id, _, signature = (cookie or "").rpartition(".")
        if not session_id or not hmac.compare_digest(
            signature.encode(), self._signature(session_id).encode()
        ):
            return None
        return _digest(session_id)

    def _signature(self, session_id: str) -> str:
        mac = hmac.new(self._secret, f"portal-session\n{session_id}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def set_portal_cookie(response: Response, settings: Settings, name: str, value: str) -> None:
    """A portal cookie: HttpOnly, SameSite=Lax, Secure when the portal is on https.

    Lax, not Strict: the eID's redirect back to /portal/callback is a cross-site
    navigation, and the browser cookie that binds the login must come along with it.
    No Max-Age: the browser forgets it when it closes; the server's timeouts decide the rest.
    """
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
    )


def clear_portal_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
    )


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_matches(citizen: PortalSession, token: str) -> bool:
    """Whether a form carried the session's CSRF token."""
    return bool(token) and hmac.compare_digest(citizen.csrf_token.encode(), token.encode())
