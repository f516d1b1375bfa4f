"""A batch answers and stores the same whether its entries run one by one or in groups
(health.fhir.transaction._batch_group), for batches drawn at random."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from health.fhir import transaction

CVR = "urn:oid:1.2.208.176.1.1"
IDS = range(3)
KEYS = range(3)
_namespaces = itertools.count()

# One entry of a batch, before it is put into a namespace: (kind, *arguments).
entries = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(IDS),
        st.sampled_from([*KEYS, None]),
        st.text("ab", max_size=2),
    ),
    st.tuples(st.just("put-if-match"), st.sampled_from(IDS), st.integers(1, 3)),
    st.tuples(st.just("create"), st.sampled_from(KEYS)),
    st.tuples(st.just("update-by-key"), st.sampled_from(KEYS), st.text("ab", max_size=2)),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("location"), st.sampled_from(KEYS)),
    st.tuples(st.just("bad")),
    st.tuples(st.just("read"), st.sampled_from(IDS)),
)


def organization(ns: str, key: int | None, **elements: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Organization"}
    resource.update((name, value) for name, value in elements.items() if value)
    if key is not None:
        resource["identifier"] = [{"system": CVR, "value": f"{ns}-{key}"}]
    return resource


def entry(ns: str, drawn: tuple[Any, ...]) -> dict[str, Any]:
    kind, *args = drawn
    if kind == "put":
        number, key, name = args
        resource = organization(ns, key, id=f"{ns}-o{number}", name=name)
        return {
            "resource": resource,
            "request": {"method": "PUT", "url": f"Organization/{ns}-o{number}"},
        }
    if kind == "put-if-match":
        number, version = args
        url = f"Organization/{ns}-o{number}"
        resource = organization(ns, None, id=f"{ns}-o{number}", name="matched")
        return {
            "resource": resource,
            "request": {"method": "PUT", "url": url, "ifMatch": f'W/"{version}"'},
        }
    if kind == "create":
        (key,) = args
        condition = f"identifier={CVR}|{ns}-{key}"
        request = {"method": "POST", "url": "Organization", "ifNoneExist": condition}
        return {"resource": organization(ns, key, name="created"), "request": request}
    if kind == "update-by-key":
        key, name = args
        url = f"Organization?identifier={CVR}|{ns}-{key}"
        return {
            "resource": organization(ns, key, name=name),
            "request": {"method": "PUT", "url": url},
        }
    if kind == "delete":
        (number,) = args
        return {"request": {"method": "DELETE", "url": f"Organization/{ns}-o{number}"}}
    if kind == "location":
        (key,) = args
        run_by = {"reference": f"Organization?identifier={CVR}|{ns}-{key}"}
        location = {"resourceType": "Location", "managingOrganization": run_by}
        return {"resource": location, "request": {"method": "POST", "url": "Location"}}
    if kind == "bad":
        return {
            "resource": {"resourceType": "Organization", "active": "yes"},
            "request": {"method": "POST", "url": "Organization"},
        }
    (number,) = args
    return {"request": {"method": "GET", "url": f"Organization/{ns}-o{number}"}}


class Names:
    """Ids as the two runs can be compared: `o1` for `<ns>-o1`, `new-1` for the first id
    the server made up, and so on."""

    def __init__(self, ns: str) -> None:
        self._ns = ns
        self._made: dict[str, str] = {}

    def __call__(self, resource_id: str) -> str:
        if resource_id.startswith(f"{self._ns}-"):
            return resource_id[len(self._ns) + 1 :]
        return self._made.setdefault(resource_id, f"new-{len(self._made) + 1}")


def batch(ns: str, drawn: list[tuple[Any, ...]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": [entry(ns, d) for d in drawn]}


def run(
    fhir: Any, drawn: list[tuple[Any, ...]], group: int, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The batch's answers and what it left stored, in groups of `group`, in a namespace
    of its own (ids and identifiers), with ids named by `Names`."""
    ns = f"ns{next(_namespaces)}"
    names = Names(ns)
    seeded = fhir.post_bundle(batch(ns, [("put", 0, 0, "a"), ("put", 1, None, "b")]))
    assert seeded.status_code == 200, seeded.text
    with monkeypatch.context() as patched:
        patched.setattr(transaction, "_BATCH_GROUP", group)
        response = fhir.post_bundle(batch(ns, drawn))
    assert response.status_code == 200, response.text
    answers: list[tuple[str, ...]] = []
    locations = []
    for answer in response.json()["entry"]:
        status = answer["response"]["status"].split()[0]
        location = answer["response"].get("location")
        if location is None:
            answers.append((status,))
            continue
        resource_type, resource_id, _, version = location.split("/")
        answers.append((status, resource_type, names(resource_id), version))
        if resource_type == "Location":
            locations.append(resource_id)
    stored: dict[str, Any] = {}
    for number in IDS:
        read = fhir.client.get(f"/fhir/Organization/{ns}-o{number}")
        body = read.json()
        version = body.get("meta", {}).get("versionId")
        stored[f"o{number}"] = (read.status_code, body.get("name"), version)
    for key in KEYS:
        found = fhir.search("Organization", identifier=f"{CVR}|{ns}-{key}")
        stored[f"key {key}"] = sorted(
            (names(o["id"]), o.get("name"), o["meta"]["versionId"]) for o in found
        )
    for location in locations:
        managed_by = fhir.read("Location", location)["managingOrganization"]["reference"]
        stored[names(location)] = names(managed_by.split("/")[1])
    return answers, stored


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=st.lists(entries, min_size=1, max_size=12), group=st.integers(2, 5))
def test_a_batch_answers_and_stores_the_same_in_groups(
    fhir: Any, monkeypatch: pytest.MonkeyPatch, drawn: list[tuple[Any, ...]], group: int
) -> None:
    alone = run(fhir, drawn, 1, monkeypatch)
    grouped = run(fhir, drawn, group, monkeypatch)

    assert grouped == alone
