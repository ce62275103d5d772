"""kms-guard benchmark: `make bench` writes bench/results.json and prints the same figures as a table.

Every goal is a ratio or a count measured within one run, so it holds on a noisy machine. AWS is moto in process;
latency is injected at botocore's `before-send` (inside the SDK, so it is paid exactly where a real call pays it).
The many-key figures (bench/multi_key.py) are the exception: 50 keys make about 350 calls a check, more than moto in
this process could answer without its own time being measured as the guard's, so there AWS is a moto server in a
process of its own behind a read-through cache that also spends the latency (bench/read_cache.py).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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

from kms_guard.aws.clients import ClientFactory  # noqa: E402
from kms_guard.aws.kms import KmsGateway  # noqa: E402
from kms_guard.core.compliance import assess_policy  # noqa: E402
from kms_guard.core.policy import parse_policy  # noqa: E402
from kms_guard.core.repair import guard_statement  # noqa: E402
from kms_guard.core.vendor import ROCKSET  # noqa: E402
from kms_guard.guard import Guard  # noqa: E402
from kms_guard_cli.simulated import SimulatedAccount  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from bench.adversarial import worst_policy_ms  # noqa: E402
from bench.multi_key import multi_key  # noqa: E402

HOME, REGIONS = "us-west-2", ["us-west-2", "us-east-1", "eu-west-1"]
LATENCY = 0.040
GOALS = {
    "parallel_ratio": ("<=", 1.5),
    "cold_start_ratio": ("<=", 1.25),
    "cold_start_memory_ratio": ("<=", 1.3),
    "irrelevant_event_calls": ("==", 0),
    "calls_per_region": ("<=", 2),
    "policy_eval_ms_32kb": ("<=", 5),
    "worst_policy_ms": ("<=", 50),
    "asset_kb": ("<=", 200),
    "multi_key_ratio": ("<=", 4),
    "kms_calls_per_key_region": ("==", 2),
}


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


def simulated_account(endpoint_url: str | None = None) -> SimulatedAccount:
    """The one simulated account (kms_guard_cli.simulated), with the key in all three Regions and a 1.5 KB policy."""
    return SimulatedAccount.create(
        regions=REGIONS, policy=_policy(1500), table="state", topic="alerts", endpoint_url=endpoint_url
    )


def guard_for(world: SimulatedAccount, regions: list[str]) -> Guard:
    return world.guard(max_attempts=5, regions=regions)


def measure_handler(world: SimulatedAccount, regions: list[str], name: str, runs: int = 7) -> float:
    guard = guard_for(world, regions)
    guard.handle(world.event(name, new_id=True))  # warm: clients created, baselines recorded
    return median_seconds(guard.handle, lambda: world.event(name, new_id=True), runs)


def measure_region_read(world: SimulatedAccount, runs: int = 7) -> float:
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


def calls_for(world: SimulatedAccount, regions: list[str], name: str) -> Counter[str]:
    guard = guard_for(world, regions)
    guard.handle(world.event("scheduled-check", new_id=True))  # settle state first
    world.calls.clear()
    guard.handle(world.event(name, new_id=True))
    return Counter(world.calls)


GUARD_PROCESS = """
import json, sys, uuid
from kms_guard.handlers import scheduled_check

class Context:
    function_name = "kms-guard-scheduled-check"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:kms-guard-scheduled-check"
    aws_request_id = str(uuid.uuid4())

result = scheduled_check.handler(json.loads(sys.argv[1]), Context())
assert result["decision"] == "evaluated" and result["report"]["verdict"] == "compliant", result
_measured()
"""

BASELINE_PROCESS = """
import sys
import boto3

kms = boto3.client("kms", region_name=sys.argv[1])
kms.describe_key(KeyId=sys.argv[2])
kms.get_key_policy(KeyId=sys.argv[2], PolicyName="default")
_measured()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


MEASURED = """
import sys, time

def _measured():
    # Done: the work is over (in Lambda the process lives on; its teardown is nobody's cost). VmHWM is this process
    # image's peak resident set (ru_maxrss would also count the pages of the parent it was forked from).
    done = time.monotonic()
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"done={done!r} peak-kib={peak.split()[1]}\\n")
"""


