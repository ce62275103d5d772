"""The scenarios a security team lives through, end to end through the Guard against moto."""

from __future__ import annotations

import json

import boto3
import pytest
from kms_guard.guard import Result

from tests.functional.conftest import HOME, REPLICA, THIRD, Account
from tests.support import admin_statement, policy_text, rockset_statement

NO_DECRYPT = policy_text(
    admin_statement(), rockset_statement(actions=["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"])
)


def break_policy(account: Account, region: str = REPLICA, policy: str = NO_DECRYPT) -> None:
    account.kms(region).put_key_policy(KeyId=account.arn_in(region), PolicyName="default", Policy=policy)


def codes(result: Result) -> list[str]:
    assert result.report is not None
    return sorted({f.code.value for f in result.report.findings})


# --- every event type ------------------------------------------------------------------------------------------

RELEVANT = [
    "put-key-policy-removes-decrypt",
    "disable-key-replica",
    "enable-key",
    "schedule-key-deletion-primary-with-replicas",
    "schedule-key-deletion-replica",
    "cancel-key-deletion",
    "replicate-key-without-grant",
    "update-primary-region-old-primary",
    "update-primary-region-new-primary-no-resources",
    "delete-imported-key-material",
    "delete-key-service-event",
    "kms-cmk-deletion",
    "kms-imported-key-material-expiration",
    "scheduled-check",
]


@pytest.mark.parametrize("name", RELEVANT)
def test_every_key_event_type_triggers_a_full_evaluation(account: Account, name: str) -> None:
    guard = account.guard()
    result = guard.handle(account.event(name))
    assert result.decision == "evaluated", result.reason
    assert result.report is not None
    assert result.report.verdict == "compliant"  # the event is a trigger; the live key is fine
    assert [r.region for r in result.report.regions] == [HOME, REPLICA]
    # A ReplicateKey also reads the Region it names (eu-west-1 in the fixture), in case DescribeKey does not show the
    # new replica yet; no replica is there in this account, so nothing more is read and no report is added.
    hinted = 1 if name == "replicate-key-without-grant" else 0
    assert account.calls["kms.DescribeKey"] == 2 + hinted
    assert account.calls["kms.GetKeyPolicy"] == 2


IRRELEVANT = {
    "disable-key-failed-access-denied": "failed call",
    "disable-key-other-key": "another key",
    "disable-key-alias-only": "does not identify a key",
    "decrypt-read-only": "not a key-changing event",
    "s3-put-bucket-policy": "not a KMS event",
}


@pytest.mark.parametrize(("name", "reason"), IRRELEVANT.items())
def test_irrelevant_events_are_dropped_before_any_aws_call(account: Account, name: str, reason: str) -> None:
    result = account.guard().handle(account.event(name))
    assert result.decision == "ignored"
    assert result.reason is not None
    assert reason in result.reason
    assert sum(account.calls.values()) == 0


# --- scenarios ---------------------------------------------------------------------------------------------------


def test_policy_edit_in_a_replica_dropping_decrypt_alerts_with_the_actor(account: Account) -> None:
    break_policy(account)
    result = account.guard().handle(account.event("put-key-policy-removes-decrypt"))

    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    assert codes(result) == ["ACTION_NOT_GRANTED"]
    replica = result.report.region(REPLICA)
    assert replica is not None
    assert replica.findings[0].actions == ("kms:Decrypt",)
    [alert] = account.delivered_alerts()
    assert alert["subject"].startswith("[CRITICAL] Rockset key mrk-")
    assert "grant missing in us-east-1" in alert["subject"]
    assert "PlatformAdmin" in alert["message"]  # who
    assert "203.0.113.10" in alert["message"]
    assert "kms-guard fix-policy" in alert["message"]  # how to fix
    assert alert["attributes"] == {
        "severity": "critical",
        "key_id": account.key_id,
        "regions": REPLICA,
        "codes": "ACTION_NOT_GRANTED",
        "event_name": "PutKeyPolicy",
    }
    assert account.policy(REPLICA) == NO_DECRYPT  # remediation is off by default: nothing written


