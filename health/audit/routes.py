"""The access log over FHIR: `GET /fhir/AuditEvent` (search) and `GET /fhir/AuditEvent/{id}`.

https://hl7.org/fhir/R4/auditevent.html. Mounted before the generic type routes of
health/fhir/routes.py, so AuditEvent is always answered from the log, never from the
resource tables. The citizen sees the rows of their own record; an auditor's client
sees every row; nobody else sees any. Reading the log is not itself logged: the
readers are the citizen and auditors, and logging their reads would add rows to the
very record they are reading without telling anyone more about who saw what.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.audit.events import audit_event
from health.audit.log import AuditLog
from health.audit.search import AuditSearch, parse_audit_search, searchset
from health.auth.request import actor_for_request, authenticate
from health.auth.scopes import Permission
from health.db.engine import Database
from health.fhir.errors import FhirError, forbidden, method_not_allowed, not_found, not_supported
from health.fhir.http import base_of, config_of, json_response, negotiate, prefer_lenient
from health.fhir.versions import etag, http_date
from health.numbers import INT64_DIGITS, whole_number

RESOURCE_TYPE = "AuditEvent"
_WRITES = ["POST", "PUT", "PATCH", "DELETE"]

router = APIRouter(
    prefix=f"/fhir/{RESOURCE_TYPE}",
    tags=["FHIR"],
    dependencies=[Depends(authenticate), Depends(negotiate)],
)


def _reader(request: Request, session: Session, permission: Permission) -> Actor:
    """The caller, if the access log is theirs to read; 403 otherwise."""
    actor = actor_for_request(request, session)
    if actor.kind not in (ActorKind.citizen, ActorKind.auditor):
        raise forbidden("The access log is read by the citizen whose record it is and by auditors")
    if not actor.may(permission, RESOURCE_TYPE):
        raise forbidden(
            f"The access token's scopes do not permit this on {RESOURCE_TYPE}",
            scope=f"{'patient' if actor.kind is ActorKind.citizen else 'system'}/AuditEvent.rs",
        )
    return actor


def _audit_log(request: Request, session: Session) -> AuditLog:
    return AuditLog(session, config_of(request).settings.audit_key.encode())


@router.get("")
def search(request: Request) -> Response:
    settings = config_of(request).settings
    query = parse_audit_search(
        list(request.query_params.multi_items()),
        base_url=base_of(request),
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        lenient=prefer_lenient(request),
    )
    database: Database = request.app.state.database
    with database.session(write=False) as session:
        actor = _reader(request, session, Permission.search)
        bundle = _search(_audit_log(request, session), actor, query, base_of(request))
    return json_response(request, bundle)


def _search(log: AuditLog, actor: Actor, query: AuditSearch, base: str) -> dict[str, object]:
    """One page of the rows `actor` may read that match `query`."""
    if actor.kind is ActorKind.citizen:
        # Asking for another citizen's log finds nothing, exactly as a log with no rows.
        assert actor.patient_id is not None
        patient_id: str | None = actor.patient_id
        matches_nothing = bool(query.patient_ids) and query.patient_ids != {patient_id}
    else:
        patient_id = next(iter(query.patient_ids)) if len(query.patient_ids) == 1 else None
        matches_nothing = len(query.patient_ids) > 1
    if matches_nothing:
        return searchset([], query, base_url=base, has_more=False, total=0)
    window = {"before_seq": query.before_seq, "since": query.since, "until": query.until}
    if patient_id is not None:
        found = log.for_patient(patient_id, **window, limit=query.count + 1)
    else:
        found = log.for_auditor(**window, limit=query.count + 1)
    has_more = len(found) > query.count
    records = found[: query.count]
    total: int | None
    if query.before_seq is None and not has_more:
        total = len(records)
    elif patient_id is not None:
        # One citizen's rows are counted on the (patient_id, seq) index: cheap.
        total = log.count(patient_id, since=query.since, until=query.until)
    else:
        # Counting the whole log on every page is not: left out, as FHIR allows.
        total = None
    return searchset(records, query, base_url=base, has_more=has_more, total=total)


@router.post("/_search")
def search_by_post(request: Request) -> Response:
    raise not_supported("Search the access log with GET /fhir/AuditEvent?patient=...&date=...")


@router.get("/_history")
def history(request: Request) -> Response:
    raise _read_and_search_only()


@router.get("/{audit_id}")
def read(audit_id: str, request: Request) -> Response:
    database: Database = request.app.state.database
    with database.session(write=False) as session:
        actor = _reader(request, session, Permission.read)
        seq = whole_number(audit_id, max_digits=INT64_DIGITS)
        record = _audit_log(request, session).get(seq) if seq is not None else None
    hidden = (
        record is not None
        and actor.kind is ActorKind.citizen
        and record.entry.patient_id != actor.patient_id
    )
    if record is None or hidden:
        # Another citizen's row answers exactly like a row that does not exist.
        raise not_found(f"{RESOURCE_TYPE}/{audit_id} is not known")
    headers = {"ETag": etag(1), "Last-Modified": http_date(record.recorded)}
    return json_response(request, audit_event(record, base_of(request)), headers=headers)


@router.get("/{audit_id}/{rest:path}")
def beyond_read(audit_id: str, rest: str, request: Request) -> Response:
    raise _read_and_search_only()


@router.api_route("", methods=_WRITES)
@router.api_route("/{rest:path}", methods=_WRITES)
def refuse_write(request: Request) -> Response:
    """https://hl7.org/fhir/R4/http.html#3.1.0.4.2: 405 for an interaction not allowed here."""
    refused = method_not_allowed(
        "The access log is written by the server: AuditEvent cannot be created, changed "
        "or deleted over the API"
    )
    refused.headers["Allow"] = "GET"
    raise refused


def _read_and_search_only() -> FhirError:
    return not_supported(
        "The access log answers read (GET /fhir/AuditEvent/{id}) and search only; "
        "rows have no versions"
    )
