"""References inside a Bundle: fullUrls rewritten, conditional references resolved.

https://hl7.org/fhir/R4/bundle.html#references and
https://hl7.org/fhir/R4/http.html#trules (conditional references).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from health.fhir.errors import FhirError, Issue, invalid
from health.fhir.interactions import Interactions


class ReferenceResolver:
    """Rewrites `reference` strings in place, resolving each conditional one once."""

    def __init__(
        self,
        interactions: Interactions,
        id_map: dict[str, str],
        base: str,
        literal_of: dict[str, str] | None = None,
    ) -> None:
        self._interactions = interactions
        self._id_map = id_map
        self._base = base
        self._conditional: dict[str, str] = {}
        # BundleRequest.literal_of: a condition matching nothing means this literal,
        # if the caller can see what it names.
        self._literal_of = literal_of or {}

    def rewrite(self, resource: dict[str, Any], where: str) -> None:
        # The path is kept as a list and joined only for an error message: building a
        # string at every node cost several percent of a transaction.
        self._rewrite(resource, [where])

    def _rewrite(self, node: Any, path: list[str]) -> None:
        if type(node) is dict:
            for key, value in node.items():
                if key == "reference" and type(value) is str:
                    node[key] = self._resolve(value, path)
                elif type(value) is dict or type(value) is list:
                    path.append(f".{key}")
                    self._rewrite(value, path)
                    path.pop()
        else:
            for index, item in enumerate(node):
                if type(item) is dict or type(item) is list:
                    path.append(f"[{index}]")
                    self._rewrite(item, path)
                    path.pop()

    def _resolve(self, reference: str, path: list[str]) -> str:
        mapped = self._id_map.get(reference)
        if mapped is not None:
            return mapped
        if reference.startswith(("urn:uuid:", "urn:oid:")):
            raise invalid(
                f"Reference {reference} is not the fullUrl of any entry in this Bundle",
                _where(path),
            )
        reference = _relative(reference, self._base)
        condition = _condition(reference)
        if condition is not None:
            return self._conditional_reference(*condition, reference, _where(path))
        return reference

    def _conditional_reference(
        self, resource_type: str, query: str, reference: str, where: str
    ) -> str:
        if reference not in self._conditional:
            matches = self._interactions.match(resource_type, query, where)
            literal = self._literal_of.get(reference)
            if not matches and literal is not None and self._visible(literal):
                self._conditional[reference] = literal
                return literal
            if not matches:
                raise invalid(f"Conditional reference {reference} matches no resource", where)
            if len(matches) > 1:
                raise FhirError(
                    [
                        Issue(
                            "multiple-matches",
                            f"Conditional reference {reference} matches more than one resource",
                            (where,),
                        )
                    ],
                    status=412,
                )
            self._conditional[reference] = f"{resource_type}/{matches[0].id}"
        return self._conditional[reference]

    def _visible(self, literal: str) -> bool:
        resource_type, _, resource_id = literal.partition("/")
        return self._interactions.exists(resource_type, resource_id)


def conditional_references(resource: Any, base: str) -> Iterator[tuple[str, str]]:
    """The (type, query) of every conditional reference in `resource`, as
    `ReferenceResolver` will resolve them: for a batch to match them ahead."""
    stack = [resource]
    while stack:
        node = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for key, value in items:
            if key == "reference" and type(value) is str and "?" in value and value[:4] != "urn:":
                condition = _condition(_relative(value, base))
                if condition is not None:
                    yield condition
            elif type(value) is dict or type(value) is list:
                stack.append(value)


def _relative(reference: str, base: str) -> str:
    """An absolute reference on our base, made relative."""
    if reference.startswith(base) and reference[len(base) : len(base) + 1] == "/":
        return reference[len(base) + 1 :]
    return reference


def _condition(reference: str) -> tuple[str, str] | None:
    """(type, query) of a conditional reference `Type?query`; None for any other."""
    head, question, query = reference.partition("?")
    if question and head and "/" not in head:
        return head, query
    return None


def _where(path: list[str]) -> str:
    return "".join(path) + ".reference"
