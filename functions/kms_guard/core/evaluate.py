"""Evaluate a key policy for one calling account, the way AWS does, in three-valued logic.

AWS's rule (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit
Deny that applies wins; otherwise an Allow that applies is needed; otherwise the request is implicitly denied.

The guard knows the calling *account* (the vendor's) but not which principal in it makes the call, and only part of
the request context. So every part of "does this statement apply" is a `Tri`:

- Principal (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html): `*` and
  the vendor account, written exactly as AWS's grammar has it (the bare 12-digit ID, or `arn:<partition>:iam::<ID>:root`
  in the key's partition), match; a role, user or session ARN in the vendor account may or may not be the caller
  (UNKNOWN); anything else (whitespace, control characters, an `sts` root, another partition, wildcards, lookalike
  characters) does not match. `NotPrincipal` with `Allow` is not supported by AWS and never grants
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html); with `Deny` it
  inverts, except that listing the vendor account is UNKNOWN (AWS evaluates a role session as session, role and
  account, so naming only the account may not exempt the vendor's role sessions).
- Action: ASCII case-insensitive wildcard match (`actions.py`; `NotAction` inverts).
- Resource (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html): `*` and `?`
  match across `:`. With the key's ARN known the pattern is matched against it; offline, "not this key" is decided
  only when no key ARN could match, a pattern every key ARN matches applies, and anything else is UNKNOWN.
  `NotResource` inverts.
- Policy variables (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html): under Version
  `2012-10-17`, `${key}` in a Resource or a condition value is replaced by the request's value: resolved from what is
  known about the vendor's calls, otherwise that comparison is UNKNOWN; the literal text is never compared. Under
  `2008-10-17` (or without Version) it is literal.
- Condition (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  decided only for keys the vendor's `RequestContext` (`vendor.py`) knows: a known value, known absence, or the
  account part of `aws:PrincipalArn`; UNKNOWN for every other key or operator. The `Arn*` operators are matched both
  as one glob over the whole ARN and component by component (the IAM reference checks each of the six components
  separately); where the two readings disagree the comparison is UNKNOWN. Unknown is never assumed harmless:
  an Allow that holds only under it is not proven, a Deny that may apply is a risk.

Evaluation has a time budget (`Budget`): the live path gives each Region's policy one, so no policy can stall the
guard; matching itself is linear-time (`wildcards.py`).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from kms_guard.core import actions as catalogue
from kms_guard.core.policy import Condition, Policy, Principal, Statement
from kms_guard.core.tri import Tri, all_of, any_of
from kms_guard.core.vendor import ACCOUNT_ID, DIRECT_CALLS, IAM_PRINCIPAL_ARN, REGION, RequestContext
from kms_guard.core.wildcards import RUN, ascii_lower, intersects_prefix, intersects_template, is_universal
from kms_guard.core.wildcards import match as glob_match

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
    """The calling side the guard reasons about: an unknown principal in `account`, on the key `key_arn`.

    `account` None: the vendor's account is not known (a pinned wildcard such as Elastic's, whose calls come from
    accounts in its organization). `principal` set: the caller is known to be that role (a vendor-roles grant).
    """

    account: str | None
    key_arn: str | None = None
    context: RequestContext = DIRECT_CALLS
    """What the vendor's calls carry (the vendor profile's)."""
    principal: str | None = None
    """The vendor's role ARN when the caller is known to be it (`aws:PrincipalArn` is then known)."""

    @property
    def key_account(self) -> str | None:
        """The account that owns the key (the customer's), when the key ARN is known."""
        if self.key_arn is not None and self.key_arn.startswith("arn:") and self.key_arn.count(":") >= 5:
            return self.key_arn.split(":", 5)[4] or None
        return None

    @property
    def region(self) -> str | None:
        """The key's Region, when its ARN is known (it decides `kms:ViaService` for a vendor calling via a service)."""
        if self.key_arn is not None and self.key_arn.startswith("arn:") and self.key_arn.count(":") >= 5:
            return self.key_arn.split(":", 4)[3] or None
        return None

    @property
    def partition(self) -> str:
        """The key's partition (the vendor's principal ARN must be in it); `aws` when the key ARN is not known."""
        if self.key_arn is not None and self.key_arn.startswith("arn:"):
            return self.key_arn.split(":", 2)[1]
        return "aws"


