"""The privacy pages over HTTP with the demo world: every look is in the access log,
blocks and hidden episodes written in the portal hold on the FHIR API, emergency
accesses reach the front page, and no form works without its token or on another
citizen's choices."""

from __future__ import annotations

import re
from typing import Any

from health.audit.log import AuditLog

Portal = Any
ERIK = "1406580991"
MADS = "2102850991"
# Erik's GP (Lægehuset Søndergade): treats him, so sees his record.
METTE = "1110750992"


def _log(portal: Portal, patient_id: str) -> list[Any]:
    with portal.app.state.database.session(write=False) as session:
        return AuditLog(session, portal.settings.audit_key.encode()).for_patient(
            patient_id, limit=500
        )


def _block_mette(portal: Portal, erik: Any) -> None:
    page = erik.client.get("/portal/access", params={"kind": "Practitioner", "name": "Mette"})
    assert page.status_code == 200
    forms = portal.forms(page.text, "/portal/access/block")
    assert len(forms) == 1, page.text
    assert forms[0]["party"] == f"Practitioner/{portal.practitioner_id(METTE)}"
    answer = erik.client.post("/portal/access/block", data=forms[0], follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_every_look_and_the_login_are_in_the_access_log(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    patient_id = demo_portal.patient_id(ERIK)
    assert erik.client.get("/portal/medications").status_code == 200
    rows = _log(demo_portal, patient_id)
    actions = [row.entry.action for row in rows]
    assert "login" in actions
    looks = [row.entry for row in rows if row.entry.action == "portal"]
    assert looks and all(e.agent == f"Patient/{patient_id}" and e.purpose == "self" for e in looks)
    assert any(e.startswith("MedicationRequest/") for look in looks for e in look.entities)
    page = erik.client.get("/portal/log").text
    assert "logged in" in page and "looked at it in the portal" in page
    assert "MedicationRequest" in page


def test_the_log_filters_by_period_and_pages(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    for _ in range(3):
        erik.client.get("/portal/")
    later = erik.client.get("/portal/log", params={"from": "2999-01-01"}).text
    assert "Nothing is logged for this period." in later
    wrong = erik.client.get("/portal/log", params={"from": "yesterday"}).text
    assert "was not understood" in wrong
    rows = _log(demo_portal, demo_portal.patient_id(ERIK))
    older = erik.client.get("/portal/log", params={"before": rows[1].seq}).text
    assert older.count("<tr class=") == len(rows) - 2
    # Past what the log's 64-bit sequence holds: refused, not a database error.
    beyond = erik.client.get("/portal/log", params={"before": "9" * 20})
    assert beyond.status_code == 400, beyond.text


def test_a_block_shuts_the_clinician_out_of_the_fhir_api(demo_portal: Portal) -> None:
    patient_id = demo_portal.patient_id(ERIK)
    mette = demo_portal.clinician(demo_portal.practitioner_id(METTE))
    before = mette.get("/fhir/Encounter", params={"patient": patient_id}).json()
    assert before["total"] > 0

    erik = demo_portal.browser()
    erik.login(ERIK)
    _block_mette(demo_portal, erik)
    after = mette.get("/fhir/Encounter", params={"patient": patient_id}).json()
    assert after["total"] == 0 and not after.get("entry")
    assert mette.get(f"/fhir/Patient/{patient_id}").status_code == 404

    page = erik.client.get("/portal/access").text
    assert "Unblock Mette" in page
    consent_rows = [r.entry for r in _log(demo_portal, patient_id) if r.entry.action == "consent"]
    assert consent_rows and consent_rows[0].agent == f"Patient/{patient_id}"

    # Unblocking deletes the Consent: the clinician sees the record again.
    withdraw = demo_portal.forms(page, "/portal/access/withdraw")
    assert len(withdraw) == 1
    assert erik.client.post("/portal/access/withdraw", data=withdraw[0]).status_code == 200
    again = mette.get("/fhir/Encounter", params={"patient": patient_id}).json()
    assert again["total"] == before["total"]


def test_a_hidden_episode_is_hidden_from_other_organisations(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    page = erik.client.get("/portal/access").text
    hide = demo_portal.forms(page, "/portal/access/hide")
    assert hide
    answer = erik.client.post("/portal/access/hide", data=hide[0], follow_redirects=False)
    assert answer.status_code == 303
    page = erik.client.get("/portal/access").text
    assert "Hidden" in page and "Show to others again" in page
    assert len(demo_portal.forms(page, "/portal/access/hide")) == len(hide) - 1


def test_forms_without_the_csrf_token_are_refused(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    party = f"Practitioner/{demo_portal.practitioner_id(METTE)}"
    for token in (None, "forged"):
        data = {"party": party} if token is None else {"party": party, "csrf_token": token}
        answer = erik.client.post("/portal/access/block", data=data)
        assert answer.status_code == 403
        assert "token" in answer.text
    assert "You have blocked no one." in erik.client.get("/portal/access").text


def test_a_citizen_cannot_withdraw_another_citizens_choice(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    _block_mette(demo_portal, erik)
    access_page = erik.client.get("/portal/access").text
    erik_consent = demo_portal.forms(access_page, "/portal/access/withdraw")[0]

    mads = demo_portal.browser()
    mads.login(MADS)
    data = {"consent": erik_consent["consent"], "csrf_token": mads.csrf_token()}
    answer = mads.client.post("/portal/access/withdraw", data=data)
    assert answer.status_code == 404
    assert "Unblock Mette" in erik.client.get("/portal/access").text
    refused = [r.entry for r in _log(demo_portal, demo_portal.patient_id(ERIK))]
    assert any(e.outcome == "refused" and e.agent_name == "Mads Kristensen" for e in refused)


def test_an_emergency_access_is_on_the_front_page_and_in_the_log(demo_portal: Portal) -> None:
    patient_id = demo_portal.patient_id(ERIK)
    # A clinician of another organisation, with no treatment relationship to Erik.
    mads_gp = demo_portal.clinician(demo_portal.practitioner_id("0506800990"))
    assert mads_gp.get(f"/fhir/Patient/{patient_id}").status_code == 404
    reason = "Unconscious in the emergency department"
    answer = mads_gp.get(f"/fhir/Patient/{patient_id}", headers={"X-Break-Glass-Reason": reason})
    assert answer.status_code == 200

    erik = demo_portal.browser()
    erik.login(ERIK)
    home = erik.client.get("/portal/").text
    alert = re.search(r'<div class="emergency" role="alert">(.*?)</div>', home, re.S)
    assert alert is not None
    assert reason in alert.group(1) and "Sofie Lund Madsen" in alert.group(1)
    log = erik.client.get("/portal/log").text
    assert "emergency-row" in log and "broke the glass" in log and reason in log


def test_permits_are_offered_only_under_opt_in(demo_portal: Portal, make_portal: Any) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    page = erik.client.get("/portal/access", params={"kind": "Organization", "name": "Søndergade"})
    assert demo_portal.forms(page.text, "/portal/access/block") and not demo_portal.forms(
        page.text, "/portal/access/permit"
    )
    refused = erik.client.post(
        "/portal/access/permit",
        data={**demo_portal.forms(page.text, "/portal/access/block")[0]},
    )
    assert refused.status_code == 400

    opt_in = make_portal(access_policy="opt-in")
    erik = opt_in.browser()
    erik.login(ERIK)
    page = erik.client.get("/portal/access", params={"kind": "Organization", "name": "Søndergade"})
    permit = demo_portal.forms(page.text, "/portal/access/permit")
    assert len(permit) == 1
    assert erik.client.post("/portal/access/permit", data=permit[0]).status_code == 200
    assert (
        "Take back the permission for Lægehuset Søndergade"
        in erik.client.get("/portal/access").text
    )
