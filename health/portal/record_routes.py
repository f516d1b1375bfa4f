"""HTTP edges of the citizen's record pages: timeline, results, medicines, and the rest.

Every page reads through the logged-in citizen's own repository (citizen.py), so an id
of another citizen's resource in a URL is simply not found: 404, like an id that never
existed. Not logged in: back to the front page, which offers the login.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from health.fhir.search.values import escape
from health.portal import appointments, conditions, documents, export, medications
from health.portal.chart import chart_for
from health.portal.citizen import SignedIn, as_signed_in, settings_of
from health.portal.errors import PortalError
from health.portal.rendering import PRIVATE, render_page
from health.portal.results import lab_test, lab_tests
from health.portal.timeline import KINDS, page_of, read_timeline, shown_keys
from health.portal.vaccinations import vaccinations
from health.portal.view_cache import CachedView, view_cache_of, view_key

router = APIRouter(prefix="/portal", include_in_schema=False)

# Pages of 100 values read for one test's page, at most: 10,000 values of one test.
_TEST_PAGES = 100


@router.get("/timeline")
def timeline(
    request: Request,
    source: str = "",
    kind: str = "",
    event: str = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Contacts over time, grouped into life events; filtered by source, kind, event."""

    def build(citizen: SignedIn) -> Response:
        shaped, key = _shaped_timeline(request, citizen)
        chosen_kind = kind if kind in KINDS else ""
        records = citizen.records
        filters = (source or None, chosen_kind or None, event or None, page)

        def cut() -> CachedView:
            view = page_of(
                shaped.view,
                source=filters[0],
                kind=filters[1],
                event=filters[2],
                page=page,
                read_results=lambda ids: records.look_up("Observation", ids),
            )
            shown = shown_keys(view)
            read = {k: v for k, v in records.looked_up().items() if k in shown}
            # Never weightless: every page kept counts against the cache's bound.
            return CachedView(view=view, looked_up=read, weight=max(1, len(read)))

        # The page with its results read: kept beside the shaped timeline it was cut
        # from, under the same key (the record unchanged, the same reader and hour).
        page_key = None if key is None else (*key, "page", *filters)
        cut_page = view_cache_of(request.app.state).get_or_shape(page_key, cut)
        view = cut_page.view
        # The log names what this page shows, not the whole record it was cut from.
        records.disclose(shown_keys(view), {**shaped.looked_up, **cut_page.looked_up})
        return render_page(
            request,
            "portal/timeline.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "timeline": view,
                "kinds": KINDS,
                "chosen": {"source": source, "kind": chosen_kind, "event": event},
            },
        )

    return as_signed_in(request, build)


def _shaped_timeline(
    request: Request, citizen: SignedIn
) -> tuple[CachedView, tuple[Hashable, ...] | None]:
    """The whole timeline of what the reader may see, from the app's view cache while
    the record (as the reader sees it) has not changed, else shaped from a lookup; and
    its key in the cache (None without a record)."""
    records = citizen.records

    def shape() -> CachedView:
        shaped, weight = read_timeline(records, citizen.now)
        return CachedView(view=shaped, looked_up=records.looked_up(), weight=weight)

    stamp = records.stamp()
    key = None
    if stamp is not None and records.actor is not None and records.patient_id is not None:
        key = view_key("timeline", records.actor, records.patient_id, stamp, citizen.now)
    return view_cache_of(request.app.state).get_or_shape(key, shape), key


@router.get("/results")
def results(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        tests = lab_tests(citizen.records.load(types=("Observation",)))
        return render_page(
            request,
            "portal/results.html",
            {"citizen": citizen.session, "person": citizen, "tests": tests},
        )

    return as_signed_in(request, build)


@router.get("/results/{code}")
def result(request: Request, code: str) -> Response:
    """One test: a trend chart per measured quantity and a table of every value."""

    def build(citizen: SignedIn) -> Response:
        records = citizen.records
        # The values of this test only (a search on the code, a lookup: any of its
        # codings may match, the test is its first one), then what the page shows logged.
        observations = records.search_until(
            "Observation", [("code", escape(code))], lambda found: False, max_pages=_TEST_PAGES
        )
        test = lab_test(records.with_sources(observations), code)
        if test is None:
            raise PortalError(404, "The test %(code)s is not in your record.", code=code)
        records.disclose(
            f"{report.resource.get('resourceType')}/{report.resource.get('id')}"
            for series in test.series
            for point in series.points
            for report in point.entry.reports
        )
        charts = [(series, chart_for(series)) for series in test.series]
        return render_page(
            request,
            "portal/result.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "test": test,
                "charts": charts,
            },
        )

    return as_signed_in(request, build)


