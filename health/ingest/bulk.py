"""Bulk import: files and folders of Bundles and NDJSON, through the push path.

`health import PATH... --source SYSTEM|VALUE` loads as the source Organization, exactly
as if that source had pushed each file: person matching, source ids, deduplication and
provenance apply. Each file is one database transaction (a transaction Bundle all or
nothing; a batch or NDJSON file entry by entry). Files already imported (the same
content, by SHA-256) are skipped, so an interrupted import can simply be run again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from health.access.actor import Actor, ActorKind
from health.auth.scopes import Scopes
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.content import parse_json
from health.fhir.errors import FhirError, structure
from health.fhir.interactions import Interactions
from health.ingest.imports import ImportLedger
from health.ingest.pipeline import push_bundle
from health.ingest.push import DIRECTORY_TYPES

# NDJSON lines go to the server in batches of this many entries.
NDJSON_BATCH = 500


class ImportRefused(Exception):
    """The import cannot start (an unknown source, a path that does not exist)."""


@dataclass
class Rejected:
    path: str
    position: str  # "Bundle.entry[3]", "line 17", or "file"
    reason: str


@dataclass
class ImportSummary:
    files_imported: int = 0
    files_skipped: int = 0
    resources: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    content: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def find_files(paths: list[Path]) -> list[Path]:
    """Every .json and .ndjson file under `paths`, in the order they should load.

    Bundles holding only directory resources (the providers that patient records refer
    to by identifier) and Patient NDJSON go first; then everything else, by name.
    """
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ImportRefused(f"{path} does not exist")
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
        else:
            found.append(path)
    return sorted(dict.fromkeys(found), key=lambda p: (_load_order(p), str(p)))


def _load_order(path: Path) -> int:
    if path.suffix == ".ndjson":
        stem = path.stem.split(".")[0]
        return 0 if stem == "Patient" else 1 if stem in DIRECTORY_TYPES else 2
    try:
        bundle = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return 2
    types = {
        e.get("resource", {}).get("resourceType")
        for e in bundle.get("entry", [])
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    }
    return 1 if types and types <= DIRECTORY_TYPES | {"PractitionerRole"} else 2


def find_source(database: Database, config: FhirConfig, identifier: str) -> Actor:
    """The actor for the Organization with `identifier` (SYSTEM|VALUE); ImportRefused if none."""
    system, bar, value = identifier.partition("|")
    if not bar or not system or not value:
        raise ImportRefused(f"--source must be SYSTEM|VALUE, not {identifier!r}")
    query = f"identifier={quote(system, safe=':/')}|{quote(value, safe='')}"
    with database.session(write=False) as session:
        # Finding the source is not a read of anyone's record: the directory only.
        matches = Interactions(Repository.system(session), config).match("Organization", query)
    if len(matches) != 1:
        found = "no" if not matches else "more than one"
        raise ImportRefused(
            f"There is {found} Organization with identifier {identifier}: register the "
            "source first (health clients add --organization-identifier ...)"
        )
    organization = orjson.loads(matches[0].body or b"{}")
    return source_actor(matches[0].id, str(organization.get("name", identifier)))


def source_actor(organization_id: str, display: str) -> Actor:
    """The source Organization as an operator's command acts for it (`health import`,
    the demo world's pushes): a backend client in all but the token, every scope."""
    return Actor(
        kind=ActorKind.client,
        display=f"import as {display}",
        scopes=Scopes.parse("system/*.cruds"),
        organization_id=organization_id,
        client_id="health-import",
    )


