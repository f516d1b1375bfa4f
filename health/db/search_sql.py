"""A parsed search compiled to SQL over `resource` and the search index tables.

https://hl7.org/fhir/R4/search.html. Only the repository executes what this module
builds, and the repository applies the caller's scope (`visible`, i.e.
Repository._visible) to the statement it runs. Inside, every SELECT that picks
*other* resources carries the scope too: the ids a chain or `_has` goes through, and
the page a code search reads from the index, so nothing matches through, or is
counted from, a resource the caller may not see. A subquery over the index rows of the
row being tested (its own codes, dates, references, sort keys) does not: a resource's
index rows carry its type, id, patient and recorder, so they are visible exactly when
the resource is, and the resource itself is scoped. Repeating the scope there made
each row's access checks run once per condition (docs/BENCHMARKS.md, "Consent and
logging").

Each condition is an `id IN (subquery on one index table)` (or NOT IN for `:not` and
`:missing=true`): both SQLite and PostgreSQL then drive the query from the index and
fetch the resources by primary key, with or without table statistics (a correlated
EXISTS was planned as a loop over the whole type on an unanalysed PostgreSQL: see
docs/BENCHMARKS.md, "PostgreSQL and unanalysed tables"). A search by one code takes
its page inside that subquery, from the index in id order (`_ordered_in_the_index`).

Building the statements took most of a small search's time (about 1.4 ms of a 1.8 ms
lookup by SSN, and SQLAlchemy walked them all again for the cache key). So the
clauses are built once per process for each *shape* of search, the way access_sql.py
builds the caller's scope: one pass in plain Python (`Plan`, health/db/search_plan.py)
turns a request into its shape (resource type, parameters, modifiers, prefixes, how
many values, which of system and code a token gives, sort keys, the cursor's
direction, ...) and its values, every derived value (date range ends, LIKE patterns,
number margins, the `ap` window around now) computed there and only there, each in a
numbered slot that the shape names. A `Template` (health/db/templates.py) is the
clause built from a shape with one bound parameter per slot, kept in a bounded cache
(`_cache`, least recently used first out: a client can send endless shapes); each
request gets a small `_Shaped` element that names the template and carries that
request's values.

No template holds any of the caller's scope: the repository applies it to each
statement per request, on top of the shared clauses (and here, to the index page of a
code search, through `visible`). A chain or `_has` goes through aliases whose scope
clause is built per request (access_sql.visible_clause on an alias), so a search with
one is built per request, as before, with its values inline.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from health.db.search_plan import NO_SYSTEM, Plan, Shape
from health.db.tables import INDEX_TABLES, resource
from health.db.templates import Bound, Filled, Inline, Template, next_serial
from health.fhir.errors import invalid
from health.fhir.search.params import Condition, SearchRequest, SortKey

Visible = Callable[[Select[Any], Any], Select[Any]]
Clause = ColumnElement[bool]
# The `identifier:of-type` rows: system "type-system|type-code", code the value.
OF_TYPE_SUFFIX = ":of-type"
# How many templates (clauses and page skeletons) the process keeps.
SHAPES_KEPT = 512
# Where a clause takes its values from.


Values = Inline | Bound


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
        where += self.confined(resource_type, table)
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
            param += OF_TYPE_SUFFIX
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

    def beyond(self, keys: list[_Key], position: Shape) -> Clause:
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


# Templates: a shape's clause built once, and one request's values for it.


def _template(shape: Shape, build: Callable[[Filters], Clause]) -> Template:
    """`build`'s clause for a shape, one bound parameter per slot it uses."""
    serial = next_serial()
    bound = Bound("search", serial)
    clause = build(Filters(shape, bound, None))
    return Template(serial, clause, bound.binds, _Shaped)


class _Shaped(Filled):
    """A search's template with one request's values (health/db/templates.py)."""

    __visit_name__ = "search_shaped"
    inherit_cache = True  # keyed as Filled is: by template number and values


@compiles(_Shaped)
def _compile_shaped(shaped: _Shaped, compiler: SQLCompiler, **kw: Any) -> str:
    return "(" + compiler.process(shaped.with_values(), **kw) + ")"