class BudgetExceeded(Exception):
    """Evaluating the policy took longer than its budget: the caller reports it instead of waiting."""


@dataclass
class Budget:
    """A deadline the evaluator checks as it goes (per statement, action pattern, resource and condition value)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.seconds

    def check(self) -> None:
        if self.clock() > self._deadline:
            raise BudgetExceeded(f"evaluation exceeded its {self.seconds:g} s budget")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("kms_guard_budget", default=None)


@contextlib.contextmanager
def budgeted(budget: Budget) -> Iterator[Budget]:
    """Every evaluation inside (however deep: the repair planner evaluates a policy several times) runs under
    `budget` unless given its own: a hostile live policy cannot stall planning either."""
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def evaluate(
    policy: Policy, caller: Caller, actions: tuple[str, ...], *, budget: Budget | None = None
) -> dict[str, ActionDecision]:
    """AWS's decision for each concrete action, for a principal in `caller.account`.

    Everything that does not depend on the action (principal, resource, conditions) is decided once per statement;
    the action test is then a set lookup in the statement's expanded action patterns (expansions are cached).
    Raises `BudgetExceeded` when a budget is given (or set around the call with `budgeted`) and runs out.
    """
    budget = budget or _BUDGET.get()
    facts = _facts(caller)
    variables = facts if policy.has_variables else None
    wanted = frozenset(actions)
    candidates: list[tuple[Match, frozenset[str]]] = []
    for statement in policy.statements:
        if budget is not None:
            budget.check()
        # Cheapest test first: most statements of a real policy are about other actions or other principals.
        covered = _covered(statement, wanted, budget)
        if not covered:
            continue
        parts = [_principal(statement, caller)]
        if parts[0][0] is Tri.FALSE:
            continue
        parts += (
            _resource(statement, caller, variables, budget),
            _conditions(statement, facts, variables, budget),
        )
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


def _covered(statement: Statement, wanted: frozenset[str], budget: Budget | None = None) -> frozenset[str]:
    """The wanted concrete actions this statement's Action (or NotAction) covers."""
    named: set[str] = set()
    for pattern in statement.actions:
        if budget is not None:
            budget.check()
        named |= catalogue.covers(pattern, wanted)
        if named >= wanted:
            break
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


def principal_match(
    entry: Principal,
    account: str | None,
    partition: str = "aws",
    principal: str | None = None,
    not_account: str | None = None,
) -> Tri:
    """Whether a Principal entry covers an unknown principal of `account`, by AWS's grammar for principals.

    `account` None: the vendor's account is not known, so any well-formed account principal may be it (UNKNOWN).
    `principal` (a role ARN of the vendor): the caller is that role. Its own ARN matches; the root of its account
    (or the bare account ID) matches too, because a key policy naming an account delegates to that account's IAM
    policies, and a cross-account caller needs its own account's identity policy in any case, even when the key
    policy names the role itself (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html): the
    vendor's grant rests on the same identity policy either way. A session of the role (`assumed-role`) is UNKNOWN
    (its session name is not known); another role or user in that account is not the caller.
    `not_account`: the key's own account, which is never the vendor's (vendors.md: the vendor calls from its own
    accounts), so a grant to the customer's account does not reach a vendor whose accounts are not known.
    """
    if entry.type == "*" or (entry.type == "AWS" and entry.value == "*"):
        return Tri.TRUE
    if entry.type != "AWS":
        return Tri.FALSE  # service, federated and canonical-user principals are never the vendor's account
    value = entry.value
    if ACCOUNT_ID.match(value):
        if account is None:
            return Tri.FALSE if value == not_account else Tri.UNKNOWN
        return Tri.of(value == account)
    arn = IAM_PRINCIPAL_ARN.match(value)
    if arn is None or arn.group(1) != partition or "*" in value or "?" in value:
        return Tri.FALSE  # malformed, another partition, or a wildcard (AWS never matches those)
    if account is not None and arn.group(3) != account:
        return Tri.FALSE  # another account
    if account is None and arn.group(3) == not_account:
        return Tri.FALSE  # the key's own account: never the vendor's unknown accounts
    service, resource = arn.group(2), arn.group(4)
    if resource == "root":
        if service != "iam":
            return Tri.FALSE  # `arn:aws:sts::ID:root` is not the account
        return Tri.UNKNOWN if account is None else Tri.TRUE
    if principal is not None:
        if value == principal:
            return Tri.TRUE
        role_name = principal.rsplit("/", 1)[-1]
        if service == "sts" and resource.startswith(f"assumed-role/{role_name}/"):
            return Tri.UNKNOWN  # a session of the vendor's role: which session calls is not known
        if service == "iam" and ascii_lower(value) == ascii_lower(principal):
            return Tri.UNKNOWN  # the same name in another case: IAM role names are not case-sensitive
        return Tri.FALSE
    return Tri.UNKNOWN


