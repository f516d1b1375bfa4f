"""Which source reported what of a citizen's Patient, and what a source is shown of it."""

from __future__ import annotations

from typing import Any

from health.access.attribution import (
    REPORTED_BY,
    merged_identifiers,
    report,
    reporters,
    shown_to_source,
    unattributed,
)

CPR = {"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}
HOSPITAL, GP = "Organization/hospital", "Organization/gp"


def _karen(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "karen", "name": [{"family": "Jensen"}], **elements}


def test_a_report_credits_every_attributed_value_to_its_source_alone() -> None:
    claimed = {**CPR, "extension": [{"url": REPORTED_BY, "valueReference": {"reference": GP}}]}
    pushed = _karen(
        identifier=[claimed],
        managingOrganization={"reference": "Organization/hospital"},
        text={"status": "generated", "div": "<div>Karen</div>"},
    )

    reported = report(pushed, HOSPITAL)

    # What the source claimed about someone else's report is not taken from it.
    assert [reporters(i) for i in reported["identifier"]] == [[HOSPITAL]]
    assert reporters(reported["managingOrganization"]) == [HOSPITAL]
    assert reporters(reported["text"]) == [HOSPITAL]
    assert reported["name"] == pushed["name"]  # demographics are not attributed


def test_an_identifier_two_sources_report_is_kept_once_crediting_both() -> None:
    mrn = {"system": "urn:rh:mrn", "value": "RH-1"}
    current = report(_karen(identifier=[CPR, mrn]), HOSPITAL)["identifier"]
    # The same national ID with its keys in another order is the same identifier.
    pushed = report(_karen(identifier=[{"value": CPR["value"], "system": CPR["system"]}]), GP)

    merged = merged_identifiers(current, pushed["identifier"])

    assert [(unattributed(i), reporters(i)) for i in merged] == [
        (CPR, [HOSPITAL, GP]),
        (mrn, [HOSPITAL]),
    ]


def test_a_source_is_shown_only_what_it_reported() -> None:
    other_extension = {"url": "http://example.org/x", "valueString": "kept"}
    hospital = report(_karen(identifier=[CPR, {"system": "urn:rh:mrn", "value": "RH-1"}]), HOSPITAL)
    gp = report(
        _karen(
            identifier=[
                CPR,
                {"system": "urn:gp:id", "value": "GP-7", "extension": [other_extension]},
            ],
            generalPractitioner=[{"reference": "Practitioner/dr-hansen"}],
            meta={"source": "http://testserver/fhir/Organization/gp"},
        ),
        GP,
    )
    patient = {
        **gp,
        "identifier": merged_identifiers(hospital["identifier"], gp["identifier"]),
    }

    to_hospital = shown_to_source(patient, HOSPITAL)
    to_gp = shown_to_source(patient, GP)

    assert to_hospital["identifier"] == [CPR, {"system": "urn:rh:mrn", "value": "RH-1"}]
    assert "generalPractitioner" not in to_hospital
    assert "source" not in to_hospital["meta"]
    assert to_hospital["name"] == patient["name"]
    assert to_gp["identifier"] == [
        CPR,
        {"system": "urn:gp:id", "value": "GP-7", "extension": [other_extension]},
    ]
    assert to_gp["generalPractitioner"] == [{"reference": "Practitioner/dr-hansen"}]
    assert to_gp["meta"]["source"] == "http://testserver/fhir/Organization/gp"


def test_what_nobody_is_credited_with_is_not_shown_to_a_source() -> None:
    patient = _karen(identifier=[CPR], managingOrganization={"reference": "Organization/x"})

    shown = shown_to_source(patient, HOSPITAL)

    assert "identifier" not in shown
    assert "managingOrganization" not in shown
