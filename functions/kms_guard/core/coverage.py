"""Coverage: can the guard see changes to the key as they happen, in every watched Region? (pure, plain data in)

The guard reacts to KMS changes through CloudTrail -> EventBridge (aws-facts.md, "Does the guard see the events?").
Events reach a Region's default bus only while a trail that applies to that Region (one homed there, or a multi-Region
or organization trail, which DescribeTrails lists as a shadow trail) is logging and records management *write* events
from `kms.amazonaws.com`; and they reach the guard only through its own rules (home Region) or forwarder rules (every
other Region), which must exist and be enabled. Without all of that, only the scheduled check sees changes there.

Coverage is reported apart from the key's verdict (design.md): a blind Region does not make the key non-compliant, and
the exit code of `kms-guard check` changes only with `--strict-coverage`. Every coverage finding is a warning.

Codes (stable strings, design.md): `TRAIL_MISSING`, `TRAIL_NOT_LOGGING`, `KMS_EVENTS_EXCLUDED`, `GUARD_RULE_MISSING`,
`EVENT_PATH_SILENT` (the opt-in canary did not come back in time), and `COVERAGE_UNREADABLE`: the guard could not
read the trails or rules of a Region (access denied, throttled). Like `POLICY_UNREADABLE` for the key, it is never
"ok": a Region the guard cannot read is reported `unknown`, and counts as blind in the verdict.

How event selectors are read (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-management-events-with-cloudtrail.html,
.../filtering-data-events.html#filtering-management-events):
- No selectors at all: CloudTrail's default, all management events (read and write). (A trail always has at least
  one selector once any was put; an empty answer is a trail never given any.)
- Basic selectors (`EventSelectors`, ORed): one with `IncludeManagementEvents` (default true), `ReadWriteType` `All` or
  `WriteOnly` (default `All`), and `kms.amazonaws.com` not in `ExcludeManagementEventSources`, records our events.
- Advanced selectors (ORed; their field selectors ANDed): one with `eventCategory` Equals `Management` whose other
  conditions admit a KMS write event: `readOnly` must admit `false`, `eventSource` must admit `kms.amazonaws.com`.
  Any other field or operator on a management selector is one the guard cannot decide: not proven, so reported
  (fail closed, as the policy evaluator treats an unknown condition).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kms_guard.core.alerts import MAX_SUBJECT, Alert, bounded_body, clean

KMS_SOURCE = "kms.amazonaws.com"
RULE_NAMES = ("kms-guard-kms-api-calls", "kms-guard-kms-events")
"""The guard's EventBridge rules, by name, the same in every watched Region: the home Region's rules deliver to the
function, the other Regions' forward to the home bus. The CDK app names them with these, and passes them to the
function (`KMS_GUARD_RULE_NAMES`), so the names cannot drift."""
MAX_TRAILS = 50
"""Trails considered per Region (CloudTrail allows 5 per Region per account, plus organization trails)."""

CANARY_ALIAS = "alias/kms-guard-canary"
CANARY_ROLE_NAME = "kms-guard-canary"
"""The canary function's role: a fixed name, so every Region's rule can match its events without a cross-Region
reference, and the guard can recognise them."""
CANARY_EVENT = "TagResource"
CANARY_TAG_KEY = "kms-guard-canary"
CANARY_TAG_VALUE = "event-path-check"
"""The canary's write: TagResource on the guard's own canary key, always with this same tag and value. CloudTrail
logs every call as a management write event; the key's tags stay exactly as they were."""


class CoverageCode(enum.StrEnum):
    TRAIL_MISSING = "TRAIL_MISSING"
    TRAIL_NOT_LOGGING = "TRAIL_NOT_LOGGING"
    KMS_EVENTS_EXCLUDED = "KMS_EVENTS_EXCLUDED"
    GUARD_RULE_MISSING = "GUARD_RULE_MISSING"
    EVENT_PATH_SILENT = "EVENT_PATH_SILENT"
    COVERAGE_UNREADABLE = "COVERAGE_UNREADABLE"


RegionStatus = Literal["ok", "blind", "unknown"]
CoverageVerdict = Literal["ok", "blind"]


# --- what the adapter observed -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trail:
    """One trail as DescribeTrails (shadow trails included) lists it in a Region, with its status and selectors."""

    arn: str
    name: str
    home_region: str
    multi_region: bool = False
    organization: bool = False
    logging: bool | None = None
    """GetTrailStatus IsLogging; None when it could not be read (`status_error`)."""
    status_error: str | None = None
    event_selectors: tuple[Mapping[str, Any], ...] = ()
    advanced_selectors: tuple[Mapping[str, Any], ...] = ()
    selectors_error: str | None = None

    def applies_to(self, region: str) -> bool:
        return self.multi_region or self.home_region == region


