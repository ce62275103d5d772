"""Security Hub findings (ASFF), EventBridge finding events and the second opinion: the pure parts, with plain data.

The AWS request shapes are checked against botocore's own service models (BatchImportFindings, PutEvents), so a
field name or type AWS would reject fails here, not in a customer's account.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from kms_guard.core.arns import KeyArn
from kms_guard.core.asff import batches, finding_id, remember_first_seen, securityhub_findings
from kms_guard.core.compliance import RegionObservation, assess_key
from kms_guard.core.finding_events import DETAIL_TYPE, SOURCE, finding_events, put_events_entries
from kms_guard.core.findings import KeyReport
from kms_guard.core.second_opinion import (
    GuardView,
    Opinion,
    OpinionResult,
    agrees,
    dispute,
    guard_view,
    opinion_from_response,
)
from kms_guard.core.vendor import ROCKSET

from tests.support import admin_statement, policy_text, rockset_statement

HOME, REPLICA = "us-west-2", "us-east-1"
KEY = KeyArn("aws", HOME, "111122223333", "mrk-1234abcd12ab34cd56ef1234567890ab")
GOOD = policy_text(admin_statement(), rockset_statement())
NO_DECRYPT = policy_text(
    admin_statement(), rockset_statement(actions=["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"])
)
T0 = 1_800_000_000.0


def report(policies: dict[str, str], states: dict[str, str] | None = None) -> KeyReport:
    observations = [
        RegionObservation(
            region,
            str(KEY.in_region(region)),
            {
                "KeyState": (states or {}).get(region, "Enabled"),
                "MultiRegion": True,
                "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT",
            },
            policy,
        )
        for region, policy in policies.items()
    ]
    return assess_key(str(KEY), observations, ROCKSET)


OK = report({HOME: GOOD, REPLICA: GOOD})
BROKEN = report({HOME: GOOD, REPLICA: NO_DECRYPT})
BROKEN_AND_DISABLED = report({HOME: GOOD, REPLICA: NO_DECRYPT}, {HOME: "Disabled"})


def stored(r: KeyReport, now: float = T0, previous: Any = ()) -> list[dict[str, Any]]:
    return remember_first_seen(r.findings, previous, now)


def validate(service: str, operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    assert model.input_shape is not None
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), report.generate_report()


# --- Security Hub ---------------------------------------------------------------------------------------------


def test_a_new_problem_creates_one_finding_per_region_and_code_in_the_service_models_shape() -> None:
    [finding] = securityhub_findings(KEY, ROCKSET, [], BROKEN, BROKEN, T0)
    validate("securityhub", "BatchImportFindings", {"Findings": [finding]})
    assert (
        finding["Id"]
        == f"kms-guard/{KEY.key_id}/{REPLICA}/ACTION_NOT_GRANTED"
        == finding_id(KEY, REPLICA, "ACTION_NOT_GRANTED")
    )
    assert finding["ProductArn"] == "arn:aws:securityhub:us-west-2:111122223333:product/111122223333/default"
    assert finding["AwsAccountId"] == "111122223333"
    assert finding["SchemaVersion"] == "2018-10-08"
    assert finding["CreatedAt"] == finding["UpdatedAt"] == "2027-01-15T08:00:00.000Z"
    assert finding["Severity"] == {"Label": "CRITICAL", "Original": "critical"}
    assert (finding["Compliance"], finding["RecordState"]) == ({"Status": "FAILED"}, "ACTIVE")
    [resource] = finding["Resources"]
    assert resource["Type"] == "AwsKmsKey"
    assert resource["Id"] == str(KEY.in_region(REPLICA))
    assert resource["Region"] == REPLICA
    assert resource["Details"]["AwsKmsKey"]["KeyState"] == "Enabled"
    text = finding["Remediation"]["Recommendation"]["Text"]
    assert f"aws kms put-key-policy --region {REPLICA} --key-id {KEY.in_region(REPLICA)}" in text
    assert "kms-guard fix-policy -" in text
    assert len(text) <= 512
    assert len(finding["Title"]) <= 256
    assert len(finding["Description"]) <= 1024
    assert "kms:Decrypt" in finding["Description"]


def test_nothing_is_imported_while_nothing_changes() -> None:
    assert securityhub_findings(KEY, ROCKSET, stored(BROKEN), BROKEN, BROKEN, T0 + 900) == []
    assert securityhub_findings(KEY, ROCKSET, [], OK, OK, T0) == []


def test_a_changed_finding_is_updated_under_the_same_id_keeping_when_it_was_created() -> None:
    before = stored(report({HOME: GOOD, REPLICA: policy_text(admin_statement())}))  # every action missing
    [finding] = securityhub_findings(KEY, ROCKSET, before, BROKEN, BROKEN, T0 + 900)
    assert finding["Id"].endswith(f"/{REPLICA}/ACTION_NOT_GRANTED")
    assert finding["CreatedAt"] == "2027-01-15T08:00:00.000Z"
    assert finding["UpdatedAt"] == "2027-01-15T08:15:00.000Z"
    assert finding["RecordState"] == "ACTIVE"


def test_a_cleared_finding_is_resolved_passed_and_archived() -> None:
    findings = securityhub_findings(KEY, ROCKSET, stored(BROKEN_AND_DISABLED), BROKEN, BROKEN, T0 + 60)
    [resolved] = findings
    validate("securityhub", "BatchImportFindings", {"Findings": findings})
    assert resolved["Id"].endswith(f"/{HOME}/KEY_DISABLED")
    assert resolved["Compliance"] == {"Status": "PASSED"}
    assert resolved["RecordState"] == "ARCHIVED"
    assert resolved["Severity"] == {"Label": "INFORMATIONAL", "Original": "critical"}
    assert resolved["CreatedAt"] == "2027-01-15T08:00:00.000Z"


def test_a_problem_repaired_in_the_same_evaluation_leaves_a_resolved_finding() -> None:
    [finding] = securityhub_findings(KEY, ROCKSET, [], BROKEN, OK, T0)
    assert finding["RecordState"] == "ARCHIVED"
    assert "the guard repaired it" in finding["Description"]


def test_imports_go_in_batches_of_at_most_100() -> None:
    assert [len(b) for b in batches([{"Id": str(i)} for i in range(250)])] == [100, 100, 50]


def test_first_seen_is_kept_for_a_lasting_finding_and_new_for_a_new_one() -> None:
    first = stored(BROKEN)
    later = remember_first_seen(BROKEN_AND_DISABLED.findings, first, T0 + 600)
    assert {(f["region"], f["code"]): f["first_seen"] for f in later} == {
        (REPLICA, "ACTION_NOT_GRANTED"): T0,
        (HOME, "KEY_DISABLED"): T0 + 600,
    }


# --- EventBridge ----------------------------------------------------------------------------------------------


def events(previous: Any, found: KeyReport, final: KeyReport | None = None) -> list[dict[str, Any]]:
    from kms_guard.core.alerts import fingerprint

    previous_fp = "compliant" if not previous else fingerprint(BROKEN.findings if previous == "broken" else ())
    items = stored(BROKEN) if previous == "broken" else []
    return finding_events(str(KEY), ROCKSET, items, previous_fp, found, final or found)


def test_a_new_problem_is_one_event_with_the_contracts_detail() -> None:
    [detail] = events(None, BROKEN)
    assert detail == {
        "key_arn": str(KEY),
        "vendor": "Rockset",
        "regions": [REPLICA],
        "verdict": "non-compliant",
        "previous_verdict": "compliant",
        "codes": ["ACTION_NOT_GRANTED"],
        "change": "problem",
    }
    entries = put_events_entries([detail], str(KEY))
    validate("events", "PutEvents", {"Entries": entries})
    assert entries[0]["Source"] == SOURCE == "kms-guard"
    assert entries[0]["DetailType"] == DETAIL_TYPE == "KMS Guard Finding"
    assert entries[0]["EventBusName"] == "default"
    assert json.loads(entries[0]["Detail"]) == detail


def test_no_event_without_a_change() -> None:
    assert events("broken", BROKEN) == []
    assert events(None, OK) == []


def test_changed_and_resolved_carry_the_previous_verdict_and_regions() -> None:
    [changed] = events("broken", BROKEN_AND_DISABLED)
    assert (changed["change"], changed["previous_verdict"], changed["regions"]) == (
        "changed",
        "non-compliant",
        [REPLICA, HOME],
    )
    [resolved] = events("broken", OK)
    assert (resolved["change"], resolved["verdict"], resolved["regions"], resolved["codes"]) == (
        "resolved",
        "compliant",
        [REPLICA],
        [],
    )


def test_a_repair_is_a_second_change() -> None:
    assert [(d["change"], d["previous_verdict"]) for d in events(None, BROKEN, OK)] == [
        ("problem", "compliant"),
        ("resolved", "non-compliant"),
    ]


# --- second opinion -------------------------------------------------------------------------------------------


def test_an_answer_in_the_service_models_shape_is_read_with_its_reasons() -> None:
    opinion = opinion_from_response(
        {
            "result": "FAIL",
            "message": "The policy document grants new access.",
            "reasons": [{"description": "New access in the statement", "statementIndex": 0, "statementId": "X"}],
        }
    )
    assert opinion.result == "FAIL"
    assert opinion.text() == (
        "FAIL: The policy document grants new access.: reasons: New access in the statement (statement X)"
    )
    assert opinion_from_response({"result": "MAYBE"}).result == "ERROR"


@pytest.mark.parametrize(
    ("policy", "view", "agrees_with"),
    [
        (GOOD, "granted", "PASS"),
        (NO_DECRYPT, "not-granted", "FAIL"),
        (
            policy_text(
                admin_statement(), {**rockset_statement(), "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
            ),
            "unproven",
            "FAIL",
        ),
    ],
)
def test_the_guards_view_agrees_with_one_answer_and_disputes_the_other(
    policy: str, view: GuardView, agrees_with: OpinionResult
) -> None:
    region_report = report({HOME: policy}).regions[0]
    assert guard_view(region_report) == view
    other: OpinionResult = "FAIL" if agrees_with == "PASS" else "PASS"
    assert agrees(view, Opinion(agrees_with)) is True
    assert dispute(region_report, Opinion(agrees_with), ROCKSET) is None
    disputed = dispute(region_report, Opinion(other, "because"), ROCKSET)
    assert disputed is not None
    assert disputed.code.value == "VERDICT_DISPUTED"
    assert disputed.severity == "warning"
    assert "CheckNoNewAccess says" in disputed.message
    assert f"{other}: because" in disputed.message
    assert dispute(region_report, Opinion("ERROR", "denied"), ROCKSET) is None


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_the_reported_verdict_of_stored_copies_is_the_verdict_of_the_findings(severity: str) -> None:
    """The state keeps `to_dict` copies; read back, they give the verdict the findings gave (one rule, not two)."""
    from kms_guard.core.finding_events import reported_verdict
    from kms_guard.core.findings import Code, Finding, verdict_of

    for code in Code:
        for findings in ([Finding(code, severity, "us-west-2", "m")], []):  # type: ignore[arg-type]
            copies = [f.to_dict() for f in findings]
            assert reported_verdict(copies) == verdict_of(findings), (code, severity)
