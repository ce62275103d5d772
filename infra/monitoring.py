"""Alarms: every failure the guard can have reaches the alert topic instead of passing silently.

Every alarm has a fixed name (`<stack>-<id>`), so its ARN is known at synth and the topic and key policies can allow
exactly these alarms to publish (infra.alerts).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.alerts import AlertTopic
from infra.schedule import Heartbeat


def alarm_on(
    scope: Construct,
    construct_id: str,
    metric: cloudwatch.IMetric,
    description: str,
    alerts: AlertTopic,
    *,
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    threshold: float = 1,
    periods: int = 1,
    datapoints: int | None = None,
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    when_data_stops: bool = False,
) -> cloudwatch.Alarm:
    name = f"{Stack.of(scope).stack_name}-{construct_id}"
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_name=name,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        evaluation_periods=periods,
        datapoints_to_alarm=datapoints,
        comparison_operator=comparison,
        treat_missing_data=missing,
    )
    alerts.notify(alarm, name, when_data_stops=when_data_stops)
    return alarm


def dlq_alarm(
    scope: Construct, construct_id: str, queue: sqs.IQueue, what: str, alerts: AlertTopic
) -> cloudwatch.Alarm:
    return alarm_on(
        scope,
        construct_id,
        queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
        f"kms-guard: {what} landed in a dead-letter queue; inspect and redrive it (nothing is lost while it is there).",
        alerts,
    )


def heartbeat_alarm(
    scope: Construct, construct_id: str, function: lambda_.IFunction, beat: Heartbeat, alerts: AlertTopic
) -> cloudwatch.Alarm:
    """The scheduled check stopped running, or ran and did not succeed: the guard may be blind.

    The metric is successful checks per period (Invocations - Errors; Lambda reports both, Errors 0 when a run
    succeeds). Missing data is treated as *missing*, and the alarm notifies on ALARM and on INSUFFICIENT_DATA
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html):
    - Fresh deploy: a new alarm starts in INSUFFICIENT_DATA; with no run yet there is no data, so it stays there and,
      having changed no state, notifies nobody. (`breaching` would alarm at its first evaluation, minutes after every
      deploy, before the first scheduled run: the defect of issue 11.) The first successful run turns it OK.
    - Runs stop: once the whole evaluation range has no data, `missing` turns the alarm INSUFFICIENT_DATA, and that
      change notifies. The window is two schedule intervals (`Heartbeat`), so a run arriving a little late, or a
      period with no run because runs and periods are not aligned, is not an outage: a missing period is skipped,
      not counted as breaching.
    - Runs fail: a period with runs but no success is 0, below the threshold; two such periods
      (`datapoints_to_alarm`) turn it ALARM. One failed run that Lambda's retry repairs in the same period is a
      success. (Each error also raises the Errors alarm at once.)
    Left to the other alarms: a schedule that never delivers its first run after a deploy stays silent here; the
    schedule's dead-letter alarm covers delivery failures.
    """
    period = Duration.minutes(beat.period_minutes)
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
        "kms-guard: the scheduled check has stopped running (INSUFFICIENT_DATA) or has not succeeded in two "
        "periods in which it ran (ALARM); the guard may be blind.",
        alerts,
        comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold=1,
        periods=beat.evaluation_periods,
        datapoints=beat.datapoints_to_alarm,
        missing=cloudwatch.TreatMissingData.MISSING,
        when_data_stops=True,
    )
