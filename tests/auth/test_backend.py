"""SMART Backend Services over HTTP: a hospital system gets a token with a signed client
assertion (RS384 or ES384), and every forged, stale or replayed assertion is refused.

https://hl7.org/fhir/smart-app-launch/backend-services.html. Real keys, real signatures.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from health.auth.clients import ClientStore
from health.db.engine import Database

# tests/auth/conftest.py: Smart (apps and clients), BackendClient.
Smart = Any
BackendClient = Any

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
REGISTERED_SCOPE = "system/*.rs system/Observation.cruds system/Patient.cruds"


def bearer(token: str) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": f"Bearer {token}"}


@pytest.fixture
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", auto_kid=True)


@pytest.fixture
def hospital(smart: Smart, rsa_key: RSAKey, ec_key: ECKey) -> BackendClient:
    """A backend client with an RS384 and an ES384 key registered."""
    return smart.register_backend(REGISTERED_SCOPE, [rsa_key, ec_key])


def _refused(answer: Any, status: int = 401, error: str = "invalid_client") -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error
    assert "access_token" not in body
    return str(body.get("error_description", ""))


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_a_hospital_gets_a_token_and_uses_it(
    smart: Smart, hospital: BackendClient, algorithm: str
) -> None:
    key = hospital.keys[0] if algorithm == "RS384" else hospital.keys[1]
    answer = hospital.token(
        "system/Patient.cruds system/Observation.rs", hospital.assertion(key=key)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "system/Patient.cruds system/Observation.rs"
    assert 0 < tokens["expires_in"] <= 300
    assert "refresh_token" not in tokens
    claims = jwt.decode(tokens["access_token"], smart.keys()).claims
    assert claims["organization"] == "regional-hospital"
    assert claims["client_id"] == hospital.client_id

    headers = bearer(tokens["access_token"])
    # A hospital's write is a push: its Patient needs a national ID (health/ingest).
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0505051234"}],
    }
    created = hospital.browser.post("/fhir/Patient", json=patient, headers=headers)
    assert created.status_code == 201, created.text
    read = hospital.browser.get(f"/fhir/Patient/{created.json()['id']}", headers=headers)
    assert read.status_code == 200
    # Observation.rs permits no create.
    refused = hospital.browser.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=headers,
    )
    assert refused.status_code == 403


def test_a_tampered_signature_is_refused(hospital: BackendClient) -> None:
    header, payload, signature = hospital.assertion().split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = claims["iss"] = hospital.client_id
    claims["scope"] = "system/*.cruds"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    _refused(hospital.token(assertion=f"{header}.{forged}.{signature}"))


def test_a_key_that_was_not_registered_is_refused(hospital: BackendClient) -> None:
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    _refused(hospital.token(assertion=hospital.assertion(key=stranger)))
    # Even under the kid of a registered key.
    forged = hospital.assertion(key=stranger, kid=hospital.keys[0].kid)
    _refused(hospital.token(assertion=forged))


def test_an_unsigned_assertion_is_refused(hospital: BackendClient) -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": hospital.client_id,
        "sub": hospital.client_id,
        "aud": "http://testserver/auth/token",
        "exp": now + 60,
        "jti": "unsigned",
    }
    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    _refused(hospital.token(assertion=unsigned))


def test_algorithms_other_than_rs384_and_es384_are_refused(smart: Smart) -> None:
    p256 = ECKey.generate_key("P-256", auto_kid=True)
    rsa = RSAKey.generate_key(2048, auto_kid=True)
    client = smart.register_backend("system/*.rs", [p256, rsa])
    for key, algorithm in ((p256, "ES256"), (rsa, "RS256"), (rsa, "RS512"), (rsa, "PS384")):
        refused = _refused(client.token(assertion=client.assertion(key=key, alg=algorithm)))
        assert "not allowed" in refused
    assert client.token(assertion=client.assertion(key=rsa, alg="RS384")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"aud": "http://testserver/fhir"}, "aud"),
        ({"aud": "https://other.example/auth/token"}, "aud"),
        ({"aud": None}, "aud"),
        ({"iss": "someone-else"}, "Issuer and Subject"),
        ({"exp": None}, "exp"),
        ({"jti": None}, "JWT ID"),
    ],
    ids=["aud-fhir", "aud-other", "no-aud", "iss-not-sub", "no-exp", "no-jti"],
)
def test_assertions_with_wrong_claims_are_refused(
    hospital: BackendClient, changes: dict[str, Any], mentions: str
) -> None:
    assert mentions in _refused(hospital.token(assertion=hospital.assertion(**changes)))


def test_an_assertion_valid_for_more_than_five_minutes_is_refused(
    hospital: BackendClient,
) -> None:
    description = _refused(
        hospital.token(assertion=hospital.assertion(exp=int(time.time()) + 3600))
    )
    assert "five minutes" in description


def test_an_expired_assertion_is_refused(hospital: BackendClient) -> None:
    past = int(time.time()) - 600
    refused = _refused(hospital.token(assertion=hospital.assertion(exp=past, iat=past - 60)))
    assert "expired" in refused


def test_a_replayed_assertion_is_refused(hospital: BackendClient) -> None:
    assertion = hospital.assertion()
    assert hospital.token(assertion=assertion).status_code == 200
    assert "used before" in _refused(hospital.token(assertion=assertion))
    # A new assertion with a jti seen before is a replay too.
    assert hospital.token(assertion=hospital.assertion(jti="once")).status_code == 200
    _refused(hospital.token(assertion=hospital.assertion(jti="once")))


def test_jtis_are_remembered_per_client(smart: Smart, hospital: BackendClient) -> None:
    other = smart.register_backend("system/*.rs", [RSAKey.generate_key(2048, auto_kid=True)])
    assert hospital.token(assertion=hospital.assertion(jti="same")).status_code == 200
    assert other.token(assertion=other.assertion(jti="same")).status_code == 200


def test_another_clients_identity_cannot_be_claimed(smart: Smart, hospital: BackendClient) -> None:
    victim = smart.register_backend("system/*.cruds", [RSAKey.generate_key(2048, auto_kid=True)])
    # Signed with the hospital's own key, but naming the victim.
    forged = hospital.assertion(iss=victim.client_id, sub=victim.client_id)
    _refused(victim.token("system/*.cruds", assertion=forged))


def test_scopes_beyond_the_registration_are_refused(hospital: BackendClient) -> None:
    description = _refused(
        hospital.token("system/*.rs system/Condition.c"), status=400, error="invalid_scope"
    )
    assert "system/Condition.c" in description
    _refused(hospital.token("system/*.cruds"), status=400, error="invalid_scope")


@pytest.mark.parametrize("scope", ["patient/*.rs", "user/*.rs", "openid", "launch/patient"])
def test_only_system_scopes_are_granted_to_a_backend(hospital: BackendClient, scope: str) -> None:
    _refused(hospital.token(scope), status=400, error="invalid_scope")


def test_a_scope_is_required(hospital: BackendClient) -> None:
    _refused(hospital.token(""), status=400, error="invalid_request")


def test_an_app_cannot_use_client_credentials(smart: Smart) -> None:
    app = smart.register_app(confidential=True)
    answer = app.token({"grant_type": "client_credentials", "scope": "system/*.rs"})
    _refused(answer, status=401)


def test_a_backend_client_cannot_use_a_secret_or_nothing(hospital: BackendClient) -> None:
    answer = hospital.browser.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.rs"},
        auth=(hospital.client_id, "guess"),
    )
    _refused(answer)
    answer = hospital.browser.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_id": hospital.client_id,
        },
    )
    _refused(answer)


def test_revoking_a_backend_token_ends_it(hospital: BackendClient) -> None:
    token = hospital.token().json()["access_token"]
    headers = bearer(token)
    assert hospital.browser.get("/fhir/Patient", headers=headers).status_code == 200
    revoked = hospital.browser.post(
        "/auth/revoke",
        data={
            "token": token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": hospital.assertion(),
        },
    )
    assert revoked.status_code == 200, revoked.text
    assert hospital.browser.get("/fhir/Patient", headers=headers).status_code == 401
    # Each token has a grant of its own: a new one works.
    fresh = bearer(hospital.token().json()["access_token"])
    assert hospital.browser.get("/fhir/Patient", headers=fresh).status_code == 200


def test_removing_the_client_ends_its_tokens(
    hospital: BackendClient, database: Database, client: TestClient
) -> None:
    headers = bearer(hospital.token().json()["access_token"])
    with database.session(write=True) as session:
        assert ClientStore(session).remove(hospital.client_id)
    assert hospital.browser.get("/fhir/Patient", headers=headers).status_code == 401
    _refused(hospital.token())
