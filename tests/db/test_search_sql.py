"""A search's statements over a real database: paging, cursors, sorting, totals, the
template cache, and one shape run by two callers, with hand-made index rows
(tests/db/conftest.py).

https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import orjson
import pytest

from health.access.actor import SYSTEM, Actor, ActorKind
from health.db import search_sql
from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import Write
from health.fhir.errors import FhirError
from health.fhir.search.index_rows import IndexRows
from tests.db.conftest import T0, Store, _request, day, name

# a code's page, read from the index in id order


LOINC = "http://loinc.org"


@pytest.fixture
def heights(store: Store) -> list[str]:
    """17 Observations with or without body height (8302-2): the ids that have it."""
    matching = []
    for i in range(17):
        key = f"o{i:02d}"
        if i % 4 == 0:  # the code under another system
            tokens = [("code", "http://other", "8302-2", None)]
        elif i % 5 == 0:  # another code
            tokens = [("code", LOINC, "29463-7", None)]
        else:
            tokens = [("code", LOINC, "8302-2", None)]
            matching.append(key)
        if i % 3 == 0:  # the code twice, as two codings
            tokens.append((*tokens[0][:3], "body height"))
        store.put(f"Observation/{key}", tokens=tokens)
    return matching


@pytest.mark.parametrize(
    "query",
    [
        f"code={LOINC}|8302-2",
        "code=8302-2&code:not=http://other|8302-2",
        f"code={LOINC}|8302-2,{LOINC}|0000-0",
        f"code:not=http://other|8302-2&code:not={LOINC}|29463-7",
    ],
)
def test_a_code_pages_in_id_order_without_repeats_or_gaps(
    store: Store, heights: list[str], query: str
) -> None:
    store.delete("Observation/o01")
    expected = [key for key in heights if key != "o01"]

    pages = []
    cursor = None
    while True:
        page = store.page("Observation", f"{query}&_count=3", cursor)
        pages.append([v.id for v in page.matches])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert [key for page in pages for key in page] == expected
    assert [len(page) for page in pages[:-1]] == [3] * (len(pages) - 1)
    assert store.page("Observation", f"{query}&_count=3").total == len(expected)


def test_a_code_pages_back_and_forth_while_others_write(store: Store, heights: list[str]) -> None:
    query = f"code={LOINC}|8302-2&_count=4&_total=none"
    first = store.page("Observation", query)
    second = store.page("Observation", query, first.next_cursor)
    # One before the cursor, one after it, and one leaving the matches.
    store.put("Observation/a-new", tokens=[("code", LOINC, "8302-2", None)])
    store.put("Observation/z-new", tokens=[("code", LOINC, "8302-2", None)])
    store.put("Observation/o07", tokens=[("code", LOINC, "29463-7", None)])
    assert second.previous_cursor is not None
    back = store.page("Observation", query, second.previous_cursor)
    third = store.page("Observation", query, second.next_cursor)

    assert [v.id for v in first.matches] == heights[:4]
    assert [v.id for v in second.matches] == heights[4:8]
    assert [v.id for v in back.matches] == heights[:4]
    assert back.previous_cursor is not None
    assert [v.id for v in store.page("Observation", query, back.previous_cursor).matches] == [
        "a-new"
    ]
    assert [v.id for v in third.matches] == [*heights[8:], "z-new"]
    assert store.all_pages("Observation", query) == [
        "a-new",
        *(key for key in heights if key != "o07"),
        "z-new",
    ]


# sort, paging, totals


def test_sort_by_several_keys_with_id_as_tie_break(store: Store) -> None:
    store.put("Patient/a", strings=[name("Hansen")], dates=[("birthdate", *day("1990"))])
    store.put("Patient/b", strings=[name("Jensen")], dates=[("birthdate", *day("1980"))])
    store.put("Patient/c", strings=[name("Hansen")], dates=[("birthdate", *day("1970"))])
    store.put("Patient/d", strings=[name("Hansen")], dates=[("birthdate", *day("1970"))])
    store.put("Patient/e")

    assert store.ids("Patient", "_sort=family,-birthdate") == ["a", "c", "d", "b", "e"]
    assert store.ids("Patient", "_sort=-family,birthdate") == ["b", "c", "d", "a", "e"]
    assert store.ids("Patient", "_sort=-_id") == ["e", "d", "c", "b", "a"]


def test_date_sort_uses_the_range_start_ascending_and_its_end_descending(store: Store) -> None:
    store.put("Encounter/long", dates=[("date", day("2019")[0], day("2021")[1])])
    store.put("Encounter/mid", dates=[("date", *day("2020"))])

    assert store.ids("Encounter", "_sort=date") == ["long", "mid"]
    assert store.ids("Encounter", "_sort=-date") == ["long", "mid"]
    store.put("Encounter/late", dates=[("date", *day("2022"))])
    assert store.ids("Encounter", "_sort=-date") == ["late", "long", "mid"]


@pytest.mark.parametrize(
    "sort", ["", "_sort=family", "_sort=-family,_lastUpdated", "_sort=-birthdate"]
)
def test_paging_neither_repeats_nor_skips_while_others_write(store: Store, sort: str) -> None:
    for i in range(12):
        strings = [name(f"N{i % 4}")] if i % 5 else []
        dates = [("birthdate", *day(f"19{50 + i % 3}"))] if i % 6 else []
        store.put(f"Patient/p{i:02d}", strings=strings, dates=dates)
    query = f"_count=5&{sort}"
    first = store.page("Patient", query)
    assert len(first.matches) == 5 and first.next_cursor
    # New resources sorting before and after the cursor, and one that no longer matches.
    store.put("Patient/a-new", strings=[name("A")], dates=[("birthdate", *day("1900"))])
    store.put("Patient/z-new", strings=[name("Z")], dates=[("birthdate", *day("2000"))])
    seen = [v.id for v in first.matches]
    cursor: str | None = first.next_cursor
    while cursor:
        page = store.page("Patient", query, cursor)
        seen.extend(v.id for v in page.matches)
        cursor = page.next_cursor

    originals = [s for s in seen if s.startswith("p")]
    assert len(originals) == len(set(originals)) == 12
    assert len(seen) == len(set(seen))


def test_previous_cursor_returns_the_page_before(store: Store) -> None:
    for i in range(7):
        store.put(f"Patient/p{i}", strings=[name(f"N{i}")])
    first = store.page("Patient", "_count=3&_sort=-family")
    second = store.page("Patient", "_count=3&_sort=-family", first.next_cursor)
    assert second.previous_cursor is not None
    back = store.page("Patient", "_count=3&_sort=-family", second.previous_cursor)

    assert [v.id for v in first.matches] == ["p6", "p5", "p4"]
    assert [v.id for v in second.matches] == ["p3", "p2", "p1"]
    assert [v.id for v in back.matches] == ["p6", "p5", "p4"]
    assert back.previous_cursor is None and back.next_cursor is not None
    assert store.all_pages("Patient", "_count=2&_sort=family") == [f"p{i}" for i in range(7)]


@pytest.mark.parametrize("sort", ["family", "-family"])
def test_previous_pages_keep_resources_without_the_key_last(store: Store, sort: str) -> None:
    for i in range(7):
        store.put(f"Patient/p{i}", strings=[name(f"N{i}")] if i % 3 else [])
    query = f"_count=2&_sort={sort}"
    pages = [store.page("Patient", query)]
    while pages[-1].next_cursor:
        pages.append(store.page("Patient", query, pages[-1].next_cursor))
    forward = [v.id for page in pages for v in page.matches]
    named = sorted((f"p{i}" for i in range(7) if i % 3), reverse=sort.startswith("-"))
    assert forward == [*named, "p0", "p3", "p6"]
    back = [pages[-1]]
    while back[-1].previous_cursor:
        back.append(store.page("Patient", query, back[-1].previous_cursor))
    assert [v.id for page in reversed(back) for v in page.matches] == forward


def test_totals(store: Store) -> None:
    for i in range(5):
        store.put(f"Patient/p{i}", strings=[name("Jensen" if i < 3 else "Hansen")])

    assert store.page("Patient", "family=jensen&_count=1").total == 3
    assert store.page("Patient", "family=jensen&_count=1&_total=estimate").total == 3
    assert store.page("Patient", "family=jensen&_total=none").total is None
    assert store.page("Patient", "family=jensen&_count=0").total == 3
    assert store.page("Patient", "family=jensen&_count=0").matches == []
    assert store.page("Patient", "_summary=count&_total=none").total == 5


def test_a_cursor_from_elsewhere_is_refused(store: Store) -> None:
    store.put("Patient/a", strings=[name("Jensen")])
    with pytest.raises(FhirError) as refused:
        store.page("Patient", "", cursor="not-a-cursor")
    assert "_cursor" in str(refused.value)
    for i in range(3):
        store.put(f"Patient/p{i}", strings=[name("X")])
    cursor = store.page("Patient", "_count=1&_sort=family").next_cursor
    with pytest.raises(FhirError):
        store.page("Patient", "_count=1", cursor=cursor)


# Statements built once per shape of search (search_plan.Plan, search_sql._cache, templates.py)


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty template cache: what earlier tests built does not count here."""
    monkeypatch.setattr(search_sql, "_cache", search_sql._Cache(search_sql.SHAPES_KEPT))


