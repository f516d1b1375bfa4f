"""Registering clients: what `health clients add` and `health apps add` check and store.

What an operator hands over (a backend client's JWKS and scopes, an app's redirect URIs
and scopes) is checked here, with errors that say what is wrong and where, before the
client is stored (`health.auth.clients`). A backend client acts for one Organization:
found by identifier or created, through the FHIR interactions (a conditional create),
so it is an ordinary FHIR resource that the client's own pushes can refer to.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.orm import Session

from health.auth.clients import ClientStore, RegisteredClient
from health.auth.scopes import Context, Permission, ScopeError, Scopes, parse_clinical
from health.db.repository import Repository
from health.fhir.config import FhirConfig
from health.fhir.errors import FhirError
from health.fhir.interactions import Interactions
from health.fhir.resource_types import ResourceTypes
from health.fhir.search.values import escape
from health.fhir.validation import check

# https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys:
# servers SHALL support RS384 and ES384, so a key must be usable with one of them.
BACKEND_ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}
EC_CURVE = "P-384"
MIN_RSA_BITS = 2048
# https://www.rfc-editor.org/rfc/rfc7518#section-6: the private members of each key type.
_PRIVATE_MEMBERS = {"RSA": ("d", "p", "q", "dp", "dq", "qi", "oth"), "EC": ("d",)}
# What `health apps add` grants without --scope: a user's own record or, for a
# clinician, what they may see; read and search only.
DEFAULT_APP_SCOPE = "openid fhirUser launch/patient offline_access patient/*.rs user/*.rs"
# Column widths of auth_client (migration 0005).
MAX_NAME_LENGTH = 256
MAX_CLIENT_ID_LENGTH = 64
MAX_ORGANIZATION_IDENTIFIER_LENGTH = 512
_LOOPBACK_HOSTS = ("localhost",)
# What an auditor's client may be granted: the access log, read and searched.
AUDITOR_SCOPE_TYPE = "AuditEvent"


class RegistrationError(ValueError):
    """What a registration was given is not acceptable; the message says what and where."""


@dataclass(frozen=True)
class OrganizationIdentifier:
    """`SYSTEM|VALUE`: the identifier a backend client's Organization is found by."""

    system: str
    value: str

    @classmethod
    def parse(cls, text: str) -> OrganizationIdentifier:
        system, separator, value = text.strip().partition("|")
        if not separator or not system or not value:
            raise RegistrationError(
                f"--organization-identifier {text!r} must be SYSTEM|VALUE, e.g. "
                "'urn:oid:1.2.208.176.1.1|123456789012345' (a SOR code)"
            )
        if not urlsplit(system).scheme:
            raise RegistrationError(
                f"--organization-identifier: the system {system!r} must be an absolute URI "
                "(urn:oid:..., https://...)"
            )
        if len(text) > MAX_ORGANIZATION_IDENTIFIER_LENGTH:
            raise RegistrationError(
                f"--organization-identifier is longer than {MAX_ORGANIZATION_IDENTIFIER_LENGTH}"
                " characters"
            )
        return cls(system=system, value=value)

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"

    def condition(self) -> str:
        """The conditional-create criteria that find the Organization with this identifier."""
        return urlencode({"identifier": f"{escape(self.system)}|{escape(self.value)}"})


@dataclass(frozen=True)
class BackendRegistration:
    client: RegisteredClient
    organization_created: bool

    def as_json(self) -> dict[str, Any]:
        """What `health clients add` prints: the client, never its keys."""
        return {
            "client_id": self.client.client_id,
            "name": self.client.name,
            "organization_id": self.client.organization_id,
            "organization_identifier": self.client.organization_identifier,
            "organization_created": self.organization_created,
            "scope": self.client.scope,
            "auditor": self.client.auditor,
        }


# Checks


