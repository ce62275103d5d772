"""CDK context in, one frozen typed config out. Stacks never read context.

Context keys (stable, design.md): keyArn (required), regions, alertEmails, remediation, restoreKeyState, dryRun,
trustedPrincipals, checkSchedule, vendorAccount, vendor, vendorRoles, vendorProfile; the opt-in features securityHub,
findingEvents, secondOpinion and canary (booleans, default false). Values may come from cdk.json (JSON types) or `-c
key=value` (strings), so lists accept a comma string and booleans accept "true"/"false". Every problem is reported, one
clear line each, and the app exits without a traceback. No AWS call: the account and home Region come from the key ARN.

The vendor: `vendor` names a shipped profile (default rockset), `vendorRoles` the roles it issued for this customer,
`vendorProfile` the path of the user's own profile file. That file is validated here (the same loader as the runtime)
and travels with the deployment inside the functions' environment, `KMS_GUARD_VENDOR_PROFILE`, as
`zlib+base64:` + base64(zlib(compact JSON without notes)), so the Lambda asset is never staged again. Lambda allows
4 KB of environment in all: a profile that does not fit fails the synth with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kms_guard.core import profiles
from kms_guard.core.arns import ArnError, KeyArn, parse_multi_region_key_arn, parse_regions
from kms_guard.core.coverage import CANARY_ROLE_NAME, RULE_NAMES
from kms_guard.core.vendor import ACCOUNT_ID, ROCKSET_ACCOUNT
from kms_guard.settings import (
    ENV_NAMES,
    REMEDIATION_MODES,
    Remediation,
    SettingsError,
    build_settings,
    encode_profile,
)

from infra.layers import NoLayerError, powertools_account
from infra.schedule import Heartbeat, ScheduleError, heartbeat

CONTEXT_KEYS = (
    "keyArn",
    "regions",
    "alertEmails",
    "remediation",
    "restoreKeyState",
    "dryRun",
    "trustedPrincipals",
    "checkSchedule",
    "vendorAccount",
    "vendor",
    "vendorRoles",
    "vendorProfile",
    "securityHub",
    "findingEvents",
    "secondOpinion",
    "canary",
)
DEFAULT_SCHEDULE = "rate(15 minutes)"
LAMBDA_ENV_LIMIT = 4096
"""Lambda's limit on a function's environment variables, names and values together (bytes)."""
_WORST_TOPIC_ARN = "arn:aws-us-gov:sns:us-gov-west-1:123456789012:" + "t" * 256
_WORST_TABLE = "t" * 255
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[A-Za-z]{2,}$")


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class GuardConfig:
    key: KeyArn
    regions: tuple[str, ...]
    alert_emails: tuple[str, ...] = ()
    remediation: Remediation = "off"
    restore_key_state: bool = False
    dry_run: bool = False
    trusted_principals: tuple[str, ...] = ()
    check_schedule: str = DEFAULT_SCHEDULE
    vendor_account: str | None = ROCKSET_ACCOUNT
    """Set only when given, or for the default vendor (Rockset's account, as before)."""
    vendor: str | None = None
    """A shipped profile name (None: the default, or a profile file)."""
    vendor_roles: tuple[str, ...] = ()
    vendor_profile: str | None = None
    """The user's profile, encoded for KMS_GUARD_VENDOR_PROFILE (`settings.encode_profile`)."""
    vendor_display_name: str = "Rockset"
    security_hub: bool = False
    finding_events: bool = False
    second_opinion: bool = False
    canary: bool = False
    """Opt-in: a guard-owned canary key per Region, tagged on the check's schedule, to prove the event path."""

    @property
    def account(self) -> str:
        return self.key.account

    @property
    def home_region(self) -> str:
        return self.key.region

    @property
    def other_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if r != self.home_region)

    def key_arns(self) -> list[str]:
        """The key's ARN in every configured Region: the only KMS resources the guard may touch."""
        return [str(self.key.in_region(r)) for r in self.regions]

    def rule_arns(self) -> list[str]:
        """The guard's own EventBridge rules in every Region (the same names everywhere): what coverage reads."""
        return [
            f"arn:{self.key.partition}:events:{region}:{self.account}:rule/{name}"
            for region in self.regions
            for name in RULE_NAMES
        ]

    @property
    def canary_role_arn(self) -> str | None:
        """The canary function's role: a fixed name, so rules in every Region and the guard can know it."""
        if not self.canary:
            return None
        return f"arn:{self.key.partition}:iam::{self.account}:role/{CANARY_ROLE_NAME}"

    @property
    def heartbeat(self) -> Heartbeat:
        """The scheduled check's heartbeat alarm, derived from the schedule (validated when the config was built)."""
        return heartbeat(self.check_schedule)

    def environment(self, topic_arn: str, table_name: str) -> dict[str, str]:
        """The Lambda settings (design.md): what both functions receive, named by `kms_guard.settings.ENV_NAMES`, the
        one place the variable names are written (the runtime reads them back with the same mapping)."""
        values = {
            "key_arn": str(self.key),
            "regions": ",".join(self.regions),
            "topic_arn": topic_arn,
            "state_table": table_name,
            "remediation": self.remediation,
            "restore_key_state": str(self.restore_key_state).lower(),
            "dry_run": str(self.dry_run).lower(),
            "trusted_principals": ",".join(self.trusted_principals),
            "rule_names": ",".join(RULE_NAMES),
            "check_interval_minutes": str(self.heartbeat.interval_minutes),
            "canary_role_arn": self.canary_role_arn or "",
        }
        # The vendor settings are set only when given (the runtime's default is Rockset, as before).
        for field, value in (
            ("vendor_account", self.vendor_account or ""),
            ("vendor", self.vendor or ""),
            ("vendor_roles", ",".join(self.vendor_roles)),
            ("vendor_profile", self.vendor_profile or ""),
        ):
            if value:
                values[field] = value
        # The opt-in features are set only when on: a deployment without them carries no trace of them.
        for field, on in (
            ("security_hub", self.security_hub),
            ("finding_events", self.finding_events),
            ("second_opinion", self.second_opinion),
        ):
            if on:
                values[field] = "true"
        return {ENV_NAMES[field]: value for field, value in values.items()}


