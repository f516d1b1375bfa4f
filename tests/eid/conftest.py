"""The development eID under test, and relying parties that use it over HTTP."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from health.db.engine import Database
from health.settings import EidClient, Settings

BASE_URL = "http://testserver"
ISSUER = f"{BASE_URL}/eid"
PUBLIC_APP = "citizen-app"
OTHER_RP = "other-service"
ERIK = "1406580991"  # a seeded citizen: Erik Mortensen, born 1958-06-14


@pytest.fixture
def settings(database: Database) -> Settings:
    """The test app's settings, with a public client and a second confidential one."""
    return Settings(
        database_url=database.url,
        base_url=BASE_URL,
        eid_clients=[
            EidClient(client_id=PUBLIC_APP, redirect_uris=["http://127.0.0.1:8765/callback"]),
            EidClient(
                client_id=OTHER_RP,
                client_secret="other-secret",
                redirect_uris=["https://other.example/cb"],
                post_logout_redirect_uris=["https://other.example/bye"],
            ),
        ],
    )


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the login form."""
    pattern = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'
    return {name: unescape(value) for name, value in re.findall(pattern, html)}


@dataclass
class Login:
    """One login as a relying party sees it: what it sent and what came back."""

    client_id: str
    redirect_uri: str
    state: str
    nonce: str
    verifier: str
    code: str = ""

    def token_request(self, *, verifier: str | None = None) -> dict[str, str]:
        data = {"grant_type": "authorization_code", "code": self.code}
        data["redirect_uri"] = self.redirect_uri
        if verifier != "":
            data["code_verifier"] = verifier or self.verifier
        return data


class RelyingParty:
    """A relying party of the eID, driving a browser (the TestClient) through the flow."""

    issuer = ISSUER

    def __init__(self, client: TestClient, registration: EidClient) -> None:
        self.client = client
        self.client_id = registration.client_id
        self.secret = registration.client_secret
        self.redirect_uri = registration.redirect_uris[0]
        self.logout_uris = registration.post_logout_redirect_uris

    @property
    def basic_auth(self) -> tuple[str, str]:
        assert self.secret is not None
        return (self.client_id, self.secret)

    def authorize(self, **extra: str) -> tuple[httpx.Response, Login]:
        login = Login(
            self.client_id,
            self.redirect_uri,
            state=secrets.token_urlsafe(12),
            nonce=secrets.token_urlsafe(12),
            verifier=secrets.token_urlsafe(48),
        )
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile",
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": create_s256_code_challenge(login.verifier),
            "code_challenge_method": "S256",
            **extra,
        }
        params = {key: value for key, value in params.items() if value != ""}
        return self.client.get("/eid/authorize", params=params, follow_redirects=False), login

    def submit(self, form_html: str, **fields: str) -> httpx.Response:
        data = {**hidden_fields(form_html), "acr": "substantial", **fields}
        data = {key: value for key, value in data.items() if value is not None}
        return self.client.post("/eid/login", data=data, follow_redirects=False)

    def login(self, national_id: str = ERIK, **fields: str) -> Login:
        """Log in as `national_id`; returns the login with its code (state checked)."""
        form, login = self.authorize()
        assert form.status_code == 200, form.text
        answer = self.submit(form.text, national_id=national_id, **fields)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == self.redirect_uri
        query = parse_qs(location.query)
        assert query["state"] == [login.state]
        login.code = query["code"][0]
        return login

    def exchange(self, login: Login, **overrides: Any) -> httpx.Response:
        data = login.token_request(verifier=overrides.pop("verifier", None))
        if self.secret is None:
            data["client_id"] = self.client_id  # a public client names itself
        return self.client.post("/eid/token", data=data, **overrides)

    def verified_id_token(self, id_token: str, login: Login) -> dict[str, Any]:
        """The ID token's claims, after checking signature, iss, aud, exp and nonce."""
        keys = KeySet.import_key_set(self.client.get("/eid/jwks").json())
        token = jwt.decode(id_token, keys, algorithms=["ES256", "RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": login.nonce},
        ).validate(token.claims)
        return dict(token.claims)


@pytest.fixture
def relying_party(client: TestClient, settings: Settings) -> Callable[[str], RelyingParty]:
    """A relying party by client_id: health-portal, citizen-app (public), other-service."""
    parties = settings.eid_relying_parties
    return lambda client_id: RelyingParty(client, parties[client_id])
