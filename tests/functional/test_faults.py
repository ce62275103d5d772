"""Faults: what the guard does when AWS misbehaves, and that no event or finding is lost.

Faults are injected at botocore's `before-send` (see conftest), i.e. inside the SDK's retry loop, so the guard's
real retry configuration is what recovers from throttling.
"""

from __future__ import annotations

import json
import threading

import pytest
from kms_guard.aws.kms import KmsGateway
from kms_guard.aws.state import DynamoState
from kms_guard.core.alerts import Alert
from kms_guard.core.compliance import RegionObservation
from kms_guard.guard import EVENT_LEASE_SECONDS, Result

from tests.functional.conftest import HOME, REPLICA, Account
from tests.functional.test_scenarios import NO_DECRYPT, break_policy


def test_throttling_then_success_is_retried_by_the_sdk(account: Account) -> None:
    account.fail("kms.GetKeyPolicy", "ThrottlingException", times=2)
    result = account.guard().handle(account.event("scheduled-check"))
    assert result.report is not None
    assert result.report.verdict == "compliant"
    assert account.calls["kms.GetKeyPolicy"] == 2  # two logical calls; the retries happened inside botocore


def test_throttling_past_the_retries_is_policy_unreadable_never_compliant(account: Account) -> None:
    account.fail("kms.GetKeyPolicy", "ThrottlingException", times=10)
    result = account.guard().handle(account.event("scheduled-check"))
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    codes = {f.code.value for f in result.report.findings}
    assert codes == {"POLICY_UNREADABLE"}
    assert "ThrottlingException" in result.report.findings[0].message
    assert "unreadable" in account.delivered_alerts()[0]["subject"]


def test_access_denied_is_policy_unreadable(account: Account) -> None:
    account.fail("kms.DescribeKey", "AccessDeniedException", times=1)
    result = account.guard().handle(account.event("scheduled-check"))
    assert result.report is not None
    [unreadable] = [r for r in result.report.regions if r.findings]
    assert unreadable.findings[0].code.value == "POLICY_UNREADABLE"
    assert "AccessDeniedException" in unreadable.findings[0].message


def test_sns_failure_raises_releases_the_event_and_the_retry_alerts_once(account: Account) -> None:
    break_policy(account)
    guard = account.guard()
    event = account.event("put-key-policy-removes-decrypt")
    account.fail_call("sns.Publish", "InternalError")
    with pytest.raises(Exception, match="InternalError"):
        guard.handle(event)
    assert account.delivered_alerts() == []
    # Lambda retries the same event: the claim was released, the finding was not recorded as reported.
    retry = guard.handle(event)
    assert retry.decision == "evaluated"
    assert len(account.delivered_alerts()) == 1


def test_dynamodb_failure_raises_so_lambda_retries(account: Account) -> None:
    account.kms(REPLICA).disable_key(KeyId=account.key_id)
    account.fail_call("dynamodb.PutItem", "InternalServerError")
    guard = account.guard(restore_key_state=True)
    with pytest.raises(Exception, match="InternalServerError"):
        guard.handle(account.event("disable-key-replica"))
    # Nothing half-done: the reads that overlapped the failed claim change nothing; no write, no alert.
    assert account.calls["kms.EnableKey"] == 0
    assert account.delivered_alerts() == []
    retry = guard.handle(account.event("disable-key-replica"))
    assert retry.remediation[0].status == "applied"
    assert len(account.delivered_alerts()) == 2


def test_a_failed_repair_is_reported_not_hidden(account: Account) -> None:
    break_policy(account)
    account.fail_call("kms.PutKeyPolicy", "MalformedPolicyDocumentException", status=400)
    result = account.guard(remediation="restore-statement").handle(account.event("put-key-policy-removes-decrypt"))
    [outcome] = result.remediation
    assert outcome.status == "failed"
    assert "MalformedPolicyDocumentException" in outcome.description
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    assert "failed" in account.delivered_alerts()[0]["message"]


class StaleReads:
    """KMS eventual consistency: the first `stale` reads after a write still return the old policy.

    moto is immediately consistent, so this wrapper stands in for real KMS's documented behaviour.
    """

    def __init__(self, inner: KmsGateway, stale: int) -> None:
        self._inner, self._stale = inner, stale
        self._written: str | None = None
        self.reads_after_write = 0

    def read_all(self, key_arns: dict[str, str]) -> list[RegionObservation]:
        return self._inner.read_all(key_arns)

    def read(self, region: str, key_arn: str) -> RegionObservation:
        observation = self._inner.read(region, key_arn)
        if self._written is not None:
            self.reads_after_write += 1
            if self.reads_after_write <= self._stale:
                return RegionObservation(region, key_arn, observation.metadata, self._written)
        return observation

    def put_key_policy(self, region: str, key_arn: str, policy: str) -> None:
        self._written = self._inner.read(region, key_arn).policy
        self._inner.put_key_policy(region, key_arn, policy)

    def enable_key(self, region: str, key_arn: str) -> None:
        self._inner.enable_key(region, key_arn)

    def cancel_key_deletion(self, region: str, key_arn: str) -> None:
        self._inner.cancel_key_deletion(region, key_arn)


def test_stale_read_back_after_a_write_is_retried_until_it_holds(account: Account) -> None:
    break_policy(account)
    guard = account.guard(remediation="restore-statement")
    assert isinstance(guard._reader, KmsGateway)  # the wiring's reader, also its writer
    stale = StaleReads(guard._reader, stale=2)
    guard._reader = guard._writer = stale
    sleeps: list[float] = []
    guard._sleep = sleeps.append
    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].verified is True
    assert stale.reads_after_write == 3
    assert sleeps == [0.5, 1.0]  # backing off, allowing for eventual consistency


