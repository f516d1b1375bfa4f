"""The benchmarks' credentials: a backend client of the database under test, and its tokens.

Every /fhir request but the CapabilityStatement needs a bearer token, so the benchmarks
authenticate as a hospital system would (SMART Backend Services). `register_client`
makes an EC P-384 key in a folder and registers its public half with
`health clients add` on the benchmark's database, as an operator would, for the
Organization of one source (the ingest benchmark registers one per source). `BearerTokens`
(an httpx.Auth, shared by the client threads) trades a signed client assertion for an
access token at the token endpoint the server announces, over HTTP, and fetches the
next one shortly before the current one expires, and once more if a request is
answered 401. Token requests are rare (one per token lifetime, minutes) and happen
outside the measured requests but for the one that finds the token about to expire.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx

from health.auth.backend_client import BackendKey, request_token, token_endpoint

# The Organization the benchmark client acts for (found or created on registration).
BENCH_ORGANIZATION = "https://bench.health.example/organizations|benchmark"
SCOPE = "system/*.cruds"
# Fetch a new token this long before the current one expires.
RENEW_BEFORE_EXPIRY_S = 60.0
TOKEN_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
REGISTER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Credentials:
    """A registered backend client and its private key."""

    client_id: str
    key: BackendKey


def source_organization(number: int) -> str:
    """The Organization (SYSTEM|VALUE) of the benchmark's source `number` (from 0).

    The first is the one a single-source run has always used; each further source is a
    hospital or GP of its own.
    """
    return BENCH_ORGANIZATION if number == 0 else f"{BENCH_ORGANIZATION}-{number + 1}"


def register_client(
    executable: Path, database_url: str, folder: Path, *, source: int = 0
) -> Credentials:
    """A new key (written to `folder`) registered with `health clients add` on the database,
    for the Organization of source `source` (source_organization)."""
    key = BackendKey.generate()
    key_file = folder / f"bench-client-{source}.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_pem())
    jwks_file = folder / f"bench-client-{source}.jwks.json"
    jwks_file.write_text(json.dumps(key.public_jwks()))
    command = [
        str(executable),
        "clients",
        "add",
        "--name",
        "Benchmark client" if source == 0 else f"Benchmark client {source + 1}",
        "--organization-identifier",
        source_organization(source),
        "--jwks-file",
        str(jwks_file),
        "--scope",
        SCOPE,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "HEALTH_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=REGISTER_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"health clients add failed ({result.returncode}): {result.stderr}")
    return Credentials(client_id=json.loads(result.stdout)["client_id"], key=key)


class BearerTokens(httpx.Auth):
    """Bearer tokens for one backend client, fetched and renewed by the real flow."""

    def __init__(self, base_url: str, credentials: Credentials, scope: str = SCOPE) -> None:
        self._fhir_base_url = f"{base_url}/fhir"
        self._credentials = credentials
        self._scope = scope
        self._lock = threading.Lock()
        self._endpoint: str | None = None
        self._token: str | None = None
        self._renew_at = 0.0
        # How many tokens were fetched (one, plus one per renewal).
        self.issued = 0

    def token(self, *, refused: str | None = None) -> str:
        """The current token; a new one when it is about to expire or was `refused`."""
        with self._lock:
            stale = self._token is None or time.monotonic() >= self._renew_at
            if stale or (refused is not None and refused == self._token):
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        with httpx.Client(timeout=TOKEN_TIMEOUT) as http:
            if self._endpoint is None:
                self._endpoint = token_endpoint(http, self._fhir_base_url)
            issued = request_token(
                http,
                self._endpoint,
                self._credentials.client_id,
                self._credentials.key,
                scope=self._scope,
            )
        lifetime = float(issued.expires_in)
        self._renew_at = time.monotonic() + max(lifetime - RENEW_BEFORE_EXPIRY_S, lifetime / 2)
        self._token = issued.access_token
        self.issued += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Expired early (a clock step) or revoked: once more with a new token.
            request.headers["Authorization"] = f"Bearer {self.token(refused=token)}"
            yield request
