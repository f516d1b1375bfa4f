"""SMART standalone launch over HTTP: a clinician's app and a citizen's app, end to end,
and the ways a code exchange or a refresh must be refused.

https://hl7.org/fhir/smart-app-launch/app-launch.html. The fixtures (tests/auth/
conftest.py) register apps and drive a browser through /auth/authorize, the development
eID's login form, the approval page and /auth/token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt

# tests/auth/conftest.py: Smart (apps and clients), SmartApp, People.
Smart = Any
SmartApp = Any
People = Any

BASE_URL = "http://testserver"
FHIR_BASE = f"{BASE_URL}/fhir"
PATIENT_SCOPE = "launch/patient openid fhirUser patient/*.rs offline_access"
CLINICIAN_SCOPE = "openid fhirUser user/*.rs offline_access"
FHIR_JSON = {"Accept": "application/fhir+json"}
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


def bearer(token: str) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": f"Bearer {token}"}


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
    }


def _treated_at_the_clinicians_ward(
    smart: Smart, issue_token: Callable[..., str], practitioner: str, national_id: str
) -> None:
    """A care relationship, as the access rules take it from a source's records: the
    ward's own system records the clinician's role there and a visit of the citizen ten
    days ago (health/access/relationships.py)."""
    ward = smart.create({"resourceType": "Organization", "name": "Medicinsk afdeling"})
    token = issue_token(
        scope="system/*.cruds", actor_kind="client", client_id="ward-system", organization_id=ward
    )
    visit = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patient_url = "urn:uuid:0d6f0b3e-6f3c-4a55-8a43-2b1b8f0c9e01"
    push = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": CPR_SYSTEM, "value": national_id}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "PractitionerRole",
                    "practitioner": {"reference": f"Practitioner/{practitioner}"},
                    "organization": {"reference": f"Organization/{ward}"},
                },
                "request": {"method": "POST", "url": "PractitionerRole"},
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"code": "IMP"},
                    "subject": {"reference": patient_url},
                    "serviceProvider": {"reference": f"Organization/{ward}"},
                    "period": {"start": visit, "end": visit},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    pushed = smart.browser().post(
        "/fhir", json=push, headers={**bearer(token), "Content-Type": "application/fhir+json"}
    )
    assert pushed.status_code == 200, pushed.text


def test_a_clinician_launches_an_app_and_reads_with_its_token(
    smart: Smart, people: People, issue_token: Callable[..., str]
) -> None:
    app = smart.register_app(confidential=True)
    page, _ = app.approval_page(
        people.clinician_national_id, f"{CLINICIAN_SCOPE} launch/patient patient/*.rs"
    )
    assert page.status_code == 200, page.text
    assert "Chart Viewer wants to:" in page.text
    assert "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    # patient/ scopes would need a patient picker: a clinician's app gets user/ scopes only.
    assert "Read and search all data in the records you may see" in page.text
    assert "your record" not in page.text

    authorization = app.launch(people.clinician_national_id, CLINICIAN_SCOPE)
    answer = app.exchange(authorization)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert set(tokens["scope"].split()) == set(CLINICIAN_SCOPE.split())
    assert tokens["fhirUser"] == f"{FHIR_BASE}/Practitioner/{people.practitioner}"
    assert "patient" not in tokens
    assert tokens["expires_in"] > 0 and tokens["refresh_token"]

    keys = smart.keys()
    access = jwt.decode(tokens["access_token"], keys)
    assert access.header["typ"] == "at+jwt"
    assert access.claims["iss"] == f"{BASE_URL}/auth"
    assert access.claims["aud"] == FHIR_BASE
    assert access.claims["client_id"] == app.client_id
    id_token = jwt.decode(tokens["id_token"], keys)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": f"{BASE_URL}/auth"},
        aud={"essential": True, "value": app.client_id},
        exp={"essential": True},
        nonce={"essential": True, "value": authorization.nonce},
    ).validate(id_token.claims)
    assert id_token.claims["fhirUser"] == f"{FHIR_BASE}/Practitioner/{people.practitioner}"
    assert people.clinician_national_id not in str(id_token.claims)

    # user/*.rs reads the records the clinician may see: the citizen's, whom their ward
    # treats, and not the neighbour's.
    _treated_at_the_clinicians_ward(
        smart, issue_token, people.practitioner, people.citizen_national_id
    )
    found = app.browser.get("/fhir/Observation", headers=bearer(tokens["access_token"]))
    assert found.status_code == 200, found.text
    assert _ids(found.json()) == {f"Observation/{people.observation}"}
    written = app.browser.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={**bearer(tokens["access_token"]), "Content-Type": "application/fhir+json"},
    )
    assert written.status_code == 403  # user/*.rs permits no create


def test_a_citizen_launches_a_patient_app_confined_to_their_record(
    smart: Smart, people: People
) -> None:
    app = smart.register_app()  # public: PKCE alone
    page, _ = app.approval_page(people.citizen_national_id, PATIENT_SCOPE)
    assert page.status_code == 200, page.text
    assert "Read and search all data in your record" in page.text
    assert '<button type="submit" name="decision" value="allow">Allow</button>' in page.text

    tokens = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    assert tokens["patient"] == people.patient
    assert tokens["fhirUser"] == f"{FHIR_BASE}/Patient/{people.patient}"
    headers = bearer(tokens["access_token"])

    own = app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers)
    assert own.status_code == 200
    assert own.json()["id"] == people.patient
    theirs = app.browser.get(f"/fhir/Patient/{people.neighbour}", headers=headers)
    assert theirs.status_code == 404
    assert "Nielsen" not in theirs.text
    assert (
        app.browser.get(
            f"/fhir/Observation/{people.neighbour_observation}", headers=headers
        ).status_code
        == 404
    )
    observations = app.browser.get("/fhir/Observation", headers=headers).json()
    assert _ids(observations) == {f"Observation/{people.observation}"}
    patients = app.browser.get("/fhir/Patient", headers=headers).json()
    assert _ids(patients) == {f"Patient/{people.patient}"}
    by_subject = app.browser.get(
        f"/fhir/Observation?subject=Patient/{people.neighbour}", headers=headers
    ).json()
    assert by_subject.get("entry", []) == [] and by_subject.get("total", 0) == 0
    # The citizen reads, in their own access log, that they let the app in.
    log = app.browser.get("/fhir/AuditEvent", headers=headers).json()
    logins = [
        e["resource"]
        for e in log["entry"]
        if [s["code"] for s in e["resource"].get("subtype", [])] == ["110122"]
    ]
    assert len(logins) == 1, log


def test_the_app_state_comes_back_unchanged(smart: Smart, people: People) -> None:
    app = smart.register_app()
    page, authorization = app.approval_page(
        people.citizen_national_id, PATIENT_SCOPE, state="a b&c=d/e?f~g%"
    )
    answer = app.decide(page, "allow")
    assert _query(answer.headers["location"])["state"] == "a b&c=d/e?f~g%"
    assert authorization.state == "a b&c=d/e?f~g%"


def test_denying_sends_access_denied_and_no_code(smart: Smart, people: People) -> None:
    app = smart.register_app()
    page, authorization = app.approval_page(people.citizen_national_id, PATIENT_SCOPE)
    answer = app.decide(page, "deny")
    assert answer.status_code == 302
    query = _query(answer.headers["location"])
    assert query["error"] == "access_denied"
    assert query["state"] == authorization.state
    assert "code" not in query


def test_a_citizen_asking_for_user_scopes_is_refused(smart: Smart, people: People) -> None:
    app = smart.register_app()
    answer, authorization = app.approval_page(people.citizen_national_id, "openid user/*.rs")
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(app.redirect_uri)
    query = _query(location)
    assert query["error"] == "access_denied"
    assert "clinicians" in query["error_description"]
    assert query["state"] == authorization.state and "code" not in query


def test_a_citizen_without_a_record_cannot_launch_a_patient_app(
    smart: Smart, people: People
) -> None:
    app = smart.register_app()
    answer, _ = app.approval_page(people.stranger_national_id, PATIENT_SCOPE)
    assert answer.status_code == 302
    query = _query(answer.headers["location"])
    assert query["error"] == "access_denied"
    assert "no health record" in query["error_description"]


def test_a_clinician_app_asking_only_patient_scopes_is_refused(
    smart: Smart, people: People
) -> None:
    app = smart.register_app()
    answer, _ = app.approval_page(people.clinician_national_id, PATIENT_SCOPE)
    assert answer.status_code == 302
    assert _query(answer.headers["location"])["error"] == "access_denied"


def test_scopes_beyond_the_registration_are_not_granted(smart: Smart, people: People) -> None:
    app = smart.register_app("launch/patient patient/Observation.rs")
    authorization = app.launch(
        people.citizen_national_id, "launch/patient patient/Observation.rs patient/Patient.rs"
    )
    tokens = app.exchange(authorization).json()
    assert tokens["scope"] == "launch/patient patient/Observation.rs"
    headers = bearer(tokens["access_token"])
    assert app.browser.get("/fhir/Observation", headers=headers).status_code == 200
    refused = app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers)
    assert refused.status_code == 403


def test_a_launch_over_real_http_with_the_apps_own_eid_client(
    live_server: Any, live_smart_app: SmartApp
) -> None:
    """The app as deployed: uvicorn on a port, its relying party reaching /eid over HTTP."""
    created = live_smart_app.browser.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "2512894417"}],
        },
        headers={**live_server.headers, "Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201, created.text
    authorization = live_smart_app.launch("2512894417", PATIENT_SCOPE)
    tokens = live_smart_app.exchange(authorization).json()
    assert tokens["patient"] == created.json()["id"]
    own = live_smart_app.browser.get(
        f"/fhir/Patient/{tokens['patient']}", headers=bearer(tokens["access_token"])
    )
    assert own.status_code == 200


# The code exchange


def test_a_wrong_or_missing_pkce_verifier_is_refused(smart: Smart, people: People) -> None:
    app = smart.register_app()
    authorization = app.launch(people.citizen_national_id, PATIENT_SCOPE)
    missing = app.exchange(authorization, verifier="")
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert "access_token" not in missing.json()

    authorization = app.launch(people.citizen_national_id, PATIENT_SCOPE)
    wrong = app.exchange(authorization, verifier="w" * 50)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The code is spent by the failed attempt: the right verifier comes too late.
    assert app.exchange(authorization).json()["error"] == "invalid_grant"


def test_a_code_is_bound_to_its_client_and_redirect_uri(smart: Smart, people: People) -> None:
    other_uri = "https://app.example/other"
    app = smart.register_app(redirect_uris=["https://app.example/callback", other_uri])
    other_app = smart.register_app(redirect_uris=["https://app.example/callback"])
    authorization = app.launch(people.citizen_national_id, PATIENT_SCOPE)

    stolen = other_app.exchange(authorization)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"

    authorization.redirect_uri = other_uri
    moved = app.exchange(authorization)
    assert moved.status_code == 400
    assert moved.json()["error"] == "invalid_grant"


def test_a_code_used_twice_is_refused_and_its_tokens_revoked(smart: Smart, people: People) -> None:
    app = smart.register_app()
    authorization = app.launch(people.citizen_national_id, PATIENT_SCOPE)
    first = app.exchange(authorization)
    assert first.status_code == 200
    headers = bearer(first.json()["access_token"])
    assert app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers).status_code == 200

    again = app.exchange(authorization)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    after = app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers)
    assert after.status_code == 401
    assert "Jensen" not in after.text
    assert app.refresh(first.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_confidential_app_must_authenticate(smart: Smart, people: People) -> None:
    app = smart.register_app(confidential=True)
    authorization = app.launch(people.clinician_national_id, CLINICIAN_SCOPE)
    wrong = app.exchange(authorization, auth=(app.client_id, "not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert "access_token" not in wrong.json()
    # A confidential app cannot pass for a public one by leaving its secret out.
    answer = app.browser.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": authorization.code,
            "redirect_uri": authorization.redirect_uri,
            "code_verifier": authorization.verifier,
            "client_id": app.client_id,
        },
    )
    assert answer.status_code == 401
    assert app.exchange(authorization).status_code == 200


def test_unknown_grant_types_and_repeated_parameters_are_refused(smart: Smart) -> None:
    app = smart.register_app()
    unknown = app.token({"grant_type": "password", "username": "x", "password": "y"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unsupported_grant_type"
    repeated = app.browser.post(
        "/auth/token",
        content="grant_type=authorization_code&code=a&code=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"


# Refresh tokens


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_grant(
    smart: Smart, people: People
) -> None:
    app = smart.register_app()
    first = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()

    second = app.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["patient"] == people.patient
    headers = bearer(rotated["access_token"])
    assert app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers).status_code == 200

    # The first refresh token again: someone kept a copy. The whole grant ends.
    replay = app.refresh(first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers).status_code == 401
    assert app.refresh(rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_refresh_may_narrow_the_scope_but_not_widen_it(smart: Smart, people: People) -> None:
    app = smart.register_app()
    first = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    wider = app.refresh(first["refresh_token"], scope=f"{PATIENT_SCOPE} user/*.rs")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    first = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    narrower = app.refresh(first["refresh_token"], scope="launch/patient patient/*.rs")
    assert narrower.status_code == 200
    assert narrower.json()["scope"] == "launch/patient patient/*.rs"


def test_no_refresh_token_without_offline_or_online_access(smart: Smart, people: People) -> None:
    app = smart.register_app()
    tokens = app.exchange(app.launch(people.citizen_national_id, "launch/patient patient/*.rs"))
    assert tokens.status_code == 200
    assert "refresh_token" not in tokens.json()


def test_a_refresh_token_of_one_app_is_refused_to_another(smart: Smart, people: People) -> None:
    app, other_app = smart.register_app(), smart.register_app()
    tokens = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    stolen = other_app.refresh(tokens["refresh_token"])
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    # Not spent by the other app's attempt.
    assert app.refresh(tokens["refresh_token"]).status_code == 200


# Revocation (RFC 7009)


def test_revoking_a_refresh_token_ends_the_access_token(smart: Smart, people: People) -> None:
    app = smart.register_app()
    tokens = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    headers = bearer(tokens["access_token"])
    assert app.revoke(tokens["refresh_token"], "refresh_token").status_code == 200
    after = app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers)
    assert after.status_code == 401
    assert after.headers["www-authenticate"].startswith("Bearer")
    assert app.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_access_token_ends_it(smart: Smart, people: People) -> None:
    app = smart.register_app(confidential=True)
    tokens = app.exchange(app.launch(people.clinician_national_id, CLINICIAN_SCOPE)).json()
    assert app.revoke(tokens["access_token"]).status_code == 200
    after = app.browser.get("/fhir/Observation", headers=bearer(tokens["access_token"]))
    assert after.status_code == 401


def test_an_app_cannot_revoke_another_apps_token(smart: Smart, people: People) -> None:
    app, other_app = smart.register_app(), smart.register_app()
    tokens = app.exchange(app.launch(people.citizen_national_id, PATIENT_SCOPE)).json()
    assert other_app.revoke(tokens["access_token"]).status_code == 400
    headers = bearer(tokens["access_token"])
    assert app.browser.get(f"/fhir/Patient/{people.patient}", headers=headers).status_code == 200


def test_revoking_an_unknown_token_answers_200(smart: Smart) -> None:
    app = smart.register_app()
    assert app.revoke("no-such-token").status_code == 200
