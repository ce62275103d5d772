"""Whole-command tests: the kms-guard process against a moto server on 127.0.0.1, through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypedDict

import pytest
from kms_guard.core import profiles
from kms_guard.core.repair import guard_statement
from kms_guard_cli.simulated import SimulatedAccount, key_policy
from moto.server import ThreadedMotoServer

from tests.functional.conftest import GOOD_POLICY, HOME, REPLICA, THIRD
from tests.support import admin_statement, policy_text, rockset_statement


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Run(Protocol):
    def __call__(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]: ...


class Client(Protocol):
    def __call__(self, service: str, region: str = ...) -> Any: ...  # a boto3 client


class World(TypedDict):
    """What the `world` fixture gives a test: a fresh account on the moto server and a way to run kms-guard."""

    arn: str
    key_id: str
    client: Client
    run: Run
    event: Callable[[str], str]
    """The path of a sample event retargeted at this account's key."""
    account: SimulatedAccount


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture
def world(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # A clean account for every test (moto's reset endpoint), built as the demo and the benchmark build theirs.
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST"))
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": HOME}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    account = SimulatedAccount.create(policy=GOOD_POLICY, table="state", topic="alerts", endpoint_url=server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=server, **credentials)

    def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kms_guard_cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            timeout=120,
            check=False,
        )

    def event_file(name: str) -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(account.event(name)))
        return str(path)

    return {
        "arn": account.key_arn,
        "key_id": account.key_id,
        "client": lambda service, region=HOME: account.client(service, region),
        "run": run,
        "event": event_file,
        "account": account,
    }


