"""AuditEvent search: the query parameters the access log answers, and its Bundle.

Pure. https://hl7.org/fhir/R4/auditevent.html#search: `patient` and `date` (the
`recorded` instant), with `_count` and a keyset cursor on the row's seq, so pages
neither repeat nor skip rows while new ones are appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from health.audit.entries import AuditRecord
from health.audit.events import audit_event
from health.fhir.errors import invalid, not_supported
from health.fhir.search.values import parse_date
from health.numbers import INT64_DIGITS, page_count, whole_number

CURSOR = "_cursor"
# Result parameters kept in paging links as they came.
_KEPT = ("_count", "_format", "_pretty")
_KNOWN = frozenset({"patient", "date", CURSOR, *_KEPT})


@dataclass(frozen=True)
class AuditSearch:
    """What a search asks for: whose rows, recorded when, how many, after which row."""

    # Each `patient` value asked for (`Patient/x` or `x` read as `x`); empty: any.
    patient_ids: frozenset[str]
    since: datetime | None
    until: datetime | None
    count: int
    before_seq: int | None
    # The parameters to repeat in paging links (cursor left out).
    kept: tuple[tuple[str, str], ...]


def parse_audit_search(
    pairs: Sequence[tuple[str, str]],
    *,
    base_url: str,
    default_count: int,
    max_count: int,
    lenient: bool = False,
) -> AuditSearch:
    """The search `pairs` ask for; 400 for what the access log cannot answer."""
    patient_ids: set[str] = set()
    since: datetime | None = None
    until: datetime | None = None
    count = default_count
    before_seq: int | None = None
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        if name not in _KNOWN:
            if lenient:
                # https://hl7.org/fhir/R4/search.html#errors: ignored, and left out of links.
                continue
            raise invalid(f"Unknown AuditEvent search parameter {name!r}", name)
        if name == CURSOR:
            before_seq = whole_number(value, max_digits=INT64_DIGITS)
            if before_seq is None:
                raise invalid(f"_cursor={value!r} is not a cursor this server issued", CURSOR)
            continue
        kept.append((name, value))
        if name == "patient":
            patient_ids.add(_patient_id(value, base_url))
        elif name == "date":
            low, high = _date_bounds(value)
            if low is not None:
                since = low if since is None else max(since, low)
            if high is not None:
                until = high if until is None else min(until, high)
        elif name == "_count":
            size = page_count(value, maximum=max_count)
            if size is None:
                raise invalid(f"_count={value!r} is not a non-negative whole number", "_count")
            count = size
    return AuditSearch(
        patient_ids=frozenset(patient_ids),
        since=since,
        until=until,
        count=count,
        before_seq=before_seq,
        kept=tuple(kept),
    )


def _patient_id(value: str, base_url: str) -> str:
    """`x`, `Patient/x` or `<base>/Patient/x` as the id `x`."""
    if "," in value:
        raise not_supported("patient takes one patient per parameter on AuditEvent", "patient")
    reference = value.removeprefix(f"{base_url}/")
    kind, slash, rest = reference.partition("/")
    if slash and kind != "Patient":
        raise invalid(f"patient={value!r} does not name a Patient", "patient")
    patient_id = rest if slash else reference
    if not patient_id:
        raise invalid("patient is empty", "patient")
    return patient_id


def _date_bounds(value: str) -> tuple[datetime | None, datetime | None]:
    """[low, high) of the instants `date=<prefix><value>` admits for a recorded instant.

    https://hl7.org/fhir/R4/search.html#prefix: a value stands for the range its
    precision covers; `recorded` is an instant, so sa and eb are gt and lt.
    """
    if "," in value:
        raise not_supported("date takes one value per parameter on AuditEvent", "date")
    parsed = parse_date(value, "date")
    bounds = {
        "eq": (parsed.low, parsed.high),
        "ge": (parsed.low, None),
        "gt": (parsed.high, None),
        "sa": (parsed.high, None),
        "le": (None, parsed.high),
        "lt": (None, parsed.low),
        "eb": (None, parsed.low),
    }
    if parsed.prefix not in bounds:
        raise not_supported(
            f"date prefix {parsed.prefix!r} is not supported on AuditEvent "
            "(eq, ge, gt, le, lt, sa, eb are)",
            "date",
        )
    return bounds[parsed.prefix]


def searchset(
    records: Sequence[AuditRecord],
    search: AuditSearch,
    *,
    base_url: str,
    has_more: bool,
    total: int | None,
) -> dict[str, Any]:
    """The searchset Bundle of one page of rows, newest first, with its paging links."""
    path = f"{base_url}/AuditEvent"
    links = [{"relation": "self", "url": _url(path, search.kept, search.before_seq)}]
    if has_more and records:
        links.append({"relation": "next", "url": _url(path, search.kept, records[-1].seq)})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    bundle["entry"] = [
        {
            "fullUrl": f"{path}/{record.seq}",
            "resource": audit_event(record, base_url),
            "search": {"mode": "match"},
        }
        for record in records
    ]
    return bundle


def _url(path: str, kept: tuple[tuple[str, str], ...], cursor: int | None) -> str:
    pairs = [*kept, (CURSOR, str(cursor))] if cursor is not None else list(kept)
    return f"{path}?{urlencode(pairs)}" if pairs else path
