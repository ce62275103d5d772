"""The opt-in canary (context `canary`): prove the whole event path, in every watched Region, on the check's schedule.

- `CanaryKey`, in every watched Region (home and forwarder stacks): a KMS key the guard owns, behind
  `alias/kms-guard-canary`. No data is ever encrypted with it; neither the vendor nor the customer uses it. Rotation
  on (cdk-nag KMS5), deleted with the stack (7-day window).
- `CanaryFunction` (home): on the check's schedule, TagResource with the same fixed tag on each Region's canary key
  (kms_guard.aws.canary). The tags never change after the first run; CloudTrail logs each call as a management write,
  the Region's rule (with the canary branch, infra.routing) forwards it home, and the KMS event function records its
  arrival. Its role has a fixed name (the rules match it in every Region) and may call DescribeKey and TagResource
  only on keys carrying the canary alias (`kms:ResourceAliases`), in the watched Regions.
- An alarm on `Coverage.EVENT_PATH_SILENT`, which the scheduled check emits when a Region's canary is late.
Nothing here is synthesized unless `canary` is true.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from kms_guard.aws.canary import CANARY_ACTIONS
from kms_guard.core.coverage import CANARY_ALIAS, CANARY_ROLE_NAME

from infra.alerts import AlertTopic
from infra.config import GuardConfig
from infra.function import LOG_RETENTION, lambda_function
from infra.monitoring import alarm_on, dlq_alarm
from infra.nag import acknowledge
from infra.queues import dead_letter_queue

CANARY_HANDLER = "kms_guard.handlers.canary.handler"
SILENT_METRIC = "Coverage.EVENT_PATH_SILENT"


class CanaryKey(Construct):
    """The guard's own canary key in this Region (one per watched Region)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="kms-guard canary: tagged on a schedule to prove the event path; holds no data, do not use",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_alias(CANARY_ALIAS)


class CanaryFunction(Construct):
    """The canary's Lambda on the check's schedule, its role (fixed name), logs, retries, DLQ and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: GuardConfig,
        environment: dict[str, str],
        layers: Sequence[lambda_.ILayerVersion],
        code: lambda_.Code,
        alerts: AlertTopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            role_name=CANARY_ROLE_NAME,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="kms-guard canary: tags the guard's own canary keys, nothing else",
        )
        keys = [f"arn:{config.key.partition}:kms:{r}:{config.account}:key/*" for r in config.regions]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(CANARY_ACTIONS),
                resources=keys,
                conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": [CANARY_ALIAS]}},
            )
        )
        for key in keys:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{key}]",
                "The canary keys are created by each Region's stack, so their IDs are unknown here; the statement is "
                f"limited to keys carrying the alias {CANARY_ALIAS} (kms:ResourceAliases), i.e. the guard's own.",
            )
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = dead_letter_queue(self, "AsyncDlq", "failed canary invocations")
        self.function = lambda_function(
            self,
            description="kms-guard canary: a harmless, logged KMS write per Region, to prove the event path",
            handler=CANARY_HANDLER,
            code=code,
            role=self.role,
            layers=layers,
            log_group=self.log_group,
            environment=environment,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=0,  # the next scheduled run is the retry; a late canary is what the alarm is for
            max_event_age=Duration.hours(1),
        )
        self.schedule_dlq = dead_letter_queue(self, "ScheduleDlq", "canary runs EventBridge could not deliver")
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="kms-guard: the canary, on the scheduled check's schedule",
            schedule=events.Schedule.expression(config.check_schedule),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.schedule_dlq,
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                )
            ],
        )
        alarm_on(
            stack,
            "CanaryErrors",
            self.function.metric_errors(period=Duration.minutes(5)),
            "kms-guard: the canary could not write in some Region (its log names the Region and AWS's reason).",
            alerts,
        )
        dlq_alarm(stack, "CanaryAsyncDlqAlarm", self.dead_letter_queue, "a canary invocation", alerts)
        dlq_alarm(stack, "CanaryScheduleDlqAlarm", self.schedule_dlq, "a canary run", alerts)
        beat = config.heartbeat
        alarm_on(
            stack,
            "EventPathSilent",
            cloudwatch.Metric(
                namespace="KmsGuard",
                metric_name=SILENT_METRIC,
                dimensions_map={"service": "kms-guard"},
                statistic="Maximum",
                period=Duration.minutes(beat.period_minutes),
            ),
            "kms-guard: EVENT_PATH_SILENT, a Region's canary did not reach the guard in time: KMS changes there are "
            "seen only by the scheduled check. The coverage alert names the Region and what to check.",
            alerts,
        )
