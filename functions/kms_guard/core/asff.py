"""Security Hub findings in ASFF, one per key x Region x finding code (pure: reports and the last report in, findings
out; the adapter imports them).

Lifecycle, derived from what the guard last reported (its state keeps those findings, each with `first_seen`):
- a (Region, code) not reported before is created (CreatedAt = now);
- one reported before whose content (actions, statements) changed is updated: same Id, CreatedAt kept, newer UpdatedAt;
- one reported before that is gone is resolved: Compliance PASSED, RecordState ARCHIVED, severity INFORMATIONAL;
- one found and repaired in the same evaluation (never reported) is created already resolved, so the repair leaves a
  trace where the security team looks.
Nothing is sent for findings that did not change: BatchImportFindings is charged per finding ingested.

Format (https://docs.aws.amazon.com/securityhub/latest/userguide/securityhub-findings-format.html, aws-facts.md):
SchemaVersion 2018-10-08; the product ARN `arn:<partition>:securityhub:<home>:<account>:product/<account>/default`
(the account's own custom integration, in the key's home Region) with the caller's account as AwsAccountId; Title at
most 256 characters, Description 1,024, Remediation.Recommendation.Text 512; at most 100 findings per call. An update
is an import of the same Id with a newer UpdatedAt (BatchUpdateFindings is for the customer's workflow, not the
provider's).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kms_guard.core.alerts import SUBJECT_PHRASE, clean, fix_commands
from kms_guard.core.arns import KeyArn
from kms_guard.core.findings import Code, Finding, KeyReport, RegionReport
from kms_guard.core.vendor import VendorProfile

SCHEMA_VERSION = "2018-10-08"
MAX_BATCH = 100
MAX_TITLE, MAX_DESCRIPTION, MAX_RECOMMENDATION = 256, 1024, 512
SEVERITY_LABEL = {"critical": "CRITICAL", "warning": "MEDIUM", "info": "INFORMATIONAL"}
COMPLIANCE = {"critical": "FAILED", "warning": "WARNING", "info": "WARNING"}
TYPES = ("Software and Configuration Checks/AWS Security Best Practices",)
EXTRA_TYPES: dict[Code, tuple[str, ...]] = {Code.PUBLIC_PRINCIPAL: ("Effects/Data Exposure",)}

Slot = tuple[str, str]
"""(Region, code): one ASFF finding."""


def product_arn(key: KeyArn) -> str:
    return f"arn:{key.partition}:securityhub:{key.region}:{key.account}:product/{key.account}/default"


def finding_id(key: KeyArn, region: str, code: str) -> str:
    """Stable and readable: the same problem of the same key in the same Region is always the same finding."""
    return f"kms-guard/{key.key_id}/{region}/{code}"


def timestamp(now: float) -> str:
    """ISO 8601 in UTC with milliseconds, as ASFF wants (`2026-01-31T12:00:00.000Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def remember_first_seen(
    findings: Sequence[Finding], previous: Sequence[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """The findings to store as reported: each with `first_seen`, kept from the last report for a continuing
    (Region, code), so an updated Security Hub finding keeps its CreatedAt."""
    seen: dict[Slot, float] = {}
    for item in previous:
        at = item.get("first_seen")
        if isinstance(at, int | float):
            slot = (str(item.get("region")), str(item.get("code")))
            seen[slot] = min(seen.get(slot, at), float(at))
    return [{**f.to_dict(), "first_seen": seen.get((str(f.region), f.code.value), now)} for f in findings]


def _groups(findings: Sequence[Finding]) -> dict[Slot, list[Finding]]:
    out: dict[Slot, list[Finding]] = {}
    for finding in findings:
        out.setdefault((str(finding.region), finding.code.value), []).append(finding)
    return out


def _signature(items: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, ...], str]]:
    """What a finding is about (as the guard's fingerprint sees it): wording and severity aside."""
    return sorted((tuple(sorted(i.get("actions") or ())), str(i.get("statement"))) for i in items)


def securityhub_findings(
    key: KeyArn,
    vendor: VendorProfile,
    previous: Sequence[Mapping[str, Any]],
    found: KeyReport,
    final: KeyReport,
    now: float,
) -> list[dict[str, Any]]:
    """The ASFF findings to import for one evaluation: created, updated and resolved ones; [] when nothing changed."""
    before: dict[Slot, list[Mapping[str, Any]]] = {}
    for item in previous:
        before.setdefault((str(item.get("region")), str(item.get("code"))), []).append(item)
    current = _groups(final.findings)
    out: list[dict[str, Any]] = []
    for slot, findings in current.items():
        old = before.get(slot)
        if old is not None and _signature(old) == _signature([f.to_dict() for f in findings]):
            continue
        created = _first_seen(old, now)
        out.append(_active(key, vendor, slot, findings, final.region(slot[0]), created, now))
    for slot, old in before.items():
        if slot not in current:
            out.append(_resolved(key, vendor, slot, old, final.region(slot[0]), _first_seen(old, now), now, False))
    repaired = _groups(found.findings)
    for slot, findings in repaired.items():
        if slot not in current and slot not in before:
            old_items = [f.to_dict() for f in findings]
            out.append(_resolved(key, vendor, slot, old_items, final.region(slot[0]), now, now, True))
    return out


def chunks(items: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """`items` in lists of at most `size` (AWS's batch APIs cap what one call takes)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def batches(findings: Sequence[dict[str, Any]], size: int = MAX_BATCH) -> Iterator[list[dict[str, Any]]]:
    """BatchImportFindings takes at most MAX_BATCH findings a call."""
    return chunks(findings, size)


def _first_seen(old: Sequence[Mapping[str, Any]] | None, now: float) -> float:
    stamps = [float(i["first_seen"]) for i in old or () if isinstance(i.get("first_seen"), int | float)]
    return min(stamps, default=now)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _base(
    key: KeyArn, vendor: VendorProfile, slot: Slot, region_report: RegionReport | None, created: float, now: float
) -> dict[str, Any]:
    region, code = slot
    known = Code(code) if code in {c.value for c in Code} else None  # a stored code this version no longer knows
    phrase = SUBJECT_PHRASE.get(known, code) if known else code
    resource_details: dict[str, Any] = {"KeyId": key.key_id, "KeyManager": "CUSTOMER"}
    if region_report is not None and region_report.key_state:
        resource_details["KeyState"] = region_report.key_state
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(key, region, code),
        "ProductArn": product_arn(key),
        "ProductName": "kms-guard",
        "CompanyName": "kms-guard",
        "GeneratorId": f"kms-guard/{code}",
        "AwsAccountId": key.account,
        "Types": list(TYPES + (EXTRA_TYPES.get(known, ()) if known else ())),
        "CreatedAt": timestamp(created),
        "UpdatedAt": timestamp(now),
        "FirstObservedAt": timestamp(created),
        "Title": _bounded(clean(f"{vendor.display_name} key {key.key_id} {phrase} in {region}", 1000), MAX_TITLE),
        "Resources": [
            {
                "Type": "AwsKmsKey",
                "Id": str(key.in_region(region)),
                "Partition": key.partition,
                "Region": region,
                "Details": {"AwsKmsKey": resource_details},
            }
        ],
        "ProductFields": {
            "kms-guard/KeyArn": str(key),
            "kms-guard/Code": code,
            "kms-guard/Vendor": clean(vendor.display_name, 100),
            "kms-guard/VendorAccount": vendor.account or "unknown",
        },
    }


def _recommendation(key: KeyArn, finding: Finding, vendor: VendorProfile) -> str:
    """The exact fix: the commands the alert gives, as many whole lines as fit."""
    commands = fix_commands(finding, str(key.in_region(finding.region or key.region)), key.region, vendor)
    text = "Fix: the commands in order (the README explains each)." if commands else "No automatic fix: see the README."
    for command in commands:
        line = f"\n{command}"
        if len(text) + len(line) > MAX_RECOMMENDATION:
            break
        text += line
    return _bounded(text, MAX_RECOMMENDATION)


def _active(
    key: KeyArn,
    vendor: VendorProfile,
    slot: Slot,
    findings: Sequence[Finding],
    region_report: RegionReport | None,
    created: float,
    now: float,
) -> dict[str, Any]:
    severity = "critical" if any(f.severity == "critical" for f in findings) else findings[0].severity
    description = " ".join(clean(f.message, MAX_DESCRIPTION) for f in findings)
    return {
        **_base(key, vendor, slot, region_report, created, now),
        "LastObservedAt": timestamp(now),
        "Description": _bounded(description, MAX_DESCRIPTION),
        "Severity": {"Label": SEVERITY_LABEL[severity], "Original": severity},
        "Compliance": {"Status": COMPLIANCE[severity]},
        "RecordState": "ACTIVE",
        "Remediation": {"Recommendation": {"Text": _recommendation(key, findings[0], vendor)}},
    }


def _resolved(
    key: KeyArn,
    vendor: VendorProfile,
    slot: Slot,
    old: Sequence[Mapping[str, Any]],
    region_report: RegionReport | None,
    created: float,
    now: float,
    repaired: bool,
) -> dict[str, Any]:
    was = " ".join(clean(str(i.get("message", "")), MAX_DESCRIPTION) for i in old)
    how = "the guard repaired it in this evaluation" if repaired else "the guard no longer finds it"
    severity = str(old[0].get("severity", "info")) if old else "info"
    return {
        **_base(key, vendor, slot, region_report, created, now),
        "Description": _bounded(f"Resolved at {timestamp(now)}: {how}. Was: {was}", MAX_DESCRIPTION),
        "Severity": {"Label": "INFORMATIONAL", "Original": severity},
        "Compliance": {"Status": "PASSED"},
        "RecordState": "ARCHIVED",
        "Remediation": {"Recommendation": {"Text": "Nothing to do: resolved."}},
    }
