"""Benchmark data: the Synthea files in shared/data, and distinct clones of their patients.

The Synthea files are read where they lie (never copied into the repository). A clone
is a patient transaction Bundle with every fullUrl uuid (and so every reference to it and
every resource id that repeats it) replaced by a fresh uuid, and new national-id (SSN)
and Synthea identifier values on the Patient, so that each clone is a different person
to the server. Conditional references (`Practitioner?identifier=...`) are left alone:
they point at the shared provider directory loaded first.

The 2019 set POSTs its Organizations and Practitioners unconditionally, and their
Synthea identifiers are the same as those of the 2021 provider directory. Loaded as
they are, they duplicate those resources, and every conditional reference of the 2021
patients to such an Organization then matches two and is refused (412
multiple-matches, as https://hl7.org/fhir/R4/http.html#trules requires). So the 2019
Bundles are posted as a hospital pushing into a shared record would send them: with
`request.ifNoneExist` on the identifier of each Organization, Practitioner and Location
entry (`conditional_providers`). Nothing else in them changes.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

SMART_2019 = "smart-r4-synthea-2019"
PIPES_2021 = "fhir-data-pipes-hiv-2021"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
# Synthea repeats the patient's own uuid in these identifiers.
SYNTHEA_ID_SYSTEMS = (
    "https://github.com/synthetichealth/synthea",
    "http://hospital.smarthealthit.org",
)
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PROVIDER_PREFIXES = ("hospitalInformation", "practitionerInformation")
_DIRECTORY_TYPES = ("Organization", "Practitioner", "Location")


@dataclass(frozen=True)
class BundleFile:
    """One Bundle to POST: its name (for error messages), its JSON bytes and entry count."""

    name: str
    body: bytes
    entries: int


def synthea_dir(shared_data: Path) -> Path:
    return shared_data / "synthea"


def _load(path: Path, name: str | None = None) -> BundleFile:
    body = path.read_bytes()
    bundle = orjson.loads(body)
    return BundleFile(name or path.name, body, len(bundle.get("entry", [])))


def provider_files(shared_data: Path) -> list[Path]:
    """The 2021 provider directory's files: organisations first, then practitioners."""
    folder = synthea_dir(shared_data) / PIPES_2021
    return [
        path for prefix in _PROVIDER_PREFIXES for path in sorted(folder.glob(f"{prefix}*.json"))
    ]


def patient_files_2021(shared_data: Path) -> list[Path]:
    """The 2021 set's patient transaction Bundles (everything but the provider files)."""
    folder = synthea_dir(shared_data) / PIPES_2021
    return [p for p in sorted(folder.glob("*.json")) if not p.name.startswith(_PROVIDER_PREFIXES)]


def provider_bundles(shared_data: Path) -> list[BundleFile]:
    """The 2021 provider directory (batch, conditional creates): it must be loaded first."""
    return [_load(path, f"{PIPES_2021}/{path.name}") for path in provider_files(shared_data)]


def split_batch(bundle_file: BundleFile, size: int) -> list[BundleFile]:
    """A batch Bundle as batches of at most `size` entries (batch entries are independent)."""
    bundle = orjson.loads(bundle_file.body)
    entries = bundle.get("entry", [])
    if bundle.get("type") != "batch" or len(entries) <= size:
        return [bundle_file]
    return [
        BundleFile(
            f"{bundle_file.name}[{start}:{start + size}]",
            orjson.dumps({**bundle, "entry": entries[start : start + size]}),
            len(entries[start : start + size]),
        )
        for start in range(0, len(entries), size)
    ]


def real_bundles(shared_data: Path) -> list[BundleFile]:
    """Every transaction Bundle of both sets, except the 2021 provider batches."""
    root = synthea_dir(shared_data)
    bundles = [
        conditional_providers(_load(path, f"{SMART_2019}/{path.name}"))
        for path in sorted((root / SMART_2019).glob("*.json"))
    ]
    bundles += [
        _load(path, f"{PIPES_2021}/{path.name}")
        for path in sorted((root / PIPES_2021).glob("*.json"))
        if not path.name.startswith(_PROVIDER_PREFIXES)
    ]
    if not bundles:
        raise FileNotFoundError(f"No Synthea bundles under {root}")
    return bundles


