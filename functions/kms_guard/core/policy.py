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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

MAX_POLICY_BYTES = 32_768
"""KMS key policies are at most 32 KB (32,768 bytes); the limit is not adjustable."""

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


def parse_policy(text: str | bytes) -> Policy:
    """Parse a key policy document (JSON text)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise PolicyError("policy is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PolicyError("policy is not valid JSON: nested too deeply") from None
    return parse_policy_document(doc)


def parse_policy_document(doc: Any) -> Policy:
    """Parse an already-decoded policy document."""
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
    where = f"Statement[{index}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be an object, not {_json_type(raw)}")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown element {unknown[0]!r}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{where}.Sid: must be a string, not {_json_type(sid)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{where}.Effect: must be "Allow" or "Deny", not {_short(effect)}')

    principal_key = _exactly_one(raw, where, "Principal", "NotPrincipal")
    actions_key = _exactly_one(raw, where, "Action", "NotAction")
    resource_key = _exactly_one(raw, where, "Resource", "NotResource")

    return Statement(
        index=index,
        sid=sid or None,
        effect=effect,
        principals=_parse_principal(raw[principal_key], f"{where}.{principal_key}"),
        principal_negated=principal_key == "NotPrincipal",
        actions=_string_list(raw[actions_key], f"{where}.{actions_key}"),
        action_negated=actions_key == "NotAction",
        resources=_string_list(raw[resource_key], f"{where}.{resource_key}"),
        resource_negated=resource_key == "NotResource",
        conditions=_parse_conditions(raw.get("Condition"), f"{where}.Condition"),
    )


def _exactly_one(raw: dict[str, Any], where: str, positive: str, negative: str) -> str:
    has_pos, has_neg = positive in raw, negative in raw
    if has_pos and has_neg:
        raise PolicyError(f"{where}: has both {positive} and {negative}")
    if not has_pos and not has_neg:
        raise PolicyError(f"{where}: needs {positive} or {negative}")
    return positive if has_pos else negative


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
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
        out.extend(Principal(ptype, v) for v in _string_list(pvalues, f"{where}.{ptype}"))
    return tuple(out)


def _parse_conditions(value: Any, where: str) -> tuple[Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: must be an object, not {_json_type(value)}")
    out: list[Condition] = []
    for raw_op, block in value.items():
        op_where = f"{where}.{raw_op}"
        if not isinstance(raw_op, str) or not raw_op:
            raise PolicyError(f"{where}: empty condition operator")
        qualifier: SetQualifier | None = None
        operator = raw_op
        if ":" in operator:
            prefix, operator = operator.split(":", 1)
            if prefix not in ("ForAnyValue", "ForAllValues"):
                raise PolicyError(f"{op_where}: unknown set qualifier {prefix!r} (ForAnyValue or ForAllValues)")
            qualifier = prefix  # type: ignore[assignment]
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        if if_exists:
            operator = operator[: -len("IfExists")]
        if not operator:
            raise PolicyError(f"{op_where}: empty condition operator")
        if not isinstance(block, dict) or not block:
            raise PolicyError(f"{op_where}: must be a non-empty object of condition keys, not {_short(block)}")
        for key, raw_values in block.items():
            if not key:
                raise PolicyError(f"{op_where}: empty condition key")
            out.append(
                Condition(
                    operator=operator,
                    key=key,
                    values=_condition_values(raw_values, f"{op_where}.{key}"),
                    if_exists=if_exists,
                    qualifier=qualifier,
                )
            )
    return tuple(out)


def _condition_values(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(f"{where}: needs at least one value")
    out: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(json.dumps(item))
        else:
            raise PolicyError(f"{where}[{i}]: must be a string, number or boolean, not {_json_type(item)}")
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
    except (TypeError, ValueError):
        text = _json_type(value)
    return text if len(text) <= 60 else text[:57] + "..."
