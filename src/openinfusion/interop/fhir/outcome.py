"""OperationOutcome: how every refusal under ``/fhir`` is answered (FHIR R4 §3.1.0.6).

The server's own problems (``field``, ``value``, ``rule``, ``message``) become one issue
each: ``diagnostics`` is the rule with the field and value, ``expression`` the FHIR path
when the problem names one (refused MedicationRequest elements), and ``code`` comes from
the HTTP status (issue-type codes of http://hl7.org/fhir/issue-type, R4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from openinfusion.server.api.errors import ApiError, ErrorFace, error_body

FHIR_JSON = "application/fhir+json"
MEDIA_TYPES = frozenset({FHIR_JSON, "application/json"})

# HTTP status -> issue type (R4 IssueType value set).
_ISSUE_TYPE = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invariant",
    429: "throttled",
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a request: the FHIR path, the value found and the rule it broke."""

    expression: str
    value: Any
    rule: str
    code: str | None = None  # an issue type other than the status's default

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(error_body(self.expression, self.value, self.rule)["error"])
        body["expression"] = self.expression
        if self.code is not None:
            body["issue_code"] = self.code
        return body


class FhirError(ApiError):
    """A refusal under ``/fhir`` carrying one or more issues with FHIR paths."""

    def __init__(
        self, status: int, issues: list[Issue], headers: dict[str, str] | None = None
    ) -> None:
        if not issues:
            raise ValueError("a FHIR refusal names at least one issue")
        first = issues[0]
        super().__init__(status, first.expression, first.value, first.rule, headers)
        self.issues = issues

    def body(self) -> dict[str, Any]:
        problems = [i.problem() for i in self.issues]
        return {"error": problems[0], "problems": problems}


def fail(status: int, expression: str, value: Any, rule: str) -> FhirError:
    return FhirError(status, [Issue(expression, value, rule)])


def outcome(status: int, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome (as JSON) with one error issue per problem."""
    default = _ISSUE_TYPE.get(status, "exception" if status >= 500 else "processing")
    issues = []
    for p in problems:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": p.get("issue_code") or default,
            "diagnostics": str(p.get("message") or p.get("rule") or "refused"),
        }
        if p.get("expression"):
            issue["expression"] = [str(p["expression"])]
        issues.append(issue)
    resource = OperationOutcome.model_validate(
        {"resourceType": "OperationOutcome", "issue": issues}
    )
    return resource.model_dump(mode="json", exclude_none=True)


def render(status: int, problems: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    return outcome(status, problems), FHIR_JSON


FACE = ErrorFace(prefix="/fhir", media_types=MEDIA_TYPES, render=render)
