"""The development eID's state in the database: logins in progress, codes, access tokens.

Kept in tables of its own (health.db.tables, eid_*), apart from patient data, so that
any number of app processes share it. Codes and tokens are stored as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from health.db.tables import eid_access_token, eid_authorization_code, eid_login_request

LOGIN_LIFETIME = timedelta(minutes=15)
# https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2: "a maximum authorization
# code lifetime of 10 minutes is RECOMMENDED"; one minute is plenty for a redirect.
CODE_LIFETIME = timedelta(seconds=60)
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)


def now_utc() -> datetime:
    return datetime.now(UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Authentication:
    """Who logged in at the eID, at which level of assurance, and when."""

    national_id: str
    name: str
    birth_date: str | None  # ISO date
    acr: str
    auth_time: datetime


@dataclass(frozen=True)
class LoginRequest:
    id: str
    csrf_token: str
    browser_id: str
    parameters: dict[str, str]


@dataclass(frozen=True)
class IssuedCode:
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    authentication: Authentication


@dataclass(frozen=True)
class IssuedToken:
    client_id: str
    scope: str
    authentication: Authentication


class EidStore:
    """Reads and writes the eid_* tables in the caller's session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def begin_login(self, parameters: dict[str, str], browser_id: str) -> LoginRequest:
        """Remember a validated authorization request while the login form is shown."""
        now = now_utc()
        self._purge_expired(now)
        login = LoginRequest(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            browser_id=browser_id,
            parameters=parameters,
        )
        self.session.execute(
            insert(eid_login_request).values(
                id=login.id,
                csrf_token=login.csrf_token,
                browser_id=browser_id,
                parameters=orjson.dumps(parameters).decode(),
                expires_at=now + LOGIN_LIFETIME,
            )
        )
        return login

    def login_request(self, login_id: str) -> LoginRequest | None:
        row = self.session.execute(
            select(eid_login_request).where(
                eid_login_request.c.id == login_id, eid_login_request.c.expires_at > now_utc()
            )
        ).one_or_none()
        if row is None:
            return None
        return LoginRequest(row.id, row.csrf_token, row.browser_id, orjson.loads(row.parameters))

    def finish_login(self, login_id: str) -> bool:
        """Forget a login request; False when another submission finished it first."""
        result = self.session.execute(
            delete(eid_login_request).where(eid_login_request.c.id == login_id)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    def save_code(self, code: str, issued: IssuedCode) -> None:
        self.session.execute(
            insert(eid_authorization_code).values(
                code_hash=_digest(code),
                redirect_uri=issued.redirect_uri,
                nonce=issued.nonce,
                code_challenge=issued.code_challenge,
                code_challenge_method=issued.code_challenge_method,
                **_person_values(issued.client_id, issued.scope, issued.authentication),
                expires_at=now_utc() + CODE_LIFETIME,
            )
        )

    def claim_code(self, code: str, client_id: str) -> IssuedCode | None:
        """The code's grant, deleted in the same step: a code is good for one exchange.

        The delete's row count decides between two concurrent exchanges of one code.
        """
        table = eid_authorization_code
        match = (table.c.code_hash == _digest(code), table.c.client_id == client_id)
        row = self.session.execute(select(table).where(*match)).one_or_none()
        if row is None:
            return None
        claimed = self.session.execute(delete(table).where(*match)).rowcount  # type: ignore[attr-defined]
        if claimed != 1 or row.expires_at <= now_utc():
            return None
        return IssuedCode(
            client_id=row.client_id,
            redirect_uri=row.redirect_uri,
            scope=row.scope,
            nonce=row.nonce,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
            authentication=_authentication(row),
        )

    def save_token(self, access_token: str, issued: IssuedToken, expires_in: int) -> None:
        self.session.execute(
            insert(eid_access_token).values(
                token_hash=_digest(access_token),
                **_person_values(issued.client_id, issued.scope, issued.authentication),
                expires_at=now_utc() + timedelta(seconds=expires_in),
            )
        )

    def access_token(self, access_token: str) -> IssuedToken | None:
        """The grant behind a bearer token, if it is known and not expired."""
        row = self.session.execute(
            select(eid_access_token).where(
                eid_access_token.c.token_hash == _digest(access_token),
                eid_access_token.c.expires_at > now_utc(),
            )
        ).one_or_none()
        if row is None:
            return None
        return IssuedToken(row.client_id, row.scope, _authentication(row))

    def revoke_tokens(self, client_id: str, national_id: str) -> None:
        """End a login session at one relying party: its access tokens stop working."""
        self.session.execute(
            delete(eid_access_token).where(
                eid_access_token.c.client_id == client_id,
                eid_access_token.c.national_id == national_id,
            )
        )

    def _purge_expired(self, now: datetime) -> None:
        for table in (eid_login_request, eid_authorization_code, eid_access_token):
            self.session.execute(delete(table).where(table.c.expires_at <= now))


def _person_values(client_id: str, scope: str, authentication: Authentication) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "scope": scope,
        "national_id": authentication.national_id,
        "name": authentication.name,
        "birth_date": authentication.birth_date,
        "acr": authentication.acr,
        "auth_time": authentication.auth_time,
    }


def _authentication(row: Any) -> Authentication:
    return Authentication(
        national_id=row.national_id,
        name=row.name,
        birth_date=row.birth_date,
        acr=row.acr,
        auth_time=row.auth_time,
    )
