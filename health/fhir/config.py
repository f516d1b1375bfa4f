"""What the FHIR layer knows about the server, built once at startup."""

from __future__ import annotations

from dataclasses import dataclass

from health.fhir.compartment import PatientCompartment
from health.fhir.resource_types import ResourceTypes
from health.settings import Settings


@dataclass(frozen=True)
class FhirConfig:
    settings: Settings
    types: ResourceTypes
    compartment: PatientCompartment

    @classmethod
    def load(cls, settings: Settings) -> FhirConfig:
        return cls(
            settings=settings,
            types=ResourceTypes(settings.conformance_dir),
            compartment=PatientCompartment(settings.conformance_dir, settings.fhir_base_url),
        )
