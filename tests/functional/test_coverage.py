"""The coverage self-check and the canary against moto: real trails, selectors, rules, the state table and SNS.

moto gap (aws-facts.md covers the rest): GetEventSelectors answers a shadow trail only in its home Region; the adapter
asks there by design (selectors belong to the trail), so the gap cannot hide a bug here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kms_guard.aws.canary import CanarySender
from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.coverage import CoverageGateway
from kms_guard.core.coverage import CANARY_ALIAS, CANARY_TAG_KEY, CANARY_TAG_VALUE, RULE_NAMES, assess_coverage
from kms_guard.handlers import canary, kms_event, runtime
from kms_guard.wiring import wire_fleet
from kms_guard_cli.simulated import SimulatedAccount

from tests.functional.conftest import GOOD_POLICY, HOME, REPLICA, THIRD
from tests.functional.test_handlers import Context, metric_names

REGIONS = (HOME, REPLICA)
CANARY_ROLE = "arn:aws:iam::123456789012:role/kms-guard-canary"


def coverage(account: SimulatedAccount, regions: tuple[str, ...] = REGIONS) -> dict[str, list[str]]:
    sights = CoverageGateway(ClientFactory(account.session)).read(regions, RULE_NAMES)
    report = assess_coverage(sights, home_region=HOME, rule_names=RULE_NAMES)
    return {r.region: [f.code.value for f in r.findings] for r in report.regions}


@pytest.fixture
def bare(aws: None) -> SimulatedAccount:
    """An account without a trail or the guard's rules (the tests add what they need)."""
    return SimulatedAccount.create(policy=GOOD_POLICY, covered=False)


def test_a_logging_multi_region_trail_and_the_guards_rules_cover_every_region(account: SimulatedAccount) -> None:
    assert coverage(account) == {HOME: [], REPLICA: []}


def test_a_stopped_trail_is_not_logging_in_every_region_it_applies_to(account: SimulatedAccount) -> None:
    account.client("cloudtrail").stop_logging(Name="management-events")
    assert coverage(account) == {HOME: ["TRAIL_NOT_LOGGING"], REPLICA: ["TRAIL_NOT_LOGGING"]}


def test_a_trail_excluding_kms_is_kms_events_excluded(account: SimulatedAccount) -> None:
    account.client("cloudtrail").put_event_selectors(
        TrailName="management-events",
        EventSelectors=[
            {
                "ReadWriteType": "All",
                "IncludeManagementEvents": True,
                "ExcludeManagementEventSources": ["kms.amazonaws.com"],
            }
        ],
    )
    assert coverage(account) == {HOME: ["KMS_EVENTS_EXCLUDED"], REPLICA: ["KMS_EVENTS_EXCLUDED"]}


def test_an_advanced_selector_for_read_only_management_events_is_kms_events_excluded(account: SimulatedAccount) -> None:
    account.client("cloudtrail").put_event_selectors(
        TrailName="management-events",
        AdvancedEventSelectors=[
            {
                "Name": "reads only",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "readOnly", "Equals": ["true"]},
                ],
            }
        ],
    )
    assert coverage(account) == {HOME: ["KMS_EVENTS_EXCLUDED"], REPLICA: ["KMS_EVENTS_EXCLUDED"]}


def test_no_trail_is_trail_missing(bare: SimulatedAccount) -> None:
    bare.guard_rules(REGIONS)
    assert coverage(bare) == {HOME: ["TRAIL_MISSING"], REPLICA: ["TRAIL_MISSING"]}


def test_a_shadow_trail_from_another_home_region_covers_and_a_single_region_trail_only_its_own(
    bare: SimulatedAccount,
) -> None:
    bare.guard_rules(REGIONS)
    bare.trail("single", region=HOME, multi_region=False)
    assert coverage(bare) == {HOME: [], REPLICA: ["TRAIL_MISSING"]}
    bare.trail("elsewhere", region=THIRD)  # multi-Region, homed in a Region the guard does not watch
    assert coverage(bare) == {HOME: [], REPLICA: []}


def test_a_disabled_or_deleted_guard_rule_is_guard_rule_missing(account: SimulatedAccount) -> None:
    account.client("events", REPLICA).disable_rule(Name=RULE_NAMES[0])
    account.client("events", HOME).remove_targets(Rule=RULE_NAMES[1], Ids=["guard"])  # a rule must lose its targets
    account.client("events", HOME).delete_rule(Name=RULE_NAMES[1])
    assert coverage(account) == {HOME: ["GUARD_RULE_MISSING"], REPLICA: ["GUARD_RULE_MISSING"]}


