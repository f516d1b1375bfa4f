"""A small world for the access rules: organisations, clinicians with roles, citizens
with records written as the organisations that recorded them, and callers' tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from health.access.actor import SYSTEM, Actor, ActorKind
from health.audit.log import AuditLog
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.interactions import Interactions
from health.fhir.validation import check

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
NOW = datetime.now(UTC)


def consent_resource(citizen: str, consent_id: str, provision: dict[str, Any]) -> dict[str, Any]:
    """A citizen's privacy Consent with this provision."""
    return {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{citizen}"},
        "policyRule": {"coding": [{"code": "OPTOUT"}]},
        "provision": provision,
    }


def recent(days: int = 10) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """Writes resources as a given recorder, and calls the API as a given caller."""

    def __init__(
        self, app: FastAPI, database: Database, client: TestClient, issue_token: Callable[..., str]
    ) -> None:
        self.app = app
        self.database = database
        self.client = client
        self._issue = issue_token

    @staticmethod
    def days_ago(days: int) -> str:
        return recent(days)

    # Writing, behind the API: as the organisation (its backend client) or the system

    def write(self, resource: dict[str, Any], *, by: str | None = None) -> dict[str, Any]:
        """Store `resource` (with its id) as recorded by `Organization/<by>`, or the system."""
        return self.write_as(resource, None if by is None else f"Organization/{by}")

    def write_as(self, resource: dict[str, Any], recorder: str | None) -> dict[str, Any]:
        """Store `resource` as written by `recorder` (`Organization/x` through its
        client, `Practitioner/x` through a clinician's app, `Patient/x` the citizen),
        or the system (None)."""
        kind, _, key = (recorder or "").partition("/")
        if recorder is None:
            actor = SYSTEM
        elif kind == "Organization":
            actor = Actor(kind=ActorKind.client, display=recorder, organization_id=key)
        elif kind == "Patient":
            actor = Actor(kind=ActorKind.citizen, display=recorder, patient_id=key)
        else:
            actor = Actor(kind=ActorKind.clinician, display=recorder, fhir_user=recorder)
        config = self.app.state.fhir_config
        with self.database.session(write=True) as session:
            interactions = Interactions(Repository(session, actor), config)
            checked = check(resource, resource["resourceType"], config.types)
            interactions.update(resource["id"], checked)
            interactions.flush()
        return resource

    def organisation(self, key: str) -> None:
        self.write({"resourceType": "Organization", "id": key, "name": f"Organisation {key}"})

    def clinician(self, key: str, *organisations: str) -> None:
        self.write({"resourceType": "Practitioner", "id": key, "name": [{"family": key}]})
        for organisation in organisations:
            self.write(
                {
                    "resourceType": "PractitionerRole",
                    "id": f"{key}-at-{organisation}",
                    "practitioner": {"reference": f"Practitioner/{key}"},
                    "organization": {"reference": f"Organization/{organisation}"},
                },
                by=organisation,
            )

    def citizen(self, key: str) -> None:
        self.write({"resourceType": "Patient", "id": key, "name": [{"family": key}]})

    def encounter(
        self, key: str, patient: str, at: str, *, by: str | None = None, ended: str | None = None
    ) -> None:
        end = ended or recent()
        self.write(
            {
                "resourceType": "Encounter",
                "id": key,
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{patient}"},
                "serviceProvider": {"reference": f"Organization/{at}"},
                "period": {"start": end, "end": end},
            },
            by=by or at,
        )

    def observation(
        self,
        key: str,
        patient: str,
        *,
        by: str | None,
        encounter: str | None = None,
        label: str | None = None,
    ) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": key,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "subject": {"reference": f"Patient/{patient}"},
        }
        if encounter:
            resource["encounter"] = {"reference": f"Encounter/{encounter}"}
        if label:
            resource["meta"] = {
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": label,
                    }
                ]
            }
        self.write(resource, by=by)

    # Calling the API

    def clinician_headers(self, key: str, scope: str = "user/*.rs") -> dict[str, str]:
        token = self._issue(scope=scope, actor_kind="clinician", fhir_user=f"Practitioner/{key}")
        return {**FHIR_JSON, "Authorization": f"Bearer {token}"}

    def citizen_headers(self, key: str) -> dict[str, str]:
        token = self._issue(scope="patient/*.cruds", actor_kind="citizen", patient_id=key)
        return {**FHIR_JSON, "Authorization": f"Bearer {token}"}

    def get(self, path: str, headers: dict[str, str], **params: str) -> Any:
        return self.client.get(f"/fhir/{path}", headers=headers, params=params)

    def ids(self, path: str, headers: dict[str, str], **params: str) -> set[str]:
        """`Type/id` of the matches of a search (every page followed)."""
        response = self.get(path, headers, **params)
        assert response.status_code == 200, response.text
        found: set[str] = set()
        bundle = response.json()
        while True:
            found |= {
                f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in bundle.get("entry", [])
            }
            following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            if not following:
                return found
            bundle = self.client.get(following[0], headers=headers).json()

    def block(self, citizen: str, consent_id: str, provision: dict[str, Any]) -> None:
        """The citizen writes a Consent with this provision, over the API."""
        consent = consent_resource(citizen, consent_id, provision)
        response = self.client.put(
            f"/fhir/Consent/{consent_id}", json=consent, headers=self.citizen_headers(citizen)
        )
        assert response.status_code in (200, 201), response.text

    def log(self, patient_id: str) -> list[Any]:
        """The access log of one citizen, oldest first."""
        key = self.app.state.settings.audit_key.encode()
        with self.database.session(write=False) as session:
            return list(reversed(AuditLog(session, key).for_patient(patient_id, limit=1000)))


@pytest.fixture
def app_settings(app: FastAPI) -> Any:
    """The running app's settings (tests change the access policy on it)."""
    return app.state.settings


@pytest.fixture
def world(
    app: FastAPI, database: Database, anonymous_client: TestClient, issue_token: Any
) -> World:
    """Hospital `north` and GP `west` treat citizen `anna`; `south` treats no one.

    Clinicians: `dr-north` and `dr-north-2` (at north), `dr-west` (at west), `dr-south`
    (at south). anna has an encounter at north (obs `anna-lab`, recorded by north,
    about that encounter) and one at west (obs `anna-gp`, recorded by west).
    """
    w = World(app, database, anonymous_client, issue_token)
    for key in ("north", "west", "south"):
        w.organisation(key)
    w.clinician("dr-north", "north")
    w.clinician("dr-north-2", "north")
    w.clinician("dr-west", "west")
    w.clinician("dr-south", "south")
    w.citizen("anna")
    w.citizen("bo")
    w.encounter("anna-north", "anna", "north")
    w.encounter("anna-west", "anna", "west")
    w.observation("anna-lab", "anna", by="north", encounter="anna-north")
    w.observation("anna-gp", "anna", by="west", encounter="anna-west")
    w.encounter("bo-west", "bo", "west")
    w.observation("bo-gp", "bo", by="west", encounter="bo-west")
    return w
