"""Publishing alerts: to the SNS topic, or (CLI without a topic) to a list the caller prints."""

from __future__ import annotations

from typing import Any, Protocol

from kms_guard.aws.clients import ClientFactory
from kms_guard.core.alerts import Alert

PUBLISH_ACTIONS = ("sns:Publish",)


class Notifier(Protocol):
    def publish(self, alert: Alert) -> None: ...


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


class CollectingNotifier:
    """Keeps alerts in memory (the CLI prints them when no topic is configured)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)
