"""Acting for someone else in the portal: a parent for a child, a holder of a power of
attorney for the citizen who granted it (health/access/proxy.py decides who may).

The choice of whose record to show lives in a cookie of its own, signed under the
session secret together with the portal session's cookie, so it is worth nothing in
another session and cannot be forged. It is only a choice: on every request the right
is looked up again (it may have been revoked, or the child may have turned 15), and
without a right the portal shows the person's own record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.access.proxy import ProxyRight
from health.auth.identity import proxy_rights
from health.db.repository import Repository
from health.fhir.criteria import Criterion
from health.portal.datatypes import display_name
from health.portal.sessions import PortalSession
from health.settings import Settings

ACTING_COOKIE = "health_portal_acting"


@dataclass(frozen=True)
class Principal:
    """A citizen the logged-in person may act for, and on what basis."""

    patient_id: str
    name: str
    right: ProxyRight


def proxy_actor(citizen: PortalSession, right: ProxyRight) -> Actor:
    """The logged-in person acting for `right.patient_id`, as the repository knows them."""
    return Actor(
        kind=ActorKind.citizen,
        display=citizen.name or "proxy",
        patient_id=right.patient_id,
        national_id=citizen.national_id,
        proxy=right,
    )


def principals_of(
    session: Session, citizen: PortalSession, settings: Settings, now: datetime
) -> list[Principal]:
    """Everyone the logged-in person may act for now, with their names."""
    principals = []
    for right in proxy_rights(
        session,
        citizen.national_id,
        settings.national_id_systems,
        child_age=settings.proxy_child_age,
        now=now,
    ):
        # The name for the "act for" choice, read as the proxy (whom the right lets see
        # it). A lookup, not a disclosure of the record: the switch and everything read
        # after it are logged.
        found = Repository(session, proxy_actor(citizen, right)).find(
            "Patient", [Criterion("_id", (right.patient_id,))], limit=1
        )
        patient = orjson.loads(found[0].body) if found and found[0].body else {}
        principals.append(Principal(right.patient_id, display_name(patient) or "", right))
    return principals


def acting_cookie(secret: str, session_cookie: str, patient_id: str) -> str:
    """The cookie value that chooses `patient_id`'s record in this portal session."""
    return f"{patient_id}.{_signature(secret, session_cookie, patient_id)}"


def chosen_patient_id(secret: str, session_cookie: str, cookie: str | None) -> str | None:
    """The patient id the acting cookie chose in this session, if it is genuine."""
    patient_id, _, signature = (cookie or "").rpartition(".")
    if not patient_id or not hmac.compare_digest(
        signature.encode(), _signature(secret, session_cookie, patient_id).encode()
    ):
        return None
    return patient_id


def _signature(secret: str, session_cookie: str, patient_id: str) -> str:
    message = f"portal-acting\n{session_cookie}\n{patient_id}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