def test_searches_of_one_shape_build_their_statements_once(store: Store, fresh_cache: None) -> None:
    store.put("Observation/a", tokens=[("code", LOINC, "1111-1", None)])
    store.put("Observation/b", tokens=[("code", LOINC, "2222-2", None)])
    store.put("Observation/c", tokens=[("code", LOINC, "2222-2", None)])
    store.put("Observation/d", tokens=[("code", LOINC, "1111-1", None)])
    store.ids("Observation", f"code={LOINC}|2222-2&_count=1")
    store.ids("Observation", f"code={LOINC}|9999-9&_sort=code")
    built = search_sql._cache.builds

    # Other values, the same shape: nothing is built, and each search finds its own.
    assert store.page("Observation", f"code={LOINC}|1111-1&_count=1").total == 2
    assert store.ids("Observation", f"code={LOINC}|1111-1&_count=1") == ["a"]
    assert store.ids("Observation", f"code={LOINC}|2222-2&_sort=code") == ["b", "c"]
    assert search_sql._cache.builds == built
    # Another shape (a code without its system) is built once.
    assert store.ids("Observation", "code=2222-2") == ["b", "c"]
    assert search_sql._cache.builds > built
    built = search_sql._cache.builds
    assert store.ids("Observation", "code=1111-1") == ["a", "d"]
    assert search_sql._cache.builds == built


