"""Alarms: every failure the guard can have reaches the alert topic instead of passing silently."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct


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


def heartbeat_alarm(
    scope: Construct, construct_id: str, function: lambda_.IFunction, schedule_minutes: int, topic: sns.ITopic
) -> cloudwatch.Alarm:
    """The scheduled check has not succeeded for two periods: the guard may be blind."""
    period = Duration.minutes(min(schedule_minutes, 1440))
    successes = cloudwatch.MathExpression(
        expression="invocations - errors",
        using_metrics={
            "invocations": function.metric_invocations(period=period, statistic="Sum"),
            "errors": function.metric_errors(period=period, statistic="Sum"),
        },
        label="Successful scheduled checks",
        period=period,
    )
    return alarm_on(
        scope,
        construct_id,
        successes,
        "kms-guard: the scheduled check has not succeeded for two periods; the guard may be blind.",
        topic,
        comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold=1,
        periods=2,
        missing=cloudwatch.TreatMissingData.BREACHING,
    )
