"""What a vendor needs from the key, as data: another vendor or account ID is a different value, not different code.

The Rockset profile follows requirements.md: Rockset's account 318212636800 must be allowed `kms:Encrypt`,
`kms:Decrypt`, `kms:GenerateDataKey*` and `kms:DescribeKey` on a symmetric ENCRYPT_DECRYPT multi-Region key that is
Enabled. `kms:GenerateDataKey*` is read strictly: every action it expands to must be granted.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from kms_guard.core import actions as catalogue

ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class VendorProfile:
    name: str
    account: str
    required: tuple[str, ...]
    """The required actions as the vendor states them (patterns allowed, read strictly)."""
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    multi_region: bool = True
    usable_states: tuple[str, ...] = ("Enabled", "Updating")
    statement_sid: str = "KmsGuardVendorAccess"
    """The Sid of the one statement the guard owns and may write."""

    def __post_init__(self) -> None:
        if not ACCOUNT_ID.match(self.account):
            raise ValueError(f"vendor account must be 12 digits, not {self.account!r}")

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    @property
    def concrete_actions(self) -> tuple[str, ...]:
        """Every concrete KMS action the requirement expands to, in catalogue order."""
        wanted: set[str] = set()
        for pattern in self.required:
            expanded = catalogue.expand(pattern)
            if not expanded:
                raise ValueError(f"required action {pattern!r} matches no KMS action")
            wanted |= expanded
        return tuple(a for a in catalogue.all_actions() if a in wanted)

    def with_account(self, account: str) -> VendorProfile:
        return dataclasses.replace(self, account=account)


ROCKSET_ACCOUNT = "318212636800"

ROCKSET = VendorProfile(
    name="Rockset",
    account=ROCKSET_ACCOUNT,
    required=("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"),
    statement_sid="KmsGuardRocksetAccess",
)
