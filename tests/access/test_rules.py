"""One test per access rule (docs/ACCESS.md), over HTTP with real tokens.

`world` is tests/access/conftest.py's World: north and west treat anna, south nobody.
"""

from __future__ import annotations

from typing import Any

ANNA_ALL = {
    "Patient/anna",
    "Encounter/anna-north",
    "Encounter/anna-west",
    "Observation/anna-lab",
    "Observation/anna-gp",
}


def _record(world: Any, clinician: str, **headers: str) -> set[str]:
    """What a clinician finds of anna's record: $everything, without the directory
    (nothing when her Patient itself is hidden: then $everything answers 404)."""
    all_headers = {**world.clinician_headers(clinician), **headers}
    if world.get("Patient/anna/$everything", all_headers).status_code == 404:
        return set()
    found = world.ids("Patient/anna/$everything", all_headers)
    return {r for r in found if r.split("/")[0] in ("Patient", "Encounter", "Observation")}


def test_a_clinician_of_a_treating_organisation_reads_the_whole_record(world: Any) -> None:
    assert _record(world, "dr-north") == ANNA_ALL
    response = world.get("Observation/anna-gp", world.clinician_headers("dr-north"))
    assert response.status_code == 200


def test_a_clinician_without_a_treatment_relationship_sees_nothing(world: Any) -> None:
    headers = world.clinician_headers("dr-south")

    assert world.get("Observation/anna-lab", headers).status_code == 404
    assert world.get("Patient/anna/$everything", headers).status_code == 404
    search = world.get("Observation", headers, patient="anna", _total="accurate").json()
    assert search["total"] == 0 and "entry" not in search
    # The directory is everyone's.
    assert world.get("Organization/north", headers).status_code == 200


def test_a_hidden_resource_answers_exactly_like_a_missing_one(world: Any) -> None:
    headers = world.clinician_headers("dr-south")
    hidden = world.get("Observation/anna-lab", headers)
    missing = world.get("Observation/no-such-thing", headers)

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]


def test_a_relationship_counts_only_within_the_window(world: Any) -> None:
    world.citizen("carl")
    world.encounter("carl-old", "carl", "south", ended=world.days_ago(400))
    world.observation("carl-lab", "carl", by="north")
    assert world.get("Observation/carl-lab", world.clinician_headers("dr-south")).status_code == 404

    world.encounter("carl-new", "carl", "south", ended=world.days_ago(30))
    assert world.get("Observation/carl-lab", world.clinician_headers("dr-south")).status_code == 200


def test_an_encounter_a_clinician_writes_gives_them_no_relationship(world: Any) -> None:
    headers = world.clinician_headers("dr-south", scope="user/*.cruds")
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/anna"},
        "serviceProvider": {"reference": "Organization/south"},
        "period": {"start": world.days_ago(1), "end": world.days_ago(1)},
    }
    assert world.client.post("/fhir/Encounter", json=encounter, headers=headers).status_code == 201

    assert world.get("Observation/anna-lab", headers).status_code == 404


def test_a_clinician_always_sees_what_they_recorded(world: Any) -> None:
    headers = world.clinician_headers("dr-south", scope="user/*.cruds")
    note = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "note"},
        "subject": {"reference": "Patient/anna"},
    }
    created = world.client.post("/fhir/Observation", json=note, headers=headers).json()

    assert world.get(f"Observation/{created['id']}", headers).status_code == 200
    assert world.ids("Observation", headers, patient="anna") == {f"Observation/{created['id']}"}


def test_a_blocked_clinician_sees_nothing_and_their_colleagues_still_do(world: Any) -> None:
    world.block(
        "anna", "anna-blocks-dr-north", {"type": "deny", "actor": [_actor("Practitioner/dr-north")]}
    )

    assert _record(world, "dr-north") == set()
    assert world.ids("Observation", world.clinician_headers("dr-north"), patient="anna") == set()
    assert _record(world, "dr-north-2") == ANNA_ALL


def test_a_blocked_organisation_shuts_out_all_its_clinicians(world: Any) -> None:
    world.block(
        "anna", "anna-blocks-west", {"type": "deny", "actor": [_actor("Organization/west")]}
    )

    assert _record(world, "dr-west") == set()
    assert _record(world, "dr-north") == ANNA_ALL


