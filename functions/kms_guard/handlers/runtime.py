"""What both Lambda functions share: Powertools logger and metrics, and the Guard built once per container.

Settings come from the environment (design.md, "Lambda settings"), parsed on the first invocation of a container and
kept; a bad value raises SettingsError naming the variable, so the function fails loudly instead of guarding nothing.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from kms_guard.deployment import deployment_from_env
from kms_guard.fleet import FleetResult, raise_failures
from kms_guard.guard import Result
from kms_guard.wiring import WiredFleet, wire_fleet

logger = Logger(service="kms-guard")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "KmsGuard"), service="kms-guard")


@functools.cache
def wired() -> WiredFleet:
    deployment = deployment_from_env(os.environ)
    first = deployment.first
    logger.info(
        "settings loaded",
        extra={
            "keys": len(deployment.keys),
            "key_arn": first.key_arn if len(deployment.keys) == 1 else None,
            "regions": list(deployment.regions),
            "remediation": sorted({s.remediation for s in deployment.keys}),
            "restore_key_state": any(s.restore_key_state for s in deployment.keys),
            "dry_run": first.dry_run,
        },
    )
    return wire_fleet(deployment)


def record_fleet(outcome: FleetResult) -> dict[str, Any]:
    """Record every key's result (and the deployment's sight); then fail the invocation if some key's check raised,
    after all the others were recorded."""
    if outcome.ignored is not None:
        record(outcome.ignored)
    for key_arn, result in outcome.results:
        logger.append_keys(key_arn=key_arn)
        try:
            record(result)
        finally:
            logger.remove_keys(["key_arn"])
    if outcome.sight is not None:
        record_sight(outcome.sight)
    for key_arn, error in outcome.failed.items():
        metrics.add_metric(name="KeyCheckFailed", unit=MetricUnit.Count, value=1)
        logger.error("key check failed", extra={"key_arn": key_arn, "error": error})
    raise_failures(outcome)
    return outcome.to_dict()


def record(result: Result) -> dict[str, Any]:
    """Log one structured line for the outcome, emit its metrics, and return the JSON-able result."""
    summary = result.to_dict()
    if result.canary_region is not None:
        metrics.add_metric(name="CanaryArrived", unit=MetricUnit.Count, value=1)
        logger.info("canary arrived", extra={"region": result.canary_region})
        return summary
    if result.decision == "ignored":
        metrics.add_metric(name="DroppedEvents", unit=MetricUnit.Count, value=1)
        logger.info("event ignored", extra={"reason": result.reason})
        return summary
    metrics.add_metric(name="Evaluations", unit=MetricUnit.Count, value=1)
    report = result.report
    if result.found is not None:
        for finding in result.found.findings:
            metrics.add_metric(name=f"Findings.{finding.code.value}", unit=MetricUnit.Count, value=1)
    if report is not None:
        not_compliant = sum(r.verdict != "compliant" for r in report.regions)
        metrics.add_metric(name="NonCompliantRegions", unit=MetricUnit.Count, value=not_compliant)
    if result.alerts:
        metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=len(result.alerts))
    for outcome in result.remediation:
        metrics.add_metric(name=f"Repairs.{outcome.status}", unit=MetricUnit.Count, value=1)
    _record_coverage(result)
    logger.info(
        "key evaluated",
        extra={
            "verdict": report.verdict if report else None,
            "codes": sorted({f.code.value for f in report.findings}) if report else [],
            "alerts": [a.subject for a in result.alerts],
            "coverage": result.coverage.verdict if result.coverage else None,
            # one log line, not a policy dump: a dry run's planned policy stays in the result, out of the log
            "remediation": [
                {k: v for k, v in o.to_dict().items() if k != "planned_policy"} for o in result.remediation
            ],
        },
    )
    return summary


def record_sight(result: Result) -> None:
    """The sight of a deployment of many keys (kms_guard.fleet): its coverage metrics and alerts, and one log line.
    It evaluates no key, so it is not counted in `Evaluations` nor logged as `key evaluated`."""
    if result.alerts:
        metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=len(result.alerts))
    _record_coverage(result)
    logger.info(
        "sight checked",
        extra={
            "coverage": result.coverage.verdict if result.coverage else None,
            "alerts": [a.subject for a in result.alerts],
        },
    )


def _record_coverage(result: Result) -> None:
    if result.coverage is None:
        return
    # Coverage.EVENT_PATH_SILENT is what the canary's alarm watches (infra.monitoring); every check emits the count,
    # 0 included, so the alarm sees data whenever the check runs.
    blind = [r for r in result.coverage.regions if r.status != "ok"]
    metrics.add_metric(name="CoverageBlindRegions", unit=MetricUnit.Count, value=len(blind))
    silent = sum(f.code.value == "EVENT_PATH_SILENT" for f in result.coverage.findings)
    metrics.add_metric(name="Coverage.EVENT_PATH_SILENT", unit=MetricUnit.Count, value=silent)
    for gap in result.coverage.findings:
        if gap.code.value != "EVENT_PATH_SILENT":
            metrics.add_metric(name=f"Coverage.{gap.code.value}", unit=MetricUnit.Count, value=1)
