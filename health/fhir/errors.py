"""Plain exceptions of the core, each carrying what an OperationOutcome needs.

https://hl7.org/fhir/R4/operationoutcome.html; issue codes from
https://hl7.org/fhir/R4/valueset-issue-type.html. Exactly one handler (in
health.fhir.routes) turns them into an HTTP response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem: what was wrong (diagnostics) and where (FHIRPath expression)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """A request that cannot be served, with the HTTP status and the issues."""

    issues: list[Issue] = field(default_factory=list)
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(issue.diagnostics for issue in self.issues)

    def located(self, prefix: str) -> FhirError:
        """The same error with every expression moved under `prefix` (a bundle entry)."""
        moved = [
            Issue(
                code=issue.code,
                diagnostics=issue.diagnostics,
                expression=tuple(_join(prefix, e) for e in issue.expression) or (prefix,),
                severity=issue.severity,
            )
            for issue in self.issues
        ]
        return type(self)(issues=moved, status=self.status, headers=self.headers)


def _join(prefix: str, expression: str) -> str:
    """Re-root an expression: "Patient.name[0]" under "Bundle.entry[3].resource"."""
    if expression.startswith("Bundle."):
        return expression
    _, _, rest = expression.partition(".")
    return f"{prefix}.{rest}" if rest else prefix


def _make(
    status: int, code: str, diagnostics: str, expression: str | tuple[str, ...] = ()
) -> FhirError:
    where = (expression,) if isinstance(expression, str) else expression
    return FhirError(issues=[Issue(code, diagnostics, where)], status=status)


def invalid(diagnostics: str, expression: str | tuple[str, ...] = ()) -> FhirError:
    return _make(400, "invalid", diagnostics, expression)


def structure(diagnostics: str, expression: str | tuple[str, ...] = ()) -> FhirError:
    return _make(400, "structure", diagnostics, expression)


def not_supported(diagnostics: str, expression: str | tuple[str, ...] = ()) -> FhirError:
    return _make(400, "not-supported", diagnostics, expression)


def not_found(diagnostics: str) -> FhirError:
    return _make(404, "not-found", diagnostics)


def challenge_text(text: str) -> str:
    """`text` as an OAuth `error_description` may carry it, in a body or in a
    WWW-Authenticate header: printable ASCII without `"` or `\\`, anything else as `?`.

    https://datatracker.ietf.org/doc/html/rfc6749#section-5.2 and rfc6750#section-3. A
    description quotes what the client sent (a token's header, say), and an HTTP header
    cannot carry what Latin-1 cannot write.
    """
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def unauthorized(diagnostics: str, *, realm: str, error: str | None = None) -> FhirError:
    """401 with the RFC 6750 challenge: no token (error None), or an invalid one."""
    challenge = f'Bearer realm="{challenge_text(realm)}"'
    if error is not None:
        challenge += f', error="{error}", error_description="{challenge_text(diagnostics)}"'
    failure = _make(401, "login", diagnostics)
    failure.headers["WWW-Authenticate"] = challenge
    return failure


def forbidden(diagnostics: str, *, scope: str | None = None) -> FhirError:
    """403: the token is valid but does not permit this (RFC 6750 insufficient_scope)."""
    failure = _make(403, "forbidden", diagnostics)
    challenge = 'Bearer error="insufficient_scope"'
    if scope:
        challenge += f', scope="{scope}"'
    failure.headers["WWW-Authenticate"] = challenge
    return failure


def gone(diagnostics: str) -> FhirError:
    return _make(410, "deleted", diagnostics)


def conflict(diagnostics: str, expression: str | tuple[str, ...] = ()) -> FhirError:
    return _make(409, "conflict", diagnostics, expression)


def precondition_failed(diagnostics: str, code: str = "conflict") -> FhirError:
    return _make(412, code, diagnostics)


def unprocessable(diagnostics: str, expression: str | tuple[str, ...] = ()) -> FhirError:
    return _make(422, "processing", diagnostics, expression)


def too_large(diagnostics: str) -> FhirError:
    return _make(413, "too-long", diagnostics)


def unsupported_media_type(diagnostics: str) -> FhirError:
    return _make(415, "not-supported", diagnostics)


def not_acceptable(diagnostics: str) -> FhirError:
    return _make(406, "not-supported", diagnostics)


def method_not_allowed(diagnostics: str) -> FhirError:
    return _make(405, "not-supported", diagnostics)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def information_outcome(diagnostics: str) -> dict[str, Any]:
    return operation_outcome([Issue("informational", diagnostics, severity="information")])
