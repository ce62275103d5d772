"""Alert rendering: what the security team receives (pure: report, change and outcomes in; subject, body out).

One message per change of the key's findings (new problem, problem changed, all clear), a reminder while a critical
problem lasts, and a message when remediation is suspended. SNS limits (aws-facts.md): the subject is printable ASCII
under 100 characters; the whole message, attributes included, under 256 KB. Event fields are attacker-controlled
(anyone who can call KMS chooses their session name and user agent), so they are sanitised before they reach a
subject or body.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from kms_guard.core.events import KeyEvent
from kms_guard.core.findings import Code, Finding, KeyReport, RegionReport
from kms_guard.core.profiles import command_flags
from kms_guard.core.remediation import Outcome
from kms_guard.core.vendor import VendorProfile

AlertKind = Literal["problem", "changed", "resolved", "reminder", "suspended"]
ALERT_KINDS: frozenset[str] = frozenset(("problem", "changed", "resolved", "reminder", "suspended"))

MAX_SUBJECT = 99
MAX_BODY_BYTES = 200_000
"""Well under SNS's 256 KB, leaving room for attributes and JSON envelopes of subscribers."""
MAX_FINDINGS_PER_REGION = 20

SUBJECT_PHRASE: dict[Code, str] = {
    Code.KEY_NOT_FOUND: "missing",
    Code.KEY_DISABLED: "disabled",
    Code.KEY_PENDING_DELETION: "scheduled for deletion",
    Code.KEY_UNUSABLE: "unusable",
    Code.KEY_NOT_MULTI_REGION: "not multi-Region",
    Code.KEY_SPEC_INVALID: "wrong key spec",
    Code.KEY_USAGE_INVALID: "wrong key usage",
    Code.ACTION_NOT_GRANTED: "grant missing",
    Code.ACTION_DENIED: "access denied by policy",
    Code.GRANT_CONDITIONAL: "access not provable",
    Code.POLICY_UNREADABLE: "policy unreadable",
    Code.PUBLIC_PRINCIPAL: "public key policy",
    Code.POLICY_INVALID: "invalid key policy",
    Code.VERDICT_DISPUTED: "verdict disputed by Access Analyzer",
    Code.REPLICA_UNWATCHED: "has an unwatched replica",
}

