"""The reliability matrix (README): bad input, malformed policies and key states, load, and safety.

Faults (throttling, access denied, SNS/DynamoDB failing, stale read-back, a timeout mid-repair, a concurrent race) are
in test_faults.py; a missing replica in test_scenarios.py.
"""

from __future__ import annotations

import copy
import enum
import json
import random
from collections.abc import Mapping
from typing import Any

import pytest
from kms_guard.core.compliance import RegionObservation
from kms_guard.core.policy import MAX_POLICY_BYTES
from kms_guard.guard import KeyReader

from tests.functional.conftest import HOME, REPLICA, Account
from tests.functional.test_scenarios import NO_DECRYPT, break_policy
from tests.support import admin_statement, load_event, policy_text, rockset_statement

# --- bad input: events ------------------------------------------------------------------------------------------


def _mutate(base: str | dict[str, Any], path: list[str], value: object) -> dict[str, Any]:
    """A copy of a fixture event (by name) or of an event, with one field replaced (or deleted)."""
    event = copy.deepcopy(load_event(base) if isinstance(base, str) else base)
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return event


_DELETE = object()
BASE = "disable-key-replica"


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


MALFORMED_EVENTS: dict[str, object] = {
    "not an object (list)": [],
    "not an object (string)": "DisableKey",
    "not an object (null)": None,
    "not an object (number)": 42,
    "empty object": {},
    "detail-type missing": _mutate(BASE, ["detail-type"], _DELETE),
    "source missing": _mutate(BASE, ["source"], _DELETE),
    "detail-type a number": _mutate(BASE, ["detail-type"], 7),
    "source a list": _mutate(BASE, ["source"], ["aws.kms"]),
    "detail null": _mutate(BASE, ["detail"], None),
    "detail a string": _mutate(BASE, ["detail"], "{}"),
    "eventName missing": _mutate(BASE, ["detail", "eventName"], _DELETE),
    "eventName a list": _mutate(BASE, ["detail", "eventName"], ["DisableKey"]),
    "eventID missing": _mutate(BASE, ["detail", "eventID"], _DELETE),
    "eventID null": _mutate(BASE, ["detail", "eventID"], None),
    "resources null, no other key id": _mutate(
        _mutate(_mutate(BASE, ["detail", "resources"], None), ["detail", "responseElements"], None),
        ["detail", "requestParameters"],
        None,
    ),
    "resources a string": _mutate(
        _mutate(_mutate(BASE, ["detail", "resources"], "arn"), ["detail", "responseElements"], None),
        ["detail", "requestParameters"],
        {},
    ),
    "resource ARN null": _mutate(
        _mutate(_mutate(BASE, ["detail", "resources"], [{"ARN": None}]), ["detail", "responseElements"], None),
        ["detail", "requestParameters"],
        None,
    ),
    "alias name as key id": load_event("disable-key-alias-only"),
    "alias ARN as key id": _mutate(
        _mutate(_mutate(BASE, ["detail", "resources"], _DELETE), ["detail", "responseElements"], None),
        ["detail", "requestParameters"],
        {"keyId": "arn:aws:kms:us-east-1:111122223333:alias/rockset"},
    ),
    "another key": load_event("disable-key-other-key"),
    "same key ID, another account": json.loads(json.dumps(load_event(BASE)).replace("111122223333", "999999999999")),
    "failed call (errorCode)": load_event("disable-key-failed-access-denied"),
    "failed call with errorMessage only + code": _mutate(BASE, ["detail", "errorCode"], "ValidationException"),
    "read-only call (Decrypt)": load_event("decrypt-read-only"),
    "another service (S3)": load_event("s3-put-bucket-policy"),
    "other service, KMS-like detail": _mutate(BASE, ["source"], "aws.iam"),
    "unknown detail-type": _mutate(BASE, ["detail-type"], "AWS Console Sign In via CloudTrail"),
    "KMS rotation event (not handled)": {
        "detail-type": "KMS CMK Rotation",
        "source": "aws.kms",
        "detail": {"key-id": "x"},
        "resources": [],
    },
    "KMS deletion event for another key": _mutate(
        "kms-cmk-deletion",
        ["resources"],
        ["arn:aws:kms:us-east-1:111122223333:key/mrk-ffffffffffffffffffffffffffffffff"],
    ),
    "KMS event with resources null": _mutate(_mutate("kms-cmk-deletion", ["resources"], None), ["detail"], {}),
    "deeply nested detail": _mutate(BASE, ["detail"], _nested(200)),
    "huge eventName": _mutate(BASE, ["detail", "eventName"], "DisableKey" * 100_000),
    "control characters in eventName": _mutate(BASE, ["detail", "eventName"], "Disable\x00Key\x1b[31m"),
    "unicode eventName": _mutate(BASE, ["detail", "eventName"], "DisableKeÿ"),
}


