"""A citizen's Consent resources, compiled to the rows the access rules read.

https://hl7.org/fhir/R4/consent.html. What counts: an active Consent about the
citizen's own record (scope patient-privacy, or no scope given), written by the
citizen (or a proxy for them) or by the system. Every provision, nested ones too,
that names an effect becomes rules, one per combination of

- party (provision.actor: a Practitioner or an Organization; none: everyone),
- resource class (provision.class, codes of http://hl7.org/fhir/resource-types;
  none: every type),
- security label (provision.securityLabel; none: every resource),
- target (provision.data: an Encounter or EpisodeOfCare, which hides that episode
  and everything that refers to it from every organisation but its recorder),

valid in the provision's period (or its parent's). The root provision of type
`permit` with nothing else named is the base policy itself and adds no rule. A deny
always wins over a permit; permits only matter under the opt-in policy, where they
are the organisations the citizen allows to see their record.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from health.fhir.search.dates import date_range

RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTY_TYPES = ("Practitioner", "Organization")
EPISODE_TYPES = ("Encounter", "EpisodeOfCare")


@dataclass(frozen=True)
class ConsentRule:
    effect: str
    party: str | None = None
    resource_class: str | None = None
    label_system: str | None = None
    label_code: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def is_privacy_consent(consent: dict[str, Any]) -> bool:
    """Whether a Consent is about who may see the record (not research, not treatment)."""
    codings = (consent.get("scope") or {}).get("coding") or []
    if not codings:
        return True
    return any(
        c.get("code") == "patient-privacy" and c.get("system") in (None, CONSENT_SCOPE_SYSTEM)
        for c in codings
    )


def compile_consent(consent: dict[str, Any]) -> list[ConsentRule]:
    """The rules an active privacy Consent makes; none when it is not in force."""
    if consent.get("status") != "active" or not is_privacy_consent(consent):
        return []
    provision = consent.get("provision")
    if not isinstance(provision, dict):
        return []
    rules: list[ConsentRule] = []
    _walk(provision, None, None, root=True, rules=rules)
    return rules


def _walk(
    provision: dict[str, Any],
    since: datetime | None,
    until: datetime | None,
    *,
    root: bool,
    rules: list[ConsentRule],
) -> None:
    period = provision.get("period") or {}
    if period.get("start"):
        since = _bound(period["start"], low=True) or since
    if period.get("end"):
        until = _bound(period["end"], low=False) or until
    effect = provision.get("type")
    parties = _references(provision.get("actor") or [], PARTY_TYPES, nested="reference")
    classes = [
        c.get("code")
        for c in provision.get("class") or []
        if c.get("system") in (None, RESOURCE_TYPES_SYSTEM) and c.get("code")
    ]
    labels = [
        (label.get("system"), label.get("code"))
        for label in provision.get("securityLabel") or []
        if label.get("code")
    ]
    targets = _references(provision.get("data") or [], EPISODE_TYPES, nested="reference")
    names_something = bool(parties or classes or labels or targets)
    if effect in ("deny", "permit") and (names_something or not root or effect == "deny"):
        for party, resource_class, label, target in itertools.product(
            parties or [None], classes or [None], labels or [None], targets or [None]
        ):
            rules.append(
                ConsentRule(
                    effect=effect,
                    party=party,
                    resource_class=resource_class,
                    label_system=label[0] if label else None,
                    label_code=label[1] if label else None,
                    target_type=target.split("/", 1)[0] if target else None,
                    target_id=target.split("/", 1)[1] if target else None,
                    since=since,
                    until=until,
                )
            )
    for nested in provision.get("provision") or []:
        if isinstance(nested, dict):
            _walk(nested, since, until, root=False, rules=rules)


def _references(items: list[Any], types: tuple[str, ...], *, nested: str) -> list[str]:
    """`Type/id` of the local references among `items` (actor or data elements)."""
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        reference = (item.get(nested) or {}).get("reference")
        if not isinstance(reference, str):
            continue
        parts = reference.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] in types:
            found.append(f"{parts[-2]}/{parts[-1]}")
    return found


def _bound(value: str, *, low: bool) -> datetime | None:
    found = date_range(value) if isinstance(value, str) else None
    if found is None:
        return None
    return found[0] if low else found[1]
