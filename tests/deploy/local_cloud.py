"""A local AWS for `make deploy-local`: a moto server on 127.0.0.1 that the pinned CDK CLI deploys into.

Each class of gap met on that road (aws-facts.md, "Testing with moto") is handled here, once, and named where it is:
- Account ID: the CLI refuses to deploy a stack whose `env.account` (the key's account) differs from the caller's,
  so the server runs with `MOTO_ACCOUNT_ID` equal to the key's account (a process of its own: the variable is global).
- Template upload: stacks over 50 KB go to CloudFormation as a `TemplateURL`; moto reads the bucket and key from the
  URL's path only when the host is `localhost` (with `127.0.0.1` it takes "127" for the bucket).
  `AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION` makes the CLI write such URLs; the server is never fetched through them.
- The Powertools layer: moto has no AWS-published layers. `publish_layer_stand_in` publishes one with the same name
  and version in the server's account (moto resolves a layer ARN by name and version, whatever its account). moto's
  CloudFormation then drops `Layers` from the function anyway, so Powertools comes from the test environment
  (uv.lock) when the handlers run.
- Nothing here talks to AWS: dummy credentials, no shared config files, no instance metadata, no CLI notices,
  version check or telemetry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STARTUP_SECONDS = 30.0
CLI_TIMEOUT = 180
"""Seconds per CLI command: each takes seconds on moto; a hang (`--method=direct` updates do) must not stall make test."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def offline_environment(endpoint: str, region: str, home: Path) -> dict[str, str]:
    """What every process of the run gets: the local endpoint, dummy credentials and nothing that reaches AWS."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "UV_PROJECT_ENVIRONMENT", "UV_CACHE_DIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), str(ROOT / ".tools" / "bin")])  # cdk.json runs `uv run`
    env.update(CREDENTIALS)
    env.update(
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_ENDPOINT_URL=endpoint,
        AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION=endpoint.replace("127.0.0.1", "localhost"),
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        NODE_NO_WARNINGS="1",  # the AWS SDK's "Node.js 22 will be required" notice on every command
        CI="true",  # no progress bars or colours in the CLI output the tests read
    )
    return env


def use_offline_aws(env: pytest.MonkeyPatch, endpoint: str, region: str, home: Path) -> None:
    """The test process itself (boto3, the handlers run in-process) gets the same AWS settings as the CLI's processes,
    and no profile or session token from outside."""
    for name, value in offline_environment(endpoint, region, home).items():
        if name.startswith("AWS_"):
            env.setenv(name, value)
    env.delenv("AWS_PROFILE", raising=False)
    env.delenv("AWS_SESSION_TOKEN", raising=False)


@contextmanager
def moto_server(account: str) -> Iterator[str]:
    """A moto server process on 127.0.0.1 (a free port) for `account`; yields its endpoint URL.

    Its log (one line per request) goes to an unnamed temporary file, not a pipe: nobody reads a pipe while the
    server runs, and once a pipe's buffer is full the server blocks on its next log line, answering nothing more
    (seen from about 70 keys checked at once)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_ACCOUNT_ID"] = account
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                        break
                except (urllib.error.URLError, ConnectionError) as exc:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        stderr = log.read().decode(errors="replace")
                        raise RuntimeError(f"the moto server did not start on {endpoint}: {stderr[-2000:]}") from exc
                    time.sleep(0.2)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class CdkCli:
    """The pinned CDK CLI (node_modules, `make setup`), run in the project like a user runs it."""

    env: Mapping[str, str]

    def __call__(self, *args: str) -> str:
        if not CDK.exists():
            raise RuntimeError(f"{CDK} is missing: run `make setup` (make deploy-local and make test do)")
        result = subprocess.run(
            [str(CDK), *args, "--no-notices", "--no-color"],
            cwd=ROOT,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise AssertionError(f"cdk {' '.join(args)} failed ({result.returncode}):\n{output[-6000:]}")
        return output


def context_args(context: Mapping[str, str]) -> list[str]:
    return [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]


def publish_layer_stand_in(lambda_client: Any, layer_arn: str) -> str:
    """Publish layer versions in moto until the name and version of `layer_arn` exist; return the stand-in's ARN.

    moto numbers a layer's versions from 1, so the pinned version N takes N publishes (the ones before are empty).
    """
    name, version = layer_arn.split(":")[-2:]
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as archive:
        archive.writestr("python/STAND_IN.txt", f"moto stand-in for {layer_arn}\n")
    arn = ""
    for _ in range(int(version)):
        arn = lambda_client.publish_layer_version(
            LayerName=name,
            Description="stand-in: moto has no AWS-published layers",
            Content={"ZipFile": content.getvalue()},
            CompatibleRuntimes=["python3.14"],
        )["LayerVersionArn"]
    return arn


def stand_in_powertools(lambda_client: Any, template: Path) -> str:
    """The one published layer the synthesized functions name (Powertools; the keys layer is the stack's own, a
    reference), stood in for by `publish_layer_stand_in`; the stand-in's ARN."""
    published = {
        arn
        for resource in json.loads(template.read_text())["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        for arn in resource["Properties"].get("Layers", [])
        if isinstance(arn, str)
    }
    assert len(published) == 1, published
    return publish_layer_stand_in(lambda_client, published.pop())


def stack_names(cloudformation: Any) -> dict[str, str]:
    """Every stack moto knows in a Region, deleted ones included, with its status."""
    summaries = cloudformation.list_stacks()["StackSummaries"]
    return {s["StackName"]: s["StackStatus"] for s in summaries}


def resources_by_type(cloudformation: Any, stack: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for resource in cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]:
        out.setdefault(resource["ResourceType"], []).append(resource)
    return out


def download_asset(session: boto3.Session, endpoint: str, code: Mapping[str, Any], account: str, region: str) -> bytes:
    """The zip the CLI published for a function (`Code` of AWS::Lambda::Function in the deployed template)."""
    bucket = code["S3Bucket"]
    if isinstance(bucket, dict):  # {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"}
        bucket = bucket["Fn::Sub"].replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
    s3 = session.client("s3", region_name=region, endpoint_url=endpoint)
    body: bytes = s3.get_object(Bucket=bucket, Key=code["S3Key"])["Body"].read()
    return body


def unpack(archive: bytes, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        zipped.extractall(target)
    return target


LAMBDA_INVOKE = Path(__file__).resolve().parent / "lambda_invoke.py"


@dataclass(frozen=True)
class Invocation:
    result: dict[str, Any]
    module_file: str
    logs: str


def invoke_like_lambda(
    *,
    task_root: Path,
    configuration: Mapping[str, Any],
    event: Mapping[str, Any],
    endpoint: str,
    workdir: Path,
    extra_path: Sequence[Path] = (),
) -> Invocation:
    """Run the deployed function's handler as Lambda would: a fresh process whose environment is exactly the function's
    variables plus what the Lambda runtime adds (Region, credentials, function name, task root) and the endpoint (moto
    injects `AWS_ENDPOINT_URL` into the Lambdas it runs too), the code from the task root first on the path."""
    import json

    region = configuration["FunctionArn"].split(":")[3]
    env: dict[str, str] = dict(configuration.get("Environment", {}).get("Variables", {}))
    env.update(CREDENTIALS)
    env.update(
        PATH=os.environ.get("PATH", ""),
        PYTHONPATH=os.pathsep.join(str(p) for p in (task_root, *extra_path)),
        PYTHONDONTWRITEBYTECODE="1",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_ENDPOINT_URL=endpoint,
        AWS_CONFIG_FILE=str(workdir / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_LAMBDA_FUNCTION_NAME=configuration["FunctionName"],
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(configuration.get("MemorySize", 128)),
        LAMBDA_TASK_ROOT=str(task_root),
    )
    request = workdir / "request.json"
    request.write_text(json.dumps({"configuration": dict(configuration), "event": dict(event)}))
    response = workdir / "response.json"
    response.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, str(LAMBDA_INVOKE), str(request), str(response)],
        cwd=task_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    logs = result.stdout + result.stderr
    if result.returncode != 0 or not response.exists():
        raise AssertionError(f"{configuration['Handler']} failed ({result.returncode}):\n{logs[-6000:]}")
    answer = json.loads(response.read_text())
    return Invocation(result=answer["result"], module_file=answer["module_file"], logs=logs)
