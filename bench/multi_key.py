"""`multi_key_ratio`: the scheduled check of a deployment of 50 keys (each in 3 Regions), divided by the same check of
a deployment of one of those keys, every AWS call taking 40 ms.

How (README, Benchmark):
- AWS is a moto server in a process of its own, behind `bench.read_cache` (another process): moto answers one request
  at a time in 2-3 ms of its own CPU, which at 350 calls a check would be measured as the guard's time; the cache
  answers a repeated read with the bytes moto gave for it, so the guard's process does all of a real call's work
  (serialise, sign, HTTP over a socket, parse) and the server side costs what it costs in AWS: nothing of ours.
- The 40 ms are spent by the cache before it answers, holding the connection, as a network and AWS do: the guard's
  thread waits in `recv` (the GIL released), and a connection pool too small for the concurrency shows as new
  connections (counted by the cache).
- Both deployments are built as a deployed guard builds them (`parse_key_list`, `wire_fleet` with the deployed
  ClientFactory), share the state table and topic, and are settled first (state, baselines, coverage recorded; the
  cache filled), so the timed runs are steady-state scheduled checks: every key read in every Region, its state
  loaded, nothing to write or alert. Then, as the deployed handler does after its first invocation, what exists is
  frozen out of the garbage collector's sight (the rest of the benchmark's heap would otherwise be scanned by the
  collections the 50 keys' garbage triggers). Runs alternate (one key, 50 keys) so both see the same machine;
  medians.
- The timed deployments run on a plain botocore session, as in Lambda; calls are counted by operation on a copy of
  each deployment wired on the simulated account's instrumented session (`before-call`), in a run of its own. Memory
  is tracemalloc's peak of Python allocations during one more check of each deployment (untimed: tracemalloc slows
  allocation).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.session import Session, get_session
from kms_guard.aws.clients import ClientFactory
from kms_guard.deployment import parse_key_list
from kms_guard.fleet import MAX_KEY_WORKERS, Fleet, FleetResult
from kms_guard.wiring import wire_fleet
from kms_guard_cli.simulated import SimulatedAccount

KEYS = 50
RUNS = 15
SERVER_START_SECONDS = 60


@dataclass
class LocalAws:
    """The moto server and the read-through cache in front of it (`url`: what the guard's clients are given)."""

    url: str

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def stats(self) -> dict[str, Any]:
        return self._get("/__stats")

    def set_latency(self, seconds: float) -> None:
        self._get(f"/__latency/{seconds}")


def _wait_for(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {SERVER_START_SECONDS} s")


@contextmanager
def local_aws(port: int) -> Iterator[LocalAws]:
    """A moto server on `port` and the read-through cache in front of it, each in its own process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    cache: subprocess.Popen[str] | None = None
    try:
        upstream = f"http://127.0.0.1:{port}"
        _wait_for(upstream + "/moto-api/", moto)
        cache = subprocess.Popen(
            [sys.executable, "-m", "bench.read_cache", upstream],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert cache.stdout is not None
        line = cache.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"the read cache did not start: {line!r}")
        aws = LocalAws(f"http://127.0.0.1:{line[1]}")
        _wait_for(aws.url + "/__stats", cache)
        yield aws
    finally:
        for process in (cache, moto):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


@contextmanager
def endpoint(url: str) -> Iterator[None]:
    """The guard's clients reach AWS at `url` (AWS_ENDPOINT_URL, as every client honours it)."""
    before = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = before


def fleet_of(
    world: SimulatedAccount, keys: list[SimulatedAccount], regions: list[str], session: Session | None = None
) -> Fleet:
    """The deployment of `keys` as the deployed guard builds it: the key list parsed, the fleet wired on the deployed
    client policy. By default on the simulated account's instrumented session (it counts calls); `session` gives
    another (the timed runs take a plain one, as in Lambda: no counting handlers on every call)."""
    deployment = parse_key_list(
        [{"keyArn": key.key_arn, "regions": regions} for key in keys],
        shared={"state_table": world.table, "topic_arn": world.topic_arn},
    )
    return wire_fleet(deployment, ClientFactory(session or world.session)).fleet


def _check(fleet: Fleet, run: str) -> FleetResult:
    result = fleet.scheduled_check({"id": f"bench-{run}"})
    problems = dict(result.failed)
    for arn, key in result.results:
        verdict = key.report.verdict if key.report else None
        if verdict != "compliant" or key.alerts:
            problems[arn] = f"verdict {verdict}, {len(key.alerts)} alert(s)"
    if problems or len(result.results) != len(fleet.guards):
        raise RuntimeError(f"the benchmark's keys must be compliant and checked: {problems}")
    return result


def _timed(fleet: Fleet, run: str) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (user + system, every thread) of one scheduled check."""
    before, start = os.times(), time.perf_counter()
    _check(fleet, run)
    wall, after = time.perf_counter() - start, os.times()
    return wall, (after.user - before.user) + (after.system - before.system)


def _peak_mib(fleet: Fleet, run: str) -> float:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        _check(fleet, run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - start) / 2**20


def multi_key(policy: str, regions: list[str], latency: float, port: int, runs: int = RUNS) -> dict[str, Any]:
    with local_aws(port) as aws, endpoint(aws.url):
        world = SimulatedAccount.create(
            regions=regions, policy=policy, table="state", topic="alerts", endpoint_url=aws.url
        )
        keys = [world] + [
            world.add_key(policy=policy, description=f"bench key {i}", regions=regions) for i in range(1, KEYS)
        ]
        one, many = fleet_of(world, keys[:1], regions, get_session()), fleet_of(world, keys, regions, get_session())
        counted_one, counted = fleet_of(world, keys[:1], regions), fleet_of(world, keys, regions)
        aws.set_latency(latency)
        for index, fleet in enumerate((one, many, one, many)):  # settle state and baselines, then fill the cache
            _check(fleet, f"settle-{index}")
        gc.freeze()  # as the deployed handler does after its first invocation (kms_guard.handlers): only new garbage

        world.calls.clear()
        _check(counted, "counted")
        calls = Counter(world.calls)
        world.calls.clear()
        _check(counted_one, "counted-one")
        calls_one = Counter(world.calls)

        connections = aws.stats()["connections"]
        one_runs: list[tuple[float, float]] = []
        many_runs: list[tuple[float, float]] = []
        for run in range(runs):
            one_runs.append(_timed(one, f"one-{run}"))
            many_runs.append(_timed(many, f"many-{run}"))
        stats = aws.stats()
        gc.unfreeze()
        peak_many, peak_one = _peak_mib(many, "memory"), _peak_mib(one, "memory-one")  # latency still on

    one_s = statistics.median(wall for wall, _ in one_runs)
    many_s = statistics.median(wall for wall, _ in many_runs)
    kms = sum(count for name, count in calls.items() if name.startswith("kms."))
    dynamodb = sum(count for name, count in calls.items() if name.startswith("dynamodb."))
    return {
        "multi_key_ratio": round(many_s / one_s, 3),
        "kms_calls_per_key_region": round(kms / (KEYS * len(regions)), 3),
        "multi_key_detail": {
            "keys": KEYS,
            "regions": len(regions),
            "latency_ms": latency * 1000,
            "runs": runs,
            "key_workers": MAX_KEY_WORKERS,
            "one_key_ms": round(one_s * 1000, 1),
            "keys_ms": round(many_s * 1000, 1),
            "keys_ms_min_max": [round(f(wall for wall, _ in many_runs) * 1000, 1) for f in (min, max)],
            "one_key_cpu_ms": round(statistics.median(cpu for _, cpu in one_runs) * 1000, 1),
            "keys_cpu_ms": round(statistics.median(cpu for _, cpu in many_runs) * 1000, 1),
            "calls": dict(sorted(calls.items())),
            "calls_one_key": dict(sorted(calls_one.items())),
            "dynamodb_calls_per_key": round(dynamodb / KEYS, 3),
            "connections_opened_in_timed_runs": stats["connections"] - connections,
            "peak_mib_tracemalloc": round(peak_many, 2),
            "one_key_peak_mib_tracemalloc": round(peak_one, 2),
        },
    }
