"""The SMART authorization server at /auth, built on Authlib's authorization server.

https://hl7.org/fhir/smart-app-launch/ (App Launch 2.0 and Backend Services). Authlib
does the OAuth 2 work: the authorization code grant with PKCE (health/auth/code_flow.py),
refresh tokens, client credentials with private_key_jwt (health/auth/backend.py), client
authentication and revocation (RFC 7009). This module is the Starlette integration
(requests in, responses out, as for the development eID in health/eid/server.py) and the
tokens: this server's signed access tokens (health/auth/tokens.py), issued under a grant.

Unlike the development eID's, one server is made per request, bound to the request's
database transaction: Authlib asks `query_client` for clients without passing the
request, and the clients live in the database.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from fastapi.responses import Response
from sqlalchemy.orm import Session

from health.auth.authlib_starlette import (
    ParameterRequest,
    QuotingAuthorizationServer,
    RequiredS256,
    oauth_response,
    oauth_text,
)
from health.auth.backend import PRIVATE_KEY_JWT, BackendAssertion, BackendGrant
from health.auth.clients import ClientKind, ClientStore, RegisteredClient
from health.auth.code_flow import CodeGrant, IdToken, LaunchRules, RefreshGrant
from health.auth.grants import Grant, GrantStore
from health.auth.keys import SigningKey
from health.auth.launch import REFRESH_SCOPES
from health.auth.scopes import Context, ScopeError, Scopes
from health.auth.store import AuthorizationStore
from health.auth.tokens import AccessTokens, InvalidToken, TokenContext
from health.settings import Settings

APP_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
BACKEND_GRANT_TYPES = frozenset({"client_credentials"})


class SmartRequest(ParameterRequest):
    """One request to the authorization server: its method, headers and parameters."""


class SmartClient(ClientMixin):  # type: ignore[misc]
    """A registered client (health.auth.clients) as Authlib sees it."""

    def __init__(self, registered: RegisteredClient, clients: ClientStore) -> None:
        self.registered = registered
        self.client_id = registered.client_id
        self._clients = clients

    @property
    def is_backend(self) -> bool:
        return self.registered.kind is ClientKind.backend

    @property
    def auth_methods(self) -> frozenset[str]:
        if self.is_backend:
            return frozenset({PRIVATE_KEY_JWT})
        if self.registered.confidential:
            return frozenset({"client_secret_basic", "client_secret_post"})
        return frozenset({"none"})

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # SMART requires redirect_uri in every authorize request: no default.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes the app's registration covers (the rest are dropped)."""
        try:
            requested = Scopes.parse(scope or "")
            registered = Scopes.parse(self.registered.scope)
        except ScopeError as error:
            raise InvalidScopeError(oauth_text(str(error))) from None
        if Context.system in requested.contexts:
            raise InvalidScopeError(
                "system/ scopes are for backend services (client_credentials), not apps"
            )
        return str(requested.within(registered))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison: https://datatracker.ietf.org/doc/html/rfc9700#section-4.1.3
        return redirect_uri in self.registered.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.registered.confidential and self._clients.secret_matches(
            self.client_id, client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return not self.is_backend and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        allowed = BACKEND_GRANT_TYPES if self.is_backend else APP_GRANT_TYPES
        return grant_type in allowed


@dataclass(frozen=True)
class SmartAuthorization:
    """What every request's server shares: the settings, the token issuer, the key."""

    settings: Settings
    access_tokens: AccessTokens
    signing_key: SigningKey

    @property
    def token_endpoint(self) -> str:
        return f"{self.settings.auth_issuer}/token"

    def server(self, session: Session) -> SmartServer:
        return SmartServer(self, session)


class SmartServer(QuotingAuthorizationServer):
    """The authorization server for one request, in that request's transaction."""

    def __init__(self, authorization: SmartAuthorization, session: Session) -> None:
        # scopes_supported stays None: SMART scopes are a grammar, not a list, and the
        # clients check them (SmartClient.get_allowed_scope, BackendGrant).
        super().__init__(scopes_supported=None)
        self.authorization = authorization
        self.settings = authorization.settings
        self.session = session
        self.clients = ClientStore(session)
        self.grants = GrantStore(session)
        self.store = AuthorizationStore(session)
        self._known: dict[str, SmartClient | None] = {}
        self.register_grant(
            CodeGrant, [RequiredS256(required=True), LaunchRules(self.settings), IdToken(self)]
        )
        self.register_grant(RefreshGrant)
        self.register_grant(BackendGrant)
        self.register_client_auth_method(PRIVATE_KEY_JWT, BackendAssertion(self))
        self.register_endpoint(Revocation(self))
        self.register_token_generator("default", self.generate_bearer_token)

    def query_client(self, client_id: str) -> SmartClient | None:
        if client_id not in self._known:
            registered = self.clients.get(client_id)
            self._known[client_id] = SmartClient(registered, self.clients) if registered else None
        return self._known[client_id]

    def generate_bearer_token(
        self,
        grant_type: str,
        client: SmartClient,
        user: Grant,
        scope: str,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The token response: an access token under `user` (the grant), with its context.

        https://hl7.org/fhir/smart-app-launch/app-launch.html#response-5
        """
        granted = Scopes.parse(scope)
        issued = self.authorization.access_tokens.issue(
            TokenContext(
                client_id=client.client_id,
                actor_kind=user.actor_kind,
                scope=scope,
                grant_id=user.id,
                patient_id=user.patient_id,
                fhir_user=user.fhir_user,
                organization_id=client.registered.organization_id if client.is_backend else None,
            )
        )
        token: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": scope,
        }
        if "launch/patient" in granted and user.patient_id:
            token["patient"] = user.patient_id
        if "fhirUser" in granted and user.fhir_user:
            token["fhirUser"] = f"{self.settings.fhir_base_url}/{user.fhir_user}"
        # Refresh tokens only where the user granted them (SMART permission-offline and
        # permission-online), whatever the grant type would allow.
        if include_refresh_token and REFRESH_SCOPES & set(Scopes.parse(user.scope).granted):
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained; refresh tokens are kept, hashed, until used."""
        if "refresh_token" in token:
            grant: Grant = request.user
            self.store.save_refresh_token(
                token["refresh_token"], grant_id=grant.id, expires_at=grant.expires_at
            )

    def create_oauth2_request(self, request: SmartRequest) -> SmartRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return oauth_response(status, body, headers)

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Response:
        # A failed client authentication is 401 however the client tried to authenticate
        # (Authlib answers 400 unless it was HTTP Basic); RFC 6749 section 5.2 allows it.
        if isinstance(error, InvalidClientError):
            error.status_code = 401
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners yet (the access log will be one)."""


@dataclass(frozen=True)
class RevocableToken:
    """An access or refresh token presented for revocation: the grant it ends."""

    grant_id: str
    client_id: str

    def check_client(self, client: SmartClient) -> bool:
        return client.client_id == self.client_id


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoking either kind of token revokes its grant, and so every token of it.

    https://datatracker.ietf.org/doc/html/rfc7009
    """

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        PRIVATE_KEY_JWT,
    ]

    def __init__(self, server: SmartServer) -> None:
        super().__init__(server)
        self.smart = server

    def query_token(self, token_string: str, token_type_hint: str | None) -> RevocableToken | None:
        lookups = [self._refresh_token, self._access_token]
        if token_type_hint == "access_token":
            lookups.reverse()
        for lookup in lookups:
            found = lookup(token_string)
            if found is not None:
                return found
        return None

    def _refresh_token(self, token: str) -> RevocableToken | None:
        owner = self.smart.store.refresh_token_owner(token)
        return RevocableToken(*owner) if owner else None

    def _access_token(self, token: str) -> RevocableToken | None:
        try:
            context = self.smart.authorization.access_tokens.verify(token)
        except InvalidToken:
            # Expired or not ours: nothing to revoke, and RFC 7009 section 2.2 answers 200.
            return None
        return RevocableToken(context.grant_id, context.client_id)

    def revoke_token(self, token: RevocableToken, request: OAuth2Request) -> None:
        self.smart.grants.revoke(token.grant_id)
