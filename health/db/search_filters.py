"""A search's conditions compiled to WHERE clauses over `resource` and the search index tables.

https://hl7.org/fhir/R4/search.html. `Filters` turns the conditions of a search's shape
(health/db/search_plan.py) into clauses: token, string, date, number, quantity, uri and
reference values, `:missing`, chains and `_has`, and the keyset predicate of a page
after a cursor. health/db/search_sql.py puts them into the statements of a search,
once per shape as a template (one bound parameter per slot) or, for a search with a
chain or `_has`, per request with its values inline.

Each condition is an `id IN (subquery on one index table)` (or NOT IN for `:not` and
`:missing=true`): both SQLite and PostgreSQL then drive the query from the index and
fetch the resources by primary key, with or without table statistics (a correlated
EXISTS was planned as a loop over the whole type on an unanalysed PostgreSQL: see
docs/BENCHMARKS.md, "PostgreSQL and unanalysed tables"). In one patient's record the
positive conditions are one `id IN (SELECT ... INTERSECT SELECT ...)`, each SELECT
reading the patient's rows of one condition (`Filters.clauses`).

Only the repository executes these clauses, and it applies the caller's scope
(`visible`, i.e. Repository._visible) to the statement it runs. Inside, every SELECT
that picks *other* resources carries the scope too: the ids a chain or `_has` goes
through (and, in search_sql.py, the page a code search reads from the index), so
nothing matches through, or is counted from, a resource the caller may not see. A
subquery over the index rows of the row being tested (its own codes, dates,
references, sort keys) does not: a resource's index rows carry its type, id, patient
and recorder, so they are visible exactly when the resource is, and the resource
itself is scoped. Repeating the scope there made each row's access checks run once per
condition (docs/BENCHMARKS.md, "Consent and logging"). The scope of a chain's or
`_has`'s aliases is built per request (access_sql.visible_clause on an alias), so a
search with one is never a template (`Plan.cacheable`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, intersect, or_, select

from health.db.search_plan import NO_SYSTEM, Shape
from health.db.tables import INDEX_TABLES, resource
from health.db.templates import Bound, Inline
from health.fhir.search.extract import OF_TYPE

Visible = Callable[[Select[Any], Any], Select[Any]]
Clause = ColumnElement[bool]
# Where a clause takes its values from.
Values = Inline | Bound


@dataclass(frozen=True)
class OrderKey:
    """One sort key of a page: the expression it orders by, and how."""

    expression: Any
    descending: bool
    # Resource columns are never NULL; index keys are NULL for resources without the
    # element, and those sort last in either direction.
    nullable: bool


class Filters:
    """Compiles a search's shape to WHERE clauses, the values taken from `values`.

    `visible` scopes the aliases of chains and `_has`; it is None when building a
    template, which never holds a scope (`Plan.cacheable`).
    """

    def __init__(self, shape: Shape, values: Values, visible: Visible | None) -> None:
        self.resource_type: str = shape[0]
        # The slot of the patient when every match lies in the patient's compartment
        # (SearchRequest.patient): index lookups of the type then read only their rows.
        self.patient: int | None = shape[1]
        self.values = values
        self.visible = visible

    def confined(self, resource_type: str, table: Any) -> list[Clause]:
        if self.patient is None or self.resource_type != resource_type:
            return []
        return [table.c.patient_id == self.values.one(self.patient, table.c.patient_id)]

    def clauses(
        self, resource_type: str, conditions: tuple[Shape, ...], table: Any = resource
    ) -> list[Clause]:
        """Clauses over `table` (the resource table or an alias): all must hold."""
        where: list[Clause] = [table.c.resource_type == resource_type, table.c.deleted.is_(False)]
        confined = self.confined(resource_type, table)
        where += confined
        together = [c for c in conditions if c[0] == "rows" and c[3] != "not"] if confined else []
        if len(together) > 1:
            # One patient's rows of each condition, intersected: each SELECT is planned
            # on its own index alone, where PostgreSQL planned N semi-joins together
            # (2.2 against 0.8 ms for a lab search) and, misjudging how many rows the
            # patient's reference condition gives, drove the plan from it (5,807
            # against 890 buffers): docs/BENCHMARKS.md, "A patient's conditions
            # intersected".
            where.append(
                table.c.id.in_(intersect(*(self.rows(resource_type, c) for c in together)))
            )
            conditions = tuple(c for c in conditions if c not in together)
        for condition in conditions:
            where.append(self.condition(resource_type, condition, table))
        return where

    def ids(self, resource_type: str, condition: Shape) -> Select[Any]:
        """The ids of current resources of a type that match: for chains and _has."""
        if self.visible is None:
            raise RuntimeError("a chain or _has is built per request, with its scope")
        target = resource.alias()
        return self.visible(
            select(target.c.id)
            .where(*self.clauses(resource_type, (condition,), target))
            .correlate(None),
            target,
        )

    def condition(self, resource_type: str, condition: Shape, table: Any) -> Clause:
        kind = condition[0]
        if kind == "has":
            return table.c.id.in_(self.has(resource_type, condition))
        if kind == "id":
            return table.c.id.in_(self.values.many(condition[1], table.c.id))
        if kind == "lastUpdated":
            column = table.c.last_updated
            return or_(*(self.date(column, None, value) for value in condition[1]))
        if kind == "chain":
            return table.c.id.in_(self.chain(resource_type, condition))
        if kind == "missing":
            _, value_type, param, missing = condition
            index = INDEX_TABLES[value_type]
            rows = (
                select(index.c.resource_id)
                .where(index.c.resource_type == resource_type, index.c.param == param)
                .correlate(None)
            )
            return table.c.id.not_in(rows) if missing else table.c.id.in_(rows)
        rows = self.rows(resource_type, condition)
        # :not matches resources with no matching value, those without the element too:
        # https://hl7.org/fhir/R4/search.html#modifiers
        return table.c.id.not_in(rows) if condition[3] == "not" else table.c.id.in_(rows)

    def rows(self, resource_type: str, condition: Shape) -> Select[Any]:
        """Ids of the resources with an index row matching any of the values."""
        index = INDEX_TABLES[condition[1]]
        return (
            select(index.c.resource_id)
            .where(*self.row_clauses(resource_type, condition))
            .correlate(None)
        )

    def row_clauses(self, resource_type: str, condition: Shape) -> list[Clause]:
        """What an index row of a `rows` condition must hold."""
        _, value_type, param, modifier, values = condition
        index = INDEX_TABLES[value_type]
        if modifier == "of-type":
            param += OF_TYPE
        return [
            index.c.resource_type == resource_type,
            index.c.param == param,
            or_(*(self.value(index, value) for value in values)),
            *self.confined(resource_type, index),
        ]

    def chain(self, resource_type: str, condition: Shape) -> Select[Any]:
        """Resources whose reference points at a resource matching the chained condition."""
        _, param, per_target = condition
        references = INDEX_TABLES["reference"]
        targets = [
            and_(
                references.c.target_type == target_type,
                references.c.target_id.in_(self.ids(target_type, chained)),
            )
            for target_type, chained in per_target
        ]
        # The row's own references; the targets they may point at are scoped (`ids`).
        return (
            select(references.c.resource_id)
            .where(
                references.c.resource_type == resource_type,
                references.c.param == param,
                or_(*targets),
            )
            .correlate(None)
        )

    def has(self, resource_type: str, has: Shape) -> Select[Any]:
        """Targets of `reference` in resources of `source_type` matching the condition."""
        _, source_type, reference_param, condition = has
        references = INDEX_TABLES["reference"]
        # The references of the scoped sources (`ids`): visible as their sources are.
        return (
            select(references.c.target_id)
            .where(
                references.c.resource_type == source_type,
                references.c.param == reference_param,
                references.c.target_type == resource_type,
                references.c.resource_id.in_(self.ids(source_type, condition)),
            )
            .correlate(None)
        )

    def value(self, index: Any, value: Shape) -> Clause:
        """One value's test of an index row (`Plan.value` made its shape)."""
        kind, one = value[0], self.values.one
        if kind == "token":
            return self.token(index, value)
        if kind == "text":
            return or_(
                index.c.text.like(one(value[1], index.c.text), escape="\\"),
                index.c.text.like(one(value[2], index.c.text), escape="\\"),
            )
        if kind == "exact":
            return index.c.exact == one(value[1], index.c.exact)  # type: ignore[no-any-return]
        if kind == "contains":
            return index.c.value.like(  # type: ignore[no-any-return]
                one(value[1], index.c.value), escape="\\"
            )
        if kind == "prefix":
            return self.prefix(index.c.value, value)
        if kind == "date":
            return self.date(index.c.low, index.c.high, value)
        if kind == "number":
            return self.number(index.c.value, value)
        if kind == "quantity":
            return self.quantity(index, value)
        if kind == "url":
            return index.c.url == one(value[1], index.c.url)  # type: ignore[no-any-return]
        if kind == "reference":
            conditions = [index.c.target_id == one(value[1], index.c.target_id)]
            if value[2] is not None:
                conditions.append(index.c.target_type == one(value[2], index.c.target_type))
            return and_(*conditions)
        return index.c.value == one(value[1], index.c.value)  # type: ignore[no-any-return]

    def token(self, index: Any, token: Shape) -> Clause:
        _, code, system = token
        conditions: list[Clause] = []
        if code is not None:
            conditions.append(index.c.code == self.values.one(code, index.c.code))
        if system == NO_SYSTEM:
            conditions.append(index.c.system.is_(None))
        elif system is not None:
            conditions.append(index.c.system == self.values.one(system, index.c.system))
        return and_(*conditions)

    def prefix(self, column: Any, prefix: Shape) -> Clause:
        """Values that start with the prefix, as a range the lookup index can seek.

        `LIKE 'cum%'` could not use the index: SQLite's LIKE ignores ASCII case, and
        PostgreSQL only serves LIKE from a btree in the "C" collation (docs/BENCHMARKS.md,
        "Search", finding 4). A range is the same test under code point order, which is
        SQLite's BINARY collation and the "C" collation of `search_string.value` on
        PostgreSQL (UTF-8 bytes sort in code point order). Its end is `prefix_end`.
        """
        _, start, end = prefix
        starts = column >= self.values.one(start, column)
        if end is None:
            return starts  # type: ignore[no-any-return]
        return and_(starts, column < self.values.one(end, column))

    def date(self, low: Any, high: Any | None, value: Shape) -> Clause:
        """A date prefix over the stored range [low, high) and the searched [vl, vh).

        https://hl7.org/fhir/R4/search.html#prefix: eq = the stored range lies within
        the searched one; ne = it does not; gt/lt = some of it lies after/before the
        searched range; ge/le = some of it lies at or after the searched range's start /
        before its end; sa/eb = all of it lies after/before; ap = it overlaps the
        searched range widened by 10% of its distance to now (values.approximate_window,
        applied in `Plan.date`). With `high` None the column is an instant
        (`_lastUpdated`): the range [low, low].
        """

        def ends_after(moment: Any) -> Clause:  # some of the stored range is >= moment
            return high > moment if high is not None else low >= moment  # type: ignore[no-any-return]

        def ends_by(moment: Any) -> Clause:  # all of the stored range is < moment
            return high <= moment if high is not None else low < moment  # type: ignore[no-any-return]

        _, prefix, low_slot, high_slot = value
        vl, vh = self.values.one(low_slot, low), self.values.one(high_slot, low)
        if prefix == "eq":
            return and_(low >= vl, ends_by(vh))
        if prefix == "ne":
            return or_(low < vl, ends_after(vh))
        if prefix == "gt":
            return ends_after(vh)
        if prefix == "ge":
            return ends_after(vl)
        if prefix == "lt":
            return low < vl  # type: ignore[no-any-return]
        if prefix == "le":
            return low < vh  # type: ignore[no-any-return]
        if prefix == "sa":
            return low >= vh  # type: ignore[no-any-return]
        if prefix == "eb":
            return ends_by(vl)
        return and_(low < vh, ends_after(vl))  # ap: the window `Plan.date` computed

    def number(self, column: Any, number: Shape) -> Clause:
        """Prefixes over a stored number, with the bounds `Plan.number` computed."""
        _, prefix, first, second = number
        bound = self.values.one(first, column)
        if prefix in ("eq", "ap"):
            return and_(column >= bound, column < self.values.one(second, column))
        if prefix == "ne":
            return or_(column < bound, column >= self.values.one(second, column))
        if prefix in ("gt", "sa"):
            return column > bound  # type: ignore[no-any-return]
        if prefix in ("lt", "eb"):
            return column < bound  # type: ignore[no-any-return]
        if prefix == "ge":
            return column >= bound  # type: ignore[no-any-return]
        return column <= bound  # type: ignore[no-any-return]  # le

    def quantity(self, index: Any, quantity: Shape) -> Clause:
        """The number, and the unit by system and code, or by code or unit text (`5||mg`).

        Units are compared as written: no UCUM conversion.
        """
        _, number, system, code = quantity
        one = self.values.one
        conditions = [self.number(index.c.value, number)]
        if system is not None:
            conditions.append(index.c.system == one(system, index.c.system))
            if code is not None:
                conditions.append(index.c.code == one(code, index.c.code))
        elif code is not None:
            conditions.append(
                or_(
                    index.c.code == one(code, index.c.code), index.c.unit == one(code, index.c.unit)
                )
            )
        return and_(*conditions)

    def beyond(self, keys: list[OrderKey], position: Shape) -> Clause:
        """Rows after the position in the (possibly reversed) order: a keyset predicate."""
        backwards, key_slots, id_slot = position
        alternatives: list[Clause] = []
        equal_so_far: list[Clause] = []
        for key, slot in zip(keys, key_slots, strict=True):
            descending = key.descending != backwards
            nulls_last = not backwards
            expression = key.expression
            if slot is None:
                after: Clause = expression.is_not(None) if not nulls_last else false()
                equal: Clause = expression.is_(None)
            else:
                value = self.values.one(slot, expression)
                after = expression < value if descending else expression > value
                if key.nullable and nulls_last:
                    after = or_(after, expression.is_(None))
                equal = expression == value
            alternatives.append(and_(*equal_so_far, after))
            equal_so_far.append(equal)
        resource_id = self.values.one(id_slot, resource.c.id)
        last = resource.c.id < resource_id if backwards else resource.c.id > resource_id
        alternatives.append(and_(*equal_so_far, last))
        return or_(*alternatives)
