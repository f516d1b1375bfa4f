"""How clients find the authorization server: /fhir/.well-known/smart-configuration, the
CapabilityStatement's security block and the JWKS, all without a token.

https://hl7.org/fhir/smart-app-launch/conformance.html
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from health.auth.tokens import AccessTokens, TokenContext

BASE_URL = "http://testserver"


def test_the_smart_configuration_names_the_endpoints(anonymous_client: TestClient) -> None:
    answer = anonymous_client.get(
        "/fhir/.well-known/smart-configuration", headers={"Accept": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    document = answer.json()
    assert document["issuer"] == f"{BASE_URL}/auth"
    assert document["authorization_endpoint"] == f"{BASE_URL}/auth/authorize"
    assert document["token_endpoint"] == f"{BASE_URL}/auth/token"
    assert document["revocation_endpoint"] == f"{BASE_URL}/auth/revoke"
    assert document["jwks_uri"] == f"{BASE_URL}/auth/jwks"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert set(document["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert {"private_key_jwt", "client_secret_basic", "none"} <= set(
        document["token_endpoint_auth_methods_supported"]
    )
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "context-standalone-patient",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "sso-openid-connect",
    } <= set(document["capabilities"])
    # Not built, so not claimed.
    assert not {"launch-ehr", "context-ehr-patient", "authorize-post"} & set(
        document["capabilities"]
    )
    assert {"openid", "fhirUser", "launch/patient", "offline_access"} <= set(
        document["scopes_supported"]
    )


def test_the_capability_statement_declares_smart_on_fhir(anonymous_client: TestClient) -> None:
    capability = anonymous_client.get("/fhir/metadata").json()
    security = capability["rest"][0]["security"]
    codings = [coding for service in security["service"] for coding in service["coding"]]
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR",
    } in codings
    (oauth_uris,) = [
        e
        for e in security["extension"]
        if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    ]
    uris = {e["url"]: e["valueUri"] for e in oauth_uris["extension"]}
    assert uris == {
        "authorize": f"{BASE_URL}/auth/authorize",
        "token": f"{BASE_URL}/auth/token",
        "revoke": f"{BASE_URL}/auth/revoke",
    }


def test_the_jwks_verifies_the_access_tokens(anonymous_client: TestClient, app: object) -> None:
    keys = anonymous_client.get("/auth/jwks").json()
    assert all("d" not in key for key in keys["keys"])  # public halves only
    tokens: AccessTokens = app.state.access_tokens  # type: ignore[attr-defined]
    issued = tokens.issue(
        TokenContext(client_id="c", actor_kind="client", scope="system/*.rs", grant_id="g")
    )
    decoded = jwt.decode(issued.token, KeySet.import_key_set(keys))
    assert decoded.claims["iss"] == f"{BASE_URL}/auth"


def test_the_openid_configuration_points_to_the_id_token_key(
    anonymous_client: TestClient,
) -> None:
    document = anonymous_client.get("/auth/.well-known/openid-configuration").json()
    assert document["issuer"] == f"{BASE_URL}/auth"
    assert document["jwks_uri"] == f"{BASE_URL}/auth/jwks"
    keys = anonymous_client.get("/auth/jwks").json()["keys"]
    assert [key["alg"] for key in keys] == document["id_token_signing_alg_values_supported"]


def test_discovery_never_asks_for_a_token(anonymous_client: TestClient) -> None:
    """A client finds the authorization server before it has a token, or with a stale one."""
    for headers in ({}, {"Authorization": "Bearer expired-or-garbage"}, {"Authorization": "x"}):
        for path in ("/fhir/.well-known/smart-configuration", "/fhir/metadata", "/auth/jwks"):
            answer = anonymous_client.get(path, headers=headers)
            assert answer.status_code == 200, (path, headers, answer.text)
    # Everything else under /fhir says where it stands: 401 with a Bearer challenge.
    refused = anonymous_client.get("/fhir/Patient")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
