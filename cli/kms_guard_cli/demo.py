"""`kms-guard demo`: the real guard, end to end, against an embedded simulated AWS account (moto, in process).

Nothing here is a re-enactment: every CloudTrail event goes through `kms_guard.handlers.kms_event.handler` and the
checks through `kms_guard.handlers.scheduled_check.handler`, configured by the same environment variables the CDK app
sets. The SNS topic has an SQS queue subscribed, so alerts are shown exactly as a subscriber receives them. The opt-in
Security Hub and EventBridge features are on: each step shows the Security Hub findings that changed, and the
`KMS Guard Finding` events a rule on the default bus delivered to another SQS queue. After the Rockset key's story, a
second key is linked to a second vendor (Databricks, managed services) and guarded by the same handlers with that
vendor's settings (`KMS_GUARD_VENDOR`), sharing the state table and the topic.

CLI-only (needs moto, a development dependency); never part of the Lambda asset.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from kms_guard.core import profiles
from kms_guard.core.repair import guard_statement, plan_restore_statement
from kms_guard.core.vendor import ROCKSET, VendorProfile

from kms_guard_cli.simulated import HOME, REPLICA, THIRD, SimulatedAccount, SimulationError, key_policy

ACCOUNT = "123456789012"  # moto's account
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin"
AUTOMATION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/LegacyKeyPolicySync"


class DemoError(RuntimeError):
    """A step did not turn out as the story says."""


def _policy(*extra: dict[str, Any]) -> str:
    return key_policy(ACCOUNT, *extra)


COMPLIANT_POLICY = _policy(guard_statement(ROCKSET))
NO_DECRYPT_POLICY = _policy(
    {
        "Sid": "RocksetAccess",
        "Effect": "Allow",
        "Principal": {"AWS": ROCKSET.principal_arn},
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
        "Resource": "*",
    }
)
DEFAULT_POLICY = _policy()

SECOND_VENDOR = "databricks-managed-services"
DATABRICKS = profiles.load(SECOND_VENDOR)
DATABRICKS_POLICY = _policy(guard_statement(DATABRICKS))
"""The policy Databricks documents: what `kms-guard statement --vendor databricks-managed-services` prints."""
DATABRICKS_NO_DECRYPT_POLICY = _policy(
    {
        "Sid": "DatabricksManagedServices",
        "Effect": "Allow",
        "Principal": {"AWS": DATABRICKS.principal_arn},
        "Action": ["kms:Encrypt"],
        "Resource": "*",
    }
)


@dataclass
class Step:
    title: str
    event: str
    region: str
    actor: str
    vendor: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    remediation: list[dict[str, Any]] = field(default_factory=list)
    saw: str = ""
    verdict_after: str = ""
    security_hub: list[dict[str, str]] = field(default_factory=list)
    """Security Hub findings created or changed by this step: id, record state, compliance status."""
    finding_events: list[dict[str, Any]] = field(default_factory=list)
    """The EventBridge events (their detail) the routed queue received in this step."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "vendor": self.vendor,
            "event": self.event,
            "region": self.region,
            "alerts": [{"subject": a["subject"], "severity": a["severity"], "codes": a["codes"]} for a in self.alerts],
            "remediation": self.remediation,
            "verdict_after": self.verdict_after,
            "security_hub": self.security_hub,
            "finding_events": self.finding_events,
        }