def test_check_compliant_then_non_compliant(world: World) -> None:
    regions = f"{HOME},{REPLICA}"
    ok = world["run"]("check", "--key-arn", world["arn"], "--regions", regions, "--output", "json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["verdict"] == "compliant"
    assert [r["region"] for r in report["regions"]] == [HOME, REPLICA]
    assert set(report["regions"][0]) == {"region", "key_arn", "key_state", "verdict", "findings"}

    world["client"]("kms", REPLICA).disable_key(KeyId=world["key_id"])
    bad = world["run"]("check", "--key-arn", world["arn"], "--regions", regions)
    assert bad.returncode == 1
    assert bad.stdout.startswith("NON-COMPLIANT")
    assert "KEY_DISABLED [us-east-1]" in bad.stdout


def test_check_a_region_without_replica(world: World) -> None:
    result = world["run"]("check", "--key-arn", world["arn"], "--regions", f"{HOME},eu-west-1", "--output", "json")
    assert result.returncode == 1
    regions = json.loads(result.stdout)["regions"]
    assert regions[1]["findings"][0]["code"] == "KEY_NOT_FOUND"


def test_check_with_a_5000_digit_number_in_one_regions_policy_still_prints_every_region(world: World) -> None:
    """Issue 10: such a policy crashed `check` (exit 1, no JSON) and lost the healthy Region's result with it."""
    hostile = json.loads(GOOD_POLICY)
    hostile["Id"] = "x"
    text = json.dumps(hostile).replace('"x"', "9" * 5000)
    world["client"]("kms", REPLICA).put_key_policy(KeyId=world["key_id"], PolicyName="default", Policy=text)
    result = world["run"]("check", "--key-arn", world["arn"], "--regions", f"{HOME},{REPLICA}", "--output", "json")
    assert result.returncode == 1, result.stderr
    regions = {r["region"]: r for r in json.loads(result.stdout)["regions"]}
    assert regions[HOME]["verdict"] == "compliant"
    assert [f["code"] for f in regions[REPLICA]["findings"]] == ["POLICY_UNREADABLE"]
    assert "Traceback" not in result.stderr


def test_check_at_risk_exit_3(world: World) -> None:
    conditional = rockset_statement()
    conditional["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    world["client"]("kms").put_key_policy(
        KeyId=world["key_id"], PolicyName="default", Policy=policy_text(admin_statement(), conditional)
    )
    assert world["run"]("check", "--key-arn", world["arn"]).returncode == 3


def test_handle_event_prints_alerts_and_repairs_with_restore_key_state(world: World) -> None:
    world["client"]("kms", REPLICA).disable_key(KeyId=world["key_id"])
    result = world["run"](
        "handle-event",
        world["event"]("disable-key-replica"),
        "--key-arn",
        world["arn"],
        "--regions",
        f"{HOME},{REPLICA}",
        "--restore-key-state",
        "--state-table",
        "state",
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["decision"] == "evaluated"
    assert payload["report"]["verdict"] == "compliant"
    assert payload["remediation"][0]["writes"] == ["enable-key"]
    assert payload["remediation"][0]["verified"] is True
    assert [a["severity"] for a in payload["alerts"]] == ["critical", "info"]
    assert payload["alerts"][0]["codes"] == ["KEY_DISABLED"]
    assert "aws kms enable-key" in payload["alert_messages"][0]["body"]


def test_handle_event_refuses_to_write_without_a_state_table(world: World) -> None:
    """The write limit and the dedupe live in the state table: without it each run would start afresh."""
    world["client"]("kms", REPLICA).disable_key(KeyId=world["key_id"])
    event = world["event"]("disable-key-replica")
    for _ in range(2):
        result = world["run"]("handle-event", event, "--key-arn", world["arn"], "--restore-key-state")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "--state-table" in result.stderr
    state = world["client"]("kms", REPLICA).describe_key(KeyId=world["key_id"])["KeyMetadata"]["KeyState"]
    assert state == "Disabled"


def test_handle_event_dry_run_writes_nothing(world: World) -> None:
    world["client"]("kms", REPLICA).put_key_policy(
        KeyId=world["key_id"], PolicyName="default", Policy=policy_text(admin_statement())
    )
    result = world["run"](
        "handle-event",
        world["event"]("put-key-policy-removes-decrypt"),
        "--key-arn",
        world["arn"],
        "--regions",
        f"{HOME},{REPLICA}",
        "--remediation",
        "restore-statement",
        "--dry-run",
    )
    assert result.returncode == 1
    assert "remediation [us-east-1] dry-run" in result.stdout
    assert "--- [CRITICAL]" in result.stdout
    policy = world["client"]("kms", REPLICA).get_key_policy(KeyId=world["key_id"], PolicyName="default")["Policy"]
    assert "KmsGuardRocksetAccess" not in policy


def test_handle_event_ignores_another_key_with_exit_0(world: World) -> None:
    result = world["run"]("handle-event", world["event"]("disable-key-other-key"), "--key-arn", world["arn"])
    assert result.returncode == 0
    assert result.stdout.startswith("IGNORED: event is about another key")


def test_handle_event_with_table_and_topic(world: World) -> None:
    topic = world["account"].topic_arn
    world["client"]("kms", REPLICA).disable_key(KeyId=world["key_id"])
    argv = [
        "handle-event",
        world["event"]("disable-key-replica"),
        "--key-arn",
        world["arn"],
        "--regions",
        f"{HOME},{REPLICA}",
        "--state-table",
        "state",
        "--topic-arn",
        topic,
    ]
    first = world["run"](*argv)
    assert first.returncode == 1
    assert f"published to {topic}" in first.stdout
    again = world["run"](*argv)  # same CloudTrail event ID: remembered in the table
    assert again.returncode == 0
    assert "IGNORED: duplicate delivery" in again.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["check", "--key-arn", "arn:aws:kms:us-west-2:111122223333:alias/rockset"],
            "--key-arn: alias ARNs are not supported",
        ),
        (
            ["check", "--key-arn", "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
            "not a multi-Region key",
        ),
        (
            [
                "check",
                "--key-arn",
                "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                "--regions",
                "us-east-1",
            ],
            "must include the key's own Region",
        ),
        (["check"], "one of the arguments --key-arn --config is required"),
        (
            [
                "handle-event",
                "/nope.json",
                "--key-arn",
                "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            ],
            "cannot read event file /nope.json",
        ),
        (
            [
                "handle-event",
                "-",
                "--key-arn",
                "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                "--remediation",
                "fix",
            ],
            "--remediation: unknown mode 'fix'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(world: World, argv: list[str], message: str) -> None:
    result = world["run"](*argv, stdin="{}")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_handle_event_not_json_is_bad_input(world: World) -> None:
    result = world["run"]("handle-event", "-", "--key-arn", world["arn"], stdin="{nope")
    assert result.returncode == 2
    assert "stdin: event is not valid JSON" in result.stderr


# --- coverage (issue 11: 3) -------------------------------------------------------------------------------------------


def test_check_prints_coverage_apart_from_the_verdict_and_strict_coverage_sets_exit_4(world: World) -> None:
    regions = f"{HOME},{REPLICA}"
    ok = world["run"]("check", "--key-arn", world["arn"], "--regions", regions, "--output", "json")
    assert ok.returncode == 0, ok.stderr
    coverage = json.loads(ok.stdout)["coverage"]
    assert coverage["verdict"] == "ok"
    assert [(r["region"], r["status"], r["findings"]) for r in coverage["regions"]] == [
        (HOME, "ok", []),
        (REPLICA, "ok", []),
    ]

    world["client"]("cloudtrail").stop_logging(Name="management-events")
    blind = world["run"]("check", "--key-arn", world["arn"], "--regions", regions, "--output", "json")
    assert blind.returncode == 0, blind.stderr  # coverage leaves the key's verdict and exit code alone
    payload = json.loads(blind.stdout)
    assert payload["verdict"] == "compliant"
    assert payload["coverage"]["verdict"] == "blind"
    assert {f["code"] for r in payload["coverage"]["regions"] for f in r["findings"]} == {"TRAIL_NOT_LOGGING"}

    strict = world["run"]("check", "--key-arn", world["arn"], "--regions", regions, "--strict-coverage")
    assert strict.returncode == 4, strict.stderr
    assert "COMPLIANT" in strict.stdout
    assert "COVERAGE: BLIND" in strict.stdout
    assert "TRAIL_NOT_LOGGING" in strict.stdout
    assert "fix: aws cloudtrail start-logging --region us-west-2 --name arn:aws:cloudtrail:" in strict.stdout


def test_strict_coverage_never_hides_a_key_problem(world: World) -> None:
    world["client"]("cloudtrail").stop_logging(Name="management-events")
    world["client"]("kms", REPLICA).disable_key(KeyId=world["key_id"])
    result = world["run"]("check", "--key-arn", world["arn"], "--regions", f"{HOME},{REPLICA}", "--strict-coverage")
    assert result.returncode == 1, result.stderr


def test_handle_event_prints_coverage(world: World) -> None:
    world["client"]("events", REPLICA).disable_rule(Name="kms-guard-kms-api-calls")
    argv = ("handle-event", world["event"]("enable-key"), "--key-arn", world["arn"], "--regions", f"{HOME},{REPLICA}")
    result = world["run"](*argv, "--output", "json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["decision"] == "evaluated"
    [finding] = [f for r in payload["coverage"]["regions"] for f in r["findings"]]
    assert (finding["code"], finding["region"]) == ("GUARD_RULE_MISSING", REPLICA)
    assert finding["fix"] == [f"aws events enable-rule --region {REPLICA} --name kms-guard-kms-api-calls"]
    strict = world["run"](*argv, "--strict-coverage")
    assert strict.returncode == 4
    assert "COVERAGE: BLIND" in strict.stdout


# --- check --config: many keys (issue 14) ------------------------------------------------------------------------------

DATABRICKS = "databricks-managed-services"


def databricks_key(account: SimulatedAccount, *, regions: tuple[str, ...] = (HOME,), decrypt: bool = True) -> str:
    """A second key in the account, linked to Databricks (its documented grant; without kms:Decrypt if asked)."""
    grant = guard_statement(profiles.load(DATABRICKS))
    if not decrypt:
        grant["Action"] = ["kms:Encrypt"]
    return account.add_key(
        policy=key_policy(account.account, grant), description="Databricks CMK", regions=list(regions)
    ).key_arn


def config_file(tmp_path: Path, keys: Any, name: str = "keys.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(keys))
    return str(path)


def findings_of(key: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["code"], f["region"]) for r in key["regions"] for f in r["findings"]]


def test_check_config_two_vendors_one_broken_exits_by_the_worst_with_each_keys_own_findings(
    world: World, tmp_path: Path
) -> None:
    databricks = databricks_key(world["account"], decrypt=False)
    config = config_file(
        tmp_path, [{"keyArn": world["arn"], "regions": [HOME, REPLICA]}, {"keyArn": databricks, "vendor": DATABRICKS}]
    )
    result = world["run"]("check", "--config", config, "--output", "json")
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert list(payload) == ["verdict", "keys", "coverage"]
    assert payload["verdict"] == "non-compliant"
    rockset, broken = payload["keys"]
    assert (rockset["key_arn"], rockset["verdict"], findings_of(rockset)) == (world["arn"], "compliant", [])
    assert [r["region"] for r in rockset["regions"]] == [HOME, REPLICA]
    assert (broken["key_arn"], broken["verdict"], findings_of(broken)) == (
        databricks,
        "non-compliant",
        [("ACTION_NOT_GRANTED", HOME)],
    )
    assert broken["regions"][0]["findings"][0]["actions"] == ["kms:Decrypt"]
    assert "414351767826" in broken["regions"][0]["findings"][0]["message"]  # Databricks' account, not Rockset's
    # Each key's object is the one `check --key-arn` prints for it; the coverage is printed once, for all keys.
    single = world["run"]("check", "--key-arn", databricks, "--vendor", DATABRICKS, "--output", "json")
    assert single.returncode == 1, single.stderr
    assert {k: v for k, v in json.loads(single.stdout).items() if k != "coverage"} == broken

    text = world["run"]("check", "--config", config)
    assert text.returncode == 1, text.stderr
    blocks = text.stdout.split("\n\n")
    assert blocks[0].startswith(f"COMPLIANT: {world['arn']} (Rockset: account 318212636800)")
    assert blocks[1].startswith(f"NON-COMPLIANT: {databricks} (Databricks: account 414351767826)")
    assert "ACTION_NOT_GRANTED [us-west-2]" in blocks[1]
    assert "ACTION_NOT_GRANTED" not in blocks[0]
    assert text.stdout.splitlines()[-1] == "WORST VERDICT: NON-COMPLIANT (2 keys: 1 compliant, 1 non-compliant)"


def test_check_config_bad_list_reports_every_problem_at_once_exit_2(world: World, tmp_path: Path) -> None:
    account = world["account"].account
    config = config_file(
        tmp_path,
        {
            "keys": [
                {"keyArn": f"arn:aws:kms:{HOME}:{account}:alias/rockset"},
                {"keyArn": world["arn"], "vendor": "acme"},
                {"keyArn": world["arn"]},
                {"regions": [HOME]},
                {"keyArn": f"arn:aws:kms:{HOME}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
                {"keyArn": databricks_key(world["account"]), "vendorProfile": "profiles/acme.json"},
                {"keyArn": f"arn:aws:kms:{HOME}:{account}:key/mrk-0000abcd12ab34cd56ef1234567890ab", "color": "blue"},
            ]
        },
    )
    result = world["run"]("check", "--config", config, "--output", "json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert [line.removeprefix("kms-guard: error: ").split(": ", 1)[0] for line in lines] == [
        f"{config}[0].keyArn",
        f"{config}[1].vendor",
        f"{config}[2]",
        f"{config}[3].keyArn",
        f"{config}[4].keyArn",
        f"{config}[5].vendorProfile",
        f"{config}[6]",
    ]
    assert all(line.startswith("kms-guard: error: ") for line in lines)
    assert "alias ARNs are not supported" in lines[0]
    assert "unknown vendor 'acme'" in lines[1]
    assert "is already" in lines[2]
    assert "required" in lines[3]
    assert "not a multi-Region key" in lines[4]
    assert "Rockset requires one" in lines[4]
    assert str(tmp_path / "profiles" / "acme.json") in lines[5]  # looked for beside the file, not where it ran
    assert "unknown field 'color'" in lines[6]

    for text, message in [("{nope", "not valid JSON"), ('{"keys": "k"}', "must be a list of key objects")]:
        bad = world["run"]("check", "--config", "-", stdin=text)
        assert bad.returncode == 2
        assert bad.stderr.count("\n") == 1
        assert f"stdin: {message}" in bad.stderr


def test_check_config_a_key_whose_read_is_denied_is_unreadable_alone(world: World, tmp_path: Path) -> None:
    account = world["account"]
    # moto enforces a key policy's Deny of kms:DescribeKey (with Resource "*") and ignores its Principal: the Deny of
    # the guard's role below denies every caller of this key, the guard's check among them, as AWS would the role.
    fenced = account.add_key(
        policy=key_policy(
            account.account,
            guard_statement(profiles.load("rockset")),
            {
                "Sid": "NoReadsByTheGuard",
                "Effect": "Deny",
                "Principal": {"AWS": f"arn:aws:iam::{account.account}:role/kms-guard"},
                "Action": ["kms:DescribeKey"],
                "Resource": "*",
            },
        ),
        description="fenced CMK",
        regions=[HOME],
    ).key_arn
    databricks = databricks_key(account)
    config = config_file(
        tmp_path,
        [
            {"keyArn": world["arn"], "regions": [HOME, REPLICA]},
            {"keyArn": fenced},
            {"keyArn": databricks, "vendor": DATABRICKS},
        ],
    )
    result = world["run"]("check", "--config", config, "--output", "json")
    assert result.returncode == 1, result.stderr
    first, denied, third = json.loads(result.stdout)["keys"]
    assert (first["verdict"], findings_of(first)) == ("compliant", [])
    assert (third["verdict"], findings_of(third)) == ("compliant", [])
    assert (denied["key_arn"], denied["verdict"], findings_of(denied)) == (
        fenced,
        "non-compliant",
        [("POLICY_UNREADABLE", HOME)],
    )
    assert "AccessDenied" in denied["regions"][0]["findings"][0]["message"]


def test_check_config_shows_a_replica_outside_a_keys_regions_for_that_key_only(world: World, tmp_path: Path) -> None:
    databricks = databricks_key(world["account"], regions=(HOME, REPLICA))
    config = config_file(
        tmp_path, [{"keyArn": world["arn"], "regions": [HOME, REPLICA]}, {"keyArn": databricks, "vendor": DATABRICKS}]
    )
    result = world["run"]("check", "--config", config, "--output", "json")
    assert result.returncode == 0, result.stderr  # info: the verdict stands
    rockset, unwatched = json.loads(result.stdout)["keys"]
    assert findings_of(rockset) == []
    assert findings_of(unwatched) == [("REPLICA_UNWATCHED", REPLICA)]
    assert [(r["region"], r["verdict"]) for r in unwatched["regions"]] == [(HOME, "compliant"), (REPLICA, "compliant")]
    assert f"set the key's regions to {HOME},{REPLICA}" in unwatched["regions"][1]["findings"][0]["message"]
    text = world["run"]("check", "--config", config)
    assert text.stdout.count("REPLICA_UNWATCHED") == 1
    assert f"INFO     REPLICA_UNWATCHED [{REPLICA}]" in text.stdout.split("\n\n")[1]


def test_check_config_reads_coverage_once_for_the_union_of_regions(world: World, tmp_path: Path) -> None:
    """The simulated account has the guard's rules in us-west-2 and us-east-1 only: a key configured in eu-west-1
    makes the deployment's sight blind there (GUARD_RULE_MISSING), which --strict-coverage turns into exit 4."""
    databricks = databricks_key(world["account"], regions=(HOME, THIRD))
    config = config_file(
        tmp_path,
        [
            {"keyArn": world["arn"], "regions": [HOME, REPLICA]},
            {"keyArn": databricks, "vendor": DATABRICKS, "regions": [HOME, THIRD]},
        ],
    )
    result = world["run"]("check", "--config", config, "--output", "json")
    assert result.returncode == 0, result.stderr  # coverage leaves the verdict and exit code alone
    payload = json.loads(result.stdout)
    assert all("coverage" not in key for key in payload["keys"])
    coverage = payload["coverage"]
    assert coverage["verdict"] == "blind"
    assert [(r["region"], r["status"]) for r in coverage["regions"]] == [
        (HOME, "ok"),
        (REPLICA, "ok"),
        (THIRD, "blind"),
    ]
    assert {f["code"] for f in coverage["regions"][2]["findings"]} == {"GUARD_RULE_MISSING"}

    strict = world["run"]("check", "--config", config, "--strict-coverage")
    assert strict.returncode == 4, strict.stderr
    assert strict.stdout.count("COVERAGE: BLIND") == 1
    world["account"].guard_rules([THIRD])
    assert world["run"]("check", "--config", config, "--strict-coverage").returncode == 0