def _principal(statement: Statement, caller: Caller) -> tuple[Tri, tuple[str, ...]]:
    account = caller.account
    if statement.principal_negated and statement.effect == "Allow":
        return Tri.FALSE, ()  # NotPrincipal with Allow is not supported by AWS: it grants nothing
    key_account = caller.key_account
    results = [
        (p, principal_match(p, account, caller.partition, caller.principal, key_account)) for p in statement.principals
    ]
    hit = any_of(r for _, r in results)
    if not statement.principal_negated:
        whose = f"account {account}" if account is not None else "the vendor's (unknown) accounts"
        notes = tuple(f"only principal {p.value} of {whose}" for p, r in results if r is Tri.UNKNOWN)
        return hit, notes
    if hit is Tri.FALSE:
        return Tri.TRUE, ()
    return Tri.UNKNOWN, (f"NotPrincipal names {', '.join(p.value for p, r in results if r is not Tri.FALSE)}",)


def is_public(statement: Statement) -> bool:
    """An Allow to everyone whose conditions, if any, do not limit who calls: anyone in any account can use the key.

    Conditions on transport, network, via-service or encryption context leave every AWS account in. A condition
    limits the callers only when it positively names them (organization, account, principal ARN or user ID) with an
    operator that is false for a caller without the key (not negated, not IfExists, not ForAllValues) and a value
    that is neither everyone (`*`) nor the caller's own (`${...}`)."""
    if statement.effect != "Allow" or statement.principal_negated:
        return False
    if not any(p.type == "*" or (p.type == "AWS" and p.value == "*") for p in statement.principals):
        return False
    return not any(_limits_callers(c) for c in statement.conditions)


_CALLER_KEYS = frozenset(
    {
        "aws:principalorgpaths",
        "aws:principalorgid",
        "aws:principalaccount",
        "kms:calleraccount",
        "aws:principalarn",
        "aws:userid",
        "aws:username",
        "aws:principalservicename",
    }
)


_MAYBE_ABSENT_CALLER_KEYS = frozenset({"aws:principalorgpaths", "aws:principalorgid"})
"""Absent for a caller outside any organization: IfExists and ForAllValues tests on them are true for such a caller.
The account and principal keys are in every signed request."""


def _limits_callers(condition: Condition) -> bool:
    key = ascii_lower(condition.key)
    if key == "aws:principalisawsservice":  # AWS services only: not every account's principals
        return condition.operator == "Bool" and not condition.if_exists and condition.values == ("true",)
    if key not in _CALLER_KEYS:
        return False
    if key in _MAYBE_ABSENT_CALLER_KEYS and (condition.if_exists or condition.qualifier == "ForAllValues"):
        return False
    if condition.operator.startswith(("StringNot", "ArnNot", "Not")) or condition.operator in ("Null", "Bool"):
        return False
    return bool(condition.values) and all(
        "${" not in v and v.replace("*", "").replace("?", "") != "" for v in condition.values
    )


# --- Policy variables ----------------------------------------------------------------------------------------------