@dataclass
class _Context:
    function_name: str
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{HOME}:{ACCOUNT}:function:kms-guard"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Story:
    def __init__(self, world: SimulatedAccount, out: TextIO | None) -> None:
        self.world = world
        self.out = out
        self.steps: list[Step] = []
        self.regions = [HOME, REPLICA]
        self.vendor: VendorProfile = ROCKSET
        self.vendor_name = profiles.DEFAULT
        self.keys: dict[str, str] = {ROCKSET.display_name: world.key_arn}
        self.hub: dict[str, tuple[str, str]] = {}

    def environment(self) -> dict[str, str]:
        return self.world.environment(
            self.regions,
            remediation="restore-statement",
            restore_key_state="true",
            security_hub="true",
            finding_events="true",
            vendor=self.vendor_name,
        )

    def hub_changes(self) -> list[dict[str, str]]:
        now = {
            i: (f["RecordState"], f.get("Compliance", {}).get("Status", ""))
            for i, f in self.world.securityhub_findings().items()
        }
        changed = [
            {"id": i, "record_state": state[0], "compliance": state[1]}
            for i, state in sorted(now.items())
            if self.hub.get(i) != state
        ]
        self.hub = now
        return changed

    def redeploy(self, regions: list[str]) -> None:
        """`cdk deploy` with a new Regions list: new containers, new settings, the forwarder rules in the new Regions;
        the table keeps the state."""
        from kms_guard.handlers import runtime

        self.world.guard_rules([r for r in regions if r not in self.regions])
        self.regions = regions
        os.environ.update(self.environment())
        runtime.wired.cache_clear()

    def deploy_second(self, world: SimulatedAccount, vendor_name: str, regions: list[str]) -> None:
        """A second deployment of the guard, for another key and vendor: the same handlers, that key's ARN and the
        vendor's name in the settings, the same state table (keyed by key ID) and the same topic."""
        from kms_guard.handlers import runtime

        self.world = world
        self.vendor_name = vendor_name
        self.vendor = profiles.load(vendor_name)
        self.keys[self.vendor.display_name] = world.key_arn
        self.regions = regions
        os.environ.update(self.environment())
        runtime.wired.cache_clear()

    def say(self, text: str = "") -> None:
        if self.out is not None:
            print(text, file=self.out)

    def run(
        self,
        title: str,
        change: Callable[[], None],
        event: dict[str, Any] | None,
        *,
        region: str,
        actor: str,
        expect: Callable[[Step], str | None],
    ) -> Step:
        from kms_guard.handlers import kms_event, scheduled_check

        change()
        if event is None:
            result = scheduled_check.handler(
                self.world.event("scheduled-check", new_id=True), _Context("kms-guard-scheduled-check")
            )
            name = "ScheduledCheck"
        else:
            result = kms_event.handler(event, _Context("kms-guard-kms-event"))
            name = event["detail"]["eventName"]
        report = result.get("report") or {}
        step = Step(title, name, region, actor, self.vendor.display_name)
        step.alerts = self.world.delivered_alerts()
        step.security_hub = self.hub_changes()
        step.finding_events = [e["detail"] for e in self.world.delivered_finding_events()]
        step.remediation = [
            {k: v for k, v in o.items() if k in ("region", "status", "writes", "applied", "verified", "description")}
            for o in result.get("remediation", [])
        ]
        step.verdict_after = report.get("verdict", "unknown")
        step.saw = _saw(result)
        self.steps.append(step)
        self._print(len(self.steps), step)
        problem = expect(step)
        if problem:
            raise DemoError(f"step {len(self.steps)} ({title}): {problem}")
        return step

    def _print(self, number: int, step: Step) -> None:
        self.say(f"\n=== {number}. {step.title}")
        if step.event == "ScheduledCheck":
            self.say("  event:      the scheduled check (no CloudTrail event)")
        else:
            self.say(f"  event:      {step.event} in {step.region} by {step.actor}")
        self.say(f"  guard saw:  {step.saw}")
        if not step.alerts:
            self.say("  alerts:     none (nothing changed)")
        for alert in step.alerts:
            self.say(f"  alert delivered to the security team: {alert['subject']}")
            for line in alert["message"].rstrip("\n").splitlines():
                self.say(f"    | {line}")
        for outcome in step.remediation:
            verified = {True: ", verified", False: ", NOT verified", None: ""}[outcome["verified"]]
            self.say(f"  guard did:  [{outcome['region']}] {outcome['status']}{verified}: {outcome['description']}")
        for finding in step.security_hub:
            self.say(f"  Security Hub: {finding['id']} {finding['record_state']} (compliance {finding['compliance']})")
        for detail in step.finding_events:
            self.say(
                f"  EventBridge event on the queue: change {detail['change']}, verdict {detail['verdict']} "
                f"(was {detail['previous_verdict']}), codes {', '.join(detail['codes']) or 'none'}"
            )
        self.say(f"  verdict after: {step.verdict_after.upper()}")


def _saw(result: dict[str, Any]) -> str:
    codes = result.get("found_codes") or []
    return ", ".join(codes) if codes else "compliant in every configured Region"


def _expect(
    *, alerts: list[str], codes: set[str] | None = None, remediation: list[str] | None = None, verdict: str
) -> Callable[[Step], str | None]:
    """Alert kinds by subject prefix ("CRITICAL", "RESOLVED", "ACTION NEEDED"), repair statuses, final verdict."""

    def check(step: Step) -> str | None:
        got = [a["subject"].split("]")[0].lstrip("[") for a in step.alerts]
        if got != alerts:
            return f"expected alerts {alerts}, got {got}"
        if codes is not None and step.alerts and set(step.alerts[0]["codes"]) != codes:
            return f"expected codes {sorted(codes)}, got {step.alerts[0]['codes']}"
        statuses = [o["status"] for o in step.remediation]
        if remediation is not None and statuses != remediation:
            return f"expected remediation {remediation}, got {statuses}"
        if any(o["status"] == "applied" and o["verified"] is not True for o in step.remediation):
            return "a repair was not verified"
        if step.verdict_after != verdict:
            return f"expected verdict {verdict}, got {step.verdict_after}"
        return None

    return check