def test_a_block_can_be_lifted(world: Any) -> None:
    world.block(
        "anna", "anna-blocks-west", {"type": "deny", "actor": [_actor("Organization/west")]}
    )
    response = world.client.delete(
        "/fhir/Consent/anna-blocks-west", headers=world.citizen_headers("anna")
    )
    assert response.status_code in (200, 204)

    assert _record(world, "dr-west") == ANNA_ALL


def test_a_block_of_some_resource_types_hides_only_those(world: Any) -> None:
    world.block(
        "anna",
        "anna-no-labs-for-west",
        {
            "type": "deny",
            "actor": [_actor("Organization/west")],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
        },
    )

    assert _record(world, "dr-west") == ANNA_ALL - {"Observation/anna-lab", "Observation/anna-gp"}


def test_a_block_by_security_label_hides_labelled_resources(world: Any) -> None:
    world.observation("anna-psych", "anna", by="north", label="PSY")
    world.block(
        "anna",
        "anna-psych-private",
        {
            "type": "deny",
            "securityLabel": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
            ],
        },
    )

    assert "Observation/anna-psych" not in _record(world, "dr-west")
    assert _record(world, "dr-west") == ANNA_ALL


def test_a_block_in_the_future_or_past_does_not_apply_now(world: Any) -> None:
    world.block(
        "anna",
        "anna-blocks-later",
        {
            "type": "deny",
            "actor": [_actor("Organization/west")],
            "period": {"start": world.days_ago(-30)},
        },
    )

    assert _record(world, "dr-west") == ANNA_ALL


def test_a_hidden_episode_is_seen_only_by_the_organisation_that_recorded_it(world: Any) -> None:
    world.block(
        "anna",
        "anna-hides-north-stay",
        {
            "type": "deny",
            "data": [{"meaning": "related", "reference": {"reference": "Encounter/anna-north"}}],
        },
    )

    hidden = {"Encounter/anna-north", "Observation/anna-lab"}
    assert _record(world, "dr-west") == ANNA_ALL - hidden
    assert _record(world, "dr-north") == ANNA_ALL


def test_a_clinician_cannot_write_a_citizens_consent(world: Any) -> None:
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/anna"},
        "policyRule": {"coding": [{"code": "OPTIN"}]},
        "provision": {"type": "permit"},
    }
    headers = world.clinician_headers("dr-north", scope="user/*.cruds")

    response = world.client.post("/fhir/Consent", json=consent, headers=headers)

    assert response.status_code == 403


def test_a_citizen_cannot_write_consent_for_someone_else(world: Any) -> None:
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/anna"},
        "policyRule": {"coding": [{"code": "OPTOUT"}]},
        "provision": {"type": "deny", "actor": [_actor("Organization/north")]},
    }

    response = world.client.post("/fhir/Consent", json=consent, headers=world.citizen_headers("bo"))

    assert response.status_code == 403
    assert _record(world, "dr-north") == ANNA_ALL


def test_includes_and_reverse_chains_do_not_reach_through_a_block(world: Any) -> None:
    world.block(
        "anna", "anna-blocks-west", {"type": "deny", "actor": [_actor("Organization/west")]}
    )
    headers = world.clinician_headers("dr-west")

    assert world.ids("Observation", headers, patient="bo", _include="Observation:patient") == {
        "Observation/bo-gp",
        "Patient/bo",
    }
    assert world.ids("Encounter", headers, _revinclude="Observation:encounter") == {
        "Encounter/bo-west",
        "Observation/bo-gp",
    }
    assert world.ids("Patient", headers, **{"_has:Observation:patient:code": "2345-7"}) == {
        "Patient/bo"
    }
    assert world.ids("Observation", headers, **{"patient.name": "anna"}) == set()


def test_history_and_vread_are_filtered_too(world: Any) -> None:
    headers = world.clinician_headers("dr-south")

    assert world.get("Observation/anna-lab/_history/1", headers).status_code == 404
    history = world.get("Observation/_history", headers).json()
    assert all("anna" not in e.get("fullUrl", "") for e in history.get("entry", []))
    assert world.get("Observation/anna-lab/_history", headers).status_code == 404


