"""Synthesized once per test session per configuration: building a CDK app costs seconds (jsii start-up)."""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
REGIONS = ["us-west-2", "us-east-1", "eu-west-1"]
BASE = {"keyArn": KEY_ARN, "regions": REGIONS, "alertEmails": ["security@example.com"]}


@functools.cache
def _build(frozen_context: tuple[tuple[str, Any], ...]) -> Any:
    from aws_cdk.assertions import Template

    from infra.app import build_app
    from infra.config import config_from_context

    context = {k: list(v) if isinstance(v, tuple) else v for k, v in frozen_context}
    config = config_from_context(context)
    app, home, forwarders = build_app(config)
    assembly = app.synth()  # raises if cdk-nag reports an unacknowledged error
    return {
        "config": config,
        "assembly": assembly,
        "home": Template.from_stack(home),
        "forwarders": {f.region: Template.from_stack(f) for f in forwarders},
    }


def build(**overrides: Any) -> dict[str, Any]:
    context = {**BASE, **overrides}
    return _build(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in context.items())))


@pytest.fixture(scope="session")
def off() -> dict[str, Any]:
    """Alerting only (the default)."""
    return build()


@pytest.fixture(scope="session")
def on() -> dict[str, Any]:
    """Remediation and restoreKeyState on."""
    return build(remediation="restore-statement", restoreKeyState=True)
