"""_include and _revinclude as parsed: https://hl7.org/fhir/R4/search.html#include"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` or `_revinclude=Source:param[:Target]`.

    For _include, `source_type` is the type of the matched resources and the resources
    their `param` references are added. For _revinclude, the resources of
    `source_type` whose `param` references a matched resource are added. `iterate`
    (`:iterate`, R4's name for `:recurse`) applies the rule again to what was added.
    """

    source_type: str
    param: str
    target_type: str | None = None
    reverse: bool = False
    iterate: bool = False
