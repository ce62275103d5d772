"""Lambda entry point for the scheduled check: the safety net for lost events and the guard's heartbeat."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kms_guard.handlers import ends_initialisation
from kms_guard.handlers.runtime import logger, metrics, record_fleet, wired


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@ends_initialisation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return record_fleet(wired().fleet.scheduled_check(event))
