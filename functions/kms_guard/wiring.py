"""Building a Guard from settings: the one place that picks the adapters (Lambda handlers and CLI share it)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
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
from kms_guard.deployment import Deployment
from kms_guard.fleet import BACKGROUND_WORKERS, SIGHT_PK, Fleet
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
    fleet = wire_fleet(Deployment((settings,)), clients, **guard_options)
    guard = fleet.fleet.guards[0]
    return Wired(guard, fleet.notifier, fleet.states[settings.key.key_id])


@dataclass
class WiredFleet:
    fleet: Fleet
    notifier: Notifier
    states: dict[str, StateStore]
    """Key ID (or SIGHT_PK) -> that key's state."""


def wire_fleet(deployment: Deployment, clients: ClientFactory | None = None, **guard_options: Any) -> WiredFleet:
    """Every key's Guard, sharing the clients, the notifier, the KMS gateway and the background threads; with many
    keys, one more Guard for the deployment's sight (kms_guard.fleet).

    The background threads run the calls made beside another (a Region's read beside the first Region's, a key's
    state load beside its read), started as needed up to BACKGROUND_WORKERS and then kept: a scheduled check of many
    keys used to start and stop two pools per key. Only leaves run there (nothing that waits for another of them)."""
    clients = clients or ClientFactory()
    first = deployment.first
    home = deployment.home
    notifier: Notifier = SnsNotifier(clients, first.topic_arn) if first.topic_arn else CollectingNotifier()
    background = ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS, thread_name_prefix="kms-guard-io")
    kms = KmsGateway(clients, background)
    identity = StsIdentity(clients, home)
    reasoner = AccessAnalyzerReasoner(clients) if first.second_opinion else None
    many = len(deployment.keys) > 1
    states: dict[str, StateStore] = {}

    def state_for(partition: str) -> StateStore:
        state: StateStore = (
            DynamoState(clients, first.state_table, home, partition) if first.state_table else MemoryState()
        )
        states[partition] = state
        return state

    guards = []
    for settings in deployment.keys:
        sinks: list[FindingSink] = []  # the opt-in features: nothing is built (or called) unless switched on
        at_home = settings.key.in_region(home)
        if settings.security_hub:
            sinks.append(SecurityHubSink(clients, at_home))
        if settings.finding_events:
            sinks.append(EventBridgeSink(clients, at_home))
        guards.append(
            Guard(
                settings,
                kms,
                kms,
                state_for(settings.key.key_id),
                notifier,
                identity=identity,
                sinks=sinks,
                reasoner=reasoner,
                coverage=None if many else CoverageGateway(clients),
                background=background,
                **guard_options,
            )
        )
    sight = None
    if many:
        sight = Guard(
            dataclasses.replace(first, regions=deployment.regions),
            kms,
            kms,
            state_for(SIGHT_PK),
            notifier,
            identity=identity,
            coverage=CoverageGateway(clients),
            evaluates_key=False,
            key_count=len(deployment.keys),
            background=background,
            **guard_options,
        )
    return WiredFleet(Fleet(guards, sight), notifier, states)
