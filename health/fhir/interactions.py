"""The FHIR RESTful interactions on single resources, over a Repository.

https://hl7.org/fhir/R4/http.html. Routers and the Bundle processor call these; each
method validates, decides the outcome the spec prescribes, and queues the new version.
Writes are queued so that a transaction Bundle stores its entries in bulk; `flush`
hands them to the repository. A batch Bundle defers its entries' writes the same way
(`deferred`): they wait for the next statement that must see them, or the next flush.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jsonpatch
import orjson

from health.access.source_search import check_condition, credited
from health.auth.scopes import Permission
from health.db.repository import Repository
from health.db.versions import StoredVersion, Write
from health.fhir.config import FhirConfig
from health.fhir.criteria import (
    criteria_hash,
    fast_criteria,
    parse_condition,
    require_criteria,
    single_identifier,
)
from health.fhir.errors import (
    FhirError,
    conflict,
    forbidden,
    gone,
    invalid,
    not_found,
    precondition_failed,
    structure,
)
from health.fhir.match_cache import MatchCache, MatchKey
from health.fhir.search.params import SearchRequest
from health.fhir.validation import ID_PATTERN, Checked, check, check_known_type
from health.fhir.versions import next_timestamp, stamp
from health.numbers import INT32_DIGITS, whole_number

# Conditional matching never needs more than two rows: 0, 1 or "more than one".
_MATCH_LIMIT = 2
# Identifiers per lookup of `match_ahead`: two bound values each, well within what
# either database takes in one statement.
_MATCH_AHEAD_CHUNK = 500
_VERBS = {
    Permission.create: "creating",
    Permission.read: "reading",
    Permission.update: "updating",
    Permission.delete: "deleting",
    Permission.search: "searching",
}


@dataclass(frozen=True)
class Mark:
    """A point in a unit of work to roll back to (`Interactions.discard`)."""

    # MatchCache.mark(): what was matched after it is forgotten.
    generation: int
    # How many writes were queued: those after it are dropped.
    pending: int


@dataclass(frozen=True)
class Result:
    """What an interaction did: the HTTP status and the version it concerns."""

    status: int
    version: StoredVersion | None = None
    # Set when the body of the version is already known (pending writes).
    resource: dict[str, Any] | None = None

    @property
    def location(self) -> str | None:
        if self.version is None:
            return None
        v = self.version
        return f"{v.resource_type}/{v.id}/_history/{v.version_id}"


class Interactions:
    """One unit of work (a request or a Bundle) of FHIR interactions."""

    def __init__(self, repository: Repository, config: FhirConfig) -> None:
        self.repository = repository
        self.config = config
        self._pending: list[Write] = []
        self._pending_by_key: dict[tuple[str, str], Write] = {}
        self._claims: dict[tuple[str, str], StoredVersion] = {}
        # Every version this unit of work has stored, in order (Provenance names them).
        self.written: list[Write] = []
        self._server_conditions = False
        # (permission, type) pairs the token was found to allow (`permit`).
        self._permitted: set[tuple[Permission, str]] = set()
        # The types whose conditions are the server's own within a push.
        self._server_types: frozenset[str] = frozenset()
        self._unscoped: Repository | None = None
        # Current versions fetched and locked ahead of the writes that replace them.
        self._locked: dict[tuple[str, str], StoredVersion | None] = {}
        # What conditions matched, by `condition_key`, until a write may change it: a
        # transaction matches all its conditional entries and references before it
        # writes, often the same condition twice (an entry's If-None-Exist and the
        # conditional references to it); a batch, all of them before its first entry.
        self._matched = MatchCache()
        # Conditions parsed (`_condition`), by type and query as sent.
        self._conditions: dict[tuple[str, str], tuple[SearchRequest, MatchKey]] = {}
        # Within `deferred`: queued writes wait for the next statement (`_reach`).
        self._deferring = False
        # Where the writes of the entry that began at the last `mark` start in
        # `_pending`, and whether the database has seen any of them (or a claim of it).
        self._entry_start = 0
        self._entry_reached = False

    # Reads

    def check_type(self, resource_type: str) -> None:
        check_known_type(resource_type, self.config.types)

    def permit(self, permission: Permission, resource_type: str) -> None:
        """403 unless the caller's token allows `permission` on `resource_type`.

        Which rows the caller may see is the repository's business (its scope is in
        every query); this is the coarser question of what the token was granted.
        """
        # Asked once per entry of a Bundle, hundreds of times a push (2 to 3% of its
        # CPU); a token's scopes do not change within a request.
        if (permission, resource_type) in self._permitted:
            return
        if not self.repository.actor.may(permission, resource_type):
            verb = _VERBS[permission]
            raise forbidden(
                f"The access token does not permit {verb} {resource_type} resources",
                scope=f"{resource_type}.{permission.value}",
            )
        self._permitted.add((permission, resource_type))

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        self.check_type(resource_type)
        self.permit(Permission.read, resource_type)
        self._reach()
        current = self.repository.current(resource_type, resource_id)
        if current is None:
            raise not_found(f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            raise gone(f"{resource_type}/{resource_id} was deleted")
        return current

    def require_known(self, resource_type: str, resource_id: str) -> None:
        """404 unless the resource was ever written (a deleted one still has history)."""
        self.check_type(resource_type)
        self.permit(Permission.read, resource_type)
        if not self.exists(resource_type, resource_id):
            raise not_found(f"{resource_type}/{resource_id} is not known")

    def exists(self, resource_type: str, resource_id: str) -> bool:
        """Whether the caller may see that the resource was ever written."""
        self._reach()
        return self.repository.exists(resource_type, resource_id)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> StoredVersion:
        self.check_type(resource_type)
        self.permit(Permission.read, resource_type)
        number = whole_number(version_id, max_digits=INT32_DIGITS)
        if number is None:
            raise not_found(f"{resource_type}/{resource_id} has no version {version_id!r}")
        self._reach()
        version = self.repository.version(resource_type, resource_id, number)
        if version is None:
            raise not_found(f"{resource_type}/{resource_id} has no version {version_id}")
        if version.deleted:
            raise gone(f"Version {version_id} of {resource_type}/{resource_id} is a deletion")
        return version

    def match(self, resource_type: str, query: str, where: str = "") -> list[StoredVersion]:
        """Resources matching conditional criteria (at most two: enough to decide)."""
        criteria, key = self._condition(resource_type, query, where)
        return self._matched_by(key, criteria)

    def _matched_by(self, key: MatchKey, criteria: SearchRequest) -> list[StoredVersion]:
        matched = self._matched.get(key)
        if matched is None:
            matched = self._matching(criteria, _MATCH_LIMIT)
            self._remember(key, criteria, matched)
        return matched

    def _remember(
        self, key: MatchKey, criteria: SearchRequest, matched: list[StoredVersion]
    ) -> None:
        resource_type = criteria.resource_type
        identifier = None
        if self._lookups(resource_type).scope_decided_by_row(resource_type):
            identifier = single_identifier(fast_criteria(criteria))
        self._matched.remember(key, matched, identifier=identifier)

    def match_ahead(self, conditions: list[tuple[str, str, str]]) -> None:
        """Match, in one lookup per type, the (type, query, where) conditions that are
        one `identifier=system|value` each, for the `match` calls that follow, until a
        write changes them (MatchCache). Anything else, and a condition that is wrong,
        is left to `match` (which reports it)."""
        by_type: dict[str, dict[tuple[str, str], MatchKey]] = {}
        parsed: dict[MatchKey, SearchRequest] = {}
        # A batch names one Patient in hundreds of references: each condition once.
        first_where = {(t, query): where for t, query, where in reversed(conditions)}
        for (resource_type, query), where in first_where.items():
            try:
                criteria, key = self._condition(resource_type, query, where)
                self._check_source_condition(criteria)
            except FhirError:
                continue
            identifier = single_identifier(fast_criteria(criteria))
            if identifier is not None and key not in self._matched:
                by_type.setdefault(resource_type, {})[identifier] = key
                parsed[key] = criteria
        for resource_type, keys in by_type.items():
            identifiers = list(keys)
            if len(identifiers) < 2:
                continue  # `match` takes the same two statements
            self._reach()
            for start in range(0, len(identifiers), _MATCH_AHEAD_CHUNK):
                chunk = identifiers[start : start + _MATCH_AHEAD_CHUNK]
                found = self._lookups(resource_type).match_identifiers(
                    resource_type, chunk, limit=_MATCH_LIMIT
                )
                if found is not None:
                    for identifier in chunk:
                        key = keys[identifier]
                        matched = self._credited(parsed[key], found[identifier])
                        self._remember(key, parsed[key], matched)

    def _matching(self, criteria: SearchRequest, limit: int) -> list[StoredVersion]:
        # `_id` and `identifier` alone take the token-first lookup (Repository.match);
        # any other criteria the search engine.
        self._check_source_condition(criteria)
        self._reach()
        fast = fast_criteria(criteria)
        lookups = self._lookups(criteria.resource_type)
        if fast is not None:
            matches = lookups.match(criteria.resource_type, fast, limit=limit)
        else:
            matches = lookups.search(criteria, limit=limit).matches
        return self._credited(criteria, matches)

    def _check_source_condition(self, criteria: SearchRequest) -> None:
        """A hospital's or GP's condition on a Patient's attributed values only in a form
        `_credited` can hold to what it may see (health/access/source_search.py)."""
        if self.repository.source is not None:
            check_condition(criteria, self.config.settings.national_id_systems)

    def _credited(
        self, criteria: SearchRequest, matches: list[StoredVersion]
    ) -> list[StoredVersion]:
        """The Patients a source's condition matched by what it may see of them."""
        source = self.repository.source
        if source is None or criteria.resource_type != "Patient":
            return matches
        systems = self.config.settings.national_id_systems
        return [m for m in matches if credited(m, criteria, source, systems)]

    def locked_current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The current version a write is about to replace, locked (not a disclosure)."""
        key = (resource_type, resource_id)
        if key in self._locked:
            return self._locked[key]
        self._reach()
        return self._lookups().current(resource_type, resource_id, for_update=True)

    def lock_ahead(self, keys: list[tuple[str, str]]) -> None:
        """Fetch and lock, in one query, the current versions that the writes to come
        will replace (a transaction's or a batch's PUTs): one round trip instead of one
        per entry. Only of types the token may update: a batch goes on past the entries
        it refuses, and would hold their locks to its end."""
        actor = self.repository.actor
        types = {resource_type for resource_type, _ in keys}
        updatable = {t for t in types if actor.may(Permission.update, t)}
        wanted = [
            key
            for key in dict.fromkeys(keys)
            if key not in self._pending_by_key and key[0] in updatable
        ]
        if wanted:
            self._reach()
            self._locked.update(self._lookups().current_for_update(wanted))

    def _lookups(self, resource_type: str | None = None) -> Repository:
        """Where conditions and the versions a write replaces are looked up: the
        caller's scope, or within a push all of it (a citizen's Patient pushed by another
        source), except for conditions on a type that is not the server's to match: a
        source's own condition on its clinical data finds only what it may see, so that
        it neither matches nor is shown another source's copy."""
        if not self._server_conditions:
            return self.repository
        if resource_type is not None and resource_type not in self._server_types:
            return self.repository
        if self._unscoped is None:
            self._unscoped = self.repository.unscoped_lookups()
        return self._unscoped

    # Writes

    def create(
        self,
        checked: Checked,
        *,
        if_none_exist: str | None = None,
        where: str = "",
        resource_id: str | None = None,
        known_unmatched: bool = False,
    ) -> Result:
        """create (POST), optionally conditional: https://hl7.org/fhir/R4/http.html#ccreate

        `known_unmatched`: the caller has just searched the condition and found nothing
        (a transaction planning its ids), so the first search is skipped.
        """
        resource_type, resource = checked.resource_type, checked.resource
        self.permit(Permission.create, resource_type)
        if not if_none_exist:
            return self._store_new(resource_type, resource, resource_id or new_id(), "POST")
        where = where or "If-None-Exist"
        criteria, match_key = self._condition(resource_type, if_none_exist, where)
        if match_key in self._claims:
            return Result(200, self._claims[match_key])
        key = match_key[1]
        for attempt in range(3):
            if attempt > 0:
                # Another request holds the claim: what is there now, not what was. Kept
                # for what follows (a batch's later references to the same condition).
                matches = self._matching(criteria, _MATCH_LIMIT)
                self._remember(match_key, criteria, matches)
            elif known_unmatched:
                matches = []
            else:
                matches = self._matched_by(match_key, criteria)
            if len(matches) > 1:
                raise precondition_failed(
                    f"If-None-Exist ({if_none_exist}) matches more than one {resource_type}",
                    code="multiple-matches",
                )
            if matches:
                return Result(200, matches[0])
            candidate_id = resource_id or new_id()
            # The claim is written now, not queued (it needs to see no queued write): a
            # failure of this entry can no longer be undone by dropping those.
            self._entry_reached = True
            claimed = self.repository.claim(resource_type, key, candidate_id) or (
                self._claim_is_stale(resource_type, key, criteria)
                and self.repository.take_over_claim(resource_type, key, candidate_id)
            )
            if claimed:
                result = self._store_new(resource_type, resource, candidate_id, "POST")
                assert result.version is not None
                self._claims[match_key] = result.version
                return result
        raise conflict("Concurrent conditional creates did not settle; retry")

    def create_record_of_request(self, checked: Checked) -> Result:
        """Create what the server records about the caller's request (a push's
        Provenance): the caller did not ask for it, so their scopes need not cover it."""
        write = self._write(checked.resource_type, new_id(), checked.resource, 1, None, "POST")
        self._queue(write)
        return Result(201, write.as_stored(), resource=None)

    def _claim_is_stale(self, resource_type: str, key: str, criteria: SearchRequest) -> bool:
        # The claim was taken by a transaction that has committed by now (the failed
        # INSERT waited for it). If its resource matches, the next search finds it; if
        # nothing matches any more (deleted, or its identifier changed), the claim is
        # stale and may be taken over.
        return not self._matching(criteria, 1)

    def update(
        self,
        resource_id: str,
        checked: Checked,
        *,
        if_match: int | None = None,
        where: str = "",
    ) -> Result:
        """update (PUT), including create-on-update with the client's id."""
        resource_type, resource = checked.resource_type, checked.resource
        self.permit(Permission.update, resource_type)
        if not ID_PATTERN.fullmatch(resource_id):
            raise invalid(f"'{resource_id}' is not a valid FHIR id", where or "id")
        body_id = resource.get("id")
        if body_id is None:
            raise invalid(
                "The resource in an update must carry its id",
                f"{where or resource_type}.id",
            )
        if body_id != resource_id:
            raise invalid(
                f"The resource id '{body_id}' does not match the id in the URL '{resource_id}'",
                f"{where or resource_type}.id",
            )
        current = self._current_for_write(resource_type, resource_id, "PUT")
        self._check_if_match(current, if_match, resource_type, resource_id)
        if current is None:
            return self._store_new(resource_type, resource, resource_id, "PUT")
        return self._store_version(resource_type, resource_id, resource, current, "PUT")

    def conditional_update(
        self,
        query: str,
        checked: Checked,
        *,
        if_match: int | None = None,
        where: str = "",
        merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Result:
        """PUT Type?criteria: https://hl7.org/fhir/R4/http.html#cond-update

        `merge` (current, sent) -> stored: combine with the match instead of replacing it.
        """
        resource_type, resource = checked.resource_type, checked.resource
        matches = self.match(resource_type, query, where)
        if len(matches) > 1:
            raise precondition_failed(
                f"The condition {resource_type}?{query} matches more than one resource",
                code="multiple-matches",
            )
        body_id = resource.get("id")
        if not matches:
            if body_id is not None:
                # The id names a resource the condition did not match: updating it would
                # overwrite the wrong record (409 in https://hl7.org/fhir/R5/http.html#cond-update).
                self._reach()
                existing = self._lookups().current(resource_type, str(body_id), for_update=True)
                if existing is not None and not existing.deleted:
                    raise conflict(
                        f"No {resource_type} matches {query}, but {resource_type}/{body_id} "
                        "exists and does not match it",
                        f"{where or resource_type}.id",
                    )
                return self.update(str(body_id), checked, if_match=if_match, where=where)
            created = self.create(checked, if_none_exist=query, where=where)
            if created.status != 200 or created.version is None:
                return created
            # Found after all: another request took the claim and created the match
            # after we looked. What was sent updates it, as if it had been there.
            matches = [created.version]
        match = matches[0]
        if body_id is not None and body_id != match.id:
            raise invalid(
                f"The resource id '{body_id}' differs from the id of the resource the "
                f"condition matched ('{match.id}')",
                f"{where or resource_type}.id",
            )
        if merge is not None:
            # Merged from the latest version, locked: a concurrent merge is not lost.
            # Both sides passed validation; a merge of them adds no new element kinds.
            latest = self._current_for_write(resource_type, match.id, "PUT")
            if latest is not None and latest.body is not None and not latest.deleted:
                merged = merge(orjson.loads(latest.body), checked.resource)
                checked = Checked(resource_type, merged)
        return self.update(match.id, checked.with_id(match.id), if_match=if_match, where=where)

    def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Any,
        *,
        if_match: int | None = None,
        where: str = "",
    ) -> Result:
        """patch with JSON Patch: https://hl7.org/fhir/R4/http.html#patch"""
        self.check_type(resource_type)
        self.permit(Permission.update, resource_type)
        current = self._current_for_write(resource_type, resource_id, "PATCH")
        if current is None or current.deleted or current.body is None:
            raise not_found(f"{resource_type}/{resource_id} is not known")
        self._check_if_match(current, if_match, resource_type, resource_id)
        if not isinstance(operations, list):
            raise invalid("A JSON Patch body must be an array of operations", where or ())
        try:
            patched = jsonpatch.apply_patch(orjson.loads(current.body), operations)
        except (
            jsonpatch.JsonPatchException,
            jsonpatch.JsonPointerException,
            TypeError,
            KeyError,
            ValueError,
        ) as error:
            raise invalid(f"The JSON Patch cannot be applied: {error}", where or ()) from None
        if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
            raise invalid("A patch may not change the resource type or id", where or ())
        checked = check(patched, resource_type, self.config.types, where)
        return self._store_version(resource_type, resource_id, checked.resource, current, "PATCH")

    def delete(
        self, resource_type: str, resource_id: str, *, if_match: int | None = None
    ) -> Result:
        """delete: a versioned tombstone; deleting what is gone or unknown succeeds."""
        self.check_type(resource_type)
        self.permit(Permission.delete, resource_type)
        current = self._current_for_write(resource_type, resource_id, "DELETE")
        self._check_if_match(current, if_match, resource_type, resource_id)
        if current is None or current.deleted:
            return Result(204, current)
        moment = next_timestamp(current.last_updated)
        write = Write(
            resource_type,
            resource_id,
            current.version_id + 1,
            moment,
            "DELETE",
            None,
            patient_id=current.patient_id,
        )
        self._queue(write)
        return Result(200, write.as_stored())

    def conditional_delete(self, resource_type: str, query: str, where: str = "") -> Result:
        """DELETE Type?criteria: 0 matches 404, 1 deleted, more 412 (single mode)."""
        self.check_type(resource_type)
        matches = self.match(resource_type, query, where)
        if not matches:
            raise not_found(f"No {resource_type} matches {query}")
        if len(matches) > 1:
            raise precondition_failed(
                f"The condition {resource_type}?{query} matches more than one resource",
                code="multiple-matches",
            )
        return self.delete(resource_type, matches[0].id)

    def flush(self) -> None:
        self.repository.save(self._pending)
        self.written.extend(self._pending)
        # Versions locked ahead stay valid for the writes still to come (a transaction
        # flushes between its phases); each is dropped once it is replaced (_queue).
        self._pending = []
        self._pending_by_key = {}
        self._claims = {}
        self._entry_start = 0

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within, queued writes are not flushed before a statement that needs them
        unless one does: then all are (`_reach`). A batch Bundle writes its entries in
        groups this way, instead of one flush per entry (health.fhir.transaction)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def reached_database(self) -> bool:
        """Whether the database has seen a write of the entry begun at the last `mark`
        (its queued writes flushed for a statement after them, a claim, or a flush that
        failed): then dropping its queued writes (`discard`) does not undo it."""
        return self._entry_reached

    def forget_written_after(self, mark: int) -> None:
        """Rolled back to a savepoint: writes flushed after `mark` did not happen."""
        del self.written[mark:]

    def discard(self, *, since: Mark | None = None) -> None:
        """Forget queued writes, and what was matched and locked: a savepoint rolled back.

        `since` (a `mark` taken as a batch entry, or a group of entries, began): forget
        only the writes queued and what was matched after it. What was matched and
        locked before it stands: the dropped writes dropped whatever of it they changed,
        and the locks were taken outside the savepoint.
        """
        # Claims made so far are either stored now (and found by search) or rolled back.
        self._claims = {}
        if since is None:
            self._pending = []
            self._pending_by_key = {}
            self._locked = {}
            self._matched.clear()
            return
        del self._pending[since.pending :]
        self._pending_by_key = {(w.resource_type, w.id): w for w in self._pending}
        self._matched.forget_since(since.generation)

    def mark(self) -> Mark:
        """A point to roll back to with `discard(since=...)`, where a batch entry (or a
        group of them) begins: `reached_database` answers for what follows it."""
        self._entry_start = len(self._pending)
        self._entry_reached = False
        # A claim stands for its resource within an entry; the next entry looks again
        # (it finds the resource among the queued writes' matches, or in the database).
        self._claims = {}
        return Mark(self._matched.mark(), len(self._pending))

    def _reach(self) -> None:
        """Before a statement: flush the writes `deferred` keeps queued, which it may
        need to see (a match, a lookup, a lock)."""
        if not self._deferring or not self._pending:
            return
        if len(self._pending) > self._entry_start:
            self._entry_reached = True
        try:
            self.flush()
        except BaseException:
            # The group's savepoint must be rolled back: the entry cannot be dropped alone.
            self._entry_reached = True
            raise

    # Internals

    def condition_key(self, resource_type: str, query: str, where: str) -> tuple[str, str]:
        """What makes two conditions the same (parameter order and encoding do not)."""
        return self._condition(resource_type, query, where)[1]

    @contextmanager
    def conditions_of_the_server(self, types: frozenset[str]) -> Iterator[None]:
        """Within, conditional criteria are the server's own (a push's person matching
        and directory deduplication), not a search the caller asked for: they need no
        search scope, and on `types` they match beyond it. A hospital holding
        system/*.write may push its Patients."""
        self._server_conditions, self._server_types = True, types
        self._matched.clear()
        try:
            yield
        finally:
            self._server_conditions, self._server_types = False, frozenset()
            self._matched.clear()

    def _condition(
        self, resource_type: str, query: str, where: str
    ) -> tuple[SearchRequest, MatchKey]:
        """A condition's criteria and key, parsed once per unit of work: a batch names
        the same conditions entry after entry (its references to one Patient)."""
        if not self._server_conditions:
            self.permit(Permission.search, resource_type)
        known = self._conditions.get((resource_type, query))
        if known is None:
            criteria = parse_condition(
                resource_type,
                query,
                self.config.search,
                base_url=self.config.settings.fhir_base_url,
                where=where,
            )
            require_criteria(criteria, f"The condition on {resource_type}")
            known = (criteria, (resource_type, criteria_hash(resource_type, criteria)))
            self._conditions[(resource_type, query)] = known
        return known

    def _current_for_write(
        self, resource_type: str, resource_id: str, method: str
    ) -> StoredVersion | None:
        pending = self._pending_by_key.get((resource_type, resource_id))
        if pending is not None:
            if not self._deferring or not _queued_before(pending, self._pending, self._entry_start):
                raise structure(f"{resource_type}/{resource_id} is written twice in one request")
            # An earlier entry of the batch wrote it: this is its next version.
            self._reach()
        current = self.locked_current(resource_type, resource_id)
        if current is not None:
            self.repository.check_changeable(current, method)
        return current

    @staticmethod
    def _check_if_match(
        current: StoredVersion | None, if_match: int | None, resource_type: str, resource_id: str
    ) -> None:
        if if_match is None:
            return
        if current is None or current.deleted:
            raise precondition_failed(
                f"If-Match: version {if_match} of {resource_type}/{resource_id} is not current "
                "(the resource does not exist)"
            )
        if current.version_id != if_match:
            raise precondition_failed(
                f"If-Match: version {if_match} of {resource_type}/{resource_id} is not current "
                f"(current is {current.version_id})"
            )

    def _store_new(
        self, resource_type: str, resource: dict[str, Any], resource_id: str, method: str
    ) -> Result:
        # Creating, also through an update with the client's id (PUT) or a condition.
        self.permit(Permission.create, resource_type)
        write = self._write(resource_type, resource_id, resource, 1, None, method)
        self._queue(write)
        return Result(201, self.repository.shown(write.as_stored()), resource=None)

    def _store_version(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        current: StoredVersion,
        method: str,
    ) -> Result:
        write = self._write(
            resource_type, resource_id, resource, current.version_id + 1, current, method
        )
        self._queue(write)
        # Updating a deleted resource brings it back: 201, as for a create. What the
        # response shows of it is what the caller may see (a source's merged Patient).
        return Result(201 if current.deleted else 200, self.repository.shown(write.as_stored()))

    def _write(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        version_id: int,
        current: StoredVersion | None,
        method: str,
    ) -> Write:
        moment = next_timestamp(current.last_updated if current else None)
        return Write(
            resource_type=resource_type,
            id=resource_id,
            version_id=version_id,
            last_updated=moment,
            method=method,
            body=stamp(resource, resource_id, version_id, moment),
            patient_id=self.config.compartment.patient_of(resource, resource_id),
            index=self.config.extractor.extract(resource),
        )

    def _queue(self, write: Write) -> None:
        key = (write.resource_type, write.id)
        if key in self._pending_by_key:
            raise structure(f"{write.resource_type}/{write.id} is written twice in one request")
        self._pending.append(write)
        self._pending_by_key[key] = write
        self._locked.pop(key, None)
        self._matched.written(write)


def _queued_before(write: Write, pending: list[Write], start: int) -> bool:
    return any(queued is write for queued in pending[:start])


def new_id() -> str:
    return str(uuid.uuid4())
