"""The patient compartment a resource is stored under."""

from __future__ import annotations

from health import PROJECT_ROOT
from health.fhir.compartment import PatientCompartment

BASE = "https://health.example/fhir"
compartment = PatientCompartment(PROJECT_ROOT / "fhir", BASE)


def test_a_patient_owns_itself() -> None:
    assert compartment.patient_of({"resourceType": "Patient"}, "p1") == "p1"


def test_subject_reference_decides_the_owner() -> None:
    observation = {"resourceType": "Observation", "subject": {"reference": "Patient/p7"}}
    assert compartment.patient_of(observation, "o1") == "p7"


def test_absolute_references_to_this_server_and_versioned_references_count() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"{BASE}/Patient/p8/_history/2"},
    }
    assert compartment.patient_of(condition, "c1") == "p8"


def test_references_to_other_servers_or_types_do_not() -> None:
    other_server = {
        "resourceType": "Observation",
        "subject": {"reference": "https://elsewhere.example/fhir/Patient/p9"},
    }
    group = {"resourceType": "Observation", "subject": {"reference": "Group/g1"}}
    assert compartment.patient_of(other_server, "o1") is None
    assert compartment.patient_of(group, "o2") is None


def test_nested_paths_and_lists_are_followed() -> None:
    appointment = {
        "resourceType": "Appointment",
        "participant": [
            {"actor": {"reference": "Practitioner/d1"}},
            {"actor": {"reference": "Patient/p3"}},
        ],
    }
    assert compartment.patient_of(appointment, "a1") == "p3"


def test_directory_resources_belong_to_no_patient() -> None:
    organization = {"resourceType": "Organization", "partOf": {"reference": "Patient/p1"}}
    assert compartment.patient_of(organization, "org1") is None