_DEFAULT = re.compile(r"\s*([^,\s]+)\s*,\s*'([^']*)'\s*", re.ASCII)
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def substitute(text: str, facts: dict[str, KeyFact] | None) -> tuple[str | None, bool]:
    """Replace the policy variables in `text` from the known request values.

    Returns (text, has_special): text None when a variable's value is not known for the vendor's calls (the
    comparison is then UNKNOWN); has_special when `${*}`/`${?}` put a literal wildcard character in the text.
    `facts` None means variables are not in force (Version 2008-10-17): the text is literal.
    """
    if facts is None or "${" not in text:
        return text, False
    special = False
    unknown = False

    def replace(body: str) -> str:
        nonlocal special, unknown
        if body in _SPECIAL:
            special = special or body != "$"
            return _SPECIAL[body]
        default = _DEFAULT.fullmatch(body)
        name, fallback = (default.group(1), default.group(2)) if default else (body.strip(), None)
        fact = facts.get(ascii_lower(name))
        if fact is not None and fact.value is not None:
            return fact.value
        if fact is not None and fact.present is Tri.FALSE and fallback is not None:
            return fallback
        unknown = True
        return ""

    # `${`, then the body up to the next `}`, left to right; once no `}` follows, no variable follows either. Each
    # character is looked at a bounded number of times (a regular expression such as `\$\{([^}]*)\}` rescans the rest
    # of the text from every unclosed `${`: quadratic on `${${${...`).
    parts: list[str] = []
    at = 0
    while True:
        start = text.find("${", at)
        if start < 0:
            break
        close = text.find("}", start + 2)
        if close < 0:
            break
        parts += (text[at:start], replace(text[start + 2 : close]))
        at = close + 1
    parts.append(text[at:])
    return (None, special) if unknown else ("".join(parts), special)


# --- Resource ----------------------------------------------------------------------------------------------------

_KEY_ARN_MAX = 256
"""No KMS key ARN is longer (partition, Region, account, key ID): a pattern needing more characters is not this key."""


def _key_arn_offline(pattern: str, *, unknown_is_enough: bool = False) -> Tri:
    """Whether a Resource pattern matches the key when its ARN is not known: `arn:<partition>:kms:<Region>:...`.

    Every key ARN starts `arn:` and then has a partition, `:kms:`, a Region, the account and `:key/` plus the key ID.
    FALSE only when no such ARN could match; TRUE when every one does (`*`, `arn:*`); otherwise UNKNOWN.
    `unknown_is_enough`: the caller already holds UNKNOWN for the list this pattern is in, so only TRUE could change
    its answer; the costlier "could any key ARN match" search is skipped and UNKNOWN stands for "not TRUE".
    """
    if is_universal(pattern):
        return Tri.TRUE
    if len(pattern.replace("*", "")) > _KEY_ARN_MAX:
        return Tri.FALSE
    last = pattern.rsplit("*", 1)[-1]
    if ":" in last and not _fits_key_tail(last[last.rindex(":") + 1 :]):
        return Tri.FALSE  # cheap test first: after its last ':' a key ARN has only `key/<id>`
    _, every = intersects_prefix(pattern, "arn:", rest_may_be_empty=False)
    if every:
        return Tri.TRUE
    if unknown_is_enough:
        return Tri.UNKNOWN
    return Tri.UNKNOWN if intersects_template(pattern, _KEY_ARN_SHAPE) else Tri.FALSE


def _fits_key_tail(tail: str) -> bool:
    """Whether the pattern's text after its last star and last `:` can be the `key/<id>` ending every key ARN."""
    if len(tail) < len("key/") + 1:
        return False
    return all(p in ("?", c) for p, c in zip(tail, "key/", strict=False)) and ":" not in tail


_KEY_ARN_SHAPE = ("arn:", RUN, ":kms:", RUN, ":", RUN, ":key/", RUN)
"""Every KMS key ARN: partition, Region, account and key ID are fields without `:`."""


def _resource_entry(
    pattern: str, key_arn: str | None, variables: dict[str, KeyFact] | None, *, unknown_is_enough: bool = False
) -> Tri:
    text, special = substitute(pattern, variables)
    if text is None or special:
        return Tri.UNKNOWN  # a variable the guard cannot resolve, or a literal wildcard it cannot express
    if text == "*":
        return Tri.TRUE
    if key_arn is not None:
        return Tri.of(glob_match(text, key_arn))
    return _key_arn_offline(text, unknown_is_enough=unknown_is_enough)


