"""Publishing alerts to the SNS topic, with message attributes for subscription filter policies."""

from __future__ import annotations

from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.core.alerts import Alert

PUBLISH_ACTIONS = ("sns:Publish",)


class SnsNotifier:
    def __init__(self, clients: ClientFactory, topic_arn: str) -> None:
        self._clients = clients
        self._topic_arn = topic_arn
        self._region = topic_arn.split(":")[3]

    def publish(self, alert: Alert) -> None:
        sns: Any = self._clients.client("sns", self._region)
        sns.publish(
            TopicArn=self._topic_arn,
            Subject=alert.subject,
            Message=alert.body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in alert.attributes().items()},
        )
