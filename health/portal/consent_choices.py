"""The citizen's choices about who may look, as FHIR Consent resources, and back.

https://hl7.org/fhir/R4/consent.html. Each choice in the portal is one Consent in the
citizen's record: a block of a clinician or an organisation, a permit of an
organisation (the opt-in policy), or an episode hidden from every other organisation.
health/access/consent.py compiles them to the rules when they are stored; this module
only writes them in the shape it understands and reads the portal's own back. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from health.portal.datatypes import JsonDict, reference_display, reference_key

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LOINC = "http://loinc.org"
# LOINC 59284-0: "Patient Consent".
CONSENT_CATEGORY = "59284-0"
PARTY_TYPES = ("Practitioner", "Organization")
EPISODE_TYPES = ("Encounter", "EpisodeOfCare")

ChoiceKind = Literal["block", "permit", "hide", "other"]


@dataclass(frozen=True)
class Choice:
    """One of the citizen's active privacy Consents, as the "who may look" page lists it."""

    consent_id: str
    kind: ChoiceKind
    # `Practitioner/x` or `Organization/x` (block, permit), `Encounter/x` (hide).
    reference: str
    display: str
    since: datetime | None


def block(patient_id: str, party: str, display: str, now: datetime) -> JsonDict:
    """A Consent denying a clinician or an organisation access to the whole record."""
    return _consent(patient_id, now, "OPTOUT", {"type": "deny", "actor": [_actor(party, display)]})


def permit(patient_id: str, organisation: str, display: str, now: datetime) -> JsonDict:
    """A Consent permitting an organisation (what counts under the opt-in policy)."""
    return _consent(
        patient_id, now, "OPTIN", {"type": "permit", "actor": [_actor(organisation, display)]}
    )


def hide(patient_id: str, episode: str, now: datetime) -> JsonDict:
    """A Consent hiding an Encounter or EpisodeOfCare, and what refers to it, from every
    organisation but the one that recorded it."""
    return _consent(
        patient_id,
        now,
        "OPTOUT",
        {"type": "deny", "data": [{"meaning": "related", "reference": {"reference": episode}}]},
    )


def is_party(reference: str) -> bool:
    kind, _, resource_id = reference.partition("/")
    return kind in PARTY_TYPES and bool(resource_id) and "/" not in resource_id


def is_episode(reference: str) -> bool:
    kind, _, resource_id = reference.partition("/")
    return kind in EPISODE_TYPES and bool(resource_id) and "/" not in resource_id


def choices(consents: list[JsonDict]) -> list[Choice]:
    """The active privacy Consents, each read as the portal's kind of choice when it is
    one (a Consent written another way, by the citizen's own app, is listed as other)."""
    found = []
    for consent in consents:
        if consent.get("status") != "active":
            continue
        found.append(choice_of(consent))
    return sorted(found, key=lambda c: (c.kind, c.display.lower(), c.consent_id))


def choice_of(consent: JsonDict) -> Choice:
    consent_id = str(consent.get("id"))
    since = _time(consent.get("dateTime"))
    provision = consent.get("provision") or {}
    actors = provision.get("actor") or []
    data = provision.get("data") or []
    simple = not provision.get("provision") and not provision.get("class")
    if simple and len(actors) == 1 and not data and isinstance(actors[0], dict):
        reference = reference_key(actors[0].get("reference")) or ""
        display = reference_display(actors[0].get("reference"))
        if is_party(reference) and provision.get("type") in ("deny", "permit"):
            kind: ChoiceKind = "block" if provision["type"] == "deny" else "permit"
            return Choice(consent_id, kind, reference, display, since)
    if simple and not actors and len(data) == 1 and provision.get("type") == "deny":
        reference = reference_key((data[0] or {}).get("reference")) or ""
        if is_episode(reference):
            return Choice(consent_id, "hide", reference, "", since)
    return Choice(consent_id, "other", "", "", since)


def _consent(patient_id: str, now: datetime, policy: str, provision: JsonDict) -> JsonDict:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": CONSENT_CATEGORY}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": now.isoformat(timespec="seconds"),
        "policyRule": {"coding": [{"system": ACT_CODE_SYSTEM, "code": policy}]},
        "provision": provision,
    }


def _actor(party: str, display: str) -> JsonDict:
    # R4 requires provision.actor.role: IRCP, "information recipient".
    reference: dict[str, Any] = {"reference": party}
    if display:
        reference["display"] = display
    return {
        "role": {"coding": [{"system": PARTICIPATION_SYSTEM, "code": "IRCP"}]},
        "reference": reference,
    }


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
