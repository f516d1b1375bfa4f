"""A hospital's or GP's push, turned into requests that keep one record per citizen.

Applied to the parsed Bundle before it runs (health.fhir.transaction), with no database:

- The pushed Patient becomes a conditional update of the citizen's one Patient, found
  by the national ID (an identifier in settings.national_id_systems). The push's own
  identifiers (a hospital's record number) are merged into it, and the source's id of
  its Patient is kept as an identifier of the source, so that later pushes referring
  to `Patient/<their id>` find it. References to the pushed Patient then resolve to
  the citizen's, and everything pushed lands in the citizen's compartment.
- Directory resources (Organization, Practitioner, Location) with an identifier are
  created only if no resource has that identifier yet: one of each across sources.
- Anything else the source identifies (its own id, or a urn:uuid fullUrl) is written
  under an id derived from the source and that id: the same resource pushed again is
  a new version of it, never a second copy; another source's copy stays separate.
- Every written resource names its source in meta.source.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from health.access.attribution import report
from health.fhir.bundle_request import BundleRequest, Entry
from health.fhir.errors import FhirError, Issue
from health.fhir.validation import Checked
from health.ingest.facts import tag_fact
from health.ingest.merge import merge_patient

# Shared by every source; deduplicated by identifier.
DIRECTORY_TYPES = frozenset({"Organization", "Practitioner", "Location"})
# Matched across sources by the server's own conditions: the citizen, and the directory.
MATCHED_TYPES = DIRECTORY_TYPES | {"Patient"}
_SOURCE_IDS = uuid.UUID("5b3c1f4e-93a0-4c55-9f0b-6d1f2a7c8e11")
# A relative literal reference, `Type/id`: https://hl7.org/fhir/R4/references.html#literal
_LITERAL = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")


@dataclass(frozen=True)
class Source:
    """Who pushed: the Organization behind the backend client's token."""

    organization_id: str
    # meta.source of everything it writes: the Organization's URL on our FHIR base.
    uri: str

    @property
    def patient_id_system(self) -> str:
        """The identifier system under which the source's own Patient ids are kept."""
        return f"{self.uri}/patient-id"

    @property
    def reference(self) -> str:
        """`Organization/x`: the source as the access rules and attributions name it."""
        return f"Organization/{self.organization_id}"

    def derived_id(self, resource_type: str, source_id: str) -> str:
        """Our id for the source's resource `resource_type/source_id`: stable per source."""
        return str(uuid.uuid5(_SOURCE_IDS, f"{self.uri}|{resource_type}|{source_id}"))


def prepare_push(request: BundleRequest, source: Source, national_id_systems: list[str]) -> None:
    """Rewrite the Bundle's entries in place.

    An entry that cannot be matched (a Patient without exactly one national ID) fails a
    transaction whole (422 naming it); in a batch it becomes that entry's 422 answer.
    """
    problems: list[Issue] = []
    people = _people_by_reference(request, national_id_systems)
    for position, entry in enumerate(request.entries):
        if not isinstance(entry, Entry):
            continue
        if entry.checked is None or entry.method not in ("POST", "PUT"):
            if entry.method in ("DELETE", "PATCH") and entry.resource_id:
                _map_instance(entry, source)
            continue
        try:
            if entry.resource_type == "Patient":
                _match_citizen(entry, source, national_id_systems)
            elif entry.resource_type in DIRECTORY_TYPES and entry.method == "POST":
                _deduplicate(entry, source)
            else:
                _keep_apart(entry, source)
                person = _person_of(entry.resource or {}, people, national_id_systems)
                if person is not None:
                    tag_fact(entry.resource or {}, person)
        except FhirError as error:
            problems.extend(error.issues)
            if request.kind == "batch":
                request.entries[position] = FhirError(error.issues, status=422)
            continue
        _stamp_source(entry, source)
    if problems and request.kind == "transaction":
        raise FhirError(problems, status=422)
    _map_source_references(request, source)


def _national_ids(resource: dict[str, Any], systems: list[str]) -> set[tuple[str, str]]:
    return {
        (str(i["system"]), str(i["value"]))
        for i in resource.get("identifier", [])
        if isinstance(i, dict) and i.get("system") in systems and i.get("value")
    }


def _people_by_reference(request: BundleRequest, systems: list[str]) -> dict[str, str]:
    """The national ID ("system|value") of each pushed Patient, by its fullUrl."""
    people = {}
    for entry in request.parsed:
        if entry.resource_type == "Patient" and entry.resource:
            found = _national_ids(entry.resource, systems)
            if len(found) != 1:
                continue
            system, value = next(iter(found))
            source_id = _source_id(entry)
            for reference in (entry.full_url, source_id and f"Patient/{source_id}"):
                if reference:
                    people[reference] = f"{system}|{value}"
    return people


def _person_of(resource: dict[str, Any], people: dict[str, str], systems: list[str]) -> str | None:
    """Whose fact this is: the national ID its subject or patient reference leads to."""
    for element in ("subject", "patient"):
        reference = resource.get(element)
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            continue
        target = reference["reference"]
        if target in people:
            return people[target]
        if target.startswith("Patient?identifier="):
            system, _, value = unquote(target[len("Patient?identifier=") :]).partition("|")
            if system in systems and value:
                return f"{system}|{value}"
    return None


def _source_id(entry: Entry) -> str | None:
    """The id the source gave the resource: its own id, or its urn:uuid fullUrl."""
    if entry.method == "PUT" and entry.resource_id:
        return entry.resource_id
    body_id = (entry.resource or {}).get("id")
    if isinstance(body_id, str) and body_id:
        return body_id
    if entry.full_url and entry.full_url.startswith("urn:uuid:"):
        return entry.full_url[len("urn:uuid:") :]
    return None


