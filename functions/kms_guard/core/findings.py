"""Findings, verdicts and reports: the stable output vocabulary (design.md, "Verdicts and finding codes")."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
Verdict = Literal["compliant", "at-risk", "non-compliant"]

_VERDICT_RANK: dict[Verdict, int] = {"compliant": 0, "at-risk": 1, "non-compliant": 2}


class Code(enum.StrEnum):
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    KEY_DISABLED = "KEY_DISABLED"
    KEY_PENDING_DELETION = "KEY_PENDING_DELETION"
    KEY_UNUSABLE = "KEY_UNUSABLE"
    KEY_NOT_MULTI_REGION = "KEY_NOT_MULTI_REGION"
    KEY_SPEC_INVALID = "KEY_SPEC_INVALID"
    KEY_USAGE_INVALID = "KEY_USAGE_INVALID"
    ACTION_NOT_GRANTED = "ACTION_NOT_GRANTED"
    ACTION_DENIED = "ACTION_DENIED"
    GRANT_CONDITIONAL = "GRANT_CONDITIONAL"
    POLICY_UNREADABLE = "POLICY_UNREADABLE"
    PUBLIC_PRINCIPAL = "PUBLIC_PRINCIPAL"
    POLICY_INVALID = "POLICY_INVALID"
    VERDICT_DISPUTED = "VERDICT_DISPUTED"
    REPLICA_UNWATCHED = "REPLICA_UNWATCHED"


AT_RISK_CODES = frozenset({Code.GRANT_CONDITIONAL})
"""Warnings that make a verdict at-risk: the vendor's access depends on something the guard cannot verify."""


@dataclass(frozen=True)
class Finding:
    code: Code
    severity: Severity
    region: str | None
    message: str
    actions: tuple[str, ...] = ()
    statement: str | None = None
    fixable: bool = field(default=True, compare=False)
    """Whether `kms-guard fix-policy` can repair what this finding reports (alerts advise it only then)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code.value,
            "severity": self.severity,
            "region": self.region,
            "message": self.message,
        }
        if self.actions:
            out["actions"] = list(self.actions)
        if self.statement is not None:
            out["statement"] = self.statement
        return out


def verdict_of(findings: tuple[Finding, ...] | list[Finding]) -> Verdict:
    return verdict_of_fields((f.severity, f.code.value) for f in findings)


_AT_RISK_VALUES = frozenset(c.value for c in AT_RISK_CODES)


def verdict_of_fields(fields: Iterable[tuple[object, object]]) -> Verdict:
    """The verdict from each finding's (severity, code value): a `Finding`'s, or a copy read back (`to_dict`)."""
    verdict: Verdict = "compliant"
    for severity, code in fields:
        if severity == "critical":
            return "non-compliant"
        if code in _AT_RISK_VALUES:
            verdict = "at-risk"
    return verdict


def worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=_VERDICT_RANK.__getitem__, default="compliant")


@dataclass(frozen=True)
class RegionReport:
    region: str
    key_arn: str
    key_state: str | None
    findings: tuple[Finding, ...]
    policy: str | None = field(default=None, compare=False, repr=False)
    """The policy text that was evaluated (kept for baselines and repair; never printed in reports)."""

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "key_arn": self.key_arn,
            "key_state": self.key_state,
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class KeyReport:
    key_arn: str
    regions: tuple[RegionReport, ...]

    @property
    def verdict(self) -> Verdict:
        return worst([r.verdict for r in self.regions])

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.regions for f in r.findings)

    def region(self, name: str) -> RegionReport | None:
        return next((r for r in self.regions if r.region == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_arn": self.key_arn,
            "verdict": self.verdict,
            "regions": [r.to_dict() for r in self.regions],
        }