@dataclass(frozen=True)
class Rule:
    name: str
    state: str | None
    """DescribeRule State (ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS); None: no such rule."""
    error: str | None = None
    targets: int | None = None
    """How many targets the rule has (ListTargetsByRule); None: not asked. An enabled rule without one delivers
    nothing."""


@dataclass(frozen=True)
class RegionSight:
    """What the guard could read about its sight in one Region."""

    region: str
    trails: tuple[Trail, ...] = ()
    trails_error: str | None = None
    truncated: bool = False
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class CanaryClock:
    """The opt-in canary: when each Region's last canary event arrived, and how old it may be."""

    since: float
    """When the guard first expected canaries (a Region with none yet is silent only once `max_age` has passed)."""
    arrivals: Mapping[str, float]
    max_age: float
    now: float


# --- findings and reports -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageFinding:
    code: CoverageCode
    region: str
    message: str
    subject: str | None = None
    """What the finding is about: a trail ARN or a rule name (part of the fingerprint; the message is not)."""
    fix: tuple[str, ...] = ()
    severity: Literal["warning"] = "warning"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code.value,
            "severity": self.severity,
            "region": self.region,
            "message": self.message,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        if self.fix:
            out["fix"] = list(self.fix)
        return out


@dataclass(frozen=True)
class RegionCoverage:
    region: str
    findings: tuple[CoverageFinding, ...] = ()

    @property
    def status(self) -> RegionStatus:
        if not self.findings:
            return "ok"
        if all(f.code == CoverageCode.COVERAGE_UNREADABLE for f in self.findings):
            return "unknown"
        return "blind"

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "status": self.status, "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class CoverageReport:
    regions: tuple[RegionCoverage, ...]

    @property
    def verdict(self) -> CoverageVerdict:
        """`ok` only when every Region is proven covered; an unknown Region is never ok."""
        return "ok" if all(r.status == "ok" for r in self.regions) else "blind"

    @property
    def findings(self) -> tuple[CoverageFinding, ...]:
        return tuple(f for r in self.regions for f in r.findings)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({f.code.value for f in self.findings}))

    def fingerprint(self) -> str:
        """Identity of what is wrong (codes, Regions, subjects), not its wording: "ok" when nothing is."""
        items = sorted(json.dumps([f.code.value, f.region, f.subject]) for f in self.findings)
        return hashlib.sha256("\n".join(items).encode()).hexdigest()[:32] if items else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "regions": [r.to_dict() for r in self.regions]}


# --- deciding -------------------------------------------------------------------------------------------------------


def records_kms_writes(trail: Trail) -> tuple[bool, str]:
    """Whether the trail's selectors record management write events from KMS; if not, why (one phrase)."""
    if trail.advanced_selectors:
        return _advanced_records(trail.advanced_selectors)
    if not trail.event_selectors:
        return True, "no selectors: CloudTrail's default, all management events"
    reasons: list[str] = []
    for selector in trail.event_selectors:
        if not selector.get("IncludeManagementEvents", True):
            reasons.append("records no management events")
            continue
        kind = str(selector.get("ReadWriteType") or "All")
        if kind not in ("All", "WriteOnly"):
            reasons.append(f"records only {kind} management events")
            continue
        excluded = selector.get("ExcludeManagementEventSources") or []
        if KMS_SOURCE in excluded:
            reasons.append(f"excludes {KMS_SOURCE} (ExcludeManagementEventSources)")
            continue
        return True, "records management write events"
    return False, "; ".join(dict.fromkeys(reasons)) or "records no management events"


def _advanced_records(selectors: Sequence[Mapping[str, Any]]) -> tuple[bool, str]:
    reasons: list[str] = []
    for selector in selectors:
        fields = [f for f in selector.get("FieldSelectors") or [] if isinstance(f, Mapping)]
        category = next((f for f in fields if f.get("Field") == "eventCategory"), None)
        if category is None or "Management" not in (category.get("Equals") or []):
            continue  # a data, network activity or other selector: not about management events
        name = str(selector.get("Name") or "unnamed")
        verdict = _management_selector(fields)
        if verdict is None:
            return True, f"advanced selector {name!r} records KMS management write events"
        reasons.append(f"advanced selector {name!r} {verdict}")
    return False, "; ".join(reasons) or "no advanced selector records management events"


_OPERATORS = ("Equals", "NotEquals", "StartsWith", "NotStartsWith", "EndsWith", "NotEndsWith")


