"""The standalone launch's decisions: what a person who logged in may grant an app.

https://hl7.org/fhir/smart-app-launch/app-launch.html. Plain functions over plain data:
who the person is (a clinician, or a citizen with or without a record here) and the
scopes the app asked for (already cut to its registration) give the scopes granted,
or a refusal that goes back to the app as `access_denied`.

- A citizen gets `patient/` scopes for their own record only; asking for `user/`
  scopes is refused, and a citizen without a Patient here cannot launch at all.
- A clinician gets `user/` scopes. `patient/` scopes and `launch/patient` would need a
  patient picker, which this server does not have: they are dropped, and a request left
  with no clinical scope at all is refused.
- EHR launch (`launch`, `launch/encounter`) is not offered: those scopes are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from health.access.actor import ActorKind
from health.auth.scopes import Context, Permission, Scopes, parse_clinical

# Scopes that only an EHR launch could satisfy: this server runs no EHR session.
_EHR_LAUNCH_SCOPES = frozenset({"launch", "launch/encounter"})
# Scopes that give refresh tokens.
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})


class LaunchRefused(Exception):
    """The person cannot grant this request; the message (ASCII, no quotes) says why."""


@dataclass(frozen=True)
class Person:
    """Who logged in, as this server knows them."""

    kind: ActorKind  # clinician or citizen
    # Practitioner/<id> for a clinician, Patient/<id> for a citizen with a record.
    fhir_user: str | None
    # The citizen's own Patient id; None for a clinician or a citizen without a record.
    patient_id: str | None


@dataclass(frozen=True)
class Launch:
    """A person identified at the eID, and the scopes they may grant the app."""

    national_id: str
    kind: ActorKind
    fhir_user: str | None
    patient_id: str | None
    scope: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Launch:
        return cls(**{**value, "kind": ActorKind(value["kind"])})


def granted_scopes(requested: Scopes, person: Person) -> Scopes:
    """The scopes `person` may grant of `requested`; LaunchRefused when none fit."""
    kept = [scope for scope in requested.granted if scope not in _EHR_LAUNCH_SCOPES]
    contexts = requested.contexts
    if person.kind is ActorKind.citizen:
        if Context.user in contexts:
            raise LaunchRefused(
                "This app asks for user/ scopes, which only clinicians can grant, and you "
                "are not registered here as a clinician"
            )
        if person.patient_id is None:
            raise LaunchRefused("There is no health record for you on this server yet")
        return Scopes.parse(" ".join(kept))
    kept = [
        scope
        for scope in kept
        if scope != "launch/patient"
        and ((clinical := parse_clinical(scope)) is None or clinical.context is Context.user)
    ]
    result = Scopes.parse(" ".join(kept))
    if requested.clinical and not result.clinical:
        raise LaunchRefused(
            "This app asks only for patient/ scopes, which a clinician could grant only "
            "through a patient picker, and this server has none: ask for user/ scopes"
        )
    return result


_VERBS = {
    Permission.create: "create",
    Permission.read: "read",
    Permission.update: "change",
    Permission.delete: "delete",
    Permission.search: "search",
}


def describe(scopes: Scopes, person: Person, *, offline_days: int, online_hours: int) -> list[str]:
    """What the approval page lists: one plain sentence per scope granted."""
    whose = "your record" if person.kind is ActorKind.citizen else "the records you may see"
    lines = []
    for scope in scopes.granted:
        clinical = parse_clinical(scope)
        if clinical is not None:
            verbs = [_VERBS[p] for p in Permission if p in clinical.permissions]
            what = (
                "all data"
                if clinical.resource_type == "*"
                else f"{clinical.resource_type} resources"
            )
            lines.append(f"{_join(verbs).capitalize()} {what} in {whose}")
        elif scope in ("openid", "fhirUser", "profile"):
            line = f"Know who you are ({person.fhir_user})"
            if line not in lines:
                lines.append(line)
        elif scope == "launch/patient":
            lines.append("Know which patient record it works with (your own)")
        elif scope == "offline_access":
            lines.append(
                f"Keep this access after you close the app, for up to {offline_days} days "
                "or until you withdraw it"
            )
        elif scope == "online_access":
            lines.append(f"Keep this access while you use the app, for up to {online_hours} hours")
    return lines


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def grant_lifetime(
    scopes: Scopes, *, single_token: timedelta, online: timedelta, offline: timedelta
) -> timedelta:
    """How long a launch's grant stays in force.

    With `offline_access`, as long as refresh tokens may go on (HEALTH_REFRESH_GRANT_DAYS);
    with `online_access`, one working session (the portal's absolute session limit);
    otherwise just long enough for the code exchange and the one access token it gives.
    """
    if "offline_access" in scopes:
        return offline
    if "online_access" in scopes:
        return online
    return single_token
