"""Batch and transaction Bundles: https://hl7.org/fhir/R4/http.html#transaction

A transaction is all or nothing (the caller's database transaction rolls back on any
error); a batch answers each entry on its own, its write entries in groups that share a
savepoint and a flush (`_batch_group`). Entries are processed DELETE, POST, PUT/PATCH,
then GET (https://hl7.org/fhir/R4/http.html#trules), after urn:uuid fullUrls and
conditional references have been resolved and rewritten. The Bundle arrives parsed and
validated (health.fhir.bundle_request).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from health.fhir.bundle_request import PHASE, BundleRequest, Entry
from health.fhir.content import stored
from health.fhir.errors import FhirError, Issue, conflict, precondition_failed
from health.fhir.interactions import Interactions, Result, new_id
from health.fhir.listing import history_bundle, searchset_bundle
from health.fhir.references import (
    Found,
    ReferenceResolver,
    conditional_references,
    references_in,
)
from health.fhir.validation import Checked
from health.fhir.versions import etag, instant

# How often a transaction starts over after a concurrent request created a match.
_TRANSACTION_RETRIES = 2
# A batch's write entries run in groups of this many: one savepoint and one flush (on
# PostgreSQL one COPY per table) per group instead of per entry (docs/BENCHMARKS.md,
# "Batch entries written in groups").
_BATCH_GROUP = 100


def process_bundle(
    interactions: Interactions, request: BundleRequest, *, base: str, prefer: str | None
) -> dict[str, Any]:
    """Run a parsed batch or transaction and return its response Bundle."""
    if request.kind == "transaction":
        responses = _transaction_settled(
            interactions, request.parsed, base, prefer, request.literal_of
        )
    else:
        responses = _batch(interactions, request, base, prefer)
    return {"resourceType": "Bundle", "type": f"{request.kind}-response", "entry": responses}


class _CreatedConcurrently(FhirError):
    """A conditional entry's match was created by another request after ids were assigned."""


def _transaction_settled(
    interactions: Interactions,
    entries: list[Entry],
    base: str,
    prefer: str | None,
    literal_of: dict[str, str],
) -> list[dict[str, Any]]:
    """_transaction, started over when a concurrent request created one of its matches.

    Ids and references are planned before anything is written; a conditional create
    that then finds another transaction's new resource voids that plan. On PostgreSQL
    (READ COMMITTED) a new statement sees the other transaction's commit, so the next
    run resolves the condition to that resource. SQLite runs writers one at a time.
    """
    # Rewriting references changes the resources in place: keep them as they came.
    pristine = orjson.dumps([entry.resource for entry in entries])
    mark = len(interactions.written)
    for _retry in range(_TRANSACTION_RETRIES):
        try:
            with interactions.repository.savepoint():
                return _transaction(interactions, entries, base, prefer, literal_of)
        except _CreatedConcurrently:
            interactions.discard()
            interactions.forget_written_after(mark)
            _restore(entries, orjson.loads(pristine))
    return _transaction(interactions, entries, base, prefer, literal_of)


def _restore(entries: list[Entry], resources: list[Any]) -> None:
    for entry, resource in zip(entries, resources, strict=True):
        entry.target_id = entry.existing = entry.same_as = None
        if entry.checked is not None:
            # Validated already: this is the same content, before references were rewritten.
            entry.checked = Checked(entry.checked.resource_type, resource)


def _transaction(
    interactions: Interactions,
    entries: list[Entry],
    base: str,
    prefer: str | None,
    literal_of: dict[str, str],
) -> list[dict[str, Any]]:
    ordered = sorted(entries, key=lambda e: (PHASE[e.method], e.index))
    results: dict[int, Result | dict[str, Any]] = {}

    for entry in (e for e in ordered if e.method == "DELETE"):
        results[entry.index] = _run_write(interactions, entry)
    interactions.flush()

    found = _references(entries)
    id_map = _assign_ids(interactions, entries, _conditions(entries, found, base))
    resolver = ReferenceResolver(interactions, id_map, base, literal_of)
    for references in found.values():
        resolver.rewrite_found(references)
    interactions.lock_ahead(
        [
            (entry.resource_type, entry.target_id)
            for entry in entries
            if entry.method == "PUT" and entry.target_id and entry.existing is None
        ]
    )

    for phase in (PHASE["POST"], PHASE["PUT"]):
        for entry in (e for e in ordered if PHASE[e.method] == phase):
            if entry.same_as is not None:
                first = results[entry.same_as.index]
                assert isinstance(first, Result)
                result = Result(200, first.version)
            elif entry.existing is not None:
                result = Result(200, entry.existing)
            else:
                result = _run_write(interactions, entry, planned=True)
            if entry.target_id and result.version and result.version.id != entry.target_id:
                # A concurrent request created the match after we looked: the references
                # already point at the id we chose, so the whole transaction starts over.
                message = f"{entry.where}: a matching resource was created concurrently; retry"
                raise _CreatedConcurrently([Issue("conflict", message)], status=412)
            results[entry.index] = result
        interactions.flush()

    for entry in (e for e in ordered if e.method in ("GET", "HEAD")):
        results[entry.index] = _run_read(interactions, entry, base)
    return [_response_entry(results[e.index], base, prefer) for e in entries]


