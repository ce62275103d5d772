"""What KMS would reject in a key policy, or AWS never matches: reported as `POLICY_INVALID` (design.md).

- Over 32 KB (32,768 bytes): KMS cannot hold it (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html).
- A principal outside AWS's grammar (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html):
  `*`, a 12-digit account ID, or an IAM/STS ARN `arn:<partition>:iam::<12 digits>:<name>` in printable ASCII without
  whitespace or wildcards. KMS refuses a policy naming a principal it cannot resolve; AWS never matches one.
- An action name that is not ASCII, or holds whitespace or control characters: no IAM action is spelled so.
- `NotPrincipal` with `Allow`: not supported by AWS
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kms_guard.core.policy import MAX_POLICY_BYTES, Policy, Statement
from kms_guard.core.vendor import ACCOUNT_ID, IAM_PRINCIPAL_ARN

_SERVICE = re.compile(r"[a-z0-9.-]+\.amazonaws\.com(?:\.cn)?|[a-z0-9.-]+\.amazon\.com", re.ASCII)
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Problem:
    statement: Statement | None
    message: str


def _quote(value: str) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _principal_ok(ptype: str, value: str) -> bool:
    if value == "*":
        return ptype == "AWS"
    if "*" in value or "?" in value:
        return False  # AWS has no partial wildcards in principals
    if ptype == "AWS":
        if ACCOUNT_ID.match(value):
            return True
        m = IAM_PRINCIPAL_ARN.match(value)
        return m is not None and not (m.group(2) == "sts" and m.group(4) == "root")
    if ptype == "Service":
        return _SERVICE.fullmatch(value) is not None
    return _PRINTABLE.fullmatch(value) is not None


def problems(policy: Policy) -> tuple[Problem, ...]:
    """Everything in the policy KMS would reject or AWS never matches, one problem per statement and kind."""
    out: list[Problem] = []
    if policy.size is not None and policy.size > MAX_POLICY_BYTES:
        out.append(
            Problem(
                None, f"the policy is {policy.size} bytes; KMS holds at most {MAX_POLICY_BYTES} and would reject it"
            )
        )
    for statement in policy.statements:
        bad = [p.value for p in statement.principals if p.type != "*" and not _principal_ok(p.type, p.value)]
        if bad:
            out.append(
                Problem(
                    statement,
                    f"statement {statement.label} names a principal outside AWS's grammar ({_quote(bad[0])}); "
                    "KMS would reject it and AWS never matches it",
                )
            )
        odd = [a for a in statement.actions if not _PRINTABLE.fullmatch(a)]
        if odd:
            out.append(
                Problem(
                    statement,
                    f"statement {statement.label} has an action name that is not printable ASCII ({_quote(odd[0])}); "
                    "no IAM action matches it",
                )
            )
        if statement.principal_negated and statement.effect == "Allow":
            out.append(
                Problem(
                    statement,
                    f"statement {statement.label} uses NotPrincipal with Allow, which AWS does not support: it grants "
                    "nothing",
                )
            )
    return tuple(out)
