"""The authorize step over HTTP: which requests are refused, and how.

An unknown client or an unregistered redirect URI gets an error page here and is never
redirected to; any other fault goes back to the app's registered redirect URI as an
RFC 6749 error (https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2.1).
The approval form answers only the browser that started the request, with its token.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey

# tests/auth/conftest.py: Smart (apps and clients), People.
Smart = Any
People = Any

PATIENT_SCOPE = "launch/patient openid fhirUser patient/*.rs"


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(smart: Smart) -> None:
    app = smart.register_app()
    answer, _ = app.authorize(PATIENT_SCOPE, redirect_uri="https://evil.example/callback")
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert "evil.example" not in answer.headers.get("location", "")


def test_a_redirect_uri_must_match_exactly(smart: Smart) -> None:
    app = smart.register_app()
    answer, _ = app.authorize(PATIENT_SCOPE, redirect_uri=f"{app.redirect_uri}/../x")
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_an_unknown_client_gets_an_error_page(smart: Smart) -> None:
    app = smart.register_app()
    app.client_id = "no-such-app"
    answer, _ = app.authorize(PATIENT_SCOPE)
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_a_backend_client_cannot_use_the_authorize_step(smart: Smart) -> None:
    backend = smart.register_backend("system/*.rs", [RSAKey.generate_key(2048, auto_kid=True)])
    app = smart.register_app()
    app.client_id = backend.client_id
    answer, _ = app.authorize(PATIENT_SCOPE)
    assert answer.status_code == 400
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("overrides", "error", "mentions"),
    [
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request", "PKCE"),
        ({"code_challenge_method": "plain"}, "invalid_request", "S256"),
        ({"aud": "https://other.example/fhir"}, "invalid_request", "aud"),
        ({"aud": ""}, "invalid_request", "aud"),
        ({"state": ""}, "invalid_request", "state"),
        ({"scope": ""}, "invalid_scope", "scope"),
        ({"scope": "system/*.rs"}, "invalid_scope", "backend"),
        ({"scope": "patient/Observation.rs?category=laboratory"}, "invalid_scope", "search"),
        ({"launch": "xyz"}, "invalid_request", "EHR launch"),
        ({"response_type": "token"}, "unsupported_response_type", ""),
    ],
)
def test_a_faulty_request_goes_back_to_the_app_as_an_error(
    smart: Smart, overrides: dict[str, str], error: str, mentions: str
) -> None:
    app = smart.register_app()
    answer, authorization = app.authorize(overrides.pop("scope", PATIENT_SCOPE), **overrides)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{app.redirect_uri}?")
    query = _query(location)
    assert query["error"] == error
    assert mentions in query.get("error_description", "")
    assert "code" not in query
    if authorization.state:
        assert query["state"] == authorization.state


def test_a_valid_request_goes_to_the_eid_and_binds_the_browser(smart: Smart) -> None:
    app = smart.register_app()
    answer, _ = app.authorize(PATIENT_SCOPE)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith("http://testserver/eid/authorize?")
    assert _query(location)["redirect_uri"] == "http://testserver/auth/callback"
    cookie = answer.headers["set-cookie"]
    assert "health_auth_browser=" in cookie
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_the_approval_form_needs_its_csrf_token(smart: Smart, people: People) -> None:
    app = smart.register_app()
    page, _ = app.approval_page(people.citizen_national_id, PATIENT_SCOPE)
    assert page.status_code == 200
    fields = {"request_id": _field(page.text, "request_id"), "csrf_token": "forged"}
    answer = app.browser.post(
        "/auth/approve", data={**fields, "decision": "allow"}, follow_redirects=False
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers
    # Still answerable with the genuine token.
    assert app.decide(page, "allow").status_code == 302


def test_the_approval_form_answers_only_the_browser_that_asked(
    smart: Smart, people: People
) -> None:
    app = smart.register_app()
    page, _ = app.approval_page(people.citizen_national_id, PATIENT_SCOPE)
    other_browser = smart.register_app().browser
    fields = {
        "request_id": _field(page.text, "request_id"),
        "csrf_token": _field(page.text, "csrf_token"),
        "decision": "allow",
    }
    answer = other_browser.post("/auth/approve", data=fields, follow_redirects=False)
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_an_approval_is_answered_once(smart: Smart, people: People) -> None:
    app = smart.register_app()
    page, _ = app.approval_page(people.citizen_national_id, PATIENT_SCOPE)
    assert app.decide(page, "allow").status_code == 302
    again = app.decide(page, "allow")
    assert again.status_code == 400
    assert "location" not in again.headers


def test_the_eid_callback_from_another_browser_is_refused(smart: Smart, people: People) -> None:
    app = smart.register_app()
    answer, _ = app.authorize(PATIENT_SCOPE)
    form = app.browser.get(answer.headers["location"], follow_redirects=False)
    fields = {
        "login_id": _field(form.text, "login_id"),
        "csrf_token": _field(form.text, "csrf_token"),
        "national_id": people.citizen_national_id,
        "acr": "substantial",
    }
    back = app.browser.post("/eid/login", data=fields, follow_redirects=False)
    other_browser = smart.register_app().browser
    callback = other_browser.get(back.headers["location"], follow_redirects=False)
    assert callback.status_code == 400
    assert "location" not in callback.headers


def test_a_cancelled_eid_login_is_reported_on_a_page(smart: Smart) -> None:
    app = smart.register_app()
    answer = app.browser.get("/auth/callback?error=access_denied&state=x")
    assert answer.status_code == 400
    assert "cancelled" in answer.text


def _field(html: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', html)
    assert match, f"no {name} on the page"
    return unescape(match.group(1))


def test_a_browser_cookie_this_server_did_not_make_is_replaced(smart: Smart) -> None:
    app = smart.register_app()
    app.browser.cookies.set("health_auth_browser", "x" * 200, domain="testserver.local")
    answer, _ = app.authorize(PATIENT_SCOPE)
    assert answer.status_code == 302, answer.text
    cookie = answer.headers["set-cookie"]
    value = cookie.split("health_auth_browser=", 1)[1].split(";", 1)[0]
    assert len(value) == 43
