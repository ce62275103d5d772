"""Many keys, one guard (issue 14), against moto: routing, per-key state and alerts, failure isolation, the keys file
the Lambda reads, and replicas found outside the configured Regions (REPLICA_UNWATCHED)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kms_guard.aws.clients import ClientFactory
from kms_guard.core import profiles
from kms_guard.core.findings import Code
from kms_guard.core.repair import guard_statement
from kms_guard.deployment import Deployment, keys_document, parse_key_list
from kms_guard.fleet import SIGHT_PK, KeysFailed
from kms_guard.handlers import kms_event, runtime, scheduled_check
from kms_guard.settings import ENV_NAMES
from kms_guard.wiring import WiredFleet, wire_fleet
from kms_guard_cli.simulated import key_policy

from tests.functional.conftest import HOME, REPLICA, THIRD, Account
from tests.support import admin_statement, policy_text

DATABRICKS = profiles.load("databricks-managed-services")


@pytest.fixture
def databricks_key(account: Account) -> Account:
    """A second key in the same account, for another vendor, in the home Region only."""
    return account.add_key(
        policy=key_policy(account.account, guard_statement(DATABRICKS)),
        description="Databricks CMK",
        regions=[HOME],
    )


def entries(account: Account, databricks: Account, **rockset: Any) -> list[dict[str, Any]]:
    return [
        {"keyArn": account.key_arn, "regions": [HOME, REPLICA], **rockset},
        {"keyArn": databricks.key_arn, "vendor": "databricks-managed-services"},
    ]


def fleet_of(account: Account, raw: list[dict[str, Any]], **shared: Any) -> WiredFleet:
    deployment = parse_key_list(raw, shared={"state_table": account.table, "topic_arn": account.topic_arn, **shared})
    return wire_fleet(deployment, ClientFactory(account.session, 3), sleep=lambda seconds: None)


def key_ids(results: list[tuple[str, Any]]) -> list[str]:
    return [arn.rsplit("/", 1)[-1] for arn, _ in results]


def test_a_change_to_one_key_alerts_about_that_key_alone(account: Account, databricks_key: Account) -> None:
    wired = fleet_of(account, entries(account, databricks_key))
    first = wired.fleet.scheduled_check()
    assert sorted(key_ids(first.results)) == sorted([account.key_id, databricks_key.key_id])
    assert all(r.report is not None and r.report.verdict == "compliant" for _, r in first.results)
    assert account.delivered_alerts() == []

    databricks_key.put_policy(HOME, policy_text(admin_statement()))  # the vendor's grant is gone
    account.calls.clear()
    outcome = wired.fleet.handle(databricks_key.event("put-key-policy-removes-decrypt", region=HOME, new_id=True))

    assert key_ids(outcome.results) == [databricks_key.key_id]  # routed to the key it names, and only to it
    [(_, result)] = outcome.results
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    alerts = account.delivered_alerts()
    assert len(alerts) == 1, alerts
    assert databricks_key.key_id in alerts[0]["subject"]
    assert "Databricks" in alerts[0]["subject"]
    assert alerts[0]["attributes"]["key_id"] == databricks_key.key_id
    # the fix repairs the key's own vendor's grant, not the default's (Rockset)
    assert "kms-guard fix-policy --vendor databricks-managed-services - > fixed.json" in alerts[0]["message"]
    assert "`kms-guard statement --vendor databricks-managed-services`" in alerts[0]["message"]
    # the Rockset key was not read at all: one Region read (the Databricks key's only one)
    assert account.calls["kms.DescribeKey"] == 1

    again = wired.fleet.scheduled_check()  # the Rockset key stays quiet; the Databricks one is unchanged: no alert
    verdicts = {arn.rsplit("/", 1)[-1]: r.report.verdict for arn, r in again.results if r.report}
    assert verdicts == {account.key_id: "compliant", databricks_key.key_id: "non-compliant"}
    assert account.delivered_alerts() == []


def test_events_for_keys_not_configured_are_dropped_before_any_aws_call(
    account: Account, databricks_key: Account
) -> None:
    wired = fleet_of(
        account,
        [
            {"keyArn": account.key_arn, "regions": [HOME, REPLICA]},
            {"keyArn": databricks_key.key_arn, "vendor": "databricks-managed-services"},
        ],
    )
    stranger = account.add_key(policy=key_policy(account.account), description="not guarded", regions=[HOME])
    account.calls.clear()
    outcome = wired.fleet.handle(stranger.event("disable-key-replica", region=HOME, new_id=True))
    assert outcome.results == []
    assert outcome.ignored is not None
    assert "does not guard" in (outcome.ignored.reason or "")
    assert sum(account.calls.values()) == 0, account.calls
    failed = wired.fleet.handle(databricks_key.event("disable-key-failed-access-denied", region=HOME))
    assert failed.results == []
    assert failed.ignored is not None
    assert "failed call" in (failed.ignored.reason or "")
    assert sum(account.calls.values()) == 0, account.calls


def test_state_is_kept_per_key(account: Account, databricks_key: Account) -> None:
    wired = fleet_of(account, entries(account, databricks_key))
    databricks_key.put_policy(HOME, policy_text(admin_statement()))
    wired.fleet.scheduled_check()
    table = account.client("dynamodb")
    reports = table.scan(TableName=account.table)["Items"]
    partitions = {item["pk"]["S"] for item in reports if item["sk"]["S"] == "k#report"}
    assert partitions == {databricks_key.key_id}  # only the key with a problem has a report to remember
    baselines = {item["pk"]["S"] for item in reports if item["sk"]["S"].startswith("k#region#")}
    assert baselines == {account.key_id}  # only the compliant key has a revert baseline
    coverage = {item["pk"]["S"] for item in reports if item["sk"]["S"] == "k#coverage"}
    assert coverage == {SIGHT_PK}  # one sight for the deployment, not one per key


def test_one_keys_failure_never_hides_another_keys_result(
    account: Account, databricks_key: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = fleet_of(account, entries(account, databricks_key))
    databricks_key.put_policy(HOME, policy_text(admin_statement()))

    def unreachable() -> Any:
        raise RuntimeError("state table unreachable")

    monkeypatch.setattr(wired.states[account.key_id], "load", unreachable)
    outcome = wired.fleet.scheduled_check()
    assert list(outcome.failed) == [account.key_arn]
    assert "state table unreachable" in outcome.failed[account.key_arn]
    assert key_ids(outcome.results) == [databricks_key.key_id]
    [alert] = account.delivered_alerts()  # the other key's problem was still alerted
    assert databricks_key.key_id in alert["subject"]
    with pytest.raises(KeysFailed, match=account.key_id):
        runtime.record_fleet(outcome)


@pytest.fixture
def keys_file_env(
    account: Account, databricks_key: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """The Lambda environment of a many-key deployment: the keys file (as the keys layer holds it) and the shared
    variables, no single-key variables; the real wiring on the test session."""
    deployment = parse_key_list(entries(account, databricks_key))
    path = tmp_path / "keys.json"
    path.write_text(keys_document(deployment))
    for name, value in {
        ENV_NAMES["keys_file"]: str(path),
        ENV_NAMES["topic_arn"]: account.topic_arn,
        ENV_NAMES["state_table"]: account.table,
        "POWERTOOLS_METRICS_NAMESPACE": "KmsGuard",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("key_arn", "regions", "vendor", "vendor_profile"):
        monkeypatch.delenv(ENV_NAMES[name], raising=False)
    monkeypatch.setattr(runtime, "wire_fleet", lambda d: wire_fleet(d, ClientFactory(account.session, 3)))
    runtime.wired.cache_clear()
    yield deployment
    runtime.wired.cache_clear()


def test_the_handlers_guard_every_key_of_the_keys_file(
    keys_file_env: Deployment, account: Account, databricks_key: Account
) -> None:
    out = scheduled_check.handler({"id": "s-1", "source": "aws.events", "detail-type": "Scheduled Event"}, _Context())
    assert [k["key_arn"] for k in out["keys"]] == [account.key_arn, databricks_key.key_arn]
    assert all(k["report"]["verdict"] == "compliant" for k in out["keys"])
    assert out["coverage"]["verdict"] in ("ok", "blind")
    account.put_policy(REPLICA, policy_text(admin_statement()))
    event = account.event("put-key-policy-removes-decrypt", region=REPLICA, new_id=True)
    out = kms_event.handler(event, _Context())
    assert [k["key_arn"] for k in out["keys"]] == [account.key_arn]
    assert out["keys"][0]["report"]["verdict"] == "non-compliant"
    [alert] = account.delivered_alerts()
    assert account.key_id in alert["subject"]
    assert "Rockset" in alert["subject"]


def test_the_scheduled_handler_counts_an_evaluation_per_key_and_logs_the_sight_as_such(
    keys_file_env: Deployment, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The deployment's sight evaluates no key: it is not one more `Evaluations`, nor a `key evaluated` line."""
    scheduled_check.handler({"id": "s-1", "source": "aws.events", "detail-type": "Scheduled Event"}, _Context())
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf["Evaluations"] == [1.0] * len(keys_file_env.keys)
    assert "CoverageBlindRegions" in emf  # the sight's coverage metrics are still emitted
    messages = [r.getMessage() for r in caplog.records if r.name == "kms-guard"]
    assert messages.count("key evaluated") == len(keys_file_env.keys)
    assert messages.count("sight checked") == 1


