"""What the guard would write to one Region's key, decided from its report alone (pure; the guard executes it).

- `restoreKeyState`: EnableKey a Disabled key; CancelKeyDeletion then EnableKey a key pending deletion
  (CancelKeyDeletion leaves the key Disabled). Other unusable states (PendingImport, Unavailable, Creating) are not
  the guard's to fix.
- Policy: `restore-statement` or `revert` when Rockset's grant is missing or only conditional; an explicit Deny that
  blocks the vendor is refused by the planner, and so are policies that would exceed 32 KB.
- A missing replica, an unreadable policy, the wrong key spec, usage or Regionality: reported, never "repaired".
  A policy the guard could not read or evaluate (`POLICY_UNREADABLE`) or that holds what KMS rejects
  (`POLICY_INVALID`) is never rewritten, in any mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from kms_guard.core.evaluate import Budget, BudgetExceeded, budgeted
from kms_guard.core.findings import Code, RegionReport
from kms_guard.core.policy import PolicyError
from kms_guard.core.repair import Mode, plan_repair
from kms_guard.core.vendor import VendorProfile

WriteKind = Literal["put-key-policy", "cancel-key-deletion", "enable-key"]
Status = Literal["applied", "dry-run", "refused", "suspended", "skipped", "failed", "not-needed"]

PLAN_BUDGET_SECONDS = 5.0
"""Planning evaluates the live policy (and a baseline, and its own result) again: under one deadline in all."""

POLICY_CODES = frozenset({Code.ACTION_NOT_GRANTED, Code.GRANT_CONDITIONAL, Code.ACTION_DENIED})


@dataclass(frozen=True)
class Write:
    kind: WriteKind
    policy: str | None = None


@dataclass(frozen=True)
class RegionPlan:
    region: str
    key_arn: str
    writes: tuple[Write, ...]
    description: str
    refused: str | None = None


@dataclass
class Outcome:
    """What the guard did (or would do) in one Region."""

    region: str
    status: Status
    description: str
    writes: list[str] = field(default_factory=list)
    verified: bool | None = None
    planned_policy: str | None = None
    """Dry run: exactly the policy that would have been written."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "region": self.region,
            "status": self.status,
            "description": self.description,
            "writes": list(self.writes),
            "applied": self.status == "applied",
            "verified": self.verified,
        }
        if self.planned_policy is not None:
            out["planned_policy"] = self.planned_policy
        return out


def plan_region(
    report: RegionReport,
    vendor: VendorProfile,
    *,
    mode: Literal["off", "restore-statement", "revert"],
    restore_key_state: bool,
    baseline: str | None,
) -> RegionPlan | None:
    """The writes that would make this Region compliant, or None when there is nothing the guard may do."""
    codes = {f.code for f in report.findings}
    writes: list[Write] = []
    notes: list[str] = []
    refused: str | None = None

    if restore_key_state and Code.KEY_PENDING_DELETION in codes:
        writes += [Write("cancel-key-deletion"), Write("enable-key")]
        notes.append("cancel the scheduled deletion and enable the key")
    elif restore_key_state and Code.KEY_DISABLED in codes:
        writes.append(Write("enable-key"))
        notes.append("enable the key")

    unreadable = Code.POLICY_UNREADABLE in codes or Code.POLICY_INVALID in codes
    if mode != "off" and codes & POLICY_CODES and report.policy is not None and not unreadable:
        try:
            with budgeted(Budget(PLAN_BUDGET_SECONDS)):
                policy_plan = plan_repair(_mode(mode), report.policy, vendor, key_arn=report.key_arn, baseline=baseline)
        except PolicyError as exc:  # an unparseable policy is POLICY_UNREADABLE, not a policy finding: defensive
            refused = f"the key policy could not be parsed ({exc})"
        except BudgetExceeded as exc:
            refused = f"planning the repair took too long ({exc}); nothing written"
        else:
            if policy_plan.status == "repair" and policy_plan.policy is not None:
                writes.insert(0, Write("put-key-policy", policy_plan.policy))
                notes.insert(0, policy_plan.description)
            elif policy_plan.status == "refused":
                refused = policy_plan.description
    if not writes and refused is None:
        return None
    return RegionPlan(report.region, report.key_arn, tuple(writes), "; ".join(notes), refused)


def _mode(mode: str) -> Mode:
    return "revert" if mode == "revert" else "restore-statement"
