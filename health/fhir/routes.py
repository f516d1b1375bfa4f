"""The FHIR REST router: HTTP in, interaction calls, HTTP out.

https://hl7.org/fhir/R4/http.html. Handlers are plain functions run in the thread
pool; each opens one unit of work (a database transaction and a Repository).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from health.auth.discovery import smart_configuration
from health.auth.request import authenticate
from health.fhir.bundle_request import Entry, parse_bundle
from health.fhir.capability import capability_statement
from health.fhir.errors import invalid, not_supported
from health.fhir.everything import everything_bundle, own_record_unavailable
from health.fhir.http import (
    base_of,
    check_path_ids,
    config_of,
    if_match,
    json_response,
    negotiate,
    parse_body,
    prefer_lenient,
    prefer_return,
    read_body,
    resource_response,
    unit_of_work,
    write_response,
)
from health.fhir.listing import history_bundle, searchset_bundle
from health.fhir.validation import Checked, check
from health.ingest.pipeline import our_id, push_bundle, push_one

router = APIRouter(
    prefix="/fhir",
    tags=["FHIR"],
    dependencies=[Depends(authenticate), Depends(negotiate), Depends(check_path_ids)],
)


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _query(request: Request) -> str:
    return request.url.query


def _checked_body(request: Request, raw: bytes, resource_type: str) -> Checked:
    """The body, parsed and validated before any database transaction is opened."""
    return check(parse_body(request, raw), resource_type, config_of(request).types)


@router.get("/metadata")
def metadata(request: Request) -> Response:
    return json_response(request, capability_statement(request.app, config_of(request)))


@router.get("/.well-known/smart-configuration")
def smart_configuration_document(request: Request) -> Response:
    """https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known"""
    return JSONResponse(smart_configuration(config_of(request).settings))


@router.post("")
@router.post("/")
def batch_or_transaction(request: Request, raw: bytes = Depends(read_body)) -> Response:
    config = config_of(request)
    bundle = parse_bundle(
        parse_body(request, raw),
        config.types,
        base=base_of(request),
        max_entries=config.settings.max_bundle_entries,
    )
    with unit_of_work(request, write=True) as fx:
        response = push_bundle(fx, bundle, base=base_of(request), prefer=prefer_return(request))
    return json_response(request, response)


@router.get("")
@router.get("/")
def system_search(request: Request) -> Response:
    raise not_supported(
        "Searching across all resource types is not supported; "
        "search one type, e.g. GET /fhir/Patient?identifier=..."
    )


@router.get("/_history")
def system_history(request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        bundle = history_bundle(fx, base=base_of(request), params=_params(request))
    return json_response(request, bundle)


@router.get("/{resource_type}/_history")
def type_history(resource_type: str, request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        bundle = history_bundle(
            fx, base=base_of(request), params=_params(request), resource_type=resource_type
        )
    return json_response(request, bundle)


# Operations, before the generic /{resource_type}/{resource_id} routes: FastAPI matches
# routes in order, and `$everything` would otherwise be read as a resource id.


@router.get("/Patient/$everything")
def own_everything(request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        patient_id = fx.repository.actor.patient_id
        if patient_id is None:
            raise own_record_unavailable()
        bundle = everything_bundle(
            fx, base=base_of(request), patient_id=patient_id, params=_params(request)
        )
    return json_response(request, bundle)


@router.get("/Patient/{patient_id}/$everything")
def patient_everything(patient_id: str, request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        bundle = everything_bundle(
            fx, base=base_of(request), patient_id=patient_id, params=_params(request)
        )
    return json_response(request, bundle)


def _search(request: Request, resource_type: str, pairs: list[tuple[str, str]]) -> Response:
    with unit_of_work(request, write=False) as fx:
        bundle = searchset_bundle(
            fx,
            base=base_of(request),
            resource_type=resource_type,
            params=pairs,
            lenient=prefer_lenient(request),
        )
    return json_response(request, bundle)


@router.get("/{resource_type}")
def search_type(resource_type: str, request: Request) -> Response:
    return _search(request, resource_type, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search")
def search_type_post(
    resource_type: str, request: Request, raw: bytes = Depends(read_body)
) -> Response:
    # https://hl7.org/fhir/R4/http.html#search: form-encoded body, plus any URL params.
    from urllib.parse import parse_qsl

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and kind != "application/x-www-form-urlencoded":
        raise invalid("POST _search takes an application/x-www-form-urlencoded body")
    try:
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise invalid("The _search body is not valid UTF-8") from None
    return _search(request, resource_type, [*request.query_params.multi_items(), *form])


@router.post("/{resource_type}")
def create(resource_type: str, request: Request, raw: bytes = Depends(read_body)) -> Response:
    checked = _checked_body(request, raw, resource_type)
    if_none_exist = request.headers.get("if-none-exist")
    entry = Entry(0, "POST", resource_type, checked=checked, if_none_exist=if_none_exist)
    with unit_of_work(request, write=True) as fx:
        result = push_one(fx, entry, base=base_of(request)) or fx.create(
            checked, if_none_exist=if_none_exist
        )
    return write_response(request, result)


@router.put("/{resource_type}")
def conditional_update(
    resource_type: str, request: Request, raw: bytes = Depends(read_body)
) -> Response:
    query = _query(request)
    if not query:
        raise invalid("PUT needs an id in the URL (Type/id) or search criteria (Type?...)")
    checked = _checked_body(request, raw, resource_type)
    entry = Entry(0, "PUT", resource_type, query=query, checked=checked)
    entry.if_match = if_match(request)
    with unit_of_work(request, write=True) as fx:
        result = push_one(fx, entry, base=base_of(request)) or fx.conditional_update(
            query, checked, if_match=entry.if_match
        )
    return write_response(request, result)


@router.delete("/{resource_type}")
def conditional_delete(resource_type: str, request: Request) -> Response:
    query = _query(request)
    if not query:
        raise invalid("DELETE needs an id in the URL (Type/id) or search criteria (Type?...)")
    with unit_of_work(request, write=True) as fx:
        fx.conditional_delete(resource_type, query)
    return Response(status_code=204)


@router.get("/{resource_type}/{resource_id}")
def read(resource_type: str, resource_id: str, request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        version = fx.read(resource_type, resource_id)
    return resource_response(request, version)


@router.put("/{resource_type}/{resource_id}")
def update(
    resource_type: str, resource_id: str, request: Request, raw: bytes = Depends(read_body)
) -> Response:
    checked = _checked_body(request, raw, resource_type)
    entry = Entry(0, "PUT", resource_type, resource_id=resource_id, checked=checked)
    entry.if_match = if_match(request)
    with unit_of_work(request, write=True) as fx:
        result = push_one(fx, entry, base=base_of(request)) or fx.update(
            resource_id, checked, if_match=entry.if_match
        )
    return write_response(request, result)


@router.patch("/{resource_type}/{resource_id}")
def patch(
    resource_type: str, resource_id: str, request: Request, raw: bytes = Depends(read_body)
) -> Response:
    operations: Any = parse_body(request, raw, allow_patch=True)
    with unit_of_work(request, write=True) as fx:
        stored_id = our_id(fx, resource_type, resource_id)
        result = fx.patch(resource_type, stored_id, operations, if_match=if_match(request))
    return write_response(request, result)


@router.delete("/{resource_type}/{resource_id}")
def delete(resource_type: str, resource_id: str, request: Request) -> Response:
    with unit_of_work(request, write=True) as fx:
        stored_id = our_id(fx, resource_type, resource_id)
        result = fx.delete(resource_type, stored_id, if_match=if_match(request))
    headers = {}
    if result.version is not None and result.status == 200:
        headers["ETag"] = f'W/"{result.version.version_id}"'
    return Response(status_code=204, headers=headers)


@router.get("/{resource_type}/{resource_id}/_history")
def instance_history(resource_type: str, resource_id: str, request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        bundle = history_bundle(
            fx,
            base=base_of(request),
            params=_params(request),
            resource_type=resource_type,
            resource_id=resource_id,
        )
    return json_response(request, bundle)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
def vread(resource_type: str, resource_id: str, version_id: str, request: Request) -> Response:
    with unit_of_work(request, write=False) as fx:
        version = fx.vread(resource_type, resource_id, version_id)
    return resource_response(request, version)