def _batch(
    interactions: Interactions, request: BundleRequest, base: str, prefer: str | None
) -> list[dict[str, Any]]:
    responses: dict[int, dict[str, Any]] = {
        index: _error_entry(item)
        for index, item in enumerate(request.entries)
        if isinstance(item, FhirError)
    }
    # Matched together up front, and kept across the entries' writes until one of
    # them changes a match (health/fhir/match_cache.py); the PUT targets locked
    # together too: otherwise up to three statements per entry (docs/BENCHMARKS.md,
    # "Batch Bundles matched and locked ahead").
    found = _references(request.parsed)
    interactions.match_ahead(_conditions(request.parsed, found, base))
    interactions.lock_ahead(
        [
            (entry.resource_type, entry.resource_id)
            for entry in request.parsed
            if entry.method == "PUT" and entry.query is None and entry.resource_id
        ]
    )
    ordered = sorted(request.parsed, key=lambda e: (PHASE[e.method], e.index))
    writes = [entry for entry in ordered if entry.method not in ("GET", "HEAD")]
    for start in range(0, len(writes), _BATCH_GROUP):
        group = writes[start : start + _BATCH_GROUP]
        answers = _batch_group(interactions, group, request, found, base, prefer)
        if answers is None:
            answers = {e.index: _batch_entry(interactions, e, request, base, prefer) for e in group}
        responses.update(answers)
    for entry in ordered[len(writes) :]:
        responses[entry.index] = _batch_entry(interactions, entry, request, base, prefer)
    return [responses[i] for i in range(len(request.entries))]


class _Regroup(Exception):
    """A batch entry failed after the database saw its writes: its group is redone."""


def _batch_group(
    interactions: Interactions,
    group: list[Entry],
    request: BundleRequest,
    found: dict[int, list[Found]],
    base: str,
    prefer: str | None,
) -> dict[int, dict[str, Any]] | None:
    """The write entries of `group` answered each on its own, as `_batch_entry` would,
    in one savepoint and with their writes flushed together (a statement that needs
    them flushes them sooner: Interactions.deferred).

    An entry that fails before the database saw its writes is dropped alone. None (all
    rolled back, every entry as it came) when one failed after, or the flush failed:
    the caller then runs the group entry by entry.
    """
    if len(group) < 2:
        return None
    repository = interactions.repository
    pristine = orjson.dumps([entry.resource for entry in group])
    written = len(interactions.written)
    looked = (len(repository.disclosed), len(repository.refused))
    begun = interactions.mark()
    answers: dict[int, dict[str, Any]] = {}
    try:
        with repository.savepoint(), interactions.deferred():
            for entry in group:
                mark = interactions.mark()
                try:
                    result = _batch_write(interactions, entry, request, base, found)
                except FhirError as error:
                    if interactions.reached_database():
                        raise _Regroup from error
                    interactions.discard(since=mark)
                    answers[entry.index] = _error_entry(error)
                else:
                    answers[entry.index] = _response_entry(result, base, prefer)
            interactions.flush()
    except (_Regroup, FhirError):
        interactions.discard(since=begun)
        interactions.forget_written_after(written)
        # The entries run again and look again at what they looked at (their looks at
        # resources the rollback removed would name what does not exist).
        del repository.disclosed[looked[0] :]
        del repository.refused[looked[1] :]
        _restore(group, orjson.loads(pristine))
        return None
    return answers


def _batch_entry(
    interactions: Interactions,
    entry: Entry,
    request: BundleRequest,
    base: str,
    prefer: str | None,
) -> dict[str, Any]:
    """One batch entry in a savepoint of its own, flushed at once."""
    mark = interactions.mark()
    try:
        with interactions.repository.savepoint():
            if entry.method in ("GET", "HEAD"):
                result: Result | dict[str, Any] = _run_read(interactions, entry, base)
            else:
                result = _batch_write(interactions, entry, request, base)
                interactions.flush()
        return _response_entry(result, base, prefer)
    except FhirError as error:
        interactions.discard(since=mark)
        return _error_entry(error)


