"""cdk-nag AwsSolutions on the whole app, cfn-lint on every template, and the real CDK CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from aws_cdk import aws_iam as iam

from infra.app import build_app
from infra.config import config_from_context
from tests.infra.conftest import BASE, KEY_ARN, Built

ROOT = Path(__file__).resolve().parents[2]


def test_cdk_nag_is_really_checking(tmp_path: Path) -> None:
    """A wildcard IAM statement nobody acknowledged must fail synth.

    That every real configuration passes AwsSolutions is shown by the `off` and `on` fixtures: they synthesize with the
    plugin, and an unacknowledged finding makes synth raise."""
    app, home, _ = build_app(config_from_context(BASE))
    home.event_function.role.add_to_policy(iam.PolicyStatement(actions=["kms:*"], resources=["*"]))
    with pytest.raises(Exception, match=r"AwsSolutions-IAM5\[Action::kms:\*\]"):
        app.synth()


def test_every_acknowledgment_names_an_exact_rule_and_says_why(on: Built) -> None:
    acknowledged = {}
    for metadata in Path(on["assembly"].directory).glob("*.metadata.json"):
        for path, entries in json.loads(metadata.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    acknowledged.update({f"{path} {rule}": reason for rule, reason in entry["data"].items()})
    assert acknowledged, "expected the DLQ and topic-key acknowledgments"
    rules = {key.split(" ", 1)[1].removeprefix("Annotation::") for key in acknowledged}
    assert rules == {
        "AwsSolutions-SQS3",
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        # the coverage self-check's reads (cloudtrail:DescribeTrails has no resource type; the customer's trails)
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:aws:cloudtrail:*:*:trail/*]",
        # reads of the key's replicas wherever they are (REPLICA_UNWATCHED): the key's own ID, any Region
        f"AwsSolutions-IAM5[Resource::{KEY_ARN.replace('us-west-2', '*')}]",
    }
    assert all(len(reason) > 40 for reason in acknowledged.values())


def assert_cfn_lint_clean(assembly_directory: str, stacks: int) -> None:
    """cfn-lint finds nothing in the assembly's templates (there are `stacks` of them). W3005 (DependsOn beside GetAtt)
    is reported on ordinary CDK output: ignored explicitly, nothing else is."""
    templates = sorted(str(p) for p in Path(assembly_directory).glob("*.template.json"))
    assert len(templates) == stacks
    result = subprocess.run(
        ["cfn-lint", "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_is_clean_on_every_template(on: Built) -> None:
    assert_cfn_lint_clean(on["assembly"].directory, stacks=3)


@pytest.mark.skipif(shutil.which("npx") is None, reason="needs Node.js (installed on every machine of this project)")
def test_make_synth_runs_the_real_cdk_cli_through_uv_without_uv_on_path(tmp_path: Path) -> None:
    """cdk.json runs the app with `uv run --frozen`; `make synth` works where uv is only in .tools/ (the Makefile's
    own install), as on a fresh machine."""
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "run `make setup` (or `make test`) first: it installs the pinned CDK CLI"
    assert json.loads((ROOT / "cdk.json").read_text())["app"].startswith("uv run --frozen ")
    assert (ROOT / ".tools" / "bin" / "uv").exists(), "run `make setup` first: the Makefile installs uv into .tools/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "UV_", "VIRTUAL_ENV"))}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["PATH"] = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "uv").exists()
    )
    env.pop("UV", None)
    assert shutil.which("uv", path=env["PATH"]) is None
    result = subprocess.run(
        ["make", "--no-print-directory", "synth", f"CDK_OUT={tmp_path}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.glob("*.template.json"))
    assert names == [
        "KmsGuard.template.json",
        "KmsGuardForwarder-eu-west-1.template.json",
        "KmsGuardForwarder-us-east-1.template.json",
    ]
