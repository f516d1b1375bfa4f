"""The caller's visible scope (health.access.scope.Visibility) as one SQL clause.

Applied by Repository._visible to every query it builds, on the resource table, the
version table and the search index tables alike: each carries the resource type, the
resource id, the patient whose compartment the row is in and who recorded it, so the
same clause filters a resource and its index rows, and paging, totals and includes
never see what the caller may not (docs/ACCESS.md has the rules in prose).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, literal, not_, or_, select

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

Clause = ColumnElement[bool]
_DIRECTORY = sorted(SHARED_DIRECTORY_TYPES)


def visible_clause(v: Visibility, table: Any) -> Clause | None:
    """What of `table` the caller may see; None: everything."""
    if v.everything:
        return None
    if v.kind is ActorKind.auditor:
        # Auditors read the access log (health/audit/), never the record itself.
        return false()
    parts: list[Clause] = []
    if v.readable_types is not None:
        parts.append(table.c.resource_type.in_(sorted(v.readable_types)))
    outside = and_(
        table.c.patient_id.is_(None),
        or_(table.c.resource_type.in_(_DIRECTORY), table.c.recorded_by.in_(v.parties)),
    )
    if v.record_of is not None:
        inside: Clause = table.c.patient_id == v.record_of
    elif v.kind is ActorKind.client:
        inside = _client(v, table)
    elif v.kind is ActorKind.clinician:
        inside = _clinician(v, table)
    else:
        inside = false()
    if v.record_of is None:
        # Whom a citizen blocked, permitted or hid things from is theirs to know: a
        # clinician or a source never sees the Consent itself, only its effect.
        inside = and_(inside, table.c.resource_type != "Consent")
    parts.append(or_(outside, inside))
    return and_(*parts)


def _id_of(table: Any) -> Any:
    return table.c.id if "id" in table.c else table.c.resource_id


def _client(v: Visibility, table: Any) -> Clause:
    """What the client's organisation recorded, and the Patient it recorded it for."""
    patients_recorded_for = (
        select(resource.c.patient_id)
        .where(resource.c.recorded_by.in_(v.parties), resource.c.patient_id.is_not(None))
        .correlate(None)
    )
    return and_(
        table.c.patient_id.is_not(None),
        or_(
            table.c.recorded_by.in_(v.parties),
            and_(table.c.resource_type == "Patient", _id_of(table).in_(patients_recorded_for)),
        ),
    )


def _clinician(v: Visibility, table: Any) -> Clause:
    # Each is a probe for the row's own patient (correlated EXISTS on an index that
    # starts with the party or practitioner and the patient), not a list of every
    # citizen an organisation treats, which at national scale runs to hundreds of
    # thousands.
    now = v.now
    emergency = _exists(
        break_glass,
        break_glass.c.patient_id == table.c.patient_id,
        break_glass.c.practitioner == v.practitioner,
        break_glass.c.expires > now,
        break_glass.c.started <= now,
    )
    allowed = _exists(
        care_relationship,
        care_relationship.c.patient_id == table.c.patient_id,
        care_relationship.c.party.in_(v.parties),
        or_(
            care_relationship.c.until.is_(None),
            care_relationship.c.until >= v.rules.window_start(now),
        ),
    )
    if v.rules.policy is Policy.opt_in:
        permit = consent_rule.alias("permit")
        allowed = and_(
            allowed,
            _exists(
                permit,
                permit.c.patient_id == table.c.patient_id,
                permit.c.effect == "permit",
                _concerns(permit, v),
                _in_force(permit, v),
            ),
        )
    return and_(
        table.c.patient_id.is_not(None),
        or_(
            emergency,
            and_(
                or_(allowed, table.c.recorded_by.in_(v.parties)),
                not_(_denied(v, table)),
                not_(_hidden(v, table)),
            ),
        ),
    )


def _exists(rule_table: Any, *conditions: Clause) -> Clause:
    """EXISTS over `rule_table`, correlated with whatever row it is tested for."""
    return select(literal(1)).where(*conditions).correlate_except(rule_table).exists()


def _concerns(rule: Any, v: Visibility) -> Clause:
    """The rule names one of the caller's parties, or everyone."""
    return or_(rule.c.party.is_(None), rule.c.party.in_(v.parties))


def _in_force(rule: Any, v: Visibility) -> Clause:
    return and_(
        or_(rule.c.since.is_(None), rule.c.since <= v.now),
        or_(rule.c.until.is_(None), rule.c.until > v.now),
    )


def _denied(v: Visibility, table: Any) -> Clause:
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
        _concerns(deny, v),
        _in_force(deny, v),
        or_(deny.c.resource_class.is_(None), deny.c.resource_class == table.c.resource_type),
        or_(deny.c.label_code.is_(None), labelled),
    )


def _hidden(v: Visibility, table: Any) -> Clause:
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
            _concerns(hide, v),
            _in_force(hide, v),
            or_(episode.c.recorded_by.is_(None), episode.c.recorded_by.not_in(v.parties)),
            or_(
                and_(
                    table.c.resource_type == hide.c.target_type,
                    _id_of(table) == hide.c.target_id,
                ),
                refers,
            ),
        )
    )