def _management_selector(fields: Sequence[Mapping[str, Any]]) -> str | None:
    """None when every condition admits a KMS write event; else what stops it (or what the guard cannot decide)."""
    wanted = {"readOnly": "false", "eventSource": KMS_SOURCE}
    for field_selector in fields:
        name = str(field_selector.get("Field"))
        if name == "eventCategory":
            continue
        operators = [op for op in _OPERATORS if field_selector.get(op)]
        if name not in wanted or any(op not in ("Equals", "NotEquals") for op in operators):
            described = ", ".join(operators) or "no operator"
            return f"filters on {name} ({described}), which the guard cannot decide: not proven to record KMS writes"
        value = wanted[name]
        equals = [str(v) for v in field_selector.get("Equals") or []]
        not_equals = [str(v) for v in field_selector.get("NotEquals") or []]
        if (equals and value not in equals) or value in not_equals:
            return (
                "records only read-only management events"
                if name == "readOnly"
                else f"excludes {KMS_SOURCE} (eventSource {'NotEquals' if value in not_equals else 'Equals'})"
            )
    return None


def assess_region(
    sight: RegionSight,
    *,
    home_region: str,
    rule_names: Sequence[str],
    canary: CanaryClock | None = None,
) -> RegionCoverage:
    region = sight.region
    findings: list[CoverageFinding] = []
    findings += _trail_findings(sight, home_region)
    expected = {r.name: r for r in sight.rules}
    for name in rule_names:
        rule = expected.get(name)
        where = "rule" if region == home_region else "forwarder rule"
        if rule is None or rule.error:
            findings.append(
                CoverageFinding(
                    CoverageCode.COVERAGE_UNREADABLE,
                    region,
                    f"could not read the guard's {where} {name} in {region}: {rule.error if rule else 'not asked'}",
                    name,
                    (f"# let the guard's role call events:DescribeRule on rule/{name} in {region}",),
                )
            )
        elif rule.state is not None and rule.state.startswith("ENABLED") and rule.targets == 0:
            findings.append(
                CoverageFinding(
                    CoverageCode.GUARD_RULE_MISSING,
                    region,
                    f"the guard's {where} {name} in {region} is enabled but has no target: KMS events there reach "
                    "nothing",
                    name,
                    (
                        f"# redeploy kms-guard (npx cdk deploy --all, same context): it puts back the target of its "
                        f"{where} {name} in {region}",
                    ),
                )
            )
        elif rule.state is None or not rule.state.startswith("ENABLED"):
            missing = rule.state is None
            findings.append(
                CoverageFinding(
                    CoverageCode.GUARD_RULE_MISSING,
                    region,
                    f"the guard's {where} {name} in {region} is "
                    + ("missing" if rule.state is None else rule.state.lower())
                    + ": KMS events there do not reach the guard",
                    name,
                    (
                        f"# redeploy kms-guard (npx cdk deploy --all, same context): its {where} {name} in {region} "
                        "is missing",
                    )
                    if missing
                    else (f"aws events enable-rule --region {region} --name {name}",),
                )
            )
    if canary is not None:
        findings += _canary_findings(region, canary)
    return RegionCoverage(region, tuple(findings))


def _trail_findings(sight: RegionSight, home_region: str) -> list[CoverageFinding]:
    region = sight.region
    if sight.trails_error:
        return [
            CoverageFinding(
                CoverageCode.COVERAGE_UNREADABLE,
                region,
                f"could not list the trails of {region} (DescribeTrails): {sight.trails_error}",
                "trails",
                (f"# let the guard's role call cloudtrail:DescribeTrails in {region}",),
            )
        ]
    applicable = [t for t in sight.trails if t.applies_to(region)]
    if not applicable and not sight.truncated:
        return [
            CoverageFinding(
                CoverageCode.TRAIL_MISSING,
                region,
                f"no CloudTrail trail applies to {region} (none homed there, no multi-Region or organization trail): "
                "KMS changes there reach no EventBridge rule",
                None,
                (
                    f"aws cloudtrail create-trail --region {home_region} --name kms-guard-trail "
                    "--s3-bucket-name <a bucket whose policy lets CloudTrail write> --is-multi-region-trail",
                    f"aws cloudtrail start-logging --region {home_region} --name kms-guard-trail",
                ),
            )
        ]
    findings: list[CoverageFinding] = []
    for trail in applicable:
        found = _trail_finding(trail, region)
        if found is None:
            return []  # one trail that records our events is enough
        findings.append(found)
    if sight.truncated:
        findings.append(
            CoverageFinding(
                CoverageCode.COVERAGE_UNREADABLE,
                region,
                f"{region} lists more than {MAX_TRAILS} trails; the guard read the first {MAX_TRAILS} and none of "
                "them records KMS write events",
                "trails",
            )
        )
    return findings