def run_demo(out: TextIO | None) -> dict[str, Any]:
    """Run the story; returns the JSON summary. Raises DemoError if a step does not turn out as the story says."""
    try:
        from moto import mock_aws
    except ImportError:
        raise DemoError("the demo needs moto (a development dependency): run `make demo`") from None

    quiet = {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_SESSION_TOKEN": "demo",
        "AWS_DEFAULT_REGION": HOME,
        "AWS_ENDPOINT_URL": "",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "KmsGuardDemo",
    }
    with _environment(quiet), mock_aws():
        os.environ.pop("AWS_ENDPOINT_URL", None)
        try:
            world = SimulatedAccount.create(policy=COMPLIANT_POLICY)
        except SimulationError as exc:
            raise DemoError(str(exc)) from None
        world.enable_security_hub()
        world.route_finding_events()
        story = _Story(world, out)
        with _environment(story.environment()):
            story.redeploy([HOME, REPLICA])
            _tell(story, world)
        steps = [s.to_dict() for s in story.steps]
        final = {s.vendor: s.verdict_after for s in story.steps}  # each key's verdict after its last step
        worst = [v for v in final.values() if v != "compliant"]
        return {
            "key_arn": world.key_arn,
            "keys": story.keys,
            "steps": steps,
            "final_verdicts": final,
            "final_verdict": worst[0] if worst else "compliant",
        }


def _tell(story: _Story, world: SimulatedAccount) -> None:
    key = world.key_arn
    story.say(f"kms-guard demo: a simulated account with key {key}")
    story.say(f"  primary in {HOME}, replica in {REPLICA}; remediation restore-statement with restoreKeyState on;")
    story.say("  alerts are read from an SQS queue subscribed to the alert topic, exactly as delivered;")
    story.say("  Security Hub and EventBridge finding events are on (a rule routes kms-guard events to a queue).")

    story.run(
        "Baseline: the scheduled check finds everything compliant",
        lambda: None,
        None,
        region=HOME,
        actor="EventBridge schedule",
        expect=_expect(alerts=[], remediation=[], verdict="compliant"),
    )
    story.run(
        f"Someone's PutKeyPolicy in {REPLICA} drops kms:Decrypt",
        lambda: world.put_policy(REPLICA, NO_DECRYPT_POLICY),
        world.event("put-key-policy-removes-decrypt", actor=ADMIN_ROLE, new_id=True),
        region=REPLICA,
        actor=ADMIN_ROLE,
        expect=_expect(
            alerts=["CRITICAL", "RESOLVED"], codes={"ACTION_NOT_GRANTED"}, remediation=["applied"], verdict="compliant"
        ),
    )
    story.run(
        f"DisableKey on the replica in {REPLICA}",
        lambda: world.kms(REPLICA).disable_key(KeyId=world.key_id),
        world.event("disable-key-replica", actor=ADMIN_ROLE, new_id=True),
        region=REPLICA,
        actor=ADMIN_ROLE,
        expect=_expect(
            alerts=["CRITICAL", "RESOLVED"], codes={"KEY_DISABLED"}, remediation=["applied"], verdict="compliant"
        ),
    )

    def replicate() -> None:
        story.say(f"\n(the organization starts using {THIRD}: the platform team adds it to the guard's Regions)")
        story.redeploy([HOME, REPLICA, THIRD])
        world.kms(HOME).replicate_key(KeyId=world.key_id, ReplicaRegion=THIRD)
        # Real KMS gives a replica created without a Policy the default key policy; moto copies the primary's.
        world.put_policy(THIRD, DEFAULT_POLICY)

    story.run(
        f"ReplicateKey to {THIRD} without the grant",
        replicate,
        world.event("replicate-key-without-grant", actor=ADMIN_ROLE, new_id=True),
        region=HOME,
        actor=ADMIN_ROLE,
        expect=_expect(
            alerts=["CRITICAL", "RESOLVED"], codes={"ACTION_NOT_GRANTED"}, remediation=["applied"], verdict="compliant"
        ),
    )
    story.run(
        f"ScheduleKeyDeletion of the replica in {THIRD}",
        lambda: world.kms(THIRD).schedule_key_deletion(KeyId=world.key_id, PendingWindowInDays=7),
        world.event("schedule-key-deletion-replica", region=THIRD, actor=ADMIN_ROLE, new_id=True),
        region=THIRD,
        actor=ADMIN_ROLE,
        expect=_expect(
            alerts=["CRITICAL", "RESOLVED"],
            codes={"KEY_PENDING_DELETION"},
            remediation=["applied"],
            verdict="compliant",
        ),
    )

    def reapply() -> None:
        world.put_policy(REPLICA, NO_DECRYPT_POLICY)

    def bad_event() -> dict[str, Any]:
        return world.event("put-key-policy-removes-decrypt", actor=AUTOMATION_ROLE, new_id=True)

    story.run(
        f"Another automation re-applies its old policy in {REPLICA} (the guard's third write there this hour)",
        reapply,
        bad_event(),
        region=REPLICA,
        actor=AUTOMATION_ROLE,
        expect=_expect(alerts=["CRITICAL", "RESOLVED"], remediation=["applied"], verdict="compliant"),
    )
    story.run(
        "The automation re-applies it again: past the limit of 3 writes an hour, remediation is suspended",
        reapply,
        bad_event(),
        region=REPLICA,
        actor=AUTOMATION_ROLE,
        expect=_expect(alerts=["ACTION NEEDED"], remediation=["suspended"], verdict="non-compliant"),
    )
    story.run(
        "And again: nothing new to say, so the guard stays quiet (the hourly reminder will follow)",
        reapply,
        bad_event(),
        region=REPLICA,
        actor=AUTOMATION_ROLE,
        expect=_expect(alerts=[], remediation=["suspended"], verdict="non-compliant"),
    )

    def operator_fix() -> None:
        story.say(
            "\n(the platform team stops the automation and applies the fix the alert gave them: kms-guard fix-policy)"
        )
        plan = plan_restore_statement(world.policy(REPLICA), ROCKSET)
        if plan.policy is None:
            raise DemoError(f"fix-policy could not repair the policy: {plan.description}")
        world.put_policy(REPLICA, plan.policy)

    story.run(
        "The final scheduled check: compliant everywhere",
        operator_fix,
        None,
        region=HOME,
        actor="EventBridge schedule",
        expect=_expect(alerts=["RESOLVED"], remediation=[], verdict="compliant"),
    )
    _tell_second_vendor(story, world)
    story.say(
        f"\nDemo finished: {len(story.steps)} steps, every one as expected; "
        f"final verdict COMPLIANT for {' and '.join(story.keys)}."
    )


