"""Key compliance: key metadata and key policy, per Region, in; findings and verdicts out.

A Region is compliant only when its key exists, is usable (Enabled or Updating), has the vendor's key spec, usage
and multi-Region property, and its key policy proves the vendor's account is allowed every required action with no
Deny that applies or may apply. A Region whose key is missing or unreadable is never compliant.

A live policy is parsed and evaluated under a time budget (`LIVE_BUDGET_SECONDS`): one that cannot be parsed, or
whose evaluation runs out of time, is reported for its Region only (`POLICY_UNREADABLE`, critical) and every other
Region is still evaluated. What KMS would reject or AWS never matches is `POLICY_INVALID` (`validity.py`): critical
when the vendor's grant depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kms_guard.core import validity
from kms_guard.core.evaluate import ActionDecision, Budget, BudgetExceeded, Caller, evaluate, is_public
from kms_guard.core.findings import Code, Finding, KeyReport, RegionReport
from kms_guard.core.policy import Policy, PolicyError, parse_policy
from kms_guard.core.profiles import command_flags
from kms_guard.core.vendor import EVALUATED_KINDS, Grant, VendorProfile

LIVE_BUDGET_SECONDS = 5.0
"""Time one Region's policy may take to evaluate in the guard (any 32 KB policy takes milliseconds)."""

PENDING_DELETION_STATES = ("PendingDeletion", "PendingReplicaDeletion")


@dataclass(frozen=True)
class GrantAssessment:
    """One grant of the vendor's (one statement it asks for): the decision per action, worst over its callers."""

    grant: Grant
    who: str
    decisions: dict[str, ActionDecision]

    @property
    def granted(self) -> tuple[str, ...]:
        return tuple(a for a, d in self.decisions.items() if d.decision == "allowed")


@dataclass(frozen=True)
class PolicyAssessment:
    decisions: dict[str, ActionDecision]
    """Per concrete action, the worst decision over every grant that needs it."""
    findings: tuple[Finding, ...]
    grants: tuple[GrantAssessment, ...] = ()

    def actions_with(self, *decisions: str) -> tuple[str, ...]:
        return tuple(a for a, d in self.decisions.items() if d.decision in decisions)

    @property
    def granted(self) -> tuple[str, ...]:
        return self.actions_with("allowed")

    @property
    def missing(self) -> tuple[str, ...]:
        return self.actions_with("not-granted", "denied")

    @property
    def conditional(self) -> tuple[str, ...]:
        return self.actions_with("conditional")


_RANK = {"allowed": 0, "conditional": 1, "not-granted": 2, "denied": 3}


def callers(grant: Grant, key_arn: str | None) -> tuple[Caller, ...]:
    """Who makes the vendor's calls for one grant: its account, each of its roles, or the pinned wildcard's caller."""
    if grant.kind == "vendor-roles":
        return tuple(Caller(role.split(":")[4], key_arn, grant.context, role) for role in grant.roles)
    return (Caller(grant.account, key_arn, grant.context),)


def _who(profile: VendorProfile, grant: Grant) -> str:
    return f"{profile.display_name}'s {grant.who()}" + (f" [{grant.label}]" if grant.label else "")


