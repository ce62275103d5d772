"""The coverage self-check and the opt-in canary in the templates: fixed rule names the function is told, read-only
grants on exactly what coverage reads, and no canary resource or permission unless `canary` is true."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template
from kms_guard.aws.canary import CANARY_ACTIONS
from kms_guard.core.coverage import CANARY_ALIAS, CANARY_ROLE_NAME, RULE_NAMES
from kms_guard.settings import ENV_NAMES

from tests.infra.conftest import ACCOUNT, REGIONS, Built, build
from tests.infra.test_alarm_delivery import identity_allows, resolve
from tests.infra.test_checks import assert_cfn_lint_clean
from tests.infra.test_stacks import event_patterns, policy_statements, resources, route
from tests.support import load_event

CANARY_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{CANARY_ROLE_NAME}"


def canary_on() -> Built:
    return build(canary=True)


def rule_names(template: Template) -> set[str]:
    return {
        r["Properties"]["Name"]
        for r in resources(template, "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    }


def env_of(template: Template, handler: str) -> dict[str, Any]:
    [function] = [
        f for f in resources(template, "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler
    ]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def everything(built: Built) -> str:
    return json.dumps([built["home"].to_json(), *(t.to_json() for t in built["forwarders"].values())])


# --- coverage ---------------------------------------------------------------------------------------------------


def test_the_guards_rules_have_the_names_the_function_is_told_in_every_region(off: Built) -> None:
    for template in [off["home"], *off["forwarders"].values()]:
        assert rule_names(template) == set(RULE_NAMES)
    env = env_of(off["home"], "kms_guard.handlers.scheduled_check.handler")
    assert env[ENV_NAMES["rule_names"]] == ",".join(RULE_NAMES)
    assert env[ENV_NAMES["check_interval_minutes"]] == "15"


def test_only_the_scheduled_check_may_read_coverage_and_only_read(off: Built) -> None:
    statements = policy_statements(off["home"])
    coverage_actions = {"cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"}
    coverage_actions |= {"events:DescribeRule", "events:ListTargetsByRule"}
    by_role: dict[str, set[str]] = {}
    for logical_id, actions, _ in statements:
        for action in actions:
            if action.split(":")[0] in ("cloudtrail", "events"):
                by_role.setdefault(logical_id.split("Role")[0], set()).add(action)
    assert by_role == {"ScheduledCheckFunction": coverage_actions}
    [(_, rules)] = [(a, r) for lid, a, r in statements if a == ["events:DescribeRule", "events:ListTargetsByRule"]]
    assert rules == [f"arn:aws:events:{r}:{ACCOUNT}:rule/{n}" for r in REGIONS for n in RULE_NAMES]


# --- canary off: nothing of it --------------------------------------------------------------------------------------


def test_without_the_canary_context_no_canary_resource_or_permission_is_synthesized(off: Built) -> None:
    text = everything(off)
    for needle in (CANARY_ROLE_NAME, CANARY_ALIAS, "kms:TagResource", "TagResource", "EVENT_PATH_SILENT", "canary"):
        assert needle not in text, needle
    assert env_of(off["home"], "kms_guard.handlers.scheduled_check.handler")[ENV_NAMES["canary_role_arn"]] == ""


# --- canary on --------------------------------------------------------------------------------------------------


def test_the_canary_keys_are_the_guards_own_in_every_region() -> None:
    built = canary_on()
    for template in [built["home"], *built["forwarders"].values()]:
        aliases = [a["Properties"]["AliasName"] for a in resources(template, "AWS::KMS::Alias").values()]
        assert aliases == [CANARY_ALIAS]
        [canary_key] = [
            k["Properties"]
            for k in resources(template, "AWS::KMS::Key").values()
            if "canary" in k["Properties"].get("Description", "")
        ]
        assert canary_key["EnableKeyRotation"] is True
        assert canary_key["PendingWindowInDays"] == 7


def _role_statements(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to the role (the canary's role has no managed policy)."""
    role = resources(template, "AWS::IAM::Role")[role_logical_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), role
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_canary_may_only_tag_keys_behind_the_canary_alias_in_the_watched_regions() -> None:
    """What IAM would decide for the calls the canary makes (`CanarySender.send_one`: DescribeKey by the alias, then
    TagResource on the key's ARN), evaluated on the role's policies, not compared with a statement's text."""
    home = canary_on()["home"]
    [(role_id, role)] = [
        (lid, r) for lid, r in resources(home, "AWS::IAM::Role").items() if r["Properties"].get("RoleName")
    ]
    assert role["Properties"]["RoleName"] == CANARY_ROLE_NAME
    statements = resolve(_role_statements(home, role_id), {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})
    canary = {"kms:ResourceAliases": (CANARY_ALIAS,)}
    beside_another = {"kms:ResourceAliases": ("alias/something-else", CANARY_ALIAS)}
    for region in REGIONS:
        key = f"arn:aws:kms:{region}:{ACCOUNT}:key/0b1c2d3e-1111-2222-3333-444455556666"
        for action in CANARY_ACTIONS:
            assert identity_allows(statements, action, key, canary), (action, region)
            assert identity_allows(statements, action, key, beside_another), (action, region)
            # any other key of the account, aliased or not: the guarded key, a customer's data key
            assert not identity_allows(statements, action, key, {"kms:ResourceAliases": ("alias/data",)})
            assert not identity_allows(statements, action, key, {})
            assert not identity_allows(statements, action, key.replace(ACCOUNT, "444455556666"), canary)
        for action in ("kms:UntagResource", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:Decrypt"):
            assert not identity_allows(statements, action, key, canary), action
    outside = f"arn:aws:kms:ap-southeast-2:{ACCOUNT}:key/0b1c2d3e-1111-2222-3333-444455556666"
    assert "ap-southeast-2" not in REGIONS
    assert not identity_allows(statements, "kms:TagResource", outside, canary)
    # no other statement anywhere in the stack grants the canary's write
    granted = [a for _, actions, _ in policy_statements(home) for a in actions]
    assert granted.count("kms:TagResource") == 1


def test_the_canary_runs_on_the_checks_schedule_and_the_guard_is_told_its_role() -> None:
    home = canary_on()["home"]
    schedules = [
        r["Properties"]
        for r in resources(home, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert [s["ScheduleExpression"] for s in schedules] == ["rate(15 minutes)", "rate(15 minutes)"]
    for handler in ("kms_guard.handlers.kms_event.handler", "kms_guard.handlers.scheduled_check.handler"):
        assert env_of(home, handler)[ENV_NAMES["canary_role_arn"]] == CANARY_ROLE_ARN
    env_of(home, "kms_guard.handlers.canary.handler")  # the canary function exists


def test_event_path_silent_alarms_to_the_topic() -> None:
    home = canary_on()["home"]
    [alarm] = [
        a["Properties"]
        for a in resources(home, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Coverage.EVENT_PATH_SILENT"
    ]
    assert alarm["Namespace"] == "KmsGuard"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "kms-guard"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    [topic_id] = resources(home, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def _route(template: Template, events: list[dict[str, Any]], region: str) -> list[str]:
    """Each event on a moto bus whose rules carry the template's patterns: the event names that arrive."""
    return [body["detail"].get("eventName") for body in route(event_patterns(template), events, region)]


def _canary(**identity: Any) -> dict[str, Any]:
    event = load_event("canary-tag-resource")
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"].update(identity)
    return event


def test_the_rules_carry_the_canary_only_from_the_canary_role_and_only_with_the_canary_on(off: Built) -> None:
    built = canary_on()
    someone_else = _canary(userName="PlatformAdmin", arn=f"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin")
    key_event = load_event("put-key-policy-removes-decrypt")
    for region, template in [("us-west-2", built["home"]), *built["forwarders"].items()]:
        assert _route(template, [_canary(), someone_else, key_event], region) == ["TagResource", "PutKeyPolicy"]
    assert _route(off["home"], [_canary(), key_event], "us-west-2") == ["PutKeyPolicy"]


def test_cfn_lint_is_clean_with_the_canary() -> None:
    assert_cfn_lint_clean(canary_on()["assembly"].directory, stacks=3)


def test_the_canary_context_key_is_a_boolean() -> None:
    import pytest

    from infra.config import ConfigError, config_from_context
    from tests.infra.conftest import BASE

    assert config_from_context({**BASE, "canary": "true"}).canary is True
    assert config_from_context(BASE).canary is False
    with pytest.raises(ConfigError, match="canary: must be true or false"):
        config_from_context({**BASE, "canary": "sometimes"})
