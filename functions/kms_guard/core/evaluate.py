"""Evaluate a key policy for one calling account, the way AWS does, in three-valued logic.

AWS's rule (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit
Deny that applies wins; otherwise an Allow that applies is needed; otherwise the request is implicitly denied.

The guard knows the calling *account* (the vendor's) but not which principal in it makes the call, nor the source IP,
VPC, encryption context or calling service. So every part of "does this statement apply" is a `Tri`:

- Principal: `*` and the vendor account (ID or `:root` ARN) match; a role or user ARN in the vendor account may or may
  not be the caller (UNKNOWN); anything else does not match. `NotPrincipal` inverts, except that listing the vendor
  account is UNKNOWN: AWS evaluates a role session as session, role and account, so naming only the account may not
  exempt the vendor's role sessions
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
- Action: exact, case-insensitive wildcard match (`NotAction` inverts).
- Resource: in a key policy `*` means this key; a key ARN pattern is matched against the key's ARN when it is known,
  otherwise UNKNOWN.
- Condition: decided only for keys whose value the guard knows for the vendor's calls (`aws:PrincipalAccount`,
  `kms:CallerAccount`, `aws:PrincipalOrgID`/`aws:PrincipalOrgPaths` read as "the vendor is not in your organization",
  the account part of `aws:PrincipalArn`, `aws:PrincipalIsAWSService`); UNKNOWN for every other key or operator.
  Unknown is never assumed harmless: an Allow that holds only under it is not proven, a Deny that may apply is a risk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kms_guard.core import actions as catalogue
from kms_guard.core.policy import Condition, Policy, Principal, Statement
from kms_guard.core.tri import Tri, all_of, any_of

Decision = Literal["allowed", "denied", "not-granted", "conditional"]


@dataclass(frozen=True)
class Match:
    """Whether one statement applies to the vendor's call of one action, and why it is undecided if it is."""

    statement: Statement
    applies: Tri
    undecided: tuple[str, ...]
    """What kept the answer UNKNOWN: condition labels, principal or resource notes."""


@dataclass(frozen=True)
class ActionDecision:
    action: str
    decision: Decision
    allowed_by: tuple[Match, ...]
    """Allow statements that apply for certain."""
    maybe_allowed_by: tuple[Match, ...]
    denied_by: tuple[Match, ...]
    """Deny statements that apply for certain."""
    maybe_denied_by: tuple[Match, ...]

    @property
    def reason(self) -> str:
        def names(matches: tuple[Match, ...]) -> str:
            return ", ".join(_describe(m) for m in matches)

        if self.decision == "denied":
            return f"denied by {names(self.denied_by)}"
        if self.decision == "not-granted":
            return "no statement allows it"
        if self.decision == "allowed":
            return f"allowed by {names(self.allowed_by)}"
        if self.maybe_denied_by:
            return f"may be denied by {names(self.maybe_denied_by)}"
        return f"allowed only if {names(self.maybe_allowed_by)}"


def _describe(match: Match) -> str:
    label = f"statement {match.statement.label}"
    return f"{label} ({'; '.join(match.undecided)})" if match.undecided else label


@dataclass(frozen=True)
class Caller:
    """The calling side the guard reasons about: an unknown principal in `account`, on the key `key_arn`."""

    account: str
    key_arn: str | None = None


def evaluate(policy: Policy, caller: Caller, actions: tuple[str, ...]) -> dict[str, ActionDecision]:
    """AWS's decision for each concrete action, for a principal in `caller.account`.

    Everything that does not depend on the action (principal, resource, conditions) is decided once per statement;
    the action test is then a set lookup in the statement's expanded action patterns (expansions are cached).
    """
    facts = _facts(caller)
    wanted = frozenset(actions)
    candidates: list[tuple[Match, frozenset[str]]] = []
    for statement in policy.statements:
        # Cheapest test first: most statements of a real policy are about other actions or other principals.
        covered = _covered(statement, wanted)
        if not covered:
            continue
        parts = [_principal(statement, caller.account)]
        if parts[0][0] is Tri.FALSE:
            continue
        parts += (_resource(statement, caller.key_arn), _conditions(statement, facts))
        applies = all_of(part[0] for part in parts)
        if applies is Tri.FALSE:
            continue
        undecided = (
            tuple(n for tri, notes in parts if tri is Tri.UNKNOWN for n in notes) if applies is Tri.UNKNOWN else ()
        )
        candidates.append((Match(statement, applies, undecided), covered))
    return {
        action: _decide(action, [match for match, covered in candidates if action in covered]) for action in actions
    }