def backend_jwks(document: Any) -> dict[str, Any]:
    """A backend client's JWK Set, checked: public RS384/ES384-capable keys, each with a kid.

    A key with private members is refused rather than stripped: whoever holds that file
    has been careless with the private key, and should hear so.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise RegistrationError('The JWKS must be a JSON object {"keys": [...]} (a JWK Set)')
    keys = document["keys"]
    if not keys:
        raise RegistrationError("The JWKS holds no keys")
    kids: set[str] = set()
    for number, key in enumerate(keys):
        where = f"keys[{number}]"
        _check_public_key(key, where)
        if key["kid"] in kids:
            raise RegistrationError(f"{where}: the kid {key['kid']!r} is used twice")
        kids.add(key["kid"])
    return {"keys": [dict(key) for key in keys]}


def _check_public_key(key: Any, where: str) -> None:
    if not isinstance(key, Mapping):
        raise RegistrationError(f"{where} is not a JSON object (a JWK)")
    key_type = key.get("kty")
    if key_type == "oct":
        raise RegistrationError(
            f"{where} is a shared secret (kty 'oct'); backend clients register public keys"
        )
    if key_type not in BACKEND_ALGORITHMS:
        raise RegistrationError(
            f"{where}: kty {key_type!r} cannot sign RS384 or ES384; use an RSA key of "
            f"{MIN_RSA_BITS}+ bits or an EC key on {EC_CURVE}"
        )
    private = [member for member in _PRIVATE_MEMBERS[key_type] if member in key]
    if private:
        raise RegistrationError(
            f"{where} contains private key material ({', '.join(private)}): register the "
            "public key only, and keep the private key with the client"
        )
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        raise RegistrationError(
            f"{where} has no kid: SMART clients name their signing key in the assertion's "
            "header, so every key needs one"
        )
    algorithm = BACKEND_ALGORITHMS[key_type]
    if "alg" in key and key["alg"] != algorithm:
        raise RegistrationError(
            f"{where}: alg {key['alg']!r} is not {algorithm} (what a {key_type} key must sign "
            "with here)"
        )
    if "use" in key and key["use"] != "sig":
        raise RegistrationError(f"{where}: use {key['use']!r} must be 'sig'")
    if "key_ops" in key and "verify" not in (key["key_ops"] or []):
        raise RegistrationError(f"{where}: key_ops {key['key_ops']!r} must include 'verify'")
    if key_type == "EC" and key.get("crv") != EC_CURVE:
        raise RegistrationError(
            f"{where}: the curve {key.get('crv')!r} is not {EC_CURVE} (ES384 signs on {EC_CURVE})"
        )
    if key_type == "RSA":
        bits = _modulus_bits(key.get("n"))
        if bits is None:
            raise RegistrationError(f"{where} is not a valid RSA public key (n is unreadable)")
        if bits < MIN_RSA_BITS:
            raise RegistrationError(
                f"{where}: the RSA key has {bits} bits; RS384 needs at least {MIN_RSA_BITS}"
            )
    try:
        (RSAKey if key_type == "RSA" else ECKey).import_key(dict(key))
    except (JoseError, ValueError, TypeError) as error:
        raise RegistrationError(f"{where} is not a valid {key_type} public key ({error})") from None


def _modulus_bits(modulus: Any) -> int | None:
    """The bits of an RSA modulus `n` (base64url, RFC 7518 section 6.3.1.1), if readable.

    Measured before the key is imported, which would warn about a small key, not refuse it.
    """
    if not isinstance(modulus, str):
        return None
    try:
        padded = modulus + "=" * (-len(modulus) % 4)
        bits = int.from_bytes(base64.b64decode(padded, altchars=b"-_", validate=True)).bit_length()
    except ValueError:
        return None
    return bits or None


def backend_scope(scope: str, types: ResourceTypes) -> str:
    """A backend client's scopes, checked: `system/` scopes on types this server serves."""
    scopes = _parsed(scope)
    for granted in scopes.granted:
        clinical = parse_clinical(granted)
        if clinical is None or clinical.context is not Context.system:
            raise RegistrationError(
                f"--scope: {granted!r} is not a system/ scope; backend clients act for "
                "their organisation, with scopes such as system/*.cruds or system/Patient.rs"
            )
        _check_type(clinical.resource_type, granted, types)
    return str(scopes)


def app_scope(scope: str, types: ResourceTypes) -> str:
    """An app's scopes, checked: SMART scopes of a user (`patient/`, `user/`), never `system/`."""
    scopes = _parsed(scope)
    for granted in scopes.granted:
        clinical = parse_clinical(granted)
        if clinical is None:
            continue
        if clinical.context is Context.system:
            raise RegistrationError(
                f"--scope: {granted!r} is a system/ scope; apps act for a user, with patient/ "
                "or user/ scopes (system/ scopes belong to backend clients: health clients add)"
            )
        _check_type(clinical.resource_type, granted, types)
    return str(scopes)


def _parsed(scope: str) -> Scopes:
    try:
        scopes = Scopes.parse(scope)
    except ScopeError as error:
        raise RegistrationError(f"--scope: {error}") from None
    if not scopes.granted:
        raise RegistrationError("--scope is empty")
    return scopes


def _check_type(resource_type: str, scope: str, types: ResourceTypes) -> None:
    if resource_type != "*" and resource_type not in types:
        raise RegistrationError(
            f"--scope: {scope!r} names {resource_type}, which is not a resource type this "
            "server serves"
        )