IMPACT: dict[Code, str] = {
    Code.KEY_NOT_FOUND: "{vendor} cannot use the key in this Region: it needs a replica of the key with the grant "
    "there.",
    Code.KEY_DISABLED: "{outage}",
    Code.KEY_PENDING_DELETION: "The key is unusable now: {outage} When the waiting period ends the key, and every "
    "piece of data it protects, is lost for good.",
    Code.KEY_UNUSABLE: "Encryption and decryption fail in this state: {outage}",
    Code.KEY_NOT_MULTI_REGION: "{vendor} needs a multi-Region key; this key cannot be used for it.",
    Code.KEY_SPEC_INVALID: "{vendor} needs a symmetric key; this key cannot be used for it.",
    Code.KEY_USAGE_INVALID: "{vendor} needs an ENCRYPT_DECRYPT key; this key cannot be used for it.",
    Code.ACTION_NOT_GRANTED: "{vendor}'s calls without the grant are denied: {outage}",
    Code.ACTION_DENIED: "An explicit Deny overrides every Allow: {outage}",
    Code.GRANT_CONDITIONAL: "{vendor}'s access depends on a condition the guard cannot verify; if it does not hold: "
    "{outage}",
    Code.POLICY_UNREADABLE: "The guard cannot see this key: it cannot tell whether {vendor} still has access.",
    Code.POLICY_INVALID: "The policy holds something KMS would reject or AWS never matches: {vendor}'s grant cannot "
    "rely on it.",
    Code.PUBLIC_PRINCIPAL: "Not a problem for {vendor}, but anyone may use this key for the actions the statement "
    "lists.",
    Code.REPLICA_UNWATCHED: "The guard reads and evaluates this replica on every check, but no rule forwards its "
    "Region's events: a change to it there is seen by the next scheduled check, not within minutes.",
    Code.VERDICT_DISPUTED: "The guard and IAM Access Analyzer disagree about {vendor}'s access: one of them is wrong. "
    "The guard makes no repair in this Region until they agree.",
}
"""Impact per finding code: `{vendor}` is the vendor's display name, `{outage}` its profile's outage sentence."""


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    subject: str
    body: str
    severity: str
    codes: tuple[str, ...]
    regions: tuple[str, ...]
    key_id: str
    event_name: str

    def attributes(self) -> dict[str, str]:
        """SNS message attributes, for subscription filter policies (values must be non-empty strings)."""
        return {
            "severity": self.severity,
            "key_id": self.key_id,
            "regions": ",".join(self.regions) or "none",
            "codes": ",".join(self.codes) or "none",
            "event_name": self.event_name,
        }

    def to_record(self) -> dict[str, object]:
        """The alert as plain data, to keep it until it is sent (the state's outbox)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, data: Mapping[str, object]) -> Alert:
        def text(name: str) -> str:
            return str(data.get(name, ""))

        def texts(name: str) -> tuple[str, ...]:
            value = data.get(name)
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        kind = text("kind")
        return cls(
            kind=cast(AlertKind, kind if kind in ALERT_KINDS else "changed"),
            subject=clean(text("subject"), MAX_SUBJECT),
            body=text("body")[:MAX_BODY_BYTES],
            severity=text("severity"),
            codes=texts("codes"),
            regions=texts("regions"),
            key_id=text("key_id"),
            event_name=text("event_name"),
        )

    def summary(self) -> dict[str, object]:
        return {"subject": self.subject, "severity": self.severity, "codes": list(self.codes), "kind": self.kind}


def bounded_body(body: str) -> str:
    """An alert body that fits SNS with room to spare (MAX_BODY_BYTES), cut on a character boundary if it must be."""
    if len(body.encode()) <= MAX_BODY_BYTES:
        return body
    return body.encode()[: MAX_BODY_BYTES - 100].decode("utf-8", "ignore") + "\n... (truncated)\n"


def fingerprint(findings: Sequence[Finding]) -> str:
    """Identity of a set of findings: what they are about, not their wording."""
    items = sorted(
        json.dumps([f.code.value, f.region, sorted(f.actions), f.statement], separators=(",", ":")) for f in findings
    )
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:32] if items else "compliant"


def region_fingerprint(report: RegionReport) -> str:
    return fingerprint(report.findings)


_CONTROL = re.compile(r"[^\x20-\x7e]+")


def clean(text: str | None, limit: int = 300) -> str:
    """Printable ASCII, one line, bounded: for anything that came from an event or a policy."""
    if not text:
        return ""
    out = _CONTROL.sub(" ", text).strip()
    return out if len(out) <= limit else out[: limit - 3] + "..."


def vendor_grantee(vendor: VendorProfile) -> str:
    """How the vendor is granted, in one phrase: `account 318212636800`, `role arn:...`, a pinned wildcard."""
    return "; ".join(g.who() for g in vendor.grants())


def subject_for(kind: AlertKind, report: KeyReport, vendor: VendorProfile, key_id: str) -> str:
    name = clean(vendor.display_name, 20)
    if kind == "resolved":
        text = f"[RESOLVED] {name} key {key_id} compliant in all Regions"
    else:
        findings = sorted(report.findings, key=lambda f: (f.severity != "critical", list(Code).index(f.code)))
        top_severity = findings[0].severity if findings else "warning"
        label = {"reminder": "REMINDER", "suspended": "ACTION NEEDED"}.get(
            kind, {"critical": "CRITICAL", "info": "INFO"}.get(top_severity, "WARNING")
        )
        if not findings:
            text = f"[{label}] {name} key {key_id}"
        else:
            top = findings[0]
            regions = list(dict.fromkeys(f.region for f in findings if f.code == top.code and f.region))
            where = f" in {regions[0]}" if regions else ""
            if len(regions) > 1:
                where += f" (+{len(regions) - 1} more)"
            phrase = "remediation suspended" if kind == "suspended" else SUBJECT_PHRASE[top.code]
            text = f"[{label}] {name} key {key_id} {phrase}{where}"
    text = clean(text, 1000)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3] + "..."


def fix_commands(finding: Finding, key_arn: str, home_region: str, vendor: VendorProfile | None = None) -> list[str]:
    region = finding.region or home_region
    flags = command_flags(vendor) if vendor is not None else ""
    arn = key_arn
    get_policy = (
        f"aws kms get-key-policy --region {region} --key-id {arn} --policy-name default --query Policy --output text"
    )
    put_policy = (
        f"aws kms put-key-policy --region {region} --key-id {arn} --policy-name default --policy file://fixed.json"
    )
    code = finding.code
    if code == Code.KEY_DISABLED:
        return [f"aws kms enable-key --region {region} --key-id {arn}"]
    if code == Code.KEY_PENDING_DELETION:
        return [
            f"aws kms cancel-key-deletion --region {region} --key-id {arn}",
            f"aws kms enable-key --region {region} --key-id {arn}",
        ]
    if code in (Code.ACTION_NOT_GRANTED, Code.GRANT_CONDITIONAL) and finding.fixable:
        return [f"{get_policy} | kms-guard fix-policy{flags} - > fixed.json", put_policy]
    if code in (Code.ACTION_NOT_GRANTED, Code.GRANT_CONDITIONAL, Code.POLICY_INVALID):
        # fix-policy would refuse (a Deny that may apply, or what KMS rejects): never advise it then.
        what = f"statement {clean(finding.statement, 80)}" if finding.statement else "the policy"
        return [
            f"{get_policy} > policy.json",
            f"# edit policy.json by hand: correct {what} (kms-guard check-policy policy.json names each problem), then",
            "kms-guard check-policy policy.json && " + put_policy.replace("fixed.json", "policy.json"),
        ]
    if code == Code.ACTION_DENIED:
        return [
            f"{get_policy} > policy.json",
            f"# edit policy.json: change or remove Deny statement {clean(finding.statement, 80)}, then",
            "kms-guard check-policy policy.json && " + put_policy.replace("fixed.json", "policy.json"),
        ]
    if code == Code.KEY_NOT_FOUND:
        primary = arn.replace(f":{region}:", f":{home_region}:")
        return [
            f"kms-guard statement{flags} > statement.json  # add it to the replica's policy",
            f"aws kms replicate-key --region {home_region} --key-id {primary}"
            f" --replica-region {region} --policy file://policy-with-grant.json",
        ]
    if code == Code.POLICY_UNREADABLE:
        return [
            f"{get_policy}  # as a key administrator: does the policy let the guard's role read it?",
            "kms-guard statement --guard-role-arn <guard role ARN>  # the statements the guard needs",
        ]
    if code == Code.VERDICT_DISPUTED:
        return [f"{get_policy} > policy.json", "kms-guard check-policy policy.json --second-opinion  # both answers"]
    if code == Code.KEY_UNUSABLE:
        return [f"aws kms describe-key --region {region} --key-id {arn}  # see the key state and act on it"]
    if code == Code.REPLICA_UNWATCHED:
        match = WATCH_REGIONS.search(finding.message)
        regions = match.group(1) if match else f"<the key's Regions>,{region}"
        listed = ", ".join(f'"{r}"' for r in regions.split(","))
        if match:  # the entry names the key in its own Region: the first of its Regions
            arn = arn.replace(f":{region}:", f":{regions.split(',')[0]}:", 1)
        return [
            f'# cdk.json: in the "keys" entry whose keyArn is {arn}, set "regions": [{listed}]'
            f" (a single-key deployment: -c regions={regions})",
            "cdk deploy --all  # adds the forwarder in the new Region; the guard then hears its events within minutes",
        ]
    return []


WATCH_REGIONS = re.compile(r"set the key's regions to ([a-z0-9,-]+)")
"""How a REPLICA_UNWATCHED message names the Region list that watches the replica (core.replicas writes it)."""


def _worst_severity(findings: Sequence[Finding]) -> str:
    for severity in ("critical", "warning"):
        if any(f.severity == severity for f in findings):
            return severity
    return "info" if findings else "warning"


def render_alert(
    kind: AlertKind,
    report: KeyReport,
    vendor: VendorProfile,
    *,
    event: KeyEvent | None,
    outcomes: Sequence[Outcome] = (),
    previous_codes: Sequence[str] = (),
    note: str | None = None,
) -> Alert:
    key_id = report.key_arn.rsplit("/", 1)[-1]
    home = report.regions[0].region if report.regions else ""
    findings = report.findings
    codes = tuple(sorted({f.code.value for f in findings}))
    regions = tuple(r.region for r in report.regions if r.findings)
    severity = "info" if kind == "resolved" else _worst_severity(findings)
    event_name = clean(event.name, 60) if event else "none"

    lines: list[str] = []
    headline = {
        "problem": "A problem was found with the key",
        "changed": "The key's problems changed",
        "resolved": "All clear: the key is compliant in every Region again",
        "reminder": "Reminder: the key is still not compliant",
        "suspended": "Remediation suspended: the guard stopped repairing this key",
    }[kind]
    lines += [
        f"{headline}.",
        "",
        f"Key: {report.key_arn}",
        f"Vendor: {clean(vendor.display_name, 40)} ({clean(vendor_grantee(vendor), 300)})",
        f"Verdict: {report.verdict.upper()}",
    ]
    if previous_codes and kind != "problem":
        lines.append(f"Before: {', '.join(previous_codes)}")
    if note:
        lines += ["", clean(note, 2000)]

    lines += ["", "STATE BY REGION" if kind == "resolved" else "WHAT IS WRONG"]
    for region_report in report.regions:
        state = region_report.key_state or "n/a"
        lines.append(f"  {region_report.region} (key state {state}): {region_report.verdict.upper()}")
        shown = region_report.findings[:MAX_FINDINGS_PER_REGION]
        for finding in shown:
            lines.append(f"    - [{finding.severity.upper()}] {finding.code.value}: {clean(finding.message, 1500)}")
        if len(region_report.findings) > len(shown):
            lines.append(f"    ... and {len(region_report.findings) - len(shown)} more findings")

    impacts = list(dict.fromkeys(f.code for f in findings))
    if impacts:
        name = clean(vendor.display_name, 40)
        lines += ["", f"IMPACT ON {name.upper()}"]
        outage = clean(vendor.outage_text, 600)
        lines += [f"  {code.value}: {IMPACT[code].format(vendor=name, outage=outage)}" for code in impacts]
        if vendor.recovery:
            lines += [f"  Recovery: {clean(vendor.recovery, 600)}"]

    lines += ["", "WHAT CHANGED"]
    if event is None or event.is_scheduled:
        lines.append("  Found by the scheduled check (no triggering event).")
    else:
        lines.append(f"  {event_name} in {clean(event.region, 30)} at {clean(event.time, 40) or 'unknown time'}")
        if event.actor is not None:
            lines.append(f"  By: {clean(event.actor.display, 400)}")
            if event.actor.source_ip:
                lines.append(f"  From: {clean(event.actor.source_ip, 100)}")
            if event.actor.user_agent:
                lines.append(f"  Using: {clean(event.actor.user_agent, 200)}")
        lines.append(f"  CloudTrail event ID: {clean(event.event_id, 100)}")

    lines += ["", "WHAT THE GUARD DID"]
    if outcomes:
        for outcome in outcomes:
            verified = {True: ", verified", False: ", NOT verified", None: ""}[outcome.verified]
            lines.append(f"  {outcome.region}: {outcome.status}{verified}: {clean(outcome.description, 1500)}")
    else:
        lines.append("  Nothing (alert only).")

    if findings and kind != "resolved":
        lines += ["", "HOW TO FIX"]
        for finding in findings[: 3 * MAX_FINDINGS_PER_REGION]:
            region_arn = report.key_arn.replace(f":{home}:", f":{finding.region or home}:")
            commands = fix_commands(finding, region_arn, home, vendor)
            if commands:
                lines.append(f"  {finding.code.value} in {finding.region}:")
                lines += [f"    {c}" for c in commands]

    body = bounded_body("\n".join(lines) + "\n")
    return Alert(
        kind=kind,
        subject=subject_for(kind, report, vendor, key_id),
        body=body,
        severity=severity,
        codes=codes,
        regions=regions,
        key_id=key_id,
        event_name=event_name or "none",
    )


# --- when to alert (pure) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """What the guard last told the security team about the key (from its state)."""

    fingerprint: str = "compliant"
    codes: tuple[str, ...] = ()
    alerted_at: float | None = None


@dataclass(frozen=True)
class AlertPlan:
    """One alert to send: its kind, the report it is about, and the codes it replaces (for "Before: ...")."""

    kind: AlertKind
    report: KeyReport
    previous_codes: tuple[str, ...]


INFO_CODES = frozenset({Code.REPLICA_UNWATCHED.value})
"""Codes that are information, never a problem: a key with only these is fine (an all-clear is still `resolved`)."""


def _fine(report: KeyReport) -> bool:
    """No finding but information: nothing is wrong with the key."""
    return all(f.severity == "info" for f in report.findings)


def decide_alerts(
    reported: Reported,
    found: KeyReport,
    final: KeyReport,
    *,
    suspended: bool,
    now: float,
    reminder_seconds: float,
) -> list[AlertPlan]:
    """The alerts for one evaluation: `found` is the key as read, `final` the key after any repair.

    - The findings as found differ from what was last reported: `problem` (was fine), `resolved` (is fine now), else
      `changed`; `suspended` instead when remediation hit its rate limit (a tug of war needs a person). "Fine" means
      no finding but information (REPLICA_UNWATCHED): a key with an unwatched replica still gets its all-clear, and
      a new unwatched replica on a fine key is a `problem` of severity info.
    - A repair changed the findings: a second alert about the result (`resolved`, or `changed` if some remain).
    - Nothing changed, but a critical problem lasts: a `reminder` once `reminder_seconds` have passed since the last
      alert (a problem never alerted about counts as alerted at time 0).
    Nothing otherwise: the guard is quiet when nothing changed.
    """
    found_fp, final_fp = fingerprint(found.findings), fingerprint(final.findings)
    plans: list[AlertPlan] = []
    was_fine = reported.fingerprint == "compliant" or set(reported.codes) <= INFO_CODES
    if found_fp != reported.fingerprint:
        kind: AlertKind
        if suspended:
            kind = "suspended"
        elif _fine(found) and (found_fp == "compliant" or not was_fine):
            kind = "resolved"
        elif was_fine:
            kind = "problem"
        else:
            kind = "changed"
        plans.append(AlertPlan(kind, found, reported.codes))
    if final_fp != found_fp:
        found_codes = tuple(sorted({f.code.value for f in found.findings}))
        plans.append(AlertPlan("resolved" if _fine(final) else "changed", final, found_codes))
    elif (
        not plans
        and any(f.severity == "critical" for f in final.findings)
        and now - (reported.alerted_at or 0.0) >= reminder_seconds
    ):
        plans.append(AlertPlan("reminder", final, reported.codes))
    return plans
