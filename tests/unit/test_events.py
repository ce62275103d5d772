"""Event recognition: which events are about the guarded key, and why the others are dropped."""

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kms_guard.core.arns import KeyArn
from kms_guard.core.events import Ignored, KeyEvent, parse_event

from tests.support import load_event

KEY = KeyArn.parse("arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab")


@pytest.mark.parametrize(
    ("name", "kind", "event_name", "region"),
    [
        ("put-key-policy-removes-decrypt", "api-call", "PutKeyPolicy", "us-east-1"),
        ("disable-key-replica", "api-call", "DisableKey", "us-east-1"),
        ("enable-key", "api-call", "EnableKey", "us-east-1"),
        ("schedule-key-deletion-primary-with-replicas", "api-call", "ScheduleKeyDeletion", "us-west-2"),
        ("schedule-key-deletion-replica", "api-call", "ScheduleKeyDeletion", "us-east-1"),
        ("cancel-key-deletion", "api-call", "CancelKeyDeletion", "us-east-1"),
        ("replicate-key-without-grant", "api-call", "ReplicateKey", "us-west-2"),
        ("create-key-replica", "api-call", "CreateKey", "eu-west-1"),
        ("update-primary-region-old-primary", "api-call", "UpdatePrimaryRegion", "us-west-2"),
        ("update-primary-region-new-primary-no-resources", "api-call", "UpdatePrimaryRegion", "us-east-1"),
        ("delete-imported-key-material", "api-call", "DeleteImportedKeyMaterial", "us-west-2"),
        ("delete-key-service-event", "service-event", "DeleteKey", "us-east-1"),
        ("kms-cmk-deletion", "kms-event", "KMS CMK Deletion", "us-east-1"),
        ("kms-imported-key-material-expiration", "kms-event", "KMS Imported Key Material Expiration", "us-west-2"),
        ("scheduled-check", "scheduled", "ScheduledCheck", "us-west-2"),
    ],
)
def test_recognises_every_event_type(name: str, kind: str, event_name: str, region: str) -> None:
    parsed = parse_event(load_event(name), KEY)
    assert isinstance(parsed, KeyEvent), parsed
    assert (parsed.kind, parsed.name, parsed.region) == (kind, event_name, region)


def test_dedupe_id_is_the_cloudtrail_event_id_not_the_envelope_id() -> None:
    event = load_event("disable-key-replica")
    parsed = parse_event(event, KEY)
    assert isinstance(parsed, KeyEvent), parsed
    assert parsed.event_id == event["detail"]["eventID"]
    assert parsed.event_id != event["id"]


def test_actor_is_the_role_behind_the_session() -> None:
    parsed = parse_event(load_event("put-key-policy-removes-decrypt"), KEY)
    assert isinstance(parsed, KeyEvent), parsed
    assert parsed.actor is not None
    assert parsed.actor.principal_arn == "arn:aws:iam::111122223333:role/PlatformAdmin"
    assert parsed.actor.arn == "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/alice"
    assert parsed.actor.source_ip == "203.0.113.10"
    assert "PlatformAdmin/alice (role arn:aws:iam::111122223333:role/PlatformAdmin)" in parsed.actor.display
    assert parsed.time == "2026-11-28T10:15:30Z"
    assert '"kms:Encrypt"' in parsed.request["policy"]


def test_service_event_actor_is_the_invoking_service() -> None:
    parsed = parse_event(load_event("delete-key-service-event"), KEY)
    assert isinstance(parsed, KeyEvent), parsed
    assert parsed.actor is not None
    assert parsed.actor.invoked_by == "kms.amazonaws.com"
    assert parsed.actor.display == "kms.amazonaws.com"


def test_non_iso_deletion_date_does_not_matter() -> None:
    parsed = parse_event(load_event("schedule-key-deletion-replica"), KEY)
    assert isinstance(parsed, KeyEvent)