class _Cache:
    """Templates and page skeletons by shape; the least recently used go first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        # How many entries were built since the process started (the tests read it).
        self.builds = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        # Built outside the lock: two threads may build one shape, and one wins.
        entry = build()
        with self._lock:
            self.builds += 1
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


_cache = _Cache(SHAPES_KEPT)


# Sorting and paging: https://hl7.org/fhir/R4/search.html#sort and #paging


def _ordered_in_the_index(request: SearchRequest) -> Condition | None:
    """The condition whose index rows give a page in id order; None if there is none.

    That is the only condition of a search without `_sort`, one `system|code` token:
    ix_search_token_lookup (resource_type, param, code, system, resource_id) holds its
    matches in id order, so a page is the next entries after the cursor, however
    common the code (`Observation?code=http://loinc.org|x` read all 4,643 matches at
    1,000 patients for a page of 50: docs/BENCHMARKS.md, "Search", finding 5). No
    index gives other searches that order; with ORDER BY id LIMIT inside their lookup,
    SQLite would walk the owner index through every token row of the type instead.
    """
    if request.sort or len(request.conditions) != 1:
        return None
    condition = request.conditions[0]
    if (
        not isinstance(condition, Condition)
        or condition.type != "token"
        or condition.chain is not None
        or condition.modifier not in (None, "of-type")
        or len(condition.values) != 1
    ):
        return None
    token = condition.values[0]
    if token.system is None or token.code is None:
        return None
    return condition


# The index column a parameter type sorts by; dates sort by the start of their range
# ascending and by its end descending (the latest-reaching value first).
_SORT_COLUMNS = {
    "string": ("value", "value"),
    "token": ("code", "code"),
    "date": ("low", "high"),
    "number": ("value", "value"),
    "quantity": ("value", "value"),
    "uri": ("value", "value"),
}


@dataclass(frozen=True)
class Position:
    """Where a page starts: after (or, for a previous link, before) one sort position."""

    keys: tuple[Any, ...]
    id: str
    before: bool = False


@dataclass(frozen=True)
class _Key:
    expression: Any
    descending: bool
    # Resource columns are never NULL; index keys are NULL for resources without the
    # element, and those sort last in either direction.
    nullable: bool


def _is_date(sort: SortKey) -> bool:
    return sort.type in ("date", "lastUpdated")


def _key(resource_type: str, sort: Shape) -> _Key:
    param, value_type, descending = sort
    if value_type == "id":
        return _Key(resource.c.id, descending, False)
    if value_type == "lastUpdated":
        return _Key(resource.c.last_updated, descending, False)
    index = INDEX_TABLES[value_type]
    column = index.c[_SORT_COLUMNS[value_type][1 if descending else 0]]
    aggregate = func.max(column) if descending else func.min(column)
    # A correlated scalar subquery per candidate row (through the owner index), not a
    # join to an aggregate over every resource of the type: 0.06 ms instead of 76 ms
    # for `Encounter?patient=x&_sort=-date` at 1,000 patients.
    # Not narrowed by patient: with the patient id too, SQLite probed the patient
    # index, reading every date of the patient for every candidate row (2.5 s for
    # `Observation?patient=x&_sort=-date&_count=6` over 3,000 results; 57 ms without).
    key = (
        select(aggregate)
        .where(
            index.c.resource_type == resource_type,
            index.c.param == param,
            index.c.resource_id == resource.c.id,
        )
        .scalar_subquery()
    )
    return _Key(key, descending, True)


def _page_skeleton(
    resource_type: str, sort: Shape, columns: tuple[Any, ...], backwards: bool
) -> Select[Any]:
    """The page's SELECT without its WHERE and LIMIT: columns, sort keys, order."""
    keys = [_key(resource_type, s) for s in sort]
    labelled = [key.expression.label(f"sort_{i}") for i, key in enumerate(keys)]
    order: list[Any] = []
    for key, label in zip(keys, labelled, strict=True):
        descending = key.descending != backwards
        # By the selected key's name: the sort subquery runs once per row (ordering by
        # its expression, and by whether it is NULL, made PostgreSQL run it twice
        # more). Missing values last, first when paging backwards.
        term = label.desc() if descending else label.asc()
        if key.nullable:
            term = term.nulls_first() if backwards else term.nulls_last()
        order.append(term)
    order.append(resource.c.id.desc() if backwards else resource.c.id.asc())
    return select(*columns, *labelled).select_from(resource).order_by(*order)


def _index_page_skeleton(value_type: str, backwards: bool) -> Select[Any]:
    """The index page's SELECT without its WHERE and LIMIT."""
    resource_id = INDEX_TABLES[value_type].c.resource_id
    order = resource_id.desc() if backwards else resource_id.asc()
    # DISTINCT: a resource may have the same code twice (two codings).
    return select(resource_id).distinct().order_by(order).correlate(None)


_COUNT = select(func.count()).select_from(resource)


