"""One health record per citizen: FHIR R4 server, eID login, consent, citizen portal."""

from pathlib import Path

__version__ = "0.1.0"

# The project root holds the conformance data (fhir/), templates and seed data that the
# package reads at run time; they are data, not Python, so they live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
