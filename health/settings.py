"""All configuration, read once from HEALTH_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from health import PROJECT_ROOT


class Environment(StrEnum):
    development = "development"
    production = "production"


def default_database_url() -> str:
    """The embedded default: a SQLite file in the local data folder."""
    return f"sqlite:///{PROJECT_ROOT / 'data' / 'health.db'}"


class Settings(BaseSettings):
    """Every setting the application reads; injected, never imported as a global."""

    model_config = SettingsConfigDict(env_prefix="HEALTH_", extra="ignore")

    env: Environment = Environment.development
    database_url: str = Field(default_factory=default_database_url)
    # The public base of the FHIR API as clients reach it; absolute URLs in Bundles,
    # Location headers and paging links are built on it.
    base_url: str = "http://localhost:8000"
    conformance_dir: Path = PROJECT_ROOT / "fhir"
    # Request bodies above this size are refused with 413 before they are parsed.
    max_body_bytes: int = 32 * 1024 * 1024
    # JSON nested deeper than this is refused: no FHIR resource needs it, and
    # recursive processing of hostile input must stay bounded.
    max_json_depth: int = 64
    max_bundle_entries: int = 20_000
    default_page_size: int = 50
    max_page_size: int = 1000
    sql_echo: bool = False

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
