"""KMS key ARNs: parse, validate, and name the same multi-Region key in another Region.

A multi-Region key keeps its key ID in every Region; only the Region field of the ARN changes
(`arn:aws:kms:us-east-1:111122223333:key/mrk-1234` is the replica of `arn:aws:kms:us-west-2:111122223333:key/mrk-1234`).
Real multi-Region key IDs are `mrk-` plus 32 hex digits; moto uses `mrk-` plus a dashed UUID: both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]):(?P<account>[0-9]{12}):key/(?P<key_id>[A-Za-z0-9-]+)\Z"
)
_ALIAS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[^:]*:[^:]*:alias/")
_MRK_ID = re.compile(r"^mrk-(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z")
_SINGLE_REGION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]\Z")
"""ASCII only (a `\\d` would also take other scripts' digits): the Region goes into boto3 clients and fix commands."""


class ArnError(ValueError):
    """Not a usable KMS key ARN; the message says why in one line."""


@dataclass(frozen=True)
class KeyArn:
    partition: str
    region: str
    account: str
    key_id: str

    @classmethod
    def parse(cls, text: str) -> KeyArn:
        if _ALIAS_ARN.match(text):
            raise ArnError("alias ARNs are not supported; give the full key ARN")
        match = _KEY_ARN.match(text)
        if match is None:
            raise ArnError(f"not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID): {text[:120]!r}")
        return cls(**match.groupdict())

    @property
    def has_key_id_shape(self) -> bool:
        """A key ID as KMS issues them, lower case: a UUID, or `mrk-` and 32 hex digits (moto: `mrk-` and a UUID).
        CloudTrail names keys this way, so a key configured in another spelling would never match its events."""
        return self.is_multi_region or _SINGLE_REGION_ID.match(self.key_id) is not None

    @property
    def is_multi_region(self) -> bool:
        return _MRK_ID.match(self.key_id) is not None

    def in_region(self, region: str) -> KeyArn:
        return KeyArn(self.partition, region, self.account, self.key_id)

    def __str__(self) -> str:
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/{self.key_id}"


def parse_multi_region_key_arn(text: str) -> KeyArn:
    arn = KeyArn.parse(text)
    if not arn.is_multi_region:
        raise ArnError(f"key {arn.key_id} is not a multi-Region key (its key ID must start with mrk-)")
    return arn


def parse_regions(text: str | list[str] | tuple[str, ...], home: str) -> tuple[str, ...]:
    """A Region list (comma string or list): validated, deduplicated, home Region first; it must include home."""
    items = [r.strip() for r in text.split(",")] if isinstance(text, str) else [str(r).strip() for r in text]
    items = [r for r in items if r]
    for region in items:
        if not REGION.match(region):
            raise ArnError(f"not an AWS Region name: {region[:60]!r}")
    if not items:
        return (home,)
    if home not in items:
        raise ArnError(f"the Regions ({', '.join(items)}) must include the key's own Region {home}")
    ordered = [home] + [r for r in items if r != home]
    return tuple(dict.fromkeys(ordered))
