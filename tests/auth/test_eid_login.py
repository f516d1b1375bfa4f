"""The eID relying party (health/auth/eid_login.py) against the development eID over HTTP.

The relying party is driven directly here; tests/portal drives it through the portal.
Its HTTP client reaches the app's /eid in-process through `Provider`, which can also
lie: replace the ID token in the token endpoint's answer (signed for real, with the
eID's own key or another) or change the discovery document, as a compromised network
path or a misconfigured broker would.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, Key

import health.auth.oidc_logins
from health.auth.eid_login import (
    EidIdentity,
    EidLoginError,
    EidRelyingParty,
    EidUnavailable,
    InsufficientAssurance,
    callback_error,
)
from health.auth.keys import load_signing_key
from health.db.engine import Database
from health.settings import Settings

BASE_URL = "http://testserver"
ERIK = "1406580991"
BROWSER = "browser-that-started-the-login-000000000"
REDIRECT_URI = f"{BASE_URL}/portal/callback"
SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class Provider:
    """The development eID as the relying party reaches it: in-process HTTP, counted,
    and able to lie."""

    def __init__(self, app: FastAPI) -> None:
        self._app = TestClient(app, base_url=BASE_URL, raise_server_exceptions=False)
        self.paths: list[str] = []
        self.replace_id_token: Callable[[str], str] | None = None
        self.change_discovery: Callable[[dict[str, Any]], None] | None = None
        self.http = httpx.Client(transport=httpx.MockTransport(self._serve))

    def _serve(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        answer = self._app.request(
            request.method, str(request.url), headers=request.headers, content=request.content
        )
        body = answer.content
        if answer.status_code == 200 and request.url.path == "/eid/token" and self.replace_id_token:
            tokens = answer.json()
            tokens["id_token"] = self.replace_id_token(tokens["id_token"])
            body = orjson.dumps(tokens)
        if request.url.path.endswith("/openid-configuration") and self.change_discovery:
            document = answer.json()
            self.change_discovery(document)
            body = orjson.dumps(document)
        content_type = answer.headers.get("content-type", "application/json")
        return httpx.Response(
            answer.status_code, content=body, headers={"content-type": content_type}
        )

    def close(self) -> None:
        self.http.close()
        self._app.close()


@pytest.fixture
def provider(app: FastAPI) -> Iterator[Provider]:
    provider = Provider(app)
    yield provider
    provider.close()


@pytest.fixture
def relying_party(settings: Settings, provider: Provider) -> EidRelyingParty:
    return EidRelyingParty(settings, provider.http)


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


def start(relying_party: EidRelyingParty, database: Database, browser_id: str = BROWSER) -> str:
    with database.session(write=True) as session:
        return relying_party.start_login(
            session,
            purpose="portal",
            continue_to="/portal/records",
            browser_id=browser_id,
            redirect_uri=REDIRECT_URI,
        )


def authenticate(
    browser: TestClient, authorize_url: str, national_id: str = ERIK, acr: str = "substantial"
) -> tuple[str, str]:
    """Log in at the eID's form like a person would; returns the callback's state and code."""
    form = browser.get(authorize_url)
    assert form.status_code == 200, form.text
    hidden = dict(_HIDDEN.findall(form.text))
    answer = browser.post(
        "/eid/login",
        data={**hidden, "national_id": national_id, "acr": acr},
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return query["state"][0], query["code"][0]


def finish(
    relying_party: EidRelyingParty,
    database: Database,
    state: str,
    code: str,
    browser_id: str = BROWSER,
) -> tuple[EidIdentity, str, str]:
    with database.session(write=True) as session:
        return relying_party.finish_login(
            session, state=state, code=code, browser_id=browser_id, redirect_uri=REDIRECT_URI
        )


def login(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> tuple[EidIdentity, str, str]:
    state, code = authenticate(browser, start(relying_party, database))
    return finish(relying_party, database, state, code)


def claims_of(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def resigned(id_token: str, key: Key, kid: str, **changes: Any) -> str:
    """The token's claims with `changes` (None removes a claim), signed with `key`."""
    claims = {**claims_of(id_token), **changes}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims, key)


@pytest.fixture
def eid_key(settings: Settings, app: FastAPI) -> Any:
    """The development eID's own signing key (the app made it), to forge with real signatures."""
    return load_signing_key(settings.eid_signing_key_path, create=False)


# The login as it should go


