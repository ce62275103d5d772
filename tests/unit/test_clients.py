"""kms_guard.aws.clients.in_every_region: the one per-Region fan-out of the AWS adapters (key reads, the guard's
sight, the canary)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kms_guard.aws.clients import ClientFactory, in_every_region


class Clients(ClientFactory):
    """Records which thread created which client (no botocore)."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[tuple[str, str, str]] = []

    def client(self, service: str, region: str) -> Any:
        self.created.append((service, region, threading.current_thread().name))
        return object()


REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]


def run(background: ThreadPoolExecutor | None = None) -> tuple[Clients, list[tuple[str, str]]]:
    clients = Clients()
    barrier = threading.Barrier(len(REGIONS), timeout=5)  # passes only if every Region runs at once

    def call(region: str) -> tuple[str, str]:
        barrier.wait()
        return region, threading.current_thread().name

    return clients, in_every_region(clients, ("kms", "events"), REGIONS, call, background)


def test_every_region_at_once_in_the_order_given_the_first_in_this_thread_clients_made_before() -> None:
    here = threading.current_thread().name
    clients, results = run()
    assert [region for region, _ in results] == REGIONS
    assert results[0][1] == here
    assert all(thread != here for _, thread in results[1:])
    assert clients.created == [(s, r, here) for r in REGIONS for s in ("kms", "events")]


def test_the_others_run_on_the_shared_threads_when_given() -> None:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="shared") as background:
        _, results = run(background)
    assert [region for region, _ in results] == REGIONS
    assert all(thread.startswith("shared") for _, thread in results[1:])


def test_one_region_runs_here_and_none_runs_nothing() -> None:
    here = threading.current_thread().name
    assert in_every_region(Clients(), ("kms",), ["eu-west-1"], lambda r: threading.current_thread().name) == [here]
    assert in_every_region(Clients(), ("kms",), [], lambda r: r) == []
