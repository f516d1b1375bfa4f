"""Any authorize request, token request or revocation is answered as OAuth says (a page,
a redirect, or an error), never with a 500, and an error is only ever sent back to a
redirect URI the app registered.

Parameters are drawn from the ones each endpoint reads, with values odd in the ways a
misbehaving app or an attacker makes them (missing, repeated, empty, huge, control
characters, other apps' values). https://datatracker.ietf.org/doc/html/rfc6749,
https://hl7.org/fhir/smart-app-launch/app-launch.html.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.conftest import APP_REDIRECT, People, form_fields, where

# tests/auth/conftest.py
Smart = Any
SmartApp = Any

ODD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\x01",
            "a" * 5000,
            "code",
            "token",
            "S256",
            "plain",
            "launch/patient openid fhirUser patient/*.rs",
            "patient/Observation.rs patient/../*.rs",
            "user/*.* system/*.*",
            "http://testserver/fhir",
            "https://elsewhere.example/fhir",
            "https://app.example/callback",
            "https://evil.example/callback",
            "javascript:alert(1)",
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "æøå",
        ]
    ),
    st.text(max_size=30),
)
AUTHORIZE = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "launch",
    "prompt",
    "request",
]
TOKEN = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
]
PROPERTIES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(st.sampled_from(names), ODD), max_size=8)


@PROPERTIES
@given(changes=_pairs(AUTHORIZE), keep=st.booleans())
def test_any_authorize_request_is_a_page_a_redirect_or_an_error(
    smart: Smart, changes: list[tuple[str, str]], keep: bool
) -> None:
    app = smart.register_app()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": APP_REDIRECT,
        "scope": "launch/patient openid patient/*.rs",
        "state": "s",
        "aud": "http://testserver/fhir",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    pairs = [*(params.items() if keep else []), *changes]
    answer = app.browser.get(f"/auth/authorize?{urlencode(pairs)}", follow_redirects=False)
    assert answer.status_code in (200, 302, 303, 400, 401, 403), answer.text
    if answer.status_code in (302, 303):
        target = where(answer.headers["location"])
        # Onward to the eID, or back to the app's own registered redirect URI.
        assert target in (APP_REDIRECT, "http://testserver/eid/authorize"), target


@PROPERTIES
@given(fields=_pairs(TOKEN), authenticate=st.booleans())
def test_any_token_request_is_answered_with_tokens_or_an_oauth_error(
    smart: Smart, fields: list[tuple[str, str]], authenticate: bool
) -> None:
    app = smart.register_app(confidential=True)
    auth = (app.client_id, app.secret) if authenticate else None
    answer = app.browser.post(
        "/auth/token",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=auth,
    )
    # Nothing was ever issued to this app, so no field can get a token.
    assert answer.status_code in (400, 401), answer.text
    assert isinstance(answer.json().get("error"), str)
    assert "access_token" not in answer.json()


@PROPERTIES
@given(fields=_pairs(["token", "token_type_hint", "client_id", "client_secret"]))
def test_any_revocation_is_answered_as_rfc_7009_says(
    smart: Smart, fields: list[tuple[str, str]]
) -> None:
    app = smart.register_app(confidential=True)
    answer = app.browser.post(
        "/auth/revoke",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(app.client_id, app.secret),
    )
    assert answer.status_code in (200, 400, 401), answer.text
    if answer.status_code != 200:
        assert isinstance(answer.json().get("error"), str)


CALLBACK = ["code", "state", "error", "error_description", "iss"]
APPROVAL = ["pending", "csrf_token", "decision", "scope", "patient", "state"]


@PROPERTIES
@given(params=_pairs(CALLBACK))
def test_any_return_from_the_eid_is_answered_with_a_page_or_a_redirect(
    smart: Smart, params: list[tuple[str, str]]
) -> None:
    browser = smart.browser()
    answer = browser.get(f"/auth/callback?{urlencode(params)}", follow_redirects=False)
    assert answer.status_code in (200, 302, 303, 400, 401, 403), answer.text[:500]
    if answer.status_code in (302, 303):
        assert where(answer.headers["location"]) == APP_REDIRECT


@PROPERTIES
@given(fields=_pairs(APPROVAL), approval_page=st.booleans())
def test_any_answer_to_the_approval_page_is_a_page_a_redirect_or_an_error(
    smart: Smart, people: People, fields: list[tuple[str, str]], approval_page: bool
) -> None:
    app = smart.register_app()
    data: list[tuple[str, str]] = []
    if approval_page:
        page, _ = app.approval_page(
            people.citizen_national_id, "launch/patient openid patient/*.rs"
        )
        assert page.status_code == 200, page.text[:500]
        data = list(form_fields(page.text).items())
    answer = app.browser.post(
        "/auth/approve",
        content=urlencode([*data, *fields]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code in (200, 302, 303, 400, 401, 403), answer.text[:500]
    if answer.status_code in (302, 303):
        assert where(answer.headers["location"]) == APP_REDIRECT