def _run_process(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """A fresh interpreter: seconds from its start until its work is done (CLOCK_MONOTONIC is shared by all
    processes), and its peak resident memory (MiB)."""
    start = time.monotonic()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    marks = [line for line in out.stderr.splitlines() if line.startswith("done=")]
    if out.returncode != 0 or not marks:
        raise RuntimeError(f"{argv[2][-200:]!r} failed: {out.stderr[-2000:]}")
    fields = dict(item.split("=", 1) for item in marks[-1].split())
    return float(fields["done"]) - start, int(fields["peak-kib"]) / 1024


def _precompile_third_party(argvs: list[list[str]], env: dict[str, str], prefix: str) -> dict[str, str]:
    """As in Lambda: the runtime's and the layer's libraries come compiled, our own code does not (the asset is
    source only, and /var/task is read-only). Run each process once writing bytecode into a private cache, drop the
    cache of functions/, and return an environment that reads that cache and writes nothing."""
    warm = {**env, "PYTHONPYCACHEPREFIX": prefix}
    warm.pop("PYTHONDONTWRITEBYTECODE", None)
    for argv in argvs:
        _run_process(argv, warm)
    shutil.rmtree(Path(prefix + str(ROOT / "functions")), ignore_errors=True)
    return {**env, "PYTHONPYCACHEPREFIX": prefix, "PYTHONDONTWRITEBYTECODE": "1"}


def cold_start(runs: int = 9) -> dict[str, Any]:
    """What a user pays on a cold start, as whole processes against one local moto server: a fresh interpreter that
    imports the scheduled-check handler and checks the key in 3 Regions (state read, nothing to alert), against a
    minimal boto3 script doing DescribeKey and GetKeyPolicy in one Region. Runs alternate; medians of `runs`.

    Two bytecode regimes, both reported. The goal figures take the interpreter as this machine (and CI) runs it,
    where nothing is ever cached as bytecode (PYTHONDONTWRITEBYTECODE): both processes compile all they import.
    `precompiled_libraries` is closer to Lambda, where the runtime's and the layer's libraries come compiled and
    only our own code is compiled at each cold start; it is reported, not a goal (README, Benchmark)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    pycache = tempfile.mkdtemp(prefix="kms-guard-bench-pycache-")
    url = f"http://127.0.0.1:{port}"
    try:
        world = simulated_account(endpoint_url=url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMS_GUARD_"))}
        env.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION=HOME,
            POWERTOOLS_LOG_LEVEL="ERROR",
            POWERTOOLS_METRICS_NAMESPACE="KmsGuardBench",
            # what Lambda sets: the handlers' cold-start policy (kms_guard.handlers) applies in Lambda only
            AWS_LAMBDA_FUNCTION_NAME="kms-guard-scheduled-check",
            AWS_EXECUTION_ENV="AWS_Lambda_python3.14",
            **world.environment(REGIONS),
        )
        env.pop("POWERTOOLS_METRICS_DISABLED", None)  # as deployed: metrics on (EMF to stdout)
        event = json.dumps(world.event("scheduled-check"))
        guard_argv = [sys.executable, "-c", MEASURED + GUARD_PROCESS, event]
        baseline_argv = [sys.executable, "-c", MEASURED + BASELINE_PROCESS, HOME, world.key_arn]
        for argv in (guard_argv, baseline_argv):  # the first check settles the state, as on a deployed guard
            _run_process(argv, env)
        as_is = _alternate(guard_argv, baseline_argv, env, runs)
        precompiled = _alternate(
            guard_argv, baseline_argv, _precompile_third_party([guard_argv, baseline_argv], env, pycache), runs
        )
    finally:
        server.stop()
        shutil.rmtree(pycache, ignore_errors=True)
    return {
        "cold_start_ratio": as_is["time_ratio"],
        "cold_start_memory_ratio": as_is["memory_ratio"],
        "detail": {"runs": runs, "as_this_machine_runs_python": as_is, "precompiled_libraries": precompiled},
    }


def _alternate(guard_argv: list[str], baseline_argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    guard: list[tuple[float, float]] = []
    baseline: list[tuple[float, float]] = []
    for _ in range(runs):
        guard.append(_run_process(guard_argv, env))
        baseline.append(_run_process(baseline_argv, env))
    guard_s, guard_mib = statistics.median(t for t, _ in guard), statistics.median(m for _, m in guard)
    base_s, base_mib = statistics.median(t for t, _ in baseline), statistics.median(m for _, m in baseline)
    return {
        "time_ratio": round(guard_s / base_s, 3),
        "memory_ratio": round(guard_mib / base_mib, 3),
        "guard_3_regions_ms": round(guard_s * 1000, 1),
        "boto3_1_region_ms": round(base_s * 1000, 1),
        "guard_peak_mib": round(guard_mib, 1),
        "boto3_peak_mib": round(base_mib, 1),
    }


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
        world = simulated_account()
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
            guard_for(world, REGIONS).handle(world.event(name, new_id=True))
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
    worst_ms, worst_name = worst_policy_ms()
    results["worst_policy_ms"] = round(worst_ms, 2)
    results["worst_policy"] = worst_name
    results["policy_eval_ms_by_size"] = {f"{kb}kb": round(policy_eval_ms(kb * 1000), 3) for kb in (1, 8, 32)}
    cold = cold_start()
    results["cold_start_ratio"] = cold["cold_start_ratio"]
    results["cold_start_memory_ratio"] = cold["cold_start_memory_ratio"]
    results["cold_start_detail"] = cold["detail"]
    results["asset_kb"] = round(asset_kb(), 1)
    results.update(multi_key(_policy(1500), REGIONS, LATENCY, _free_port()))

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
    print("cold start (whole processes, medians):", results["cold_start_detail"])
    print("policy evaluation (ms) by size:", results["policy_eval_ms_by_size"])
    print(f"slowest adversarial 32 KB policy: {results['worst_policy']} ({results['worst_policy_ms']} ms)")
    print("handler time (ms), no injected latency:", results["handler_ms_no_latency"])
    multi = results["multi_key_detail"]
    print(
        f"many keys ({multi['keys']} keys x {multi['regions']} Regions, {multi['latency_ms']:g} ms per call, "
        f"medians of {multi['runs']}): {multi['keys_ms']} ms (runs {multi['keys_ms_min_max'][0]}-"
        f"{multi['keys_ms_min_max'][1]} ms; CPU {multi['keys_cpu_ms']} ms) against one key "
        f"{multi['one_key_ms']} ms (CPU {multi['one_key_cpu_ms']} ms); {multi['dynamodb_calls_per_key']} DynamoDB "
        f"calls per key; {multi['connections_opened_in_timed_runs']} connections opened in the timed runs; "
        f"peak Python memory (tracemalloc) {multi['peak_mib_tracemalloc']} MiB "
        f"(one key: {multi['one_key_peak_mib_tracemalloc']} MiB)"
    )
    print(f"  calls of one check of the {multi['keys']} keys: {multi['calls']}")
    print("AWS calls per event (3 Regions):")
    for name, counts in results["calls_per_event"].items():
        print(f"  {name:28} {counts}")
    print("\nwritten to bench/results.json")
    sys.exit(0 if all(verdicts.values()) else 1)


if __name__ == "__main__":
    main()
