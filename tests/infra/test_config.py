"""Configuration is validated at synth with one clear line per problem, and no AWS call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, config_from_context
from tests.infra.conftest import KEY_ARN


def problems(**context: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_context(context)
    return info.value.problems


def test_valid_config_and_defaults() -> None:
    config = config_from_context({"keyArn": KEY_ARN, "regions": "us-east-1,us-west-2"})
    assert config.account == "111122223333"
    assert config.home_region == "us-west-2"
    assert config.regions == ("us-west-2", "us-east-1")
    assert config.other_regions == ("us-east-1",)
    assert config.remediation == "off"
    assert not config.restore_key_state
    assert config.check_schedule == "rate(15 minutes)"
    assert config.vendor_account == "318212636800"
    assert config.heartbeat.interval_minutes == 15


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({}, "keyArn: required"),
        (
            {"keyArn": "arn:aws:kms:us-west-2:111122223333:alias/rockset"},
            "keyArn: alias ARNs are not supported; give the full key ARN",
        ),
        (
            {"keyArn": "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
            "keyArn: key 1234abcd-12ab-34cd-56ef-1234567890ab is not a multi-Region key",
        ),
        ({"keyArn": "arn:aws:kms:us-west-2:1111:key/mrk-1"}, "keyArn: not a KMS key ARN"),
        (
            {"keyArn": KEY_ARN, "regions": ["us-east-1"]},
            "regions: the Regions (us-east-1) must include the key's own Region us-west-2",
        ),
        ({"keyArn": KEY_ARN, "regions": 5}, "regions: must be a list of strings"),
        (
            {"keyArn": KEY_ARN, "remediation": "auto"},
            "remediation: unknown mode 'auto' (one of off, restore-statement, revert)",
        ),
        (
            {"keyArn": KEY_ARN, "alertEmails": "security-at-example.com"},
            "alertEmails: not an email address: 'security-at-example.com'",
        ),
        (
            {"keyArn": KEY_ARN, "checkSchedule": "every 15 minutes"},
            "checkSchedule: not an EventBridge schedule expression",
        ),
        ({"keyArn": KEY_ARN, "checkSchedule": "rate(0 minutes)"}, "checkSchedule: the rate must be at least 1"),
        ({"keyArn": KEY_ARN, "restoreKeyState": "yes please"}, "restoreKeyState: must be true or false"),
        ({"keyArn": KEY_ARN, "dryRun": 3}, "dryRun: must be true or false"),
        ({"keyArn": KEY_ARN, "vendorAccount": "rockset"}, "vendorAccount: must be a 12-digit AWS account ID"),
        ({"keyArn": KEY_ARN, "trustedPrincipals": "alice"}, "trustedPrincipals: not an IAM role or user ARN"),
    ],
)
def test_each_bad_value_has_one_clear_message(context: dict[str, Any], message: str) -> None:
    found = problems(**context)
    assert any(message in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(keyArn=KEY_ARN, remediation="x", alertEmails="nope", checkSchedule="soon")
    assert [p.split(":")[0] for p in found] == ["alertEmails", "remediation", "checkSchedule"]


def test_accepts_cdk_json_types_and_cli_strings_alike() -> None:
    a = config_from_context({"keyArn": KEY_ARN, "regions": ["us-west-2", "us-east-1"], "restoreKeyState": True})
    b = config_from_context({"keyArn": KEY_ARN, "regions": "us-west-2,us-east-1", "restoreKeyState": "true"})
    assert a == b


@pytest.mark.parametrize(
    ("schedule", "minutes"),
    [
        ("rate(1 minute)", 1),
        ("rate(2 hours)", 120),
        ("rate(3 days)", 3 * 1440),
        ("cron(0/10 * * * ? *)", 10),  # not "assumed hourly"
        ("cron(5,35 */2 * * ? *)", 90),  # the longest gap, :35 to the next even hour's :05
        ("cron(30 4 * * ? *)", 1440),  # daily
        ("cron(0 9 ? * MON-FRI *)", 3 * 1440),  # weekdays: Friday to Monday
        ("cron(0 0/6 ? * 1,4 *)", 3 * 1440 + 6 * 60),  # Sunday and Wednesday: Wednesday 18:00 to Sunday 00:00
    ],
)
def test_schedule_interval_comes_from_rate_and_cron_alike(schedule: str, minutes: int) -> None:
    config = config_from_context({"keyArn": KEY_ARN, "checkSchedule": schedule})
    assert config.heartbeat.interval_minutes == minutes


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("rate(4 days)", "checkSchedule: the heartbeat alarm cannot watch 'rate(4 days)'"),
        ("cron(0 3 ? * SUN *)", "checkSchedule: the heartbeat alarm cannot watch 'cron(0 3 ? * SUN *)'"),
        ("cron(0 0 1 * ? *)", "checkSchedule: the heartbeat alarm cannot watch 'cron(0 0 1 * ? *)'"),
        ("cron(0 0 ? * 2#1 *)", "checkSchedule: the heartbeat alarm cannot watch 'cron(0 0 ? * 2#1 *)'"),
        ("cron(0 0 * * * *)", "one of day-of-month and day-of-week must be '?'"),
        ("cron(0 25 * * ? *)", "25 is outside 0-23"),
    ],
)
def test_a_schedule_the_heartbeat_cannot_watch_is_one_clear_problem(schedule: str, message: str) -> None:
    found = problems(keyArn=KEY_ARN, checkSchedule=schedule)
    assert len(found) == 1
    assert message in found[0]
    assert "\n" not in found[0]


@pytest.mark.parametrize(
    "key_arn",
    [
        "arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws-us-gov:kms:us-gov-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ],
)
def test_keys_in_partitions_where_powertools_is_published_are_accepted(key_arn: str) -> None:
    assert config_from_context({"keyArn": key_arn}).key.partition != "aws"


def test_a_home_region_without_a_powertools_layer_is_one_clear_problem() -> None:
    found = problems(keyArn="arn:aws-cn:kms:cn-northwest-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab")
    assert found == [
        "keyArn: no AWS-published Powertools layer is known in cn-northwest-1 (partition aws-cn; Regions known there: "
        "cn-north-1); deploy the functions' home Region where AWS publishes it"
    ]


def test_app_reports_problems_one_per_line_without_traceback(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_CONTEXT_JSON": json.dumps({"keyArn": "arn:aws:kms:us-west-2:111122223333:alias/x", "remediation": "auto"}),
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "app.py"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("kms-guard configuration:")]
    assert lines == [
        "kms-guard configuration: keyArn: alias ARNs are not supported; give the full key ARN",
        "kms-guard configuration: remediation: unknown mode 'auto' (one of off, restore-statement, revert)",
    ]
    assert "Traceback" not in result.stderr


def test_cdk_json_defaults_never_override_the_chosen_vendors_account() -> None:
    """cdk.json's context is merged under every `-c`: a default vendorAccount there (Rockset's) silently replaced
    the account of any other vendor chosen with `-c vendor=...`."""
    defaults = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
    assert "vendorAccount" not in defaults
    config = config_from_context({**defaults, "keyArn": KEY_ARN, "vendor": "databricks-managed-services"})
    assert config.vendor_account != "318212636800"
