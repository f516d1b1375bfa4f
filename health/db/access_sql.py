"""The caller's visible scope (health.access.scope.Visibility) as one SQL clause.

Applied by Repository._visible to every query it builds, on the resource table, the
version table and the search index tables alike: each carries the resource type, the
resource id, the patient whose compartment the row is in and who recorded it, so the
same clause filters a resource and its index rows, and paging, totals and includes
never see what the caller may not (docs/ACCESS.md has the rules in prose).

For a clinician the clause is a few hundred expression objects. Building them took
about 2 ms per table and request, and SQLAlchemy walked them all again for the cache
key of every statement that carried them (docs/BENCHMARKS.md, "Consent and
logging"). So, on the tables themselves, the clause is built once per process for
each table and shape of caller (a `Template`, health/db/templates.py), with the
caller's values (parties, now, the readable types, ...) as bound parameters, and each
request gets a small `_Scope` element that names the template and carries its own
values: its cache key is the template's number and those values, and the statement
compiles once. On an alias (the targets of chains and `_has`) the clause is still built
per request, with the values inline, because an alias is a new object every time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    exists,
    false,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from health.access.actor import ActorKind
from health.access.policy import SHARED_DIRECTORY_TYPES, Policy
from health.access.scope import Visibility
from health.db.tables import (
    break_glass,
    care_relationship,
    consent_rule,
    resource,
    search_reference,
    search_token,
)
from health.db.templates import Bound, Filled, Inline, Template

Clause = ColumnElement[bool]
_DIRECTORY = sorted(SHARED_DIRECTORY_TYPES)


def visible_clause(v: Visibility, table: Any) -> Clause | None:
    """What of `table` the caller may see; None: everything."""
    if v.everything:
        return None
    if v.kind is ActorKind.auditor:
        # Auditors read the access log (health/audit/), never the record itself.
        return false()
    shape = _Shape.of(v)
    if isinstance(table, Table):
        return _template(table, shape).fill(_values_of(v))
    return _clause(Inline(_values_of(v)), shape, table)


def decided_by_row(v: Visibility, resource_type: str) -> bool:
    """Whether the caller's scope decides each row of `resource_type` by that row's own
    columns (type, patient, who recorded it), so that a write changes what the caller
    sees only of the resources it writes.

    The directory is in no patient's compartment, so its rows are decided by type for
    every caller. Inside a record, not so for a clinician (care relationships, the
    citizen's consent, emergency access, hidden episodes: rows of other tables), nor
    for a client's view of Patients (a Patient it recorded something for: other rows of
    the record). Follows `_clause`.
    """
    if v.everything or v.record_of is not None or resource_type in SHARED_DIRECTORY_TYPES:
        return True
    if v.kind is ActorKind.client:
        return resource_type != "Patient"
    return v.kind is ActorKind.auditor


def compartment_clause(
    v: Visibility, table: Any, patient_id: str, resource_type: str | None = None
) -> Clause | None:
    """What the caller may see of the rows of `table` in one patient's compartment (a
    query that already says `patient_id = <patient_id>`, and `resource_type =
    <resource_type>` when that is given); None: all of them.

    The same rows as `visible_clause` on such a query, without what those conditions
    make true or false: the rows outside every compartment (the directory, what the
    caller recorded there), `patient_id IS NOT NULL`, and for one type what concerns
    other types (the token's types, the Consent a clinician or source never sees, the
    Patient a source recorded something for). PostgreSQL plans every part of a clause
    anew for each statement: with the whole clause, a source's searches of one
    patient's record took a third more planning (docs/BENCHMARKS.md, "The scope of a
    search in one patient's record"). For the citizen whose compartment it is (or their
    proxy), only the token's types are left: the whole clause's "outside OR patient_id
    = <record_of>" always holds there, and PostgreSQL, which cannot see that, read an
    OR of two index scans from the heap instead of the index alone."""
    if v.everything:
        return None
    if v.kind is ActorKind.auditor:
        return false()
    if v.readable_types is not None and resource_type not in (None, *v.readable_types):
        return false()
    readable = v.readable_types if resource_type is None else None
    if v.record_of is not None and v.record_of == patient_id:
        return None if readable is None else table.c.resource_type.in_(sorted(readable))
    shape = _Shape.of(v, compartment=True, one_type=resource_type)
    if isinstance(table, Table):
        return _template(table, shape).fill(_values_of(v))
    return _clause(Inline(_values_of(v)), shape, table)


@dataclass(frozen=True)
class _Shape:
    """What of the caller changes the clause's structure (everything else is a value)."""

    kind: ActorKind
    policy: Policy
    readable_types: bool
    record_of: bool
    practitioner: bool
    # For rows of one compartment (`compartment_clause`), and of one type: `Patient`,
    # `Consent` or `other` (what the clause tells apart); None: of any type.
    compartment: bool = False
    one_type: str | None = None

    @classmethod
    def of(cls, v: Visibility, *, compartment: bool = False, one_type: str | None = None) -> _Shape:
        if one_type is not None and one_type not in ("Patient", "Consent"):
            one_type = "other"
        return cls(
            kind=v.kind,
            policy=v.rules.policy,
            # A type the token does not cover is refused before (compartment_clause).
            readable_types=v.readable_types is not None and one_type is None,
            record_of=v.record_of is not None,
            practitioner=v.practitioner is not None,
            compartment=compartment,
            one_type=one_type,
        )


