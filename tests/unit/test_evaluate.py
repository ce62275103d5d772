"""The evaluator's decisions and reasons, condition semantics, and invariants that must hold for any policy."""

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn
from kms_guard.core.compliance import assess_policy
from kms_guard.core.evaluate import ActionDecision, Caller, KeyFact, condition_result, evaluate
from kms_guard.core.findings import verdict_of
from kms_guard.core.policy import Condition, parse_policy, parse_policy_document
from kms_guard.core.tri import Tri
from kms_guard.core.vendor import ROCKSET, ROCKSET_ACCOUNT

from tests.support import CUSTOMER_ROOT, ROCKSET_ROOT, admin_statement, policy_text, rockset_statement

CALLER = Caller(ROCKSET_ACCOUNT)


def decide(*statements: dict[str, Any], action: str = "kms:Decrypt") -> ActionDecision:
    return evaluate(parse_policy(policy_text(*statements)), CALLER, (action,))[action]


def test_decision_names_the_allowing_statement() -> None:
    decision = decide(admin_statement(), rockset_statement("GrantRockset"))
    assert decision.decision == "allowed"
    assert [m.statement.label for m in decision.allowed_by] == ["GrantRockset"]
    assert decision.reason == "allowed by statement GrantRockset"


def test_decision_names_the_denying_statement_even_without_sid() -> None:
    deny = {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    decision = decide(rockset_statement(), deny)
    assert decision.decision == "denied"
    assert decision.reason == "denied by statement #1"


def test_undecided_condition_is_named_in_the_reason() -> None:
    stmt = rockset_statement("Vpc")
    stmt["Condition"] = {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
    decision = decide(stmt)
    assert decision.decision == "conditional"
    assert "IpAddress aws:SourceIp cannot be decided" in decision.reason


def test_conditional_deny_downgrades_a_proven_allow_to_conditional() -> None:
    deny = {
        "Sid": "IpFence",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    decision = decide(rockset_statement(), deny)
    assert decision.decision == "conditional"
    assert decision.reason.startswith("may be denied by statement IpFence")


def test_not_granted_when_nothing_applies() -> None:
    assert decide(admin_statement()).decision == "not-granted"


ACCOUNT_FACTS = {"kms:calleraccount": KeyFact(Tri.TRUE, lambda family, value: Tri.of(value == ROCKSET_ACCOUNT))}
ABSENT_FACTS = {"aws:sourceaccount": KeyFact(Tri.FALSE, lambda family, value: Tri.FALSE)}
MAYBE_FACTS = {"aws:principalorgid": KeyFact(Tri.UNKNOWN, lambda family, value: Tri.FALSE)}


@pytest.mark.parametrize(
    ("condition", "facts", "expected"),
    [
        (Condition("StringEquals", "kms:CallerAccount", (ROCKSET_ACCOUNT,)), ACCOUNT_FACTS, Tri.TRUE),
        (Condition("StringEquals", "KMS:CALLERACCOUNT", (ROCKSET_ACCOUNT,)), ACCOUNT_FACTS, Tri.TRUE),
        (Condition("StringNotEquals", "kms:CallerAccount", (ROCKSET_ACCOUNT,)), ACCOUNT_FACTS, Tri.FALSE),
        (Condition("StringEquals", "kms:CallerAccount", ("1", ROCKSET_ACCOUNT)), ACCOUNT_FACTS, Tri.TRUE),
        (Condition("StringNotEquals", "kms:CallerAccount", ("1", ROCKSET_ACCOUNT)), ACCOUNT_FACTS, Tri.FALSE),
        (Condition("Null", "kms:CallerAccount", ("true",)), ACCOUNT_FACTS, Tri.FALSE),
        (Condition("Null", "kms:CallerAccount", ("false",)), ACCOUNT_FACTS, Tri.TRUE),
        (Condition("NumericEquals", "kms:CallerAccount", ("1",)), ACCOUNT_FACTS, Tri.UNKNOWN),
        (Condition("StringEquals", "aws:SourceIp", ("1.2.3.4",)), ACCOUNT_FACTS, Tri.UNKNOWN),
        # A key absent from the request: plain operators are false, negated ones true, IfExists true.
        (Condition("StringEquals", "aws:SourceAccount", ("1",)), ABSENT_FACTS, Tri.FALSE),
        (Condition("StringNotEquals", "aws:SourceAccount", ("1",)), ABSENT_FACTS, Tri.TRUE),
        (Condition("StringEquals", "aws:SourceAccount", ("1",), if_exists=True), ABSENT_FACTS, Tri.TRUE),
        (Condition("StringEquals", "aws:SourceAccount", ("1",), qualifier="ForAllValues"), ABSENT_FACTS, Tri.TRUE),
        (Condition("StringEquals", "aws:SourceAccount", ("1",), qualifier="ForAnyValue"), ABSENT_FACTS, Tri.FALSE),
        (Condition("Null", "aws:SourceAccount", ("true",)), ABSENT_FACTS, Tri.TRUE),
        # Maybe present, never matching: plain positive is false either way, IfExists positive is undecided.
        (Condition("StringEquals", "aws:PrincipalOrgID", ("o-abc",)), MAYBE_FACTS, Tri.FALSE),
        (Condition("StringNotEquals", "aws:PrincipalOrgID", ("o-abc",)), MAYBE_FACTS, Tri.TRUE),
        (Condition("StringEquals", "aws:PrincipalOrgID", ("o-abc",), if_exists=True), MAYBE_FACTS, Tri.UNKNOWN),
        (Condition("Null", "aws:PrincipalOrgID", ("true",)), MAYBE_FACTS, Tri.UNKNOWN),
    ],
)
def test_condition_semantics(condition: Condition, facts: dict[str, KeyFact], expected: Tri) -> None:
    assert condition_result(condition, facts) is expected


def test_tri_is_kleene_logic() -> None:
    t, f, u = Tri.TRUE, Tri.FALSE, Tri.UNKNOWN
    assert (t & u, f & u, u & u) == (u, f, u)
    assert (t | u, f | u, u | u) == (t, u, u)
    assert (~t, ~f, ~u) == (f, t, u)


# --- Properties over generated policies ------------------------------------------------------------------------

PRINCIPALS = [
    "*",
    {"AWS": "*"},
    {"AWS": ROCKSET_ROOT},
    {"AWS": ROCKSET_ACCOUNT},
    {"AWS": CUSTOMER_ROOT},
    {"AWS": f"arn:aws:iam::{ROCKSET_ACCOUNT}:role/rockset"},
    {"Service": "logs.amazonaws.com"},
    {"AWS": [CUSTOMER_ROOT, ROCKSET_ROOT]},
]
ACTIONS = [
    "kms:*",
    "*",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:GenerateDataKey",
    "kms:Describe*",
    "kms:DescribeKey",
    "kms:ReEncrypt*",
    "s3:*",
    "kms:Get*",
    "kms:GenerateDataKeyPair*",
]
CONDITIONS = [
    None,
    {"StringEquals": {"kms:CallerAccount": ROCKSET_ACCOUNT}},
    {"StringEquals": {"kms:CallerAccount": "111122223333"}},
    {"StringNotEquals": {"aws:PrincipalAccount": ROCKSET_ACCOUNT}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-abcdef"}},
    {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}},
    {"Bool": {"aws:PrincipalIsAWSService": "true"}},
]


@st.composite
def statements(draw: DrawFn) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    if draw(st.booleans()):
        stmt["Sid"] = draw(st.sampled_from(["A", "B", "Admin", "Rockset", "Fence", "Team Access"]))
    principal = draw(st.sampled_from(PRINCIPALS))
    stmt["NotPrincipal" if principal != "*" and draw(st.integers(0, 9)) == 0 else "Principal"] = principal
    action_list = draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4, unique=True))
    stmt["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = action_list
    stmt["Resource"] = "*"
    condition = draw(st.sampled_from(CONDITIONS))
    if condition:
        stmt["Condition"] = condition
    return stmt


policies = st.lists(statements(), min_size=1, max_size=8).map(lambda s: {"Version": "2012-10-17", "Statement": s})


def _outcome(doc: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    result = assess_policy(parse_policy_document(doc), ROCKSET)
    return verdict_of(result.findings), sorted(result.missing), sorted(result.conditional)


def _recase(action: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in action)


@settings(max_examples=300, deadline=None)
@given(policies, st.randoms(use_true_random=False))
def test_statement_order_and_action_case_never_change_the_verdict(doc: dict[str, Any], rng: random.Random) -> None:
    shuffled = list(doc["Statement"])
    rng.shuffle(shuffled)
    recased = []
    for stmt in shuffled:
        stmt = dict(stmt)
        key = "Action" if "Action" in stmt else "NotAction"
        stmt[key] = [_recase(a, rng) for a in stmt[key]]
        recased.append(stmt)
    assert _outcome(doc) == _outcome({"Version": "2012-10-17", "Statement": recased})


@settings(max_examples=300, deadline=None)
@given(policies)
def test_adding_the_guard_statement_makes_any_policy_without_an_applicable_deny_compliant(doc: dict[str, Any]) -> None:
    result = assess_policy(parse_policy_document(doc), ROCKSET)
    assume_no_deny = all(not d.denied_by and not d.maybe_denied_by for d in result.decisions.values())
    if not assume_no_deny:
        return
    with_grant = json.loads(json.dumps(doc))
    with_grant["Statement"].append(rockset_statement("KmsGuardRocksetAccess"))
    assert _outcome(with_grant)[0] == "compliant"


@settings(max_examples=300, deadline=None)
@given(policies)
def test_an_unconditional_deny_on_everything_for_everyone_always_wins(doc: dict[str, Any]) -> None:
    fenced = json.loads(json.dumps(doc))
    fenced["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"})
    verdict, missing, _ = _outcome(fenced)
    assert verdict == "non-compliant"
    assert len(missing) == len(ROCKSET.concrete_actions)
