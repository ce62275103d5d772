"""The README is a contract too: the commands, variables and tests it names must exist."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from kms_guard.core.findings import Code
from kms_guard.settings import ENV_NAMES
from kms_guard_cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_reliability_matrix_names_exists() -> None:
    section = README.split("## Reliability matrix", 1)[1].split("\n## ", 1)[0]
    references = re.findall(r"`((?:unit|functional|infra)/[\w/]+\.py)?::(test_\w+)`", section)
    assert len(references) >= 25
    current: str | None = None
    for path, name in references:
        current = path or current
        assert current is not None, f"::{name} comes before any test file is named"
        assert name in _test_names(ROOT / "tests" / current), f"{current}::{name}"


def test_every_command_and_finding_code_is_documented() -> None:
    [subcommands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = subcommands.choices
    for command in commands:
        assert f"kms-guard {command}" in README, command
    for code in Code:
        assert f"`{code.value}`" in README, code


def test_every_coverage_code_and_the_strict_coverage_exit_code_are_documented() -> None:
    from kms_guard.core.coverage import CoverageCode

    troubleshooting = README.split("## Troubleshooting and FAQ", 1)[1].split("\n## ", 1)[0]
    for code in CoverageCode:
        assert f"| `{code.value}` |" in troubleshooting, code
    assert "--strict-coverage" in README
    assert "exits **4**" in README
    assert "The canary (opt-in)" in troubleshooting


def test_every_lambda_setting_is_documented() -> None:
    for variable in ENV_NAMES.values():
        assert f"`{variable}`" in README, variable


def test_every_context_key_is_documented() -> None:
    from infra.config import CONTEXT_KEYS

    for key in CONTEXT_KEYS:
        assert f"| `{key}` |" in README, key


def test_the_keys_example_is_a_valid_key_list() -> None:
    """The README's `keys` example is what users copy: it must pass the same validation as the app's and the CLI's."""
    import json

    from kms_guard.deployment import FIELDS, parse_key_list

    section = README.split("### Many keys, one guard", 1)[1].split("\n### ", 1)[0]
    [example] = re.findall(r"```json\n(.*?)```", section, re.S)
    entries = json.loads(example)["context"]["keys"]
    deployment = parse_key_list(entries)
    assert len({s.vendor.name for s in deployment.keys}) >= 3
    for field in FIELDS:
        assert f"| `{field}` |" in section, field
