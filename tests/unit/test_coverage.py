"""The coverage decision (core.coverage), from plain data: each code, basic and advanced selectors, shadow trails,
the guard's rules, the canary, the fingerprint and the alert."""

from __future__ import annotations

from typing import Any

import pytest
from kms_guard.core.coverage import (
    CANARY_TAG_KEY,
    RULE_NAMES,
    CanaryClock,
    CoverageChange,
    CoverageCode,
    CoverageReport,
    RegionSight,
    Rule,
    Trail,
    assess_coverage,
    assess_region,
    canary_region,
    decide_coverage_alert,
    records_kms_writes,
    render_coverage_alert,
)

from tests.support import load_event

HOME, OTHER = "us-west-2", "us-east-1"
ARN = "arn:aws:cloudtrail:us-west-2:111122223333:trail/management"
KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
CANARY_ROLE = "arn:aws:iam::111122223333:role/kms-guard-canary"
RULES = tuple(Rule(name, "ENABLED") for name in RULE_NAMES)


def trail(**overrides: Any) -> Trail:
    values: dict[str, Any] = {
        "arn": ARN,
        "name": "management",
        "home_region": HOME,
        "multi_region": True,
        "logging": True,
    }
    values.update(overrides)
    return Trail(**values)


def codes(sight: RegionSight, **options: Any) -> list[str]:
    report = assess_region(sight, home_region=HOME, rule_names=RULE_NAMES, **options)
    return [f.code.value for f in report.findings]


def management(*conditions: dict[str, Any], name: str = "mgmt") -> dict[str, Any]:
    return {
        "Name": name,
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, *conditions],
    }


# --- trails ---------------------------------------------------------------------------------------------------------


def test_a_logging_multi_region_trail_covers_every_region_and_the_rules_are_there() -> None:
    for region in (HOME, OTHER):
        assert codes(RegionSight(region, (trail(),), rules=RULES)) == []


def test_no_trail_is_trail_missing_with_the_create_trail_fix() -> None:
    [finding] = assess_region(RegionSight(OTHER, (), rules=RULES), home_region=HOME, rule_names=RULE_NAMES).findings
    assert finding.code == CoverageCode.TRAIL_MISSING
    assert finding.severity == "warning"
    assert any("create-trail" in c and "--is-multi-region-trail" in c for c in finding.fix)
    assert any("start-logging" in c for c in finding.fix)


def test_a_single_region_trail_homed_elsewhere_does_not_cover_this_region() -> None:
    single = trail(multi_region=False)
    assert codes(RegionSight(HOME, (single,), rules=RULES)) == []
    assert codes(RegionSight(OTHER, (single,), rules=RULES)) == ["TRAIL_MISSING"]


def test_a_shadow_trail_from_another_home_region_covers() -> None:
    shadow = trail(arn=ARN.replace(HOME, "eu-west-1"), home_region="eu-west-1")
    assert codes(RegionSight(OTHER, (shadow,), rules=RULES)) == []


def test_an_organization_trail_covers() -> None:
    org = trail(arn="arn:aws:cloudtrail:us-east-1:999988887777:trail/org", home_region=OTHER, organization=True)
    assert codes(RegionSight(HOME, (org,), rules=RULES)) == []


def test_a_stopped_trail_is_trail_not_logging_with_the_start_logging_fix() -> None:
    [finding] = assess_region(
        RegionSight(OTHER, (trail(logging=False),), rules=RULES), home_region=HOME, rule_names=RULE_NAMES
    ).findings
    assert finding.code == CoverageCode.TRAIL_NOT_LOGGING
    assert finding.subject == ARN
    assert finding.fix == (f"aws cloudtrail start-logging --region {HOME} --name {ARN}",)


def test_one_good_trail_is_enough_even_beside_a_broken_one() -> None:
    stopped = trail(arn=ARN + "-old", name="old", logging=False)
    assert codes(RegionSight(HOME, (stopped, trail()), rules=RULES)) == []


