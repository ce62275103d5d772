"""Reading the guard's own sight, per watched Region: CloudTrail trails and the guard's EventBridge rules (read-only).

Per Region, concurrently (like the key reads):
- `DescribeTrails(includeShadowTrails=True)` lists the trails homed there and the shadows of multi-Region and
  organization trails homed elsewhere (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_DescribeTrails.html);
  at most MAX_TRAILS are considered.
- `GetTrailStatus(Name=<trail ARN>)` in that Region, for each trail that applies to it: status is per Region, and a
  shadow trail's (or, from a member account, an organization trail's) status must be asked by ARN
  (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_GetTrailStatus.html).
- `GetEventSelectors(TrailName=<trail ARN>)` in the trail's home Region, once per trail for all Regions: selectors
  belong to the trail, and its home Region is where they are kept (moto answers only there).
- `DescribeRule(Name=...)` for each of the guard's rule names; ResourceNotFoundException means the rule is missing;
  then `ListTargetsByRule` (one is enough): an enabled rule without a target delivers nothing.
Nothing here raises: an error becomes part of the observation, which core.coverage reports as COVERAGE_UNREADABLE,
never as "ok".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kms_guard.aws.clients import ClientFactory, in_every_region
from kms_guard.aws.errors import RESOURCE_NOT_FOUND, error_code, error_text
from kms_guard.core.coverage import MAX_TRAILS, RegionSight, Rule, Trail

TRAIL_LIST_ACTIONS = ("cloudtrail:DescribeTrails",)
"""No resource-level permission (Service Authorization Reference, AWS CloudTrail: no resource type): granted on `*`."""
TRAIL_READ_ACTIONS = ("cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors")
"""Resource type `trail`: the customer's trails, whose names (and, for an organization trail, account) the stack
cannot know."""
RULE_READ_ACTIONS = ("events:DescribeRule", "events:ListTargetsByRule")
"""On the guard's own rules only, by ARN."""


class _Once:
    """A value computed once, however many threads ask (a multi-Region trail's selectors, for every Region)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...], str | None] | None = None

    def get(
        self, compute: Callable[[], tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...], str | None]]
    ) -> tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...], str | None]:
        with self._lock:
            if self._value is None:
                self._value = compute()
            return self._value


class CoverageGateway:
    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients

    def read(self, regions: Sequence[str], rule_names: Sequence[str]) -> list[RegionSight]:
        """Every Region concurrently; results in the order given."""
        selectors: dict[str, _Once] = {}
        lock = threading.Lock()

        def selectors_of(arn: str) -> _Once:
            with lock:
                return selectors.setdefault(arn, _Once())

        return in_every_region(
            self._clients,
            ("cloudtrail", "events"),
            regions,
            lambda region: self._region(region, rule_names, selectors_of),
        )

    def _region(self, region: str, rule_names: Sequence[str], selectors_of: Callable[[str], _Once]) -> RegionSight:
        rules = tuple(self._rule(region, name) for name in rule_names)
        try:
            listed = self._clients.client("cloudtrail", region).describe_trails(includeShadowTrails=True)
        except Exception as exc:
            return RegionSight(region, trails_error=error_text(exc), rules=rules)
        raw = [t for t in listed.get("trailList") or [] if isinstance(t, Mapping) and t.get("TrailARN")]
        trails = tuple(self._trail(region, t, selectors_of) for t in raw[:MAX_TRAILS])
        return RegionSight(region, trails, truncated=len(raw) > MAX_TRAILS, rules=rules)

    def _trail(self, region: str, raw: Mapping[str, Any], selectors_of: Callable[[str], _Once]) -> Trail:
        arn = str(raw["TrailARN"])
        home = str(raw.get("HomeRegion") or arn.split(":")[3] or region)
        trail = Trail(
            arn=arn,
            name=str(raw.get("Name") or arn.rsplit("/", 1)[-1]),
            home_region=home,
            multi_region=raw.get("IsMultiRegionTrail") is True,
            organization=raw.get("IsOrganizationTrail") is True,
        )
        if not trail.applies_to(region):
            return trail  # listed, but not logging this Region's events: no need to ask more
        logging: bool | None = None
        status_error: str | None = None
        try:
            status = self._clients.client("cloudtrail", region).get_trail_status(Name=arn)
            logging = status.get("IsLogging") is True
        except Exception as exc:
            status_error = f"GetTrailStatus: {error_text(exc)}"
        basic, advanced, selectors_error = selectors_of(arn).get(lambda: self._selectors(arn, home))
        return Trail(
            arn=arn,
            name=trail.name,
            home_region=home,
            multi_region=trail.multi_region,
            organization=trail.organization,
            logging=logging,
            status_error=status_error,
            event_selectors=basic,
            advanced_selectors=advanced,
            selectors_error=selectors_error,
        )

    def _selectors(
        self, arn: str, home: str
    ) -> tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...], str | None]:
        try:
            answer = self._clients.client("cloudtrail", home).get_event_selectors(TrailName=arn)
        except Exception as exc:
            return (), (), f"GetEventSelectors: {error_text(exc)}"
        basic = tuple(s for s in answer.get("EventSelectors") or [] if isinstance(s, Mapping))
        advanced = tuple(s for s in answer.get("AdvancedEventSelectors") or [] if isinstance(s, Mapping))
        return basic, advanced, None

    def _rule(self, region: str, name: str) -> Rule:
        try:
            answer = self._clients.client("events", region).describe_rule(Name=name)
        except Exception as exc:
            if error_code(exc) == RESOURCE_NOT_FOUND:
                return Rule(name, None)
            return Rule(name, None, error_text(exc))
        state = str(answer.get("State") or "UNKNOWN")
        try:
            listed = self._clients.client("events", region).list_targets_by_rule(Rule=name, Limit=1)
        except Exception as exc:
            return Rule(name, state, f"ListTargetsByRule: {error_text(exc)}")
        return Rule(name, state, targets=len(listed.get("Targets") or []))
