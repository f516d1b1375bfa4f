"""Property: over random worlds and random reads, nothing forbidden is disclosed,
everything disclosed is logged, and totals and paging agree with what is visible.

The rules are restated here as a plain model (`Model.visible`), independent of the
SQL that enforces them (health/db/access_sql.py), and the two are compared over HTTP.
HEALTH_PROPERTY_EXAMPLES sets the number of worlds (300 by default; more for a long run).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("HEALTH_PROPERTY_EXAMPLES", "300"))
ORGS = ("o1", "o2", "o3")
CLINICIANS = ("p1", "p2", "p3")
CITIZENS = ("c1", "c2")
TYPES = ("Encounter", "Observation")
_worlds = itertools.count()


@dataclass(frozen=True)
class Entry:
    """A resource of the random world, as the model sees it."""

    type: str
    id: str
    patient: str
    recorded_by: str | None
    # Encounter: where it happened and whether it ended within the window.
    at: str | None = None
    recent: bool = True
    encounter: str | None = None
    labelled: bool = False


@dataclass(frozen=True)
class Rule:
    patient: str
    effect: str
    party: str | None = None
    resource_class: str | None = None
    labelled: bool = False
    hides: str | None = None


@dataclass
class Model:
    opt_in: bool
    roles: dict[str, set[str]]
    entries: list[Entry]
    rules: list[Rule]
    emergencies: set[tuple[str, str]] = field(default_factory=set)

    def parties(self, clinician: str) -> set[str]:
        return {f"Practitioner/{clinician}"} | {f"Organization/{o}" for o in self.roles[clinician]}

    def visible(self, clinician: str, entry: Entry) -> bool:
        if (clinician, entry.patient) in self.emergencies:
            return True
        parties = self.parties(clinician)
        treated = any(
            e.type == "Encounter"
            and e.patient == entry.patient
            and e.recent
            and f"Organization/{e.at}" in parties
            and (e.recorded_by is None or e.recorded_by.startswith("Organization/"))
            for e in self.entries
        )
        if self.opt_in:
            treated = treated and any(
                r.patient == entry.patient and r.effect == "permit" and r.party in parties
                for r in self.rules
            )
        if not (treated or entry.recorded_by in parties):
            return False
        for rule in self.rules:
            if rule.patient != entry.patient or rule.effect != "deny":
                continue
            if rule.party is not None and rule.party not in parties:
                continue
            if rule.hides is not None:
                episode = next(e for e in self.entries if e.id == rule.hides)
                if episode.recorded_by in parties:
                    continue
                if entry.id == rule.hides or entry.encounter == rule.hides:
                    return False
                continue
            if rule.resource_class not in (None, entry.type):
                continue
            if rule.labelled and not entry.labelled:
                continue
            return False
        return True


parties = st.sampled_from(
    [None, *(f"Organization/{o}" for o in ORGS), *(f"Practitioner/{p}" for p in CLINICIANS)]
)


@st.composite
def worlds(draw: Any) -> Model:
    roles = {p: set(draw(st.sets(st.sampled_from(ORGS), max_size=2))) for p in CLINICIANS}
    entries: list[Entry] = []
    recorders = st.sampled_from([*(f"Organization/{o}" for o in ORGS), "Practitioner/p1", None])
    for citizen in CITIZENS:
        encounters = []
        for n in range(draw(st.integers(0, 2))):
            at = draw(st.sampled_from(ORGS))
            recorder = draw(st.sampled_from([f"Organization/{at}", "Practitioner/p2", None]))
            encounter = Entry(
                "Encounter", f"{citizen}-e{n}", citizen, recorder, at=at, recent=draw(st.booleans())
            )
            encounters.append(encounter)
        entries += encounters
        for n in range(draw(st.integers(0, 3))):
            about = draw(st.sampled_from([None, *(e.id for e in encounters)]))
            entries.append(
                Entry(
                    "Observation",
                    f"{citizen}-o{n}",
                    citizen,
                    draw(recorders),
                    encounter=about,
                    labelled=draw(st.booleans()),
                )
            )
    rules = []
    for citizen in CITIZENS:
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["block", "class", "label", "hide", "permit"]))
            party = draw(parties)
            if kind == "permit":
                rules.append(Rule(citizen, "permit", party=party or "Organization/o1"))
            elif kind == "hide":
                episodes = [e.id for e in entries if e.patient == citizen and e.type == "Encounter"]
                if episodes:
                    rules.append(Rule(citizen, "deny", hides=draw(st.sampled_from(episodes))))
            else:
                rules.append(
                    Rule(
                        citizen,
                        "deny",
                        party=party,
                        resource_class=draw(st.sampled_from(TYPES)) if kind == "class" else None,
                        labelled=kind == "label",
                    )
                )
    emergencies = draw(
        st.sets(st.tuples(st.sampled_from(CLINICIANS), st.sampled_from(CITIZENS)), max_size=2)
    )
    return Model(draw(st.booleans()), roles, entries, rules, set(emergencies))


reads = st.lists(
    st.tuples(
        st.sampled_from(CLINICIANS),
        st.sampled_from(["search", "everything", "read", "revinclude", "history"]),
        st.sampled_from(CITIZENS),
        st.integers(1, 3),
    ),
    min_size=3,
    max_size=6,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(model=worlds(), requests=reads)
def test_what_is_disclosed_is_allowed_logged_and_counted(
    world: Any, app_settings: Any, model: Model, requests: list[tuple[str, str, str, int]]
) -> None:
    n = next(_worlds)
    app_settings.access_policy = "opt-in" if model.opt_in else "opt-out"
    ids = _build(world, model, f"w{n}")
    disclosed: dict[str, set[str]] = {c: set() for c in CLINICIANS}

    for clinician, kind, citizen, page in requests:
        headers = world.clinician_headers(f"w{n}-{clinician}")
        visible = {
            ids[e.id] for e in model.entries if e.patient == citizen and model.visible(clinician, e)
        }
        patient = ids[citizen]
        if kind == "search":
            found, totals = _pages(world, "Observation", headers, patient=patient, _count=str(page))
            expected = {r for r in visible if r.startswith("Observation/")}
            assert found == expected
            assert totals <= {len(expected)}
        elif kind == "revinclude":
            found, _ = _pages(
                world, "Encounter", headers, patient=patient, _revinclude="Observation:encounter"
            )
            assert found <= visible
            assert {r for r in found if r.startswith("Encounter/")} == {
                r for r in visible if r.startswith("Encounter/")
            }
        elif kind == "everything":
            # The citizen's Patient is recorded by the system: visible when any of it is.
            response = world.get(f"Patient/{patient}/$everything", headers, _count=str(page))
            shown = _patient_visible(model, clinician, citizen)
            assert response.status_code == (200 if shown else 404), response.text
            found = set()
            if shown:
                found, _ = _pages(
                    world, f"Patient/{patient}/$everything", headers, _count=str(page)
                )
                found = {r for r in found if r.split("/")[0] in TYPES}
                assert found == visible
        else:
            for entry in (e for e in model.entries if e.patient == citizen):
                suffix = "/_history" if kind == "history" else ""
                response = world.get(f"{ids[entry.id]}{suffix}", headers)
                allowed = model.visible(clinician, entry)
                assert response.status_code == (200 if allowed else 404), (entry, response.text)
                if allowed:
                    found = {ids[entry.id]}
                    disclosed[clinician] |= found
            continue
        disclosed[clinician] |= {r for r in found if r.split("/")[0] in TYPES}

    logged: dict[str, set[str]] = {c: set() for c in CLINICIANS}
    for citizen in CITIZENS:
        for record in world.log(ids[citizen]):
            agent = record.entry.agent or ""
            for clinician in CLINICIANS:
                if agent == f"Practitioner/w{n}-{clinician}" and record.entry.outcome == "success":
                    logged[clinician] |= set(record.entry.entities)
    for clinician in CLINICIANS:
        assert disclosed[clinician] <= logged[clinician]


def _patient_visible(model: Model, clinician: str, citizen: str) -> bool:
    patient = Entry("Patient", citizen, citizen, None)
    return model.visible(clinician, patient)


def _pages(
    world: Any, path: str, headers: dict[str, str], **params: str
) -> tuple[set[str], set[int]]:
    """Every match of a search followed through its pages, and the totals it stated;
    no entry twice."""
    if not path.endswith("$everything"):
        params["_total"] = "accurate"
    response = world.get(path, headers, **params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    seen: list[str] = []
    totals: set[int] = set()
    while True:
        if "total" in bundle:
            totals.add(bundle["total"])
        seen += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match" or path.endswith("$everything")
        ]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        bundle = world.client.get(following[0], headers=headers).json()
    assert len(seen) == len(set(seen)), "an entry came twice"
    return set(seen), totals


def _build(world: Any, model: Model, prefix: str) -> dict[str, str]:
    """Write the model's world under ids starting with `prefix`; model id -> `Type/id`."""
    ids: dict[str, str] = {}
    for org in ORGS:
        world.organisation(f"{prefix}-{org}")
    for clinician in CLINICIANS:
        world.clinician(f"{prefix}-{clinician}", *(f"{prefix}-{o}" for o in model.roles[clinician]))
    for citizen in CITIZENS:
        world.citizen(f"{prefix}-{citizen}")
        ids[citizen] = f"{prefix}-{citizen}"

    def recorder(party: str | None) -> Any:
        return None if party is None else party.replace("/", f"/{prefix}-")

    for entry in model.entries:
        resource_id = f"{prefix}-{entry.id}"
        ids[entry.id] = f"{entry.type}/{resource_id}"
        by = recorder(entry.recorded_by)
        patient = f"{prefix}-{entry.patient}"
        if entry.type == "Encounter":
            ended = world.days_ago(10 if entry.recent else 500)
            world.write_as(
                {
                    "resourceType": "Encounter",
                    "id": resource_id,
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": {"reference": f"Patient/{patient}"},
                    "serviceProvider": {"reference": f"Organization/{prefix}-{entry.at}"},
                    "period": {"start": ended, "end": ended},
                },
                by,
            )
        else:
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "id": resource_id,
                "status": "final",
                "code": {"text": "test"},
                "subject": {"reference": f"Patient/{patient}"},
            }
            if entry.encounter:
                resource["encounter"] = {"reference": f"Encounter/{prefix}-{entry.encounter}"}
            if entry.labelled:
                resource["meta"] = {"security": [{"system": "urn:test:label", "code": "PSY"}]}
            world.write_as(resource, by)
    for number, rule in enumerate(model.rules):
        provision: dict[str, Any] = {"type": rule.effect}
        if rule.party:
            provision["actor"] = [
                {"role": {"text": "x"}, "reference": {"reference": recorder(rule.party)}}
            ]
        if rule.resource_class:
            provision["class"] = [
                {"system": "http://hl7.org/fhir/resource-types", "code": rule.resource_class}
            ]
        if rule.labelled:
            provision["securityLabel"] = [{"system": "urn:test:label", "code": "PSY"}]
        if rule.hides:
            provision["data"] = [
                {
                    "meaning": "related",
                    "reference": {"reference": f"Encounter/{prefix}-{rule.hides}"},
                }
            ]
        world.block(f"{prefix}-{rule.patient}", f"{prefix}-consent-{number}", provision)
    for clinician, citizen in sorted(model.emergencies):
        response = world.client.get(
            f"/fhir/Patient/{prefix}-{citizen}",
            headers={
                **world.clinician_headers(f"{prefix}-{clinician}"),
                "X-Break-Glass-Reason": "property test",
            },
        )
        assert response.status_code == 200, response.text
    return ids
