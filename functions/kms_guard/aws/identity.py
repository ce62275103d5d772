"""Who the guard runs as (STS), so that events for its own writes are recognised and never "repaired" back.

Asked once, and only when a change could be exempt. If STS cannot answer, the set is empty: no change is taken for the
guard's own (never by user agent, which anyone can send), and the evaluation and its alert go on.
"""

from __future__ import annotations

import threading

from kms_guard.aws.clients import ClientFactory


def principals_of(caller_arn: str) -> frozenset[str]:
    """The caller ARN and, for an assumed-role session, the role's ARN (what CloudTrail names as session issuer)."""
    parts = caller_arn.split(":")
    if len(parts) == 6 and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return frozenset({caller_arn, f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"})
    return frozenset({caller_arn})


class StsIdentity:
    def __init__(self, clients: ClientFactory, region: str) -> None:
        self._clients = clients
        self._region = region
        self._lock = threading.Lock()
        self._principals: frozenset[str] | None = None

    def own_principals(self) -> frozenset[str]:
        with self._lock:
            if self._principals is None:
                try:
                    arn = str(self._clients.client("sts", self._region).get_caller_identity()["Arn"])
                except Exception:
                    return frozenset()  # not cached: the next evaluation asks again
                self._principals = principals_of(arn)
            return self._principals
