"""Repair planning: pure functions that return the policy to write and what it changes, or why not to write.

The remediation rules of design.md, as far as a plan can enforce them:
- `restore-statement` adds the missing actions to one statement the guard owns (a fixed Sid), or creates it. Every
  other statement is kept byte-for-byte: the new text is spliced into the original, never re-serialised.
- `revert` puts back the last policy recorded as compliant; with none recorded it falls back to `restore-statement`,
  and so it does when reverting would remove or change a Deny statement.
- The statement with the guard's Sid is rewritten only while it holds nothing but the vendor's grant (`_vendor_only`):
  anyone can put that Sid on another statement, and rewriting, say, the admin statement would drop its principals.
- An explicit Deny that blocks the vendor is reported, never weakened: the plan is refused, naming the statement.
- A policy over 32 KB is never produced, nor one holding anything else KMS would reject or AWS never matches
  (`validity.py`: a malformed principal, a non-ASCII action, NotPrincipal with Allow): the guard does not print a
  policy KMS would refuse, and does not guess what a malformed element was meant to say.
- Every plan is checked before it is returned: the new text must parse, give the vendor every required action, and
  keep the other statements as they were; otherwise the plan is refused.
Nothing here bypasses the policy lockout safety check: that is a PutKeyPolicy flag the writer never sets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from kms_guard.core import actions as catalogue
from kms_guard.core import validity
from kms_guard.core.arns import ArnError, KeyArn
from kms_guard.core.compliance import PolicyAssessment, assess_policy
from kms_guard.core.policy import MAX_POLICY_BYTES, Policy, PolicyError, Statement, parse_policy, parse_policy_document
from kms_guard.core.vendor import Grant, VendorProfile

Mode = Literal["restore-statement", "revert"]
Status = Literal["repair", "already-compliant", "refused"]
Refusal = Literal[
    "deny-blocks-vendor",
    "deny-would-change",
    "guard-sid-on-deny",
    "guard-sid-grants-more",
    "too-large",
    "baseline-bad",
    "check-failed",
    "policy-invalid",
]


@dataclass(frozen=True)
class RepairPlan:
    mode: Mode
    status: Status
    description: str
    policy: str | None = None
    """The policy to write (status `repair` only)."""
    added_actions: tuple[str, ...] = ()
    refusal: Refusal | None = None
    """Why a plan was refused, for callers that act on it (the description is for people)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "status": self.status,
            "description": self.description,
            "added_actions": list(self.added_actions),
        }


class StatementError(ValueError):
    """The vendor's statement cannot be written without a value the user must supply (the message says which)."""


