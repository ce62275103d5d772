"""Shared fixture loading: sample events under tests/events/, policy cases under tests/policies/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
EVENTS = TESTS / "events"
POLICIES = TESTS / "policies"

ROCKSET = "318212636800"
ROCKSET_ROOT = f"arn:aws:iam::{ROCKSET}:root"
CUSTOMER = "111122223333"
CUSTOMER_ROOT = f"arn:aws:iam::{CUSTOMER}:root"


def load_event(name: str) -> dict[str, Any]:
    """A sample EventBridge event, by file name without `.json`."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def policy_case_names() -> list[str]:
    return sorted(p.stem for p in POLICIES.glob("*.json"))


def load_policy_case(name: str) -> dict[str, Any]:
    """A policy case: `description`, `expect` (verdict, missing, conditional, codes), `policy`, optional `key_arn`."""
    case: dict[str, Any] = json.loads((POLICIES / f"{name}.json").read_text())
    return case


def policy_text(*statements: dict[str, Any], indent: int | None = 2) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=indent)


def rockset_statement(sid: str = "RocksetAccess", actions: Any = None) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": ROCKSET_ROOT},
        "Action": actions or ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
        "Resource": "*",
    }


def admin_statement() -> dict[str, Any]:
    return {
        "Sid": "EnableIAMUserPermissions",
        "Effect": "Allow",
        "Principal": {"AWS": CUSTOMER_ROOT},
        "Action": "kms:*",
        "Resource": "*",
    }
