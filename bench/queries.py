"""The search benchmark's query mix: what clinicians ask, filled in from the loaded data.

Every query kind is one line of `query_kinds()`; the benchmark prints them before it
runs. Placeholders are filled from facts about the patients that were loaded
(`PatientFacts`, read from each patient Bundle as it is posted), picked with a seeded
random generator, so that a run is reproducible for a given seed and database size.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

LOINC = "http://loinc.org"
# The 2021 Synthea set also files local codes (`5089AAAA...`) under the LOINC system
# (shared/data/SOURCES.md); the mix asks only for real LOINC codes.
LOINC_CODE = re.compile(r"^[0-9]{1,7}-[0-9]$")
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
FAMILY_PREFIX_LENGTH = 3
# A code "common across patients" is one that at least this share of patients has.
COMMON_CODE_SHARE = 0.5


@dataclass(frozen=True)
class PatientFacts:
    """What the query mix needs to know about one loaded patient."""

    patient_id: str
    ssn: str
    family: str
    birth_date: str
    loinc_codes: tuple[str, ...]
    # Whether any of the patient's MedicationRequests points at a Medication resource.
    medication_references: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PatientFacts:
        return cls(**{**data, "loinc_codes": tuple(data["loinc_codes"])})


def patient_facts(bundle: dict[str, Any], patient_id: str) -> PatientFacts | None:
    """The facts of the (first) Patient of a transaction Bundle, given its server id."""
    resources = [entry.get("resource") or {} for entry in bundle.get("entry", [])]
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None:
        return None
    identifiers = patient.get("identifier", [])
    ssn = next((i.get("value", "") for i in identifiers if i.get("system") == SSN_SYSTEM), "")
    names = patient.get("name") or [{}]
    codes = sorted(
        {
            coding["code"]
            for r in resources
            if r.get("resourceType") == "Observation"
            for coding in (r.get("code") or {}).get("coding", [])
            if coding.get("system") == LOINC and coding.get("code")
        }
    )
    medication_references = any(
        r.get("resourceType") == "MedicationRequest" and "medicationReference" in r
        for r in resources
    )
    return PatientFacts(
        patient_id=patient_id,
        ssn=ssn,
        family=str(names[0].get("family", "")),
        birth_date=str(patient.get("birthDate", "")),
        loinc_codes=tuple(codes),
        medication_references=medication_references,
    )


@dataclass(frozen=True)
class QueryKind:
    """One kind of search in the mix: a relative FHIR URL with {placeholders}."""

    name: str
    template: str
    # Also fetch the `next` link of the first page (when there is one), timed apart.
    follow_next: bool = False
    # A search restricted to one patient's compartment by an indexed parameter.
    patient_scoped: bool = False

    @property
    def next_page_name(self) -> str:
        return f"{self.name} (next page)"


def medication_include(patients: list[PatientFacts]) -> str:
    """`MedicationRequest:medication` when the data has Medication resources to include.

    Synthea writes the medication as a CodeableConcept (`medicationCodeableConcept`),
    so there is nothing to include through `:medication`; the prescriber is then the
    realistic include.
    """
    if any(p.medication_references for p in patients):
        return "MedicationRequest:medication"
    return "MedicationRequest:requester"


def query_kinds(include: str) -> tuple[QueryKind, ...]:
    """The fixed mix, one query of each kind per round, in this order."""
    return (
        QueryKind(
            "lab results 2015-2019",
            "Observation?subject=Patient/{patient_id}&category=laboratory"
            "&date=ge2015-01-01&date=lt2020-01-01",
            follow_next=True,
            patient_scoped=True,
        ),
        QueryKind(
            "observations by code",
            "Observation?patient={patient_id}&code=" + LOINC + "|{patient_loinc}",
            patient_scoped=True,
        ),
        QueryKind(
            "active conditions",
            "Condition?patient={patient_id}&clinical-status=active",
            patient_scoped=True,
        ),
        QueryKind(
            "medications + include",
            "MedicationRequest?patient={patient_id}&_include=" + include,
            patient_scoped=True,
        ),
        QueryKind(
            "last 10 encounters",
            "Encounter?patient={patient_id}&_sort=-date&_count=10",
            patient_scoped=True,
        ),
        QueryKind("patient by SSN", "Patient?identifier=" + SSN_SYSTEM + "|{ssn}"),
        QueryKind("patient by name", "Patient?family={family_prefix}&birthdate=ge1950"),
        QueryKind(
            "$everything",
            "Patient/{patient_id}/$everything?_count=100",
            follow_next=True,
        ),
        QueryKind(
            "code across patients",
            "Observation?code=" + LOINC + "|{common_loinc}&_count=50&_total=none",
            follow_next=True,
        ),
    )


# Not in the mix: the floor under it. The capability statement touches no patient data
# (HTTP, routing and JSON only); a read of one Patient passes the whole door (token,
# grant, scope, the access log) for the least database work a look at data can do.
FLOOR_KINDS = (
    QueryKind("capability statement", "metadata"),
    QueryKind("read patient", "Patient/{patient_id}"),
)


def select_kinds(kinds: tuple[QueryKind, ...], only: list[str]) -> tuple[QueryKind, ...]:
    """The kinds named in `only` (of the mix or the floor), in the order named."""
    known = {kind.name: kind for kind in (*kinds, *FLOOR_KINDS)}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"No query kind named {', '.join(map(repr, unknown))}: {sorted(known)}")
    return tuple(known[name] for name in only)


def common_codes(patients: list[PatientFacts]) -> list[str]:
    """LOINC codes that at least half the patients have (at least the most frequent one)."""
    counts = Counter(code for p in patients for code in real_loinc(p))
    if not counts:
        return []
    floor = COMMON_CODE_SHARE * len(patients)
    common = sorted(code for code, n in counts.items() if n >= floor)
    return common or [counts.most_common(1)[0][0]]


def real_loinc(patient: PatientFacts) -> tuple[str, ...]:
    return tuple(code for code in patient.loinc_codes if LOINC_CODE.match(code))


@dataclass(frozen=True)
class PlannedQuery:
    kind: QueryKind
    url: str


class QueryMix:
    """The kinds of the mix and the data to fill them in from."""

    def __init__(self, patients: list[PatientFacts], only: list[str] | None = None) -> None:
        if not patients:
            raise ValueError("No patients were loaded: nothing to search for")
        self.patients = patients
        self.kinds = query_kinds(medication_include(patients))
        if only:
            self.kinds = select_kinds(self.kinds, only)
        self.common_codes = common_codes(patients) or ["8302-2"]

    def fill(self, kind: QueryKind, rng: random.Random) -> str:
        """The kind's URL for a patient (and codes) picked by `rng`."""
        patient = rng.choice(self.patients)
        # A code the patient has: a real LOINC code if any, else a local one (2021 set).
        codes = real_loinc(patient) or patient.loinc_codes or tuple(self.common_codes)
        return kind.template.format(
            patient_id=patient.patient_id,
            patient_loinc=rng.choice(codes),
            ssn=patient.ssn,
            family_prefix=patient.family[:FAMILY_PREFIX_LENGTH],
            common_loinc=rng.choice(self.common_codes),
        )

    def stream(self, client_number: int, seed: int) -> Iterator[PlannedQuery]:
        """One client's endless, reproducible sequence: the kinds in turn, each filled anew.

        Clients start at different kinds so that concurrent clients do not all send the
        same kind at the same moment.
        """
        rng = random.Random(seed * 1_000 + client_number)
        position = client_number
        while True:
            kind = self.kinds[position % len(self.kinds)]
            yield PlannedQuery(kind, self.fill(kind, rng))
            position += 1

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, template, notes) for every kind, for printing."""
        rows = []
        for kind in self.kinds:
            notes = []
            if kind.patient_scoped:
                notes.append("patient-scoped")
            if kind.follow_next:
                notes.append("+ next page")
            rows.append((kind.name, kind.template, ", ".join(notes)))
        return rows
