"""The named policy corpus: each file under tests/policies/ carries its expected verdict and actions."""

import pytest
from kms_guard.core.compliance import assess_policy
from kms_guard.core.findings import verdict_of
from kms_guard.core.policy import parse_policy_document
from kms_guard.core.vendor import ROCKSET

from tests.support import load_policy_case, policy_case_names

CASES = policy_case_names()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", CASES)
def test_policy_case(name: str) -> None:
    case = load_policy_case(name)
    expect = case["expect"]

    result = assess_policy(parse_policy_document(case["policy"]), ROCKSET, key_arn=case.get("key_arn"))

    assert verdict_of(result.findings) == expect["verdict"], case["description"]
    assert sorted(result.missing) == expect["missing"], case["description"]
    assert sorted(result.conditional) == expect["conditional"], case["description"]
    assert sorted({f.code.value for f in result.findings}) == expect["codes"], case["description"]


@pytest.mark.parametrize("name", CASES)
def test_every_finding_names_what_it_is_about(name: str) -> None:
    result = assess_policy(parse_policy_document(load_policy_case(name)["policy"]), ROCKSET)
    for finding in result.findings:
        assert finding.message
        if finding.code.value in ("ACTION_DENIED", "GRANT_CONDITIONAL", "PUBLIC_PRINCIPAL"):
            assert finding.statement, f"{finding.code} must name its statement"
        if finding.code.value in ("ACTION_DENIED", "ACTION_NOT_GRANTED", "GRANT_CONDITIONAL"):
            assert finding.actions