@pytest.mark.parametrize(
    ("selectors", "covered", "why"),
    [
        ([], True, "default"),
        ([{"ReadWriteType": "All", "IncludeManagementEvents": True}], True, "records"),
        ([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}], True, "records"),
        ([{"IncludeManagementEvents": True}], True, "records"),
        ([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}], False, "only ReadOnly"),
        ([{"ReadWriteType": "All", "IncludeManagementEvents": False}], False, "no management events"),
        (
            [
                {
                    "ReadWriteType": "All",
                    "IncludeManagementEvents": True,
                    "ExcludeManagementEventSources": ["kms.amazonaws.com"],
                }
            ],
            False,
            "excludes kms.amazonaws.com",
        ),
        (
            [{"ReadWriteType": "All", "ExcludeManagementEventSources": ["rdsdata.amazonaws.com"]}],
            True,
            "records",
        ),
        (
            [
                {"ReadWriteType": "All", "ExcludeManagementEventSources": ["kms.amazonaws.com"]},
                {"ReadWriteType": "WriteOnly"},
            ],
            True,
            "records",
        ),
    ],
)
def test_basic_event_selectors(selectors: list[dict[str, Any]], covered: bool, why: str) -> None:
    records, reason = records_kms_writes(trail(event_selectors=tuple(selectors)))
    assert records is covered
    assert why in reason