def _covered(statement: Statement, wanted: frozenset[str]) -> frozenset[str]:
    """The wanted concrete actions this statement's Action (or NotAction) covers."""
    named: set[str] = set()
    for pattern in statement.actions:
        named |= catalogue.expand(pattern)
    return wanted - named if statement.action_negated else wanted & named


def _decide(action: str, matches: list[Match]) -> ActionDecision:
    def pick(effect: str, applies: Tri) -> tuple[Match, ...]:
        return tuple(m for m in matches if m.statement.effect == effect and m.applies is applies)

    allowed, maybe_allowed = pick("Allow", Tri.TRUE), pick("Allow", Tri.UNKNOWN)
    denied, maybe_denied = pick("Deny", Tri.TRUE), pick("Deny", Tri.UNKNOWN)
    decision: Decision
    if denied:
        decision = "denied"
    elif not allowed and not maybe_allowed:
        decision = "not-granted"
    elif allowed and not maybe_denied:
        decision = "allowed"
    else:
        decision = "conditional"
    return ActionDecision(action, decision, allowed, maybe_allowed, denied, maybe_denied)


# --- Principal ---------------------------------------------------------------------------------------------------

_IAM_ARN = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):(.+)$")


def principal_match(entry: Principal, account: str) -> Tri:
    """Whether a Principal entry covers an unknown principal of `account`."""
    if entry.type == "*" or (entry.type == "AWS" and entry.value == "*"):
        return Tri.TRUE
    if entry.type != "AWS":
        return Tri.FALSE  # service, federated and canonical-user principals are never the vendor's account
    if entry.value == account:
        return Tri.TRUE
    arn = _IAM_ARN.match(entry.value)
    if arn is None or arn.group(1) != account:
        return Tri.FALSE
    return Tri.TRUE if arn.group(2) == "root" else Tri.UNKNOWN


def _principal(statement: Statement, account: str) -> tuple[Tri, tuple[str, ...]]:
    results = [(p, principal_match(p, account)) for p in statement.principals]
    hit = any_of(r for _, r in results)
    if not statement.principal_negated:
        notes = tuple(f"only principal {p.value} of account {account}" for p, r in results if r is Tri.UNKNOWN)
        return hit, notes
    if hit is Tri.FALSE:
        return Tri.TRUE, ()
    return Tri.UNKNOWN, (f"NotPrincipal names {', '.join(p.value for p, r in results if r is not Tri.FALSE)}",)


def is_public(statement: Statement) -> bool:
    """An Allow to everyone with no condition at all: anyone in any account can use the key."""
    if statement.effect != "Allow" or statement.conditions:
        return False
    if statement.principal_negated:
        return True
    return any(p.type == "*" or (p.type == "AWS" and p.value == "*") for p in statement.principals)


# --- Resource ----------------------------------------------------------------------------------------------------


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(body, value, flags) is not None


def _resource_entry(pattern: str, key_arn: str | None) -> Tri:
    if pattern == "*":
        return Tri.TRUE
    if key_arn is not None:
        return Tri.of(_glob(pattern, key_arn))
    # Offline, without the key's ARN: a pattern that could name a KMS key may or may not name this one.
    fields = pattern.split(":")
    could_be_kms = pattern[0] in "*?" or (len(fields) >= 3 and fields[0] == "arn" and _glob(fields[2], "kms"))
    return Tri.UNKNOWN if could_be_kms else Tri.FALSE


def _resource(statement: Statement, key_arn: str | None) -> tuple[Tri, tuple[str, ...]]:
    hit = any_of(_resource_entry(r, key_arn) for r in statement.resources)
    result = ~hit if statement.resource_negated else hit
    note = ("Resource names a specific key ARN and the key ARN is not known",) if result is Tri.UNKNOWN else ()
    return result, note


# --- Conditions --------------------------------------------------------------------------------------------------

Family = Literal["eq", "eq_ic", "like", "arn", "bool"]

