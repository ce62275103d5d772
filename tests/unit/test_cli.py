"""The offline commands: check-policy, fix-policy, statement (contract in design.md)."""

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import pytest
from kms_guard_cli.main import run

from tests.support import POLICIES, admin_statement, policy_text, rockset_statement


def call(*argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


class PolicyFile(Protocol):
    def __call__(self, text: str, name: str = "policy.json") -> str: ...


@pytest.fixture
def policy_file(tmp_path: Path) -> PolicyFile:
    def write(text: str, name: str = "policy.json") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def case_file(name: str) -> str:
    """A corpus case's policy, written out as a plain policy document."""
    doc = json.loads((POLICIES / f"{name}.json").read_text())["policy"]
    return json.dumps(doc, indent=2)


@pytest.mark.parametrize(
    ("case", "exit_code", "verdict"),
    [
        ("grant-root-arn", 0, "compliant"),
        ("missing-decrypt", 1, "non-compliant"),
        ("allow-sourceip-condition", 3, "at-risk"),
    ],
)
def test_check_policy_exit_codes_and_json(policy_file: PolicyFile, case: str, exit_code: int, verdict: str) -> None:
    code, out, err = call("check-policy", policy_file(case_file(case)), "--output", "json")
    assert code == exit_code
    payload = json.loads(out)
    assert payload["verdict"] == verdict
    assert set(payload) >= {"verdict", "granted_actions", "missing_actions", "findings"}
    assert err == ""


def test_check_policy_json_lists_concrete_actions(policy_file: PolicyFile) -> None:
    _, out, _ = call("check-policy", policy_file(case_file("missing-decrypt")), "--output", "json")
    payload = json.loads(out)
    assert payload["missing_actions"] == ["kms:Decrypt"]
    assert "kms:GenerateDataKeyPairWithoutPlaintext" in payload["granted_actions"]
    assert payload["findings"][0]["code"] == "ACTION_NOT_GRANTED"
    assert payload["findings"][0]["actions"] == ["kms:Decrypt"]


def test_check_policy_text_puts_the_verdict_first_then_findings_with_their_statement(policy_file: PolicyFile) -> None:
    code, out, _ = call("check-policy", policy_file(case_file("deny-decrypt-everyone")))
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("NON-COMPLIANT")
    assert any("ACTION_DENIED" in line and "(statement DenyRule)" in line for line in lines)


def test_check_policy_vendor_account_changes_the_requirement(policy_file: PolicyFile) -> None:
    path = policy_file(case_file("grant-root-arn"))
    assert call("check-policy", path)[0] == 0
    assert call("check-policy", path, "--vendor-account", "999988887777")[0] == 1


def test_check_policy_key_arn_decides_resource_statements(policy_file: PolicyFile) -> None:
    path = policy_file(case_file("resource-key-arn-known"))
    key = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    assert call("check-policy", path)[0] == 3
    assert call("check-policy", path, "--key-arn", key)[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check-policy", "/nonexistent/p.json"], "cannot read policy file /nonexistent/p.json"),
        (["check-policy", "{path}", "--vendor-account", "123"], "--vendor-account must be a 12-digit"),
        (["check-policy", "{path}", "--output", "yaml"], "invalid choice: 'yaml'"),
        (
            ["check-policy", "{path}", "--key-arn", "arn:aws:kms:us-west-2:111122223333:alias/x"],
            "alias ARNs are not supported",
        ),
        (["fix-policy", "{path}"], "not valid JSON"),
        (["nope"], "invalid choice: 'nope'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(policy_file: PolicyFile, argv: list[str], message: str) -> None:
    path = policy_file("{not json")
    code, out, err = call(*[a.replace("{path}", path) for a in argv])
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_fix_policy_prints_the_repaired_policy_and_what_changed(policy_file: PolicyFile) -> None:
    code, out, err = call("fix-policy", policy_file(policy_text(admin_statement())))
    assert code == 0
    repaired = json.loads(out)
    assert repaired["Statement"][0] == admin_statement()
    assert repaired["Statement"][1]["Sid"] == "KmsGuardRocksetAccess"
    assert err.startswith("repaired: added statement KmsGuardRocksetAccess")
    recheck = call("check-policy", policy_file(out, "fixed.json"))
    assert recheck[0] == 0


def test_fix_policy_on_a_fine_policy_prints_it_unchanged(policy_file: PolicyFile) -> None:
    text = policy_text(admin_statement(), rockset_statement())
    code, out, err = call("fix-policy", policy_file(text))
    assert code == 0
    assert out.rstrip("\n") == text
    assert err.startswith("unchanged")


def test_fix_policy_refuses_to_touch_a_deny(policy_file: PolicyFile) -> None:
    deny = {"Sid": "Fence", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    code, out, err = call("fix-policy", policy_file(policy_text(rockset_statement(), deny)))
    assert code == 1
    assert out == ""
    assert "cannot repair safely" in err
    assert "Fence" in err


def test_fix_policy_json(policy_file: PolicyFile) -> None:
    code, out, _ = call("fix-policy", policy_file(policy_text(admin_statement())), "--output", "json")
    payload = json.loads(out)
    assert code == 0
    assert payload["status"] == "repair"
    assert json.loads(payload["policy"])["Statement"][-1]["Sid"] == "KmsGuardRocksetAccess"
    assert "kms:Decrypt" in payload["added_actions"]


def test_statement_prints_a_statement_that_makes_a_policy_compliant(policy_file: PolicyFile) -> None:
    code, out, _ = call("statement", "--output", "json")
    assert code == 0
    statement = json.loads(out)["statements"][0]
    assert call("check-policy", policy_file(policy_text(admin_statement(), statement)))[0] == 0


def test_statement_text_is_valid_json_after_the_comment() -> None:
    code, out, _ = call("statement", "--vendor-account", "999988887777")
    assert code == 0
    body = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    assert json.loads(body)["Principal"] == {"AWS": "arn:aws:iam::999988887777:root"}


def test_console_script_reads_stdin_and_never_shows_a_traceback() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "kms_guard_cli.main", "check-policy", "-"],
        input=policy_text(rockset_statement()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("COMPLIANT")
    bad = subprocess.run(
        [sys.executable, "-m", "kms_guard_cli.main", "check-policy", "-"],
        input="",
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr == "kms-guard: error: stdin: policy is empty\n"


def test_statement_with_guard_roles_prints_both_statements(policy_file: PolicyFile) -> None:
    role = "arn:aws:iam::111122223333:role/KmsGuard-KmsEventFunctionRole-ABC"
    code, out, _ = call("statement", "--guard-role-arn", role, "--remediation", "restore-statement", "--output", "json")
    assert code == 0
    rockset, guard = json.loads(out)["statements"]
    assert guard["Principal"] == {"AWS": role}
    assert guard["Action"] == ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy"]
    assert call("check-policy", policy_file(policy_text(admin_statement(), rockset, guard)))[0] == 0


def test_statement_guard_actions_follow_what_is_switched_on() -> None:
    role = "arn:aws:iam::111122223333:role/G"
    _, out, _ = call("statement", "--guard-role-arn", role, "--output", "json")
    assert json.loads(out)["statements"][1]["Action"] == ["kms:DescribeKey", "kms:GetKeyPolicy"]
    _, out, _ = call("statement", "--guard-role-arn", role, "--restore-key-state", "--output", "json")
    assert json.loads(out)["statements"][1]["Action"] == [
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:EnableKey",
        "kms:CancelKeyDeletion",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--guard-role-arn", "arn:aws:iam::111122223333:user/bob"], "--guard-role-arn: not an IAM role ARN"),
        (["--guard-role-arn", "arn:aws:iam::111122223333:role/G", "--remediation", "x"], "--remediation: unknown mode"),
    ],
)
def test_statement_bad_options(argv: list[str], message: str) -> None:
    code, _, err = call("statement", *argv)
    assert code == 2
    assert message in err


# --- check --config: the key list (issue 14); what is decided before any AWS call -----------------------------------

KEY = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--key-arn", KEY], "argument --key-arn: not allowed with argument --config"),
        (["--vendor", "elastic"], "--config and --vendor: with --config every key's vendor and Regions come from"),
        (
            ["--regions", "us-west-2", "--vendor-role", "arn:aws:iam::111122223333:role/x"],
            "--config and --regions, --vendor-role:",
        ),
        (["--vendor-account", "999988887777"], "--config and --vendor-account:"),
        (["--vendor-profile", "p.json"], "--config and --vendor-profile:"),
    ],
)
def test_check_config_with_single_key_flags_is_one_line_exit_2(
    policy_file: PolicyFile, extra: list[str], message: str
) -> None:
    code, out, err = call("check", "--config", policy_file(json.dumps([{"keyArn": KEY}]), "keys.json"), *extra)
    assert (code, out) == (2, "")
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("flag", [["--vendor", "tidb"], ["--vendor-profile", "p.json"], ["--vendor-account", "1"]])
def test_demo_refuses_vendor_options_it_would_ignore(flag: list[str]) -> None:
    """The demo's story fixes its vendors (Rockset, then Databricks): a vendor option is a usage error, not a no-op."""
    code, out, err = call("demo", *flag)
    assert (code, out) == (2, "")
    assert err.startswith("kms-guard: error: kms-guard: unrecognized arguments: " + flag[0])


def test_check_needs_a_key_or_a_config() -> None:
    code, _, err = call("check")
    assert code == 2
    assert err == "kms-guard: error: kms-guard check: one of the arguments --key-arn --config is required\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "keys.json: not valid JSON: Expecting value at line 1"),
        ("[]", "keys.json: the list is empty; give at least one key"),
        ('{"keyArn": "x"}', "keys.json: must be a list of key objects"),
        ("[" * 100_000 + "]" * 100_000, "keys.json: not valid JSON: nested too deeply"),
        ("\udcff", "not UTF-8 text"),
        (
            f'[{{"keyArn": "{KEY}", "remediation": "off", "remediation": "revert"}}]',
            "keys.json: the field 'remediation' appears twice in one object",
        ),
    ],
)
def test_check_config_unusable_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, _, err = call("check", "--config", str(path))
    assert code == 2
    assert message.replace("keys.json", str(path)) in err
    assert err.count("\n") == 1


