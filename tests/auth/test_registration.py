"""Registering clients: what a backend client's JWKS, scopes and Organization, and an app's
redirect URIs and scopes, must be; and what registration stores."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey, OKPKey, RSAKey

from health.auth.backend_client import BackendKey
from health.auth.clients import ClientKind, ClientStore, new_client_id
from health.auth.registration import (
    DEFAULT_APP_SCOPE,
    OrganizationIdentifier,
    RegistrationError,
    app_redirect_uris,
    app_scope,
    backend_jwks,
    backend_scope,
    register_app,
    register_backend_client,
)
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.fhir.resource_types import ResourceTypes
from health.settings import Settings

SOR = "urn:oid:1.2.208.176.1.1"


@pytest.fixture(scope="module")
def types() -> ResourceTypes:
    return ResourceTypes(Settings().conformance_dir)


@pytest.fixture
def config(app: FastAPI) -> FhirConfig:
    return app.state.fhir_config  # type: ignore[no-any-return]


def _public(key: ECKey | RSAKey | OKPKey, **members: Any) -> dict[str, Any]:
    jwk = {**key.as_dict(private=False), "kid": "key-1"}
    jwk.update(members)
    return jwk


def _jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def _small_rsa_key() -> RSAKey:
    with warnings.catch_warnings():
        # joserfc warns about the size: that it is too small is the point.
        warnings.simplefilter("ignore")
        return RSAKey.generate_key(1024)


# The JWKS


def test_public_es384_and_rs384_keys_are_accepted() -> None:
    ec = BackendKey.generate().public_jwks()["keys"][0]
    rsa = _public(RSAKey.generate_key(2048), kid="rsa", alg="RS384", use="sig")

    checked = backend_jwks(_jwks(ec, rsa))

    assert [key["kid"] for key in checked["keys"]] == [ec["kid"], "rsa"]


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({**ECKey.generate_key("P-384").as_dict(private=True), "kid": "k"}, "private key"),
        ({**RSAKey.generate_key(2048).as_dict(private=True), "kid": "k"}, "private key"),
        (_public(RSAKey.generate_key(2048), p="AQAB"), r"private key material \(p\)"),
        ({"kty": "oct", "k": "c2VjcmV0", "kid": "k"}, "shared secret"),
        (_public(OKPKey.generate_key("Ed25519")), "cannot sign RS384 or ES384"),
        (_public(ECKey.generate_key("P-256")), "is not P-384"),
        (_public(_small_rsa_key()), "1024 bits"),
        (_public(RSAKey.generate_key(2048), n="!"), "n is unreadable"),
        ({**ECKey.generate_key("P-384").as_dict(private=False)}, "has no kid"),
        (_public(RSAKey.generate_key(2048), alg="RS256"), "is not RS384"),
        (_public(ECKey.generate_key("P-384"), use="enc"), "must be 'sig'"),
        (_public(ECKey.generate_key("P-384"), x="AAAA"), "not a valid EC public key"),
        ("a key", "not a JSON object"),
    ],
)
def test_unfit_keys_are_refused_with_the_reason(jwk: Any, message: str) -> None:
    with pytest.raises(RegistrationError, match=message) as refused:
        backend_jwks(_jwks(BackendKey.generate().public_jwks()["keys"][0], jwk))
    assert "keys[1]" in str(refused.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JWK Set"),
        ({"kty": "EC"}, "JWK Set"),
        ({"keys": []}, "no keys"),
    ],
)
def test_a_document_that_is_not_a_key_set_is_refused(document: Any, message: str) -> None:
    with pytest.raises(RegistrationError, match=message):
        backend_jwks(document)


def test_a_kid_used_twice_is_refused() -> None:
    first = _public(ECKey.generate_key("P-384"))
    second = _public(ECKey.generate_key("P-384"))
    with pytest.raises(RegistrationError, match="used twice"):
        backend_jwks(_jwks(first, second))


# Scopes, identifiers, redirect URIs


def test_backend_scopes_are_system_scopes(types: ResourceTypes) -> None:
    assert backend_scope("system/*.cruds", types) == "system/*.cruds"
    assert backend_scope("system/Patient.rs  system/Observation.read", types) == (
        "system/Patient.rs system/Observation.read"
    )
    for refused in ("patient/*.read", "user/Observation.rs", "openid", "system/*.cruds openid"):
        with pytest.raises(RegistrationError, match="not a system/ scope"):
            backend_scope(refused, types)
    with pytest.raises(RegistrationError, match="not a resource type"):
        backend_scope("system/Patinet.read", types)
    with pytest.raises(RegistrationError, match="not a SMART scope"):
        backend_scope("system/Patient.sr", types)
    with pytest.raises(RegistrationError, match="empty"):
        backend_scope("  ", types)


def test_app_scopes_are_a_users_scopes(types: ResourceTypes) -> None:
    assert app_scope(DEFAULT_APP_SCOPE, types) == DEFAULT_APP_SCOPE
    assert app_scope("openid fhirUser user/Observation.rs", types)
    with pytest.raises(RegistrationError, match="is a system/ scope"):
        app_scope("launch/patient system/*.read", types)


def test_organization_identifiers_are_system_and_value() -> None:
    identifier = OrganizationIdentifier.parse(f"{SOR}|123456789012345")
    assert (identifier.system, identifier.value) == (SOR, "123456789012345")
    assert str(identifier) == f"{SOR}|123456789012345"
    for refused in ("123456789012345", f"{SOR}|", "|123", "not-a-uri|123"):
        with pytest.raises(RegistrationError, match="organization-identifier"):
            OrganizationIdentifier.parse(refused)


def test_redirect_uris_must_be_safe_to_send_a_code_to() -> None:
    accepted = [
        "https://app.example/callback",
        "http://localhost:3000/callback",
        "http://127.0.0.1:8765/cb",
        "http://[::1]/cb",
        "com.example.app:/callback",
    ]
    assert app_redirect_uris([*accepted, accepted[0]]) == accepted
    for refused, message in [
        ("http://app.example/callback", "plain http"),
        ("/callback", "not an absolute URI"),
        ("https://app.example/callback#x", "fragment"),
    ]:
        with pytest.raises(RegistrationError, match=message):
            app_redirect_uris([refused])
    with pytest.raises(RegistrationError, match="at least one"):
        app_redirect_uris([])


# Registration in the database


def _register(database: Database, config: FhirConfig, identifier: str, **given: Any) -> Any:
    arguments: dict[str, Any] = {
        "name": "Nordhavn EPJ",
        "organization_identifier": identifier,
        "jwks": BackendKey.generate().public_jwks(),
        "scope": "system/*.cruds",
        **given,
    }
    with database.session(write=True) as session:
        return register_backend_client(session, config, **arguments)


def _organizations(client: TestClient, identifier: str) -> list[dict[str, Any]]:
    response = client.get("/fhir/Organization", params={"identifier": identifier})
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def test_a_backend_client_is_bound_to_a_new_organization(
    database: Database, config: FhirConfig, client: TestClient
) -> None:
    registration = _register(
        database, config, f"{SOR}|555000111", organization_name="Hospital Nord"
    )

    assert registration.organization_created
    [organization] = _organizations(client, f"{SOR}|555000111")
    assert organization["id"] == registration.client.organization_id
    assert organization["name"] == "Hospital Nord"
    assert organization["identifier"] == [{"system": SOR, "value": "555000111"}]
    with database.session(write=False) as session:
        stored = ClientStore(session).get(registration.client.client_id)
    assert stored is not None
    assert stored.kind is ClientKind.backend and not stored.demo
    assert stored.organization_identifier == f"{SOR}|555000111"
    assert stored.jwks is not None and "d" not in stored.jwks["keys"][0]


def test_an_existing_organization_is_found_by_identifier(
    database: Database, config: FhirConfig, client: TestClient
) -> None:
    # Commas and bars in a value are escaped in the condition, not read as OR or system.
    identifier = f"{SOR}|A,B|C"
    existing = client.post(
        "/fhir/Organization",
        json={
            "resourceType": "Organization",
            "identifier": [{"system": SOR, "value": "A,B|C"}],
            "name": "Already here",
        },
    )
    assert existing.status_code == 201, existing.text

    first = _register(database, config, identifier)
    second = _register(database, config, identifier, name="Second system")

    assert not first.organization_created and not second.organization_created
    assert first.client.organization_id == second.client.organization_id == existing.json()["id"]
    assert len(_organizations(client, identifier.replace(",", "\\,"))) == 1


def test_a_refused_registration_leaves_nothing_behind(
    database: Database, config: FhirConfig, client: TestClient
) -> None:
    _register(database, config, f"{SOR}|776", client_id="nordhavn-epj")
    with database.session(write=False) as session:
        before = ClientStore(session).list()

    with pytest.raises(RegistrationError, match="not a system/ scope"):
        _register(database, config, f"{SOR}|777", scope="patient/*.read")
    with pytest.raises(RegistrationError, match="registered already"):
        _register(database, config, f"{SOR}|778", client_id="nordhavn-epj")

    assert _organizations(client, f"{SOR}|777") == []
    assert _organizations(client, f"{SOR}|778") == []
    with database.session(write=False) as session:
        assert ClientStore(session).list() == before


def test_apps_are_confidential_with_a_secret_or_public_without(
    database: Database, types: ResourceTypes
) -> None:
    with database.session(write=True) as session:
        confidential, secret = register_app(
            session, types, name="Chart", redirect_uris=["https://chart.example/cb"], public=False
        )
        public, no_secret = register_app(
            session, types, name="Pocket", redirect_uris=["http://localhost/cb"], public=True
        )
    with database.session(write=False) as session:
        store = ClientStore(session)
        assert secret is not None and store.secret_matches(confidential.client_id, secret)
        assert not store.secret_matches(confidential.client_id, secret + "x")
    assert confidential.confidential and confidential.scope == DEFAULT_APP_SCOPE
    assert no_secret is None and not public.confidential
    assert public.kind is ClientKind.app and public.redirect_uris == ("http://localhost/cb",)


def test_generated_client_ids_never_read_as_command_line_options() -> None:
    # `health clients remove <id>`: an id starting with "-" would be taken for an option.
    client_ids = {new_client_id() for _ in range(2000)}

    assert len(client_ids) == 2000
    assert not [client_id for client_id in client_ids if client_id.startswith("-")]
