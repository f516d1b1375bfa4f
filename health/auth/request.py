"""The actor behind an HTTP request to /fhir: its bearer token, verified.

Two steps. `authenticate` (a dependency of every /fhir route but the public ones) checks
the token itself: signature, type, issuer, audience, expiry. `actor_for_request` then
confirms, in the request's own database transaction, that the grant the token was
issued under is still in force, and names the caller.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.auth.grants import GrantStore
from health.auth.scopes import Context, ScopeError, Scopes
from health.auth.tokens import AccessTokens, InvalidToken, TokenContext
from health.fhir.errors import FhirError, unauthorized

# Served without a token: https://hl7.org/fhir/smart-app-launch/conformance.html and
# https://hl7.org/fhir/R4/http.html#capabilities.
PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})
# The scope contexts each kind of caller may hold.
_CONTEXTS = {
    ActorKind.citizen: {Context.patient},
    ActorKind.clinician: {Context.user},
    ActorKind.client: {Context.system},
    ActorKind.auditor: {Context.system},
}


async def authenticate(request: Request) -> None:
    """Verify the bearer token of a /fhir request; 401 without a valid one."""
    # On the event loop, not in the thread pool: a token seen before is a lookup
    # (AccessTokens.verify), cheaper than the hand-over to a thread and back.
    if request.url.path in PUBLIC_PATHS:
        return
    realm = request.app.state.settings.fhir_base_url
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("This request needs a bearer access token", realm=realm)
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(
            "The Authorization header must be 'Bearer <access token>'",
            realm=realm,
            error="invalid_request",
        )
    tokens: AccessTokens = request.app.state.access_tokens
    try:
        request.state.token = tokens.verify(token.strip())
    except InvalidToken as error:
        raise unauthorized(str(error), realm=realm, error="invalid_token") from None


def actor_for_request(request: Request, session: Session) -> Actor:
    """Who is calling, once their token's grant is confirmed in `session`."""
    context: TokenContext | None = getattr(request.state, "token", None)
    realm = request.app.state.settings.fhir_base_url
    if context is None:
        # A route that reads data without having run `authenticate` is a wiring defect;
        # refuse rather than serve.
        raise unauthorized("This request needs a bearer access token", realm=realm)
    grant = GrantStore(session).active(context.grant_id, context.client_id)
    if grant is None:
        raise unauthorized(
            "The access token was revoked, or its client is no longer registered",
            realm=realm,
            error="invalid_token",
        )
    return _actor(context, grant.national_id, realm)


def _actor(context: TokenContext, national_id: str | None, realm: str) -> Actor:
    try:
        kind = ActorKind(context.actor_kind)
        scopes = Scopes.parse(context.scope)
    except (ValueError, ScopeError):
        raise _malformed(realm) from None
    if kind is ActorKind.system or not scopes.contexts <= _CONTEXTS[kind]:
        raise _malformed(realm)
    if kind is ActorKind.citizen and context.patient_id is None:
        raise _malformed(realm)
    display = {
        ActorKind.citizen: f"citizen (Patient/{context.patient_id})",
        ActorKind.clinician: f"clinician ({context.fhir_user})",
        ActorKind.client: f"client {context.client_id} (Organization/{context.organization_id})",
        ActorKind.auditor: f"auditor {context.client_id} (Organization/{context.organization_id})",
    }[kind]
    return Actor(
        kind=kind,
        display=display,
        scopes=scopes,
        patient_id=context.patient_id,
        fhir_user=context.fhir_user,
        national_id=national_id,
        organization_id=context.organization_id,
        client_id=context.client_id,
        grant_id=context.grant_id,
    )


def _malformed(realm: str) -> FhirError:
    return unauthorized(
        "The access token's caller and scopes do not fit together",
        realm=realm,
        error="invalid_token",
    )
