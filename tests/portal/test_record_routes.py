"""The record's pages over HTTP with the demo world loaded: each page for the citizen
logged in, and nothing of anyone else's, whatever id is put in the URL."""

from __future__ import annotations

import re
from typing import Any

import orjson

from health.audit.log import AuditLog
from health.portal.languages import LANGUAGE_COOKIE
from health.portal.record import CitizenRecords, citizen_actor
from health.portal.results import lab_test

Portal = Any
ERIK = "1406580991"
INGRID = "3011380990"
PAGES = (
    "/portal/",
    "/portal/timeline",
    "/portal/results",
    "/portal/medications",
    "/portal/vaccinations",
    "/portal/diagnoses",
    "/portal/appointments",
    "/portal/documents",
    "/portal/summary",
)


def _links(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


def test_every_page_shows_the_citizens_own_record(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    for path in PAGES:
        page = erik.client.get(path)
        assert page.status_code == 200, path
        assert "<script" not in page.text and " style=" not in page.text, path
    home = erik.client.get("/portal/").text
    assert "Metformin" in home and "Årskontrol for diabetes" in home
    timeline = erik.client.get("/portal/timeline").text
    assert "Type 2-diabetes uden komplikationer" in timeline and "Long-term illness" in timeline
    assert "From Lægehuset Søndergade, received" in timeline
    medicines = erik.client.get("/portal/medications").text
    # A medicine both the GP and the hospital reported is one line naming both.
    assert "Reported by 2 sources" in medicines
    chart = erik.client.get("/portal/results/59261-8").text
    assert '<svg class="chart"' in chart and 'class="band"' in chart and "point abnormal" in chart
    assert "mmol/mol" in chart


def test_a_fact_reported_by_two_sources_is_shown_once(demo_portal: Portal) -> None:
    # Camilla's GP records a vaccination the hospital gave: one line, both sources.
    camilla = demo_portal.browser()
    camilla.login("0309940990")
    page = camilla.client.get("/portal/vaccinations").text
    assert "Reported by 2 sources" in page


def test_documents_are_shown_and_downloaded_safely(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    [document_id] = _links(
        erik.client.get("/portal/documents").text, r'/portal/documents/([\w-]+)"'
    )
    page = erik.client.get(f"/portal/documents/{document_id}")
    assert "Epikrise" in page.text and '<pre class="document"' in page.text
    download = erik.client.get(f"/portal/documents/{document_id}/attachments/0")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert "sandbox" in download.headers["content-security-policy"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "Erik Mortensen" in download.content.decode()


def test_another_citizens_ids_are_not_found(demo_portal: Portal) -> None:
    erik, ingrid = demo_portal.browser(), demo_portal.browser()
    erik.login(ERIK)
    ingrid.login(INGRID)
    [erik_document] = _links(
        erik.client.get("/portal/documents").text, r'/portal/documents/([\w-]+)"'
    )
    for path in (
        f"/portal/documents/{erik_document}",
        f"/portal/documents/{erik_document}/attachments/0",
        "/portal/results/59261-8",  # HbA1c: Erik's test, never taken of Ingrid
    ):
        assert erik.client.get(path).status_code == 200, path
        answer = ingrid.client.get(path)
        assert answer.status_code == 404, path
        assert "Erik" not in answer.text
    # Ingrid's downloaded record holds her resources only.
    bundle = orjson.loads(ingrid.client.get("/portal/record.json").content)
    subjects = {
        (entry["resource"].get("subject") or entry["resource"].get("patient") or {}).get("display")
        for entry in bundle["entry"]
    }
    assert "Erik Mortensen" not in subjects and "Ingrid Poulsen" in subjects


def test_the_record_downloads_as_a_fhir_bundle(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    answer = erik.client.get("/portal/record.json")
    assert answer.headers["content-type"] == "application/fhir+json"
    assert answer.headers["content-disposition"].startswith('attachment; filename="health-record-')
    bundle = orjson.loads(answer.content)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    types = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert {"Patient", "Observation", "Encounter", "Organization"} <= types


def test_pages_need_a_login(demo_portal: Portal) -> None:
    stranger = demo_portal.browser()
    for path in (*PAGES[1:], "/portal/record.json", "/portal/documents/x/attachments/0"):
        answer = stranger.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/portal/", path


def test_danish_is_the_default_and_english_a_choice(demo_portal: Portal) -> None:
    reader = demo_portal.browser(language=None)
    page = reader.client.get("/portal/")
    assert '<html lang="da">' in page.text and "Log ind med MitID" in page.text
    switch = reader.client.get(
        "/portal/language", params={"lang": "en", "next": "/portal/"}, follow_redirects=False
    )
    assert switch.status_code == 303 and switch.headers["location"] == "/portal/"
    assert f"{LANGUAGE_COOKIE}=en" in switch.headers["set-cookie"]
    assert "Log in with MitID" in reader.client.get("/portal/").text
    # Dates follow the language: Danish month names in Danish.
    reader.login(ERIK)
    reader.client.get("/portal/language", params={"lang": "da", "next": "/portal/vaccinations"})
    assert re.search(r"\d+\. (okt|nov)\.? \d{4}", reader.client.get("/portal/vaccinations").text)


def test_the_language_switch_goes_nowhere_outside_the_portal(demo_portal: Portal) -> None:
    reader = demo_portal.browser()
    for target in ("https://evil.example/", "//evil.example/portal/", "/portal//evil.example"):
        answer = reader.client.get(
            "/portal/language", params={"lang": "da", "next": target}, follow_redirects=False
        )
        assert answer.headers["location"] == "/portal/", target
    assert reader.client.get("/portal/language", params={"lang": "xx"}).status_code == 400


def test_pages_carry_the_security_headers(demo_portal: Portal) -> None:
    page = demo_portal.browser().client.get("/portal/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy and "form-action 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in page.headers["permissions-policy"]
    css = demo_portal.browser().client.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_every_form_carries_the_csrf_token(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    for path in PAGES:
        html = erik.client.get(path).text
        for form in re.findall(r'<form method="post".*?</form>', html, flags=re.S):
            assert 'name="csrf_token"' in form, path


def test_a_tests_page_shows_and_logs_that_test_only(demo_portal: Portal) -> None:
    """The page reads the test by a code search, yet shows what the whole record has of
    it; the access log names its values (each source's copy), no other result."""
    patient_id = demo_portal.patient_id(ERIK)
    with demo_portal.app.state.database.session(write=False) as session:
        records = CitizenRecords(
            session, citizen_actor(patient_id, ERIK, "Erik"), (patient_id,), config=None
        )
        whole = lab_test(records.load(types=("Observation",), disclose=False), "59261-8")
        log = AuditLog(session, demo_portal.settings.audit_key.encode())
        before = {row.seq for row in log.for_patient(patient_id, limit=1000)}
    assert whole is not None
    values = {
        f"Observation/{report.resource['id']}"
        for series in whole.series
        for point in series.points
        for report in point.entry.reports
    }
    erik = demo_portal.browser()
    erik.login(ERIK)
    page = erik.client.get("/portal/results/59261-8").text
    assert page.count("<tr") - 1 == sum(len(series.points) for series in whole.series)
    with demo_portal.app.state.database.session(write=False) as session:
        log = AuditLog(session, demo_portal.settings.audit_key.encode())
        looks = {
            row.seq: set(row.entry.entities)
            for row in log.for_patient(patient_id, limit=1000)
            if row.seq not in before and row.entry.action == "portal"
        }
    assert looks[max(looks)] == values
