"""Table definitions. Only health.db.repository (and migrations) may import this module.

https://hl7.org/fhir/R4/http.html#versioning: every write makes a new version; the
`resource` table holds the current one, `resource_version` every version ever written.
Every row carries the id of the patient whose compartment it belongs to, set at write
time, so that access checks never chase references and the data can later be
distributed by patient.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from health.db.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# FHIR ids are at most 64 characters: https://hl7.org/fhir/R4/datatypes.html#id
ID_LENGTH = 64
TYPE_LENGTH = 64
# An auto-incrementing 64-bit key on PostgreSQL; SQLite only auto-increments INTEGER.
SEQUENCE_KEY = BigInteger().with_variant(Integer(), "sqlite")
# A party in the access rules: `Organization/<id>`, `Practitioner/<id>`, `Patient/<id>`.
PARTY_LENGTH = TYPE_LENGTH + 1 + ID_LENGTH

resource = Table(
    "resource",
    metadata,
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("id", String(ID_LENGTH), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("patient_id", String(ID_LENGTH), nullable=True),
    # Who wrote this version (health/access/recorder.py): `Organization/x` for a
    # hospital's or GP's push, `Practitioner/x` for a clinician's app, `Patient/x` for a
    # citizen's own entries; null for the system (seeding, maintenance).
    Column("recorded_by", String(PARTY_LENGTH), nullable=True),
    # The JSON as received plus the server's id and meta, serialised once at write time.
    Column("body", LargeBinary, nullable=True),
    PrimaryKeyConstraint("resource_type", "id"),
    # A patient's resources of a type, in id order: a page of a patient-scoped search
    # continues from its keyset here (docs/BENCHMARKS.md, "Search", finding 7).
    Index("ix_resource_patient", "patient_id", "resource_type", "id"),
    Index("ix_resource_type_updated", "resource_type", "last_updated"),
    # What a hospital's client may read back: what its organisation recorded.
    Index("ix_resource_recorded_by", "recorded_by", "patient_id"),
)

resource_version = Table(
    "resource_version",
    metadata,
    # Global write order: history is listed newest first by it, and its pages are
    # stable while new versions arrive.
    Column("seq", SEQUENCE_KEY, primary_key=True, autoincrement=True),
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("id", String(ID_LENGTH), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("method", String(8), nullable=False),
    Column("patient_id", String(ID_LENGTH), nullable=True),
    Column("recorded_by", String(PARTY_LENGTH), nullable=True),
    Column("body", LargeBinary, nullable=True),
    UniqueConstraint("resource_type", "id", "version_id"),
    Index("ix_resource_version_updated", "last_updated"),
    Index("ix_resource_version_type_seq", "resource_type", "seq"),
)

# Search index: values extracted at write time from every search parameter of the
# resource's type (fhir/search-parameters.json), one table per parameter type
# (https://hl7.org/fhir/R4/search.html#ptypes). Each row names the resource it indexes
# and carries the patient id of its compartment, like every row.


def _index_table(
    name: str,
    *columns: Column[Any],
    indexes: tuple[Index, ...] = (),
    patient_values: tuple[str, ...] = (),
) -> Table:
    return Table(
        name,
        metadata,
        Column("resource_type", String(TYPE_LENGTH), nullable=False),
        Column("resource_id", String(ID_LENGTH), nullable=False),
        Column("patient_id", String(ID_LENGTH), nullable=True),
        # The resource's recorder, like its patient id: the caller's scope filters
        # index rows exactly as it filters their resources.
        Column("recorded_by", String(PARTY_LENGTH), nullable=True),
        Column("param", String(64), nullable=False),
        *columns,
        Index(f"ix_{name}_owner", "resource_type", "resource_id"),
        # Patient-scoped searches (health/fhir/search/scope.py) read one patient's rows.
        Index(f"ix_{name}_patient", "patient_id", "resource_type", "param", *patient_values),
        *indexes,
    )


# token: Coding/CodeableConcept/Identifier/ContactPoint/code/boolean. `text` holds the
# display or text, normalised, for :text. Identifier types for :of-type are rows of
# the parameter "identifier:of-type" with system "type-system|type-code".
search_token = _index_table(
    "search_token",
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Column("text", String(512), nullable=True),
    # resource_id last: the matches of one `system|code` come in id order, so a page of
    # them is read from the index alone (health/db/search_sql.py). The patient index
    # then needs the code and system too, or SQLite would prefer this one for a
    # patient's codes and read the code's rows of every patient.
    indexes=(
        Index("ix_search_token_lookup", "resource_type", "param", "code", "system", "resource_id"),
    ),
    patient_values=("code", "system"),
)

# string: `value` normalised (case-folded, accents removed) for the default and
# :contains matches, `exact` as written for :exact.
search_string = _index_table(
    "search_string",
    # Compared in code point order (PostgreSQL's "C" collation; SQLite's BINARY is
    # that already), so that a prefix is a range of the lookup index: search_filters.py.
    Column(
        "value", String(512).with_variant(String(512, collation="C"), "postgresql"), nullable=False
    ),
    Column("exact", String(512), nullable=False),
    indexes=(Index("ix_search_string_lookup", "resource_type", "param", "value"),),
)

# date: every date, dateTime, instant, Period or Timing as the range [low, high) it
# covers (a day, a month, a Period; open ends are the far past or future).
search_date = _index_table(
    "search_date",
    Column("low", UTCDateTime(), nullable=False),
    Column("high", UTCDateTime(), nullable=False),
    indexes=(Index("ix_search_date_lookup", "resource_type", "param", "low", "high"),),
    # A patient's dates in order, so that `date=lt...` of a patient is a range of the
    # patient index: with the lookup index in the only order, SQLite (no statistics)
    # read the dates of every patient before the bound (28 ms instead of 1 ms for one
    # patient's lab results in 2015-2019 at 1,000 patients: docs/BENCHMARKS.md).
    patient_values=("low", "high"),
)

# reference: a local reference as (target_type, target_id); any other (absolute URL to
# another server, canonical) in `url`.
search_reference = _index_table(
    "search_reference",
    Column("target_type", String(TYPE_LENGTH), nullable=True),
    Column("target_id", String(ID_LENGTH), nullable=True),
    Column("url", String(1024), nullable=True),
    indexes=(
        Index("ix_search_reference_lookup", "resource_type", "param", "target_id"),
        Index("ix_search_reference_target", "target_type", "target_id"),
    ),
)

search_quantity = _index_table(
    "search_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Column("unit", String(512), nullable=True),
    indexes=(Index("ix_search_quantity_lookup", "resource_type", "param", "code", "value"),),
)

search_number = _index_table(
    "search_number",
    Column("value", Float, nullable=False),
    indexes=(Index("ix_search_number_lookup", "resource_type", "param", "value"),),
)

search_uri = _index_table(
    "search_uri",
    Column("value", String(1024), nullable=False),
    indexes=(Index("ix_search_uri_lookup", "resource_type", "param", "value"),),
)

INDEX_TABLES = {
    "token": search_token,
    "string": search_string,
    "date": search_date,
    "reference": search_reference,
    "quantity": search_quantity,
    "number": search_number,
    "uri": search_uri,
}

# Conditional create (If-None-Exist) claims its criteria here before inserting: the
# primary key makes two concurrent identical conditional creates collide in the
# database instead of both passing a check-then-insert.
conditional_claim = Table(
    "conditional_claim",
    metadata,
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("criteria_hash", String(64), nullable=False),
    Column("resource_id", String(ID_LENGTH), nullable=False),
    PrimaryKeyConstraint("resource_type", "criteria_hash"),
)

# The access decision's facts, derived at write time by the repository from what is
# written (health/access/): which parties treat which citizen, and the citizen's
# consent compiled to rows. Like the index, they are rewritten with every version.

# A treatment relationship: an Encounter, EpisodeOfCare, CareTeam or referral
# (ServiceRequest) recorded by an organisation (or the system) that names a party.
care_relationship = Table(
    "care_relationship",
    metadata,
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("resource_id", String(ID_LENGTH), nullable=False),
    Column("patient_id", String(ID_LENGTH), nullable=False),
    Column("party", String(PARTY_LENGTH), nullable=False),
    # The period the resource covers; until null: open (ongoing).
    Column("since", UTCDateTime(), nullable=True),
    Column("until", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("resource_type", "resource_id", "party"),
    Index("ix_care_relationship_party", "party", "patient_id", "until"),
)

# One row per (provision, party, class, label or target) of a citizen's active Consent
# (health/access/consent.py). party null: everyone; resource_class null: every type;
# label null: every resource; target: the Encounter or EpisodeOfCare the citizen hides.
consent_rule = Table(
    "consent_rule",
    metadata,
    Column("consent_id", String(ID_LENGTH), nullable=False),
    Column("rule", Integer, nullable=False),
    Column("patient_id", String(ID_LENGTH), nullable=False),
    Column("effect", String(8), nullable=False),
    Column("party", String(PARTY_LENGTH), nullable=True),
    Column("resource_class", String(TYPE_LENGTH), nullable=True),
    Column("label_system", String(512), nullable=True),
    Column("label_code", String(128), nullable=True),
    Column("target_type", String(TYPE_LENGTH), nullable=True),
    Column("target_id", String(ID_LENGTH), nullable=True),
    Column("since", UTCDateTime(), nullable=True),
    Column("until", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("consent_id", "rule"),
    Index("ix_consent_rule_patient", "patient_id", "effect"),
    Index("ix_consent_rule_party", "party", "effect"),
)

# Emergency access ("break the glass"): a clinician's time-limited access to one
# citizen's record, given a reason. Never deleted: the auditor's report reads it.
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("practitioner", String(PARTY_LENGTH), nullable=False),
    Column("organization", String(PARTY_LENGTH), nullable=True),
    Column("client_id", String(128), nullable=True),
    Column("patient_id", String(ID_LENGTH), nullable=False),
    Column("reason", Text, nullable=False),
    Column("started", UTCDateTime(), nullable=False),
    Column("expires", UTCDateTime(), nullable=False),
    Index("ix_break_glass_practitioner", "practitioner", "patient_id", "expires"),
    Index("ix_break_glass_patient", "patient_id", "started"),
    Index("ix_break_glass_started", "started"),
)

# The access log (health/audit/): append-only, each row's hash chained to the one
# before it (HMAC under the audit key), `seq` gap-free. audit_head holds the last
# row's seq and hash; writers take its row lock, which orders the chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("recorded", UTCDateTime(), nullable=False),
    # read, vread, history, search, everything, create, update, delete, login, logout,
    # consent, break-glass, proxy.
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    # treatment, emergency, self, proxy, operations, audit.
    Column("purpose", String(16), nullable=False),
    Column("agent_kind", String(16), nullable=False),
    Column("agent", String(PARTY_LENGTH), nullable=True),
    Column("agent_name", String(256), nullable=True),
    Column("organization", String(PARTY_LENGTH), nullable=True),
    Column("client_id", String(128), nullable=True),
    # A proxy's principal: the citizen the agent acts for.
    Column("on_behalf_of", String(PARTY_LENGTH), nullable=True),
    # The citizen whose record this concerns.
    Column("patient_id", String(ID_LENGTH), nullable=True),
    # JSON array of `Type/id` disclosed (or refused, or changed).
    Column("entities", Text, nullable=False),
    Column("detail", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_patient", "patient_id", "seq"),
    Index("ix_audit_log_recorded", "recorded"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# The development eID's own state (health/eid/store.py): logins in progress, authorization
# codes and access tokens. Not patient data: no patient_id, and the repository never
# touches them. Codes and tokens are stored as SHA-256 hashes, never as issued.
EID_CLIENT_ID_LENGTH = 128


def _eid_person_columns() -> tuple[Column[Any], ...]:
    """Who logged in, how and when: what the ID token and userinfo will say."""
    return (
        Column("client_id", String(EID_CLIENT_ID_LENGTH), nullable=False),
        Column("scope", String(512), nullable=False),
        Column("national_id", String(32), nullable=False),
        Column("name", String(256), nullable=False),
        Column("birth_date", String(10), nullable=True),
        Column("acr", String(128), nullable=False),
        Column("auth_time", UTCDateTime(), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
    )


eid_login_request = Table(
    "eid_login_request",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("csrf_token", String(64), nullable=False),
    # The browser that started the login (a cookie): the form must come back from it.
    Column("browser_id", String(64), nullable=False),
    # The validated authorization request's parameters, as JSON.
    Column("parameters", Text, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_eid_login_request_expires_at", "expires_at"),
)

eid_authorization_code = Table(
    "eid_authorization_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("redirect_uri", String(1024), nullable=False),
    Column("nonce", String(512), nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    *_eid_person_columns(),
    Index("ix_eid_authorization_code_expires_at", "expires_at"),
)

eid_access_token = Table(
    "eid_access_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    *_eid_person_columns(),
    Index("ix_eid_access_token_expires_at", "expires_at"),
    Index("ix_eid_access_token_client", "client_id", "national_id"),
)


# The authorization server (health/auth/): registered clients, the grants users gave
# them, and the short-lived state of logins in progress. Secrets are stored as SHA-256
# hashes, never in the clear.
AUTH_CLIENT_ID_LENGTH = 64

auth_client = Table(
    "auth_client",
    metadata,
    Column("client_id", String(AUTH_CLIENT_ID_LENGTH), primary_key=True),
    # "backend" (SMART Backend Services: a hospital or GP system) or "app" (SMART App
    # Launch: an app a clinician or citizen logs in to).
    Column("kind", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    # The scopes the client may be granted, space-separated.
    Column("scope", Text, nullable=False),
    # Backend clients: the Organization they act for, and their public keys (a JWKS).
    Column("organization_id", String(ID_LENGTH), nullable=True),
    Column("organization_identifier", String(512), nullable=True),
    Column("jwks", Text, nullable=True),
    # Apps: where the authorization response may go (a JSON list), and the hash of the
    # secret of a confidential app (None: a public app, PKCE alone).
    Column("redirect_uris", Text, nullable=True),
    Column("secret_hash", String(64), nullable=True),
    # Registered by the demo world with a key that ships in the repository: production
    # refuses to start while one exists.
    Column("demo", Boolean, nullable=False, default=False),
    # A backend client of an auditor (a supervisory authority, a data protection
    # officer): it reads the access log as FHIR AuditEvent, and no patient data.
    Column("auditor", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

auth_grant = Table(
    "auth_grant",
    metadata,
    # One user's authorization of one app (or one backend client's token), which every
    # access and refresh token issued under it names; revoking it ends them all.
    Column("id", String(64), primary_key=True),
    Column("client_id", String(AUTH_CLIENT_ID_LENGTH), nullable=False),
    Column("scope", Text, nullable=False),
    # "citizen" or "clinician" (apps), "client" (backend services).
    Column("actor_kind", String(16), nullable=False),
    Column("national_id", String(32), nullable=True),
    Column("fhir_user", String(160), nullable=True),
    Column("patient_id", String(ID_LENGTH), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_auth_grant_client_id", "client_id"),
    Index("ix_auth_grant_expires_at", "expires_at"),
)

auth_refresh_token = Table(
    "auth_refresh_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # Set when it is exchanged: refresh tokens rotate, and a used one presented again
    # means it was stolen, so the whole grant is revoked.
    Column("used_at", UTCDateTime(), nullable=True),
    Index("ix_auth_refresh_token_grant_id", "grant_id"),
)

auth_authorization_code = Table(
    "auth_authorization_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False),
    Column("redirect_uri", String(1024), nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    Column("nonce", String(512), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    # Set when the code is exchanged; the row stays until it expires, so that a second
    # exchange is recognised and revokes the grant (RFC 6749 section 4.1.2).
    Column("used_at", UTCDateTime(), nullable=True),
    Index("ix_auth_authorization_code_expires_at", "expires_at"),
)

auth_authorization_request = Table(
    "auth_authorization_request",
    metadata,
    # A SMART authorize request between its arrival and the user's approval: the
    # validated parameters, and after the eID login, who the user is.
    Column("id", String(64), primary_key=True),
    Column("browser_id", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("identity", Text, nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_auth_authorization_request_expires_at", "expires_at"),
)

auth_client_assertion = Table(
    "auth_client_assertion",
    metadata,
    # The `jti` of every client assertion accepted, until it expires: the primary key
    # refuses a replay even from two processes at once (RFC 7523 section 3).
    Column("client_id", String(AUTH_CLIENT_ID_LENGTH), nullable=False),
    Column("jti", String(256), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("client_id", "jti"),
    Index("ix_auth_client_assertion_expires_at", "expires_at"),
)

oidc_login = Table(
    "oidc_login",
    metadata,
    # A login at the eID in progress (this app as OpenID Connect client): what the
    # callback must check (state, nonce, PKCE verifier) and what it continues.
    Column("state", String(64), primary_key=True),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("browser_id", String(64), nullable=False),
    # "portal" or "smart", and where to continue: a portal path or an authorize request.
    Column("purpose", String(16), nullable=False),
    Column("continue_to", String(1024), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_oidc_login_expires_at", "expires_at"),
)

portal_session = Table(
    "portal_session",
    metadata,
    # A citizen logged in to the portal; the cookie holds the id, the table its hash.
    Column("id_hash", String(64), primary_key=True),
    Column("national_id", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("birth_date", String(10), nullable=True),
    Column("acr", String(128), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    # The eID's ID token, sent back as id_token_hint when the citizen logs out.
    Column("id_token", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_portal_session_expires_at", "expires_at"),
)

import_file = Table(
    "import_file",
    metadata,
    # A file `health import` loaded as a source, by the SHA-256 of its content:
    # importing it again as that source skips it, so an interrupted import resumes.
    Column("content_hash", String(64), nullable=False),
    Column("organization_id", String(ID_LENGTH), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("rejected_entries", Integer, nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("content_hash", "organization_id"),
)