def assess_policy(
    policy: Policy,
    profile: VendorProfile,
    *,
    region: str | None = None,
    key_arn: str | None = None,
    budget: Budget | None = None,
) -> PolicyAssessment:
    """Evaluate a parsed key policy against every grant the vendor needs (raises `BudgetExceeded` past the budget)."""
    parts: list[GrantAssessment] = []
    for grant in profile.grants():
        if grant.kind not in EVALUATED_KINDS:
            raise ValueError(
                f"{profile.display_name}: grant kind {grant.kind!r} is not evaluated"
            )  # profiles.py refuses it
        worst: dict[str, ActionDecision] = {}
        for caller in callers(grant, key_arn):
            for action, decision in evaluate(policy, caller, grant.concrete_actions, budget=budget).items():
                if action not in worst or _RANK[decision.decision] > _RANK[worst[action].decision]:
                    worst[action] = decision
        parts.append(GrantAssessment(grant, _who(profile, grant), worst))
    combined: dict[str, ActionDecision] = {}
    for part in parts:
        for action, decision in part.decisions.items():
            if action not in combined or _RANK[decision.decision] > _RANK[combined[action].decision]:
                combined[action] = decision

    findings: list[Finding] = []
    invalid = validity.problems(policy)
    whole = all(d.decision == "allowed" for d in combined.values())
    any_deny = any(d.denied_by or d.maybe_denied_by for d in combined.values())
    fixable = not invalid and not any_deny
    missing = any(d.decision == "not-granted" for part in parts for d in part.decisions.values())
    flags = command_flags(profile) if missing else ""  # the statement command names the key's own vendor
    for part in parts:
        findings += _grant_findings(part.who, part.decisions, region, fixable, flags)

    for problem in invalid:
        # Critical where the vendor's grant depends on it: the grant is not whole without what AWS never matches, or
        # the document is too large for KMS to hold at all.
        critical = not whole or problem.statement is None
        findings.append(
            Finding(
                Code.POLICY_INVALID,
                "critical" if critical else "warning",
                region,
                f"{problem.message[0].upper()}{problem.message[1:]}.",
                statement=problem.statement.label if problem.statement is not None else None,
                fixable=False,
            )
        )

    for statement in policy.statements:
        if is_public(statement):
            findings.append(
                Finding(
                    Code.PUBLIC_PRINCIPAL,
                    "warning",
                    region,
                    f"Statement {statement.label} allows everyone (any AWS account)"
                    + (" with no condition" if not statement.conditions else ": its conditions do not limit who calls")
                    + f"; not a problem for {profile.display_name}, but anyone may use this key for the actions it "
                    "lists.",
                    statement=statement.label,
                )
            )
    return PolicyAssessment(combined, tuple(findings), tuple(parts))


def _grant_findings(
    who: str, decisions: dict[str, ActionDecision], region: str | None, fixable: bool, statement: str = ""
) -> list[Finding]:
    findings: list[Finding] = []

    denied: dict[str, list[str]] = {}
    for action, decision in decisions.items():
        if decision.decision == "denied":
            for match in decision.denied_by:
                denied.setdefault(match.statement.label, []).append(action)
    for label, acts in denied.items():
        findings.append(
            Finding(
                Code.ACTION_DENIED,
                "critical",
                region,
                f"Deny statement {label} takes {', '.join(acts)} away from {who}; an explicit Deny wins over any "
                f"Allow, so the guard will not repair this (fix-policy refuses too): remove statement {label}, or "
                f"take {', '.join(acts)} out of it, or exempt {who} from it.",
                tuple(acts),
                label,
                fixable=False,
            )
        )

    not_granted = tuple(a for a, d in decisions.items() if d.decision == "not-granted")
    if not_granted:
        findings.append(
            Finding(
                Code.ACTION_NOT_GRANTED,
                "critical",
                region,
                f"No statement allows {who} {', '.join(not_granted)}; add the statement printed by "
                f"`kms-guard statement{statement}`.",
                not_granted,
                fixable=fixable,
            )
        )

    conditional: dict[str, list[str]] = {}
    for action, decision in decisions.items():
        if decision.decision == "conditional":
            conditional.setdefault(decision.reason, []).append(action)
    for reason, acts in conditional.items():
        decision = decisions[acts[0]]
        culprit = (decision.maybe_denied_by or decision.maybe_allowed_by)[0].statement.label
        findings.append(
            Finding(
                Code.GRANT_CONDITIONAL,
                "warning",
                region,
                f"{', '.join(acts)} for {who}: {reason}; the guard cannot prove access offline."
                + ("" if fixable else " fix-policy cannot repair this: change that statement by hand."),
                tuple(acts),
                culprit,
                fixable=fixable,
            )
        )

    return findings


@dataclass(frozen=True)
class RegionObservation:
    """What the guard read of the key in one Region."""

    region: str
    key_arn: str
    metadata: Mapping[str, Any] | None = None
    """DescribeKey's KeyMetadata, or None if it could not be read."""
    policy: str | None = None
    """The key policy text, or None if it could not be read."""
    not_found: bool = False
    error: str | None = None
    """Why the key or its policy could not be read (access denied, throttled past retries)."""