def test_matrix_has_at_least_30_malformed_events() -> None:
    assert len(MALFORMED_EVENTS) >= 30


@pytest.mark.parametrize("name", MALFORMED_EVENTS)
def test_malformed_or_hostile_event_is_ignored_with_a_reason_no_aws_call_no_write(account: Account, name: str) -> None:
    guard = account.guard(remediation="restore-statement", restore_key_state=True)
    result = guard.handle(MALFORMED_EVENTS[name])
    assert result.decision == "ignored"
    assert result.reason
    assert "\n" not in result.reason
    assert len(result.reason) < 700
    assert sum(account.calls.values()) == 0, account.calls


HOSTILE_ACTORS = {
    "control characters": "arn:aws:sts::111122223333:assumed-role/Admin/\x1b[2J\x07evil\r\nSubject: fake",
    "huge": "arn:aws:sts::111122223333:assumed-role/Admin/" + "A" * 200_000,
    "unicode": "arn:aws:sts::111122223333:assumed-role/Admin/\u202eevil\u0000",
}


@pytest.mark.parametrize("kind", HOSTILE_ACTORS)
def test_hostile_strings_in_fields_that_reach_the_alert_are_sanitised(account: Account, kind: str) -> None:
    break_policy(account)
    event = account.event(
        "put-key-policy-removes-decrypt", userAgent=HOSTILE_ACTORS[kind], sourceIPAddress=HOSTILE_ACTORS[kind]
    )
    event["detail"]["userIdentity"]["arn"] = HOSTILE_ACTORS[kind]
    result = account.guard().handle(event)
    assert result.decision == "evaluated"
    [alert] = account.delivered_alerts()
    assert all(0x20 <= ord(c) <= 0x7E for c in alert["subject"])
    assert len(alert["subject"]) < 100
    assert "\x1b" not in alert["message"]
    assert "\x00" not in alert["message"]
    assert "\nSubject: fake" not in alert["message"]
    assert len(alert["message"].encode()) < 256 * 1024


# --- bad input: policies and key states --------------------------------------------------------------------------

MALFORMED_POLICIES = {
    # (an empty policy cannot reach KMS: botocore refuses it; the parser's answer to "" is a unit test)
    "whitespace": "   ",
    "not JSON": "{not json",
    "truncated": policy_text(rockset_statement())[:-3],
    "a list": "[]",
    "null": "null",
    "no Statement": '{"Version": "2012-10-17"}',
    "empty Statement": '{"Version": "2012-10-17", "Statement": []}',
    "statement a string": '{"Statement": ["Allow everything"]}',
    "lower-case effect": policy_text({**rockset_statement(), "Effect": "allow"}),
    "no principal": policy_text({k: v for k, v in rockset_statement().items() if k != "Principal"}),
    "unknown principal type": policy_text({**rockset_statement(), "Principal": {"Account": "318212636800"}}),
    "action a number": policy_text({**rockset_statement(), "Action": 7}),
    "condition a list": policy_text({**rockset_statement(), "Condition": ["StringEquals"]}),
    "unknown set qualifier": policy_text({**rockset_statement(), "Condition": {"AnyOf:StringEquals": {"k": "v"}}}),
    "deeply nested": "[" * 50_000 + "]" * 50_000,
    "over 32 KB of garbage": "x" * (MAX_POLICY_BYTES + 10),
    "NUL bytes": '{"Statement": "\x00"}',
}


def test_matrix_has_at_least_15_malformed_policies() -> None:
    assert len(MALFORMED_POLICIES) >= 15


class Planted:
    """Answers chosen DescribeKey metadata and/or GetKeyPolicy text for the replica, reading the rest for real.

    moto cannot put a key into most of these states, and real KMS refuses to store these policies (moto stores them,
    but its GetKeyPolicy then crashes on text that is not a JSON object), so they are planted at the read."""

    class _Keep(enum.Enum):
        KEEP = enum.auto()  # the default: read it for real

    def __init__(
        self,
        inner: KeyReader,
        *,
        metadata: Mapping[str, Any] | _Keep | None = _Keep.KEEP,
        policy: str | _Keep | None = _Keep.KEEP,
    ) -> None:
        self._inner, self._metadata, self._policy = inner, metadata, policy

    def read_all(self, key_arns: dict[str, str]) -> list[RegionObservation]:
        return [self.read(r, a) for r, a in key_arns.items()]

    def read(self, region: str, key_arn: str) -> RegionObservation:
        observation = self._inner.read(region, key_arn)
        if region != REPLICA:
            return observation
        metadata = observation.metadata if self._metadata is self._Keep.KEEP else self._metadata
        policy = observation.policy if self._policy is self._Keep.KEEP else self._policy
        return RegionObservation(region, key_arn, metadata, policy)

    def __getattr__(self, name: str) -> Any:  # the writes, and anything else, go to the real gateway
        return getattr(self._inner, name)


