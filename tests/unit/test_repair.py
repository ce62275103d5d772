"""The repair planner: every remediation rule a plan can enforce, and properties over generated policies."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kms_guard.core.compliance import assess_policy
from kms_guard.core.findings import Verdict, verdict_of
from kms_guard.core.policy import MAX_POLICY_BYTES, PolicyError, parse_policy
from kms_guard.core.repair import _StatementSpans, plan_repair, plan_restore_statement, plan_revert
from kms_guard.core.vendor import ROCKSET

from tests.support import admin_statement, policy_text, rockset_statement
from tests.unit.test_evaluate import policies

SID = ROCKSET.statement_sid


def verdict(text: str) -> Verdict:
    return verdict_of(assess_policy(parse_policy(text), ROCKSET).findings)


def test_adds_a_guard_statement_when_the_grant_is_gone() -> None:
    before = policy_text(admin_statement())
    plan = plan_restore_statement(before, ROCKSET)
    assert plan.status == "repair"
    assert plan.policy is not None
    assert plan.added_actions == ROCKSET.concrete_actions
    assert verdict(plan.policy) == "compliant"
    added = json.loads(plan.policy)["Statement"][-1]
    assert added == {
        "Sid": SID,
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::318212636800:root"},
        "Action": list(ROCKSET.concrete_actions),
        "Resource": "*",
    }


def test_keeps_every_other_statement_byte_for_byte() -> None:
    # Odd but valid formatting: a naive re-serialisation would change these bytes.
    before = (
        '{\n  "Version" : "2012-10-17",\n  "Statement" : [ {"Sid":"Admin","Effect":"Allow",'
        '"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},\n'
        '    { "Sid" : "Partial",  "Effect" : "Allow", "Principal" : { "AWS" : "318212636800" },'
        ' "Action" : [ "kms:Encrypt" ], "Resource" : "*" } ]\n}'
    )
    plan = plan_restore_statement(before, ROCKSET)
    assert plan.status == "repair"
    assert plan.policy is not None
    spans_before = _StatementSpans.locate(before).item_texts()
    spans_after = _StatementSpans.locate(plan.policy).item_texts()
    assert spans_after[:2] == spans_before
    last_end = _StatementSpans.locate(before).items[-1][1]
    assert plan.policy.startswith(before[:last_end])  # everything up to the last statement, untouched
    assert plan.policy.endswith(before[last_end:])  # and everything after it


def test_extends_the_guard_owned_statement_instead_of_adding_another() -> None:
    owned = rockset_statement(SID, actions=["kms:Encrypt", "kms:DescribeKey"])
    before = policy_text(admin_statement(), owned)
    plan = plan_restore_statement(before, ROCKSET)
    assert plan.policy is not None
    statements = json.loads(plan.policy)["Statement"]
    assert len(statements) == 2
    assert statements[0] == admin_statement()
    assert statements[1]["Sid"] == SID
    assert set(statements[1]["Action"]) == {"kms:Encrypt", "kms:DescribeKey", *plan.added_actions}
    assert "kms:Encrypt" not in plan.added_actions
    assert verdict(plan.policy) == "compliant"


def test_resets_a_guard_owned_statement_that_someone_made_conditional() -> None:
    owned = rockset_statement(SID)
    owned["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    plan = plan_restore_statement(policy_text(admin_statement(), owned), ROCKSET)
    assert plan.status == "repair"
    assert plan.policy is not None
    assert "Condition" not in json.loads(plan.policy)["Statement"][1]
    assert "canonical form" in plan.description


def test_statement_as_object_becomes_a_list_with_the_original_kept() -> None:
    before = '{"Version": "2012-10-17", "Statement": ' + json.dumps(admin_statement()) + "}"
    plan = plan_restore_statement(before, ROCKSET)
    assert plan.status == "repair"
    assert plan.policy is not None
    assert json.dumps(admin_statement()) in plan.policy
    assert verdict(plan.policy) == "compliant"


def test_already_compliant_is_not_rewritten() -> None:
    plan = plan_restore_statement(policy_text(admin_statement(), rockset_statement()), ROCKSET)
    assert plan.status == "already-compliant"
    assert plan.policy is None


def test_refuses_when_an_explicit_deny_blocks_the_vendor_and_names_it() -> None:
    deny = {"Sid": "NoDecryptOutsideOrg", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    plan = plan_restore_statement(policy_text(admin_statement(), deny), ROCKSET)
    assert plan.status == "refused"
    assert "NoDecryptOutsideOrg" in plan.description
    assert plan.policy is None


def test_refuses_when_a_conditional_deny_may_block_the_vendor() -> None:
    deny = {
        "Sid": "IpFence",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    plan = plan_restore_statement(policy_text(rockset_statement(), deny), ROCKSET)
    assert plan.status == "refused"
    assert "IpFence" in plan.description


def test_refuses_a_deny_that_carries_the_guard_sid() -> None:
    deny = {"Sid": SID, "Effect": "Deny", "Principal": {"AWS": "999988887777"}, "Action": "kms:*", "Resource": "*"}
    plan = plan_restore_statement(policy_text(admin_statement(), deny), ROCKSET)
    assert plan.status == "refused"
    assert "never changes a Deny" in plan.description


def test_refuses_a_repair_over_32_kb() -> None:
    filler = [
        {
            "Sid": f"Filler{i}",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::111122223333:role/r{i:04d}"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
        }
        for i in range(200)
    ]
    before = policy_text(*filler, indent=None)
    before = before[:-1] + " " * (MAX_POLICY_BYTES - 20 - len(before)) + "}"  # valid, just under the limit
    assert MAX_POLICY_BYTES - 100 < len(before.encode()) <= MAX_POLICY_BYTES
    plan = plan_restore_statement(before, ROCKSET)
    assert plan.status == "refused"
    assert "32768" in plan.description


def test_bad_input_raises_policy_error() -> None:
    with pytest.raises(PolicyError):
        plan_restore_statement("not json", ROCKSET)


# --- revert ----------------------------------------------------------------------------------------------------

BASELINE = policy_text(admin_statement(), rockset_statement())


def test_revert_puts_back_the_recorded_policy_exactly() -> None:
    current = policy_text(admin_statement(), rockset_statement(actions=["kms:Encrypt"]))
    plan = plan_revert(current, BASELINE, ROCKSET)
    assert plan.status == "repair"
    assert plan.policy == BASELINE
    assert "RocksetAccess" in plan.description


def test_revert_without_a_baseline_falls_back_to_restore_statement() -> None:
    plan = plan_repair("revert", policy_text(admin_statement()), ROCKSET, baseline=None)
    assert plan.mode == "revert"
    assert plan.status == "repair"
    assert plan.policy is not None
    assert "no compliant policy has been recorded" in plan.description
    assert any(s.get("Sid") == SID for s in json.loads(plan.policy)["Statement"])


def test_revert_never_removes_a_deny_added_since_and_falls_back() -> None:
    unrelated_deny = {
        "Sid": "NoDeleteForDevs",
        "Effect": "Deny",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/dev"},
        "Action": "kms:ScheduleKeyDeletion",
        "Resource": "*",
    }
    current = policy_text(admin_statement(), unrelated_deny)
    plan = plan_repair("revert", current, ROCKSET, baseline=BASELINE)
    assert plan.status == "repair"
    assert plan.policy is not None
    assert "NoDeleteForDevs" in plan.description
    assert unrelated_deny in json.loads(plan.policy)["Statement"]


def test_revert_refuses_when_a_deny_blocks_the_vendor() -> None:
    deny = {"Sid": "Block", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    plan = plan_repair("revert", policy_text(rockset_statement(), deny), ROCKSET, baseline=BASELINE)
    assert plan.status == "refused"
    assert "Block" in plan.description


def test_revert_refuses_a_baseline_that_is_not_compliant() -> None:
    plan = plan_revert(policy_text(admin_statement()), policy_text(admin_statement()), ROCKSET)
    assert plan.status == "refused"
    assert "baseline" in plan.description


def test_revert_of_a_compliant_policy_does_nothing() -> None:
    assert plan_revert(BASELINE, BASELINE, ROCKSET).status == "already-compliant"


# --- properties --------------------------------------------------------------------------------------------------


def _deny_texts(text: str) -> list[str]:
    doc = json.loads(text)
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    return [json.dumps(s, sort_keys=True) for s in statements if s["Effect"] == "Deny"]


@settings(max_examples=300, deadline=None)
@given(policies, st.sampled_from([None, 2, 4]))
def test_fix_never_changes_or_drops_a_statement_it_does_not_own_and_never_weakens_a_deny(
    doc: dict[str, Any], indent: int | None
) -> None:
    before = json.dumps(doc, indent=indent)
    plan = plan_restore_statement(before, ROCKSET)
    if plan.status != "repair":
        assert plan.policy is None
        return
    assert plan.policy is not None
    before_items = _StatementSpans.locate(before).item_texts()
    after_items = _StatementSpans.locate(plan.policy).item_texts()
    owned = [i for i, s in enumerate(doc["Statement"]) if s.get("Sid") == SID]
    for i, text in enumerate(before_items):
        if i not in owned:
            assert text in after_items
    assert _deny_texts(plan.policy) == _deny_texts(before)
    assert len(plan.policy.encode()) <= MAX_POLICY_BYTES
    assert not assess_policy(parse_policy(plan.policy), ROCKSET).missing


@settings(max_examples=200, deadline=None)
@given(policies)
def test_fix_repairs_every_policy_without_a_deny_against_the_vendor(doc: dict[str, Any]) -> None:
    before = json.dumps(doc)
    result = assess_policy(parse_policy(before), ROCKSET)
    if any(d.denied_by or d.maybe_denied_by for d in result.decisions.values()):
        return
    plan = plan_restore_statement(before, ROCKSET)
    if any(f.code.value == "POLICY_INVALID" for f in result.findings):
        # What KMS would reject (here NotPrincipal with Allow) is never printed: the plan is refused (issue 10).
        assert plan.status == "refused"
        assert plan.refusal == "policy-invalid"
        return
    if plan.status == "repair":
        assert plan.policy is not None
        findings = assess_policy(parse_policy(plan.policy), ROCKSET).findings
        assert verdict_of(findings) == "compliant"
    else:
        assert plan.status == "already-compliant"
        assert verdict_of(result.findings) == "compliant"


def test_refusals_carry_a_reason_callers_act_on_not_just_words() -> None:
    deny = {
        "Sid": "NoDeleteForDevs",
        "Effect": "Deny",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/dev"},
        "Action": "kms:ScheduleKeyDeletion",
        "Resource": "*",
    }
    direct = plan_revert(policy_text(admin_statement(), deny), BASELINE, ROCKSET)
    assert (direct.status, direct.refusal) == ("refused", "deny-would-change")
    blocking = {"Sid": "B", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    assert plan_restore_statement(policy_text(admin_statement(), blocking), ROCKSET).refusal == "deny-blocks-vendor"
    assert plan_repair("revert", policy_text(admin_statement()), ROCKSET, baseline=BASELINE).refusal is None


def test_revert_without_a_baseline_keeps_the_refusal_reason_when_a_deny_blocks_the_vendor() -> None:
    """The fallback from revert to restore-statement must not drop why the repair was refused."""
    deny = {"Sid": "Block", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    plan = plan_repair("revert", policy_text(admin_statement(), deny), ROCKSET, baseline=None)
    assert plan.status == "refused"
    assert plan.refusal == "deny-blocks-vendor"
    assert plan.policy is None
    assert "no compliant policy has been recorded" in plan.description
    assert "Block" in plan.description
