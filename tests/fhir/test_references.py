"""Conditional references found ahead of resolving them (health.fhir.references)."""

from __future__ import annotations

from health.fhir.references import conditional_references

BASE = "https://health.example/fhir"


def test_every_conditional_reference_is_found_wherever_it_is() -> None:
    resource = {
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

    assert sorted(conditional_references(resource, BASE)) == [
        ("Location", "identifier=sks|A1"),
        ("Patient", "identifier=urn:oid:1.2.208.176.1.2|0101011234"),
        ("Practitioner", "identifier=npi|1"),
    ]


def test_a_resource_without_conditional_references_has_none() -> None:
    resource = {"resourceType": "Observation", "subject": {"reference": "Patient/1"}}

    assert list(conditional_references(resource, BASE)) == []
