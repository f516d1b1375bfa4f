"""SearchParameter FHIRPath expressions compiled to plain functions over resource JSON.

Search parameters locate their values with FHIRPath (https://hl7.org/fhir/R4/fhirpath.html).
Nearly all of them use a handful of shapes: dotted paths, `as`/`ofType` on choice
elements, `where(resolve() is X)`, `where(system='email')` and `|` unions. Those are
compiled once, at startup, into branches: a chain of JSON key lookups and filters
with the FHIR type of what it reaches, which the element definitions of the
fhir.resources R4B models supply (so `Observation.value as Quantity` reads the key
`valueQuantity`, and the extractor knows it holds a Quantity without inspecting it).
Any other expression is compiled once by fhirpathpy and run on each resource; its
results carry no static type and are converted by their shape.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Any

from health.fhir.resource_types import model_class

# A step either reads a key (and flattens lists, as FHIRPath does) or filters items.
Step = str | Callable[[Any], bool]
Values = Callable[[dict[str, Any]], list[Any]]

# Types that are a Quantity for `as Quantity` (https://hl7.org/fhir/R4/datatypes.html#quantity).
QUANTITY_TYPES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"}
)
_BASE_TYPES = ("Resource", "DomainResource")


class Unsupported(ValueError):
    """The expression uses FHIRPath beyond the compiled subset."""


@dataclass(frozen=True)
class Branch:
    """One way an expression reaches values: key lookups and filters, and their type."""

    steps: tuple[Step, ...]
    # The FHIR type of the values (`CodeableConcept`, `dateTime`, ...); None when the
    # values come from the FHIRPath engine and are only known by their shape.
    fhir_type: str | None
    values: Values

    @property
    def root(self) -> str | None:
        """The top-level key the values are under (None: evaluate on every resource)."""
        first = self.steps[0] if self.steps else None
        return first if isinstance(first, str) else None


@dataclass(frozen=True)
class CompiledExpression:
    expression: str
    branches: tuple[Branch, ...]
    # False when the expression is run by the FHIRPath engine.
    native: bool

    def __call__(self, resource: dict[str, Any]) -> list[Any]:
        """Every value the expression selects in `resource`, flattened."""
        found: list[Any] = []
        for branch in self.branches:
            found.extend(branch.values(resource))
        return found


@cache  # pure: every app in a process (and every test) shares the compiled forms
def compile_expression(expression: str, resource_type: str) -> CompiledExpression:
    """Compile `expression` for resources of `resource_type` (natively when possible)."""
    try:
        states = _Parser(expression, resource_type).parse()
    except Unsupported:
        return CompiledExpression(expression, (_engine_branch(expression),), native=False)
    branches = tuple(Branch(s.steps, s.fhir_type, _values(s.steps)) for s in states)
    return CompiledExpression(expression, branches, native=True)


def reference_type(reference: str) -> str | None:
    """The resource type a literal reference names: `Patient/1`, `.../Patient/1/_history/2`."""
    if not reference or reference[0] == "#" or reference.startswith("urn:"):
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2] if len(parts) >= 2 else None


# Evaluation


def _values(steps: tuple[Step, ...]) -> Values:
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]

        def one_key(resource: dict[str, Any]) -> list[Any]:
            value = resource.get(key)
            if value is None:
                return []
            return value if type(value) is list else [value]

        return one_key

    def walk(resource: dict[str, Any]) -> list[Any]:
        items: list[Any] = [resource]
        for step in steps:
            if type(step) is str:
                found: list[Any] = []
                for item in items:
                    if type(item) is dict:
                        value = item.get(step)
                        if value is None:
                            continue
                        if type(value) is list:
                            found.extend(value)
                        else:
                            found.append(value)
                items = found
            else:
                items = [item for item in items if step(item)]  # type: ignore[operator]
            if not items:
                break
        return items

    return walk


def _engine_branch(expression: str) -> Branch:
    from fhirpathpy import compile as compile_fhirpath
    from fhirpathpy.models import models

    try:
        evaluate = compile_fhirpath(expression, models["r4"])
    except Exception as error:  # the engine's parser raises assorted errors
        raise Unsupported(f"FHIRPath expression cannot be compiled: {expression}") from error

    def run(resource: dict[str, Any]) -> list[Any]:
        return [_plain(item) for item in evaluate(resource, {})]

    return Branch((), None, run)


def _plain(item: Any) -> Any:
    # fhirpathpy wraps some results (resource nodes, FHIRPath dates); index plain JSON.
    data = getattr(item, "data", None)
    if data is not None:
        return data
    if isinstance(item, str | bool | int | float | dict | list):
        return item
    return str(item)


def _resolves_to(target: str) -> Callable[[Any], bool]:
    # `where(resolve() is Patient)`: a literal reference whose type is Patient, without
    # resolving it (https://hl7.org/fhir/R4/fhirpath.html#functions).
    def keep(reference: Any) -> bool:
        if type(reference) is not dict:
            return False
        literal = reference.get("reference")
        return type(literal) is str and reference_type(literal) == target

    return keep


def _equals(key: str, expected: str) -> Callable[[Any], bool]:
    def keep(item: Any) -> bool:
        return type(item) is dict and item.get(key) == expected

    return keep


# Parsing: a recursive-descent parser of the subset, typing each branch as it goes.

_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|([A-Za-z_][A-Za-z0-9_]*)|([().|=]))")


@dataclass(frozen=True)
class _State:
    steps: tuple[Step, ...]
    fhir_type: str
    model: Any  # the fhir.resources model of a complex type; None for primitives


class _Parser:
    def __init__(self, expression: str, resource_type: str) -> None:
        self.resource_type = resource_type
        self.tokens = _tokenize(expression)
        self.position = 0

    def parse(self) -> list[_State]:
        states = self._union()
        if self.position != len(self.tokens):
            raise Unsupported(f"unexpected '{self.tokens[self.position]}'")
        if not all(s.steps for s in states):
            raise Unsupported("the expression selects the resource itself")
        return states

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, found {token}")
        self.position += 1
        return token

    def _name(self) -> str:
        token = self._take()
        if not token[0].isalpha() and token[0] != "_":
            raise Unsupported(f"expected a name, found {token}")
        return token

    def _union(self) -> list[_State]:
        states = self._term()
        while self._peek() == "|":
            self._take("|")
            states = states + self._term()
        return states

    def _term(self) -> list[_State]:
        states = self._postfix()
        if self._peek() == "as":
            self._take("as")
            states = _of_type(states, self._name())
        return states

    def _postfix(self) -> list[_State]:
        if self._peek() == "(":
            self._take("(")
            states = self._union()
            self._take(")")
        else:
            name = self._name()
            if name not in (self.resource_type, *_BASE_TYPES):
                raise Unsupported(f"the expression starts at {name}")
            model = model_class(self.resource_type)
            states = [_State((), self.resource_type, model)]
        while self._peek() == ".":
            self._take(".")
            name = self._name()
            if self._peek() != "(":
                states = [child for s in states for child in _child(s, name)]
                continue
            self._take("(")
            if name in ("as", "ofType"):
                states = _of_type(states, self._name())
            elif name == "where":
                states = self._where(states)
            else:
                raise Unsupported(f"function {name}() is not compiled")
            self._take(")")
        return states

    def _where(self, states: list[_State]) -> list[_State]:
        first = self._name()
        if first == "resolve":
            self._take("(")
            self._take(")")
            self._take("is")
            target = self._name()
            if any(s.fhir_type != "Reference" for s in states):
                raise Unsupported("resolve() on something other than a Reference")
            keep = _resolves_to(target)
        else:
            self._take("=")
            literal = self._take()
            if literal[0] != "'" or self._peek() != ")":
                raise Unsupported("where() other than an equality with a string")
            keep = _equals(first, literal[1:-1])
            for s in states:
                if s.model is None or first not in _elements(s.model):
                    raise Unsupported(f"{s.fhir_type} has no element {first}")
        return [_State((*s.steps, keep), s.fhir_type, s.model) for s in states]


def _tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported(f"cannot read '{text[position:]}'")
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


def _of_type(states: list[_State], type_name: str) -> list[_State]:
    # `as`/`ofType` keep the values of that type; on a choice element that means the
    # one key of that type (valueQuantity). Quantity also admits its profiles (Age, ...).
    def matches(fhir_type: str) -> bool:
        return fhir_type == type_name or (type_name == "Quantity" and fhir_type in QUANTITY_TYPES)

    return [s for s in states if matches(s.fhir_type)]


def _child(state: _State, name: str) -> list[_State]:
    if state.model is None:
        raise Unsupported(f"{state.fhir_type} is a primitive and has no element {name}")
    elements = _elements(state.model)
    if name not in elements:
        raise Unsupported(f"{state.fhir_type} has no element {name}")
    return [
        _State((*state.steps, key), fhir_type, model) for key, fhir_type, model in elements[name]
    ]


Element = tuple[str, str, Any]  # (JSON key, FHIR type, model or None)


@cache
def _elements(model: Any) -> dict[str, Sequence[Element]]:
    """A model's elements by FHIRPath name; a choice element lists one entry per type."""
    elements: dict[str, list[Element]] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if not extra.get("element_property"):
            continue
        key = field.alias or name
        fhir_type, type_model = _type_of(field.annotation)
        choice = extra.get("one_of_many")
        elements.setdefault(choice or key, []).append((key, fhir_type, type_model))
    return elements


def _type_of(annotation: Any) -> tuple[str, Any]:
    """The FHIR type name (and model, for complex types) of a field annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        marker = annotation.__metadata__[0]
        name = type(marker).__name__
        return name[0].lower() + name[1:], None
    if origin in (typing.Union, UnionType, list):
        for argument in typing.get_args(annotation):
            if argument is not type(None):
                return _type_of(argument)
    if annotation is bool:
        return "boolean", None
    # fhir.resources annotates complex elements with a stand-in type naming the model.
    dotted = getattr(annotation, "_model_klass", None)
    if dotted is not None:
        module, name = str(dotted).rsplit(".", 1)
        return name, getattr(importlib.import_module(module), name)
    if annotation is str:
        return "string", None
    raise Unsupported(f"unknown element type {annotation!r}")
