"""Search matching semantics over a real database: what each parameter type,
modifier and prefix matches, given hand-made index rows (tests/db/conftest.py).

https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import orjson
import pytest

from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import Write
from health.fhir.search.dates import FAR_FUTURE, FAR_PAST
from health.fhir.search.index_rows import IndexRows
from tests.db.conftest import BASE, T0, Store, _request, day, name, sqlite_plan, statements_run

LOINC = "http://loinc.org"

# string


def test_string_matches_the_start_of_the_normalised_value(store: Store) -> None:
    store.put("Patient/a", strings=[name("Jensen")])
    store.put("Patient/b", strings=[name("Jénsenius")])
    store.put("Patient/c", strings=[name("Hansen")])

    assert store.ids("Patient", "family=jens") == ["a", "b"]
    assert store.ids("Patient", "family=JENSEN") == ["a", "b"]
    assert store.ids("Patient", "family=sen") == []


def test_string_exact_and_contains(store: Store) -> None:
    store.put("Patient/a", strings=[name("Jensen")])
    store.put("Patient/b", strings=[name("jensen")])
    store.put("Patient/c", strings=[name("Hansen")])

    assert store.ids("Patient", "family:exact=Jensen") == ["a"]
    assert store.ids("Patient", "family:contains=NSE") == ["a", "b", "c"]
    assert store.ids("Patient", "family:contains=ans") == ["c"]


def test_like_wildcards_in_the_value_are_literal(store: Store) -> None:
    store.put("Patient/a", strings=[name("50% off")])
    store.put("Patient/b", strings=[name("500 off")])
    store.put("Patient/c", strings=[name("a_b")])
    store.put("Patient/d", strings=[name("axb")])

    assert store.ids("Patient", "family=50%") == ["a"]
    assert store.ids("Patient", "family:contains=_") == ["c"]


def test_a_prefix_matches_exactly_the_values_that_start_with_it(store: Store) -> None:
    # ø keeps no accent to strip and sorts after every ASCII letter; the apostrophe
    # and the hyphen sort before letters, and a linguistic collation would ignore them.
    store.put("Patient/a", strings=[name("Østergaard")])
    store.put("Patient/b", strings=[name("Øst")])
    store.put("Patient/c", strings=[name("Öster")])
    store.put("Patient/d", strings=[name("Øtker")])
    store.put("Patient/e", strings=[name("O'Brien")])
    store.put("Patient/f", strings=[name("Obrien")])
    store.put("Patient/g", strings=[name("O-Bri")])
    store.put("Patient/h", strings=[name("Hansz")])
    store.put("Patient/i", strings=[name("Hans{")])

    assert store.ids("Patient", "family=ØST") == ["a", "b"]
    assert store.ids("Patient", "family=öst") == ["c"]
    assert store.ids("Patient", "family=ø") == ["a", "b", "d"]
    assert store.ids("Patient", "family=o'b") == ["e"]
    assert store.ids("Patient", "family=ob") == ["f"]
    assert store.ids("Patient", "family=o") == ["c", "e", "f", "g"]
    assert store.ids("Patient", "family=hansz") == ["h"]


def test_a_prefix_ending_in_the_highest_code_points(store: Store) -> None:
    last = "\U0010ffff"
    store.put("Patient/a", strings=[name(f"ab{last}")])
    store.put("Patient/b", strings=[name(f"ab{last}{last}z")])
    store.put("Patient/c", strings=[name("ac")])
    store.put("Patient/d", strings=[name("ab")])
    store.put("Patient/e", strings=[name(f"{last}{last}")])
    # The code point after U+D7FF is a surrogate, which no stored string holds.
    store.put("Patient/f", strings=[name("x\ud7ffy")])
    store.put("Patient/g", strings=[name("x\ue000")])

    assert store.ids("Patient", f"family=ab{last}") == ["a", "b"]
    assert store.ids("Patient", f"family=ab{last}{last}") == ["b"]
    assert store.ids("Patient", f"family={last}") == ["e"]
    assert store.ids("Patient", "family=x\ud7ff") == ["f"]
    assert store.ids("Patient", "family=x\ue000") == ["g"]


def test_comma_is_or_repeat_is_and_and_escaped_comma_is_a_value(store: Store) -> None:
    store.put("Patient/a", strings=[name("Jensen"), ("given", "anna", "Anna")])
    store.put("Patient/b", strings=[name("Hansen"), ("given", "anna", "Anna")])
    store.put("Patient/c", strings=[name("Hansen"), ("given", "bo", "Bo")])
    store.put("Patient/d", strings=[name("Smith, Jr")])

    assert store.ids("Patient", "family=jensen,hansen") == ["a", "b", "c"]
    assert store.ids("Patient", "family=hansen&given=anna") == ["b"]
    assert store.ids("Patient", r"family=smith\, jr") == ["d"]


# token


def test_token_system_and_code_forms(store: Store) -> None:
    store.put("Observation/a", tokens=[("code", "http://loinc.org", "1234-5", None)])
    store.put("Observation/b", tokens=[("code", "http://other", "1234-5", None)])
    store.put("Observation/c", tokens=[("code", None, "1234-5", None)])

    assert store.ids("Observation", "code=1234-5") == ["a", "b", "c"]
    assert store.ids("Observation", "code=http://loinc.org|1234-5") == ["a"]
    assert store.ids("Observation", "code=|1234-5") == ["c"]
    assert store.ids("Observation", "code=http://other|") == ["b"]


def test_token_not_includes_resources_without_the_element(store: Store) -> None:
    store.put(
        "Patient/a", tokens=[("gender", "http://hl7.org/fhir/administrative-gender", "male", None)]
    )
    store.put(
        "Patient/b",
        tokens=[("gender", "http://hl7.org/fhir/administrative-gender", "female", None)],
    )
    store.put("Patient/c")

    assert store.ids("Patient", "gender:not=male") == ["b", "c"]
    assert store.ids("Patient", "gender:not=male,female") == ["c"]


def test_token_text_matches_display_words(store: Store) -> None:
    store.put("Observation/a", tokens=[("code", "http://loinc.org", "29463-7", "body weight")])
    store.put("Observation/b", tokens=[("code", "http://loinc.org", "8302-2", "body height")])

    assert store.ids("Observation", "code:text=Weight") == ["a"]
    assert store.ids("Observation", "code:text=body") == ["a", "b"]


def test_identifier_of_type(store: Store) -> None:
    type_system = "http://terminology.hl7.org/CodeSystem/v2-0203"
    store.put(
        "Patient/a",
        tokens=[
            ("identifier", "urn:mrn", "42", None),
            ("identifier:of-type", f"{type_system}|MR", "42", None),
        ],
    )
    store.put("Patient/b", tokens=[("identifier", "urn:mrn", "42", None)])

    assert store.ids("Patient", f"identifier:of-type={type_system}|MR|42") == ["a"]
    assert store.ids("Patient", "identifier=urn:mrn|42") == ["a", "b"]


def test_missing_true_and_false(store: Store) -> None:
    store.put("Patient/a", dates=[("birthdate", *day("1980-02-03"))])
    store.put("Patient/b")

    assert store.ids("Patient", "birthdate:missing=true") == ["b"]
    assert store.ids("Patient", "birthdate:missing=false") == ["a"]


# date


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # stored: a = the day 2020-01-01, b = the instant 2020-01-01T12:00:00Z (one second),
        # c = the month 2020-02, d = Period 2019-12-31 .. 2020-01-02, e = open-ended from 2021
        ("date=2020-01-01", ["a", "b"]),
        ("date=2020-01", ["a", "b"]),
        ("date=2020", ["a", "b", "c"]),
        ("date=ne2020-01-01", ["c", "d", "e"]),
        ("date=gt2020-01-01", ["c", "d", "e"]),
        ("date=ge2020-01-01", ["a", "b", "c", "d", "e"]),
        ("date=lt2020-01-01", ["d"]),
        ("date=le2020-01-01", ["a", "b", "d"]),
        ("date=sa2020-01-01", ["c", "e"]),
        ("date=eb2020-01-01", []),
        ("date=eb2020-02-01", ["a", "b", "d"]),
        ("date=2020-01-01T12:00:00Z", ["b"]),
        ("date=2020-01-01T13:00:00%2B01:00", ["b"]),
        ("date=lt2020-01-01T12:00:00Z", ["a", "d"]),
        ("date=gt2020-01-01T12:00:00Z", ["a", "c", "d", "e"]),
        ("date=ge3000-01-01", ["e"]),
        ("date=lt1900", []),
    ],
)
def test_date_prefixes_over_ranges(store: Store, query: str, expected: list[str]) -> None:
    store.put("Encounter/a", dates=[("date", *day("2020-01-01"))])
    store.put("Encounter/b", dates=[("date", *day("2020-01-01T12:00:00Z"))])
    store.put("Encounter/c", dates=[("date", *day("2020-02"))])
    store.put("Encounter/d", dates=[("date", day("2019-12-31")[0], day("2020-01-02")[1])])
    store.put("Encounter/e", dates=[("date", day("2021-01-01")[0], FAR_FUTURE)])

    assert store.ids("Encounter", query) == expected


def test_an_open_start_matches_everything_before(store: Store) -> None:
    store.put("Encounter/open", dates=[("date", FAR_PAST, day("2020-06-30")[1])])

    assert store.ids("Encounter", "date=lt1800-01-01") == ["open"]
    assert store.ids("Encounter", "date=gt2020-07-01") == []


def test_ap_is_approximately_the_date(store: Store) -> None:
    store.put("Encounter/near", dates=[("date", *day("2000-03-01"))])
    store.put("Encounter/far", dates=[("date", *day("1990-01-01"))])

    # 10% of ~26 years is ~2.6 years either side of 2000-01-01.
    assert store.ids("Encounter", "date=ap2000-01-01") == ["near"]


def test_last_updated_is_the_resource_column(store: Store) -> None:
    store.put("Patient/a")
    store.put("Patient/b")
    second = (T0 + timedelta(seconds=2)).isoformat()

    assert store.ids("Patient", f"_lastUpdated=ge{second}") == ["b"]
    assert store.ids("Patient", f"_lastUpdated=lt{second}") == ["a"]
    assert store.ids("Patient", f"_lastUpdated={second}") == ["b"]
    assert store.ids("Patient", "_lastUpdated=2026-01-01") == ["a", "b"]


def test_on_sqlite_a_patients_date_range_is_read_from_the_patients_own_dates(
    database: Database,
) -> None:
    """Both ends of `date=ge..&date=lt..` in one patient's record come from the patient
    index (migration 0011): while the lookup index was the only one in date order,
    SQLite (no statistics) read every patient's dates before the upper bound."""
    if not database.is_sqlite:
        pytest.skip("SQLite's planner without statistics; PostgreSQL plans from its own")
    writes = [
        Write(
            resource_type="Observation",
            id=f"o{number}",
            version_id=1,
            last_updated=T0,
            method="PUT",
            body=orjson.dumps({"resourceType": "Observation"}),
            patient_id=patient,
            index=IndexRows(dates=[("date", *day(when))]),
        )
        for number, (patient, when) in enumerate(
            [("p1", "2014-06-01"), ("p1", "2016-06-01"), ("p1", "2021-06-01"), ("p2", "2016-06-01")]
        )
    ]
    with database.session(write=True) as session:
        Repository.system(session).save(writes)
    request = dataclasses.replace(
        _request("Observation", "date=ge2015-01-01&date=lt2020-01-01"), patient="p1"
    )
    with (
        statements_run(database.read_engine) as executed,
        database.session(write=False) as session,
    ):
        page = Repository.system(session).search(request, limit=10)
    assert [version.id for version in page.matches] == ["o1"]
    plan = sqlite_plan(database, *next((s, p) for s, p in executed if "search_date" in s))
    dates = [step for step in plan if "search_date" in step]
    assert len(dates) == 2, plan
    assert all("ix_search_date_patient" in step for step in dates), plan


