"""Break the glass: a clinician's request for emergency access, read from HTTP.

The header `X-Break-Glass-Reason: <free text>` on a request about one citizen (read,
search by patient or subject, `$everything`, history of their Patient) opens that
clinician's time-limited access to the citizen's record (health/access/policy.py),
logged with the reason and shown to the citizen.
"""

from __future__ import annotations

from fastapi import Request

from health.fhir.errors import invalid

HEADER = "x-break-glass-reason"
MAX_REASON = 1000
_PATIENT_PARAMS = ("patient", "subject", "beneficiary")


def emergency_reason(request: Request) -> str | None:
    """The reason given, or None when the request does not break the glass."""
    if HEADER not in request.headers:
        return None
    reason = request.headers[HEADER].strip()
    if not reason:
        raise invalid("X-Break-Glass-Reason needs a reason: why the record must be seen now")
    if len(reason) > MAX_REASON:
        raise invalid(f"X-Break-Glass-Reason is longer than {MAX_REASON} characters")
    return reason


def emergency_patient(request: Request) -> str:
    """The one citizen an emergency request is about; 400 when it names none or several."""
    params = request.path_params
    if params.get("patient_id"):
        return str(params["patient_id"])
    if params.get("resource_type") == "Patient" and params.get("resource_id"):
        return str(params["resource_id"])
    named = {
        value.strip().removeprefix("Patient/")
        for name, value in request.query_params.multi_items()
        if name.split(":", 1)[0] in _PATIENT_PARAMS
        or (params.get("resource_type") == "Patient" and name == "_id")
    }
    if len(named) == 1:
        (patient_id,) = named
        if patient_id and "," not in patient_id and "/" not in patient_id:
            return patient_id
    raise invalid(
        "Emergency access is to one citizen: name them in the request "
        "(Patient/<id>, Patient/<id>/$everything, or ?patient=<id>)"
    )
