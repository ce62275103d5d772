"""Many keys, one guard: the key list (CDK context `keys`, `kms-guard check --config FILE`, the deployed keys file).

One entry per key: `{keyArn, vendor, vendorRoles, vendorProfile, regions, remediation, restoreKeyState}`, only
`keyArn` required (design.md, "CDK context"). Every entry becomes a full `Settings` (the guard's settings for that key);
what the deployment shares (topic, table, trusted principals, dry run, the opt-in features, the schedule) is the same
in all of them. The deployment's home Region (its table, topic and functions) is the first key's Region.

Where the list comes from, and in what form:
- the CDK context `keys` and `check --config FILE`: `vendorProfile` is the path of a profile file, read by the caller's
  `read_file` (relative paths from where the command runs, as every other path the app reads);
- the deployed keys file (`KMS_GUARD_KEYS_FILE`, design.md "Lambda settings"): a JSON object `{"format": 1, "keys":
  [...]}` in the functions' keys layer, written by the CDK app (`keys_document`), where `vendorProfile` is already the
  validated profile, encoded as KMS_GUARD_VENDOR_PROFILE carries one (`settings.encode_profile`). Lambda allows 4 KB
  of environment in all, which 100 keys do not fit; a layer is read from disk at cold start (no AWS call), versioned
  with the deployment, and cannot be edited in place.

Every problem of the list is reported at once (`KeyListError.problems`, one line each, naming the entry): a missing or
alias ARN, a duplicate key, a key of another account, a Region list without the key's Region, a key the vendor's
rules forbid (a single-Region key for a vendor that requires multi-Region keys), an unknown field or mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kms_guard.core import profiles
from kms_guard.core.arns import ArnError, KeyArn
from kms_guard.settings import (
    ENV_NAMES,
    Settings,
    SettingsError,
    build_settings,
    encode_profile,
    env_arguments,
    settings_from_env,
)

MAX_KEYS = 100
"""The most keys one deployment guards (design.md); the infrastructure is sized and tested for it."""
KEYS_FORMAT = 1
MAX_KEYS_FILE = 10_000_000
"""The keys file is read up to this size: 100 keys, each embedding a profile of at most 64 KB (compressed, base64:
under 90 KB even for a profile that does not compress), stay below it; `keys_document` refuses anything larger, so
what synthesizes also starts."""
FIELDS = {
    "keyArn": "key_arn",
    "vendor": "vendor",
    "vendorRoles": "vendor_roles",
    "vendorProfile": "vendor_profile",
    "regions": "regions",
    "remediation": "remediation",
    "restoreKeyState": "restore_key_state",
    "vendorAccount": "vendor_account",
}
"""An entry's fields (context spelling) and the settings they set. `vendorAccount` is beyond design.md's list: some
vendors (TiDB Cloud) are granted an account ID the customer learns from them, as the single-key `vendorAccount`."""
PER_KEY = tuple(FIELDS.values())
"""The settings each entry sets for itself; every other setting the deployment's keys share."""