def test_a_login_yields_the_verified_identity(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    authorize_url = start(relying_party, database)
    parts = urlsplit(authorize_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE_URL}/eid/authorize"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == "health-portal"
    assert query["redirect_uri"] == REDIRECT_URI
    assert "openid" in query["scope"].split()
    assert query["code_challenge_method"] == "S256"
    assert query["acr_values"] == SUBSTANTIAL
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["state"] != query["nonce"]

    state, code = authenticate(browser, authorize_url)
    identity, purpose, continue_to = finish(relying_party, database, state, code)
    assert identity.national_id == ERIK
    assert identity.name == "Erik Mortensen"
    assert identity.birth_date == "1958-06-14"
    assert identity.acr == "substantial"
    assert claims_of(identity.id_token)["dk:cpr"] == ERIK
    assert (purpose, continue_to) == ("portal", "/portal/records")


def test_each_login_has_its_own_state_nonce_and_pkce_challenge(
    relying_party: EidRelyingParty, database: Database
) -> None:
    first = parse_qs(urlsplit(start(relying_party, database)).query)
    second = parse_qs(urlsplit(start(relying_party, database)).query)
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]
    # The challenge is S256 of a verifier that never leaves the server.
    assert len(first["code_challenge"][0]) == len(create_s256_code_challenge("x" * 64))


def test_discovery_and_keys_are_fetched_once_and_then_cached(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
) -> None:
    login(relying_party, database, browser)
    login(relying_party, database, browser)
    assert provider.paths.count("/eid/.well-known/openid-configuration") == 1
    assert provider.paths.count("/eid/jwks") == 1
    assert provider.paths.count("/eid/token") == 2


