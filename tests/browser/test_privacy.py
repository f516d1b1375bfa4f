"""The privacy pages in a real browser: a citizen blocks a clinician and that clinician's
FHIR search comes back empty; an emergency access is highlighted on the front page and
in the access log; a parent switches to his child's record. Every page screenshotted
and checked by axe-core (no serious or critical violations)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from health.auth.identity import with_national_id

ERIK = "1406580991"
MADS = "2102850991"
ALMA = "0905164990"
METTE = "1110750992"  # Erik's GP
SOFIE = "0506800990"  # another practice's GP: no relationship with Erik
CPR_SYSTEMS = ["urn:oid:1.2.208.176.1.2"]


def _log_in(page: Any, base_url: str, national_id: str) -> None:
    page.goto(f"{base_url}/portal/language?lang=en&next=/portal/")
    page.get_by_role("button", name="Log in with MitID").click()
    page.get_by_label("National ID number").fill(national_id)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(f"{base_url}/portal/", timeout=10_000)


def _id(server: Any, resource_type: str, national_id: str) -> str:
    with server.database.session(write=False) as session:
        [found] = with_national_id(session, resource_type, national_id, CPR_SYSTEMS, limit=1)
    return found.id


def _clinician(server: Any, national_id: str) -> httpx.Client:
    practitioner = _id(server, "Practitioner", national_id)
    token = server.token(
        actor_kind="clinician", fhir_user=f"Practitioner/{practitioner}", scope="user/*.rs"
    )
    return httpx.Client(base_url=server.fhir_url, headers={"Authorization": f"Bearer {token}"})


def test_a_blocked_clinicians_search_comes_back_empty(
    demo_server: Any, page: Any, checked: Any
) -> None:
    base = demo_server.base_url
    erik_id = _id(demo_server, "Patient", ERIK)
    with _clinician(demo_server, METTE) as mette:
        assert mette.get("/Encounter", params={"patient": erik_id}).json()["total"] > 0

        _log_in(page, base, ERIK)
        page.get_by_role("link", name="Who may look", exact=True).click()
        checked("20-who-may-look")
        page.select_option("#find-kind", "Practitioner")
        page.get_by_label("Name").fill("Mette")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("button", name=re.compile("^Block Mette")).click()
        assert page.get_by_role("button", name=re.compile("^Unblock Mette")).is_visible()
        checked("21-clinician-blocked")

        after = mette.get("/Encounter", params={"patient": erik_id}).json()
        assert after["total"] == 0 and not after.get("entry")

    page.get_by_role("link", name="Who has looked", exact=True).click()
    assert "changed who may look" in page.inner_text("main")
    checked("22-access-log")


def test_an_emergency_access_is_highlighted(demo_server: Any, page: Any, checked: Any) -> None:
    base = demo_server.base_url
    erik_id = _id(demo_server, "Patient", ERIK)
    reason = "Found unconscious, no relatives reachable"
    with _clinician(demo_server, SOFIE) as sofie:
        answer = sofie.get(f"/Patient/{erik_id}", headers={"X-Break-Glass-Reason": reason})
        assert answer.status_code == 200

    _log_in(page, base, ERIK)
    alert = page.get_by_role("alert").first
    assert alert.is_visible()
    text = alert.inner_text()
    assert reason in text and "Sofie" in text
    checked("23-emergency-alert")

    page.get_by_role("link", name="See what was looked at in the access log").click()
    row = page.locator("tr.emergency-row").first
    assert row.is_visible() and "emergency" in row.inner_text().lower()
    checked("24-emergency-in-log")


def test_a_parent_switches_to_his_childs_record(demo_server: Any, page: Any, checked: Any) -> None:
    base = demo_server.base_url
    _log_in(page, base, MADS)
    checked("25-parent-front-page")
    page.get_by_role("button", name="View Alma Kristensen's record").click()
    banner = page.get_by_role("status")
    assert "You are viewing Alma Kristensen's record on their behalf." in banner.inner_text()
    checked("26-child-front-page")

    page.get_by_role("link", name="Timeline", exact=True).click()
    assert "Alma Kristensen" in page.get_by_role("status").inner_text()
    checked("27-child-timeline")

    page.get_by_role("button", name="Back to your own record").click()
    assert page.get_by_role("status").count() == 0
    assert "Mads Kristensen" in page.inner_text("main")
