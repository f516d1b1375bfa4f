"""Acting for others over HTTP with the demo world: a parent switches to his child's
record, a holder of a power of attorney to the citizen who gave it, the right is
checked again on every request, and a citizen gives and revokes powers of attorney."""

from __future__ import annotations

from datetime import date, timedelta
from html import unescape
from typing import Any

from health.audit.log import AuditLog

Portal = Any
ERIK = "1406580991"
MADS = "2102850991"
ALMA = "0905164990"
HANNE = "2703640990"
INGRID = "3011380990"
BANNER = "record on their behalf"


def _switch_to(browser: Any, patient_id: str) -> Any:
    data = {"patient": patient_id, "csrf_token": browser.csrf_token()}
    return browser.client.post("/portal/act-for", data=data, follow_redirects=False)


def test_a_parent_switches_to_his_childs_record(demo_portal: Portal) -> None:
    alma_id = demo_portal.patient_id(ALMA)
    mads = demo_portal.browser()
    mads.login(MADS)
    home = mads.home().text
    choices = [f for f in demo_portal.forms(home, "/portal/act-for") if f.get("patient")]
    assert [f["patient"] for f in choices] == [alma_id]
    assert "View Alma Kristensen's record" in unescape(home)

    assert _switch_to(mads, alma_id).status_code == 303
    home = mads.home().text
    assert "You are viewing Alma Kristensen's record on their behalf." in unescape(home)
    timeline = mads.client.get("/portal/timeline").text
    assert BANNER in timeline and "Astma" in timeline

    # Alma's log names Mads, as her proxy, for what he saw.
    with demo_portal.app.state.database.session(write=False) as session:
        rows = AuditLog(session, demo_portal.settings.audit_key.encode()).for_patient(alma_id)
    by_mads = [r.entry for r in rows if r.entry.agent_name == "Mads Kristensen"]
    assert {e.action for e in by_mads} >= {"act-for", "portal"}
    assert all(e.agent.startswith("RelatedPerson/") for e in by_mads)
    assert all(e.on_behalf_of == f"Patient/{alma_id}" for e in by_mads)
    assert "began to act on the citizen" in mads.client.get("/portal/log").text

    # And back to his own record.
    back = {"patient": "", "csrf_token": mads.csrf_token()}
    assert mads.client.post("/portal/act-for", data=back).status_code == 200
    assert BANNER not in unescape(mads.home().text)


def test_nobody_switches_to_a_record_they_have_no_right_to(demo_portal: Portal) -> None:
    mads = demo_portal.browser()
    mads.login(MADS)
    assert _switch_to(mads, demo_portal.patient_id(ERIK)).status_code == 403
    no_token = {"patient": demo_portal.patient_id(ALMA)}
    assert mads.client.post("/portal/act-for", data=no_token).status_code == 403
    assert BANNER not in unescape(mads.home().text)


def test_the_switch_ends_when_the_child_is_older_than_the_limit(
    demo_portal: Portal, make_portal: Any
) -> None:
    alma_id = demo_portal.patient_id(ALMA)
    mads = demo_portal.browser()
    mads.login(MADS)
    assert _switch_to(mads, alma_id).status_code == 303
    # The same session and cookies on an app where children are covered up to 10 only.
    older = make_portal(proxy_child_age=10)
    mads_there = older.browser()
    mads_there.client.cookies = mads.client.cookies
    home = mads_there.home().text
    assert "Mads Kristensen" in home and BANNER not in unescape(home)
    assert not [f for f in demo_portal.forms(home, "/portal/act-for") if f.get("patient")]


def test_a_revoked_power_of_attorney_stops_the_switch(demo_portal: Portal) -> None:
    ingrid_id = demo_portal.patient_id(INGRID)
    hanne = demo_portal.browser()
    hanne.login(HANNE)
    assert _switch_to(hanne, ingrid_id).status_code == 303
    assert "You are viewing Ingrid Poulsen's record" in unescape(hanne.home().text)

    ingrid = demo_portal.browser()
    ingrid.login(INGRID)
    page = ingrid.client.get("/portal/attorney").text
    revoke = demo_portal.forms(page, "/portal/attorney/revoke")
    assert len(revoke) == 1
    assert ingrid.client.post("/portal/attorney/revoke", data=revoke[0]).status_code == 200
    assert "Revoked" in ingrid.client.get("/portal/attorney").text

    # Hanne's next request shows her no one else's record, and she cannot switch back.
    home = hanne.home().text
    assert BANNER not in unescape(home)
    assert _switch_to(hanne, ingrid_id).status_code == 403
    log = ingrid.client.get("/portal/log").text
    assert "changed a power of attorney" in log and "Hanne" in log


def test_a_citizen_gives_a_power_of_attorney_that_works(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    end = (date.today() + timedelta(days=30)).isoformat()
    data = {"national_id": MADS, "name": "Mads Kristensen", "end": end}
    answer = erik.client.post(
        "/portal/attorney", data={**data, "csrf_token": erik.csrf_token()}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    page = erik.client.get("/portal/attorney").text
    assert "Mads Kristensen" in page and "Revoke the power of attorney of Mads Kristensen" in page

    mads = demo_portal.browser()
    mads.login(MADS)
    erik_id = demo_portal.patient_id(ERIK)
    assert erik_id in [f["patient"] for f in demo_portal.forms(mads.home().text, "/portal/act-for")]
    assert _switch_to(mads, erik_id).status_code == 303
    assert "You are viewing Erik Mortensen's record" in unescape(mads.home().text)
    # A proxy does not pass the right on.
    again = {**data, "national_id": HANNE, "csrf_token": mads.csrf_token()}
    assert mads.client.post("/portal/attorney", data=again).status_code == 403


def test_the_grant_form_says_what_is_wrong(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    data = {"national_id": "12345", "name": "", "end": yesterday, "csrf_token": erik.csrf_token()}
    answer = erik.client.post("/portal/attorney", data=data)
    assert answer.status_code == 400
    assert "must be 10 digits" in answer.text and "Write the person" in answer.text
    assert "The end date must be after today" in answer.text
    too_late = (date.today() + timedelta(days=6 * 366)).isoformat()
    data = {"national_id": MADS, "name": "Mads", "end": too_late, "csrf_token": erik.csrf_token()}
    assert erik.client.post("/portal/attorney", data=data).status_code == 400
    assert "No one may act on the record" in erik.client.get("/portal/attorney").text
    # No token, no grant.
    data = {
        "national_id": MADS,
        "name": "Mads",
        "end": (date.today() + timedelta(days=9)).isoformat(),
    }
    assert erik.client.post("/portal/attorney", data=data).status_code == 403


def test_a_citizen_cannot_revoke_another_citizens_power_of_attorney(demo_portal: Portal) -> None:
    ingrid = demo_portal.browser()
    ingrid.login(INGRID)
    attorney_page = ingrid.client.get("/portal/attorney").text
    revoke = demo_portal.forms(attorney_page, "/portal/attorney/revoke")[0]

    erik = demo_portal.browser()
    erik.login(ERIK)
    data = {"related_person": revoke["related_person"], "csrf_token": erik.csrf_token()}
    assert erik.client.post("/portal/attorney/revoke", data=data).status_code == 404
    hanne = demo_portal.browser()
    hanne.login(HANNE)
    assert _switch_to(hanne, demo_portal.patient_id(INGRID)).status_code == 303
