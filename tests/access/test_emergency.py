"""Break the glass: emergency access with a reason, time-limited, logged, shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

REASON = {"X-Break-Glass-Reason": "Unconscious in the emergency department"}


def test_a_blocked_clinician_gets_emergency_access_with_a_reason(world: Any) -> None:
    world.block("anna", "anna-blocks-south", _deny("Organization/south"))
    headers = world.clinician_headers("dr-south")
    assert world.get("Observation/anna-lab", headers).status_code == 404

    response = world.client.get("/fhir/Patient/anna/$everything", headers={**headers, **REASON})

    assert response.status_code == 200
    # The access lasts: the next requests need no header.
    assert world.get("Observation/anna-lab", headers).status_code == 200
    # Only for that citizen.
    assert world.get("Observation/bo-gp", headers).status_code == 404


def test_emergency_access_is_logged_with_its_reason_and_every_look_marked(world: Any) -> None:
    headers = world.clinician_headers("dr-south")
    world.client.get("/fhir/Observation", params={"patient": "anna"}, headers={**headers, **REASON})
    world.get("Observation/anna-gp", headers)

    log = world.log("anna")
    grants = [e for e in log if e.entry.action == "break-glass"]
    assert len(grants) == 1
    assert grants[0].entry.detail == REASON["X-Break-Glass-Reason"]
    assert grants[0].entry.agent == "Practitioner/dr-south"
    looks = [e.entry for e in log if e.entry.action in ("search", "read")]
    assert {e.purpose for e in looks} == {"emergency"}
    assert "Observation/anna-gp" in looks[-1].entities


def test_emergency_access_needs_a_reason_and_one_named_citizen(world: Any) -> None:
    headers = world.clinician_headers("dr-south")

    empty = world.client.get(
        "/fhir/Patient/anna", headers={**headers, "X-Break-Glass-Reason": "  "}
    )
    unnamed = world.client.get("/fhir/Observation", headers={**headers, **REASON})

    assert empty.status_code == unnamed.status_code == 400
    assert world.get("Observation/anna-lab", headers).status_code == 404


def test_only_clinicians_can_break_the_glass(world: Any) -> None:
    response = world.client.get(
        "/fhir/Patient/anna", headers={**world.citizen_headers("bo"), **REASON}
    )

    assert response.status_code == 403
    assert world.log("anna") == []


def test_emergency_access_ends_when_its_time_is_up(world: Any, settings: Any) -> None:
    settings.break_glass_hours = 0.0
    headers = world.clinician_headers("dr-south")

    world.client.get("/fhir/Patient/anna", headers={**headers, **REASON})

    assert world.get("Observation/anna-lab", headers).status_code == 404


def test_the_citizen_sees_the_emergency_access_on_their_front_page_data(world: Any) -> None:
    from datetime import UTC, datetime

    from health.access.actor import Actor, ActorKind
    from health.db.repository import Repository

    world.client.get(
        "/fhir/Patient/anna", headers={**world.clinician_headers("dr-south"), **REASON}
    )
    anna = Actor(kind=ActorKind.citizen, display="Anna", patient_id="anna")
    with world.database.session(write=False) as session:
        since = datetime.now(UTC) - timedelta(days=30)
        accesses = Repository(session, anna).emergency_accesses_to("anna", since)
        others = Repository(session, anna).emergency_accesses_to("bo", since)

    assert [a["practitioner"] for a in accesses] == ["Practitioner/dr-south"]
    assert accesses[0]["reason"] == REASON["X-Break-Glass-Reason"]
    assert others == []


def _deny(reference: str) -> dict[str, Any]:
    return {
        "type": "deny",
        "actor": [{"role": {"text": "blocked"}, "reference": {"reference": reference}}],
    }
