"""The access log of every look: what was disclosed, refused or changed, to whom."""

from __future__ import annotations

from typing import Any


def test_every_resource_disclosed_is_logged_for_its_citizen(world: Any) -> None:
    headers = world.clinician_headers("dr-north")

    world.ids("Observation", headers, patient="anna", _include="Observation:encounter")

    (entry,) = [e.entry for e in world.log("anna")]
    assert entry.action == "search"
    assert entry.agent == "Practitioner/dr-north"
    assert entry.organization == "Organization/north"
    assert entry.purpose == "treatment"
    assert set(entry.entities) == {
        "Observation/anna-lab",
        "Observation/anna-gp",
        "Encounter/anna-north",
        "Encounter/anna-west",
    }
    assert world.log("bo") == []


def test_a_refused_read_is_logged_for_the_citizen_and_answers_404(world: Any) -> None:
    response = world.get("Observation/anna-lab", world.clinician_headers("dr-south"))

    assert response.status_code == 404
    (entry,) = [e.entry for e in world.log("anna")]
    assert entry.outcome == "refused"
    assert entry.agent == "Practitioner/dr-south"
    assert entry.entities == ("Observation/anna-lab",)


def test_a_search_the_rules_empty_is_logged_as_refused_for_the_citizen(world: Any) -> None:
    found = world.ids("Observation", world.clinician_headers("dr-south"), patient="anna")

    assert found == set()
    (entry,) = [e.entry for e in world.log("anna")]
    assert (entry.action, entry.outcome, entry.agent) == (
        "search",
        "refused",
        "Practitioner/dr-south",
    )
    assert set(entry.entities) == {"Observation/anna-lab", "Observation/anna-gp"}


def test_a_search_a_block_cuts_logs_what_was_shown_and_what_was_withheld(world: Any) -> None:
    _anna_blocks(world, "west")

    found = world.ids("Observation", world.clinician_headers("dr-west"), patient="anna")
    everything = world.get("Patient/anna/$everything", world.clinician_headers("dr-north"))

    assert found == set()
    looks = [e.entry for e in world.log("anna") if e.entry.action != "consent"]
    assert [(e.agent, e.action, e.outcome) for e in looks] == [
        ("Practitioner/dr-west", "search", "refused"),
        ("Practitioner/dr-north", "everything", "success"),
    ]
    assert set(looks[0].entities) == {"Observation/anna-lab", "Observation/anna-gp"}
    # dr-north sees all of anna's record: nothing withheld, nothing refused.
    assert everything.status_code == 200


