"""References inside a Bundle: fullUrls rewritten, conditional references resolved.

https://hl7.org/fhir/R4/bundle.html#references and
https://hl7.org/fhir/R4/http.html#trules (conditional references).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from health.fhir.errors import FhirError, Issue, invalid
from health.fhir.interactions import Interactions

# Where an element sits: the Bundle entry's path (`Bundle.entry[3].resource`), then keys
# and list indexes.
Path = tuple[str | int, ...]
# An element holding a `reference` string, and its path.
Found = tuple[dict[str, Any], Path]


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
        self.rewrite_found(references_in(resource, where))

    def rewrite_found(self, found: list[Found]) -> None:
        """Rewrite the references `references_in` found (their resource unchanged since)."""
        for element, path in found:
            element["reference"] = self._resolve(element["reference"], path)

    def _resolve(self, reference: str, path: Path) -> str:
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


def references_in(resource: dict[str, Any], where: str) -> list[Found]:
    """Every element of `resource` that holds a `reference` string, with its path.

    Walked once per resource: a Bundle's conditional references are matched ahead
    (`conditional_references`) and then rewritten (`ReferenceResolver.rewrite_found`)
    from this one list. The path is kept as keys and indexes, and written out only
    for an error message: building a string at every node cost several percent of a
    transaction.
    """
    found: list[Found] = []
    _collect(resource, [where], found)
    return found


def _collect(node: Any, path: list[str | int], found: list[Found]) -> None:
    if type(node) is dict:
        for key, value in node.items():
            if key == "reference" and type(value) is str:
                found.append((node, tuple(path)))
            elif type(value) is dict or type(value) is list:
                path.append(key)
                _collect(value, path, found)
                path.pop()
    else:
        for index, item in enumerate(node):
            if type(item) is dict or type(item) is list:
                path.append(index)
                _collect(item, path, found)
                path.pop()


def conditional_references(found: list[Found], base: str) -> Iterator[tuple[str, str]]:
    """The (type, query) of the conditional references among `found`, as
    `ReferenceResolver` will resolve them: for a Bundle to match them ahead."""
    for element, _path in found:
        reference = element["reference"]
        if "?" in reference and not reference.startswith("urn:"):
            condition = _condition(_relative(reference, base))
            if condition is not None:
                yield condition


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


def _where(path: Path) -> str:
    steps = (f"[{step}]" if type(step) is int else f".{step}" for step in path[1:])
    return f"{path[0]}{''.join(steps)}.reference"