@pytest.mark.parametrize("name", MALFORMED_POLICIES)
def test_malformed_live_policy_is_unreadable_never_compliant_and_never_written(account: Account, name: str) -> None:
    guard = account.guard(remediation="restore-statement")
    guard._reader = guard._writer = Planted(guard._reader, policy=MALFORMED_POLICIES[name])
    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.report is not None
    region = result.report.region(REPLICA)
    assert region is not None
    assert region.verdict == "non-compliant"
    assert [f.code.value for f in region.findings] == ["POLICY_UNREADABLE"]
    assert account.calls["kms.PutKeyPolicy"] == 0


GOOD_METADATA = {
    "KeyState": "Enabled",
    "KeySpec": "SYMMETRIC_DEFAULT",
    "KeyUsage": "ENCRYPT_DECRYPT",
    "MultiRegion": True,
}
KEY_STATES = {
    "PendingImport": ({**GOOD_METADATA, "KeyState": "PendingImport"}, ["KEY_UNUSABLE"]),
    "Unavailable": ({**GOOD_METADATA, "KeyState": "Unavailable"}, ["KEY_UNUSABLE"]),
    "Creating": ({**GOOD_METADATA, "KeyState": "Creating"}, ["KEY_UNUSABLE"]),
    "PendingReplicaDeletion": ({**GOOD_METADATA, "KeyState": "PendingReplicaDeletion"}, ["KEY_PENDING_DELETION"]),
    "state missing": ({k: v for k, v in GOOD_METADATA.items() if k != "KeyState"}, ["KEY_UNUSABLE"]),
    "state null": ({**GOOD_METADATA, "KeyState": None}, ["KEY_UNUSABLE"]),
    "unknown future state": ({**GOOD_METADATA, "KeyState": "Hibernating"}, ["KEY_UNUSABLE"]),
    "MultiRegion missing": ({k: v for k, v in GOOD_METADATA.items() if k != "MultiRegion"}, ["KEY_NOT_MULTI_REGION"]),
    "MultiRegion a string": ({**GOOD_METADATA, "MultiRegion": "true"}, ["KEY_NOT_MULTI_REGION"]),
    "spec missing": ({k: v for k, v in GOOD_METADATA.items() if k != "KeySpec"}, ["KEY_SPEC_INVALID"]),
    "usage HMAC": ({**GOOD_METADATA, "KeyUsage": "GENERATE_VERIFY_MAC"}, ["KEY_USAGE_INVALID"]),
}


@pytest.mark.parametrize("name", KEY_STATES)
def test_odd_key_states_are_reported_and_never_written(account: Account, name: str) -> None:
    metadata, codes = KEY_STATES[name]
    guard = account.guard(remediation="restore-statement", restore_key_state=name == "PendingReplicaDeletion")
    guard._reader = guard._writer = Planted(guard._reader, metadata=metadata)
    result = guard.handle(account.event("scheduled-check"))
    assert result.report is not None
    region = result.report.region(REPLICA)
    assert region is not None
    assert sorted(f.code.value for f in region.findings) == codes
    assert region.verdict == "non-compliant"
    if name != "PendingReplicaDeletion":
        assert result.remediation == []
        assert not any(account.calls[w] for w in ("kms.PutKeyPolicy", "kms.EnableKey", "kms.CancelKeyDeletion"))


# --- load ------------------------------------------------------------------------------------------------------