@pytest.mark.parametrize(
    ("selectors", "covered", "why"),
    [
        ([management()], True, "records"),
        ([management({"Field": "readOnly", "Equals": ["false"]})], True, "records"),
        ([management({"Field": "readOnly", "Equals": ["true"]})], False, "read-only"),
        ([management({"Field": "readOnly", "NotEquals": ["false"]})], False, "read-only"),
        ([management({"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]})], False, "excludes kms"),
        ([management({"Field": "eventSource", "NotEquals": ["rdsdata.amazonaws.com"]})], True, "records"),
        ([management({"Field": "eventSource", "Equals": ["kms.amazonaws.com"]})], True, "records"),
        ([management({"Field": "eventSource", "Equals": ["iam.amazonaws.com"]})], False, "excludes kms"),
        ([management({"Field": "eventSource", "StartsWith": ["km"]})], False, "cannot decide"),
        ([management({"Field": "eventName", "Equals": ["PutKeyPolicy"]})], False, "cannot decide"),
        (
            [{"Name": "s3 data", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}],
            False,
            "no advanced selector records management events",
        ),
        (
            [
                management({"Field": "readOnly", "Equals": ["true"]}, name="reads"),
                management({"Field": "readOnly", "Equals": ["false"]}, name="writes"),
            ],
            True,
            "'writes'",
        ),
    ],
)
def test_advanced_event_selectors(selectors: list[dict[str, Any]], covered: bool, why: str) -> None:
    records, reason = records_kms_writes(trail(advanced_selectors=tuple(selectors)))
    assert records is covered
    assert why in reason


def test_excluding_kms_is_kms_events_excluded_with_the_put_event_selectors_fix() -> None:
    excluded = trail(
        event_selectors=({"ReadWriteType": "All", "ExcludeManagementEventSources": ["kms.amazonaws.com"]},)
    )
    [finding] = assess_region(
        RegionSight(OTHER, (excluded,), rules=RULES), home_region=HOME, rule_names=RULE_NAMES
    ).findings
    assert finding.code == CoverageCode.KMS_EVENTS_EXCLUDED
    assert any("put-event-selectors" in c and HOME in c for c in finding.fix)


# --- what the guard cannot read is never ok ---------------------------------------------------------------------


def test_trails_that_cannot_be_listed_are_unreadable_and_never_ok() -> None:
    sight = RegionSight(OTHER, trails_error="AccessDeniedException: not allowed", rules=RULES)
    report = assess_coverage([sight], home_region=HOME, rule_names=RULE_NAMES)
    assert [f.code for f in report.findings] == [CoverageCode.COVERAGE_UNREADABLE]
    assert report.regions[0].status == "unknown"
    assert report.verdict == "blind"


def test_a_trail_whose_status_or_selectors_cannot_be_read_is_unreadable() -> None:
    assert codes(RegionSight(HOME, (trail(logging=None, status_error="GetTrailStatus: denied"),), rules=RULES)) == [
        "COVERAGE_UNREADABLE"
    ]
    assert codes(RegionSight(HOME, (trail(selectors_error="GetEventSelectors: denied"),), rules=RULES)) == [
        "COVERAGE_UNREADABLE"
    ]


def test_a_stopped_trail_is_not_logging_even_when_its_selectors_are_unreadable() -> None:
    assert codes(RegionSight(HOME, (trail(logging=False, selectors_error="denied"),), rules=RULES)) == [
        "TRAIL_NOT_LOGGING"
    ]


def test_too_many_trails_without_a_good_one_is_unreadable_not_missing() -> None:
    sight = RegionSight(OTHER, (trail(multi_region=False),), truncated=True, rules=RULES)
    assert codes(sight) == ["COVERAGE_UNREADABLE"]


# --- the guard's rules -------------------------------------------------------------------------------------------


def test_a_missing_rule_says_redeploy_and_a_disabled_one_says_enable() -> None:
    rules = (Rule(RULE_NAMES[0], None), Rule(RULE_NAMES[1], "DISABLED"))
    report = assess_region(RegionSight(OTHER, (trail(),), rules=rules), home_region=HOME, rule_names=RULE_NAMES)
    missing, disabled = report.findings
    assert (missing.code, disabled.code) == (CoverageCode.GUARD_RULE_MISSING, CoverageCode.GUARD_RULE_MISSING)
    assert "forwarder rule" in missing.message
    assert "missing" in missing.message
    assert "redeploy kms-guard" in missing.fix[0]
    assert disabled.fix == (f"aws events enable-rule --region {OTHER} --name {RULE_NAMES[1]}",)


def test_rule_enabled_with_all_management_events_is_enabled_and_an_unreadable_rule_is_unknown() -> None:
    rules = (
        Rule(RULE_NAMES[0], "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"),
        Rule(RULE_NAMES[1], None, "AccessDeniedException: no"),
    )
    assert codes(RegionSight(HOME, (trail(),), rules=rules)) == ["COVERAGE_UNREADABLE"]


# --- canary -------------------------------------------------------------------------------------------------------


def clock(now: float, arrivals: dict[str, float] | None = None, since: float = 0.0) -> CanaryClock:
    return CanaryClock(since=since, arrivals=arrivals or {}, max_age=45 * 60, now=now)


def test_a_late_canary_is_event_path_silent_and_a_recent_one_is_fine() -> None:
    sight = RegionSight(OTHER, (trail(),), rules=RULES)
    assert codes(sight, canary=clock(10_000, {OTHER: 10_000 - 44 * 60})) == []
    assert codes(sight, canary=clock(10_000, {OTHER: 10_000 - 46 * 60})) == ["EVENT_PATH_SILENT"]


def test_no_canary_yet_is_silent_only_once_the_allowed_delay_has_passed_since_canaries_were_expected() -> None:
    sight = RegionSight(OTHER, (trail(),), rules=RULES)
    assert codes(sight, canary=clock(now=1000 + 40 * 60, since=1000)) == []
    assert codes(sight, canary=clock(now=1000 + 50 * 60, since=1000)) == ["EVENT_PATH_SILENT"]


def canary_event(**detail: Any) -> dict[str, Any]:
    event = load_event("canary-tag-resource")
    event["detail"].update(detail)
    return event


def test_a_canary_event_is_recognised_by_role_and_tag() -> None:
    assert canary_region(canary_event(), CANARY_ROLE) == "eu-west-1"
    assert canary_region(canary_event(), None) is None  # canary off


@pytest.mark.parametrize(
    "detail",
    [
        {"eventName": "UntagResource"},
        {"errorCode": "AccessDeniedException"},
        {"requestParameters": {"keyId": "x", "tags": [{"tagKey": "Team", "tagValue": "x"}]}},
        {"userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": CANARY_ROLE + "-x"}}}},
        {"requestParameters": None},
    ],
)
def test_anything_else_is_not_a_canary(detail: dict[str, Any]) -> None:
    assert canary_region(canary_event(**detail), CANARY_ROLE) is None


def test_the_canary_fixture_sets_the_canary_tag() -> None:
    tags = load_event("canary-tag-resource")["detail"]["requestParameters"]["tags"]
    assert {"tagKey": CANARY_TAG_KEY, "tagValue": "event-path-check"} in tags


# --- fingerprint and alert ------------------------------------------------------------------------------------------


def report_of(*sights: RegionSight) -> CoverageReport:
    return assess_coverage(sights, home_region=HOME, rule_names=RULE_NAMES)


def test_alert_on_change_only() -> None:
    ok = report_of(RegionSight(HOME, (trail(),), rules=RULES))
    blind = report_of(RegionSight(HOME, (trail(logging=False),), rules=RULES))
    assert ok.fingerprint() == "ok"
    assert decide_coverage_alert(None, ok) is None
    assert decide_coverage_alert(None, blind) == CoverageChange("problem")
    assert decide_coverage_alert(blind.fingerprint(), blind) is None
    assert decide_coverage_alert(blind.fingerprint(), ok) == CoverageChange("resolved")
    other = report_of(RegionSight(HOME, (), rules=RULES))
    assert decide_coverage_alert(blind.fingerprint(), other) == CoverageChange("changed")


def test_the_fingerprint_ignores_wording_such_as_the_canary_age() -> None:
    sight = RegionSight(OTHER, (trail(),), rules=RULES)
    one = assess_coverage([sight], home_region=HOME, rule_names=RULE_NAMES, canary=clock(10_000, {OTHER: 1}))
    two = assess_coverage([sight], home_region=HOME, rule_names=RULE_NAMES, canary=clock(20_000, {OTHER: 1}))
    assert one.findings[0].message != two.findings[0].message
    assert one.fingerprint() == two.fingerprint()


def test_the_coverage_alert_is_a_warning_with_its_own_subject_the_impact_and_the_fix() -> None:
    blind = report_of(
        RegionSight(HOME, (trail(),), rules=RULES),
        RegionSight(OTHER, (trail(logging=False),), rules=RULES),
    )
    alert = render_coverage_alert(
        CoverageChange("problem"), blind, key_arn=KEY_ARN, vendor_name="Rockset", check_minutes=15
    )
    assert alert.subject.startswith("[COVERAGE] Rockset key mrk-")
    assert "trail not logging in us-east-1" in alert.subject
    assert len(alert.subject) < 100
    assert alert.subject.isascii()
    assert alert.severity == "warning"
    assert alert.codes == ("TRAIL_NOT_LOGGING",)
    assert alert.regions == (OTHER,)
    assert "every 15 minutes" in alert.body
    assert "not affected" in alert.body
    assert f"aws cloudtrail start-logging --region {HOME} --name {ARN}" in alert.body
    resolved = render_coverage_alert(
        CoverageChange("resolved", ("TRAIL_NOT_LOGGING",)),
        report_of(RegionSight(HOME, (trail(),), rules=RULES)),
        key_arn=KEY_ARN,
        vendor_name="Rockset",
        check_minutes=15,
    )
    assert resolved.subject.startswith("[COVERAGE OK]")
    assert resolved.severity == "info"
    assert "Before: TRAIL_NOT_LOGGING" in resolved.body


def test_to_dict_is_the_stable_shape() -> None:
    report = report_of(RegionSight(OTHER, (), rules=RULES))
    out = report.to_dict()
    assert out["verdict"] == "blind"
    [region] = out["regions"]
    assert set(region) == {"region", "status", "findings"}
    assert region["findings"][0]["code"] == "TRAIL_MISSING"
    assert {"code", "severity", "region", "message", "fix"} <= set(region["findings"][0])


def test_the_coverage_alert_body_stays_within_what_sns_accepts() -> None:
    """Many Regions, each blind with long trail ARNs and fixes: the body is cut under SNS's 256 KB, not rejected."""
    regions = [f"xx-region{i}-1" for i in range(200)]
    long_trail = "arn:aws:cloudtrail:us-west-2:111122223333:trail/" + "t" * 120
    sights = [
        RegionSight(r, tuple(trail(arn=f"{long_trail}{n}", logging=False) for n in range(5)), rules=()) for r in regions
    ]
    report = assess_coverage(sights, home_region=regions[0], rule_names=RULE_NAMES)
    alert = render_coverage_alert(
        CoverageChange("problem"), report, key_arn=KEY_ARN, vendor_name="Rockset", check_minutes=15
    )
    assert len(alert.body.encode()) <= 200_000
    assert alert.body.endswith("... (truncated)\n")
