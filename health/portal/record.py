"""The logged-in citizen's record, read through the one door: a citizen's Repository.

`find_patient_ids` is the one lookup made as the system (a citizen actor is confined to
one Patient, and this is what finds that Patient, as the SMART login does in
health/auth/identity.py); everything else is read by `Repository(session, actor)` with
the citizen's own actor, so another citizen's id in a URL simply is not found.
`Record` is plain data over the resources read, for the pure view models beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.access.policy import CareRules
from health.auth.identity import with_national_id
from health.db.repository import Repository
from health.db.versions import StoredVersion
from health.fhir.config import FhirConfig
from health.fhir.criteria import Criterion
from health.fhir.search.params import SearchLimits, SearchRequest, parse_search
from health.fhir.search.scope import confine_to_patient
from health.portal.datatypes import JsonDict, display_name, reference_key, source_key

# Pushes keep one Patient per national ID (health/ingest); records written another way
# may still hold more, and a handful is plenty to say so.
_MAX_PATIENTS = 10
# Rows per round trip when the whole record is read (keyset pages of $everything).
_PAGE_ROWS = 5000
# Resources of one type read for a page: far above any real record (the benchmark's
# citizen has 5,000 resources in all).
_MAX_RESOURCES = 100_000
# The most one search reads at once (the front page's short lists ask for 5; longer
# lookups read page after page of this many: `search_until`).
_MAX_SEARCH = 100
# Ids per look-up query (well under SQLite's and PostgreSQL's bound-parameter limits).
_IDS_PER_QUERY = 500


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
    acting for them); `repository` is None when the citizen has no record yet.

    What a page shows is what the access log names. Reads that show what they return
    (`load`, `search`, `read`) are disclosures; a page that reads more than it shows
    (a list it cuts, a timeline it pages) reads with `load(disclose=False)`, which
    looks the resources up through the same repository (the same actor, the same
    scope: `Repository.find`), and then `disclose`s exactly the entries it shows.
    """

    def __init__(
        self,
        session: Session,
        actor: Actor | None,
        patient_ids: tuple[str, ...],
        rules: CareRules | None = None,
        config: FhirConfig | None = None,
    ) -> None:
        self.patient_ids = patient_ids
        self.patient_id = patient_ids[0] if patient_ids else None
        self.actor = actor
        self.config = config
        self.repository = (
            Repository(session, actor, rules=rules)
            if actor is not None and self.patient_id
            else None
        )
        # Versions looked up and not disclosed (yet), by `Type/id`, bodies dropped.
        self._looked_up: dict[str, StoredVersion] = {}

    def release(self) -> None:
        """Drop what this request read, once it is logged: nothing is read after."""
        self._looked_up = {}
        self.repository = None

    def load(self, types: Sequence[str] | None = None, *, disclose: bool = True) -> Record:
        """The citizen's record (only `types` of it, when given) with the organisations
        that pushed it.

        With `types`, one query per type (the repository confines each to the citizen's
        compartment); without, Patient/$everything, which also brings the directory
        entries the record refers to (what a download of the whole record needs).
        With `disclose=False` (and `types`), a lookup: the page discloses what it shows.
        """
        if self.repository is None or self.patient_id is None:
            return Record(patient_id=None)
        if types is None:
            resources = self._everything()
        else:
            read = self.repository.listing if disclose else self._find
            found = [
                version
                for resource_type in sorted({*types, "Patient"})
                for version in read(resource_type, limit=_MAX_RESOURCES, patient_id=self.patient_id)
                if version.body is not None
            ]
            resources = [orjson.loads(version.body) for version in found]
        return self.with_sources(resources)

    def _find(self, resource_type: str, *, limit: int, patient_id: str) -> list[StoredVersion]:
        assert self.repository is not None
        found = self.repository.find(resource_type, [], limit=limit, patient_id=patient_id)
        self._remember(found)
        return found

    def _remember(self, versions: Iterable[StoredVersion]) -> None:
        """Keep what was looked up, so that the page can disclose what it shows of it."""
        for version in versions:
            key = f"{version.resource_type}/{version.id}"
            self._looked_up[key] = version.without_body()

    def looked_up(self) -> dict[str, StoredVersion]:
        """What `load(disclose=False)` looked up, by `Type/id` (bodies dropped)."""
        return dict(self._looked_up)

    def disclose(
        self, keys: Iterable[str], looked_up: Mapping[str, StoredVersion] | None = None
    ) -> None:
        """Log as shown the looked-up resources `keys` (`Type/id`): what a page shows
        of what it read with `load(disclose=False)` (or of `looked_up`, a cached view's
        lookups, health/portal/view_cache.py)."""
        if self.repository is None:
            return
        versions = self._looked_up if looked_up is None else looked_up
        self.repository.disclosed.extend(
            versions[key] for key in sorted(set(keys)) if key in versions
        )

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> list[JsonDict]:
        """The citizen's current resources matching a FHIR search (`_sort`, `_count`,
        dates, `:not`...), parsed as the FHIR API parses it: a disclosure, so ask only
        for what the page shows."""
        if self.repository is None or self.patient_id is None or self.config is None:
            return []
        request = self._search_request(resource_type, params)
        page = self.repository.search(request, limit=request.count)
        return [orjson.loads(version.body) for version in page.matches if version.body]

    def search_until(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        enough: Callable[[list[JsonDict]], bool],
        *,
        max_pages: int,
    ) -> list[JsonDict]:
        """Pages of a search (as `search`), read until `enough` of what was found, the
        last page or `max_pages`: a lookup, the page discloses what it shows."""
        if self.repository is None or self.patient_id is None or self.config is None:
            return []
        request = self._search_request(resource_type, params)
        found: list[JsonDict] = []
        cursor = None
        for _ in range(max_pages):
            page = self.repository.search(
                request, limit=request.count, cursor=cursor, disclose=False
            )
            self._remember(page.matches)
            found.extend(orjson.loads(version.body) for version in page.matches if version.body)
            cursor = page.next_cursor
            if cursor is None or enough(found):
                break
        return found

    def _search_request(
        self, resource_type: str, params: Sequence[tuple[str, str]]
    ) -> SearchRequest:
        assert self.config is not None
        request = parse_search(
            resource_type,
            [("patient", f"Patient/{self.patient_id}"), ("_total", "none"), *params],
            self.config.search,
            base_url=self.config.settings.fhir_base_url,
            limits=SearchLimits(_MAX_SEARCH, _MAX_SEARCH),
        )
        return confine_to_patient(request, self.config.search, self.config.compartment)

    def outline(
        self, resource_type: str, params: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[Any, ...], list[str]]]:
        """The citizen's resources of one type grouped by their index values of `params`,
        without their bodies (`Repository.outline`): a lookup."""
        if self.repository is None or self.patient_id is None:
            return []
        return self.repository.outline(resource_type, self.patient_id, params)

    def shared_tokens(self, resource_type: str, param: str, system: str) -> list[tuple[str, str]]:
        """(code, id) of the `system|code` tokens that several of the citizen's resources
        of one type hold (`Repository.shared_tokens`): a lookup."""
        if self.repository is None or self.patient_id is None:
            return []
        return self.repository.shared_tokens(resource_type, self.patient_id, param, system)

    def look_up(self, resource_type: str, ids: Sequence[str]) -> list[JsonDict]:
        """The citizen's current resources of one type with these ids, in the order of
        `ids`; absent or invisible ones are left out. A lookup."""
        if self.repository is None:
            return []
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StoredVersion] = {}
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = tuple(wanted[start : start + _IDS_PER_QUERY])
            for version in self.repository.find(
                resource_type, [Criterion("_id", chunk)], limit=len(chunk)
            ):
                found[version.id] = version
        self._remember(found.values())
        return [
            orjson.loads(body)
            for body in (found[i].body for i in wanted if i in found)
            if body is not None
        ]

    def stamp(self) -> tuple[int, int, str] | None:
        """Changes whenever the part of the record the actor may see changes (a cache
        key, `Repository.compartment_stamp`); None without a record."""
        if self.repository is None or self.patient_id is None:
            return None
        return self.repository.compartment_stamp(self.patient_id)

    def with_sources(
        self, resources: Iterable[JsonDict], source_urls: Iterable[str | None] = ()
    ) -> Record:
        """The resources as a Record, with the organisations that pushed them (and those
        named by `source_urls`, the `meta.source` of entries read without their bodies)."""
        if self.patient_id is None:
            return Record(patient_id=None)
        record = Record.of(self.patient_id, resources)
        directory = dict(record.directory)
        for key in _source_keys(record.resources, source_urls):
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
            page = self.repository.everything(self.patient_id, after=after, limit=_PAGE_ROWS)
            resources.extend(orjson.loads(v.body) for v, _ in page.entries if v.body is not None)
            if not page.more or not page.entries:
                return resources
            last = page.entries[-1][0]
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


def _source_keys(resources: Iterable[JsonDict], urls: Iterable[str | None]) -> set[str]:
    """`Organization/<id>` of every organisation named in the resources' meta.source,
    or in `urls`."""
    found = (*((resource.get("meta") or {}).get("source") for resource in resources), *urls)
    keys = {source_key(url) if isinstance(url, str) else "" for url in found}
    return {key for key in keys if key.startswith("Organization/")}