def guard_statement(
    profile: VendorProfile,
    actions: tuple[str, ...] | None = None,
    *,
    grant: Grant | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The statement the guard owns for one grant (default: the primary): grantee, required actions, this key.

    A pinned wildcard carries its pinning conditions, with the vendor's account and the key's Region filled in
    (raises `StatementError` when one is needed and not known).
    """
    grant = grant or profile.primary
    statement: dict[str, Any] = {
        "Sid": grant.sid,
        "Effect": "Allow",
        "Principal": {"AWS": grant.principal},
        "Action": list(actions if actions is not None else grant.concrete_actions),
        "Resource": "*",
    }
    if grant.pin:
        condition: dict[str, dict[str, str | list[str]]] = {}
        for pin in grant.pin:
            values = pin.rendered(grant.account, region)
            if values is None:
                need = "the key's Region (--key-arn)" if grant.account is not None else "the vendor's account"
                raise StatementError(
                    f"{profile.display_name}: {pin.key} needs {need} to write the {grant.label or 'vendor'} statement"
                )
            condition.setdefault(pin.operator, {})[pin.key] = values[0] if len(values) == 1 else list(values)
        statement["Condition"] = condition
    return statement


def guard_statements(profile: VendorProfile, region: str | None = None) -> list[dict[str, Any]]:
    """Every statement the vendor needs (what `kms-guard statement` prints)."""
    return [guard_statement(profile, grant=g, region=region) for g in profile.grants()]


def _region_of(key_arn: str | None) -> str | None:
    if key_arn is not None and key_arn.count(":") >= 5:
        return key_arn.split(":")[3] or None
    return None


def plan_repair(
    mode: Mode,
    policy_text: str,
    profile: VendorProfile,
    *,
    key_arn: str | None = None,
    baseline: str | None = None,
) -> RepairPlan:
    """Plan a repair of `policy_text` (raises `PolicyError` if it is not a policy)."""
    if mode == "revert":
        if baseline is None:
            plan = plan_restore_statement(policy_text, profile, key_arn=key_arn)
            return _fallback(plan, "no compliant policy has been recorded for this Region")
        plan = plan_revert(policy_text, baseline, profile, key_arn=key_arn)
        if plan.refusal == "deny-would-change":
            return _fallback(plan_restore_statement(policy_text, profile, key_arn=key_arn), plan.description)
        return plan
    return plan_restore_statement(policy_text, profile, key_arn=key_arn)


def _fallback(plan: RepairPlan, why: str) -> RepairPlan:
    """`revert` could not be used: the restore-statement plan, saying why, with its refusal reason kept."""
    return RepairPlan(
        "revert",
        plan.status,
        f"{why}; fell back to restore-statement: {plan.description}",
        plan.policy,
        plan.added_actions,
        plan.refusal,
    )


def _invalid_refusal(mode: Mode, policy: Policy) -> RepairPlan | None:
    problems = validity.problems(policy)
    if not problems:
        return None
    too_large = problems[0].statement is None
    return RepairPlan(
        mode,
        "refused",
        f"{problems[0].message}; the guard will not print or write a policy KMS would reject: correct it by hand "
        "(kms-guard check-policy lists every such problem).",
        refusal="too-large" if too_large else "policy-invalid",
    )


def plan_restore_statement(policy_text: str, profile: VendorProfile, *, key_arn: str | None = None) -> RepairPlan:
    policy = parse_policy(policy_text)
    invalid = _invalid_refusal("restore-statement", policy)
    if invalid is not None:
        return invalid
    assessment = assess_policy(policy, profile, key_arn=key_arn)
    refusal = _deny_refusal(assessment, profile)
    if refusal:
        return RepairPlan("restore-statement", "refused", refusal, refusal="deny-blocks-vendor")

    missing_all = tuple(a for a in profile.all_actions if a not in assessment.granted)
    if not missing_all:
        return RepairPlan("restore-statement", "already-compliant", f"{profile.display_name}'s grant is already whole.")

    spans = _StatementSpans.locate(policy_text)
    new_text = policy_text
    replaced: set[int] = set()
    appended = 0
    whats: list[str] = []

    def new_statement_for(grant: Grant) -> dict[str, Any] | None:
        try:
            return guard_statement(profile, grant.concrete_actions, grant=grant, region=_region_of(key_arn))
        except StatementError:
            return None

    for part in assessment.grants:
        grant = part.grant
        missing = tuple(a for a in grant.concrete_actions if a not in part.granted)
        if not missing:
            continue
        current = parse_policy(new_text)
        owned = next((s for s in current.statements if s.sid == grant.sid), None)
        if owned is not None and owned.effect != "Allow":
            return RepairPlan(
                "restore-statement",
                "refused",
                f"statement {owned.label} carries the guard's Sid but is a Deny; the guard never changes a Deny.",
                refusal="guard-sid-on-deny",
            )
        if owned is not None and grant.kind == "pinned-wildcard" and not _same_pin(owned, new_statement_for(grant)):
            return RepairPlan(
                "restore-statement",
                "refused",
                f'statement {owned.label} carries the guard\'s Sid and grants Principal "*" under conditions '
                f"other than {profile.display_name}'s pin: rewriting it would change who else may use the key; the "
                "guard will not rewrite it: give that statement another Sid.",
                refusal="guard-sid-grants-more",
            )
        if owned is not None and not _grant_only(owned, grant, key_arn):
            return RepairPlan(
                "restore-statement",
                "refused",
                f"statement {owned.label} carries the guard's Sid but grants more than {profile.display_name}'s "
                f"access ({grant.who()}); the guard will not rewrite it: give that statement another Sid, or keep "
                "only the vendor's principal and actions in it.",
                refusal="guard-sid-grants-more",
            )
        step = _StatementSpans.locate(new_text)
        if owned is not None and not owned.action_negated:
            kept = [a for a in owned.actions if not any(a.lower() == m.lower() for m in missing)]
            actions = tuple(kept) + missing
        else:
            actions = grant.concrete_actions
        try:
            new_statement = guard_statement(profile, actions, grant=grant, region=_region_of(key_arn))
        except StatementError as exc:
            return RepairPlan("restore-statement", "refused", str(exc), refusal="check-failed")
        if owned is not None:
            new_text = step.replace(owned.index, new_statement)
            replaced.add(owned.index)
            what = f"added {', '.join(missing)} to statement {grant.sid}"
            if owned.conditions or owned.principal_negated or owned.action_negated or owned.resource_negated:
                what += f" (and reset it to its canonical form: {grant.who()}, its documented conditions only)"
        else:
            new_text = step.append(new_statement)
            appended += 1
            what = f"added statement {grant.sid} allowing {profile.display_name}'s {grant.who()} {', '.join(missing)}"
        whats.append(what)

    problem = _check(spans, new_text, profile, key_arn, replaced=replaced, appended=appended)
    if problem:
        reason, message = problem
        return RepairPlan("restore-statement", "refused", message, refusal=reason)
    return RepairPlan(
        "restore-statement", "repair", "; ".join(whats) + "; every other statement is unchanged.", new_text, missing_all
    )


def _same_pin(statement: Statement, canonical: dict[str, Any] | None) -> bool:
    """Whether a `Principal "*"` statement's conditions are exactly the vendor's pin (so rewriting it changes nobody
    else's access: for a wildcard, the conditions are what say who is granted)."""
    if canonical is None:
        return False
    try:
        expected = parse_policy_document({"Version": "2012-10-17", "Statement": [canonical]}).statements[0]
    except PolicyError:
        return False
    return set(statement.conditions) == set(expected.conditions)


def _grant_only(statement: Statement, grant: Grant, key_arn: str | None) -> bool:
    """Whether a statement holds nothing but the vendor's grant, so rewriting it cannot take access from anyone else.

    Anyone who can edit the policy can put the guard's Sid on any statement; rewriting a statement that also grants
    other principals or actions would drop those principals (often the key's administrators) or hand the vendor more
    than it needs. Only an Allow naming exactly the grant's principals (the vendor's account, its roles, or `*` for a
    pinned wildcard), with actions within the grant's, on this key (`*`, or the key's ARN), and no
    NotPrincipal/NotAction/NotResource, is the guard's to rewrite.
    """
    if statement.effect != "Allow" or statement.principal_negated or statement.action_negated:
        return False
    if statement.resource_negated:
        return False
    if grant.kind == "pinned-wildcard":
        allowed = {"*"}
    elif grant.kind == "vendor-roles":
        allowed = set(grant.roles)
    else:
        allowed = {f"arn:aws:iam::{grant.account}:root", str(grant.account)}
    if not all(p.type in ("AWS", "*") and p.value in allowed for p in statement.principals):
        return False
    required = set(grant.concrete_actions)
    for pattern in statement.actions:
        expanded = catalogue.expand(pattern)
        if not expanded or not expanded <= required:
            return False
    return all(r == "*" or _is_this_key(r, key_arn) for r in statement.resources)


def _is_this_key(resource: str, key_arn: str | None) -> bool:
    if key_arn is not None:
        return resource == key_arn
    if "*" in resource or "?" in resource:
        return False
    try:
        KeyArn.parse(resource)
    except ArnError:
        return False
    return True


def plan_revert(policy_text: str, baseline: str, profile: VendorProfile, *, key_arn: str | None = None) -> RepairPlan:
    policy = parse_policy(policy_text)
    assessment = assess_policy(policy, profile, key_arn=key_arn)
    if not assessment.missing and not assessment.conditional:
        return RepairPlan("revert", "already-compliant", f"{profile.display_name}'s grant is already whole.")
    refusal = _deny_refusal(assessment, profile)
    if refusal:
        return RepairPlan("revert", "refused", refusal, refusal="deny-blocks-vendor")

    base_policy = parse_policy(baseline)
    invalid = _invalid_refusal("revert", base_policy)
    if invalid is not None:
        return invalid
    base_assessment = assess_policy(base_policy, profile, key_arn=key_arn)
    if base_assessment.missing or base_assessment.conditional:
        return RepairPlan(
            "revert",
            "refused",
            "the recorded baseline policy does not itself grant the vendor access.",
            refusal="baseline-bad",
        )
    if len(baseline.encode("utf-8")) > MAX_POLICY_BYTES:
        return RepairPlan(
            "revert", "refused", f"the recorded baseline is over {MAX_POLICY_BYTES} bytes.", refusal="too-large"
        )

    current_raw = _raw_statements(policy_text)
    base_raw = [_canonical(s) for s in _raw_statements(baseline)]
    for statement, raw in zip(policy.statements, current_raw, strict=True):
        if statement.effect == "Deny" and _canonical(raw) not in base_raw:
            return RepairPlan(
                "revert",
                "refused",
                f"reverting would remove or change Deny statement {statement.label}.",
                refusal="deny-would-change",
            )

    gone = [s.label for s, raw in zip(policy.statements, current_raw, strict=True) if _canonical(raw) not in base_raw]
    current_set = {_canonical(r) for r in current_raw}
    back = [
        s.label
        for s, raw in zip(base_policy.statements, _raw_statements(baseline), strict=True)
        if _canonical(raw) not in current_set
    ]
    detail = "; ".join(
        part
        for part in (
            f"restores statement(s) {', '.join(back)}" if back else "",
            f"drops statement(s) {', '.join(gone)} added since" if gone else "",
        )
        if part
    )
    added = tuple(a for a in profile.all_actions if a not in assessment.granted)
    return RepairPlan(
        "revert",
        "repair",
        f"put back the last policy recorded as compliant ({detail or 'same statements'}).",
        baseline,
        added,
    )


def _deny_refusal(assessment: PolicyAssessment, profile: VendorProfile) -> str | None:
    """A Deny that blocks (or may block) the vendor: never weakened, so the plan is refused, naming it."""
    for action, decision in assessment.decisions.items():
        if decision.denied_by:
            label = decision.denied_by[0].statement.label
            return (
                f"Deny statement {label} blocks {action} for {profile.display_name}; the guard never weakens a Deny: "
                "change or remove that statement."
            )
    for action, decision in assessment.decisions.items():
        if decision.maybe_denied_by and decision.decision == "conditional" and decision.allowed_by:
            label = decision.maybe_denied_by[0].statement.label
            return (
                f"Deny statement {label} may block {action} for {profile.display_name} under conditions the guard "
                "cannot decide; the guard never weakens a Deny."
            )
    return None


def _check(
    spans: _StatementSpans,
    new_text: str,
    profile: VendorProfile,
    key_arn: str | None,
    replaced: set[int],
    appended: int,
) -> tuple[Refusal, str] | None:
    """Refuse a plan that is too large, does not grant the vendor everything, or touches another statement."""
    size = len(new_text.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        return (
            "too-large",
            f"the repaired policy would be {size} bytes, over the {MAX_POLICY_BYTES}-byte key policy limit.",
        )
    new_policy = parse_policy(new_text)
    if validity.problems(new_policy):
        return "policy-invalid", "the repaired policy would hold something KMS rejects; nothing written."
    result = assess_policy(new_policy, profile, key_arn=key_arn)
    if result.missing or result.conditional:
        return (
            "check-failed",
            f"the repaired policy would still not grant {', '.join(result.missing + result.conditional)}.",
        )
    before = spans.item_texts()
    after = _StatementSpans.locate(new_text).item_texts()
    unchanged = len(after) == len(before) + appended and all(
        a == b for i, (a, b) in enumerate(zip(after[: len(before)], before, strict=True)) if i not in replaced
    )
    if unchanged:
        return None
    return "check-failed", "internal check failed: the repair would change another statement; nothing written."


def _canonical(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, separators=(",", ":"))


def _raw_statements(text: str) -> list[Any]:
    raw = json.loads(text)["Statement"]
    return raw if isinstance(raw, list) else [raw]


_WS = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True)
class _StatementSpans:
    """Where the Statement value and each statement sit in the original text, to splice without re-serialising."""

    text: str
    value: tuple[int, int]
    items: tuple[tuple[int, int], ...]
    is_list: bool

    @classmethod
    def locate(cls, text: str) -> _StatementSpans:
        decoder = json.JSONDecoder()

        def skip(i: int) -> int:
            match = _WS.match(text, i)
            return match.end() if match else i

        i = skip(0)
        if text[i] != "{":
            raise ValueError("policy is not a JSON object")
        i = skip(i + 1)
        value: tuple[int, int] | None = None
        while text[i] != "}":
            key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
            i = skip(skip(i) + 1)  # past ':'
            _, end = decoder.raw_decode(text, i)
            if key == "Statement":
                value = (i, end)  # the last duplicate wins, as in json.loads
            i = skip(end)
            if text[i] == ",":
                i = skip(i + 1)
        if value is None:
            raise ValueError("policy has no Statement")
        start, end = value
        if text[start] != "[":
            return cls(text, value, (value,), is_list=False)
        items: list[tuple[int, int]] = []
        i = skip(start + 1)
        while text[i] != "]":
            _, item_end = decoder.raw_decode(text, i)
            items.append((i, item_end))
            i = skip(item_end)
            if text[i] == ",":
                i = skip(i + 1)
        return cls(text, value, tuple(items), is_list=True)

    def item_texts(self) -> list[str]:
        return [self.text[start:end] for start, end in self.items]

    def _render(self, statement: dict[str, Any], at: int) -> str:
        line_start = self.text.rfind("\n", 0, at) + 1
        indent = self.text[line_start:at] if self.text[line_start:at].strip() == "" else ""
        return json.dumps(statement, indent=2).replace("\n", "\n" + indent)

    def replace(self, index: int, statement: dict[str, Any]) -> str:
        start, end = self.items[index]
        return self.text[:start] + self._render(statement, start) + self.text[end:]

    def append(self, statement: dict[str, Any]) -> str:
        if not self.is_list:
            start, end = self.value
            return self.text[:start] + "[" + self.text[start:end] + ", " + json.dumps(statement) + "]" + self.text[end:]
        if not self.items:
            start, _ = self.value
            return self.text[: start + 1] + json.dumps(statement) + self.text[start + 1 :]
        last_start, last_end = self.items[-1]
        line_start = self.text.rfind("\n", 0, last_start) + 1
        prefix = self.text[line_start:last_start]
        if prefix.strip() == "":
            return self.text[:last_end] + ",\n" + prefix + self._render(statement, last_start) + self.text[last_end:]
        return self.text[:last_end] + ", " + json.dumps(statement) + self.text[last_end:]
