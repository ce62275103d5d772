"""Building a Guard from settings: the one place that picks the adapters (Lambda handlers and CLI share it)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.kms import KmsGateway
from kms_guard.aws.notify import CollectingNotifier, Notifier, SnsNotifier
from kms_guard.aws.state import DynamoState, MemoryState, StateStore
from kms_guard.guard import Guard
from kms_guard.settings import Settings


@dataclass
class Wired:
    guard: Guard
    notifier: Notifier
    state: StateStore


def own_role_arns(clients: ClientFactory, region: str) -> frozenset[str]:
    """The role the guard runs as (from STS), so events for its own writes are recognised. Asked once, when needed.

    If STS cannot answer, the guard still recognises its own writes by their user agent (`kms-guard/`): an empty set
    here must not cost the evaluation, and with it the alert.
    """
    try:
        arn: str = clients.client("sts", region).get_caller_identity()["Arn"]
    except Exception:
        return frozenset()
    parts = arn.split(":")
    if len(parts) == 6 and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return frozenset({arn, f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"})
    return frozenset({arn})


def wire(settings: Settings, clients: ClientFactory | None = None, **guard_options: Any) -> Wired:
    """`guard_options` are passed to Guard (tests and the demo inject a clock and a no-op sleep)."""
    clients = clients or ClientFactory()
    home = settings.key.region
    state: StateStore = (
        DynamoState(clients, settings.state_table, home, settings.key.key_id) if settings.state_table else MemoryState()
    )
    notifier: Notifier = SnsNotifier(clients, settings.topic_arn) if settings.topic_arn else CollectingNotifier()
    own = functools.cache(lambda: own_role_arns(clients, home))
    guard = Guard(settings, KmsGateway(clients), state, notifier, own_principals=own, **guard_options)
    return Wired(guard, notifier, state)
