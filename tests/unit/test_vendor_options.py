"""The vendor everywhere: CLI options on every command, `kms-guard vendors`, settings/env, CDK context, wording."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from kms_guard.core import profiles
from kms_guard.core.alerts import render_alert
from kms_guard.core.compliance import RegionObservation, assess_key
from kms_guard.settings import SettingsError, encode_profile, settings_from_env
from kms_guard_cli.main import run

from infra.config import ConfigError, config_from_context

VENDORS = Path(__file__).resolve().parents[1] / "vendors"
KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
ROLE = "arn:aws:iam::999900001111:role/CH-Encryption-abc123"


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def policy_path(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(json.loads((VENDORS / f"{name}.json").read_text())["policy"], indent=2))
    return str(path)


def test_check_policy_takes_the_vendor(tmp_path: Path) -> None:
    path = policy_path(tmp_path, "elastic")
    code, out, _ = call("check-policy", path, "--vendor", "elastic", "--key-arn", KEY_ARN)
    assert code == 0
    assert out.startswith("COMPLIANT: key policy for Elastic Cloud")
    assert "Rockset" not in out
    code, out, _ = call("check-policy", path, "--key-arn", KEY_ARN)  # the default vendor is still Rockset
    assert code == 1


def test_roles_are_asked_for_and_taken(tmp_path: Path) -> None:
    path = policy_path(tmp_path, "clickhouse")
    code, _, err = call("check-policy", path, "--vendor", "clickhouse")
    assert code == 2
    assert err.startswith("kms-guard: error: clickhouse: the per-service Encryption role ARN is needed: --vendor-role")
    code, out, _ = call("check-policy", path, "--vendor", "clickhouse", "--vendor-role", ROLE, "--output", "json")
    assert code == 0
    assert json.loads(out)["verdict"] == "compliant"


def test_fix_policy_restores_the_vendor_statement(tmp_path: Path) -> None:
    path = tmp_path / "bare.json"
    admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": [{**admin, "Action": "kms:*", "Resource": "*"}]}))
    argv = ["fix-policy", str(path), "--vendor", "tidb", "--vendor-account", "777700003333", "--key-arn", KEY_ARN]
    code, out, err = call(*argv)
    assert code == 0, err
    sids = [s["Sid"] for s in json.loads(out)["Statement"]]
    assert sids == ["Admin", "KmsGuardTidbEbs", "KmsGuardTidbBackup"]
    assert "ec2.us-west-2.amazonaws.com" in out


def test_statement_prints_the_pinned_wildcard() -> None:
    code, out, _ = call("statement", "--vendor", "elastic", "--output", "json")
    assert code == 0
    [statement] = json.loads(out)["statements"]
    assert statement["Principal"] == {"AWS": "*"}
    assert "aws:PrincipalOrgPaths" in statement["Condition"]["ForAnyValue:StringLike"]
    code, _, err = call("statement", "--vendor", "tidb", "--vendor-account", "777700003333")
    assert code == 2
    assert "kms:ViaService needs the key's Region" in err


def test_user_profile_file(tmp_path: Path) -> None:
    doc = profiles.shipped("elastic").raw
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({**doc, "name": "acme", "displayName": "Acme"}))
    code, out, _ = call("statement", "--vendor-profile", str(path))
    assert code == 0
    assert "Acme's grant" in out
    path.write_text(json.dumps({**doc, "format": 2}))
    code, _, err = call("vendors", "--vendor-profile", str(path))
    assert (code, err.strip()) == (2, f"kms-guard: error: {path}: format: must be 1")
    code, _, err = call("statement", "--vendor", "elastic", "--vendor-profile", str(path))
    assert "give one, not both" in err


def test_vendors_lists_every_profile() -> None:
    code, out, _ = call("vendors", "--output", "json")
    assert code == 0
    listed = json.loads(out)["vendors"]
    assert [v["name"] for v in listed] == list(profiles.SHIPPED)
    for item in listed:
        assert {"name", "display_name", "status", "grants", "key_rules", "regions", "outage", "sources"} <= set(item)
    code, out, _ = call("vendors")
    assert "elastic: Elastic Cloud, active" in out
    assert "outage: within 30 minutes: Elastic locks" in out
    assert "unconfirmed grants[0].roles: the per-service Encryption role ARN is needed" in out


@pytest.mark.parametrize("command", ["check", "handle-event"])
def test_live_commands_take_the_vendor_options(command: str, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")
    argv = [command, *([str(event)] if command == "handle-event" else []), "--key-arn", KEY_ARN]
    code, _, err = call(*argv, "--vendor", "confluent")
    assert code == 2
    assert "--vendor-role ARN" in err


def test_settings_from_env() -> None:
    base = {"KMS_GUARD_KEY_ARN": KEY_ARN}
    assert settings_from_env(base).vendor.name == "rockset"
    settings = settings_from_env({**base, "KMS_GUARD_VENDOR": "clickhouse", "KMS_GUARD_VENDOR_ROLES": ROLE})
    assert settings.vendor.roles == (ROLE,)
    with pytest.raises(SettingsError, match="KMS_GUARD_VENDOR: unknown vendor 'nope'"):
        settings_from_env({**base, "KMS_GUARD_VENDOR": "nope"})
    with pytest.raises(SettingsError, match="needed: KMS_GUARD_VENDOR_ROLES ARN"):
        settings_from_env({**base, "KMS_GUARD_VENDOR": "clickhouse"})
    encoded = encode_profile(profiles.shipped("elastic"))
    assert settings_from_env({**base, "KMS_GUARD_VENDOR_PROFILE": encoded}).vendor.display_name == "Elastic Cloud"


def test_cdk_context_sets_the_vendor_env(tmp_path: Path) -> None:
    config = config_from_context({"keyArn": KEY_ARN, "vendor": "clickhouse", "vendorRoles": ROLE})
    env = config.environment("arn:aws:sns:us-west-2:111122223333:t", "table")
    assert env["KMS_GUARD_VENDOR"] == "clickhouse"
    assert env["KMS_GUARD_VENDOR_ROLES"] == ROLE
    assert "KMS_GUARD_VENDOR_ACCOUNT" not in env
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({**profiles.shipped("confluent").raw, "name": "acme"}))
    config = config_from_context({"keyArn": KEY_ARN, "vendorProfile": str(path), "vendorRoles": ROLE})
    env = config.environment("arn:aws:sns:us-west-2:111122223333:t", "table")
    assert settings_from_env(env).vendor.name == "acme"
    assert sum(len(k) + len(v) for k, v in env.items()) < 4096
    with pytest.raises(ConfigError) as info:
        config_from_context({"keyArn": KEY_ARN, "vendor": "clickhouse"})
    assert info.value.problems == [
        "clickhouse: the per-service Encryption role ARN is needed: vendorRoles ARN (ClickHouse Cloud console, "
        'Service Settings, "Encryption role ID (AWS)")'
    ]


def test_a_profile_too_large_for_the_environment_fails_the_synth(tmp_path: Path) -> None:
    doc = profiles.shipped("elastic").raw
    doc = {**doc, "name": "acme"}
    # sources that do not compress: random-looking text
    for i, grant in enumerate(doc["grants"]):
        grant["actions"] = {
            **grant["actions"],
            "source": "".join(hashlib.sha256(f"{i}{j}".encode()).hexdigest() for j in range(9))[:590],
        }
    for key in ("minutes", "text", "recovery"):
        doc["outage"][key] = {
            **doc["outage"][key],
            "source": "".join(hashlib.sha256(f"{key}{j}".encode()).hexdigest() for j in range(9))[:590],
        }
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="over Lambda's 4096-byte limit"):
        config_from_context({"keyArn": KEY_ARN, "vendorProfile": str(path)})


@pytest.mark.parametrize("name", [n for n in profiles.SHIPPED if n != "rockset"])
def test_nothing_says_rockset_unless_the_vendor_is_rockset(name: str) -> None:
    fixture = json.loads((VENDORS / f"{name}.json").read_text())
    profile = profiles.load(name, roles=tuple(fixture.get("roles", ())), account=fixture.get("account"))
    meta = {"KeyState": "Disabled", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "MultiRegion": True}
    bad = json.dumps({"Version": "2012-10-17", "Statement": []})
    report = assess_key(KEY_ARN, [RegionObservation("us-west-2", KEY_ARN, meta, bad)], profile)
    alert = render_alert("problem", report, profile, event=None)
    text = alert.subject + alert.body + " ".join(f.message for f in report.findings)
    assert "Rockset" not in text
    assert profile.display_name in alert.subject
    assert profile.outage_text in alert.body
    assert alert.subject.isascii()
    assert len(alert.subject) < 100
