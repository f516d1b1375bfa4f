"""SQL for what a search adds to its matches: _include, _revinclude, Patient/$everything.

https://hl7.org/fhir/R4/search.html#include and
https://hl7.org/fhir/R4/patient-operation-everything.html. Both follow references
through the reference index (`search_reference`, filled at write time), never through
resource bodies. The builders here return clauses and statements; only the repository
executes them, each through its scope (`Repository._visible`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    false,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy import union as sql_union
from sqlalchemy import union_all as sql_union_all

from health.db.access_sql import not_for_lookup
from health.db.tables import resource, search_reference
from health.fhir.search.includes import Include

# Rounds of `:iterate` after the first round (which applies every rule to the
# matches). Each round runs one query per iterating rule; a chain of references
# deeper than this (Observation.hasMember nested ten deep) is cut off here rather than
# followed without end. The caller's `limit` bounds the rows in all.
MAX_ITERATE_ROUNDS = 5

# `_include=Encounter:*`: every reference search parameter of the source type.
ANY_PARAM = "*"


class Keyed(Protocol):
    """A stored resource as far as including goes: its type and id."""

    @property
    def resource_type(self) -> str: ...

    @property
    def id(self) -> str: ...


Version = TypeVar("Version", bound=Keyed)
# Runs `select(current columns).where(clause)` in the caller's scope, ordered by
# (resource_type, id), at most `limit` rows.
Fetch = Callable[[ColumnElement[bool], int], list[Version]]


# For a rule and the resources it applies to, the (type, id) keys it leads to when
# they are not the index's to say; None when they are.
Targets = Callable[[Include, Sequence[Version]], list[tuple[str, str]] | None]


def collect_included(
    matches: Sequence[Version],
    includes: Sequence[Include],
    *,
    limit: int,
    fetch: Fetch[Version],
    targets: Targets[Version] | None = None,
) -> list[Version]:
    """The resources the include rules add to `matches`, each once, none a match.

    The first round applies every rule to the matches; each further round applies the
    `:iterate` rules to what the previous round added, until a round adds nothing,
    `MAX_ITERATE_ROUNDS` is reached, or `limit` resources were added. A rule follows
    the reference index, unless `targets` gives the keys it leads to (a source's view
    of the citizen's Patient: Repository.included).
    """
    seen = {(m.resource_type, m.id) for m in matches}
    added: list[Version] = []
    frontier: Sequence[Version] = matches
    rules = list(includes)
    for _ in range(1 + MAX_ITERATE_ROUNDS):
        if not frontier or not rules or len(added) >= limit:
            break
        start = len(added)
        for rule in rules:
            keys = targets(rule, frontier) if targets is not None else None
            clause = include_clause(rule, frontier) if keys is None else keys_clause(keys)
            if clause is None or len(added) >= limit:
                continue
            # Rows already seen come back too; asking for that many more keeps the
            # limit exact without sending the seen keys to the database.
            for version in fetch(clause, limit - len(added) + len(seen)):
                key = (version.resource_type, version.id)
                if key not in seen and len(added) < limit:
                    seen.add(key)
                    added.append(version)
        frontier = added[start:]
        rules = [rule for rule in includes if rule.iterate]
    return added


def include_clause(rule: Include, sources: Iterable[Keyed]) -> ColumnElement[bool] | None:
    """Current, not deleted resources one rule adds for `sources`; None if none can be."""
    if rule.reverse:
        return _revinclude_clause(rule, sources)
    return _include_clause(rule, sources)


def keys_clause(keys: Iterable[tuple[str, str]]) -> ColumnElement[bool] | None:
    """Current, not deleted resources of these few (type, id) keys, each found by
    primary key; None for no keys."""
    wanted = sorted(set(keys))
    if not wanted:
        return None
    return and_(
        resource.c.deleted.is_(False),
        or_(*(and_(resource.c.resource_type == t, resource.c.id == i) for t, i in wanted)),
    )


def _include_clause(rule: Include, sources: Iterable[Keyed]) -> ColumnElement[bool] | None:
    # _include=Source:param[:Target]: what the sources of that type refer to.
    ids = sorted({s.id for s in sources if s.resource_type == rule.source_type})
    if not ids:
        return None
    references = select(search_reference.c.target_type, search_reference.c.target_id).where(
        search_reference.c.resource_type == rule.source_type,
        search_reference.c.resource_id.in_(ids),
    )
    if rule.param != ANY_PARAM:
        # `param || ''` keeps the planner on the owner index (resource_type,
        # resource_id): a few rows per source. Without statistics SQLite prefers the
        # lookup index (resource_type, param, ...), which reads every reference of
        # that parameter of the type.
        references = references.where(search_reference.c.param.concat("") == rule.param)
    if rule.target_type is not None:
        references = references.where(search_reference.c.target_type == rule.target_type)
    return and_(
        resource.c.deleted.is_(False),
        tuple_(resource.c.resource_type, resource.c.id).in_(references),
    )


def _revinclude_clause(rule: Include, sources: Iterable[Keyed]) -> ColumnElement[bool] | None:
    # _revinclude=Source:param[:Target]: resources of Source whose param refers to one
    # of the sources (of type Target, if given).
    targets: dict[str, set[str]] = {}
    for s in sources:
        if rule.target_type is None or s.resource_type == rule.target_type:
            targets.setdefault(s.resource_type, set()).add(s.id)
    if not targets:
        return None
    # The plain IN lists let either database look the rows up by an index on
    # target_id (the lookup index with a parameter, the target index without); the
    # pairs are then checked exactly when the sources are of several types.
    referring = select(search_reference.c.resource_type, search_reference.c.resource_id).where(
        search_reference.c.target_type.in_(sorted(targets)),
        search_reference.c.target_id.in_(sorted(set().union(*targets.values()))),
    )
    if len(targets) > 1:
        referring = referring.where(
            or_(
                *(
                    and_(
                        search_reference.c.target_type == target_type,
                        search_reference.c.target_id.in_(sorted(ids)),
                    )
                    for target_type, ids in sorted(targets.items())
                )
            )
        )
    if rule.param != ANY_PARAM:
        referring = referring.where(
            search_reference.c.resource_type == rule.source_type,
            search_reference.c.param == rule.param,
        )
    return and_(
        resource.c.resource_type == rule.source_type,
        resource.c.deleted.is_(False),
        tuple_(resource.c.resource_type, resource.c.id).in_(referring),
    )


# Patient/$everything


def everything_page(
    patient_id: str,
    *,
    columns: Sequence[Any],
    types: Sequence[str] | None,
    since: datetime | None,
    after: tuple[str, str] | None,
    limit: int,
    scope: Callable[[Select[Any], Any], Select[Any]],
    hidden_references: Sequence[tuple[str, str]] = (),
    own_references: Sequence[tuple[str, str]] = (),
) -> Select[Any]:
    """The next `limit` resources of a patient's record, by (type, id): `columns` of
    `resource` and `in_compartment` (False for a resource outside every compartment that
    the record refers to).

    The record is the patient's compartment (every current resource whose `patient_id`
    is the patient's, the Patient included) plus the current resources outside every
    compartment (`patient_id` is null: Practitioner, Organization, Location,
    Medication, ...) that a resource of the compartment refers to. `after` continues
    where a page ended. Ordering and the cursor comparison both happen in the database,
    so they agree under any collation.

    `scope(statement, table)` is the caller's scope on a statement over `table` (the
    resource table or an alias). It applies to the compartment, to the directory, and
    to the resources whose references lead to the directory: a ward named only by an
    encounter the caller may not see would tell it where the citizen was treated.
    `hidden_references` are (type, parameter) pairs whose references lead nowhere for
    this caller (a source's view of the Patient's attributed references), and
    `own_references` the (type, id) keys those references lead to all the same (what
    the source itself reported on the Patient: the GP it named).
    """
    filters = [resource.c.deleted.is_(False)]
    if types is not None:
        filters.append(resource.c.resource_type.in_(sorted(set(types))))
    if since is not None:
        filters.append(resource.c.last_updated >= since)
    compartment = select(
        resource.c.resource_type, resource.c.id, true().label("in_compartment")
    ).where(resource.c.patient_id == patient_id, *filters)
    # The keyset as one row-value comparison: both databases seek it as a range of an
    # index. As `type > ? OR (type = ? AND id > ?)`, SQLite read every resource of the
    # cursor's type after its id, of all patients (600 to 900 ms at 1,000 patients:
    # docs/BENCHMARKS.md, "Search", finding 6).
    if after is not None:
        compartment = compartment.where(
            tuple_(resource.c.resource_type, resource.c.id) > tuple_(*after)
        )
    # The keys the patient's resources refer to, driven from the patient's own
    # resources (ix_resource_patient) to their index rows (the owner index), so no
    # index on search_reference.patient_id is needed. The owners are `resource` itself,
    # not an alias, inside this derived table: the caller's scope on `resource` is
    # built once per process (access_sql), on an alias once per request (2 ms of a
    # clinician's $everything page: docs/BENCHMARKS.md).
    referenced = (
        select(search_reference.c.target_type, search_reference.c.target_id)
        .select_from(
            resource.join(
                search_reference,
                and_(
                    search_reference.c.resource_type == resource.c.resource_type,
                    search_reference.c.resource_id == resource.c.id,
                ),
            )
        )
        .where(resource.c.patient_id == patient_id, search_reference.c.target_id.is_not(None))
        .distinct()
    )
    for resource_type, param in hidden_references:
        referenced = referenced.where(
            ~and_(
                search_reference.c.resource_type == resource_type,
                search_reference.c.param == param,
            )
        )
    referenced = scope(referenced, resource)
    if after is not None:
        referenced = referenced.where(
            tuple_(search_reference.c.target_type, search_reference.c.target_id) > tuple_(*after)
        )
    if own_references:
        # A few keys, as literal rows (portable, unlike VALUES with column names).
        own = sql_union_all(
            *(
                select(
                    literal(target_type, String).label("target_type"),
                    literal(target_id, String).label("target_id"),
                )
                for target_type, target_id in sorted(set(own_references))
            )
        ).subquery("own")
        own_keys = select(own.c.target_type, own.c.target_id)
        if after is not None:
            own_keys = own_keys.where(tuple_(own.c.target_type, own.c.target_id) > tuple_(*after))
        referenced = sql_union(referenced, own_keys)  # type: ignore[assignment]
    # Joined to `resource` from those few keys, each found by primary key. As
    # `(type, id) IN (referenced)`, SQLite read every directory resource of the
    # referenced types (10 ms at 1,000 patients, on every page).
    keys = referenced.subquery("referenced")
    directory = (
        select(resource.c.resource_type, resource.c.id, false().label("in_compartment"))
        .select_from(
            keys.join(
                resource,
                and_(
                    resource.c.resource_type == keys.c.target_type,
                    resource.c.id == keys.c.target_id,
                ),
            )
        )
        # As an index lookup, SQLite read every directory resource (5,001 at 100
        # patients) and probed the few referenced keys for each, instead of finding
        # those keys by primary key (docs/BENCHMARKS.md, "Search").
        .where(not_for_lookup(resource.c.patient_id).is_(None), *filters)
    )
    record = sql_union_all(scope(compartment, resource), scope(directory, resource)).subquery(
        "record"
    )
    page = (
        select(record.c.resource_type, record.c.id, record.c.in_compartment)
        .order_by(record.c.resource_type, record.c.id)
        .limit(limit)
        .subquery("page")
    )
    # The page's resources joined by primary key in the same statement: fetched by a
    # second query naming each key, the page cost a clause of a hundred keys built,
    # keyed and compiled on every request (a fifth of a page of 100 in-process).
    return scope(
        select(*columns, page.c.in_compartment)
        .select_from(
            page.join(
                resource,
                and_(resource.c.resource_type == page.c.resource_type, resource.c.id == page.c.id),
            )
        )
        .order_by(page.c.resource_type, page.c.id),
        resource,
    )