def test_cursors_of_one_shape_share_the_page_statement(store: Store, fresh_cache: None) -> None:
    for i in range(6):
        store.put(f"Patient/p{i}", strings=[name(f"N{i % 3}")])
    ascending = ["p0", "p3", "p1", "p4", "p2", "p5"]
    descending = ["p2", "p5", "p1", "p4", "p0", "p3"]
    assert store.all_pages("Patient", "_count=2&_sort=family") == ascending
    # Descending is another shape; pages of three after it are the same shape.
    assert store.all_pages("Patient", "_count=2&_sort=-family") == descending
    built = search_sql._cache.builds
    assert store.all_pages("Patient", "_count=3&_sort=-family") == descending
    assert search_sql._cache.builds == built


def test_id_lists_of_any_length_are_one_shape(store: Store, fresh_cache: None) -> None:
    for key in "abcde":
        store.put(f"Patient/{key}")
    assert store.ids("Patient", "_id=a") == ["a"]
    built = search_sql._cache.builds

    assert store.ids("Patient", "_id=b,c,e") == ["b", "c", "e"]
    assert store.ids("Patient", "_id=d,x") == ["d"]
    assert search_sql._cache.builds == built


def test_derived_values_follow_each_request(store: Store) -> None:
    # Prefix ends, LIKE patterns and number bounds are values of the request, not of
    # the first request of a shape.
    store.put("Patient/a", strings=[name("Hansen")])
    store.put("Patient/b", strings=[name("Hanna")])
    store.put("Patient/c", strings=[name("Jensen")])
    store.put("Observation/x", quantities=[("value-quantity", 100.0, None, None, "kg")])
    store.put("Observation/y", quantities=[("value-quantity", 50.0, None, None, "kg")])

    assert store.ids("Patient", "family=hans") == ["a"]
    assert store.ids("Patient", "family=hann") == ["b"]
    assert store.ids("Patient", "family=j") == ["c"]
    assert store.ids("Patient", "family:contains=sen") == ["a", "c"]
    assert store.ids("Patient", "family:contains=ann") == ["b"]
    assert store.ids("Observation", "value-quantity=ap100") == ["x"]
    assert store.ids("Observation", "value-quantity=ap50") == ["y"]
    assert store.ids("Observation", "value-quantity=100") == ["x"]
    assert store.ids("Observation", "value-quantity=50.0") == ["y"]


def test_the_cache_keeps_the_shapes_used_last() -> None:
    cache = search_sql._Cache(2)
    built: list[str] = []

    def entry(key: str) -> str:
        return str(cache.get(key, lambda: built.append(key) or key.upper()))

    assert [entry("a"), entry("b"), entry("a"), entry("c")] == ["A", "B", "A", "C"]
    assert len(cache) == 2
    entry("a")
    entry("b")
    assert built == ["a", "b", "c", "b"]


# The caller's scope on statements shared by shape: a caller never runs with another's.

ORGANISATIONS = ("org-a", "org-b")


def _callers(kind: str) -> dict[str, Actor]:
    """Two callers of one kind, each of whom recorded (or is) one of two patients."""
    if kind == "citizen":
        return {
            patient: Actor(kind=ActorKind.citizen, display=patient, patient_id=patient)
            for patient in ("pa", "pb")
        }
    if kind == "clinician":
        return {
            patient: Actor(
                kind=ActorKind.clinician, display=patient, fhir_user=f"Practitioner/{patient}-gp"
            )
            for patient in ("pa", "pb")
        }
    return {
        patient: Actor(kind=ActorKind.client, display=org, organization_id=org, client_id=org)
        for patient, org in zip(("pa", "pb"), ORGANISATIONS, strict=True)
    }


