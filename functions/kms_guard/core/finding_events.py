"""EventBridge events, one per change of the key's findings (pure: what was reported and what was found in; PutEvents
entries out; the adapter sends them to the home Region's default bus).

Contract (design.md, "Findings outside SNS"): `source` `kms-guard`, `detail-type` `KMS Guard Finding`, `detail`
`{key_arn, vendor, regions, verdict, previous_verdict, codes, change}`, `change` one of `problem` (was compliant),
`changed`, `resolved` (compliant now). `regions` are the Regions with findings before or after the change, `codes`
the finding codes after it. The changes are the SNS alert's (same fingerprints): the findings as found differ from
what was last reported, and a repair changed them again; a reminder is not a change, and nothing is sent when
nothing changed. The key ARN is also the entry's `resources`, so a rule can match on it.
PutEvents takes at most 10 entries and 256 KB per call (aws-facts.md); a change is one small entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kms_guard.core.alerts import fingerprint
from kms_guard.core.asff import chunks
from kms_guard.core.findings import KeyReport, Verdict, verdict_of_fields
from kms_guard.core.vendor import VendorProfile

SOURCE = "kms-guard"
DETAIL_TYPE = "KMS Guard Finding"
MAX_ENTRIES = 10
Change = Literal["problem", "changed", "resolved"]


@dataclass(frozen=True)
class _Snapshot:
    fingerprint: str
    verdict: Verdict
    regions: frozenset[str]
    codes: tuple[str, ...]


def reported_verdict(findings: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict of the findings last reported, from the state's copies (the rule of `verdict_of`)."""
    return verdict_of_fields((f.get("severity"), f.get("code")) for f in findings)


def _snapshot(report: KeyReport) -> _Snapshot:
    return _Snapshot(
        fingerprint(report.findings),
        report.verdict,
        frozenset(str(f.region) for f in report.findings if f.region),
        tuple(sorted({f.code.value for f in report.findings})),
    )


def finding_events(
    key_arn: str,
    vendor: VendorProfile,
    previous: Sequence[Mapping[str, Any]],
    previous_fingerprint: str,
    found: KeyReport,
    final: KeyReport,
) -> list[dict[str, Any]]:
    """The `detail` of each change, in order: what was reported -> as found -> after any repair."""
    before = _Snapshot(
        previous_fingerprint,
        reported_verdict(previous),
        frozenset(str(f.get("region")) for f in previous if f.get("region")),
        tuple(sorted({str(f.get("code")) for f in previous})),
    )
    details: list[dict[str, Any]] = []
    for after in (_snapshot(found), _snapshot(final)):
        if after.fingerprint == before.fingerprint:
            continue
        change: Change
        if after.fingerprint == "compliant":
            change = "resolved"
        elif before.fingerprint == "compliant":
            change = "problem"
        else:
            change = "changed"
        details.append(
            {
                "key_arn": key_arn,
                "vendor": vendor.display_name,
                "regions": sorted(before.regions | after.regions),
                "verdict": after.verdict,
                "previous_verdict": before.verdict,
                "codes": list(after.codes),
                "change": change,
            }
        )
        before = after
    return details


def put_events_entries(details: Sequence[dict[str, Any]], key_arn: str, bus: str = "default") -> list[dict[str, Any]]:
    entry = {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Resources": [key_arn], "EventBusName": bus}
    return [{**entry, "Detail": json.dumps(d)} for d in details]


def batches(entries: Sequence[dict[str, Any]], size: int = MAX_ENTRIES) -> Iterator[list[dict[str, Any]]]:
    """PutEvents takes at most MAX_ENTRIES entries a call."""
    return chunks(entries, size)
