"""What a unit of work remembers of its conditions' matches, and which writes drop it."""

from __future__ import annotations

from datetime import UTC, datetime

from health.db.versions import StoredVersion, Write
from health.fhir.match_cache import MatchCache
from health.fhir.search.index_rows import IndexRows

NOW = datetime(2026, 11, 30, tzinfo=UTC)
NPI = "http://hl7.org/fhir/sid/us-npi"
BY_NPI_1 = ("Practitioner", "hash of identifier=npi|1")
BY_NPI_2 = ("Practitioner", "hash of identifier=npi|2")
BY_NAME = ("Practitioner", "hash of name=Hansen")


def _stored(resource_id: str, resource_type: str = "Practitioner") -> StoredVersion:
    return StoredVersion(resource_type, resource_id, 1, NOW, False, b"{}")


def _write(
    resource_id: str, *identifiers: str, resource_type: str = "Practitioner", deleted: bool = False
) -> Write:
    index = IndexRows(tokens=[("identifier", NPI, value, None) for value in identifiers])
    body = None if deleted else b"{}"
    return Write(resource_type, resource_id, 2, NOW, "PUT", body, index=index)


def _cache() -> MatchCache:
    """npi|1 matched dr-a, npi|2 matched nothing, a name search matched dr-a."""
    cache = MatchCache()
    cache.remember(BY_NPI_1, [_stored("dr-a")], identifier=(NPI, "1"))
    cache.remember(BY_NPI_2, [], identifier=(NPI, "2"))
    cache.remember(BY_NAME, [_stored("dr-a")])
    return cache


def test_a_write_of_an_unrelated_resource_keeps_identifier_matches() -> None:
    cache = _cache()

    cache.written(_write("dr-b", "3"))

    assert cache.get(BY_NPI_1) == [_stored("dr-a")]
    assert cache.get(BY_NPI_2) == []
    # Any other condition may match anything written.
    assert BY_NAME not in cache


def test_a_write_carrying_the_identifier_drops_its_match() -> None:
    cache = _cache()

    cache.written(_write("dr-b", "2"))

    assert BY_NPI_2 not in cache
    assert BY_NPI_1 in cache


def test_a_new_version_of_a_matched_resource_drops_its_match() -> None:
    # dr-a no longer carries npi|1: its match must be looked up again.
    cache = _cache()

    cache.written(_write("dr-a", "9"))

    assert BY_NPI_1 not in cache
    assert BY_NPI_2 in cache


def test_deleting_a_matched_resource_drops_its_match() -> None:
    cache = _cache()

    cache.written(_write("dr-a", deleted=True))

    assert BY_NPI_1 not in cache


def test_the_same_identifier_on_another_type_changes_nothing() -> None:
    cache = _cache()

    cache.written(_write("org-1", "1", resource_type="Organization"))
    cache.written(_write("dr-a", resource_type="Organization"))

    assert cache.get(BY_NPI_1) == [_stored("dr-a")]


def test_remembering_again_replaces_what_drops_the_match() -> None:
    cache = _cache()
    cache.remember(BY_NPI_1, [_stored("dr-c")], identifier=(NPI, "1"))

    cache.written(_write("dr-a", "9"))
    assert cache.get(BY_NPI_1) == [_stored("dr-c")]
    cache.written(_write("dr-c", "9"))
    assert BY_NPI_1 not in cache


def test_forgetting_since_a_mark_keeps_what_was_matched_before_it() -> None:
    cache = _cache()
    mark = cache.mark()
    cache.remember(("Organization", "hash of identifier=cvr|7"), [], identifier=("cvr", "7"))

    cache.forget_since(mark)

    assert ("Organization", "hash of identifier=cvr|7") not in cache
    assert BY_NPI_1 in cache
    assert BY_NPI_2 in cache
    assert BY_NAME in cache


def test_clearing_forgets_everything_and_later_writes_still_work() -> None:
    cache = _cache()

    cache.clear()
    cache.written(_write("dr-a", "1"))

    assert BY_NPI_1 not in cache
    assert BY_NAME not in cache
    cache.remember(BY_NPI_1, [_stored("dr-a")], identifier=(NPI, "1"))
    assert cache.get(BY_NPI_1) == [_stored("dr-a")]
