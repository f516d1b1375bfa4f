"""Access-log rows as FHIR AuditEvents: valid R4B, and saying who, whose, what and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from health.audit.entries import AuditEntry, AuditRecord
from health.audit.events import audit_event

MakeEntry = Any  # tests/audit/conftest.py
BASE = "https://health.example/fhir"


def _event(entry: AuditEntry, recorded: datetime, seq: int = 42) -> dict[str, Any]:
    record = AuditRecord(seq=seq, recorded=recorded, entry=entry, prev_hash="0" * 64, hash="1" * 64)
    event = audit_event(record, BASE)
    AuditEvent.model_validate(event)
    return event


@pytest.mark.parametrize(
    "action",
    [
        "read",
        "vread",
        "history",
        "search",
        "everything",
        "create",
        "update",
        "delete",
        "patch",
        "transaction",
        "portal",
        "consent",
        "login",
        "logout",
        "break-glass",
        "proxy",
        "something-new",
    ],
)
@pytest.mark.parametrize("outcome", ["success", "refused"])
def test_every_action_renders_as_a_valid_audit_event(
    make_entry: MakeEntry, start: datetime, action: str, outcome: str
) -> None:
    _event(make_entry(action=action, outcome=outcome, detail="a reason"), start)


def test_a_disclosure_names_the_clinician_the_organisation_the_app_and_what_was_seen(
    make_entry: MakeEntry, start: datetime
) -> None:
    entry = make_entry("anna", entities=("Patient/anna", "Observation/1", "Condition/2"))
    event = _event(entry, start, seq=7)
    assert event["id"] == "7"
    assert event["type"]["code"] == "110110"
    assert event["subtype"][0]["code"] == "read"
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert event["recorded"] == "2026-03-01T12:00:00.000000Z"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    requestor = event["agent"][0]
    assert requestor["who"] == {"reference": "Practitioner/bo", "display": "Bo Jensen"}
    assert requestor["requestor"] is True
    others = [agent["who"] for agent in event["agent"][1:]]
    assert {"reference": "Organization/nordhavn"} in others
    assert {"identifier": {"value": "test-app"}} in others
    assert event["source"]["site"] == BASE
    # The patient once, in the role Patient, then each disclosed resource.
    assert [(e["what"]["reference"], e["role"]["code"]) for e in event["entity"]] == [
        ("Patient/anna", "1"),
        ("Observation/1", "4"),
        ("Condition/2", "4"),
    ]


@pytest.mark.parametrize(
    ("purpose", "code"),
    [
        ("treatment", "TREAT"),
        ("emergency", "ETREAT"),
        ("self", "PATRQT"),
        ("proxy", "PWATRNY"),
        ("operations", "HOPERAT"),
        ("audit", "HCOMPL"),
    ],
)
def test_the_purpose_is_a_v3_act_reason(
    make_entry: MakeEntry, start: datetime, purpose: str, code: str
) -> None:
    coding = _event(make_entry(purpose=purpose), start)["purposeOfEvent"][0]["coding"][0]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    assert coding["code"] == code


def test_a_portal_view_is_a_read_of_the_patient_record(
    make_entry: MakeEntry, start: datetime
) -> None:
    event = _event(make_entry(action="portal"), start)

    assert event["type"]["code"] == "110110"
    assert event["action"] == "R"


def test_a_refusal_says_why(make_entry: MakeEntry, start: datetime) -> None:
    event = _event(make_entry(outcome="refused", detail="blocked by the citizen"), start)
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "blocked by the citizen"


def test_a_break_glass_grant_carries_its_reason(make_entry: MakeEntry, start: datetime) -> None:
    entry = make_entry(
        "anna",
        action="break-glass",
        purpose="emergency",
        entities=("Patient/anna",),
        detail="unconscious in the ER",
    )
    event = _event(entry, start)
    assert event["type"]["code"] == "110113"
    assert event["subtype"][0]["code"] == "110127"
    assert event["entity"] == [
        {
            "what": {"reference": "Patient/anna"},
            "type": event["entity"][0]["type"],
            "role": event["entity"][0]["role"],
            "detail": [{"type": "reason", "valueString": "unconscious in the ER"}],
        }
    ]


def test_a_proxy_is_logged_on_behalf_of_the_citizen(start: datetime) -> None:
    entry = AuditEntry(
        action="read",
        outcome="success",
        purpose="proxy",
        agent_kind="citizen",
        agent="RelatedPerson/mother",
        agent_name="Mette Hansen",
        organization=None,
        client_id=None,
        on_behalf_of="Patient/child",
        patient_id="child",
        entities=("Immunization/1",),
    )
    agents = _event(entry, start)["agent"]
    assert agents[0]["who"]["reference"] == "RelatedPerson/mother"
    assert agents[1]["who"] == {"reference": "Patient/child"}
    assert agents[1]["requestor"] is False


def test_an_event_without_anyone_named_still_has_an_agent(start: datetime) -> None:
    entry = AuditEntry(
        action="login",
        outcome="refused",
        purpose="self",
        agent_kind="citizen",
        agent=None,
        agent_name=None,
        organization=None,
        client_id=None,
        on_behalf_of=None,
        patient_id=None,
    )
    assert _event(entry, start)["agent"] == [
        {"who": {"display": "health FHIR server"}, "requestor": True}
    ]
