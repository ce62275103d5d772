"""A second opinion: a deliberately simple, slow evaluator that applies AWS's rules literally to concrete requests.

It shares no code with the production evaluator. It builds every concrete request the vendor could make (as account
root, as a role, as a role session; each required action; the known request context of vendors.md plus sampled values
for every key the guard cannot know) and decides each one the way the IAM documentation states:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html (an applicable Deny wins,
then an applicable Allow is needed), with the element rules of the Principal, NotPrincipal, Action, Resource,
Condition and policy-variable pages.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Any

VENDOR = "318212636800"
KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
REQUIRED = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
)

# What every call of the vendor carries (vendors.md, "What a vendor's calls look like"); None: absent.
KNOWN: dict[str, str | None] = {
    "aws:securetransport": "true",
    "aws:principalisawsservice": "false",
    "aws:principalaccount": VENDOR,
    "kms:calleraccount": VENDOR,
    "aws:sourcevpce": None,
    "aws:sourcevpc": None,
    "aws:vpcsourceip": None,
    "kms:viaservice": None,
}
FRESH = {"aws:sourceip": "198.51.100.7", "aws:principalorgid": "o-fresh0000"}


def glob(pattern: str, text: str) -> bool:
    """`*` and `?` by dynamic programming over (pattern, text) prefixes: slow, obviously right."""
    n, m = len(pattern), len(text)
    row = [True] + [False] * m
    for i in range(1, n + 1):
        p = pattern[i - 1]
        new = [row[0] and p == "*"] + [False] * m
        for j in range(1, m + 1):
            if p == "*":
                new[j] = new[j - 1] or row[j]
            else:
                new[j] = row[j - 1] and (p == "?" or p == text[j - 1])
        row = new
    return row[m]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principals(request: dict[str, Any]) -> list[str]:
    """Every name AWS checks for the caller: the session, its role and the account (most specific first)."""
    names: list[str] = request["names"]
    return names


def principal_matches(element: Any, request: dict[str, Any]) -> bool:
    if element == "*":
        return True
    for ptype, values in element.items():
        if ptype != "AWS":
            continue
        for value in _list(values):
            if value == "*":
                return True
            if value in (VENDOR, f"arn:aws:iam::{VENDOR}:root"):
                return True
            if value in request["names"]:
                return True
    return False


def _fold(text: str) -> str | None:
    return text.lower() if text.isascii() else None


def action_matches(patterns: list[str], action: str) -> bool:
    for pattern in patterns:
        folded = _fold(pattern)
        if folded is not None and glob(folded, action.lower()):
            return True
    return False


_VAR = re.compile(r"\$\{([^}]*)\}")


def substitute(text: str, version: str | None, context: dict[str, str | None]) -> str | None:
    if version != "2012-10-17":
        return text
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        value = context.get(m.group(1).strip().lower())
        if value is None:
            missing = True
            return ""
        return value

    out = _VAR.sub(one, text)
    return None if missing else out


def value_matches(op: str, listed: str, actual: str) -> bool:
    if op in ("StringEquals", "StringNotEquals"):
        return listed == actual
    if op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return listed.lower() == actual.lower()
    if op in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        return glob(listed, actual)
    if op == "Bool":
        return listed.lower() == actual.lower()
    if op in ("IpAddress", "NotIpAddress"):
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(listed, strict=False)
        except ValueError:
            return False
    raise ValueError(op)


NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NotIpAddress",
}


def condition_holds(raw_op: str, key: str, values: Any, version: str | None, context: dict[str, str | None]) -> bool:
    qualifier = None
    op = raw_op
    if ":" in op:
        qualifier, op = op.split(":", 1)
    if_exists = op.endswith("IfExists")
    if if_exists:
        op = op[: -len("IfExists")]
    actual = context.get(key.lower())
    listed = [v if isinstance(v, str) else str(v).lower() for v in _list(values)]
    if op == "Null":
        return any((actual is None) == (v.lower() == "true") for v in listed)
    if actual is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return op in NEGATED
    hits = []
    for value in listed:
        resolved = substitute(value, version, context)
        hits.append(resolved is not None and value_matches(op, resolved, actual))
    return not any(hits) if op in NEGATED else any(hits)


def statement_applies(statement: dict[str, Any], version: str | None, request: dict[str, Any], action: str) -> bool:
    if "NotPrincipal" in statement:
        if statement["Effect"] == "Allow":
            return False  # not supported by AWS: grants nothing
        if principal_matches(statement["NotPrincipal"], request):
            return False
    elif not principal_matches(statement["Principal"], request):
        return False
    if "NotAction" in statement:
        if action_matches(_list(statement["NotAction"]), action):
            return False
    elif not action_matches(_list(statement["Action"]), action):
        return False
    resources = _list(statement.get("Resource", statement.get("NotResource")))
    hit = False
    for pattern in resources:
        resolved = substitute(pattern, version, request["context"])
        if resolved is not None and glob(resolved, request["key_arn"]):
            hit = True
    if hit == ("NotResource" in statement):
        return False
    for raw_op, block in statement.get("Condition", {}).items():
        for key, values in block.items():
            if not condition_holds(raw_op, key, values, version, request["context"]):
                return False
    return True


def decide(doc: dict[str, Any], request: dict[str, Any], action: str) -> str:
    version = doc.get("Version")
    statements = _list(doc["Statement"])
    if any(s["Effect"] == "Deny" and statement_applies(s, version, request, action) for s in statements):
        return "denied"
    if any(s["Effect"] == "Allow" and statement_applies(s, version, request, action) for s in statements):
        return "allowed"
    return "not-granted"


def requests(doc: dict[str, Any], key_arn: str = KEY_ARN) -> list[dict[str, Any]]:
    """Every concrete request worth trying: each caller form, each sample of the keys the guard cannot know."""
    text = repr(doc)
    roles = sorted(set(re.findall(rf"arn:aws:iam::{VENDOR}:role/([A-Za-z0-9_+=,.@-]+)", text)) | {"guard-probe"})
    unknown_keys: dict[str, set[str | None]] = {}
    for statement in _list(doc["Statement"]):
        for block in statement.get("Condition", {}).values():
            for key, values in block.items():
                low = key.lower()
                if low in KNOWN or low in ("aws:principalarn",):
                    continue
                samples = unknown_keys.setdefault(low, {None, FRESH.get(low, "fresh-value")})
                for value in _list(values):
                    if isinstance(value, str) and "*" not in value and "?" not in value and "${" not in value:
                        samples.add(value.split("/")[0] if low == "aws:sourceip" else value)
    out = []
    keys = sorted(unknown_keys)
    for role in roles:
        role_arn = f"arn:aws:iam::{VENDOR}:role/{role}"
        callers = [
            ([f"arn:aws:iam::{VENDOR}:root"], f"arn:aws:iam::{VENDOR}:root"),
            ([role_arn], role_arn),
            ([f"arn:aws:sts::{VENDOR}:assumed-role/{role}/session", role_arn], role_arn),
        ]
        for names, principal_arn in callers:
            for combo in itertools.product(*(sorted(unknown_keys[k], key=str) for k in keys)):
                context = dict(KNOWN)
                context["aws:principalarn"] = principal_arn
                context.update(dict(zip(keys, combo, strict=True)))
                out.append({"names": names, "context": context, "key_arn": key_arn})
    return out


def outcomes(doc: dict[str, Any], key_arn: str = KEY_ARN) -> set[str]:
    """The decisions over every concrete request and required action."""
    return {decide(doc, request, action) for request in requests(doc, key_arn) for action in REQUIRED}
