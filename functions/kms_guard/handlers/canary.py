"""Lambda entry point for the opt-in canary (context `canary`): one harmless, logged write per watched Region.

The write (aws/canary.py) is TagResource on the guard's own canary key with a fixed tag; the guard's rules carry the
CloudTrail event home, where the KMS event function records its arrival and the scheduled check raises
EVENT_PATH_SILENT for a Region whose canary is late. A Region where the write itself fails makes the invocation fail
(after trying every Region), so the function's error alarm names the cause instead of leaving only the silence.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from kms_guard.aws.canary import CanarySender
from kms_guard.aws.clients import ClientFactory
from kms_guard.deployment import Deployment, deployment_from_env
from kms_guard.handlers import ends_initialisation
from kms_guard.handlers.runtime import logger, metrics


class CanaryFailed(RuntimeError):
    """The canary could not be written in some Region; the message names each with AWS's reason."""


@functools.cache
def _wired() -> tuple[Deployment, CanarySender]:
    return deployment_from_env(os.environ), CanarySender(ClientFactory())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@ends_initialisation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deployment, sender = _wired()
    results = sender.send(deployment.regions)
    failed = {region: error for region, error in results.items() if error}
    metrics.add_metric(name="CanarySent", unit=MetricUnit.Count, value=len(results) - len(failed))
    logger.info("canary sent", extra={"regions": sorted(results), "failed": failed})
    if failed:
        metrics.add_metric(name="CanaryFailed", unit=MetricUnit.Count, value=len(failed))
        raise CanaryFailed("; ".join(f"{region}: {error}" for region, error in sorted(failed.items())))
    return {"sent": sorted(results)}
