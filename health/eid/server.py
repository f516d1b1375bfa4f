"""The development eID's OpenID Connect provider, built on Authlib's authorization server.

Authlib ships server integrations for Flask and Django only; this module is the thin
Starlette one: requests in (EidRequest), responses out (handle_response). The grant
logic (code flow, PKCE, client authentication, ID tokens, RP-initiated logout) is
Authlib's. https://openid.net/specs/openid-connect-core-1_0.html
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oidc.core import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from fastapi.responses import Response
from joserfc.jwk import KeySet

from health.auth.authlib_starlette import (
    ParameterRequest,
    QuotingAuthorizationServer,
    RequiredS256,
    StoredCode,
    oauth_response,
)
from health.auth.keys import SigningKey
from health.eid.store import (
    ACCESS_TOKEN_LIFETIME,
    Authentication,
    EidStore,
    IssuedCode,
    IssuedToken,
)
from health.settings import EidClient, Settings

# eIDAS levels of assurance as `acr` values: the URIs of the eIDAS SAML attribute
# profile (http://eidas.europa.eu/LoA/...), which MitID and DigiD also use.
ACR_VALUES = {
    "low": "http://eidas.europa.eu/LoA/low",
    "substantial": "http://eidas.europa.eu/LoA/substantial",
    "high": "http://eidas.europa.eu/LoA/high",
}
SCOPES = ("openid", "profile")
ID_TOKEN_LIFETIME_SECONDS = 600


class EidRequest(ParameterRequest):
    """One request to the eID, carrying the store of its database transaction."""

    def __init__(
        self,
        method: str,
        headers: Any,
        items: list[tuple[str, str]],
        store: EidStore,
        form: dict[str, str] | None = None,
    ) -> None:
        # No real URL: see REQUEST_URI (the development eID never runs in production).
        super().__init__(method, headers, items, form)
        self.store = store


class RelyingParty(ClientMixin):  # type: ignore[misc]
    """A registered client of the eID, from the settings."""

    def __init__(self, registration: EidClient) -> None:
        self.registration = registration
        self.client_id = registration.client_id
        self.client_metadata = {
            "post_logout_redirect_uris": registration.post_logout_redirect_uris,
            "token_endpoint_auth_method": self.auth_methods[0],
        }

    @property
    def auth_methods(self) -> tuple[str, ...]:
        if self.registration.client_secret is None:
            return ("none",)
        return ("client_secret_basic", "client_secret_post")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # OpenID Connect requires redirect_uri in every authentication request.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison: https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest
        return redirect_uri in self.registration.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.registration.client_secret
        return expected is not None and hmac.compare_digest(
            expected.encode(), client_secret.encode()
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class Subject:
    """The logged-in person as one relying party sees them: a pairwise `sub`."""

    sub: str
    authentication: Authentication


class EidCode(StoredCode):
    """A code of the eID: it also knows when and how the person logged in."""

    def get_auth_time(self) -> int:
        return int(self.issued.authentication.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.issued.authentication.acr


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]

    def save_authorization_code(self, code: str, request: EidRequest) -> None:
        data = request.payload.data
        request.store.save_code(
            code,
            IssuedCode(
                client_id=request.client.get_client_id(),
                redirect_uri=data["redirect_uri"],
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                authentication=request.user,
            ),
        )

    def query_authorization_code(self, code: str, client: RelyingParty) -> EidCode | None:
        issued = self.request.store.claim_code(code, client.get_client_id())
        return EidCode(issued) if issued else None

    def delete_authorization_code(self, authorization_code: EidCode) -> None:
        """Nothing to do: query_authorization_code consumed the code already."""

    def authenticate_user(self, authorization_code: EidCode) -> Subject:
        issued = authorization_code.issued
        sub = self.server.pairwise_sub(issued.client_id, issued.authentication.national_id)
        return Subject(sub, issued.authentication)


class IdToken(OpenIDCode):  # type: ignore[misc]
    """The ID token of the code flow, signed with the eID's key."""

    def __init__(self, server: EidServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: EidRequest) -> bool:
        # The relying party checks its nonce against the ID token; codes are single use.
        return False

    def resolve_client_private_key(self, client: RelyingParty) -> Any:
        return self.server.signing_key.key

    def get_client_algorithm(self, client: RelyingParty) -> str:
        return self.server.signing_key.algorithm

    def get_encode_header(self, client: RelyingParty) -> dict[str, str]:
        return {"alg": self.server.signing_key.algorithm, "kid": self.server.signing_key.kid}

    def get_client_claims(self, client: RelyingParty) -> dict[str, Any]:
        return {
            "iss": self.server.settings.dev_eid_issuer,
            "aud": client.get_client_id(),
            "exp": int(time.time()) + ID_TOKEN_LIFETIME_SECONDS,
        }

    def generate_user_info(self, user: Subject, scope: str) -> dict[str, Any]:
        return self.server.person_claims(user)


class Logout(EndSessionEndpoint):  # type: ignore[misc]
    """RP-initiated logout: the relying party's access tokens for that person end."""

    def __init__(self, server: EidServer) -> None:
        super().__init__(server)

    def get_server_jwks(self) -> KeySet:
        return self.server.signing_key.key_set()

    def get_algorithms(self) -> list[str]:
        return [self.server.signing_key.algorithm]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        claims = end_session_request.id_token_claims or {}
        national_id = claims.get(self.server.settings.eid_national_id_claim)
        if end_session_request.client is not None and national_id:
            request: EidRequest = end_session_request.request
            request.store.revoke_tokens(end_session_request.client.get_client_id(), national_id)


class EidServer(QuotingAuthorizationServer):
    """The authorization server of one app: its relying parties and its signing key."""

    def __init__(self, settings: Settings, signing_key: SigningKey) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.settings = settings
        self.signing_key = signing_key
        self.relying_parties = {
            client_id: RelyingParty(registration)
            for client_id, registration in settings.eid_relying_parties.items()
        }
        self.register_grant(CodeGrant, [RequiredS256(required=True), IdToken(self)])
        self.register_endpoint(Logout(self))
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: secrets.token_urlsafe(32),
                expires_generator=lambda client, grant_type: int(
                    ACCESS_TOKEN_LIFETIME.total_seconds()
                ),
            ),
        )

    def query_client(self, client_id: str) -> RelyingParty | None:
        return self.relying_parties.get(client_id)

    def save_token(self, token: dict[str, Any], request: EidRequest) -> None:
        subject: Subject = request.user
        request.store.save_token(
            token["access_token"],
            IssuedToken(
                request.client.get_client_id(), token.get("scope", ""), subject.authentication
            ),
            token["expires_in"],
        )

    def create_oauth2_request(self, request: EidRequest) -> EidRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return oauth_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners: the development eID keeps no audit of its own."""

    def pairwise_sub(self, client_id: str, national_id: str) -> str:
        """`sub` for this client: HMAC(secret, client_id, national ID), never the ID itself.

        https://openid.net/specs/openid-connect-core-1_0.html#PairwiseAlg
        """
        message = f"{client_id}\n{national_id}".encode()
        digest = hmac.new(
            self.settings.eid_subject_secret.encode(), message, hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def person_claims(self, subject: Subject) -> dict[str, Any]:
        """The claims about the person, in the ID token and from userinfo."""
        person = subject.authentication
        claims: dict[str, Any] = {
            "sub": subject.sub,
            "name": person.name,
            self.settings.eid_national_id_claim: person.national_id,
        }
        if person.birth_date:
            claims["birthdate"] = person.birth_date
        return claims
