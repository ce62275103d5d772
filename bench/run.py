"""kms-guard benchmark: `make bench` writes bench/results.json and prints the same figures as a table.

Every goal is a ratio or a count measured within one run, so it holds on a noisy machine. AWS is moto in process;
latency is injected at botocore's `before-send` (inside the SDK, so it is paid exactly where a real call pays it).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-west-2",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from kms_guard.aws.clients import ClientFactory  # noqa: E402
from kms_guard.aws.kms import KmsGateway  # noqa: E402
from kms_guard.aws.state import create_table_request  # noqa: E402
from kms_guard.core.compliance import assess_policy  # noqa: E402
from kms_guard.core.policy import parse_policy  # noqa: E402
from kms_guard.core.repair import guard_statement  # noqa: E402
from kms_guard.core.vendor import ROCKSET  # noqa: E402
from kms_guard.settings import build_settings  # noqa: E402
from kms_guard.wiring import wire  # noqa: E402
from moto import mock_aws  # noqa: E402

HOME, REGIONS = "us-west-2", ["us-west-2", "us-east-1", "eu-west-1"]
LATENCY = 0.040
GOALS = {
    "parallel_ratio": ("<=", 1.5),
    "import_ratio": ("<=", 1.3),
    "irrelevant_event_calls": ("==", 0),
    "calls_per_region": ("<=", 2),
    "policy_eval_ms_32kb": ("<=", 5),
    "asset_kb": ("<=", 200),
}
FIXTURES = ROOT / "tests" / "events"


def _policy(size: int) -> str:
    """A realistic key policy of about `size` bytes: wildcards, NotAction, conditions, Denies that do not apply."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Admin",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        guard_statement(ROCKSET),
    ]
    i = 0
    while len(json.dumps({"Version": "2012-10-17", "Statement": statements})) < size - 400:
        kind = i % 4
        if kind == 0:
            statements.append(
                {
                    "Sid": f"App{i}",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::123456789012:role/app-{i}"},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"kms:ViaService": f"s3.r{i}.amazonaws.com"}},
                }
            )
        elif kind == 1:
            statements.append(
                {
                    "Sid": f"Deny{i}",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:ScheduleKey*",
                    "Resource": "*",
                    "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ["123456789012", "318212636800"]}},
                }
            )
        elif kind == 2:
            statements.append(
                {
                    "Sid": f"Grants{i}",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::111122223333:role/g{i}"},
                    "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    "Resource": "*",
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                }
            )
        else:
            statements.append(
                {
                    "Sid": f"NotAct{i}",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::222233334444:role/x{i}"},
                    "NotAction": ["kms:Put*", "kms:Delete*", "kms:Schedule*"],
                    "Resource": "*",
                    "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": f"o-abc/r-1/ou-{i}/*"}},
                }
            )
        i += 1
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def policy_eval_ms(size: int, runs: int = 200) -> float:
    text = _policy(size)
    assert len(text.encode()) <= 32_768
    result = assess_policy(parse_policy(text), ROCKSET)
    assert not result.missing, "the benchmark policy must be compliant so every statement is evaluated"
    times = []
    gc.collect()
    gc.disable()  # as timeit does: the rest of this process (moto's objects) must not bill its GC passes here
    try:
        for _ in range(runs):
            start = time.perf_counter()
            assess_policy(parse_policy(text), ROCKSET)
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return statistics.median(times) * 1000


