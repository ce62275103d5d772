"""A scheduled check of many keys reuses its connections: each client's pool holds as many as the fleet has calls in
flight on it (kms_guard.aws.clients.MAX_POOL_CONNECTIONS against kms_guard.fleet.MAX_KEY_WORKERS).

Against a moto server behind the benchmark's read-through cache (bench/read_cache.py), which holds every call's
connection for a round trip as AWS does and counts the connections opened. With botocore's default pool of 10, each
check opened (in AWS: TLS handshakes) and discarded the connections beyond the tenth, and urllib3 logged a warning for
each.
"""

from __future__ import annotations

import logging
import socket

import pytest
from kms_guard.fleet import MAX_KEY_WORKERS
from kms_guard_cli.simulated import HOME, SimulatedAccount

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
