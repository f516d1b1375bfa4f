"""Logins at the eID in progress (this app as OpenID Connect client): the oidc_login table.

One row per login started, keyed by its `state`; what the callback must check (nonce,
PKCE verifier, the browser that started it) and what the login continues. Rows are
spent by the callback (single use) and swept once expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from health.db.tables import oidc_login

# Long enough for a citizen to find their MitID app; the development eID's own login
# form lasts as long.
LOGIN_LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    browser_id: str
    # "portal" or "smart": which callback the login belongs to.
    purpose: str
    # Where to go on: a portal path, or the authorization request a SMART login continues.
    continue_to: str
    expires_at: datetime


class OidcLoginStore:
    """Reads and writes oidc_login in the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def begin(
        self,
        *,
        state: str,
        nonce: str,
        code_verifier: str,
        browser_id: str,
        purpose: str,
        continue_to: str,
    ) -> PendingLogin:
        now = datetime.now(UTC)
        # Logins abandoned at the eID are swept here, by the next login to start.
        self._session.execute(delete(oidc_login).where(oidc_login.c.expires_at <= now))
        login = PendingLogin(
            state=state,
            nonce=nonce,
            code_verifier=code_verifier,
            browser_id=browser_id,
            purpose=purpose,
            continue_to=continue_to,
            expires_at=now + LOGIN_LIFETIME,
        )
        self._session.execute(
            insert(oidc_login).values(
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
                browser_id=browser_id,
                purpose=purpose,
                continue_to=continue_to,
                expires_at=login.expires_at,
            )
        )
        return login

    def claim(self, state: str) -> PendingLogin | None:
        """The login started with `state`, deleted in the same statement: good for one callback.

        One DELETE ... RETURNING, so that of two concurrent callbacks with one state
        only one gets the row. None when unknown, already claimed or expired.
        """
        row = self._session.execute(
            delete(oidc_login).where(oidc_login.c.state == state).returning(*oidc_login.c)
        ).one_or_none()
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return PendingLogin(
            state=row.state,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            browser_id=row.browser_id,
            purpose=row.purpose,
            continue_to=row.continue_to,
            expires_at=row.expires_at,
        )
