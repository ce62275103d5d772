"""The state table: the guard's memory (baselines, last report, remediation log, seen event IDs).

Its schema is declared once, next to the adapter that reads and writes it (`kms_guard.aws.state`)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from kms_guard.aws.state import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE


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
