"""The use case with in-memory fakes: every branch of the repair gate and of the alert decision, no moto.

The fakes implement the Guard's ports (guard.py): `FakeKeys` is the key in each Region (reader and writer, with
KMS's eventual consistency when asked for), `MemoryState` and `CollectingNotifier` are the in-memory adapters the CLI
uses, `FixedIdentity` is who the guard runs as. What runs is the real Guard, the real evaluation and repair planner.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kms_guard.core.alerts import Alert, AlertKind, Reported, decide_alerts
from kms_guard.core.compliance import RegionObservation, assess_key
from kms_guard.core.coverage import RegionSight, Rule, Trail
from kms_guard.core.findings import KeyReport
from kms_guard.core.remediation import Outcome
from kms_guard.core.second_opinion import Opinion, Reason
from kms_guard.core.vendor import ROCKSET
from kms_guard.guard import FindingUpdate, Guard, Result, WriteFailed
from kms_guard.memory import CollectingNotifier, MemoryState
from kms_guard.settings import build_settings

from tests.support import admin_statement, load_event, policy_text, rockset_statement

KEY_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
HOME, REPLICA = "us-west-2", "us-east-1"
KEY_ARN = f"arn:aws:kms:{HOME}:111122223333:key/{KEY_ID}"
GOOD = policy_text(admin_statement(), rockset_statement())
NO_DECRYPT = policy_text(
    admin_statement(), rockset_statement(actions=["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"])
)
BLOCKING_DENY = policy_text(
    admin_statement(),
    rockset_statement(),
    {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*"},
)
GUARD_ROLE = "arn:aws:iam::111122223333:role/kms-guard-fn"
ADMIN_ROLE = "arn:aws:iam::111122223333:role/PlatformAdmin"


def arn_in(region: str) -> str:
    return KEY_ARN.replace(f":{HOME}:", f":{region}:")


@dataclass
class Replica:
    policy: str = GOOD
    state: str = "Enabled"
    exists: bool = True
    error: str | None = None


@dataclass
class FakeKeys:
    """The key in each Region, as KMS keeps it. Implements KeyReader and KeyWriter."""

    regions: dict[str, Replica] = field(default_factory=lambda: {HOME: Replica(), REPLICA: Replica()})
    stale_reads: int = 0
    """After a policy write, this many reads still return the old policy (KMS is eventually consistent)."""
    fail_writes: str | None = None
    writes: list[tuple[str, str, str | None]] = field(default_factory=list)
    reads: int = 0
    _stale: dict[str, tuple[str, int]] = field(default_factory=dict)

    def read(self, region: str, key_arn: str) -> RegionObservation:
        self.reads += 1
        replica = self.regions[region]
        if not replica.exists:
            return RegionObservation(region, key_arn, not_found=True)
        if replica.error:
            return RegionObservation(region, key_arn, error=replica.error)
        metadata = {
            "KeyId": KEY_ID,
            "Arn": key_arn,
            "KeyState": replica.state,
            "MultiRegion": True,
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
        }
        policy = replica.policy
        if region in self._stale:
            old, left = self._stale[region]
            if left > 0:
                self._stale[region] = (old, left - 1)
                policy = old
        return RegionObservation(region, key_arn, metadata, policy)

    def read_all(self, key_arns: dict[str, str]) -> list[RegionObservation]:
        return [self.read(region, arn) for region, arn in key_arns.items()]

    def _write(self, kind: str, region: str, policy: str | None = None) -> None:
        if self.fail_writes:
            raise WriteFailed(self.fail_writes)
        self.writes.append((kind, region, policy))

    def put_key_policy(self, region: str, key_arn: str, policy: str) -> None:
        self._write("put-key-policy", region, policy)
        if self.stale_reads:
            self._stale[region] = (self.regions[region].policy, self.stale_reads)
        self.regions[region].policy = policy

    def enable_key(self, region: str, key_arn: str) -> None:
        self._write("enable-key", region)
        self.regions[region].state = "Enabled"

    def cancel_key_deletion(self, region: str, key_arn: str) -> None:
        self._write("cancel-key-deletion", region)
        self.regions[region].state = "Disabled"  # as KMS does: still disabled after the cancellation


@dataclass
class FixedIdentity:
    principals: frozenset[str] = frozenset({GUARD_ROLE})
    asked: int = 0

    def own_principals(self) -> frozenset[str]:
        self.asked += 1
        return self.principals


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    keys: FakeKeys
    state: MemoryState
    notifier: CollectingNotifier
    identity: FixedIdentity
    clock: Clock
    sleeps: list[float]
    guard: Guard

    @property
    def alerts(self) -> list[Alert]:
        return self.notifier.alerts

    def kinds(self) -> list[str]:
        return [a.kind for a in self.notifier.alerts]


def world(*, reasoner: Any = None, sinks: Any = (), **settings: Any) -> World:
    keys, state, notifier, identity, clock = FakeKeys(), MemoryState(), CollectingNotifier(), FixedIdentity(), Clock()
    sleeps: list[float] = []
    options: dict[str, Any] = {"key_arn": KEY_ARN, "regions": [HOME, REPLICA], **settings}
    guard = Guard(
        build_settings(**options),
        keys,
        keys,
        state,
        notifier,
        identity=identity,
        sinks=sinks,
        reasoner=reasoner,
        clock=clock,
        sleep=sleeps.append,
        verify_attempts=4,
    )
    return World(keys, state, notifier, identity, clock, sleeps, guard)


def settle(w: World) -> None:
    """A first scheduled check, so the guard has seen the key compliant (baseline recorded, nothing to report)."""
    result = w.guard.scheduled_check({"id": "first"})
    assert result.report is not None
    assert result.report.verdict == "compliant"
    w.notifier.alerts.clear()


def policy_event(
    region: str = REPLICA, *, actor: str = ADMIN_ROLE, user_agent: str = "aws-cli/2.22.0", policy: str = NO_DECRYPT
) -> dict[str, Any]:
    """A PutKeyPolicy CloudTrail event: `actor` wrote `policy` in `region` (CloudTrail records the new policy)."""
    event = load_event("put-key-policy-removes-decrypt")
    event["detail"]["requestParameters"]["policy"] = policy
    event["region"] = event["detail"]["awsRegion"] = region
    event["detail"]["resources"][0]["ARN"] = arn_in(region)
    event["detail"]["userAgent"] = user_agent
    issuer = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    issuer["arn"] = actor
    role = actor.rsplit("/", 1)[-1]
    event["detail"]["userIdentity"]["arn"] = f"arn:aws:sts::111122223333:assumed-role/{role}/session"
    return event


def outcome_of(result: Result, region: str = REPLICA) -> Outcome:
    [outcome] = [o for o in result.remediation if o.region == region]
    return outcome


# --- the flow ----------------------------------------------------------------------------------------------------


def test_an_event_for_another_key_is_dropped_before_any_read() -> None:
    w = world()
    result = w.guard.handle(load_event("disable-key-other-key"))
    assert result.decision == "ignored"
    assert w.keys.reads == 0
    assert w.alerts == []


def test_a_duplicate_delivery_is_ignored_and_alerts_once() -> None:
    w = world()
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    event = policy_event()
    first = w.guard.handle(event)
    second = w.guard.handle(event)
    assert first.decision == "evaluated"
    assert second.decision == "ignored"
    assert "duplicate" in (second.reason or "")
    assert w.kinds() == ["problem"]


def test_a_failure_releases_the_event_claim_so_lambdas_retry_proceeds() -> None:
    w = world()
    settle(w)

    class Broken(CollectingNotifier):
        def publish(self, alert: Alert) -> None:
            raise RuntimeError("SNS is down")

    w.guard._notifier = Broken()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    event = policy_event()
    with pytest.raises(RuntimeError):
        w.guard.handle(event)
    assert w.state.events == {}
    w.guard._notifier = w.notifier
    assert w.guard.handle(event).decision == "evaluated"
    assert w.kinds() == ["problem"]


def test_compliant_policies_are_recorded_as_baselines_once() -> None:
    w = world()
    settle(w)
    assert w.state.record.baselines == {HOME: GOOD, REPLICA: GOOD}
    w.state.record.baselines[HOME] = "sentinel"
    w.guard.scheduled_check({"id": "again"})
    assert w.state.record.baselines[HOME] == GOOD


def test_nothing_changed_nothing_said_and_nothing_saved() -> None:
    w = world()
    settle(w)
    saved: list[tuple[Any, ...]] = []
    original = w.state.save_report

    def save_report(fingerprint: str, findings: list[dict[str, Any]], alerted_at: float | None) -> None:
        saved.append((fingerprint, findings, alerted_at))
        original(fingerprint, findings, alerted_at)

    w.state.save_report = save_report  # type: ignore[method-assign]  # a spy on this one store's method
    w.guard.scheduled_check({"id": "quiet"})
    assert w.alerts == []
    assert saved == []


# --- the repair gate ---------------------------------------------------------------------------------------------


def test_with_writes_off_the_guard_alerts_and_writes_nothing() -> None:
    w = world()
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert result.remediation == []
    assert w.keys.writes == []
    assert w.identity.asked == 0
    assert w.kinds() == ["problem"]


def test_a_repair_is_applied_verified_and_both_alerts_are_sent() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert (outcome.status, outcome.verified, outcome.writes) == ("applied", True, ["put-key-policy"])
    [(kind, region, written)] = w.keys.writes
    assert (kind, region) == ("put-key-policy", REPLICA)
    assert written is not None
    assert "kms:Decrypt" in json.dumps(json.loads(written))
    assert result.report is not None
    assert result.report.verdict == "compliant"
    assert w.kinds() == ["problem", "resolved"]
    assert w.state.log[0]["status"] == "applied"


def test_revert_puts_back_the_recorded_baseline_exactly() -> None:
    w = world(remediation="revert")
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.handle(policy_event())
    assert w.keys.writes == [("put-key-policy", REPLICA, GOOD)]


def test_a_region_without_findings_has_its_hold_cleared() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    w.state.record.holds[HOME] = "old-fingerprint"
    w.guard.scheduled_check({"id": "x"})
    assert HOME not in w.state.record.holds


def test_nothing_the_guard_may_change_means_no_outcome_and_no_identity_lookup() -> None:
    w = world(remediation="restore-statement", restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].exists = False
    result = w.guard.scheduled_check({"id": "x"})
    assert result.remediation == []
    assert w.keys.writes == []
    assert w.identity.asked == 0
    assert w.kinds() == ["problem"]


def test_an_unreadable_region_is_never_written() -> None:
    w = world(remediation="restore-statement", restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].error = "AccessDeniedException: no"
    result = w.guard.scheduled_check({"id": "x"})
    assert w.keys.writes == []
    assert result.report is not None
    assert {f.code.value for f in result.report.findings} == {"POLICY_UNREADABLE"}


@pytest.mark.parametrize(
    ("actor", "user_agent", "why"),
    [
        (GUARD_ROLE, "Boto3/1.40", "the guard's own role"),
        ("arn:aws:iam::111122223333:role/Terraform", "terraform", "trusted principal"),
    ],
    ids=["own-role", "trusted-principal"],
)
def test_a_change_by_the_guard_or_a_trusted_principal_is_alert_only_and_held(
    actor: str, user_agent: str, why: str
) -> None:
    w = world(remediation="restore-statement", trusted_principals=["arn:aws:iam::111122223333:role/Terraform"])
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event(actor=actor, user_agent=user_agent))
    outcome = outcome_of(result)
    assert outcome.status == "skipped"
    assert why in outcome.description
    assert w.keys.writes == []
    assert REPLICA in w.state.record.holds
    assert w.kinds() == ["problem"]
    # the scheduled check that follows keeps the hold: these findings come from a trusted change
    w.clock.now += 60
    again = w.guard.scheduled_check({"id": "later"})
    assert outcome_of(again).status == "skipped"
    assert "trusted change" in outcome_of(again).description
    assert w.keys.writes == []


def test_a_user_agent_naming_the_guard_proves_nothing_and_the_change_is_repaired() -> None:
    """Anyone can send `kms-guard/` in their user agent: only the principal CloudTrail recorded identifies the guard."""
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event(actor=ADMIN_ROLE, user_agent="aws-cli/2 kms-guard/0.1.0"))
    assert outcome_of(result).status == "applied"
    assert REPLICA not in w.state.record.holds


def test_an_exempt_change_exempts_only_the_policy_it_wrote() -> None:
    """The guard's own (late) event, or a trusted one, for a policy that has been changed again since: the live
    policy is someone else's, so it is repaired."""
    w = world(remediation="restore-statement", trusted_principals=["arn:aws:iam::111122223333:role/Terraform"])
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    for actor in (GUARD_ROLE, "arn:aws:iam::111122223333:role/Terraform"):
        event = policy_event(actor=actor, policy=GOOD)
        event["detail"]["eventID"] = actor  # a change of its own, not a redelivery
        result = w.guard.handle(event)
        assert outcome_of(result).status == "applied", actor
        w.keys.regions[REPLICA].policy = NO_DECRYPT
    assert REPLICA not in w.state.record.holds


