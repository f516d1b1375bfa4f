"""The SMART authorization server under test: apps and backend clients driving it over HTTP.

A SMART app is a browser (a TestClient with cookies of its own) that goes through the
whole standalone launch: /auth/authorize, the development eID's login form, the
callback, the approval page, and the token endpoint. The app's relying party reaches the
development eID over HTTP served in-process (a TestClient is an httpx.Client).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from health.auth.clients import ClientStore
from health.auth.eid_login import EidRelyingParty
from health.db.engine import Database
from health.settings import Settings

BASE_URL = "http://testserver"
TOKEN_URL = f"{BASE_URL}/auth/token"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
CLINICIAN = "0203704321"  # a doctor: a Practitioner carries this CPR
CITIZEN = "2512894417"  # a citizen with a record here
NEIGHBOUR = "0101016543"  # another citizen with a record here
STRANGER = "1112131415"  # a citizen with no record here
APP_REDIRECT = "https://app.example/callback"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form."""
    pattern = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'
    return {name: unescape(value) for name, value in re.findall(pattern, html)}


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def where(location: str) -> str:
    """A URL without its query."""
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass
class Authorization:
    """One authorize request as the app made it: what it must check and send back."""

    state: str
    verifier: str
    nonce: str
    redirect_uri: str
    code: str = ""


@dataclass
class SmartApp:
    """A registered SMART app, driving its own browser through the standalone launch."""

    browser: httpx.Client  # a TestClient, or a real HTTP client for a live server
    client_id: str
    secret: str | None
    redirect_uris: list[str] = field(default_factory=lambda: [APP_REDIRECT])
    base_url: str = BASE_URL

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def authorize(self, scope: str, **overrides: str) -> tuple[httpx.Response, Authorization]:
        """GET /auth/authorize; parameters given as "" are left out."""
        request = Authorization(
            state=secrets.token_urlsafe(12),
            verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(12),
            redirect_uri=overrides.get("redirect_uri", self.redirect_uri),
        )
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": scope,
            "state": request.state,
            "aud": f"{self.base_url}/fhir",
            "nonce": request.nonce,
            "code_challenge": create_s256_code_challenge(request.verifier),
            "code_challenge_method": "S256",
            **overrides,
        }
        request.state = params["state"]
        params = {key: value for key, value in params.items() if value != ""}
        answer = self.browser.get("/auth/authorize", params=params, follow_redirects=False)
        return answer, request

    def log_in(self, eid_url: str, national_id: str) -> httpx.Response:
        """At the eID: submit the login form; returns the authorization server's callback."""
        assert where(eid_url) == f"{self.base_url}/eid/authorize", eid_url
        form = self.browser.get(eid_url, follow_redirects=False)
        assert form.status_code == 200, form.text
        fields = {**form_fields(form.text), "national_id": national_id, "acr": "substantial"}
        back = self.browser.post("/eid/login", data=fields, follow_redirects=False)
        assert back.status_code == 302, back.text
        assert where(back.headers["location"]) == f"{self.base_url}/auth/callback"
        return self.browser.get(back.headers["location"], follow_redirects=False)

    def approval_page(
        self, national_id: str, scope: str, **overrides: str
    ) -> tuple[httpx.Response, Authorization]:
        """Authorize and log in: the approval page (or the refusal sent back to the app)."""
        answer, request = self.authorize(scope, **overrides)
        assert answer.status_code == 302, answer.text
        return self.log_in(answer.headers["location"], national_id), request

    def decide(self, page: httpx.Response, decision: str) -> httpx.Response:
        fields = {**form_fields(page.text), "decision": decision}
        return self.browser.post("/auth/approve", data=fields, follow_redirects=False)

    def launch(self, national_id: str, scope: str) -> Authorization:
        """The whole standalone launch, approved: the authorization with its code."""
        page, request = self.approval_page(national_id, scope)
        assert page.status_code == 200, page.text
        answer = self.decide(page, "allow")
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert where(location) == request.redirect_uri
        query = query_of(location)
        assert query["state"] == request.state, "the app's state must come back unchanged"
        request.code = query["code"]
        return request

    def exchange(self, request: Authorization, **overrides: Any) -> httpx.Response:
        """POST /auth/token with the code; `verifier=""` leaves the verifier out."""
        data = {
            "grant_type": "authorization_code",
            "code": request.code,
            "redirect_uri": request.redirect_uri,
            "code_verifier": overrides.pop("verifier", request.verifier),
        }
        return self.token(data, **overrides)

    def refresh(self, refresh_token: str, **fields: str) -> httpx.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token, **fields})

    def revoke(self, token: str, hint: str = "") -> httpx.Response:
        data = {"token": token, **({"token_type_hint": hint} if hint else {})}
        return self.post("/auth/revoke", data)

    def token(self, data: dict[str, str], **overrides: Any) -> httpx.Response:
        return self.post("/auth/token", data, **overrides)

    def post(self, path: str, data: dict[str, str], **overrides: Any) -> httpx.Response:
        data = {key: value for key, value in data.items() if value != ""}
        auth = overrides.pop("auth", None)
        if auth is None and self.secret is not None:
            auth = (self.client_id, self.secret)  # client_secret_basic
        if auth is None:
            data["client_id"] = self.client_id  # a public client names itself
        return self.browser.post(path, data=data, auth=auth, **overrides)


