"""The signing key's lifecycle, where the eID is mounted, and production's refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from health.app import NotReadyForProduction, check_production_readiness, create_app
from health.auth.keys import load_signing_key
from health.db.engine import Database
from health.settings import Environment, Settings


def test_a_generated_key_survives_restarts(tmp_path: Path) -> None:
    path = tmp_path / "data" / "eid-signing-key.pem"
    first = load_signing_key(path, create=True)
    second = load_signing_key(path, create=True)
    assert first.algorithm == "ES256"
    assert first.kid == second.kid
    assert path.stat().st_mode & 0o077 == 0


def test_an_rsa_key_file_signs_rs256(tmp_path: Path) -> None:
    path = tmp_path / "rsa.pem"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert load_signing_key(path, create=False).algorithm == "RS256"


def test_the_default_key_lives_beside_the_sqlite_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db' / 'health.db'}")
    assert settings.eid_signing_key_path == tmp_path / "db" / "eid-signing-key.pem"


def test_production_refuses_the_development_eid() -> None:
    with pytest.raises(NotReadyForProduction, match="development eID"):
        check_production_readiness(Settings(env=Environment.production, dev_eid=True))


def test_without_dev_eid_nothing_is_mounted(database: Database) -> None:
    settings = Settings(database_url=database.url, base_url="http://testserver", dev_eid=False)
    app = create_app(settings, database=database, migrate=False)
    with TestClient(app, base_url="http://testserver") as client:
        assert client.get("/eid/jwks").status_code == 404


def test_eid_errors_are_html_and_fhir_errors_stay_operation_outcomes(client: TestClient) -> None:
    page = client.get("/eid/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at /eid/no-such-page" in page.text
    wrong_method = client.delete("/eid/token")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")
    fhir = client.get("/fhir/NoSuchThing/1/_nope/x")
    assert fhir.json()["resourceType"] == "OperationOutcome"