def app_redirect_uris(uris: Iterable[str]) -> list[str]:
    """An app's redirect URIs, checked (https://www.rfc-editor.org/rfc/rfc6749#section-3.1.2).

    Absolute, without a fragment; plain http only to the loopback interface (RFC 8252
    section 7.3), since a code sent in the clear can be taken. Private-use schemes
    (`com.example.app:/callback`, RFC 8252 section 7.1) are for native apps.
    """
    checked = list(dict.fromkeys(uri.strip() for uri in uris))
    if not checked:
        raise RegistrationError("An app needs at least one --redirect-uri")
    for uri in checked:
        parts = urlsplit(uri)
        if not parts.scheme or not (parts.netloc or parts.path):
            raise RegistrationError(f"--redirect-uri {uri!r} is not an absolute URI")
        if parts.fragment or uri.endswith("#"):
            raise RegistrationError(f"--redirect-uri {uri!r} must not have a fragment (#...)")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise RegistrationError(
                f"--redirect-uri {uri!r}: plain http is only allowed to localhost or a "
                "loopback address; use https"
            )
        if parts.scheme == "https" and not parts.hostname:
            raise RegistrationError(f"--redirect-uri {uri!r} has no host")
    return checked


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise RegistrationError("--name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise RegistrationError(f"--name is longer than {MAX_NAME_LENGTH} characters")
    return name


# Registration


def organization_for(
    interactions: Interactions, identifier: OrganizationIdentifier, name: str
) -> tuple[str, bool]:
    """The id of the Organization with `identifier`, created (named `name`) if there is none;
    and whether it was created. https://hl7.org/fhir/R4/http.html#ccreate"""
    organization = {
        "resourceType": "Organization",
        "identifier": [{"system": identifier.system, "value": identifier.value}],
        "active": True,
        "name": name,
    }
    try:
        checked = check(organization, "Organization", interactions.config.types)
        result = interactions.create(checked, if_none_exist=identifier.condition())
        interactions.flush()
    except FhirError as error:
        raise RegistrationError(f"Organization with identifier {identifier}: {error}") from None
    assert result.version is not None
    return result.version.id, result.status == 201


def register_backend_client(
    session: Session,
    config: FhirConfig,
    *,
    name: str,
    organization_identifier: str,
    jwks: Any,
    scope: str,
    organization_name: str | None = None,
    client_id: str | None = None,
    demo: bool = False,
    auditor: bool = False,
) -> BackendRegistration:
    """Check and store a backend client, bound to its Organization (found or created).

    Everything happens in `session`'s transaction: an error leaves neither the client
    nor a new Organization behind.
    """
    name = client_name(name)
    identifier = OrganizationIdentifier.parse(organization_identifier)
    checked_jwks = backend_jwks(jwks)
    checked_scope = backend_scope(scope, config.types)
    if auditor:
        _check_auditor_scope(checked_scope)
    clients = ClientStore(session)
    if client_id is not None:
        if not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH:
            raise RegistrationError(f"A client_id has 1 to {MAX_CLIENT_ID_LENGTH} characters")
        if clients.get(client_id) is not None:
            raise RegistrationError(f"A client {client_id!r} is registered already")
    # Registering a hospital's system is an administrator's act: it may find or create
    # any Organization, so it runs with system privilege.
    interactions = Interactions(Repository.system(session), config)
    organization_id, created = organization_for(
        interactions, identifier, client_name(organization_name or name)
    )
    client = clients.register_backend(
        name=name,
        scope=checked_scope,
        jwks=checked_jwks,
        organization_id=organization_id,
        organization_identifier=str(identifier),
        client_id=client_id,
        demo=demo,
        auditor=auditor,
    )
    return BackendRegistration(client=client, organization_created=created)


def _check_auditor_scope(scope: str) -> None:
    """An auditor reads the access log, never the record: AuditEvent read and search only."""
    for granted in Scopes.parse(scope).clinical:
        if granted.resource_type != AUDITOR_SCOPE_TYPE or granted.permissions - {
            Permission.read,
            Permission.search,
        }:
            raise RegistrationError(
                f"--scope: an auditor's client reads the access log only; "
                f"give it system/{AUDITOR_SCOPE_TYPE}.rs"
            )


def register_app(
    session: Session,
    types: ResourceTypes,
    *,
    name: str,
    redirect_uris: Iterable[str],
    public: bool,
    scope: str = DEFAULT_APP_SCOPE,
) -> tuple[RegisteredClient, str | None]:
    """Check and store a SMART app; its secret too when confidential (shown only now)."""
    return ClientStore(session).register_app(
        name=client_name(name),
        scope=app_scope(scope, types),
        redirect_uris=app_redirect_uris(redirect_uris),
        confidential=not public,
    )
