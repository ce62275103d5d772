"""The opt-in canary's write: TagResource on the guard's own canary key in every watched Region (context `canary`).

What it writes, exactly: the tag `kms-guard-canary` = `event-path-check` on the key behind `alias/kms-guard-canary`,
a key the guard's stacks create for this and nothing else (no data is ever encrypted with it; neither the vendor nor
the customer uses it). The tag is always the same, so after the first run the key's tags never change; CloudTrail
still logs every call as a management write event, which is what the canary proves arrives.
The key is found by its alias (DescribeKey accepts an alias; TagResource does not), so the function needs no key ARN
from the other Regions' stacks; its role may call these two actions only on keys carrying that alias
(`kms:ResourceAliases`).
"""

from __future__ import annotations

from collections.abc import Sequence

from kms_guard.aws.clients import ClientFactory, in_every_region
from kms_guard.aws.errors import error_text
from kms_guard.core.coverage import CANARY_ALIAS, CANARY_TAG_KEY, CANARY_TAG_VALUE

CANARY_ACTIONS = ("kms:DescribeKey", "kms:TagResource")


class CanarySender:
    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients

    def send_one(self, region: str) -> str | None:
        """Tag the Region's canary key; None on success, else AWS's reason in one line."""
        kms = self._clients.client("kms", region)
        try:
            arn = kms.describe_key(KeyId=CANARY_ALIAS)["KeyMetadata"]["Arn"]
            kms.tag_resource(KeyId=arn, Tags=[{"TagKey": CANARY_TAG_KEY, "TagValue": CANARY_TAG_VALUE}])
        except Exception as exc:
            return error_text(exc)
        return None

    def send(self, regions: Sequence[str]) -> dict[str, str | None]:
        """Every Region concurrently: Region -> None (sent) or the error."""
        return dict(zip(regions, in_every_region(self._clients, ("kms",), regions, self.send_one), strict=True))
