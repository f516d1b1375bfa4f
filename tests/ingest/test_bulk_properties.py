"""`health import` reads whatever files it is given and ends with its summary: files of
any JSON shape, NDJSON lines of any kind, nesting beyond the server's limit. What it
cannot store is reported as rejected with its file and position, never as a crash
halfway through a hospital's export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.ingest.bulk import Importer, find_source
from health.settings import Settings

CPR = "urn:oid:1.2.208.176.1.2"
PATIENT = {"resourceType": "Patient", "identifier": [{"system": CPR, "value": "0101801234"}]}


def _nested(levels: int) -> bytes:
    """A Patient whose extensions nest `levels` deep (two JSON containers a level), as
    text: orjson writes at most 255 levels, and a hospital's exporter may write more."""
    extension = b'{"url":"http://x","valueString":"x"}'
    for _ in range(levels):
        extension = b'{"url":"http://x","extension":[' + extension + b"]}"
    return orjson.dumps(PATIENT)[:-1] + b',"extension":[' + extension + b"]}"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
ENTRY = st.one_of(
    json_values,
    st.fixed_dictionaries({"resource": st.one_of(st.just(PATIENT), json_values)}),
    st.fixed_dictionaries({"resource": st.just(PATIENT), "fullUrl": json_values}),
)
BUNDLE_FILES = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "resourceType": st.just("Bundle"),
            "type": st.sampled_from(["collection", "transaction", "batch", "searchset", 5]),
            "entry": st.one_of(st.lists(ENTRY, max_size=3), json_values),
        }
    ),
)
LINES = st.lists(
    st.one_of(
        st.just(orjson.dumps(PATIENT)),
        json_values.map(orjson.dumps),
        st.binary(max_size=20),
        st.sampled_from([b"", b" ", b"{", b"\xff\xfe", _nested(300)]),
    ),
    max_size=4,
)


@pytest.fixture
def importer(client: TestClient, database: Database, settings: Settings) -> Importer:
    response = client.post(
        "/fhir/Organization",
        json={
            "resourceType": "Organization",
            "identifier": [{"system": "urn:oid:1.2.208.176.1.1", "value": "4000"}],
        },
    )
    assert response.status_code == 201, response.text
    config = FhirConfig.load(settings)
    return Importer(database, config, find_source(database, config, "urn:oid:1.2.208.176.1.1|4000"))


PROPERTIES = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTIES
@given(content=BUNDLE_FILES)
def test_any_json_file_is_imported_or_reported(
    importer: Importer, tmp_path_factory: pytest.TempPathFactory, content: Any
) -> None:
    path = tmp_path_factory.mktemp("import") / "export.json"
    path.write_bytes(orjson.dumps(content))
    summary = importer.run([path])
    # Accounted for: imported, skipped as imported before (the same bytes), or refused.
    assert summary.files_imported + summary.files_skipped + len(summary.rejected) >= 1
    for rejected in summary.rejected:
        assert rejected.path == str(path)


@PROPERTIES
@given(lines=LINES)
def test_any_ndjson_file_is_imported_or_reported_by_line(
    importer: Importer, tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("import") / "export.ndjson"
    path.write_bytes(b"\n".join(lines))
    summary = importer.run([path])
    for rejected in summary.rejected:
        assert rejected.path == str(path)


def test_a_line_nested_beyond_the_servers_limit_is_rejected_not_a_crash(
    importer: Importer, tmp_path: Path
) -> None:
    path = tmp_path / "deep.ndjson"
    path.write_bytes(orjson.dumps(PATIENT) + b"\n" + _nested(300) + b"\n")
    summary = importer.run([path])
    # As any line that cannot be read: the file is refused whole, naming the line.
    assert [(r.position, r.reason) for r in summary.rejected] == [
        ("file", "line 2 is nested more than 64 levels deep")
    ]
    assert summary.files_imported == 0


def test_an_entry_of_a_collection_that_is_not_an_object_is_refused_at_its_position(
    importer: Importer, tmp_path: Path
) -> None:
    path = tmp_path / "collection.json"
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": PATIENT}, 5],
    }
    path.write_bytes(orjson.dumps(collection))
    summary = importer.run([path])
    assert summary.resources["Patient"] == 1
    assert [r.position for r in summary.rejected] == ["Bundle.entry[1]"], summary.rejected


def test_a_file_that_is_not_a_bundle_is_refused_whole(importer: Importer, tmp_path: Path) -> None:
    for name, content in [
        ("list.json", b"[]"),
        ("null.json", b"null"),
        ("entry.json", b'{"entry": 5}'),
    ]:
        (tmp_path / name).write_bytes(content)
    summary = importer.run(sorted(tmp_path.iterdir()))
    assert sorted((Path(r.path).name, r.position) for r in summary.rejected) == [
        ("entry.json", "file"),
        ("list.json", "file"),
        ("null.json", "file"),
    ]
