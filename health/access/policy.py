"""What each kind of caller may see, as plain data the repository applies in SQL."""

from __future__ import annotations

# Resources about no one in particular: the directory of organisations, clinicians and
# places, and medication definitions. A citizen's app reads them beside the citizen's
# own record (to show who treated them, where, with what). A resource of any other
# type outside every patient's compartment stays hidden from citizens, so that data
# pushed without a subject never reaches every patient.
SHARED_DIRECTORY_TYPES = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
    }
)
