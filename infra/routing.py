"""Event routing: which KMS events can break the key, and one rule builder for the home rules and the forwarders.

Event patterns come from the event parser's own lists (`kms_guard.core.events`): what is routed cannot drift from
what the function recognises. Rules have fixed names (`kms_guard.core.coverage.RULE_NAMES`, the same in every Region),
so the scheduled check can find them (DescribeRule) and say when one is missing or disabled (GUARD_RULE_MISSING).
With the opt-in canary, the API-call rule also carries the canary's TagResource (only when the canary role made it),
so a canary that arrives has crossed the very rule, forwarder and function the key's events cross. The home Region's
rules and every forwarder are built by `kms_event_rules`, so the same events reach the function from every Region;
only the target differs.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from kms_guard.core.coverage import CANARY_EVENT, CANARY_ROLE_NAME, RULE_NAMES
from kms_guard.core.events import API_CALL, API_EVENTS, KMS_EVENTS, SERVICE_EVENT, SERVICE_EVENTS

from infra.queues import dead_letter_queue

RULE_NAME = {"CloudTrail": RULE_NAMES[0], "KmsEvents": RULE_NAMES[1]}


def event_patterns(*, canary: bool = False) -> dict[str, events.EventPattern]:
    """The KMS events that can break the key: CloudTrail API calls and service events, and KMS's own events.

    Failed calls are filtered out here already (they change nothing); the function drops other keys.
    """
    key_events: dict[str, object] = {"eventName": sorted(API_EVENTS | SERVICE_EVENTS)}
    if canary:
        key_events = {
            "$or": [
                key_events,
                {
                    "eventName": [CANARY_EVENT],
                    "userIdentity": {"sessionContext": {"sessionIssuer": {"userName": [CANARY_ROLE_NAME]}}},
                },
            ]
        }
    return {
        "CloudTrail": events.EventPattern(
            source=["aws.kms"],
            detail_type=[API_CALL, SERVICE_EVENT],
            detail={"eventSource": ["kms.amazonaws.com"], **key_events, "errorCode": [{"exists": False}]},
        ),
        "KmsEvents": events.EventPattern(source=["aws.kms"], detail_type=sorted(KMS_EVENTS)),
    }


def kms_event_rules(
    scope: Construct, *, destination: str, target: events.IRuleTarget, canary: bool = False
) -> list[events.Rule]:
    """One rule per event pattern, each delivering to `target` (the guard function, or the home Region's bus)."""
    return [
        events.Rule(
            scope,
            name,
            rule_name=RULE_NAME[name],
            description=f"kms-guard: {name} events that can break the key, {destination}",
            event_pattern=pattern,
            targets=[target],
        )
        for name, pattern in event_patterns(canary=canary).items()
    ]


class KmsEventRules(Construct):
    """Rules on the home Region's default bus: local KMS events and those forwarded from the other Regions."""

    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, canary: bool = False
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = dead_letter_queue(self, "Dlq", "events EventBridge could not deliver")
        target = targets.LambdaFunction(
            function, dead_letter_queue=self.dead_letter_queue, retry_attempts=8, max_event_age=Duration.hours(6)
        )
        self.rules = kms_event_rules(self, destination="to the guard function", target=target, canary=canary)


class Forwarders(Construct):
    """In every other Region some key is watched in: the same rules, forwarding to the home Region's default bus."""

    def __init__(
        self, scope: Construct, construct_id: str, *, home_bus_arn: str, account: str, canary: bool = False
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Only EventBridge acting for this account's rules in this Region may assume the role (confused deputy). The
        # rules are named by the wildcard: they name the role, so the role cannot name them back without a cycle.
        rules = stack.format_arn(service="events", resource="rule", resource_name="*")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": rules}}
            ),
            description="kms-guard: forward KMS events to the home Region's default event bus",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[home_bus_arn]))
        bus = events.EventBus.from_event_bus_arn(self, "HomeBus", home_bus_arn)
        self.dead_letter_queue = dead_letter_queue(self, "Dlq", "events that could not be forwarded")
        target = targets.EventBus(bus, role=self.role, dead_letter_queue=self.dead_letter_queue)
        self.rules = kms_event_rules(self, destination="forwarded to the home Region", target=target, canary=canary)
