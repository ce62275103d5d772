"""Many keys, one guard: route each event to the key(s) it concerns; check every key on the schedule.

A deployment of one key is that key's Guard, as it always was (its sight of trails and rules read with it, in its
state). A deployment of many keys has one Guard per key, each with its own state (partition = the key ID), vendor,
Regions, baselines, rate limits, holds, reminders and alerts; and one more Guard that evaluates no key but holds the
deployment's sight (coverage and canaries) over the union of the keys' Regions, in its own partition (`SIGHT_PK`).

- Events: the key IDs an event names are looked up among the configured keys (no AWS call); an event that names none
  of them is dropped with the reason the single-key parser gives. Each key it names gets the event, one after the
  other (a rare event names two).
- The scheduled check: every key at once, at most MAX_KEY_WORKERS at a time (each reads its Regions concurrently
  too), and the sight beside them. A key whose check raises (its state unreachable, a bug) is reported as failed
  after every other key has been checked: one key's failure never hides another's result; the invocation then fails
  (its error alarm), naming the keys.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from kms_guard.core.arns import ArnError, KeyArn
from kms_guard.core.events import ANOTHER_KEY, Ignored, candidate_identifiers, parse_event
from kms_guard.core.findings import Code, Finding, KeyReport, RegionReport
from kms_guard.guard import Guard, Result

MAX_KEY_WORKERS = 24
"""Keys checked at once by the scheduled check (each reads its first Region in its own thread, its other Regions and
its state on the deployment's background threads). Enough calls in flight (about 3 per key) to keep the CPU busy
while others wait out their round trip: a check of many keys is bound by botocore's CPU per call (make bench,
multi_key_ratio: 16 left the CPU idle while the first and the last keys waited; more only queue for the GIL)."""
BACKGROUND_WORKERS = 3 * MAX_KEY_WORKERS
"""The deployment's background threads (kms_guard.wiring): enough for MAX_KEY_WORKERS keys of 3 Regions each (2 other
Regions and the state load); a key in more Regions queues its further reads (only slower: they are leaves)."""
SIGHT_PK = "kms-guard#deployment"
"""The state partition of a many-key deployment's sight (never a key ID: key IDs have no `#`)."""


UNFINISHED = "not finished when the scheduled check ran out of time (AWS is slow?): checked again next time"


class KeysFailed(RuntimeError):
    """Some keys' checks raised; every other key was checked. The message names each key with its error."""


