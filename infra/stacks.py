"""The stacks: everything in the key's home Region, and a forwarder in every other Rockset Region."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.config import GuardConfig
from infra.constructs import (
    AlertTopic,
    Forwarders,
    GuardFunction,
    KmsEventRules,
    StateTable,
    alarm_on,
    dlq_alarm,
    encrypted_queue,
    function_code,
    powertools_layer,
)

EVENT_HANDLER = "kms_guard.handlers.kms_event.handler"
SCHEDULED_HANDLER = "kms_guard.handlers.scheduled_check.handler"


class GuardStack(Stack):
    """Home Region: alert topic, state table, the two functions, event rules, schedule, alarms."""

    def __init__(self, scope: Construct, construct_id: str, *, config: GuardConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alerts = AlertTopic(self, "Alerts", emails=config.alert_emails)
        self.state = StateTable(self, "State")
        environment = config.environment(self.alerts.topic.topic_arn, self.state.table.table_name)
        layer = powertools_layer(self, config.home_region)
        code = function_code()

        def guard_function(construct_id: str, handler: str, description: str) -> GuardFunction:
            return GuardFunction(
                self,
                construct_id,
                handler=handler,
                description=description,
                config=config,
                environment=environment,
                layer=layer,
                code=code,
                alerts=self.alerts,
                table=self.state.table,
            )

        self.event_function = guard_function(
            "KmsEventFunction", EVENT_HANDLER, "kms-guard: re-evaluates the key when a KMS event may have broken it"
        )
        self.scheduled_function = guard_function(
            "ScheduledCheckFunction", SCHEDULED_HANDLER, "kms-guard: the scheduled check (safety net and heartbeat)"
        )
        self.rules = KmsEventRules(self, "KmsEvents", function=self.event_function.function)
        CfnOutput(
            self,
            "GuardRoleArns",
            description="kms-guard statement --guard-role-arn (comma-separated)",
            value=Fn.join(",", [self.event_function.role.role_arn, self.scheduled_function.role.role_arn]),
        )
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "StateTableName", value=self.state.table.table_name)

        self.schedule_dlq = encrypted_queue(self, "ScheduleDlq", "scheduled checks EventBridge could not deliver")
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="kms-guard: scheduled check of the key",
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
        topic = self.alerts.topic
        for name, guard in (("KmsEvent", self.event_function), ("ScheduledCheck", self.scheduled_function)):
            alarm_on(
                self,
                f"{name}Errors",
                guard.function.metric_errors(period=Duration.minutes(5)),
                f"kms-guard: the {name} function failed; Lambda retries, then its dead-letter queue keeps the event.",
                topic,
            )
            dlq_alarm(self, f"{name}AsyncDlqAlarm", guard.dead_letter_queue, f"a {name} invocation", topic)
        dlq_alarm(self, "EventsDlqAlarm", self.rules.dead_letter_queue, "a KMS event", topic)
        dlq_alarm(self, "ScheduleDlqAlarm", self.schedule_dlq, "a scheduled check", topic)

        period = Duration.minutes(min(config.schedule_minutes, 1440))
        function = self.scheduled_function.function
        successes = cloudwatch.MathExpression(
            expression="invocations - errors",
            using_metrics={
                "invocations": function.metric_invocations(period=period, statistic="Sum"),
                "errors": function.metric_errors(period=period, statistic="Sum"),
            },
            label="Successful scheduled checks",
            period=period,
        )
        alarm_on(
            self,
            "ScheduledCheckMissing",
            successes,
            "kms-guard: the scheduled check has not succeeded for two periods; the guard may be blind.",
            topic,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            threshold=1,
            periods=2,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )


class ForwarderStack(Stack):
    """Another Rockset Region: KMS events there are logged only there, so forward them to the home Region."""

    def __init__(self, scope: Construct, construct_id: str, *, config: GuardConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        home_bus_arn = f"arn:{config.key.partition}:events:{config.home_region}:{config.account}:event-bus/default"
        self.forwarders = Forwarders(self, "Forwarders", home_bus_arn=home_bus_arn)
        # CloudWatch alarm actions stay in their Region: this Region gets its own (encrypted) alert topic.
        self.alerts = AlertTopic(self, "Alerts", emails=config.alert_emails)
        dlq_alarm(
            self, "ForwardDlqAlarm", self.forwarders.dead_letter_queue, "a forwarded KMS event", self.alerts.topic
        )