class SearchStatements:
    """The statements of one search: a page after or before a position, and the count.

    Paging is by keyset, not offset: a cursor holds the last row's sort keys and id
    (the tie-break), so writes between two page requests neither repeat nor skip the
    resources that did not change.
    """

    def __init__(self, request: SearchRequest, visible: Visible, now: datetime) -> None:
        self.visible = visible
        plan = Plan(now)
        self.shape = plan.request(request)
        self.values: tuple[Any, ...] = tuple(plan.values)
        self.cacheable = plan.cacheable
        self.resource_type = request.resource_type
        self._dates = [_is_date(sort) for sort in request.sort]
        self._ordered = _ordered_in_the_index(request) is not None
        self._where: Clause | None = None

    @property
    def where(self) -> list[Clause]:
        """What a match must hold, unscoped (the caller's scope is the repository's)."""
        if self._where is None:
            conditions = self.shape[2]
            self._where = self._clause(
                ("where",), lambda f: and_(*f.clauses(self.resource_type, conditions)), self.values
            )
        return [self._where]

    def _clause(
        self, part: Shape, build: Callable[[Filters], Clause], values: Sequence[Any]
    ) -> Clause:
        """The clause `build` makes of this search's shape (and `part`), with `values`:
        from the template cache, or built for this request if it has chains or `_has`."""
        if not self.cacheable:
            return build(Filters(self.shape, Inline(values), self.visible))
        key = ("clause", self.shape, part)
        template: Template = _cache.get(key, lambda: _template(self.shape, build))
        return template.fill(values)

    def count(self) -> Select[Any]:
        return _COUNT.where(*self.where)

    def page(self, columns: tuple[Any, ...], position: Position | None, limit: int) -> Select[Any]:
        """Up to `limit` rows after `position` (before it, in reverse, if `before`)."""
        backwards = position is not None and position.before
        sort = self.shape[3]
        skeleton: Select[Any] = _cache.get(
            ("page", self.resource_type, sort, columns, backwards),
            lambda: _page_skeleton(self.resource_type, sort, columns, backwards),
        )
        if self._ordered:
            ids = self._page_from_the_index(position, backwards, limit)
            where = self._clause(
                ("resource",), lambda f: and_(*f.clauses(self.resource_type, ())), self.values
            )
            return skeleton.where(where, resource.c.id.in_(ids)).limit(limit)
        if position is None:
            return skeleton.where(*self.where).limit(limit)
        after, values = self._position(position)
        conditions = self.shape[2]

        def build(f: Filters) -> Clause:
            keys = [_key(self.resource_type, s) for s in sort]
            return and_(*f.clauses(self.resource_type, conditions), f.beyond(keys, after))

        return skeleton.where(self._clause(("after", after), build, values)).limit(limit)

    def _position(self, position: Position) -> tuple[Shape, tuple[Any, ...]]:
        """The position's shape (direction, which keys are NULL, slots) and the search's
        values followed by the position's."""
        values = list(self.values)
        key_slots: list[int | None] = []
        for value in position.keys:
            key_slots.append(None if value is None else len(values))
            if value is not None:
                values.append(value)
        values.append(position.id)
        return (position.before, tuple(key_slots), len(values) - 1), tuple(values)

    def _page_from_the_index(
        self, position: Position | None, backwards: bool, limit: int
    ) -> Select[Any]:
        """The ids of the page itself, read in id order from the condition's index rows.

        Exact because every id read here is a match: the condition is the search's
        only one (`_ordered_in_the_index`), a deleted resource has no index rows
        (Repository.save), and the caller's scope filters index rows as it filters
        their resources (both carry the type and the patient id). The keyset is stated
        here only: on the resource table as well, SQLite would read every resource of
        the type after the cursor instead.
        """
        condition = self.shape[2][0]
        index = INDEX_TABLES[condition[1]]
        values = self.values if position is None else (*self.values, position.id)
        cursor_slot = None if position is None else len(values) - 1

        def build(f: Filters) -> Clause:
            clauses = f.row_clauses(self.resource_type, condition)
            if cursor_slot is not None:
                after = f.values.one(cursor_slot, index.c.resource_id)
                clauses.append(
                    index.c.resource_id < after if backwards else index.c.resource_id > after
                )
            return and_(*clauses)

        rows = self._clause(("index page", cursor_slot, backwards), build, values)
        skeleton: Select[Any] = _cache.get(
            ("index page", condition[1], backwards),
            lambda: _index_page_skeleton(condition[1], backwards),
        )
        # The caller's scope, per request: the ids are the result, not a test of a row.
        return self.visible(skeleton.where(rows), index).limit(limit)

    def cursor(self, row: Any, *, before: bool) -> str:
        """The cursor of a row of `page`, for the page after it (or before it)."""
        keys = [row._mapping[f"sort_{i}"] for i in range(len(self._dates))]
        encoded = [k.isoformat() if isinstance(k, datetime) else k for k in keys]
        payload = orjson.dumps(["b" if before else "a", encoded, row._mapping["id"]])
        return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")

    def position(self, cursor: str) -> Position:
        """A cursor this search issued, read back; 400 for anything else."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            direction, keys, resource_id = orjson.loads(raw)
            if direction not in ("a", "b") or not isinstance(resource_id, str):
                raise ValueError(direction)
            if len(keys) != len(self._dates):
                raise ValueError("another _sort")
            values = tuple(
                datetime.fromisoformat(k) if is_date and k is not None else k
                for is_date, k in zip(self._dates, keys, strict=True)
            )
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise invalid(
                f"_cursor={cursor!r} is not a cursor this server issued for this search",
                "_cursor",
            ) from None
        return Position(values, resource_id, before=direction == "b")
