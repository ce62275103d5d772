"""The use case's state and notifier ports in memory: for the CLI without a state table or topic (`check`,
`handle-event`), and for unit tests of the Guard. Same contract as the DynamoDB and SNS adapters."""

from __future__ import annotations

import threading
from typing import Any

from kms_guard.core.alerts import Alert
from kms_guard.guard import EVENT_LEASE_SECONDS, WRITE_WINDOW_SECONDS, KeyRecord


class MemoryState:
    def __init__(self) -> None:
        self.record = KeyRecord()
        self.events: dict[str, float] = {}
        self.writes: dict[str, list[float]] = {}
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def claim_event(self, event_id: str, now: float) -> bool:
        with self._lock:
            lease = self.events.get(event_id)
            if lease is not None and lease > now:
                return False
            self.events[event_id] = now + EVENT_LEASE_SECONDS
            return True

    def release_event(self, event_id: str) -> None:
        with self._lock:
            self.events.pop(event_id, None)

    def load(self) -> KeyRecord:
        with self._lock:
            return KeyRecord(
                self.record.fingerprint,
                list(self.record.findings),
                self.record.alerted_at,
                dict(self.record.baselines),
                dict(self.record.holds),
                self.record.coverage,
                self.record.coverage_codes,
                self.record.canary_since,
                dict(self.record.canary_arrivals),
                self.record.coverage_checked_at,
                list(self.record.outbox),
            )

    def save_report(self, fingerprint: str, findings: list[dict[str, Any]], alerted_at: float | None) -> None:
        with self._lock:
            self.record.fingerprint, self.record.findings = fingerprint, list(findings)
            if alerted_at is not None:
                self.record.alerted_at = alerted_at

    def save_baseline(self, region: str, policy: str, now: float) -> None:
        with self._lock:
            self.record.baselines[region] = policy

    def set_hold(self, region: str, fingerprint: str | None) -> None:
        with self._lock:
            if fingerprint is None:
                self.record.holds.pop(region, None)
            else:
                self.record.holds[region] = fingerprint

    def take_write_slot(self, region: str, now: float, limit: int, count: int = 1) -> bool:
        with self._lock:
            recent = [t for t in self.writes.get(region, []) if t > now - WRITE_WINDOW_SECONDS]
            if len(recent) + count > limit:
                self.writes[region] = recent
                return False
            self.writes[region] = [*recent, *[now] * count]
            return True

    def log_remediation(self, region: str, now: float, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append({"region": region, "at": now, **entry})

    def save_coverage(
        self, fingerprint: str, codes: tuple[str, ...], canary_since: float | None, checked_at: float
    ) -> None:
        with self._lock:
            self.record.coverage, self.record.coverage_codes = fingerprint, tuple(codes)
            self.record.canary_since = canary_since
            self.record.coverage_checked_at = checked_at

    def queue_alerts(self, alerts: list[dict[str, Any]], now: float) -> list[str]:
        with self._lock:
            references = [f"{now!r}#{len(self.record.outbox) + i}" for i in range(len(alerts))]
            self.record.outbox.extend(zip(references, alerts, strict=True))
            return references

    def alert_sent(self, reference: str) -> None:
        with self._lock:
            self.record.outbox = [(r, a) for r, a in self.record.outbox if r != reference]

    def record_canary(self, region: str, now: float) -> None:
        with self._lock:
            self.record.canary_arrivals[region] = max(now, self.record.canary_arrivals.get(region, now))


class CollectingNotifier:
    """Keeps alerts in memory (the CLI prints them when no topic is configured)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)
