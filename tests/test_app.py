"""Production mode refuses every unsafe configuration, and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

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
