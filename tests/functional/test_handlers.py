"""The Lambda entry points: thin, configured from the environment, logging and metrics through Powertools."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kms_guard import handlers
from kms_guard.aws.clients import ClientFactory
from kms_guard.handlers import kms_event, runtime, scheduled_check
from kms_guard.settings import SettingsError
from kms_guard.wiring import wire_fleet

from tests.functional.conftest import HOME, REPLICA, Account
from tests.functional.test_scenarios import break_policy


@dataclass
class Context:
    function_name: str = "kms-guard-events"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-west-2:123456789012:function:kms-guard-events"
    aws_request_id: str = "req-1"


@pytest.fixture
def lambda_env(account: Account, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    monkeypatch.setenv("KMS_GUARD_KEY_ARN", account.key_arn)
    monkeypatch.setenv("KMS_GUARD_REGIONS", f"{HOME},{REPLICA}")
    monkeypatch.setenv("KMS_GUARD_TOPIC_ARN", account.topic_arn)
    monkeypatch.setenv("KMS_GUARD_STATE_TABLE", account.table)
    monkeypatch.setenv("KMS_GUARD_REMEDIATION", "restore-statement")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "KmsGuard")
    # The real wiring, on the test session so its call counter and fault injection see the handler's calls.
    monkeypatch.setattr(
        runtime, "wire_fleet", lambda deployment: wire_fleet(deployment, ClientFactory(account.session))
    )
    runtime.wired.cache_clear()
    yield account
    runtime.wired.cache_clear()


def metric_names(capsys: pytest.CaptureFixture[str]) -> set[str]:
    """Names in the EMF metrics line Powertools prints when the handler returns."""
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            return {m["Name"] for m in json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    return set()


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "kms-guard" and r.getMessage() == message]


def test_event_handler_repairs_and_logs_with_the_cloudtrail_event_id(
    lambda_env: Account, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    account = lambda_env
    break_policy(account)
    event = account.event("put-key-policy-removes-decrypt")
    result = kms_event.handler(event, Context())
    assert result["decision"] == "evaluated"
    assert result["report"]["verdict"] == "compliant"
    assert result["remediation"][0]["applied"] is True
    assert runtime.logger.get_correlation_id() == event["detail"]["eventID"]
    [evaluated] = logged(caplog, "key evaluated")
    assert vars(evaluated)["verdict"] == "compliant"  # the log's `extra` fields are not in LogRecord's type
    assert vars(evaluated)["codes"] == []
    assert {"Evaluations", "AlertsPublished", "Repairs.applied", "Findings.ACTION_NOT_GRANTED"} <= metric_names(capsys)


def test_dropped_events_are_logged_with_the_reason_and_counted(
    lambda_env: Account, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    result = kms_event.handler(lambda_env.event("disable-key-other-key"), Context())
    assert result == {
        "decision": "ignored",
        "reason": "event is about another key",
        "report": None,
        "alerts": [],
        "remediation": [],
    }
    [ignored] = logged(caplog, "event ignored")
    assert vars(ignored)["reason"] == "event is about another key"
    assert metric_names(capsys) == {"DroppedEvents"}
    assert sum(lambda_env.calls.values()) == 0


def test_scheduled_check_handler(lambda_env: Account) -> None:
    lambda_env.kms(REPLICA).disable_key(KeyId=lambda_env.key_id)
    result = scheduled_check.handler(lambda_env.event("scheduled-check"), Context(function_name="kms-guard-schedule"))
    assert result["report"]["verdict"] == "non-compliant"
    assert "disabled" in lambda_env.delivered_alerts()[0]["subject"]


def test_a_bad_setting_fails_loudly_naming_the_variable(lambda_env: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMS_GUARD_REMEDIATION", "yolo")
    with pytest.raises(SettingsError, match="KMS_GUARD_REMEDIATION: unknown mode 'yolo'"):
        kms_event.handler(lambda_env.event("disable-key-replica"), Context())


def test_sns_down_raises_out_of_the_handler_so_lambda_retries(lambda_env: Account) -> None:
    lambda_env.fail_call("sns.Publish", "InternalError")
    lambda_env.kms(REPLICA).disable_key(KeyId=lambda_env.key_id)
    with pytest.raises(Exception, match="InternalError"):
        kms_event.handler(lambda_env.event("disable-key-replica"), Context())


@pytest.mark.parametrize("module", [kms_event, scheduled_check], ids=["kms_event", "scheduled_check"])
def test_each_handler_ends_the_initialisation_however_its_invocation_ends(
    lambda_env: Account, monkeypatch: pytest.MonkeyPatch, module: Any
) -> None:
    """The cold-start policy (kms_guard.handlers): the collector comes back on after the first invocation even if
    that invocation failed, so a function that fails its first run never runs on without a garbage collector."""
    ended: list[bool] = []
    monkeypatch.setattr(handlers, "end_of_initialisation", lambda: ended.append(True))
    assert module.handler(lambda_env.event("scheduled-check"), Context())["decision"] == "evaluated"
    monkeypatch.setenv("KMS_GUARD_REMEDIATION", "yolo")
    runtime.wired.cache_clear()
    with pytest.raises(SettingsError):
        module.handler(lambda_env.event("scheduled-check"), Context())
    assert ended == [True, True]


def test_every_lambda_entry_point_ends_the_initialisation() -> None:
    """The canary's handler used to leave the collector off for the life of its containers."""
    import pkgutil

    entry_points = [
        m.name for m in pkgutil.iter_modules(handlers.__path__) if hasattr(import_module(m.name), "handler")
    ]
    assert sorted(entry_points) == ["canary", "kms_event", "scheduled_check"]
    for name in entry_points:
        handler = import_module(name).handler
        seen = set()
        while handler is not None and id(handler) not in seen:  # through the Powertools decorators
            seen.add(id(handler))
            if getattr(handler, "ends_initialisation", False):
                break
            handler = getattr(handler, "__wrapped__", None)
        assert handler is not None, name
        assert getattr(handler, "ends_initialisation", False), name


def import_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"kms_guard.handlers.{name}")