def test_a_thousand_mixed_events_one_alert_per_real_change_bounded_calls(account: Account) -> None:
    """10 real changes (each delivered 4 times), 160 relevant events that change nothing, 800 irrelevant events."""
    rng = random.Random(7)
    guard = account.guard()
    irrelevant_pool = [v for v in MALFORMED_EVENTS.values() if not isinstance(v, dict) or "detail" in v]
    stream = []
    for change in range(10):
        stream.append(("change", change))
        stream += [("duplicate", change)] * 3
    stream += [("noop", i) for i in range(160)]
    stream += [("irrelevant", i) for i in range(800)]
    head, rest = stream[:40], stream[40:]
    rng.shuffle(rest)  # keep every change ahead of its duplicates, shuffle the rest around them
    stream = head + rest
    assert len(stream) == 1000

    events_by_change: dict[int, object] = {}
    evaluated = 0
    for kind, i in stream:
        if kind == "change":
            disable = i % 2 == 0
            kms = account.kms(REPLICA)
            (kms.disable_key if disable else kms.enable_key)(KeyId=account.key_id)
            event: object = account.event("disable-key-replica" if disable else "enable-key", eventID=f"change-{i}")
            events_by_change[i] = event
        elif kind == "duplicate":
            event = events_by_change[i]
        elif kind == "noop":
            event = account.event("enable-key", eventID=f"noop-{i}")
        else:
            event = irrelevant_pool[i % len(irrelevant_pool)]
        result = guard.handle(event)
        evaluated += result.decision == "evaluated"

    alerts = account.delivered_alerts()
    assert len(alerts) == 10  # one per real change: 5 problems, 5 all-clears
    assert [a["subject"].split("]")[0] for a in alerts] == ["[CRITICAL", "[RESOLVED"] * 5
    assert evaluated == 170  # 10 changes + 160 no-change events; 30 duplicates and 800 irrelevant ignored
    kms_reads = account.calls["kms.DescribeKey"] + account.calls["kms.GetKeyPolicy"]
    assert kms_reads <= 2 * 2 * (170 + 30)  # 2 calls x 2 Regions per evaluation (a duplicate's reads are discarded)
    assert account.calls["dynamodb.PutItem"] <= 200 + 10  # one claim per delivery, reports only on change
    assert account.calls["sns.Publish"] == 10


def test_duplicates_under_remediation_repair_once_per_breakage(account: Account) -> None:
    guard = account.guard(remediation="restore-statement")
    for breakage in range(3):
        break_policy(account)
        event = account.event("put-key-policy-removes-decrypt", eventID=f"b{breakage}")
        for _ in range(4):
            guard.handle(event)
    assert account.calls["kms.PutKeyPolicy"] == 3


# --- safety ----------------------------------------------------------------------------------------------------


def test_every_write_keeps_the_lockout_safety_check_and_never_exceeds_32_kb(account: Account) -> None:
    sent: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> None:
        sent.append(kwargs["params"])

    account.session.register("provide-client-params.kms.PutKeyPolicy", capture)
    guard = account.guard(remediation="restore-statement")
    for i in range(3):
        break_policy(account)
        guard.handle(account.event("put-key-policy-removes-decrypt", eventID=f"w{i}"))
    assert len(sent) == 3
    for params in sent:
        assert params["BypassPolicyLockoutSafetyCheck"] is False
        assert len(params["Policy"].encode()) <= MAX_POLICY_BYTES


def test_a_repair_that_would_exceed_32_kb_is_refused_and_nothing_written(account: Account) -> None:
    filler = [
        {
            "Sid": f"F{i}",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::111122223333:role/r{i:04d}"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
        }
        for i in range(200)
    ]
    text = policy_text(admin_statement(), *filler, indent=None)
    text = text[:-1] + " " * (MAX_POLICY_BYTES - 20 - len(text)) + "}"
    break_policy(account, policy=text)
    result = account.guard(remediation="restore-statement").handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].status == "refused"
    assert "32768" in result.remediation[0].description
    assert account.calls["kms.PutKeyPolicy"] == 0


def test_a_repair_never_drops_or_alters_a_customer_statement_or_a_deny(account: Account) -> None:
    deny = {
        "Sid": "NoDeletion",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:ScheduleKeyDeletion",
        "Resource": "*",
    }
    custom = {
        "Sid": "App",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
        "Action": ["kms:Decrypt"],
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    }
    before = policy_text(admin_statement(), deny, custom, json.loads(NO_DECRYPT)["Statement"][1])
    break_policy(account, policy=before)
    account.guard(remediation="restore-statement").handle(account.event("put-key-policy-removes-decrypt"))
    after = json.loads(account.policy(REPLICA))["Statement"]
    assert after[:4] == json.loads(before)["Statement"]
    assert after[4]["Sid"] == "KmsGuardRocksetAccess"
    assert account.policy(REPLICA).startswith(before[: before.rindex("]")].rstrip())  # byte-for-byte up to there


def test_nothing_is_written_in_the_home_region_when_only_the_replica_is_broken(account: Account) -> None:
    break_policy(account)
    account.guard(remediation="restore-statement", restore_key_state=True).handle(
        account.event("put-key-policy-removes-decrypt")
    )
    assert json.loads(account.policy(HOME)) == json.loads(policy_text(admin_statement(), rockset_statement()))
