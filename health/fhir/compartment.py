"""The patient compartment a resource belongs to, decided once at write time.

https://hl7.org/fhir/R4/compartmentdefinition-patient.html. The element paths per type
live in fhir/compartment-patient.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class PatientCompartment:
    def __init__(self, conformance_dir: Path, fhir_base_url: str) -> None:
        document = orjson.loads((conformance_dir / "compartment-patient.json").read_bytes())
        self._paths: dict[str, list[list[str]]] = {
            resource_type: [path.split(".") for path in paths]
            for resource_type, paths in document["paths"].items()
        }
        self._absolute_prefix = f"{fhir_base_url}/Patient/"

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(self._paths) | {"Patient"}

    def owner_path(self, resource_type: str) -> str | None:
        """The element whose Patient reference decides the owner, e.g. `subject`."""
        paths = self._paths.get(resource_type)
        return ".".join(paths[0]) if paths else None

    def patient_of(self, resource: dict[str, Any], resource_id: str) -> str | None:
        """The id of the Patient whose record `resource` is part of, if any."""
        resource_type = resource.get("resourceType")
        if resource_type == "Patient":
            return resource_id
        for path in self._paths.get(str(resource_type), ()):
            for reference in _references_at(resource, path):
                patient_id = self._patient_id(reference)
                if patient_id:
                    return patient_id
        return None

    def _patient_id(self, reference: str) -> str | None:
        if reference.startswith(self._absolute_prefix):
            reference = reference[len(self._absolute_prefix) - len("Patient/") :]
        if not reference.startswith("Patient/"):
            return None
        patient_id = reference[len("Patient/") :].split("/", 1)[0]
        return patient_id or None


def _references_at(node: Any, path: list[str]) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _references_at(item, path)
        return
    if not isinstance(node, dict):
        return
    if not path:
        reference = node.get("reference")
        if isinstance(reference, str):
            yield reference
        return
    yield from _references_at(node.get(path[0]), path[1:])