class KeyListError(SettingsError):
    """The key list has problems; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Deployment:
    """Every key a deployment guards, each with its full settings (home Region first in each key's Regions)."""

    keys: tuple[Settings, ...]
    entries: tuple[dict[str, Any], ...] = ()
    """Each key's entry as the deployed keys file holds it (`keys_document`): Regions written out, profile embedded."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyListError(["keys: the list is empty; give at least one key"])

    @property
    def first(self) -> Settings:
        return self.keys[0]

    @property
    def home(self) -> str:
        return self.first.home

    @property
    def regions(self) -> tuple[str, ...]:
        """Every Region some key is configured in, the home Region first: where the guard has forwarders."""
        seen: dict[str, None] = {self.home: None}
        for settings in self.keys:
            seen.update(dict.fromkeys(settings.regions))
        return tuple(seen)


def parse_key_list(
    raw: Any,
    *,
    shared: Mapping[str, Any] | None = None,
    label: str = "keys",
    read_file: Callable[[str], str] | None = None,
) -> Deployment:
    """Validate a key list (a JSON list of entries, or `{"keys": [...]}`) into a Deployment; raise KeyListError with
    every problem. `shared` are build_settings arguments every key gets (topic, table, features); `read_file` reads a
    `vendorProfile` path (None: only embedded profiles are accepted, as in the deployed keys file)."""
    if isinstance(raw, Mapping) and "keys" in raw:
        raw = raw["keys"]
    if not isinstance(raw, list):
        raise KeyListError([f'{label}: must be a list of key objects ({{"keyArn": ...}}), not {_kind(raw)}'])
    if not raw:
        raise KeyListError([f"{label}: the list is empty; give at least one key"])
    problems: list[str] = []
    if len(raw) > MAX_KEYS:
        problems.append(f"{label}: {len(raw)} keys; one deployment guards at most {MAX_KEYS} (split the list)")
    keys: list[Settings] = []
    entries: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, str, str], int] = {}
    home: KeyArn | None = None
    for index, given in enumerate(raw[: MAX_KEYS + 1]):
        where = f"{label}[{index}]"
        entry = given
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be an object with at least keyArn, not {_kind(entry)}")
            continue
        unknown = sorted(str(k) for k in entry if k not in FIELDS)
        if unknown:  # reported, and the known fields still checked: every problem of the entry at once
            problems.append(
                f"{where}: unknown field {', '.join(repr(k[:40]) for k in unknown[:5])} (known: {', '.join(FIELDS)})"
            )
            entry = {k: v for k, v in entry.items() if k in FIELDS}
        arn_text = entry.get("keyArn")
        if not isinstance(arn_text, str) or not arn_text.strip():
            problems.append(f"{where}.keyArn: required (the full key ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY_ID)")
            continue
        try:
            key = KeyArn.parse(arn_text.strip())
        except ArnError as exc:
            problems.append(f"{where}.keyArn: {exc}")
            continue
        identity = (key.partition, key.account, key.key_id)
        if identity in first_seen:
            problems.append(f"{where}: key {key.key_id} is already {label}[{first_seen[identity]}] (one entry per key)")
            continue
        first_seen[identity] = index
        if home is None:
            home = key
        elif (key.partition, key.account) != (home.partition, home.account):
            problems.append(
                f"{where}.keyArn: account {key.account} ({key.partition}); every key of one deployment is in the "
                f"first key's account, {home.account} ({home.partition})"
            )
            continue
        try:
            settings, normal = _entry_settings(entry, key, where, shared or {}, home.region, read_file)
        except KeyListError as exc:
            problems.extend(p for p in exc.problems if p not in problems)  # a shared setting's problem: once
            continue
        except SettingsError as exc:
            problems.append(str(exc))
            continue
        keys.append(settings)
        entries.append(normal)
    if problems:
        raise KeyListError(problems)
    return Deployment(tuple(keys), tuple(entries))


def _entry_settings(
    entry: Mapping[str, Any],
    key: KeyArn,
    where: str,
    shared: Mapping[str, Any],
    home: str,
    read_file: Callable[[str], str] | None,
) -> tuple[Settings, dict[str, Any]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field, setting in FIELDS.items():
        value = entry.get(field)
        if value is None:
            continue
        if setting in ("vendor_roles", "regions"):
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}.{field}: must be a list of strings or a comma-separated string")
                continue
        elif setting == "restore_key_state":
            if not isinstance(value, bool | str):
                problems.append(f"{where}.{field}: must be true or false, not {_kind(value)}")
                continue
        elif not isinstance(value, str):
            problems.append(f"{where}.{field}: must be a string, not {_kind(value)}")
            continue
        values[setting] = value
    profile = values.get("vendor_profile")
    if isinstance(profile, str) and profile.strip():
        try:
            values["vendor_profile"] = _profile(profile.strip(), f"{where}.vendorProfile", read_file)
        except SettingsError as exc:
            problems.append(str(exc))
            values.pop("vendor_profile")
    values["key_arn"] = str(key)
    names = {setting: f"{where}.{field}" for field, setting in FIELDS.items()}
    # build_settings stops at its first problem: set aside the field it names and ask again, so one entry's
    # problems are all reported at once (at most one round per field).
    settings: Settings | None = None
    common = dict(shared)
    for _ in range(len(FIELDS) + len(common) + 1):
        try:
            settings = build_settings(**{**common, **values}, home_region=home, names=names)
            break
        except SettingsError as exc:
            message = str(exc)
            problems.append(message)
            culprits = [s for s, label in names.items() if message.startswith(label) and s in values and s != "key_arn"]
            for culprit in culprits:
                values.pop(culprit)
            shared_culprits = [s for s in common if not culprits and message.startswith(f"{names.get(s, s)}:")]
            for culprit in shared_culprits:
                common.pop(culprit)
            if not culprits and not shared_culprits:
                break  # the key itself: nothing left to set aside
    if problems or settings is None:
        raise KeyListError(problems)
    normal: dict[str, Any] = {"keyArn": settings.key_arn, "regions": list(settings.regions)}
    if values.get("vendor_profile"):
        normal["vendorProfile"] = values["vendor_profile"]
    elif str(values.get("vendor") or "").strip():
        normal["vendor"] = str(values["vendor"]).strip()
    roles = [r.strip() for r in values.get("vendor_roles", []) if r.strip()]
    if roles:
        normal["vendorRoles"] = list(dict.fromkeys(roles))
    if str(values.get("vendor_account") or "").strip():
        normal["vendorAccount"] = str(values["vendor_account"]).strip()
    if settings.remediation != "off":
        normal["remediation"] = settings.remediation
    if settings.restore_key_state:
        normal["restoreKeyState"] = True
    return settings, normal


def _profile(value: str, where: str, read_file: Callable[[str], str] | None) -> str:
    """A vendorProfile entry as build_settings takes it: embedded as it is, a path read and validated."""
    from kms_guard.settings import PROFILE_PREFIX

    if value.startswith(PROFILE_PREFIX):
        return value
    if read_file is None:
        raise SettingsError(f"{where}: expected an embedded profile ({PROFILE_PREFIX}...), not a path")
    try:
        text = read_file(value)
    except (OSError, ValueError, RuntimeError) as exc:  # the reader's own failures, and what a bad path raises
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"{where}: cannot read {value[:200]!r}: {' '.join(str(reason).split())[:200]}") from None
    try:
        return encode_profile(profiles.parse(text, value))
    except profiles.ProfileError as exc:
        raise SettingsError(f"{where}: {exc}") from None


class DuplicateField(ValueError):
    """A JSON object names the same field twice: which one counts is the parser's whim, never the user's intent."""


def no_duplicate_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads(..., object_pairs_hook=no_duplicate_fields)`: a field given twice in one object is an error (a
    key list's second `keyArn` or `remediation` would silently win), as vendor profiles refuse it."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise DuplicateField(f"the field {name[:40]!r} appears twice in one object")
        out[name] = value
    return out


def keys_document(deployment: Deployment) -> str:
    """The deployed keys file: compact JSON, `{"format": 1, "keys": [...]}`, every key's Regions written out and its
    profile embedded, so the runtime reads exactly what the app validated."""
    text = json.dumps({"format": KEYS_FORMAT, "keys": list(deployment.entries)}, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_KEYS_FILE:
        raise KeyListError(
            [f"keys: the keys file would be {len(text)} characters, over the {MAX_KEYS_FILE} the functions read"]
        )
    return text


def deployment_from_file(text: str, *, shared: Mapping[str, Any], label: str) -> Deployment:
    """The deployed keys file back into a Deployment (profiles embedded, nothing else is read)."""
    try:
        document = json.loads(text, object_pairs_hook=no_duplicate_fields)
    except (ValueError, RecursionError) as exc:
        raise KeyListError([f"{label}: not JSON ({' '.join(str(exc).split())[:200]})"]) from None
    if not isinstance(document, Mapping) or document.get("format") != KEYS_FORMAT:
        raise KeyListError([f"{label}: not a kms-guard keys file (format {KEYS_FORMAT})"])
    return parse_key_list(document.get("keys"), shared=shared, label=f"{label} keys")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def deployment_from_env(environ: Mapping[str, str]) -> Deployment:
    """The Lambda's deployment: the keys file named by KMS_GUARD_KEYS_FILE (many keys), else the single-key variables
    (design.md, "Lambda settings"). A bad value raises SettingsError naming it: the cold start fails loudly."""
    keys_file = environ.get(ENV_NAMES["keys_file"], "").strip()
    arguments = env_arguments(environ)
    if not keys_file:
        return Deployment((settings_from_env(environ),))
    given = [ENV_NAMES[name] for name in PER_KEY if environ.get(ENV_NAMES[name], "").strip()]
    if given:
        raise SettingsError(
            f"{ENV_NAMES['keys_file']} and {', '.join(given)}: give the keys file or the single-key variables, not both"
        )
    try:
        with open(keys_file, encoding="utf-8") as handle:
            text = handle.read(MAX_KEYS_FILE + 1)
    except OSError as exc:
        raise SettingsError(f"{ENV_NAMES['keys_file']}: cannot read {keys_file[:200]}: {exc.strerror or exc}") from None
    if len(text) > MAX_KEYS_FILE:
        raise SettingsError(f"{ENV_NAMES['keys_file']}: {keys_file[:200]} is over {MAX_KEYS_FILE} characters")
    shared = {name: value for name, value in arguments.items() if name not in PER_KEY}
    try:
        return deployment_from_file(text, shared=shared, label=ENV_NAMES["keys_file"])
    except KeyListError as exc:
        raise SettingsError("; ".join(exc.problems)) from None