class Smart:
    """The app under test, and a way to register apps and backend clients on it."""

    def __init__(self, app: FastAPI, database: Database, hospital: TestClient) -> None:
        self.app = app
        self.database = database
        self.hospital = hospital  # the suite's client with write access, to load records
        self._browsers: list[TestClient] = []

    def close(self) -> None:
        for browser in self._browsers:
            browser.close()

    def browser(self) -> TestClient:
        client = TestClient(self.app, base_url=BASE_URL, raise_server_exceptions=False)
        self._browsers.append(client)
        return client

    def register_app(
        self,
        scope: str = "launch/patient openid fhirUser offline_access patient/*.rs user/*.rs",
        *,
        confidential: bool = False,
        redirect_uris: list[str] | None = None,
    ) -> SmartApp:
        redirect_uris = redirect_uris or [APP_REDIRECT]
        with self.database.session(write=True) as session:
            registered, secret = ClientStore(session).register_app(
                name="Chart Viewer",
                scope=scope,
                redirect_uris=redirect_uris,
                confidential=confidential,
            )
        return SmartApp(self.browser(), registered.client_id, secret, redirect_uris)

    def register_backend(self, scope: str, keys: list[ECKey | RSAKey]) -> BackendClient:
        jwks = {"keys": [key.as_dict(private=False) | {"kid": key.kid} for key in keys]}
        with self.database.session(write=True) as session:
            registered = ClientStore(session).register_backend(
                name="Regional hospital",
                scope=scope,
                jwks=jwks,
                organization_id="regional-hospital",
                organization_identifier="urn:oid:1.2.208.176.1.1|123456",
            )
        return BackendClient(self.browser(), registered.client_id, keys)

    def create(self, resource: dict[str, Any]) -> str:
        answer = self.hospital.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def keys(self) -> KeySet:
        return KeySet.import_key_set(self.hospital.get("/auth/jwks").json())


@dataclass
class BackendClient:
    """A hospital system: a client_id and the private keys whose public halves it registered."""

    browser: TestClient
    client_id: str
    keys: list[ECKey | RSAKey]

    def assertion(self, *, key: ECKey | RSAKey | None = None, **changes: Any) -> str:
        """A client assertion as SMART Backend Services asks; `changes` alter its claims
        (None removes one), `alg` and `kid` its header."""
        key = key or self.keys[0]
        alg = changes.pop("alg", "RS384" if isinstance(key, RSAKey) else "ES384")
        header = {"alg": alg, "kid": changes.pop("kid", key.kid), "typ": "JWT"}
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def token(self, scope: str = "system/*.rs", assertion: str | None = None) -> httpx.Response:
        data = {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion or self.assertion(),
        }
        return self.browser.post("/auth/token", data=data)


@pytest.fixture
def smart(
    app: FastAPI, database: Database, settings: Settings, client: TestClient
) -> Iterator[Smart]:
    """The app, with its relying party reaching the development eID in-process."""
    eid_http = TestClient(app, base_url=settings.base_url, raise_server_exceptions=False)
    app.state.eid_relying_party = EidRelyingParty(settings, eid_http)
    world = Smart(app, database, client)
    yield world
    world.close()
    eid_http.close()


@pytest.fixture
def live_smart_app(live_server: Any, database: Database) -> Iterator[SmartApp]:
    """A public SMART app of the live server (tests/conftest.py), with a real HTTP browser;
    the server's own relying party reaches its /eid over real HTTP too."""
    with database.session(write=True) as session:
        registered, _ = ClientStore(session).register_app(
            name="Chart Viewer",
            scope="launch/patient openid fhirUser offline_access patient/*.rs",
            redirect_uris=[APP_REDIRECT],
            confidential=False,
        )
    with httpx.Client(base_url=live_server.base_url) as browser:
        yield SmartApp(
            browser, registered.client_id, None, [APP_REDIRECT], base_url=live_server.base_url
        )


@dataclass(frozen=True)
class People:
    """The records the launch tests start from, and the national IDs to log in with."""

    practitioner: str
    patient: str
    neighbour: str
    observation: str
    neighbour_observation: str
    clinician_national_id: str = CLINICIAN
    citizen_national_id: str = CITIZEN
    stranger_national_id: str = STRANGER


def _person(resource_type: str, national_id: str, family: str) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "identifier": [{"system": CPR_SYSTEM, "value": national_id}],
        "name": [{"family": family}],
    }


def _observation(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


@pytest.fixture
def people(smart: Smart) -> People:
    """A doctor, two citizens with an Observation each."""
    patient = smart.create(_person("Patient", CITIZEN, "Jensen"))
    neighbour = smart.create(_person("Patient", NEIGHBOUR, "Nielsen"))
    return People(
        practitioner=smart.create(_person("Practitioner", CLINICIAN, "Lund")),
        patient=patient,
        neighbour=neighbour,
        observation=smart.create(_observation(patient)),
        neighbour_observation=smart.create(_observation(neighbour)),
    )
