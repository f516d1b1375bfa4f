"""The logged-in citizen's record, read through the one door: a citizen's Repository.

`find_patient_ids` is the one lookup made as the system (a citizen actor is confined to
one Patient, and this is what finds that Patient, as the SMART login does in
health/auth/identity.py); everything else is read by `Repository(session, actor)` with
the citizen's own actor, so another citizen's id in a URL simply is not found.
`Record` is plain data over the resources read, for the pure view models beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.auth.identity import with_national_id
from health.db.repository import Repository
from health.portal.datatypes import JsonDict, reference_key

# Pushes keep one Patient per national ID (health/ingest); records written another way
# may still hold more, and a handful is plenty to say so.
_MAX_PATIENTS = 10
# Rows per round trip when the whole record is read (keyset pages of $everything).
_PAGE_ROWS = 5000


@dataclass(frozen=True)
class Record:
    """A citizen's resources, and the directory entries (organisations, clinicians,
    places) they refer to, as JSON dicts."""

    patient_id: str | None
    resources: Sequence[JsonDict] = ()
    directory: dict[str, JsonDict] = field(default_factory=dict)
    # Further Patients carrying the citizen's national ID (records not merged yet).
    other_patient_ids: tuple[str, ...] = ()
    _by_type: dict[str, list[JsonDict]] = field(default_factory=dict, repr=False)
    _by_key: dict[str, JsonDict] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        by_type: dict[str, list[JsonDict]] = defaultdict(list)
        for resource in self.resources:
            by_type[str(resource.get("resourceType"))].append(resource)
            self._by_key[f"{resource.get('resourceType')}/{resource.get('id')}"] = resource
        self._by_type.update(by_type)

    @classmethod
    def of(cls, patient_id: str | None, resources: Iterable[JsonDict]) -> Record:
        """Split resources into the citizen's own and the directory they refer to."""
        own: list[JsonDict] = []
        directory: dict[str, JsonDict] = {}
        for resource in resources:
            kind = resource.get("resourceType")
            if kind in _DIRECTORY_TYPES:
                directory[f"{kind}/{resource.get('id')}"] = resource
            else:
                own.append(resource)
        return cls(patient_id=patient_id, resources=tuple(own), directory=directory)

    @property
    def is_empty(self) -> bool:
        return self.patient_id is None

    @property
    def patient(self) -> JsonDict | None:
        return self._by_key.get(f"Patient/{self.patient_id}")

    def of_type(self, *resource_types: str) -> list[JsonDict]:
        found: list[JsonDict] = []
        for resource_type in resource_types:
            found.extend(self._by_type.get(resource_type, ()))
        return found

    def get(self, key: str | None) -> JsonDict | None:
        """The resource `Type/id` in the record or its directory, if it is there."""
        if key is None:
            return None
        return self._by_key.get(key) or self.directory.get(key)

    def resolve(self, reference: Any) -> JsonDict | None:
        return self.get(reference_key(reference))


_DIRECTORY_TYPES = frozenset(
    {"Organization", "Practitioner", "PractitionerRole", "Location", "HealthcareService"}
)


def citizen_actor(patient_id: str, national_id: str, name: str) -> Actor:
    """The logged-in citizen as the repository knows them: confined to their own record."""
    return Actor(
        kind=ActorKind.citizen,
        display=name or "citizen",
        patient_id=patient_id,
        fhir_user=f"Patient/{patient_id}",
        national_id=national_id,
    )


def find_patient_ids(
    session: Session, national_id: str, national_id_systems: list[str]
) -> tuple[str, ...]:
    """The Patients carrying `national_id`, found as the system (only ids leave here)."""
    patients = with_national_id(
        session, "Patient", national_id, national_id_systems, limit=_MAX_PATIENTS
    )
    return tuple(sorted(patient.id for patient in patients))


class CitizenRecords:
    """Reads one citizen's record for one request, as that citizen."""

    def __init__(
        self, session: Session, national_id: str, name: str, national_id_systems: list[str]
    ) -> None:
        self.patient_ids = find_patient_ids(session, national_id, national_id_systems)
        self.patient_id = self.patient_ids[0] if self.patient_ids else None
        self.repository = (
            Repository(session, citizen_actor(self.patient_id, national_id, name))
            if self.patient_id
            else None
        )

    def load(self, types: Sequence[str] | None = None) -> Record:
        """The citizen's record (only `types` of it, when given) with its directory."""
        if self.repository is None or self.patient_id is None:
            return Record(patient_id=None)
        resources: list[JsonDict] = []
        after: tuple[str, str] | None = None
        wanted = None if types is None else sorted({*types, *_DIRECTORY_TYPES, "Patient"})
        while True:
            rows = self.repository.everything(
                self.patient_id, types=wanted, after=after, limit=_PAGE_ROWS
            )
            resources.extend(orjson.loads(v.body) for v, _ in rows if v.body is not None)
            if len(rows) < _PAGE_ROWS:
                break
            last = rows[-1][0]
            after = (last.resource_type, last.id)
        record = Record.of(self.patient_id, resources)
        return Record(
            patient_id=record.patient_id,
            resources=record.resources,
            directory=record.directory,
            other_patient_ids=self.patient_ids[1:],
        )

    def read(self, resource_type: str, resource_id: str) -> JsonDict | None:
        """One current resource of the citizen's record; None if absent or not theirs."""
        if self.repository is None:
            return None
        found = self.repository.current(resource_type, resource_id)
        if found is None or found.body is None:
            return None
        return orjson.loads(found.body)  # type: ignore[no-any-return]
