"""EventBridge: one `KMS Guard Finding` event per change of the key's findings, on the home Region's default bus.

Opt-in (`findingEvents`). The events are decided in kms_guard.core.finding_events; this adapter sends them, at most 10
entries per PutEvents call. A failure (or entries PutEvents reports as failed) is one warning in the log, never a
failed evaluation.
"""

from __future__ import annotations

import logging
from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.errors import error_text
from kms_guard.core.arns import KeyArn
from kms_guard.core.finding_events import batches, finding_events, put_events_entries
from kms_guard.guard import FindingUpdate

PUT_EVENTS_ACTIONS = ("events:PutEvents",)
"""Granted on the home Region's default bus only (infra.function)."""

logger = logging.getLogger("kms_guard")


def default_bus_arn(key: KeyArn) -> str:
    return f"arn:{key.partition}:events:{key.region}:{key.account}:event-bus/default"


class EventBridgeSink:
    def __init__(self, clients: ClientFactory, key: KeyArn) -> None:
        self._clients = clients
        self._key = key

    def publish(self, update: FindingUpdate) -> None:
        key_arn = str(update.key)
        details = finding_events(
            key_arn, update.vendor, update.previous, update.previous_fingerprint, update.found, update.final
        )
        if not details:
            return
        events: Any = self._clients.client("events", self._key.region)
        for batch in batches(put_events_entries(details, key_arn)):
            try:
                response = events.put_events(Entries=batch)
            except Exception as exc:
                logger.warning(
                    "EventBridge PutEvents failed in %s: %d kms-guard finding events not sent: %s",
                    self._key.region,
                    len(details),
                    error_text(exc),
                )
                return
            if response.get("FailedEntryCount"):
                errors = {
                    f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in response["Entries"] if "ErrorCode" in e
                }
                logger.warning(
                    "EventBridge refused %d kms-guard finding events: %s",
                    response["FailedEntryCount"],
                    "; ".join(sorted(errors)),
                )
