"""The history interactions: https://hl7.org/fhir/R4/http.html#history

Instance, type and system history, newest first, with `_since`, `_count` and paging
that neither repeats nor skips entries while new versions arrive.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def patient(resource_id: str, **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": resource_id, **elements}


def versions_of(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """(Type/id, etag) of each entry, in the order listed."""
    return [
        (entry["fullUrl"].split("/fhir/", 1)[1], entry["response"]["etag"])
        for entry in bundle.get("entry", [])
    ]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def test_instance_history_lists_every_version_newest_first(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1", gender="male"))
    fhir.put(patient("pat-1", gender="female"))
    fhir.put(patient("pat-1", gender="other"))
    fhir.put(patient("pat-2"))

    bundle = fhir.history("/fhir/Patient/pat-1/_history")

    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert versions_of(bundle) == [
        ("Patient/pat-1", 'W/"3"'),
        ("Patient/pat-1", 'W/"2"'),
        ("Patient/pat-1", 'W/"1"'),
    ]
    assert [e["resource"]["gender"] for e in bundle["entry"]] == ["other", "female", "male"]
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["3", "2", "1"]


def test_history_entries_say_how_each_version_was_made(client: TestClient, fhir: Any) -> None:
    created = fhir.create({"resourceType": "Patient"})
    fhir.put({**created, "active": True})

    bundle = fhir.history(f"/fhir/Patient/{created['id']}/_history")

    update, create = bundle["entry"]
    assert create["request"] == {"method": "POST", "url": "Patient"}
    assert create["response"]["status"].startswith("201")
    assert update["request"] == {"method": "PUT", "url": f"Patient/{created['id']}"}
    assert update["response"]["status"].startswith("200")
    assert update["response"]["lastModified"] == update["resource"]["meta"]["lastUpdated"]
    assert update["fullUrl"] == f"http://testserver/fhir/Patient/{created['id']}"


def test_a_deletion_is_a_history_entry_with_no_resource(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    client.delete("/fhir/Patient/pat-1")
    fhir.put(patient("pat-1", active=True))

    bundle = fhir.history("/fhir/Patient/pat-1/_history")

    revived, deletion, first = bundle["entry"]
    assert deletion["request"] == {"method": "DELETE", "url": "Patient/pat-1"}
    assert "resource" not in deletion
    assert deletion["response"]["etag"] == 'W/"2"'
    assert revived["resource"]["active"] is True
    assert first["resource"]["id"] == "pat-1"


def test_deletions_appear_in_type_and_system_history(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    client.delete("/fhir/Patient/pat-1")

    for path in ("/fhir/Patient/_history", "/fhir/_history"):
        newest = fhir.history(path)["entry"][0]
        assert newest["request"]["method"] == "DELETE", path
        assert "resource" not in newest


def test_type_history_lists_only_that_type(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    fhir.put({"resourceType": "Practitioner", "id": "doc-1"})
    fhir.put(patient("pat-2"))
    fhir.put(patient("pat-1", active=True))

    bundle = fhir.history("/fhir/Patient/_history")

    assert versions_of(bundle) == [
        ("Patient/pat-1", 'W/"2"'),
        ("Patient/pat-2", 'W/"1"'),
        ("Patient/pat-1", 'W/"1"'),
    ]


def test_system_history_lists_every_type_newest_first(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    fhir.put({"resourceType": "Practitioner", "id": "doc-1"})
    fhir.put(patient("pat-1", active=True))

    bundle = fhir.history()

    assert versions_of(bundle) == [
        ("Patient/pat-1", 'W/"2"'),
        ("Practitioner/doc-1", 'W/"1"'),
        ("Patient/pat-1", 'W/"1"'),
    ]


def test_history_of_an_empty_server_is_an_empty_bundle(client: TestClient, fhir: Any) -> None:
    bundle = fhir.history()

    assert bundle["type"] == "history"
    assert bundle.get("entry", []) == []
    assert link(bundle, "next") is None


def test_since_is_an_inclusive_lower_bound(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1", gender="male"))
    second = fhir.put(patient("pat-1", gender="female")).json()
    fhir.put(patient("pat-2"))

    for path in ("/fhir/Patient/pat-1/_history", "/fhir/Patient/_history", "/fhir/_history"):
        bundle = fhir.history(path, _since=second["meta"]["lastUpdated"])
        listed = versions_of(bundle)
        assert ("Patient/pat-1", 'W/"2"') in listed, path
        assert ("Patient/pat-1", 'W/"1"') not in listed, path


def test_since_accepts_an_instant_with_an_offset(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))

    long_ago = fhir.history(_since="2000-01-01T01:00:00+01:00")
    far_ahead = fhir.history(_since="2999-01-01T00:00:00+01:00")
    a_date = fhir.history(_since="2000-01-01")

    assert len(long_ago["entry"]) == 1
    assert far_ahead.get("entry", []) == []
    assert len(a_date["entry"]) == 1


def test_since_is_kept_in_the_next_link(client: TestClient, fhir: Any) -> None:
    for n in range(3):
        fhir.put(patient(f"pat-{n}"))

    first = client.get("/fhir/_history", params={"_count": "1", "_since": "2000-01-01"}).json()

    assert "_since=2000-01-01" in (link(first, "next") or "")


def test_count_pages_through_every_version_exactly_once(client: TestClient, fhir: Any) -> None:
    for n in range(5):
        fhir.put(patient(f"pat-{n}"))
    fhir.put(patient("pat-0", active=True))
    everything = versions_of(fhir.history())

    seen: list[tuple[str, str]] = []
    page = client.get("/fhir/_history", params={"_count": "2"}).json()
    pages = 1
    while True:
        assert len(page.get("entry", [])) <= 2
        seen.extend(versions_of(page))
        next_url = link(page, "next")
        if next_url is None:
            break
        assert next_url.startswith("http://testserver/fhir/_history?")
        page = client.get(next_url).json()
        pages += 1

    assert seen == everything
    assert len(seen) == 6
    assert pages == 3


def test_paging_neither_repeats_nor_skips_when_writes_arrive_between_pages(
    client: TestClient, fhir: Any
) -> None:
    for n in range(4):
        fhir.put(patient(f"pat-{n}"))
    before = versions_of(fhir.history())

    first = client.get("/fhir/_history", params={"_count": "2"}).json()
    # New versions (and a deletion) arrive while the client reads the first page.
    fhir.put(patient("pat-new"))
    fhir.put(patient("pat-0", active=True))
    client.delete("/fhir/Patient/pat-3")
    seen = versions_of(first)
    next_url = link(first, "next")
    while next_url:
        page = client.get(next_url).json()
        seen.extend(versions_of(page))
        next_url = link(page, "next")

    assert seen == before
    assert len(set(seen)) == len(seen)


def test_type_history_pages_stay_within_the_type(client: TestClient, fhir: Any) -> None:
    for n in range(3):
        fhir.put(patient(f"pat-{n}"))
        fhir.put({"resourceType": "Practitioner", "id": f"doc-{n}"})

    seen: list[tuple[str, str]] = []
    next_url: str | None = "/fhir/Practitioner/_history?_count=2"
    while next_url:
        page = client.get(next_url).json()
        seen.extend(versions_of(page))
        next_url = link(page, "next")

    assert [key for key, _ in seen] == [
        "Practitioner/doc-2",
        "Practitioner/doc-1",
        "Practitioner/doc-0",
    ]


def test_count_larger_than_the_history_gives_one_page(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    fhir.put(patient("pat-1", active=True))

    bundle = client.get("/fhir/Patient/pat-1/_history", params={"_count": "50"}).json()

    assert len(bundle["entry"]) == 2
    assert link(bundle, "next") is None
    assert link(bundle, "self")


def test_history_of_an_unknown_resource_is_404(client: TestClient, fhir: Any) -> None:
    response = client.get("/fhir/Patient/nobody/_history")

    assert response.status_code == 404
    fhir.outcome(response)


def test_history_of_a_deleted_resource_is_still_served(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))
    client.delete("/fhir/Patient/pat-1")

    response = client.get("/fhir/Patient/pat-1/_history")

    assert response.status_code == 200
    assert len(response.json()["entry"]) == 2


def test_history_of_an_unknown_type_is_an_error(client: TestClient, fhir: Any) -> None:
    response = client.get("/fhir/Spaceship/_history")

    assert response.status_code in (400, 404)
    assert "Spaceship" in fhir.diagnostics(response)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"_sinse": "2020-01-01"}, "_sinse"),
        ({"identifier": "x"}, "identifier"),
        ({"_at": "2020-01-01"}, "_at"),
        ({"_since": "yesterday"}, "_since"),
        ({"_since": "2020-02-30T00:00:00Z"}, "_since"),
        ({"_count": "ten"}, "_count"),
        ({"_count": "-1"}, "_count"),
        ({"_cursor": "abc"}, "_cursor"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/fhir/_history", "/fhir/Patient/_history", "/fhir/Patient/pat-1/_history"]
)
def test_unknown_or_malformed_history_parameters_are_400(
    client: TestClient, fhir: Any, params: dict[str, str], named: str, path: str
) -> None:
    fhir.put(patient("pat-1"))

    response = client.get(path, params=params)

    assert response.status_code == 400
    outcome = fhir.outcome(response)
    assert named in fhir.diagnostics(response) or named in fhir.expressions(response), outcome


def test_history_format_and_pretty_are_accepted(client: TestClient, fhir: Any) -> None:
    fhir.put(patient("pat-1"))

    response = client.get("/fhir/_history", params={"_format": "json", "_pretty": "true"})

    assert response.status_code == 200
    assert b"\n  " in response.content
    assert len(response.json()["entry"]) == 1