def test_a_keys_file_and_a_single_key_variable_together_fail_the_cold_start(
    keys_file_env: Deployment, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NAMES["key_arn"], account.key_arn)
    with pytest.raises(Exception, match="KMS_GUARD_KEYS_FILE and KMS_GUARD_KEY_ARN"):
        scheduled_check.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, _Context())


class _Context:
    function_name = "kms-guard"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:kms-guard"
    aws_request_id = "req-1"


# --- replicas found, not only configured ------------------------------------------------------------------------


@pytest.fixture
def three_region_key(account: Account) -> Account:
    """A Rockset key with a replica in THIRD, a Region the configuration below does not list."""
    return account.add_key(
        policy=key_policy(account.account, guard_statement(profiles.load("rockset"))),
        description="Rockset key with a third replica",
        regions=[HOME, REPLICA, THIRD],
    )


def test_a_replica_outside_the_configured_regions_is_evaluated_and_reported(
    account: Account, three_region_key: Account
) -> None:
    guard = three_region_key.guard(regions=[HOME, REPLICA])
    report = guard.check()
    assert [r.region for r in report.regions] == [HOME, REPLICA, THIRD]
    third = report.region(THIRD)
    assert third is not None
    [finding] = third.findings
    assert finding.code == Code.REPLICA_UNWATCHED
    assert finding.severity == "info"
    assert f"{HOME},{REPLICA},{THIRD}" in finding.message
    assert report.verdict == "compliant"  # info: the replica itself is fine

    three_region_key.put_policy(THIRD, policy_text(admin_statement()))  # and when the unwatched replica breaks
    broken = three_region_key.guard(regions=[HOME, REPLICA]).check()
    assert broken.verdict == "non-compliant"
    third = broken.region(THIRD)
    assert third is not None
    assert {f.code for f in third.findings} == {Code.REPLICA_UNWATCHED, Code.ACTION_NOT_GRANTED}


