"""SMART App Launch: the authorization code grant (PKCE S256), refresh tokens, ID tokens.

https://hl7.org/fhir/smart-app-launch/app-launch.html. Authlib's grant types, told
where codes and refresh tokens live (health/auth/store.py) and what SMART adds to an
authorize request (`aud`, `state`). A code stands for a grant the user approved on the
approval page (health/auth/routes.py); every token issued for it names that grant.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, TokenMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oidc.core import OpenIDCode

from health.auth.authlib_starlette import StoredCode, oauth_text
from health.auth.grants import Grant
from health.settings import Settings

if TYPE_CHECKING:
    from health.auth.server import SmartClient, SmartRequest, SmartServer

APP_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
ID_TOKEN_LIFETIME_SECONDS = 600
# The widest nonce auth_authorization_code.nonce holds.
_MAX_NONCE = 512


class LaunchRules:
    """What SMART requires of an authorize request beyond OAuth: `aud`, `state`, `scope`.

    https://hl7.org/fhir/smart-app-launch/app-launch.html#request-4. Registered as an
    extension of the code grant; its errors go back to the app's (verified) redirect URI.
    """

    def __init__(self, settings: Settings) -> None:
        self.audience = settings.fhir_base_url

    def __call__(self, grant: CodeGrant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.validate)

    def validate(self, grant: CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("state"):
            raise InvalidRequestError("Missing 'state': SMART apps must send one.")
        # The app names the FHIR server it means, so that a token for this server is
        # never obtained by an app that thinks it is talking to another.
        if data.get("aud", "").rstrip("/") != self.audience:
            raise InvalidRequestError(
                oauth_text(f"'aud' must be this FHIR server's base URL, {self.audience}.")
            )
        if "launch" in data:
            raise InvalidRequestError(
                "EHR launch is not offered here (no 'launch' parameter): use standalone launch."
            )
        if not data.get("scope"):
            raise InvalidScopeError("Missing 'scope': name what the app needs.")
        if len(data.get("nonce", "")) > _MAX_NONCE:
            raise InvalidRequestError(f"'nonce' is longer than {_MAX_NONCE} characters.")


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """authorization_code: confidential apps authenticate with their secret, public ones
    with PKCE alone; PKCE (S256) is required of both (RequiredS256)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = APP_AUTH_METHODS
    server: SmartServer
    request: SmartRequest

    def save_authorization_code(self, code: str, request: SmartRequest) -> None:
        grant: Grant = request.user
        data = request.payload.data
        self.server.store.save_code(
            code,
            grant_id=grant.id,
            redirect_uri=data["redirect_uri"],
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            nonce=data.get("nonce"),
        )

    def query_authorization_code(self, code: str, client: SmartClient) -> StoredCode | None:
        issued = self.server.store.claim_code(code, client.client_id)
        return StoredCode(issued) if issued else None

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Nothing to do: query_authorization_code used the code up already."""

    def authenticate_user(self, authorization_code: StoredCode) -> Grant | None:
        return self.server.grants.active(
            authorization_code.issued.grant_id, self.request.client.client_id
        )


class StoredRefreshToken(TokenMixin):  # type: ignore[misc]
    """A refresh token, already used up: it stands for its grant."""

    def __init__(self, grant: Grant) -> None:
        self.grant = grant

    def check_client(self, client: SmartClient) -> bool:
        return client.client_id == self.grant.client_id

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    """refresh_token, rotating: every use gives a new refresh token and spends the old one.

    A spent one presented again revokes the grant (AuthorizationStore.claim_refresh_token).
    A narrower `scope` may be asked for; the grant keeps what the user approved.
    """

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = APP_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: SmartServer
    request: SmartRequest

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        client_id = self.request.client.client_id
        grant_id = self.server.store.claim_refresh_token(refresh_token, client_id)
        grant = self.server.grants.active(grant_id, client_id) if grant_id else None
        return StoredRefreshToken(grant) if grant else None

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> Grant:
        return refresh_token.grant

    def revoke_old_credential(self, refresh_token: StoredRefreshToken) -> None:
        """Nothing to do: authenticate_refresh_token used the token up already."""


class IdToken(OpenIDCode):  # type: ignore[misc]
    """The ID token for `openid` (with `fhirUser`, the user's FHIR resource), signed with
    the authorization server's key.

    https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data
    """

    def __init__(self, server: SmartServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: SmartRequest) -> bool:
        # The app checks its nonce against the ID token; codes are single use.
        return False

    def resolve_client_private_key(self, client: SmartClient) -> Any:
        return self.server.authorization.signing_key.key

    def get_client_algorithm(self, client: SmartClient) -> str:
        return self.server.authorization.signing_key.algorithm

    def get_encode_header(self, client: SmartClient) -> dict[str, str]:
        key = self.server.authorization.signing_key
        return {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: SmartClient) -> dict[str, Any]:
        return {
            "iss": self.server.settings.auth_issuer,
            "aud": client.get_client_id(),
            "exp": int(time.time()) + ID_TOKEN_LIFETIME_SECONDS,
        }

    def generate_user_info(self, user: Grant, scope: str) -> dict[str, Any]:
        # `sub` is the user's FHIR resource: stable for the person, and never their
        # national ID.
        claims: dict[str, Any] = {"sub": user.fhir_user or user.id}
        if "fhirUser" in scope.split() and user.fhir_user:
            claims["fhirUser"] = f"{self.server.settings.fhir_base_url}/{user.fhir_user}"
        return claims
