"""A scheduled check of many keys, as it scales: its connections and its threads.

- Connections are reused: each client's pool holds as many as the fleet has calls in flight on it
  (kms_guard.aws.clients.MAX_POOL_CONNECTIONS against kms_guard.fleet.MAX_KEY_WORKERS). Against a moto server behind
  the benchmark's read-through cache (bench/read_cache.py), which holds every call's connection for a round trip as
  AWS does and counts the connections opened. With botocore's default pool of 10, each check opened (in AWS: TLS
  handshakes) and discarded the connections beyond the tenth, and urllib3 logged a warning for each.
- The deployment's background threads (kms_guard.wiring) only run leaves: however few they are, the check completes
  (a task waiting there for another task there would wait forever once every thread waits).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest
from kms_guard import wiring
from kms_guard.aws.clients import ClientFactory
from kms_guard.deployment import parse_key_list
from kms_guard.fleet import MAX_KEY_WORKERS
from kms_guard_cli.simulated import HOME, REPLICA, THIRD, SimulatedAccount

from bench.multi_key import endpoint, fleet_of, local_aws
from tests.support import admin_statement, policy_text, rockset_statement


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", HOME)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_a_steady_scheduled_check_of_many_keys_opens_no_connection(
    credentials: None, caplog: pytest.LogCaptureFixture
) -> None:
    policy = policy_text(admin_statement(), rockset_statement())
    with local_aws(_free_port()) as aws, endpoint(aws.url):
        world = SimulatedAccount.create(
            regions=[HOME], policy=policy, table="state", topic="alerts", endpoint_url=aws.url
        )
        keys = [world] + [world.add_key(policy=policy, description=f"key {i}") for i in range(MAX_KEY_WORKERS + 1)]
        fleet = fleet_of(world, keys, [HOME])
        aws.set_latency(0.05)  # every key of a batch holds its connection at once
        for run in ("settle", "fill"):  # state written; then each pool holds what the check has in flight on it
            fleet.scheduled_check({"id": run})
        opened = aws.stats()["connections"]
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
            result = fleet.scheduled_check({"id": "steady"})
        assert not result.failed
        assert len(result.results) == len(keys)
        discarded = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
        assert not discarded
        assert aws.stats()["connections"] - opened <= 1  # at most one more than any check before had in flight


def test_the_check_completes_on_a_single_background_thread(
    account: SimulatedAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    regions = [HOME, REPLICA, THIRD]
    policy = account.policy(HOME)
    keys = [account.add_key(policy=policy, description=f"key {i}", regions=regions) for i in range(6)]
    deployment = parse_key_list(
        [{"keyArn": key.key_arn, "regions": regions} for key in keys],
        shared={"state_table": account.table, "topic_arn": account.topic_arn},
    )
    monkeypatch.setattr(wiring, "BACKGROUND_WORKERS", 1)
    fleet = wiring.wire_fleet(deployment, ClientFactory(account.session)).fleet
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(result=fleet.scheduled_check({"id": "one-thread"})), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the scheduled check waits forever on its background threads"
    result = outcome["result"]
    assert not result.failed
    assert [arn for arn, _ in result.results] == [key.key_arn for key in keys]
    assert {r.report.verdict for _, r in result.results if r.report} == {"compliant"}
