"""Replicas found, not only configured: the Regions a multi-Region key actually has, and REPLICA_UNWATCHED.

DescribeKey's `MultiRegionConfiguration` names the primary and every replica, in whichever Region it is read
(https://docs.aws.amazon.com/kms/latest/APIReference/API_MultiRegionConfiguration.html). The guard reads the key in
its configured Regions, then also in every Region that configuration names and the guard does not watch, and
evaluates those replicas like the others; each such Region's report carries REPLICA_UNWATCHED (info), whose message
names the exact Region list that would watch it (`core.alerts.fix_commands` turns it into the context change).
The configuration comes from the key's metadata, which whoever controls the key controls: at most
MAX_UNWATCHED Regions are taken from it, each a well-formed Region name.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kms_guard.core.arns import REGION
from kms_guard.core.compliance import RegionObservation
from kms_guard.core.findings import Code, Finding, KeyReport

MAX_UNWATCHED = 32
"""At most this many unwatched Regions are read per evaluation (AWS has fewer Regions than this for one key)."""
MAX_REPLICAS_SCANNED = 64


def actual_regions(observations: Iterable[RegionObservation]) -> tuple[str, ...]:
    """Every Region the key's multi-Region configuration names (primary first), from whichever Regions were read."""
    found: dict[str, None] = {}
    for observation in observations:
        metadata = observation.metadata
        config = metadata.get("MultiRegionConfiguration") if isinstance(metadata, Mapping) else None
        if not isinstance(config, Mapping):
            continue
        entries: list[Any] = [config.get("PrimaryKey")]
        replicas = config.get("ReplicaKeys")
        if isinstance(replicas, list):
            entries.extend(itertools.islice(replicas, MAX_REPLICAS_SCANNED))
        for entry in entries:
            region = entry.get("Region") if isinstance(entry, Mapping) else None
            if isinstance(region, str) and REGION.match(region):
                found[region] = None
    return tuple(found)


def unwatched_regions(
    watched: Sequence[str], observations: Iterable[RegionObservation], hinted: Iterable[str] = ()
) -> tuple[str, ...]:
    """The Regions to read beyond the watched ones: those the key's configuration names, then those an event names
    (`hinted`: a ReplicateKey's replicaRegion, before DescribeKey may show it), bounded."""
    candidates = (*actual_regions(observations), *(r for r in hinted if isinstance(r, str) and REGION.match(r)))
    return tuple(r for r in dict.fromkeys(candidates) if r not in watched)[:MAX_UNWATCHED]


def mark_unwatched(report: KeyReport, watched: Sequence[str]) -> KeyReport:
    """Add REPLICA_UNWATCHED to the report of every Region outside `watched`, naming the Region list that watches
    them all."""
    extra = [r.region for r in report.regions if r.region not in watched]
    if not extra:
        return report
    proposed = ",".join((*watched, *extra))
    regions = []
    for region_report in report.regions:
        if region_report.region in watched:
            regions.append(region_report)
            continue
        finding = Finding(
            Code.REPLICA_UNWATCHED,
            "info",
            region_report.region,
            f"the key has a replica in {region_report.region}, a Region the guard was not configured to watch: it "
            f"is evaluated on every check, but its changes raise no event here. To watch it, set the key's regions "
            f"to {proposed} in the CDK context and redeploy (cdk deploy --all).",
            fixable=False,
        )
        regions.append(dataclasses.replace(region_report, findings=(*region_report.findings, finding)))
    return KeyReport(report.key_arn, tuple(regions))
