"""SMART Backend Services: client_credentials with a signed client assertion.

https://hl7.org/fhir/smart-app-launch/backend-services.html and RFC 7523
(https://datatracker.ietf.org/doc/html/rfc7523#section-3). A hospital or GP system
authenticates with a JWT signed by its private key (RS384 or ES384), checked against
the JWKS registered for it: `iss` = `sub` = its client_id, `aud` = the token endpoint,
`exp` at most five minutes ahead, a `jti` never seen before. Each token gets a grant of
its own, so that revoking it, or removing the client, ends it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from health.access.actor import ActorKind
from health.auth.authlib_starlette import oauth_text
from health.auth.scopes import Context, ScopeError, Scopes, parse_clinical
from health.auth.tokens import CLOCK_LEEWAY_SECONDS, MALFORMED_JWT

if TYPE_CHECKING:
    from health.auth.server import SmartClient, SmartRequest, SmartServer

# https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html
PRIVATE_KEY_JWT = "private_key_jwt"
# The signing algorithms SMART requires servers to support, and the only ones taken:
# never `none`, never an HMAC (which a JWKS of public keys cannot key safely).
ASSERTION_ALGORITHMS = ("RS384", "ES384")
# "exp ... no more than five minutes in the future" (SMART Backend Services).
MAX_ASSERTION_LIFETIME_SECONDS = 300
# auth_client_assertion.jti holds this many characters.
_MAX_JTI = 256


class BackendAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt client authentication, for backend clients only."""

    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, server: SmartServer) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_LEEWAY_SECONDS)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.authorization.token_endpoint]

    def resolve_client_public_key(self, client: SmartClient) -> KeySet:
        jwks = client.registered.jwks
        if not client.is_backend or not jwks or not jwks.get("keys"):
            raise InvalidClientError(description="This client has no registered public keys.")
        try:
            return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise InvalidClientError(
                description="This client's registered keys cannot be read."
            ) from None

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """The assertion's claims, once its signature (RS384 or ES384 only) and claims hold."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except MALFORMED_JWT as error:
            reason = getattr(error, "description", None) or type(error).__name__
            raise InvalidClientError(
                description=oauth_text(
                    f"The client assertion's signature could not be verified with a registered "
                    f"key and RS384 or ES384 ({reason})."
                )
            ) from None
        self.verify_claims(token.claims)
        return dict(token.claims)

    def verify_claims(self, claims: dict[str, Any]) -> None:
        exp = claims.get("exp")
        limit = time.time() + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_LEEWAY_SECONDS
        if isinstance(exp, int | float) and exp > limit:
            raise InvalidClientError(
                description="The client assertion's exp is more than five minutes ahead."
            )
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
            raise InvalidClientError(
                description=f"The client assertion's jti must be 1 to {_MAX_JTI} characters."
            )
        # Remembered until the assertion could no longer pass the exp check anyway.
        forget_at = datetime.fromtimestamp(float(claims["exp"]) + CLOCK_LEEWAY_SECONDS, UTC)
        return self.server.store.record_assertion(str(claims["sub"]), jti, forget_at)


class BackendGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """client_credentials for backend clients: `system/` scopes within the registration."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [PRIVATE_KEY_JWT]
    server: SmartServer
    request: SmartRequest

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: SmartClient = self.request.client
        requested = _requested_scopes(self.request.payload.scope)
        registered = Scopes.parse(client.registered.scope)
        covered = set(requested.within(registered).granted)
        beyond = [scope for scope in requested.granted if scope not in covered]
        if beyond:
            raise InvalidScopeError(
                oauth_text(f"Beyond this client's registration: {' '.join(beyond)}")
            )
        self.request.scope = str(requested)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: SmartClient = self.request.client
        scope: str = self.request.scope
        tokens = self.server.authorization.access_tokens
        # An auditor's client reads the access log only (health/audit/routes.py).
        kind = ActorKind.auditor if client.registered.auditor else ActorKind.client
        grant = self.server.grants.create(
            client_id=client.client_id,
            scope=scope,
            actor_kind=kind.value,
            lifetime=timedelta(seconds=tokens.lifetime_seconds),
        )
        self.request.user = grant
        token = self.generate_token(user=grant, scope=scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _requested_scopes(scope: str | None) -> Scopes:
    """The `system/` scopes asked for; InvalidScopeError for anything else."""
    if not scope:
        raise InvalidRequestError("Missing 'scope': name the system/ scopes the client needs.")
    try:
        requested = Scopes.parse(scope)
    except ScopeError as error:
        raise InvalidScopeError(oauth_text(str(error))) from None
    for name in requested.granted:
        clinical = parse_clinical(name)
        if clinical is None or clinical.context is not Context.system:
            raise InvalidScopeError(
                oauth_text(f"{name}: backend services are granted system/ scopes only")
            )
    return requested
