"""The alert topic: where the guard's findings and every CloudWatch alarm of the stack are published.

A topic policy replaces SNS's default one (CDK writes one for `enforce_ssl`), so the TLS Deny alone would leave nothing
allowing CloudWatch to publish and every alarm action would fail silently (aws-facts.md, SNS). The topic policy and the
topic key's policy therefore each allow `cloudwatch.amazonaws.com`, limited to this account (`aws:SourceAccount`) and
to the exact alarms this stack declares (`aws:SourceArn`). The alarm ARNs are built from the alarms' fixed names, not
read from the alarms: the key policy lives on the key, which the topic and so the alarms depend on, and a reference
back would be a cycle. https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html (compatibility between
event sources from AWS services and encrypted topics).
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

CLOUDWATCH = "cloudwatch.amazonaws.com"


@jsii.implements(cdk.IStableListProducer)
class _Collected:
    """The alarm ARNs known when the template is written (alarms are added after the topic)."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def produce(self) -> list[str] | None:
        return list(self.values)


class AlertTopic(Construct):
    """The SNS topic for alerts: TLS only, encrypted with a customer managed key, email subscriptions, and publishable
    by this stack's CloudWatch alarms (see `notify`)."""

    def __init__(self, scope: Construct, construct_id: str, *, emails: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._alarm_arns = _Collected()
        from_our_alarms = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": cdk.Lazy.list(self._alarm_arns)},
        }
        self.key = kms.Key(
            self,
            "Key",
            description="kms-guard: encrypts the alert topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The AWS managed key alias/aws/sns cannot be used by CloudWatch alarms; this key lets them publish.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=from_our_alarms,
            )
        )
        self.topic = sns.Topic(self, "Topic", display_name="kms-guard alerts", master_key=self.key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_our_alarms,
            )
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

    def notify(self, alarm: cloudwatch.Alarm, alarm_name: str, *, when_data_stops: bool = False) -> None:
        """Publish `alarm` (named `alarm_name`) here when it fires, and, with `when_data_stops`, when its metric has
        no data at all (INSUFFICIENT_DATA); allow it in the topic and key policies."""
        action = cw_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        if when_data_stops:
            alarm.add_insufficient_data_action(action)
        self._alarm_arns.values.append(
            Stack.of(self).format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=alarm_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        )