def test_a_higher_level_than_the_minimum_is_accepted(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    state, code = authenticate(browser, start(relying_party, database), acr="high")
    identity, _, _ = finish(relying_party, database, state, code)
    assert identity.acr == "high"


# Refusals: the login


def test_a_level_of_assurance_below_the_minimum_is_refused(
    settings: Settings, provider: Provider, database: Database, browser: TestClient
) -> None:
    strict = EidRelyingParty(settings.model_copy(update={"eid_min_acr": "high"}), provider.http)
    authorize_url = start(strict, database)
    assert parse_qs(urlsplit(authorize_url).query)["acr_values"] == [
        "http://eidas.europa.eu/LoA/high"
    ]
    state, code = authenticate(browser, authorize_url, acr="substantial")
    with pytest.raises(InsufficientAssurance, match="at least 'high'"):
        finish(strict, database, state, code)


def test_low_is_refused_by_default(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    state, code = authenticate(browser, start(relying_party, database), acr="low")
    with pytest.raises(InsufficientAssurance, match="level of assurance 'low'"):
        finish(relying_party, database, state, code)


def test_an_unknown_state_is_refused(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    _, code = authenticate(browser, start(relying_party, database))
    with pytest.raises(EidLoginError, match="expired or was already completed"):
        finish(relying_party, database, "a-state-this-server-never-issued", code)


def test_a_code_from_another_login_fails_pkce(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    # Two logins in one browser; the second one's code arrives with the first's state,
    # so it is exchanged with the first login's PKCE verifier.
    first_state, _ = authenticate(browser, start(relying_party, database))
    _, second_code = authenticate(browser, start(relying_party, database))
    with pytest.raises(EidLoginError, match="did not accept this login"):
        finish(relying_party, database, first_state, second_code)


def test_an_id_token_from_another_login_fails_the_nonce_check(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
) -> None:
    # A genuine ID token, issued to this client for an earlier login, is replayed into
    # the answer of a later one (the token endpoint's answer is replaced in transit).
    earlier, _, _ = login(relying_party, database, browser)
    provider.replace_id_token = lambda _token: earlier.id_token
    with pytest.raises(EidLoginError, match="'nonce'"):
        login(relying_party, database, browser)


def test_a_login_is_finished_once(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    state, code = authenticate(browser, start(relying_party, database))
    finish(relying_party, database, state, code)
    with pytest.raises(EidLoginError, match="expired or was already completed"):
        finish(relying_party, database, state, code)


def test_a_login_from_another_browser_is_refused_and_spent(
    relying_party: EidRelyingParty, database: Database, browser: TestClient
) -> None:
    state, code = authenticate(browser, start(relying_party, database))
    with pytest.raises(EidLoginError, match="started in another browser"):
        finish(relying_party, database, state, code, browser_id="some-other-browser")
    # The attempt spent the login: the browser that started it must start again.
    with pytest.raises(EidLoginError, match="expired or was already completed"):
        finish(relying_party, database, state, code)


def test_an_expired_login_is_refused(
    relying_party: EidRelyingParty,
    database: Database,
    browser: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health.auth.oidc_logins, "LOGIN_LIFETIME", timedelta(seconds=-1))
    state, code = authenticate(browser, start(relying_party, database))
    with pytest.raises(EidLoginError, match="expired"):
        finish(relying_party, database, state, code)


# Refusals: the ID token


def test_a_token_signed_by_another_key_is_refused(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
    eid_key: Any,
) -> None:
    attacker = ECKey.generate_key("P-256")
    provider.replace_id_token = lambda token: resigned(token, attacker, eid_key.kid)
    with pytest.raises(EidLoginError, match="invalid signature"):
        login(relying_party, database, browser)


def test_a_token_whose_claims_were_changed_after_signing_is_refused(
    relying_party: EidRelyingParty, provider: Provider, database: Database, browser: TestClient
) -> None:
    def tamper(token: str) -> str:
        header, _, signature = token.split(".")
        claims = {**claims_of(token), "dk:cpr": "0101901234"}
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        return f"{header}.{payload}.{signature}"

    provider.replace_id_token = tamper
    with pytest.raises(EidLoginError, match="invalid signature"):
        login(relying_party, database, browser)


def test_an_unsigned_token_is_refused(
    relying_party: EidRelyingParty, provider: Provider, database: Database, browser: TestClient
) -> None:
    def unsigned(token: str) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        return f"{header}.{token.split('.')[1]}."

    provider.replace_id_token = unsigned
    with pytest.raises(EidLoginError, match="could not be read or verified"):
        login(relying_party, database, browser)


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"iss": "http://evil.example/eid"}, "'iss'"),
        ({"aud": "other-service"}, "'aud'"),
        ({"aud": ["health-portal", "other-service"]}, "'azp'"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "'iat'"),
        ({"nonce": "another-nonce"}, "'nonce'"),
        ({"nonce": None}, "'nonce'"),
        ({"sub": None}, "'sub'"),
        ({"dk:cpr": None}, "national ID number"),
        ({"acr": None}, "did not say at which level"),
        ({"acr": "http://eidas.europa.eu/LoA/low"}, "level of assurance 'low'"),
    ],
)
def test_a_validly_signed_token_with_wrong_claims_is_refused(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
    eid_key: Any,
    changes: dict[str, Any],
    refusal: str,
) -> None:
    provider.replace_id_token = lambda token: resigned(token, eid_key.key, eid_key.kid, **changes)
    with pytest.raises(EidLoginError, match=refusal):
        login(relying_party, database, browser)


def test_a_token_signed_by_the_eids_key_with_the_same_claims_passes(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
    eid_key: Any,
) -> None:
    # The control for the test above: re-signing alone changes nothing.
    provider.replace_id_token = lambda token: resigned(token, eid_key.key, eid_key.kid)
    identity, _, _ = login(relying_party, database, browser)
    assert identity.national_id == ERIK


def test_an_unknown_key_id_makes_one_more_fetch_of_the_keys(
    relying_party: EidRelyingParty,
    provider: Provider,
    database: Database,
    browser: TestClient,
    eid_key: Any,
) -> None:
    login(relying_party, database, browser)
    assert provider.paths.count("/eid/jwks") == 1
    attacker = ECKey.generate_key("P-256")
    provider.replace_id_token = lambda token: resigned(token, attacker, "rotated-key")
    with pytest.raises(EidLoginError, match="key the eID does not publish"):
        login(relying_party, database, browser)
    assert provider.paths.count("/eid/jwks") == 2


# The provider


def test_a_discovery_document_for_another_issuer_is_refused(
    relying_party: EidRelyingParty, provider: Provider, database: Database
) -> None:
    provider.change_discovery = lambda document: document.update(issuer="http://evil.example")
    with pytest.raises(EidUnavailable, match="misconfigured"):
        start(relying_party, database)


def test_an_unreachable_eid_is_reported_as_unavailable(
    settings: Settings, provider: Provider, database: Database
) -> None:
    elsewhere = settings.model_copy(update={"eid_issuer": f"{BASE_URL}/no-such-eid"})
    with pytest.raises(EidUnavailable, match="could not be reached"):
        start(EidRelyingParty(elsewhere, provider.http), database)


def test_the_end_session_url_carries_the_hint_and_the_return_address(
    relying_party: EidRelyingParty,
) -> None:
    url = relying_party.end_session_url(
        id_token_hint="header.payload.signature", post_logout_redirect_uri=f"{BASE_URL}/portal/"
    )
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE_URL}/eid/logout"
    assert parse_qs(parts.query) == {
        "id_token_hint": ["header.payload.signature"],
        "post_logout_redirect_uri": [f"{BASE_URL}/portal/"],
        "client_id": ["health-portal"],
    }


def test_no_end_session_url_when_the_provider_offers_none(
    relying_party: EidRelyingParty, provider: Provider
) -> None:
    provider.change_discovery = lambda document: document.pop("end_session_endpoint")
    assert (
        relying_party.end_session_url(id_token_hint="x", post_logout_redirect_uri=BASE_URL) is None
    )


def test_errors_from_the_eid_become_messages_without_its_text() -> None:
    assert "cancelled" in str(callback_error("access_denied"))
    assert "(server_error)" in str(callback_error("server_error"))
    assert "<script>" not in str(callback_error("<script>alert(1)</script>"))
