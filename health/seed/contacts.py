"""Contacts: visits, series of checkups and hospital stays, with what they produce.

A contact is an Encounter; checkups and admissions add the Observations taken, and an
admission adds the medicine the citizen took on arrival (MedicationStatements) and,
when world.json has one, the discharge letter (a DocumentReference with the text).
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from typing import Any

from health.seed.source import LOINC, TERMINOLOGY, SourceRecord, concept, copenhagen_time
from health.seed.world import resolve_date

_ENCOUNTER_CLASS = {"AMB": "ambulatory", "IMP": "inpatient encounter", "EMER": "emergency"}
_CONTACT_TEXT = {"AMB": "Ambulant kontakt", "IMP": "Indlæggelse", "EMER": "Akut kontakt"}
# Checkups are planned on a schedule but happen a few days either side of it.
_CHECKUP_SLACK_DAYS = 10


def visit(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    day = record.date(event["date"])
    if day > record.today:
        return
    start = record.moment(day)
    kind = "Konsultation hos egen læge" if record.organisation.kind == "gp" else "Ambulant besøg"
    encounter(record, scope, event, start, start + timedelta(minutes=20), "AMB", kind)


def checkups(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    """Regular checkups from `from` (to `until` or today), each with its measurements."""
    first = record.date(event["from"])
    last = min(record.date(event["until"]), record.today) if "until" in event else record.today
    amount, unit = int(event["every"][:-1]), event["every"][-1]
    span = max((last - first).days, 1)
    number = 0
    planned = first
    while planned < last:
        slack = record.rng.randint(-_CHECKUP_SLACK_DAYS, _CHECKUP_SLACK_DAYS)
        day = min(max(planned + timedelta(days=slack), first), last - timedelta(days=1))
        start = record.moment(day)
        contact = encounter(
            record,
            f"{scope}/{number}",
            event,
            start,
            start + timedelta(minutes=20),
            "AMB",
            "Kontrolbesøg",
        )
        progress = (day - first).days / span
        for lab in event["labs"]:
            level = record.measurements.level(event.get("levels", {}).get(lab), progress)
            observation(record, f"{scope}/{number}/{lab}", event, lab, level, start, contact)
        number += 1
        planned = resolve_date(f"+{amount * number}{unit}", first)


def admission(record: SourceRecord, scope: str, event: dict[str, Any]) -> None:
    """A hospital stay (or emergency or day-surgery contact) with labs and letter."""
    day = record.date(event["start"])
    if day > record.today:
        return
    begin = record.moment(day)
    if event["days"]:
        end_day = day + timedelta(days=event["days"])
        end = copenhagen_time(end_day, record.rng.randint(10, 15), record.rng.choice((0, 30)))
    else:
        end = begin + timedelta(hours=record.rng.randint(3, 6))
    cls = event.get("class", "IMP")
    contact = encounter(record, scope, event, begin, end, cls, _CONTACT_TEXT[cls])
    taken = begin + timedelta(minutes=45)
    for lab in event.get("labs", []):
        level = record.measurements.level(event.get("levels", {}).get(lab), 0.0)
        observation(record, f"{scope}/{lab}", event, lab, level, taken, contact)
    _medicine_on_admission(record, scope, day, begin, contact)
    if "letter" in event:
        _discharge_letter(record, scope, event, begin, end, contact)


def encounter(
    record: SourceRecord,
    scope: str,
    event: dict[str, Any],
    start: datetime,
    end: datetime,
    cls: str,
    kind: str,
) -> str:
    """An Encounter for `event`; returns its fullUrl."""
    reason = event.get("reason") or event.get("title") or kind
    body: dict[str, Any] = {
        "status": "finished",
        "class": {
            "system": f"{TERMINOLOGY}/v3-ActCode",
            "code": cls,
            "display": _ENCOUNTER_CLASS[cls],
        },
        "type": [{"text": kind}],
        "subject": record.patient,
        "participant": [{"individual": record.clinician(event)}],
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "location": [{"location": record.location(event), "status": "completed"}],
        "reasonCode": [
            record.diagnosis(event["code"], reason) if "code" in event else {"text": reason}
        ],
        "serviceProvider": record.provider,
    }
    if cls == "IMP":
        body["hospitalization"] = {
            "dischargeDisposition": concept(
                f"{TERMINOLOGY}/discharge-disposition", "home", "Home", "Udskrevet til hjemmet"
            )
        }
    return record.add("Encounter", f"{scope}/encounter", body)


def observation(
    record: SourceRecord,
    scope: str,
    event: dict[str, Any],
    lab: str,
    level: Any,
    taken: datetime,
    contact: str,
) -> None:
    definition = record.catalogue["labs"][lab]
    laboratory = definition["category"] == "laboratory"
    # Laboratory results are issued hours after the sample; measurements at once.
    issued = taken + timedelta(hours=record.rng.randint(2, 20) if laboratory else 0)
    category = "Laboratory" if laboratory else "Vital Signs"
    body: dict[str, Any] = {
        "status": "final",
        "category": [
            concept(f"{TERMINOLOGY}/observation-category", definition["category"], category)
        ],
        "code": concept(LOINC, definition["loinc"], definition["display"]),
        "subject": record.patient,
        "encounter": {"reference": contact},
        "effectiveDateTime": taken.isoformat(),
        "issued": issued.isoformat(),
        "performer": [record.provider if laboratory else record.clinician(event)],
        **record.measurements.result(lab, level),
    }
    record.add("Observation", scope, body)


def _medicine_on_admission(
    record: SourceRecord, scope: str, day: date, begin: datetime, contact: str
) -> None:
    """The citizen's own medicine, as recorded on admission (from every prescriber)."""
    for index, event in enumerate(record.citizen.events):
        if event["type"] != "medication":
            continue
        start = record.date(event["start"])
        end = record.date(event["end"]) if "end" in event else None
        if start > day or (end is not None and end < day):
            continue
        record.add(
            "MedicationStatement",
            f"{scope}/medicine/{index}",
            {
                "status": "active",
                "medicationCodeableConcept": record.medicine(event["atc"]),
                "subject": record.patient,
                "context": {"reference": contact},
                "effectivePeriod": {"start": start.isoformat()},
                "dateAsserted": begin.isoformat(),
                "informationSource": record.patient,
                "dosage": [{"text": event["dosage"]}],
                "note": [{"text": "Medicin ved indlæggelse"}],
            },
        )


