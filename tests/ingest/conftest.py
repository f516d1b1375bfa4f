"""Pushing as hospitals and GPs: backend clients of two organisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


class Source:
    """A hospital or GP system: a backend client acting for one Organization."""

    def __init__(self, client: TestClient, token: str, organization_id: str) -> None:
        self.client = client
        self.headers = {**FHIR_JSON, "Authorization": f"Bearer {token}"}
        self.organization_id = organization_id

    @property
    def uri(self) -> str:
        return f"http://testserver/fhir/Organization/{self.organization_id}"

    def push(self, bundle: dict[str, Any] | bytes) -> httpx.Response:
        if isinstance(bundle, bytes):
            return self.client.post("/fhir", content=bundle, headers=self.headers)
        return self.client.post("/fhir", json=bundle, headers=self.headers)

    def pushed(self, bundle: dict[str, Any] | bytes) -> dict[str, Any]:
        response = self.push(bundle)
        assert response.status_code == 200, response.text[:2000]
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def sources(anonymous_client: TestClient, issue_token: Callable[..., str]) -> dict[str, Source]:
    """Two sources: the hospital Rigshospitalet and the GP practice Lægerne i Byen."""
    made = {}
    for name in ("hospital", "gp"):
        token = issue_token(
            scope="system/*.cruds",
            actor_kind="client",
            client_id=f"{name}-client",
            organization_id=f"{name}-organization",
        )
        made[name] = Source(anonymous_client, token, f"{name}-organization")
    return made
