"""The medication card: what the citizen takes now and took before, with dose and prescriber.

Prescriptions (MedicationRequest) and what the citizen was recorded as taking
(MedicationStatement, e.g. on admission to hospital) of the same medicine are one
line, naming every source; the prescription's details come first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from health.portal.datatypes import (
    JsonDict,
    codes,
    concept_text,
    first_concept_text,
    parse_time,
    period,
    reference_display,
)
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts

_ENDED = frozenset({"completed", "stopped", "cancelled", "entered-in-error", "revoked"})


@dataclass(frozen=True)
class MedicationLine:
    name: str
    dose: str
    reason: str
    prescriber: str
    # The citizen told it (MedicationStatement with the patient as information source).
    self_reported: bool
    start: datetime | None
    end: datetime | None
    current: bool
    entry: Reported


@dataclass(frozen=True)
class MedicationCard:
    current: list[MedicationLine]
    earlier: list[MedicationLine]


def medication_card(record: Record, now: datetime | None = None) -> MedicationCard:
    """Current medicines (by name) and earlier ones (most recently ended first)."""
    now = now or datetime.now(UTC)
    groups: dict[object, list[JsonDict]] = defaultdict(list)
    for resource in record.of_type("MedicationRequest", "MedicationStatement"):
        concept = resource.get("medicationCodeableConcept")
        medicine_key: object = frozenset(codes(concept)) or concept_text(concept)
        groups[medicine_key or resource.get("id")].append(resource)
    lines = [_line(resources, _is_current(resources, now), record) for resources in groups.values()]
    current_lines = sorted((ln for ln in lines if ln.current), key=lambda ln: ln.name.casefold())
    earlier = sorted(
        (ln for ln in lines if not ln.current),
        key=lambda ln: ln.end or ln.start or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    return MedicationCard(current=current_lines, earlier=earlier)


def _line(resources: list[JsonDict], current: bool, record: Record) -> MedicationLine:
    # Prescriptions before statements, newest first: the line shows the one that
    # decides the dose today.
    ordered = sorted(
        resources,
        key=lambda r: (
            r.get("resourceType") != "MedicationRequest",
            -(_span(r)[0] or datetime.min.replace(tzinfo=UTC)).timestamp(),
        ),
    )
    main = ordered[0]
    starts = [s for s in (_span(r)[0] for r in resources) if s is not None]
    ends = [e for e in (_span(r)[1] for r in resources) if e is not None]
    # One entry naming every source; the statements and requests are not the same
    # fact in the ingest sense (no fact tag), so they are joined here by medicine.
    merged = merge_facts(ordered, record)
    entry = Reported(
        resource=main,
        reports=tuple(report for item in merged for report in item.reports),
    )
    is_request = main.get("resourceType") == "MedicationRequest"
    dosage = main.get("dosageInstruction" if is_request else "dosage") or []
    information_source = main.get("informationSource") or {}
    told_by_citizen = str(information_source.get("reference", "")).startswith("Patient/")
    return MedicationLine(
        name=concept_text(main.get("medicationCodeableConcept"))
        or reference_display(main.get("medicationReference")),
        dose=str(dosage[0].get("text", "")) if dosage and isinstance(dosage[0], dict) else "",
        reason=first_concept_text(main.get("reasonCode")),
        prescriber=reference_display(main.get("requester"))
        or ("" if told_by_citizen else reference_display(information_source)),
        self_reported=not is_request and told_by_citizen,
        start=min(starts) if starts else None,
        end=None if current else (max(ends) if ends else None),
        current=current,
        entry=entry,
    )


def _span(resource: JsonDict) -> tuple[datetime | None, datetime | None]:
    if resource.get("resourceType") == "MedicationRequest":
        start, end = period((resource.get("dispenseRequest") or {}).get("validityPeriod"))
        return start or parse_time(resource.get("authoredOn")), end
    start, end = period(resource.get("effectivePeriod"))
    return start or parse_time(resource.get("effectiveDateTime")), end


def _is_current(resources: list[JsonDict], now: datetime) -> bool:
    """Taken now: a prescription in force, or without prescriptions, a statement saying so.

    A statement (what the citizen took on admission) does not keep a medicine current
    once every prescription of it has ended.
    """
    requests = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    return any(_in_force(r, now) for r in requests or resources)


def _in_force(resource: JsonDict, now: datetime) -> bool:
    if resource.get("status") in _ENDED:
        return False
    end = _span(resource)[1]
    return end is None or end > now
