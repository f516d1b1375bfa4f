"""Clauses built once per process and run with each request's values.

A clause of a few hundred expression objects (a clinician's scope, a search's
conditions) cost more to build, and for SQLAlchemy to walk for its cache key, than the
SQL took to run (docs/BENCHMARKS.md, "Consent and logging" and "The fixed cost of a
search"). So access_sql.py and search_sql.py build such a clause once per shape, with
bound parameters where the values go (a `Template`), and give each request a small
element (a `Filled`) that names the template and carries that request's values.

SQLAlchemy keys its compiled statements on a walk of the whole statement
(https://docs.sqlalchemy.org/en/20/core/connections.html#sql-compilation-caching); a
`Filled` stands in that walk for its whole template by the template's number, and
hands over its values as the statement's bound parameters, so that a compiled
statement is reused with the values of whoever runs it next.

This leans on SQLAlchemy internals of the 2.0 series (pinned below 2.1): the traversal
list that makes the cache key, and `BindParameter._with_value`. A walk of the statement
sees the values, not the template inside, so nothing may adapt a statement holding a
`Filled` to other tables (nothing does: the repository runs what it has built, and the
tests in tests/db/test_access_sql.py, test_search_sql.py and test_search_filters.py catch
values that go astray).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

from sqlalchemy import BindParameter, Boolean, ColumnElement, bindparam
from sqlalchemy.sql import visitors
from sqlalchemy.sql.visitors import InternalTraversal

Clause = ColumnElement[bool]

# Template numbers, unique in the process: they name the templates in cache keys and
# in their parameters' keys.
_serials = itertools.count(1)


class Inline:
    """A request's values as themselves (`values[key]`), where a template's bound
    parameters would go: for a clause built for that request only."""

    def __init__(self, values: Any) -> None:
        self._values = values

    def one(self, key: Hashable, column: Any) -> Any:
        return self._values[key]

    def many(self, key: Hashable, column: Any) -> Any:
        return self._values[key]


class Bound:
    """Bound parameters where a template's values go, one per key (a name, or a slot
    number) however often the clause compares with it, typed as the column of its first
    use; keyed `<prefix>_<template number>_<key>`, so two templates in one statement
    never share a name."""

    def __init__(self, prefix: str, serial: int) -> None:
        self._prefix = f"{prefix}_{serial}"
        self._by_key: dict[Hashable, BindParameter[Any]] = {}

    def one(self, key: Hashable, column: Any) -> Any:
        return self._bind(key, column, expanding=False)

    def many(self, key: Hashable, column: Any) -> Any:
        return self._bind(key, column, expanding=True)

    def _bind(self, key: Hashable, column: Any, *, expanding: bool) -> BindParameter[Any]:
        parameter = self._by_key.get(key)
        if parameter is None:
            parameter = bindparam(f"{self._prefix}_{key}", type_=column.type, expanding=expanding)
            self._by_key[key] = parameter
        return parameter

    @property
    def binds(self) -> tuple[tuple[BindParameter[Any], Hashable], ...]:
        return tuple((parameter, key) for key, parameter in self._by_key.items())


class Template:
    """A clause built once, and the bound parameters in it with the key of the value
    each takes (a name, or a slot number) in the values a request gives."""

    def __init__(
        self,
        serial: int,
        clause: Clause,
        binds: tuple[tuple[BindParameter[Any], Hashable], ...],
        element: type[Filled],
    ) -> None:
        self.serial = serial
        self.clause = clause
        self.binds = binds
        self._element = element

    @classmethod
    def build(cls, prefix: str, element: type[Filled], make: Callable[[Bound], Clause]) -> Template:
        """The clause `make` builds with bound parameters where its values go, under a
        new template number; `element` is the Filled subclass its requests get."""
        serial = next(_serials)
        bound = Bound(prefix, serial)
        return cls(serial, make(bound), bound.binds, element)

    def fill(self, values: Any) -> Filled:
        """The clause for one request: `values[key]` for each parameter's key."""
        return self._element(
            self,
            tuple(
                p._with_value(values[key], maintain_key=True, required=False)
                for p, key in self.binds
            ),
        )


class Filled(ColumnElement[bool]):
    """A template's clause with one request's values. Subclasses name their own
    `__visit_name__` and compile it with `with_values` (sqlalchemy.ext.compiler)."""

    inherit_cache = False
    _traverse_internals: ClassVar[list[tuple[str, InternalTraversal]]] = [
        ("serial", InternalTraversal.dp_plain_obj),
        ("binds", InternalTraversal.dp_clauseelement_tuple),
    ]
    type = Boolean()
    # A predicate, not a boolean column: no `= 1` where booleans are integers (SQLite).
    _is_implicitly_boolean = True

    def __init__(self, template: Template, binds: tuple[BindParameter[Any], ...]) -> None:
        self.template = template
        self.serial = template.serial
        self.binds = binds

    @property
    def _from_objects(self) -> list[Any]:
        return self.template.clause._from_objects  # type: ignore[no-any-return]

    def with_values(self) -> Clause:
        """The template's clause with this element's bound parameters in it. Compiled
        only when a statement is not in SQLAlchemy's cache yet (or apart from it, as
        str() and literal_binds do): later executions replace these parameters with
        theirs, matched by key."""
        by_key = {p.key: p for p in self.binds}

        def replace(element: Any, **_: Any) -> Any:
            if isinstance(element, BindParameter):
                return by_key.get(element.key)
            return None

        return visitors.replacement_traverse(self.template.clause, {}, replace)  # type: ignore[no-any-return]
