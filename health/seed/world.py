"""The demo world as written in seed_data/: organisations, clinicians, citizens, relatives.

world.json says who exists and what happened to them; catalogue.json holds the codes
and Danish texts. This module reads both into plain data and knows the people who can
log in with the development eID; turning the world into FHIR is `records.py`'s job.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from health import PROJECT_ROOT

SEED_DATA = PROJECT_ROOT / "seed_data"
# https://www.hl7.dk/fhir/core/ (DK core): CPR numbers and SOR codes as OID systems.
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"

_OFFSET = re.compile(r"([+-]\d+)([dwmy])")


class PersonRole(StrEnum):
    citizen = "citizen"
    clinician = "clinician"
    relative = "relative"


@dataclass(frozen=True)
class Address:
    line: tuple[str, ...]
    postal_code: str
    city: str


@dataclass(frozen=True)
class Location:
    """Where care happens: a hospital department or a GP's practice, with its SOR code."""

    key: str
    name: str
    sor: str
    organisation: str


@dataclass(frozen=True)
class Organisation:
    key: str
    name: str
    kind: str  # "hospital" or "gp"
    sor: str
    # The base URL of the organisation's own record system: the system of its local ids.
    ehr: str
    address: Address
    phone: str
    locations: tuple[Location, ...]


@dataclass(frozen=True)
class Person:
    """A citizen, relative or clinician: someone with a CPR number and a name."""

    key: str
    cpr: str
    given: tuple[str, ...]
    family: str
    gender: str
    birth_date: date
    address: Address | None = None
    phone: str | None = None
    story: str = ""

    @property
    def full_name(self) -> str:
        return " ".join((*self.given, self.family))


@dataclass(frozen=True)
class Clinician:
    person: Person
    organisation: str
    role: str  # http://terminology.hl7.org/CodeSystem/practitioner-role: doctor, nurse
    title: str
    specialty: str
    # Where they work (a key of the organisation's locations); their contacts are there.
    location: str


@dataclass(frozen=True)
class Citizen:
    person: Person
    gp: str
    # What happened, in the order written; the event schema is described in world.json.
    events: tuple[dict[str, Any], ...]

    @property
    def organisations(self) -> tuple[str, ...]:
        """The organisations holding part of this citizen's record, GP first."""
        keys = [self.gp]
        for event in self.events:
            if event["org"] not in keys:
                keys.append(event["org"])
        return tuple(keys)


@dataclass(frozen=True)
class Relation:
    """A relative who may act for a citizen (parental custody, power of attorney)."""

    citizen: str
    relative: str
    # http://terminology.hl7.org/CodeSystem/v3-RoleCode: FTH, MTH, DAU, SON, ...
    relationship: str
    authority: str
    since: date


@dataclass(frozen=True)
class DemoPerson:
    """Someone a tester can log in as with the development eID."""

    name: str
    national_id: str
    role: PersonRole
    description: str


@dataclass(frozen=True)
class World:
    organisations: dict[str, Organisation]
    clinicians: dict[str, Clinician]
    citizens: dict[str, Citizen]
    relatives: dict[str, Person]
    relations: tuple[Relation, ...]
    catalogue: dict[str, Any]
    # SHA-256 of world.json and catalogue.json as read: what the world was made from.
    digest: str

    def person(self, key: str) -> Person:
        """A citizen or relative by key."""
        if key in self.citizens:
            return self.citizens[key].person
        return self.relatives[key]

    def location(self, key: str) -> Location:
        """A location of any organisation, by key."""
        for organisation in self.organisations.values():
            for location in organisation.locations:
                if location.key == key:
                    return location
        raise KeyError(f"no location {key!r} in world.json")


