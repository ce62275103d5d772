"""Vendor profiles as data: one JSON file per vendor, validated when loaded, each fact with its public source.

Shipped profiles live in `kms_guard/data/vendors/<name>.json` (they travel in the Lambda asset); a user's own file has
the same format (README "Vendors"). A document is checked by hand, field by field, and the first problem is a
`ProfileError` whose one-line message names the file and the field path (`vendors/elastic.json: grants[0].actions:
...`). `resolve` then turns a document plus what the user supplies (`--vendor-role`, `--vendor-account`) into a
`VendorProfile`; a fact the sources do not confirm and that the guard needs is asked for by name, never guessed.

Format (version 1):
    {"format": 1, "name": "elastic", "displayName": "Elastic Cloud Hosted",
     "status": FACT("active" | "discontinued", plus "date" for discontinued),
     "grants": [{"label", "sid", "kind": FACT(kind), "account": FACT(id|null), "roles": FACT([arn]),
                 "conditions": FACT([{"operator", "key", "values"}]), "actions": FACT([action]),
                 "context": FACT({"known": {key: value}, "absent": [key], "organization", "orgPaths", "viaService"}),
                 "optional": bool}],
     "keyRules": {"keySpec": FACT, "keyUsage": FACT, "multiRegion": FACT("required"|"optional"|null),
                  "alias": FACT(bool|null)},
     "regions": FACT([region]), "outage": {"minutes": FACT(int|null), "text": FACT(str), "recovery": FACT(str)},
     "notes": [str]}
A FACT is {"value": ..., "source": "URL or owner/repo path@commit", "unconfirmed": true?, "ask": "what to supply"?}.
Grant kinds: `account`, `vendor-roles`, `pinned-wildcard` are evaluated; `customer-role` (a role in the customer's own
account that the vendor assumes) can be written down but is refused by `resolve` unless the grant is `optional`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kms_guard.core import actions as catalogue
from kms_guard.core.arns import REGION as REGION_NAME
from kms_guard.core.vendor import (
    ACCOUNT,
    ACCOUNT_ID,
    EVALUATED_KINDS,
    GRANT_KINDS,
    ROLE_ARN,
    Grant,
    GrantKind,
    PinCondition,
    RequestContext,
    VendorProfile,
    expand_required,
)

SHIPPED = (
    "rockset",
    "databricks-managed-services",
    "databricks-storage",
    "elastic",
    "clickhouse",
    "confluent",
    "tidb",
)
"""The shipped profile names (stable, design.md)."""
DEFAULT = "rockset"
FORMAT = 1
MAX_PROFILE_BYTES = 64 * 1024

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
_SID = re.compile(r"^[A-Za-z0-9]{1,64}\Z")
_CONDITION_KEY = re.compile(r"^[A-Za-z0-9]+:[A-Za-z0-9/_.-]+\Z")
_OPERATOR = re.compile(
    r"^((ForAnyValue|ForAllValues):)?(String(Not)?Equals(IgnoreCase)?|String(Not)?Like|Arn(Not)?(Equals|Like)|Bool)"
    r"(IfExists)?\Z"
)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_PRINTABLE = re.compile(r"^[\x20-\x7e]+\Z")
_COMMAND_ROLE = re.compile(r"[A-Za-z0-9_+=,.@:/-]{1,200}")


class ProfileError(ValueError):
    """A profile that is not valid, or that needs a value the user did not supply; one line naming the field."""


@dataclass(frozen=True)
class Document:
    """A validated profile document and where it came from."""

    raw: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return str(self.raw["name"])


# --- loading ----------------------------------------------------------------------------------------------------


def shipped(name: str) -> Document:
    """A shipped profile by name (raises `ProfileError` for an unknown name)."""
    if name not in SHIPPED:
        raise ProfileError(f"unknown vendor {name[:60]!r}: one of {', '.join(SHIPPED)} (or --vendor-profile FILE)")
    text = resources.files("kms_guard").joinpath(f"data/vendors/{name}.json").read_text(encoding="utf-8")
    return parse(text, f"vendors/{name}.json")


def check_external(profile: VendorProfile, key_account: str) -> None:
    """A vendor's account or role in the key's own account is not a vendor: a grant to the key's account root only
    lets that account's IAM policies decide (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html),
    so the guard could never tell whether such a role may use the key. That is the customer-role kind, which is not
    evaluated yet: refuse it, never vouch for it."""
    for grant in profile.grants():
        accounts = {grant.account} | {role.split(":")[4] for role in grant.roles if role.count(":") >= 5}
        if key_account in accounts:
            raise ProfileError(
                f"{profile.display_name}: the vendor's account or role is in the key's own account {key_account}; "
                "a role in the customer's account (the customer-role kind) is not supported yet"
            )


def parse(text: str, source: str) -> Document:
    """Parse and validate a profile document (raises `ProfileError` naming the field)."""
    if len(text.encode("utf-8")) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{source}: larger than {MAX_PROFILE_BYTES} bytes")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except _Duplicate as exc:
        raise ProfileError(f"{source}: the key {str(exc)[:60]!r} is written twice in one object") from None
    except RecursionError:
        raise ProfileError(f"{source}: nested too deeply") from None
    try:
        _Validator(source).document(raw)
    except RecursionError:
        raise ProfileError(f"{source}: nested too deeply") from None
    return Document(raw, source)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key written twice in one object: which one counts is a parser's guess (a pin overwritten by `*`)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


PIN_OPERATORS = frozenset(
    {"StringEquals", "StringLike", "ForAnyValue:StringEquals", "ForAnyValue:StringLike", "ArnEquals", "ArnLike"}
)
"""A pin must positively name the vendor: no negated operator (true for everyone else), no IfExists and no
ForAllValues (both true when the key is absent from a call)."""
PIN_IDENTITY_KEYS = frozenset(
    {"aws:principalorgpaths", "aws:principalorgid", "kms:calleraccount", "aws:principalaccount", "aws:principalarn"}
)
"""The keys that say who calls; a pin needs at least one (kms:ViaService alone lets any account in through EBS)."""


# --- validation -------------------------------------------------------------------------------------------------


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ProfileError:
        return ProfileError(f"{self.source}: {path}: {message}")

    def obj(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, not {type(value).__name__}")
        for key in required:
            if key not in value:
                raise self.fail(f"{path}.{key}" if path != "$" else key, "missing")
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                raise self.fail(f"{path}.{key}" if path != "$" else str(key), f"unknown field (allowed: {allowed})")
        return value

    def text(self, value: Any, path: str, limit: int = 600) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "must be a non-empty string")
        if len(value) > limit or not _PRINTABLE.match(value):
            raise self.fail(path, f"must be printable ASCII of at most {limit} characters")
        return value

    def fact(self, value: Any, path: str, extra: tuple[str, ...] = ()) -> Any:
        """A fact: {value, source, unconfirmed?, ask?}; returns its value."""
        fact = self.obj(value, path, ("value", "source"), ("unconfirmed", "ask", *extra))
        self.text(fact["source"], f"{path}.source")
        unconfirmed = fact.get("unconfirmed", False)
        if not isinstance(unconfirmed, bool):
            raise self.fail(f"{path}.unconfirmed", "must be true or false")
        if "ask" in fact:
            self.text(fact["ask"], f"{path}.ask")
        if unconfirmed and "ask" not in fact:
            raise self.fail(
                f"{path}.ask", "an unconfirmed fact must say what the user must supply (or that it is unknown)"
            )
        return fact["value"]

    def document(self, raw: Any) -> None:
        doc = self.obj(
            raw,
            "$",
            ("format", "name", "displayName", "status", "grants", "keyRules", "regions", "outage"),
            ("notes", "$comment"),
        )
        if doc["format"] != FORMAT:
            raise self.fail("format", f"must be {FORMAT}")
        name = doc["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail("name", "must be lower-case letters, digits and dashes (at most 63)")
        self.text(doc["displayName"], "displayName", 40)
        status = self.fact(doc["status"], "status", ("date",))
        if status not in ("active", "discontinued"):
            raise self.fail("status.value", "must be active or discontinued")
        if status == "discontinued":
            date = doc["status"].get("date")
            if not isinstance(date, str) or not _DATE.match(date):
                raise self.fail("status.date", "a discontinued vendor needs the date it closed (YYYY-MM-DD)")
        grants = doc["grants"]
        if not isinstance(grants, list) or not grants:
            raise self.fail("grants", "must be a non-empty list")
        sids: set[str] = set()
        for i, grant in enumerate(grants):
            self.grant(grant, f"grants[{i}]", sids)
        if all(g.get("optional") for g in grants):
            raise self.fail("grants", "at least one grant must not be optional")
        self.key_rules(doc["keyRules"])
        regions = self.fact(doc["regions"], "regions")
        if not isinstance(regions, list) or not all(isinstance(r, str) and REGION_NAME.match(r) for r in regions):
            raise self.fail("regions.value", "must be a list of AWS Region names (us-east-1)")
        outage = self.obj(doc["outage"], "outage", ("minutes", "text", "recovery"))
        minutes = self.fact(outage["minutes"], "outage.minutes")
        if minutes is not None and (not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0):
            raise self.fail("outage.minutes.value", "must be a whole number of minutes or null (not published)")
        self.text(self.fact(outage["text"], "outage.text"), "outage.text.value")
        self.text(self.fact(outage["recovery"], "outage.recovery"), "outage.recovery.value")
        notes = doc.get("notes", [])
        if not isinstance(notes, list):
            raise self.fail("notes", "must be a list of strings")
        for i, note in enumerate(notes):
            self.text(note, f"notes[{i}]", 1000)

    def key_rules(self, value: Any) -> None:
        rules = self.obj(value, "keyRules", ("keySpec", "keyUsage", "multiRegion", "alias"))
        spec = self.fact(rules["keySpec"], "keyRules.keySpec")
        if spec != "SYMMETRIC_DEFAULT":
            raise self.fail("keyRules.keySpec.value", "only SYMMETRIC_DEFAULT is supported")
        usage = self.fact(rules["keyUsage"], "keyRules.keyUsage")
        if usage != "ENCRYPT_DECRYPT":
            raise self.fail("keyRules.keyUsage.value", "only ENCRYPT_DECRYPT is supported")
        if self.fact(rules["multiRegion"], "keyRules.multiRegion") not in ("required", "optional", None):
            raise self.fail("keyRules.multiRegion.value", "must be required, optional or null (unknown)")
        if self.fact(rules["alias"], "keyRules.alias") not in (True, False, None):
            raise self.fail("keyRules.alias.value", "must be true, false or null (unknown)")

    def grant(self, value: Any, path: str, sids: set[str]) -> None:
        grant = self.obj(
            value, path, ("label", "sid", "kind", "actions", "context"), ("account", "roles", "conditions", "optional")
        )
        self.text(grant["label"], f"{path}.label", 80)
        sid = grant["sid"]
        if not isinstance(sid, str) or not _SID.match(sid):
            raise self.fail(f"{path}.sid", "must be letters and digits (at most 64): the guard-owned statement's Sid")
        if sid in sids:
            raise self.fail(f"{path}.sid", f"{sid} is used by another grant")
        sids.add(sid)
        kind = self.fact(grant["kind"], f"{path}.kind")
        if kind not in GRANT_KINDS:
            raise self.fail(f"{path}.kind.value", f"must be one of {', '.join(GRANT_KINDS)}")
        optional = grant.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(f"{path}.optional", "must be true or false")
        actions = self.fact(grant["actions"], f"{path}.actions")
        if not isinstance(actions, list) or not actions:
            raise self.fail(f"{path}.actions.value", "must be a non-empty list of KMS actions")
        for j, action in enumerate(actions):
            if not isinstance(action, str) or not action.isascii() or not catalogue.expand(action):
                raise self.fail(f"{path}.actions.value[{j}]", f"{str(action)[:60]!r} is not a KMS action (or pattern)")
        account: Any = None
        if "account" in grant:
            account = self.fact(grant["account"], f"{path}.account")
            if account is not None and (not isinstance(account, str) or not ACCOUNT_ID.match(account)):
                raise self.fail(f"{path}.account.value", "must be a 12-digit AWS account ID or null (asked for)")
            if account is None and not grant["account"].get("unconfirmed"):
                raise self.fail(f"{path}.account", "null only when unconfirmed, with what to ask the user")
        if "roles" in grant:
            roles = self.fact(grant["roles"], f"{path}.roles")
            if not isinstance(roles, list):
                raise self.fail(f"{path}.roles.value", "must be a list of IAM role ARNs")
            for j, role in enumerate(roles):
                if not isinstance(role, str) or not ROLE_ARN.match(role):
                    raise self.fail(f"{path}.roles.value[{j}]", f"not an IAM role ARN: {str(role)[:120]!r}")
            if not roles and not grant["roles"].get("unconfirmed"):
                raise self.fail(f"{path}.roles", "an empty list only when unconfirmed, with what to ask the user")
        conditions: Any = []
        if "conditions" in grant:
            conditions = self.fact(grant["conditions"], f"{path}.conditions")
            if not isinstance(conditions, list):
                raise self.fail(f"{path}.conditions.value", "must be a list")
            for j, condition in enumerate(conditions):
                self.condition(condition, f"{path}.conditions.value[{j}]")
        self.context(grant["context"], f"{path}.context")
        if kind == "account" and "account" not in grant:
            raise self.fail(f"{path}.account", "missing (an account grant names the vendor's account)")
        if kind == "vendor-roles" and "roles" not in grant:
            raise self.fail(f"{path}.roles", "missing (a vendor-roles grant names the vendor's roles)")
        if kind == "pinned-wildcard" and not conditions:
            raise self.fail(f"{path}.conditions", "a pinned wildcard needs the conditions that pin it to the vendor")
        if kind == "pinned-wildcard":
            self.pin(conditions, f"{path}.conditions.value")

    def pin(self, conditions: list[Any], path: str) -> None:
        """A pinned wildcard grants `Principal "*"` under its conditions: they must name the vendor, or the guard
        would write (and vouch for) a key anyone can use."""
        for j, condition in enumerate(conditions):
            operator, values = condition["operator"], condition["values"]
            if operator not in PIN_OPERATORS:
                raise self.fail(
                    f"{path}[{j}].operator",
                    f"{operator!r} cannot pin a wildcard to the vendor (one of {', '.join(sorted(PIN_OPERATORS))}: "
                    "negated, IfExists and ForAllValues operators are true for callers without the key)",
                )
            for k, item in enumerate(values):
                if "${" in item.replace("${account}", "").replace("${region}", ""):
                    # the profile's own placeholders are filled in by the guard; an IAM policy variable is replaced
                    # by each caller's own value, so `${aws:PrincipalAccount}` matches everyone
                    raise self.fail(f"{path}[{j}].values[{k}]", "a policy variable cannot pin (it is the caller's own)")
                if item.replace("*", "").replace("?", "").strip("/:.") == "":
                    raise self.fail(f"{path}[{j}].values[{k}]", f"{item!r} matches every caller: it pins nothing")
        if not any(str(c["key"]).lower() in PIN_IDENTITY_KEYS for c in conditions):
            raise self.fail(
                path,
                "a pin needs a condition on who calls (one of "
                f"{', '.join(sorted(PIN_IDENTITY_KEYS))}); kms:ViaService or transport alone let any account in",
            )

    def condition(self, value: Any, path: str) -> None:
        condition = self.obj(value, path, ("operator", "key", "values"))
        operator, key, values = condition["operator"], condition["key"], condition["values"]
        if not isinstance(operator, str) or not _OPERATOR.match(operator):
            raise self.fail(f"{path}.operator", f"not a string, ARN or Bool condition operator: {str(operator)[:60]!r}")
        if not isinstance(key, str) or not _CONDITION_KEY.match(key):
            raise self.fail(f"{path}.key", f"not a condition key: {str(key)[:60]!r}")
        if not isinstance(values, list) or not values:
            raise self.fail(f"{path}.values", "must be a non-empty list of strings")
        for k, item in enumerate(values):
            self.text(item, f"{path}.values[{k}]", 300)

    def context(self, value: Any, path: str) -> None:
        context = self.obj(
            self.fact(value, path), f"{path}.value", ("known", "absent"), ("organization", "orgPaths", "viaService")
        )
        known = context["known"]
        if not isinstance(known, dict):
            raise self.fail(f"{path}.value.known", "must be an object of condition key to value")
        for key, item in known.items():
            if not _CONDITION_KEY.match(key):
                raise self.fail(f"{path}.value.known.{key}", "not a condition key")
            self.text(item, f"{path}.value.known.{key}", 300)
        absent = context["absent"]
        if not isinstance(absent, list) or not all(isinstance(k, str) and _CONDITION_KEY.match(k) for k in absent):
            raise self.fail(f"{path}.value.absent", "must be a list of condition keys")
        lowered = {k.lower() for k in known}
        both = lowered & {k.lower() for k in absent}
        if both:
            raise self.fail(f"{path}.value.absent", f"{sorted(both)[0]} is also known to be present")
        if "organization" in context:
            self.text(context["organization"], f"{path}.value.organization", 64)
        if "orgPaths" in context:
            paths = context["orgPaths"]
            if not isinstance(paths, list) or len(paths) != 1:
                raise self.fail(f"{path}.value.orgPaths", "must be a list of one path prefix")
            self.text(paths[0], f"{path}.value.orgPaths[0]", 300)
        if "viaService" in context:
            via = self.text(context["viaService"], f"{path}.value.viaService", 120)
            if "kms:viaservice" in lowered or "kms:viaservice" in {k.lower() for k in absent}:
                raise self.fail(f"{path}.value.viaService", "kms:ViaService is also in known or absent")
            del via


# --- resolving --------------------------------------------------------------------------------------------------


def _ask(fact: dict[str, Any]) -> str:
    return str(fact.get("ask") or "the value is not published")


def resolve(document: Document, *, roles: tuple[str, ...] = (), account: str | None = None) -> VendorProfile:
    """The profile the guard evaluates, with the user's roles / account filled in (raises `ProfileError`)."""
    raw = document.raw
    name = document.name
    grants: list[Grant] = []
    role_grants = [g for g in raw["grants"] if g["kind"]["value"] == "vendor-roles" and not g.get("optional")]
    account_grants = [g for g in raw["grants"] if g["kind"]["value"] != "vendor-roles" and not g.get("optional")]
    for role in roles:
        if not ROLE_ARN.match(role):
            raise ProfileError(f"--vendor-role: not an IAM role ARN: {role[:120]!r}")
    if roles and not role_grants:
        raise ProfileError(f"{name}: --vendor-role does not apply: {name} is not granted through vendor roles")
    if account is not None:
        if not ACCOUNT_ID.match(account):
            raise ProfileError(f"--vendor-account: must be a 12-digit AWS account ID, not {account[:40]!r}")
        if not any("account" in g for g in account_grants):
            raise ProfileError(f"{name}: --vendor-account does not apply: {name} is granted through vendor roles")
    for g in raw["grants"]:
        kind: GrantKind = g["kind"]["value"]
        if kind not in EVALUATED_KINDS:
            if g.get("optional"):
                continue
            raise ProfileError(
                f"{document.source}: {name}: grant {g['label']!r} is of kind customer-role (a role in your own account "
                "that the vendor assumes): kms-guard does not evaluate that kind yet, and will not treat it as an "
                "account"
            )
        grant_account = g["account"]["value"] if "account" in g else None
        if account is not None and "account" in g:
            grant_account = account
        grant_roles = tuple(g["roles"]["value"]) if "roles" in g else ()
        if kind == "vendor-roles" and roles:
            grant_roles = roles
        if kind == "vendor-roles" and not grant_roles:
            raise ProfileError(f"{name}: {_ask(g['roles'])}")
        pin = tuple(
            PinCondition(c["operator"], c["key"], tuple(c["values"]))
            for c in g.get("conditions", {"value": []})["value"]
        )
        needs_account = kind == "account" or any(ACCOUNT in v for p in pin for v in p.values)
        if needs_account and grant_account is None:
            raise ProfileError(f"{name}: {_ask(g['account'])}")
        grants.append(
            Grant(
                kind=kind,
                required=tuple(g["actions"]["value"]),
                account=grant_account,
                roles=grant_roles,
                pin=pin,
                context=_context(g["context"]["value"]),
                sid=g["sid"],
                label=g["label"],
            )
        )
    if not grants:
        raise ProfileError(f"{document.source}: {name}: no grant the guard can evaluate")
    rules = raw["keyRules"]
    multi = rules["multiRegion"]["value"]
    first, also = grants[0], tuple(grants[1:])
    status = raw["status"]
    unconfirmed = tuple(f"{path}: {_ask(fact)}" for path, fact in facts(raw) if fact.get("unconfirmed"))
    return VendorProfile(
        name=name,
        display_name=raw["displayName"],
        account=first.account,
        required=first.required,
        key_spec=rules["keySpec"]["value"],
        key_usage=rules["keyUsage"]["value"],
        multi_region={"required": True, "optional": False, None: None}[multi],
        statement_sid=first.sid,
        context=first.context,
        kind=first.kind,
        roles=first.roles,
        pin=first.pin,
        label=first.label,
        also=also,
        status=status["value"],
        discontinued=status.get("date"),
        outage_minutes=raw["outage"]["minutes"]["value"],
        outage=raw["outage"]["text"]["value"],
        recovery=raw["outage"]["recovery"]["value"],
        regions=tuple(raw["regions"]["value"]),
        alias_accepted=rules["alias"]["value"],
        sources=tuple(dict.fromkeys(fact["source"] for _, fact in facts(raw))),
        unconfirmed=unconfirmed,
    )