def test_the_guard_never_writes_to_an_unwatched_replica(account: Account, three_region_key: Account) -> None:
    three_region_key.put_policy(THIRD, policy_text(admin_statement()))
    before = three_region_key.policy(THIRD)
    guard = three_region_key.guard(regions=[HOME, REPLICA], remediation="restore-statement")
    result = guard.scheduled_check()
    [outcome] = [o for o in result.remediation if o.region == THIRD]
    assert outcome.status == "skipped"
    assert "not a watched Region" in outcome.description
    assert account.calls["kms.PutKeyPolicy"] == 0
    assert three_region_key.policy(THIRD) == before
    [alert] = account.delivered_alerts()
    assert "REPLICA_UNWATCHED" in alert["codes"]
    assert "ACTION_NOT_GRANTED" in alert["codes"]
    assert f'"regions": ["{HOME}", "{REPLICA}", "{THIRD}"]' in alert["message"]  # the exact context change
    assert f"keyArn is {three_region_key.key_arn}," in alert["message"]  # the entry as configured
    assert "cdk deploy --all" in alert["message"]


def test_a_replicate_key_event_outside_the_watched_regions_reports_at_once(account: Account) -> None:
    guard = account.guard(regions=[HOME, REPLICA])
    guard.scheduled_check()
    assert account.delivered_alerts() == []
    account.kms(HOME).replicate_key(KeyId=account.key_id, ReplicaRegion=THIRD)  # moto: its policy is the primary's
    result = guard.handle(account.event("replicate-key-without-grant", region=HOME, new_id=True))
    assert result.decision == "evaluated"
    assert result.report is not None
    assert [r.region for r in result.report.regions] == [HOME, REPLICA, THIRD]
    [alert] = account.delivered_alerts()
    assert alert["codes"] == ["REPLICA_UNWATCHED"]
    assert THIRD in alert["subject"]
    assert alert["severity"] == "info"


