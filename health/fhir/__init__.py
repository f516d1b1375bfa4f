"""The FHIR R4 REST layer: interactions, bundles, validation, content and errors."""
