"""The statements of a search: its page, its count and its cursors, over shared templates.

https://hl7.org/fhir/R4/search.html. Only the repository executes what this module
builds, and the repository applies the caller's scope (`visible`, i.e.
Repository._visible) to the statement it runs. The WHERE clauses come from `Filters`
(health/db/search_filters.py, which says why each condition is an `id IN (subquery)`
and where the scope goes inside them). A search by one code takes its page inside that
subquery, from the index in id order (`_ordered_in_the_index`), and that page carries
the scope too, so nothing is counted from a resource the caller may not see.

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
from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from health.db.search_filters import Clause, Filters, OrderKey, Visible
from health.db.search_plan import Plan, Shape
from health.db.tables import INDEX_TABLES, resource
from health.db.templates import Filled, Inline, Template
from health.fhir.errors import invalid
from health.fhir.json_shape import NUL
from health.fhir.search.params import Condition, SearchRequest
from health.fhir.validation import ID_PATTERN

# How many templates (clauses and page skeletons) the process keeps.
SHAPES_KEPT = 512


# Templates: a shape's clause built once, and one request's values for it.


def _template(shape: Shape, build: Callable[[Filters], Clause]) -> Template:
    """`build`'s clause for a shape, one bound parameter per slot it uses."""
    return Template.build("search", _Shaped, lambda bound: build(Filters(shape, bound, None)))


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


def _cursor_key(kind: str, key: Any) -> Any:
    """A sort key read back from a cursor as its column holds it; ValueError or
    TypeError for a key no row of that column gives (a cursor altered by hand)."""
    if key is None:
        return None
    if kind in ("date", "lastUpdated"):
        instant = datetime.fromisoformat(key)
        if instant.tzinfo is None:
            raise ValueError(key)
        return instant
    if kind in ("number", "quantity"):
        if isinstance(key, bool) or not isinstance(key, int | float):
            raise TypeError(key)
        return key
    if not isinstance(key, str) or NUL in key:
        raise TypeError(key)
    return key


def _key(resource_type: str, sort: Shape) -> OrderKey:
    param, value_type, descending = sort
    if value_type == "id":
        return OrderKey(resource.c.id, descending, False)
    if value_type == "lastUpdated":
        return OrderKey(resource.c.last_updated, descending, False)
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
    return OrderKey(key, descending, True)


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
        self._kinds = [sort.type for sort in request.sort]
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
        keys = [row._mapping[f"sort_{i}"] for i in range(len(self._kinds))]
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
            if not ID_PATTERN.fullmatch(resource_id):
                raise ValueError(resource_id)
            if len(keys) != len(self._kinds):
                raise ValueError("another _sort")
            values = tuple(_cursor_key(kind, k) for kind, k in zip(self._kinds, keys, strict=True))
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise invalid(
                f"_cursor={cursor!r} is not a cursor this server issued for this search",
                "_cursor",
            ) from None
        return Position(values, resource_id, before=direction == "b")
