"""How string search values are compared: https://hl7.org/fhir/R4/search.html#string

"By default, a field matches a string query if the value of the field equals or starts
with the supplied parameter value, after both have been normalized by case and accent."
The extractor stores `normalise(value)` in search_string.value (and token display text
in search_token.text); the search side normalises what the client sent the same way.
"""

from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    """Case-folded, accents removed, whitespace runs collapsed to one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.split())
