"""IAM Access Analyzer as the second opinion: CheckNoNewAccess, asked in the key's Region.

Request and answer as botocore's service model has them: `existingPolicyDocument`, `newPolicyDocument`,
`policyType` RESOURCE_POLICY (the operation takes no resource type) -> `result` PASS | FAIL, `message`, `reasons`
[{description, statementIndex, statementId}]. Each call is charged, so answers are kept per container for identical
questions (the same policy text asked twice, e.g. the same policy in two Regions, or the next scheduled check on a
warm container): the reasoner is deterministic for the same two documents. A call that fails (access denied,
throttled past retries) is an ERROR opinion with AWS's reason: the guard then disputes nothing and writes no policy.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.errors import error_text
from kms_guard.core.second_opinion import Opinion, opinion_from_response

CHECK_ACTIONS = ("access-analyzer:CheckNoNewAccess",)
"""The operation has no resource type: granted on `*` (infra.function, with the cdk-nag acknowledgment)."""

CACHE_SIZE = 128


class AccessAnalyzerReasoner:
    def __init__(self, clients: ClientFactory, cache_size: int = CACHE_SIZE) -> None:
        self._clients = clients
        self._cache: OrderedDict[tuple[str, str], Opinion] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check_no_new_access(self, region: str, existing_policy: str, new_policy: str) -> Opinion:
        key = (_digest(existing_policy), _digest(new_policy))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        client: Any = self._clients.client("accessanalyzer", region)
        try:
            response = client.check_no_new_access(
                existingPolicyDocument=existing_policy, newPolicyDocument=new_policy, policyType="RESOURCE_POLICY"
            )
        except Exception as exc:
            return Opinion("ERROR", f"CheckNoNewAccess in {region} failed: {error_text(exc, 300)}")
        opinion = opinion_from_response(response)
        if opinion.result != "ERROR":
            with self._lock:
                self._cache[key] = opinion
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return opinion


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
