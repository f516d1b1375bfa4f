"""What the development eID refuses, and how: errors to the client or a page, never a leak."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

import health.eid.store

ERIK = "1406580991"
PORTAL, PUBLIC_APP = "health-portal", "citizen-app"
RelyingParties = Callable[[str], Any]


def test_wrong_or_missing_pkce_verifier_is_refused(relying_party: RelyingParties) -> None:
    app = relying_party(PUBLIC_APP)
    wrong = app.exchange(app.login(ERIK), verifier="x" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = app.exchange(app.login(ERIK), verifier="")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    portal = relying_party(PORTAL)
    confidential = portal.exchange(portal.login(ERIK), verifier="", auth=portal.basic_auth)
    assert confidential.status_code == 400


def test_a_code_works_once(relying_party: RelyingParties) -> None:
    portal = relying_party(PORTAL)
    login = portal.login(ERIK)
    assert portal.exchange(login, auth=portal.basic_auth).status_code == 200
    again = portal.exchange(login, auth=portal.basic_auth)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_an_expired_code_is_refused(
    relying_party: RelyingParties, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health.eid.store, "CODE_LIFETIME", timedelta(seconds=-1))
    portal = relying_party(PORTAL)
    answer = portal.exchange(portal.login(ERIK), auth=portal.basic_auth)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_refused(relying_party: RelyingParties) -> None:
    portal = relying_party(PORTAL)
    login = portal.login(ERIK)
    answer = portal.exchange(login, auth=(PORTAL, "not-the-secret"))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    # The code was not spent by the failed attempt... nor by another client's.
    assert portal.exchange(login, auth=portal.basic_auth).status_code == 200


def test_unregistered_redirect_uri_gets_a_page_not_a_redirect(
    relying_party: RelyingParties,
) -> None:
    portal = relying_party(PORTAL)
    portal.redirect_uri = "https://evil.example/steal"
    answer, _ = portal.authorize()
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert "Redirect URI https://evil.example/steal is not supported" in answer.text


def test_unknown_client_gets_a_page_not_a_redirect(relying_party: RelyingParties) -> None:
    portal = relying_party(PORTAL)
    portal.client_id = "nobody"
    answer, _ = portal.authorize()
    assert answer.status_code == 400 and "location" not in answer.headers


def test_missing_pkce_challenge_goes_back_to_the_client_as_an_error(
    relying_party: RelyingParties,
) -> None:
    answer, login = relying_party(PORTAL).authorize(code_challenge="", code_challenge_method="")
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == [login.state]
    plain, _ = relying_party(PORTAL).authorize(code_challenge_method="plain")
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a national ID number"),
        ("12345", "10 digits DDMMYYSSSS"),
        ("3202581234", "not a valid CPR number"),
        ("111222334", "not a valid BSN"),
    ],
)
def test_malformed_national_id_reshows_the_form_with_the_error(
    relying_party: RelyingParties, typed: str, message: str
) -> None:
    portal = relying_party(PORTAL)
    form, login = portal.authorize()
    answer = portal.submit(form.text, national_id=typed)
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text
    assert message in answer.text
    assert 'aria-describedby="national_id_hint national_id_error"' in answer.text
    # The same form, corrected, still logs in.
    fixed = portal.submit(answer.text, national_id=ERIK)
    assert fixed.status_code == 302
    assert parse_qs(urlsplit(fixed.headers["location"]).query)["state"] == [login.state]


def test_the_form_needs_its_csrf_token_and_its_browser(
    relying_party: RelyingParties, client: TestClient
) -> None:
    portal = relying_party(PORTAL)
    form, _ = portal.authorize()
    missing = portal.submit(form.text, national_id=ERIK, csrf_token=None)
    assert missing.status_code == 400 and "CSRF" in missing.text
    client.cookies.clear()  # the same form, sent from another browser
    other_browser = portal.submit(form.text, national_id=ERIK)
    assert other_browser.status_code == 400 and "CSRF" in other_browser.text


def test_a_login_form_is_good_for_one_login(relying_party: RelyingParties) -> None:
    portal = relying_party(PORTAL)
    form, _ = portal.authorize()
    assert portal.submit(form.text, national_id=ERIK).status_code == 302
    again = portal.submit(form.text, national_id=ERIK)
    assert again.status_code == 400 and "location" not in again.headers


def test_unknown_level_of_assurance_is_refused(relying_party: RelyingParties) -> None:
    portal = relying_party(PORTAL)
    form, _ = portal.authorize()
    assert portal.submit(form.text, national_id=ERIK, acr="extreme").status_code == 400