def test_what_the_token_does_not_cover_is_not_a_refusal(world: Any) -> None:
    observations = {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    _anna_blocks(world, "north", {"class": [observations]})
    narrow = world.clinician_headers("dr-north", scope="user/Patient.rs user/Encounter.rs")

    assert world.get("Patient/anna/$everything", narrow).status_code == 200
    assert world.get("Patient/anna/$everything", world.clinician_headers("dr-north-2")).is_success

    looks = [e.entry for e in world.log("anna") if e.entry.action == "everything"]
    assert [(e.agent, e.outcome) for e in looks] == [
        ("Practitioner/dr-north", "success"),
        ("Practitioner/dr-north-2", "success"),
        ("Practitioner/dr-north-2", "refused"),
    ]
    assert set(looks[2].entities) == {"Observation/anna-lab", "Observation/anna-gp"}


def test_each_page_of_everything_logs_what_was_withheld_where_it_lies(world: Any) -> None:
    observations = {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    _anna_blocks(world, "north", {"class": [observations]})

    # By type and id: the two Encounters, then the Organizations (the Observations
    # between them withheld), then the Patient.
    shown = world.ids("Patient/anna/$everything", world.clinician_headers("dr-north"), _count="2")

    assert not {entity for entity in shown if entity.startswith("Observation/")}
    looks = [e.entry for e in world.log("anna") if e.entry.action == "everything"]
    refused = [e for e in looks if e.outcome == "refused"]
    assert len(looks) == len(refused) + 3  # three pages, each a disclosure
    assert [set(e.entities) for e in refused] == [{"Observation/anna-lab", "Observation/anna-gp"}]


def test_everything_shows_only_the_directory_that_what_it_shows_refers_to(world: Any) -> None:
    """The organisations anna's encounters name would say where she was treated: with
    her encounters withheld from north, they are not listed either."""
    encounters = {"system": "http://hl7.org/fhir/resource-types", "code": "Encounter"}
    _anna_blocks(world, "north", {"class": [encounters]})

    shown = world.ids("Patient/anna/$everything", world.clinician_headers("dr-north"))
    at_west = world.ids("Patient/anna/$everything", world.clinician_headers("dr-west"))

    assert shown == {"Patient/anna", "Observation/anna-lab", "Observation/anna-gp"}
    # dr-west, whom nothing blocks, sees the encounters and the organisations they name.
    assert {"Encounter/anna-north", "Organization/north", "Organization/west"} <= at_west


def test_a_page_of_everything_logs_what_it_shows_and_not_the_next(world: Any) -> None:
    """The server reads one resource past the page to know that another page follows;
    the citizen's log must not say that the clinician saw it. Every page names the
    Patient: each is a look at the citizen's record, even one of directory entries."""
    headers = world.clinician_headers("dr-north")
    response = world.get("Patient/anna/$everything", headers, _count="2")

    assert response.status_code == 200
    bundle = response.json()
    shown = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert len(shown) == 2
    assert any(link["relation"] == "next" for link in bundle["link"])
    (look,) = [e.entry for e in world.log("anna") if e.entry.action == "everything"]
    assert look.outcome == "success"
    # By type and id: the two Encounters on this page, the Observations next.
    assert shown == {"Encounter/anna-north", "Encounter/anna-west"}
    assert set(look.entities) == shown | {"Patient/anna"}


def test_the_citizens_own_search_is_never_a_refusal(world: Any) -> None:
    world.ids("Observation", world.citizen_headers("anna"), patient="anna")

    assert [e.entry.outcome for e in world.log("anna")] == ["success"]


def test_a_consent_change_is_logged(world: Any) -> None:
    _anna_blocks(world, "west")

    consent = [e.entry for e in world.log("anna") if e.entry.action == "consent"]
    assert len(consent) == 1
    assert consent[0].entities == ("Consent/anna-blocks-west",)
    assert consent[0].purpose == "self"


def test_the_citizen_reads_their_own_log_as_audit_events(world: Any) -> None:
    world.ids("Observation", world.clinician_headers("dr-north"), patient="anna")

    bundle = world.get("AuditEvent", world.citizen_headers("anna")).json()
    events = [e["resource"] for e in bundle["entry"]]

    assert any(
        agent.get("who", {}).get("reference") == "Practitioner/dr-north"
        for event in events
        for agent in event["agent"]
    )
    other = world.get("AuditEvent", world.citizen_headers("bo")).json()
    assert not any(
        agent.get("who", {}).get("reference") == "Practitioner/dr-north"
        for e in other.get("entry", [])
        for agent in e["resource"]["agent"]
    )


def test_the_log_chain_verifies_after_a_day_of_requests(world: Any) -> None:
    from health.audit.log import AuditLog

    world.ids("Observation", world.clinician_headers("dr-north"), patient="anna")
    world.get("Observation/anna-lab", world.clinician_headers("dr-south"))
    world.ids("Observation", world.citizen_headers("anna"))

    key = world.app.state.settings.audit_key.encode()
    with world.database.session(write=False) as session:
        report = AuditLog(session, key).verify()
    assert report.intact and report.entries >= 3


def test_a_read_and_a_history_are_logged(world: Any) -> None:
    headers = world.clinician_headers("dr-north")
    assert world.get("Observation/anna-gp", headers).status_code == 200
    assert world.get("Observation/anna-gp/_history", headers).status_code == 200

    entries = [e.entry for e in world.log("anna")]
    assert [(e.action, e.entities) for e in entries] == [
        ("read", ("Observation/anna-gp",)),
        ("history", ("Observation/anna-gp",)),
    ]


def _anna_blocks(world: Any, organisation: str, narrowed: dict[str, Any] | None = None) -> None:
    """anna's Consent denying `organisation` (all of her record, or what `narrowed` says)."""
    blocked = {
        "role": {"text": "blocked"},
        "reference": {"reference": f"Organization/{organisation}"},
    }
    world.block(
        "anna",
        f"anna-blocks-{organisation}",
        {"type": "deny", "actor": [blocked], **(narrowed or {})},
    )
