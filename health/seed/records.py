"""A citizen's record as one organisation holds it, as a FHIR transaction Bundle.

One Bundle per (citizen, organisation), shaped like a push from that organisation's
own record system (see `source.py`): the citizen's Patient with their CPR number, and
what the organisation recorded. Output is a pure function of the world and the load
date: every random draw comes from a generator seeded with the citizen, the
organisation and the event, and every id is derived from where the resource comes
from in world.json. Events whose date lies after the load date have not happened yet
and are left out, except appointments, which are booked ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from health.seed import contacts
from health.seed.directory import fhir_address, human_name, organisation_reference
from health.seed.source import ATC, SNOMED, TERMINOLOGY, SourceRecord, concept
from health.seed.vaccinations import vaccination_doses
from health.seed.world import CPR_SYSTEM, Citizen, Organisation, Relation, World

_ROLE_CODE = f"{TERMINOLOGY}/v3-RoleCode"
_RELATIONSHIP = {
    "FTH": ("father", "Far"),
    "MTH": ("mother", "Mor"),
    "DAU": ("natural daughter", "Datter"),
    "SON": ("natural son", "Søn"),
}
# What the relative may do for the citizen, as a v3-RoleCode next to the kinship.
_AUTHORITY = {
    "parental-custody": ("GUARD", "guardian", "Forældremyndighed"),
    "power-of-attorney": ("POWATT", "power of attorney", "Fuldmagt"),
}
# https://hl7.org/fhir/R4/codesystem-immunization-origin.html
_IMMUNIZATION_ORIGIN = f"{TERMINOLOGY}/immunization-origin"


@dataclass(frozen=True)
class SeedPush:
    """One organisation's push of what it holds about one citizen."""

    citizen: Citizen
    organisation: Organisation

    @property
    def name(self) -> str:
        return f"{self.citizen.person.key}@{self.organisation.key}"


def world_pushes(world: World) -> list[SeedPush]:
    """Every citizen's pushes, citizen by citizen, their GP's first."""
    return [
        SeedPush(citizen, world.organisations[key])
        for citizen in world.citizens.values()
        for key in citizen.organisations
    ]


def citizen_bundle(
    world: World, citizen: Citizen, organisation: Organisation, today: date
) -> dict[str, Any]:
    """What `organisation` records about `citizen` up to `today`, plus booked appointments."""
    record = SourceRecord(world, citizen, organisation, today)
    # Every system sends the citizen as it knows them, national ID included: the
    # push path matches that to the citizen's one Patient, whoever pushed first.
    _patient(record)
    if organisation.key == citizen.gp:
        # The GP knows who may act for the citizen.
        for relation in world.relations:
            if relation.citizen == citizen.person.key:
                _related_person(record, relation)
    for index, event in enumerate(citizen.events):
        if event["org"] != organisation.key:
            continue
        handler = _EVENTS.get(event["type"])
        if handler is None:
            raise ValueError(f"{citizen.person.key}: unknown event type {event['type']!r}")
        record.reseed(str(index))
        handler(record, str(index), event)
    return {"resourceType": "Bundle", "type": "transaction", "entry": record.entries}


def _patient(record: SourceRecord) -> None:
    """The citizen's demographics as the CPR register gives them to every system."""
    person = record.citizen.person
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"use": "official", "system": CPR_SYSTEM, "value": person.cpr}],
        "active": True,
        "name": [human_name(person)],
        "gender": person.gender,
        "birthDate": person.birth_date.isoformat(),
        "generalPractitioner": [
            organisation_reference(record.world.organisations[record.citizen.gp])
        ],
        "communication": [
            {"language": concept("urn:ietf:bcp:47", "da", "Dansk"), "preferred": True}
        ],
    }
    if person.phone:
        patient["telecom"] = [{"system": "phone", "value": person.phone, "use": "mobile"}]
    if person.address:
        patient["address"] = [fhir_address(person.address, use="home")]
    record.entries.append(
        {
            "fullUrl": record.patient["reference"],
            "resource": patient,
            "request": {"method": "POST", "url": "Patient"},
        }
    )


