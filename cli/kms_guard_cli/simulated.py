"""One simulated AWS account, for the demo, the functional tests and the benchmark (built here and nowhere else).

A customer account in moto: a multi-Region key with replicas, each replica with its own key policy, the guard's state
table, its alert topic and an SQS queue subscribed to it (alerts are read exactly as a subscriber receives them); and,
unless asked otherwise, what lets the guard see events (a logging multi-Region trail, the guard's rules in every
Region), so its coverage self-check is "ok" until a test breaks it (`trail`, `guard_rules`). The
guard gets its own boto3 session, instrumented: it counts calls, can add latency to each, and can fail chosen calls,
so a test sees what the guard does without the account's own set-up and inspection calls mixed in.

CloudTrail events come from the sample events in `tests/events/`, retargeted at this account's key (and, where a
step needs it, another Region, actor or event ID). The caller chooses the AWS: inside `moto.mock_aws()`, or a moto
server given as `endpoint_url`.

moto gaps that shape this (aws-facts.md): ReplicateKey ignores `Policy` (each replica's policy is put afterwards, as a
customer would); DescribeKey omits KeyUsage unless CreateKey was given it; key policies are not validated.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.awsrequest import AWSResponse
from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.state import create_table_request
from kms_guard.core.coverage import RULE_NAMES
from kms_guard.core.repair import guard_statement
from kms_guard.core.vendor import ROCKSET
from kms_guard.guard import Guard
from kms_guard.settings import ENV_NAMES, Settings, build_settings
from kms_guard.wiring import wire

HOME, REPLICA, THIRD = "us-west-2", "us-east-1", "eu-west-1"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "tests" / "events"
"""The sample events; the demo and the benchmark run from a source checkout, where they are."""
FIXTURE_ACCOUNT = "111122223333"
FIXTURE_KEY_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
"""The account and key the sample events name; `event()` replaces them with this account's."""
GUARD_OPTIONS = ("clock", "sleep", "verify_attempts")


class SimulationError(RuntimeError):
    """The simulated account cannot be built or read as asked (for example, no sample events here)."""


