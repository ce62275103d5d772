"""CDK context in, one frozen typed config out. Stacks never read context.

Context keys (stable, design.md): keyArn (required), regions, alertEmails, remediation, restoreKeyState, dryRun,
trustedPrincipals, checkSchedule, vendorAccount, vendor, vendorRoles, vendorProfile; the opt-in features securityHub,
findingEvents, secondOpinion and canary (booleans, default false). Values may come from cdk.json (JSON types) or `-c
key=value` (strings), so lists accept a comma string and booleans accept "true"/"false". Every problem is reported, one
clear line each, and the app exits without a traceback. No AWS call: the account and home Region come from the key ARN.

Many keys: `keys`, a list of `{keyArn, vendor, vendorRoles, vendorProfile, regions, remediation, restoreKeyState}`
(cdk.json, or JSON text with `-c keys='[...]'`), validated by the runtime's own parser
(`kms_guard.deployment.parse_key_list`), so the app and the Lambda accept exactly the same list. The per-key context
keys (keyArn, regions, remediation, restoreKeyState, vendor, vendorRoles, vendorProfile, vendorAccount) then belong in
the entries: beside `keys` each is a problem. The home Region is the first key's. A list of one key deploys exactly as
the single-key context keys do (the same template); more keys travel in the keys layer (infra.keys), the functions'
environment naming only its file (`KMS_GUARD_KEYS_FILE`).

The vendor: `vendor` names a shipped profile (default rockset), `vendorRoles` the roles it issued for this customer,
`vendorProfile` the path of the user's own profile file. That file is validated here (the same loader as the runtime)
and travels with the deployment inside the functions' environment, `KMS_GUARD_VENDOR_PROFILE`, as
`zlib+base64:` + base64(zlib(compact JSON without notes)), so the Lambda asset is never staged again. Lambda allows
4 KB of environment in all: a profile that does not fit fails the synth with a clear message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kms_guard.core import profiles
from kms_guard.core.arns import ArnError, KeyArn, parse_regions
from kms_guard.core.coverage import CANARY_ROLE_NAME, RULE_NAMES
from kms_guard.core.vendor import ACCOUNT_ID, ROCKSET_ACCOUNT
from kms_guard.deployment import (
    FIELDS,
    Deployment,
    KeyListError,
    keys_document,
    no_duplicate_fields,
    parse_key_list,
)
from kms_guard.settings import (
    ENV_NAMES,
    REMEDIATION_MODES,
    Remediation,
    SettingsError,
    build_settings,
    encode_profile,
)

from infra.grants import MANAGED_POLICIES_PER_ROLE, MANAGED_POLICY_LIMIT, KeyAccess, policy_documents
from infra.layers import NoLayerError, powertools_account
from infra.schedule import Heartbeat, ScheduleError, heartbeat

CONTEXT_KEYS = (
    "keyArn",
    "regions",
    "alertEmails",
    "remediation",
    "restoreKeyState",
    "dryRun",
    "securityHub",
    "findingEvents",
    "secondOpinion",
    "canary",
    "checkSchedule",
    "vendorRoles",
    "vendorAccount",
    "vendor",
    "vendorProfile",
    "trustedPrincipals",
    "keys",
)
"""Every context key the app reads, in the order their problems are reported (as the single-key checks always
listed them)."""
PER_KEY_CONTEXT = tuple(FIELDS)
"""The single-key context keys, which are exactly the fields of a `keys` entry: beside `keys`, each is a problem."""
KEYS_FILE = "/opt/kms-guard/keys.json"
"""Where the functions find the keys file of a many-key deployment: `kms-guard/keys.json` in the keys layer, which
Lambda extracts under /opt (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html)."""
DEFAULT_SCHEDULE = "rate(15 minutes)"
POWERTOOLS_ENVIRONMENT = {"POWERTOOLS_SERVICE_NAME": "kms-guard", "POWERTOOLS_METRICS_NAMESPACE": "KmsGuard"}
"""What every function's environment holds beside the guard's settings."""
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
    keys: tuple[KeyAccess, ...]
    """Every guarded key (one for the single-key context keys), the home Region's first."""
    alert_emails: tuple[str, ...] = ()
    dry_run: bool = False
    trusted_principals: tuple[str, ...] = ()
    check_schedule: str = DEFAULT_SCHEDULE
    vendor_account: str | None = ROCKSET_ACCOUNT
    """One key: set only when given, or for the default vendor (Rockset's account, as before)."""
    vendor: str | None = None
    """One key: a shipped profile name (None: the default, or a profile file)."""
    vendor_roles: tuple[str, ...] = ()
    vendor_profile: str | None = None
    """One key: the user's profile, encoded for KMS_GUARD_VENDOR_PROFILE (`settings.encode_profile`)."""
    vendor_display_name: str = "Rockset"
    keys_file: str | None = None
    """Many keys: the deployed keys file's text (`kms_guard.deployment.keys_document`), shipped in the keys layer."""
    vendor_names: tuple[str, ...] = ()
    """Many keys: the vendors' display names, each once (the stack's description)."""
    security_hub: bool = False
    finding_events: bool = False
    second_opinion: bool = False
    canary: bool = False
    """Opt-in: a guard-owned canary key per Region, tagged on the check's schedule, to prove the event path."""

    @property
    def many_keys(self) -> bool:
        """The keys travel in the keys layer (more than one key), not in the single-key variables."""
        return self.keys_file is not None

    @property
    def key(self) -> KeyArn:
        """The first key (the only one, for one key): its Region is the home Region, its account the account."""
        return self.keys[0].key

    @property
    def remediation(self) -> Remediation:
        """The first key's (the only one's, for one key)."""
        return self.keys[0].remediation

    @property
    def restore_key_state(self) -> bool:
        return self.keys[0].restore_key_state

    @property
    def account(self) -> str:
        return self.key.account

    @property
    def home_region(self) -> str:
        return self.key.region

    @property
    def regions(self) -> tuple[str, ...]:
        """Every Region some key is watched in, the home Region first: where the guard has rules or forwarders."""
        seen: dict[str, None] = {self.home_region: None}
        for access in self.keys:
            seen.update(dict.fromkeys(access.regions))
        return tuple(seen)

    @property
    def other_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if r != self.home_region)

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

    @property
    def description(self) -> str:
        """The home stack's description (CloudFormation allows 1,024 characters)."""
        if not self.many_keys:
            return f"kms-guard: keeps a KMS key usable by {self.vendor_display_name}"
        text = f"kms-guard: keeps {len(self.keys)} KMS keys usable by their vendors ({', '.join(self.vendor_names)})"
        return text if len(text) <= 1024 else text[:1020] + "...)"

    def environment(self, topic_arn: str, table_name: str) -> dict[str, str]:
        """The Lambda settings (design.md): what both functions receive, named by `kms_guard.settings.ENV_NAMES`, the
        one place the variable names are written (the runtime reads them back with the same mapping). Many keys: the
        keys file's path instead of the single key's variables (the runtime's `deployment_from_env`)."""
        shared = {
            "dry_run": str(self.dry_run).lower(),
            "trusted_principals": ",".join(self.trusted_principals),
            "rule_names": ",".join(RULE_NAMES),
            "check_interval_minutes": str(self.heartbeat.interval_minutes),
            "canary_role_arn": self.canary_role_arn or "",
        }
        if self.many_keys:
            values = {"topic_arn": topic_arn, "state_table": table_name, **shared, "keys_file": KEYS_FILE}
        else:  # in the order the single-key variables always had: one key's template is unchanged
            values = {
                "key_arn": str(self.key),
                "regions": ",".join(self.keys[0].regions),
                "topic_arn": topic_arn,
                "state_table": table_name,
                "remediation": self.remediation,
                "restore_key_state": str(self.restore_key_state).lower(),
                **shared,
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


def config_from_context(context: Mapping[str, Any], *, read_file: Callable[[str], str] | None = None) -> GuardConfig:
    """Validate the context into a GuardConfig, or raise ConfigError with every problem. `read_file` reads a
    `vendorProfile` path (default: the file, relative to where the app runs)."""
    problems: list[str] = []
    read = read_file or _read_text

    emails = tuple(_as_list(context.get("alertEmails"), "alertEmails", problems))
    for email in emails:
        if not _EMAIL.match(email):
            problems.append(f"alertEmails: not an email address: {email[:80]!r}")
    dry_run = _as_bool(context.get("dryRun"), "dryRun", problems)
    shared: dict[str, Any] = {
        "dry_run": dry_run,
        "security_hub": _as_bool(context.get("securityHub"), "securityHub", problems),
        "finding_events": _as_bool(context.get("findingEvents"), "findingEvents", problems),
        "second_opinion": _as_bool(context.get("secondOpinion"), "secondOpinion", problems),
    }
    canary = _as_bool(context.get("canary"), "canary", problems)
    schedule = str(context.get("checkSchedule") or DEFAULT_SCHEDULE).strip()
    try:
        heartbeat(schedule)
    except ScheduleError as exc:
        problems.append(f"checkSchedule: {exc}")
    trusted = tuple(_as_list(context.get("trustedPrincipals"), "trustedPrincipals", problems))

    if _given(context.get("keys")):
        keys = _many_keys(context, {**shared, "trusted_principals": trusted}, problems, read)
    else:
        keys = _one_key(context, trusted, problems, read)

    unknown = sorted(k for k in context if k in _NEAR_MISSES)
    problems.extend(f"{k}: unknown context key (did you mean {_NEAR_MISSES[k]}?)" for k in unknown)
    if problems or keys is None:
        raise ConfigError(sorted(problems, key=_problem_order))
    config = GuardConfig(
        **keys,
        alert_emails=emails,
        dry_run=dry_run,
        trusted_principals=trusted,
        check_schedule=schedule,
        security_hub=shared["security_hub"],
        finding_events=shared["finding_events"],
        second_opinion=shared["second_opinion"],
        canary=canary,
    )
    environment = {**config.environment(_WORST_TOPIC_ARN, _WORST_TABLE), **POWERTOOLS_ENVIRONMENT}
    size = sum(len(k) + len(v.encode()) for k, v in environment.items())
    if size > LAMBDA_ENV_LIMIT:
        if config.vendor_profile and not config.many_keys:
            problem = (
                f"vendorProfile: the functions' environment would be {size} bytes with this profile, over Lambda's "
                f"{LAMBDA_ENV_LIMIT}-byte limit: shorten the profile (sources, outage text) or use a shipped vendor"
            )
        else:
            largest = max(environment, key=lambda k: len(environment[k].encode()))
            problem = (
                f"{_CONTEXT_OF.get(largest, largest)}: the functions' environment would be {size} bytes, over "
                f"Lambda's {LAMBDA_ENV_LIMIT}-byte limit; this setting is its largest part: shorten it"
            )
        raise ConfigError([problem])
    if config.many_keys:
        policies = len(policy_documents(config.keys))
        if policies > MANAGED_POLICIES_PER_ROLE:
            raise ConfigError(
                [
                    f"keys: the guard's access to these keys takes {policies} managed policies of at most "
                    f"{MANAGED_POLICY_LIMIT} characters, and IAM attaches at most {MANAGED_POLICIES_PER_ROLE} to a "
                    "role: guard fewer keys or Regions per deployment (split the list)"
                ]
            )
    return config


_NAMES = {
    "key_arn": "keyArn",
    "regions": "regions",
    "trusted_principals": "trustedPrincipals",
    "vendor": "vendor",
    "vendor_roles": "vendorRoles",
    "vendor_profile": "vendorProfile",
    "vendor_account": "vendorAccount",
}
"""The single-key context keys, by the setting they set (how build_settings names them in a problem)."""
_CONTEXT_OF = {ENV_NAMES[setting]: name for setting, name in _NAMES.items()}
_PROBE_KEY = "arn:aws:kms:us-east-1:000000000000:key/mrk-00000000000000000000000000000000"
"""A well-formed key ARN, only to let the runtime's validation check the settings every key shares (with many keys,
before any key of the list is known to be valid). It never reaches a problem line or the deployment."""


def _one_key(
    context: Mapping[str, Any], trusted: tuple[str, ...], problems: list[str], read: Callable[[str], str]
) -> dict[str, Any] | None:
    """The single-key context keys: one key, its settings in the functions' environment (as always)."""
    raw_key = context.get("keyArn")
    key: KeyArn | None = None
    if not raw_key or not isinstance(raw_key, str):
        problems.append("keyArn: required (the full key ARN, arn:aws:kms:REGION:ACCOUNT:key/mrk-...), or keys")
    else:
        try:
            key = KeyArn.parse(raw_key.strip())
        except ArnError as exc:
            problems.append(f"keyArn: {exc}")

    regions: tuple[str, ...] = ()
    if key is not None:
        try:
            regions = parse_regions(_as_list(context.get("regions"), "regions", problems), key.region)
        except ArnError as exc:
            problems.append(f"regions: {exc}")

    remediation = str(context.get("remediation") or "off").strip()
    mode = next((m for m in REMEDIATION_MODES if m == remediation), None)
    if mode is None:
        problems.append(f"remediation: unknown mode {remediation[:40]!r} (one of {', '.join(REMEDIATION_MODES)})")
    restore = _as_bool(context.get("restoreKeyState"), "restoreKeyState", problems)

    before = len(problems)
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
            encoded_profile = encode_profile(profiles.parse(read(profile_path), profile_path))
        except OSError as exc:
            problems.append(f"vendorProfile: cannot read {profile_path}: {exc.strerror}")
        except profiles.ProfileError as exc:
            problems.append(f"vendorProfile: {exc}")
    vendor_problems = len(problems) > before
    display_name = "Rockset"

    if key is not None:
        try:  # the functions run in the key's Region: Powertools must be published there
            powertools_account(key.partition, key.region)
        except NoLayerError as exc:
            problems.append(f"keyArn: {exc}")
    if key is not None and not vendor_problems:
        # The runtime's own validation: what the app accepts, the Lambda's cold start accepts too (a single-Region
        # key, for a vendor that does not require a multi-Region one, as in a key list).
        try:
            settings = build_settings(
                key_arn=str(key),
                regions=regions,
                trusted_principals=trusted,
                vendor=vendor_name,
                vendor_roles=vendor_roles,
                vendor_profile=encoded_profile,
                vendor_account=vendor,
                names=_NAMES,
            )
            display_name = settings.vendor.display_name
        except SettingsError as exc:
            problems.append(str(exc))
    if key is None or mode is None:
        return None
    return {
        "keys": (KeyAccess(key, regions, mode, restore),),
        "vendor_account": vendor,
        "vendor": vendor_name,
        "vendor_roles": vendor_roles,
        "vendor_profile": encoded_profile,
        "vendor_display_name": display_name,
    }


def _many_keys(
    context: Mapping[str, Any], shared: dict[str, Any], problems: list[str], read: Callable[[str], str]
) -> dict[str, Any] | None:
    """The `keys` list, validated by the runtime's parser (every problem of the list at once). One key deploys as the
    single-key context keys do; more travel in the keys layer."""
    for name in PER_KEY_CONTEXT:
        if _given(context.get(name)):
            problems.append(
                f"{name}: a setting of each key, and keys is given: set it in the entries of keys (or drop keys to "
                "guard the one key of keyArn)"
            )
    raw = context.get("keys")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw, object_pairs_hook=no_duplicate_fields)
        except (ValueError, RecursionError) as exc:
            problems.append(
                f"keys: not JSON ({' '.join(str(exc).split())[:200]}); give a JSON list of key objects, e.g. "
                '[{"keyArn": "arn:aws:kms:REGION:ACCOUNT:key/KEY_ID"}]'
            )
            return None
    try:  # the shared settings every key gets: checked once, so a bad one is one problem, not one per key
        build_settings(key_arn=_PROBE_KEY, trusted_principals=shared["trusted_principals"], names=_NAMES)
    except SettingsError as exc:
        problems.append(str(exc))
        shared = {k: v for k, v in shared.items() if k != "trusted_principals"}
    try:
        deployment = parse_key_list(raw, shared=shared, label="keys", read_file=read)
    except KeyListError as exc:
        problems.extend(exc.problems)
        return None
    home = deployment.first.key
    try:  # the functions run in the first key's Region: Powertools must be published there
        powertools_account(home.partition, home.region)
    except NoLayerError as exc:
        problems.append(f"keys[0].keyArn: {exc}")
    keys = tuple(KeyAccess(s.key, s.regions, s.remediation, s.restore_key_state) for s in deployment.keys)
    if len(deployment.keys) == 1:
        return _as_one_key(deployment, keys)
    try:
        keys_file = keys_document(deployment)
    except KeyListError as exc:
        problems.extend(exc.problems)
        return None
    return {
        "keys": keys,
        "vendor_account": None,
        "keys_file": keys_file,
        "vendor_names": tuple(dict.fromkeys(s.vendor.display_name for s in deployment.keys)),
    }


