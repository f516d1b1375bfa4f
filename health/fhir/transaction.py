"""Batch and transaction Bundles: https://hl7.org/fhir/R4/http.html#transaction

A transaction is all or nothing (the caller's database transaction rolls back on any
error); a batch answers each entry on its own, each in a savepoint. Entries are
processed DELETE, POST, PUT/PATCH, then GET (https://hl7.org/fhir/R4/http.html#trules),
after urn:uuid fullUrls and conditional references have been resolved and rewritten.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from health.fhir.errors import (
    FhirError,
    Issue,
    conflict,
    invalid,
    not_supported,
    precondition_failed,
    structure,
)
from health.fhir.interactions import Interactions, Result, new_id
from health.fhir.listing import history_bundle, searchset_bundle
from health.fhir.validation import ID_PATTERN
from health.fhir.versions import etag, instant, parse_if_match

_PHASE = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One request entry of a Bundle, parsed."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None = None
    version_id: str | None = None
    history: bool = False
    query: str | None = None
    resource: dict[str, Any] | None = None
    patch: Any = None
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: int | None = None
    # The id this entry will write, decided before references are rewritten.
    target_id: str | None = None
    # Set when a conditional create found its match before anything was written.
    existing: Result | None = None
    # An earlier entry of the same Bundle with the same conditional create.
    same_as: Entry | None = None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def process_bundle(
    interactions: Interactions, bundle: Any, *, base: str, prefer: str | None
) -> dict[str, Any]:
    """Run a batch or transaction Bundle and return its response Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise invalid("POST to the base URL takes a Bundle of type batch or transaction", "Bundle")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise invalid(f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise structure("Bundle.entry must be an array", "Bundle.entry")
    limit = interactions.config.settings.max_bundle_entries
    if len(raw_entries) > limit:
        raise invalid(
            f"The Bundle has {len(raw_entries)} entries; the limit is {limit}", "Bundle.entry"
        )
    if kind == "transaction":
        responses = _transaction_settled(interactions, raw_entries, base, prefer)
    else:
        responses = _batch(interactions, raw_entries, base, prefer)
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses}


class _CreatedConcurrently(FhirError):
    """A conditional entry's match was created by another request after ids were assigned."""


# How often a transaction starts over after a concurrent request created a match.
_TRANSACTION_RETRIES = 2


def _transaction_settled(
    interactions: Interactions, raw_entries: list[Any], base: str, prefer: str | None
) -> list[dict[str, Any]]:
    """_transaction, started over when a concurrent request created one of its matches.

    Ids and references are planned before anything is written; a conditional create
    that then finds another transaction's new resource voids that plan. On PostgreSQL
    (READ COMMITTED) a new statement sees the other transaction's commit, so the next
    run resolves the condition to that resource. SQLite runs writers one at a time.
    """
    pristine = orjson.dumps(raw_entries)  # _transaction rewrites references in place
    entries = raw_entries
    for _retry in range(_TRANSACTION_RETRIES):
        try:
            with interactions.repository.savepoint():
                return _transaction(interactions, entries, base, prefer)
        except _CreatedConcurrently:
            interactions.discard()
            entries = orjson.loads(pristine)
    return _transaction(interactions, entries, base, prefer)