class World:
    """A key in three Regions with the grant, the table and the topic, and a session that counts and delays calls."""

    def __init__(self) -> None:
        kms = boto3.client("kms", region_name=HOME)
        policy = _policy(1500)
        meta = kms.create_key(MultiRegion=True, Policy=policy, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
        self.key_arn, self.key_id, self.account = meta["Arn"], meta["KeyId"], meta["AWSAccountId"]
        for region in REGIONS[1:]:
            kms.replicate_key(KeyId=self.key_id, ReplicaRegion=region)
            boto3.client("kms", region_name=region).put_key_policy(
                KeyId=self.key_id, PolicyName="default", Policy=policy
            )
        boto3.client("dynamodb", region_name=HOME).create_table(**create_table_request("state"))
        self.topic = boto3.client("sns", region_name=HOME).create_topic(Name="alerts")["TopicArn"]
        self.calls: Counter[str] = Counter()
        self.latency = 0.0
        self._lock = threading.Lock()
        self.session = boto3.Session(region_name=HOME)
        self.session.events.register("before-call", self._count)
        self.session.events.register_first("before-send", self._delay)

    def _count(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1

    def _delay(self, **_: Any) -> None:
        if self.latency:
            time.sleep(self.latency)

    def guard(self, regions: list[str]) -> Any:
        settings = build_settings(key_arn=self.key_arn, regions=regions, state_table="state", topic_arn=self.topic)
        return wire(settings, ClientFactory(self.session)).guard

    def event(self, name: str) -> dict[str, Any]:
        text = (FIXTURES / f"{name}.json").read_text()
        text = text.replace("mrk-1234abcd12ab34cd56ef1234567890ab", self.key_id).replace("111122223333", self.account)
        event = json.loads(text)
        if "eventID" in event.get("detail", {}):
            event["detail"]["eventID"] = str(uuid.uuid4())
        return event


def measure_handler(world: World, regions: list[str], name: str, runs: int = 7) -> float:
    guard = world.guard(regions)
    guard.handle(world.event(name))  # warm: clients created, baselines recorded
    return median_seconds(guard.handle, lambda: world.event(name), runs)


def measure_region_read(world: World, runs: int = 7) -> float:
    gateway = KmsGateway(ClientFactory(world.session))
    gateway.read(HOME, world.key_arn)  # warm: client created
    return median_seconds(lambda _: gateway.read(HOME, world.key_arn), lambda: None, runs)


def median_seconds(call: Callable[[Any], object], prepare: Callable[[], Any], runs: int) -> float:
    """Median wall time of `call(prepare())`, the preparation (a fresh event ID) left out of the timing."""
    times = []
    for _ in range(runs):
        argument = prepare()
        start = time.perf_counter()
        call(argument)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calls_for(world: World, regions: list[str], name: str) -> Counter[str]:
    guard = world.guard(regions)
    guard.handle(world.event("scheduled-check"))  # settle state first
    world.calls.clear()
    guard.handle(world.event(name))
    return Counter(world.calls)


def import_ratio(runs: int = 7) -> tuple[float, float, float]:
    def timed(module: str) -> float:
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
        samples = []
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            samples.append(float(out.stdout.strip()))
        return statistics.median(samples)

    handler = max(timed("kms_guard.handlers.kms_event"), timed("kms_guard.handlers.scheduled_check"))
    boto = timed("boto3")
    return handler / boto, handler * 1000, boto * 1000


def asset_kb() -> float:
    from infra.app import build_app
    from infra.config import config_from_context

    config = config_from_context(
        {
            "keyArn": "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "regions": ["us-west-2"],
            "remediation": "restore-statement",
            "restoreKeyState": True,
        }
    )
    app, _, _ = build_app(config)
    assembly = app.synth()
    manifest = json.loads(Path(assembly.directory, "KmsGuard.assets.json").read_text())
    [source] = [f["source"]["path"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"]
    directory = Path(assembly.directory) / source
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(directory))
        return archive.stat().st_size / 1024


def main() -> None:
    results: dict[str, Any] = {}
    with mock_aws():
        world = World()
        world.latency = LATENCY
        one_region_read = measure_region_read(world)
        handler_3 = measure_handler(world, REGIONS, "enable-key")
        results["parallel_ratio"] = round(handler_3 / one_region_read, 3)
        results["parallel_detail"] = {
            "latency_ms": LATENCY * 1000,
            "handler_3_regions_ms": round(handler_3 * 1000, 1),
            "one_region_reads_ms": round(one_region_read * 1000, 1),
        }
        world.latency = 0.0

        irrelevant = 0
        for name in (
            "disable-key-other-key",
            "disable-key-failed-access-denied",
            "decrypt-read-only",
            "disable-key-alias-only",
        ):
            world.calls.clear()
            world.guard(REGIONS).handle(world.event(name))
            irrelevant += sum(world.calls.values())
        results["irrelevant_event_calls"] = irrelevant

        calls = calls_for(world, REGIONS, "enable-key")
        kms_calls = sum(v for k, v in calls.items() if k.startswith("kms."))
        results["calls_per_region"] = kms_calls / len(REGIONS)
        results["calls_per_event"] = {
            name: dict(sorted(calls_for(world, REGIONS, name).items()))
            for name in ("enable-key", "scheduled-check", "disable-key-other-key")
        }
        results["handler_ms_no_latency"] = {
            name: round(measure_handler(world, REGIONS, name) * 1000, 2)
            for name in (
                "put-key-policy-removes-decrypt",
                "disable-key-replica",
                "replicate-key-without-grant",
                "kms-cmk-deletion",
                "scheduled-check",
                "disable-key-other-key",
            )
        }

    results["policy_eval_ms_32kb"] = round(policy_eval_ms(32_000), 3)
    results["policy_eval_ms_by_size"] = {f"{kb}kb": round(policy_eval_ms(kb * 1000), 3) for kb in (1, 8, 32)}
    ratio, handler_ms, boto_ms = import_ratio()
    results["import_ratio"] = round(ratio, 3)
    results["import_detail"] = {"handler_module_ms": round(handler_ms, 1), "boto3_ms": round(boto_ms, 1)}
    results["asset_kb"] = round(asset_kb(), 1)

    verdicts = {}
    for key, (op, goal) in GOALS.items():
        value = results[key]
        verdicts[key] = value <= goal if op == "<=" else value == goal
    results["goals"] = {k: {"goal": f"{op} {goal}", "met": verdicts[k]} for k, (op, goal) in GOALS.items()}
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"{'figure':28} {'value':>10}  goal      met")
    for key, (op, goal) in GOALS.items():
        print(f"{key:28} {results[key]!s:>10}  {op} {goal!s:6} {'yes' if verdicts[key] else 'NO'}")
    print()
    print("parallel:", results["parallel_detail"])
    print("imports (ms):", results["import_detail"])
    print("policy evaluation (ms) by size:", results["policy_eval_ms_by_size"])
    print("handler time (ms), no injected latency:", results["handler_ms_no_latency"])
    print("AWS calls per event (3 Regions):")
    for name, counts in results["calls_per_event"].items():
        print(f"  {name:28} {counts}")
    print("\nwritten to bench/results.json")
    sys.exit(0 if all(verdicts.values()) else 1)


if __name__ == "__main__":
    main()
