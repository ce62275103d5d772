"""Reading and writing the key in every Region.

Reading is exactly DescribeKey + GetKeyPolicy per Region, all Regions concurrently. A missing replica
(NotFoundException) is KEY_NOT_FOUND; anything else that stops the read (access denied, throttling past the retries,
network) is reported as an error, which compliance turns into POLICY_UNREADABLE: never "compliant".
Writes never set BypassPolicyLockoutSafetyCheck: KMS refuses a policy that would lock the caller out.
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from kms_guard.aws.clients import ClientFactory, in_every_region
from kms_guard.aws.errors import NOT_FOUND, error_code, error_text
from kms_guard.core.compliance import RegionObservation
from kms_guard.guard import WriteFailed

READ_ACTIONS = ("kms:DescribeKey", "kms:GetKeyPolicy")
POLICY_WRITE_ACTIONS = ("kms:PutKeyPolicy",)
KEY_STATE_ACTIONS = ("kms:EnableKey", "kms:CancelKeyDeletion")


class KmsGateway:
    def __init__(self, clients: ClientFactory, background: Executor | None = None) -> None:
        """`background`: threads for the Regions read beside the first (kept and shared: wiring gives the
        deployment's; a read is a leaf, it waits for nothing in that pool)."""
        self._clients = clients
        self._background = background or ThreadPoolExecutor(thread_name_prefix="kms-read")

    def _kms(self, region: str) -> Any:
        return self._clients.client("kms", region)

    def read(self, region: str, key_arn: str) -> RegionObservation:
        # Any failure to read becomes an observation (POLICY_UNREADABLE, named), never an exception: one Region
        # that cannot be read must not keep the guard from evaluating, and alerting on, the others.
        kms = self._kms(region)
        try:
            metadata = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == NOT_FOUND:
                return RegionObservation(region, key_arn, not_found=True)
            return RegionObservation(region, key_arn, error=error_text(exc))
        try:
            policy = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
        except Exception as exc:
            return RegionObservation(region, key_arn, metadata, error=error_text(exc))
        if not isinstance(policy, str):
            return RegionObservation(region, key_arn, metadata, error="GetKeyPolicy returned no policy text")
        return RegionObservation(region, key_arn, metadata, policy)

    def read_all(self, key_arns: dict[str, str]) -> list[RegionObservation]:
        """Read every Region concurrently, the first in this thread and the others on the background threads;
        results in the order given (home Region first)."""

        def read(region: str) -> RegionObservation:
            return self.read(region, key_arns[region])

        return in_every_region(self._clients, ("kms",), list(key_arns), read, self._background)

    # Writes raise WriteFailed with AWS's reason: the use case reports it without knowing botocore.
    def put_key_policy(self, region: str, key_arn: str, policy: str) -> None:
        try:
            self._kms(region).put_key_policy(
                KeyId=key_arn, PolicyName="default", Policy=policy, BypassPolicyLockoutSafetyCheck=False
            )
        except Exception as exc:
            raise WriteFailed(error_text(exc, 300)) from exc

    # The key state calls take the key ID: the Region-bound client already names the replica, real KMS accepts it as
    # well as the ARN, and moto's EnableKey/CancelKeyDeletion only resolve raw key IDs.
    def enable_key(self, region: str, key_arn: str) -> None:
        try:
            self._kms(region).enable_key(KeyId=_key_id(key_arn))
        except Exception as exc:
            raise WriteFailed(error_text(exc, 300)) from exc

    def cancel_key_deletion(self, region: str, key_arn: str) -> None:
        try:
            self._kms(region).cancel_key_deletion(KeyId=_key_id(key_arn))
        except Exception as exc:
            raise WriteFailed(error_text(exc, 300)) from exc


def _key_id(key_arn: str) -> str:
    return key_arn.rsplit("/", 1)[-1]
