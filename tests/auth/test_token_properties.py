"""Any client assertion and any bearer token is answered with a refusal that says so,
never a 500: the token endpoint and the bearer check are the parts of the server that
anyone on the network reaches before being known.

Assertions are drawn with claims and headers of every JSON type (and NaN, huge numbers,
nested values), signed with the client's registered key or carrying a signature that
is not one, or are not JWTs at all. Bearer tokens are drawn the same way.
https://hl7.org/fhir/smart-app-launch/backend-services.html, RFC 7523, RFC 6750.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from tests.auth.conftest import TOKEN_URL

# tests/auth/conftest.py
Smart = Any
BackendClient = Any

CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id"]
HEADERS = ["alg", "kid", "typ", "jku", "x5u", "crit", "b64"]
ALGORITHMS = ["RS384", "ES384", "RS256", "HS256", "none", "None", "", "RS384 ", "PS384"]

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
        st.sampled_from(["", " ", "\x00", TOKEN_URL, "a" * 5000]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
claim_changes = st.dictionaries(
    st.one_of(st.sampled_from(CLAIMS), st.text(max_size=8)), json_values, max_size=4
)
header_changes = st.dictionaries(
    st.sampled_from(HEADERS), st.one_of(st.sampled_from(ALGORITHMS), json_values), max_size=3
)
PROPERTIES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
garbage = st.one_of(
    st.text(max_size=200),
    st.lists(st.binary(max_size=60), min_size=1, max_size=5).map(
        lambda parts: ".".join(base64.urlsafe_b64encode(p).decode().rstrip("=") for p in parts)
    ),
)


def _segment(value: Any) -> str:
    # json, not orjson: it writes NaN, Infinity and integers past 64 bits, as a hostile
    # client's encoder may.
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token(key: RSAKey, header: dict[str, Any], claims: dict[str, Any], *, signed: bool) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    if signed:
        private = key.private_key
        assert private is not None
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA384())
    else:
        signature = b"not a signature"
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


@pytest.fixture
def hospital(smart: Smart) -> BackendClient:
    key = RSAKey.generate_key(2048, auto_kid=True)
    return smart.register_backend("system/*.rs", [key])


def _assertion(
    hospital: BackendClient, header: dict[str, Any], changes: dict[str, Any], signed: bool
) -> str:
    key = hospital.keys[0]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": hospital.client_id,
        "sub": hospital.client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "iat": now,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(changes)
    header = {"alg": "RS384", "kid": key.kid, "typ": "JWT", **header}
    return _token(key, header, claims, signed=signed)


def _token_request(hospital: BackendClient, assertion: str) -> Any:
    return hospital.browser.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def _refused_as_oauth(answer: Any) -> None:
    assert answer.status_code in (400, 401), answer.text
    assert "access_token" not in answer.text
    assert isinstance(answer.json().get("error"), str)


def test_the_assertions_drawn_unchanged_get_a_token(hospital: BackendClient) -> None:
    # So that the property below reaches past the signature check.
    answer = _token_request(hospital, _assertion(hospital, {}, {}, signed=True))
    assert answer.status_code == 200, answer.text
    assert _token_request(hospital, _assertion(hospital, {}, {}, signed=False)).status_code == 401


@PROPERTIES
@given(
    header=header_changes,
    changes=claim_changes,
    signed=st.booleans(),
    raw=st.one_of(st.none(), garbage),
)
def test_any_client_assertion_gets_a_token_or_an_oauth_error(
    hospital: BackendClient,
    header: dict[str, Any],
    changes: dict[str, Any],
    signed: bool,
    raw: str | None,
) -> None:
    assertion = raw if raw is not None else _assertion(hospital, header, changes, signed)
    answer = _token_request(hospital, assertion)
    if answer.status_code == 200:
        # Only a signed assertion with the registered key can get a token, and only
        # with claims that still say who it is from and for.
        assert raw is None and signed, (header, changes)
        return
    _refused_as_oauth(answer)


@PROPERTIES
@given(
    header=header_changes,
    changes=claim_changes,
    raw=st.one_of(st.none(), garbage),
    scheme=st.sampled_from(["Bearer", "bearer", "Basic", ""]),
)
def test_any_bearer_token_that_is_not_the_servers_is_refused_with_an_outcome(
    smart: Smart,
    hospital: BackendClient,
    header: dict[str, Any],
    changes: dict[str, Any],
    raw: str | None,
    scheme: str,
) -> None:
    # Signed by a client's key, not the server's: never a valid access token.
    token = raw if raw is not None else _assertion(hospital, header, changes, signed=True)
    value = f"{scheme} {token}".strip()
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        return  # not sendable as an HTTP header
    answer = smart.browser().get(
        "/fhir/Patient",
        headers={"Authorization": value, "Accept": "application/fhir+json"},
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
