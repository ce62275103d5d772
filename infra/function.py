"""A guard function: the Lambda asset, its runtime and Powertools layer, its own role, logs, retries and DLQ.

IAM comes from declarations next to the adapters (`kms_guard.aws.*`): what is granted cannot drift from what the code
does.

Python versions, written here and only here (a test in tests/infra/test_stacks.py holds them to pyproject.toml and to
aws-cdk-lib):
- `LAMBDA_RUNTIME` is what the functions run on: the newest Python runtime aws-cdk-lib offers. The Powertools layer
  is chosen for it.
- `TESTED_PYTHON` is the oldest Python the code and the tests run on: pyproject's `requires-python`, ruff's
  `target-version` and mypy's `python_version`. The tests run on it; the code may use nothing newer, so it runs on
  the Lambda runtime too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from kms_guard.aws.access_analyzer import CHECK_ACTIONS
from kms_guard.aws.coverage import RULE_READ_ACTIONS, TRAIL_LIST_ACTIONS, TRAIL_READ_ACTIONS
from kms_guard.aws.finding_events import PUT_EVENTS_ACTIONS, default_bus_arn
from kms_guard.aws.securityhub import IMPORT_ACTIONS, product_resource
from kms_guard.aws.state import STATE_ACTIONS

from infra.alerts import AlertTopic
from infra.config import POWERTOOLS_ENVIRONMENT, GuardConfig
from infra.layers import powertools_layer_arn
from infra.nag import acknowledge
from infra.queues import dead_letter_queue

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
TESTED_PYTHON = (3, 11)
ARCHITECTURE = lambda_.Architecture.ARM_64

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
BYTECODE = ("**/__pycache__", "**/*.pyc", "**/*.pyo")
EVENT_HANDLER = "kms_guard.handlers.kms_event.handler"
SCHEDULED_HANDLER = "kms_guard.handlers.scheduled_check.handler"

LOG_RETENTION = logs.RetentionDays.ONE_YEAR
FUNCTION_TIMEOUT = Duration.minutes(2)


def kms_actions(config: GuardConfig) -> list[str]:
    """Exactly the KMS actions the guard needs on the (first) key, given what it is allowed to repair: what the key
    policy's statement for the guard roles allows (`kms-guard statement`); infra.grants places them."""
    return list(config.keys[0].actions)


def opt_in_statements(config: GuardConfig) -> list[iam.PolicyStatement]:
    """What the opt-in features need, each on the narrowest resource IAM offers; nothing for a feature left off."""
    statements = []
    if config.security_hub:
        statements.append(iam.PolicyStatement(actions=list(IMPORT_ACTIONS), resources=[product_resource(config.key)]))
    if config.finding_events:
        statements.append(
            iam.PolicyStatement(actions=list(PUT_EVENTS_ACTIONS), resources=[default_bus_arn(config.key)])
        )
    if config.second_opinion:
        statements.append(iam.PolicyStatement(actions=list(CHECK_ACTIONS), resources=["*"]))
    return statements


def function_code() -> lambda_.Code:
    """The Lambda asset: `functions/` as it stands, which holds only the `kms_guard` package (the CLI and the demo live
    in `cli/`). Bytecode caches a local test run leaves behind are not code and stay out; nothing is staged or copied,
    so a synth leaves no temporary directory behind. boto3 and Powertools come from the runtime and the layer."""
    return lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=list(BYTECODE))


def powertools_layer(scope: Construct, partition: str, region: str) -> lambda_.ILayerVersion:
    """The Powertools v3 layer for `LAMBDA_RUNTIME` on `ARCHITECTURE` in `region` (infra.layers knows where)."""
    python = LAMBDA_RUNTIME.name.replace(".", "")
    arn = powertools_layer_arn(partition, region, python=python, architecture=ARCHITECTURE.name)
    return lambda_.LayerVersion.from_layer_version_arn(scope, "Powertools", arn)


RESERVED_CONCURRENCY = 1
"""Each guard function runs one invocation at a time (see GuardFunction)."""


