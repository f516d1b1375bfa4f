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
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select

from health.db.tables import INDEX_TABLES, resource
from health.fhir.errors import invalid
from health.fhir.search.params import Condition, Has, SearchRequest, SortKey
from health.fhir.search.values import (
    APPROXIMATE_FRACTION,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    Token,
    approximate_window,
)

Visible = Callable[[Select[Any], Any], Select[Any]]
Clause = ColumnElement[bool]
# The `identifier:of-type` rows: system "type-system|type-code", code the value.
OF_TYPE_SUFFIX = ":of-type"


class Filters:
    """Compiles conditions to WHERE clauses, each subquery through `visible`."""

    def __init__(
        self, visible: Visible, now: datetime, patient: tuple[str, str] | None = None
    ) -> None:
        self.visible = visible
        self.now = now
        # (resource type, patient id) when every match of that type lies in the
        # patient's compartment (SearchRequest.patient): index lookups of that type
        # then read only that patient's rows.
        self.patient = patient

    def confined(self, resource_type: str, table: Any) -> list[Clause]:
        if self.patient is None or self.patient[0] != resource_type:
            return []
        return [table.c.patient_id == self.patient[1]]

    def clauses(
        self, resource_type: str, conditions: tuple[Condition | Has, ...], table: Any = resource
    ) -> list[Clause]:
        """Clauses over `table` (the resource table or an alias): all must hold."""
        where: list[Clause] = [table.c.resource_type == resource_type, table.c.deleted.is_(False)]
        where += self.confined(resource_type, table)
        for condition in conditions:
            where.append(self.condition(resource_type, condition, table))
        return where

    def ids(self, resource_type: str, conditions: tuple[Condition | Has, ...]) -> Select[Any]:
        """The ids of current resources of a type that match: for chains and _has."""
        target = resource.alias()
        return self.visible(
            select(target.c.id)
            .where(*self.clauses(resource_type, conditions, target))
            .correlate(None),
            target,
        )

    def condition(self, resource_type: str, condition: Condition | Has, table: Any) -> Clause:
        if isinstance(condition, Has):
            return table.c.id.in_(self.has(resource_type, condition))
        if condition.type == "id":
            return table.c.id.in_([str(v) for v in condition.values])
        if condition.type == "lastUpdated":
            return or_(
                *(_date_clause(table.c.last_updated, None, v, self.now) for v in condition.values)
            )
        if condition.chain is not None:
            return table.c.id.in_(self.chain(resource_type, condition))
        index = INDEX_TABLES[condition.type]
        if condition.modifier == "missing":
            rows = (
                select(index.c.resource_id)
                .where(index.c.resource_type == resource_type, index.c.param == condition.param)
                .correlate(None)
            )
            return table.c.id.not_in(rows) if condition.values[0] else table.c.id.in_(rows)
        rows = self.rows(resource_type, condition)
        # :not matches resources with no matching value, those without the element too:
        # https://hl7.org/fhir/R4/search.html#modifiers
        return table.c.id.not_in(rows) if condition.modifier == "not" else table.c.id.in_(rows)

    def rows(
        self, resource_type: str, condition: Condition, *, scoped: bool = False
    ) -> Select[Any]:
        """Ids of the resources with an index row matching any of the values; in the
        caller's scope when `scoped` (the ids are the result, not a test of a row)."""
        index = INDEX_TABLES[condition.type]
        param = condition.param
        if condition.modifier == "of-type":
            param += OF_TYPE_SUFFIX
        alternatives = [
            _value_clause(index, condition, value, self.now) for value in condition.values
        ]
        rows = (
            select(index.c.resource_id)
            .where(
                index.c.resource_type == resource_type,
                index.c.param == param,
                or_(*alternatives),
                *self.confined(resource_type, index),
            )
            .correlate(None)
        )
        return self.visible(rows, index) if scoped else rows

    def chain(self, resource_type: str, condition: Condition) -> Select[Any]:
        """Resources whose reference points at a resource matching the chained condition."""
        assert condition.chain is not None
        references = INDEX_TABLES["reference"]
        per_target = [
            and_(
                references.c.target_type == target_type,
                references.c.target_id.in_(self.ids(target_type, (condition.chain,))),
            )
            for target_type in condition.target_types
        ]
        # The row's own references; the targets they may point at are scoped (`ids`).
        return (
            select(references.c.resource_id)
            .where(
                references.c.resource_type == resource_type,
                references.c.param == condition.param,
                or_(*per_target),
            )
            .correlate(None)
        )

    def has(self, resource_type: str, has: Has) -> Select[Any]:
        """Targets of `reference` in resources of `source_type` matching the condition."""
        references = INDEX_TABLES["reference"]
        # The references of the scoped sources (`ids`): visible as their sources are.
        return (
            select(references.c.target_id)
            .where(
                references.c.resource_type == has.source_type,
                references.c.param == has.reference_param,
                references.c.target_type == resource_type,
                references.c.resource_id.in_(self.ids(has.source_type, (has.condition,))),
            )
            .correlate(None)
        )


