"""Appointments (booked and past) and referrals (ServiceRequest), with who and where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from health.portal.datatypes import (
    concept_text,
    first_concept_text,
    parse_time,
    reference_display,
    reference_key,
)
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts

# Statuses of an appointment that will not take place.
NOT_HAPPENING = frozenset({"cancelled", "noshow", "entered-in-error"})


@dataclass(frozen=True)
class AppointmentLine:
    description: str
    start: datetime | None
    end: datetime | None
    status: str
    clinician: str
    place: str
    upcoming: bool
    entry: Reported


@dataclass(frozen=True)
class Referral:
    text: str
    reason: str
    to: str
    requester: str
    authored: datetime | None
    status: str
    note: str
    entry: Reported


def appointments(record: Record, now: datetime | None = None) -> list[AppointmentLine]:
    """Upcoming appointments soonest first, then past ones newest first."""
    now = now or datetime.now(UTC)
    lines = []
    for entry in merge_facts(record.of_type("Appointment"), record):
        appointment = entry.resource
        start = parse_time(appointment.get("start"))
        clinician = place = ""
        for participant in appointment.get("participant") or []:
            key = reference_key(participant.get("actor")) or ""
            display = reference_display(participant.get("actor"))
            if key.startswith(("Practitioner/", "PractitionerRole/")) and not clinician:
                clinician = display
            elif key.startswith(("Location/", "HealthcareService/")) and not place:
                place = display
        status = str(appointment.get("status") or "")
        lines.append(
            AppointmentLine(
                description=str(appointment.get("description") or "")
                or first_concept_text(appointment.get("serviceType")),
                start=start,
                end=parse_time(appointment.get("end")),
                status=status,
                clinician=clinician,
                place=place,
                upcoming=start is not None and start >= now and status not in NOT_HAPPENING,
                entry=entry,
            )
        )
    upcoming = sorted((a for a in lines if a.upcoming), key=lambda a: a.start or now)
    past = sorted((a for a in lines if not a.upcoming), key=lambda a: _stamp(a.start), reverse=True)
    return upcoming + past


def referrals(record: Record) -> list[Referral]:
    """Referrals, newest first."""
    found = []
    for entry in merge_facts(record.of_type("ServiceRequest"), record):
        request = entry.resource
        notes = [str(n.get("text")) for n in request.get("note") or [] if n.get("text")]
        found.append(
            Referral(
                text=concept_text(request.get("code"), "?"),
                reason=first_concept_text(request.get("reasonCode")),
                to=", ".join(reference_display(p) for p in request.get("performer") or []),
                requester=reference_display(request.get("requester")),
                authored=parse_time(request.get("authoredOn")),
                status=str(request.get("status") or ""),
                note=" ".join(notes),
                entry=entry,
            )
        )
    return sorted(found, key=lambda r: _stamp(r.authored), reverse=True)


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0
