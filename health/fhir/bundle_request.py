"""Batch and transaction Bundles as requests: parsed and validated, before any database.

https://hl7.org/fhir/R4/http.html#transaction. Parsing checks each entry's request
(method, url, conditions) and validates its resource, so that a transaction that cannot
succeed is refused before a write transaction is opened, and so that validation never
runs while the database's write lock is held.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from health.db.versions import StoredVersion
from health.fhir.errors import FhirError, invalid, not_supported, structure
from health.fhir.resource_types import ResourceTypes
from health.fhir.validation import ID_PATTERN, Checked, check
from health.fhir.versions import parse_if_match

# Processing order: https://hl7.org/fhir/R4/http.html#trules
PHASE = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One request entry of a Bundle, parsed, with what processing decides about it."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None = None
    version_id: str | None = None
    history: bool = False
    query: str | None = None
    checked: Checked | None = None
    patch: Any = None
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: int | None = None
    # The id this entry will write, decided before references are rewritten.
    target_id: str | None = None
    # Set when a conditional create found its match before anything was written.
    existing: StoredVersion | None = None
    # An earlier entry of the same Bundle with the same conditional create.
    same_as: Entry | None = None
    # For a conditional update that should merge into what it matches rather than
    # replace it (a pushed Patient into the citizen's): (current, sent) -> merged.
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def resource(self) -> dict[str, Any] | None:
        return self.checked.resource if self.checked else None


@dataclass
class BundleRequest:
    """A parsed batch or transaction; a batch keeps each entry's own parse error."""

    kind: str
    entries: list[Entry | FhirError] = field(default_factory=list)
    # Conditional references that stand for a literal one (a push's `Patient/x`, found
    # by the source's own id x), with that literal: what they mean if nothing matches.
    literal_of: dict[str, str] = field(default_factory=dict)

    @property
    def parsed(self) -> list[Entry]:
        return [e for e in self.entries if isinstance(e, Entry)]


def parse_bundle(
    bundle: Any, types: ResourceTypes, *, base: str, max_entries: int
) -> BundleRequest:
    """Parse and validate a Bundle posted to the base URL.

    A transaction with any bad entry is refused whole, listing every entry's problems;
    a batch keeps the error in place of the entry, to be answered on its own.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise invalid("POST to the base URL takes a Bundle of type batch or transaction", "Bundle")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise invalid(f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise structure("Bundle.entry must be an array", "Bundle.entry")
    if len(raw_entries) > max_entries:
        raise invalid(
            f"The Bundle has {len(raw_entries)} entries; the limit is {max_entries}",
            "Bundle.entry",
        )
    request = BundleRequest(kind)
    for index, raw in enumerate(raw_entries):
        try:
            request.entries.append(_parse_entry(index, raw, base, types))
        except FhirError as error:
            request.entries.append(error)
    errors = [e for e in request.entries if isinstance(e, FhirError)]
    if kind == "transaction" and errors:
        raise FhirError([issue for e in errors for issue in e.issues], status=errors[0].status)
    if kind == "transaction":
        _check_full_urls(request.parsed)
    return request


def _check_full_urls(entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.full_url:
            if entry.full_url in seen:
                raise invalid(
                    f"fullUrl {entry.full_url} appears twice in the Bundle",
                    f"{entry.where}.fullUrl",
                )
            seen.add(entry.full_url)


def _parse_entry(index: int, raw: Any, base: str, types: ResourceTypes) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise structure("A Bundle entry must be an object", where)
    request = raw.get("request")
    if not isinstance(request, dict):
        raise invalid("The entry has no request", f"{where}.request")
    method = request.get("method")
    if method not in PHASE:
        raise invalid(
            f"request.method {method!r} is not one of {', '.join(PHASE)}",
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
        entry.checked = check(resource, entry.resource_type, types, f"{where}.resource")
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
