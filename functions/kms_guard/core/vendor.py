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
from typing import Literal

from kms_guard.core import actions as catalogue

ACCOUNT_ID = re.compile(r"^[0-9]{12}\Z")
IAM_PRINCIPAL_ARN = re.compile(r"^arn:(aws[a-z-]*):(iam|sts)::([0-9]{12}):([\x21-\x7e]+)\Z")
"""An IAM or STS principal ARN (partition, service, account, resource): printable ASCII with no whitespace."""

ACCOUNT = "${account}"
"""In a `RequestContext` value or a pinning condition: the vendor's account ID (so `with_account` keeps it right)."""
REGION = "${region}"
"""In a `via_service` template or a pinning condition: the key's Region."""
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::([0-9]{12}):role/[A-Za-z0-9_+=,.@/-]{1,512}\Z")
"""IAM's role path and name characters, ASCII only (a `\\w` would also take letters of other scripts)."""

GrantKind = Literal["account", "vendor-roles", "pinned-wildcard", "customer-role"]
GRANT_KINDS: tuple[GrantKind, ...] = ("account", "vendor-roles", "pinned-wildcard", "customer-role")
EVALUATED_KINDS: tuple[GrantKind, ...] = ("account", "vendor-roles", "pinned-wildcard")


@dataclass(frozen=True)
class RequestContext:
    """What every call the vendor makes to the key carries, as far as it is known (condition keys lower-cased)."""

    known: tuple[tuple[str, str], ...]
    """Keys present in every call with this single value (`ACCOUNT` stands for the vendor's account)."""
    absent: tuple[str, ...]
    """Keys never present in the vendor's calls."""
    organization: str | None = None
    """The vendor's AWS Organizations ID, when the profile knows it; otherwise `aws:PrincipalOrgID` is unknown."""
    org_paths: tuple[str, ...] = ()
    """Prefixes the caller's `aws:PrincipalOrgPaths` value is known to start with (Elastic's OU path)."""
    via_service: str | None = None
    """`kms:ViaService` of every call, `REGION` standing for the key's Region (TiDB: `ec2.${region}.amazonaws.com`)."""

    def values(self, account: str | None, region: str | None = None) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, template in self.known:
            if ACCOUNT in template:
                if account is None:
                    continue  # the vendor's account is not known: the key stays unknown
                out[key] = template.replace(ACCOUNT, account)
            else:
                out[key] = template
        if self.organization is not None:
            out["aws:principalorgid"] = self.organization
        if self.via_service is not None and region is not None:
            out["kms:viaservice"] = self.via_service.replace(REGION, region)
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
class PinCondition:
    """One condition of a pinned-wildcard statement, as the vendor documents it (`ACCOUNT`/`REGION` filled in)."""

    operator: str
    key: str
    values: tuple[str, ...]

    def rendered(self, account: str | None, region: str | None) -> tuple[str, ...] | None:
        """The values with the account and Region filled in; None when one of them is needed but not known."""
        out = []
        for template in self.values:
            if (ACCOUNT in template and account is None) or (REGION in template and region is None):
                return None
            out.append(template.replace(ACCOUNT, account or ACCOUNT).replace(REGION, region or REGION))
        return tuple(out)


@dataclass(frozen=True)
class Grant:
    """One statement the vendor asks for: who is granted (its kind), which actions, what its calls carry."""

    kind: GrantKind
    required: tuple[str, ...]
    account: str | None = None
    """The vendor's account (account kind; for a pinned wildcard the caller account, when known)."""
    roles: tuple[str, ...] = ()
    """The vendor's role ARNs (vendor-roles kind): each role must be granted every required action."""
    pin: tuple[PinCondition, ...] = ()
    """The conditions of a pinned wildcard (`Principal "*"`) that only the vendor's calls satisfy."""
    context: RequestContext = DIRECT_CALLS
    sid: str = "KmsGuardVendorAccess"
    """The Sid of the statement the guard owns and may write for this grant."""
    label: str = ""
    """What the grant is for, in the vendor's words (e.g. "DBFS", "EBS")."""
    optional: bool = False
    """Only needed for an optional feature: not evaluated (a customer-role grant of a shipped profile)."""

    @property
    def concrete_actions(self) -> tuple[str, ...]:
        """Every concrete KMS action the requirement expands to, in catalogue order."""
        return expand_required(self.required)

    @property
    def principal(self) -> str | list[str]:
        """The `Principal.AWS` value of the vendor's statement."""
        if self.kind == "pinned-wildcard":
            return "*"
        if self.kind == "vendor-roles":
            return self.roles[0] if len(self.roles) == 1 else list(self.roles)
        return f"arn:aws:iam::{self.account}:root"

    def who(self) -> str:
        """How the grantee is named in findings."""
        if self.kind == "vendor-roles":
            return f"role{'s' if len(self.roles) != 1 else ''} {', '.join(self.roles)}"
        if self.kind == "pinned-wildcard":
            return "calls" + (f" from account {self.account}" if self.account else "") + " (pinned wildcard)"
        return f"account {self.account}"


