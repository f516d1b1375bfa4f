"""Grouping contacts into the events of a life, by the rules in life_events.toml.

The rules are data (which resources anchor an event, which codes, what time window);
this module only applies them. A contact belongs to the first event that claims it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from health.portal.datatypes import (
    JsonDict,
    codes,
    codes_of_all,
    concept_text,
    first_concept_text,
    first_time,
    parse_time,
    period,
    reference_key,
)
from health.portal.record import Record

RULES_FILE = Path(__file__).with_name("life_events.toml")
_ENCOUNTER_TIME = ("period", "actualPeriod")


@dataclass(frozen=True)
class Rule:
    kind: str
    anchor: str
    codes: tuple[str, ...] = ()
    min_days: int | None = None
    # Condition.clinicalStatus codes the anchor must have (empty: any).
    statuses: tuple[str, ...] = ()
    days_before: int = 0
    days_after: int = 0
    classes: tuple[str, ...] = ()
    follow_up_days: int = 0


@dataclass
class LifeEvent:
    """A group of contacts: a pregnancy, a chronic illness, a hospital stay..."""

    key: str
    kind: str
    title: str
    start: datetime | None
    end: datetime | None
    # Encounter ids, in the order found.
    encounter_ids: list[str] = field(default_factory=list)
    # The anchor resource (`Type/id`), e.g. the Condition.
    anchor: str = ""


def load_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    """The grouping rules from a TOML file (see life_events.toml for their meaning)."""
    with path.open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    rules = []
    for item in data.get("rule", []):
        rules.append(
            Rule(
                kind=str(item["kind"]),
                anchor=str(item["anchor"]),
                codes=tuple(str(c) for c in item.get("codes", ())),
                min_days=item.get("min_days"),
                statuses=tuple(str(c) for c in item.get("statuses", ())),
                days_before=int(item.get("days_before", 0)),
                days_after=int(item.get("days_after", 0)),
                classes=tuple(str(c) for c in item.get("classes", ())),
                follow_up_days=int(item.get("follow_up_days", 0)),
            )
        )
    return tuple(rules)


@cache
def default_rules() -> tuple[Rule, ...]:
    return load_rules()


def group_life_events(
    record: Record, rules: Sequence[Rule] | None = None, now: datetime | None = None
) -> list[LifeEvent]:
    """The life events of the record, newest first; each contact in at most one."""
    rules = default_rules() if rules is None else rules
    now = now or datetime.now(UTC)
    visits = sorted(
        (_visit(encounter) for encounter in record.of_type("Encounter")),
        key=lambda v: (v.start or datetime.min.replace(tzinfo=UTC), v.id),
    )
    claimed: set[str] = set()
    # Conditions already anchoring an event (a pregnancy is not also a long illness).
    anchored: set[str] = set()
    events: list[LifeEvent] = []
    for rule in rules:
        if rule.anchor == "EpisodeOfCare":
            events += _episodes(record, visits, claimed)
        elif rule.anchor == "Condition":
            events += _conditions(rule, record, visits, (claimed, anchored), now)
        elif rule.anchor == "Encounter":
            events += _stays(rule, visits, claimed)
    return sorted(events, key=lambda e: e.start or datetime.min.replace(tzinfo=UTC), reverse=True)


@dataclass(frozen=True)
class _Visit:
    """What the rules ask of an Encounter, read from it once (the rules look at every
    contact for every anchor)."""

    id: str
    encounter: JsonDict
    start: datetime | None
    reasons: frozenset[tuple[str, str]]
    # `Type/id` of the conditions it names as its reason or diagnosis.
    conditions: frozenset[str | None]
    episodes: frozenset[str | None]
    provider: str | None


def _visit(encounter: JsonDict) -> _Visit:
    named = [*(encounter.get("reasonReference") or [])]
    named += [d.get("condition") for d in encounter.get("diagnosis") or []]
    return _Visit(
        id=str(encounter.get("id")),
        encounter=encounter,
        start=first_time(encounter, _ENCOUNTER_TIME),
        reasons=frozenset(codes_of_all(encounter.get("reasonCode"))),
        conditions=frozenset(reference_key(r) for r in named),
        episodes=frozenset(reference_key(r) for r in encounter.get("episodeOfCare") or []),
        provider=reference_key(encounter.get("serviceProvider")),
    )


def _claim(event: LifeEvent, visit: _Visit, claimed: set[str]) -> None:
    claimed.add(visit.id)
    event.encounter_ids.append(visit.id)


def _episodes(record: Record, visits: list[_Visit], claimed: set[str]) -> list[LifeEvent]:
    events = []
    for episode in record.of_type("EpisodeOfCare"):
        key = f"EpisodeOfCare/{episode.get('id')}"
        start, end = period(episode.get("period"))
        title = first_concept_text(episode.get("type"))
        for diagnosis in episode.get("diagnosis") or []:
            condition = record.resolve(diagnosis.get("condition"))
            title = title or concept_text((condition or {}).get("code"))
        event = LifeEvent(key, "course-of-care", title, start, end, anchor=key)
        for visit in visits:
            if key in visit.episodes and visit.id not in claimed:
                _claim(event, visit, claimed)
        events.append(event)
    return events


def _code_matches(rule: Rule, concept_codes: set[tuple[str, str]]) -> bool:
    if "*" in rule.codes:
        return bool(concept_codes)
    return any(code.startswith(rule.codes) for _, code in concept_codes)


def _conditions(
    rule: Rule,
    record: Record,
    visits: list[_Visit],
    taken: tuple[set[str], set[str]],
    now: datetime,
) -> list[LifeEvent]:
    claimed, anchored = taken
    events = []
    for condition in record.of_type("Condition"):
        key = f"Condition/{condition.get('id')}"
        condition_codes = codes(condition.get("code"))
        if key in anchored or not _code_matches(rule, condition_codes):
            continue
        onset = first_time(condition, ("onsetDateTime", "onsetPeriod", "recordedDate"))
        abated = parse_time(condition.get("abatementDateTime"))
        status = {code for _, code in codes(condition.get("clinicalStatus"))}
        if onset is None or (rule.statuses and not status & set(rule.statuses)):
            continue
        if rule.min_days is not None and (abated or now) - onset < timedelta(days=rule.min_days):
            continue
        window_start = onset - timedelta(days=rule.days_before)
        window_end = (abated or now) + timedelta(days=rule.days_after)
        event = LifeEvent(
            key, rule.kind, concept_text(condition.get("code")), onset, abated, anchor=key
        )
        for visit in visits:
            if visit.id in claimed:
                continue
            if visit.start is None or not window_start <= visit.start <= window_end:
                continue
            if key in visit.conditions or visit.reasons & condition_codes:
                _claim(event, visit, claimed)
        # A condition without contacts is still an event in the citizen's life, but
        # the same code from two sources (the same fact) is one event.
        anchored.add(key)
        if not _duplicate(event, events):
            events.append(event)
    return events


def _duplicate(event: LifeEvent, events: list[LifeEvent]) -> bool:
    for other in events:
        if other.title == event.title and other.start == event.start:
            other.encounter_ids.extend(event.encounter_ids)
            return True
    return False


def _stays(rule: Rule, visits: list[_Visit], claimed: set[str]) -> list[LifeEvent]:
    events = []
    for visit in visits:
        encounter = visit.encounter
        cls = str((encounter.get("class") or {}).get("code", ""))
        if visit.id in claimed or cls not in rule.classes:
            continue
        start, end = period(encounter.get("period"))
        title = first_concept_text(encounter.get("reasonCode")) or first_concept_text(
            encounter.get("type")
        )
        key = f"Encounter/{visit.id}"
        event = LifeEvent(key, rule.kind, title, start, end, anchor=key)
        _claim(event, visit, claimed)
        limit = (end or start or datetime.max.replace(tzinfo=UTC)) + timedelta(
            days=rule.follow_up_days
        )
        for later in visits:
            if (
                later.id not in claimed
                and later.start is not None
                and start is not None
                and start < later.start <= limit
                and later.provider == visit.provider
                and later.reasons & visit.reasons
            ):
                _claim(event, later, claimed)
        events.append(event)
    return events