def _discharge_letter(
    record: SourceRecord,
    scope: str,
    event: dict[str, Any],
    begin: datetime,
    end: datetime,
    contact: str,
) -> None:
    person = record.citizen.person
    clinician = record.world.clinicians[event["clinician"]]
    title = f"Epikrise: {event['title']}"
    text = (
        f"{title}\n{record.organisation.name}\n\n"
        f"Patient: {person.full_name}, født {person.birth_date:%d.%m.%Y}\n"
        f"Kontakt: {begin:%d.%m.%Y} til {end:%d.%m.%Y}\n\n"
        f"{event['letter']}\n\n"
        f"Med venlig hilsen\n{clinician.person.full_name}\n"
        f"{clinician.title}, {clinician.specialty}\n"
    )
    record.add(
        "DocumentReference",
        f"{scope}/letter",
        {
            "status": "current",
            "docStatus": "final",
            "type": concept(LOINC, "18842-5", "Discharge summary", "Epikrise"),
            "subject": record.patient,
            "date": end.isoformat(),
            "author": [record.clinician(event), record.provider],
            "custodian": record.provider,
            "description": title,
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "language": "da",
                        "data": base64.b64encode(text.encode()).decode("ascii"),
                        "title": title,
                        "creation": end.isoformat(),
                    }
                }
            ],
            "context": {
                "encounter": [{"reference": contact}],
                "period": {"start": begin.isoformat(), "end": end.isoformat()},
            },
        },
    )