def test_restore_statement_repairs_verifies_and_sends_the_all_clear(account: Account) -> None:
    break_policy(account)
    result = account.guard(remediation="restore-statement").handle(account.event("put-key-policy-removes-decrypt"))

    [outcome] = result.remediation
    assert (outcome.region, outcome.status, outcome.verified) == (REPLICA, "applied", True)
    assert outcome.writes == ["put-key-policy"]
    assert result.report is not None
    assert result.report.verdict == "compliant"
    repaired = json.loads(account.policy(REPLICA))["Statement"]
    assert repaired[:2] == json.loads(NO_DECRYPT)["Statement"]  # customer statements untouched
    assert repaired[2]["Sid"] == "KmsGuardRocksetAccess"
    subjects = [a["subject"] for a in account.delivered_alerts()]
    assert len(subjects) == 2
    assert subjects[0].startswith("[CRITICAL]")
    assert subjects[1].startswith("[RESOLVED]")


def test_disabled_replica_alerts_and_is_enabled_when_restore_key_state_is_on(account: Account) -> None:
    account.kms(REPLICA).disable_key(KeyId=account.key_id)
    off = account.guard().handle(account.event("disable-key-replica"))
    assert codes(off) == ["KEY_DISABLED"]
    assert account.state(REPLICA) == "Disabled"
    assert "disabled in us-east-1" in account.delivered_alerts()[0]["subject"]

    on = account.guard(restore_key_state=True).handle(account.event("disable-key-replica", eventID="another-id"))
    assert on.remediation[0].writes == ["enable-key"]
    assert on.remediation[0].verified is True
    assert account.state(REPLICA) == "Enabled"
    assert account.delivered_alerts()[-1]["subject"].startswith("[RESOLVED]")


def test_scheduled_deletion_of_the_primary_with_replicas_is_cancelled_then_enabled(account: Account) -> None:
    account.kms(HOME).schedule_key_deletion(KeyId=account.key_id, PendingWindowInDays=7)
    # moto reports PendingDeletion here where AWS says PendingReplicaDeletion; both map to KEY_PENDING_DELETION
    # (the PendingReplicaDeletion mapping is covered in tests/unit/test_compliance.py).
    result = account.guard(restore_key_state=True).handle(account.event("schedule-key-deletion-primary-with-replicas"))
    [outcome] = result.remediation
    assert outcome.region == HOME
    assert outcome.writes == ["cancel-key-deletion", "enable-key"]  # CancelKeyDeletion leaves the key Disabled
    assert account.state(HOME) == "Enabled"
    subjects = [a["subject"] for a in account.delivered_alerts()]
    assert "scheduled for deletion in us-west-2" in subjects[0]
    assert subjects[1].startswith("[RESOLVED]")


def test_new_replica_without_the_grant_is_found_and_repaired(account: Account) -> None:
    boto3.client("kms", region_name=HOME).replicate_key(KeyId=account.key_id, ReplicaRegion=THIRD)
    # moto gives the replica the primary's policy; real KMS gives the default policy: make it so.
    account.kms(THIRD).put_key_policy(
        KeyId=account.arn_in(THIRD), PolicyName="default", Policy=policy_text(admin_statement())
    )
    guard = account.guard(regions=[HOME, REPLICA, THIRD], remediation="restore-statement")
    result = guard.handle(account.event("replicate-key-without-grant"))
    assert result.remediation[0].region == THIRD
    assert result.remediation[0].verified is True
    assert result.report is not None
    assert result.report.verdict == "compliant"


def test_a_configured_region_without_a_replica_is_key_not_found_and_never_repaired(account: Account) -> None:
    result = account.guard(
        regions=[HOME, REPLICA, THIRD], remediation="restore-statement", restore_key_state=True
    ).handle(account.event("scheduled-check"))
    assert codes(result) == ["KEY_NOT_FOUND"]
    assert result.report is not None
    third = result.report.region(THIRD)
    assert third is not None
    assert third.verdict == "non-compliant"
    assert result.remediation == []
    alert = account.delivered_alerts()[0]
    assert "missing in eu-west-1" in alert["subject"]
    assert "replicate-key" in alert["message"]