def _as_one_key(deployment: Deployment, keys: tuple[KeyAccess, ...]) -> dict[str, Any]:
    """A list of one key: the settings the single-key context keys would give for it (the same template)."""
    [entry] = deployment.entries
    vendor = entry.get("vendor")
    default_vendor = vendor in (None, profiles.DEFAULT) and "vendorProfile" not in entry
    return {
        "keys": keys,
        "vendor_account": entry.get("vendorAccount") or (ROCKSET_ACCOUNT if default_vendor else None),
        "vendor": vendor,
        "vendor_roles": tuple(entry.get("vendorRoles", ())),
        "vendor_profile": entry.get("vendorProfile"),
        "vendor_display_name": deployment.first.vendor.display_name,
    }


_LEADING_NAME = re.compile(r"^[A-Za-z]+")


def _problem_order(problem: str) -> int:
    """Problems in the order of the context keys they name (as the single-key checks always listed them)."""
    match = _LEADING_NAME.match(problem)
    name = match.group(0) if match else ""
    return CONTEXT_KEYS.index(name) if name in CONTEXT_KEYS else len(CONTEXT_KEYS)


def _read_text(path: str) -> str:
    """A vendorProfile file, bounded (a profile is at most 64 KB: a larger file, /dev/zero, is not read whole); any
    failure is an OSError, which the key list reports as one line for its entry."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(profiles.MAX_PROFILE_BYTES + 1)
    except (ValueError, RuntimeError) as exc:  # a NUL or an unencodable character in the path
        raise OSError(0, f"not a usable path ({exc})") from None
    if len(data) > profiles.MAX_PROFILE_BYTES:
        raise OSError(0, f"larger than {profiles.MAX_PROFILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OSError(0, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _given(value: Any) -> bool:
    """A context value that says something (cdk.json may hold an empty list or string for a key not in use)."""
    return value is not None and value not in ("", [])


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
