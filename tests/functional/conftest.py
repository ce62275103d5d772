"""moto-backed fixtures: a customer account with a compliant multi-Region key, the guard's table and topic.

moto gaps that matter here (aws-facts.md): replicate_key ignores Policy (we put the replica's policy afterwards);
a primary with replicas goes to PendingDeletion, not PendingReplicaDeletion (the state mapping for
PendingReplicaDeletion is covered by unit tests); key policies are not validated; DescribeKey omits KeyUsage unless it
was given to CreateKey.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.state import create_table_request
from kms_guard.settings import build_settings
from kms_guard.wiring import wire
from moto import mock_aws

from tests.support import admin_statement, load_event, policy_text, rockset_statement

HOME, REPLICA, THIRD = "us-west-2", "us-east-1", "eu-west-1"
FIXTURE_ACCOUNT = "111122223333"
FIXTURE_KEY_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
GOOD_POLICY = policy_text(admin_statement(), rockset_statement())


@pytest.fixture
def aws(monkeypatch):
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


@dataclass
class Account:
    key_arn: str
    key_id: str
    account: str
    table: str
    topic_arn: str
    queue_url: str
    session: boto3.Session
    calls: Counter = field(default_factory=Counter)
    faults: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hard_faults: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kms(self, region: str) -> Any:
        return boto3.client("kms", region_name=region)

    def arn_in(self, region: str) -> str:
        return self.key_arn.replace(f":{HOME}:", f":{region}:")

    def policy(self, region: str) -> str:
        return self.kms(region).get_key_policy(KeyId=self.arn_in(region), PolicyName="default")["Policy"]

    def state(self, region: str) -> str:
        return self.kms(region).describe_key(KeyId=self.arn_in(region))["KeyMetadata"]["KeyState"]

    def event(self, name: str, **detail_overrides: Any) -> dict[str, Any]:
        """A fixture event retargeted at this account's key."""
        text = json.dumps(load_event(name))
        text = text.replace(FIXTURE_KEY_ID, self.key_id).replace(FIXTURE_ACCOUNT, self.account)
        event = json.loads(text)
        event.get("detail", {}).update(detail_overrides)
        return event

    def delivered_alerts(self) -> list[dict[str, Any]]:
        """Alerts as an SQS subscriber of the topic receives them (subject, message, attributes)."""
        sqs = boto3.client("sqs", region_name=HOME)
        out = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                body = json.loads(message["Body"])
                out.append(
                    {
                        "subject": body.get("Subject"),
                        "message": body["Message"],
                        "attributes": {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()},
                    }
                )
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def fail(self, operation: str, code: str, times: int = 1, status: int = 400) -> None:
        """Make the next `times` HTTP attempts of an operation (e.g. 'kms.GetKeyPolicy') fail with `code`.

        Injected at `before-send`, inside botocore's retry loop, so the SDK's retries are exercised. moto's own
        before-send handler still runs, so use this for side-effect-free calls (reads) only.
        """
        self.faults.setdefault(operation, []).extend([(status, code)] * times)

    def fail_call(self, operation: str, code: str, times: int = 1, status: int = 500) -> None:
        """Make the next `times` calls fail with `code` as they would after the SDK's retries; moto never sees them."""
        self.hard_faults.setdefault(operation, []).extend([(status, code)] * times)

    def guard(self, **overrides: Any) -> Any:
        options = {
            "key_arn": self.key_arn,
            "regions": [HOME, REPLICA],
            "state_table": self.table,
            "topic_arn": self.topic_arn,
        }
        guard_options = {k: overrides.pop(k) for k in ("clock", "sleep", "verify_attempts") if k in overrides}
        guard_options.setdefault("sleep", lambda seconds: None)
        options.update(overrides)
        return wire(build_settings(**options), ClientFactory(self.session, max_attempts=3), **guard_options).guard


def _install_hooks(account: Account) -> None:
    def count(event_name: str, **kwargs: Any) -> None:
        # event_name: before-call.<service>.<Operation>
        _, service, operation = event_name.split(".", 2)
        with account._lock:
            account.calls[f"{service}.{operation}"] += 1

    def inject(request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        # event_name: before-send.<service>.<Operation>
        _, service, operation = event_name.split(".", 2)
        key = f"{service}.{operation}"
        with account._lock:
            queue = account.faults.get(key)
            if not queue:
                return None
            status, code = queue.pop(0)
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
        return AWSResponse(
            request.url,
            status,
            {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.1"},
            _Raw(body),
        )

    def short_circuit(event_name: str, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        _, service, operation = event_name.split(".", 2)
        with account._lock:
            queue = account.hard_faults.get(f"{service}.{operation}")
            if not queue:
                return None
            status, code = queue.pop(0)
        http = AWSResponse("https://injected", status, {}, _Raw(b""))
        return http, {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    account.session.events.register("before-call", count)
    account.session.events.register("before-call", short_circuit)
    account.session.events.register_first("before-send", inject)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body

    def read(self, *args: Any) -> bytes:
        body, self._body = self._body, b""
        return body


@pytest.fixture
def account(aws) -> Account:
    kms = boto3.client("kms", region_name=HOME)
    # moto omits KeyUsage from DescribeKey unless it was given at creation (real KMS always returns it).
    meta = kms.create_key(
        MultiRegion=True,
        Description="Rockset CMK",
        Policy=GOOD_POLICY,
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
    )["KeyMetadata"]
    kms.replicate_key(KeyId=meta["KeyId"], ReplicaRegion=REPLICA)
    # moto ignores ReplicateKey's Policy: give the replica its own grant, as a customer would.
    boto3.client("kms", region_name=REPLICA).put_key_policy(
        KeyId=meta["KeyId"], PolicyName="default", Policy=GOOD_POLICY
    )

    boto3.client("dynamodb", region_name=HOME).create_table(**create_table_request("kms-guard-state"))
    sns = boto3.client("sns", region_name=HOME)
    sqs = boto3.client("sqs", region_name=HOME)
    topic_arn = sns.create_topic(Name="kms-guard-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    result = Account(
        key_arn=meta["Arn"],
        key_id=meta["KeyId"],
        account=meta["AWSAccountId"],
        table="kms-guard-state",
        topic_arn=topic_arn,
        queue_url=queue_url,
        session=boto3.Session(region_name=HOME),
    )
    _install_hooks(result)
    return result