def test_an_event_naming_a_region_without_a_replica_adds_nothing(account: Account) -> None:
    event = account.event("replicate-key-without-grant", region=HOME, new_id=True)
    event["detail"]["requestParameters"]["replicaRegion"] = "ap-south-1"
    result = account.guard(regions=[HOME, REPLICA]).handle(event)
    assert result.report is not None
    assert [r.region for r in result.report.regions] == [HOME, REPLICA]
    assert account.calls["kms.DescribeKey"] == 3  # the hinted Region was looked at, once


def test_the_keys_document_round_trips(account: Account, databricks_key: Account) -> None:
    deployment = parse_key_list(entries(account, databricks_key, remediation="revert", restoreKeyState=True))
    document = json.loads(keys_document(deployment))
    assert document["format"] == 1
    again = parse_key_list(document["keys"])
    assert again.keys == deployment.keys


def test_routing_matches_key_ids_of_this_account_only(account: Account, databricks_key: Account) -> None:
    fleet = fleet_of(account, entries(account, databricks_key)).fleet
    other_account = databricks_key.key_arn.replace(account.account, "999988887777")

    def routed(*identifiers: str) -> list[str]:
        event = {"detail": {"resources": [{"ARN": i} for i in identifiers]}}
        return [g.settings.key.key_id for g in fleet.route(event)]

    assert routed(databricks_key.key_arn) == [databricks_key.key_id]
    assert routed(databricks_key.key_id) == [databricks_key.key_id]  # a bare key ID
    assert routed(other_account) == []  # the same ID in another account is another key
    assert routed("alias/databricks", f"arn:aws:kms:{HOME}:{account.account}:alias/x") == []
    assert routed(account.key_arn.replace(HOME, THIRD), databricks_key.key_id) == [
        account.key_id,
        databricks_key.key_id,
    ]
    # identifiers beyond the bound are not looked at: an event cannot make routing expensive
    assert routed(*(["alias/x"] * 64), databricks_key.key_arn) == []


def test_an_event_naming_two_keys_reaches_the_second_when_the_first_fails(
    account: Account, databricks_key: Account
) -> None:
    wired = fleet_of(account, entries(account, databricks_key))
    databricks_key.put_policy(HOME, policy_text(admin_statement()))
    event = databricks_key.event("put-key-policy-removes-decrypt", region=HOME, new_id=True)
    event["detail"]["resources"].insert(0, {"ARN": account.key_arn, "type": "AWS::KMS::Key"})  # routed first
    account.fail_call("dynamodb.PutItem", "ProvisionedThroughputExceededException")  # the first key's event claim
    outcome = wired.fleet.handle(event)
    assert list(outcome.failed) == [account.key_arn]
    assert key_ids(outcome.results) == [databricks_key.key_id]
    [alert] = account.delivered_alerts()
    assert databricks_key.key_id in alert["subject"]
    with pytest.raises(KeysFailed):  # then the invocation fails: Lambda retries; the second key's claim dedupes it
        runtime.record_fleet(outcome)