def with_detail(name: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    for key, value in changes.items():
        if value is None:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            load_event("disable-key-failed-access-denied"),
            "failed call, nothing changed (DisableKey: AccessDeniedException)",
        ),
        (load_event("disable-key-other-key"), "event is about another key"),
        (load_event("disable-key-alias-only"), "event does not identify a key by ARN or key ID"),
        (load_event("decrypt-read-only"), "not a key-changing event (Decrypt)"),
        (load_event("s3-put-bucket-policy"), "not a KMS event (source aws.s3)"),
        (None, "malformed event: not a JSON object"),
        ([], "malformed event: not a JSON object"),
        ({}, "malformed event: missing detail-type or source"),
        ({"detail-type": 5, "source": "aws.kms"}, "malformed event: missing detail-type or source"),
        (
            {"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "detail": None},
            "detail is not an object",
        ),
        ({"detail-type": "KMS CMK Rotation", "source": "aws.kms", "detail": {}}, "not a key-changing event"),
        (with_detail("disable-key-replica", eventName=None), "detail.eventName missing"),
        (with_detail("disable-key-replica", eventID=None), "detail.eventID missing"),
        (
            with_detail("disable-key-replica", resources=None, responseElements=None, requestParameters=None),
            "does not identify",
        ),
        (
            with_detail(
                "disable-key-replica",
                resources=[{"ARN": None}],
                responseElements=None,
                requestParameters={"keyId": None},
            ),
            "does not identify",
        ),
    ],
)
def test_drops_with_a_reason(event: object, reason: str) -> None:
    parsed = parse_event(event, KEY)
    assert isinstance(parsed, Ignored)
    assert reason in parsed.reason


def test_same_key_id_in_another_account_is_another_key() -> None:
    text = json.dumps(load_event("disable-key-replica")).replace("111122223333", "999999999999")
    parsed = parse_event(json.loads(text), KEY)
    assert isinstance(parsed, Ignored)


def test_bare_mrk_id_in_request_identifies_the_key() -> None:
    event = with_detail(
        "disable-key-replica", resources=None, responseElements=None, requestParameters={"keyId": KEY.key_id}
    )
    assert isinstance(parse_event(event, KEY), KeyEvent)


def test_alias_arn_never_identifies_the_key() -> None:
    event = with_detail(
        "disable-key-replica",
        resources=None,
        responseElements=None,
        requestParameters={"keyId": "arn:aws:kms:us-east-1:111122223333:alias/rockset"},
    )
    assert isinstance(parse_event(event, KEY), Ignored)


def test_hostile_strings_are_bounded() -> None:
    event = with_detail("put-key-policy-removes-decrypt", userAgent="x" * 100_000, sourceIPAddress="\x1b[31m" * 10)
    parsed = parse_event(event, KEY)
    assert isinstance(parsed, KeyEvent), parsed
    assert parsed.actor is not None
    assert parsed.actor.user_agent is not None
    assert len(parsed.actor.user_agent) <= 512


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "detail-type",
                        "source",
                        "detail",
                        "eventName",
                        "eventID",
                        "resources",
                        "ARN",
                        "errorCode",
                        "requestParameters",
                        "keyId",
                        "responseElements",
                        "userIdentity",
                        "id",
                        "region",
                    ]
                ),
                c,
                max_size=6,
            )
        ),
        max_leaves=25,
    )
)
def test_never_raises_on_arbitrary_json(event: object) -> None:
    assert isinstance(parse_event(event, KEY), KeyEvent | Ignored)


def test_a_createkey_of_another_key_is_dropped_before_any_call() -> None:
    event = load_event("create-key-replica")
    text = json.dumps(event).replace("mrk-1234abcd12ab34cd56ef1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ab")
    parsed = parse_event(json.loads(text), KEY)
    assert isinstance(parsed, Ignored)
    assert parsed.reason == "event is about another key"


def test_an_arn_naming_another_accounts_key_outranks_a_bare_key_id() -> None:
    """Another account can have a multi-Region key with the same ID; its ARN says whose it is."""
    event = load_event("disable-key-replica")
    other = "arn:aws:kms:us-east-1:999988887777:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    event["detail"]["resources"] = [{"ARN": other, "type": "AWS::KMS::Key", "accountId": "999988887777"}]
    event["detail"]["responseElements"] = {"keyId": other}
    event["detail"]["requestParameters"] = {"keyId": "mrk-1234abcd12ab34cd56ef1234567890ab"}
    parsed = parse_event(event, KEY)
    assert isinstance(parsed, Ignored)
    assert parsed.reason == "event is about another key"


def test_a_bare_key_id_alone_still_identifies_the_key() -> None:
    event = load_event("update-primary-region-new-primary-no-resources")
    assert isinstance(parse_event(event, KEY), KeyEvent)
