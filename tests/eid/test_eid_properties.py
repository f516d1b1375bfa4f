"""The development eID answers any authorize request, login form and token request with a
page, a redirect to a registered redirect URI, or an OAuth error; never a 500.

It runs in the demo only (production refuses it), but it is the first thing a visitor
of the demo touches. Values are drawn as in tests/auth/test_oauth_properties.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.test_oauth_properties import ODD as OAUTH_ODD
from tests.eid.conftest import RelyingParty, hidden_fields

# The OAuth tests' odd values, and the eID's own.
ODD = st.one_of(
    OAUTH_ODD,
    st.sampled_from(
        [
            '"',
            "\\",
            "openid profile",
            "substantial",
            "high",
            "http://eidas.europa.eu/LoA/high",
            "0101801234",
            "010180-1234",
            "3112999999",
            "health-portal",
            "citizen-app",
        ]
    ),
)
AUTHORIZE = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
    "prompt",
    "ui_locales",
]
LOGIN = ["national_id", "acr", "pending", "csrf_token", "continue", "state"]
TOKEN = ["grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"]
PROPERTIES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _answered_within(answer: Any, party: RelyingParty, statuses: tuple[int, ...]) -> None:
    """A page or an error, or a redirect to the relying party's registered URI only."""
    assert answer.status_code in statuses, answer.text[:500]
    if answer.status_code in (302, 303):
        target = urlsplit(answer.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == party.redirect_uri


def _pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(st.sampled_from(names), ODD), max_size=8)


@PROPERTIES
@given(changes=_pairs(AUTHORIZE), keep=st.booleans())
def test_any_authorize_request_is_a_form_a_registered_redirect_or_an_error(
    relying_party: Callable[[str], RelyingParty], changes: list[tuple[str, str]], keep: bool
) -> None:
    party = relying_party("health-portal")
    base = {
        "response_type": "code",
        "client_id": party.client_id,
        "redirect_uri": party.redirect_uri,
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    pairs = [*(base.items() if keep else []), *changes]
    answer = party.client.get(f"/eid/authorize?{urlencode(pairs)}", follow_redirects=False)
    _answered_within(answer, party, (200, 302, 303, 400, 401))


@PROPERTIES
@given(fields=_pairs(LOGIN), with_form=st.booleans())
def test_any_login_form_is_a_page_a_registered_redirect_or_an_error(
    relying_party: Callable[[str], RelyingParty],
    fields: list[tuple[str, str]],
    with_form: bool,
) -> None:
    party = relying_party("health-portal")
    data: list[tuple[str, str]] = []
    if with_form:
        form, _ = party.authorize()
        assert form.status_code == 200, form.text
        data = list(hidden_fields(form.text).items())
    answer = party.client.post(
        "/eid/login",
        content=urlencode([*data, *fields]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    _answered_within(answer, party, (200, 302, 303, 400, 401, 403))


@PROPERTIES
@given(fields=_pairs(TOKEN), authenticate=st.booleans())
def test_any_token_request_is_an_oauth_error_without_a_code(
    relying_party: Callable[[str], RelyingParty],
    fields: list[tuple[str, str]],
    authenticate: bool,
) -> None:
    party = relying_party("health-portal")
    answer = party.client.post(
        "/eid/token",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=party.basic_auth if authenticate else None,
    )
    assert answer.status_code in (400, 401), answer.text[:500]
    assert isinstance(answer.json().get("error"), str)
