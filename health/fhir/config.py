"""What the FHIR layer knows about the server, built once at startup."""

from __future__ import annotations

from dataclasses import dataclass

from health.fhir.compartment import PatientCompartment
from health.fhir.resource_types import ResourceTypes
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.extract import Extractor
from health.settings import Settings


@dataclass(frozen=True)
class FhirConfig:
    settings: Settings
    types: ResourceTypes
    compartment: PatientCompartment
    # Search index rows of each written resource, from the SearchParameter definitions.
    extractor: Extractor
    # The search parameters per type, as search requests are parsed against them.
    search: SearchDefinitions

    @classmethod
    def load(cls, settings: Settings) -> FhirConfig:
        definitions = SearchDefinitions(settings.conformance_dir)
        return cls(
            settings=settings,
            types=ResourceTypes(settings.conformance_dir),
            compartment=PatientCompartment(settings.conformance_dir, settings.fhir_base_url),
            extractor=Extractor(definitions, settings.fhir_base_url),
            search=definitions,
        )
