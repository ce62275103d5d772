"""Issue 10, rule 10, through the whole guard on moto: a hostile live policy in one Region blinds only that Region.

moto does not validate key policies (aws-facts.md), which is what lets these tests store what KMS itself might refuse;
the guard must cope with whatever GetKeyPolicy returns.
"""

from __future__ import annotations

import json

from tests.functional.conftest import GOOD_POLICY, HOME, REPLICA, Account


def test_a_huge_number_in_one_regions_policy_is_that_regions_finding_and_the_others_are_still_evaluated(
    account: Account,
) -> None:
    hostile = json.loads(GOOD_POLICY)
    hostile["Id"] = "x"
    text = json.dumps(hostile).replace('"x"', "9" * 5000)
    account.kms(REPLICA).put_key_policy(KeyId=account.arn_in(REPLICA), PolicyName="default", Policy=text)

    result = account.guard(remediation="restore-statement").handle(account.event("scheduled-check"))

    assert result.report is not None
    home, replica = result.report.region(HOME), result.report.region(REPLICA)
    assert home is not None
    assert replica is not None
    assert home.verdict == "compliant"
    assert [(f.code.value, f.severity) for f in replica.findings] == [("POLICY_UNREADABLE", "critical")]
    assert account.policy(REPLICA) == text  # never rewritten: the guard could not read it
    assert account.delivered_alerts()


def test_a_many_star_pattern_in_a_live_policy_is_evaluated_without_stalling(account: Account) -> None:
    hostile = json.loads(GOOD_POLICY)
    hostile["Statement"].append(
        {"Sid": "Stars", "Effect": "Deny", "Principal": "*", "Action": ["kms:" + "*" * 40 + "q"], "Resource": "*"}
    )
    account.kms(REPLICA).put_key_policy(KeyId=account.arn_in(REPLICA), PolicyName="default", Policy=json.dumps(hostile))

    result = account.guard().handle(account.event("scheduled-check"))

    assert result.report is not None
    assert result.report.verdict == "compliant"
