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
    assert config.schedule_minutes == 15


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


def test_cron_schedule_is_accepted() -> None:
    config = config_from_context({"keyArn": KEY_ARN, "checkSchedule": "cron(0/10 * * * ? *)"})
    assert config.schedule_minutes == 60  # cron: the missing-check alarm assumes hourly


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
