"""Registered clients of the authorization server, kept in the database.

Two kinds: backend clients (SMART Backend Services: a hospital or GP system, bound to
one Organization, authenticating with a private key whose public half, a JWKS, is
registered) and apps (SMART App Launch: public with PKCE, or confidential with a
secret). Secrets are stored as SHA-256 hashes and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from health.db.tables import auth_client, auth_grant


class ClientKind(StrEnum):
    backend = "backend"
    app = "app"


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    kind: ClientKind
    name: str
    scope: str
    organization_id: str | None
    organization_identifier: str | None
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    confidential: bool
    demo: bool
    created_at: datetime
    # An auditor's client: its tokens read the access log, never patient data.
    auditor: bool = False

    def as_json(self) -> dict[str, Any]:
        """What `health clients list` shows: everything but keys and secret hashes."""
        return {
            "client_id": self.client_id,
            "kind": self.kind.value,
            "name": self.name,
            "scope": self.scope,
            "organization_id": self.organization_id,
            "organization_identifier": self.organization_identifier,
            "redirect_uris": list(self.redirect_uris),
            "confidential": self.confidential,
            "demo": self.demo,
            "auditor": self.auditor,
            "created_at": self.created_at.isoformat(),
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_client_id() -> str:
    # Hex, not base64url: an id that starts with "-" reads as an option on a command line
    # (`health clients remove -x...`).
    return secrets.token_hex(16)


class ClientStore:
    """Registered clients, in the session's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def register_backend(
        self,
        *,
        name: str,
        scope: str,
        jwks: dict[str, Any],
        organization_id: str,
        organization_identifier: str,
        client_id: str | None = None,
        demo: bool = False,
        auditor: bool = False,
    ) -> RegisteredClient:
        client_id = client_id or new_client_id()
        self._session.execute(
            insert(auth_client).values(
                client_id=client_id,
                kind=ClientKind.backend.value,
                name=name,
                scope=scope,
                organization_id=organization_id,
                organization_identifier=organization_identifier,
                jwks=orjson.dumps(jwks).decode(),
                redirect_uris=None,
                secret_hash=None,
                demo=demo,
                auditor=auditor,
                created_at=datetime.now(UTC),
            )
        )
        registered = self.get(client_id)
        assert registered is not None
        return registered

    def register_app(
        self,
        *,
        name: str,
        scope: str,
        redirect_uris: list[str],
        confidential: bool,
        client_id: str | None = None,
        demo: bool = False,
    ) -> tuple[RegisteredClient, str | None]:
        """The new app, and its secret when confidential (shown once, stored hashed)."""
        client_id = client_id or new_client_id()
        secret = secrets.token_urlsafe(32) if confidential else None
        self._session.execute(
            insert(auth_client).values(
                client_id=client_id,
                kind=ClientKind.app.value,
                name=name,
                scope=scope,
                organization_id=None,
                organization_identifier=None,
                jwks=None,
                redirect_uris=orjson.dumps(redirect_uris).decode(),
                secret_hash=_digest(secret) if secret else None,
                demo=demo,
                created_at=datetime.now(UTC),
            )
        )
        registered = self.get(client_id)
        assert registered is not None
        return registered, secret

    def get(self, client_id: str) -> RegisteredClient | None:
        row = self._session.execute(
            select(auth_client).where(auth_client.c.client_id == client_id)
        ).first()
        return _client(row._mapping) if row else None

    def list(self) -> list[RegisteredClient]:
        rows = self._session.execute(select(auth_client).order_by(auth_client.c.created_at))
        return [_client(row._mapping) for row in rows]

    def remove(self, client_id: str) -> bool:
        """Unregister a client and end every grant it holds; False if there was none."""
        self._session.execute(delete(auth_grant).where(auth_grant.c.client_id == client_id))
        removed = self._session.execute(
            delete(auth_client).where(auth_client.c.client_id == client_id)
        )
        return bool(removed.rowcount)

    def secret_matches(self, client_id: str, secret: str) -> bool:
        stored = self._session.execute(
            select(auth_client.c.secret_hash).where(auth_client.c.client_id == client_id)
        ).scalar_one_or_none()
        return stored is not None and hmac.compare_digest(stored, _digest(secret))

    def any_demo(self) -> bool:
        """Whether a demo client (its private key ships in the repository) is registered."""
        return (
            self._session.execute(
                select(auth_client.c.client_id).where(auth_client.c.demo.is_(True)).limit(1)
            ).first()
            is not None
        )


def _client(row: Any) -> RegisteredClient:
    return RegisteredClient(
        client_id=row["client_id"],
        kind=ClientKind(row["kind"]),
        name=row["name"],
        scope=row["scope"],
        organization_id=row["organization_id"],
        organization_identifier=row["organization_identifier"],
        jwks=orjson.loads(row["jwks"]) if row["jwks"] else None,
        redirect_uris=tuple(orjson.loads(row["redirect_uris"])) if row["redirect_uris"] else (),
        confidential=row["secret_hash"] is not None,
        demo=bool(row["demo"]),
        created_at=row["created_at"],
        auditor=bool(row["auditor"]),
    )
