"""Version identity: ETags, instants, stamping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from health.fhir.errors import FhirError
from health.fhir.versions import (
    etag,
    instant,
    next_timestamp,
    parse_if_match,
    parse_instant,
    stamp,
)


def test_etag_round_trips_through_if_match() -> None:
    assert etag(3) == 'W/"3"'
    assert parse_if_match(etag(3)) == 3
    assert parse_if_match('"4"') == 4


def test_malformed_if_match_is_a_client_error() -> None:
    with pytest.raises(FhirError) as refused:
        parse_if_match('W/"three"')
    assert refused.value.status == 400


def test_instants_are_utc_with_microseconds() -> None:
    moment = datetime(2026, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=1)))
    assert instant(moment) == "2026-01-02T03:05:06.000007Z"


def test_instants_have_four_digit_years() -> None:
    # https://hl7.org/fhir/R4/datatypes.html#instant: YYYY-MM-DDThh:mm:ss.sss+zz:zz
    assert instant(datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC)) == "0999-03-04T05:06:07.000000Z"


def test_since_accepts_partial_dates_and_zones() -> None:
    assert parse_instant("2026", "_since") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_instant("2026-03-04", "_since") == datetime(2026, 3, 4, tzinfo=UTC)
    assert parse_instant("2026-03-04T10:00:00+02:00", "_since") == datetime(
        2026, 3, 4, 8, tzinfo=UTC
    )
    with pytest.raises(FhirError):
        parse_instant("yesterday", "_since")


def test_timestamps_never_go_backwards() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    assert next_timestamp(future) > future


def test_stamp_puts_server_identity_first_and_keeps_the_rest() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    body = stamp(
        {"resourceType": "Patient", "id": "client", "meta": {"profile": ["p"]}, "active": True},
        "server-id",
        2,
        moment,
    )
    stored = orjson.loads(body)
    assert list(stored)[:3] == ["resourceType", "id", "meta"]
    assert stored["id"] == "server-id"
    assert stored["meta"] == {
        "profile": ["p"],
        "versionId": "2",
        "lastUpdated": "2026-01-01T00:00:00.000000Z",
    }
    assert stored["active"] is True
