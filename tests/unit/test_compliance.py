"""Key compliance for every key state and property in requirements.md."""

from typing import Any

import pytest
from kms_guard.core.compliance import RegionObservation, assess_key, assess_region
from kms_guard.core.findings import RegionReport
from kms_guard.core.vendor import ROCKSET

from tests.support import admin_statement, policy_text, rockset_statement

ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
GOOD_POLICY = policy_text(admin_statement(), rockset_statement())


def metadata(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab",
        "Arn": ARN,
        "KeyState": "Enabled",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "MultiRegion": True,
    }
    base.update(overrides)
    return base


def observe(policy: str = GOOD_POLICY, region: str = "us-west-2", **meta: Any) -> RegionObservation:
    return RegionObservation(region, ARN.replace("us-west-2", region), metadata(**meta), policy)


def codes(report: RegionReport) -> list[str]:
    return sorted(f.code.value for f in report.findings)


def test_compliant_key() -> None:
    report = assess_region(observe(), ROCKSET)
    assert report.verdict == "compliant"
    assert report.findings == ()
    assert report.key_state == "Enabled"


@pytest.mark.parametrize("state", ["Enabled", "Updating"])
def test_usable_states(state: str) -> None:
    assert assess_region(observe(KeyState=state), ROCKSET).verdict == "compliant"


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("Disabled", "KEY_DISABLED"),
        ("PendingDeletion", "KEY_PENDING_DELETION"),
        ("PendingReplicaDeletion", "KEY_PENDING_DELETION"),
        ("PendingImport", "KEY_UNUSABLE"),
        ("Unavailable", "KEY_UNUSABLE"),
        ("Creating", "KEY_UNUSABLE"),
        ("SomeFutureState", "KEY_UNUSABLE"),
    ],
)
def test_unusable_states_are_critical(state: str, code: str) -> None:
    report = assess_region(observe(KeyState=state), ROCKSET)
    assert codes(report) == [code]
    assert report.verdict == "non-compliant"
    assert report.findings[0].severity == "critical"
    assert report.findings[0].region == "us-west-2"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"MultiRegion": False}, "KEY_NOT_MULTI_REGION"),
        ({"KeySpec": "RSA_2048"}, "KEY_SPEC_INVALID"),
        ({"KeySpec": "HMAC_256"}, "KEY_SPEC_INVALID"),
        ({"KeyUsage": "SIGN_VERIFY"}, "KEY_USAGE_INVALID"),
        ({"KeyUsage": "GENERATE_VERIFY_MAC"}, "KEY_USAGE_INVALID"),
    ],
)
def test_key_properties(overrides: dict[str, Any], code: str) -> None:
    report = assess_region(observe(**overrides), ROCKSET)
    assert codes(report) == [code]
    assert report.verdict == "non-compliant"


def test_older_describe_key_answers_with_customer_master_key_spec_only() -> None:
    meta = metadata()
    del meta["KeySpec"]
    meta["CustomerMasterKeySpec"] = "SYMMETRIC_DEFAULT"
    report = assess_region(RegionObservation("us-west-2", ARN, meta, GOOD_POLICY), ROCKSET)
    assert report.verdict == "compliant"


def test_missing_replica_is_never_compliant() -> None:
    report = assess_region(RegionObservation("eu-west-1", ARN, not_found=True), ROCKSET)
    assert codes(report) == ["KEY_NOT_FOUND"]
    assert report.verdict == "non-compliant"
    assert report.key_state is None


def test_unreadable_key_is_never_compliant() -> None:
    report = assess_region(RegionObservation("us-west-2", ARN, error="AccessDeniedException"), ROCKSET)
    assert codes(report) == ["POLICY_UNREADABLE"]
    assert "AccessDeniedException" in report.findings[0].message
    assert report.verdict == "non-compliant"


def test_unreadable_policy_with_readable_metadata_still_reports_state() -> None:
    obs = RegionObservation("us-west-2", ARN, metadata(KeyState="Disabled"), None, error="ThrottlingException")
    assert codes(assess_region(obs, ROCKSET)) == ["KEY_DISABLED", "POLICY_UNREADABLE"]


def test_unparseable_live_policy_is_unreadable_not_compliant() -> None:
    report = assess_region(observe(policy="{not json"), ROCKSET)
    assert codes(report) == ["POLICY_UNREADABLE"]
    assert "not valid JSON" in report.findings[0].message


def test_policy_findings_carry_the_region() -> None:
    report = assess_region(observe(policy=policy_text(admin_statement()), region="us-east-1"), ROCKSET)
    assert codes(report) == ["ACTION_NOT_GRANTED"]
    assert report.findings[0].region == "us-east-1"


def test_resource_is_matched_against_the_regions_own_key_arn() -> None:
    stmt = rockset_statement()
    stmt["Resource"] = ARN  # names the us-west-2 key: applies there, not to the us-east-1 replica
    assert assess_region(observe(policy=policy_text(stmt)), ROCKSET).verdict == "compliant"
    assert assess_region(observe(policy=policy_text(stmt), region="us-east-1"), ROCKSET).verdict == "non-compliant"


def test_key_verdict_is_the_worst_region() -> None:
    report = assess_key(
        ARN,
        [observe(), observe(region="us-east-1", KeyState="Disabled"), observe(region="eu-west-1")],
        ROCKSET,
    )
    assert [r.verdict for r in report.regions] == ["compliant", "non-compliant", "compliant"]
    assert report.verdict == "non-compliant"
    assert report.to_dict()["regions"][1]["findings"][0]["code"] == "KEY_DISABLED"


def test_at_risk_beats_compliant_but_not_non_compliant() -> None:
    conditional = rockset_statement()
    conditional["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    at_risk = observe(policy=policy_text(conditional), region="us-east-1")
    assert assess_key(ARN, [observe(), at_risk], ROCKSET).verdict == "at-risk"
    assert (
        assess_key(ARN, [at_risk, observe(region="eu-west-1", KeyState="Disabled")], ROCKSET).verdict == "non-compliant"
    )


def test_public_principal_is_a_warning_that_keeps_the_key_compliant() -> None:
    stmt = rockset_statement()
    stmt["Principal"] = "*"
    report = assess_region(observe(policy=policy_text(stmt)), ROCKSET)
    assert codes(report) == ["PUBLIC_PRINCIPAL"]
    assert report.findings[0].severity == "warning"
    assert report.verdict == "compliant"


def test_another_vendor_account_is_a_value_not_code() -> None:
    other = ROCKSET.with_account("999988887777")
    report = assess_region(observe(), other)
    assert report.verdict == "non-compliant"
    assert "999988887777" in report.findings[0].message


def test_vendor_account_is_validated() -> None:
    with pytest.raises(ValueError, match="12 digits"):
        ROCKSET.with_account("12345")