def _batch_write(
    interactions: Interactions,
    entry: Entry,
    request: BundleRequest,
    base: str,
    found: dict[int, list[Found]] | None = None,
) -> Result:
    """`found`: the references in the entry's resource as it is (`_references`); a
    group run again has its resources back as they came, and they are looked for anew."""
    if entry.resource is not None:
        # A resolver per entry: its conditional references see what the entries before
        # wrote (their matches are kept where no write changed them, above).
        resolver = ReferenceResolver(interactions, {}, base, request.literal_of)
        if found is not None and entry.index in found:
            resolver.rewrite_found(found[entry.index])
        else:
            resolver.rewrite(entry.resource, f"{entry.where}.resource")
    return _run_write(interactions, entry)


def _assign_ids(
    interactions: Interactions, entries: list[Entry], conditions: list[tuple[str, str, str]]
) -> dict[str, str]:
    """Decide the id every written entry gets, so references can be rewritten first."""
    id_map: dict[str, str] = {}
    planned_creates: dict[tuple[str, str], Entry] = {}
    interactions.match_ahead(conditions)
    for entry in entries:
        if entry.method == "POST":
            if entry.if_none_exist:
                where = f"{entry.where}.request.ifNoneExist"
                matches = interactions.match(entry.resource_type, entry.if_none_exist, where)
                if len(matches) > 1:
                    raise precondition_failed(
                        f"{where} matches more than one {entry.resource_type}",
                        code="multiple-matches",
                    )
                if matches:
                    entry.existing = matches[0]
                    entry.target_id = matches[0].id
                else:
                    # Two entries with the same condition are one resource: the first
                    # creates it, the second finds it (as it would in two requests).
                    key = interactions.condition_key(
                        entry.resource_type, entry.if_none_exist, where
                    )
                    first = planned_creates.setdefault(key, entry)
                    if first is not entry:
                        entry.same_as = first
                        entry.target_id = first.target_id
            if entry.target_id is None:
                entry.target_id = new_id()
        elif entry.method in ("PUT", "PATCH"):
            entry.target_id = (
                _conditional_update_target(interactions, entry)
                if entry.query is not None
                else entry.resource_id
            )
        else:
            continue
        if entry.full_url and entry.target_id:
            id_map[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return id_map


def _references(entries: list[Entry]) -> dict[int, list[Found]]:
    """The references in each written entry's resource, by the entry's index."""
    return {
        entry.index: references_in(entry.resource, f"{entry.where}.resource")
        for entry in entries
        if entry.resource is not None
    }


def _conditions(
    entries: list[Entry], found: dict[int, list[Found]], base: str
) -> list[tuple[str, str, str]]:
    """The (type, query, where) of the entries' conditional creates and updates, and of
    the conditional references in what they write (`Practitioner?identifier=...`)."""
    conditions = [
        (entry.resource_type, entry.if_none_exist, f"{entry.where}.request.ifNoneExist")
        for entry in entries
        if entry.method == "POST" and entry.if_none_exist
    ] + [
        (entry.resource_type, entry.query, f"{entry.where}.request.url")
        for entry in entries
        if entry.method in ("PUT", "PATCH") and entry.query is not None
    ]
    for entry in entries:
        if entry.index in found:
            where = f"{entry.where}.resource"
            conditions += [
                (resource_type, query, where)
                for resource_type, query in conditional_references(found[entry.index], base)
            ]
    return conditions


def _conditional_update_target(interactions: Interactions, entry: Entry) -> str:
    assert entry.query is not None
    where = f"{entry.where}.request.url"
    matches = interactions.match(entry.resource_type, entry.query, where)
    if len(matches) > 1:
        raise precondition_failed(
            f"{where} matches more than one {entry.resource_type}", code="multiple-matches"
        )
    if matches:
        return matches[0].id
    body_id = (entry.resource or {}).get("id")
    if body_id is None:
        return new_id()
    # As for PUT Type?criteria over HTTP (Interactions.conditional_update): an id naming
    # a resource the condition did not match is a conflict.
    existing = interactions.locked_current(entry.resource_type, str(body_id))
    if existing is not None and not existing.deleted:
        raise conflict(
            f"No {entry.resource_type} matches {entry.query}, but "
            f"{entry.resource_type}/{body_id} exists and does not match it",
            f"{entry.where}.resource.id",
        )
    return str(body_id)


def write_entry(interactions: Interactions, entry: Entry) -> Result:
    """One write entry on its own (the push path's single-resource writes)."""
    return _run_write(interactions, entry)


def _run_write(interactions: Interactions, entry: Entry, *, planned: bool = False) -> Result:
    """One written entry. `planned`: a transaction decided its id and matched it already."""
    where = f"{entry.where}.resource"
    try:
        if entry.method == "DELETE":
            if entry.resource_id:
                return interactions.delete(
                    entry.resource_type, entry.resource_id, if_match=entry.if_match
                )
            return interactions.conditional_delete(
                entry.resource_type, entry.query or "", f"{entry.where}.request.url"
            )
        if entry.method == "PATCH":
            assert entry.resource_id is not None
            return interactions.patch(
                entry.resource_type,
                entry.resource_id,
                entry.patch,
                if_match=entry.if_match,
                where=where,
            )
        checked = entry.checked
        assert checked is not None
        if entry.method == "POST":
            return interactions.create(
                checked,
                if_none_exist=entry.if_none_exist,
                where=where,
                resource_id=entry.target_id,
                known_unmatched=planned,
            )
        if entry.query is None:
            assert entry.resource_id is not None
            return interactions.update(
                entry.resource_id, checked, if_match=entry.if_match, where=where
            )
        if not planned:
            return interactions.conditional_update(
                entry.query, checked, if_match=entry.if_match, where=where, merge=entry.merge
            )
        assert entry.target_id is not None
        if checked.resource.get("id") is None:
            checked = checked.with_id(entry.target_id)
        # A merge must start from the latest version: lock it (another push for the same
        # citizen may be merging too; on PostgreSQL it would otherwise be lost).
        current = interactions.locked_current(entry.resource_type, entry.target_id)
        if current is None:
            return interactions.create(
                checked, where=where, if_none_exist=entry.query, resource_id=entry.target_id
            )
        if entry.merge is not None and current.body is not None and not current.deleted:
            merged = entry.merge(orjson.loads(current.body), checked.resource)
            checked = Checked(entry.resource_type, merged).with_id(entry.target_id)
        return interactions.update(entry.target_id, checked, if_match=entry.if_match, where=where)
    except FhirError as error:
        raise error.located(entry.where) if not _is_located(error) else error from None


def _is_located(error: FhirError) -> bool:
    return all(any(e.startswith("Bundle.") for e in i.expression) for i in error.issues)


def _run_read(interactions: Interactions, entry: Entry, base: str) -> dict[str, Any]:
    """A GET entry, answered as a ready response entry."""
    params = parse_qsl(entry.query or "", keep_blank_values=True)
    try:
        if entry.history:
            bundle = history_bundle(
                interactions,
                base=base,
                params=dict(params),
                resource_type=entry.resource_type,
                resource_id=entry.resource_id,
            )
            return {"resource": bundle, "response": {"status": "200 OK"}}
        if entry.resource_id is None:
            bundle = searchset_bundle(
                interactions, base=base, resource_type=entry.resource_type, params=params
            )
            return {"resource": bundle, "response": {"status": "200 OK"}}
        if entry.version_id is not None:
            version = interactions.vread(entry.resource_type, entry.resource_id, entry.version_id)
        else:
            version = interactions.read(entry.resource_type, entry.resource_id)
    except FhirError as error:
        raise error.located(entry.where) if not _is_located(error) else error from None
    return {
        "fullUrl": f"{base}/{version.resource_type}/{version.id}",
        "resource": stored(version.body),
        "response": {
            "status": "200 OK",
            "etag": etag(version.version_id),
            "lastModified": instant(version.last_updated),
        },
    }


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _response_entry(
    result: Result | dict[str, Any], base: str, prefer: str | None
) -> dict[str, Any]:
    if isinstance(result, dict):  # a GET entry, answered already
        return result
    entry: dict[str, Any] = {}
    response: dict[str, Any] = {"status": _status_line(result.status)}
    version = result.version
    if version is not None:
        entry["fullUrl"] = f"{base}/{version.resource_type}/{version.id}"
        if result.status != 204:
            response["location"] = result.location
        response["etag"] = etag(version.version_id)
        response["lastModified"] = instant(version.last_updated)
        if version.body is not None and prefer == "representation":
            entry["resource"] = stored(version.body)
    if prefer == "OperationOutcome":
        response["outcome"] = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": _status_line(result.status),
                }
            ],
        }
    entry["response"] = response
    return entry


def _error_entry(error: FhirError) -> dict[str, Any]:
    return {
        "response": {
            "status": _status_line(error.status),
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [i.to_fhir() for i in error.issues],
            },
        }
    }