def test_a_patients_conditions_are_each_met_by_a_row_of_their_own(database: Database) -> None:
    """In one patient's record the conditions are intersected as sets of resources:
    `date=ge2015&date=lt2020` holds for a resource with one date before 2015-2020 and
    another after it, as for one with a date within; `:not` still excludes."""
    rows = {
        "o1": ("p1", "laboratory", "2014-06-01", "2021-06-01", "2345-7"),
        "o2": ("p1", "laboratory", "2016-06-01", None, "718-7"),
        "o3": ("p1", "vital-signs", "2016-06-01", None, "2345-7"),
        "o4": ("p1", "laboratory", "2022-06-01", None, "2345-7"),
        "o5": ("p2", "laboratory", "2016-06-01", None, "2345-7"),
    }
    writes = [
        Write(
            resource_type="Observation",
            id=key,
            version_id=1,
            last_updated=T0,
            method="PUT",
            body=orjson.dumps({"resourceType": "Observation"}),
            patient_id=patient,
            index=IndexRows(
                tokens=[("category", None, category, None), ("code", LOINC, code, None)],
                dates=[("date", *day(when)) for when in (first, second) if when],
                references=[("subject", "Patient", patient, None)],
            ),
        )
        for key, (patient, category, first, second, code) in rows.items()
    ]
    with database.session(write=True) as session:
        Repository.system(session).save(writes)
    labs = "subject=Patient/p1&category=laboratory&date=ge2015-01-01&date=lt2020-01-01"

    def matches(query: str) -> tuple[list[str], int | None]:
        request = dataclasses.replace(_request("Observation", query), patient="p1")
        with database.session(write=False) as session:
            page = Repository.system(session).search(request, limit=1)
            total = Repository.system(session).search(request, limit=0).total
        ids = [v.id for v in page.matches]
        while page.next_cursor is not None:
            with database.session(write=False) as session:
                page = Repository.system(session).search(request, limit=1, cursor=page.next_cursor)
            ids += [v.id for v in page.matches]
        return ids, total

    with statements_run(database.read_engine) as executed:
        assert matches(labs) == (["o1", "o2"], 2)
        assert matches(f"{labs}&code:not={LOINC}|718-7") == (["o1"], 1)
    # One SELECT per condition, intersected (each planned on its own index).
    searched = [statement for statement, _ in executed if "search_date" in statement]
    assert searched and all(statement.count("INTERSECT") == 3 for statement in searched)