@dataclass
class FleetResult:
    """What one invocation did, per key (in the order configured), and for the deployment's sight."""

    results: list[tuple[str, Result]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    sight: Result | None = None
    ignored: Result | None = None
    """Set when the event concerned no configured key (or was a canary): why."""
    many: bool = True
    """From a deployment of many keys (output per key); one key's output is that key's, as it always was."""

    @property
    def single(self) -> Result | None:
        if self.ignored is not None:
            return self.ignored
        return self.results[0][1] if not self.many and len(self.results) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        one = self.single
        if one is not None:
            return one.to_dict()
        out: dict[str, Any] = {
            "decision": "evaluated" if self.results or self.sight else "ignored",
            "keys": [{"key_arn": arn, **result.to_dict()} for arn, result in self.results],
        }
        if self.failed:
            out["failed"] = dict(self.failed)
        if self.sight is not None:
            if self.sight.coverage is not None:
                out["coverage"] = self.sight.coverage.to_dict()
            out["alerts"] = [a.summary() for a in self.sight.alerts]
            if self.sight.canary_region is not None:
                out["canary"] = {"region": self.sight.canary_region}
        return out


class Fleet:
    def __init__(self, guards: Sequence[Guard], sight: Guard | None = None, max_workers: int = MAX_KEY_WORKERS) -> None:
        if not guards:
            raise ValueError("a fleet guards at least one key")
        self.guards = tuple(guards)
        self.sight = sight
        self._max_workers = max(1, max_workers)
        self._by_id: dict[str, Guard] = {g.settings.key.key_id: g for g in self.guards}
        self._rounds = 0

    def route(self, raw_event: Any) -> list[Guard]:
        """The configured keys the event names (by full key ARN of the deployment's account, or bare key ID): a
        dictionary look-up per identifier, at most MAX_CANDIDATES of them; no AWS call."""
        matched: dict[str, Guard] = {}
        for candidate in candidate_identifiers(raw_event):  # bounded there
            if candidate.startswith("arn:"):
                try:
                    arn = KeyArn.parse(candidate)
                except ArnError:
                    continue
                guard = self._by_id.get(arn.key_id)
                if guard is not None and guard.settings.key.account == arn.account:
                    matched.setdefault(arn.key_id, guard)
                continue
            guard = self._by_id.get(candidate)
            if guard is not None:
                matched.setdefault(candidate, guard)
        return list(matched.values())

    def handle(self, raw_event: Any) -> FleetResult:
        if len(self.guards) == 1 and self.sight is None:
            return FleetResult([(self.guards[0].settings.key_arn, self.guards[0].handle(raw_event))], many=False)
        if self.sight is not None:
            canary = self.sight.handle(raw_event)
            if canary.canary_region is not None:
                return FleetResult(ignored=canary)
        first = parse_event(raw_event, self.guards[0].settings.key)
        if not isinstance(first, Ignored) and first.is_scheduled:
            return self.scheduled_check(raw_event)
        guards = self.route(raw_event)
        if not guards:
            reason = first.reason if isinstance(first, Ignored) else ANOTHER_KEY
            if reason == ANOTHER_KEY:
                reason = "event is about a key this deployment does not guard"
            return FleetResult(ignored=Result("ignored", reason))
        out = FleetResult()
        for guard in guards:  # one after the other (a rare event names two); one's failure does not stop the next
            try:
                out.results.append((guard.settings.key_arn, guard.handle(raw_event)))
            except Exception as exc:
                out.failed[guard.settings.key_arn] = _error(exc)
        if not out.failed and all(result.decision == "ignored" for _, result in out.results):
            return FleetResult(ignored=out.results[0][1])  # a failed call, a duplicate delivery: the same for every key
        return out

    def scheduled_check(self, raw_event: Mapping[str, Any] | None = None, deadline: float | None = None) -> FleetResult:
        """Every key, at most MAX_KEY_WORKERS at a time. `deadline` (time.monotonic()): no key is started after it,
        and a key still running then is reported as not finished, so the invocation ends, and logs every key, before
        Lambda's timeout would cut it off. Each check starts at a different key, so under a slow AWS the same keys
        are not always the ones left out."""
        if len(self.guards) == 1 and self.sight is None:
            return FleetResult(
                [(self.guards[0].settings.key_arn, self.guards[0].scheduled_check(raw_event))], many=False
            )
        out = FleetResult()
        workers = min(self._max_workers, len(self.guards))
        start = (self._rounds * workers) % len(self.guards)
        self._rounds += 1
        order = [*self.guards[start:], *self.guards[:start]]
        pool = ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="key-check")
        try:
            sight = pool.submit(self.sight.scheduled_check, raw_event) if self.sight is not None else None
            futures = {g.settings.key_arn: pool.submit(_check, g, raw_event, deadline) for g in order}
            for guard in self.guards:
                arn = guard.settings.key_arn
                try:
                    result, error = futures[arn].result(timeout=_left(deadline))
                except FutureTimeout:
                    result, error = None, UNFINISHED
                if result is not None:
                    out.results.append((arn, result))
                else:
                    out.failed[arn] = error or "failed"
            if sight is not None:
                try:
                    out.sight = sight.result(timeout=_left(deadline))
                except FutureTimeout:
                    out.failed["sight"] = "not finished when the scheduled check ran out of time: read again next time"
                except Exception as exc:  # the keys' results stand; the sight's failure is reported with them
                    out.failed["sight"] = _error(exc)
        finally:
            pool.shutdown(wait=deadline is None, cancel_futures=True)
        return out

    def check(self) -> list[tuple[str, Result]]:
        """Read-only check of every key (the CLI's `check --config`), concurrently, in the order configured. A key
        whose check raises is POLICY_UNREADABLE in each of its Regions (the guard cannot see it), never left out."""
        workers = min(self._max_workers, len(self.guards))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="key-check") as pool:
            results = list(pool.map(_check_result, self.guards))
        return [(g.settings.key_arn, r) for g, r in zip(self.guards, results, strict=True)]


def raise_failures(result: FleetResult) -> None:
    """After every key was checked and recorded: fail the invocation if some key's check raised."""
    if result.failed:
        raise KeysFailed("; ".join(f"{arn}: {error}" for arn, error in result.failed.items()))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _check(
    guard: Guard, raw_event: Mapping[str, Any] | None, deadline: float | None
) -> tuple[Result | None, str | None]:
    if deadline is not None and time.monotonic() >= deadline:
        return None, "not started: the scheduled check ran out of time (AWS is slow?); checked again next time"
    try:
        return guard.scheduled_check(raw_event), None
    except Exception as exc:  # one key's failure must not hide the others': it is reported after them all
        return None, _error(exc)


def _check_result(guard: Guard) -> Result:
    try:
        return guard.check_result()
    except Exception as exc:
        error = _error(exc)
        settings = guard.settings
        regions = tuple(
            RegionReport(
                region,
                settings.region_key_arn(region),
                None,
                (Finding(Code.POLICY_UNREADABLE, "critical", region, f"the check of this key failed: {error}"),),
            )
            for region in settings.regions
        )
        report = KeyReport(settings.key_arn, regions)
        return Result("evaluated", None, None, report, found=report)


def _error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({frame[0].name})" if frame else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}{where}"