def test_a_check_that_raises_is_unreadable_for_that_key_only(
    account: Account, databricks_key: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = fleet_of(account, entries(account, databricks_key))
    guard = wired.fleet.guards[0]

    def broken() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(guard, "check_result", broken)
    [(first_arn, first), (second_arn, second)] = wired.fleet.check()
    assert (first_arn, second_arn) == (account.key_arn, databricks_key.key_arn)
    assert first.report is not None
    assert first.report.verdict == "non-compliant"
    assert {f.code for f in first.report.findings} == {Code.POLICY_UNREADABLE}
    assert [r.region for r in first.report.regions] == [HOME, REPLICA]
    assert second.report is not None
    assert second.report.verdict == "compliant"


def test_the_scheduled_check_stops_starting_keys_at_its_deadline(
    account: Account, databricks_key: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    wired = fleet_of(account, entries(account, databricks_key))
    out = wired.fleet.scheduled_check(deadline=time.monotonic() - 1)  # already out of time: nothing is started
    assert out.results == []
    assert set(out.failed) >= {account.key_arn, databricks_key.key_arn}
    assert all("ran out of time" in out.failed[k] for k in (account.key_arn, databricks_key.key_arn))

    state = wired.states[account.key_id]
    slow_load = state.load

    def slow() -> Any:
        time.sleep(1.5)
        return slow_load()

    monkeypatch.setattr(state, "load", slow)
    started = time.monotonic()
    out = wired.fleet.scheduled_check(deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 1.4  # it returned at its deadline, not when the slow key finished
    assert "not finished when the scheduled check ran out of time" in out.failed[account.key_arn]
    assert key_ids(out.results) == [databricks_key.key_id]
    time.sleep(1.2)  # let the slow key's thread finish before moto's mock ends


def test_many_keys_share_one_sight_that_records_canaries_and_the_canary_writes_in_every_keys_region(
    keys_file_env: Deployment, account: Account, databricks_key: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kms_guard.core.coverage import CANARY_ALIAS
    from kms_guard.handlers import canary

    role = f"arn:aws:iam::{account.account}:role/kms-guard-canary"
    monkeypatch.setenv(ENV_NAMES["canary_role_arn"], role)
    monkeypatch.setattr(canary, "ClientFactory", lambda: ClientFactory(account.session, 3))
    canary._wired.cache_clear()
    for region in (HOME, REPLICA):  # what the canary stacks create in every Region of the union
        meta = account.kms(region).create_key(Description="kms-guard canary")["KeyMetadata"]
        account.kms(region).create_alias(AliasName=CANARY_ALIAS, TargetKeyId=meta["KeyId"])
    try:
        assert canary.handler({}, _Context()) == {"sent": sorted([HOME, REPLICA])}
    finally:
        canary._wired.cache_clear()
    event = account.event("canary-tag-resource", region=REPLICA)
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = role
    account.calls.clear()
    out = kms_event.handler(event, _Context())
    assert out["canary"] == {"region": REPLICA}
    assert not any(name.startswith("kms.") for name in account.calls)  # no key evaluated for it
    item = account.client("dynamodb").get_item(
        TableName=account.table, Key={"pk": {"S": SIGHT_PK}, "sk": {"S": f"k#canary#{REPLICA}"}}
    )
    assert "Item" in item  # recorded once, for the deployment, not under any key


def test_the_scheduled_handler_stops_starting_keys_before_lambdas_timeout() -> None:
    import time

    class Remaining(_Context):
        def get_remaining_time_in_millis(self) -> int:
            return 120_000

    limit = scheduled_check.deadline(cast(Any, Remaining()))
    assert limit is not None
    assert 104 < limit - time.monotonic() <= 105  # 2 minutes less the 15-second margin
    assert scheduled_check.deadline(cast(Any, _Context())) is None  # a context that cannot say: no deadline
