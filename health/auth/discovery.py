"""How clients find the authorization server: SMART configuration and CapabilityStatement.

https://hl7.org/fhir/smart-app-launch/conformance.html. Only what is built is claimed.
"""

from __future__ import annotations

from typing import Any

from health.auth.backend import ASSERTION_ALGORITHMS, PRIVATE_KEY_JWT
from health.settings import Settings

# https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities
CAPABILITIES = (
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    # private_key_jwt, which SMART Backend Services clients authenticate with.
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
)
# Examples of what may be asked for: SMART scopes are a grammar (health/auth/scopes.py),
# any resource type and any of c r u d s (v2) or read/write (v1) in each context.
SCOPES_SUPPORTED = (
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.read",
    "user/*.rs",
    "user/*.cruds",
    "user/*.read",
    "user/*.write",
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
)
_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def endpoints(settings: Settings) -> dict[str, str]:
    issuer = settings.auth_issuer
    return {
        "authorize": f"{issuer}/authorize",
        "token": f"{issuer}/token",
        "revoke": f"{issuer}/revoke",
        "jwks": f"{issuer}/jwks",
    }


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """The document at /fhir/.well-known/smart-configuration."""
    urls = endpoints(settings)
    return {
        "issuer": settings.auth_issuer,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "revocation_endpoint": urls["revoke"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            PRIVATE_KEY_JWT,
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def openid_configuration(settings: Settings, id_token_algorithm: str) -> dict[str, Any]:
    """The document at /auth/.well-known/openid-configuration, for apps that log users in
    with `openid fhirUser` (SMART's sso-openid-connect): where to find the ID token's key.

    https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
    """
    urls = endpoints(settings)
    return {
        "issuer": settings.auth_issuer,
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "revocation_endpoint": urls["revoke"],
        "jwks_uri": urls["jwks"],
        "scopes_supported": ["openid", "fhirUser"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [id_token_algorithm],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "at_hash", "fhirUser"],
    }


def capability_security(settings: Settings) -> dict[str, Any]:
    """CapabilityStatement.rest.security: SMART on FHIR, and where its endpoints are.

    https://hl7.org/fhir/smart-app-launch/conformance.html#declaring-support-for-oauth2-endpoints
    """
    urls = endpoints(settings)
    return {
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": _OAUTH_URIS,
                "extension": [
                    {"url": name, "valueUri": urls[name]}
                    for name in ("authorize", "token", "revoke")
                ],
            }
        ],
    }
