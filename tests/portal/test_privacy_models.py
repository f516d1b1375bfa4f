"""The pure parts of the privacy pages: Consent shapes and how they read back, the
power-of-attorney form, the access log's lines and period, and the catalogs."""

from __future__ import annotations

from datetime import UTC, date, datetime

from babel.messages.pofile import read_po

from health import PROJECT_ROOT
from health.access.consent import compile_consent
from health.access.proxy import proxy_right
from health.audit.entries import AuditEntry, AuditRecord
from health.portal import access_log, attorney, consent_choices

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CPR = "urn:oid:1.2.208.176.1.2"


def _entry(**values: object) -> AuditEntry:
    fields: dict[str, object] = dict(
        action="read",
        outcome="success",
        purpose="treatment",
        agent_kind="clinician",
        agent="Practitioner/p1",
        agent_name="Dr. Who",
        organization="Organization/o1",
        client_id=None,
        on_behalf_of=None,
        patient_id="pat",
        entities=("Observation/1", "Observation/2", "Encounter/9"),
    )
    fields.update(values)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def test_a_block_compiles_to_a_deny_of_that_party_and_reads_back() -> None:
    consent = {**consent_choices.block("pat", "Practitioner/p1", "Dr. Who", NOW), "id": "c1"}
    [rule] = compile_consent(consent)
    assert (rule.effect, rule.party) == ("deny", "Practitioner/p1")
    choice = consent_choices.choice_of(consent)
    assert (choice.kind, choice.reference, choice.display) == (
        "block",
        "Practitioner/p1",
        "Dr. Who",
    )


def test_a_permit_and_a_hidden_episode_compile_as_the_rules_expect() -> None:
    permit = {**consent_choices.permit("pat", "Organization/o1", "Nordhavn", NOW), "id": "c2"}
    assert [(r.effect, r.party) for r in compile_consent(permit)] == [("permit", "Organization/o1")]
    hidden = {**consent_choices.hide("pat", "Encounter/e1", NOW), "id": "c3"}
    [rule] = compile_consent(hidden)
    assert (rule.effect, rule.target_type, rule.target_id) == ("deny", "Encounter", "e1")
    kinds = [c.kind for c in consent_choices.choices([permit, hidden, {"status": "inactive"}])]
    assert kinds == ["hide", "permit"]


def test_only_directory_parties_and_episodes_are_accepted() -> None:
    assert consent_choices.is_party("Organization/o1")
    assert not consent_choices.is_party("Patient/p") and not consent_choices.is_party(
        "Organization/"
    )
    assert consent_choices.is_episode("EpisodeOfCare/x")
    assert not consent_choices.is_episode("Observation/x")


def test_the_grant_form_is_checked_field_by_field() -> None:
    today = date(2026, 3, 1)
    good = attorney.check_grant("210285-0991", " Mads  Kristensen ", "2027-01-01", today)
    assert good.problems == () and good.national_id == "2102850991"
    assert good.name == "Mads Kristensen"
    assert attorney.check_grant("12345", "", "2026-03-01", today).problems == (
        "national_id",
        "name",
        "end",
    )
    assert attorney.check_grant("2102850991", "M", "2032-01-01", today).problems == ("end",)


def test_a_granted_power_of_attorney_gives_the_right_until_revoked() -> None:
    today = date(2026, 3, 1)
    grant = attorney.check_grant("2102850991", "Mads Kristensen", "2027-01-01", today)
    related = attorney.related_person(grant, "pat", CPR, today)
    arguments = dict(
        related_person_id="rp",
        patient_id="pat",
        recorded_by="Patient/pat",
        principal_birth_date="1958-06-14",
        proxy_national_id="2102850991",
        national_id_systems=[CPR],
        child_age=15,
        now=NOW,
    )
    right = proxy_right(related, **arguments)  # type: ignore[arg-type]
    assert right is not None and right.basis == "attorney"
    assert proxy_right(attorney.revoked(related), **arguments) is None  # type: ignore[arg-type]
    [listed] = attorney.attorneys([{**related, "id": "rp"}], [CPR])
    assert (listed.name, listed.national_id, listed.revocable) == (
        "Mads Kristensen",
        "2102850991",
        True,
    )


