"""Alarms that arrive: every alarm's action, followed to its topic, may really be published by CloudWatch.

Asserted by meaning, not shape: a small evaluator of the synthesized resource policies (Effect, Principal.Service,
Action with wildcards, Resource resolved to logical IDs, the condition operators used, explicit Deny wins) answers
"may cloudwatch.amazonaws.com publish to this topic, from this alarm, in this account?" for the topic policy and for the
topic key's policy. The same evaluator answers for the forwarder role's trust of EventBridge. It fails closed: a
condition operator it does not know makes the test fail, not pass.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, Built

OTHER_ACCOUNT = "444455556666"


@dataclass(frozen=True)
class Request:
    service: str
    action: str
    resource: str
    """A logical ID (what Ref / GetAtt name), or an ARN."""
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    """A multi-valued key (kms:ResourceAliases) is a tuple, as IAM sees a set of values."""


def resolve(value: Any, stack: dict[str, str]) -> Any:
    """Resolve the intrinsics CDK writes into policies, with the pseudo parameters of the stack's environment."""
    if isinstance(value, list):
        return [resolve(v, stack) for v in value]
    if isinstance(value, dict):
        if "Ref" in value:
            return stack.get(value["Ref"], value["Ref"])
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(p, stack)) for p in parts)
        if any(k.startswith("Fn::") for k in value):
            raise AssertionError(f"unresolved intrinsic {value}")
        return {k: resolve(v, stack) for k, v in value.items()}
    return value


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(statement: dict[str, Any], service: str) -> bool:
    negated = {"NotPrincipal", "NotAction", "NotResource"} & set(statement)
    if negated:  # fail closed: this small evaluator does not model the Not* elements
        raise AssertionError(f"statement uses {sorted(negated)}: extend the evaluator before trusting it")
    principal = statement.get("Principal")
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    return isinstance(principal, dict) and service in _listed(principal.get("Service", []))


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"]))


def _resource_matches(statement: dict[str, Any], resource: str) -> bool:
    """IAM's resource wildcards (`*`, `?`) as glob patterns; no statement here uses `[`, which glob would read."""
    return any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement.get("Resource", "*")))


def _conditions_hold(statement: dict[str, Any], context: Mapping[str, str | tuple[str, ...]]) -> bool:
    for operator, tests in statement.get("Condition", {}).items():
        for key, expected in tests.items():
            values = [str(v) for v in _listed(expected)]
            given = context.get(key)
            if operator == "ForAnyValue:StringEquals":  # a multi-valued key: some value of the request is listed
                ok = isinstance(given, tuple) and any(v in values for v in given)
                if not ok:
                    return False
                continue
            if isinstance(given, tuple):
                raise AssertionError(f"{operator} on the multi-valued {key}: extend the evaluator rather than guess")
            actual = given
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual is not None and actual in values
            elif operator in ("StringLike", "ArnLike"):
                ok = actual is not None and any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif operator == "Bool":
                ok = actual is not None and actual.lower() in [v.lower() for v in values]
            else:
                raise AssertionError(f"the evaluator does not know {operator}: extend it rather than guess")
            if not ok:
                return False
    return True


def allowed(document: dict[str, Any], request: Request, stack: dict[str, str]) -> bool:
    """IAM's order: an explicit Deny that applies wins, then an Allow that applies is needed."""
    applying = [
        s
        for s in resolve(document["Statement"], stack)
        if _principal_matches(s, request.service)
        and _action_matches(s, request.action)
        and _resource_matches(s, request.resource)
        and _conditions_hold(s, request.context)
    ]
    return not any(s["Effect"] == "Deny" for s in applying) and any(s["Effect"] == "Allow" for s in applying)


def identity_allows(
    statements: list[dict[str, Any]], action: str, resource: str, context: Mapping[str, str | tuple[str, ...]]
) -> bool:
    """What a role's own (identity) policies allow, in the same order as `allowed`: they have no Principal."""
    if any({"Principal", "NotPrincipal", "NotAction", "NotResource"} & set(s) for s in statements):
        raise AssertionError("not an identity policy the evaluator models")
    applying = [
        s
        for s in statements
        if _action_matches(s, action) and _resource_matches(s, resource) and _conditions_hold(s, context)
    ]
    return not any(s["Effect"] == "Deny" for s in applying) and any(s["Effect"] == "Allow" for s in applying)


def _templates(built: Built) -> list[tuple[str, dict[str, Any]]]:
    templates = [("us-west-2", built["home"]), *built["forwarders"].items()]
    return [(region, dict(template.to_json())) for region, template in templates]


def _pseudo(region: str) -> dict[str, str]:
    return {"AWS::AccountId": ACCOUNT, "AWS::Region": region, "AWS::Partition": "aws"}


def _alarm_deliveries(built: Built) -> list[tuple[str, str, dict[str, Any], str, dict[str, str]]]:
    """(region, alarm ARN, template, topic logical ID, pseudo parameters) for every action of every alarm."""
    out: list[tuple[str, str, dict[str, Any], str, dict[str, str]]] = []
    for region, template in _templates(built):
        for alarm in (r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"):
            props = alarm["Properties"]
            assert "AlarmName" in props, "an alarm without a fixed name has an ARN no policy can name"
            arn = f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{props['AlarmName']}"
            actions = props.get("AlarmActions", []) + props.get("InsufficientDataActions", [])
            assert actions, f"{props['AlarmName']} notifies nobody"
            out.extend((region, arn, template, action["Ref"], _pseudo(region)) for action in actions)
    return out


def _topic_policy(template: dict[str, Any], topic: str) -> dict[str, Any]:
    policy: dict[str, Any]
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic} in r["Properties"]["Topics"]
    ]
    return policy


