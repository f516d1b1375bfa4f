"""The record over time: contacts with what happened at each, grouped into life events.

A contact is an Encounter. What happened there (diagnoses, procedures, results,
medicines started or stopped, vaccinations, documents, referrals) is attached by the
resource's link to its Encounter; a resource without one goes to a contact of the same
organisation on the same day, or else stands as a contact of its own ("recorded by").
Facts reported by two sources appear once (sources.merge_facts). Contacts are grouped
into life events by life_events.py. Filters: by source, by kind, by life event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from health.portal.datatypes import (
    JsonDict,
    concept_text,
    first_concept_text,
    first_time,
    parse_time,
    period,
    quantity_unit,
    quantity_value,
    reference_display,
    reference_key,
)
from health.portal.life_events import LifeEvent, Rule, group_life_events
from health.portal.record import Record
from health.portal.results import measurement
from health.portal.sources import Reported, Source, merge_facts, record_sources

# The kinds a reader can filter by, in the order the filter offers them.
KINDS = (
    "diagnoses",
    "procedures",
    "results",
    "medications",
    "vaccinations",
    "documents",
    "referrals",
)
PER_PAGE = 40


@dataclass(frozen=True)
class Happening:
    """One thing that happened at a contact."""

    # One of KINDS.
    kind: str
    # What exactly: e.g. "started", "stopped" for medicines; "" otherwise.
    action: str
    title: str
    detail: str
    abnormal: bool
    when: datetime | None
    entry: Reported
    # The test code (results) or document id (documents) the page links to.
    link: str = ""


@dataclass
class Contact:
    key: str
    title: str
    reason: str
    place: str
    clinician: str
    start: datetime | None
    end: datetime | None
    # None for the things a source recorded on a day without a contact.
    entry: Reported | None
    source: Source | None = None
    happenings: list[Happening] = field(default_factory=list)
    life_event: LifeEvent | None = None

    @property
    def source_keys(self) -> frozenset[str]:
        keys = set(self.entry.source_keys) if self.entry else set()
        if self.source is not None:
            keys.add(self.source.key)
        for happening in self.happenings:
            keys |= happening.entry.source_keys
        return frozenset(keys)


@dataclass(frozen=True)
class Timeline:
    contacts: list[Contact]
    life_events: list[LifeEvent]
    sources: list[Source]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class ShapedTimeline:
    """The whole timeline, before filters and pages: what a page is cut from (and what
    health/portal/view_cache.py keeps). Never changed once shaped."""

    # Newest first, each with the life event it belongs to.
    contacts: list[Contact]
    life_events: list[LifeEvent]
    sources: list[Source]


def shape_timeline(
    record: Record, *, rules: Iterable[Rule] | None = None, now: datetime | None = None
) -> ShapedTimeline:
    """Every contact with what happened there and its life event, newest first."""
    contacts = all_contacts(record)
    events = group_life_events(record, None if rules is None else tuple(rules), now)
    by_encounter = {encounter_id: e for e in events for encounter_id in e.encounter_ids}
    for contact in contacts:
        contact.life_event = by_encounter.get(contact.key)
    return ShapedTimeline(contacts=contacts, life_events=events, sources=record_sources(record))


def page_of(
    shaped: ShapedTimeline,
    *,
    source: str | None = None,
    kind: str | None = None,
    event: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Timeline:
    """One page of the shaped timeline, filtered; `shaped` is left as it was."""
    chosen = [c for c in shaped.contacts if _wanted(c, source, kind, event)]
    pages = max(1, math.ceil(len(chosen) / per_page))
    page = min(max(page, 1), pages)
    shown = chosen[(page - 1) * per_page : page * per_page]
    if source or kind:
        shown = [_narrowed(c, source, kind) for c in shown]
    return Timeline(
        contacts=shown,
        life_events=shaped.life_events,
        sources=shaped.sources,
        total=len(chosen),
        page=page,
        pages=pages,
    )


def build_timeline(
    record: Record,
    *,
    source: str | None = None,
    kind: str | None = None,
    event: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
    rules: Iterable[Rule] | None = None,
    now: datetime | None = None,
) -> Timeline:
    """The timeline, newest contact first, filtered and cut to one page."""
    shaped = shape_timeline(record, rules=rules, now=now)
    return page_of(shaped, source=source, kind=kind, event=event, page=page, per_page=per_page)


def shown_keys(timeline: Timeline) -> set[str]:
    """`Type/id` of every resource a page of the timeline shows: its contacts, what
    happened there (each source's copy), and the resources life events are named from."""
    keys = set()
    for contact in timeline.contacts:
        entries = [h.entry for h in contact.happenings]
        if contact.entry is not None:
            entries.append(contact.entry)
        for entry in entries:
            for report in entry.reports:
                keys.add(f"{report.resource.get('resourceType')}/{report.resource.get('id')}")
    keys.update(event.anchor for event in timeline.life_events if event.anchor)
    return keys


def all_contacts(record: Record) -> list[Contact]:
    """Every contact with its happenings, newest first."""
    contacts: dict[str, Contact] = {}
    by_day: dict[tuple[str, date], Contact] = {}
    for entry in merge_facts(record.of_type("Encounter"), record):
        contact = _contact(entry)
        contacts[contact.key] = contact
        if contact.start is not None:
            for source in entry.sources:
                by_day.setdefault((source.key, contact.start.date()), contact)
    for happening, encounter_key in _happenings(record):
        contact = contacts.get(encounter_key.removeprefix("Encounter/")) if encounter_key else None
        if contact is None and happening.when is not None:
            source = happening.entry.sources[0]
            day_key = (source.key, happening.when.date())
            contact = by_day.get(day_key)
            if contact is None:
                contact = Contact(
                    key=f"recorded/{source.key}/{happening.when.date().isoformat()}",
                    title="",
                    reason="",
                    place="",
                    clinician="",
                    start=happening.when,
                    end=None,
                    entry=None,
                    source=source,
                )
                by_day[day_key] = contacts[contact.key] = contact
        if contact is not None:
            contact.happenings.append(happening)
    ordered = sorted(contacts.values(), key=_newest_first)
    for contact in ordered:
        contact.happenings.sort(key=lambda h: (KINDS.index(h.kind), h.title.casefold()))
    return ordered


def _newest_first(contact: Contact) -> tuple[float, str]:
    return (-(contact.start.timestamp() if contact.start else 0.0), contact.key)


def _contact(entry: Reported) -> Contact:
    encounter = entry.resource
    start, end = period(encounter.get("period"))
    location = (encounter.get("location") or [{}])[0].get("location")
    participant = (encounter.get("participant") or [{}])[0].get("individual")
    return Contact(
        key=str(encounter.get("id")),
        title=first_concept_text(encounter.get("type"))
        or concept_text(encounter.get("class"))
        or str((encounter.get("class") or {}).get("display", "")),
        reason=first_concept_text(encounter.get("reasonCode")),
        place=reference_display(location) or reference_display(encounter.get("serviceProvider")),
        clinician=reference_display(participant),
        start=start,
        end=end,
        entry=entry,
    )


def _happenings(record: Record) -> Iterable[tuple[Happening, str | None]]:
    """(happening, the Encounter it names) for everything that happens at contacts."""
    for entry in merge_facts(record.of_type("Observation"), record):
        observation = entry.resource
        when = first_time(observation, ("effectiveDateTime", "effectivePeriod", "issued"))
        detail, abnormal = _result_value(observation, when)
        code = (observation.get("code") or {}).get("coding") or [{}]
        yield (
            Happening(
                "results",
                "",
                concept_text(observation.get("code"), "?"),
                detail,
                abnormal,
                when,
                entry,
                str(code[0].get("code", "")),
            ),
            reference_key(observation.get("encounter")),
        )
    for entry in merge_facts(record.of_type("Condition"), record):
        condition = entry.resource
        when = first_time(condition, ("onsetDateTime", "onsetPeriod", "recordedDate"))
        yield (
            Happening(
                "diagnoses", "", concept_text(condition.get("code"), "?"), "", False, when, entry
            ),
            reference_key(condition.get("encounter")),
        )
    for entry in merge_facts(record.of_type("Procedure"), record):
        procedure = entry.resource
        when = first_time(procedure, ("performedDateTime", "performedPeriod"))
        yield (
            Happening(
                "procedures", "", concept_text(procedure.get("code"), "?"), "", False, when, entry
            ),
            reference_key(procedure.get("encounter")),
        )
    yield from _medicines(record)
    for entry in merge_facts(record.of_type("Immunization"), record):
        immunization = entry.resource
        yield (
            Happening(
                "vaccinations",
                "",
                concept_text(immunization.get("vaccineCode"), "?"),
                "",
                False,
                parse_time(immunization.get("occurrenceDateTime")),
                entry,
            ),
            reference_key(immunization.get("encounter")),
        )
    for entry in merge_facts(record.of_type("DocumentReference"), record):
        document = entry.resource
        encounters = (document.get("context") or {}).get("encounter") or [None]
        title = str(document.get("description") or "") or concept_text(document.get("type"))
        yield (
            Happening(
                "documents",
                "",
                title,
                "",
                False,
                parse_time(document.get("date")),
                entry,
                str(document.get("id")),
            ),
            reference_key(encounters[0]),
        )
    for entry in merge_facts(record.of_type("ServiceRequest"), record):
        request = entry.resource
        yield (
            Happening(
                "referrals",
                "",
                concept_text(request.get("code"), "?"),
                first_concept_text(request.get("reasonCode")),
                False,
                parse_time(request.get("authoredOn")),
                entry,
            ),
            reference_key(request.get("encounter")),
        )


def _medicines(record: Record) -> Iterable[tuple[Happening, str | None]]:
    for entry in merge_facts(record.of_type("MedicationRequest", "MedicationStatement"), record):
        medicine = entry.resource
        name = concept_text(medicine.get("medicationCodeableConcept")) or reference_display(
            medicine.get("medicationReference")
        )
        if medicine.get("resourceType") == "MedicationRequest":
            start, end = period((medicine.get("dispenseRequest") or {}).get("validityPeriod"))
            start = parse_time(medicine.get("authoredOn")) or start
            dosage = medicine.get("dosageInstruction") or [{}]
            encounter = reference_key(medicine.get("encounter"))
        else:
            start, end = period(medicine.get("effectivePeriod"))
            dosage = medicine.get("dosage") or [{}]
            encounter = reference_key(medicine.get("context"))
            if encounter is not None:
                # What the citizen was taking when the contact began: recorded there.
                when = parse_time(medicine.get("dateAsserted")) or start
                yield (
                    Happening(
                        "medications",
                        "recorded",
                        name,
                        str(dosage[0].get("text", "")),
                        False,
                        when,
                        entry,
                    ),
                    encounter,
                )
                continue
        yield (
            Happening(
                "medications", "started", name, str(dosage[0].get("text", "")), False, start, entry
            ),
            encounter,
        )
        if end is not None and end <= datetime.now(UTC):
            yield Happening("medications", "stopped", name, "", False, end, entry), None


def _result_value(observation: JsonDict, when: datetime | None) -> tuple[str, bool]:
    """The value as text with its unit ("145/76 mm[Hg]" for components), and abnormal?"""
    parts = observation.get("component") or [observation]
    texts, units, abnormal = [], [], False
    for part in parts:
        if not isinstance(part, dict):
            continue
        value = quantity_value(part.get("valueQuantity"))
        if value is not None:
            texts.append(f"{value:g}")
            units.append(quantity_unit(part.get("valueQuantity")))
        elif part.get("valueCodeableConcept") or part.get("valueString"):
            texts.append(concept_text(part.get("valueCodeableConcept")) or str(part["valueString"]))
        measured = measurement(part, when or datetime.now(UTC), _NO_ENTRY)
        abnormal = abnormal or measured.abnormal
    unit = units[0] if units and len(set(units)) == 1 else ""
    return (("/".join(texts) + (f" {unit}" if unit else "")).strip(), abnormal)


_NO_ENTRY = Reported(resource={}, reports=())


def _wanted(contact: Contact, source: str | None, kind: str | None, event: str | None) -> bool:
    if event and (contact.life_event is None or contact.life_event.key != event):
        return False
    if source and source not in contact.source_keys:
        return False
    return not kind or any(h.kind == kind for h in contact.happenings)


def _narrowed(contact: Contact, source: str | None, kind: str | None) -> Contact:
    """The contact showing only the happenings the filters ask for."""
    happenings = [
        h
        for h in contact.happenings
        if (not kind or h.kind == kind) and (not source or source in h.entry.source_keys)
    ]
    return Contact(**{**contact.__dict__, "happenings": happenings})
