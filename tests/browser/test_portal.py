"""The portal in a real browser: log in through the development eID, read the front
page, the timeline, a lab chart, the medicines and a document, switch language; every
page screenshotted and checked by axe-core (no serious or critical violations)."""

from __future__ import annotations

import re
from typing import Any

ERIK = "1406580991"
ERIK_NAME = "Erik Mortensen"


def _log_in(page: Any, base_url: str, national_id: str = ERIK) -> None:
    page.goto(f"{base_url}/portal/")
    page.get_by_role("button", name="Log ind med MitID").click()
    page.get_by_label("National ID number").fill(national_id)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(f"{base_url}/portal/", timeout=10_000)


def test_a_citizen_reads_the_record_in_a_browser(demo_server: Any, page: Any, checked: Any) -> None:
    base = demo_server.base_url
    page.goto(f"{base}/portal/")
    assert page.locator("html").get_attribute("lang") == "da"
    checked("01-logged-out")

    _log_in(page, base)
    assert ERIK_NAME in page.inner_text("main")
    assert page.get_by_role("heading", name="Aktuel medicin").is_visible()
    checked("02-front-page")

    page.get_by_role("link", name="Tidslinje").first.click()
    assert page.get_by_role("heading", name="Din journal over tid").is_visible()
    assert "Type 2-diabetes uden komplikationer" in page.inner_text("main")
    checked("03-timeline")

    page.select_option("#kind", "results")
    page.get_by_role("button", name="Vis").click()
    assert "kind=results" in page.url
    checked("04-timeline-results")

    page.goto(f"{base}/portal/results")
    page.get_by_role("link", name=re.compile("Hæmoglobin A1c")).click()
    chart = page.locator("svg.chart").first
    assert chart.is_visible()
    assert page.locator("svg.chart .band").count() >= 1
    assert page.locator("svg.chart .point.abnormal").count() >= 1
    checked("05-lab-chart")

    page.get_by_role("link", name="Medicin", exact=True).first.click()
    assert "Metformin" in page.inner_text("main")
    checked("06-medicines")

    page.goto(f"{base}/portal/documents")
    page.get_by_role("link", name=re.compile("Epikrise")).first.click()
    assert "hofteprotese" in page.inner_text("main")
    checked("07-document")

    page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("link", name="All documents").is_visible()
    page.goto(f"{base}/portal/")
    assert page.get_by_role("heading", name="Current medicines").is_visible()
    checked("08-front-page-english")


def test_no_script_runs_and_the_policy_is_strict(demo_server: Any, page: Any) -> None:
    answer = page.goto(f"{demo_server.base_url}/portal/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.locator("script").count() == 0
