"""Grants: one user's authorization of one app, or one backend client's token issuance.

Every access token names its grant; /fhir accepts a token only while its grant is
active (not revoked, not expired, its client still registered), so revoking a grant
or removing a client ends every token issued under it at once.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from health.db.engine import PREPARED
from health.db.tables import auth_client, auth_grant


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    scope: str
    actor_kind: str
    national_id: str | None
    fhir_user: str | None
    patient_id: str | None
    expires_at: datetime


_GRANT_FIELDS = tuple(f.name for f in fields(Grant))

# The grant of a token if it is still in force (`:grant_id`, `:client_id`, `:now`).
# Built once: it is run for every /fhir request, and building it and its cache key
# anew cost about as much as running it (docs/BENCHMARKS.md, "The fixed cost of a
# search"), and prepared on PostgreSQL (a lookup by key, whatever the values).
_ACTIVE = (
    select(*(auth_grant.c[name] for name in _GRANT_FIELDS))
    .prefix_with(PREPARED)
    .join(auth_client, auth_client.c.client_id == auth_grant.c.client_id)
    .where(
        auth_grant.c.id == bindparam("grant_id"),
        auth_grant.c.client_id == bindparam("client_id"),
        auth_grant.c.revoked_at.is_(None),
        auth_grant.c.expires_at > bindparam("now", type_=auth_grant.c.expires_at.type),
    )
)


class GrantStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(
        self,
        *,
        client_id: str,
        scope: str,
        actor_kind: str,
        lifetime: timedelta,
        national_id: str | None = None,
        fhir_user: str | None = None,
        patient_id: str | None = None,
    ) -> Grant:
        now = datetime.now(UTC)
        grant = Grant(
            id=secrets.token_urlsafe(18),
            client_id=client_id,
            scope=scope,
            actor_kind=actor_kind,
            national_id=national_id,
            fhir_user=fhir_user,
            patient_id=patient_id,
            expires_at=now + lifetime,
        )
        self._session.execute(
            insert(auth_grant).values(**asdict(grant), created_at=now, revoked_at=None)
        )
        return grant

    def active(self, grant_id: str, client_id: str) -> Grant | None:
        """The grant if it is still in force for that client (and the client registered)."""
        row = self._session.execute(
            _ACTIVE, {"grant_id": grant_id, "client_id": client_id, "now": datetime.now(UTC)}
        ).first()
        return None if row is None else Grant(*row)

    def revoke(self, grant_id: str) -> None:
        self._session.execute(
            update(auth_grant)
            .where(auth_grant.c.id == grant_id, auth_grant.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
