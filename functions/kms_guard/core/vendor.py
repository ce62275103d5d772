"""What a vendor needs from the key, as data: another vendor or account ID is a different value, not different code.

The Rockset profile follows requirements.md: Rockset's account 318212636800 must be allowed `kms:Encrypt`,
`kms:Decrypt`, `kms:GenerateDataKey*` and `kms:DescribeKey` on a symmetric ENCRYPT_DECRYPT multi-Region key that is
Enabled. `kms:GenerateDataKey*` is read strictly: every action it expands to must be granted.

What is known about the vendor's calls (vendors.md, "What a vendor's calls look like") is data on the profile too, a
`RequestContext`: condition keys with a known value, keys known to be absent, and the partly known ones (the principal
ARN is in the vendor's account; the organization only where the profile names it). Everything else is unknown.
Sources: KMS accepts only TLS (https://docs.aws.amazon.com/kms/latest/developerguide/data-protection.html), the
global condition keys (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html) and
the KMS ones (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from kms_guard.core import actions as catalogue

ACCOUNT_ID = re.compile(r"^[0-9]{12}$")

ACCOUNT = "${account}"
"""In a `RequestContext` value: the vendor's account ID (so `with_account` keeps the context right)."""


@dataclass(frozen=True)
class RequestContext:
    """What every call the vendor makes to the key carries, as far as it is known (condition keys lower-cased)."""

    known: tuple[tuple[str, str], ...]
    """Keys present in every call with this single value (`ACCOUNT` stands for the vendor's account)."""
    absent: tuple[str, ...]
    """Keys never present in the vendor's calls."""
    organization: str | None = None
    """The vendor's AWS Organizations ID, when the profile knows it; otherwise `aws:PrincipalOrgID` is unknown."""

    def values(self, account: str) -> dict[str, str]:
        out = {key: account if value == ACCOUNT else value for key, value in self.known}
        if self.organization is not None:
            out["aws:principalorgid"] = self.organization
        return out


DIRECT_CALLS = RequestContext(
    known=(
        ("aws:securetransport", "true"),  # KMS accepts only TLS
        ("aws:principalisawsservice", "false"),  # an IAM principal of the vendor, not a service principal
        ("aws:principalaccount", ACCOUNT),
        ("kms:calleraccount", ACCOUNT),
    ),
    absent=(
        # The vendor calls from its own account and network, never through the customer's VPC endpoints.
        "aws:sourcevpce",
        "aws:sourcevpc",
        "aws:vpcsourceip",
        # A direct call, not made by an AWS service on the vendor's behalf.
        "kms:viaservice",
    ),
)
"""A vendor that calls KMS directly from its own account (Rockset)."""


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
    context: RequestContext = DIRECT_CALLS
    """What the vendor's calls carry, for deciding conditions."""

    def __post_init__(self) -> None:
        if not ACCOUNT_ID.match(self.account):
            raise ValueError(f"vendor account must be 12 digits, not {self.account!r}")

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    @property
    def request_values(self) -> dict[str, str]:
        """The known condition-key values of the vendor's calls (keys lower-cased)."""
        return self.context.values(self.account)

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
    context=DIRECT_CALLS,
)