def acme_profile(account: str = "999988887777") -> str:
    """A user's own profile: Databricks' shipped document under another name, granting another account."""
    from kms_guard.core import profiles

    raw = json.loads(json.dumps(profiles.shipped("databricks-managed-services").raw))
    raw.update(name="acme-analytics", displayName="Acme Analytics")
    raw["grants"][0]["account"]["value"] = account
    return json.dumps(raw)


def config_deployment(argv: list[str]) -> Any:
    from kms_guard_cli.main import _config_deployment, build_parser

    return _config_deployment(build_parser().parse_args(argv))


def test_check_config_vendor_profile_paths_are_relative_to_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "profiles").mkdir(parents=True)
    (tmp_path / "conf" / "profiles" / "acme.json").write_text(acme_profile())
    config = tmp_path / "conf" / "keys.json"
    config.write_text(json.dumps({"keys": [{"keyArn": KEY, "vendorProfile": "profiles/acme.json"}]}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    [settings] = config_deployment(["check", "--config", str(config)]).keys
    assert (settings.vendor.display_name, settings.vendor.principal_arn) == (
        "Acme Analytics",
        "arn:aws:iam::999988887777:root",
    )
    # stdin has no directory: the current one
    monkeypatch.chdir(tmp_path / "conf")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(config.read_bytes())))
    [settings] = config_deployment(["check", "--config", "-"]).keys
    assert settings.vendor.display_name == "Acme Analytics"


def test_check_config_opt_in_flags_reach_every_key(tmp_path: Path) -> None:
    config = tmp_path / "keys.json"
    other = KEY.replace("mrk-1", "mrk-2")
    config.write_text(json.dumps([{"keyArn": KEY}, {"keyArn": other, "vendor": "elastic"}]))
    deployment = config_deployment(["check", "--config", str(config), "--security-hub", "--second-opinion"])
    assert [(s.security_hub, s.finding_events, s.second_opinion) for s in deployment.keys] == [(True, False, True)] * 2
    assert [s.vendor.display_name for s in deployment.keys] == ["Rockset", "Elastic Cloud"]