def _resource(
    statement: Statement, caller: Caller, variables: dict[str, KeyFact] | None, budget: Budget | None = None
) -> tuple[Tri, tuple[str, ...]]:
    # Kleene OR over the list: TRUE at the first TRUE; once one entry is UNKNOWN, only a TRUE can change the answer.
    hit = Tri.FALSE
    for pattern in statement.resources:
        if budget is not None:
            budget.check()
        entry = _resource_entry(pattern, caller.key_arn, variables, unknown_is_enough=hit is Tri.UNKNOWN)
        if entry is Tri.TRUE:
            hit = Tri.TRUE
            break
        if entry is Tri.UNKNOWN:
            hit = Tri.UNKNOWN
    result = ~hit if statement.resource_negated else hit
    note = ("Resource cannot be matched with this key's ARN offline",) if result is Tri.UNKNOWN else ()
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


def _no_match(family: Family, value: str) -> Tri:
    return Tri.UNKNOWN


@dataclass(frozen=True)
class KeyFact:
    """What the guard knows of one condition key for the vendor's calls."""

    present: Tri
    match: Callable[[Family, str], Tri] = _no_match
    """Whether the key's value matches one listed value under an operator family."""
    value: str | None = None
    """The key's value, when it is known (it then also resolves the policy variable `${key}`)."""


def _compare(family: Family, actual: str, listed: str) -> Tri:
    """One known request value against one listed value."""
    if family == "eq":
        return Tri.of(actual == listed)
    if family == "eq_ic":
        if not (actual.isascii() and listed.isascii()):
            return Tri.TRUE if actual == listed else Tri.UNKNOWN  # non-ASCII case folding: not decided here
        return Tri.of(ascii_lower(actual) == ascii_lower(listed))
    if family == "arn":
        return arn_like(listed, actual)
    if family == "like":
        return Tri.of(glob_match(listed, actual))
    return Tri.of(ascii_lower(actual) == ascii_lower(listed))  # Bool: "true"/"false", any case


def _arn_components(text: str) -> list[str]:
    """An ARN's six colon-delimited components (the sixth, the resource, keeps its colons); fewer when it has fewer."""
    return text.split(":", 5)


def _either_reading(whole: Tri, per_component: Tri) -> Tri:
    """The two readings of ARN matching: their answer where they agree, UNKNOWN where they disagree."""
    return whole if whole is per_component else Tri.UNKNOWN


def arn_like(pattern: str, arn: str) -> Tri:
    """`ArnLike`/`ArnEquals` of a known ARN, under both readings of how AWS matches it.

    The IAM reference says each of the six colon-delimited components is checked separately
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN),
    so `*` and `?` would not cross `:`; the guard used to glob the whole string. Which one AWS does is not settled
    here, so both are computed and a disagreement is UNKNOWN, never a certain answer either way.
    """
    whole = Tri.of(glob_match(pattern, arn))
    pattern_parts, arn_parts = _arn_components(pattern), _arn_components(arn)
    per_component = len(pattern_parts) == len(arn_parts) and all(
        glob_match(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True)
    )
    return _either_reading(whole, Tri.of(per_component))


def _known_fact(value: str) -> KeyFact:
    return KeyFact(Tri.TRUE, lambda family, listed: _compare(family, value, listed), value)


def _principal_arn_fact(account: str, partition: str) -> KeyFact:
    """`aws:PrincipalArn`: which role or user calls is unknown, but its ARN starts `arn:<partition>:iam::<account>:`."""
    prefix = f"arn:{partition}:iam::{account}:"

    def match(family: Family, value: str) -> Tri:
        if family == "bool":
            return Tri.UNKNOWN
        if family in ("eq", "eq_ic"):
            head = value[: len(prefix)]
            same = head == prefix if family == "eq" else ascii_lower(head) == ascii_lower(prefix)
            return Tri.UNKNOWN if same and len(value) > len(prefix) else Tri.FALSE
        some, every = intersects_prefix(value, prefix, rest_may_be_empty=False)
        whole = Tri.TRUE if every else Tri.UNKNOWN if some else Tri.FALSE
        if family != "arn":
            return whole
        return _either_reading(whole, per_component(value))

    def per_component(value: str) -> Tri:
        # The caller's ARN is arn, partition, iam, "" (no Region), account, then a resource not known here.
        parts = _arn_components(value)
        if len(parts) != len(known) + 1 or not all(glob_match(p, k) for p, k in zip(parts, known, strict=False)):
            return Tri.FALSE
        resource = parts[-1]
        return Tri.TRUE if is_universal(resource) else Tri.UNKNOWN if resource else Tri.FALSE

    known = ("arn", partition, "iam", "", account)
    return KeyFact(Tri.TRUE, match)


