"""The record over time: contacts with what happened at each, grouped into life events.

A contact is an Encounter. What happened there (diagnoses, procedures, results,
medicines started or stopped, vaccinations, documents, referrals) is attached by the
resource's link to its Encounter; a resource without one goes to a contact of the same
organisation on the same day, or else stands as a contact of its own ("recorded by").
Facts reported by two sources appear once (sources.merge_facts). Contacts are grouped
into life events by life_events.py. Filters: by source, by kind, by life event.

A record is mostly results, and a page shows a few hundred of them: `read_timeline`
places the results from their index rows (`outline_results`) and `page_of` reads the
ones of the contacts it shows; the timeline is the same as one shaped from the record
read whole (tests/portal/test_timeline_outline.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from health.ingest.facts import FACT_SYSTEM
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
    source_key,
)
from health.portal.life_events import LifeEvent, Rule, group_life_events
from health.portal.record import CitizenRecords, Record
from health.portal.results import measurement
from health.portal.sources import Reported, Source, fact_copies, merge_facts, record_sources

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
# Contacts per page. A contact of a chronic illness brings ten results or more, so
# twenty contacts are a long page on a phone already (72 kB of HTML for the benchmark
# citizen; forty made 128 kB).
PER_PAGE = 20


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
    # Results at this contact known from the search index only (see `outline_results`):
    # read when a page shows the contact.
    pending: PendingResults | None = None

    @property
    def source_keys(self) -> frozenset[str]:
        keys = set(self.entry.source_keys) if self.entry else set()
        if self.source is not None:
            keys.add(self.source.key)
        for happening in self.happenings:
            keys |= happening.entry.source_keys
        if self.pending is not None:
            keys |= self.pending.source_keys
        return frozenset(keys)

    def has(self, kind: str) -> bool:
        if kind == "results" and self.pending is not None:
            return True
        return any(happening.kind == kind for happening in self.happenings)


@dataclass(frozen=True)
class PendingResults:
    """The results at one contact, from the index: every copy of each, in the order the
    record is read in (so that each fact's copies merge as in a record read whole), and
    the sources that reported them."""

    ids: tuple[str, ...]
    source_keys: frozenset[str]


@dataclass(frozen=True)
class ResultOutline:
    """Where a record's Observations go, decided from their index rows: most go to the
    contact (Encounter) they name and are read only for the page that shows it; the
    rest (no contact of their own, so placed by day and source) are read whole."""

    at_contacts: dict[str, PendingResults]
    # Ids to read whole, in the order the record is read in.
    loose: list[str]
    # meta.source of every result left at a contact (for the list of sources).
    source_urls: frozenset[str | None]
    count: int


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
    # The organisations that pushed the record (to name the sources of pending results).
    directory: dict[str, JsonDict] = field(default_factory=dict)


def shape_timeline(
    record: Record,
    *,
    rules: Iterable[Rule] | None = None,
    now: datetime | None = None,
    results: ResultOutline | None = None,
) -> ShapedTimeline:
    """Every contact with what happened there and its life event, newest first; with
    `results`, the record's Observations other than `results.loose` are left pending at
    their contacts (`page_of` reads them for the contacts it shows)."""
    contacts = all_contacts(record)
    events = group_life_events(record, None if rules is None else tuple(rules), now)
    by_encounter = {encounter_id: e for e in events for encounter_id in e.encounter_ids}
    for contact in contacts:
        contact.life_event = by_encounter.get(contact.key)
        if results is not None:
            contact.pending = results.at_contacts.get(contact.key)
    return ShapedTimeline(
        contacts=contacts,
        life_events=events,
        sources=record_sources(record, results.source_urls if results else ()),
        directory=dict(record.directory),
    )


# What the timeline reads whole; its Observations are outlined (`outline_results`).
TIMELINE_TYPES = (
    "Encounter",
    "EpisodeOfCare",
    "Condition",
    "Procedure",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "DocumentReference",
    "ServiceRequest",
)


def read_timeline(records: CitizenRecords, now: datetime) -> tuple[ShapedTimeline, int]:
    """The whole timeline of what `records` may read, and how many resources it was
    shaped from. The results (most of a record: 4,200 of the benchmark citizen's 5,000
    resources) are arranged from their index values (`outline_results`) and read for
    the page that shows them (`page_of`); the rest is read whole. Lookups only: the
    page discloses what it shows."""
    others = records.load(types=TIMELINE_TYPES, disclose=False)
    results = outline_results(
        records.outline("Observation", RESULT_OUTLINE),
        records.shared_tokens("Observation", "_tag", FACT_SYSTEM),
        contact_keys(others),
    )
    loose = records.look_up("Observation", results.loose)
    record = records.with_sources([*others.resources, *loose], results.source_urls)
    shaped = shape_timeline(record, now=now, results=results)
    return shaped, len(others.resources) + results.count


def contact_keys(record: Record) -> set[str]:
    """The keys of the contacts the record's Encounters make (a fact two sources
    reported is one contact, under its first copy's id)."""
    return {str(copies[0].get("id")) for copies in fact_copies(record.of_type("Encounter"))}


# The index values `outline_results` places results by (Repository.outline): the
# Encounter (target type, id) and meta.source of each.
RESULT_OUTLINE = (("encounter", "reference"), ("_source", "uri"))


def outline_results(
    groups: Sequence[tuple[tuple[Any, ...], Sequence[str]]],
    shared_facts: Sequence[tuple[str, str]],
    contacts: set[str],
) -> ResultOutline:
    """Where each Observation goes, from `groups` (ids by the index values of
    RESULT_OUTLINE) and `shared_facts` ((fact, id) of the facts several copies report,
    sources.merge_facts, in the order the record is read in). A result goes to the
    contact its one Encounter makes, or, when it names none of `contacts` (or several
    Encounters, or something else), is read whole; the copies of a fact go together,
    where the first copy goes.

    Ids are taken in code point order, the order the record is read in on SQLite and
    on PostgreSQL with the C collation (with another, two results of one title at one
    contact may show in the other order)."""
    # The group each result is in; a result in two groups of different Encounters has
    # several (rare: Observation.encounter is 0..1), and is read whole.
    group_of: dict[str, int] = {}
    several: set[str] = set()
    encounters = [
        (values[0], values[1]) if values[0] or values[1] else None for values, _ in groups
    ]
    for number, (_, ids) in enumerate(groups):
        for resource_id in ids:
            seen = group_of.setdefault(resource_id, number)
            if seen != number and encounters[seen] != encounters[number]:
                several.add(resource_id)
    contact_of_group = [
        str(encounter[1])
        if encounter is not None and encounter[0] == "Encounter" and encounter[1] in contacts
        else None
        for encounter in encounters
    ]

    def contact_of(resource_id: str) -> str | None:
        return None if resource_id in several else contact_of_group[group_of[resource_id]]

    copies: dict[str, list[str]] = {}
    for fact, resource_id in shared_facts:
        if resource_id in group_of:
            copies.setdefault(fact, []).append(resource_id)
    # Results placed apart from their group: a fact's copies, where its first copy goes.
    apart = {
        resource_id: contact_of(ids[0])
        for ids in copies.values()
        if len(ids) > 1
        for resource_id in ids
    }
    apart.update((resource_id, None) for resource_id in several)
    at_contacts: dict[str, list[str]] = {}
    sources: dict[str, set[str | None]] = {}
    loose: list[str] = []

    def place(contact: str | None, ids: Iterable[str], source: Any) -> None:
        if contact is None:
            loose.extend(ids)
        else:
            at_contacts.setdefault(contact, []).extend(ids)
            sources.setdefault(contact, set()).add(_source_url(source))

    for number, (values, ids) in enumerate(groups):
        # A result in two groups (of one Encounter, two sources) is placed with the first.
        kept = [i for i in ids if group_of[i] == number and i not in apart]
        if kept:
            place(contact_of_group[number], kept, values[2])
    for resource_id, contact in apart.items():
        place(contact, (resource_id,), groups[group_of[resource_id]][0][2])
    pending = {
        contact: PendingResults(
            ids=tuple(sorted(ids)),
            source_keys=frozenset(source_key(url) for url in sources[contact]),
        )
        for contact, ids in at_contacts.items()
    }
    return ResultOutline(
        at_contacts=pending,
        loose=sorted(set(loose)),
        source_urls=frozenset(url for urls in sources.values() for url in urls),
        count=len(group_of),
    )


def _source_url(value: Any) -> str | None:
    return str(value) if value else None


def page_of(
    shaped: ShapedTimeline,
    *,
    source: str | None = None,
    kind: str | None = None,
    event: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
    read_results: Callable[[Sequence[str]], list[JsonDict]] | None = None,
) -> Timeline:
    """One page of the shaped timeline, filtered; `shaped` is left as it was. Pending
    results of the contacts shown are read with `read_results` (Observations by id)."""
    chosen = [c for c in shaped.contacts if _wanted(c, source, kind, event)]
    pages = max(1, math.ceil(len(chosen) / per_page))
    page = min(max(page, 1), pages)
    shown = chosen[(page - 1) * per_page : page * per_page]
    if any(c.pending is not None for c in shown):
        if read_results is None:
            raise ValueError("the timeline has pending results and nothing to read them")
        shown = _with_results(shown, shaped.directory, read_results)
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


def _with_results(
    contacts: list[Contact],
    directory: dict[str, JsonDict],
    read_results: Callable[[Sequence[str]], list[JsonDict]],
) -> list[Contact]:
    """The contacts with their pending results read and shaped as in a record read
    whole: merged per fact in the record's order, sorted in among the other happenings."""
    wanted = [i for contact in contacts if contact.pending for i in contact.pending.ids]
    by_id = {str(resource.get("id")): resource for resource in read_results(wanted)}
    sources = Record(patient_id=None, directory=directory)
    done = []
    for contact in contacts:
        if contact.pending is None:
            done.append(contact)
            continue
        found = [by_id[i] for i in contact.pending.ids if i in by_id]
        results = [_result(entry) for entry in merge_facts(found, sources)]
        happenings = sorted([*results, *contact.happenings], key=_happening_order)
        done.append(Contact(**{**contact.__dict__, "happenings": happenings, "pending": None}))
    return done


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
        contact.happenings.sort(key=_happening_order)
    return ordered


def _happening_order(happening: Happening) -> tuple[int, str]:
    return (KINDS.index(happening.kind), happening.title.casefold())


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
        yield _result(entry), reference_key(entry.resource.get("encounter"))
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


def _result(entry: Reported) -> Happening:
    observation = entry.resource
    when = first_time(observation, ("effectiveDateTime", "effectivePeriod", "issued"))
    detail, abnormal = _result_value(observation, when)
    code = (observation.get("code") or {}).get("coding") or [{}]
    return Happening(
        "results",
        "",
        concept_text(observation.get("code"), "?"),
        detail,
        abnormal,
        when,
        entry,
        str(code[0].get("code", "")),
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
    return not kind or contact.has(kind)


def _narrowed(contact: Contact, source: str | None, kind: str | None) -> Contact:
    """The contact showing only the happenings the filters ask for."""
    happenings = [
        h
        for h in contact.happenings
        if (not kind or h.kind == kind) and (not source or source in h.entry.source_keys)
    ]
    return Contact(**{**contact.__dict__, "happenings": happenings})
