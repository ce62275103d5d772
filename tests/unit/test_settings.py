"""Settings: parsed once, every bad value named."""

from typing import Any

import pytest
from kms_guard.settings import SettingsError, build_settings, settings_from_env

ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def test_from_env_full() -> None:
    settings = settings_from_env(
        {
            "KMS_GUARD_KEY_ARN": ARN,
            "KMS_GUARD_REGIONS": "us-east-1, us-west-2",
            "KMS_GUARD_TOPIC_ARN": "arn:aws:sns:us-west-2:111122223333:alerts",
            "KMS_GUARD_STATE_TABLE": "kms-guard-state",
            "KMS_GUARD_REMEDIATION": "revert",
            "KMS_GUARD_RESTORE_KEY_STATE": "true",
            "KMS_GUARD_DRY_RUN": "false",
            "KMS_GUARD_TRUSTED_PRINCIPALS": "arn:aws:iam::111122223333:role/BreakGlass",
            "KMS_GUARD_VENDOR_ACCOUNT": "318212636800",
        }
    )
    assert settings.regions == ("us-west-2", "us-east-1")  # home first
    assert settings.remediation == "revert"
    assert settings.restore_key_state
    assert not settings.dry_run
    assert settings.trusted_principals == ("arn:aws:iam::111122223333:role/BreakGlass",)
    assert settings.region_key_arn("us-east-1") == ARN.replace("us-west-2", "us-east-1")


def test_defaults() -> None:
    settings = settings_from_env({"KMS_GUARD_KEY_ARN": ARN})
    assert settings.regions == ("us-west-2",)
    assert settings.remediation == "off"
    assert not settings.writes_enabled
    assert settings.vendor.account == "318212636800"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "KMS_GUARD_KEY_ARN: missing"),
        (
            {"KMS_GUARD_KEY_ARN": "arn:aws:kms:us-west-2:111122223333:alias/rockset"},
            "KMS_GUARD_KEY_ARN: alias ARNs are not supported; give the full key ARN",
        ),
        (
            {"KMS_GUARD_KEY_ARN": "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
            "not a multi-Region key",
        ),
        ({"KMS_GUARD_KEY_ARN": "mrk-123"}, "KMS_GUARD_KEY_ARN: not a KMS key ARN"),
        (
            {"KMS_GUARD_REGIONS": "us-east-1"},
            "KMS_GUARD_REGIONS: the Regions (us-east-1) must include the key's own Region us-west-2",
        ),
        ({"KMS_GUARD_REGIONS": "us-west-2,mars-1"}, "KMS_GUARD_REGIONS: not an AWS Region name: 'mars-1'"),
        ({"KMS_GUARD_REMEDIATION": "fix-it"}, "KMS_GUARD_REMEDIATION: unknown mode 'fix-it'"),
        ({"KMS_GUARD_RESTORE_KEY_STATE": "maybe"}, "KMS_GUARD_RESTORE_KEY_STATE: must be true or false"),
        ({"KMS_GUARD_DRY_RUN": "2"}, "KMS_GUARD_DRY_RUN: must be true or false"),
        ({"KMS_GUARD_TRUSTED_PRINCIPALS": "bob"}, "KMS_GUARD_TRUSTED_PRINCIPALS: not an IAM role or user ARN"),
        ({"KMS_GUARD_VENDOR_ACCOUNT": "31821263680"}, "KMS_GUARD_VENDOR_ACCOUNT: must be a 12-digit"),
        ({"KMS_GUARD_TOPIC_ARN": "alerts"}, "KMS_GUARD_TOPIC_ARN: not an SNS topic ARN"),
        ({"KMS_GUARD_STATE_TABLE": "a b"}, "KMS_GUARD_STATE_TABLE: not a DynamoDB table name"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    full = {"KMS_GUARD_KEY_ARN": ARN, **env} if env else {}
    with pytest.raises(SettingsError) as info:
        settings_from_env(full)
    assert message in str(info.value)


def test_cli_names_are_used_when_given() -> None:
    with pytest.raises(SettingsError, match="--remediation: unknown mode"):
        build_settings(key_arn=ARN, remediation="x", names={"remediation": "--remediation"})


def test_coverage_settings_from_env() -> None:
    settings = settings_from_env(
        {
            "KMS_GUARD_KEY_ARN": ARN,
            "KMS_GUARD_RULE_NAMES": "rule-a, rule-b",
            "KMS_GUARD_CHECK_INTERVAL_MINUTES": "60",
            "KMS_GUARD_CANARY_ROLE_ARN": "arn:aws:iam::111122223333:role/kms-guard-canary",
        }
    )
    assert settings.rule_names == ("rule-a", "rule-b")
    assert settings.check_interval_minutes == 60
    assert settings.canary_role_arn == "arn:aws:iam::111122223333:role/kms-guard-canary"
    assert settings.canary_max_age_seconds == (2 * 60 + 15) * 60


def test_coverage_defaults_name_the_deployed_rules_and_no_canary() -> None:
    from kms_guard.core.coverage import RULE_NAMES

    settings = settings_from_env({"KMS_GUARD_KEY_ARN": ARN, "KMS_GUARD_CANARY_ROLE_ARN": ""})
    assert settings.rule_names == RULE_NAMES
    assert settings.check_interval_minutes == 15
    assert settings.canary_role_arn is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KMS_GUARD_RULE_NAMES": "a rule"}, "KMS_GUARD_RULE_NAMES: not an EventBridge rule name"),
        ({"KMS_GUARD_CHECK_INTERVAL_MINUTES": "0"}, "KMS_GUARD_CHECK_INTERVAL_MINUTES: must be a whole number"),
        ({"KMS_GUARD_CHECK_INTERVAL_MINUTES": "15m"}, "KMS_GUARD_CHECK_INTERVAL_MINUTES: must be a whole number"),
        ({"KMS_GUARD_CANARY_ROLE_ARN": "kms-guard-canary"}, "KMS_GUARD_CANARY_ROLE_ARN: not an IAM role ARN"),
    ],
)
def test_bad_coverage_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env({"KMS_GUARD_KEY_ARN": ARN, **env})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trusted_principals", "arn:aws:iam::١١١١٢٢٢٢٣٣٣٣:role/BreakGlass"),  # Arabic-Indic digits: \d matched them
        ("trusted_principals", "arn:aws:iam::111122223333:role/Bréak"),  # \w matched any letter
        ("topic_arn", "arn:aws:sns:us-west-2:111122223333:alértes"),
        ("canary_role_arn", "arn:aws:iam::111122223333:role/kms-guard-canarÿ"),
    ],
)
def test_arns_are_ascii_as_aws_writes_them(field: str, value: str) -> None:
    """A trusted principal spelled with other scripts' digits or letters can never be the caller CloudTrail names: it
    would exempt nobody, silently. Refused, naming the setting."""
    options: dict[str, Any] = {field: value}
    with pytest.raises(SettingsError, match=f"^{field}: not an"):
        build_settings(key_arn=ARN, **options)