def test_an_exempt_change_in_one_region_exempts_nothing_in_another() -> None:
    w = world(remediation="restore-statement", restore_key_state=True, trusted_principals=[ADMIN_ROLE])
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.keys.regions[HOME].state = "Disabled"
    result = w.guard.handle(policy_event(actor=ADMIN_ROLE))  # the trusted PutKeyPolicy is in the replica's Region
    assert outcome_of(result, REPLICA).status == "skipped"
    assert outcome_of(result, HOME).status == "applied"
    assert HOME not in w.state.record.holds


def test_an_exempt_change_exempts_only_findings_of_its_kind() -> None:
    """A trusted PutKeyPolicy explains a policy finding, not a replica someone disabled meanwhile."""
    w = world(remediation="restore-statement", restore_key_state=True, trusted_principals=[ADMIN_ROLE])
    settle(w)
    w.keys.regions[REPLICA].state = "Disabled"
    result = w.guard.handle(policy_event(actor=ADMIN_ROLE, policy=GOOD))
    assert outcome_of(result).status == "applied"
    assert [k for k, _, _ in w.keys.writes] == ["enable-key"]


def test_someone_elses_change_ends_a_hold_with_the_same_findings() -> None:
    """A trusted change is held; an untrusted change to the same Region that leaves the same findings is theirs."""
    w = world(remediation="restore-statement", trusted_principals=["arn:aws:iam::111122223333:role/Terraform"])
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.handle(policy_event(actor="arn:aws:iam::111122223333:role/Terraform"))
    assert REPLICA in w.state.record.holds
    attacker = policy_event(actor="arn:aws:iam::111122223333:role/Intruder") | {"id": "attack"}
    attacker["detail"] = attacker["detail"] | {"eventID": "attack"}
    result = w.guard.handle(attacker)
    assert outcome_of(result).status == "applied"
    assert REPLICA not in w.state.record.holds


