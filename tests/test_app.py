"""Production mode refuses every unsafe configuration, and says which."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from health.app import NotReadyForProduction, check_production_readiness, production_problems
from health.auth.clients import ClientStore
from health.db.engine import Database
from health.settings import Environment, Settings

SAFE = {
    "env": Environment.production,
    "dev_eid": False,
    "eid_issuer": "https://broker.example/oidc",
    "eid_client_secret": "s" * 40,
    "base_url": "https://health.example",
    "session_secret": "x" * 48,
    "audit_key": "k" * 48,
}


def _problems(**changes: object) -> list[str]:
    settings = Settings(**{**SAFE, "auth_signing_key_file": Path("/keys/auth.pem"), **changes})  # type: ignore[arg-type]
    return production_problems(settings)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"dev_eid": True}, "development eID"),
        ({"eid_issuer": None}, "HEALTH_EID_ISSUER"),
        ({"eid_client_secret": None}, "HEALTH_EID_CLIENT_SECRET"),
        ({"base_url": "http://health.example"}, "not https"),
        ({"session_secret": "development-session-secret"}, "session secret"),
        ({"session_secret": "short"}, "session secret"),
        ({"auth_signing_key_file": None}, "HEALTH_AUTH_SIGNING_KEY_FILE"),
        ({"audit_key": "development-audit-key"}, "HEALTH_AUDIT_KEY"),
        ({"audit_key": "short"}, "HEALTH_AUDIT_KEY"),
    ],
)
def test_each_unsafe_setting_is_named(changes: dict[str, object], named: str) -> None:
    assert any(named in problem for problem in _problems(**changes))
    assert not any(named in problem for problem in _problems())


def test_production_starts_with_safe_settings() -> None:
    assert _problems() == []


def test_development_mode_starts_with_the_defaults() -> None:
    check_production_readiness(Settings())


def test_demo_clients_are_refused_in_production(database: Database) -> None:
    with database.session(write=True) as session:
        ClientStore(session).register_backend(
            name="Demo hospital",
            scope="system/*.cruds",
            jwks={"keys": []},
            organization_id="org",
            organization_identifier="urn:demo|1",
            demo=True,
        )
    settings = Settings(**SAFE, auth_signing_key_file=Path("/keys/auth.pem"))  # type: ignore[arg-type]
    with pytest.raises(NotReadyForProduction, match="demo clients"):
        check_production_readiness(settings, database)


class _RecordingTracer(trace.NoOpTracer):
    """Keeps the name and attributes of every span an instrumentation starts."""

    def __init__(self, spans: list[tuple[str, dict[str, Any]]]) -> None:
        self.spans = spans

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append((name, dict(kwargs.get("attributes") or {})))
        return super().start_span(name, *args, **kwargs)


class _RecordingProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any]]] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _RecordingTracer(self.spans)


def test_requests_leave_no_trace_in_an_opentelemetry_set_up_around_the_server(
    monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    """FastAPI traces every request once a tracer provider is configured in the process
    (an operator's auto-instrumentation), with the query string as `url.query`: a
    search's national ID would go to the tracing backend. The server turns FastAPI's
    telemetry off, as it keeps search strings out of its request log."""
    provider = _RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)

    response = client.get("/fhir/Patient?identifier=urn:oid:1.2.208.176.1.2|0101801234")

    assert response.status_code == 200, response.text
    assert provider.spans == []
