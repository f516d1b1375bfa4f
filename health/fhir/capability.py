"""The CapabilityStatement, generated from the routes the app actually serves.

https://hl7.org/fhir/R4/capabilitystatement.html. Interactions come from the mounted
FHIR routes (a route that is not mounted is not claimed; the SMART security block
likewise needs the authorization server's routes), resource types from
fhir/resource-types.json, search parameters from what the search parser accepts
(health.fhir.search.params, over the definitions in fhir/search-parameters.json).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from health import __version__
from health.auth.discovery import capability_security
from health.fhir.config import FhirConfig
from health.fhir.search.params import supported_parameters

_ID_DEFINITION = "http://hl7.org/fhir/SearchParameter/Resource-id"

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
# https://hl7.org/fhir/R4/patient-operation-everything.html
_EVERYTHING_ROUTE = ("GET", "/fhir/Patient/{patient_id}/$everything")
_EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
# Served when the SMART authorization server is mounted (health/auth/routes.py).
_AUTHORIZE_ROUTE = ("GET", "/auth/authorize")


def _served(app: FastAPI) -> set[tuple[str, str]]:
    served: set[tuple[str, str]] = set()
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        if isinstance(route, APIRoute):
            for method in route.methods:
                served.add((method, route.path))
        # FastAPI 0.165 lists an included router as one entry wrapping it; its routes
        # carry their full paths, the router's own prefix (/fhir) included.
        included = getattr(route, "original_router", None)
        if included is not None:
            routes.extend(included.routes)
    return served


def _access_log_entry() -> dict[str, Any]:
    return {
        "type": "AuditEvent",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {"name": "patient", "type": "reference"},
            {"name": "date", "type": "date"},
            {"name": "_count", "type": "number"},
        ],
    }


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
        params: list[dict[str, Any]] = [
            {"name": code, "type": kind}
            for code, kind in supported_parameters(
                name, config.search, has_identifier="identifier" in fields
            )
        ]
        params[0]["definition"] = _ID_DEFINITION
        includes = sorted(
            f"{name}:{p.code}"
            for p in config.search.for_type(name).values()
            if p.type == "reference"
        )
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
            "searchInclude": includes,
            "searchParam": params,
        }
        if not includes:
            del entry["searchInclude"]
        if name == "AuditEvent":
            # The access log (health/audit/routes.py): read and search, written only
            # by the server.
            entry = _access_log_entry()
        if name == "Patient" and _EVERYTHING_ROUTE in served:
            entry["operation"] = [{"name": "everything", "definition": _EVERYTHING_DEFINITION}]
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": code} for code in system],
    }
    if _AUTHORIZE_ROUTE in served:
        rest["security"] = capability_security(config.settings)
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
        "rest": [rest],
    }
