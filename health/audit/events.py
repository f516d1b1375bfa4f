"""An access-log row as a FHIR AuditEvent, after IHE Basic Audit Log Patterns.

https://hl7.org/fhir/R4/auditevent.html and https://profiles.ihe.net/ITI/BALP/. Pure:
a row and the server's base URL in, AuditEvent JSON out.
"""

from __future__ import annotations

from typing import Any

from health.audit.entries import BREAK_GLASS_ACTION, AuditRecord
from health.fhir.versions import instant

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SERVER_NAME = "health FHIR server"

# https://hl7.org/fhir/R4/valueset-audit-event-type.html (DICOM and FHIR's own codes).
_PATIENT_RECORD = {"system": DCM, "code": "110110", "display": "Patient Record"}
_REST = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
_AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
_SECURITY_ALERT = {"system": DCM, "code": "110113", "display": "Security Alert"}


def _interaction(code: str) -> dict[str, str]:
    return {"system": RESTFUL_INTERACTION, "code": code, "display": code}


# action -> (type, subtype, AuditEvent.action): https://hl7.org/fhir/R4/valueset-audit-event-action.html
# Disclosures of a record are "Patient Record" events; the REST interaction is the subtype.
_ACTIONS: dict[str, tuple[dict[str, str], dict[str, str] | None, str]] = {
    "read": (_PATIENT_RECORD, _interaction("read"), "R"),
    "vread": (_PATIENT_RECORD, _interaction("vread"), "R"),
    "history": (_PATIENT_RECORD, _interaction("history-instance"), "R"),
    "search": (_PATIENT_RECORD, _interaction("search-type"), "R"),
    "everything": (_PATIENT_RECORD, _interaction("operation"), "R"),
    "create": (_REST, _interaction("create"), "C"),
    "update": (_REST, _interaction("update"), "U"),
    "delete": (_REST, _interaction("delete"), "D"),
    "patch": (_REST, _interaction("patch"), "U"),
    "transaction": (_REST, _interaction("transaction"), "E"),
    # A portal page that showed part of the record (health/portal/citizen.py).
    "portal": (_PATIENT_RECORD, None, "R"),
    "consent": (_REST, _interaction("update"), "U"),
    "login": (_AUTHENTICATION, {"system": DCM, "code": "110122", "display": "Login"}, "E"),
    "logout": (_AUTHENTICATION, {"system": DCM, "code": "110123", "display": "Logout"}, "E"),
    BREAK_GLASS_ACTION: (
        _SECURITY_ALERT,
        {"system": DCM, "code": "110127", "display": "Emergency Override Started"},
        "E",
    ),
    "proxy": (_PATIENT_RECORD, None, "E"),
}
_UNKNOWN_ACTION = (_REST, None, "E")

# https://terminology.hl7.org/CodeSystem-v3-ActReason.html (PurposeOfUse).
_PURPOSES = {
    "treatment": ("TREAT", "treatment"),
    "emergency": ("ETREAT", "Emergency Treatment"),
    "self": ("PATRQT", "patient requested"),
    # A parent for a child, or a holder of a power of attorney: the patient's legal
    # representative.
    "proxy": ("PWATRNY", "power of attorney"),
    "operations": ("HOPERAT", "healthcare operations"),
    "audit": ("HCOMPL", "health compliance"),
}

# https://hl7.org/fhir/R4/valueset-audit-event-outcome.html: 4 is a minor failure,
# "the action was not successful due to some kind of minor failure (often equivalent
# to an HTTP 400 response)" - here a refusal. 8 (serious failure) is not logged: a
# server error rolls back the transaction the row would be written in.
_OUTCOMES = {"success": "0", "refused": "4"}


def audit_event(record: AuditRecord, base_url: str) -> dict[str, Any]:
    """The row as an AuditEvent (R4), its id the row's seq."""
    entry = record.entry
    event_type, subtype, action = _ACTIONS.get(entry.action, _UNKNOWN_ACTION)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.seq),
        "meta": {"lastUpdated": instant(record.recorded)},
        "type": event_type,
    }
    if subtype is not None:
        event["subtype"] = [subtype]
    event["action"] = action
    event["recorded"] = instant(record.recorded)
    event["outcome"] = _OUTCOMES.get(entry.outcome, "8")
    if entry.outcome == "refused" and entry.detail:
        event["outcomeDesc"] = entry.detail
    code, display = _PURPOSES.get(entry.purpose, (None, None))
    if code is not None:
        event["purposeOfEvent"] = [
            {"coding": [{"system": ACT_REASON, "code": code, "display": display}]}
        ]
    event["agent"] = _agents(record)
    event["source"] = {
        "site": base_url,
        "observer": {"display": SERVER_NAME},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities = _entities(record)
    if entities:
        event["entity"] = entities
    return event


def _agents(record: AuditRecord) -> list[dict[str, Any]]:
    """Who acted (the requestor), on whose behalf, for which organisation, with what app."""
    entry = record.entry
    agents: list[dict[str, Any]] = []
    who = _reference(entry.agent, entry.agent_name)
    if who is not None:
        # BALP: the user is IRCP (information recipient), or PAT when it is the patient.
        is_patient = entry.agent is not None and entry.agent.startswith("Patient/")
        role = (
            {"system": ROLE_CLASS, "code": "PAT", "display": "patient"}
            if is_patient
            else {"system": PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}
        )
        agents.append({"type": {"coding": [role]}, "who": who, "requestor": True})
    if entry.on_behalf_of is not None:
        # R4 has no agent.onBehalfOf: the principal is an agent of its own, not the requestor.
        agents.append(
            {
                "type": {
                    "coding": [{"system": ROLE_CLASS, "code": "PAT", "display": "patient"}],
                    "text": "on behalf of",
                },
                "who": {"reference": entry.on_behalf_of},
                "requestor": False,
            }
        )
    if entry.organization is not None and entry.organization != entry.agent:
        agents.append(
            {
                "type": {
                    "coding": [
                        {"system": ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}
                    ]
                },
                "who": {"reference": entry.organization},
                "requestor": False,
            }
        )
    if entry.client_id is not None:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"value": entry.client_id}},
                "requestor": who is None,
            }
        )
    if not agents:
        # AuditEvent.agent is 1..*: with nobody named, the server itself acted.
        agents.append({"who": {"display": SERVER_NAME}, "requestor": True})
    return agents


def _entities(record: AuditRecord) -> list[dict[str, Any]]:
    """The citizen (role Patient), then each resource disclosed, refused or changed."""
    entry = record.entry
    entities: list[dict[str, Any]] = []
    patient = f"Patient/{entry.patient_id}" if entry.patient_id else None
    if patient is not None:
        entities.append(
            {
                "what": {"reference": patient},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    for reference in entry.entities:
        if reference == patient:
            continue
        entities.append(
            {
                "what": {"reference": reference},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    if entry.detail and entry.outcome != "refused":
        # A break-glass reason, for one: said about what it concerns.
        detail = {"type": "reason", "valueString": entry.detail}
        if entities:
            entities[0]["detail"] = [detail]
        else:
            entities.append({"what": {"display": entry.action}, "detail": [detail]})
    return entities


def _reference(reference: str | None, display: str | None) -> dict[str, str] | None:
    if reference is None and display is None:
        return None
    who: dict[str, str] = {}
    if reference is not None:
        who["reference"] = reference
    if display is not None:
        who["display"] = display
    return who