def test_a_transactions_read_entries_pass_the_same_door(world: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/anna-lab"}},
            {"request": {"method": "GET", "url": "Observation?patient=anna"}},
        ],
    }
    response = world.client.post("/fhir", json=bundle, headers=world.clinician_headers("dr-south"))

    read, search = response.json()["entry"]
    assert read["response"]["status"].startswith("404")
    assert search["resource"]["total"] == 0


def test_under_opt_in_a_treating_organisation_needs_the_citizens_permission(
    world: Any, settings: Any
) -> None:
    settings.access_policy = "opt-in"
    assert _record(world, "dr-north") == set()

    world.block(
        "anna", "anna-permits-north", {"type": "permit", "actor": [_actor("Organization/north")]}
    )

    assert _record(world, "dr-north") == ANNA_ALL
    assert _record(world, "dr-west") == set()


def test_an_auditor_reads_no_patient_data(world: Any, issue_token: Any) -> None:
    token = issue_token(scope="system/*.rs", actor_kind="auditor", fhir_user=None)
    headers = {"Authorization": f"Bearer {token}"}

    assert world.get("Observation/anna-lab", headers).status_code == 404
    assert world.ids("Observation", headers, patient="anna") == set()


def test_a_hospitals_client_reads_back_only_what_its_organisation_recorded(
    world: Any, issue_token: Any
) -> None:
    token = issue_token(
        scope="system/*.rs", actor_kind="client", client_id="north-system", organization_id="north"
    )
    headers = {"Authorization": f"Bearer {token}"}

    assert world.ids("Observation", headers, patient="anna") == {"Observation/anna-lab"}
    assert world.get("Observation/anna-gp", headers).status_code == 404


def _actor(reference: str) -> dict[str, Any]:
    return {
        "role": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                }
            ]
        },
        "reference": {"reference": reference},
    }


def test_a_cancelled_encounter_makes_no_relationship(world: Any) -> None:
    world.citizen("dora")
    world.write(
        {
            "resourceType": "Encounter",
            "id": "dora-cancelled",
            "status": "cancelled",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/dora"},
            "serviceProvider": {"reference": "Organization/south"},
            "period": {"start": world.days_ago(2)},
        },
        by="south",
    )
    world.observation("dora-lab", "dora", by="north")

    assert world.get("Observation/dora-lab", world.clinician_headers("dr-south")).status_code == 404


def test_a_finished_encounter_without_an_end_ends_at_its_start(world: Any) -> None:
    world.citizen("erik")
    world.write(
        {
            "resourceType": "Encounter",
            "id": "erik-long-ago",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/erik"},
            "serviceProvider": {"reference": "Organization/south"},
            "period": {"start": world.days_ago(800)},
        },
        by="south",
    )
    world.observation("erik-lab", "erik", by="north")

    assert world.get("Observation/erik-lab", world.clinician_headers("dr-south")).status_code == 404


def test_a_role_that_ended_gives_no_access_through_its_organisation(world: Any) -> None:
    world.write(
        {
            "resourceType": "PractitionerRole",
            "id": "dr-south-formerly-at-north",
            "practitioner": {"reference": "Practitioner/dr-south"},
            "organization": {"reference": "Organization/north"},
            "period": {"start": world.days_ago(900), "end": world.days_ago(300)},
        },
        by="north",
    )

    assert world.get("Observation/anna-lab", world.clinician_headers("dr-south")).status_code == 404


def test_a_role_a_clinician_wrote_about_themself_gives_nothing(world: Any) -> None:
    world.write_as(
        {
            "resourceType": "PractitionerRole",
            "id": "dr-south-claims-north",
            "practitioner": {"reference": "Practitioner/dr-south"},
            "organization": {"reference": "Organization/north"},
        },
        "Practitioner/dr-south",
    )

    assert world.get("Observation/anna-lab", world.clinician_headers("dr-south")).status_code == 404


def test_a_clinician_never_sees_the_consent_itself_only_its_effect(world: Any) -> None:
    world.block(
        "anna", "anna-blocks-south", {"type": "deny", "actor": [_actor("Organization/south")]}
    )

    headers = world.clinician_headers("dr-north")
    assert world.get("Consent/anna-blocks-south", headers).status_code == 404
    assert world.ids("Consent", headers, patient="anna") == set()
    assert world.get("Consent/anna-blocks-south", world.citizen_headers("anna")).status_code == 200
