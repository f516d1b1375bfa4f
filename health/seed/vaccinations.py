"""Which vaccine doses a citizen received: the Danish programmes and single doses.

The childhood programme (Sundhedsstyrelsen's børnevaccinationsprogram) comes from
catalogue.json; seasonal vaccination means influenza every autumn and COVID-19 (two
primary doses, then an autumn booster each year).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from health.seed.world import Person, add_months

CHILDHOOD_SERIES = "Børnevaccinationsprogrammet"
COVID_SERIES = "Covid-19-vaccination, grundvaccination"


@dataclass(frozen=True)
class Dose:
    vaccine: str  # a key of catalogue.json's vaccines
    day: date
    # Which dose of the event this is, whatever the load date: "influenza/2023".
    key: str
    series: str | None = None
    number: int | None = None


def vaccination_doses(
    event: dict[str, Any],
    person: Person,
    catalogue: dict[str, Any],
    today: date,
    resolve: Callable[[str], date],
    random_for: Callable[[str], random.Random],
) -> list[Dose]:
    """The doses a `vaccines` event of world.json stands for, given before `today`.

    Each dose's day is drawn from a generator of its own (`random_for(key)`), so that
    a dose comes out the same whatever the load date and whichever doses follow it.
    """
    doses: list[Dose] = []
    if event.get("programme") == "childhood":
        for step in catalogue["childhood_programme"]:
            first_cohort = step.get("from_birth_year", {}).get(person.gender)
            if "from_birth_year" in step and (
                first_cohort is None or person.birth_date.year < first_cohort
            ):
                continue
            key = f"childhood/{step['vaccine']}/{step['dose']}"
            day = add_months(person.birth_date, step["age_months"])
            day += timedelta(days=random_for(key).randint(0, 20))
            doses.append(Dose(step["vaccine"], day, key, CHILDHOOD_SERIES, step["dose"]))
    seasonal = event.get("seasonal", {})
    if "influenza_from" in seasonal:
        for year in range(seasonal["influenza_from"], today.year + 1):
            key = f"influenza/{year}"
            doses.append(Dose("influenza", _autumn(year, random_for(key)), key))
    if "covid_from" in seasonal:
        first_year = seasonal["covid_from"]
        primary = date(first_year, 4, 12) + timedelta(
            days=random_for("covid19/primary").randint(0, 14)
        )
        doses.append(Dose("covid19", primary, "covid19/primary/1", COVID_SERIES, 1))
        second = primary + timedelta(weeks=6)
        doses.append(Dose("covid19", second, "covid19/primary/2", COVID_SERIES, 2))
        for year in range(first_year, today.year + 1):
            key = f"covid19/{year}"
            doses.append(Dose("covid19", _autumn(year, random_for(key)), key))
    for single in event.get("doses", []):
        key = f"{single['vaccine']}/{single['date']}"
        doses.append(Dose(single["vaccine"], resolve(single["date"]), key))
    return [dose for dose in doses if dose.day < today]


def _autumn(year: int, rng: random.Random) -> date:
    """A day of the autumn campaign (from 1 October, about six weeks)."""
    return date(year, 10, 1) + timedelta(days=rng.randint(0, 45))