def _prefix_fact(prefix: str) -> KeyFact:
    """A key whose value is not known but starts with `prefix` (and may be longer): `aws:PrincipalOrgPaths`."""

    def match(family: Family, value: str) -> Tri:
        if family == "bool":
            return Tri.UNKNOWN
        if family in ("eq", "eq_ic"):
            head = value[: len(prefix)]
            same = head == prefix if family == "eq" else ascii_lower(head) == ascii_lower(prefix)
            return Tri.UNKNOWN if same else Tri.FALSE
        some, every = intersects_prefix(value, prefix)
        return Tri.TRUE if every else Tri.UNKNOWN if some else Tri.FALSE

    return KeyFact(Tri.TRUE, match)


def _template_fact(template: str) -> KeyFact:
    """`kms:ViaService` when the key's Region is not known: `ec2.<region>.amazonaws.com` for some Region."""
    head, _, tail = template.partition(REGION)
    everywhere = f"{head}*{tail}"

    def match(family: Family, value: str) -> Tri:
        if family in ("like", "arn") and (is_universal(value) or value == everywhere):
            return Tri.TRUE
        if family == "bool":
            return Tri.UNKNOWN
        return Tri.UNKNOWN if intersects_template(value, (head, RUN, tail)) else Tri.FALSE

    return KeyFact(Tri.TRUE, match)


def _facts(caller: Caller) -> dict[str, KeyFact]:
    context = caller.context
    facts = {key: _known_fact(value) for key, value in context.values(caller.account, caller.region).items()}
    facts.update({key: KeyFact(Tri.FALSE, lambda family, value: Tri.FALSE) for key in context.absent})
    if caller.principal is not None:
        facts["aws:principalarn"] = _known_fact(caller.principal)
    elif caller.account is not None:
        facts["aws:principalarn"] = _principal_arn_fact(caller.account, caller.partition)
    if len(context.org_paths) == 1:
        facts["aws:principalorgpaths"] = _prefix_fact(context.org_paths[0])
    if context.via_service is not None and caller.region is None and REGION in context.via_service:
        facts["kms:viaservice"] = _template_fact(context.via_service)
    return facts


def condition_result(
    condition: Condition,
    facts: dict[str, KeyFact],
    variables: dict[str, KeyFact] | None = None,
    budget: Budget | None = None,
) -> Tri:
    """One condition test, following https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html.

    `variables` are the facts that resolve `${...}` in the listed values (None: variables are literal text).
    """
    fact = facts.get(ascii_lower(condition.key)) if condition.key.isascii() else None
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

    def one(listed: str) -> Tri:
        if budget is not None:
            budget.check()
        text, special = substitute(listed, variables)
        if text is None or (special and family in ("like", "arn")):
            return Tri.UNKNOWN  # a variable the guard cannot resolve: never compare the literal text
        return fact.match(family, text)

    matched = any_of(one(v) for v in condition.values) if fact.present is not Tri.FALSE else Tri.FALSE
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


def _conditions(
    statement: Statement,
    facts: dict[str, KeyFact],
    variables: dict[str, KeyFact] | None,
    budget: Budget | None,
) -> tuple[Tri, tuple[str, ...]]:
    if not statement.conditions:
        return Tri.TRUE, ()
    results = [(c, condition_result(c, facts, variables, budget)) for c in statement.conditions]
    overall = all_of(r for _, r in results)
    notes = tuple(f"condition {c.label} cannot be decided" for c, r in results if r is Tri.UNKNOWN)
    return overall, notes if overall is Tri.UNKNOWN else ()