def test_an_explicit_deny_is_reported_and_never_touched(account: Account) -> None:
    deny = {
        "Sid": "BlockExternal",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:CallerAccount": account.account}},
    }
    denied = policy_text(admin_statement(), rockset_statement(), deny)
    break_policy(account, policy=denied)
    result = account.guard(remediation="restore-statement").handle(account.event("put-key-policy-removes-decrypt"))
    assert codes(result) == ["ACTION_DENIED"]
    [outcome] = result.remediation
    assert outcome.status == "refused"
    assert "BlockExternal" in outcome.description
    assert account.policy(REPLICA) == denied
    assert account.calls["kms.PutKeyPolicy"] == 0


def test_tug_of_war_stops_after_three_writes_an_hour_and_says_remediation_is_suspended(account: Account) -> None:
    now = [1_000_000.0]
    guard = account.guard(remediation="restore-statement", clock=lambda: now[0])
    for attempt in range(5):
        break_policy(account)  # another automation re-applies its bad policy
        now[0] += 60
        result = guard.handle(account.event("put-key-policy-removes-decrypt", eventID=f"tug-{attempt}"))
    statuses = [a for a in account.calls.elements() if a == "kms.PutKeyPolicy"]
    assert len(statuses) == 3
    assert result.remediation[0].status == "suspended"
    subjects = [a["subject"] for a in account.delivered_alerts()]
    assert sum("remediation suspended" in s for s in subjects) == 1  # said once, then quiet while nothing changes
    assert subjects[-1].startswith("[ACTION NEEDED]")
    # An hour later the guard may try again.
    now[0] += 3600
    later = guard.handle(account.event("put-key-policy-removes-decrypt", eventID="tug-later"))
    assert later.remediation[0].status == "applied"


def test_the_guards_own_write_coming_back_as_an_event_is_not_acted_on(account: Account) -> None:
    break_policy(account)
    guard = account.guard(remediation="restore-statement")
    guard.handle(account.event("put-key-policy-removes-decrypt"))
    account.delivered_alerts()
    own = account.event("put-key-policy-removes-decrypt", eventID="own-write", userAgent="Boto3/1.40 kms-guard/0.1.0")
    result = guard.handle(own)
    assert result.report is not None
    assert result.report.verdict == "compliant"
    assert result.remediation == []
    assert account.delivered_alerts() == []  # nothing changed since the all-clear: quiet


def policy_change(account: Account, actor: str, user_agent: str = "aws-cli/2.22.0") -> dict[str, object]:
    """The PutKeyPolicy event for the replica's live policy, as CloudTrail records it (the new policy included)."""
    event = account.event("put-key-policy-removes-decrypt", actor=actor, user_agent=user_agent)
    detail = event["detail"]
    detail["requestParameters"] = {**detail["requestParameters"], "policy": account.policy(REPLICA)}
    return event


def test_a_bad_change_by_the_guards_own_role_is_alert_only(account: Account) -> None:
    break_policy(account)
    own_role = str(account.client("sts").get_caller_identity()["Arn"])  # who the guard runs as (moto's caller)
    result = account.guard(remediation="restore-statement").handle(policy_change(account, own_role))
    assert result.remediation[0].status == "skipped"
    assert "the guard's own role" in result.remediation[0].description
    assert account.calls["kms.PutKeyPolicy"] == 0


def test_a_user_agent_naming_the_guard_does_not_make_a_change_the_guards(account: Account) -> None:
    break_policy(account)
    admin = f"arn:aws:iam::{account.account}:role/PlatformAdmin"
    forged = policy_change(account, admin, user_agent="Boto3/1.40 kms-guard/0.1.0")
    result = account.guard(remediation="restore-statement").handle(forged)
    assert result.remediation[0].status == "applied"


def test_a_trusted_principals_change_is_alert_only_and_the_schedule_respects_it(account: Account) -> None:
    break_policy(account)
    guard = account.guard(
        remediation="restore-statement", trusted_principals=[f"arn:aws:iam::{account.account}:role/PlatformAdmin"]
    )
    result = guard.handle(policy_change(account, f"arn:aws:iam::{account.account}:role/PlatformAdmin"))
    assert result.remediation[0].status == "skipped"
    assert "trusted principal" in result.remediation[0].description
    later = guard.handle(account.event("scheduled-check"))
    assert later.remediation[0].status == "skipped"
    assert account.calls["kms.PutKeyPolicy"] == 0
    assert len(account.delivered_alerts()) == 1


