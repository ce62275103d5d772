"""`check --config` with the opt-in features, in process against moto (the whole-command tests against a moto server
are in test_commands.py): each key is checked in its own vendor's terms, and what goes outside SNS is per key.

moto does not implement IAM Access Analyzer's CheckNoNewAccess: a thread-safe stand-in answers instead (the keys are
checked concurrently, which botocore's Stubber, ordered and single-threaded, does not allow), recording what it was
asked so the test sees which vendor's reference each key was checked against.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kms_guard.aws.clients import ClientFactory
from kms_guard.core import profiles
from kms_guard.core.repair import guard_statement
from kms_guard_cli.main import run
from kms_guard_cli.simulated import key_policy

from tests.functional.conftest import HOME, REPLICA, Account

DATABRICKS = "databricks-managed-services"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def databricks_key(account: Account, *, decrypt: bool = True) -> str:
    grant = guard_statement(profiles.load(DATABRICKS))
    if not decrypt:
        grant["Action"] = ["kms:Encrypt"]
    return account.add_key(
        policy=key_policy(account.account, grant), description="Databricks CMK", regions=[HOME]
    ).key_arn


def write_config(tmp_path: Path, account: Account, databricks: str) -> str:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            [{"keyArn": account.key_arn, "regions": [HOME, REPLICA]}, {"keyArn": databricks, "vendor": DATABRICKS}]
        )
    )
    return str(path)


def test_check_config_imports_findings_and_puts_events_per_key(account: Account, tmp_path: Path) -> None:
    account.enable_security_hub()  # moto imports findings even when it is off; real Security Hub refuses them
    account.route_finding_events()
    databricks = databricks_key(account, decrypt=False)
    config = write_config(tmp_path, account, databricks)
    code, out, err = run_cli("check", "--config", config, "--security-hub", "--finding-events", "--output", "json")
    assert code == 1, err
    assert [k["verdict"] for k in json.loads(out)["keys"]] == ["compliant", "non-compliant"]
    databricks_id = databricks.rsplit("/", 1)[-1]
    assert list(account.securityhub_findings()) == [f"kms-guard/{databricks_id}/{HOME}/ACTION_NOT_GRANTED"]
    events = [e["detail"] for e in account.delivered_finding_events()]
    assert [(e["key_arn"], e["vendor"], e["change"], e["codes"]) for e in events] == [
        (databricks, "Databricks", "problem", ["ACTION_NOT_GRANTED"])
    ]


class AlwaysPass:
    """CheckNoNewAccess answering PASS to every question (thread-safe), keeping the questions."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def check_no_new_access(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.asked.append(json.loads(request["newPolicyDocument"]))
        return {"result": "PASS", "message": "The policy grants no new access.", "reasons": []}


def test_check_config_second_opinion_per_key_in_its_vendors_terms(
    account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyzer = AlwaysPass()
    client = ClientFactory.client

    def clients(self: ClientFactory, service: str, region: str) -> Any:
        return analyzer if service == "accessanalyzer" else client(self, service, region)

    monkeypatch.setattr(ClientFactory, "client", clients)
    databricks = databricks_key(account, decrypt=False)
    code, out, err = run_cli(
        "check", "--config", write_config(tmp_path, account, databricks), "--second-opinion", "--output", "json"
    )
    assert code == 1, err
    rockset, broken = json.loads(out)["keys"]
    assert [(o["region"], o["result"], o["agrees"]) for o in rockset["second_opinion"]] == [
        (HOME, "PASS", True),
        (REPLICA, "PASS", True),
    ]
    assert [(o["region"], o["result"], o["agrees"]) for o in broken["second_opinion"]] == [(HOME, "PASS", False)]
    assert [f["code"] for r in rockset["regions"] for f in r["findings"]] == []
    assert [f["code"] for r in broken["regions"] for f in r["findings"]] == ["ACTION_NOT_GRANTED", "VERDICT_DISPUTED"]
    # each key asked about with its own vendor's reference statement
    grantees = {json.dumps(s["Principal"]) for policy in analyzer.asked for s in policy["Statement"]}
    assert grantees == {
        json.dumps({"AWS": profiles.load("rockset").principal_arn}),
        json.dumps({"AWS": profiles.load(DATABRICKS).principal_arn}),
    }


def test_check_config_key_with_a_users_profile_file_beside_the_config(
    account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key grants account 999988887777 only: compliant only if the profile file (relative to the configuration's
    directory, not to where the command runs) was read and used."""
    raw = json.loads(json.dumps(profiles.shipped(DATABRICKS).raw))
    raw.update(name="acme-analytics", displayName="Acme Analytics")
    raw["grants"][0]["account"]["value"] = "999988887777"
    (tmp_path / "conf" / "profiles").mkdir(parents=True)
    (tmp_path / "conf" / "profiles" / "acme.json").write_text(json.dumps(raw))
    acme = profiles.load(profile_text=json.dumps(raw))
    key = account.add_key(
        policy=key_policy(account.account, guard_statement(acme)), description="Acme CMK", regions=[HOME]
    ).key_arn
    config = tmp_path / "conf" / "keys.json"
    config.write_text(json.dumps({"keys": [{"keyArn": key, "vendorProfile": "profiles/acme.json"}]}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = run_cli("check", "--config", str(config))
    assert code == 0, err
    assert out.startswith(f"COMPLIANT: {key} (Acme Analytics: account 999988887777)")
    assert out.splitlines()[-1] == "WORST VERDICT: COMPLIANT (1 key: 1 compliant)"
