"""moto-backed fixtures: the one simulated account (kms_guard_cli.simulated) with a compliant multi-Region key.

moto gaps that matter here (aws-facts.md): replicate_key ignores Policy (the simulated account puts the replica's
policy afterwards); a primary with replicas goes to PendingDeletion, not PendingReplicaDeletion (the state mapping for
PendingReplicaDeletion is covered by unit tests); key policies are not validated.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kms_guard_cli.simulated import FIXTURE_ACCOUNT, FIXTURE_KEY_ID, HOME, REPLICA, THIRD, SimulatedAccount
from moto import mock_aws

from tests.support import admin_statement, policy_text, rockset_statement

__all__ = ["FIXTURE_ACCOUNT", "FIXTURE_KEY_ID", "GOOD_POLICY", "HOME", "REPLICA", "THIRD", "Account"]

GOOD_POLICY = policy_text(admin_statement(), rockset_statement())
Account = SimulatedAccount


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": HOME,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def account(aws: None) -> SimulatedAccount:
    return SimulatedAccount.create(
        policy=GOOD_POLICY, table="kms-guard-state", topic="kms-guard-alerts", queue="alerts"
    )