def assess_region(
    observation: RegionObservation, profile: VendorProfile, *, budget_seconds: float = LIVE_BUDGET_SECONDS
) -> RegionReport:
    region, key_arn = observation.region, observation.key_arn
    if observation.not_found:
        message = (
            f"No key with this key ID exists in {region}: {profile.display_name} cannot operate in this Region until "
            "the "
            "key is replicated there with the grant."
        )
        return RegionReport(region, key_arn, None, (Finding(Code.KEY_NOT_FOUND, "critical", region, message),))

    findings: list[Finding] = []
    metadata = observation.metadata
    state = str(metadata.get("KeyState")) if metadata is not None else None
    if metadata is not None:
        findings.extend(_metadata_findings(metadata, profile, region))
    if metadata is None or observation.policy is None:
        what = "the key" if metadata is None else "the key policy"
        reason = observation.error or "no answer"
        findings.append(
            Finding(
                Code.POLICY_UNREADABLE,
                "critical",
                region,
                f"The guard could not read {what} in {region} ({reason}); it cannot tell whether "
                f"{profile.display_name} "
                "still has access. Check that the key policy lets the guard's role call kms:DescribeKey and "
                "kms:GetKeyPolicy.",
            )
        )
        return RegionReport(region, key_arn, state, tuple(findings), observation.policy)

    budget = Budget(budget_seconds)
    try:
        policy = parse_policy(observation.policy)
        assessed = assess_policy(policy, profile, region=region, key_arn=key_arn, budget=budget)
    except PolicyError as exc:
        findings.append(_unreadable(region, f"it could not be understood ({exc})"))
    except BudgetExceeded:
        findings.append(_unreadable(region, f"its evaluation took longer than its {budget_seconds:g} s budget"))
    else:
        findings.extend(assessed.findings)
    return RegionReport(region, key_arn, state, tuple(findings), observation.policy)


def _unreadable(region: str, why: str) -> Finding:
    return Finding(
        Code.POLICY_UNREADABLE,
        "critical",
        region,
        f"The key policy in {region} cannot be evaluated: {why}; the guard cannot vouch for access and will not "
        "rewrite a policy it could not read.",
        fixable=False,
    )


def _metadata_findings(metadata: Mapping[str, Any], profile: VendorProfile, region: str) -> list[Finding]:
    out: list[Finding] = []
    state = metadata.get("KeyState")
    if state == "Disabled":
        out.append(
            Finding(
                Code.KEY_DISABLED,
                "critical",
                region,
                f"The key is disabled in {region}: {profile.outage_text}",
            )
        )
    elif state in PENDING_DELETION_STATES:
        out.append(
            Finding(
                Code.KEY_PENDING_DELETION,
                "critical",
                region,
                f"The key is scheduled for deletion in {region} ({state}): it is unusable now and its data will be "
                "lost for good when the waiting period ends. Cancel the deletion and enable the key.",
            )
        )
    elif state not in profile.usable_states:
        out.append(
            Finding(
                Code.KEY_UNUSABLE,
                "critical",
                region,
                f"The key is in state {state} in {region}, in which encryption and decryption fail.",
            )
        )
    if profile.multi_region and metadata.get("MultiRegion") is not True:
        out.append(
            Finding(
                Code.KEY_NOT_MULTI_REGION,
                "critical",
                region,
                f"The key in {region} is not a multi-Region key; {profile.display_name} needs one.",
            )
        )
    spec = metadata.get("KeySpec", metadata.get("CustomerMasterKeySpec"))
    if spec != profile.key_spec:
        out.append(
            Finding(
                Code.KEY_SPEC_INVALID,
                "critical",
                region,
                f"The key spec in {region} is {spec}, not {profile.key_spec}.",
            )
        )
    if metadata.get("KeyUsage") != profile.key_usage:
        out.append(
            Finding(
                Code.KEY_USAGE_INVALID,
                "critical",
                region,
                f"The key usage in {region} is {metadata.get('KeyUsage')}, not {profile.key_usage}.",
            )
        )
    return out


def assess_key(key_arn: str, observations: list[RegionObservation], profile: VendorProfile) -> KeyReport:
    return KeyReport(key_arn, tuple(assess_region(o, profile) for o in observations))
