"""The use case: an event in; the live key re-read and evaluated, alerts and (opt-in) repairs out.

The event is a trigger, never the truth: whatever it says, the guard re-reads the key in every configured Region and
evaluates the whole key, so late, duplicated or reordered events cannot mislead it. Events for other keys, failed calls
and malformed events are dropped by `parse_event` before any AWS call.

Order of work, chosen so that nothing is lost when a call fails half-way, and so that the AWS round trips overlap:
1. start reading the key in every Region (side-effect free) while claiming the CloudTrail event ID (a lease; a
   duplicate delivery is ignored and its reads discarded) and loading the guard's state;
2. evaluate; record compliant policies as `revert` baselines;
3. repair where allowed (remediation rules of design.md), verify by reading back;
4. publish alerts for any change of findings (or a reminder), then record what was reported (only when it changed).
Opt-in (design.md, "Findings outside SNS"): after the read, a second opinion per Region from a policy reasoner (a
disagreement is VERDICT_DISPUTED and holds that Region's repairs; a policy about to be written must pass it too);
with the alerts, the change is handed to finding sinks (Security Hub, EventBridge), which never fail an evaluation.
The scheduled check also checks the guard's own sight (core.coverage: trails and the guard's rules in every Region,
read alongside the key) and alerts when it changes; events never pay for that. Canary events (opt-in) are recognised
before anything else, recorded as the arrival of that Region's canary, and never taken for a change to the key.
Any exception releases the claim and propagates: Lambda retries, then the dead-letter queue keeps the event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from kms_guard.core.alerts import Alert, Reported, decide_alerts, fingerprint, region_fingerprint, render_alert
from kms_guard.core.arns import KeyArn
from kms_guard.core.asff import remember_first_seen
from kms_guard.core.compliance import RegionObservation, assess_key, assess_region
from kms_guard.core.coverage import (
    CanaryClock,
    CoverageChange,
    CoverageReport,
    RegionSight,
    assess_coverage,
    canary_region,
    decide_coverage_alert,
    render_coverage_alert,
)
from kms_guard.core.events import Ignored, KeyEvent, parse_event, scheduled_event
from kms_guard.core.findings import Code, KeyReport, RegionReport
from kms_guard.core.remediation import Outcome, RegionPlan, plan_region
from kms_guard.core.replicas import actual_regions, mark_unwatched, unwatched_regions
from kms_guard.core.second_opinion import Opinion, agrees, dispute, guard_view, reference_policy
from kms_guard.core.vendor import VendorProfile
from kms_guard.settings import Settings

T = TypeVar("T")

EXPLAINED_BY: dict[str, frozenset[Code]] = {
    "PutKeyPolicy": frozenset(
        {Code.ACTION_NOT_GRANTED, Code.ACTION_DENIED, Code.GRANT_CONDITIONAL, Code.POLICY_INVALID}
    ),
    "DisableKey": frozenset({Code.KEY_DISABLED}),
    "CancelKeyDeletion": frozenset({Code.KEY_DISABLED}),
    "ScheduleKeyDeletion": frozenset({Code.KEY_PENDING_DELETION}),
    "ReplicateKey": frozenset({Code.ACTION_NOT_GRANTED, Code.ACTION_DENIED, Code.GRANT_CONDITIONAL}),
}
"""The findings a change of each kind can cause in its Region: an exempt actor's change exempts only these."""
VERIFY_ATTEMPTS = 6
MAX_OUTBOX = 20
"""At most this many kept alerts are sent by one invocation (an evaluation makes at most two)."""
VERIFY_FIRST_DELAY = 0.5

# --- the ports: what the use case needs, implemented by the adapters (kms_guard.aws, kms_guard.memory) ----------

EVENT_LEASE_SECONDS = 180
"""How long a claim makes further deliveries duplicates: longer than the function's 2-minute timeout, shorter than
Lambda's second asynchronous retry, so a retry after a crash is not mistaken for a duplicate."""
WRITE_WINDOW_SECONDS = 3600
"""The window of the write rate limit (at most N writes per key per Region per hour)."""


class KeyReader(Protocol):
    """Reads the key; never raises: a Region that cannot be read is an observation with `error` (POLICY_UNREADABLE)."""

    def read(self, region: str, key_arn: str) -> RegionObservation: ...
    def read_all(self, key_arns: dict[str, str]) -> list[RegionObservation]: ...


