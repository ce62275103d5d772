"""Lambda entry point for KMS events (CloudTrail API calls, service events, KMS's own events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kms_guard.handlers import ends_initialisation
from kms_guard.handlers.runtime import logger, metrics, record_fleet, wired


@logger.inject_lambda_context(correlation_id_path="detail.eventID", clear_state=True)
@metrics.log_metrics
@ends_initialisation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return record_fleet(wired().fleet.handle(event))