def test_trails_the_guard_may_not_list_are_unknown_never_ok(account: SimulatedAccount) -> None:
    account.fail_call("cloudtrail.DescribeTrails", "AccessDeniedException", times=2, status=400)
    sights = CoverageGateway(ClientFactory(account.session)).read(REGIONS, RULE_NAMES)
    report = assess_coverage(sights, home_region=HOME, rule_names=RULE_NAMES)
    assert [r.status for r in report.regions] == ["unknown", "unknown"]
    assert report.verdict == "blind"
    assert "AccessDeniedException" in report.findings[0].message


def test_the_reads_are_bounded_selectors_once_per_trail(account: SimulatedAccount) -> None:
    account.calls.clear()
    coverage(account, (HOME, REPLICA, THIRD))
    assert account.calls["cloudtrail.DescribeTrails"] == 3
    assert account.calls["cloudtrail.GetTrailStatus"] == 3
    assert account.calls["cloudtrail.GetEventSelectors"] == 1
    assert account.calls["eventbridge.DescribeRule"] == 3 * len(RULE_NAMES)


def test_the_scheduled_check_alerts_the_subscriber_once_per_change_of_coverage(account: SimulatedAccount) -> None:
    guard = account.guard(coverage_every_minutes=0)  # read the sight on every check (hourly by default)
    guard.handle(account.event("scheduled-check", new_id=True))
    assert account.delivered_alerts() == []

    account.client("cloudtrail").stop_logging(Name="management-events")
    result = guard.handle(account.event("scheduled-check", new_id=True))
    assert result.report is not None
    assert result.report.verdict == "compliant"
    [alert] = account.delivered_alerts()
    assert alert["subject"].startswith("[COVERAGE] Rockset key")
    assert alert["severity"] == "warning"
    assert alert["codes"] == ["TRAIL_NOT_LOGGING"]
    assert "aws cloudtrail start-logging" in alert["message"]

    guard.handle(account.event("scheduled-check", new_id=True))
    assert account.delivered_alerts() == []  # recorded in the state table: quiet while nothing changes

    account.client("cloudtrail").start_logging(Name="management-events")
    # a new container: state from DynamoDB
    account.guard(coverage_every_minutes=0).handle(account.event("scheduled-check", new_id=True))
    [resolved] = account.delivered_alerts()
    assert resolved["subject"].startswith("[COVERAGE OK]")
    assert resolved["severity"] == "info"


def test_a_new_container_within_the_hour_does_not_read_the_sight_again(account: SimulatedAccount) -> None:
    """When the sight was last read is kept in the state table: a cold start does not reset the hourly cadence."""
    account.guard().handle(account.event("scheduled-check", new_id=True))
    assert account.calls["cloudtrail.DescribeTrails"] > 0
    account.calls.clear()
    result = account.guard().handle(account.event("scheduled-check", new_id=True))  # a new container
    assert result.coverage is None
    assert not [call for call in account.calls if call.startswith(("cloudtrail.", "eventbridge."))]
    assert account.calls["kms.GetKeyPolicy"] == 2  # the key itself is read as always


def test_an_event_does_not_read_coverage(account: SimulatedAccount) -> None:
    account.calls.clear()
    result = account.guard().handle(account.event("enable-key"))
    assert result.decision == "evaluated"  # an ignored event reads nothing at all: that would prove nothing here
    assert account.calls["kms.GetKeyPolicy"] == 2
    assert result.coverage is None
    assert not any(name.startswith(("cloudtrail.", "eventbridge.")) for name in account.calls)


# --- the canary -----------------------------------------------------------------------------------------------------


def canary_keys(account: SimulatedAccount, regions: tuple[str, ...] = REGIONS) -> dict[str, str]:
    """What the canary stacks create: a guard-owned key behind the canary alias in each Region."""
    arns = {}
    for region in regions:
        kms = account.kms(region)
        meta = kms.create_key(Description="kms-guard canary: no data, do not use")["KeyMetadata"]
        kms.create_alias(AliasName=CANARY_ALIAS, TargetKeyId=meta["KeyId"])
        arns[region] = meta["Arn"]
    return arns


