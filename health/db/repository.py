"""The repository: the only object that reads or writes the resource tables.

One Repository per request, for one actor. Its constructor fixes the caller's visible
scope (health.access.scope), and every query it builds passes through `_visible`, the
single place where that scope becomes SQL (health/db/access_sql.py). Code that must
see everything (ingest, seeding, migrations) says so by calling `Repository.system`,
so that a grep lists every bypass. What its reads hand out is kept in `disclosed`, for
the access log (health/audit/).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    MetaData,
    Select,
    and_,
    bindparam,
    func,
    insert,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from health.access.actor import SYSTEM, Actor, ActorKind
from health.access.attribution import shown_to_source
from health.access.policy import CareRules
from health.access.recorder import recorder_of
from health.access.scope import Visibility, visibility_of
from health.access.source_search import ATTRIBUTED_REFERENCES
from health.db import access_sql, include_sql, search_sql, write_sql
from health.db.access_records import AccessRecords, organisations_of
from health.db.tables import (
    INDEX_TABLES,
    care_relationship,
    conditional_claim,
    consent_rule,
    metadata,
    resource,
    resource_version,
    search_token,
)
from health.db.versions import (
    EverythingPage,
    SearchPage,
    StoredVersion,
    Write,
    stored_version,
    stored_versions,
)
from health.fhir.criteria import Criterion, Token
from health.fhir.errors import conflict, forbidden
from health.fhir.search.includes import Include
from health.fhir.search.params import SearchRequest

# Conditional matching fetches at most this many candidates from the index before it
# falls back to one query (criteria so broad are not what conditional writes use).
_CANDIDATE_CAP = 1000

# A refused search's access-log entry names at most this many of the resources withheld.
_WITHHELD_LISTED = 50

# The values `Repository.outline` reads from each index table.
_OUTLINE_VALUES = {
    "token": ("system", "code"),
    "string": ("value",),
    "date": ("low", "high"),
    "reference": ("target_type", "target_id"),
    "quantity": ("value", "system", "code"),
    "number": ("value",),
    "uri": ("value",),
}

_CURRENT_COLUMNS = (
    resource.c.resource_type,
    resource.c.id,
    resource.c.version_id,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.body,
    resource.c.patient_id,
    resource.c.recorded_by,
)
_VERSION_COLUMNS = (
    resource_version.c.resource_type,
    resource_version.c.id,
    resource_version.c.version_id,
    resource_version.c.last_updated,
    resource_version.c.deleted,
    resource_version.c.body,
    resource_version.c.method,
    resource_version.c.seq,
    resource_version.c.patient_id,
    resource_version.c.recorded_by,
)


class Repository:
    """Reads and writes resources on behalf of one actor, within one transaction."""

    def __init__(
        self,
        session: Session,
        actor: Actor,
        *,
        rules: CareRules | None = None,
        now: datetime | None = None,
    ) -> None:
        self._session = session
        self.actor = actor
        self.now = now or datetime.now(UTC)
        # The caller's scope, computed once (DESIGN.md, "one door for patient data").
        organisations = organisations_of(session, actor, self.now)
        self.visibility: Visibility = visibility_of(
            actor, self.now, rules or CareRules(), organisations
        )
        self._access = AccessRecords(session, self.visibility)
        self._clauses: dict[int, tuple[Any, Any]] = {}
        self._recorder = recorder_of(actor)
        # Every version the reads below handed out, for the access log.
        self.disclosed: list[StoredVersion] = []
        # (type, id, patient id) of what the caller asked for and may not see.
        self.refused: list[tuple[str, str, str]] = []

    @staticmethod
    def schema() -> MetaData:
        """The table definitions, for schema checks that must not import the tables."""
        return metadata

    @classmethod
    def system(cls, session: Session) -> Repository:
        """A repository that bypasses access control: ingest, seeding, maintenance."""
        return cls(session, SYSTEM)

    def unscoped_lookups(self) -> Repository:
        """The same transaction without the caller's scope, for the server's own
        lookups during a push (person matching, directory deduplication, the version
        a push updates): never for what is returned to the caller."""
        return Repository(self._session, SYSTEM, now=self.now)

    def _visible(self, statement: Select[Any], table: Any) -> Select[Any]:
        """The caller's scope, applied to every query this repository builds."""
        clause = self._scope(table)
        return statement if clause is None else statement.where(clause)

    def _scope(self, table: Any) -> Any:
        """The clause of the caller's scope on `table`; None: everything."""
        if self.visibility.everything:
            return None
        # Once per table (or alias) and repository: on a table, a small element that
        # carries the caller's values into a clause built once per process; on an
        # alias, the clause itself, a few hundred expression objects for a clinician.
        cached = self._clauses.get(id(table))
        if cached is None or cached[0] is not table:
            cached = (table, access_sql.visible_clause(self.visibility, table))
            self._clauses[id(table)] = cached
        return cached[1]

    def scope_decided_by_row(self, resource_type: str) -> bool:
        """Whether a write changes what this repository finds of `resource_type` only
        among the resources it writes (access_sql.decided_by_row)."""
        return access_sql.decided_by_row(self.visibility, resource_type)

    def _note_withheld(self, statement: Select[Any], patient_id: str) -> None:
        """Remember, for the citizen's access log, what of `patient_id`'s record a query
        of `resource` (type and id columns, unscoped) matched and the access rules
        withheld: a search they emptied, or a $everything they cut, is a refused look,
        as a refused read is. Not what the caller's token does not cover (the app asked
        for no more), nor the citizen's Consent (never shown to others; its effect is),
        nor anything of the citizen's own record, whose only limits are the token's."""
        clause = self._scope(resource)
        if clause is None or self.visibility.record_of == patient_id:
            return
        withheld = statement.where(not_(clause), resource.c.resource_type != "Consent")
        readable = self.visibility.readable_types
        if readable is not None:
            withheld = withheld.where(resource.c.resource_type.in_(sorted(readable)))
        withheld = withheld.limit(_WITHHELD_LISTED)
        self.refused.extend(
            (row[0], row[1], patient_id) for row in self._session.execute(withheld).all()
        )

    def _in_compartment(self, statement: Select[Any], table: Any, patient_id: str) -> Select[Any]:
        """`statement` confined to one patient's compartment of `table`, and to what the
        caller may see there: the rows `_visible` leaves of it, by a clause that an index
        serves when the compartment is the caller's own (access_sql.compartment_clause)."""
        statement = statement.where(table.c.patient_id == patient_id)
        clause = access_sql.compartment_clause(self.visibility, table, patient_id)
        return statement if clause is None else statement.where(clause)

    def _matches(self, statement: Select[Any], request: SearchRequest) -> Select[Any]:
        """A statement of a search's matches on `resource` (a page, the count) in the
        caller's scope. A search confined to one patient (SearchRequest.patient) already
        says `resource.resource_type = <type>` and `resource.patient_id = <patient>`
        (search_filters.Filters.clauses), and the scope of that compartment and type is
        all it needs (access_sql.compartment_clause)."""
        if request.patient is None:
            return self._visible(statement, resource)
        clause = access_sql.compartment_clause(
            self.visibility, resource, request.patient, request.resource_type
        )
        return statement if clause is None else statement.where(clause)

    def check_changeable(self, current: StoredVersion, method: str) -> None:
        """403 when a hospital's or GP's client would change what another source
        recorded, or patch or delete the citizen's one Patient: every source merges
        into that (health/ingest/merge.py), and none may take it from the others."""
        if self.actor.kind is not ActorKind.client:
            return
        if current.resource_type == "Patient":
            if method in ("PATCH", "DELETE"):
                raise forbidden(
                    f"Patient/{current.id} is the citizen's one Patient, shared by every "
                    "source: a source changes it by pushing its Patient, which is merged "
                    "into it, and may not patch or delete it"
                )
            return
        if current.recorded_by != self._recorder:
            raise forbidden(
                f"{current.resource_type}/{current.id} was recorded by another source; "
                "a source changes only what it recorded"
            )

    def _versions(self, statement: Select[Any]) -> list[StoredVersion]:
        """The rows of a statement of `resource` or `resource_version` columns. Fetched
        at once: iterating a Result fetches row by row, which costs twice as much for a
        query of thousands of rows (a timeline's)."""
        result = self._session.execute(statement)
        return stored_versions(tuple(result.keys()), result.all())

    def _disclose(self, versions: Sequence[StoredVersion]) -> list[StoredVersion]:
        """What the caller is handed of `versions` (`shown`), noted for the access log."""
        self.disclosed.extend(versions)
        if self.actor.kind is not ActorKind.client:
            return list(versions)
        return [self.shown(version) for version in versions]

    @property
    def source(self) -> str | None:
        """`Organization/x` when the caller is a hospital's or GP's client ('' for a
        client of no Organization, which reported nothing): it is shown of the citizen's
        shared Patient only what it reported (health/access/attribution.py) and
        searches it accordingly (health/access/source_search.py). None otherwise."""
        if self.actor.kind is not ActorKind.client:
            return None
        return self._recorder or ""

    def _hidden_references(self) -> list[tuple[str, str]]:
        """The citizen's Patient's references a source is not shown (another source's
        GP, managing organisation, links): they lead nowhere in its `$everything`."""
        if self.source is None:
            return []
        return [("Patient", param) for param in sorted(ATTRIBUTED_REFERENCES)]

    def shown(self, version: StoredVersion) -> StoredVersion:
        """The version as the caller may be shown it, read or written by it: a hospital's
        or GP's client sees of the citizen's shared Patient only what it reported
        (health/access/attribution.py); every other version is shown as stored."""
        source = self.source
        if source is None or version.resource_type != "Patient" or version.body is None:
            return version
        body = orjson.dumps(shown_to_source(orjson.loads(version.body), source))
        return dataclasses.replace(version, body=body)

    def _check_writable(self, writes: Sequence[Write]) -> None:
        """Writes the caller's role does not allow: 403 before anything is stored.

        A citizen (or proxy) writes only into their own record; nobody but the citizen
        and the system writes a citizen's Consent; only the server writes AuditEvents
        (the access log, health/audit/); an auditor writes nothing.
        """
        kind = self.actor.kind
        if kind is ActorKind.system:
            return
        if kind is ActorKind.auditor:
            raise forbidden("An auditor's client reads the access log and writes nothing")
        own = self.visibility.record_of
        for w in writes:
            if w.resource_type == "AuditEvent":
                raise forbidden(
                    "The access log is written by the server: AuditEvent cannot be written"
                )
            if own is not None and w.patient_id != own:
                raise forbidden(
                    f"{w.resource_type}/{w.id} would not belong to your own record "
                    f"(Patient/{own}); a patient token writes only there"
                )
            if w.resource_type == "Consent" and own is None:
                raise forbidden(
                    "A citizen's Consent is theirs to write: a clinician's or a hospital's "
                    "system may not create or change it"
                )

    # The access facts the citizen's pages and the access log read (access_records.py)

    def grant_emergency_access(self, patient_id: str, reason: str) -> bool:
        """Open the calling clinician's emergency access to one citizen's record, for
        the configured time; False when the citizen is unknown. An access still open
        is reused, not extended."""
        return self._access.grant_emergency_access(
            self.actor, patient_id, reason, self.visibility.rules.break_glass
        )

    def emergency_patients(self) -> set[str]:
        """The citizens the calling clinician has open emergency access to."""
        return self._access.emergency_patients()

    def emergency_accesses_to(self, patient_id: str, since: datetime) -> list[dict[str, Any]]:
        """Emergency accesses to a citizen's record begun since `since`, newest first:
        for the citizen's front page (their own record, or one they are proxy for)."""
        return self._access.emergency_accesses_to(patient_id, since)

    def care_relationships_of(self, patient_id: str) -> list[dict[str, Any]]:
        """The parties that treat (or treated) a citizen, with the period and the entry
        that establishes it: for the citizen's "who may look" page."""
        return self._access.care_relationships_of(patient_id)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an error inside rolls back only what it wrote."""
        with self._session.begin_nested():
            yield

    # Reads

    def current(
        self, resource_type: str, resource_id: str, *, for_update: bool = False
    ) -> StoredVersion | None:
        """The current version (possibly a deletion), or None if never written or not
        the caller's to see. Without `for_update`, what it returns is disclosed."""
        statement = self._visible(
            select(*_CURRENT_COLUMNS).where(
                resource.c.resource_type == resource_type, resource.c.id == resource_id
            ),
            resource,
        )
        if for_update:
            statement = statement.with_for_update()
        row = self._session.execute(statement).first()
        if row is None:
            if not for_update:
                self._note_refused(resource_type, resource_id)
            return None
        found = stored_version(row)
        return found if for_update else self._disclose([found])[0]

    def current_for_update(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVersion | None]:
        """The current versions a unit of work is about to replace, locked, in one
        query (a transaction's PUT targets, of a dozen types in a push: one round trip,
        not one per type); None for those not written yet or not the caller's to see.
        Not a disclosure."""
        found: dict[tuple[str, str], StoredVersion | None] = dict.fromkeys(keys)
        by_type: dict[str, list[str]] = {}
        for resource_type, resource_id in found:
            by_type.setdefault(resource_type, []).append(resource_id)
        if not by_type:
            return found
        statement = self._visible(
            select(*_CURRENT_COLUMNS).where(
                or_(
                    *(
                        and_(resource.c.resource_type == resource_type, resource.c.id.in_(ids))
                        for resource_type, ids in by_type.items()
                    )
                )
            ),
            resource,
        ).with_for_update()
        for version in self._versions(statement):
            found[(version.resource_type, version.id)] = version
        return found

    def exists(self, resource_type: str, resource_id: str) -> bool:
        """Whether the caller can see that the resource was ever written (a lookup,
        not a disclosure: nothing of it is handed out)."""
        statement = self._visible(
            select(resource.c.id).where(
                resource.c.resource_type == resource_type, resource.c.id == resource_id
            ),
            resource,
        )
        return self._session.execute(statement).first() is not None

    def compartment_stamp(self, patient_id: str) -> tuple[int, int, str]:
        """A stamp of the part of a patient's compartment the caller may see: (resources,
        sum of their version ids, newest lastUpdated). Any write or deletion there changes
        it (version ids only grow), so the portal keys its per-citizen cache on it. A
        lookup, not a disclosure: nothing of the resources is handed out."""
        statement = self._in_compartment(
            select(
                func.count(),
                func.coalesce(func.sum(resource.c.version_id), 0),
                func.max(resource.c.last_updated),
            ),
            resource,
            patient_id,
        )
        count, versions, newest = self._session.execute(statement).one()
        return int(count), int(versions), str(newest)

    def outline(
        self, resource_type: str, patient_id: str, params: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[Any, ...], list[str]]]:
        """The current resources of one type in a patient's compartment that the caller
        may see, grouped by their index values of `params` ((code, type) pairs, such as
        ("encounter", "reference")): a (values, ids) pair per combination held. `values`
        holds each param's columns in turn ((target_type, target_id) for a reference,
        (system, code) for a token, (value,) for a uri...; Nones for a param a resource
        holds no value of); `ids` come in no particular order. A resource that holds two
        values of one param is in two groups.

        What a page needs to arrange a large record without reading every body, or every
        index row into Python: the database joins and groups (the benchmark citizen's
        4,200 results are 420 groups). The first param's index rows drive the query (an
        index row is a current resource's, and carries its scope columns); the resources
        that hold no value of it are looked for only when a count says there are some. A
        lookup, not a disclosure: the page reads (and discloses) the bodies it shows."""
        (code, kind), rest = params[0], params[1:]
        index = INDEX_TABLES[kind]
        first = [index.c[name] for name in _OUTLINE_VALUES[kind]]
        held = self._in_compartment(
            select(index.c.resource_type, index.c.resource_id.label("id"), *first).where(
                index.c.resource_type == resource_type, index.c.param == code
            ),
            index,
            patient_id,
        ).subquery("held")
        groups = self._grouped(held, [held.c[column.name] for column in first], rest)
        of_type = (resource.c.resource_type == resource_type, resource.c.deleted.is_(False))
        count = self._session.execute(
            self._in_compartment(select(func.count()).where(*of_type), resource, patient_id)
        ).scalar_one()
        if count > len({resource_id for _, ids in groups for resource_id in ids}):
            holds = (
                select(index.c.resource_id)
                .where(
                    index.c.resource_type == resource.c.resource_type,
                    index.c.resource_id == resource.c.id,
                    index.c.param == code,
                )
                .exists()
            )
            without = self._in_compartment(
                select(resource.c.resource_type, resource.c.id).where(*of_type, ~holds),
                resource,
                patient_id,
            ).subquery("without")
            groups += [
                ((None,) * len(first) + values, ids)
                for values, ids in self._grouped(without, [], rest)
            ]
        return groups

    def _grouped(
        self, listed: Any, leading: list[Any], params: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[Any, ...], list[str]]]:
        """The (resource_type, id) rows of `listed` grouped by `leading` columns and
        their index values of `params` (`outline`)."""
        joined: Any = listed
        values = list(leading)
        for number, (code, kind) in enumerate(params):
            index = INDEX_TABLES[kind].alias(f"outlined_{number}")
            joined = joined.outerjoin(
                index,
                and_(
                    index.c.resource_type == listed.c.resource_type,
                    index.c.resource_id == listed.c.id,
                    index.c.param == code,
                ),
            )
            values += [index.c[name] for name in _OUTLINE_VALUES[kind]]
        statement = select(*values, func.aggregate_strings(listed.c.id, ",")).select_from(joined)
        if values:
            statement = statement.group_by(*values)
        # FHIR ids hold no comma (https://hl7.org/fhir/R4/datatypes.html#id).
        return [
            (tuple(row[:-1]), row[-1].split(","))
            for row in self._session.execute(statement).all()
            if row[-1]
        ]

    def shared_tokens(
        self, resource_type: str, patient_id: str, param: str, system: str
    ) -> list[tuple[str, str]]:
        """(code, resource id) of the `system|code` tokens of `param` that more than one
        current resource of a type in a patient's compartment holds, of those the caller
        may see; by code, then id. A lookup, not a disclosure."""
        index = search_token
        of_param = (
            index.c.resource_type == resource_type,
            index.c.param == param,
            index.c.system == system,
        )
        # The codes first, from the patient index alone; then the rows of those codes.
        shared = self._in_compartment(
            select(index.c.code).where(*of_param).group_by(index.c.code).having(func.count() > 1),
            index,
            patient_id,
        ).correlate(None)
        statement = self._in_compartment(
            select(index.c.code, index.c.resource_id)
            .where(*of_param, index.c.code.in_(shared))
            .order_by(index.c.code, index.c.resource_id),
            index,
            patient_id,
        )
        return [(row[0], row[1]) for row in self._session.execute(statement).all()]

    def _note_refused(self, resource_type: str, resource_id: str) -> None:
        """Remember, for the citizen's access log, a read of their data the caller was
        refused (the caller itself gets the 404 of a resource that does not exist)."""
        if self.visibility.everything:
            return
        patient_id = self._session.execute(
            select(resource.c.patient_id).where(
                resource.c.resource_type == resource_type, resource.c.id == resource_id
            )
        ).scalar_one_or_none()
        if patient_id is not None:
            self.refused.append((resource_type, resource_id, patient_id))

    def version(
        self, resource_type: str, resource_id: str, version_id: int
    ) -> StoredVersion | None:
        statement = self._visible(
            select(*_VERSION_COLUMNS).where(
                resource_version.c.resource_type == resource_type,
                resource_version.c.id == resource_id,
                resource_version.c.version_id == version_id,
            ),
            resource_version,
        )
        row = self._session.execute(statement).first()
        return self._disclose([stored_version(row)])[0] if row else None

    def history(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        before_seq: int | None = None,
        limit: int,
    ) -> list[StoredVersion]:
        """Versions newest first; `before_seq` continues a listing where a page ended."""
        statement = select(*_VERSION_COLUMNS)
        if resource_type is not None:
            statement = statement.where(resource_version.c.resource_type == resource_type)
        if resource_id is not None:
            statement = statement.where(resource_version.c.id == resource_id)
        if since is not None:
            statement = statement.where(resource_version.c.last_updated >= since)
        if before_seq is not None:
            statement = statement.where(resource_version.c.seq < before_seq)
        statement = self._visible(
            statement.order_by(resource_version.c.seq.desc()).limit(limit), resource_version
        )
        return self._disclose(self._versions(statement))

    def find(
        self,
        resource_type: str,
        criteria: Sequence[Criterion],
        *,
        limit: int,
        patient_id: str | None = None,
    ) -> list[StoredVersion]:
        """Current, not deleted resources of one type matching every criterion, by id;
        with `patient_id`, of that patient's compartment only. (The caller's scope may
        confine it to one compartment as well, but inside an OR that no index serves: a
        citizen's read of a type without `patient_id` goes through every patient's.)"""
        statement = select(*_CURRENT_COLUMNS).where(
            resource.c.resource_type == resource_type, resource.c.deleted.is_(False)
        )
        for criterion in criteria:
            statement = statement.where(_criterion_clause(resource_type, criterion))
        # Ordered by the primary key, so that the database drives the query from the
        # index rows matched (ordering by lastUpdated made SQLite scan the whole type).
        statement = statement.order_by(resource.c.id).limit(limit)
        if patient_id is None:
            return self._versions(self._visible(statement, resource))
        return self._versions(self._in_compartment(statement, resource, patient_id))

    def listing(
        self, resource_type: str, *, limit: int, patient_id: str | None = None
    ) -> list[StoredVersion]:
        """Every current resource of a type the caller may see (of `patient_id`'s
        compartment, when given), by id, up to `limit`: a page's reading of a record (a
        disclosure, unlike `find`'s lookups)."""
        return self._disclose(self.find(resource_type, [], limit=limit, patient_id=patient_id))

    def match(
        self, resource_type: str, criteria: Sequence[Criterion], *, limit: int
    ) -> list[StoredVersion]:
        """Like `find`, for conditional interactions, which look for 0, 1 or "more".

        The candidates come from the token index first and the resources are then
        fetched by primary key. Left to itself, PostgreSQL plans the one-query form on
        a table it has not analysed yet (a fresh database, a large first batch) as a
        loop over every resource of the type: 750 ms per lookup at 2,000 Organizations.
        """
        tokens = [c for c in criteria if c.param != "_id"]
        if not tokens:
            return self.find(resource_type, criteria, limit=limit)
        first, rest = tokens[0], [c for c in criteria if c is not tokens[0]]
        candidates = (
            self._session.execute(
                self._visible(
                    select(search_token.c.resource_id)
                    .where(search_token.c.resource_type == resource_type, _token_clause(first))
                    .distinct()
                    .limit(_CANDIDATE_CAP + 1),
                    search_token,
                )
            )
            .scalars()
            .all()
        )
        if len(candidates) > _CANDIDATE_CAP:
            return self.find(resource_type, criteria, limit=limit)
        if not candidates:
            return []
        statement = select(*_CURRENT_COLUMNS).where(
            resource.c.resource_type == resource_type,
            resource.c.deleted.is_(False),
            resource.c.id.in_(candidates),
        )
        for criterion in rest:
            statement = statement.where(_criterion_clause(resource_type, criterion))
        statement = self._visible(statement.order_by(resource.c.id).limit(limit), resource)
        return self._versions(statement)

    def match_identifiers(
        self, resource_type: str, identifiers: Sequence[tuple[str, str]], *, limit: int
    ) -> dict[tuple[str, str], list[StoredVersion]] | None:
        """`match` for many `identifier=system|value` conditions on one type at once.

        Two statements in all instead of up to two per condition: a push names each of
        its directory entries by identifier, and on PostgreSQL every statement is a
        round trip. None when the conditions together have more candidates than `match`
        takes from the index for one; the caller then matches each on its own.
        """
        wanted = list(dict.fromkeys(identifiers))
        rows = self._session.execute(
            self._visible(
                select(search_token.c.system, search_token.c.code, search_token.c.resource_id)
                .where(
                    search_token.c.resource_type == resource_type,
                    search_token.c.param == "identifier",
                    or_(
                        *(
                            and_(search_token.c.system == system, search_token.c.code == code)
                            for system, code in wanted
                        )
                    ),
                )
                .distinct()
                .limit(_CANDIDATE_CAP + 1),
                search_token,
            )
        ).all()
        if len(rows) > _CANDIDATE_CAP:
            return None
        candidates: dict[tuple[str, str], set[str]] = {key: set() for key in wanted}
        for system, code, resource_id in rows:
            if (system, code) in candidates:
                candidates[(system, code)].add(resource_id)
        ids = sorted(set().union(*candidates.values()))
        current: dict[str, StoredVersion] = {}
        if ids:
            statement = select(*_CURRENT_COLUMNS).where(
                resource.c.resource_type == resource_type,
                resource.c.deleted.is_(False),
                resource.c.id.in_(ids),
            )
            current = {v.id: v for v in self._versions(self._visible(statement, resource))}
        return {
            key: [current[i] for i in sorted(found) if i in current][:limit]
            for key, found in candidates.items()
        }

    # Writes

    def save(self, writes: Sequence[Write]) -> None:
        """Persist new versions: current rows, history rows, index rows and the access
        facts they establish (care relationships, compiled consent), in bulk."""
        if not writes:
            return
        self._check_writable(writes)
        for w in writes:
            w.recorded_by = self._recorder
        firsts = [w for w in writes if w.is_first_version]
        laters = [w for w in writes if not w.is_first_version]
        connection = self._session.connection()
        inserts = write_sql.inserts_for(connection.dialect)
        try:
            if firsts:
                self._insert(inserts.current, [write_sql.current_tuple(w) for w in firsts])
            if laters:
                self._session.execute(
                    update(resource)
                    .where(resource.c.resource_type == bindparam("b_type"))
                    .where(resource.c.id == bindparam("b_id")),
                    [
                        {"b_type": w.resource_type, "b_id": w.id, **write_sql.current_row(w)}
                        for w in laters
                    ],
                )
                self._delete_replaced(laters)
            self._insert(inserts.version, [write_sql.version_tuple(w) for w in writes])
        except IntegrityError:
            raise conflict(
                "Another request wrote the same resource at the same time; retry"
            ) from None
        self._write_derived(writes)

    def _write_derived(self, writes: Sequence[Write]) -> None:
        """The index rows and access facts of the new versions (health/db/write_sql.py)."""
        inserts = write_sql.inserts_for(self._session.connection().dialect)
        for field_name, rows in write_sql.index_rows(writes):
            self._insert(inserts.index[field_name], rows)
        relationships, rules = write_sql.access_fact_rows(writes)
        if relationships:
            self._session.execute(insert(care_relationship), relationships)
        if rules:
            self._session.execute(insert(consent_rule), rules)

    def _insert(self, statement: write_sql.Insert, rows: list[tuple[Any, ...]]) -> None:
        """One executemany of plain tuples on the session's connection, or one COPY on
        PostgreSQL (write_sql.Insert)."""
        connection = self._session.connection()
        parameters = statement.parameters(rows)
        if statement.copy is None:
            connection.exec_driver_sql(statement.sql, parameters)
            return
        dbapi = connection.dialect.dbapi
        try:
            with (
                connection.connection.driver_connection.cursor() as cursor,
                cursor.copy(statement.copy) as copy,
            ):
                for row in parameters:
                    copy.write_row(row)
        except dbapi.Error as error:
            # As SQLAlchemy would have raised it: an IntegrityError is a conflict (`save`).
            raise DBAPIError.instance(statement.copy, None, error, dbapi.Error) from error

    def _delete_replaced(self, writes: Sequence[Write]) -> None:
        for statement in write_sql.replaced(writes):
            self._session.execute(statement)

    def current_page(
        self, *, resource_type: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[StoredVersion]:
        """Current, not deleted resources in (type, id) order, from after `after`."""
        statement = select(*_CURRENT_COLUMNS).where(resource.c.deleted.is_(False))
        if resource_type is not None:
            statement = statement.where(resource.c.resource_type == resource_type)
        if after is not None:
            statement = statement.where(
                tuple_(resource.c.resource_type, resource.c.id) > tuple_(*after)
            )
        statement = statement.order_by(resource.c.resource_type, resource.c.id).limit(limit)
        return self._versions(self._visible(statement, resource))

    def replace_index(self, entries: Sequence[Write]) -> None:
        """Rewrite the index rows and compartment of current versions (reindexing).

        Only `index` and `patient_id` of each Write are used: no new version is made.
        """
        if not entries:
            return
        self._delete_replaced(entries)
        self._session.execute(
            update(resource)
            .where(resource.c.resource_type == bindparam("b_type"))
            .where(resource.c.id == bindparam("b_id"))
            .values(patient_id=bindparam("b_patient")),
            [{"b_type": w.resource_type, "b_id": w.id, "b_patient": w.patient_id} for w in entries],
        )
        self._write_derived(entries)

    def claim(self, resource_type: str, criteria_hash: str, resource_id: str) -> bool:
        """Claim conditional-create criteria for a new resource; False if already taken.

        The primary key on (resource_type, criteria_hash) is what makes concurrent
        identical conditional creates safe: on PostgreSQL the second INSERT waits for
        the first transaction and then inserts nothing, and the caller searches again.
        ON CONFLICT DO NOTHING instead of catching the failed INSERT: no savepoint to
        keep the transaction usable, two round trips fewer per conditional create
        (docs/BENCHMARKS.md, "Conditional creates without a savepoint").
        """
        row = {
            "resource_type": resource_type,
            "criteria_hash": criteria_hash,
            "resource_id": resource_id,
        }
        inserted = self._session.execute(
            write_sql.insert_unless_taken(conditional_claim, row)
        ).first()
        return inserted is not None

    def take_over_claim(self, resource_type: str, criteria_hash: str, resource_id: str) -> bool:
        """Move a stale claim (its resource was deleted or no longer matches)."""
        stale = self._session.execute(
            select(conditional_claim.c.resource_id).where(
                conditional_claim.c.resource_type == resource_type,
                conditional_claim.c.criteria_hash == criteria_hash,
            )
        ).scalar_one_or_none()
        if stale is None:
            return self.claim(resource_type, criteria_hash, resource_id)
        result = self._session.execute(
            update(conditional_claim)
            .where(
                conditional_claim.c.resource_type == resource_type,
                conditional_claim.c.criteria_hash == criteria_hash,
                conditional_claim.c.resource_id == stale,
            )
            .values(resource_id=resource_id)
        )
        return result.rowcount == 1

    # What searches add to their matches (health/db/include_sql.py)

    def included(
        self,
        matches: Sequence[StoredVersion],
        includes: Sequence[Include],
        *,
        limit: int,
        references: Callable[[StoredVersion], Sequence[tuple[str, str, str]]] | None = None,
    ) -> list[StoredVersion]:
        """_include/_revinclude: current resources the rules add, none twice, at most `limit`.

        One query per rule per round; see `include_sql.collect_included` for iterate.
        `matches` are as the caller was handed them (`shown`). `references` reads the
        (parameter, type, id) of a Patient's references from such a version: a source's
        _include from the citizen's Patient follows only the values it is shown (the GP
        it named), never the index, which holds every source's (source_search).
        """

        def fetch(clause: Any, rows: int) -> list[StoredVersion]:
            statement = select(*_CURRENT_COLUMNS).where(clause)
            statement = statement.order_by(resource.c.resource_type, resource.c.id).limit(rows)
            return self._versions(self._visible(statement, resource))

        handed = {(m.resource_type, m.id) for m in matches}

        def targets(
            rule: Include, frontier: Sequence[StoredVersion]
        ) -> list[tuple[str, str]] | None:
            if self.source is None or rule.reverse or rule.source_type != "Patient":
                return None
            if references is None:
                return []  # nothing to read them with: they lead nowhere
            keys = []
            for version in frontier:
                if version.resource_type != "Patient":
                    continue
                if (version.resource_type, version.id) not in handed:
                    version = self.shown(version)  # added by an earlier round, as stored
                keys += [
                    (target_type, target_id)
                    for param, target_type, target_id in references(version)
                    if rule.param in (param, include_sql.ANY_PARAM)
                    and rule.target_type in (None, target_type)
                ]
            return keys

        return self._disclose(
            include_sql.collect_included(
                matches, includes, limit=limit, fetch=fetch, targets=targets
            )
        )

    def everything(
        self,
        patient_id: str,
        *,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        after: tuple[str, str] | None = None,
        limit: int,
        own_references: Sequence[tuple[str, str]] = (),
    ) -> EverythingPage:
        """Patient/$everything: up to `limit` resources by (type, id) after `after`.

        `own_references`: the (type, id) the Patient names by its attributed references
        as the caller was handed it (the GP a source reported itself). For a source they
        lead to the directory though the index rows of every source's are hidden from it
        (`_hidden_references`); for anyone else the index has them already.

        One more is read to know whether another page follows; only the page is handed
        out and logged as disclosed, and what the rules withheld is noted up to its last
        resource.
        """
        # The page's resources, the caller's scope applied to the record's keys and to
        # the resources they lead to.
        result = self._session.execute(
            include_sql.everything_page(
                patient_id,
                columns=_CURRENT_COLUMNS,
                types=types,
                since=since,
                after=after,
                limit=limit + 1,
                scope=self._visible,
                hidden_references=self._hidden_references(),
                own_references=own_references if self.source is not None else (),
            )
        )
        names, rows = tuple(result.keys()), result.all()
        more = len(rows) > limit
        rows = rows[:limit]
        page = stored_versions(names, rows)
        # What the rules withheld of the compartment where this page lies: from `after`
        # to the page's last key (to the end, on the last page). Only that range is read
        # (ix_resource_patient), not the whole record on every page: 5,000 resources
        # weighed against a clinician's rules cost 6 to 23 ms on a 40 ms first page.
        last = (page[-1].resource_type, page[-1].id) if more and page else None
        withheld = select(resource.c.resource_type, resource.c.id).where(
            resource.c.patient_id == patient_id, resource.c.deleted.is_(False)
        )
        if types is not None:
            withheld = withheld.where(resource.c.resource_type.in_(sorted(set(types))))
        if since is not None:
            withheld = withheld.where(resource.c.last_updated >= since)
        if after is not None:
            withheld = withheld.where(
                tuple_(resource.c.resource_type, resource.c.id) > tuple_(*after)
            )
        if last is not None:
            withheld = withheld.where(
                tuple_(resource.c.resource_type, resource.c.id) <= tuple_(*last)
            )
        if page or not more:  # a page of none (`_count=0`) shows, and withholds, nothing
            self._note_withheld(withheld, patient_id)
        in_compartment = names.index("in_compartment")
        handed = self._disclose(page)
        return EverythingPage(
            [
                (version, bool(row[in_compartment]))
                for version, row in zip(handed, rows, strict=True)
            ],
            more,
        )

    # Search (health/db/search_sql.py)

    def search(
        self,
        request: SearchRequest,
        *,
        limit: int,
        cursor: str | None = None,
        disclose: bool = True,
    ) -> SearchPage:
        """One page of a search (up to `limit` matches after `cursor`) and its total.

        The total is counted unless `_total=none` (`estimate` is answered with the exact
        count); on a first page that holds every match it is the page's length. With
        `disclose=False` a lookup: the caller discloses what it shows of the matches.
        """
        statements = search_sql.SearchStatements(request, self._visible, datetime.now(UTC))
        position = statements.position(cursor) if cursor else None
        page = SearchPage()
        more = False
        if limit > 0:
            result = self._session.execute(
                self._matches(statements.page(_CURRENT_COLUMNS, position, limit + 1), request)
            )
            keys, rows = tuple(result.keys()), result.all()
            more = len(rows) > limit
            rows = rows[:limit]
            backwards = position is not None and position.before
            if backwards:
                rows.reverse()
            matches = stored_versions(keys, rows)
            page.matches = self._disclose(matches) if disclose else matches
            if rows and (more or backwards):
                page.next_cursor = statements.cursor(rows[-1], before=False)
            if rows and position is not None and (more or not backwards):
                page.previous_cursor = statements.cursor(rows[0], before=True)
        wants_total = request.total != "none" or request.summary == "count"
        if wants_total:
            if position is None and limit > 0 and not more:
                page.total = len(page.matches)
            else:
                page.total = int(
                    self._session.execute(self._matches(statements.count(), request)).scalar_one()
                )
        # A search of one citizen's record that the rules emptied is a refused look. Only
        # an empty one is checked: listing what the rules withheld from every search
        # would re-run it whole (+35% of a patient search's SQL time on SQLite).
        emptied = not page.matches if limit > 0 else page.total == 0
        if disclose and position is None and request.patient is not None and emptied:
            self._note_withheld(
                select(resource.c.resource_type, resource.c.id).where(*statements.where),
                request.patient,
            )
        return page


def _criterion_clause(resource_type: str, criterion: Criterion) -> Any:
    if criterion.param == "_id":
        return resource.c.id.in_([str(v) for v in criterion.values])
    # IN (subquery) rather than a correlated EXISTS: both databases then look the
    # matches up through the index and fetch the resources by primary key.
    return resource.c.id.in_(
        select(search_token.c.resource_id).where(
            search_token.c.resource_type == resource_type, _token_clause(criterion)
        )
    )


def _token_clause(criterion: Criterion) -> Any:
    """Index rows of a token parameter matching any of the criterion's values."""
    alternatives = []
    for token in criterion.values:
        assert isinstance(token, Token)
        conditions = [search_token.c.param == criterion.param]
        if token.code is not None:
            conditions.append(search_token.c.code == token.code)
        if token.system_given:
            conditions.append(
                search_token.c.system.is_(None)
                if token.system is None
                else search_token.c.system == token.system
            )
        alternatives.append(and_(*conditions))
    return or_(*alternatives)