def test_log_lines_name_count_and_mark_emergencies() -> None:
    names = {"Practitioner/p1": "Mette Andersen", "Organization/o1": "Søndergade"}
    rows = [
        AuditRecord(3, NOW, _entry(purpose="emergency"), "", ""),
        AuditRecord(2, NOW, _entry(action="login", agent="Patient/pat", purpose="self"), "", ""),
        AuditRecord(1, NOW, _entry(outcome="refused"), "", ""),
    ]
    page = access_log.log_page(rows, names, {"Patient/pat"}, page_size=2)
    first, second = page.lines
    assert first.emergency and first.who == "Mette Andersen" and first.organisation == "Søndergade"
    assert first.count == 3 and first.types == (("Encounter", 1), ("Observation", 2))
    assert second.by_you and not second.emergency
    assert page.older == 2
    last = access_log.log_page(rows[2:], names, set(), page_size=2)
    assert last.older is None and last.lines[0].refused
    assert access_log.references_in(rows) == {"Practitioner/p1", "Organization/o1"}


def test_the_period_is_danish_days_inclusive() -> None:
    period = access_log.period_of("2026-03-01", "2026-03-01")
    assert period.since is not None and period.until is not None
    assert (period.until - period.since).days == 1
    assert period.since.utcoffset() is not None
    assert access_log.period_of("soon", "").error


def test_every_message_is_in_both_catalogs_and_translated_to_danish() -> None:
    locale = PROJECT_ROOT / "locale"
    template = read_po((locale / "messages.pot").open("rb"))
    ids = {message.id for message in template if message.id}
    for language in ("da", "en"):
        catalog = read_po((locale / language / "LC_MESSAGES" / "messages.po").open("rb"))
        assert ids <= {message.id for message in catalog if message.id}, language
    danish = read_po((locale / "da" / "LC_MESSAGES" / "messages.po").open("rb"))
    untranslated = [
        m.id
        for m in danish
        if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)
    ]
    assert untranslated == []
    # English is the msgids themselves: nothing in its catalog says otherwise.
    english = read_po((locale / "en" / "LC_MESSAGES" / "messages.po").open("rb"))
    assert not [
        m.id
        for m in english
        if m.id and any(m.string if isinstance(m.string, tuple) else [m.string])
    ]


def test_treatment_relationships_are_one_line_per_party() -> None:
    from health.portal.record import Record
    from health.portal.who_may_look import who_may_look

    earlier, later = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    rows = [
        {
            "party": "Organization/o1",
            "since": earlier,
            "until": earlier,
            "resource_type": "Encounter",
            "resource_id": "e1",
        },
        {
            "party": "Organization/o1",
            "since": later,
            "until": None,
            "resource_type": "EpisodeOfCare",
            "resource_id": "c1",
        },
        {
            "party": "Practitioner/p1",
            "since": None,
            "until": later,
            "resource_type": "CareTeam",
            "resource_id": "t1",
        },
    ]
    blocked = {**consent_choices.block("pat", "Practitioner/p1", "Dr", NOW), "id": "c9"}
    record = Record.of("pat", [blocked])
    view = who_may_look(record, rows, {"Organization/o1": "Aarhus", "Practitioner/p1": "Dr"})
    [aarhus, doctor] = view.relationships
    assert (aarhus.since, aarhus.until, aarhus.basis) == (earlier, None, "EpisodeOfCare/c1")
    assert not aarhus.blocked and doctor.blocked and doctor.until == later
    assert [c.reference for c in view.blocks] == ["Practitioner/p1"]