def _trail_finding(trail: Trail, region: str) -> CoverageFinding | None:
    """None when the trail is logging and records KMS management write events in `region`."""
    what = f"trail {trail.name} ({'organization, ' if trail.organization else ''}home {trail.home_region})"
    if trail.logging is False:
        return CoverageFinding(
            CoverageCode.TRAIL_NOT_LOGGING,
            region,
            f"{what} applies to {region} but is not logging",
            trail.arn,
            (f"aws cloudtrail start-logging --region {trail.home_region} --name {trail.arn}",),
        )
    if trail.selectors_error is None:
        records, why = records_kms_writes(trail)
        if not records:
            return CoverageFinding(
                CoverageCode.KMS_EVENTS_EXCLUDED,
                region,
                f"{what} does not record KMS management write events: it {why}",
                trail.arn,
                (
                    f"aws cloudtrail get-event-selectors --region {trail.home_region} --trail-name {trail.arn}",
                    "# put-event-selectors replaces every selector: keep the data-event ones in the list",
                    f"aws cloudtrail put-event-selectors --region {trail.home_region} --trail-name {trail.arn} "
                    '--event-selectors \'[{"ReadWriteType": "All", "IncludeManagementEvents": true}]\'',
                ),
            )
        if trail.logging:
            return None
    errors = [e for e in (trail.status_error, trail.selectors_error) if e]
    return CoverageFinding(
        CoverageCode.COVERAGE_UNREADABLE,
        region,
        f"could not tell whether {what} records KMS write events in {region}: {'; '.join(errors)}",
        trail.arn,
        (
            "# let the guard's role call cloudtrail:GetTrailStatus and cloudtrail:GetEventSelectors on the trail "
            "(an organization trail's member account may not be allowed to: check it from the management account)",
        ),
    )


