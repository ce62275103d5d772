"""`make demo` doubles as an end-to-end test: the story must turn out exactly as told."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kms_guard.fleet import Fleet
from kms_guard_cli import demo
from kms_guard_cli.main import run


def test_demo_runs_the_whole_story_in_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kms_guard_cli.main", "demo", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is one JSON object: no log or metrics lines leak into it
    assert summary["final_verdict"] == "compliant"
    steps = summary["steps"]
    assert [s["event"] for s in steps] == [
        "ScheduledCheck",
        "PutKeyPolicy",
        "DisableKey",
        "ReplicateKey",
        "ScheduleKeyDeletion",
        "PutKeyPolicy",
        "PutKeyPolicy",
        "PutKeyPolicy",
        "ScheduledCheck",
        "ScheduledCheck",
        "PutKeyPolicy",
        "ScheduledCheck",
    ]
    both = "Rockset and Databricks"
    assert [s["vendor"] for s in steps] == ["Rockset"] * 9 + [both, "Databricks", both]
    assert summary["final_verdicts"] == {"Rockset": "compliant", "Databricks": "compliant"}
    assert set(steps[1]) >= {"event", "region", "alerts", "remediation", "verdict_after"}
    assert steps[1]["alerts"][0] == {
        "subject": steps[1]["alerts"][0]["subject"],
        "severity": "critical",
        "codes": ["ACTION_NOT_GRANTED"],
        "key_id": summary["key_arn"].rsplit("/", 1)[-1],
    }
    assert steps[2]["remediation"][0]["writes"] == ["enable-key"]
    assert steps[4]["remediation"][0]["writes"] == ["cancel-key-deletion", "enable-key"]
    assert steps[6]["remediation"][0]["status"] == "suspended"
    assert steps[7]["alerts"] == []
    # Security Hub: the finding appears while remediation is suspended and resolves with the final check.
    key_id = summary["key_arn"].rsplit("/", 1)[-1]
    finding = f"kms-guard/{key_id}/us-east-1/ACTION_NOT_GRANTED"
    assert steps[6]["security_hub"] == [{"id": finding, "record_state": "ACTIVE", "compliance": "FAILED"}]
    assert steps[7]["security_hub"] == []
    assert steps[8]["security_hub"] == [{"id": finding, "record_state": "ARCHIVED", "compliance": "PASSED"}]
    # EventBridge: one event per change reaches the routed queue; none when nothing changed.
    assert [e["change"] for e in steps[1]["finding_events"]] == ["problem", "resolved"]
    assert steps[0]["finding_events"] == steps[7]["finding_events"] == []
    assert steps[6]["finding_events"] == [
        {
            "key_arn": summary["key_arn"],
            "vendor": "Rockset",
            "regions": ["us-east-1"],
            "verdict": "non-compliant",
            "previous_verdict": "compliant",
            "codes": ["ACTION_NOT_GRANTED"],
            "change": "problem",
        }
    ]
    assert [e["change"] for e in steps[8]["finding_events"]] == ["resolved"]


def test_demo_one_deployment_of_two_keys_alerts_about_the_changed_key_alone() -> None:
    import io

    out = io.StringIO()
    summary = demo.run_demo(out)
    keys = summary["keys"]
    assert list(keys) == ["Rockset", "Databricks"]
    rockset, databricks = keys["Rockset"], keys["Databricks"]
    assert rockset == summary["key_arn"] != databricks
    databricks_id = databricks.rsplit("/", 1)[-1]
    baseline, broken, final = summary["steps"][9:]

    # The scheduled check of the one deployment evaluates both keys.
    assert [(k["key_arn"], k["vendor"], k["verdict_after"]) for k in baseline["keys"]] == [
        (rockset, "Rockset", "compliant"),
        (databricks, "Databricks", "compliant"),
    ]
    assert (baseline["event"], baseline["alerts"], baseline["remediation"]) == ("ScheduledCheck", [], [])

    # A change to the Databricks key: routed to that key alone, one alert naming it, the Rockset key's state untouched.
    assert (broken["event"], broken["region"]) == ("PutKeyPolicy", "us-west-2")
    assert broken["keys"] == [{"key_arn": databricks, "vendor": "Databricks", "verdict_after": "non-compliant"}]
    assert broken["untouched"] == ["Rockset"]
    assert broken["alerts"] == [
        {
            "subject": f"[CRITICAL] Databricks key {databricks_id} grant missing in us-west-2",
            "severity": "critical",
            "codes": ["ACTION_NOT_GRANTED"],
            "key_id": databricks_id,
        }
    ]
    assert broken["remediation"] == []  # its entry leaves remediation off; the Rockset key's repairs stay on
    assert [(e["vendor"], e["key_arn"], e["change"]) for e in broken["finding_events"]] == [
        ("Databricks", databricks, "problem")
    ]
    assert broken["security_hub"] == [
        {
            "id": f"kms-guard/{databricks_id}/us-west-2/ACTION_NOT_GRANTED",
            "record_state": "ACTIVE",
            "compliance": "FAILED",
        }
    ]

    # After the team's fix, the scheduled check evaluates both again; the all-clear names the Databricks key.
    assert [(k["key_arn"], k["verdict_after"]) for k in final["keys"]] == [
        (rockset, "compliant"),
        (databricks, "compliant"),
    ]
    assert [(a["severity"], a["key_id"]) for a in final["alerts"]] == [("info", databricks_id)]
    assert final["alerts"][0]["subject"] == f"[RESOLVED] Databricks key {databricks_id} compliant in all Regions"
    assert summary["final_verdicts"] == {"Rockset": "compliant", "Databricks": "compliant"}

    # The alert as delivered: Databricks' account and outage text, never Rockset's.
    text = out.getvalue()
    step = text[text.index("=== 11. ") : text.index("=== 12. ")]
    body = [line for line in step.splitlines() if line.startswith("    | ")]
    assert body
    assert not [line for line in body if "Rockset" in line]
    assert "    | Vendor: Databricks (account 414351767826)" in body
    assert "    | IMPACT ON DATABRICKS" in body
    assert f"  keys read:  Databricks ({databricks_id})" in step
    assert "  untouched:  the Rockset key (not read; its state unchanged)" in step
    assert "final verdict COMPLIANT for Rockset and Databricks" in text


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        # every event handed to every key (a key it does not concern then ignores it, but the routing is wrong)
        (lambda fleet, raw_event: list(fleet.guards), "expected the event handed to keys"),
        # the event handed to the first key only: the key it concerns is never evaluated
        (lambda fleet, raw_event: [fleet.guards[0]], "expected the event handed to keys"),
    ],
    ids=["to-every-key", "to-the-wrong-key"],
)
def test_demo_fails_when_the_per_key_routing_breaks(
    monkeypatch: pytest.MonkeyPatch, broken: Callable[[Fleet, Any], list[Any]], message: str
) -> None:
    import io

    monkeypatch.setattr(Fleet, "route", broken)
    out, err = io.StringIO(), io.StringIO()
    assert run(["demo"], out, err) == 1
    assert "demo failed: step 11" in err.getvalue()
    assert message in err.getvalue()


def test_demo_text_is_a_readable_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    assert run(["demo"], out, err) == 0
    text = out.getvalue()
    assert "=== 2. Someone's PutKeyPolicy in us-east-1 drops kms:Decrypt" in text
    assert "alert delivered to the security team: [CRITICAL]" in text
    assert "    | WHAT THE GUARD DID" in text  # alert bodies in full
    assert "guard did:  [us-east-1] applied, verified" in text
    assert "ACTION_NOT_GRANTED ACTIVE (compliance FAILED)" in text
    assert "EventBridge event on the queue: change problem, verdict non-compliant (was compliant)" in text
    assert _readme_alert() == _first_alert_of_step(text, 3)


_IDS = re.compile(r"mrk-[0-9a-f-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _readme_alert() -> list[str]:
    """The README's "alert as received by email (from `make demo`, step 3)", key and event IDs masked."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("(from `make demo`, step 3):\n\n```text\n", 1)[1].split("```", 1)[0]
    return [_IDS.sub("ID", line) for line in block.rstrip("\n").splitlines()]


def _first_alert_of_step(text: str, number: int) -> list[str]:
    step = text.split(f"=== {number}. ", 1)[1].split("\n=== ", 1)[0]
    subject, *rest = step.split("alert delivered to the security team: ", 2)[1].splitlines()
    body = [line.removeprefix("    | ").removeprefix("    |") for line in rest if line.startswith("    |")]
    return [_IDS.sub("ID", line) for line in [f"Subject: {subject}", "", *body]]


def test_demo_fails_loudly_when_a_step_does_not_go_as_the_story_says(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    # Make the "bad" policy harmless: step 2 then raises no alert, which the story does not allow.
    monkeypatch.setattr(demo, "NO_DECRYPT_POLICY", demo.COMPLIANT_POLICY)
    out, err = io.StringIO(), io.StringIO()
    assert run(["demo"], out, err) == 1
    assert "demo failed: step 2" in err.getvalue()
    assert "expected alerts ['CRITICAL', 'RESOLVED'], got []" in err.getvalue()