def _context(raw: dict[str, Any]) -> RequestContext:
    return RequestContext(
        known=tuple((k.lower(), v) for k, v in raw["known"].items()),
        absent=tuple(k.lower() for k in raw["absent"]),
        organization=raw.get("organization"),
        org_paths=tuple(raw.get("orgPaths", ())),
        via_service=raw.get("viaService"),
    )


def facts(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every fact of a validated document with its path, in document order."""
    out: list[tuple[str, dict[str, Any]]] = [("status", raw["status"])]
    for i, g in enumerate(raw["grants"]):
        for field in ("kind", "account", "roles", "conditions", "actions", "context"):
            if field in g:
                out.append((f"grants[{i}].{field}", g[field]))
    for field in ("keySpec", "keyUsage", "multiRegion", "alias"):
        out.append((f"keyRules.{field}", raw["keyRules"][field]))
    out.append(("regions", raw["regions"]))
    for field in ("minutes", "text", "recovery"):
        out.append((f"outage.{field}", raw["outage"][field]))
    return out


def load(
    name: str | None = None,
    *,
    profile_text: str | None = None,
    profile_source: str = "profile",
    roles: tuple[str, ...] = (),
    account: str | None = None,
) -> VendorProfile:
    """The vendor profile from a shipped name or a user's profile text (not both), with roles/account filled in."""
    if name and profile_text is not None:
        raise ProfileError("give a vendor name or a profile file, not both")
    document = parse(profile_text, profile_source) if profile_text is not None else shipped(name or DEFAULT)
    return resolve(document, roles=roles, account=account)


def summary(document: Document) -> dict[str, Any]:
    """What `kms-guard vendors --output json` prints for one profile."""
    raw = document.raw
    grants = []
    for g in raw["grants"]:
        item: dict[str, Any] = {"label": g["label"], "kind": g["kind"]["value"], "sid": g["sid"]}
        if "account" in g:
            item["account"] = g["account"]["value"]
        if "roles" in g:
            item["roles"] = g["roles"]["value"]
        if "conditions" in g:
            item["conditions"] = g["conditions"]["value"]
        item["actions"] = g["actions"]["value"]
        item["concrete_actions"] = list(expand_required(tuple(g["actions"]["value"])))
        if g.get("optional"):
            item["optional"] = True
        grants.append(item)
    rules = raw["keyRules"]
    return {
        "name": document.name,
        "display_name": raw["displayName"],
        "status": raw["status"]["value"],
        "discontinued": raw["status"].get("date"),
        "grants": grants,
        "key_rules": {
            "key_spec": rules["keySpec"]["value"],
            "key_usage": rules["keyUsage"]["value"],
            "multi_region": rules["multiRegion"]["value"],
            "alias_accepted": rules["alias"]["value"],
        },
        "regions": raw["regions"]["value"],
        "outage": {
            "minutes": raw["outage"]["minutes"]["value"],
            "text": raw["outage"]["text"]["value"],
            "recovery": raw["outage"]["recovery"]["value"],
        },
        "unconfirmed": [{"fact": path, "ask": _ask(f)} for path, f in facts(raw) if f.get("unconfirmed")],
        "sources": list(dict.fromkeys(f["source"] for _, f in facts(raw))),
        "notes": raw.get("notes", []),
    }


def command_flags(vendor: VendorProfile) -> str:
    """The kms-guard options that name `vendor` (nothing for the default, Rockset): what a fix command needs so that it
    repairs the grant of the key's own vendor, not the default's. A user's own profile cannot be named by the guard:
    the option says where it goes."""
    if vendor.name in SHIPPED:
        flags = "" if vendor.name == DEFAULT else f" --vendor {vendor.name}"
        if vendor.account and vendor.account != _shipped_account(vendor.name) and ACCOUNT_ID.match(vendor.account):
            flags += f" --vendor-account {vendor.account}"
    else:
        flags = " --vendor-profile <your profile file>"
    roles = dict.fromkeys(r for g in vendor.grants() for r in g.roles if _COMMAND_ROLE.fullmatch(r))
    flags += "".join(f" --vendor-role {r}" for r in list(roles)[:5])
    return flags


@functools.cache
def _shipped_account(name: str) -> str | None:
    try:
        return load(name).account
    except ProfileError:  # a profile that needs the customer to name the vendor's account (TiDB)
        return None
