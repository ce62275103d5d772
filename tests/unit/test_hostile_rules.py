"""Issue 10: rules a hostile key policy must not be able to use against the guard, one named test group per rule.

Each test fails on the evaluator before issue 10 (regex wildcards, `str.lower`, field-split ARNs, literal variables,
an unknown organization read as "not the vendor's", a parser that let huge numbers through).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kms_guard.core import actions, wildcards
from kms_guard.core.compliance import RegionObservation, assess_policy, assess_region
from kms_guard.core.evaluate import Budget, BudgetExceeded, Caller, evaluate
from kms_guard.core.findings import verdict_of
from kms_guard.core.policy import MAX_POLICY_BYTES, PolicyError, parse_policy
from kms_guard.core.remediation import plan_region
from kms_guard.core.repair import plan_restore_statement
from kms_guard.core.vendor import ROCKSET, ROCKSET_ACCOUNT, RequestContext

from tests.support import CUSTOMER, ROCKSET_ROOT, admin_statement, policy_text, rockset_statement

KEY_ARN = f"arn:aws:kms:us-west-2:{CUSTOMER}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
METADATA = {"KeyState": "Enabled", "MultiRegion": True, "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"}


def deny(**extra: Any) -> dict[str, Any]:
    return {"Sid": "Hostile", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", **extra}


def verdict(text: str, key_arn: str | None = None) -> str:
    return verdict_of(assess_policy(parse_policy(text), ROCKSET, key_arn=key_arn).findings)


def codes(text: str, key_arn: str | None = None) -> list[str]:
    return sorted({f.code.value for f in assess_policy(parse_policy(text), ROCKSET, key_arn=key_arn).findings})


# --- Rule 1: wildcards in linear time ------------------------------------------------------------------------------


def test_rule1_many_star_action_pattern_is_matched_without_backtracking() -> None:
    # `kms:` + 40 stars + a letter nothing ends with: a backtracking regex needs astronomically many steps.
    pattern = "kms:" + "*" * 40 + "q"
    assert not actions.matches(pattern, "kms:Decrypt" + "x" * 200)
    assert actions.expand(pattern) == frozenset()
    assert wildcards.compile_glob(pattern).segments == ("kms:", "q")


def test_rule1_star_question_mixes_in_every_element_are_evaluated_within_a_step_budget() -> None:
    hostile = "*?" * 2000 + "!"
    text = policy_text(
        rockset_statement(),
        deny(Action=["kms:" + hostile], Resource=[hostile], Condition={"StringLike": {"aws:PrincipalArn": hostile}}),
    )
    # A clock that advances one unit per check: the evaluator checks it per statement and per condition value, so
    # a budget of 10 units proves no element costs unbounded work between checks.
    ticks = iter(range(10_000))
    budget = Budget(10, clock=lambda: float(next(ticks)))
    decisions = evaluate(parse_policy(text), Caller(ROCKSET_ACCOUNT, KEY_ARN), ROCKSET.concrete_actions, budget=budget)
    assert all(d.decision == "allowed" for d in decisions.values())


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("kms:*", "kms:Decrypt", True),
        ("k?s:*crypt", "kms:Decrypt", True),
        ("*:*:*:*:*:*", "arn:aws:kms:us-west-2:1:key/x", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "acb", False),
        ("a?*?b", "axb", False),
        ("a?*?b", "axyb", True),
        ("**x**y**", "1x2y3", True),
        ("*a?a*", "bbaaab", True),
        ("", "", True),
        ("?", "", False),
    ],
)
def test_rule1_linear_glob_agrees_with_the_definition(pattern: str, text: str, expected: bool) -> None:
    assert wildcards.match(pattern, text) is expected


# --- Rule 2: ARN globbing as AWS does it ---------------------------------------------------------------------------


def test_rule2_arn_star_in_a_deny_resource_matches_every_key_offline() -> None:
    assert codes(policy_text(rockset_statement(), deny(Resource="arn:*"))) == ["ACTION_DENIED"]


def test_rule2_stars_match_across_colons_against_the_known_key_arn() -> None:
    assert codes(policy_text(rockset_statement(), deny(Resource="arn:aws:kms:*mrk-*")), KEY_ARN) == ["ACTION_DENIED"]


def test_rule2_a_pattern_no_key_arn_can_match_is_not_this_key() -> None:
    text = policy_text(rockset_statement(), deny(Resource=["arn:aws:s3:::bucket/*", "arn:aws:kms:*:*:alias/x"]))
    assert verdict(text) == "compliant"


def test_rule2_a_pattern_that_may_name_this_key_is_undecided_offline() -> None:
    assert verdict(policy_text(rockset_statement(), deny(Resource="arn:aws:kms:*:*:key/*"))) == "at-risk"


def test_rule2_notresource_arn_star_in_a_deny_spares_the_key_and_in_an_allow_grants_nothing() -> None:
    spared = deny(NotResource="arn:*")
    del spared["Resource"]
    assert verdict(policy_text(rockset_statement(), spared)) == "compliant"
    grant = rockset_statement()
    del grant["Resource"]
    grant["NotResource"] = "arn:*"
    assert verdict(policy_text(grant)) == "non-compliant"


# --- Rule 3: policy variables --------------------------------------------------------------------------------------


def test_rule3_a_variable_resolved_from_the_vendor_context_decides_the_deny() -> None:
    hostile = deny(Condition={"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}})
    assert codes(policy_text(rockset_statement(), hostile)) == ["ACTION_DENIED"]


def test_rule3_a_variable_in_the_resource_is_resolved() -> None:
    hostile = deny(Resource="arn:aws:kms:*:*:${aws:PrincipalAccount}*")
    assert verdict(policy_text(rockset_statement(), hostile), KEY_ARN) == "compliant"
    hostile = deny(Resource=f"arn:aws:kms:*:{CUSTOMER}:*${{aws:PrincipalIsAWSService}}*")
    assert verdict(policy_text(rockset_statement(), hostile), KEY_ARN) == "compliant"


def test_rule3_an_unknown_variable_is_never_compared_as_literal_text() -> None:
    # The literal text `${aws:SourceIp}` differs from any account: a literal comparison would say "never applies".
    hostile = deny(Condition={"StringNotEquals": {"aws:PrincipalAccount": "${aws:SourceIp}"}})
    assert verdict(policy_text(rockset_statement(), hostile)) == "at-risk"


def test_rule3_variables_are_literal_under_version_2008() -> None:
    hostile = deny(Condition={"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}})
    doc = json.loads(policy_text(rockset_statement(), hostile))
    doc["Version"] = "2008-10-17"
    assert verdict(json.dumps(doc)) == "compliant"


# --- Rule 4: principals by AWS's grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        ROCKSET_ROOT + " ",
        " " + ROCKSET_ACCOUNT,
        ROCKSET_ROOT + "\n",
        ROCKSET_ACCOUNT + "\n",
        f"arn:aws:sts::{ROCKSET_ACCOUNT}:root",
        f"arn:aws:iam::{ROCKSET_ACCOUNT}:roo\u0442",  # Cyrillic te
        "\u0663" + ROCKSET_ACCOUNT[1:],  # Arabic-Indic digit three
        f"arn:aws:iam::{ROCKSET_ACCOUNT}:*",
    ],
)
def test_rule4_lookalike_principals_are_not_the_vendor(principal: str) -> None:
    text = policy_text(admin_statement(), {**rockset_statement(), "Principal": {"AWS": principal}})
    assert verdict(text) == "non-compliant"
    assert "POLICY_INVALID" in codes(text)


def test_rule4_the_vendor_root_in_another_partition_is_not_the_vendor() -> None:
    grant = {**rockset_statement(), "Principal": {"AWS": f"arn:aws-cn:iam::{ROCKSET_ACCOUNT}:root"}}
    assert codes(policy_text(admin_statement(), grant), KEY_ARN) == ["ACTION_NOT_GRANTED"]


def test_rule4_the_vendor_root_in_the_keys_partition_is_the_vendor() -> None:
    china_key = f"arn:aws-cn:kms:cn-north-1:{CUSTOMER}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    grant = {**rockset_statement(), "Principal": {"AWS": f"arn:aws-cn:iam::{ROCKSET_ACCOUNT}:root"}}
    assert verdict(policy_text(grant), china_key) == "compliant"
    assert verdict(policy_text(rockset_statement()), china_key) == "non-compliant"


def test_rule4_action_case_is_folded_in_ascii_only() -> None:
    kelvin = "kms:Describe\u212aey"  # KELVIN SIGN folds to 'k' with str.lower
    assert not actions.matches(kelvin, "kms:DescribeKey")
    assert actions.canonical(kelvin) is None
    grant = rockset_statement(actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", kelvin])
    assert assess_policy(parse_policy(policy_text(grant)), ROCKSET).missing == ("kms:DescribeKey",)


# --- Rule 5: NotPrincipal with Allow -------------------------------------------------------------------------------


def test_rule5_notprincipal_with_allow_is_never_a_grant() -> None:
    grant = {**rockset_statement(), "NotPrincipal": {"AWS": f"arn:aws:iam::{CUSTOMER}:root"}}
    del grant["Principal"]
    text = policy_text(admin_statement(), grant)
    assert codes(text) == ["ACTION_NOT_GRANTED", "POLICY_INVALID"]
    assert "PUBLIC_PRINCIPAL" not in codes(text)


# --- Rule 6: unknowable stays unknown ------------------------------------------------------------------------------


def test_rule6_a_deny_on_some_organization_is_undecided() -> None:
    hostile = deny(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-rockset0org"}})
    assert codes(policy_text(rockset_statement(), hostile)) == ["GRANT_CONDITIONAL"]


def test_rule6_a_profile_that_names_the_vendor_organization_decides_it() -> None:
    known = ROCKSET.context.__class__(ROCKSET.context.known, ROCKSET.context.absent, organization="o-rockset0org")
    profile = ROCKSET.__class__(**{**ROCKSET.__dict__, "context": known})
    hostile = deny(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-rockset0org"}})
    text = policy_text(rockset_statement(), hostile)
    assert verdict_of(assess_policy(parse_policy(text), profile).findings) == "non-compliant"
    other = deny(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-customer0org"}})
    assert verdict_of(assess_policy(parse_policy(policy_text(rockset_statement(), other)), profile).findings) == (
        "compliant"
    )


# --- Rule 7: what is known about the vendor's calls ----------------------------------------------------------------


def test_rule7_a_deny_on_insecure_transport_never_applies() -> None:
    hostile = deny(Condition={"Bool": {"aws:SecureTransport": "false"}})
    assert verdict(policy_text(rockset_statement(), hostile)) == "compliant"


def test_rule7_a_deny_unless_through_my_vpc_endpoint_certainly_denies() -> None:
    hostile = deny(Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}})
    result = assess_policy(parse_policy(policy_text(rockset_statement(), hostile)), ROCKSET)
    denied = [f for f in result.findings if f.code.value == "ACTION_DENIED"]
    assert denied
    assert denied[0].severity == "critical"
    assert not any(f.code.value == "GRANT_CONDITIONAL" for f in result.findings)


def test_rule7_via_service_is_absent_and_aws_service_false_for_direct_calls() -> None:
    only_via_s3 = {**rockset_statement(), "Condition": {"StringEquals": {"kms:ViaService": "s3.amazonaws.com"}}}
    assert codes(policy_text(only_via_s3)) == ["ACTION_NOT_GRANTED"]
    hostile = deny(Condition={"Bool": {"aws:PrincipalIsAWSService": "false"}})
    assert codes(policy_text(rockset_statement(), hostile)) == ["ACTION_DENIED"]


def test_rule7_the_request_context_is_vendor_data_that_follows_the_account() -> None:
    assert isinstance(ROCKSET.context, RequestContext)
    other = ROCKSET.with_account("123456789012")
    assert other.request_values["kms:calleraccount"] == "123456789012"
    assert other.request_values["aws:principalaccount"] == "123456789012"
    assert "aws:sourcevpce" in other.context.absent


# --- Rule 8: parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"Version": "2012-10-17", "Version": "2008-10-17", "Statement": []}', "duplicate key"),
        ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Effect": "Deny"}]}', "duplicate key"),
        ('{"Version": NaN, "Statement": []}', "NaN"),
        ('{"Statement": [], "Id": -Infinity}', "Infinity"),
        ('{"Id": ' + "9" * 5000 + "}", "too large"),
        ('{"Id": 1e99999}', "out of range"),
        ('{"Id": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
    ],
)
def test_rule8_bad_input_is_one_clean_line(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert fragment in message
    assert message.isprintable()
    assert message.isascii()


def test_rule8_nothing_in_the_policy_can_add_lines_or_control_characters_to_the_message() -> None:
    hostile_key = "X\nCRITICAL: all clear\x1b[2J\u2028" * 50
    text = json.dumps({"Version": "2012-10-17", "Statement": [{**rockset_statement(), hostile_key: 1}]})
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert "\n" not in message
    assert message.isprintable()
    assert message.isascii()
    assert len(message) <= 300


def test_rule8_over_32_kb_is_said_to_be_more_than_kms_can_hold() -> None:
    padding = [f"arn:aws:iam::{CUSTOMER}:role/r{i:05d}" for i in range(1200)]
    text = policy_text(rockset_statement(), {**admin_statement(), "Principal": {"AWS": padding}})
    assert len(text.encode()) > MAX_POLICY_BYTES
    result = assess_policy(parse_policy(text), ROCKSET)
    invalid = [f for f in result.findings if f.code.value == "POLICY_INVALID"]
    assert invalid
    assert invalid[0].severity == "critical"
    assert "KMS holds at most 32768" in invalid[0].message


# --- Rule 9: validity ----------------------------------------------------------------------------------------------


def test_rule9_an_invalid_element_the_grant_does_not_need_is_a_warning() -> None:
    odd = {**admin_statement(), "Principal": {"AWS": f"arn:aws:iam::{CUSTOMER}:root\t"}}
    result = assess_policy(parse_policy(policy_text(rockset_statement(), odd)), ROCKSET)
    assert [(f.code.value, f.severity) for f in result.findings] == [("POLICY_INVALID", "warning")]


def test_rule9_fix_policy_never_prints_a_policy_kms_would_reject() -> None:
    lookalike = {**rockset_statement(), "Principal": {"AWS": ROCKSET_ROOT + " "}}
    plan = plan_restore_statement(policy_text(admin_statement(), lookalike), ROCKSET)
    assert plan.status == "refused"
    assert plan.refusal == "policy-invalid"
    assert plan.policy is None
    padding = [f"arn:aws:iam::{CUSTOMER}:role/r{i:05d}" for i in range(1200)]
    big = policy_text(rockset_statement(), {**admin_statement(), "Principal": {"AWS": padding}})
    plan = plan_restore_statement(big, ROCKSET)  # already compliant, but KMS cannot hold it: not printed
    assert plan.status == "refused"
    assert plan.refusal == "too-large"


# --- Rule 10: live policies ----------------------------------------------------------------------------------------


def test_rule10_an_unparseable_live_policy_is_that_regions_finding_not_a_crash() -> None:
    huge_number = '{"Version": "2012-10-17", "Id": ' + "7" * 5000 + ', "Statement": []}'
    report = assess_region(RegionObservation("us-east-1", KEY_ARN, METADATA, huge_number), ROCKSET)
    assert [(f.code.value, f.severity) for f in report.findings] == [("POLICY_UNREADABLE", "critical")]


def test_rule10_an_evaluation_past_its_budget_is_reported_for_that_region() -> None:
    text = policy_text(rockset_statement(), admin_statement())
    report = assess_region(RegionObservation("us-east-1", KEY_ARN, METADATA, text), ROCKSET, budget_seconds=-1.0)
    assert [f.code.value for f in report.findings] == ["POLICY_UNREADABLE"]
    assert "budget" in report.findings[0].message
    with pytest.raises(BudgetExceeded):
        evaluate(parse_policy(text), Caller(ROCKSET_ACCOUNT), ("kms:Decrypt",), budget=Budget(-1.0))


def test_rule10_remediation_never_rewrites_a_policy_it_could_not_read() -> None:
    text = policy_text(admin_statement())
    report = assess_region(RegionObservation("us-east-1", KEY_ARN, METADATA, text), ROCKSET, budget_seconds=-1.0)
    assert plan_region(report, ROCKSET, mode="restore-statement", restore_key_state=True, baseline=None) is None
    assert plan_region(report, ROCKSET, mode="revert", restore_key_state=True, baseline=policy_text()) is None


# --- Rule 11: advice that holds ------------------------------------------------------------------------------------


def test_rule11_no_fix_policy_advice_where_fix_policy_would_refuse() -> None:
    from kms_guard.core.alerts import fix_commands

    maybe = deny(Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})
    text = policy_text(admin_statement(), maybe)
    result = assess_policy(parse_policy(text), ROCKSET)
    assert plan_restore_statement(text, ROCKSET).status == "refused"
    for finding in result.findings:
        assert not any("fix-policy" in line for line in fix_commands(finding, KEY_ARN, "us-west-2"))


def test_rule11_a_certain_deny_says_what_to_remove_and_that_the_guard_will_not() -> None:
    result = assess_policy(parse_policy(policy_text(rockset_statement(), deny(Action="kms:Decrypt"))), ROCKSET)
    (finding,) = result.findings
    assert finding.code.value == "ACTION_DENIED"
    assert "remove statement Hostile" in finding.message
    assert "will not repair" in finding.message
    assert "fix-policy refuses" in finding.message