def test_dry_run_plans_exactly_what_would_be_written_and_writes_nothing(account: Account) -> None:
    break_policy(account)
    account.kms(REPLICA).disable_key(KeyId=account.key_id)
    result = account.guard(remediation="restore-statement", restore_key_state=True, dry_run=True).handle(
        account.event("put-key-policy-removes-decrypt")
    )
    [outcome] = result.remediation
    assert outcome.status == "dry-run"
    assert outcome.writes == ["put-key-policy", "enable-key"]
    assert outcome.planned_policy is not None
    assert "KmsGuardRocksetAccess" in outcome.planned_policy
    assert account.policy(REPLICA) == NO_DECRYPT
    assert account.state(REPLICA) == "Disabled"
    writes = {"kms.PutKeyPolicy", "kms.EnableKey", "kms.CancelKeyDeletion"}
    assert not any(account.calls[w] for w in writes)


def test_revert_puts_back_the_last_compliant_policy_recorded(account: Account) -> None:
    baseline_replica = account.policy(REPLICA)
    guard = account.guard(remediation="revert")
    guard.handle(account.event("scheduled-check"))  # records baselines
    extra = {
        "Sid": "Temp",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    break_policy(account, policy=policy_text(admin_statement(), extra))
    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].status == "applied"
    assert account.policy(REPLICA) == baseline_replica


def test_reminder_while_a_critical_problem_lasts(account: Account) -> None:
    now = [1_000_000.0]
    account.kms(REPLICA).disable_key(KeyId=account.key_id)
    guard = account.guard(clock=lambda: now[0])
    guard.handle(account.event("scheduled-check"))
    now[0] += 900
    guard.handle(account.event("scheduled-check"))  # 15 minutes later: nothing new, quiet
    now[0] += 3600
    guard.handle(account.event("scheduled-check"))  # over an hour since the alert: remind
    subjects = [a["subject"] for a in account.delivered_alerts()]
    assert len(subjects) == 2
    assert subjects[1].startswith("[REMINDER]")


def test_quiet_when_nothing_changed(account: Account) -> None:
    guard = account.guard()
    for i in range(3):
        guard.handle(account.event("scheduled-check"))
        guard.handle(account.event("enable-key", eventID=f"e{i}"))
    assert account.delivered_alerts() == []


def test_duplicate_deliveries_produce_one_alert_and_one_repair(account: Account) -> None:
    break_policy(account)
    guard = account.guard(remediation="restore-statement")
    event = account.event("put-key-policy-removes-decrypt")
    first = guard.handle(event)
    second = guard.handle(dict(event, id="another-envelope-id"))  # same CloudTrail eventID
    assert first.decision == "evaluated"
    assert second.decision == "ignored"
    assert second.reason is not None
    assert "duplicate" in second.reason
    assert account.calls["kms.PutKeyPolicy"] == 1
    assert len(account.delivered_alerts()) == 2  # the problem and the all-clear, once


def test_sts_unavailable_does_not_cost_the_evaluation(account: Account) -> None:
    account.fail_call("sts.GetCallerIdentity", "ServiceUnavailable", times=5)
    break_policy(account)
    admin = f"arn:aws:iam::{account.account}:role/PlatformAdmin"
    result = account.guard(remediation="restore-statement").handle(policy_change(account, admin))
    assert account.calls["sts.GetCallerIdentity"] == 1  # asked (this change could be the guard's own)...
    assert result.remediation[0].status == "applied"  # ...and its failure only means "not our own role"
    assert len(account.delivered_alerts()) == 2


def test_nothing_to_repair_means_no_sts_call(account: Account) -> None:
    guard = account.guard(remediation="restore-statement", restore_key_state=True)
    guard.handle(account.event("put-key-policy-removes-decrypt"))  # the key is fine: the actor does not matter
    assert account.calls["sts.GetCallerIdentity"] == 0