def conditional_providers(bundle_file: BundleFile) -> BundleFile:
    """The Bundle with POSTs of directory resources made conditional on their identifier."""
    bundle = orjson.loads(bundle_file.body)
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        request = entry.get("request") or {}
        identifiers = resource.get("identifier") or []
        if (
            resource.get("resourceType") in _DIRECTORY_TYPES
            and request.get("method") == "POST"
            and not request.get("ifNoneExist")
            and identifiers
            and identifiers[0].get("system")
            and identifiers[0].get("value")
        ):
            system, value = identifiers[0]["system"], identifiers[0]["value"]
            token = f"{quote(system, safe=':/')}|{quote(value, safe='')}"
            request["ifNoneExist"] = f"identifier={token}"
    return BundleFile(bundle_file.name, orjson.dumps(bundle), bundle_file.entries)


def national_ids(bundles: list[BundleFile]) -> set[str]:
    """The SSNs of the Bundles' Patients: the distinct people the server should hold."""
    found = set()
    for bundle_file in bundles:
        for entry in orjson.loads(bundle_file.body).get("entry", []):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Patient":
                found.update(
                    str(identifier["value"])
                    for identifier in resource.get("identifier", [])
                    if identifier.get("system") == SSN_SYSTEM and identifier.get("value")
                )
    return found


def patient_templates(bundles: list[BundleFile]) -> list[BundleFile]:
    """The real bundles that hold a Patient: the ones worth cloning."""
    return [b for b in bundles if _has_patient(b.body)]


def _has_patient(body: bytes) -> bool:
    bundle = orjson.loads(body)
    return any(
        (e.get("resource") or {}).get("resourceType") == "Patient" for e in bundle.get("entry", [])
    )


def clone_bundle(template: BundleFile, number: int, rng: random.Random) -> BundleFile:
    """A distinct patient: fresh uuids for every fullUrl, a new SSN and Synthea ids.

    Entries created conditionally (the directory resources) keep their uuids, which are
    also their identifiers: every clone then finds the same shared Organization.
    """
    bundle = orjson.loads(template.body)
    own_uuids = {
        entry["fullUrl"].removeprefix("urn:uuid:").encode()
        for entry in bundle.get("entry", [])
        if isinstance(entry.get("fullUrl"), str)
        and entry["fullUrl"].startswith("urn:uuid:")
        and not (entry.get("request") or {}).get("ifNoneExist")
    }
    fresh: dict[bytes, bytes] = {
        old: str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode() for old in own_uuids
    }

    def replace(match: re.Match[bytes]) -> bytes:
        return fresh.get(match.group(0), match.group(0))

    # One pass over the text rewrites fullUrls, references and ids alike; uuids that are
    # not this bundle's own (conditional references to the provider directory) stay.
    cloned = orjson.loads(_UUID.sub(replace, template.body))
    for entry in cloned.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient":
            _renumber_patient(resource, number, rng)
    return BundleFile(f"clone-{number}-of-{template.name}", orjson.dumps(cloned), template.entries)


def _renumber_patient(patient: dict[str, Any], number: int, rng: random.Random) -> None:
    synthea_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for identifier in patient.get("identifier", []):
        system = identifier.get("system")
        if system == SSN_SYSTEM:
            # 999-xx-xxxx: never issued as a real SSN, like Synthea's own values.
            identifier["value"] = f"999-{number // 10_000 % 100:02d}-{number % 10_000:04d}"
        elif system in SYNTHEA_ID_SYSTEMS:
            identifier["value"] = synthea_id


def generated_bundles(
    templates: list[BundleFile], count: int, seed: int = 1
) -> Iterator[BundleFile]:
    """`count` clones, cycling through the templates; reproducible for a given seed."""
    rng = random.Random(seed)
    for number in range(count):
        yield clone_bundle(templates[number % len(templates)], number, rng)