def test_the_canary_write_tags_the_canary_key_the_same_way_every_time(account: SimulatedAccount) -> None:
    keys = canary_keys(account)
    sender = CanarySender(ClientFactory(account.session))
    for _ in range(3):
        assert sender.send(REGIONS) == {HOME: None, REPLICA: None}
    assert account.calls["kms.TagResource"] == 6  # each run is a logged management write...
    for region, arn in keys.items():  # ...and the key's tags are exactly one, unchanged
        tags = account.kms(region).list_resource_tags(KeyId=arn)["Tags"]
        assert tags == [{"TagKey": CANARY_TAG_KEY, "TagValue": CANARY_TAG_VALUE}]
    # the guarded key is never touched
    assert account.kms(HOME).list_resource_tags(KeyId=account.key_id)["Tags"] == []


@pytest.fixture
def canary_env(account: SimulatedAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedAccount]:
    for name, value in account.environment(REGIONS).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KMS_GUARD_CANARY_ROLE_ARN", CANARY_ROLE)
    monkeypatch.setattr(
        runtime, "wire_fleet", lambda deployment: wire_fleet(deployment, ClientFactory(account.session))
    )
    runtime.wired.cache_clear()
    canary._wired.cache_clear()
    monkeypatch.setattr(canary, "ClientFactory", lambda: ClientFactory(account.session))
    yield account
    runtime.wired.cache_clear()
    canary._wired.cache_clear()


def test_the_canary_handler_fails_loudly_naming_a_region_without_its_key(
    canary_env: SimulatedAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    canary_keys(canary_env, (HOME,))
    with pytest.raises(canary.CanaryFailed, match=f"{REPLICA}: NotFoundException"):
        canary.handler({}, Context(function_name="kms-guard-canary"))
    assert {"CanarySent", "CanaryFailed"} <= metric_names(capsys)


def test_a_canary_event_is_recorded_in_the_state_table_and_counted(
    canary_env: SimulatedAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    account = canary_env
    event = account.event("canary-tag-resource", region=REPLICA)
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = CANARY_ROLE
    account.calls.clear()
    result = kms_event.handler(event, Context())
    assert result["decision"] == "ignored"
    assert result["canary"] == {"region": REPLICA}
    assert "CanaryArrived" in metric_names(capsys)
    assert not any(name.startswith("kms.") for name in account.calls)  # never evaluated as the key
    item = account.client("dynamodb").get_item(
        TableName=account.table, Key={"pk": {"S": account.key_id}, "sk": {"S": f"k#canary#{REPLICA}"}}
    )["Item"]
    assert float(item["arrived_at"]["N"]) > 0


def test_event_path_silent_is_raised_for_the_region_whose_canary_is_late_and_metered(account: SimulatedAccount) -> None:
    now = [1_800_000_000.0]
    guard = account.guard(canary_role_arn=CANARY_ROLE, clock=lambda: now[0])
    guard.handle(account.event("scheduled-check", new_id=True))  # canaries expected from now on
    event = account.event("canary-tag-resource", region=HOME)
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = CANARY_ROLE
    now[0] += guard.settings.canary_max_age_seconds - 60
    guard.handle(event)
    now[0] += 120
    result = guard.handle(account.event("scheduled-check", new_id=True))
    assert result.coverage is not None
    assert [(f.code.value, f.region) for f in result.coverage.findings] == [("EVENT_PATH_SILENT", REPLICA)]
    [alert] = account.delivered_alerts()
    assert alert["codes"] == ["EVENT_PATH_SILENT"]
    assert "events not arriving in us-east-1" in alert["subject"]
    assert json.loads(json.dumps(result.to_dict()))["coverage"]["regions"][1]["status"] == "blind"


def test_an_enabled_guard_rule_without_a_target_is_guard_rule_missing(account: SimulatedAccount) -> None:
    """The rule exists and is enabled, but someone removed its target: events there reach nothing."""
    account.client("events", REPLICA).remove_targets(Rule=RULE_NAMES[0], Ids=["guard"])
    report = account.guard().check_coverage()
    assert report is not None
    [region] = [r for r in report.regions if r.region == REPLICA]
    assert [f.code.value for f in region.findings] == ["GUARD_RULE_MISSING"]
    assert "has no target" in region.findings[0].message
    assert report.verdict == "blind"
