"""References found once per resource, and the conditional ones among them
(health.fhir.references)."""

from __future__ import annotations

from typing import Any

import pytest

from health.fhir.errors import FhirError
from health.fhir.references import ReferenceResolver, conditional_references, references_in

BASE = "https://health.example/fhir"
ENCOUNTER = {
    "resourceType": "Encounter",
    "subject": {"reference": "Patient?identifier=urn:oid:1.2.208.176.1.2|0101011234"},
    "participant": [
        {"individual": {"reference": f"{BASE}/Practitioner?identifier=npi|1"}},
        {"individual": {"reference": "Practitioner/abc"}},
    ],
    "serviceProvider": {"reference": "https://elsewhere.example/fhir/Organization?name=x"},
    "partOf": {"reference": "urn:uuid:5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a01?x"},
    "extension": [{"valueReference": {"reference": "Location?identifier=sks|A1"}}],
    "text": {"div": "<div>reference?</div>"},
}


def test_every_reference_is_found_with_where_it_sits() -> None:
    found = references_in(ENCOUNTER, "Bundle.entry[2].resource")

    assert [(element["reference"], path) for element, path in found] == [
        (ENCOUNTER["subject"]["reference"], ("Bundle.entry[2].resource", "subject")),
        (
            f"{BASE}/Practitioner?identifier=npi|1",
            ("Bundle.entry[2].resource", "participant", 0, "individual"),
        ),
        ("Practitioner/abc", ("Bundle.entry[2].resource", "participant", 1, "individual")),
        (
            ENCOUNTER["serviceProvider"]["reference"],
            ("Bundle.entry[2].resource", "serviceProvider"),
        ),
        (ENCOUNTER["partOf"]["reference"], ("Bundle.entry[2].resource", "partOf")),
        (
            "Location?identifier=sks|A1",
            ("Bundle.entry[2].resource", "extension", 0, "valueReference"),
        ),
    ]


def test_the_conditional_references_are_those_the_resolver_would_match() -> None:
    found = references_in(ENCOUNTER, "Bundle.entry[0].resource")

    assert sorted(conditional_references(found, BASE)) == [
        ("Location", "identifier=sks|A1"),
        ("Patient", "identifier=urn:oid:1.2.208.176.1.2|0101011234"),
        ("Practitioner", "identifier=npi|1"),
    ]


def test_a_resource_without_conditional_references_has_none() -> None:
    resource = {"resourceType": "Observation", "subject": {"reference": "Patient/1"}}

    assert list(conditional_references(references_in(resource, "Observation"), BASE)) == []


def test_a_reference_that_cannot_be_resolved_is_named_by_its_path() -> None:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "performer": [{"reference": "Practitioner/a"}, {"reference": "urn:uuid:nowhere"}],
    }
    resolver = ReferenceResolver(None, {}, BASE)  # type: ignore[arg-type]  # no lookups

    with pytest.raises(FhirError) as refused:
        resolver.rewrite(resource, "Bundle.entry[4].resource")

    assert refused.value.issues[0].expression == (
        "Bundle.entry[4].resource.performer[1].reference",
    )
