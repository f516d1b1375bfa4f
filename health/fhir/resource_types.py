"""The resource types this server stores, read from fhir/resource-types.json."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from health.fhir import model_validators

# Before any model class is created: pydantic binds validators at class creation.
model_validators.install()


class ResourceTypes:
    """The served types and their R4B models, loaded once from conformance data."""

    def __init__(self, conformance_dir: Path) -> None:
        document = orjson.loads((conformance_dir / "resource-types.json").read_bytes())
        self.names: tuple[str, ...] = tuple(document["types"])
        self.excluded: dict[str, str] = dict(document["excluded"])
        self._names = frozenset(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def model(self, name: str) -> Any:
        return model_class(name)


@cache
def model_class(name: str) -> Any:
    """The R4B model of a resource or data type (ValueError or KeyError if unknown)."""
    return get_fhir_model_class(name)