def test_read_back_that_never_holds_is_reported_as_not_verified(account: Account) -> None:
    break_policy(account)
    guard = account.guard(remediation="restore-statement", verify_attempts=3)
    assert isinstance(guard._reader, KmsGateway)  # the wiring's reader, also its writer
    guard._reader = guard._writer = StaleReads(guard._reader, stale=100)
    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].verified is False
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    assert "NOT verified" in account.delivered_alerts()[0]["message"]


def test_timeout_mid_repair_then_retry_does_not_repair_twice(account: Account) -> None:
    """The Lambda dies after the write, without releasing its claim. A redelivery while the lease runs is a duplicate;
    Lambda's retry after the lease finds the key already repaired, and the alert is not lost."""
    break_policy(account)
    now = [1_000_000.0]
    guard = account.guard(remediation="restore-statement", clock=lambda: now[0])
    original = guard._notifier.publish

    def die(alert: Alert) -> None:
        raise TimeoutError("Task timed out")

    guard._notifier.publish = die  # type: ignore[method-assign]  # a fault planted on this one guard's notifier
    with pytest.raises(TimeoutError):
        guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert account.policy(REPLICA) != NO_DECRYPT  # the write happened before the timeout
    guard._notifier.publish = original  # type: ignore[method-assign]  # the fault removed again
    # A Lambda that times out cannot release its claim: simulate that by putting the released lease back.
    assert guard._state.claim_event(account.event("put-key-policy-removes-decrypt")["detail"]["eventID"], now[0])
    now[0] += 60
    assert guard.handle(account.event("put-key-policy-removes-decrypt")).decision == "ignored"
    now[0] += EVENT_LEASE_SECONDS
    retry = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert retry.report is not None
    assert retry.report.verdict == "compliant"
    assert retry.remediation == []
    assert account.calls["kms.PutKeyPolicy"] == 1
    # The alerts the crashed invocation decided on were kept before it published: the retry sends them, once (it
    # finds nothing new itself: the key went from compliant to compliant). They used to be lost.
    delivered = account.delivered_alerts()  # a standard SQS queue: order not guaranteed
    assert sorted(a["subject"].split("]")[0] for a in delivered) == ["[CRITICAL", "[RESOLVED"]
    [critical] = [a for a in delivered if a["subject"].startswith("[CRITICAL")]
    assert critical["codes"] == ["ACTION_NOT_GRANTED"]
    guard.handle(account.event("scheduled-check", new_id=True))
    assert account.delivered_alerts() == []


def test_two_concurrent_invocations_for_one_change_do_one_repair(account: Account) -> None:
    break_policy(account)
    event = account.event("put-key-policy-removes-decrypt")
    barrier = threading.Barrier(2)
    results: list[Result] = []

    def invoke() -> None:
        guard = account.guard(remediation="restore-statement")
        original_claim = guard._state.claim_event

        def claim(event_id: str, now: float) -> bool:
            barrier.wait()  # both reach the conditional write together
            return original_claim(event_id, now)

        guard._state.claim_event = claim  # type: ignore[method-assign]  # a barrier planted on this one guard's store
        results.append(guard.handle(event))

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.decision for r in results) == ["evaluated", "ignored"]
    assert account.calls["kms.PutKeyPolicy"] == 1
    assert len(account.delivered_alerts()) == 2  # the problem and the all-clear, once
    late = account.guard(remediation="restore-statement").handle(event)
    assert late.decision == "ignored"


def test_write_slots_are_not_oversold_under_contention(account: Account) -> None:
    reader = account.guard()._reader
    assert isinstance(reader, KmsGateway)  # the wiring's reader, whose client factory the state store shares
    state = DynamoState(reader._clients, account.table, "us-west-2", account.key_id)
    granted: list[bool] = []

    def take() -> None:
        granted.append(state.take_write_slot(REPLICA, 1_000_000.0, 3))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= granted.count(True) <= 3
    item = account.client("dynamodb").get_item(
        TableName=account.table, Key={"pk": {"S": account.key_id}, "sk": {"S": f"w#{REPLICA}"}}, ConsistentRead=True
    )["Item"]
    assert len(json.loads(item["writes"]["S"])) == granted.count(True)  # every slot granted is recorded, none more


def test_an_unexpected_read_failure_is_policy_unreadable_and_the_other_regions_still_count(account: Account) -> None:
    # moto stores any policy text but its GetKeyPolicy crashes (AttributeError) on text that is not a JSON object:
    # an unexpected exception of exactly the kind the adapter must contain.
    account.kms(REPLICA).put_key_policy(KeyId=account.key_id, PolicyName="default", Policy="[]")
    account.kms(HOME).disable_key(KeyId=account.key_id)
    result = account.guard().handle(account.event("scheduled-check"))
    assert result.report is not None
    replica, home = result.report.region(REPLICA), result.report.region(HOME)
    assert replica is not None
    assert home is not None
    assert [f.code.value for f in replica.findings] == ["POLICY_UNREADABLE"]
    assert "AttributeError" in replica.findings[0].message
    assert [f.code.value for f in home.findings] == ["KEY_DISABLED"]
    assert len(account.delivered_alerts()) == 1