def _tell_second_vendor(story: _Story, rockset: SimulatedAccount) -> None:
    """The platform team links a second key to Databricks (managed services); the guard names Databricks, not Rockset.

    Databricks' profile does not say whether the key must be multi-Region; the guard's key ARN must be, so the key is
    a multi-Region key with no replicas, guarded in its home Region only."""
    world = rockset.add_key(policy=DATABRICKS_POLICY, description="Databricks managed services CMK", regions=[HOME])
    story.say(
        f"\n(the platform team links a second key to {DATABRICKS.display_name} (managed services), in {HOME} only:"
        f"\n {world.key_arn}"
        f"\n with the policy `kms-guard statement --vendor {SECOND_VENDOR}` prints. A second deployment of the"
        f"\n guard watches it: the same handlers with this key's ARN and KMS_GUARD_VENDOR={SECOND_VENDOR},"
        "\n the same state table and alert topic)"
    )
    story.deploy_second(world, SECOND_VENDOR, [HOME])
    story.run(
        f"Baseline: the scheduled check finds the {DATABRICKS.display_name} key compliant",
        lambda: None,
        None,
        region=HOME,
        actor="EventBridge schedule",
        expect=_expect(alerts=[], remediation=[], verdict="compliant"),
    )
    story.run(
        f"Someone's PutKeyPolicy in {HOME} leaves {DATABRICKS.display_name} only kms:Encrypt",
        lambda: world.put_policy(HOME, DATABRICKS_NO_DECRYPT_POLICY),
        world.event(
            "put-key-policy-removes-decrypt",
            region=HOME,
            actor=ADMIN_ROLE,
            new_id=True,
            requestParameters={"keyId": world.key_id, "policyName": "default", "policy": DATABRICKS_NO_DECRYPT_POLICY},
        ),
        region=HOME,
        actor=ADMIN_ROLE,
        expect=_expect(
            alerts=["CRITICAL", "RESOLVED"], codes={"ACTION_NOT_GRANTED"}, remediation=["applied"], verdict="compliant"
        ),
    )
