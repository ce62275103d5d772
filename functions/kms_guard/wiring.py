"""Building a Guard from settings: the one place that picks the adapters (Lambda handlers and CLI share it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kms_guard.aws.access_analyzer import AccessAnalyzerReasoner
from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.coverage import CoverageGateway
from kms_guard.aws.finding_events import EventBridgeSink
from kms_guard.aws.identity import StsIdentity
from kms_guard.aws.kms import KmsGateway
from kms_guard.aws.notify import SnsNotifier
from kms_guard.aws.securityhub import SecurityHubSink
from kms_guard.aws.state import DynamoState
from kms_guard.guard import FindingSink, Guard, Notifier, StateStore
from kms_guard.memory import CollectingNotifier, MemoryState
from kms_guard.settings import Settings


@dataclass
class Wired:
    guard: Guard
    notifier: Notifier
    state: StateStore


def wire(settings: Settings, clients: ClientFactory | None = None, **guard_options: Any) -> Wired:
    """`guard_options` are passed to Guard (tests and the demo inject a clock and a no-op sleep)."""
    clients = clients or ClientFactory()
    home = settings.key.region
    state: StateStore = (
        DynamoState(clients, settings.state_table, home, settings.key.key_id) if settings.state_table else MemoryState()
    )
    notifier: Notifier = SnsNotifier(clients, settings.topic_arn) if settings.topic_arn else CollectingNotifier()
    kms = KmsGateway(clients)
    sinks: list[FindingSink] = []  # the opt-in features: nothing is built (or called) unless switched on
    if settings.security_hub:
        sinks.append(SecurityHubSink(clients, settings.key))
    if settings.finding_events:
        sinks.append(EventBridgeSink(clients, settings.key))
    reasoner = AccessAnalyzerReasoner(clients) if settings.second_opinion else None
    guard = Guard(
        settings,
        kms,
        kms,
        state,
        notifier,
        identity=StsIdentity(clients, home),
        sinks=sinks,
        reasoner=reasoner,
        coverage=CoverageGateway(clients),
        **guard_options,
    )
    return Wired(guard, notifier, state)