def bundles_of(file: ImportFile, max_depth: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Bundles to push for a file, each with where it starts ("" or "lines N-M").

    Each file, or NDJSON line, is read as a request body is (`parse_json`: UTF-8, JSON,
    nested at most `max_depth`); FhirError for the first that cannot be."""
    if file.path.suffix == ".ndjson":
        lines = file.content.splitlines()
        for start in range(0, len(lines), NDJSON_BATCH):
            chunk = lines[start : start + NDJSON_BATCH]
            entries = [
                {
                    **_create(parse_json(line, max_depth=max_depth, subject=f"line {number}")),
                    "_line": number,
                }
                for number, line in enumerate(chunk, start + 1)
                if line.strip()
            ]
            where = f"lines {start + 1}-{start + len(chunk)}"
            yield where, {"resourceType": "Bundle", "type": "batch", "entry": entries}
        return
    bundle = parse_json(file.content, max_depth=max_depth, subject="The file")
    if not isinstance(bundle, dict):
        raise structure("The file holds no Bundle: its JSON is not an object")
    listed = bundle.get("entry", [])
    if not isinstance(listed, list):
        raise structure("Bundle.entry must be an array", "Bundle.entry")
    if bundle.get("type") == "collection":
        # A collection is a set of resources to store: push them as a batch of creates.
        # An entry that is not an object stays, to be refused at its position.
        entries = [
            _create(e.get("resource"), e.get("fullUrl")) if isinstance(e, dict) else _create(e)
            for e in listed
        ]
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    yield "", bundle


def _create(resource: Any, full_url: Any = None) -> dict[str, Any]:
    """A batch entry creating `resource` (the push path decides how it is stored)."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": str(resource_type)},
    }
    if isinstance(full_url, str):
        entry["fullUrl"] = full_url
    return entry


class Importer:
    """Imports files as one source, recording each in the ledger once it is in."""

    def __init__(self, database: Database, config: FhirConfig, actor: Actor) -> None:
        self._database = database
        self._config = config
        self._actor = actor
        assert actor.organization_id is not None, "an import acts for a source Organization"
        self._source_id = actor.organization_id

    def run(
        self, paths: list[Path], progress: Callable[[Path, int], None] | None = None
    ) -> ImportSummary:
        summary = ImportSummary()
        for path in paths:
            file = ImportFile(path, path.read_bytes())
            with self._database.session(write=False) as session:
                done = ImportLedger(session).seen(file.digest, self._source_id)
            if done:
                summary.files_skipped += 1
            else:
                self._import(file, summary)
            if progress is not None:
                progress(path, len(file.content))
        return summary

    def _import(self, file: ImportFile, summary: ImportSummary) -> None:
        base = self._config.settings.fhir_base_url
        name = str(file.path)
        try:
            bundles = list(bundles_of(file, self._config.settings.max_json_depth))
        except FhirError as error:
            summary.rejected.append(Rejected(name, "file", str(error)))
            return
        written: Counter[str] = Counter()
        rejected: list[Rejected] = []
        # A Bundle refused whole may load once what it needs is there (its providers):
        # such a file is not marked as imported, so that running again retries it.
        whole_bundle_refused = False
        with self._database.session(write=True) as session:
            interactions = Interactions(Repository(session, self._actor), self._config)
            for where, bundle in bundles:
                lines = [
                    entry.pop("_line", None) if isinstance(entry, dict) else None
                    for entry in bundle.get("entry", [])
                ]
                mark = len(interactions.written)
                try:
                    request = parse_bundle(
                        bundle,
                        self._config.types,
                        base=base,
                        max_entries=self._config.settings.max_bundle_entries,
                    )
                    with interactions.repository.savepoint():
                        response = push_bundle(interactions, request, base=base, prefer=None)
                except FhirError as error:
                    interactions.discard()
                    interactions.forget_written_after(mark)
                    rejected.append(Rejected(name, where or "file", str(error)))
                    whole_bundle_refused = True
                    continue
                for index, entry in enumerate(response["entry"]):
                    outcome = entry["response"].get("outcome")
                    if entry["response"]["status"][0] in "45" and outcome:
                        position = (
                            f"line {lines[index]}" if lines[index] else f"Bundle.entry[{index}]"
                        )
                        reason = "; ".join(i.get("diagnostics", "") for i in outcome["issue"])
                        rejected.append(Rejected(name, position, reason))
                written.update(w.resource_type for w in interactions.written[mark:] if w.body)
            if not whole_bundle_refused:
                ImportLedger(session).record(file.digest, self._source_id, name, len(rejected))
        summary.files_imported += 1
        summary.resources.update(written)
        summary.rejected += rejected