def _value_clause(index: Any, condition: Condition, value: Any, now: datetime) -> Clause:
    kind = condition.type
    if kind == "token":
        if condition.modifier == "text":
            # The display or text starts with the value, or one of its words does.
            return or_(
                index.c.text.like(_escape_like(value) + "%", escape="\\"),
                index.c.text.like("% " + _escape_like(value) + "%", escape="\\"),
            )
        return _token_clause(index, value)
    if kind == "string":
        if condition.modifier == "exact":
            return index.c.exact == value  # type: ignore[no-any-return]
        if condition.modifier == "contains":
            return index.c.value.like(  # type: ignore[no-any-return]
                "%" + _escape_like(value) + "%", escape="\\"
            )
        return _prefix_clause(index.c.value, value)
    if kind == "date":
        return _date_clause(index.c.low, index.c.high, value, now)
    if kind == "number":
        return _number_clause(index.c.value, value)
    if kind == "quantity":
        return _quantity_clause(index, value)
    if kind == "reference":
        return _reference_clause(index, value, condition.target_types)
    return index.c.value == value  # type: ignore[no-any-return]  # uri


def _token_clause(index: Any, token: Token) -> Clause:
    conditions: list[Clause] = []
    if token.code is not None:
        conditions.append(index.c.code == token.code)
    if token.system_given:
        conditions.append(
            index.c.system.is_(None) if token.system is None else index.c.system == token.system
        )
    return and_(*conditions)


def _prefix_clause(column: Any, prefix: str) -> Clause:
    """Values that start with `prefix`, as a range the lookup index can seek.

    `LIKE 'cum%'` could not use the index: SQLite's LIKE ignores ASCII case, and
    PostgreSQL only serves LIKE from a btree in the "C" collation (docs/BENCHMARKS.md,
    "Search", finding 4). A range is the same test under code point order, which is
    SQLite's BINARY collation and the "C" collation of `search_string.value` on
    PostgreSQL (UTF-8 bytes sort in code point order).
    """
    end = _prefix_end(prefix)
    if end is None:
        return column >= prefix  # type: ignore[no-any-return]
    return and_(column >= prefix, column < end)


# The highest code point, and the UTF-16 surrogates (no stored text holds one).
_LAST_CODE_POINT = chr(0x10FFFF)
_SURROGATES = range(0xD800, 0xE000)


