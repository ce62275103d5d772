"""Key policy model and parser: normalise first, evaluate later.

Accepts what KMS accepts in a key policy (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
and the IAM JSON policy grammar, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html):
`Statement` as one object or a list; `Action`/`Resource`/principal values as a string or a list; `NotAction`,
`NotPrincipal`, `NotResource`; `Sid` optional; `Condition` blocks with any operator, including `...IfExists` and the
`ForAnyValue:`/`ForAllValues:` set qualifiers. In a key policy `Principal` (or `NotPrincipal`) and `Resource` (or
`NotResource`) are required.

Everything is normalised here (strings or lists to tuples, conditions to flat records) so the evaluator has no
special cases. Anything that is not a policy raises `PolicyError` with one line that says where
(`Statement[2].Action: ...`).

Bad input is refused before it can hurt (RFC 8259 leaves these to the parser; KMS and IAM reject them): duplicate
object keys (which one would AWS read?), the same condition key twice in one operator in different case (condition
keys are case-insensitive: the same question), `NaN`/`Infinity`, numbers too large to convert, and nesting deeper than
`MAX_DEPTH` (checked on the raw text before decoding, so no recursion error can escape). Every message is one line of
printable ASCII and bounded: nothing from the policy can add lines or control characters to it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

MAX_POLICY_BYTES = 32_768
"""KMS key policies are at most 32 KB (32,768 bytes); the limit is not adjustable."""

MAX_DEPTH = 16
"""Deepest JSON nesting accepted: a key policy needs 5 (document, Statement list, statement, Condition, operator)."""

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
"""Condition keys are case-insensitive (ASCII letters only, as the evaluator compares them)."""

_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
"""A JSON string (its closing quote optional: an unterminated string runs to the end in one match, so the scan never
restarts inside it, which made `["\\"\\"\\"...` quadratic), or a bracket. Linear; json.loads judges the rest."""

VALID_VERSIONS = ("2012-10-17", "2008-10-17")
PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")

Effect = Literal["Allow", "Deny"]
SetQualifier = Literal["ForAnyValue", "ForAllValues"]


class PolicyError(ValueError):
    """The document is not a key policy. The message is one line that names the place."""


@dataclass(frozen=True)
class Principal:
    """One entry of a Principal/NotPrincipal element: `("AWS", "arn:aws:iam::1:root")`, or `("*", "*")`."""

    type: str
    value: str


@dataclass(frozen=True)
class Condition:
    """One condition test: operator, key and values, flattened from the nested Condition block."""

    operator: str
    """The base operator without qualifiers: `StringEquals`, `ArnLike`, `Null`, ..."""
    key: str
    """The condition key as written (IAM condition keys are case-insensitive: compare lower-cased)."""
    values: tuple[str, ...]
    if_exists: bool = False
    qualifier: SetQualifier | None = None

    @property
    def label(self) -> str:
        prefix = f"{self.qualifier}:" if self.qualifier else ""
        suffix = "IfExists" if self.if_exists else ""
        return f"{prefix}{self.operator}{suffix} {self.key}"


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str | None
    effect: Effect
    principals: tuple[Principal, ...]
    principal_negated: bool
    actions: tuple[str, ...]
    action_negated: bool
    resources: tuple[str, ...]
    resource_negated: bool
    conditions: tuple[Condition, ...]

    @property
    def label(self) -> str:
        """How findings name the statement: its Sid, or its position when it has none."""
        return self.sid if self.sid else f"#{self.index}"


@dataclass(frozen=True)
class Policy:
    version: str | None
    statements: tuple[Statement, ...]
    size: int | None = None
    """The document's size in UTF-8 bytes, when it was parsed from text (KMS holds at most `MAX_POLICY_BYTES`)."""

    @property
    def has_variables(self) -> bool:
        """Whether `${...}` is a policy variable here: only under Version 2012-10-17 (otherwise it is literal text)."""
        return self.version == "2012-10-17"


