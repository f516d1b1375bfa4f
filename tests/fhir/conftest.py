"""Fixtures for the FHIR REST suites: a small client vocabulary over the `client` fixture.

Helpers live here as a fixture (not an importable module): `tests/` has no
`__init__.py`, see DESIGN.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient

FHIR_JSON = "application/fhir+json"


def json_depth(value: Any) -> int:
    """How many objects and arrays are nested, at the deepest point."""
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


class FhirApi:
    """The calls a FHIR client developer makes, over real HTTP through the app."""

    json_headers: ClassVar[dict[str, str]] = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def create(self, resource: dict[str, Any], **headers: str) -> dict[str, Any]:
        """POST a resource, assert 201, and return the stored resource."""
        response = self.client.post(
            f"/fhir/{resource['resourceType']}",
            json=resource,
            headers={**self.json_headers, **_header_names(headers)},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def put(self, resource: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers={**self.json_headers, **_header_names(headers)},
        )

    def post_bundle(
        self, bundle: dict[str, Any], path: str = "/fhir", **headers: str
    ) -> httpx.Response:
        return self.client.post(
            path, json=bundle, headers={**self.json_headers, **_header_names(headers)}
        )

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        response = self.client.get(f"/fhir/{resource_type}/{resource_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def history(self, path: str = "/fhir/_history", **params: str) -> dict[str, Any]:
        response = self.client.get(path, params={"_count": "1000", **params})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def stored_version_count(self) -> int:
        """How many versions the server holds in all: 0 means nothing was ever written."""
        return len(self.history().get("entry", []))

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/fhir/{resource_type}", params=params)
        assert response.status_code == 200, response.text
        return [entry["resource"] for entry in response.json().get("entry", [])]

    # Reading error responses

    @staticmethod
    def outcome(response: httpx.Response) -> dict[str, Any]:
        """The OperationOutcome of a response, checked for shape on the way."""
        assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", outcome
        assert outcome["issue"], outcome
        for issue in outcome["issue"]:
            assert issue["severity"] in ("fatal", "error", "warning", "information"), issue
            assert issue["code"], issue
            assert issue.get("diagnostics"), issue
        return outcome  # type: ignore[no-any-return]

    def expressions(self, response: httpx.Response) -> list[str]:
        """Every location (FHIRPath expression) the OperationOutcome names."""
        return [e for issue in self.outcome(response)["issue"] for e in issue.get("expression", [])]

    def diagnostics(self, response: httpx.Response) -> str:
        return " | ".join(issue["diagnostics"] for issue in self.outcome(response)["issue"])

    def codes(self, response: httpx.Response) -> list[str]:
        return [issue["code"] for issue in self.outcome(response)["issue"]]


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    """Python keyword names to HTTP header names: if_none_exist -> If-None-Exist."""
    return {"-".join(p.capitalize() for p in k.split("_")): v for k, v in headers.items()}


@pytest.fixture
def fhir(client: TestClient) -> FhirApi:
    return FhirApi(client)
