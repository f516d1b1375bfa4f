"""All configuration, read once from HEALTH_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from health import PROJECT_ROOT
from health.db.engine import READ_POOL, WRITE_POOL

# The highest max_json_depth a deployment may set.
MAX_JSON_DEPTH = 128


class Environment(StrEnum):
    development = "development"
    production = "production"


def default_database_url() -> str:
    """The embedded default: a SQLite file in the local data folder."""
    return f"sqlite:///{PROJECT_ROOT / 'data' / 'health.db'}"


class EidClient(BaseModel):
    """A relying party registered with the development eID (OpenID Connect client)."""

    client_id: str
    # None: a public client, which authenticates with PKCE alone (token_endpoint_auth_method
    # "none"); otherwise client_secret_basic or client_secret_post.
    client_secret: str | None = None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = []


PORTAL_CLIENT_ID = "health-portal"
# Defaults that only development may run with: production refuses them.
DEVELOPMENT_SESSION_SECRET = "development-session-secret"
DEVELOPMENT_AUDIT_KEY = "development-audit-key"
AssuranceLevel = Literal["low", "substantial", "high"]


class Settings(BaseSettings):
    """Every setting the application reads; injected, never imported as a global."""

    model_config = SettingsConfigDict(env_prefix="HEALTH_", extra="ignore")

    env: Environment = Environment.development
    database_url: str = Field(default_factory=default_database_url)
    # PostgreSQL connections each worker keeps open, for writes and for reads (health/db/
    # engine.py); each pool may open twice as many more under load. A worker can then
    # hold 3 x (write + read) connections: PostgreSQL's max_connections must cover that
    # times the workers of every server. SQLite ignores both.
    database_write_pool: int = Field(default=WRITE_POOL, ge=1)
    database_read_pool: int = Field(default=READ_POOL, ge=1)
    # The public base of the FHIR API as clients reach it; absolute URLs in Bundles,
    # Location headers and paging links are built on it.
    base_url: str = "http://localhost:8000"
    conformance_dir: Path = PROJECT_ROOT / "fhir"
    # Request bodies above this size are refused with 413 before they are parsed.
    max_body_bytes: int = 32 * 1024 * 1024
    # JSON nested deeper than this is refused: no FHIR resource needs it, and
    # recursive processing of hostile input must stay bounded. The walks over a
    # resource (the nesting check, validation, references) recurse once per level and
    # orjson writes at most 255 levels, so the limit stays well inside both.
    max_json_depth: int = Field(default=64, ge=1, le=MAX_JSON_DEPTH)
    max_bundle_entries: int = 20_000
    default_page_size: int = 50
    max_page_size: int = 1000
    sql_echo: bool = False
    # The development eID (health/eid/), the stand-in for MitID/DigiD: an OpenID Connect
    # provider at <base>/eid. HEALTH_ENV=production refuses to start while it is on.
    dev_eid: bool = True
    # The ID token and userinfo claim that carries the national person number (CPR in
    # Denmark, BSN in the Netherlands); "dk:cpr" by default.
    eid_national_id_claim: str = "dk:cpr"
    # PEM private key (EC P-256 for ES256, or RSA for RS256) that signs the development
    # eID's ID tokens. Unset: one is generated once and kept beside the SQLite file.
    eid_signing_key_file: Path | None = None
    # Keys the pairwise subject identifiers: `sub` = HMAC(secret, client_id + national ID).
    eid_subject_secret: str = "development-eid-subject-secret"
    # The portal's client (health-portal) at the development eID.
    eid_portal_client_secret: str = "development-portal-secret"
    # Further relying parties, as JSON in HEALTH_EID_CLIENTS (a list of EidClient); one
    # with client_id "health-portal" replaces the portal's default registration.
    eid_clients: list[EidClient] = []

    # The eID as this app's portal and authorization server see it: an OpenID Connect
    # provider reached over HTTP through its discovery document. Unset: the development
    # eID at <base>/eid. In production, point these at the national eID broker.
    eid_issuer: str | None = None
    eid_client_id: str = PORTAL_CLIENT_ID
    eid_client_secret: str | None = None
    # The lowest eIDAS level of assurance a login may have: low, substantial or high.
    # Health data requires "substantial" in the EU.
    eid_min_acr: AssuranceLevel = "substantial"

    # The portal's session cookie: signed with session_secret; ended after this much
    # inactivity, and in any case this long after login.
    session_secret: str = DEVELOPMENT_SESSION_SECRET
    session_idle_minutes: int = 15
    session_absolute_hours: int = 8

    # The authorization server (SMART App Launch and Backend Services) at <base>/auth.
    # PEM private key (EC P-256 for ES256, or RSA for RS256) that signs access tokens.
    # Unset: one is generated once and kept beside the SQLite file (development only).
    auth_signing_key_file: Path | None = None
    access_token_minutes: int = 5
    # Refresh tokens (offline_access) rotate on every use; the grant behind them ends
    # this long after the login that created it.
    refresh_grant_days: int = 30
    # The identifier systems that carry a national person number, on Patient and
    # Practitioner: Danish CPR, Dutch BSN, and the US SSN of the Synthea test data.
    national_id_systems: list[str] = [
        "urn:oid:1.2.208.176.1.2",
        "http://fhir.nl/fhir/NamingSystem/bsn",
        "http://hl7.org/fhir/sid/us-ssn",
    ]

    # Who may read a citizen's record (health/access/): "opt-out" (Denmark): clinicians
    # of an organisation that treats the citizen, unless the citizen blocked them;
    # "opt-in" (the Netherlands): only organisations the citizen permitted, too.
    access_policy: Literal["opt-out", "opt-in"] = "opt-out"
    # A treatment relationship (an encounter, episode of care, care team or referral)
    # counts for this long after it ended.
    treatment_window_days: int = 365
    # How long a clinician's emergency access ("break the glass") lasts.
    break_glass_hours: float = 2.0
    # A parent acts for a child younger than this (Denmark 15, the Netherlands 12).
    proxy_child_age: int = 15

    # Keys the access log's hash chain (HMAC-SHA256, health/audit/): without it nobody
    # can rewrite a row and its successors unnoticed. Changing it makes every row
    # written before fail `health audit verify`.
    audit_key: str = DEVELOPMENT_AUDIT_KEY

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def fhir_base_url(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def dev_eid_issuer(self) -> str:
        """The development eID's own issuer URL (it is served at <base>/eid)."""
        return f"{self.base_url}/eid"

    @property
    def eid_provider_issuer(self) -> str:
        """The issuer the portal and the authorization server log citizens in with."""
        return (self.eid_issuer or self.dev_eid_issuer).rstrip("/")

    @property
    def eid_portal_secret(self) -> str | None:
        """This app's client secret at the eID (the development eID's portal secret by default)."""
        if self.eid_client_secret is not None:
            return self.eid_client_secret
        return self.eid_portal_client_secret if self.eid_issuer is None else None

    @property
    def auth_issuer(self) -> str:
        """The authorization server's issuer: the `iss` of every access token."""
        return f"{self.base_url}/auth"

    @property
    def auth_signing_key_path(self) -> Path:
        if self.auth_signing_key_file is not None:
            return self.auth_signing_key_file
        return self._local_data_folder() / "auth-signing-key.pem"

    @property
    def eid_signing_key_path(self) -> Path:
        """The configured key file, or one in the local data folder (beside SQLite's file)."""
        if self.eid_signing_key_file is not None:
            return self.eid_signing_key_file
        return self._local_data_folder() / "eid-signing-key.pem"

    def _local_data_folder(self) -> Path:
        """Where generated development keys live: beside the SQLite file, or ./data."""
        database = make_url(self.database_url).database if self.is_sqlite else None
        folder = Path(database).parent if database and database != ":memory:" else None
        return folder or PROJECT_ROOT / "data"

    @property
    def eid_relying_parties(self) -> dict[str, EidClient]:
        """Every registered relying party by client_id: the portal's, then HEALTH_EID_CLIENTS."""
        portal = EidClient(
            client_id=PORTAL_CLIENT_ID,
            client_secret=self.eid_portal_client_secret,
            redirect_uris=[f"{self.base_url}/portal/callback", f"{self.base_url}/auth/callback"],
            post_logout_redirect_uris=[f"{self.base_url}/portal/"],
        )
        return {client.client_id: client for client in (portal, *self.eid_clients)}