def _transaction(
    interactions: Interactions, raw_entries: list[Any], base: str, prefer: str | None
) -> list[dict[str, Any]]:
    entries = [_parse_entry(i, raw, base) for i, raw in enumerate(raw_entries)]
    full_urls: dict[str, Entry] = {}
    for entry in entries:
        if entry.full_url:
            if entry.full_url in full_urls:
                raise invalid(
                    f"fullUrl {entry.full_url} appears twice in the Bundle",
                    f"{entry.where}.fullUrl",
                )
            full_urls[entry.full_url] = entry
    ordered = sorted(entries, key=lambda e: (_PHASE[e.method], e.index))
    results: dict[int, Result | dict[str, Any]] = {}

    for entry in (e for e in ordered if e.method == "DELETE"):
        results[entry.index] = _run_write(interactions, entry)
    interactions.flush()

    id_map = _assign_ids(interactions, entries)
    resolver = _ReferenceResolver(interactions, id_map, base)
    for entry in entries:
        if entry.resource is not None and entry.method in ("POST", "PUT"):
            resolver.rewrite(entry.resource, f"{entry.where}.resource")

    for phase in ("POST", "PUT"):
        for entry in ordered:
            if _PHASE[entry.method] != _PHASE[phase]:
                continue
            if entry.same_as is not None:
                first = results[entry.same_as.index]
                assert isinstance(first, Result)
                result = Result(200, first.version)
            else:
                result = entry.existing or _run_write(interactions, entry)
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
    interactions: Interactions, raw_entries: list[Any], base: str, prefer: str | None
) -> list[dict[str, Any]]:
    parsed: list[Entry | FhirError] = []
    for index, raw in enumerate(raw_entries):
        try:
            parsed.append(_parse_entry(index, raw, base))
        except FhirError as error:
            parsed.append(error)
    responses: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(parsed):
        if isinstance(item, FhirError):
            responses[index] = _error_entry(item)
    entries = sorted(
        (e for e in parsed if isinstance(e, Entry)), key=lambda e: (_PHASE[e.method], e.index)
    )
    resolver = _ReferenceResolver(interactions, {}, base)
    for entry in entries:
        try:
            with interactions.repository.savepoint():
                if entry.method in ("GET", "HEAD"):
                    result: Result | dict[str, Any] = _run_read(interactions, entry, base)
                else:
                    if entry.resource is not None:
                        resolver.rewrite(entry.resource, f"{entry.where}.resource")
                    result = _run_write(interactions, entry)
                    interactions.flush()
            responses[entry.index] = _response_entry(result, base, prefer)
        except FhirError as error:
            interactions.discard()
            responses[entry.index] = _error_entry(error)
    return [responses[i] for i in range(len(raw_entries))]