def load_world(seed_data: Path = SEED_DATA) -> World:
    """Read world.json and catalogue.json from `seed_data`."""
    world_json = (seed_data / "world.json").read_bytes()
    catalogue_json = (seed_data / "catalogue.json").read_bytes()
    document = orjson.loads(world_json)
    catalogue = orjson.loads(catalogue_json)
    organisations = {
        raw["key"]: Organisation(
            key=raw["key"],
            name=raw["name"],
            kind=raw["kind"],
            sor=raw["sor"],
            ehr=raw["ehr"],
            address=_address(raw["address"]),
            phone=raw["phone"],
            locations=tuple(
                Location(
                    key=place["key"], name=place["name"], sor=place["sor"], organisation=raw["key"]
                )
                for place in raw["locations"]
            ),
        )
        for raw in document["organisations"]
    }
    clinicians = {
        raw["key"]: Clinician(
            person=_person(raw),
            organisation=raw["organisation"],
            role=raw["role"],
            title=raw["title"],
            specialty=raw["specialty"],
            location=raw["location"],
        )
        for raw in document["clinicians"]
    }
    citizens = {
        raw["key"]: Citizen(person=_person(raw), gp=raw["gp"], events=tuple(raw["events"]))
        for raw in document["citizens"]
    }
    relatives = {raw["key"]: _person(raw) for raw in document["relatives"]}
    relations = tuple(
        Relation(
            citizen=raw["citizen"],
            relative=raw["relative"],
            relationship=raw["relationship"],
            authority=raw["authority"],
            since=date.fromisoformat(raw["since"]),
        )
        for raw in document["relations"]
    )
    digest = hashlib.sha256(world_json + b"\0" + catalogue_json).hexdigest()
    world = World(organisations, clinicians, citizens, relatives, relations, catalogue, digest)
    for key, clinician in clinicians.items():
        if world.location(clinician.location).organisation != clinician.organisation:
            raise ValueError(f"{key} works at {clinician.location}, not at their organisation")
    return world


def resolve_date(value: str, today: date) -> date:
    """An ISO date, or an offset from `today` such as `-16w`, `+12d`, `-2m` or `+1y`."""
    offset = _OFFSET.fullmatch(value)
    if offset is None:
        return date.fromisoformat(value)
    amount, unit = int(offset.group(1)), offset.group(2)
    if unit == "d":
        return today + timedelta(days=amount)
    if unit == "w":
        return today + timedelta(weeks=amount)
    return add_months(today, amount * (12 if unit == "y" else 1))


def add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when it is shorter)."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def demo_persons(world: World | None = None) -> list[DemoPerson]:
    """Everyone who can log in to the demo: citizens, relatives acting for them, clinicians."""
    world = world or load_world()
    acts_for: dict[str, list[str]] = {}
    for relation in world.relations:
        acts_for.setdefault(relation.relative, []).append(world.person(relation.citizen).full_name)
    persons = [
        DemoPerson(
            name=citizen.person.full_name,
            national_id=citizen.person.cpr,
            role=PersonRole.citizen,
            description=_with_relations(citizen.person.story, acts_for.get(key)),
        )
        for key, citizen in world.citizens.items()
    ]
    persons += [
        DemoPerson(
            name=relative.full_name,
            national_id=relative.cpr,
            role=PersonRole.relative,
            description=_with_relations(relative.story, acts_for.get(key)),
        )
        for key, relative in world.relatives.items()
    ]
    persons += [
        DemoPerson(
            name=clinician.person.full_name,
            national_id=clinician.person.cpr,
            role=PersonRole.clinician,
            description=(
                f"{clinician.title}, {clinician.specialty}, "
                f"{world.organisations[clinician.organisation].name}"
            ),
        )
        for clinician in world.clinicians.values()
    ]
    return persons


def _with_relations(story: str, acts_for: list[str] | None) -> str:
    if not acts_for:
        return story
    return f"{story} May act for: {', '.join(acts_for)}."


def _address(raw: dict[str, Any]) -> Address:
    return Address(line=tuple(raw["line"]), postal_code=raw["postal_code"], city=raw["city"])


def _person(raw: dict[str, Any]) -> Person:
    return Person(
        key=raw["key"],
        cpr=raw["cpr"],
        given=tuple(raw["given"]),
        family=raw["family"],
        gender=raw["gender"],
        birth_date=date.fromisoformat(raw["birth_date"]),
        address=_address(raw["address"]) if "address" in raw else None,
        phone=raw.get("phone"),
        story=raw.get("story", ""),
    )