# quantity


def test_quantity_prefixes_precision_and_units(store: Store) -> None:
    ucum = "http://unitsofmeasure.org"
    store.put("Observation/a", quantities=[("value-quantity", 100.2, ucum, "kg", "kg")])
    store.put("Observation/b", quantities=[("value-quantity", 99.0, ucum, "kg", "kg")])
    store.put("Observation/c", quantities=[("value-quantity", 100.0, None, None, "mg")])

    assert store.ids("Observation", "value-quantity=100") == ["a", "c"]
    assert store.ids("Observation", "value-quantity=100.0") == ["c"]
    assert store.ids("Observation", f"value-quantity=100|{ucum}|kg") == ["a"]
    assert store.ids("Observation", "value-quantity=100||mg") == ["c"]
    assert store.ids("Observation", "value-quantity=gt99.5") == ["a", "c"]
    assert store.ids("Observation", "value-quantity=le99") == ["b"]
    assert store.ids("Observation", "value-quantity=ne100") == ["b"]
    assert store.ids("Observation", "value-quantity=ap95") == ["a", "b", "c"]


# reference, chaining, _has


def test_reference_forms(store: Store) -> None:
    store.put("Observation/a", references=[("subject", "Patient", "p1", None)])
    store.put("Observation/b", references=[("subject", "Group", "p1", None)])
    store.put("Observation/c", references=[("subject", None, None, "http://elsewhere/Patient/9")])

    assert store.ids("Observation", "subject=Patient/p1") == ["a"]
    assert store.ids("Observation", "subject=p1") == ["a", "b"]
    assert store.ids("Observation", "subject:Group=p1") == ["b"]
    assert store.ids("Observation", f"subject={BASE}/Patient/p1") == ["a"]
    assert store.ids("Observation", "subject=http://elsewhere/Patient/9") == ["c"]
    assert store.ids("Observation", "patient=p1") == []


