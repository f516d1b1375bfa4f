"""The CapabilityStatement, generated from the routes the app actually serves.

https://hl7.org/fhir/R4/capabilitystatement.html. Interactions come from the mounted
FHIR routes (a route that is not mounted is not claimed), resource types from
fhir/resource-types.json, search parameters from what the criteria parser accepts.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from health import __version__
from health.fhir.config import FhirConfig
from health.fhir.criteria import SUPPORTED_PARAMETERS

# (HTTP method, route path) -> FHIR interaction code and level.
_TYPE_INTERACTIONS = {
    ("GET", "/fhir/{resource_type}/{resource_id}"): "read",
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version_id}"): "vread",
    ("PUT", "/fhir/{resource_type}/{resource_id}"): "update",
    ("PATCH", "/fhir/{resource_type}/{resource_id}"): "patch",
    ("DELETE", "/fhir/{resource_type}/{resource_id}"): "delete",
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): "history-instance",
    ("GET", "/fhir/{resource_type}/_history"): "history-type",
    ("POST", "/fhir/{resource_type}"): "create",
    ("GET", "/fhir/{resource_type}"): "search-type",
}
_SYSTEM_INTERACTIONS = {
    ("POST", "/fhir"): ("transaction", "batch"),
    ("GET", "/fhir/_history"): ("history-system",),
}
_CONDITIONAL = {
    ("POST", "/fhir/{resource_type}"): "conditionalCreate",
    ("PUT", "/fhir/{resource_type}"): "conditionalUpdate",
    ("DELETE", "/fhir/{resource_type}"): "conditionalDelete",
}


def _served(app: FastAPI) -> set[tuple[str, str]]:
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                served.add((method, route.path))
    return served


def capability_statement(app: FastAPI, config: FhirConfig) -> dict[str, Any]:
    served = _served(app)
    type_interactions = [code for key, code in _TYPE_INTERACTIONS.items() if key in served]
    conditional = {flag for key, flag in _CONDITIONAL.items() if key in served}
    system = [
        code for key, codes in _SYSTEM_INTERACTIONS.items() if key in served for code in codes
    ]
    resources = []
    for name in config.types.names:
        fields = config.types.model(name).model_fields
        params = [
            {
                "name": "_id",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
            }
        ]
        if "identifier" in fields and "identifier" in SUPPORTED_PARAMETERS:
            params.append({"name": "identifier", "type": "token"})
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": code} for code in type_interactions],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": "conditionalCreate" in conditional,
            "conditionalUpdate": "conditionalUpdate" in conditional,
            "conditionalDelete": "single"
            if "conditionalDelete" in conditional
            else "not-supported",
            "searchParam": params,
        }
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-28",
        "kind": "instance",
        "software": {"name": "health", "version": __version__},
        "implementation": {
            "description": "One health record per citizen",
            "url": config.settings.fhir_base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in system],
            }
        ],
    }
