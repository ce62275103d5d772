"""The stacks: everything in the home Region (the first key's), and a forwarder in every other Region some key is
watched in (the union of the keys' Regions).

Stacks compose the constructs of each concern (infra.alerts, .state, .function, .routing, .monitoring) and wire them.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.alerts import AlertTopic
from infra.canary import CanaryFunction, CanaryKey
from infra.config import GuardConfig
from infra.function import (
    ARCHITECTURE,
    EVENT_HANDLER,
    LAMBDA_RUNTIME,
    SCHEDULED_HANDLER,
    GuardFunction,
    function_code,
    powertools_layer,
)
from infra.keys import KeysLayer, grant_key_access
from infra.monitoring import alarm_on, dlq_alarm, heartbeat_alarm
from infra.queues import dead_letter_queue
from infra.routing import Forwarders, KmsEventRules
from infra.state import StateTable


class GuardStack(Stack):
    """Home Region: alert topic, state table, the two functions, event rules, schedule, alarms."""

    def __init__(self, scope: Construct, construct_id: str, *, config: GuardConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alerts = AlertTopic(self, "Alerts", emails=config.alert_emails)
        self.state = StateTable(self, "State")
        environment = config.environment(self.alerts.topic.topic_arn, self.state.table.table_name)
        layers = [powertools_layer(self, config.key.partition, config.home_region)]
        self.keys_layer: KeysLayer | None = None
        if config.keys_file is not None:  # many keys: the list travels in a layer, the environment names its file
            self.keys_layer = KeysLayer(
                self, "Keys", document=config.keys_file, runtime=LAMBDA_RUNTIME, architecture=ARCHITECTURE
            )
            layers.append(self.keys_layer.layer)
        code = function_code()

        def guard_function(
            construct_id: str, handler: str, description: str, *, reads_coverage: bool = False
        ) -> GuardFunction:
            return GuardFunction(
                self,
                construct_id,
                handler=handler,
                description=description,
                config=config,
                environment=environment,
                layers=layers,
                code=code,
                alerts=self.alerts,
                table=self.state.table,
                reads_coverage=reads_coverage,
            )

        self.event_function = guard_function(
            "KmsEventFunction", EVENT_HANDLER, "kms-guard: re-evaluates the key when a KMS event may have broken it"
        )
        self.scheduled_function = guard_function(
            "ScheduledCheckFunction",
            SCHEDULED_HANDLER,
            "kms-guard: the scheduled check (safety net, heartbeat, coverage self-check)",
            reads_coverage=True,  # only the scheduled check reads coverage: events never pay for it
        )
        self.key_policies = grant_key_access(self, config, [self.event_function.role, self.scheduled_function.role])
        self.rules = KmsEventRules(self, "KmsEvents", function=self.event_function.function, canary=config.canary)
        self.canary: CanaryFunction | None = None
        if config.canary:
            CanaryKey(self, "CanaryKey")
            self.canary = CanaryFunction(
                self, "Canary", config=config, environment=environment, layers=layers, code=code, alerts=self.alerts
            )
        CfnOutput(
            self,
            "GuardRoleArns",
            description="kms-guard statement --guard-role-arn (comma-separated)",
            value=Fn.join(",", [self.event_function.role.role_arn, self.scheduled_function.role.role_arn]),
        )
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "StateTableName", value=self.state.table.table_name)

        self.schedule_dlq = dead_letter_queue(self, "ScheduleDlq", "scheduled checks EventBridge could not deliver")
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="kms-guard: scheduled check of the key" + ("s" if config.many_keys else ""),
            schedule=events.Schedule.expression(config.check_schedule),
            targets=[
                targets.LambdaFunction(
                    self.scheduled_function.function,
                    dead_letter_queue=self.schedule_dlq,
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                )
            ],
        )
        self._alarms(config)

    def _alarms(self, config: GuardConfig) -> None:
        alerts = self.alerts
        for name, guard in (("KmsEvent", self.event_function), ("ScheduledCheck", self.scheduled_function)):
            alarm_on(
                self,
                f"{name}Errors",
                guard.function.metric_errors(period=Duration.minutes(5)),
                f"kms-guard: the {name} function failed; Lambda retries, then its dead-letter queue keeps the event.",
                alerts,
            )
            dlq_alarm(self, f"{name}AsyncDlqAlarm", guard.dead_letter_queue, f"a {name} invocation", alerts)
        dlq_alarm(self, "EventsDlqAlarm", self.rules.dead_letter_queue, "a KMS event", alerts)
        dlq_alarm(self, "ScheduleDlqAlarm", self.schedule_dlq, "a scheduled check", alerts)
        heartbeat_alarm(self, "ScheduledCheckMissing", self.scheduled_function.function, config.heartbeat, alerts)


class ForwarderStack(Stack):
    """Another Rockset Region: KMS events there are logged only there, so forward them to the home Region."""

    def __init__(self, scope: Construct, construct_id: str, *, config: GuardConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        home_bus_arn = f"arn:{config.key.partition}:events:{config.home_region}:{config.account}:event-bus/default"
        self.forwarders = Forwarders(
            self, "Forwarders", home_bus_arn=home_bus_arn, account=config.account, canary=config.canary
        )
        if config.canary:
            CanaryKey(self, "CanaryKey")
        # CloudWatch alarm actions stay in their Region: this Region gets its own (encrypted) alert topic.
        self.alerts = AlertTopic(self, "Alerts", emails=config.alert_emails)
        dlq_alarm(self, "ForwardDlqAlarm", self.forwarders.dead_letter_queue, "a forwarded KMS event", self.alerts)
