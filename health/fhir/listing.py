"""Bundles that list resources: history and searchset, with paging links.

https://hl7.org/fhir/R4/http.html#history and https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

import orjson

from health.access import source_search
from health.auth.scopes import Permission
from health.db.versions import StoredVersion
from health.fhir.config import FhirConfig
from health.fhir.content import shape, stored
from health.fhir.errors import invalid
from health.fhir.interactions import Interactions
from health.fhir.search.params import CURSOR, SearchLimits, SearchRequest, parse_search
from health.fhir.search.scope import confine_to_patient
from health.fhir.versions import etag, instant, parse_instant
from health.numbers import INT64_DIGITS, page_count, whole_number

HISTORY_PARAMETERS = frozenset({"_since", "_count", "_cursor", "_format", "_pretty", "_at"})


def page_size(value: str | None, *, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    size = page_count(value, maximum=maximum)
    if size is None:
        raise invalid(f"_count={value!r} is not a non-negative whole number", "_count")
    return size


def history_bundle(
    interactions: Interactions,
    *,
    base: str,
    params: dict[str, str],
    resource_type: str | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    """A history Bundle, newest first, paged by a cursor on the global write order."""
    settings = interactions.config.settings
    unknown = sorted(set(params) - HISTORY_PARAMETERS)
    if unknown:
        raise invalid(f"Unknown _history parameter(s): {', '.join(unknown)}", unknown[0])
    if "_at" in params:
        raise invalid("_at is not supported on _history; use _since", "_at")
    if resource_type is not None:
        interactions.check_type(resource_type)
        if resource_id is None:
            interactions.permit(Permission.search, resource_type)
    since: datetime | None = None
    if params.get("_since"):
        since = parse_instant(params["_since"], "_since")
    count = page_size(
        params.get("_count"), default=settings.default_page_size, maximum=settings.max_page_size
    )
    cursor = params.get("_cursor")
    before_seq = None if cursor is None else whole_number(cursor, max_digits=INT64_DIGITS)
    if cursor is not None and before_seq is None:
        raise invalid(f"_cursor={cursor!r} is not a cursor this server issued", "_cursor")
    if resource_id is not None:
        interactions.require_known(resource_type or "", resource_id)
    versions = interactions.repository.history(
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        before_seq=before_seq,
        limit=count + 1,
    )
    has_more = len(versions) > count
    versions = versions[:count]
    path = "/".join(p for p in (base, resource_type, resource_id, "_history") if p)
    kept = {k: v for k, v in params.items() if k in ("_since", "_count", "_format", "_pretty")}
    links = [{"relation": "self", "url": _url(path, params)}]
    if has_more and versions and versions[-1].seq is not None:
        links.append(
            {"relation": "next", "url": _url(path, {**kept, "_cursor": str(versions[-1].seq)})}
        )
    return {
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
        "entry": [_history_entry(base, version) for version in versions],
    }


def _history_entry(base: str, version: StoredVersion) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": f"{base}/{version.resource_type}/{version.id}"}
    if version.body is not None:
        entry["resource"] = stored(version.body)
    url = (
        version.resource_type
        if version.method == "POST"
        else (f"{version.resource_type}/{version.id}")
    )
    entry["request"] = {"method": version.method, "url": url}
    status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(version.method, "200 OK")
    if version.method == "PUT" and version.version_id == 1:
        status = "201 Created"
    entry["response"] = {
        "status": status,
        "etag": etag(version.version_id),
        "lastModified": instant(version.last_updated),
    }
    return entry


def searchset_bundle(
    interactions: Interactions,
    *,
    base: str,
    resource_type: str,
    params: list[tuple[str, str]],
    lenient: bool = False,
) -> dict[str, Any]:
    """A searchset Bundle: one page of matches, their includes, total and paging links.

    https://hl7.org/fhir/R4/search.html. The links are absolute on the base; `self`
    shows the search as understood (under lenient handling without the ignored
    parameters), `next` and `previous` carry a keyset cursor (`_cursor`).
    """
    interactions.check_type(resource_type)
    interactions.permit(Permission.search, resource_type)
    config = interactions.config
    settings = config.settings
    request = parse_search(
        resource_type,
        params,
        config.search,
        base_url=base,
        limits=SearchLimits(settings.default_page_size, settings.max_page_size),
        lenient=lenient,
    )
    request = confine_to_patient(request, config.search, config.compartment)
    source = interactions.repository.source
    if source is not None:
        request = source_search.check_search(request, source, settings.national_id_systems)
    limit = 0 if request.summary == "count" else request.count
    page = interactions.repository.search(request, limit=limit, cursor=request.cursor)
    path = f"{base}/{resource_type}"
    links = [{"relation": "self", "url": _url(path, _with_cursor(request, request.cursor))}]
    if page.next_cursor is not None:
        links.append(
            {"relation": "next", "url": _url(path, _with_cursor(request, page.next_cursor))}
        )
    if page.previous_cursor is not None:
        links.append(
            {"relation": "previous", "url": _url(path, _with_cursor(request, page.previous_cursor))}
        )
    shaping = {"summary": request.summary, "elements": request.elements}
    entries = [_search_entry(base, v, "match", config, **shaping) for v in page.matches]
    if request.includes and page.matches:
        included = interactions.repository.included(
            page.matches,
            request.includes,
            limit=settings.max_page_size,
            references=partial(source_search.shown_references, config.extractor),
        )
        entries.extend(_search_entry(base, v, "include", config, **shaping) for v in included)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def _with_cursor(request: SearchRequest, cursor: str | None) -> list[tuple[str, str]]:
    return [*request.accepted, *([(CURSOR, cursor)] if cursor else [])]


def _search_entry(
    base: str,
    version: StoredVersion,
    mode: str,
    config: FhirConfig,
    *,
    summary: str | None,
    elements: tuple[str, ...] | None,
) -> dict[str, Any]:
    resource: Any = stored(version.body)
    if summary not in (None, "count") or elements is not None:
        resource = shape(
            orjson.loads(version.body or b"{}"),
            config.types,
            summary=None if summary == "count" else summary,
            elements=list(elements) if elements is not None else None,
        )
    return {
        "fullUrl": f"{base}/{version.resource_type}/{version.id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _url(path: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    query = urlencode(list(params.items()) if isinstance(params, dict) else params)
    return f"{path}?{query}" if query else path
