"""Alert rendering: subjects, bodies, attributes, and SNS limits whatever the input."""

from hypothesis import given, settings
from hypothesis import strategies as st
from kms_guard.core.alerts import MAX_BODY_BYTES, AlertKind, fingerprint, render_alert, subject_for
from kms_guard.core.compliance import RegionObservation, assess_key
from kms_guard.core.events import Actor, KeyEvent
from kms_guard.core.findings import Code, Finding, KeyReport, RegionReport
from kms_guard.core.remediation import Outcome
from kms_guard.core.vendor import ROCKSET

from tests.support import admin_statement, policy_text, rockset_statement

ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
META = {"KeyState": "Enabled", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "MultiRegion": True}


def report(replica_state: str = "Enabled", replica_policy: str | None = None) -> KeyReport:
    good = policy_text(admin_statement(), rockset_statement())
    return assess_key(
        ARN,
        [
            RegionObservation("us-west-2", ARN, META, good),
            RegionObservation(
                "us-east-1",
                ARN.replace("us-west-2", "us-east-1"),
                META | {"KeyState": replica_state},
                replica_policy or good,
            ),
        ],
        ROCKSET,
    )


EVENT = KeyEvent(
    "api-call",
    "DisableKey",
    "evt-1",
    "us-east-1",
    "2026-11-28T10:15:30Z",
    Actor(
        "AssumedRole",
        "arn:aws:sts::111122223333:assumed-role/Ops/bob",
        "arn:aws:iam::111122223333:role/Ops",
        "111122223333",
        None,
        "198.51.100.7",
        "aws-cli/2",
    ),
)


def test_problem_alert_subject_body_and_attributes() -> None:
    alert = render_alert("problem", report("Disabled"), ROCKSET, event=EVENT)
    assert alert.subject == "[CRITICAL] Rockset key mrk-1234abcd12ab34cd56ef1234567890ab disabled in us-east-1"
    body = alert.body
    assert "us-east-1 (key state Disabled): NON-COMPLIANT" in body
    assert "queries for every collection in this Region fail within minutes" in body  # impact
    assert "DisableKey in us-east-1 at 2026-11-28T10:15:30Z" in body  # what and when
    assert "arn:aws:iam::111122223333:role/Ops" in body
    assert "198.51.100.7" in body
    assert "aws kms enable-key --region us-east-1 --key-id arn:aws:kms:us-east-1:" in body  # the exact fix
    assert "Nothing (alert only)." in body
    assert alert.attributes() == {
        "severity": "critical",
        "key_id": "mrk-1234abcd12ab34cd56ef1234567890ab",
        "regions": "us-east-1",
        "codes": "KEY_DISABLED",
        "event_name": "DisableKey",
    }


def test_alert_reports_what_the_guard_did() -> None:
    outcome = Outcome("us-east-1", "applied", "enable the key", ["enable-key"], True)
    alert = render_alert("problem", report("Disabled"), ROCKSET, event=EVENT, outcomes=[outcome])
    assert "us-east-1: applied, verified: enable the key" in alert.body


def test_resolved_alert() -> None:
    alert = render_alert("resolved", report(), ROCKSET, event=EVENT, previous_codes=["KEY_DISABLED"])
    assert alert.subject == "[RESOLVED] Rockset key mrk-1234abcd12ab34cd56ef1234567890ab compliant in all Regions"
    assert alert.severity == "info"
    assert "Before: KEY_DISABLED" in alert.body
    assert "HOW TO FIX" not in alert.body


