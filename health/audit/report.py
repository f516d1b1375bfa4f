"""The auditor's report of emergency access ("break the glass"): who, whose, why, how much."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from health.audit.log import AuditLog


@dataclass(frozen=True)
class EmergencyAccess:
    """One break-glass grant and the disclosures made under it."""

    seq: int
    recorded: datetime
    clinician: str | None
    clinician_name: str | None
    organization: str | None
    patient_id: str | None
    reason: str | None
    disclosures: int

    def as_json(self) -> dict[str, Any]:
        """One JSON line of `health audit break-glass --json`."""
        return {
            "seq": self.seq,
            "recorded": self.recorded.isoformat(),
            "clinician": self.clinician,
            "clinician_name": self.clinician_name,
            "organization": self.organization,
            "patient_id": self.patient_id,
            "reason": self.reason,
            "disclosures": self.disclosures,
        }


def emergency_accesses(
    log: AuditLog, since: datetime, until: datetime | None = None
) -> list[EmergencyAccess]:
    """Every grant recorded in [since, until), oldest first, with its disclosure count."""
    return [
        EmergencyAccess(
            seq=grant.seq,
            recorded=grant.recorded,
            clinician=grant.entry.agent,
            clinician_name=grant.entry.agent_name,
            organization=grant.entry.organization,
            patient_id=grant.entry.patient_id,
            reason=grant.entry.detail,
            disclosures=log.disclosures_under(grant),
        )
        for grant in log.break_glass_grants(since, until)
    ]