def expand_required(required: tuple[str, ...]) -> tuple[str, ...]:
    wanted: set[str] = set()
    for pattern in required:
        expanded = catalogue.expand(pattern)
        if not expanded:
            raise ValueError(f"required action {pattern!r} matches no KMS action")
        wanted |= expanded
    return tuple(a for a in catalogue.all_actions() if a in wanted)


@dataclass(frozen=True)
class VendorProfile:
    """A vendor as data. The flat grant fields describe its first (primary) grant; `also` holds any further ones.

    `name` is the profile's stable name (`rockset`), `display_name` what people read (`Rockset`).
    """

    name: str
    account: str | None
    required: tuple[str, ...]
    """The required actions as the vendor states them (patterns allowed, read strictly)."""
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    multi_region: bool | None = True
    """True: required; False: optional (single-Region or multi-Region both fine); None: unknown, not checked."""
    usable_states: tuple[str, ...] = ("Enabled", "Updating")
    statement_sid: str = "KmsGuardVendorAccess"
    """The Sid of the one statement the guard owns and may write (primary grant)."""
    context: RequestContext = DIRECT_CALLS
    """What the vendor's calls carry, for deciding conditions (primary grant)."""
    kind: GrantKind = "account"
    roles: tuple[str, ...] = ()
    pin: tuple[PinCondition, ...] = ()
    label: str = ""
    also: tuple[Grant, ...] = ()
    """Further statements the vendor asks for (TiDB's S3 backups, Databricks' grant operations)."""
    display_name: str = ""
    status: str = "active"
    discontinued: str | None = None
    """The date the service closed (status `discontinued`)."""
    outage_minutes: int | None = None
    """How fast losing the key becomes an outage (None: not published)."""
    outage: str = ""
    """What happens when the vendor loses the key, in one sentence naming the vendor."""
    recovery: str = ""
    regions: tuple[str, ...] = ()
    alias_accepted: bool | None = None
    sources: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    """What the public sources do not say, each with what the user must supply or what stays unknown."""

    def __post_init__(self) -> None:
        if self.account is not None and not ACCOUNT_ID.match(self.account):
            raise ValueError(f"vendor account must be 12 digits, not {self.account!r}")
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    @property
    def primary(self) -> Grant:
        return Grant(
            self.kind, self.required, self.account, self.roles, self.pin, self.context, self.statement_sid, self.label
        )

    def grants(self) -> tuple[Grant, ...]:
        """Every grant the guard evaluates (optional ones left out)."""
        return tuple(g for g in (self.primary, *self.also) if not g.optional)

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    @property
    def request_values(self) -> dict[str, str]:
        """The known condition-key values of the vendor's calls (keys lower-cased)."""
        return self.context.values(self.account)

    @property
    def concrete_actions(self) -> tuple[str, ...]:
        """Every concrete KMS action the primary grant expands to, in catalogue order."""
        return expand_required(self.required)

    @property
    def all_actions(self) -> tuple[str, ...]:
        """Every concrete action any grant needs, in catalogue order."""
        return expand_required(tuple(p for g in self.grants() for p in g.required))

    @property
    def outage_text(self) -> str:
        """The impact of losing the key, naming the vendor and how fast (for alerts)."""
        return self.outage or f"{self.display_name} loses access to the data it encrypts with this key."

    def with_account(self, account: str) -> VendorProfile:
        """The profile with the vendor's account filled in (every grant that names the vendor's account)."""
        old = self.account
        also = tuple(
            dataclasses.replace(g, account=account) if g.kind != "vendor-roles" and g.account in (old, None) else g
            for g in self.also
        )
        return dataclasses.replace(self, account=account, also=also)

    def with_roles(self, roles: tuple[str, ...]) -> VendorProfile:
        """The profile with the vendor's role ARNs (roles issued per customer) filled in."""
        also = tuple(dataclasses.replace(g, roles=roles) if g.kind == "vendor-roles" else g for g in self.also)
        return dataclasses.replace(self, roles=roles, also=also)


ROCKSET_ACCOUNT = "318212636800"

ROCKSET = VendorProfile(
    name="rockset",
    display_name="Rockset",
    account=ROCKSET_ACCOUNT,
    required=("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"),
    statement_sid="KmsGuardRocksetAccess",
    context=DIRECT_CALLS,
    status="discontinued",
    discontinued="2024-09-30",
    outage="Rockset queries for every collection in this Region fail within minutes and ingestion halts; after several "
    "hours collections are paused, and some cannot be recovered and must be recreated.",
    recovery="Restore the grant or the key state; paused collections may have to be recreated.",
    regions=("us-west-2", "us-east-1", "eu-central-1"),
    alias_accepted=False,
    sources=(
        "https://docs.rockset.com/documentation/docs/customer-managed-encryption-keys",
        "https://rockset.com/docs/rest-api/",
    ),
    unconfirmed=("status.date: the shutdown date 2024-09-30 is not confirmed by the stored sources",),
)
"""The default vendor; equal (in every field the guard uses) to `data/vendors/rockset.json` (a test checks)."""
