"""The portal under test, and browsers that log in to it through the development eID.

The app's relying party reaches the development eID over HTTP served in-process (a
TestClient is an httpx.Client); each browser is a TestClient with cookies of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from html import unescape
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from health.app import create_app
from health.auth.eid_login import EidRelyingParty
from health.auth.identity import with_national_id
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.portal.languages import LANGUAGE_COOKIE
from health.portal.sessions import SESSION_COOKIE
from health.seed.load import seed_demo_world
from health.settings import Settings

BASE_URL = "http://testserver"
ERIK = "1406580991"  # a seeded citizen: Erik Mortensen, born 1958-06-14
ERIK_NAME = "Erik Mortensen"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


def hidden_fields(html: str) -> dict[str, str]:
    pattern = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'
    return {name: unescape(value) for name, value in re.findall(pattern, html)}


def post_forms(html: str, action: str) -> list[dict[str, str]]:
    """The hidden fields of each form in `html` posting to `action`."""
    found = []
    for body in re.findall(
        rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S
    ):
        found.append(hidden_fields(body))
    return found


class Browser:
    """One browser: its own cookies, following the portal and the eID like a person would."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)

    def start_login(self) -> str:
        """Press "Log in with MitID"; returns the eID authorize URL the portal sends us to."""
        answer = self.client.get("/portal/login", follow_redirects=False)
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    def authenticate(self, authorize_url: str, national_id: str = ERIK, acr: str = "") -> str:
        """Log in at the eID's form; returns the callback URL the eID sends us back to."""
        form = self.client.get(authorize_url, follow_redirects=False)
        assert form.status_code == 200, form.text
        fields = {**hidden_fields(form.text), "national_id": national_id}
        if acr:
            fields["acr"] = acr
        answer = self.client.post("/eid/login", data=fields, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    def callback(self, url: str) -> httpx.Response:
        return self.client.get(url, follow_redirects=False)

    def login(self, national_id: str = ERIK, acr: str = "substantial") -> httpx.Response:
        """The whole login; returns the portal callback's answer."""
        return self.callback(self.authenticate(self.start_login(), national_id, acr))

    def home(self) -> httpx.Response:
        return self.client.get("/portal/", follow_redirects=False)

    def csrf_token(self) -> str:
        return hidden_fields(self.home().text)["csrf_token"]

    def logout(self, csrf_token: str | None) -> httpx.Response:
        data = {} if csrf_token is None else {"csrf_token": csrf_token}
        return self.client.post("/portal/logout", data=data, follow_redirects=False)


class Portal:
    """An app with the portal and the development eID, and a way to open browsers on it."""

    def __init__(self, app: FastAPI, settings: Settings, exits: ExitStack) -> None:
        self.app = app
        self.settings = settings
        self._exits = exits
        # tests/conftest.py's issue_token (real tokens the app accepts), when set.
        self.issue_token: Callable[..., str] | None = None

    def browser(self, language: str | None = "en") -> Browser:
        """A browser reading the portal in `language` (None: the default, Danish)."""
        client = TestClient(
            self.app, base_url=self.settings.base_url, raise_server_exceptions=False
        )
        if language is not None:
            client.cookies.set(LANGUAGE_COOKIE, language, path="/")
        self._exits.callback(client.close)
        return Browser(client)

    def patient_id(self, national_id: str) -> str:
        """The id of the Patient carrying `national_id` (found as the system)."""
        with self.app.state.database.session(write=False) as session:
            found = with_national_id(
                session, "Patient", national_id, self.settings.national_id_systems, limit=1
            )
        assert found, national_id
        return found[0].id

    def practitioner_id(self, national_id: str) -> str:
        with self.app.state.database.session(write=False) as session:
            found = with_national_id(
                session, "Practitioner", national_id, self.settings.national_id_systems, limit=1
            )
        assert found, national_id
        return found[0].id

    def clinician(self, practitioner_id: str, scope: str = "user/*.rs") -> TestClient:
        """A clinician's app over HTTP, with a real token for `Practitioner/<id>`."""
        assert self.issue_token is not None, "use the demo_portal fixture"
        token = self.issue_token(
            actor_kind="clinician",
            fhir_user=f"Practitioner/{practitioner_id}",
            scope=scope,
        )
        client = TestClient(
            self.app,
            base_url=self.settings.base_url,
            raise_server_exceptions=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        self._exits.callback(client.close)
        return client

    # For test modules, which cannot import this conftest.
    forms = staticmethod(post_forms)

    def path_of(self, url: str) -> str:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == self.settings.base_url, url
        return parts.path


def in_process_relying_party(app: FastAPI, settings: Settings) -> EidRelyingParty:
    """The app's relying party, reaching the app's own /eid over in-process HTTP."""
    http = TestClient(app, base_url=settings.base_url, raise_server_exceptions=False)
    return EidRelyingParty(settings, http)


@pytest.fixture
def make_portal(database: Database) -> Iterator[Callable[..., Portal]]:
    """Portal(**settings): an app on the test database with these settings."""
    with ExitStack() as exits:

        def make(base_url: str = BASE_URL, **overrides: object) -> Portal:
            settings = Settings(database_url=database.url, base_url=base_url, **overrides)  # type: ignore[arg-type]
            app = create_app(settings, database=database, migrate=False)
            app.state.eid_relying_party = in_process_relying_party(app, settings)
            return Portal(app, settings, exits)

        yield make


@pytest.fixture
def portal(make_portal: Callable[..., Portal]) -> Portal:
    return make_portal()


@pytest.fixture
def browser(portal: Portal) -> Browser:
    return portal.browser()


@pytest.fixture
def demo_portal(portal: Portal, database: Database, issue_token: Callable[..., str]) -> Portal:
    """The portal with the demo world loaded (health demo's citizens and their records)."""
    seed_demo_world(database, FhirConfig.load(portal.settings))
    portal.issue_token = issue_token
    return portal