def test_deny_fix_names_the_statement() -> None:
    deny = {"Sid": "Fence", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    alert = render_alert("problem", report(replica_policy=policy_text(rockset_statement(), deny)), ROCKSET, event=EVENT)
    assert "change or remove Deny statement Fence" in alert.body
    assert "access denied by policy in us-east-1" in alert.subject


def test_several_regions_are_counted_in_the_subject() -> None:
    regions = ("us-east-1", "eu-west-1", "ap-south-1")
    rep = KeyReport(
        ARN, tuple(RegionReport(r, ARN, "Disabled", (Finding(Code.KEY_DISABLED, "critical", r, "x"),)) for r in regions)
    )
    assert subject_for("problem", rep, ROCKSET, "mrk-1").endswith("disabled in us-east-1 (+2 more)")


def test_fingerprint_ignores_wording_but_not_substance() -> None:
    a = Finding(Code.ACTION_NOT_GRANTED, "critical", "us-east-1", "one wording", ("kms:Decrypt",))
    b = Finding(Code.ACTION_NOT_GRANTED, "critical", "us-east-1", "another wording", ("kms:Decrypt",))
    c = Finding(Code.ACTION_NOT_GRANTED, "critical", "us-east-1", "one wording", ("kms:Encrypt",))
    assert fingerprint([a]) == fingerprint([b]) != fingerprint([c])
    assert fingerprint([]) == "compliant"


hostile = st.text(alphabet=st.characters(codec="utf-8"), max_size=5000)


@settings(max_examples=150, deadline=None)
@given(hostile, hostile, hostile, st.text(max_size=200))
def test_subject_is_printable_ascii_under_100_and_body_bounded_whatever_the_input(
    actor: str, agent: str, statement: str, name: str
) -> None:
    event = KeyEvent(
        "api-call", name or "X", "id", name, name, Actor("AssumedRole", actor, actor, None, None, actor, agent)
    )
    findings = tuple(
        Finding(Code.ACTION_DENIED, "critical", "us-east-1", statement * 20, ("kms:Decrypt",), statement)
        for _ in range(50)
    )
    rep = KeyReport(ARN, (RegionReport("us-east-1", ARN, "Enabled", findings),))
    vendor = ROCKSET
    kinds: tuple[AlertKind, ...] = ("problem", "changed", "resolved", "reminder", "suspended")
    for kind in kinds:
        alert = render_alert(kind, rep, vendor, event=event)
        assert len(alert.subject) < 100
        assert all(0x20 <= ord(ch) <= 0x7E for ch in alert.subject)
        assert len(alert.body.encode()) <= MAX_BODY_BYTES
        assert all(v and len(v) < 1024 for v in alert.attributes().values())


def test_body_stays_under_the_sns_limit_however_large_the_policy() -> None:
    # 40 Regions x 25 findings with 30 KB messages: megabytes before the guard bounds it.
    rep = KeyReport(
        ARN,
        tuple(
            RegionReport(
                f"r{i}",
                ARN,
                "Enabled",
                tuple(
                    Finding(Code.GRANT_CONDITIONAL, "warning", f"r{i}", "y" * 30_000, ("kms:Decrypt",), f"s{j}")
                    for j in range(25)
                ),
            )
            for i in range(40)
        ),
    )
    alert = render_alert("problem", rep, ROCKSET, event=EVENT)
    assert len(alert.body.encode()) <= MAX_BODY_BYTES < 256 * 1024
    assert alert.body.endswith("(truncated)\n")


def _with_unwatched(base: KeyReport) -> KeyReport:
    from kms_guard.core.replicas import mark_unwatched

    extra = RegionReport("eu-west-1", base.key_arn.replace("us-west-2", "eu-west-1"), "Enabled", ())
    return mark_unwatched(KeyReport(base.key_arn, (*base.regions, extra)), [r.region for r in base.regions])


def test_an_unwatched_replica_is_information_and_never_keeps_the_all_clear_away() -> None:
    from kms_guard.core.alerts import Reported, decide_alerts

    fine, broken = _with_unwatched(report()), _with_unwatched(report(replica_state="Disabled"))
    assert fine.verdict == "compliant"

    def kinds(previous: KeyReport | None, found: KeyReport) -> list[str]:
        reported = (
            Reported(fingerprint(previous.findings), tuple(sorted({f.code.value for f in previous.findings})), 0.0)
            if previous is not None
            else Reported()
        )
        return [p.kind for p in decide_alerts(reported, found, found, suspended=False, now=1.0, reminder_seconds=10)]

    assert kinds(None, fine) == ["problem"]  # news, once, of severity info
    alert = render_alert("problem", fine, ROCKSET, event=None)
    assert alert.severity == "info"
    assert alert.subject.startswith("[INFO] Rockset key")
    assert "unwatched replica in eu-west-1" in alert.subject
    assert kinds(fine, fine) == []  # and then quiet
    assert kinds(fine, broken) == ["problem"]  # a real problem on a key that was fine is a problem, not a change
    assert kinds(broken, fine) == ["resolved"]  # and its end is an all-clear, whatever information remains
    assert kinds(fine, report()) == ["resolved"]  # the replica watched now: nothing left to say but all clear


def test_the_unwatched_replica_fix_names_the_entry_as_configured() -> None:
    from kms_guard.core.alerts import fix_commands

    fine = _with_unwatched(report())
    [finding] = [f for f in fine.findings if f.code == Code.REPLICA_UNWATCHED]
    commands = fix_commands(finding, fine.key_arn.replace("us-west-2", "eu-west-1"), "us-west-2")
    assert f"keyArn is {fine.key_arn}," in commands[0]
    regions = ", ".join(f'"{r.region}"' for r in fine.regions)
    assert f'"regions": [{regions}]' in commands[0]
    assert commands[1].startswith("cdk deploy --all")