@router.get("/medications")
def medication_page(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        record = citizen.records.load(types=("MedicationRequest", "MedicationStatement"))
        card = medications.medication_card(record)
        return render_page(
            request,
            "portal/medications.html",
            {"citizen": citizen.session, "person": citizen, "card": card},
        )

    return as_signed_in(request, build)


@router.get("/vaccinations")
def vaccination_page(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        found = vaccinations(citizen.records.load(types=("Immunization",)))
        return render_page(
            request,
            "portal/vaccinations.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "vaccinations": found,
            },
        )

    return as_signed_in(request, build)


@router.get("/diagnoses")
def diagnosis_page(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        record = citizen.records.load(types=("Condition", "AllergyIntolerance"))
        return render_page(
            request,
            "portal/diagnoses.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "diagnoses": conditions.diagnoses(record),
                "allergies": conditions.allergies(record),
            },
        )

    return as_signed_in(request, build)


@router.get("/appointments")
def appointment_page(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        record = citizen.records.load(types=("Appointment", "ServiceRequest"))
        return render_page(
            request,
            "portal/appointments.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "appointments": appointments.appointments(record),
                "referrals": appointments.referrals(record),
            },
        )

    return as_signed_in(request, build)


@router.get("/documents")
def document_list(request: Request) -> Response:
    def build(citizen: SignedIn) -> Response:
        found = documents.documents(citizen.records.load(types=("DocumentReference",)))
        return render_page(
            request,
            "portal/documents.html",
            {"citizen": citizen.session, "person": citizen, "documents": found},
        )

    return as_signed_in(request, build)


@router.get("/documents/{document_id}")
def document_page(request: Request, document_id: str) -> Response:
    """One document: what it is, who wrote it, its text when it is text, its files."""

    def build(citizen: SignedIn) -> Response:
        resource = citizen.records.read("DocumentReference", document_id)
        if resource is None:
            raise PortalError(404, "This document is not in your record.")
        record = citizen.records.load(types=("DocumentReference",))
        texts = {
            info.index: documents.attachment_text(resource, info.index)
            for info in documents.document_of(resource, record).attachments
        }
        return render_page(
            request,
            "portal/document.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "document": documents.document_of(resource, record),
                "texts": texts,
            },
        )

    return as_signed_in(request, build)


@router.get("/documents/{document_id}/attachments/{index}")
def attachment(request: Request, document_id: str, index: int) -> Response:
    """An attachment as a download, with a safe content type; never rendered as a page."""

    def build(citizen: SignedIn) -> Response:
        resource = citizen.records.read("DocumentReference", document_id)
        found = documents.attachment_file(resource, index) if resource else None
        if found is None:
            raise PortalError(404, "This attachment is not in your record.")
        ascii_name = found.filename.encode("ascii", "replace").decode().replace("?", "_")
        return Response(
            found.content,
            media_type=found.content_type,
            headers={
                **PRIVATE,
                "Content-Disposition": (
                    f'attachment; filename="{ascii_name}"; '
                    f"filename*=UTF-8''{quote(found.filename)}"
                ),
                # Opened anyway (some browsers preview): no script, no plugins, no forms.
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    return as_signed_in(request, build)


@router.get("/summary")
def summary_page(request: Request) -> Response:
    """The printable summary: diagnoses, allergies, medicines, vaccinations, results."""

    def build(citizen: SignedIn) -> Response:
        record = citizen.records.load()
        return render_page(
            request,
            "portal/summary.html",
            {
                "citizen": citizen.session,
                "person": citizen,
                "record": record,
                "summary": export.summary(record),
            },
        )

    return as_signed_in(request, build)


@router.get("/record.json")
def record_download(request: Request) -> Response:
    """The whole record as a FHIR Bundle (collection), downloaded as a file."""

    def build(citizen: SignedIn) -> Response:
        record = citizen.records.load()
        bundle = export.record_bundle(record, settings_of(request).fhir_base_url)
        return Response(
            orjson.dumps(bundle),
            media_type="application/fhir+json",
            headers={
                **PRIVATE,
                "Content-Disposition": f'attachment; filename="{export.bundle_filename()}"',
            },
        )

    return as_signed_in(request, build)