def _match_citizen(entry: Entry, source: Source, national_id_systems: list[str]) -> None:
    resource = dict(entry.resource or {})
    found = _national_ids(resource, national_id_systems)
    where = f"{entry.where}.resource.identifier"
    if not found:
        raise FhirError(
            [
                Issue(
                    "required",
                    "The Patient has no national ID: one identifier must have a system of "
                    + ", ".join(national_id_systems),
                    (where,),
                )
            ]
        )
    if len(found) > 1:
        listed = ", ".join(f"{system}|{value}" for system, value in sorted(found))
        raise FhirError(
            [
                Issue(
                    "business-rule",
                    f"The Patient has more than one national ID: {listed}",
                    (where,),
                )
            ]
        )
    (system, value), *_ = found
    source_id = _source_id(entry)
    if source_id is not None:
        own = {"system": source.patient_id_system, "value": source_id}
        if own not in resource.get("identifier", []):
            resource["identifier"] = [*resource.get("identifier", []), own]
    resource.pop("id", None)
    # Credited to this source, so that no other source is shown what it reported.
    entry.checked = Checked("Patient", report(resource, source.reference))
    entry.method = "PUT"
    entry.resource_id = None
    entry.if_none_exist = None
    entry.query = f"identifier={quote(str(system), safe=':/')}|{quote(str(value), safe='')}"
    entry.merge = merge_patient


def _deduplicate(entry: Entry, source: Source) -> None:
    resource = entry.resource or {}
    identifier = next(
        (
            i
            for i in resource.get("identifier", [])
            if isinstance(i, dict) and i.get("system") and i.get("value")
        ),
        None,
    )
    if identifier is None:
        _keep_apart(entry, source)
        return
    if not entry.if_none_exist:
        system, value = str(identifier["system"]), str(identifier["value"])
        entry.if_none_exist = f"identifier={quote(system, safe=':/')}|{quote(value, safe='')}"
    # The id is ours to give; the source's own id names nothing here.
    entry.checked = Checked(entry.resource_type, {k: v for k, v in resource.items() if k != "id"})


def _keep_apart(entry: Entry, source: Source) -> None:
    """Write the resource under the id derived from the source's id (if it has one)."""
    if entry.method == "PUT" and entry.query is not None:
        return  # a conditional update: the condition finds the resource
    source_id = _source_id(entry)
    if source_id is None:
        return  # nothing to recognise it by: a new resource every time
    derived = source.derived_id(entry.resource_type, source_id)
    entry.method = "PUT"
    entry.resource_id = derived
    entry.if_none_exist = None
    entry.checked = Checked(entry.resource_type, {**(entry.resource or {}), "id": derived})


def _map_instance(entry: Entry, source: Source) -> None:
    """DELETE or PATCH of `Type/<source id>`: the source's resource under our id."""
    assert entry.resource_id is not None
    if entry.resource_type not in DIRECTORY_TYPES and entry.resource_type != "Patient":
        entry.resource_id = source.derived_id(entry.resource_type, entry.resource_id)


def _map_source_references(request: BundleRequest, source: Source) -> None:
    """Rewrite `Type/<source id>` references into our ids (bulk data refers this way).

    Another clinical resource: the id derived from the source's id, as it was stored.
    A Patient: the pushed Patient entry with that source id if the Bundle has one, else
    the citizen whose Patient carries that source id (kept since their first push).
    Directory resources are shared across sources and found by identifier instead:
    their literal references are left as they are.
    """
    patients: dict[str, str] = {}
    # A batch resolves no reference between its entries (each is written on its own,
    # in order): there the Patient is found by its source id once it is written.
    for entry in request.parsed if request.kind == "transaction" else ():
        if entry.resource_type == "Patient" and entry.merge is not None:
            source_id = _source_id_of_patient(entry, source)
            if source_id is not None:
                if not entry.full_url:
                    entry.full_url = f"urn:uuid:{uuid.uuid4()}"
                patients[source_id] = entry.full_url

    def mapped(reference: str) -> str:
        match = _LITERAL.match(reference)
        if match is None:
            return reference
        resource_type, source_id = match.groups()
        if resource_type == "Patient":
            if source_id in patients:
                return patients[source_id]
            system = quote(source.patient_id_system, safe=":/")
            condition = f"Patient?identifier={system}|{quote(source_id, safe='')}"
            # Or our id, as the Location of the source's earlier push gave it.
            request.literal_of[condition] = reference
            return condition
        if resource_type in DIRECTORY_TYPES:
            return reference
        return f"{resource_type}/{source.derived_id(resource_type, source_id)}"

    for entry in request.parsed:
        if entry.resource is not None:
            _rewrite_references(entry.resource, mapped)


def _source_id_of_patient(entry: Entry, source: Source) -> str | None:
    """The source's own id of a pushed Patient, as _match_citizen kept it."""
    for identifier in (entry.resource or {}).get("identifier", []):
        if identifier.get("system") == source.patient_id_system:
            return str(identifier.get("value"))
    return None


def _rewrite_references(node: Any, mapped: Callable[[str], str]) -> None:
    if type(node) is dict:
        for key, value in node.items():
            if key == "reference" and type(value) is str:
                node[key] = mapped(value)
            elif type(value) is dict or type(value) is list:
                _rewrite_references(value, mapped)
    elif type(node) is list:
        for item in node:
            if type(item) is dict or type(item) is list:
                _rewrite_references(item, mapped)


def _stamp_source(entry: Entry, source: Source) -> None:
    resource = entry.resource
    assert resource is not None
    meta = dict(resource.get("meta") or {})
    meta["source"] = source.uri
    resource["meta"] = meta
