"""The portal's pages over HTTP: logging in through the development eID, the record
summary, refused logins as HTML error pages, and logout that ends the eID session too.

The fixtures (tests/portal/conftest.py) give a `portal` and `browser`s on it; a
browser is a TestClient with cookies of its own that follows the eID's login form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient

from health.portal.languages import LANGUAGE_COOKIE
from health.portal.sessions import SESSION_COOKIE

# The conftest's Browser and Portal (a test module cannot import a conftest).
Browser = Any
Portal = Any
ERIK = "1406580991"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


def _is_error_page(answer: httpx.Response, status: int, message: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert message in answer.text, answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_the_logged_out_page_offers_the_eid_login(browser: Browser) -> None:
    page = browser.home()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert re.search(r'<form method="get" action="/portal/login">', page.text)
    assert '<button type="submit">Log in with MitID</button>' in page.text
    assert "<script" not in page.text
    assert "set-cookie" not in page.headers


def test_a_citizen_logs_in_through_the_eid_and_sees_an_empty_record(
    portal: Portal, browser: Browser
) -> None:
    authorize_url = browser.start_login()
    assert authorize_url.startswith(f"{portal.settings.base_url}/eid/authorize?")
    callback_url = browser.authenticate(authorize_url)
    assert portal.path_of(callback_url) == "/portal/callback"

    answer = browser.callback(callback_url)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/"
    page = browser.home()
    assert page.status_code == 200
    assert "Erik Mortensen" in page.text
    assert ERIK in page.text and "1958-06-14" in page.text
    assert "Your record is empty" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_citizen_with_a_record_sees_that_it_exists(browser: Browser, client: TestClient) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": CPR_SYSTEM, "value": ERIK}],
        "name": [{"family": "Mortensen", "given": ["Erik"]}],
    }
    assert client.post("/fhir/Patient", json=patient).status_code == 201
    browser.login()
    page = browser.home()
    assert "Upcoming appointments" in page.text
    assert "Your record is empty" not in page.text


def test_a_login_below_the_minimum_level_of_assurance_is_refused(
    make_portal: Callable[..., Portal],
) -> None:
    portal = make_portal(eid_min_acr="high")
    browser = portal.browser()
    authorize_url = browser.start_login()
    assert parse_qs(urlsplit(authorize_url).query)["acr_values"] == [
        "http://eidas.europa.eu/LoA/high"
    ]
    answer = browser.callback(browser.authenticate(authorize_url, acr="substantial"))
    _is_error_page(answer, 403, "health data needs at least &#39;high&#39;")
    assert "Log in with MitID" in browser.home().text


def test_an_error_from_the_eid_is_shown_as_a_page(browser: Browser) -> None:
    browser.start_login()
    answer = browser.callback("/portal/callback?error=access_denied&state=x")
    _is_error_page(answer, 400, "The login was cancelled or refused at the eID")
    # The provider's own description is not shown: anyone can craft such a link.
    crafted = browser.callback(
        "/portal/callback?error=Call+0800-SCAM&error_description=Call+0800-SCAM&state=x"
    )
    _is_error_page(crafted, 400, "The eID refused the login (unknown error)")
    assert "SCAM" not in crafted.text


def test_a_callback_with_an_unknown_state_is_refused(browser: Browser) -> None:
    callback_url = browser.authenticate(browser.start_login())
    query = parse_qs(urlsplit(callback_url).query)
    forged = f"/portal/callback?state=not-the-state&code={query['code'][0]}"
    _is_error_page(browser.callback(forged), 400, "expired or was already completed")
    _is_error_page(browser.callback("/portal/callback?code=abc"), 400, "lacks its state or code")


def test_a_callback_works_once(browser: Browser) -> None:
    callback_url = browser.authenticate(browser.start_login())
    assert browser.callback(callback_url).status_code == 303
    _is_error_page(browser.callback(callback_url), 400, "expired or was already completed")
    # The replay did not end the session the first callback opened.
    assert "Erik Mortensen" in browser.home().text


def test_a_login_started_in_another_browser_is_refused(portal: Portal) -> None:
    victim, attacker = portal.browser(), portal.browser()
    # The attacker starts a login, and lures the victim to its callback (login CSRF).
    callback_url = attacker.authenticate(attacker.start_login(), national_id="0101901234")
    _is_error_page(victim.callback(callback_url), 400, "started in another browser")
    assert victim.session_cookie is None


def test_logout_needs_the_csrf_token(browser: Browser) -> None:
    browser.login()
    _is_error_page(browser.logout(None), 403, "The logout could not be verified")
    _is_error_page(browser.logout("wrong"), 403, "The logout could not be verified")
    assert "Erik Mortensen" in browser.home().text


def test_logout_ends_the_portal_session_and_the_eid_session(
    portal: Portal, browser: Browser
) -> None:
    browser.login()
    cookie = browser.session_cookie
    answer = browser.logout(browser.csrf_token())
    assert answer.status_code == 303
    end_session = urlsplit(answer.headers["location"])
    assert f"{end_session.scheme}://{end_session.netloc}{end_session.path}" == (
        f"{portal.settings.base_url}/eid/logout"
    )
    query = parse_qs(end_session.query)
    assert query["post_logout_redirect_uri"] == [f"{portal.settings.base_url}/portal/"]
    assert query["id_token_hint"][0].count(".") == 2
    assert browser.session_cookie is None

    # The eID ends its session and sends the browser back to the portal.
    back = browser.client.get(answer.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    assert back.headers["location"] == f"{portal.settings.base_url}/portal/"

    # The old cookie opens nothing any more, in this browser or any other.
    stranger = portal.browser()
    page = stranger.client.get(
        "/portal/", headers={"Cookie": f"{SESSION_COOKIE}={cookie}; {LANGUAGE_COOKIE}=en"}
    )
    assert "Log in with MitID" in page.text and "Erik Mortensen" not in page.text


def test_an_unreachable_eid_gets_a_page_not_a_crash(make_portal: Callable[..., Portal]) -> None:
    portal = make_portal(eid_issuer="http://testserver/no-such-eid")
    answer = portal.browser().client.get("/portal/login", follow_redirects=False)
    _is_error_page(answer, 502, "The eID could not be reached")


def test_a_login_over_real_http(live_server: Any) -> None:
    """The app as served by uvicorn, its relying party reaching /eid over the network."""
    base = live_server.base_url
    with httpx.Client(base_url=base) as browser:
        authorize_url = browser.get("/portal/login").headers["location"]
        form = browser.get(authorize_url)
        fields = {**_hidden_fields(form.text), "national_id": ERIK, "acr": "substantial"}
        callback_url = browser.post("/eid/login", data=fields).headers["location"]
        assert callback_url.startswith(f"{base}/portal/callback?")
        answer = browser.get(callback_url)
        assert answer.status_code == 303
        assert "Erik Mortensen" in browser.get("/portal/").text


def _hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
