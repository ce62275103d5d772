"""One construct per concern: the alert topic, the state table, a guard function, the KMS event rules, the alarms.

IAM comes from declarations next to the adapters (`kms_guard.aws.*`), event patterns from the event parser's own lists
(`kms_guard.core.events`): what is granted and routed cannot drift from what the code does.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from kms_guard.aws.kms import KEY_STATE_ACTIONS, POLICY_WRITE_ACTIONS, READ_ACTIONS
from kms_guard.aws.state import PARTITION_KEY, SORT_KEY, STATE_ACTIONS, TTL_ATTRIBUTE
from kms_guard.core.events import API_CALL, API_EVENTS, KMS_EVENTS, SERVICE_EVENT, SERVICE_EVENTS

from infra.config import GuardConfig

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
BYTECODE = ("**/__pycache__", "**/*.pyc", "**/*.pyo")

POWERTOOLS_LAYER_VERSION = 38
"""The AWS-published Powertools for AWS Lambda (Python) v3 layer version, pinned here and only here."""
LOG_RETENTION = logs.RetentionDays.ONE_YEAR
FUNCTION_TIMEOUT = Duration.minutes(2)


def kms_actions(config: GuardConfig) -> list[str]:
    """Exactly the KMS actions the guard needs on the key, given what it is allowed to repair."""
    actions = list(READ_ACTIONS)
    if config.remediation != "off":
        actions += POLICY_WRITE_ACTIONS
    if config.restore_key_state:
        actions += KEY_STATE_ACTIONS
    return actions


def event_patterns() -> dict[str, events.EventPattern]:
    """The KMS events that can break the key: CloudTrail API calls and service events, and KMS's own events.

    Failed calls are filtered out here already (they change nothing); the function drops other keys.
    """
    return {
        "CloudTrail": events.EventPattern(
            source=["aws.kms"],
            detail_type=[API_CALL, SERVICE_EVENT],
            detail={
                "eventSource": ["kms.amazonaws.com"],
                "eventName": sorted(API_EVENTS | SERVICE_EVENTS),
                "errorCode": [{"exists": False}],
            },
        ),
        "KmsEvents": events.EventPattern(source=["aws.kms"], detail_type=sorted(KMS_EVENTS)),
    }


def function_code() -> lambda_.Code:
    """The Lambda asset: `functions/` as it stands, which holds only the `kms_guard` package (the CLI and the demo live
    in `cli/`). Bytecode caches a local test run leaves behind are not code and stay out; nothing is staged or copied,
    so a synth leaves no temporary directory behind. boto3 and Powertools come from the runtime and the layer."""
    return lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=list(BYTECODE))


def acknowledge(construct: Construct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on one construct, with the reason next to the cause."""
    Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def encrypted_queue(scope: Construct, construct_id: str, purpose: str) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue, "AwsSolutions-SQS3", f"This queue is itself a dead-letter queue ({purpose}); an alarm watches it."
    )
    return queue


class AlertTopic(Construct):
    """The SNS topic for alerts: a customer managed key CloudWatch alarms may use, TLS only, email subscriptions."""

    def __init__(self, scope: Construct, construct_id: str, *, emails: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="kms-guard: encrypts the alert topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The AWS managed key alias/aws/sns cannot be used by CloudWatch alarms; this key lets CloudWatch publish.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(self, "Topic", display_name="kms-guard alerts", master_key=self.key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


class StateTable(Construct):
    """The guard's memory: on demand, point-in-time recovery, encrypted, TTL on `expires_at`."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=RemovalPolicy.RETAIN,  # the revert baselines and remediation log outlive a redeploy
        )


class GuardFunction(Construct):
    """One guard Lambda: its own role, log group with retention, async retries and dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        config: GuardConfig,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        code: lambda_.Code,
        alerts: AlertTopic,
        table: dynamodb.Table,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"kms-guard {construct_id}: reads (and, if enabled, repairs) one KMS key",
        )
        self.dead_letter_queue = encrypted_queue(self, "AsyncDlq", "failed asynchronous invocations")
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=code,
            role=self.role,
            layers=[layer],
            log_group=self.log_group,
            memory_size=256,
            timeout=FUNCTION_TIMEOUT,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": "kms-guard",
                "POWERTOOLS_METRICS_NAMESPACE": "KmsGuard",
            },
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2,
            max_event_age=Duration.hours(6),
        )
        self.log_group.grant_write(self.role)
        self.role.add_to_policy(iam.PolicyStatement(actions=kms_actions(config), resources=config.key_arns()))
        alerts.topic.grant_publish(self.role)
        table.grant(self.role, *STATE_ACTIONS)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Granted by topic.grant_publish on the alert topic's own key only (SNS encrypts each message with a data "
            "key); the guarded key gets exact actions.",
        )


class KmsEventRules(Construct):
    """Rules on the home Region's default bus: local KMS events and those forwarded from the other Regions."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = encrypted_queue(self, "Dlq", "events EventBridge could not deliver")
        self.rules = [
            events.Rule(
                self,
                name,
                description=f"kms-guard: {name} events that can break the key",
                event_pattern=pattern,
                targets=[
                    targets.LambdaFunction(
                        function,
                        dead_letter_queue=self.dead_letter_queue,
                        retry_attempts=8,
                        max_event_age=Duration.hours(6),
                    )
                ],
            )
            for name, pattern in event_patterns().items()
        ]


class Forwarders(Construct):
    """In another Rockset Region: the same rules, forwarding to the home Region's default event bus."""

    def __init__(self, scope: Construct, construct_id: str, *, home_bus_arn: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="kms-guard: forward KMS events to the home Region's default event bus",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[home_bus_arn]))
        bus = events.EventBus.from_event_bus_arn(self, "HomeBus", home_bus_arn)
        self.dead_letter_queue = encrypted_queue(self, "Dlq", "events that could not be forwarded")
        self.rules = [
            events.Rule(
                self,
                name,
                description=f"kms-guard: forward {name} events to the home Region",
                event_pattern=pattern,
                targets=[targets.EventBus(bus, role=self.role, dead_letter_queue=self.dead_letter_queue)],
            )
            for name, pattern in event_patterns().items()
        ]


def alarm_on(
    scope: Construct,
    construct_id: str,
    metric: cloudwatch.IMetric,
    description: str,
    topic: sns.ITopic,
    *,
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    threshold: float = 1,
    periods: int = 1,
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
) -> cloudwatch.Alarm:
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        evaluation_periods=periods,
        comparison_operator=comparison,
        treat_missing_data=missing,
    )
    alarm.add_alarm_action(cw_actions.SnsAction(topic))
    return alarm


def dlq_alarm(scope: Construct, construct_id: str, queue: sqs.IQueue, what: str, topic: sns.ITopic) -> cloudwatch.Alarm:
    return alarm_on(
        scope,
        construct_id,
        queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
        f"kms-guard: {what} landed in a dead-letter queue; inspect and redrive it (nothing is lost while it is there).",
        topic,
    )


def powertools_layer(scope: Construct, region: str) -> lambda_.ILayerVersion:
    return lambda_.LayerVersion.from_layer_version_arn(
        scope,
        "Powertools",
        f"arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:"
        f"{POWERTOOLS_LAYER_VERSION}",
    )
