"""The guard's settings: one frozen object, parsed once (Lambda cold start, or CLI flags).

Environment variables (stable, design.md "Lambda settings"): KMS_GUARD_KEY_ARN, KMS_GUARD_REGIONS, KMS_GUARD_TOPIC_ARN,
KMS_GUARD_STATE_TABLE, KMS_GUARD_REMEDIATION (off | restore-statement | revert), KMS_GUARD_RESTORE_KEY_STATE,
KMS_GUARD_DRY_RUN, KMS_GUARD_TRUSTED_PRINCIPALS, KMS_GUARD_VENDOR_ACCOUNT; the vendor: KMS_GUARD_VENDOR (a shipped
profile name, default rockset), KMS_GUARD_VENDOR_ROLES (comma-separated role ARNs issued per customer) and
KMS_GUARD_VENDOR_PROFILE (a user's own profile, the validated JSON the CDK app embeds); the opt-in features
KMS_GUARD_SECURITY_HUB,
KMS_GUARD_FINDING_EVENTS, KMS_GUARD_SECOND_OPINION (`true`/`false`, off when absent); for the coverage self-check
KMS_GUARD_RULE_NAMES (the guard's rules, the same names in every Region), KMS_GUARD_CHECK_INTERVAL_MINUTES (how often
the scheduled check runs) and, with the opt-in canary, KMS_GUARD_CANARY_ROLE_ARN. A bad value raises
`SettingsError` naming the variable, so a misconfigured function fails its cold start loudly instead of guarding
nothing.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kms_guard.core import profiles
from kms_guard.core.arns import REGION, ArnError, KeyArn, parse_regions
from kms_guard.core.coverage import RULE_NAMES
from kms_guard.core.vendor import ROCKSET, ROLE_ARN, VendorProfile

Remediation = Literal["off", "restore-statement", "revert"]
REMEDIATION_MODES: tuple[Remediation, ...] = ("off", "restore-statement", "revert")

MAX_WRITES_PER_HOUR = 3
"""At most 3 writes per key per Region per hour (design.md, remediation rules)."""
REMINDER_SECONDS = 3600
"""A reminder while a critical problem lasts (Rockset paused collections after several hours; others are faster)."""

# ASCII only: Python's \d and \w also match other scripts' digits and letters, which no ARN holds.
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::[0-9]{12}:[A-Za-z0-9_+=,.@/-]{1,512}\Z")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}\Z")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}\Z")
_RULE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
CHECK_INTERVAL_MINUTES = 15
"""The scheduled check's default interval (the CDK default `rate(15 minutes)`)."""
CANARY_GRACE_MINUTES = 15
"""Beyond two check intervals, how late a canary may be (CloudTrail to EventBridge is best effort, usually minutes)."""


COVERAGE_EVERY_MINUTES = 60
"""The scheduled check reads the guard's sight (trails and rules) at most this often, unless the canary is on."""


class SettingsError(ValueError):
    """A bad setting; the message names it."""


@dataclass(frozen=True)
class Settings:
    key: KeyArn
    regions: tuple[str, ...]
    vendor: VendorProfile = ROCKSET
    topic_arn: str | None = None
    state_table: str | None = None
    remediation: Remediation = "off"
    restore_key_state: bool = False
    dry_run: bool = False
    trusted_principals: tuple[str, ...] = ()
    max_writes_per_hour: int = MAX_WRITES_PER_HOUR
    reminder_seconds: int = REMINDER_SECONDS
    security_hub: bool = False
    """Opt-in: findings to Security Hub (BatchImportFindings, home Region)."""
    finding_events: bool = False
    """Opt-in: one EventBridge event per change of findings (home Region default bus)."""
    second_opinion: bool = False
    """Opt-in: IAM Access Analyzer CheckNoNewAccess confirms the verdict and every policy written."""
    rule_names: tuple[str, ...] = RULE_NAMES
    check_interval_minutes: int = CHECK_INTERVAL_MINUTES
    canary_role_arn: str | None = None
    """The canary's role (context `canary`); None: no canary."""
    coverage_every_minutes: int = COVERAGE_EVERY_MINUTES
    """How often the scheduled check also reads the guard's sight (trails, rules): a trail's settings change rarely,
    and reading them on every check cost about a quarter of its cold start. With the canary on, every check."""
    home_region: str | None = None
    """The deployment's home Region (its table, topic and functions); None: the key's own Region (one key)."""

    @property
    def home(self) -> str:
        return self.home_region or self.key.region

    @property
    def canary_max_age_seconds(self) -> int:
        """How old a Region's last canary may be: two check intervals (the canary runs on the check's schedule, so
        one run may land just after a check) plus a grace for CloudTrail's delivery."""
        return (2 * self.check_interval_minutes + CANARY_GRACE_MINUTES) * 60

    @property
    def key_arn(self) -> str:
        return str(self.key)

    def region_key_arn(self, region: str) -> str:
        return str(self.key.in_region(region))

    @property
    def writes_enabled(self) -> bool:
        return self.remediation != "off" or self.restore_key_state


