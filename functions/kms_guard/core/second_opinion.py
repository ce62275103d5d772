"""The second opinion: does AWS's own policy reasoner agree that the vendor is granted? (pure; the adapter asks AWS)

IAM Access Analyzer's `CheckNoNewAccess(existingPolicyDocument, newPolicyDocument, policyType=RESOURCE_POLICY)`
answers PASS when the new policy grants nothing the existing one does not (Zelkova: sound, not a heuristic;
https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_CheckNoNewAccess.html). Asked with the live key
policy as the existing policy and a policy holding only the vendor's reference statement as the new one, PASS means
the live policy already grants the vendor everything the reference statement does: every required action, with no
Deny and no condition in the way. FAIL means it does not, or not provably.

The guard's own answer to the same question is read from its findings for the Region:
- `granted`: none of ACTION_NOT_GRANTED, ACTION_DENIED, GRANT_CONDITIONAL;
- `not-granted`: ACTION_NOT_GRANTED or ACTION_DENIED;
- `unproven`: only GRANT_CONDITIONAL (the guard could not decide a condition).
PASS agrees with `granted` only; FAIL agrees with `not-granted` and `unproven` (AWS cannot prove it either). Any
other pair is a dispute: VERDICT_DISPUTED (warning), with both answers and AWS's reasons in the message, and the
guard holds its repairs for that Region. A Region whose policy could not be read is not asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from kms_guard.core.findings import Code, Finding, RegionReport
from kms_guard.core.repair import guard_statements
from kms_guard.core.vendor import VendorProfile

OpinionResult = Literal["PASS", "FAIL", "ERROR"]
GuardView = Literal["granted", "not-granted", "unproven"]

NOT_GRANTED_CODES = frozenset({Code.ACTION_NOT_GRANTED, Code.ACTION_DENIED})
UNPROVEN_CODES = frozenset({Code.GRANT_CONDITIONAL})
MAX_REASONS = 10


@dataclass(frozen=True)
class Reason:
    """One of AWS's reasons for a FAIL (`ReasonSummary`: description, statementIndex, statementId)."""

    description: str
    statement_index: int | None = None
    statement_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "statement_index": self.statement_index,
            "statement_id": self.statement_id,
        }

    def text(self) -> str:
        where = self.statement_id or (f"#{self.statement_index}" if self.statement_index is not None else "")
        return f"{self.description} (statement {where})" if where else self.description


@dataclass(frozen=True)
class Opinion:
    """AWS's answer, or ERROR with why it could not be had (then no verdict is disputed and no write is allowed)."""

    result: OpinionResult
    message: str = ""
    reasons: tuple[Reason, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "message": self.message, "reasons": [r.to_dict() for r in self.reasons]}

    def text(self) -> str:
        parts: list[str] = [self.result]
        if self.message:
            parts.append(self.message)
        reasons = "; ".join(r.text() for r in self.reasons[:MAX_REASONS])
        if reasons:
            parts.append(f"reasons: {reasons}")
        return ": ".join(parts)


def opinion_from_response(response: dict[str, Any]) -> Opinion:
    """A CheckNoNewAccess response (service model shape) as an Opinion; anything but PASS or FAIL is an ERROR."""
    result = response.get("result")
    reasons = tuple(
        Reason(
            str(r.get("description", "")),
            r["statementIndex"] if isinstance(r.get("statementIndex"), int) else None,
            str(r["statementId"]) if r.get("statementId") else None,
        )
        for r in response.get("reasons") or ()
        if isinstance(r, dict)
    )
    message = " ".join(str(response.get("message") or "").split())[:1000]
    if result not in ("PASS", "FAIL"):
        return Opinion("ERROR", f"unexpected result {str(result)[:40]!r}", reasons)
    return Opinion(result, message, reasons)


def reference_policy(vendor: VendorProfile, region: str | None = None) -> str:
    """The new policy of the check: only the vendor's reference statements (what `kms-guard statement` prints), with
    the key's Region filled in where a pinning condition names it."""
    statements = guard_statements(vendor, region)
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def guard_view(report: RegionReport) -> GuardView | None:
    """The guard's answer to "is the vendor granted?" in this Region; None when the policy was not read."""
    if report.policy is None:
        return None
    codes = {f.code for f in report.findings}
    if codes & NOT_GRANTED_CODES:
        return "not-granted"
    if codes & UNPROVEN_CODES:
        return "unproven"
    return "granted"


def agrees(view: GuardView, opinion: Opinion) -> bool | None:
    """None when AWS gave no answer (ERROR): nothing to compare."""
    if opinion.result == "ERROR":
        return None
    return (opinion.result == "PASS") == (view == "granted")


_VIEW_TEXT: dict[GuardView, str] = {
    "granted": "{vendor} is granted",
    "not-granted": "{vendor} is not granted",
    "unproven": "{vendor}'s access cannot be proven (a condition it cannot decide)",
}


def dispute(report: RegionReport, opinion: Opinion, vendor: VendorProfile) -> Finding | None:
    """VERDICT_DISPUTED for this Region when AWS's answer disagrees with the guard's, else None."""
    view = guard_view(report)
    if view is None or agrees(view, opinion) is not False:
        return None
    codes = sorted({f.code.value for f in report.findings if f.code in NOT_GRANTED_CODES | UNPROVEN_CODES})
    guard_says = _VIEW_TEXT[view].format(vendor=vendor.display_name) + (f" ({', '.join(codes)})" if codes else "")
    aws_says = "the vendor's statement grants nothing new" if opinion.result == "PASS" else "it would grant new access"
    return Finding(
        Code.VERDICT_DISPUTED,
        "warning",
        report.region,
        f"The second opinion disagrees. The guard says {guard_says}. IAM Access Analyzer CheckNoNewAccess says "
        f"{aws_says}: {opinion.text()}. The guard holds its repairs in {report.region} until they agree; have a "
        "person read the key policy.",
    )
