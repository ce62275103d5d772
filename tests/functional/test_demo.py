"""`make demo` doubles as an end-to-end test: the story must turn out exactly as told."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
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
    ]
    assert [s["vendor"] for s in steps] == ["Rockset"] * 9 + ["Databricks"] * 2
    assert summary["final_verdicts"] == {"Rockset": "compliant", "Databricks": "compliant"}
    assert set(steps[1]) >= {"event", "region", "alerts", "remediation", "verdict_after"}
    assert steps[1]["alerts"][0] == {
        "subject": steps[1]["alerts"][0]["subject"],
        "severity": "critical",
        "codes": ["ACTION_NOT_GRANTED"],
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


def test_demo_second_vendor_is_named_in_its_alerts_and_repaired() -> None:
    import io

    out = io.StringIO()
    summary = demo.run_demo(out)
    keys = summary["keys"]
    assert list(keys) == ["Rockset", "Databricks"]
    assert keys["Rockset"] == summary["key_arn"] != keys["Databricks"]
    databricks_key = keys["Databricks"].rsplit("/", 1)[-1]
    baseline, broken = summary["steps"][9:]
    assert (baseline["event"], baseline["alerts"], baseline["remediation"]) == ("ScheduledCheck", [], [])
    assert baseline["verdict_after"] == "compliant"
    assert (broken["event"], broken["region"]) == ("PutKeyPolicy", "us-west-2")
    assert [(a["severity"], a["codes"]) for a in broken["alerts"]] == [
        ("critical", ["ACTION_NOT_GRANTED"]),
        ("info", []),
    ]
    critical, resolved = (a["subject"] for a in broken["alerts"])
    assert critical == f"[CRITICAL] Databricks key {databricks_key} grant missing in us-west-2"
    assert resolved.startswith(f"[RESOLVED] Databricks key {databricks_key}")
    [repair] = broken["remediation"]
    assert (repair["region"], repair["status"], repair["applied"], repair["verified"]) == (
        "us-west-2",
        "applied",
        True,
        True,
    )
    assert "KmsGuardDatabricksManagedServices" in repair["description"]
    assert broken["verdict_after"] == "compliant"
    assert [(e["vendor"], e["key_arn"], e["change"]) for e in broken["finding_events"]] == [
        ("Databricks", keys["Databricks"], "problem"),
        ("Databricks", keys["Databricks"], "resolved"),
    ]
    # The alert bodies as delivered: Databricks' account and outage text, never Rockset's.
    text = out.getvalue()
    second = text[text.index("=== 10. ") : text.index("Demo finished")]
    assert "Rockset" not in second
    assert "Vendor: Databricks (account 414351767826)" in second
    assert "IMPACT ON DATABRICKS" in second
    assert "can no longer read or write the workspace's managed-services data" in second
    assert "guard did:  [us-west-2] applied, verified: added statement KmsGuardDatabricksManagedServices" in second
    assert "final verdict COMPLIANT for Rockset and Databricks" in text


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


def test_demo_fails_loudly_when_a_step_does_not_go_as_the_story_says(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    # Make the "bad" policy harmless: step 2 then raises no alert, which the story does not allow.
    monkeypatch.setattr(demo, "NO_DECRYPT_POLICY", demo.COMPLIANT_POLICY)
    out, err = io.StringIO(), io.StringIO()
    assert run(["demo"], out, err) == 1
    assert "demo failed: step 2" in err.getvalue()
    assert "expected alerts ['CRITICAL', 'RESOLVED'], got []" in err.getvalue()