def _values_of(v: Visibility) -> dict[str, Any]:
    """The caller's values the clause compares with, by name."""
    return {
        "now": v.now,
        "window_start": v.rules.window_start(v.now),
        "parties": list(v.parties),
        "practitioner": v.practitioner,
        "record_of": v.record_of,
        "readable_types": sorted(v.readable_types) if v.readable_types is not None else None,
    }


def _template(table: Table, shape: _Shape) -> Template:
    template = _templates.get((table, shape))
    if template is None:
        with _templates_lock:
            template = _templates.get((table, shape))
            if template is None:
                template = Template.build(
                    "access", _Scope, lambda bound: _clause(bound, shape, table)
                )
                _templates[(table, shape)] = template
    return template


_templates: dict[tuple[Table, _Shape], Template] = {}
_templates_lock = threading.Lock()


class _Scope(Filled):
    """A scope's template with one caller's values (health/db/templates.py)."""

    __visit_name__ = "access_scope"
    inherit_cache = True  # keyed as Filled is: by template number and values


@compiles(_Scope)
def _compile_scope(scope: _Scope, compiler: SQLCompiler, **kw: Any) -> str:
    # Not for lookup: without statistics SQLite took a client's "patient_id IS NULL OR
    # recorded_by IN (...) OR resource_type = 'Patient'" for a few rows, and read every
    # resource the client recorded instead of the few keys an include or a $everything
    # page asks for (docs/BENCHMARKS.md, "Search", "The scope on includes and
    # $everything"). The scope filters what a query finds; it never finds.
    return _unary_plus_on_sqlite("(" + compiler.process(scope.with_values(), **kw) + ")", compiler)


