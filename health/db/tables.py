"""Table definitions. Only health.db.repository (and migrations) may import this module.

https://hl7.org/fhir/R4/http.html#versioning: every write makes a new version; the
`resource` table holds the current one, `resource_version` every version ever written.
Every row carries the id of the patient whose compartment it belongs to, set at write
time, so that access checks never chase references and the data can later be
distributed by patient.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
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

resource = Table(
    "resource",
    metadata,
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("id", String(ID_LENGTH), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("patient_id", String(ID_LENGTH), nullable=True),
    # The JSON as received plus the server's id and meta, serialised once at write time.
    Column("body", LargeBinary, nullable=True),
    PrimaryKeyConstraint("resource_type", "id"),
    Index("ix_resource_patient", "patient_id", "resource_type"),
    Index("ix_resource_type_updated", "resource_type", "last_updated"),
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
    Column("body", LargeBinary, nullable=True),
    UniqueConstraint("resource_type", "id", "version_id"),
    Index("ix_resource_version_updated", "last_updated"),
    Index("ix_resource_version_type_seq", "resource_type", "seq"),
)

# Token values extracted at write time (identifier for now; the generic index of every
# search parameter builds on the same shape).
search_token = Table(
    "search_token",
    metadata,
    Column("resource_type", String(TYPE_LENGTH), nullable=False),
    Column("resource_id", String(ID_LENGTH), nullable=False),
    Column("patient_id", String(ID_LENGTH), nullable=True),
    Column("param", String(64), nullable=False),
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Index("ix_search_token_lookup", "resource_type", "param", "code", "system"),
    Index("ix_search_token_owner", "resource_type", "resource_id"),
)

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
