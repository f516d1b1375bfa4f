"""Synthea patient records, as a hospital would push them, load whole and intact.

Two generations of Synthea output (see ../shared/data/SOURCES.md): the 2019 bundles
carry everything they refer to; the 2021 HIV set refers to practitioners, organisations
and locations only by conditional references (`Practitioner?identifier=...`), which
the provider files, `batch` Bundles of conditional creates, must be loaded for first.
After loading, every resource of a file is stored once, equal to what was sent apart
from its new id and meta, with every reference pointing at a stored resource.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.shared_data

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

SYNTHEA_2019 = "synthea/smart-r4-synthea-2019"
FILES_2019 = (
    "Antonio_Castellanos_6d2eba67-5b4a-403f-a29f-e6da3f1ea963.json",
    "Cathryn_Windler_5b477e00-ba36-4786-b672-a2816b3b9149.json",
    "Denny_Bins_bc0fbd67-bfe3-46c8-8ce9-ef20b0705b46.json",
    "Ervin_Cummings_24d4311c-8afb-402e-8917-1063d6ba85a5.json",
    "Hunter_Herman_b4325a63-d0f9-4d84-90e7-0e94d1d79f0a.json",
    "Karena_Pfeffer_1f99a0cb-594b-476a-b9cb-502594c1ee6b.json",
    "Lyndia_Bergstrom_e3891927-7e52-481f-bb5b-da37bad068fa.json",
    "Pierre_Bosco_85812c4a-7b8e-4754-aaa4-64b3aef16f7e.json",
    "Reginald_Auer_d46fae79-67eb-4721-a300-238c8eb943eb.json",
    "Wendy_Littel_e52450ac-3b5b-433c-9ece-2f6dbc61ef97.json",
    "hospitalInformation1559319163815.json",
    "practitionerInformation1559319163815.json",
)
SYNTHEA_2021 = "synthea/fhir-data-pipes-hiv-2021"
PROVIDERS_2021 = (
    "hospitalInformation1633536936158.json",
    "practitionerInformation1633536936158.json",
)
PATIENTS_2021 = (
    "Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json",
    "Danny396_Nikolaus26_7c329741-c2b4-e67a-f9ed-71e5b3dde79c.json",
    "Emery884_Johnston597_aeff9fe6-13d5-5391-30df-8a2913a25557.json",
    "Francisco472_Guardado953_14827fac-364b-9149-bb4f-840c3d51f23f.json",
    "Lawrence741_Hammes673_6d44fe03-2478-a82d-7495-3a7c433ed921.json",
    "Mose244_Fritsch593_ba5b0d1a-c3ad-b981-6b09-64c874c7148f.json",
)


def _read(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())  # type: ignore[no-any-return]


def _post_bundle(client: TestClient, path: Path) -> dict[str, Any]:
    """POST a file, as it lies, to the base URL; the response Bundle."""
    response = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
    assert response.status_code == 200, response.text[:2000]
    return response.json()  # type: ignore[no-any-return]


def _type_counts(bundle: dict[str, Any]) -> Counter[str]:
    return Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])


def _totals(client: TestClient, resource_types: set[str]) -> Counter[str]:
    """How many current resources of each type the server holds."""
    totals: Counter[str] = Counter()
    for resource_type in resource_types:
        response = client.get(f"/fhir/{resource_type}", params={"_count": "0"})
        assert response.status_code == 200, response.text
        totals[resource_type] = response.json()["total"]
    return totals


def _locations(bundle: dict[str, Any], response: dict[str, Any], status: str) -> list[str]:
    """`Type/id` of what each entry wrote, checking every entry answered `status`."""
    assert response["type"] == f"{bundle['type']}-response"
    assert len(response["entry"]) == len(bundle["entry"])
    written = []
    for index, (sent, answer) in enumerate(zip(bundle["entry"], response["entry"], strict=True)):
        assert answer["response"]["status"] == status, (index, answer)
        resource_type, resource_id, *_ = answer["response"]["location"].split("/")
        assert resource_type == sent["resource"]["resourceType"], (index, answer)
        written.append(f"{resource_type}/{resource_id}")
    return written


def _with_references(node: Any, targets: dict[str, str]) -> Any:
    """`node` with every reference found in `targets` replaced by its target."""
    if isinstance(node, dict):
        return {
            key: targets.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _with_references(value, targets)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_with_references(item, targets) for item in node]
    return node


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            ref
            for key, value in node.items()
            for ref in ([value] if key == "reference" else _references(value))
        ]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def _stored(client: TestClient, locations: list[str]) -> dict[str, dict[str, Any]]:
    """The stored resources at `locations`, found by one _id search per type."""
    ids_by_type: dict[str, list[str]] = {}
    for location in locations:
        resource_type, resource_id = location.split("/")
        ids_by_type.setdefault(resource_type, []).append(resource_id)
    stored: dict[str, dict[str, Any]] = {}
    for resource_type, ids in ids_by_type.items():
        response = client.post(
            f"/fhir/{resource_type}/_search",
            content=f"_id={','.join(ids)}&_count=1000",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200, response.text
        found = response.json()
        # The per-file count: every resource of this type in the file is stored once.
        assert found["total"] == len(ids) == len(set(ids)), resource_type
        for entry in found["entry"]:
            resource = entry["resource"]
            stored[f"{resource['resourceType']}/{resource['id']}"] = resource
    return stored


def _check_patient_file(
    client: TestClient, path: Path, conditional_targets: dict[str, str]
) -> None:
    """Load one patient transaction and check what was stored against the file."""
    bundle = _read(path)
    locations = _locations(bundle, _post_bundle(client, path), "201 Created")
    stored = _stored(client, locations)

    targets = {
        **conditional_targets,
        **{
            entry["fullUrl"]: location
            for entry, location in zip(bundle["entry"], locations, strict=True)
        },
    }
    for index, (entry, location) in enumerate(zip(bundle["entry"], locations, strict=True)):
        sent = _with_references(entry["resource"], targets)
        unresolved = [r for r in _references(sent) if r.startswith("urn:uuid:") or "?" in r]
        assert not unresolved, (index, unresolved)
        got = dict(stored[location])
        meta = {k: v for k, v in got.pop("meta").items() if k not in ("versionId", "lastUpdated")}
        if meta:
            got["meta"] = meta
        del got["id"], sent["id"]
        assert got == sent, (index, location)

    patients = [location for location in locations if location.startswith("Patient/")]
    assert len(patients) == 1
    observations = [r for loc, r in stored.items() if loc.startswith("Observation/")]
    assert observations
    assert {o["subject"]["reference"] for o in observations} == {patients[0]}


def test_the_synthea_folders_hold_the_bundles_listed_here(shared_data: Path) -> None:
    # Every bundle is loaded below by name; a file added to the data fails here first.
    in_2019 = sorted(path.name for path in (shared_data / SYNTHEA_2019).glob("*.json"))
    in_2021 = sorted(path.name for path in (shared_data / SYNTHEA_2021).glob("*.json"))
    assert in_2019 == sorted(FILES_2019)
    assert in_2021 == sorted([*PROVIDERS_2021, *PATIENTS_2021])


@pytest.mark.parametrize("name", FILES_2019)
def test_a_2019_synthea_bundle_loads_whole_as_one_transaction(
    client: TestClient, shared_data: Path, name: str
) -> None:
    path = shared_data / SYNTHEA_2019 / name
    counts = _type_counts(_read(path))

    if name.startswith(("hospitalInformation", "practitionerInformation")):
        locations = _locations(_read(path), _post_bundle(client, path), "201 Created")
        assert len(_stored(client, locations)) == len(locations)
    else:
        _check_patient_file(client, path, conditional_targets={})

    # On an empty database the server now holds exactly what the file holds.
    assert _totals(client, set(counts)) == counts


def test_the_2021_hiv_set_loads_on_its_providers_and_reloading_them_adds_nothing(
    client: TestClient, shared_data: Path
) -> None:
    folder = shared_data / SYNTHEA_2021
    providers = [_read(folder / name) for name in PROVIDERS_2021]
    provider_counts = sum((_type_counts(b) for b in providers), Counter[str]())

    conditional_targets: dict[str, str] = {}
    first_load: list[list[str]] = []
    for name, bundle in zip(PROVIDERS_2021, providers, strict=True):
        assert bundle["type"] == "batch"
        locations = _locations(bundle, _post_bundle(client, folder / name), "201 Created")
        first_load.append(locations)
        for entry, location in zip(bundle["entry"], locations, strict=True):
            condition = entry["request"].get("ifNoneExist")
            if condition:
                conditional_targets[f"{entry['resource']['resourceType']}?{condition}"] = location
    assert _totals(client, set(provider_counts)) == provider_counts

    patient_counts: Counter[str] = Counter()
    for name in PATIENTS_2021:
        _check_patient_file(client, folder / name, conditional_targets)
        patient_counts += _type_counts(_read(folder / name))
    everything = provider_counts + patient_counts
    assert _totals(client, set(everything)) == everything

    # Loading the provider files again: every conditional create finds what the first
    # load stored, and answers with it.
    for name, bundle, locations in zip(PROVIDERS_2021, providers, first_load, strict=True):
        again = _post_bundle(client, folder / name)
        for index, (entry, answer) in enumerate(zip(bundle["entry"], again["entry"], strict=True)):
            if entry["request"].get("ifNoneExist"):
                assert answer["response"]["status"] == "200 OK", (index, answer)
                assert answer["response"]["location"].startswith(f"{locations[index]}/"), index
    kept = {"Organization", "Location", "Practitioner"}
    assert _totals(client, kept) == {t: everything[t] for t in kept}
    # PractitionerRole is not checked: the file POSTs its PractitionerRole entries
    # without ifNoneExist, so under plain FHIR semantics the second load stores all
    # 1191 of them again. Deduplicating those is ingest's business, not the REST API's.