def not_for_lookup(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """`expression` as a filter SQLite must not look rows up by; as it is elsewhere."""
    return _NotForLookup(expression)


class _NotForLookup(ColumnElement[Any]):
    inherit_cache = True

    def __init__(self, expression: ColumnElement[Any]) -> None:
        self.filtered = expression
        self.type = expression.type

    _traverse_internals = [("filtered", InternalTraversal.dp_clauseelement)]  # noqa: RUF012


@compiles(_NotForLookup)
def _compile_not_for_lookup(element: _NotForLookup, compiler: SQLCompiler, **kw: Any) -> str:
    return _unary_plus_on_sqlite(compiler.process(element.filtered, **kw), compiler)


def _unary_plus_on_sqlite(sql: str, compiler: SQLCompiler) -> str:
    # A unary plus, a no-op on the value, keeps SQLite from using the term to look rows
    # up by: https://sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_
    return "+" + sql if compiler.dialect.name == "sqlite" else sql


def _clause(p: Inline | Bound, shape: _Shape, table: Any) -> Clause:
    parts: list[Clause] = []
    if shape.readable_types:
        parts.append(table.c.resource_type.in_(p.many("readable_types", table.c.resource_type)))
    if shape.record_of:
        inside: Clause = table.c.patient_id == p.one("record_of", table.c.patient_id)
    elif shape.one_type == "Consent":
        # Whom a citizen blocked, permitted or hid things from is theirs to know: a
        # clinician or a source never sees the Consent itself, only its effect.
        inside = false()
    else:
        if shape.kind is ActorKind.client:
            inside = _client(p, table, patients=shape.one_type in (None, "Patient"))
        elif shape.kind is ActorKind.clinician:
            inside = _clinician(p, shape, table)
        else:
            inside = false()
        if shape.one_type is None:
            inside = and_(inside, table.c.resource_type != "Consent")
    if shape.compartment:
        # The query's own `patient_id = <patient>` holds: the row is in a compartment.
        parts.append(inside)
        return and_(*parts)
    outside = and_(
        table.c.patient_id.is_(None),
        or_(
            table.c.resource_type.in_(_DIRECTORY),
            table.c.recorded_by.in_(p.many("parties", table.c.recorded_by)),
        ),
    )
    if not shape.record_of:
        inside = and_(table.c.patient_id.is_not(None), inside)
    parts.append(or_(outside, inside))
    return and_(*parts)


def _id_of(table: Any) -> Any:
    return table.c.id if "id" in table.c else table.c.resource_id


def _client(p: Inline | Bound, table: Any, *, patients: bool) -> Clause:
    """What the client's organisation recorded, and the Patient it recorded it for
    (`patients`: whether the rows may be Patients)."""
    # A probe for the row's own patient on ix_resource_recorded_by (recorded_by,
    # patient_id), like the clinician's, not `id IN (every patient the organisation
    # recorded for)`: that list is a read of every resource the organisation recorded
    # (30,000 at 100 patients; at national scale, millions), which SQLite made in
    # statements that never needed it and PostgreSQL planned as a scan of the table
    # (docs/BENCHMARKS.md, "Search", "The scope on includes and $everything").
    recorded_by_it = table.c.recorded_by.in_(p.many("parties", table.c.recorded_by))
    if not patients:
        return recorded_by_it
    recorded = resource.alias("recorded_for")
    recorded_for_patient = _exists(
        recorded,
        recorded.c.patient_id == _id_of(table),
        recorded.c.recorded_by.in_(p.many("parties", recorded.c.recorded_by)),
    )
    return or_(recorded_by_it, and_(table.c.resource_type == "Patient", recorded_for_patient))


def _clinician(p: Inline | Bound, shape: _Shape, table: Any) -> Clause:
    # Each is a probe for the row's own patient (correlated EXISTS on an index that
    # starts with the party or practitioner and the patient), not a list of every
    # citizen an organisation treats, which at national scale runs to hundreds of
    # thousands.
    # Emergency access is a clinician's own (break_glass.practitioner is never null).
    emergency: Clause = false()
    if shape.practitioner:
        emergency = _exists(
            break_glass,
            break_glass.c.patient_id == table.c.patient_id,
            break_glass.c.practitioner == p.one("practitioner", break_glass.c.practitioner),
            break_glass.c.expires > p.one("now", break_glass.c.expires),
            break_glass.c.started <= p.one("now", break_glass.c.started),
        )
    allowed = _exists(
        care_relationship,
        care_relationship.c.patient_id == table.c.patient_id,
        care_relationship.c.party.in_(p.many("parties", care_relationship.c.party)),
        or_(
            care_relationship.c.until.is_(None),
            care_relationship.c.until >= p.one("window_start", care_relationship.c.until),
        ),
    )
    if shape.policy is Policy.opt_in:
        permit = consent_rule.alias("permit")
        allowed = and_(
            allowed,
            _exists(
                permit,
                permit.c.patient_id == table.c.patient_id,
                permit.c.effect == "permit",
                _concerns(permit, p),
                _in_force(permit, p),
            ),
        )
    return or_(
        emergency,
        and_(
            or_(allowed, table.c.recorded_by.in_(p.many("parties", table.c.recorded_by))),
            not_(_denied(p, table)),
            not_(_hidden(p, table)),
        ),
    )


def _exists(rule_table: Any, *conditions: Clause) -> Clause:
    """EXISTS over `rule_table`, correlated with whatever row it is tested for."""
    return select(literal(1)).where(*conditions).correlate_except(rule_table).exists()


def _concerns(rule: Any, p: Inline | Bound) -> Clause:
    """The rule names one of the caller's parties, or everyone."""
    return or_(rule.c.party.is_(None), rule.c.party.in_(p.many("parties", rule.c.party)))


def _in_force(rule: Any, p: Inline | Bound) -> Clause:
    return and_(
        or_(rule.c.since.is_(None), rule.c.since <= p.one("now", rule.c.since)),
        or_(rule.c.until.is_(None), rule.c.until > p.one("now", rule.c.until)),
    )


def _denied(p: Inline | Bound, table: Any) -> Clause:
    """A deny rule of the citizen's consent covers this row for the caller."""
    deny = consent_rule.alias("deny")
    label = search_token.alias("security_label")
    # Nested EXISTS correlate with `table` and the rule explicitly: left to itself,
    # SQLAlchemy correlates only with the query directly around them.
    labelled = (
        select(literal(1))
        .where(
            label.c.resource_type == table.c.resource_type,
            label.c.resource_id == _id_of(table),
            label.c.param == "_security",
            label.c.code == deny.c.label_code,
            or_(deny.c.label_system.is_(None), label.c.system == deny.c.label_system),
        )
        .correlate_except(label)
        .exists()
    )
    return exists().where(
        deny.c.patient_id == table.c.patient_id,
        deny.c.effect == "deny",
        deny.c.target_type.is_(None),
        _concerns(deny, p),
        _in_force(deny, p),
        or_(deny.c.resource_class.is_(None), deny.c.resource_class == table.c.resource_type),
        or_(deny.c.label_code.is_(None), labelled),
    )


def _hidden(p: Inline | Bound, table: Any) -> Clause:
    """The row is, or refers to, an episode the citizen hid from the caller (an
    episode stays visible to the organisation that recorded it)."""
    hide = consent_rule.alias("hide")
    episode = resource.alias("episode")
    reference = search_reference.alias("episode_reference")
    refers = (
        select(literal(1))
        .where(
            reference.c.resource_type == table.c.resource_type,
            reference.c.resource_id == _id_of(table),
            reference.c.target_type == hide.c.target_type,
            reference.c.target_id == hide.c.target_id,
        )
        .correlate_except(reference)
        .exists()
    )
    return (
        exists()
        .select_from(
            hide.join(
                episode,
                and_(
                    episode.c.resource_type == hide.c.target_type, episode.c.id == hide.c.target_id
                ),
            )
        )
        .where(
            hide.c.patient_id == table.c.patient_id,
            hide.c.effect == "deny",
            hide.c.target_type.is_not(None),
            _concerns(hide, p),
            _in_force(hide, p),
            or_(
                episode.c.recorded_by.is_(None),
                episode.c.recorded_by.not_in(p.many("parties", episode.c.recorded_by)),
            ),
            or_(
                and_(
                    table.c.resource_type == hide.c.target_type,
                    _id_of(table) == hide.c.target_id,
                ),
                refers,
            ),
        )
    )