def _topic_key_policy(template: dict[str, Any], topic: str) -> tuple[str, dict[str, Any]]:
    key_id = template["Resources"][topic]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy: dict[str, Any] = template["Resources"][key_id]["Properties"]["KeyPolicy"]
    return key_id, key_policy


def _publish(topic: str, alarm_arn: str, account: str) -> Request:
    context = {"aws:SourceAccount": account, "aws:SourceArn": alarm_arn, "aws:SecureTransport": "true"}
    return Request("cloudwatch.amazonaws.com", "sns:Publish", topic, context)


def test_every_alarm_in_every_stack_may_publish_to_its_topic_and_use_its_key(on: Built) -> None:
    """An assumption, not proven here: the KMS requests made for CloudWatch's publish carry `aws:SourceAccount` and
    `aws:SourceArn` (the alarm's ARN), as the topic's own request does. aws-facts.md says only to limit the topic's
    Allow with them; AWS's SNS key-management page (compatibility with event sources) shows the CloudWatch key-policy
    statement without conditions, and for EventBridge's delivery to an encrypted topic these keys are reported absent
    from the KMS request. Were they absent for CloudWatch too, the key policy's condition would drop every alarm
    silently while this test passes: only a deploy to AWS (an alarm set to ALARM with `SetAlarmState`) can tell."""
    deliveries = _alarm_deliveries(on)
    assert len({region for region, *_ in deliveries}) == 3  # the home stack and both forwarders
    for _, alarm_arn, template, topic, pseudo in deliveries:
        assert allowed(_topic_policy(template, topic), _publish(topic, alarm_arn, ACCOUNT), pseudo), alarm_arn
        key_id, key_policy = _topic_key_policy(template, topic)
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm_arn}
            request = Request("cloudwatch.amazonaws.com", action, key_id, context)
            assert allowed(key_policy, request, pseudo), (alarm_arn, action)


def test_cloudwatch_acting_for_another_account_or_alarm_may_not_publish(on: Built) -> None:
    for region, alarm_arn, template, topic, pseudo in _alarm_deliveries(on):
        policy = _topic_policy(template, topic)
        key_id, key_policy = _topic_key_policy(template, topic)
        foreign = alarm_arn.replace(ACCOUNT, OTHER_ACCOUNT)
        assert not allowed(policy, _publish(topic, foreign, OTHER_ACCOUNT), pseudo)
        assert not allowed(policy, _publish(topic, alarm_arn, OTHER_ACCOUNT), pseudo)
        stranger = f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:someone-elses-alarm"
        assert not allowed(policy, _publish(topic, stranger, ACCOUNT), pseudo)
        context = {"aws:SourceAccount": OTHER_ACCOUNT, "aws:SourceArn": foreign}
        assert not allowed(key_policy, Request("cloudwatch.amazonaws.com", "kms:Decrypt", key_id, context), pseudo)


def test_publishing_without_tls_is_denied_even_to_cloudwatch(off: Built) -> None:
    for _, alarm_arn, template, topic, pseudo in _alarm_deliveries(off):
        request = _publish(topic, alarm_arn, ACCOUNT)
        plain = Request(request.service, request.action, topic, {**request.context, "aws:SecureTransport": "false"})
        assert not allowed(_topic_policy(template, topic), plain, pseudo)


def test_the_evaluator_finds_the_defect_of_a_deny_only_topic_policy() -> None:
    """The policy CDK wrote for enforce_ssl alone (issue 11) must read as 'CloudWatch may not publish'."""
    deny_only = {
        "Statement": [
            {
                "Action": "sns:Publish",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Effect": "Deny",
                "Principal": "*",
                "Resource": {"Ref": "Topic"},
            }
        ]
    }
    alarm = f"arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:x"
    assert not allowed(deny_only, _publish("Topic", alarm, ACCOUNT), _pseudo("us-west-2"))


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_only_this_accounts_eventbridge_rules_may_assume_the_forwarder_role(off: Built, region: str) -> None:
    template = off["forwarders"][region].to_json()
    [trust] = [
        r["Properties"]["AssumeRolePolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    ]
    rule = f"arn:aws:events:{region}:{ACCOUNT}:rule/KmsGuardForwarder-CloudTrail"

    def assume(account: str, source: str) -> Request:
        return Request(
            "events.amazonaws.com", "sts:AssumeRole", "*", {"aws:SourceAccount": account, "aws:SourceArn": source}
        )

    assert allowed(trust, assume(ACCOUNT, rule), _pseudo(region))
    assert not allowed(trust, assume(OTHER_ACCOUNT, rule.replace(ACCOUNT, OTHER_ACCOUNT)), _pseudo(region))
    assert not allowed(trust, assume(ACCOUNT, f"arn:aws:events:{region}:{ACCOUNT}:event-bus/default"), _pseudo(region))