def test_a_hold_ends_when_the_findings_change() -> None:
    w = world(remediation="restore-statement", restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.handle(policy_event(actor=GUARD_ROLE))
    assert REPLICA in w.state.record.holds
    w.keys.regions[REPLICA].state = "Disabled"  # a new problem, not the trusted one
    result = w.guard.scheduled_check({"id": "later"})
    assert outcome_of(result).status == "applied"
    assert [k for k, _, _ in w.keys.writes] == ["put-key-policy", "enable-key"]
    assert REPLICA not in w.state.record.holds


def test_the_identity_is_asked_only_when_a_repair_is_on_the_table() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    assert w.identity.asked == 0
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.handle(policy_event())
    assert w.identity.asked == 1


def test_a_deny_that_blocks_the_vendor_is_refused_with_its_reason() -> None:
    w = world(remediation="revert")  # no baseline for the Region: revert falls back, and says why it refused
    w.keys.regions[REPLICA].policy = BLOCKING_DENY
    result = w.guard.scheduled_check({"id": "x"})
    outcome = outcome_of(result)
    assert outcome.status == "refused"
    assert "NoDecrypt" in outcome.description
    assert w.keys.writes == []


def test_a_dry_run_plans_exactly_and_writes_nothing() -> None:
    w = world(remediation="restore-statement", dry_run=True)
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert outcome.status == "dry-run"
    assert outcome.planned_policy is not None
    assert json.loads(outcome.planned_policy)["Statement"][-1]["Principal"] == {"AWS": ROCKSET.principal_arn}
    assert w.keys.writes == []
    assert w.state.log == []


def test_past_the_hourly_write_limit_remediation_is_suspended_and_says_so() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    for i in range(3):
        w.keys.regions[REPLICA].policy = NO_DECRYPT
        w.clock.now += 60
        w.guard.handle(policy_event() | {"id": f"e{i}"} | {"detail": policy_event()["detail"] | {"eventID": f"e{i}"}})
    assert len(w.keys.writes) == 3
    w.notifier.alerts.clear()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.clock.now += 60
    result = w.guard.scheduled_check({"id": "fourth"})
    assert outcome_of(result).status == "suspended"
    assert len(w.keys.writes) == 3
    assert w.kinds() == ["suspended"]
    # an hour after the first write, a slot is free again
    w.clock.now += 3600
    assert outcome_of(w.guard.scheduled_check({"id": "fifth"})).status == "applied"


def test_a_failed_write_is_reported_with_awss_reason_and_logged() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.fail_writes = "MalformedPolicyDocumentException: lockout"
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert outcome.status == "failed"
    assert "MalformedPolicyDocumentException: lockout" in outcome.description
    assert w.state.log[0]["status"] == "failed"
    assert w.kinds() == ["problem"]


def test_a_stale_read_back_is_retried_with_backoff_until_the_repair_holds() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.stale_reads = 2
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert outcome_of(result).verified is True
    assert w.sleeps == [0.5, 1.0]


def test_a_repair_that_never_shows_is_reported_unverified() -> None:
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.stale_reads = 100
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert outcome_of(result).verified is False
    assert len(w.sleeps) == 3  # verify_attempts=4: one read now, three after a pause
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    assert w.kinds() == ["problem"]


@pytest.mark.parametrize(
    ("state", "writes"),
    [("Disabled", ["enable-key"]), ("PendingDeletion", ["cancel-key-deletion", "enable-key"])],
)
def test_restore_key_state_brings_the_key_back(state: str, writes: list[str]) -> None:
    w = world(restore_key_state=True)
    settle(w)
    w.keys.regions[HOME].state = state
    result = w.guard.scheduled_check({"id": "x"})
    assert outcome_of(result, HOME).writes == writes
    assert w.keys.regions[HOME].state == "Enabled"
    assert w.kinds() == ["problem", "resolved"]


def test_a_policy_problem_is_not_repaired_when_only_key_state_repair_is_on() -> None:
    w = world(restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert w.keys.writes == []
    assert all(o.status != "applied" for o in result.remediation)


# --- the alert decision (pure) -----------------------------------------------------------------------------------


def report(policy_by_region: dict[str, str], states: dict[str, str] | None = None) -> KeyReport:
    keys = FakeKeys({r: Replica(p, (states or {}).get(r, "Enabled")) for r, p in policy_by_region.items()})
    return assess_key(KEY_ARN, keys.read_all({r: arn_in(r) for r in policy_by_region}), ROCKSET)


OK = report({HOME: GOOD, REPLICA: GOOD})
BROKEN = report({HOME: GOOD, REPLICA: NO_DECRYPT})
BROKEN_TWICE = report({HOME: NO_DECRYPT, REPLICA: NO_DECRYPT})
WARNING_ONLY = report(
    {
        HOME: policy_text(
            admin_statement(),
            rockset_statement(),
            {"Sid": "Public", "Effect": "Allow", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*"},
        ),
        REPLICA: GOOD,
    }
)


def fp(r: KeyReport) -> str:
    from kms_guard.core.alerts import fingerprint

    return fingerprint(r.findings)


def decide(
    reported: Reported,
    found: KeyReport,
    final: KeyReport | None = None,
    *,
    suspended: bool = False,
    now: float = 10_000,
) -> list[tuple[AlertKind, tuple[str, ...]]]:
    plans = decide_alerts(reported, found, final or found, suspended=suspended, now=now, reminder_seconds=3600)
    return [(p.kind, p.previous_codes) for p in plans]


def test_alert_decision_a_new_problem() -> None:
    assert decide(Reported(), BROKEN) == [("problem", ())]


def test_alert_decision_a_problem_that_changed_names_what_it_was() -> None:
    before = Reported(fp(BROKEN), ("ACTION_NOT_GRANTED",), 9_000)
    assert decide(before, report({HOME: GOOD, REPLICA: GOOD}, {REPLICA: "Disabled"})) == [
        ("changed", ("ACTION_NOT_GRANTED",))
    ]


def test_alert_decision_all_clear() -> None:
    assert decide(Reported(fp(BROKEN), ("ACTION_NOT_GRANTED",), 9_000), OK) == [("resolved", ("ACTION_NOT_GRANTED",))]


def test_alert_decision_suspended_replaces_the_change_alert() -> None:
    assert decide(Reported(), BROKEN, suspended=True) == [("suspended", ())]


def test_alert_decision_a_repair_adds_a_second_alert_about_the_result() -> None:
    assert decide(Reported(), BROKEN, OK) == [("problem", ()), ("resolved", ("ACTION_NOT_GRANTED",))]
    assert decide(Reported(), BROKEN_TWICE, BROKEN) == [("problem", ()), ("changed", ("ACTION_NOT_GRANTED",))]


def test_alert_decision_a_repair_back_to_what_was_reported_still_says_so() -> None:
    before = Reported(fp(BROKEN), ("ACTION_NOT_GRANTED",), 9_000)
    assert decide(before, BROKEN_TWICE, BROKEN) == [
        ("changed", ("ACTION_NOT_GRANTED",)),
        ("changed", ("ACTION_NOT_GRANTED",)),
    ]


def test_alert_decision_a_lasting_critical_problem_is_reminded_hourly() -> None:
    before = Reported(fp(BROKEN), ("ACTION_NOT_GRANTED",), 10_000)
    assert decide(before, BROKEN, now=10_000 + 3599) == []
    assert decide(before, BROKEN, now=10_000 + 3600) == [("reminder", ("ACTION_NOT_GRANTED",))]


def test_alert_decision_a_problem_never_alerted_about_is_reminded() -> None:
    assert decide(Reported(fp(BROKEN), ("ACTION_NOT_GRANTED",), None), BROKEN) == [
        ("reminder", ("ACTION_NOT_GRANTED",))
    ]


def test_alert_decision_no_reminder_for_warnings_or_when_compliant() -> None:
    assert decide(Reported(fp(WARNING_ONLY), ("PUBLIC_PRINCIPAL",), 0), WARNING_ONLY, now=10**9) == []
    assert decide(Reported(), OK, now=10**9) == []


def test_a_reminder_reaches_the_notifier_after_an_hour() -> None:
    w = world()
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.scheduled_check({"id": "a"})
    w.clock.now += 1800
    w.guard.scheduled_check({"id": "b"})
    w.clock.now += 1800
    w.guard.scheduled_check({"id": "c"})
    assert w.kinds() == ["problem", "reminder"]


# --- opt-in: the second opinion and the finding sinks ----------------------------------------------------------


@dataclass
class FakeReasoner:
    """IAM Access Analyzer at the API boundary: a scripted answer per existing-policy text (default PASS), every
    question recorded. Implements PolicyReasoner."""

    answers: dict[str, Opinion] = field(default_factory=dict)
    default: Opinion = field(default_factory=lambda: Opinion("PASS", "no new access"))
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def check_no_new_access(self, region: str, existing_policy: str, new_policy: str) -> Opinion:
        self.calls.append((region, existing_policy, new_policy))
        return self.answers.get(existing_policy, self.default)


FAIL_DECRYPT = Opinion(
    "FAIL",
    "The new policy grants access that the existing policy does not.",
    (Reason("kms:Decrypt for arn:aws:iam::318212636800:root", 0, "KmsGuardRocksetAccess"),),
)


@dataclass
class RecordingSink:
    updates: list[FindingUpdate] = field(default_factory=list)

    def publish(self, update: FindingUpdate) -> None:
        self.updates.append(update)


def codes_in(report: Any, region: str) -> set[str]:
    return {f.code.value for f in report.region(region).findings}


def test_an_agreeing_second_opinion_adds_nothing_and_is_asked_once_per_region() -> None:
    reasoner = FakeReasoner()
    w = world(reasoner=reasoner)
    result = w.guard.scheduled_check({"id": "a"})
    assert result.report is not None
    assert result.report.verdict == "compliant"
    assert sorted(c[0] for c in reasoner.calls) == sorted([HOME, REPLICA])
    assert all(json.loads(new)["Statement"][0]["Sid"] == ROCKSET.statement_sid for _, _, new in reasoner.calls)
    assert {region for region, _, _ in reasoner.calls} == set(result.opinions)
    assert result.to_dict()["second_opinion"][0]["agrees"] is True


def test_without_the_second_opinion_nothing_is_asked_and_nothing_is_added() -> None:
    w = world()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.scheduled_check({"id": "a"})
    assert "VERDICT_DISPUTED" not in codes_in(result.report, REPLICA)
    assert "second_opinion" not in result.to_dict()


def test_aws_says_granted_where_the_guard_says_not_disputed_and_repairs_held() -> None:
    reasoner = FakeReasoner()  # PASS for everything: AWS thinks the vendor is granted
    w = world(reasoner=reasoner, remediation="restore-statement")
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert codes_in(result.report, REPLICA) == {"ACTION_NOT_GRANTED", "VERDICT_DISPUTED"}
    outcome = outcome_of(result)
    assert outcome.status == "skipped"
    assert "repairs held" in outcome.description
    assert w.keys.writes == []
    assert len(reasoner.calls) == 2  # no planned-policy check: nothing was planned to be written
    [alert] = w.alerts
    assert "VERDICT_DISPUTED" in alert.codes
    assert "The guard says Rockset is not granted (ACTION_NOT_GRANTED)" in alert.body
    assert "IAM Access Analyzer CheckNoNewAccess says the vendor's statement grants nothing new: PASS" in alert.body


def test_aws_says_not_granted_where_the_guard_says_granted_is_disputed_with_awss_reasons() -> None:
    reasoner = FakeReasoner(answers={GOOD: FAIL_DECRYPT})
    w = world(reasoner=reasoner)
    result = w.guard.scheduled_check({"id": "a"})
    assert codes_in(result.report, HOME) == {"VERDICT_DISPUTED"}
    assert result.report is not None
    home = result.report.region(HOME)
    assert home is not None
    [disputed] = home.findings
    assert disputed.severity == "warning"
    assert "kms:Decrypt for arn:aws:iam::318212636800:root (statement KmsGuardRocksetAccess)" in disputed.message
    assert result.to_dict()["second_opinion"][0]["agrees"] is False
    assert [a.kind for a in w.alerts] == ["problem"]


def test_unproven_by_the_guard_and_failed_by_aws_agree() -> None:
    conditional = policy_text(
        admin_statement(),
        {**rockset_statement(), "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
    )
    reasoner = FakeReasoner(answers={conditional: FAIL_DECRYPT})
    w = world(reasoner=reasoner)
    w.keys.regions[REPLICA].policy = conditional
    result = w.guard.scheduled_check({"id": "a"})
    assert codes_in(result.report, REPLICA) == {"GRANT_CONDITIONAL"}


def test_a_planned_policy_is_written_only_when_the_second_opinion_passes_it() -> None:
    reasoner = FakeReasoner(answers={NO_DECRYPT: FAIL_DECRYPT})  # agrees with the guard; PASS for anything else
    w = world(reasoner=reasoner, remediation="restore-statement")
    settle(w)
    reasoner.calls.clear()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert outcome_of(result).status == "applied"
    [(kind, region, written)] = w.keys.writes
    assert (kind, region) == ("put-key-policy", REPLICA)
    # One question per Region about the key as found, one about the policy to write; the read-back asks nothing.
    assert [c[1] for c in reasoner.calls].count(NO_DECRYPT) == 1
    assert reasoner.calls[-1][:2] == (REPLICA, written)
    assert len(reasoner.calls) == 3


def test_a_planned_policy_the_second_opinion_fails_is_refused_with_its_reason() -> None:
    reasoner = FakeReasoner(default=FAIL_DECRYPT, answers={GOOD: Opinion("PASS")})
    w = world(reasoner=reasoner, remediation="restore-statement")
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert outcome.status == "refused"
    assert "does not confirm that the planned policy grants Rockset" in outcome.description
    assert "KmsGuardRocksetAccess" in outcome.description
    assert w.keys.writes == []


def test_a_refused_policy_write_keeps_the_key_state_repair() -> None:
    reasoner = FakeReasoner(default=FAIL_DECRYPT, answers={GOOD: Opinion("PASS")})
    w = world(reasoner=reasoner, remediation="restore-statement", restore_key_state=True)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.keys.regions[REPLICA].state = "Disabled"
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert outcome.status == "applied"
    assert [kind for kind, _, _ in w.keys.writes] == ["enable-key"]
    assert "not repaired" in outcome.description


def test_an_unavailable_second_opinion_disputes_nothing_but_blocks_policy_writes() -> None:
    reasoner = FakeReasoner(default=Opinion("ERROR", "AccessDeniedException: not authorized"))
    w = world(reasoner=reasoner, remediation="restore-statement")
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    result = w.guard.handle(policy_event())
    assert codes_in(result.report, REPLICA) == {"ACTION_NOT_GRANTED"}
    assert outcome_of(result).status == "refused"
    assert "AccessDeniedException" in outcome_of(result).description
    assert w.keys.writes == []
    assert result.to_dict()["second_opinion"][0]["agrees"] is None


def test_an_unreadable_region_is_not_asked() -> None:
    reasoner = FakeReasoner()
    w = world(reasoner=reasoner)
    w.keys.regions[REPLICA].error = "AccessDeniedException: no"
    w.guard.scheduled_check({"id": "a"})
    assert [c[0] for c in reasoner.calls] == [HOME]


def test_finding_sinks_get_what_was_reported_what_was_found_and_the_result() -> None:
    sink = RecordingSink()
    w = world(sinks=[sink], remediation="restore-statement")
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.handle(policy_event())
    first, second = sink.updates
    assert first.found.verdict == "compliant"
    assert second.previous == ()
    assert second.previous_fingerprint == "compliant"
    assert codes_in(second.found, REPLICA) == {"ACTION_NOT_GRANTED"}
    assert second.final.verdict == "compliant"
    assert str(second.key) == KEY_ARN


def test_reported_findings_remember_when_they_were_first_seen() -> None:
    w = world()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.scheduled_check({"id": "a"})
    first_seen = w.clock.now
    w.clock.now += 600
    w.keys.regions[HOME].state = "Disabled"  # a second problem: the report changes and is saved again
    w.guard.scheduled_check({"id": "b"})
    seen = {(f["region"], f["code"]): f["first_seen"] for f in w.state.record.findings}
    assert seen == {(REPLICA, "ACTION_NOT_GRANTED"): first_seen, (HOME, "KEY_DISABLED"): first_seen + 600}


def test_check_hands_the_findings_to_the_sinks_as_new() -> None:
    sink = RecordingSink()
    w = world(sinks=[sink])
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    report = w.guard.check()
    [update] = sink.updates
    assert update.previous == ()
    assert update.final == report
    assert w.state.record.fingerprint is None  # check keeps no state


# --- coverage: the guard's own sight (scheduled check only) and the canary ----------------------------------------

CANARY_ROLE = "arn:aws:iam::111122223333:role/kms-guard-canary"
TRAIL_ARN = "arn:aws:cloudtrail:us-west-2:111122223333:trail/management"


@dataclass
class FakeSight:
    """The guard's sight per Region (implements CoverageReader): a trail and the guard's rules, breakable."""

    logging: dict[str, bool] = field(default_factory=lambda: {HOME: True, REPLICA: True})
    rules_missing: set[str] = field(default_factory=set)
    unreadable: set[str] = field(default_factory=set)
    reads: int = 0

    def read(self, regions: Any, rule_names: Any) -> list[RegionSight]:
        self.reads += 1
        sights = []
        for region in regions:
            if region in self.unreadable:
                sights.append(RegionSight(region, trails_error="AccessDeniedException: no", rules=()))
                continue
            trail = Trail(TRAIL_ARN, "management", region, logging=self.logging.get(region, True))
            rules = tuple(Rule(n, None if region in self.rules_missing else "ENABLED") for n in rule_names)
            sights.append(RegionSight(region, (trail,), rules=rules))
        return sights


def covered_world(sight: FakeSight, **settings: Any) -> World:
    settings.setdefault("coverage_every_minutes", 15)  # these tests check every 15 minutes and want the sight each time
    w = world(**settings)
    w.guard = Guard(
        w.guard.settings, w.keys, w.keys, w.state, w.notifier, identity=w.identity, coverage=sight, clock=w.clock
    )
    return w


def coverage_alerts(w: World) -> list[Any]:
    return [a for a in w.alerts if a.subject.startswith("[COVERAGE")]


def test_a_blind_region_alerts_once_as_a_coverage_warning_and_leaves_the_key_alone() -> None:
    sight = FakeSight(logging={HOME: True, REPLICA: False})
    w = covered_world(sight)
    result = w.guard.scheduled_check({"id": "1"})
    assert result.report is not None
    assert result.report.verdict == "compliant"
    assert result.coverage is not None
    assert result.coverage.verdict == "blind"
    [alert] = w.alerts
    assert alert.subject.startswith("[COVERAGE] Rockset key")
    assert REPLICA in alert.subject
    assert alert.severity == "warning"
    assert alert.codes == ("TRAIL_NOT_LOGGING",)
    assert "aws cloudtrail start-logging" in alert.body
    assert result.to_dict()["coverage"]["verdict"] == "blind"

    w.clock.now += 900
    w.guard.scheduled_check({"id": "2"})
    assert len(w.alerts) == 1  # nothing changed: quiet (no reminder for coverage)

    sight.rules_missing = {REPLICA}
    w.clock.now += 900
    w.guard.scheduled_check({"id": "3"})
    assert [a.kind for a in coverage_alerts(w)] == ["problem", "changed"]

    sight.logging[REPLICA], sight.rules_missing = True, set()
    w.clock.now += 900
    w.guard.scheduled_check({"id": "4"})
    assert [a.kind for a in coverage_alerts(w)] == ["problem", "changed", "resolved"]
    assert w.alerts[-1].subject.startswith("[COVERAGE OK]")
    assert "Before: GUARD_RULE_MISSING, TRAIL_NOT_LOGGING" in w.alerts[-1].body


def test_full_coverage_from_the_first_check_sends_nothing() -> None:
    w = covered_world(FakeSight())
    result = w.guard.scheduled_check({"id": "1"})
    assert result.coverage is not None
    assert result.coverage.verdict == "ok"
    assert w.alerts == []


def test_an_unreadable_region_is_blind_never_ok() -> None:
    w = covered_world(FakeSight(unreadable={REPLICA}))
    result = w.guard.scheduled_check({"id": "1"})
    assert result.coverage is not None
    assert result.coverage.verdict == "blind"
    assert [r.status for r in result.coverage.regions] == ["ok", "unknown"]
    assert coverage_alerts(w)[0].codes == ("COVERAGE_UNREADABLE",)


def test_events_never_pay_for_the_coverage_check() -> None:
    sight = FakeSight(logging={HOME: False, REPLICA: False})
    w = covered_world(sight)
    result = w.guard.handle(policy_event())
    assert result.decision == "evaluated"
    assert sight.reads == 0
    assert result.coverage is None
    assert coverage_alerts(w) == []


def test_a_scheduled_event_through_handle_checks_coverage_like_the_lambda() -> None:
    sight = FakeSight(logging={HOME: False, REPLICA: True})
    w = covered_world(sight)
    result = w.guard.handle(load_event("scheduled-check"))
    assert sight.reads == 1
    assert result.coverage is not None
    assert result.coverage.verdict == "blind"


def test_check_coverage_is_read_only() -> None:
    sight = FakeSight(logging={HOME: True, REPLICA: False})
    w = covered_world(sight)
    report = w.guard.check_coverage()
    assert report is not None
    assert report.verdict == "blind"
    assert w.alerts == []
    assert w.state.record.coverage is None


def canary_from(region: str) -> Any:
    event = load_event("canary-tag-resource")
    event["region"] = event["detail"]["awsRegion"] = region
    return event


def test_a_canary_event_is_recorded_and_never_taken_for_the_key() -> None:
    w = covered_world(FakeSight(), canary_role_arn=CANARY_ROLE)
    result = w.guard.handle(canary_from(REPLICA))
    assert result.decision == "ignored"
    assert result.canary_region == REPLICA
    assert result.to_dict()["canary"] == {"region": REPLICA}
    assert w.keys.reads == 0
    assert w.state.record.canary_arrivals == {REPLICA: w.clock.now}


def test_without_the_canary_setting_a_canary_shaped_event_is_just_another_event() -> None:
    w = covered_world(FakeSight())
    result = w.guard.handle(canary_from(REPLICA))
    assert result.decision == "ignored"
    assert result.canary_region is None
    assert w.state.record.canary_arrivals == {}


def test_a_region_whose_canary_stops_arriving_is_event_path_silent_then_recovers() -> None:
    w = covered_world(FakeSight(), canary_role_arn=CANARY_ROLE)
    limit = w.guard.settings.canary_max_age_seconds
    assert limit == (2 * 15 + 15) * 60
    first = w.guard.scheduled_check({"id": "1"})  # canaries expected from now on
    assert first.coverage is not None
    assert first.coverage.verdict == "ok"
    assert w.state.record.canary_since == w.clock.now
    w.clock.now += 600
    w.guard.handle(canary_from(HOME))
    w.guard.handle(canary_from(REPLICA))
    w.clock.now += limit - 60
    assert w.guard.scheduled_check({"id": "2"}).coverage.verdict == "ok"  # type: ignore[union-attr]
    w.guard.handle(canary_from(HOME))  # only the home Region's canary keeps arriving
    w.clock.now += 120
    late = w.guard.scheduled_check({"id": "3"})
    assert late.coverage is not None
    assert [f.code.value for f in late.coverage.findings] == ["EVENT_PATH_SILENT"]
    assert late.coverage.findings[0].region == REPLICA
    [alert] = coverage_alerts(w)
    assert "events not arriving in us-east-1" in alert.subject
    w.guard.handle(canary_from(REPLICA))
    w.clock.now += 60
    w.guard.scheduled_check({"id": "4"})
    assert [a.kind for a in coverage_alerts(w)] == ["problem", "resolved"]


def test_with_the_canary_on_a_region_that_never_sends_one_is_silent_after_the_allowed_delay() -> None:
    w = covered_world(FakeSight(), canary_role_arn=CANARY_ROLE)
    w.guard.scheduled_check({"id": "1"})
    w.clock.now += w.guard.settings.canary_max_age_seconds + 1
    result = w.guard.scheduled_check({"id": "2"})
    assert result.coverage is not None
    assert {(f.code.value, f.region) for f in result.coverage.findings} == {
        ("EVENT_PATH_SILENT", HOME),
        ("EVENT_PATH_SILENT", REPLICA),
    }


def test_the_sight_is_read_on_the_first_check_then_once_an_hour_not_on_every_check() -> None:
    sight = FakeSight()
    w = covered_world(sight, coverage_every_minutes=60)
    w.guard.scheduled_check({"id": "1"})
    assert sight.reads == 1
    for minutes in (15, 30, 45):
        w.clock.now += 900
        result = w.guard.scheduled_check({"id": str(minutes)})
        assert result.coverage is None
    assert sight.reads == 1
    w.clock.now += 900  # an hour after the first read
    assert w.guard.scheduled_check({"id": "60"}).coverage is not None
    assert sight.reads == 2
    assert w.state.record.coverage_checked_at == w.clock.now


def test_a_blind_region_is_still_alerted_at_the_next_hourly_read() -> None:
    sight = FakeSight()
    w = covered_world(sight, coverage_every_minutes=60)
    w.guard.scheduled_check({"id": "1"})
    sight.logging[REPLICA] = False
    w.clock.now += 900
    w.guard.scheduled_check({"id": "2"})
    assert coverage_alerts(w) == []  # not read yet: a trail's settings are read hourly
    w.clock.now += 2700
    w.guard.scheduled_check({"id": "3"})
    [alert] = coverage_alerts(w)
    assert "TRAIL_NOT_LOGGING" in alert.codes


def test_with_the_canary_on_the_sight_is_read_on_every_check() -> None:
    sight = FakeSight()
    w = covered_world(
        sight, coverage_every_minutes=60, canary_role_arn="arn:aws:iam::111122223333:role/kms-guard-canary"
    )
    for i in range(3):
        w.guard.scheduled_check({"id": str(i)})
        w.clock.now += 900
    assert sight.reads == 3


def test_an_alert_lost_to_a_failed_publish_after_a_repair_is_sent_by_the_retry() -> None:
    """SNS fails after the guard repaired the key: Lambda's retry finds the key compliant and nothing new to say, so
    without the outbox nobody would ever hear of the change."""
    w = world(remediation="restore-statement")
    settle(w)

    class Down(CollectingNotifier):
        def publish(self, alert: Alert) -> None:
            raise RuntimeError("SNS is down")

    w.guard._notifier = Down()
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    event = policy_event()
    with pytest.raises(RuntimeError):
        w.guard.handle(event)
    assert w.keys.regions[REPLICA].policy != NO_DECRYPT  # the repair was made before the publish failed
    assert len(w.state.record.outbox) == 2

    w.guard._notifier = w.notifier
    retry = w.guard.handle(event)
    assert retry.alerts == []  # nothing new: the key is compliant
    assert w.kinds() == ["problem", "resolved"]  # the two alerts the failed invocation decided on
    assert "ACTION_NOT_GRANTED" in w.alerts[0].codes
    assert w.state.record.outbox == []
    w.guard.scheduled_check({"id": "later"})
    assert w.kinds() == ["problem", "resolved"]  # sent once


def test_an_alert_record_round_trips_and_cannot_smuggle_a_bad_subject() -> None:
    w = world()
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.guard.scheduled_check({"id": "x"})
    [alert] = w.alerts
    assert Alert.from_record(alert.to_record()) == alert
    forged = Alert.from_record({**alert.to_record(), "subject": "x\n" * 200, "kind": "evil"})
    assert "\n" not in forged.subject
    assert len(forged.subject) < 100
    assert forged.kind == "changed"


def test_a_deny_added_between_the_read_and_the_write_is_never_overwritten() -> None:
    """KMS has no conditional write: the guard reads the Region again just before writing and writes nothing if the
    policy changed since it planned (here someone adds a Deny in between)."""
    w = world(remediation="restore-statement")
    settle(w)
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    read = w.keys.read
    reads = []

    def read_then_change(region: str, key_arn: str) -> RegionObservation:
        reads.append(region)
        if reads.count(REPLICA) == 2:  # the admin's edit lands after the guard's first read of the replica
            w.keys.regions[REPLICA].policy = BLOCKING_DENY
        return read(region, key_arn)

    w.keys.read = read_then_change  # type: ignore[method-assign]  # only the re-read before the write is patched
    result = w.guard.handle(policy_event())
    outcome = outcome_of(result)
    assert outcome.status == "skipped"
    assert "changed since the guard read it" in outcome.description
    assert w.keys.writes == []
    assert w.keys.regions[REPLICA].policy == BLOCKING_DENY
    assert reads == [HOME, REPLICA, REPLICA]  # both Regions read, then the replica again just before the write


def test_the_hourly_limit_counts_writes_to_the_key_not_repairs() -> None:
    """A key scheduled for deletion with a broken policy takes three writes to repair (CancelKeyDeletion, EnableKey,
    PutKeyPolicy): the whole hourly budget. The next repair that hour is suspended, never cut half-way."""
    w = world(remediation="restore-statement", restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].state = "PendingDeletion"
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    first = w.guard.scheduled_check({"id": "1"})
    assert sorted(outcome_of(first).writes) == ["cancel-key-deletion", "enable-key", "put-key-policy"]
    w.keys.regions[REPLICA].state = "Disabled"
    w.clock.now += 600
    second = w.guard.scheduled_check({"id": "2"})
    assert outcome_of(second).status == "suspended"
    assert len(w.keys.writes) == 3


def test_a_plan_needing_more_writes_than_are_left_writes_nothing() -> None:
    w = world(remediation="restore-statement", restore_key_state=True)
    settle(w)
    w.keys.regions[REPLICA].state = "Disabled"
    w.guard.scheduled_check({"id": "1"})  # one write: EnableKey
    w.keys.regions[REPLICA].state = "PendingDeletion"
    w.keys.regions[REPLICA].policy = NO_DECRYPT
    w.clock.now += 600
    result = w.guard.scheduled_check({"id": "2"})  # three writes needed, two left
    assert outcome_of(result).status == "suspended"
    assert [k for k, _, _ in w.keys.writes] == ["enable-key"]


def test_planning_a_repair_runs_under_a_deadline_too() -> None:
    """The planner evaluates the live policy again (and a baseline, and its own result): one budget covers all of it,
    so a hostile policy cannot stall the repair path either."""
    from kms_guard.core import remediation
    from kms_guard.core.compliance import assess_region

    observation = FakeKeys().read(REPLICA, arn_in(REPLICA))
    report = assess_region(dataclasses.replace(observation, policy=NO_DECRYPT), ROCKSET)
    saved = remediation.PLAN_BUDGET_SECONDS
    try:
        remediation.PLAN_BUDGET_SECONDS = -1.0  # already past its deadline
        plan = remediation.plan_region(
            report, ROCKSET, mode="restore-statement", restore_key_state=False, baseline=None
        )
    finally:
        remediation.PLAN_BUDGET_SECONDS = saved
    assert plan is not None
    assert plan.writes == ()
    assert plan.refused is not None
    assert "took too long" in plan.refused
