"""health.fhir.content: body parsing, format negotiation and output shaping, without HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from health import PROJECT_ROOT
from health.fhir.content import (
    check_acceptable,
    check_request_content_type,
    dumps,
    elements_list,
    is_pretty,
    media_type,
    parse_json,
    shape,
    stored,
    summary_mode,
)
from health.fhir.errors import FhirError
from health.fhir.resource_types import ResourceTypes
from health.settings import MAX_JSON_DEPTH, Settings
from tests.fhir.conftest import json_depth


@pytest.fixture(scope="module")
def types() -> ResourceTypes:
    return ResourceTypes(PROJECT_ROOT / "fhir")


def raised(call: Any, *args: Any, **kwargs: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/fhir+json; charset=utf-8", "application/fhir+json"),
        ("  Application/JSON ", "application/json"),
        (None, ""),
        ("", ""),
    ],
)
def test_media_type_is_the_lowercased_type_without_parameters(
    header: str | None, kind: str
) -> None:
    assert media_type(header) == kind


@pytest.mark.parametrize(
    "content_type",
    [None, "application/fhir+json", "application/json; charset=utf-8", "application/json+fhir"],
)
def test_json_request_bodies_are_accepted(content_type: str | None) -> None:
    check_request_content_type(content_type)


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "text/plain", "text/html"])
def test_other_request_bodies_are_415(content_type: str) -> None:
    error = raised(check_request_content_type, content_type)

    assert error.status == 415
    assert "application/fhir+json" in str(error)


def test_json_patch_is_accepted_only_where_patch_is_allowed() -> None:
    check_request_content_type("application/json-patch+json", allow_patch=True)

    assert raised(check_request_content_type, "application/json-patch+json").status == 415


@pytest.mark.parametrize(
    ("accept", "format_param"),
    [
        (None, None),
        ("application/fhir+json", None),
        ("application/xml, */*;q=0.1", None),
        ("application/*", None),
        ("application/vnd.example+json", None),
        ("application/fhir+xml", "json"),
        ("application/fhir+xml", "application/fhir+json"),
        (None, " JSON "),
    ],
)
def test_json_is_acceptable(accept: str | None, format_param: str | None) -> None:
    check_acceptable(accept, format_param)


@pytest.mark.parametrize(
    ("accept", "format_param"),
    [
        ("application/fhir+xml", None),
        ("text/html, application/xml", None),
        (None, "xml"),
        ("application/fhir+json", "xml"),
        (None, "ttl"),
    ],
)
def test_a_client_that_will_not_take_json_gets_406(
    accept: str | None, format_param: str | None
) -> None:
    assert raised(check_acceptable, accept, format_param).status == 406


def test_parse_json_returns_the_value() -> None:
    assert parse_json(b'{"resourceType": "Patient", "active": true}', max_depth=5) == {
        "resourceType": "Patient",
        "active": True,
    }


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"", "empty"),
        (b" \t\n", "empty"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b'{"a": 1', "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
    ],
)
def test_parse_json_refuses_what_is_not_utf8_json(raw: bytes, said: str) -> None:
    error = raised(parse_json, raw, max_depth=10)

    assert error.status == 400
    assert said in str(error)


def test_parse_json_locates_its_error_where_told() -> None:
    error = raised(parse_json, b"", max_depth=10, where="Bundle.entry[2].resource")

    assert error.issues[0].expression == ("Bundle.entry[2].resource",)


def test_parse_json_refuses_nesting_deeper_than_the_limit() -> None:
    # Four nested containers: object, array, object, array.
    raw = b'{"a": [{"b": []}]}'

    assert parse_json(raw, max_depth=4) == {"a": [{"b": []}]}
    error = raised(parse_json, raw, max_depth=3)

    assert error.status == 400
    assert "3 levels" in str(error)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=30,
)


@given(value=_JSON, limit=st.integers(min_value=1, max_value=8))
def test_parse_json_accepts_exactly_what_is_nested_to_the_limit(value: Any, limit: int) -> None:
    raw = orjson.dumps(value)
    if json_depth(value) <= limit:
        assert parse_json(raw, max_depth=limit) == value
    else:
        assert f"{limit} levels" in str(raised(parse_json, raw, max_depth=limit))


def test_a_nesting_limit_beyond_what_the_walks_can_recurse_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_json_depth"):
        Settings(max_json_depth=MAX_JSON_DEPTH + 1)
    assert Settings(max_json_depth=MAX_JSON_DEPTH).max_json_depth == MAX_JSON_DEPTH


def test_dumps_is_compact_unless_pretty() -> None:
    value = {"resourceType": "Patient", "name": [{"family": "Ø"}]}

    assert dumps(value) == '{"resourceType":"Patient","name":[{"family":"Ø"}]}'.encode()
    assert dumps(value, pretty=True).startswith(b'{\n  "resourceType": "Patient"')


def test_a_stored_resource_goes_out_as_stored_and_indented_when_pretty() -> None:
    body = b'{"resourceType":"Patient","id":"p1","name":[{"family":"\xc3\x98"}]}'
    bundle = {"resourceType": "Bundle", "entry": [{"resource": stored(body)}]}

    assert dumps(bundle) == b'{"resourceType":"Bundle","entry":[{"resource":' + body + b"}]}"
    pretty = dumps(bundle, pretty=True)
    assert b'\n        "resourceType": "Patient"' in pretty
    assert orjson.loads(pretty) == orjson.loads(dumps(bundle))
    assert dumps({"resource": stored(None)}) == b'{"resource":{}}'


@pytest.mark.parametrize(
    ("value", "pretty"),
    [("true", True), (" TRUE ", True), ("false", False), ("1", False), (None, False)],
)
def test_is_pretty_only_for_true(value: str | None, pretty: bool) -> None:
    assert is_pretty(value) is pretty


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, None), ("false", None), ("TRUE", "true"), ("text", "text"), ("data", "data")],
)
def test_summary_mode(value: str | None, mode: str | None) -> None:
    assert summary_mode(value) == mode


def test_summary_count_only_where_allowed() -> None:
    assert summary_mode("count", allow_count=True) == "count"

    error = raised(summary_mode, "count")

    assert error.status == 400
    assert error.issues[0].expression == ("_summary",)


def test_an_unknown_summary_mode_is_400() -> None:
    assert raised(summary_mode, "brief").status == 400


def test_elements_list_splits_and_trims() -> None:
    assert elements_list(None) is None
    assert elements_list(" name, gender ,,birthDate") == ["name", "gender", "birthDate"]
    assert raised(elements_list, " , ").status == 400


def sample_observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "2", "tag": [{"system": "http://example.org", "code": "mine"}]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "status": "final",
        "_status": {"extension": [{"url": "http://example.org/why", "valueString": "checked"}]},
        "code": {"text": "weight"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 70},
        "note": [{"text": "after lunch"}],
        "interpretation": [{"text": "normal"}],
    }


def tag_codes(resource: dict[str, Any]) -> list[str]:
    return [tag["code"] for tag in resource["meta"].get("tag", [])]


def test_shape_without_summary_or_elements_returns_the_resource_untouched(
    types: ResourceTypes,
) -> None:
    resource = sample_observation()

    assert shape(resource, types, summary=None, elements=None) is resource


def test_shape_summary_true_keeps_summary_elements(types: ResourceTypes) -> None:
    shaped = shape(sample_observation(), types, summary="true", elements=None)

    assert {"status", "code", "subject", "valueQuantity", "_status"} <= set(shaped)
    assert not {"text", "note", "interpretation"} & set(shaped)
    assert tag_codes(shaped) == ["mine", "SUBSETTED"]


def test_shape_summary_text_keeps_text_and_mandatory_elements(types: ResourceTypes) -> None:
    shaped = shape(sample_observation(), types, summary="text", elements=None)

    assert set(shaped) == {"resourceType", "id", "meta", "text", "status", "_status", "code"}
    assert "SUBSETTED" in tag_codes(shaped)


def test_shape_summary_data_drops_the_text_and_is_tagged(types: ResourceTypes) -> None:
    resource = sample_observation()

    shaped = shape(resource, types, summary="data", elements=None)

    assert set(shaped) == set(resource) - {"text"}
    assert "SUBSETTED" in tag_codes(shaped)


def test_shape_elements_keeps_named_and_mandatory_elements(types: ResourceTypes) -> None:
    shaped = shape(sample_observation(), types, summary=None, elements=["note"])

    assert set(shaped) == {"resourceType", "id", "meta", "note", "status", "_status", "code"}
    assert "SUBSETTED" in tag_codes(shaped)


def test_shape_does_not_change_the_input(types: ResourceTypes) -> None:
    resource = sample_observation()

    shape(resource, types, summary="true", elements=None)

    assert resource == sample_observation()


def test_shape_tags_a_resource_without_meta(types: ResourceTypes) -> None:
    shaped = shape({"resourceType": "Patient", "id": "p1"}, types, summary=None, elements=["name"])

    assert tag_codes(shaped) == ["SUBSETTED"]
