"""Lambda entry point for the scheduled check: the safety net for lost events and the guard's heartbeat."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kms_guard.handlers import ends_initialisation
from kms_guard.handlers.runtime import logger, metrics, record_fleet, wired


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@ends_initialisation
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return record_fleet(wired().fleet.scheduled_check(event, deadline(context)))


DEADLINE_MARGIN_SECONDS = 15
"""Stop starting keys this long before Lambda's timeout: time to log every key's result and fail loudly."""


def deadline(context: LambdaContext) -> float | None:
    """When the check of many keys must stop starting keys (time.monotonic()); None when the context cannot say."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    left = float(remaining()) / 1000
    return time.monotonic() + max(0.0, left - DEADLINE_MARGIN_SECONDS)