def _related_person(record: SourceRecord, relation: Relation) -> None:
    relative = record.world.person(relation.relative)
    kinship, kinship_text = _RELATIONSHIP[relation.relationship]
    code, display, text = _AUTHORITY[relation.authority]
    body: dict[str, Any] = {
        "identifier": [{"use": "official", "system": CPR_SYSTEM, "value": relative.cpr}],
        "active": True,
        "patient": record.patient,
        "relationship": [
            concept(_ROLE_CODE, relation.relationship, kinship, kinship_text),
            concept(_ROLE_CODE, code, display, text),
        ],
        "name": [human_name(relative)],
        "gender": relative.gender,
        "birthDate": relative.birth_date.isoformat(),
        "period": {"start": relation.since.isoformat()},
    }
    if relative.phone:
        body["telecom"] = [{"system": "phone", "value": relative.phone, "use": "mobile"}]
    if relative.address:
        body["address"] = [fhir_address(relative.address, use="home")]
    record.add("RelatedPerson", f"relation/{relation.relative}", body)


def _condition(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    onset = record.date(event["onset"])
    if onset > record.today:
        return
    abatement = record.date(event["abatement"]) if "abatement" in event else None
    resolved = abatement is not None and abatement <= record.today
    category, category_display = (
        ("problem-list-item", "Problem List Item")
        if record.organisation.kind == "gp"
        else ("encounter-diagnosis", "Encounter Diagnosis")
    )
    status, status_display = ("resolved", "Resolved") if resolved else ("active", "Active")
    body: dict[str, Any] = {
        "clinicalStatus": concept(f"{TERMINOLOGY}/condition-clinical", status, status_display),
        "verificationStatus": concept(
            f"{TERMINOLOGY}/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [concept(f"{TERMINOLOGY}/condition-category", category, category_display)],
        "code": record.diagnosis(event["code"]),
        "subject": record.patient,
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
        "recorder": record.clinician(event),
        "asserter": record.clinician(event),
    }
    if resolved and abatement is not None:
        body["abatementDateTime"] = abatement.isoformat()
    if "note" in event:
        body["note"] = [{"text": event["note"]}]
    record.add("Condition", scope, body)


def _medication(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    """A prescription (MedicationRequest), or what the citizen reports taking."""
    start = record.date(event["start"])
    if start > record.today:
        return
    end = record.date(event["end"]) if "end" in event else None
    ended = end is not None and end <= record.today
    period = {"start": start.isoformat()}
    if ended and end is not None:
        period["end"] = end.isoformat()
    status = "completed" if ended else "active"
    if event.get("statement"):
        body: dict[str, Any] = {
            "status": status,
            "medicationCodeableConcept": record.medicine(event["atc"]),
            "subject": record.patient,
            "effectivePeriod": period,
            "dateAsserted": record.moment(start).isoformat(),
            "informationSource": record.patient,
            "reasonCode": [record.diagnosis(event["reason"])],
            "dosage": [{"text": event["dosage"]}],
        }
        record.add("MedicationStatement", scope, body)
        return
    body = {
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": record.medicine(event["atc"]),
        "subject": record.patient,
        "authoredOn": record.moment(start).isoformat(),
        "requester": record.clinician(event),
        "reasonCode": [record.diagnosis(event["reason"])],
        "dosageInstruction": [{"text": event["dosage"]}],
        "dispenseRequest": {"validityPeriod": period},
    }
    record.add("MedicationRequest", scope, body)


def _referral(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    day = record.date(event["date"])
    if day > record.today:
        return
    receiver = record.world.organisations[event["to"]]
    body = {
        "status": event.get("status", "active"),
        "intent": "order",
        "priority": "routine",
        "category": [concept(SNOMED, "3457005", "Patient referral", "Henvisning")],
        "code": {"text": f"Henvisning til {receiver.name}"},
        "subject": record.patient,
        "authoredOn": record.moment(day).isoformat(),
        "requester": record.clinician(event),
        "performer": [organisation_reference(receiver)],
        "reasonCode": [record.diagnosis(event["code"])],
        "note": [{"text": event["text"]}],
    }
    record.add("ServiceRequest", scope, body)


def _allergy(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    day = record.date(event["date"])
    if day > record.today:
        return
    allergen = record.catalogue["allergens"][event["substance"]]
    code = (
        concept(SNOMED, allergen["snomed"], allergen["display"])
        if "snomed" in allergen
        else {"text": allergen["display"]}
    )
    body = {
        "clinicalStatus": concept(f"{TERMINOLOGY}/allergyintolerance-clinical", "active", "Active"),
        "verificationStatus": concept(
            f"{TERMINOLOGY}/allergyintolerance-verification", "confirmed", "Confirmed"
        ),
        "type": "allergy",
        "category": [event["category"]],
        "criticality": event["criticality"],
        "code": code,
        "patient": record.patient,
        "onsetDateTime": day.isoformat(),
        "recordedDate": day.isoformat(),
        "recorder": record.clinician(event),
        "reaction": [
            {
                "manifestation": [{"text": event["reaction"]}],
                "severity": "severe" if event["criticality"] == "high" else "mild",
            }
        ],
    }
    record.add("AllergyIntolerance", scope, body)


def _vaccines(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    """Doses given here, or (with `reported`) given elsewhere and recorded here."""
    reported = record.date(event["reported"]) if "reported" in event else None
    if reported is not None and reported > record.today:
        return
    doses = vaccination_doses(
        event,
        record.citizen.person,
        record.catalogue,
        record.today,
        record.date,
        lambda key: record.random(f"{scope}/{key}/day"),
    )
    for dose in doses:
        record.reseed(f"{scope}/{dose.key}")
        vaccine = record.catalogue["vaccines"][dose.vaccine]
        given = record.moment(dose.day).isoformat()
        body: dict[str, Any] = {
            "status": "completed",
            "vaccineCode": concept(ATC, vaccine["atc"], vaccine["display"]),
            "patient": record.patient,
            "occurrenceDateTime": given,
        }
        if reported is None:
            lot = f"{record.rng.choice('ABCDEFGHJK')}{record.rng.randint(10000, 99999)}"
            body |= {
                "recorded": given,
                "primarySource": True,
                "lotNumber": lot,
                "performer": [{"actor": record.clinician(event)}],
            }
        else:
            # The same fact as the giver's record of it (health.ingest.facts links them).
            body |= {
                "recorded": record.moment(reported).isoformat(),
                "primarySource": False,
                "reportOrigin": concept(
                    _IMMUNIZATION_ORIGIN, "provider", "Other Provider", "Oplyst af egen læge"
                ),
            }
        if dose.series:
            body["protocolApplied"] = [
                {"series": dose.series, "doseNumberPositiveInt": dose.number}
            ]
        record.add("Immunization", f"{scope}/{dose.key}", body)


def _appointment(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    day = record.date(event["date"])
    start = record.moment(day)
    booked = min(day, record.today) - timedelta(days=record.rng.randint(3, 30))
    participants = [record.patient, record.clinician(event), record.location(event)]
    body = {
        "status": "booked" if day > record.today else "fulfilled",
        "description": event["text"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=event["minutes"])).isoformat(),
        "minutesDuration": event["minutes"],
        "created": booked.isoformat(),
        "participant": [
            {"actor": actor, "required": "required", "status": "accepted"} for actor in participants
        ],
    }
    record.add("Appointment", scope, body)


# The event types of world.json and what each becomes.
_EVENTS: dict[str, Callable[[SourceRecord, str, dict[str, Any]], None]] = {
    "condition": _condition,
    "visit": contacts.visit,
    "checkups": contacts.checkups,
    "admission": contacts.admission,
    "medication": _medication,
    "referral": _referral,
    "allergy": _allergy,
    "vaccines": _vaccines,
    "appointment": _appointment,
}
