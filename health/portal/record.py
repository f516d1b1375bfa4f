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
from health.access.policy import CareRules
from health.auth.identity import with_national_id
from health.db.repository import Repository
from health.portal.datatypes import JsonDict, display_name, reference_key

# Pushes keep one Patient per national ID (health/ingest); records written another way
# may still hold more, and a handful is plenty to say so.
_MAX_PATIENTS = 10
# Rows per round trip when the whole record is read (keyset pages of $everything).
_PAGE_ROWS = 5000
# Resources of one type read for a page: far above any real record (the benchmark's
# citizen has 5,000 resources in all).
_MAX_RESOURCES = 100_000


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
    """Reads one citizen's record for one request, as `actor` (the citizen, or a proxy
    acting for them); `repository` is None when the citizen has no record yet."""

    def __init__(
        self,
        session: Session,
        actor: Actor | None,
        patient_ids: tuple[str, ...],
        rules: CareRules | None = None,
    ) -> None:
        self.patient_ids = patient_ids
        self.patient_id = patient_ids[0] if patient_ids else None
        self.repository = (
            Repository(session, actor, rules=rules)
            if actor is not None and self.patient_id
            else None
        )

    def load(self, types: Sequence[str] | None = None) -> Record:
        """The citizen's record (only `types` of it, when given) with the organisations
        that pushed it.

        With `types`, one query per type (the repository confines each to the citizen's
        compartment); without, Patient/$everything, which also brings the directory
        entries the record refers to (what a download of the whole record needs).
        """
        if self.repository is None or self.patient_id is None:
            return Record(patient_id=None)
        if types is None:
            resources = self._everything()
        else:
            found = [
                version
                for resource_type in sorted({*types, "Patient"})
                for version in self.repository.listing(resource_type, limit=_MAX_RESOURCES)
                if version.body is not None
            ]
            resources = [orjson.loads(version.body) for version in found]
        record = Record.of(self.patient_id, resources)
        directory = dict(record.directory)
        for key in _source_keys(record.resources):
            if key not in directory:
                resource_type, _, resource_id = key.partition("/")
                organisation = self.read(resource_type, resource_id)
                if organisation is not None:
                    directory[key] = organisation
        return Record(
            patient_id=record.patient_id,
            resources=record.resources,
            directory=directory,
            other_patient_ids=self.patient_ids[1:],
        )

    def _everything(self) -> list[JsonDict]:
        assert self.repository is not None and self.patient_id is not None
        resources: list[JsonDict] = []
        after: tuple[str, str] | None = None
        while True:
            rows = self.repository.everything(self.patient_id, after=after, limit=_PAGE_ROWS)
            resources.extend(orjson.loads(v.body) for v, _ in rows if v.body is not None)
            if len(rows) < _PAGE_ROWS:
                return resources
            last = rows[-1][0]
            after = (last.resource_type, last.id)

    def read(self, resource_type: str, resource_id: str) -> JsonDict | None:
        """One current resource of the citizen's record; None if absent or not theirs."""
        if self.repository is None:
            return None
        found = self.repository.current(resource_type, resource_id)
        if found is None or found.body is None:
            return None
        return orjson.loads(found.body)  # type: ignore[no-any-return]

    def names(self, references: Iterable[str]) -> dict[str, str]:
        """The names of directory entries (`Practitioner/x`, `Organization/x`), read as
        the citizen (the directory is everyone's to see); unknown ones are left out."""
        found = {}
        for reference in sorted(set(references)):
            resource_type, _, resource_id = reference.partition("/")
            if resource_type not in _DIRECTORY_TYPES or not resource_id:
                continue
            resource = self.read(resource_type, resource_id)
            name = display_name(resource)
            if name:
                found[reference] = name
        return found


def _source_keys(resources: Iterable[JsonDict]) -> set[str]:
    """`Organization/<id>` of every organisation named in the resources' meta.source."""
    keys = set()
    for resource in resources:
        url = (resource.get("meta") or {}).get("source")
        if isinstance(url, str) and "/Organization/" in url:
            keys.add("Organization/" + url.rsplit("/Organization/", 1)[1].split("/")[0])
    return keys