def _assign_ids(interactions: Interactions, entries: list[Entry]) -> dict[str, str]:
    """Decide the id every written entry gets, so references can be rewritten first."""
    id_map: dict[str, str] = {}
    planned_creates: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if entry.method == "POST":
            if entry.if_none_exist:
                matches = interactions.match(
                    entry.resource_type, entry.if_none_exist, f"{entry.where}.request.ifNoneExist"
                )
                if len(matches) > 1:
                    raise precondition_failed(
                        f"{entry.where}.request.ifNoneExist matches more than one "
                        f"{entry.resource_type}",
                        code="multiple-matches",
                    )
                if matches:
                    entry.existing = Result(200, matches[0])
                    entry.target_id = matches[0].id
                else:
                    # Two entries with the same condition are one resource: the first
                    # creates it, the second finds it (as it would in two requests).
                    key = interactions.condition_key(
                        entry.resource_type,
                        entry.if_none_exist,
                        f"{entry.where}.request.ifNoneExist",
                    )
                    first = planned_creates.setdefault(key, entry)
                    if first is not entry:
                        entry.same_as = first
                        entry.target_id = first.target_id
            if entry.target_id is None:
                entry.target_id = new_id()
        elif entry.method in ("PUT", "PATCH"):
            if entry.query is not None:
                matches = interactions.match(
                    entry.resource_type, entry.query, f"{entry.where}.request.url"
                )
                if len(matches) > 1:
                    raise precondition_failed(
                        f"{entry.where}.request.url matches more than one {entry.resource_type}",
                        code="multiple-matches",
                    )
                body_id = (entry.resource or {}).get("id")
                if not matches and body_id is not None:
                    # As for PUT Type?criteria over HTTP (Interactions.conditional_update):
                    # an id naming a resource the condition did not match is a conflict.
                    existing = interactions.repository.current(entry.resource_type, str(body_id))
                    if existing is not None and not existing.deleted:
                        raise conflict(
                            f"No {entry.resource_type} matches {entry.query}, but "
                            f"{entry.resource_type}/{body_id} exists and does not match it",
                            f"{entry.where}.resource.id",
                        )
                entry.target_id = matches[0].id if matches else (body_id or new_id())
            else:
                entry.target_id = entry.resource_id
        else:
            continue
        if entry.full_url and entry.target_id:
            id_map[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return id_map


class _ReferenceResolver:
    """Rewrites references to Bundle fullUrls and resolves conditional references."""

    def __init__(self, interactions: Interactions, id_map: dict[str, str], base: str) -> None:
        self._interactions = interactions
        self._id_map = id_map
        self._base = base
        self._conditional: dict[str, str] = {}

    def rewrite(self, node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "reference" and isinstance(value, str):
                    node[key] = self._resolve(value, f"{path}.reference")
                elif isinstance(value, dict | list):
                    self.rewrite(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, dict | list):
                    self.rewrite(item, f"{path}[{i}]")

    def _resolve(self, reference: str, where: str) -> str:
        if reference in self._id_map:
            return self._id_map[reference]
        if reference.startswith(("urn:uuid:", "urn:oid:")):
            raise invalid(
                f"Reference {reference} is not the fullUrl of any entry in this Bundle", where
            )
        if reference.startswith(f"{self._base}/"):
            reference = reference[len(self._base) + 1 :]
        head, question, query = reference.partition("?")
        if question and "/" not in head and head:
            return self._conditional_reference(head, query, reference, where)
        return reference

    def _conditional_reference(
        self, resource_type: str, query: str, reference: str, where: str
    ) -> str:
        if reference not in self._conditional:
            matches = self._interactions.match(resource_type, query, where)
            if not matches:
                raise invalid(f"Conditional reference {reference} matches no resource", where)
            if len(matches) > 1:
                raise FhirError(
                    [
                        Issue(
                            "multiple-matches",
                            f"Conditional reference {reference} matches more than one resource",
                            (where,),
                        )
                    ],
                    status=412,
                )
            self._conditional[reference] = f"{resource_type}/{matches[0].id}"
        return self._conditional[reference]


def _parse_entry(index: int, raw: Any, base: str) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise structure("A Bundle entry must be an object", where)
    request = raw.get("request")
    if not isinstance(request, dict):
        raise invalid("The entry has no request", f"{where}.request")
    method = request.get("method")
    if method not in _PHASE:
        raise invalid(
            f"request.method {method!r} is not one of {', '.join(_PHASE)}",
            f"{where}.request.method",
        )
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise invalid("The entry has no request.url", f"{where}.request.url")
    url = url.strip()
    if url.startswith(f"{base}/"):
        url = url[len(base) + 1 :]
    path, _, query = url.lstrip("/").partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise invalid(f"request.url {url!r} names no resource type", f"{where}.request.url")
    entry = Entry(index=index, method=method, resource_type=parts[0])
    full_url = raw.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise structure("fullUrl must be a string", f"{where}.fullUrl")
    entry.full_url = full_url
    if request.get("ifMatch"):
        entry.if_match = parse_if_match(str(request["ifMatch"]))
    if request.get("ifNoneExist"):
        entry.if_none_exist = str(request["ifNoneExist"])
    _parse_path(entry, parts, query, url)
    resource = raw.get("resource")
    if method in ("POST", "PUT"):
        if not isinstance(resource, dict):
            raise invalid(f"A {method} entry needs a resource", f"{where}.resource")
        entry.resource = resource
    elif method == "PATCH":
        entry.patch = _patch_operations(resource, where)
    return entry


def _parse_path(entry: Entry, parts: list[str], query: str, url: str) -> None:
    where = f"{entry.where}.request.url"
    method = entry.method
    if len(parts) >= 2:
        if parts[1] == "_history" and len(parts) == 2 and method in ("GET", "HEAD"):
            entry.history = True
            entry.query = query
            return
        if parts[1].startswith("$"):
            # https://hl7.org/fhir/R4/operations.html: no operation is served yet.
            raise not_supported(f"The operation {parts[1]} in {url!r} is not supported", where)
        entry.resource_id = parts[1]
        if not ID_PATTERN.fullmatch(parts[1]):
            raise invalid(f"{parts[1]!r} in {url!r} is not a valid FHIR id", where)
    if len(parts) >= 3:
        if parts[2] != "_history" or len(parts) > 4 or method not in ("GET", "HEAD"):
            raise invalid(f"request.url {url!r} is not a {method} this server understands", where)
        entry.history = len(parts) == 3
        entry.version_id = parts[3] if len(parts) == 4 else None
    if method == "POST" and (entry.resource_id or query):
        raise invalid(f"A POST entry's url must be just the type, not {url!r}", where)
    if method in ("PUT", "DELETE") and not entry.resource_id:
        if not query:
            raise invalid(f"A {method} entry's url needs an id or search criteria", where)
        entry.query = query
    if method == "PATCH" and not entry.resource_id:
        raise invalid("A PATCH entry's url must name the resource (Type/id)", where)
    if method in ("GET", "HEAD"):
        entry.query = query


def _patch_operations(resource: Any, where: str) -> Any:
    # In a Bundle a JSON Patch travels as a Binary: https://hl7.org/fhir/R4/http.html#patch
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise invalid(
            "A PATCH entry needs a Binary resource holding a JSON Patch", f"{where}.resource"
        )
    if resource.get("contentType") != "application/json-patch+json":
        raise invalid(
            "Only JSON Patch (application/json-patch+json) is supported",
            f"{where}.resource.contentType",
        )
    try:
        return orjson.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise invalid(
            "Binary.data is not base64-encoded JSON Patch", f"{where}.resource.data"
        ) from None


def _run_write(interactions: Interactions, entry: Entry) -> Result:
    try:
        if entry.method == "DELETE":
            if entry.resource_id:
                return interactions.delete(
                    entry.resource_type, entry.resource_id, if_match=entry.if_match
                )
            return interactions.conditional_delete(
                entry.resource_type, entry.query or "", f"{entry.where}.request.url"
            )
        resource = entry.resource
        where = f"{entry.where}.resource"
        if entry.method == "POST":
            return interactions.create(
                entry.resource_type,
                resource,
                if_none_exist=entry.if_none_exist,
                where=where,
                resource_id=entry.target_id,
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
        assert resource is not None
        if entry.query is None:
            # PUT Type/id; a batch assigns no target ids, so the URL's id is the one.
            assert entry.resource_id is not None
            return interactions.update(
                entry.resource_type,
                entry.resource_id,
                resource,
                if_match=entry.if_match,
                where=where,
            )
        if entry.query is not None and entry.target_id is None:
            return interactions.conditional_update(
                entry.resource_type, entry.query, resource, if_match=entry.if_match, where=where
            )
        if entry.query is not None and resource.get("id") is None:
            resource = {**resource, "id": entry.target_id}
        assert entry.target_id is not None
        if entry.query is not None and not _exists(interactions, entry):
            return interactions.create(
                entry.resource_type,
                resource,
                where=where,
                if_none_exist=entry.query,
                resource_id=entry.target_id,
            )
        return interactions.update(
            entry.resource_type, entry.target_id, resource, if_match=entry.if_match, where=where
        )
    except FhirError as error:
        raise error.located(entry.where) if not _is_located(error) else error from None


def _exists(interactions: Interactions, entry: Entry) -> bool:
    assert entry.target_id is not None
    current = interactions.repository.current(entry.resource_type, entry.target_id)
    return current is not None


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
        "resource": orjson.loads(version.body or b"{}"),
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
            entry["resource"] = orjson.loads(version.body)
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