def _save(database: Database, actor: Actor, key: str, patient: str, **rows: object) -> None:
    resource_type, resource_id = key.split("/")
    write = Write(
        resource_type=resource_type,
        id=resource_id,
        version_id=1,
        last_updated=T0,
        method="PUT",
        body=orjson.dumps({"resourceType": resource_type, "id": resource_id}),
        patient_id=patient,
        index=IndexRows(**rows),  # type: ignore[arg-type]
    )
    with database.session(write=True) as session:
        Repository(session, actor).save([write])


def _observation(
    database: Database, actor: Actor, patient: str, number: int, **rows: object
) -> None:
    """Observation `<patient>-<number>` of code 1111-1 (LOINC), saved by `actor`."""
    _save(
        database,
        actor,
        f"Observation/{patient}-{number}",
        patient,
        tokens=[("code", LOINC, "1111-1", None)],
        **rows,
    )


def _search(
    database: Database, actor: Actor, resource_type: str, query: str
) -> tuple[list[str], int | None]:
    """Every match, page by page, and the total the first page gave."""
    request = _request(resource_type, query)
    seen: list[str] = []
    totals: list[int | None] = []
    cursor = None
    with database.session(write=False) as session:
        while True:
            page = Repository(session, actor).search(request, limit=request.count, cursor=cursor)
            seen.extend(v.id for v in page.matches)
            totals.append(page.total)
            if page.next_cursor is None:
                return seen, totals[0]
            cursor = page.next_cursor


@pytest.mark.parametrize("kind", ["citizen", "clinician", "client"])
@pytest.mark.parametrize(
    "query",
    [
        f"code={LOINC}|1111-1&_count=2",
        f"code={LOINC}|1111-1&date=ge2020-01-01&_count=2",
        "code=1111-1&_sort=-date&_count=1",
        "date=ge2020-01-01&_count=0",
        "_id=pa-1,pa-2,pa-3,pb-1,pb-2,pb-3&_sort=_id&_count=2",
    ],
)
def test_one_shape_run_by_two_callers_shows_each_only_their_own(
    database: Database, kind: str, query: str
) -> None:
    callers = _callers(kind)
    for patient, actor in callers.items():
        _save(database, actor, f"Patient/{patient}", patient)
        for i in (1, 2, 3):
            _observation(
                database,
                actor,
                patient,
                i,
                dates=[("date", *day(f"202{i}"))],
                references=[("subject", "Patient", patient, None)],
            )
    everything, total = _search(database, SYSTEM, "Observation", query.replace("_count=0", ""))
    assert len(everything) == total == 6

    # One caller after the other, and back: the same statements, each caller's scope.
    for patient in ("pa", "pb", "pa", "pb"):
        found, total = _search(database, callers[patient], "Observation", query)
        assert total == 3, (kind, patient)
        if "_count=0" in query:
            assert found == []
            continue
        assert sorted(found) == [f"{patient}-{i}" for i in (1, 2, 3)], (kind, patient)


@pytest.mark.parametrize("kind", ["citizen", "clinician", "client"])
def test_a_total_of_one_shape_counts_only_the_callers_own(database: Database, kind: str) -> None:
    callers = _callers(kind)
    for number, (patient, actor) in enumerate(callers.items()):
        for i in range(2 + number):
            _observation(database, actor, patient, i)
    request = _request("Observation", f"code={LOINC}|1111-1&_count=0")
    for patient, expected in (("pa", 2), ("pb", 3), ("pa", 2)):
        with database.session(write=False) as session:
            page = Repository(session, callers[patient]).search(request, limit=0)
        assert page.total == expected, (kind, patient)


def test_chains_and_has_are_built_per_request_in_each_callers_scope(
    database: Database, fresh_cache: None
) -> None:
    callers = _callers("client")
    for patient, actor in callers.items():
        _save(
            database,
            actor,
            f"Patient/{patient}",
            patient,
            tokens=[("identifier", "urn:cpr", patient, None)],
        )
        _save(
            database,
            actor,
            f"Observation/{patient}-1",
            patient,
            tokens=[("code", LOINC, "1111-1", None)],
            references=[("subject", "Patient", patient, None)],
        )
    built = search_sql._cache.builds
    for patient in ("pa", "pb", "pa"):
        for other in ("pa", "pb"):
            chained, _ = _search(
                database,
                callers[patient],
                "Observation",
                f"subject:Patient.identifier=urn:cpr|{other}",
            )
            assert chained == ([f"{patient}-1"] if other == patient else [])
        has, _ = _search(
            database, callers[patient], "Patient", "_has:Observation:subject:code=1111-1"
        )
        assert has == [patient]
    # Only their page skeletons (no values, no scope) are kept.
    assert search_sql._cache.builds - built <= 2