class WriteFailed(Exception):
    """A write the key writer could not make; the message is AWS's reason in one line."""


class KeyWriter(Protocol):
    """Writes to the key; raises WriteFailed. Never bypasses the policy lockout safety check."""

    def put_key_policy(self, region: str, key_arn: str, policy: str) -> None: ...
    def enable_key(self, region: str, key_arn: str) -> None: ...
    def cancel_key_deletion(self, region: str, key_arn: str) -> None: ...


@dataclass
class KeyRecord:
    fingerprint: str | None = None
    """Fingerprint of the findings last reported; None when nothing was ever reported."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    alerted_at: float | None = None
    baselines: dict[str, str] = field(default_factory=dict)
    holds: dict[str, str] = field(default_factory=dict)
    """Region -> fingerprint of its findings when a trusted principal (or the guard) made them: do not repair."""
    coverage: str | None = None
    """Fingerprint of the coverage last reported (core.coverage); None when never checked."""
    coverage_codes: tuple[str, ...] = ()
    canary_since: float | None = None
    """When the scheduled check first expected canaries (the canary is opt-in)."""
    canary_arrivals: dict[str, float] = field(default_factory=dict)
    """Region -> when its last canary event reached the guard."""
    coverage_checked_at: float | None = None
    """When the scheduled check last read the guard's sight (it does so every `coverage_every_minutes`)."""
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Alerts an invocation decided to send but may not have sent (it failed half-way): (reference, alert record)."""


class StateStore(Protocol):
    """The guard's memory of one key. `claim_event` is a lease of EVENT_LEASE_SECONDS (False: a duplicate delivery);
    `take_write_slot` takes `count` writes at once, or none: False when that would make more than `limit` in the
    last WRITE_WINDOW_SECONDS."""

    def claim_event(self, event_id: str, now: float) -> bool: ...
    def release_event(self, event_id: str) -> None: ...
    def load(self) -> KeyRecord: ...
    def save_report(self, fingerprint: str, findings: list[dict[str, Any]], alerted_at: float | None) -> None: ...
    def save_baseline(self, region: str, policy: str, now: float) -> None: ...
    def set_hold(self, region: str, fingerprint: str | None) -> None: ...
    def take_write_slot(self, region: str, now: float, limit: int, count: int = 1) -> bool: ...
    def log_remediation(self, region: str, now: float, entry: dict[str, Any]) -> None: ...
    def save_coverage(
        self, fingerprint: str, codes: tuple[str, ...], canary_since: float | None, checked_at: float
    ) -> None: ...
    def queue_alerts(self, alerts: list[dict[str, Any]], now: float) -> list[str]: ...
    def alert_sent(self, reference: str) -> None: ...
    def record_canary(self, region: str, now: float) -> None: ...


class CoverageReader(Protocol):
    """Reads the guard's sight per Region (trails, the guard's rules); never raises: what it cannot read is an error
    in the sight (COVERAGE_UNREADABLE, never ok)."""

    def read(self, regions: Sequence[str], rule_names: Sequence[str]) -> list[RegionSight]: ...


class Notifier(Protocol):
    def publish(self, alert: Alert) -> None: ...


class Identity(Protocol):
    """Who the guard runs as: its own principal ARNs (empty when unknown; never raises)."""

    def own_principals(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class FindingUpdate:
    """One evaluation's findings for a finding sink: what was last reported (the state's copies, with `first_seen`),
    the key as found and after any repair. Each sink derives what changed (kms_guard.core.asff, .finding_events)."""

    key: KeyArn
    vendor: VendorProfile
    previous: tuple[dict[str, Any], ...]
    previous_fingerprint: str
    found: KeyReport
    final: KeyReport
    now: float


class FindingSink(Protocol):
    """Somewhere else findings go (Security Hub, EventBridge). Never raises: a sink that cannot deliver logs one
    warning, and the evaluation (alerts, state) goes on."""

    def publish(self, update: FindingUpdate) -> None: ...


class PolicyReasoner(Protocol):
    """A second, independent judge (IAM Access Analyzer CheckNoNewAccess): does `existing_policy` already grant all
    that `new_policy` grants? Never raises: an answer that could not be had is an ERROR opinion."""

    def check_no_new_access(self, region: str, existing_policy: str, new_policy: str) -> Opinion: ...


class NoIdentity:
    """The guard's identity unknown: no change is taken for its own (its repairs only restore the grant, so a
    change of its own never leaves anything to repair anyway)."""

    def own_principals(self) -> frozenset[str]:
        return frozenset()


@dataclass
class Result:
    decision: Literal["ignored", "evaluated"]
    reason: str | None = None
    event: KeyEvent | None = None
    report: KeyReport | None = None
    """The key after any repair (what the verdict and exit code are about)."""
    alerts: list[Alert] = field(default_factory=list)
    remediation: list[Outcome] = field(default_factory=list)
    found: KeyReport | None = None
    """The key as first read, before any repair."""
    opinions: dict[str, Opinion] = field(default_factory=dict)
    """Region -> the second opinion on the key as found (opt-in; empty when off)."""
    coverage: CoverageReport | None = None
    """The guard's sight (scheduled check only); apart from the key's verdict."""
    canary_region: str | None = None
    """A canary event: the Region whose event path it proved."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision": self.decision}
        if self.reason:
            out["reason"] = self.reason
        if self.event is not None:
            out["event"] = {"name": self.event.name, "id": self.event.event_id, "region": self.event.region}
        out["report"] = self.report.to_dict() if self.report else None
        if self.found is not None:
            out["found_codes"] = sorted({f.code.value for f in self.found.findings})
        out["alerts"] = [a.summary() for a in self.alerts]
        out["remediation"] = [o.to_dict() for o in self.remediation]
        if self.opinions:
            out["second_opinion"] = second_opinion_dicts(self.found or self.report, self.opinions)
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_dict()
        if self.canary_region is not None:
            out["canary"] = {"region": self.canary_region}
        return out


