"""Synthesized once per test session per configuration: building a CDK app costs seconds (jsii start-up)."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

if TYPE_CHECKING:
    from aws_cdk.assertions import Template
    from aws_cdk.cx_api import CloudAssembly

    from infra.config import GuardConfig

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
ACCOUNT = "111122223333"
REGIONS = ["us-west-2", "us-east-1", "eu-west-1"]
BASE: dict[str, Any] = {"keyArn": KEY_ARN, "regions": REGIONS, "alertEmails": ["security@example.com"]}


class Built(TypedDict):
    """One synthesized app: its config, cloud assembly, and the templates of the home stack and the forwarders."""

    config: GuardConfig
    assembly: CloudAssembly
    home: Template
    forwarders: dict[str, Template]


@functools.cache
def _build(frozen_context: tuple[tuple[str, Any], ...]) -> Built:
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


def build(**overrides: Any) -> Built:
    context = {**BASE, **overrides}
    return _build(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in context.items())))


@pytest.fixture(scope="session")
def off() -> Built:
    """Alerting only (the default)."""
    return build()


@pytest.fixture(scope="session")
def on() -> Built:
    """Remediation and restoreKeyState on."""
    return build(remediation="restore-statement", restoreKeyState=True)