def config_from_context(context: Mapping[str, Any]) -> GuardConfig:
    problems: list[str] = []

    raw_key = context.get("keyArn")
    key: KeyArn | None = None
    if not raw_key or not isinstance(raw_key, str):
        problems.append("keyArn: required (the full key ARN, arn:aws:kms:REGION:ACCOUNT:key/mrk-...)")
    else:
        try:
            key = parse_multi_region_key_arn(raw_key.strip())
        except ArnError as exc:
            problems.append(f"keyArn: {exc}")

    regions: tuple[str, ...] = ()
    raw_regions = context.get("regions")
    if key is not None:
        try:
            regions = parse_regions(_as_list(raw_regions, "regions", problems), key.region)
        except ArnError as exc:
            problems.append(f"regions: {exc}")

    emails = tuple(_as_list(context.get("alertEmails"), "alertEmails", problems))
    for email in emails:
        if not _EMAIL.match(email):
            problems.append(f"alertEmails: not an email address: {email[:80]!r}")

    remediation = str(context.get("remediation") or "off").strip()
    mode = next((m for m in REMEDIATION_MODES if m == remediation), None)
    if mode is None:
        problems.append(f"remediation: unknown mode {remediation[:40]!r} (one of {', '.join(REMEDIATION_MODES)})")

    restore = _as_bool(context.get("restoreKeyState"), "restoreKeyState", problems)
    dry_run = _as_bool(context.get("dryRun"), "dryRun", problems)
    security_hub = _as_bool(context.get("securityHub"), "securityHub", problems)
    finding_events = _as_bool(context.get("findingEvents"), "findingEvents", problems)
    second_opinion = _as_bool(context.get("secondOpinion"), "secondOpinion", problems)
    canary = _as_bool(context.get("canary"), "canary", problems)

    schedule = str(context.get("checkSchedule") or DEFAULT_SCHEDULE).strip()
    try:
        heartbeat(schedule)
    except ScheduleError as exc:
        problems.append(f"checkSchedule: {exc}")

    vendor_name = str(context.get("vendor") or "").strip() or None
    vendor_roles = tuple(_as_list(context.get("vendorRoles"), "vendorRoles", problems))
    profile_path = str(context.get("vendorProfile") or "").strip() or None
    raw_account = str(context.get("vendorAccount") or "").strip() or None
    default_vendor = vendor_name in (None, profiles.DEFAULT) and profile_path is None
    vendor = raw_account or (ROCKSET_ACCOUNT if default_vendor else None)
    if vendor is not None and not ACCOUNT_ID.match(vendor):
        problems.append(f"vendorAccount: must be a 12-digit AWS account ID, not {vendor[:40]!r}")
    encoded_profile: str | None = None
    if profile_path is not None:
        if vendor_name is not None:
            problems.append("vendor and vendorProfile: give one, not both")
        try:
            with open(profile_path, encoding="utf-8") as handle:
                document = profiles.parse(handle.read(), profile_path)
            encoded_profile = encode_profile(document)
        except OSError as exc:
            problems.append(f"vendorProfile: cannot read {profile_path}: {exc.strerror}")
        except profiles.ProfileError as exc:
            problems.append(f"vendorProfile: {exc}")
    display_name = "Rockset"

    trusted = tuple(_as_list(context.get("trustedPrincipals"), "trustedPrincipals", problems))
    if key is not None:
        try:  # the functions run in the key's Region: Powertools must be published there
            powertools_account(key.partition, key.region)
        except NoLayerError as exc:
            problems.append(f"keyArn: {exc}")
    if key is not None and not problems:
        # The runtime's own validation: what the app accepts, the Lambda's cold start accepts too.
        try:
            settings = build_settings(
                key_arn=str(key),
                regions=regions,
                trusted_principals=trusted,
                vendor=vendor_name,
                vendor_roles=vendor_roles,
                vendor_profile=encoded_profile,
                vendor_account=vendor,
                names={
                    "trusted_principals": "trustedPrincipals",
                    "vendor": "vendor",
                    "vendor_roles": "vendorRoles",
                    "vendor_profile": "vendorProfile",
                    "vendor_account": "vendorAccount",
                },
            )
            display_name = settings.vendor.display_name
        except SettingsError as exc:
            problems.append(str(exc))

    unknown = sorted(k for k in context if k in _NEAR_MISSES)
    problems.extend(f"{k}: unknown context key (did you mean {_NEAR_MISSES[k]}?)" for k in unknown)
    if problems or key is None or mode is None:
        raise ConfigError(problems)
    config = GuardConfig(
        key=key,
        regions=regions,
        alert_emails=emails,
        remediation=mode,
        restore_key_state=restore,
        dry_run=dry_run,
        trusted_principals=trusted,
        check_schedule=schedule,
        vendor_account=vendor,
        vendor=vendor_name,
        vendor_roles=vendor_roles,
        vendor_profile=encoded_profile,
        vendor_display_name=display_name,
        security_hub=security_hub,
        finding_events=finding_events,
        second_opinion=second_opinion,
        canary=canary,
    )
    size = sum(len(k) + len(v.encode()) for k, v in config.environment(_WORST_TOPIC_ARN, _WORST_TABLE).items())
    if size > LAMBDA_ENV_LIMIT:
        raise ConfigError(
            [
                f"vendorProfile: the functions' environment would be {size} bytes with this profile, over Lambda's "
                f"{LAMBDA_ENV_LIMIT}-byte limit: shorten the profile (sources, outage text) or use a shipped vendor"
            ]
        )
    return config


_NEAR_MISSES = {k.lower(): k for k in CONTEXT_KEYS if k.lower() != k} | {
    "key_arn": "keyArn",
    "keyarn": "keyArn",
    "region": "regions",
    "alertEmail": "alertEmails",
    "emails": "alertEmails",
}


def _as_list(value: Any, name: str, problems: list[str]) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    problems.append(f"{name}: must be a list of strings or a comma-separated string")
    return []


def _as_bool(value: Any, name: str, problems: list[str]) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.append(f"{name}: must be true or false, not {str(value)[:40]!r}")
    return False