def _prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix`, in code point
    order; None if there is none (an empty prefix, or one of only U+10FFFF)."""
    stem = prefix.rstrip(_LAST_CODE_POINT)
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stem[:-1] + chr(following)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _date_clause(low: Any, high: Any | None, value: DateValue, now: datetime) -> Clause:
    """A date prefix over the stored range [low, high) and the searched [vl, vh).

    https://hl7.org/fhir/R4/search.html#prefix: eq = the stored range lies within the
    searched one; ne = it does not; gt/lt = some of it lies after/before the searched
    range; ge/le = some of it lies at or after the searched range's start / before its
    end; sa/eb = all of it lies after/before; ap = it overlaps the searched range
    widened by 10% of its distance to now (values.approximate_window). With `high`
    None the column is an instant (`_lastUpdated`): the range [low, low].
    """

    def ends_after(moment: datetime) -> Clause:  # some of the stored range is >= moment
        return high > moment if high is not None else low >= moment  # type: ignore[no-any-return]

    def ends_by(moment: datetime) -> Clause:  # all of the stored range is < moment
        return high <= moment if high is not None else low < moment  # type: ignore[no-any-return]

    vl, vh = value.low, value.high
    prefix = value.prefix
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
    window_low, window_high = approximate_window(value, now)
    return and_(low < window_high, ends_after(window_low))


def _number_clause(column: Any, number: NumberValue) -> Clause:
    """Prefixes over a stored number; eq and ne use the precision the value implies."""
    prefix, value = number.prefix, number.value
    if prefix == "eq":
        return and_(column >= number.low, column < number.high)
    if prefix == "ne":
        return or_(column < number.low, column >= number.high)
    if prefix in ("gt", "sa"):
        return column > value  # type: ignore[no-any-return]
    if prefix in ("lt", "eb"):
        return column < value  # type: ignore[no-any-return]
    if prefix == "ge":
        return column >= value  # type: ignore[no-any-return]
    if prefix == "le":
        return column <= value  # type: ignore[no-any-return]
    margin = abs(value) * APPROXIMATE_FRACTION
    return and_(
        column >= min(number.low, value - margin), column < max(number.high, value + margin)
    )


def _quantity_clause(index: Any, quantity: QuantityValue) -> Clause:
    """The number, and the unit by system and code, or by code or unit text (`5||mg`).

    Units are compared as written: no UCUM conversion.
    """
    conditions = [_number_clause(index.c.value, quantity.number)]
    if quantity.system is not None:
        conditions.append(index.c.system == quantity.system)
        if quantity.code is not None:
            conditions.append(index.c.code == quantity.code)
    elif quantity.code is not None:
        conditions.append(or_(index.c.code == quantity.code, index.c.unit == quantity.code))
    return and_(*conditions)


def _reference_clause(
    index: Any, reference: ReferenceValue, target_types: tuple[str, ...]
) -> Clause:
    if reference.url is not None:
        return index.c.url == reference.url  # type: ignore[no-any-return]
    conditions: list[Clause] = [index.c.target_id == reference.id]
    target_type = reference.resource_type or (target_types[0] if target_types else None)
    if target_type is not None:
        conditions.append(index.c.target_type == target_type)
    return and_(*conditions)


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
    is_date: bool


class SearchStatements:
    """The statements of one search: a page after or before a position, and the count.

    Paging is by keyset, not offset: a cursor holds the last row's sort keys and id
    (the tie-break), so writes between two page requests neither repeat nor skip the
    resources that did not change.
    """

    def __init__(self, request: SearchRequest, visible: Visible, now: datetime) -> None:
        self.visible = visible
        patient = (request.resource_type, request.patient) if request.patient else None
        self.filters = Filters(visible, now, patient)
        self.resource_type = request.resource_type
        self.where = self.filters.clauses(request.resource_type, request.conditions)
        self.keys: list[_Key] = []
        for sort in request.sort:
            self.keys.append(self._key(request.resource_type, sort))
        self.ordered_condition = _ordered_in_the_index(request)

    def _key(self, resource_type: str, sort: SortKey) -> _Key:
        if sort.type == "id":
            return _Key(resource.c.id, sort.descending, False, False)
        if sort.type == "lastUpdated":
            return _Key(resource.c.last_updated, sort.descending, False, True)
        index = INDEX_TABLES[sort.type]
        column = index.c[_SORT_COLUMNS[sort.type][1 if sort.descending else 0]]
        aggregate = func.max(column) if sort.descending else func.min(column)
        # A correlated scalar subquery per candidate row (through the owner index), not
        # a join to an aggregate over every resource of the type: 0.06 ms instead of
        # 76 ms for `Encounter?patient=x&_sort=-date` at 1,000 patients.
        # Not narrowed by patient: with the patient id too, SQLite probed the patient
        # index, reading every date of the patient for every candidate row (2.5 s for
        # `Observation?patient=x&_sort=-date&_count=6` over 3,000 results; 57 ms without).
        key = (
            select(aggregate)
            .where(
                index.c.resource_type == resource_type,
                index.c.param == sort.param,
                index.c.resource_id == resource.c.id,
            )
            .scalar_subquery()
        )
        return _Key(key, sort.descending, True, sort.type == "date")

    def count(self) -> Select[Any]:
        return select(func.count()).select_from(resource).where(*self.where)

    def page(self, columns: tuple[Any, ...], position: Position | None, limit: int) -> Select[Any]:
        """Up to `limit` rows after `position` (before it, in reverse, if `before`)."""
        labelled = [key.expression.label(f"sort_{i}") for i, key in enumerate(self.keys)]
        backwards = position is not None and position.before
        if self.ordered_condition is not None:
            ids = self._page_from_the_index(self.ordered_condition, position, backwards, limit)
            where = [*self.filters.clauses(self.resource_type, ()), resource.c.id.in_(ids)]
            statement = select(*columns, *labelled).select_from(resource).where(*where)
        else:
            statement = select(*columns, *labelled).select_from(resource).where(*self.where)
            if position is not None:
                statement = statement.where(self._beyond(position, backwards))
        order: list[Any] = []
        for key, label in zip(self.keys, labelled, strict=True):
            descending = key.descending != backwards
            # By the selected key's name: the sort subquery runs once per row (ordering
            # by its expression, and by whether it is NULL, made PostgreSQL run it twice
            # more). Missing values last, first when paging backwards.
            term = label.desc() if descending else label.asc()
            if key.nullable:
                term = term.nulls_first() if backwards else term.nulls_last()
            order.append(term)
        order.append(resource.c.id.desc() if backwards else resource.c.id.asc())
        return statement.order_by(*order).limit(limit)

    def _page_from_the_index(
        self, condition: Condition, position: Position | None, backwards: bool, limit: int
    ) -> Select[Any]:
        """The ids of the page itself, read in id order from the condition's index rows.

        Exact because every id read here is a match: the condition is the search's
        only one (`_ordered_in_the_index`), a deleted resource has no index rows
        (Repository.save), and the caller's scope filters index rows as it filters
        their resources (both carry the type and the patient id). The keyset is stated
        here only: on the resource table as well, SQLite would read every resource of
        the type after the cursor instead.
        """
        rows = self.filters.rows(self.resource_type, condition, scoped=True)
        resource_id = rows.selected_columns.resource_id
        if position is not None:
            rows = rows.where(resource_id < position.id if backwards else resource_id > position.id)
        order = resource_id.desc() if backwards else resource_id.asc()
        # DISTINCT: a resource may have the same code twice (two codings).
        return rows.distinct().order_by(order).limit(limit)

    def _beyond(self, position: Position, backwards: bool) -> Clause:
        """Rows after the position in the (possibly reversed) order: a keyset predicate."""
        alternatives: list[Clause] = []
        equal_so_far: list[Clause] = []
        for key, value in zip(self.keys, position.keys, strict=True):
            descending = key.descending != backwards
            nulls_last = not backwards
            expression = key.expression
            if value is None:
                after: Clause = expression.is_not(None) if not nulls_last else false()
                equal: Clause = expression.is_(None)
            else:
                after = expression < value if descending else expression > value
                if key.nullable and nulls_last:
                    after = or_(after, expression.is_(None))
                equal = expression == value
            alternatives.append(and_(*equal_so_far, after))
            equal_so_far.append(equal)
        last = resource.c.id < position.id if backwards else resource.c.id > position.id
        alternatives.append(and_(*equal_so_far, last))
        return or_(*alternatives)

    def cursor(self, row: Any, *, before: bool) -> str:
        """The cursor of a row of `page`, for the page after it (or before it)."""
        keys = [row._mapping[f"sort_{i}"] for i in range(len(self.keys))]
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
            if len(keys) != len(self.keys):
                raise ValueError("another _sort")
            values = tuple(
                datetime.fromisoformat(k) if key.is_date and k is not None else k
                for key, k in zip(self.keys, keys, strict=True)
            )
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise invalid(
                f"_cursor={cursor!r} is not a cursor this server issued for this search",
                "_cursor",
            ) from None
        return Position(values, resource_id, before=direction == "b")
