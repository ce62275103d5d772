"""The cold-start policy of the Lambda entry points (kms_guard.handlers): the garbage collector is off while a Lambda
process initialises and frozen-then-on once the first invocation ends; nothing changes outside Lambda."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

PROBE = """
import gc
import kms_guard.handlers as handlers
print(gc.isenabled())
handlers.end_of_initialisation()
print(gc.isenabled(), gc.get_freeze_count() > 0)
frozen = gc.get_freeze_count()
handlers.end_of_initialisation()
print(gc.get_freeze_count() == frozen)
"""


def probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(FUNCTIONS), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_in_lambda_the_collector_is_off_while_initialising_then_frozen_and_on_once() -> None:
    assert probe(AWS_LAMBDA_FUNCTION_NAME="kms-guard-events") == ["False", "True", "True", "True"]


def test_outside_lambda_nothing_changes() -> None:
    assert probe() == ["True", "True", "False", "True"]


def test_the_policy_lives_in_the_entry_points_package_and_nowhere_else() -> None:
    users = [p.relative_to(FUNCTIONS).as_posix() for p in FUNCTIONS.rglob("*.py") if "gc.disable()" in p.read_text()]
    assert users == ["kms_guard/handlers/__init__.py"]
