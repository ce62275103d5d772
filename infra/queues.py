"""Dead-letter queues: encrypted, TLS only, kept 14 days; an alarm watches each one (infra.monitoring)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge


def dead_letter_queue(scope: Construct, construct_id: str, purpose: str) -> sqs.Queue:
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
