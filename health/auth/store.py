"""The authorization server's short-lived state in the database.

Authorize requests between their arrival and the user's decision, authorization codes,
refresh tokens and the `jti` of accepted client assertions, in tables of their own
(health.db.tables, auth_*), so that any number of app processes share them. Codes and
refresh tokens are stored as SHA-256 hashes. Each single-use thing is claimed with a
guarded UPDATE (or a primary key), so of two processes only one can use it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from health.auth.grants import GrantStore
from health.db.tables import (
    auth_authorization_code,
    auth_authorization_request,
    auth_client_assertion,
    auth_grant,
    auth_refresh_token,
)

# Long enough to log in at the eID and read the approval page.
REQUEST_LIFETIME = timedelta(minutes=15)
# https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2: "a maximum authorization
# code lifetime of 10 minutes is RECOMMENDED"; one minute is plenty for a redirect.
CODE_LIFETIME = timedelta(seconds=60)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PendingAuthorization:
    """An authorize request in progress, bound to the browser that made it."""

    id: str
    browser_id: str
    csrf_token: str
    # The validated request parameters (client_id, redirect_uri, scope, state, ...).
    parameters: dict[str, str]
    # Who logged in and what they may grant (health.auth.launch.Launch.as_json), once
    # the eID login is done; None before.
    identity: dict[str, Any] | None


@dataclass(frozen=True)
class IssuedCode:
    """What an authorization code stands for: a grant, bound to a redirect URI and PKCE."""

    grant_id: str
    scope: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    nonce: str | None


class AuthorizationStore:
    """Reads and writes the authorization server's state in the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # Authorize requests

    def begin_authorization(
        self, parameters: dict[str, str], browser_id: str
    ) -> PendingAuthorization:
        now = _now()
        self._purge_expired(now)
        pending = PendingAuthorization(
            id=secrets.token_urlsafe(32),
            browser_id=browser_id,
            csrf_token=secrets.token_urlsafe(32),
            parameters=parameters,
            identity=None,
        )
        self.session.execute(
            insert(auth_authorization_request).values(
                id=pending.id,
                browser_id=browser_id,
                csrf_token=pending.csrf_token,
                parameters=orjson.dumps(parameters).decode(),
                identity=None,
                expires_at=now + REQUEST_LIFETIME,
            )
        )
        return pending

    def pending(self, request_id: str) -> PendingAuthorization | None:
        table = auth_authorization_request
        row = self.session.execute(
            select(table).where(table.c.id == request_id, table.c.expires_at > _now())
        ).one_or_none()
        if row is None:
            return None
        return PendingAuthorization(
            id=row.id,
            browser_id=row.browser_id,
            csrf_token=row.csrf_token,
            parameters=orjson.loads(row.parameters),
            identity=orjson.loads(row.identity) if row.identity else None,
        )

    def set_identity(self, request_id: str, identity: dict[str, Any]) -> None:
        table = auth_authorization_request
        self.session.execute(
            update(table)
            .where(table.c.id == request_id)
            .values(identity=orjson.dumps(identity).decode())
        )

    def finish_authorization(self, request_id: str) -> bool:
        """Forget an authorize request; False when another submission finished it first."""
        table = auth_authorization_request
        result = self.session.execute(delete(table).where(table.c.id == request_id))
        return result.rowcount == 1  # type: ignore[attr-defined]

    # Authorization codes

    def save_code(
        self,
        code: str,
        *,
        grant_id: str,
        redirect_uri: str,
        code_challenge: str,
        code_challenge_method: str,
        nonce: str | None,
    ) -> None:
        self.session.execute(
            insert(auth_authorization_code).values(
                code_hash=_digest(code),
                grant_id=grant_id,
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method,
                nonce=nonce,
                expires_at=_now() + CODE_LIFETIME,
                used_at=None,
            )
        )

    def claim_code(self, code: str, client_id: str) -> IssuedCode | None:
        """The code's grant, if the code was issued to `client_id` and is fresh and unused.

        A code is good for one exchange. One presented again (or by two exchanges at
        once: the guarded UPDATE lets one through) revokes its grant and every token
        issued under it, as RFC 6749 section 4.1.2 asks. A code issued to another client
        is refused without being used up, so that a client cannot spoil another's code.
        """
        table = auth_authorization_code
        row = self.session.execute(
            select(table, auth_grant.c.scope)
            .join(auth_grant, auth_grant.c.id == table.c.grant_id)
            .where(table.c.code_hash == _digest(code), auth_grant.c.client_id == client_id)
        ).one_or_none()
        if row is None:
            return None
        now = _now()
        if not self._use_once(table.c.code_hash, row.code_hash, row.grant_id, now):
            return None
        if row.expires_at <= now:
            return None
        return IssuedCode(
            grant_id=row.grant_id,
            scope=row.scope,
            redirect_uri=row.redirect_uri,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
            nonce=row.nonce,
        )

    # Refresh tokens

    def save_refresh_token(self, token: str, *, grant_id: str, expires_at: datetime) -> None:
        self.session.execute(
            insert(auth_refresh_token).values(
                token_hash=_digest(token), grant_id=grant_id, expires_at=expires_at, used_at=None
            )
        )

    def claim_refresh_token(self, token: str, client_id: str) -> str | None:
        """The grant of a fresh, unused refresh token of `client_id`, now used up.

        Refresh tokens rotate: each is exchanged once for a new one. One presented again
        was copied, by the client's attacker or by the client itself after a theft, and
        which one cannot be told, so the whole grant is revoked (OAuth 2.0 Security BCP,
        https://datatracker.ietf.org/doc/html/rfc9700#section-4.14.2).
        """
        table = auth_refresh_token
        row = self.session.execute(
            select(table)
            .join(auth_grant, auth_grant.c.id == table.c.grant_id)
            .where(table.c.token_hash == _digest(token), auth_grant.c.client_id == client_id)
        ).one_or_none()
        if row is None:
            return None
        now = _now()
        if not self._use_once(table.c.token_hash, row.token_hash, row.grant_id, now):
            return None
        return row.grant_id if row.expires_at > now else None

    def _use_once(self, key: Any, value: str, grant_id: str, now: datetime) -> bool:
        """Mark the row whose `key` column is `value` used; if it was used already (or
        another exchange got there first: the guarded UPDATE lets one through), revoke
        its grant and say no."""
        claimed = self.session.execute(
            update(key.table).where(key == value, key.table.c.used_at.is_(None)).values(used_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            GrantStore(self.session).revoke(grant_id)
            return False
        return True

    def refresh_token_owner(self, token: str) -> tuple[str, str] | None:
        """(grant id, client id) of a refresh token, used or not: for revocation."""
        row = self.session.execute(
            select(auth_refresh_token.c.grant_id, auth_grant.c.client_id)
            .join(auth_grant, auth_grant.c.id == auth_refresh_token.c.grant_id)
            .where(auth_refresh_token.c.token_hash == _digest(token))
        ).one_or_none()
        return (row.grant_id, row.client_id) if row else None

    # Client assertions (SMART Backend Services)

    def record_assertion(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Remember an accepted assertion's `jti` until it expires; False if seen before.

        The primary key (client_id, jti) decides, so that two processes cannot both
        accept one assertion: the second INSERT waits for the first transaction and
        fails. https://datatracker.ietf.org/doc/html/rfc7523#section-3 (item 7).
        """
        table = auth_client_assertion
        self.session.execute(
            delete(table).where(table.c.client_id == client_id, table.c.expires_at <= _now())
        )
        try:
            with self.session.begin_nested():
                self.session.execute(
                    insert(table).values(client_id=client_id, jti=jti, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True

    def _purge_expired(self, now: datetime) -> None:
        """Forget what can no longer be used. Grants stay: they are the record of who
        authorized which app, and refresh tokens end with their grant."""
        for table in (
            auth_authorization_request,
            auth_authorization_code,
            auth_refresh_token,
            auth_client_assertion,
        ):
            self.session.execute(delete(table).where(table.c.expires_at <= now))