def build_settings(
    *,
    key_arn: str,
    regions: str | list[str] | tuple[str, ...] | None = None,
    topic_arn: str | None = None,
    state_table: str | None = None,
    remediation: str = "off",
    restore_key_state: bool | str = False,
    dry_run: bool | str = False,
    trusted_principals: str | list[str] | tuple[str, ...] | None = None,
    vendor_account: str | None = None,
    vendor: str | None = None,
    vendor_roles: str | list[str] | tuple[str, ...] | None = None,
    vendor_profile: str | None = None,
    security_hub: bool | str = False,
    finding_events: bool | str = False,
    second_opinion: bool | str = False,
    rule_names: str | list[str] | tuple[str, ...] | None = None,
    check_interval_minutes: int | str | None = None,
    canary_role_arn: str | None = None,
    coverage_every_minutes: int = COVERAGE_EVERY_MINUTES,
    home_region: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Settings:
    """Validate raw values. `names` maps each field to how the user spelled it (env var or CLI flag) for errors."""
    label = dict(names or {})

    def name(field: str) -> str:
        return label.get(field, field)

    try:
        key = KeyArn.parse(key_arn.strip())
    except ArnError as exc:
        raise SettingsError(f"{name('key_arn')}: {exc}") from None
    if not key.has_key_id_shape:
        raise SettingsError(
            f"{name('key_arn')}: {key.key_id[:80]!r} is not a KMS key ID (a lower-case UUID, or mrk- and 32 hex digits "
            "for a multi-Region key)"
        )
    try:
        region_list = parse_regions(regions or "", key.region)
    except ArnError as exc:
        raise SettingsError(f"{name('regions')}: {exc}") from None
    if not key.is_multi_region and region_list != (key.region,):
        raise SettingsError(
            f"{name('regions')}: key {key.key_id} is a single-Region key: it exists only in {key.region}, so that is "
            f"its only Region (a multi-Region key's ID starts with mrk-)"
        )
    if remediation not in REMEDIATION_MODES:
        raise SettingsError(
            f"{name('remediation')}: unknown mode {remediation!r} (one of {', '.join(REMEDIATION_MODES)})"
        )
    if topic_arn and not _TOPIC_ARN.match(topic_arn):
        raise SettingsError(f"{name('topic_arn')}: not an SNS topic ARN: {topic_arn[:120]!r}")
    if state_table and not _TABLE.match(state_table):
        raise SettingsError(f"{name('state_table')}: not a DynamoDB table name: {state_table[:120]!r}")
    trusted = _list(trusted_principals)
    for principal in trusted:
        if not _PRINCIPAL_ARN.match(principal):
            raise SettingsError(f"{name('trusted_principals')}: not an IAM role or user ARN: {principal[:120]!r}")
    profile = resolve_vendor(
        vendor=vendor,
        vendor_roles=vendor_roles,
        vendor_profile=vendor_profile,
        vendor_account=vendor_account,
        name=name,
    )
    try:
        profiles.check_external(profile, key.account)
    except profiles.ProfileError as exc:
        raise SettingsError(f"{name('vendor')}: {exc}") from None
    if not key.is_multi_region and profile.multi_region:
        raise SettingsError(
            f"{name('key_arn')}: key {key.key_id} is not a multi-Region key (its key ID must start with mrk-), and "
            f"{profile.display_name} requires one"
        )
    if home_region is not None and not REGION.match(home_region):
        raise SettingsError(f"home Region: not an AWS Region name: {home_region[:60]!r}")
    rules = _list(rule_names) or RULE_NAMES
    for rule in rules:
        if not _RULE_NAME.match(rule):
            raise SettingsError(f"{name('rule_names')}: not an EventBridge rule name: {rule[:80]!r}")
    interval = CHECK_INTERVAL_MINUTES
    if check_interval_minutes not in (None, ""):
        text = str(check_interval_minutes).strip()
        if not text.isdigit() or int(text) < 1:
            raise SettingsError(
                f"{name('check_interval_minutes')}: must be a whole number of minutes, not {text[:20]!r}"
            )
        interval = int(text)
    canary_role = (canary_role_arn or "").strip() or None
    if canary_role and not ROLE_ARN.match(canary_role):
        raise SettingsError(f"{name('canary_role_arn')}: not an IAM role ARN: {canary_role[:120]!r}")
    return Settings(
        key=key,
        regions=region_list,
        vendor=profile,
        topic_arn=topic_arn or None,
        state_table=state_table or None,
        remediation=remediation,
        restore_key_state=_bool(restore_key_state, name("restore_key_state")),
        dry_run=_bool(dry_run, name("dry_run")),
        trusted_principals=trusted,
        security_hub=_bool(security_hub, name("security_hub")),
        finding_events=_bool(finding_events, name("finding_events")),
        second_opinion=_bool(second_opinion, name("second_opinion")),
        rule_names=rules,
        check_interval_minutes=interval,
        canary_role_arn=canary_role,
        coverage_every_minutes=max(0, coverage_every_minutes),
        home_region=home_region if home_region not in (None, key.region) else None,
    )


PROFILE_PREFIX = "zlib+base64:"
MAX_PROFILE_TEXT = profiles.MAX_PROFILE_BYTES + 1
"""How a user's profile travels in KMS_GUARD_VENDOR_PROFILE: this prefix, then base64(zlib(compact JSON))."""


def encode_profile(document: profiles.Document) -> str:
    """A validated profile document as the deployment carries it (notes dropped, everything else kept)."""
    raw = {k: v for k, v in document.raw.items() if k not in ("notes", "$comment")}
    text = json.dumps(raw, separators=(",", ":"), sort_keys=True)
    return PROFILE_PREFIX + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def decode_profile(value: str, label: str) -> str:
    """The profile JSON text from KMS_GUARD_VENDOR_PROFILE (encoded, or plain JSON)."""
    if not value.startswith(PROFILE_PREFIX):
        return value
    try:
        inflate = zlib.decompressobj()
        # bounded: a profile is at most MAX_PROFILE_BYTES, and a small deflate stream can inflate to gigabytes
        data = inflate.decompress(base64.b64decode(value[len(PROFILE_PREFIX) :], validate=True), MAX_PROFILE_TEXT)
        if inflate.unconsumed_tail or len(data) >= MAX_PROFILE_TEXT:
            raise SettingsError(f"{label}: the embedded profile is larger than {profiles.MAX_PROFILE_BYTES} bytes")
        return data.decode("utf-8")
    except SettingsError:
        raise
    except (ValueError, zlib.error) as exc:
        raise SettingsError(f"{label}: not a {PROFILE_PREFIX} profile ({exc})") from None


def resolve_vendor(
    *,
    vendor: str | None,
    vendor_roles: str | list[str] | tuple[str, ...] | None,
    vendor_profile: str | None,
    vendor_account: str | None,
    name: Callable[[str], str],
) -> VendorProfile:
    """The vendor profile from the settings (a shipped name or a profile document, roles, account)."""
    vendor = (vendor or "").strip() or None
    account = (vendor_account or "").strip() or None
    roles = _list(vendor_roles)
    if vendor in (None, profiles.DEFAULT) and not vendor_profile and not roles and account is None:
        return ROCKSET
    try:
        if vendor_profile:
            if vendor not in (None, ""):
                raise SettingsError(f"{name('vendor')} and {name('vendor_profile')}: give one, not both")
            text = decode_profile(vendor_profile, name("vendor_profile"))
            return profiles.load(profile_text=text, profile_source=name("vendor_profile"), roles=roles, account=account)
        return profiles.load(vendor or profiles.DEFAULT, roles=roles, account=account)
    except profiles.ProfileError as exc:
        message = str(exc)
        message = message.replace("--vendor-account", name("vendor_account")).replace(
            "--vendor-role", name("vendor_roles")
        )
        if message.startswith("unknown vendor"):
            message = f"{name('vendor')}: {message}"
        raise SettingsError(message) from None


ENV_NAMES = {
    "key_arn": "KMS_GUARD_KEY_ARN",
    "regions": "KMS_GUARD_REGIONS",
    "topic_arn": "KMS_GUARD_TOPIC_ARN",
    "state_table": "KMS_GUARD_STATE_TABLE",
    "remediation": "KMS_GUARD_REMEDIATION",
    "restore_key_state": "KMS_GUARD_RESTORE_KEY_STATE",
    "dry_run": "KMS_GUARD_DRY_RUN",
    "trusted_principals": "KMS_GUARD_TRUSTED_PRINCIPALS",
    "vendor_account": "KMS_GUARD_VENDOR_ACCOUNT",
    "vendor": "KMS_GUARD_VENDOR",
    "vendor_roles": "KMS_GUARD_VENDOR_ROLES",
    "vendor_profile": "KMS_GUARD_VENDOR_PROFILE",
    "security_hub": "KMS_GUARD_SECURITY_HUB",
    "finding_events": "KMS_GUARD_FINDING_EVENTS",
    "second_opinion": "KMS_GUARD_SECOND_OPINION",
    "rule_names": "KMS_GUARD_RULE_NAMES",
    "check_interval_minutes": "KMS_GUARD_CHECK_INTERVAL_MINUTES",
    "canary_role_arn": "KMS_GUARD_CANARY_ROLE_ARN",
    "keys_file": "KMS_GUARD_KEYS_FILE",
}


def env_arguments(environ: Mapping[str, str]) -> dict[str, Any]:
    """build_settings arguments from the Lambda environment (design.md); absent variables are left out."""
    return {
        "key_arn": environ.get(ENV_NAMES["key_arn"], ""),
        "regions": environ.get(ENV_NAMES["regions"]),
        "topic_arn": environ.get(ENV_NAMES["topic_arn"]),
        "state_table": environ.get(ENV_NAMES["state_table"]),
        "remediation": environ.get(ENV_NAMES["remediation"], "off").strip() or "off",
        "restore_key_state": environ.get(ENV_NAMES["restore_key_state"], "false"),
        "dry_run": environ.get(ENV_NAMES["dry_run"], "false"),
        "trusted_principals": environ.get(ENV_NAMES["trusted_principals"]),
        "vendor_account": environ.get(ENV_NAMES["vendor_account"]) or None,
        "vendor": environ.get(ENV_NAMES["vendor"]) or None,
        "vendor_roles": environ.get(ENV_NAMES["vendor_roles"]),
        "vendor_profile": environ.get(ENV_NAMES["vendor_profile"]) or None,
        "security_hub": environ.get(ENV_NAMES["security_hub"], "false"),
        "finding_events": environ.get(ENV_NAMES["finding_events"], "false"),
        "second_opinion": environ.get(ENV_NAMES["second_opinion"], "false"),
        "rule_names": environ.get(ENV_NAMES["rule_names"]),
        "check_interval_minutes": environ.get(ENV_NAMES["check_interval_minutes"]),
        "canary_role_arn": environ.get(ENV_NAMES["canary_role_arn"]),
    }


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """The Lambda's settings from its environment variables (design.md), one key."""
    arguments = env_arguments(environ)
    if not arguments["key_arn"]:
        raise SettingsError(f"{ENV_NAMES['key_arn']}: missing")
    return build_settings(**arguments, names=ENV_NAMES)


def _bool(value: bool | str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise SettingsError(f"{name}: must be true or false, not {value[:40]!r}")


def _list(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(i.strip() for i in items if i and i.strip()))
