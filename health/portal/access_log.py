""" "Who has looked at my record": the access log as the citizen reads it, and the front
page's notices of emergency access. Pure: rows and names in, view models out.

The rows come from health/audit/log.py (`AuditLog.for_patient`) and the emergency
accesses from `Repository.emergency_accesses_to`; names of clinicians and organisations
are looked up by the caller in the shared directory and passed in as `names`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from health.audit.entries import BREAK_GLASS_ACTION, AuditRecord

# How far back the front page looks for emergency accesses.
EMERGENCY_NOTICE_DAYS = 90
# Rows per page of the log.
LOG_PAGE_SIZE = 50
# The day a citizen picks in the filter is a Danish day.
_LOCAL = ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class LogLine:
    """One row of the log, as the citizen reads it."""

    seq: int
    when: datetime
    action: str
    who: str
    agent_kind: str
    organisation: str
    # The person acted for someone (a parent, a holder of a power of attorney).
    by_proxy: bool
    # The row is the reader's own doing (their own look at their own record).
    by_you: bool
    purpose: str
    outcome: str
    # How many resources, and how many of each type, sorted by type.
    count: int
    types: tuple[tuple[str, int], ...]
    # The clinician's reason for an emergency access, or what a consent change did.
    detail: str
    emergency: bool

    @property
    def refused(self) -> bool:
        return self.outcome == "refused"


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    # `before` for the next (older) page, if there is one.
    older: int | None


@dataclass(frozen=True)
class EmergencyAccess:
    """A clinician broke the glass to the record: who, where, why, when."""

    clinician: str
    organisation: str
    reason: str
    started: datetime
    expires: datetime


def references_in(records: Iterable[AuditRecord]) -> set[str]:
    """The clinicians and organisations the rows name, to look their names up."""
    found = set()
    for record in records:
        for reference in (record.entry.agent, record.entry.organization):
            if reference and reference.startswith(("Practitioner/", "Organization/")):
                found.add(reference)
    return found


def log_page(
    records: list[AuditRecord], names: Mapping[str, str], own_agents: set[str], page_size: int
) -> LogPage:
    """A page of the log from up to `page_size + 1` rows (the extra one says "more")."""
    shown = records[:page_size]
    lines = [log_line(record, names, own_agents) for record in shown]
    older = shown[-1].seq if len(records) > page_size and shown else None
    return LogPage(lines=lines, older=older)


def log_line(record: AuditRecord, names: Mapping[str, str], own_agents: set[str]) -> LogLine:
    entry = record.entry
    types = Counter(entity.split("/", 1)[0] for entity in entry.entities)
    emergency = entry.purpose == "emergency" or entry.action == BREAK_GLASS_ACTION
    return LogLine(
        seq=record.seq,
        when=record.recorded,
        action=entry.action,
        who=names.get(entry.agent or "") or entry.agent_name or entry.agent or "",
        agent_kind=entry.agent_kind,
        organisation=names.get(entry.organization or "") or entry.organization or "",
        by_proxy=entry.on_behalf_of is not None,
        by_you=entry.agent in own_agents,
        purpose=entry.purpose,
        outcome=entry.outcome,
        count=len(entry.entities),
        types=tuple(sorted(types.items())),
        detail=entry.detail or "",
        emergency=emergency,
    )


def emergency_accesses(
    rows: Iterable[Mapping[str, Any]], names: Mapping[str, str]
) -> list[EmergencyAccess]:
    """The rows of `Repository.emergency_accesses_to`, named."""
    return [
        EmergencyAccess(
            clinician=names.get(row["practitioner"] or "") or row["practitioner"] or "",
            organisation=names.get(row["organization"] or "") or row["organization"] or "",
            reason=row["reason"] or "",
            started=row["started"],
            expires=row["expires"],
        )
        for row in rows
    ]


def emergency_references(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    return {
        reference
        for row in rows
        for reference in (row["practitioner"], row["organization"])
        if reference
    }


@dataclass(frozen=True)
class Period:
    """The log filter: days as the citizen typed them, and the instants they mean."""

    start: str = ""
    end: str = ""
    since: datetime | None = None
    until: datetime | None = None
    error: bool = False


def period_of(start: str, end: str) -> Period:
    """The filter's from/to days (ISO dates, both inclusive, Danish time); a day that
    is not a date is dropped and flagged."""
    since, start_error = _day_start(start)
    until, end_error = _day_start(end, next_day=True)
    return Period(
        start=start if since else "",
        end=end if until else "",
        since=since,
        until=until,
        error=start_error or end_error,
    )


def _day_start(text: str, *, next_day: bool = False) -> tuple[datetime | None, bool]:
    if not text:
        return None, False
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, True
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=_LOCAL), False
