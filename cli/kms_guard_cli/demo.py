"""`kms-guard demo`: the real guard, end to end, against an embedded simulated AWS account (moto, in process).

Nothing here is a re-enactment: every CloudTrail event goes through `kms_guard.handlers.kms_event.handler` and the
checks through `kms_guard.handlers.scheduled_check.handler`, configured by the same environment variables the CDK app
sets. The SNS topic has an SQS queue subscribed, so alerts are shown exactly as a subscriber receives them. The opt-in
Security Hub and EventBridge features are on: each step shows the Security Hub findings that changed, and the
`KMS Guard Finding` events a rule on the default bus delivered to another SQS queue. After the Rockset key's story, a
second key is linked to a second vendor (Databricks, managed services) and the platform team moves to one deployment
for both keys: the context `keys` list, validated as the CDK app validates it (`parse_key_list`) and handed to the
functions as the deployed keys file (`KMS_GUARD_KEYS_FILE`, `keys_document`), so the same handlers build one fleet of
per-key guards (`wire_fleet`). A change to the Databricks key then alerts about that key alone, and the scheduled check
evaluates both.

CLI-only (needs moto, a development dependency); never part of the Lambda asset.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from kms_guard.core import profiles
from kms_guard.core.findings import Verdict, worst
from kms_guard.core.repair import guard_statement, plan_restore_statement
from kms_guard.core.vendor import ROCKSET, VendorProfile
from kms_guard.deployment import keys_document, parse_key_list
from kms_guard.settings import ENV_NAMES

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
    keys: list[dict[str, str]] = field(default_factory=list)
    """Every key the step evaluated, in the order configured: key_arn, vendor, verdict_after."""
    routed: list[str] = field(default_factory=list)
    """Every key the deployment handed the event (or the schedule) to, whatever each then decided."""
    untouched: list[str] = field(default_factory=list)
    """With many keys, on an event: the keys it did not concern whose state (their table partition) is unchanged."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "vendor": self.vendor,
            "event": self.event,
            "region": self.region,
            "keys": self.keys,
            "routed": self.routed,
            "untouched": self.untouched,
            "alerts": [
                {"subject": a["subject"], "severity": a["severity"], "codes": a["codes"], "key_id": a["key_id"]}
                for a in self.alerts
            ],
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
    def __init__(self, world: SimulatedAccount, out: TextIO | None, workdir: Path) -> None:
        self.world = world
        self.out = out
        self.workdir = workdir
        self.steps: list[Step] = []
        self.regions = [HOME, REPLICA]
        self.keys: dict[str, str] = {ROCKSET.display_name: world.key_arn}
        self.vendors: dict[str, VendorProfile] = {world.key_arn: ROCKSET}
        self.keys_file: Path | None = None
        """The deployed keys file, once one deployment guards several keys (`deploy_keys`)."""
        self.hub: dict[str, tuple[str, str]] = {}

    def environment(self) -> dict[str, str]:
        """What the CDK app sets: the single-key variables, or (many keys) the shared ones and the keys file."""
        if self.keys_file is not None:
            return self.world.environment(
                [],
                key_arn="",
                vendor="",
                vendor_profile="",
                remediation="",  # per key now, in the keys file: the cold start refuses them beside it
                restore_key_state="",
                security_hub="true",
                finding_events="true",
                keys_file=str(self.keys_file),
            )
        return self.world.environment(
            self.regions,
            remediation="restore-statement",
            restore_key_state="true",
            security_hub="true",
            finding_events="true",
            vendor=profiles.DEFAULT,
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

    def deploy_keys(self, entries: list[dict[str, Any]]) -> None:
        """`cdk deploy` with the context `keys`: validated as the app validates it, written as the deployed keys file
        the functions read at cold start (KMS_GUARD_KEYS_FILE); the table keeps every key's state (keyed by key ID)."""
        from kms_guard.handlers import runtime

        deployment = parse_key_list(entries, label="keys")
        self.keys_file = self.workdir / "keys.json"
        self.keys_file.write_text(keys_document(deployment))
        for settings in deployment.keys:
            self.keys[settings.vendor.display_name] = settings.key_arn
            self.vendors[settings.key_arn] = settings.vendor
        os.environ.update(self.environment())
        runtime.wired.cache_clear()

    def key_state(self, key_arn: str) -> list[dict[str, Any]]:
        """Everything the guard keeps about one key: its partition of the state table."""
        key_id = key_arn.rsplit("/", 1)[-1]
        ddb = self.world.client("dynamodb")
        request = {
            "TableName": self.world.table,
            "KeyConditionExpression": "pk = :key",
            "ExpressionAttributeValues": {":key": {"S": key_id}},
        }
        items: list[dict[str, Any]] = ddb.query(**request)["Items"]
        return items

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
        others = {arn: self.key_state(arn) for arn in self.vendors} if self.keys_file and event else {}
        if event is None:
            result = scheduled_check.handler(
                self.world.event("scheduled-check", new_id=True), _Context("kms-guard-scheduled-check")
            )
            name = "ScheduledCheck"
        else:
            result = kms_event.handler(event, _Context("kms-guard-kms-event"))
            name = event["detail"]["eventName"]
        # One key deployed: that key's result; many: one result per key the event (or the schedule) was handed to,
        # whatever that key's guard then decided (evaluated, or ignored).
        results: list[dict[str, Any]] = result.get("keys", [result])
        evaluated = [r for r in results if r.get("report")]
        keys = [
            {
                "key_arn": str(r["report"]["key_arn"]),
                "vendor": self.vendors[r["report"]["key_arn"]].display_name,
                "verdict_after": str(r["report"]["verdict"]),
            }
            for r in evaluated
        ]
        verdicts = [cast(Verdict, k["verdict_after"]) for k in keys]
        step = Step(title, name, region, actor, " and ".join(k["vendor"] for k in keys))
        step.keys = keys
        step.routed = [str(r["key_arn"]) for r in result["keys"]] if "keys" in result else [k["key_arn"] for k in keys]
        step.untouched = [
            self.vendors[arn].display_name
            for arn, before in others.items()
            if arn not in {k["key_arn"] for k in keys} and self.key_state(arn) == before
        ]
        step.alerts = [{**a, "key_id": a["attributes"].get("key_id", "")} for a in self.world.delivered_alerts()]
        step.security_hub = self.hub_changes()
        step.finding_events = [e["detail"] for e in self.world.delivered_finding_events()]
        step.remediation = [
            {k: v for k, v in o.items() if k in ("region", "status", "writes", "applied", "verified", "description")}
            for r in evaluated
            for o in r.get("remediation", [])
        ]
        step.verdict_after = worst(verdicts) if keys else "unknown"
        step.saw = _saw(evaluated, [k["vendor"] for k in keys] if self.keys_file else [])
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
        if self.keys_file is not None:
            evaluated = ", ".join(f"{k['vendor']} ({k['key_arn'].rsplit('/', 1)[-1]})" for k in step.keys)
            self.say(f"  keys read:  {evaluated or 'none'}")
            if step.untouched:
                self.say(f"  untouched:  the {' and '.join(step.untouched)} key (not read; its state unchanged)")
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
        if self.keys_file is not None:
            self.say("  verdict after: " + ", ".join(f"{k['vendor']} {k['verdict_after'].upper()}" for k in step.keys))
        else:
            self.say(f"  verdict after: {step.verdict_after.upper()}")


def _saw(evaluated: list[dict[str, Any]], vendors: list[str]) -> str:
    """What the guard found before any repair; per key when the deployment has several."""
    said = []
    for result in evaluated:
        codes = result.get("found_codes") or []
        said.append(", ".join(codes) if codes else "compliant in every configured Region")
    if not vendors:
        return "; ".join(said) or "nothing to evaluate"
    return "; ".join(f"{vendor}: {text}" for vendor, text in zip(vendors, said, strict=True))


def _expect(
    *,
    alerts: list[str],
    codes: set[str] | None = None,
    remediation: list[str] | None = None,
    verdict: str,
    keys: list[str] | None = None,
    untouched: list[str] | None = None,
) -> Callable[[Step], str | None]:
    """Alert kinds by subject prefix ("CRITICAL", "RESOLVED", "ACTION NEEDED"), repair statuses, final verdict; with
    many keys, the keys evaluated (in order), the keys left untouched, and that every alert names an evaluated key
    (the only key, when one was evaluated)."""

    def check(step: Step) -> str | None:
        evaluated = [k["key_arn"] for k in step.keys]
        if keys is not None and step.routed != keys:
            return f"expected the event handed to keys {keys} only, it went to {step.routed}"
        if keys is not None and evaluated != keys:
            return f"expected the guard to read keys {keys}, it read {evaluated}"
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
        if untouched is not None and step.untouched != untouched:
            return f"expected the {untouched} key(s) untouched, got {step.untouched}"
        if keys is not None:
            ids = {arn.rsplit("/", 1)[-1] for arn in evaluated}
            stray = [a["subject"] for a in step.alerts if a["key_id"] not in ids or a["key_id"] not in a["subject"]]
            if stray:
                return f"alerts about a key the step did not concern: {stray}"
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
    # Every variable the guard reads is set here, and put back afterwards (an operator's own shell may hold some).
    blank = dict.fromkeys(ENV_NAMES.values(), "")
    with _environment({**quiet, **blank}), mock_aws(), tempfile.TemporaryDirectory(prefix="kms-guard-demo-") as tmp:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        try:
            world = SimulatedAccount.create(policy=COMPLIANT_POLICY)
        except SimulationError as exc:
            raise DemoError(str(exc)) from None
        world.enable_security_hub()
        world.route_finding_events()
        story = _Story(world, out, Path(tmp))
        story.redeploy([HOME, REPLICA])
        _tell(story, world)
        steps = [s.to_dict() for s in story.steps]
        final: dict[str, str] = {}  # each key's verdict after the last step that evaluated it
        for step in story.steps:
            final.update({k["vendor"]: k["verdict_after"] for k in step.keys})
        worst_verdict = worst([cast(Verdict, v) for v in final.values()])
        return {
            "key_arn": world.key_arn,
            "keys": story.keys,
            "steps": steps,
            "final_verdicts": final,
            "final_verdict": worst_verdict,
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
        _fix_policy(world, REPLICA, ROCKSET)

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


def _fix_policy(world: SimulatedAccount, region: str, vendor: VendorProfile) -> None:
    """What the operator does with `kms-guard fix-policy`: the repaired policy put back in that Region."""
    plan = plan_restore_statement(world.policy(region), vendor)
    if plan.policy is None:
        raise DemoError(f"fix-policy could not repair the policy: {plan.description}")
    world.put_policy(region, plan.policy)


def _tell_second_vendor(story: _Story, rockset: SimulatedAccount) -> None:
    """The platform team links a second key to Databricks (managed services) and guards both keys with one deployment:
    a change to one key alerts about that key alone; the scheduled check evaluates both.

    Databricks' profile does not require a multi-Region key; this one is multi-Region with no replicas, guarded in its
    home Region only. Its entry leaves remediation off (the default): the guard alerts, the team repairs."""
    world = rockset.add_key(policy=DATABRICKS_POLICY, description="Databricks managed services CMK", regions=[HOME])
    entries: list[dict[str, Any]] = [
        {
            "keyArn": rockset.key_arn,
            "regions": story.regions,
            "remediation": "restore-statement",
            "restoreKeyState": True,
        },
        {"keyArn": world.key_arn, "vendor": SECOND_VENDOR},
    ]
    story.say(
        f"\n(the platform team links a second key to {DATABRICKS.display_name} (managed services), in {HOME} only,"
        f"\n with the policy `kms-guard statement --vendor {SECOND_VENDOR}` prints, and guards both keys with ONE"
        "\n deployment: the context `keys` lists them, each with its own vendor, Regions and remediation"
        f" ({DATABRICKS.display_name}: alert only);"
        "\n the functions read the list from the deployed keys file, KMS_GUARD_KEYS_FILE)"
    )
    story.deploy_keys(entries)
    both = [rockset.key_arn, world.key_arn]
    story.run(
        "One deployment, two keys: the scheduled check evaluates both",
        lambda: None,
        None,
        region=HOME,
        actor="EventBridge schedule",
        expect=_expect(alerts=[], remediation=[], verdict="compliant", keys=both),
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
            alerts=["CRITICAL"],
            codes={"ACTION_NOT_GRANTED"},
            remediation=[],
            verdict="non-compliant",
            keys=[world.key_arn],
            untouched=[ROCKSET.display_name],
        ),
    )

    def operator_fix() -> None:
        story.say(f"\n(the platform team applies `kms-guard fix-policy --vendor {SECOND_VENDOR}` to the {HOME} policy)")
        _fix_policy(world, HOME, DATABRICKS)

    story.run(
        "The next scheduled check evaluates both keys: the Databricks key is compliant again",
        operator_fix,
        None,
        region=HOME,
        actor="EventBridge schedule",
        expect=_expect(alerts=["RESOLVED"], remediation=[], verdict="compliant", keys=both),
    )