def test_chaining_one_level(store: Store) -> None:
    store.put(
        "Patient/p1", tokens=[("identifier", "urn:cpr", "0101", None)], strings=[name("Jensen")]
    )
    store.put(
        "Patient/p2", tokens=[("identifier", "urn:cpr", "0202", None)], strings=[name("Hansen")]
    )
    store.put("Observation/a", references=[("subject", "Patient", "p1", None)])
    store.put("Observation/b", references=[("subject", "Patient", "p2", None)])

    assert store.ids("Observation", "subject:Patient.identifier=urn:cpr|0101") == ["a"]
    assert store.ids("Observation", "subject.family=hansen") == ["b"]
    assert store.ids("Observation", "subject:Patient.family=nobody") == []


def test_has_one_level(store: Store) -> None:
    store.put("Patient/p1")
    store.put("Patient/p2")
    store.put(
        "Observation/a",
        references=[("subject", "Patient", "p1", None)],
        tokens=[("code", "http://loinc.org", "1234-5", None)],
    )
    store.put(
        "Observation/b",
        references=[("subject", "Patient", "p2", None)],
        tokens=[("code", "http://loinc.org", "9999-9", None)],
    )

    assert store.ids("Patient", "_has:Observation:subject:code=1234-5") == ["p1"]
    assert store.ids("Patient", "_has:Observation:subject:code=0000-0") == []


def test_deleted_resources_do_not_match(store: Store) -> None:
    store.put("Patient/a", strings=[name("Jensen")])
    store.put("Patient/b", strings=[name("Jensen")])
    store.delete("Patient/b")

    assert store.ids("Patient", "family=jensen") == ["a"]
    assert store.ids("Patient", "_id=a,b") == ["a"]
    assert store.ids("Patient", "family:missing=true") == []
