"""The alert topic: where the guard's findings and every CloudWatch alarm of the stack are published."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


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
