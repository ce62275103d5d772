"""The production evaluator against a literal, slow one (tests/unit/oracle.py) on generated hostile policies.

Property: the guard never says `compliant` when some concrete request of the vendor is refused, and never reports
the vendor's access as lost (`ACTION_DENIED` / `ACTION_NOT_GRANTED`) when every concrete request is allowed. Checked
with the key's ARN known (the guard) and offline (check-policy), since a policy offline must hold for every key.
It found no disagreement once the evaluator's rules were in; the hostile cases written alongside it are kept as
`tests/policies/hostile-*.json`. A disagreement found later belongs there too, as a named fixture.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn
from kms_guard.core.compliance import assess_policy
from kms_guard.core.findings import verdict_of
from kms_guard.core.policy import parse_policy
from kms_guard.core.vendor import ROCKSET

from tests.unit import oracle

V, C = oracle.VENDOR, "111122223333"
PRINCIPAL_VALUES = [
    "*",
    V,
    f"arn:aws:iam::{V}:root",
    f"arn:aws:iam::{V}:role/app",
    f"arn:aws:sts::{V}:assumed-role/app/session",
    f"arn:aws:iam::{C}:root",
    f"arn:aws:iam::{V}:root ",
    f"arn:aws:sts::{V}:root",
    f"arn:aws-cn:iam::{V}:root",
]
ACTIONS = [
    "kms:*",
    "*",
    "kms:Decrypt",
    "KMS:DECRYPT",
    "kms:De*",
    "kms:*crypt",
    "k?s:Encrypt",
    "kms:GenerateDataKey*",
    "kms:GenerateDataKey?*",
    "kms:Describe\u212aey",
    "kms:" + "*" * 12 + "q",
    "kms:?*Key",
    "s3:*",
]
RESOURCES = [
    "*",
    "arn:*",
    oracle.KEY_ARN,
    "arn:aws:kms:*",
    "arn:aws:kms:us-west-2:*:key/*",
    "arn:aws:kms:eu-west-1:*",
    "arn:aws:s3:::bucket/*",
    "*:key/mrk-*",
    f"arn:aws:kms:*:{C}:key/${{aws:PrincipalAccount}}",
    "arn:aws:kms:*:${aws:PrincipalAccount}*",
    "arn:aws:kms:*:*:alias/*",
]
CONDITION_CASES = {
    "aws:PrincipalAccount": [V, C, "${aws:PrincipalAccount}", "${aws:SourceIp}", "3186*", "*"],
    "kms:CallerAccount": [V, C, "${kms:CallerAccount}", "?" * 12],
    "aws:SecureTransport": ["true", "false"],
    "aws:PrincipalIsAWSService": ["true", "false"],
    "aws:SourceVpce": ["vpce-1", "vpce-*"],
    "kms:ViaService": ["s3.us-west-2.amazonaws.com", "*"],
    "aws:PrincipalArn": [f"arn:aws:iam::{V}:role/app", f"arn:aws:iam::{V}:*", f"arn:aws:iam::{C}:*", "arn:*"],
    "aws:PrincipalOrgID": ["o-org1", "o-*", "${aws:PrincipalOrgID}"],
    "aws:SourceIp": ["203.0.113.0/24"],
}
STRING_OPS = ["StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"]
STRING_OPS += ["StringLike", "StringNotLike"]
OPS_BY_KEY = {
    "aws:SecureTransport": ["Bool", "StringEquals"],
    "aws:PrincipalIsAWSService": ["Bool"],
    "aws:PrincipalArn": ["ArnLike", "ArnNotLike", "ArnEquals", "StringLike", "StringNotEquals"],
    "aws:SourceIp": ["IpAddress", "NotIpAddress"],
}


@st.composite
def conditions(draw: DrawFn) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(sorted(CONDITION_CASES)))
        if draw(st.integers(0, 5)) == 0:
            op = "Null"
            values = [draw(st.sampled_from(["true", "false"]))]
        else:
            op = draw(st.sampled_from(OPS_BY_KEY.get(key, STRING_OPS)))
            if draw(st.booleans()):
                op += "IfExists"
            qualifier = draw(st.sampled_from(["", "", "ForAnyValue:", "ForAllValues:"]))
            op = qualifier + op
            values = draw(st.lists(st.sampled_from(CONDITION_CASES[key]), min_size=1, max_size=2, unique=True))
        out.setdefault(op, {})[key] = values
    return out


@st.composite
def statements(draw: DrawFn) -> dict[str, Any]:
    effect = draw(st.sampled_from(["Allow", "Allow", "Deny"]))
    stmt: dict[str, Any] = {"Effect": effect}
    principal: str | list[str] | dict[str, str | list[str]]
    principal = draw(st.one_of(st.just("*"), st.lists(st.sampled_from(PRINCIPAL_VALUES), min_size=1, max_size=2)))
    principal = principal if principal == "*" else {"AWS": principal}
    stmt["NotPrincipal" if principal != "*" and draw(st.integers(0, 5)) == 0 else "Principal"] = principal
    stmt["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = draw(
        st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True)
    )
    stmt["NotResource" if draw(st.integers(0, 5)) == 0 else "Resource"] = draw(
        st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2, unique=True)
    )
    if draw(st.integers(0, 2)) > 0:
        stmt["Condition"] = draw(conditions())
    return stmt


GRANT = {
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{V}:root"},
    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
    "Resource": "*",
}

policies = st.builds(
    lambda version, grant, stmts: {
        **({"Version": version} if version else {}),
        "Statement": ([GRANT] if grant else []) + stmts,
    },
    st.sampled_from(["2012-10-17", "2012-10-17", "2008-10-17", None]),
    st.booleans(),
    st.lists(statements(), min_size=1, max_size=3),
)


def check(doc: dict[str, Any]) -> None:
    truth = oracle.outcomes(doc)
    for key_arn in (oracle.KEY_ARN, None):
        result = assess_policy(parse_policy(json.dumps(doc)), ROCKSET, key_arn=key_arn)
        verdict = verdict_of(result.findings)
        where = "with the key ARN" if key_arn else "offline"
        if verdict == "compliant":
            assert truth == {"allowed"}, f"compliant {where}, but a concrete request is {truth - {'allowed'}}"
        lost = {f.code.value for f in result.findings} & {"ACTION_DENIED", "ACTION_NOT_GRANTED"}
        if lost:
            assert truth != {"allowed"}, f"{sorted(lost)} {where}, but every concrete request is allowed"


@settings(max_examples=250, deadline=None)
@given(policies)
def test_the_guard_never_disagrees_with_the_literal_evaluator_in_a_harmful_direction(doc: dict[str, Any]) -> None:
    check(doc)


def test_the_oracle_glob_is_the_textbook_definition() -> None:
    assert oracle.glob("a*b?c", "axxbyc")
    assert not oracle.glob("a*b?c", "abc")
    assert oracle.glob("*", "")
