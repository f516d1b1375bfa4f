"""HTTP edges of the FHIR API: request bodies, responses, Prefer, and the error handler."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from health.access.disclosure import (
    break_glass_entry,
    consent_entries,
    disclosure_entries,
    refusal_entries,
)
from health.access.policy import care_rules
from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.audit.writer import LogWriter
from health.auth.request import actor_for_request
from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import StoredVersion
from health.fhir.config import FhirConfig
from health.fhir.content import (
    FHIR_JSON,
    check_acceptable,
    check_request_content_type,
    dumps,
    elements_list,
    is_pretty,
    parse_json,
    shape,
    summary_mode,
)
from health.fhir.emergency import emergency_patient, emergency_reason
from health.fhir.errors import FhirError, Issue, invalid, operation_outcome, too_large
from health.fhir.interactions import Interactions, Result
from health.fhir.validation import ID_PATTERN
from health.fhir.versions import etag, http_date, parse_if_match
from health.numbers import INT64_DIGITS, whole_number
from health.pages import error_page
from health.portal.errors import error_page as portal_error_page

log = logging.getLogger(__name__)
MEDIA_TYPE = f"{FHIR_JSON}; charset=utf-8"
# Why a refused read is in the citizen's log (the caller got a plain 404).
NOT_VISIBLE = "not visible to the caller"
PLAIN_JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def media_type_for(request: Request | None) -> str:
    """application/json for clients that ask for exactly that, else application/fhir+json.

    https://hl7.org/fhir/R4/http.html#mime-type
    """
    if request is None:
        return MEDIA_TYPE
    requested = request.query_params.get("_format") or request.headers.get("accept") or ""
    kinds = {part.split(";", 1)[0].strip().lower() for part in requested.split(",")}
    if "application/json" in kinds and not kinds & {FHIR_JSON, "json", "*/*"}:
        return PLAIN_JSON_MEDIA_TYPE
    return MEDIA_TYPE


def config_of(request: Request) -> FhirConfig:
    return request.app.state.fhir_config  # type: ignore[no-any-return]


def base_of(request: Request) -> str:
    return config_of(request).settings.fhir_base_url


@contextmanager
def unit_of_work(request: Request, *, write: bool) -> Iterator[Interactions]:
    """One database session and one Repository for the caller of this request,
    and the access log of what it disclosed, refused and changed (health/audit/).

    A write logs in its own transaction. A read logs right after its read-only
    session (on PostgreSQL, statements without a transaction: health/db/engine.py),
    before the response leaves, through the process's LogWriter (one transaction for
    the requests that finish together): if the log cannot be written, the caller gets
    an error instead of the data.
    """
    database: Database = request.app.state.database
    log_writer: LogWriter = request.app.state.log_writer
    config = config_of(request)
    settings = config.settings
    reason = emergency_reason(request)
    action = action_of(request)
    repository: Repository | None = None
    after: list[AuditEntry] = []
    try:
        with database.session(write=write or reason is not None) as session:
            repository = Repository(
                session, actor_for_request(request, session), rules=care_rules(settings)
            )
            entries: list[AuditEntry] = []
            if reason is not None:
                patient_id = emergency_patient(request)
                if repository.grant_emergency_access(patient_id, reason):
                    entries.append(break_glass_entry(repository, patient_id, reason))
            interactions = Interactions(repository, config)
            yield interactions
            interactions.flush()
            entries += consent_entries(repository, interactions.written)
            entries += disclosure_entries(repository, action)
            entries += refusal_entries(repository, action, NOT_VISIBLE)
            if write or reason is not None:
                AuditLog(session, settings.audit_key.encode()).append(entries, repository.now)
            else:
                after = entries
    except FhirError:
        if repository is not None and repository.refused:
            log_writer.append(refusal_entries(repository, action, NOT_VISIBLE))
        raise
    log_writer.append(after)


def action_of(request: Request) -> str:
    """The FHIR interaction a request is, as the access log names it."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    method = request.method
    if "$everything" in path:
        return "everything"
    if "/_history/" in path:
        return "vread"
    if path.endswith("/_history"):
        return "history"
    if method == "GET":
        return "read" if path.endswith("{resource_id}") else "search"
    if path.endswith("/_search"):
        return "search"
    if method == "POST":
        return "create" if path.endswith("{resource_type}") else "transaction"
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes the configured limit."""
    limit = config_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    # A length too long to read is still checked as the body streams in.
    declared_size = whole_number(declared, max_digits=INT64_DIGITS) if declared else None
    if declared_size is not None and declared_size > limit:
        raise too_large(f"The request body ({declared} bytes) exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"The request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(request: Request, raw: bytes, *, allow_patch: bool = False) -> Any:
    check_request_content_type(request.headers.get("content-type"), allow_patch=allow_patch)
    return parse_json(raw, max_depth=config_of(request).settings.max_json_depth)


async def negotiate(request: Request) -> None:
    """406 for an Accept or _format this server cannot answer (on the event loop: a few
    string checks cost less than a hand-over to the thread pool)."""
    check_acceptable(request.headers.get("accept"), request.query_params.get("_format"))


# The authorization server's endpoints that answer machines, in JSON (RFC 6749, 7009).
OAUTH_ENDPOINTS = frozenset({"/auth/token", "/auth/revoke"})
# Path parameters that name a resource by its id (`Patient/{resource_id}`,
# `Patient/{patient_id}/$everything`).
_ID_PATH_PARAMETERS = ("resource_id", "patient_id")


async def check_path_ids(request: Request) -> None:
    """400 for a resource id in the path that no resource can have (the id's syntax,
    https://hl7.org/fhir/R4/datatypes.html#id), before anything looks it up: a NUL in
    it would reach PostgreSQL, which refuses the statement."""
    for name in _ID_PATH_PARAMETERS:
        value = request.path_params.get(name)
        if value is not None and not ID_PATTERN.fullmatch(value):
            raise invalid(f"{value!r} is not a valid FHIR id (1 to 64 of A-Z a-z 0-9 - .)", "id")


def if_match(request: Request) -> int | None:
    value = request.headers.get("if-match")
    return parse_if_match(value) if value else None


def prefer_return(request: Request) -> str | None:
    """The `return` preference: minimal, representation or OperationOutcome."""
    # Preferences are comma-separated, parameters of one preference ';'-separated (RFC 7240).
    for part in re.split(r"[,;]", request.headers.get("prefer", "")):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return":
            choice = value.strip().strip('"')
            if choice in ("minimal", "representation", "OperationOutcome"):
                return choice
    return None


def prefer_lenient(request: Request) -> bool:
    """`Prefer: handling=lenient`: ignore unknown search parameters instead of a 400.

    https://hl7.org/fhir/R4/search.html#errors
    """
    for part in re.split(r"[,;]", request.headers.get("prefer", "")):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "lenient"
    return False


def json_response(
    request: Request, value: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    pretty = is_pretty(request.query_params.get("_pretty"))
    return Response(
        dumps(value, pretty=pretty),
        status_code=status,
        headers=headers,
        media_type=media_type_for(request),
    )


def version_headers(request: Request, version: StoredVersion, *, location: bool) -> dict[str, str]:
    headers = {"ETag": etag(version.version_id), "Last-Modified": http_date(version.last_updated)}
    if location:
        headers["Location"] = (
            f"{base_of(request)}/{version.resource_type}/{version.id}/_history/{version.version_id}"
        )
    return headers


def resource_response(request: Request, version: StoredVersion) -> Response:
    """A read or vread: the stored bytes as they are, unless shaping was asked for."""
    params = request.query_params
    summary = summary_mode(params.get("_summary"))
    elements = elements_list(params.get("_elements"))
    headers = version_headers(request, version, location=False)
    body = version.body or b"{}"
    if summary is None and elements is None and not is_pretty(params.get("_pretty")):
        return Response(body, headers=headers, media_type=media_type_for(request))
    shaped = shape(orjson.loads(body), config_of(request).types, summary=summary, elements=elements)
    return json_response(request, shaped, headers=headers)


def write_response(request: Request, result: Result) -> Response:
    """The answer to create, update or patch, shaped by Prefer: return=..."""
    version = result.version
    assert version is not None
    headers = version_headers(request, version, location=result.status in (200, 201))
    choice = prefer_return(request) or "representation"
    if choice == "minimal" or version.body is None:
        return Response(status_code=result.status, headers=headers)
    if choice == "OperationOutcome":
        verb = (
            "Created"
            if result.status == 201
            else "Found existing"
            if (request.method == "POST")
            else "Updated"
        )
        outcome = operation_outcome(
            [
                Issue(
                    "informational",
                    f"{verb} {version.resource_type}/{version.id} version {version.version_id}",
                    severity="information",
                )
            ]
        )
        return json_response(request, outcome, status=result.status, headers=headers)
    if is_pretty(request.query_params.get("_pretty")):
        return json_response(
            request, orjson.loads(version.body), status=result.status, headers=headers
        )
    return Response(
        version.body,
        status_code=result.status,
        headers=headers,
        media_type=media_type_for(request),
    )


def outcome_response(
    request: Request | None, issues: list[Issue], status: int, headers: dict[str, str] | None = None
) -> Response:
    pretty = bool(request and is_pretty(request.query_params.get("_pretty")))
    return Response(
        dumps(operation_outcome(issues), pretty=pretty),
        status_code=status,
        headers=headers,
        media_type=media_type_for(request),
    )


def install_error_handlers(app: FastAPI) -> None:
    """The one place where errors become OperationOutcomes under /fhir."""

    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, error: FhirError) -> Response:
        return outcome_response(request, error.issues, error.status, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> Response:
        if _under_portal(request):
            return portal_error_page(request, 400, error)
        issues = [
            Issue("invalid", str(e.get("msg")), (".".join(str(x) for x in e.get("loc", ())),))
            for e in error.errors()
        ]
        return outcome_response(request, issues, 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if _under_portal(request):
            return portal_error_page(request, error.status_code, error, error.headers)
        if not _under_fhir(request):
            # Pages outside the FHIR API (/eid, /auth) answer browsers in HTML.
            return error_page(
                request, error.status_code, _html_detail(request, error), error.headers
            )
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        detail = str(error.detail)
        if error.status_code == 404:
            detail = f"No FHIR interaction at {request.method} {request.url.path}"
        elif error.status_code == 405:
            detail = f"{request.method} is not supported on {request.url.path}"
        return outcome_response(
            request, [Issue(code, detail)], error.status_code, dict(error.headers or {})
        )

    @app.exception_handler(DataError)
    async def _data_error(request: Request, error: DataError) -> Response:
        # A NUL character that got past the checks (a form field of the authorization
        # server or the portal): PostgreSQL's text cannot hold it, psycopg refuses to
        # send it, and the transaction is rolled back. It only ever comes from the
        # request. The FHIR API refuses it before this, naming the parameter or element
        # (health/fhir/search/params.py, json_shape.py, check_path_ids).
        if not _holds_nul(error):
            return await _unexpected(request, error)
        detail = "The request holds the character U+0000 (NUL), which this server does not accept"
        if _under_portal(request):
            return portal_error_page(request, 400, None)
        if _under_fhir(request):
            return outcome_response(request, [Issue("invalid", detail)], 400)
        if request.url.path in OAUTH_ENDPOINTS:
            body = {"error": "invalid_request", "error_description": detail}
            return Response(orjson.dumps(body), 400, media_type="application/json")
        return error_page(request, 400, detail + ".")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        if _under_portal(request):
            return portal_error_page(request, 500, None)
        if not _under_fhir(request):
            return error_page(request, 500, "The server failed to process the request.")
        return outcome_response(
            request, [Issue("exception", "The server failed to process the request")], 500
        )


def _holds_nul(error: DataError) -> bool:
    """Whether psycopg refused a statement's parameter for holding a NUL character."""
    return isinstance(error.orig, psycopg.DataError) and "NUL" in str(error.orig)


def _under_portal(request: Request) -> bool:
    return _under(request, "/portal")


def _under_fhir(request: Request) -> bool:
    return _under(request, "/fhir")


def _under(request: Request, root: str) -> bool:
    path = request.url.path
    return path == root or path.startswith(root + "/")


def _html_detail(request: Request, error: StarletteHTTPException) -> str:
    if error.status_code == 404:
        return f"There is no page at {request.url.path}."
    if error.status_code == 405:
        return f"{request.method} is not supported on {request.url.path}."
    return str(error.detail)