def key_policy(admin_account: str, *statements: dict[str, Any]) -> str:
    """A key policy: the account's administrators (`kms:*` for the account root), then `statements`."""
    admin = {
        "Sid": "EnableIAMUserPermissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{admin_account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [admin, *statements]}, indent=2)


def sample_event(name: str) -> dict[str, Any]:
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        raise SimulationError(f"no sample event {name!r} in {EVENTS_DIR} (run from a source checkout)")
    event: dict[str, Any] = json.loads(path.read_text())
    return event


@dataclass
class SimulatedAccount:
    key_arn: str
    key_id: str
    account: str
    table: str
    topic_arn: str
    queue_url: str
    admin: boto3.Session
    """The account's own session: set-up and inspection; never counted or faulted."""
    session: botocore.session.Session
    """The guard's (botocore) session: counted (`calls`), delayed (`latency`), faulted (`fail`, `fail_call`)."""
    endpoint_url: str | None = None
    calls: Counter[str] = field(default_factory=Counter)
    latency: float = 0.0
    faults: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hard_faults: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    finding_events_queue_url: str | None = None
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- building ------------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        regions: tuple[str, ...] | list[str] = (HOME, REPLICA),
        policy: str | None = None,
        table: str = "kms-guard-state",
        topic: str = "kms-guard-alerts",
        queue: str = "security-team",
        endpoint_url: str | None = None,
        description: str = "Rockset CMK",
        covered: bool = True,
    ) -> SimulatedAccount:
        """The key (primary in `regions[0]`, a replica in each other Region, `policy` in every one; by default the
        account's administrators and the vendor's grant), the state table, the topic and its subscriber queue; with
        `covered`, a logging multi-Region trail and the guard's rules in every Region."""
        admin = boto3.Session(region_name=regions[0])

        def client(service: str, region: str) -> Any:
            return admin.client(service, region_name=region, endpoint_url=endpoint_url)  # type: ignore[call-overload]

        account = str(client("sts", regions[0]).get_caller_identity()["Account"])
        policy = policy or key_policy(account, guard_statement(ROCKSET))
        meta = _create_key(lambda region: client("kms", region), regions, policy, description)
        client("dynamodb", regions[0]).create_table(**create_table_request(table))
        sns, sqs = client("sns", regions[0]), client("sqs", regions[0])
        topic_arn = sns.create_topic(Name=topic)["TopicArn"]
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        simulated = cls(
            key_arn=meta["Arn"],
            key_id=meta["KeyId"],
            account=meta["AWSAccountId"],
            table=table,
            topic_arn=topic_arn,
            queue_url=queue_url,
            admin=admin,
            session=botocore.session.get_session(),
            endpoint_url=endpoint_url,
        )
        simulated._instrument()
        if covered:
            simulated.trail("management-events")
            simulated.guard_rules(regions)
        return simulated

    def add_key(
        self, *, policy: str, description: str, regions: tuple[str, ...] | list[str] | None = None
    ) -> SimulatedAccount:
        """Another key in the same account (multi-Region, as the guard requires; primary in `regions[0]`, default the
        home Region, a replica in each other Region, `policy` in every one), as a view that shares this account's
        state table, topic, subscriber queue, finding-events queue and sessions: `event()`, `policy()` and the rest
        then target the new key."""
        meta = _create_key(self.kms, list(regions or [self.home]), policy, description)
        return replace(self, key_arn=meta["Arn"], key_id=meta["KeyId"])

    # --- the account, as its administrators see it ---------------------------------------------------------------

    @property
    def home(self) -> str:
        return self.key_arn.split(":")[3]

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.home)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.admin.client(  # type: ignore[call-overload]
                    service, region_name=key[1], endpoint_url=self.endpoint_url
                )
            return self._clients[key]

    def kms(self, region: str) -> Any:
        return self.client("kms", region)

    def arn_in(self, region: str) -> str:
        return self.key_arn.replace(f":{self.home}:", f":{region}:")

    def policy(self, region: str) -> str:
        return str(self.kms(region).get_key_policy(KeyId=self.arn_in(region), PolicyName="default")["Policy"])

    def put_policy(self, region: str, policy: str) -> None:
        self.kms(region).put_key_policy(KeyId=self.key_id, PolicyName="default", Policy=policy)

    def state(self, region: str) -> str:
        return str(self.kms(region).describe_key(KeyId=self.arn_in(region))["KeyMetadata"]["KeyState"])

    def delivered_alerts(self) -> list[dict[str, Any]]:
        """Alerts as the topic's SQS subscriber receives them: subject, message, attributes, severity, codes."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                body = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()}
                out.append(
                    {
                        "subject": body.get("Subject", ""),
                        "message": body["Message"],
                        "attributes": attributes,
                        "severity": attributes.get("severity"),
                        "codes": [c for c in attributes.get("codes", "").split(",") if c and c != "none"],
                    }
                )
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    # --- findings outside SNS (opt-in features) -------------------------------------------------------------------

    def enable_security_hub(self) -> None:
        """Security Hub on in the home Region (moto imports findings either way; real AWS refuses them when off)."""
        self.client("securityhub").enable_security_hub(EnableDefaultStandards=False)

    def securityhub_findings(self) -> dict[str, dict[str, Any]]:
        """The home Region's Security Hub findings by Id, as the security team's console lists them."""
        hub = self.client("securityhub")
        out: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"MaxResults": 100}
        while True:
            page = hub.get_findings(**request)
            out.update({f["Id"]: f for f in page["Findings"]})
            if not page.get("NextToken"):
                return out
            request["NextToken"] = page["NextToken"]

    def route_finding_events(self, queue: str = "finding-events") -> str:
        """A rule on the home default bus sending every kms-guard event to an SQS queue (as a team's chat or ticket
        integration would receive them); returns the queue URL."""
        sqs, events = self.client("sqs"), self.client("events")
        url = str(sqs.create_queue(QueueName=queue)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"{queue}-rule", EventPattern=json.dumps({"source": ["kms-guard"]}), State="ENABLED")
        events.put_targets(Rule=f"{queue}-rule", Targets=[{"Id": "queue", "Arn": arn}])
        self.finding_events_queue_url = url
        return url

    def delivered_finding_events(self) -> list[dict[str, Any]]:
        """The EventBridge events the queue of `route_finding_events` received (whole events: source, detail...)."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        url = self.finding_events_queue_url
        if url is None:
            raise SimulationError("route_finding_events() first")
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return out

    # --- what lets the guard see events (coverage) ------------------------------------------------------------------

    def trail(
        self,
        name: str,
        *,
        region: str | None = None,
        multi_region: bool = True,
        logging: bool = True,
        event_selectors: list[dict[str, Any]] | None = None,
        advanced_selectors: list[dict[str, Any]] | None = None,
    ) -> str:
        """A CloudTrail trail homed in `region` (default: the key's), with its own S3 bucket; returns its ARN."""
        home = region or self.home
        bucket = f"trail-{name}-{home}".lower()[:63]
        s3 = self.client("s3", home)
        if home == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": home})
        cloudtrail = self.client("cloudtrail", home)
        arn = str(cloudtrail.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region)["TrailARN"])
        if logging:
            cloudtrail.start_logging(Name=name)
        if event_selectors is not None:
            cloudtrail.put_event_selectors(TrailName=name, EventSelectors=event_selectors)
        if advanced_selectors is not None:
            cloudtrail.put_event_selectors(TrailName=name, AdvancedEventSelectors=advanced_selectors)
        return arn

    def delete_trails(self) -> None:
        """Remove every trail homed in the account's Regions that have one (the account goes blind)."""
        for region in {self.home, HOME, REPLICA, THIRD}:
            cloudtrail = self.client("cloudtrail", region)
            for trail in cloudtrail.describe_trails(includeShadowTrails=False)["trailList"]:
                cloudtrail.delete_trail(Name=trail["Name"])

    def guard_rules(self, regions: tuple[str, ...] | list[str], names: tuple[str, ...] = RULE_NAMES) -> None:
        """The guard's rules, as the CDK app names them, in each Region, each with a target (a pattern stand-in: the
        coverage check reads their names, states and whether they have a target)."""
        for region in regions:
            events = self.client("events", region)
            for name in names:
                events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.kms"]}))
                target = f"arn:aws:events:{self.home}:{self.account}:event-bus/default"
                events.put_targets(Rule=name, Targets=[{"Id": "guard", "Arn": target}])

    # --- events ----------------------------------------------------------------------------------------------------

    def event(
        self,
        name: str,
        *,
        region: str | None = None,
        actor: str | None = None,
        user_agent: str | None = None,
        new_id: bool = False,
        **detail_overrides: Any,
    ) -> dict[str, Any]:
        """A sample event retargeted at this account's key; `region` moves it (and every ARN in it) to another Region,
        `actor` makes a role the caller, `new_id` gives it a fresh CloudTrail event ID (a new change, not a
        redelivery)."""
        text = (
            json.dumps(sample_event(name)).replace(FIXTURE_KEY_ID, self.key_id).replace(FIXTURE_ACCOUNT, self.account)
        )
        if region is not None:
            original = json.loads(text).get("region")
            if original:
                text = text.replace(f'"{original}"', f'"{region}"').replace(f":{original}:", f":{region}:")
        event: dict[str, Any] = json.loads(text)
        detail = event.get("detail")
        if isinstance(detail, dict):
            if actor is not None:
                role = actor.rsplit("/", 1)[-1]
                identity = detail.setdefault("userIdentity", {})
                identity.update(type="AssumedRole", arn=f"arn:aws:sts::{self.account}:assumed-role/{role}/session")
                identity.setdefault("sessionContext", {})["sessionIssuer"] = {
                    "type": "Role",
                    "arn": actor,
                    "accountId": self.account,
                    "userName": role,
                }
            if user_agent is not None:
                detail["userAgent"] = user_agent
            if new_id and "eventID" in detail:
                detail["eventID"] = str(uuid.uuid4())
            detail.update(detail_overrides)
        if new_id:
            event["id"] = str(uuid.uuid4())
        return event

    # --- the guard -------------------------------------------------------------------------------------------------

    def settings(self, **overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "key_arn": self.key_arn,
            "regions": [HOME, REPLICA],
            "state_table": self.table,
            "topic_arn": self.topic_arn,
        }
        options.update(overrides)
        return build_settings(**options)

    def guard(self, *, max_attempts: int = 3, **overrides: Any) -> Guard:
        """The real guard on the instrumented session (no pause between read-backs unless `sleep` is given)."""
        guard_options = {k: overrides.pop(k) for k in GUARD_OPTIONS if k in overrides}
        guard_options.setdefault("sleep", lambda seconds: None)
        return wire(self.settings(**overrides), ClientFactory(self.session, max_attempts), **guard_options).guard

    def environment(self, regions: list[str] | tuple[str, ...], **values: str) -> dict[str, str]:
        """The Lambda environment the CDK app would set for this account (design.md, Lambda settings)."""
        env = {
            ENV_NAMES["key_arn"]: self.key_arn,
            ENV_NAMES["regions"]: ",".join(regions),
            ENV_NAMES["topic_arn"]: self.topic_arn,
            ENV_NAMES["state_table"]: self.table,
            ENV_NAMES["remediation"]: "off",
            ENV_NAMES["restore_key_state"]: "false",
            ENV_NAMES["dry_run"]: "false",
            ENV_NAMES["trusted_principals"]: "",
        }
        env.update({ENV_NAMES.get(k, k): v for k, v in values.items()})
        return env

    # --- instrumentation of the guard's session ------------------------------------------------------------------

    def fail(self, operation: str, code: str, times: int = 1, status: int = 400) -> None:
        """Make the next `times` HTTP attempts of an operation (e.g. 'kms.GetKeyPolicy') fail with `code`.

        Injected at `before-send`, inside botocore's retry loop, so the SDK's retries are exercised. moto's own
        before-send handler still runs, so use this for side-effect-free calls (reads) only.
        """
        with self._lock:
            self.faults.setdefault(operation, []).extend([(status, code)] * times)

    def fail_call(self, operation: str, code: str, times: int = 1, status: int = 500) -> None:
        """Make the next `times` calls fail with `code` as they would after the SDK's retries; moto never sees them."""
        with self._lock:
            self.hard_faults.setdefault(operation, []).extend([(status, code)] * times)

    def _instrument(self) -> None:
        def count(event_name: str, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
            # event_name: before-call.<service>.<Operation>
            _, service, operation = event_name.split(".", 2)
            with self._lock:
                self.calls[f"{service}.{operation}"] += 1
                queue = self.hard_faults.get(f"{service}.{operation}")
                if not queue:
                    return None
                status, code = queue.pop(0)
            no_headers: Any = {}
            http = AWSResponse("https://injected", status, no_headers, _Raw(b""))
            return http, {
                "Error": {"Code": code, "Message": f"injected {code}"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }

        def send(request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
            # event_name: before-send.<service>.<Operation>
            if self.latency:
                time.sleep(self.latency)
            _, service, operation = event_name.split(".", 2)
            with self._lock:
                queue = self.faults.get(f"{service}.{operation}")
                if not queue:
                    return None
                status, code = queue.pop(0)
            body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
            headers: Any = {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.1"}
            return AWSResponse(request.url, status, headers, _Raw(body))

        handlers: dict[str, Any] = {"before-call": count, "before-send": send}  # botocore's stubs say they return None
        events = self.session.get_component("event_emitter")  # register_first: ahead of moto's own before-send
        events.register("before-call", handlers["before-call"])
        events.register_first("before-send", handlers["before-send"])


def _create_key(
    kms: Callable[[str], Any], regions: tuple[str, ...] | list[str], policy: str, description: str
) -> dict[str, Any]:
    """A multi-Region key, primary in `regions[0]`, a replica in each other Region, `policy` in every one (moto
    ignores ReplicateKey's Policy, so each replica's is put afterwards, as a customer would); its KeyMetadata."""
    meta: dict[str, Any] = kms(regions[0]).create_key(
        MultiRegion=True,
        Description=description,
        Policy=policy,
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
    )["KeyMetadata"]
    for region in regions[1:]:
        kms(regions[0]).replicate_key(KeyId=meta["KeyId"], ReplicaRegion=region)
        kms(region).put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy=policy)
    return meta


class _Raw:
    """A response body botocore can stream."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body

    def read(self, *args: Any) -> bytes:
        body, self._body = self._body, b""
        return body
