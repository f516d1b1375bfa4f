"""Access tokens: signed JWTs (RFC 9068) that the authorization server issues and /fhir checks.

Every token names its issuer (<base>/auth), its audience (the FHIR base URL), an expiry
minutes away, the client, the grant it was issued under (revoking the grant ends it)
and the caller's launch context (SMART `patient`, `fhirUser`; the Organization of a
backend client). National ID numbers never go in a token: they sit in the grant.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from health.auth.keys import SigningKey
from health.settings import Settings

# https://datatracker.ietf.org/doc/html/rfc9068#section-2.1: the JOSE `typ` of an access
# token, so that an ID token or a client assertion can never pass for one.
ACCESS_TOKEN_TYPE = "at+jwt"
# Clocks of the app processes may differ by a little; not by more.
CLOCK_LEEWAY_SECONDS = 30
# Tokens whose signature and type were checked, kept per process (least recently used
# dropped first): checking the signature cost 0.4 ms of every request, and a client
# sends the same token for its whole lifetime (docs/BENCHMARKS.md, "The fixed cost of
# a search"). The claims are still checked against the clock on every use.
VERIFIED_TOKENS_KEPT = 4096
# What joserfc raises on a token that is not a well-formed JWS, besides its own errors:
# a header member of the wrong JSON type (`"crit": null`) fails inside its checks.
MALFORMED_JWT = (JoseError, ValueError, TypeError, KeyError, AttributeError)


class InvalidToken(Exception):
    """A bearer token that is not one of ours, or no longer valid; the message says why."""


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int
    claims: dict[str, Any]


@dataclass(frozen=True)
class TokenContext:
    """Who a token is for and what it permits: the claims beyond the registered ones."""

    client_id: str
    actor_kind: str  # citizen, clinician, client or auditor (health.access.actor.ActorKind)
    scope: str
    grant_id: str
    patient_id: str | None = None
    fhir_user: str | None = None
    organization_id: str | None = None


class AccessTokens:
    """Issues and verifies this server's access tokens with its signing key."""

    def __init__(self, settings: Settings, signing_key: SigningKey) -> None:
        self.issuer = settings.auth_issuer
        self.audience = settings.fhir_base_url
        self.lifetime_seconds = settings.access_token_minutes * 60
        self._key = signing_key
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def issue(self, context: TokenContext, *, now: int | None = None) -> IssuedAccessToken:
        issued_at = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": context.fhir_user or context.client_id,
            "client_id": context.client_id,
            "iat": issued_at,
            "exp": issued_at + self.lifetime_seconds,
            "jti": secrets.token_urlsafe(16),
            "scope": context.scope,
            "grant": context.grant_id,
            "kind": context.actor_kind,
        }
        optional = {
            "patient": context.patient_id,
            "fhirUser": context.fhir_user,
            "organization": context.organization_id,
        }
        claims.update({name: value for name, value in optional.items() if value is not None})
        header = {"alg": self._key.algorithm, "kid": self._key.kid, "typ": ACCESS_TOKEN_TYPE}
        token = jwt.encode(header, claims, self._key.key, algorithms=[self._key.algorithm])
        return IssuedAccessToken(token=token, expires_in=self.lifetime_seconds, claims=claims)

    def verify(self, token: str, *, now: int | None = None) -> TokenContext:
        """The context of a valid token; InvalidToken when the signature, type, issuer,
        audience or lifetime is wrong."""
        claims = self._signed_claims(token)
        registry = JWTClaimsRegistry(
            now=now,
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
            client_id={"essential": True},
            scope={"essential": True},
            grant={"essential": True},
            kind={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            reason = error.description or error.error
            raise InvalidToken(f"The access token is not valid here: {reason}") from None
        return TokenContext(
            client_id=str(claims["client_id"]),
            actor_kind=str(claims["kind"]),
            scope=str(claims["scope"]),
            grant_id=str(claims["grant"]),
            patient_id=_optional_string(claims, "patient"),
            fhir_user=_optional_string(claims, "fhirUser"),
            organization_id=_optional_string(claims, "organization"),
        )

    def _signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token signed by our key as an access token, not yet checked
        against the clock or this server; InvalidToken otherwise.

        What this checks depends on the token's bytes and the key alone, so a token
        that passed once is looked up instead of checked again (VERIFIED_TOKENS_KEPT).
        """
        with self._verified_lock:
            claims = self._verified.get(token)
            if claims is not None:
                self._verified.move_to_end(token)
                return claims
        try:
            decoded = jwt.decode(token, self._key.key_set(), algorithms=[self._key.algorithm])
        except MALFORMED_JWT as error:
            raise InvalidToken(
                f"The access token is malformed or its signature is invalid ({error})"
            ) from None
        if decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("The token is not an access token (typ must be at+jwt)")
        with self._verified_lock:
            self._verified[token] = decoded.claims
            while len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        return decoded.claims

    def public_jwks(self) -> dict[str, Any]:
        return self._key.public_jwks()


def _optional_string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidToken(f"The access token's {name} claim is not a string")
    return value