def lambda_function(
    scope: Construct,
    *,
    description: str,
    handler: str,
    code: lambda_.Code,
    role: iam.IRole,
    layers: Sequence[lambda_.ILayerVersion],
    log_group: logs.ILogGroup,
    environment: dict[str, str],
    dead_letter_queue: sqs.IQueue,
    retry_attempts: int,
    max_event_age: Duration,
    reserved_concurrency: int | None = None,
) -> lambda_.Function:
    """A kms-guard function (the guard's two and the canary): one runtime, architecture, memory, timeout and
    Powertools configuration for all, its own role, log group and dead-letter queue."""
    return lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=LAMBDA_RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=code,
        role=role,
        layers=list(layers),
        log_group=log_group,
        memory_size=256,
        timeout=FUNCTION_TIMEOUT,
        environment={**environment, **POWERTOOLS_ENVIRONMENT},
        dead_letter_queue=dead_letter_queue,
        retry_attempts=retry_attempts,
        max_event_age=max_event_age,
        reserved_concurrent_executions=reserved_concurrency,
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
        layers: Sequence[lambda_.ILayerVersion],
        code: lambda_.Code,
        alerts: AlertTopic,
        table: dynamodb.Table,
        reads_coverage: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"kms-guard {construct_id}: reads (and, if enabled, repairs) "
            + (f"{len(config.keys)} KMS keys" if config.many_keys else "one KMS key"),
        )
        self.dead_letter_queue = dead_letter_queue(self, "AsyncDlq", "failed asynchronous invocations")
        self.function = lambda_function(
            self,
            description=description,
            handler=handler,
            code=code,
            role=self.role,
            layers=layers,
            log_group=self.log_group,
            environment=environment,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            # One invocation at a time: a burst of changes to the key (a Terraform apply) is then evaluated one
            # after the other, each seeing the last one's repair, instead of two repairing (and alerting) at once.
            # Throttled asynchronous events wait in Lambda's queue (up to max_event_age), they are not lost.
            reserved_concurrency=RESERVED_CONCURRENCY,
        )
        self.log_group.grant_write(self.role)
        # The keys: granted by the stack to both guard roles at once (infra.keys), inline for one key.
        alerts.topic.grant_publish(self.role)
        table.grant(self.role, *STATE_ACTIONS)
        for statement in opt_in_statements(config):
            self.role.add_to_policy(statement)
        if config.second_opinion:
            acknowledge(
                self.role,
                "AwsSolutions-IAM5[Resource::*]",
                "access-analyzer:CheckNoNewAccess has no resource type (IAM's service authorization reference): it "
                "reads only the two policy documents in the request, so '*' is the only resource it can be granted on.",
            )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Granted by topic.grant_publish on the alert topic's own key only (SNS encrypts each message with a data "
            "key); the guarded key gets exact actions.",
        )
        if reads_coverage:
            self.grant_coverage_reads(config)

    def grant_coverage_reads(self, config: GuardConfig) -> None:
        """Read-only sight of the trails and the guard's own rules (kms_guard.aws.coverage declares the actions)."""
        trails = f"arn:{config.key.partition}:cloudtrail:*:*:trail/*"
        self.role.add_to_policy(iam.PolicyStatement(actions=list(TRAIL_LIST_ACTIONS), resources=["*"]))
        self.role.add_to_policy(iam.PolicyStatement(actions=list(TRAIL_READ_ACTIONS), resources=[trails]))
        self.role.add_to_policy(iam.PolicyStatement(actions=list(RULE_READ_ACTIONS), resources=config.rule_arns()))
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudtrail:DescribeTrails has no resource-level permission (Service Authorization Reference, AWS "
            "CloudTrail: no resource type for DescribeTrails), so it can only be granted on *; it is read-only.",
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{trails}]",
            "GetTrailStatus and GetEventSelectors (read-only) on any trail: the customer's trails are not known at "
            "deploy time, and a multi-Region or organization trail may be homed in any Region or, for an "
            "organization trail, in the management account.",
        )