def second_opinion_dicts(report: KeyReport | None, opinions: Mapping[str, Opinion]) -> list[dict[str, Any]]:
    """The second opinion per Region, for JSON output: AWS's answer and whether it agrees with the guard's."""
    out = []
    for region, opinion in opinions.items():
        region_report = report.region(region) if report else None
        view = guard_view(region_report) if region_report else None
        out.append({"region": region, **opinion.to_dict(), "agrees": agrees(view, opinion) if view else None})
    return out


class Guard:
    def __init__(
        self,
        settings: Settings,
        reader: KeyReader,
        writer: KeyWriter,
        state: StateStore,
        notifier: Notifier,
        *,
        identity: Identity | None = None,
        sinks: Sequence[FindingSink] = (),
        reasoner: PolicyReasoner | None = None,
        coverage: CoverageReader | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        verify_attempts: int = VERIFY_ATTEMPTS,
        evaluates_key: bool = True,
        key_count: int = 1,
        background: Executor | None = None,
    ) -> None:
        """`background`: threads for a call made beside the key's read (the state load), kept and shared (wiring
        gives the deployment's); what runs there never waits for another task of it."""
        self.settings = settings
        self.evaluates_key = evaluates_key
        """False for the sight of a deployment of many keys: it reads coverage and records canaries, nothing else."""
        self._key_count = key_count
        self._reader = reader
        self._writer = writer
        self._state = state
        self._notifier = notifier
        self._identity = identity or NoIdentity()
        self._sinks = tuple(sinks)
        self._reasoner = reasoner
        self._coverage = coverage
        self._clock = clock
        self._sleep = sleep
        self._verify_attempts = verify_attempts
        self._background = background or ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-state")

    # --- entry points -------------------------------------------------------------------------------------------

    def handle(self, raw_event: Any) -> Result:
        canary = canary_region(raw_event, self.settings.canary_role_arn)
        if canary is not None:
            self._state.record_canary(canary, self._clock())
            return Result(
                "ignored",
                f"canary event from {canary}: the event path from there works (recorded)",
                canary_region=canary,
            )
        if not self.evaluates_key:
            return Result("ignored", "not a canary event (the deployment's sight records canaries only)")
        parsed = parse_event(raw_event, self.settings.key)
        if isinstance(parsed, Ignored):
            return Result("ignored", parsed.reason)
        if parsed.is_scheduled:
            return self._scheduled(parsed)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-read") as pool:
            reading = pool.submit(self._read, _hinted_regions(parsed))  # overlaps with the claim and the state load
            if not self._state.claim_event(parsed.event_id, self._clock()):
                reading.cancel()
                return Result("ignored", f"duplicate delivery of CloudTrail event {parsed.event_id}", parsed)
            try:
                return self._evaluate(parsed, reading)
            except BaseException:
                # Best effort: if releasing fails too, the lease runs out by itself; the original error matters.
                with contextlib.suppress(Exception):
                    self._state.release_event(parsed.event_id)
                raise

    def scheduled_check(self, raw_event: Mapping[str, Any] | None = None) -> Result:
        event = scheduled_event(
            str((raw_event or {}).get("id", "scheduled")), self.settings.home, (raw_event or {}).get("time")
        )
        return self._scheduled(event)

    def check(self) -> KeyReport:
        """Read-only evaluation of the live key (no state, alerts or writes)."""
        return self.check_result().report or KeyReport(self.settings.key_arn, ())

    def check_result(self) -> Result:
        """`check`, with the second opinion per Region; finding sinks, if any, receive the findings as new (there is
        no state to say what was reported before, so nothing is resolved)."""
        report, opinions = self._review(self._read())
        self._publish_findings(KeyRecord(), report, report, self._clock())
        return Result("evaluated", None, None, report, found=report, opinions=opinions)

    def check_coverage(self) -> CoverageReport | None:
        """Read-only check of the guard's sight (no state, alerts or canary); None without a coverage reader."""
        if self._coverage is None:
            return None
        return self._assess_coverage(self._read_sight(), None)

    # --- the flow -----------------------------------------------------------------------------------------------

    def _read(self, hinted: Sequence[str] = ()) -> KeyReport:
        """The key in every configured Region, then in every other Region it has a replica in (DescribeKey's
        multi-Region configuration, or a Region the event names: a ReplicateKey's replicaRegion), each evaluated;
        those others carry REPLICA_UNWATCHED. A Region only the event named, where no replica is found, is left out
        (the event's own replica may not be visible yet; the configuration will name it when it is)."""
        settings = self.settings
        arns = {region: settings.region_key_arn(region) for region in settings.regions}
        observations = self._reader.read_all(arns)
        if settings.key.is_multi_region:
            others = unwatched_regions(settings.regions, observations, hinted)
            if others:
                named = set(actual_regions(observations))
                more = self._reader.read_all({region: settings.region_key_arn(region) for region in others})
                observations = [*observations, *(o for o in more if o.region in named or not o.not_found)]
        report = assess_key(settings.key_arn, observations, settings.vendor)
        return mark_unwatched(report, settings.regions)

    def _evaluate(
        self, event: KeyEvent, reading: Future[KeyReport] | None = None, record: KeyRecord | None = None
    ) -> Result:
        if reading is None:
            # The key read in this thread (its other Regions on background threads), the state loaded beside it: no
            # thread started per call (a scheduled check of many keys takes this path for each key).
            loading = self._background.submit(self._state.load) if record is None else None
            reading = _completed(self._read)
            if loading is not None:
                record = loading.result()
        record = record or self._state.load()
        report, opinions = self._review(reading.result())
        now = self._clock()
        for region_report in report.regions:
            policy = region_report.policy
            if region_report.verdict == "compliant" and policy and record.baselines.get(region_report.region) != policy:
                self._state.save_baseline(region_report.region, policy, now)

        self._send_outbox(record)
        outcomes, final = self._remediate(report, record, event)
        alerts = self._alerts(report, final, record, event, outcomes, now)
        # Kept, and recorded as reported, before they are sent: if a publish fails, Lambda's retry finds the key
        # repaired (or unchanged) and nothing new to say; it sends what was kept, once, instead of nothing or twice.
        references = self._state.queue_alerts([a.to_record() for a in alerts], now) if alerts else []
        final_fp = fingerprint(final.findings)
        if alerts or final_fp != (record.fingerprint or "compliant"):
            reported = remember_first_seen(final.findings, record.findings, now)
            self._state.save_report(final_fp, reported, now if alerts else None)
        for alert, reference in zip(alerts, references, strict=True):
            self._notifier.publish(alert)
            self._state.alert_sent(reference)
        self._publish_findings(record, report, final, now)
        return Result("evaluated", None, event, final, alerts, outcomes, found=report, opinions=opinions)

    def _send_outbox(self, record: KeyRecord) -> None:
        """Alerts an earlier invocation kept but did not get to send (it failed half-way): send them first."""
        for reference, data in record.outbox[:MAX_OUTBOX]:
            self._notifier.publish(Alert.from_record(data))
            self._state.alert_sent(reference)

    # --- opt-in: second opinion and finding sinks ---------------------------------------------------------------

    def _review(self, report: KeyReport) -> tuple[KeyReport, dict[str, Opinion]]:
        """Ask the reasoner once per Region whose policy was read (concurrently); add VERDICT_DISPUTED where it
        disagrees with the guard."""
        reasoner = self._reasoner
        asked = [r for r in report.regions if r.policy is not None]
        if reasoner is None or not asked:
            return report, {}

        def ask(region_report: RegionReport) -> Opinion:
            reference = reference_policy(self.settings.vendor, region_report.region)
            return reasoner.check_no_new_access(region_report.region, region_report.policy or "", reference)

        if len(asked) == 1:
            answers = [ask(asked[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(asked), thread_name_prefix="second-opinion") as pool:
                answers = list(pool.map(ask, asked))
        opinions = {r.region: a for r, a in zip(asked, answers, strict=True)}
        regions = []
        for region_report in report.regions:
            opinion = opinions.get(region_report.region)
            disputed = dispute(region_report, opinion, self.settings.vendor) if opinion else None
            findings = region_report.findings if disputed is None else (*region_report.findings, disputed)
            regions.append(dataclasses.replace(region_report, findings=findings))
        return KeyReport(report.key_arn, tuple(regions)), opinions

    def _publish_findings(self, record: KeyRecord, found: KeyReport, final: KeyReport, now: float) -> None:
        if not self._sinks:
            return
        update = FindingUpdate(
            self.settings.key,
            self.settings.vendor,
            tuple(record.findings),
            record.fingerprint or "compliant",
            found,
            final,
            now,
        )
        for sink in self._sinks:
            sink.publish(update)

    # --- coverage (scheduled check only) ----------------------------------------------------------------------------

    def _read_sight(self) -> list[RegionSight]:
        assert self._coverage is not None
        return self._coverage.read(self.settings.regions, self.settings.rule_names)

    def _assess_coverage(self, sights: list[RegionSight], record: KeyRecord | None) -> CoverageReport:
        canary = None
        if self.settings.canary_role_arn and record is not None:
            now = self._clock()
            canary = CanaryClock(
                since=record.canary_since if record.canary_since is not None else now,
                arrivals=record.canary_arrivals,
                max_age=self.settings.canary_max_age_seconds,
                now=now,
            )
        return assess_coverage(
            sights, home_region=self.settings.home, rule_names=self.settings.rule_names, canary=canary
        )

    def _coverage_due(self, record: KeyRecord, now: float) -> bool:
        """The sight is read on the first check, when the canary is on (its lateness is judged every check), and
        otherwise once every `coverage_every_minutes` (a minute's slack, so an hourly cadence does not slip a run)."""
        if self.settings.canary_role_arn or record.coverage_checked_at is None:
            return True
        return now - record.coverage_checked_at >= self.settings.coverage_every_minutes * 60 - 60

    def _scheduled(self, event: KeyEvent) -> Result:
        """The key as every evaluation does it, and, when due, the guard's sight read alongside it; coverage alerts
        on change."""
        if self._coverage is None:
            return self._evaluate(event)
        if not self.evaluates_key:
            return self.sight_check()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="scheduled-read") as pool:
            reading = pool.submit(self._read)
            record = self._state.load()
            now = self._clock()
            sight = pool.submit(self._read_sight) if self._coverage_due(record, now) else None
            result = self._evaluate(event, reading, record)
            if sight is None:
                return result
            sights = sight.result()
        self._finish_sight(sights, record, now, result)
        return result

    def sight_check(self) -> Result:
        """Only the guard's sight (trails, rules, canaries), when due: a deployment of many keys has one sight for all
        its Regions, read once per check by a Guard that evaluates no key (`evaluates_key` False)."""
        record = self._state.load()
        now = self._clock()
        result = Result("evaluated", "the guard's sight of its Regions")
        if self._coverage is not None and self._coverage_due(record, now):
            self._finish_sight(self._read_sight(), record, now, result)
        return result

    def _finish_sight(self, sights: list[RegionSight], record: KeyRecord, now: float, result: Result) -> None:
        coverage = self._assess_coverage(sights, record)
        result.coverage = coverage
        change = decide_coverage_alert(record.coverage, coverage)
        if change is not None:
            alert = render_coverage_alert(
                CoverageChange(change.kind, record.coverage_codes),
                coverage,
                key_arn=self.settings.key_arn,
                vendor_name=self.settings.vendor.display_name,
                check_minutes=self.settings.check_interval_minutes,
                key_count=self._key_count,
            )
            self._notifier.publish(alert)
            result.alerts.append(alert)
        since = record.canary_since
        if self.settings.canary_role_arn and since is None:
            since = self._clock()
        self._state.save_coverage(coverage.fingerprint(), coverage.codes, since, now)

    # --- remediation --------------------------------------------------------------------------------------------

    def _exempt_actor(self, event: KeyEvent) -> str | None:
        """Who made the change, when it is the guard's own role or a trusted principal; None otherwise.

        Identity comes from the principal CloudTrail recorded, never from the user agent: anyone can send
        `kms-guard/` in theirs, and a change that looked like the guard's own would never be repaired."""
        actor = event.actor
        if actor is None:
            return None
        if actor.principal_arn and actor.principal_arn in self._identity.own_principals():
            return "the change was made by the guard's own role"
        trusted = set(self.settings.trusted_principals)
        for arn in (actor.principal_arn, actor.arn):
            if arn and arn in trusted:
                return f"the change was made by trusted principal {arn}"
        return None

    def _exemption(self, event: KeyEvent, region_report: RegionReport, who: _Lazy) -> str | None:
        """Why this Region's findings must not be undone: an exempt actor's change made them. Only what that change
        explains is exempt: its own Region, the findings of its kind, and for a PutKeyPolicy only while the live
        policy is still the one it wrote (a later edit by someone else is not theirs)."""
        target = event.request.get("replicaRegion") if event.name == "ReplicateKey" else event.region
        explains = EXPLAINED_BY.get(event.name)
        if target != region_report.region or explains is None:
            return None
        if not any(f.code in explains for f in region_report.findings):
            return None
        if event.name == "PutKeyPolicy" and not _same_policy(event.request.get("policy"), region_report.policy):
            return None
        reason: str | None = who.value
        return reason

    def _remediate(self, report: KeyReport, record: KeyRecord, event: KeyEvent) -> tuple[list[Outcome], KeyReport]:
        settings = self.settings
        if not settings.writes_enabled:
            return [], report
        who = _Lazy(lambda: self._exempt_actor(event))  # asked only when there is something to repair
        outcomes: list[Outcome] = []
        regions: list[RegionReport] = []
        for region_report in report.regions:
            region = region_report.region
            region_fp = region_fingerprint(region_report)
            if not region_report.findings:
                if region in record.holds:
                    self._state.set_hold(region, None)
                regions.append(region_report)
                continue
            plan = plan_region(
                region_report,
                settings.vendor,
                mode=settings.remediation,
                restore_key_state=settings.restore_key_state,
                baseline=record.baselines.get(region),
            )
            if plan is None:
                regions.append(region_report)
                continue
            if region not in settings.regions:
                outcomes.append(
                    Outcome(
                        region,
                        "skipped",
                        "not a watched Region: the guard repairs only where it is configured to watch (and allowed "
                        "to write); add the Region to the key's regions and redeploy, or repair it by hand.",
                    )
                )
                regions.append(region_report)
                continue
            if any(f.code == Code.VERDICT_DISPUTED for f in region_report.findings):
                outcomes.append(
                    Outcome(
                        region,
                        "skipped",
                        "repairs held: the second opinion (IAM Access Analyzer) disagrees with the guard's verdict "
                        "here; alert only until they agree.",
                    )
                )
                regions.append(region_report)
                continue
            exemption = self._exemption(event, region_report, who)
            if exemption is not None:
                self._state.set_hold(region, region_fp)
                outcomes.append(Outcome(region, "skipped", f"{exemption}: alert only; the guard will not undo it."))
                regions.append(region_report)
                continue
            # A hold keeps a trusted change from being undone by later checks, until the findings change or someone
            # else changes that Region (their event names them): then the findings are theirs, and repaired.
            someone_else = event.actor is not None and event.region == region
            if record.holds.get(region) == region_fp and not someone_else:
                outcomes.append(
                    Outcome(
                        region, "skipped", "these findings come from a trusted change: alert only until they change."
                    )
                )
                regions.append(region_report)
                continue
            if region in record.holds:
                self._state.set_hold(region, None)
            outcome, after = self._execute(plan, region_report)
            outcomes.append(outcome)
            regions.append(after)
        return outcomes, KeyReport(report.key_arn, tuple(regions))

    def _execute(self, plan: RegionPlan, before: RegionReport) -> tuple[Outcome, RegionReport]:
        settings, region = self.settings, plan.region
        if plan.writes and not settings.dry_run:
            # before the (charged) second opinion: a plan made on a key that has changed since is not asked about
            changed = self._changed_since_read(plan, before)
            if changed is not None:
                return Outcome(region, "skipped", changed), before
        plan = self._confirm_planned_policy(plan)
        write_names: list[str] = [w.kind for w in plan.writes]
        if not plan.writes:
            return Outcome(region, "refused", plan.refused or "nothing the guard may safely change"), before
        description = plan.description + (f"; not repaired: {plan.refused}" if plan.refused else "")
        if settings.dry_run:
            planned = next((w.policy for w in plan.writes if w.policy), None)
            return Outcome(
                region, "dry-run", f"dry run, nothing written; would {description}", write_names, None, planned
            ), before
        now = self._clock()
        # The limit counts writes to the key (a CancelKeyDeletion, an EnableKey and a PutKeyPolicy are three), taken
        # together or not at all: a plan is never cut half-way by the limit.
        if not self._state.take_write_slot(region, now, settings.max_writes_per_hour, len(plan.writes)):
            return (
                Outcome(
                    region,
                    "suspended",
                    f"remediation suspended: the guard already wrote to this key in {region} "
                    f"{settings.max_writes_per_hour} times in the last hour; something keeps undoing its repairs "
                    "(a tug of war with another automation?). Find and fix that source; the guard alerts only.",
                ),
                before,
            )
        done: list[str] = []
        try:
            for write in plan.writes:
                if write.kind == "put-key-policy" and write.policy is not None:
                    self._writer.put_key_policy(region, plan.key_arn, write.policy)
                elif write.kind == "cancel-key-deletion":
                    self._writer.cancel_key_deletion(region, plan.key_arn)
                elif write.kind == "enable-key":
                    self._writer.enable_key(region, plan.key_arn)
                done.append(write.kind)
        except Exception as exc:
            outcome = Outcome(region, "failed", f"{description}; failed at {write.kind}: {_error_text(exc)}", done)
            self._log(region, now, plan, outcome)
            return outcome, before
        after, verified = self._verify(plan, before)
        outcome = Outcome(region, "applied", description, done, verified)
        self._log(region, now, plan, outcome)
        return outcome, after

    def _changed_since_read(self, plan: RegionPlan, before: RegionReport) -> str | None:
        """Read the Region again just before writing: a repair planned on a policy (or key state) that has changed
        since would overwrite that change, a Deny someone just added for one. KMS has no conditional write; this
        shrinks the window to one read. None when nothing changed."""
        now = self._reader.read(plan.region, plan.key_arn)
        state = str(now.metadata.get("KeyState")) if now.metadata is not None else None
        if now.policy != before.policy or state != before.key_state:
            return (
                "the key changed since the guard read it (policy or key state); nothing written: the change's own "
                "event, or the next scheduled check, evaluates it"
            )
        return None

    def _confirm_planned_policy(self, plan: RegionPlan) -> RegionPlan:
        """With the second opinion on, a policy is written only if the reasoner confirms it grants the vendor (PASS);
        otherwise the policy write is dropped from the plan, saying why (key state writes stay)."""
        planned = next((w.policy for w in plan.writes if w.kind == "put-key-policy" and w.policy), None)
        if self._reasoner is None or planned is None:
            return plan
        opinion = self._reasoner.check_no_new_access(
            plan.region, planned, reference_policy(self.settings.vendor, plan.region)
        )
        if opinion.result == "PASS":
            return plan
        why = (
            f"the second opinion (IAM Access Analyzer) does not confirm that the planned policy grants "
            f"{self.settings.vendor.display_name} ({opinion.text()}), so it is not written"
        )
        writes = tuple(w for w in plan.writes if w.kind != "put-key-policy")
        refused = f"{plan.refused}; {why}" if plan.refused else why
        return dataclasses.replace(plan, writes=writes, refused=refused)

    def _verify(self, plan: RegionPlan, before: RegionReport) -> tuple[RegionReport, bool]:
        """Read back until the targeted findings are gone (KMS is eventually consistent), or give up."""
        targeted = set()
        for write in plan.writes:
            if write.kind == "put-key-policy":
                targeted |= {Code.ACTION_NOT_GRANTED, Code.GRANT_CONDITIONAL}
            else:
                targeted |= {Code.KEY_DISABLED, Code.KEY_PENDING_DELETION}
        delay = VERIFY_FIRST_DELAY
        report = before
        for attempt in range(self._verify_attempts):
            if attempt:
                self._sleep(delay)
                delay *= 2
            report = assess_region(self._reader.read(plan.region, plan.key_arn), self.settings.vendor)
            if not any(f.code in targeted for f in report.findings):
                return report, True
        return report, False

    def _log(self, region: str, now: float, plan: RegionPlan, outcome: Outcome) -> None:
        self._state.log_remediation(
            region,
            now,
            {
                "status": outcome.status,
                "writes": outcome.writes,
                "verified": outcome.verified,
                "why": plan.description,
                "description": outcome.description,
            },
        )

    # --- alerts -------------------------------------------------------------------------------------------------

    def _alerts(
        self,
        found: KeyReport,
        final: KeyReport,
        record: KeyRecord,
        event: KeyEvent,
        outcomes: list[Outcome],
        now: float,
    ) -> list[Alert]:
        reported = Reported(
            record.fingerprint or "compliant",
            tuple(sorted({str(f.get("code")) for f in record.findings})),
            record.alerted_at,
        )
        plans = decide_alerts(
            reported,
            found,
            final,
            suspended=any(o.status == "suspended" for o in outcomes),
            now=now,
            reminder_seconds=self.settings.reminder_seconds,
        )
        return [
            render_alert(
                p.kind, p.report, self.settings.vendor, event=event, outcomes=outcomes, previous_codes=p.previous_codes
            )
            for p in plans
        ]


class _Lazy:
    """A value computed on first use (the actor check may ask STS: only worth it when a repair is on the table)."""

    def __init__(self, compute: Callable[[], str | None]) -> None:
        self._compute = compute
        self._done = False
        self._value: str | None = None

    @property
    def value(self) -> str | None:
        if not self._done:
            self._value, self._done = self._compute(), True
        return self._value


def _completed(call: Callable[[], T]) -> Future[T]:
    """`call()` run in this thread, as a completed Future (its result, or its exception as a pool would hand it
    over)."""
    future: Future[T] = Future()
    try:
        future.set_result(call())
    except BaseException as exc:
        future.set_exception(exc)
    return future


def _hinted_regions(event: KeyEvent) -> tuple[str, ...]:
    """A Region the event names that the key may have a replica in before DescribeKey shows it."""
    replica = event.request.get("replicaRegion") if event.name == "ReplicateKey" else None
    return (replica,) if isinstance(replica, str) else ()


def _same_policy(written: object, live: str | None) -> bool:
    """Whether the live policy is the one a PutKeyPolicy wrote (as JSON: KMS may store it re-formatted)."""
    if not isinstance(written, str) or live is None:
        return False
    try:
        return bool(json.loads(written) == json.loads(live))
    except (ValueError, RecursionError):
        return False


def _error_text(exc: Exception) -> str:
    if isinstance(exc, WriteFailed):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