def _canary_findings(region: str, canary: CanaryClock) -> list[CoverageFinding]:
    last = canary.arrivals.get(region)
    waited = canary.now - (last if last is not None else canary.since)
    if waited <= canary.max_age:
        return []
    minutes = int(waited // 60)
    limit = int(canary.max_age // 60)
    message = (
        f"no canary event has arrived from {region} in {minutes} minutes (allowed {limit}): somewhere between "
        "CloudTrail, EventBridge, the forwarder and the guard, events from this Region are being lost"
        if last is not None
        else f"no canary event has arrived from {region} since canaries were expected ({minutes} minutes; allowed "
        f"{limit})"
    )
    return [
        CoverageFinding(
            CoverageCode.EVENT_PATH_SILENT,
            region,
            message,
            "canary",
            (
                f"aws cloudtrail lookup-events --region {region} --max-results 5 "
                f"--lookup-attributes AttributeKey=EventName,AttributeValue={CANARY_EVENT}  # did CloudTrail log it?",
                f"aws events describe-rule --region {region} --name {RULE_NAMES[0]}  # is the rule there and enabled?",
                "# then the forwarder's and the guard's dead-letter queues and the canary function's logs",
            ),
        )
    ]


def assess_coverage(
    sights: Sequence[RegionSight],
    *,
    home_region: str,
    rule_names: Sequence[str],
    canary: CanaryClock | None = None,
) -> CoverageReport:
    return CoverageReport(
        tuple(assess_region(s, home_region=home_region, rule_names=rule_names, canary=canary) for s in sights)
    )


# --- canary events ------------------------------------------------------------------------------------------------


def canary_region(event: Any, canary_role_arn: str | None) -> str | None:
    """The Region a canary event was logged in, or None when `event` is not one of the guard's canaries.

    A canary is a successful `TagResource` logged by CloudTrail, called by the canary role, setting the canary tag.
    It is recognised before the event parser sees it, so it can never be taken for a change to the guarded key.
    """
    if not canary_role_arn or not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    if event.get("source") != "aws.kms" or not isinstance(detail, Mapping):
        return None
    if detail.get("eventName") != CANARY_EVENT or detail.get("errorCode"):
        return None
    identity = detail.get("userIdentity")
    context = identity.get("sessionContext") if isinstance(identity, Mapping) else None
    issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
    if not isinstance(issuer, Mapping) or issuer.get("arn") != canary_role_arn:
        return None
    request = detail.get("requestParameters")
    tags = request.get("tags") if isinstance(request, Mapping) else None
    if not isinstance(tags, list) or not any(
        isinstance(t, Mapping) and t.get("tagKey") == CANARY_TAG_KEY for t in tags
    ):
        return None
    region = detail.get("awsRegion") or event.get("region")
    return region[:32] if isinstance(region, str) and region else None


# --- alerting -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageChange:
    kind: Literal["problem", "changed", "resolved"]
    previous_codes: tuple[str, ...] = field(default_factory=tuple)


def decide_coverage_alert(previous_fingerprint: str | None, report: CoverageReport) -> CoverageChange | None:
    """Alert on a change of coverage only: nothing reported before counts as "ok"."""
    before = previous_fingerprint or "ok"
    now = report.fingerprint()
    if now == before:
        return None
    if before == "ok":
        return CoverageChange("problem")
    if now == "ok":
        return CoverageChange("resolved")
    return CoverageChange("changed")


_SUBJECT_PHRASE = {
    CoverageCode.TRAIL_MISSING: "no trail",
    CoverageCode.TRAIL_NOT_LOGGING: "trail not logging",
    CoverageCode.KMS_EVENTS_EXCLUDED: "trail skips KMS events",
    CoverageCode.GUARD_RULE_MISSING: "guard rule missing",
    CoverageCode.EVENT_PATH_SILENT: "events not arriving",
    CoverageCode.COVERAGE_UNREADABLE: "coverage unreadable",
}


def render_coverage_alert(
    change: CoverageChange,
    report: CoverageReport,
    *,
    key_arn: str,
    vendor_name: str,
    check_minutes: int,
    key_count: int = 1,
) -> Alert:
    """A warning (an all-clear is info): the key is fine, but changes in these Regions are seen only by the
    scheduled check. Its own subject (`[COVERAGE]`), so subscribers can tell it from an alert about the key. A
    deployment of many keys has one sight for all (`key_count` keys): the alert names the deployment, not a key."""
    key_id = key_arn.rsplit("/", 1)[-1]
    vendor = clean(vendor_name, 40)
    who = f"{clean(vendor_name, 20)} key {key_id}" if key_count <= 1 else f"kms-guard ({key_count} keys)"
    blind = [r for r in report.regions if r.status != "ok"]
    if change.kind == "resolved":
        subject = f"[COVERAGE OK] {who}: the guard sees every Region again"
    else:
        top = min(report.findings, key=lambda f: list(CoverageCode).index(f.code))
        where = blind[0].region + (f" (+{len(blind) - 1} more)" if len(blind) > 1 else "")
        subject = f"[COVERAGE] {who} {_SUBJECT_PHRASE[top.code]} in {where}"
    subject = clean(subject, 1000)
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 3] + "..."
    lines = [
        {
            "problem": "The guard cannot see changes to the key as they happen in some Regions.",
            "changed": "What the guard cannot see changed.",
            "resolved": "All clear: the guard sees KMS changes in every watched Region again.",
        }[change.kind],
        "",
        *(
            [f"Key: {key_arn}", f"Vendor: {vendor}"]
            if key_count <= 1
            else [f"Keys: the {key_count} keys this deployment guards (their Regions, together)"]
        ),
        f"Coverage: {report.verdict.upper()}",
    ]
    if change.previous_codes and change.kind != "problem":
        lines.append(f"Before: {', '.join(change.previous_codes)}")
    lines += ["", "COVERAGE BY REGION"]
    for region in report.regions:
        lines.append(f"  {region.region}: {region.status.upper()}")
        lines += [f"    - [WARNING] {f.code.value}: {clean(f.message, 1500)}" for f in region.findings]
    if change.kind != "resolved":
        regions = ", ".join(r.region for r in blind)
        lines += [
            "",
            "IMPACT",
            f"  The key itself is not affected, and its verdict is unchanged. But a change to it in {regions} (a "
            f"disabled replica, a policy edit that drops {vendor}'s grant) reaches the guard only through the "
            f"scheduled check, every {check_minutes} minutes, instead of within seconds; a repair waits as long.",
            "",
            "HOW TO FIX",
        ]
        for finding in report.findings:
            if finding.fix:
                lines.append(f"  {finding.code.value} in {finding.region}:")
                lines += [f"    {command}" for command in finding.fix]
    return Alert(
        kind=change.kind,
        subject=subject,
        body=bounded_body("\n".join(lines) + "\n"),
        severity="info" if change.kind == "resolved" else "warning",
        codes=report.codes,
        regions=tuple(r.region for r in blind),
        key_id=key_id,
        event_name="ScheduledCheck",
    )
