"""The client side of SMART Backend Services: a signed client assertion, traded for a token.

https://hl7.org/fhir/smart-app-launch/backend-services.html: a hospital or GP system
signs a short-lived JWT (RS384 or ES384; `iss` = `sub` = its client_id, `aud` = the
token endpoint, a unique `jti`) with its private key and POSTs it to the token endpoint
with grant_type client_credentials (RFC 7523 client authentication). This is what
`health clients token`, the benchmarks and the tests do, exactly as an outside
system would: over HTTP, with no shortcut into the server.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The spec allows at most five minutes; a little less leaves room for clock drift.
ASSERTION_LIFETIME_SECONDS = 240
DEFAULT_SCOPE = "system/*.cruds"
SMART_CONFIGURATION = ".well-known/smart-configuration"


class TokenRequestError(Exception):
    """The token endpoint could not be found, or refused the request; the message says why."""


@dataclass(frozen=True)
class BackendKey:
    """A backend client's private signing key (RS384 or ES384) and its key id."""

    key: ECKey | RSAKey
    algorithm: str
    kid: str

    @classmethod
    def from_pem(cls, pem: bytes) -> BackendKey:
        """The key in a PEM file: EC P-384 (ES384) or RSA of 2048+ bits (RS384)."""
        private = load_pem_private_key(pem, password=None)
        key: ECKey | RSAKey
        if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1":
            key, algorithm = ECKey.import_key(pem), "ES384"
        elif isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
            key, algorithm = RSAKey.import_key(pem), "RS384"
        else:
            raise ValueError("A backend client's key must be EC P-384 or RSA of 2048+ bits")
        # The RFC 7638 thumbprint: what anyone holding the public key can compute too.
        return cls(key=key, algorithm=algorithm, kid=key.thumbprint())

    @classmethod
    def from_file(cls, path: Path) -> BackendKey:
        return cls.from_pem(path.read_bytes())

    @classmethod
    def generate(cls) -> BackendKey:
        """A new EC P-384 key."""
        return cls.from_pem(ECKey.generate_key("P-384").as_pem(private=True))

    def private_pem(self) -> bytes:
        return self.key.as_pem(private=True)

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to register for this key: its public half, with kid, alg and use."""
        public = self.key.as_dict(private=False)
        public.update(kid=self.kid, alg=self.algorithm, use="sig")
        return {"keys": [public]}


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def client_assertion(
    key: BackendKey, client_id: str, token_endpoint: str, *, now: int | None = None
) -> str:
    """A signed client assertion for one token request (its `jti` is never used again)."""
    issued_at = int(time.time()) if now is None else now
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(24),
    }
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key.key, algorithms=[key.algorithm])


def token_endpoint(http: httpx.Client, fhir_base_url: str) -> str:
    """The token endpoint the server announces in its SMART configuration.

    https://hl7.org/fhir/smart-app-launch/conformance.html: clients discover it at
    <FHIR base>/.well-known/smart-configuration.
    """
    url = f"{fhir_base_url.rstrip('/')}/{SMART_CONFIGURATION}"
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise TokenRequestError(f"{url} could not be reached: {error}") from None
    if response.status_code != 200:
        raise TokenRequestError(f"{url} answered {response.status_code}: {response.text[:300]}")
    endpoint = response.json().get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise TokenRequestError(f"{url} names no token_endpoint")
    return endpoint


def request_token(
    http: httpx.Client,
    endpoint: str,
    client_id: str,
    key: BackendKey,
    scope: str = DEFAULT_SCOPE,
) -> IssuedToken:
    """An access token for `client_id`, from the token endpoint, by client_credentials."""
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, client_id, endpoint),
    }
    try:
        response = http.post(endpoint, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise TokenRequestError(f"{endpoint} could not be reached: {error}") from None
    if response.status_code != 200:
        raise TokenRequestError(
            f"{endpoint} refused the token request ({response.status_code}): {response.text[:500]}"
        )
    body = response.json()
    if not isinstance(body.get("access_token"), str):
        raise TokenRequestError(f"{endpoint} answered without an access_token: {body}")
    return IssuedToken(
        access_token=body["access_token"],
        expires_in=int(body.get("expires_in", 0)),
        scope=str(body.get("scope", scope)),
    )