_OPERATORS: dict[str, tuple[Family, bool]] = {
    "StringEquals": ("eq", False),
    "StringNotEquals": ("eq", True),
    "StringEqualsIgnoreCase": ("eq_ic", False),
    "StringNotEqualsIgnoreCase": ("eq_ic", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Bool": ("bool", False),
}


@dataclass(frozen=True)
class KeyFact:
    """What the guard knows of one condition key for the vendor's calls."""

    present: Tri
    match: Callable[[Family, str], Tri]
    """Whether the key's value matches one listed value under an operator family."""


def _account_fact(account: str) -> KeyFact:
    def match(family: Family, value: str) -> Tri:
        if family == "eq":
            return Tri.of(value == account)
        if family == "eq_ic":
            return Tri.of(value.lower() == account.lower())
        if family == "like":
            return Tri.of(_glob(value, account))
        return Tri.UNKNOWN

    return KeyFact(Tri.TRUE, match)


def _org_fact() -> KeyFact:
    """`aws:PrincipalOrgID`/`aws:PrincipalOrgPaths`: the vendor is not in the customer's organization.

    The vendor may be in an organization of its own (so the key may be present or absent). A listed value that names a
    specific organization (more than the `o-` prefix before any wildcard) is not the vendor's; a pattern that could
    match any organization (`o-*`, `*`) is undecided.
    """

    def match(family: Family, value: str) -> Tri:
        if family not in ("eq", "eq_ic", "like"):
            return Tri.UNKNOWN
        literal = re.split(r"[*?]", value, maxsplit=1)[0] if family == "like" else value
        return Tri.FALSE if len(literal) > len("o-") else Tri.UNKNOWN

    return KeyFact(Tri.UNKNOWN, match)


def _principal_arn_fact(account: str) -> KeyFact:
    """`aws:PrincipalArn`: the role is unknown, but it is in the vendor's account."""

    def match(family: Family, value: str) -> Tri:
        if family == "bool":
            return Tri.UNKNOWN
        fields = value.split(":")
        if len(fields) >= 6 and fields[4] and not re.search(r"[*?]", fields[4]):
            same = fields[4] == account
            return Tri.UNKNOWN if same else Tri.FALSE
        return Tri.UNKNOWN

    return KeyFact(Tri.TRUE, match)


def _is_service_fact() -> KeyFact:
    """`aws:PrincipalIsAWSService` is `false` for calls made by an IAM principal such as the vendor's roles."""

    def match(family: Family, value: str) -> Tri:
        if family in ("bool", "eq", "eq_ic"):
            return Tri.of(value.lower() == "false")
        return Tri.UNKNOWN

    return KeyFact(Tri.TRUE, match)


def _facts(caller: Caller) -> dict[str, KeyFact]:
    account = _account_fact(caller.account)
    org = _org_fact()
    return {
        "aws:principalaccount": account,
        "kms:calleraccount": account,
        "aws:principalorgid": org,
        "aws:principalorgpaths": org,
        "aws:principalarn": _principal_arn_fact(caller.account),
        "aws:principalisawsservice": _is_service_fact(),
    }


def condition_result(condition: Condition, facts: dict[str, KeyFact]) -> Tri:
    """One condition test, following https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html."""
    fact = facts.get(condition.key.lower())
    if fact is None:
        return Tri.UNKNOWN
    if condition.operator == "Null":
        if condition.qualifier or condition.if_exists:
            return Tri.UNKNOWN
        # "Null": {"key": "true"} holds when the key is absent; several values are ORed.
        return any_of(~fact.present if v.lower() == "true" else fact.present for v in condition.values)
    spec = _OPERATORS.get(condition.operator)
    if spec is None:
        return Tri.UNKNOWN  # an operator we do not decide (Numeric, Date, IpAddress, Binary, or one we do not know)
    family, negated = spec

    matched = any_of(fact.match(family, v) for v in condition.values)
    when_present = ~matched if negated else matched
    # A missing key: IfExists and ForAllValues make the test true; negated operators are true; others are false.
    if condition.if_exists or condition.qualifier == "ForAllValues":
        when_absent = Tri.TRUE
    elif condition.qualifier == "ForAnyValue":
        when_absent = Tri.FALSE
    else:
        when_absent = Tri.of(negated)
    if fact.present is Tri.TRUE:
        return when_present
    if fact.present is Tri.FALSE:
        return when_absent
    return when_present if when_present is when_absent else Tri.UNKNOWN


def _conditions(statement: Statement, facts: dict[str, KeyFact]) -> tuple[Tri, tuple[str, ...]]:
    if not statement.conditions:
        return Tri.TRUE, ()
    results = [(c, condition_result(c, facts)) for c in statement.conditions]
    overall = all_of(r for _, r in results)
    notes = tuple(f"condition {c.label} cannot be decided" for c, r in results if r is Tri.UNKNOWN)
    return overall, notes if overall is Tri.UNKNOWN else ()