def parse_policy(text: str | bytes) -> Policy:
    """Parse a key policy document (JSON text)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise PolicyError("policy is empty")
    _check_depth(text)
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_bounded_float,
        )
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PolicyError(f"policy is nested deeper than {MAX_DEPTH} levels") from None
    except PolicyError as exc:
        raise PolicyError(_clean(str(exc), 300)) from None
    except ValueError as exc:  # a number Python refuses to convert (over its digit limit)
        raise PolicyError(f"policy holds a number too large to convert ({_clean(str(exc), 80)})") from None
    policy = parse_policy_document(doc)
    return Policy(policy.version, policy.statements, len(text.encode("utf-8")))


def _check_depth(text: str) -> None:
    depth = 0
    for token in _NESTING.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyError(f"policy is nested deeper than {MAX_DEPTH} levels (at character {token.start()})")
        elif char in "]}":
            depth -= 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PolicyError(f"duplicate key {_short(key)} in one JSON object (AWS would read only one of them)")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise PolicyError(f"{name} is not a JSON number")


_MAX_NUMBER_CHARS = 100
"""Longer numbers are refused: no key policy value needs them, and converting them costs quadratic time."""


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise PolicyError(f"a number of {len(text)} digits is too large to convert")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_CHARS:
        raise PolicyError(f"a number of {len(text)} characters is too large to convert")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise PolicyError(f"a number out of range ({_short(text)})")
    return value


def parse_policy_document(doc: Any) -> Policy:
    """Parse an already-decoded policy document."""
    try:
        return _document(doc)
    except PolicyError as exc:
        # Keys and operators are quoted from the policy: one line of printable ASCII, bounded, whatever they hold.
        raise PolicyError(_clean(str(exc), 300)) from None


def _document(doc: Any) -> Policy:
    if not isinstance(doc, dict):
        raise PolicyError(f"policy must be a JSON object, not {_json_type(doc)}")
    version = doc.get("Version")
    if version is not None and version not in VALID_VERSIONS:
        raise PolicyError(f"Version: must be one of {', '.join(VALID_VERSIONS)}, not {_short(version)}")
    unknown = sorted(set(doc) - {"Version", "Id", "Statement"})
    if unknown:
        raise PolicyError(f"unknown top-level element {unknown[0]!r}")
    if "Statement" not in doc:
        raise PolicyError("Statement: missing")
    raw = doc["Statement"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyError(f"Statement: must be an object or a list of objects, not {_json_type(raw)}")
    if not raw:
        raise PolicyError("Statement: must contain at least one statement")
    return Policy(version=version, statements=tuple(_parse_statement(i, s) for i, s in enumerate(raw)))


_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)


def _parse_statement(index: int, raw: Any) -> Statement:
    # Locations are built only when something is wrong: the success path formats no strings.
    try:
        return _statement(index, raw)
    except PolicyError as exc:
        detail = str(exc)
        raise PolicyError(f"Statement[{index}]{'' if detail.startswith(':') else '.'}{detail}") from None


def _statement(index: int, raw: Any) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f": must be an object, not {_json_type(raw)}")
    if not _STATEMENT_KEYS.issuperset(raw):
        raise PolicyError(f": unknown element {sorted(set(raw) - _STATEMENT_KEYS)[0]!r}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"Sid: must be a string, not {_json_type(sid)}")
    effect = raw.get("Effect")
    if effect != "Allow" and effect != "Deny":  # noqa: PLR1714  (a set lookup would hash unhashable values)
        raise PolicyError(f'Effect: must be "Allow" or "Deny", not {_short(effect)}')

    principal_key = _exactly_one(raw, "Principal", "NotPrincipal")
    actions_key = _exactly_one(raw, "Action", "NotAction")
    resource_key = _exactly_one(raw, "Resource", "NotResource")
    condition = raw.get("Condition")
    return Statement(
        index=index,
        sid=sid or None,
        effect=effect,
        principals=_parse_principal(raw[principal_key], principal_key),
        principal_negated=principal_key == "NotPrincipal",
        actions=_string_list(raw[actions_key], actions_key),
        action_negated=actions_key == "NotAction",
        resources=_string_list(raw[resource_key], resource_key),
        resource_negated=resource_key == "NotResource",
        conditions=() if condition is None else _parse_conditions(condition),
    )


def _exactly_one(raw: dict[str, Any], positive: str, negative: str) -> str:
    has_pos, has_neg = positive in raw, negative in raw
    if has_pos and has_neg:
        raise PolicyError(f": has both {positive} and {negative}")
    if not has_pos and not has_neg:
        raise PolicyError(f": needs {positive} or {negative}")
    return positive if has_pos else negative


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if type(value) is str:
        if value:
            return (value,)
        raise PolicyError(f"{where}[0]: must be a non-empty string, not {_short(value)}")
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: must be a string or a non-empty list of strings, not {_short(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{where}[{i}]: must be a non-empty string, not {_short(item)}")
    return tuple(value)


def _parse_principal(value: Any, where: str) -> tuple[Principal, ...]:
    if value == "*":
        return (Principal("*", "*"),)
    if not isinstance(value, dict) or not value:
        raise PolicyError(f'{where}: must be "*" or an object such as {{"AWS": [...]}}, not {_short(value)}')
    out: list[Principal] = []
    for ptype, pvalues in value.items():
        if ptype not in PRINCIPAL_TYPES:
            raise PolicyError(
                f"{where}: unknown principal type {ptype!r} (expected one of {', '.join(PRINCIPAL_TYPES)})"
            )
        try:
            out.extend(Principal(ptype, v) for v in _string_list(pvalues, ptype))
        except PolicyError as exc:
            raise PolicyError(f"{where}.{exc}") from None
    return tuple(out)


def _parse_conditions(value: Any) -> tuple[Condition, ...]:
    where = "Condition"
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: must be an object, not {_json_type(value)}")
    out: list[Condition] = []
    for raw_op, block in value.items():
        if not raw_op:
            raise PolicyError(f"{where}: empty condition operator")
        qualifier: SetQualifier | None = None
        operator = raw_op
        if ":" in operator:
            prefix, operator = operator.split(":", 1)
            if prefix not in ("ForAnyValue", "ForAllValues"):
                raise PolicyError(f"{where}.{raw_op}: unknown set qualifier {prefix!r} (ForAnyValue or ForAllValues)")
            qualifier = prefix
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        if if_exists:
            operator = operator[: -len("IfExists")]
        if not operator:
            raise PolicyError(f"{where}.{raw_op}: empty condition operator")
        if not isinstance(block, dict) or not block:
            raise PolicyError(f"{where}.{raw_op}: must be a non-empty object of condition keys, not {_short(block)}")
        seen: dict[str, str] = {}
        for key, raw_values in block.items():
            if not key:
                raise PolicyError(f"{where}.{raw_op}: empty condition key")
            folded = key.translate(_ASCII_FOLD)
            if folded in seen:
                raise PolicyError(
                    f"{where}.{raw_op}: condition key {_short(key)} is also written {_short(seen[folded])}; condition "
                    "keys are case-insensitive, so which one AWS would read is ambiguous"
                )
            seen[folded] = key
            try:
                values = _condition_values(raw_values)
            except PolicyError as exc:
                raise PolicyError(f"{where}.{raw_op}.{key}{exc}") from None
            out.append(Condition(operator, key, values, if_exists, qualifier))
    return tuple(out)


def _condition_values(value: Any) -> tuple[str, ...]:
    if type(value) is str:
        return (value,)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(": needs at least one value")
    out: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(json.dumps(item))
        else:
            raise PolicyError(f"[{i}]: must be a string, number or boolean, not {_json_type(item)}")
    return tuple(out)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _short(value: Any) -> str:
    """A value for an error message: printable, one line, bounded (hostile input must not flood a log line)."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = _json_type(value)
    return _clean(text, 60)


def _clean(text: str, limit: int) -> str:
    """Printable ASCII only (anything else escaped), at most `limit` characters."""
    text = "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in text[: limit * 2])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_message(text: str, limit: int = 300) -> str:
    """An error message from this module, made safe to print on one line (for callers that add a prefix)."""
    return _clean(text, limit)
