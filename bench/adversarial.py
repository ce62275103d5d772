"""Adversarial key policies of at most 32 KB, and the slowest one's evaluation time (`worst_policy_ms`, goal <= 50 ms).

Each policy attacks one way an evaluator can be made slow: many-star wildcards in every element (actions, resources,
condition values, principal ARNs), thousands of condition values, deep `Not*` mixes, many statements, unresolvable
policy variables. Each is parsed and evaluated as the guard does, with the key ARN known and offline (check-policy),
and the median of a few runs is taken.

    uv run --frozen python -m bench.adversarial
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from kms_guard.core import actions, wildcards
from kms_guard.core.compliance import assess_policy
from kms_guard.core.policy import MAX_POLICY_BYTES, parse_policy
from kms_guard.core.vendor import ROCKSET

VENDOR_ROOT = f"arn:aws:iam::{ROCKSET.account}:root"
KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
GRANT = {
    "Sid": "RocksetAccess",
    "Effect": "Allow",
    "Principal": {"AWS": VENDOR_ROOT},
    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
    "Resource": "*",
}
REPEATS = 5


def _fill(build: Callable[[int], dict[str, Any]]) -> str:
    """The largest policy `build(n)` makes that still fits in 32 KB (binary search on n)."""
    low, high = 1, 1
    while len(json.dumps(build(high)).encode()) <= MAX_POLICY_BYTES:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if len(json.dumps(build(mid)).encode()) <= MAX_POLICY_BYTES:
            low = mid
        else:
            high = mid
    return json.dumps(build(low))


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [GRANT, *statements]}


def _deny(**extra: Any) -> dict[str, Any]:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", **extra}
    if "NotResource" in extra:
        del statement["Resource"]
    return statement


def policies() -> dict[str, str]:
    """name -> policy text, every one at most 32 KB."""
    return {
        "one-many-star-action": _fill(lambda n: _policy(_deny(Action=["kms:" + "*" * n + "q"]))),
        "star-question-action": _fill(lambda n: _policy(_deny(Action=["kms:" + "*?" * n + "q"]))),
        "many-star-actions": _fill(lambda n: _policy(_deny(Action=[f"kms:{'*' * 9}{i}q" for i in range(n)]))),
        "many-star-resources": _fill(lambda n: _policy(_deny(Resource=[f"arn:{'*?' * 6}{i}:z" for i in range(n)]))),
        "many-star-key-resources": _fill(
            lambda n: _policy(_deny(Resource=[f"arn:{'*?' * 6}{i}:key/x" for i in range(n)]))
        ),
        # The same, but no key ARN could match (five literal colons in the wrong places): every pattern is searched
        # to the end, none can settle the list early.
        "many-star-key-resources-none-match": _fill(
            lambda n: _policy(_deny(Resource=[f"arn:{'*?' * 6}:x:y:z{i}:key/x" for i in range(n)]))
        ),
        "one-many-star-resource": _fill(lambda n: _policy(_deny(Resource=["arn:" + "*a" * n + ":kms:q"]))),
        "many-star-notresource": _fill(lambda n: _policy(_deny(NotResource=["*" * n + "q"]))),
        "thousands-of-condition-values": _fill(
            lambda n: _policy(_deny(Condition={"StringLike": {"aws:PrincipalArn": [f"*{i}*?*" for i in range(n)]}}))
        ),
        "many-star-arn-condition": _fill(
            lambda n: _policy(_deny(Condition={"ArnNotLike": {"aws:PrincipalArn": ["arn:" + "*:" * n + "x"]}}))
        ),
        "account-like-values": _fill(
            lambda n: _policy(
                _deny(
                    Condition={
                        "ForAnyValue:StringNotLike": {"kms:CallerAccount": ["*" * 20 + str(i) for i in range(n)]}
                    }
                )
            )
        ),
        "deep-not-mixes": _fill(
            lambda n: {
                "Version": "2012-10-17",
                "Statement": [GRANT]
                + [
                    {
                        "Effect": "Deny" if i % 2 else "Allow",
                        "NotPrincipal" if i % 2 else "Principal": {"AWS": [VENDOR_ROOT, f"arn:aws:iam::{i:012d}:root"]},
                        "NotAction": [f"kms:{'*' * 5}{i}"],
                        "NotResource": [f"arn:*{i}*"],
                        "Condition": {"StringNotEqualsIfExists": {"aws:SourceVpce": f"vpce-{i}"}},
                    }
                    for i in range(n)
                ],
            }
        ),
        "many-statements": _fill(
            lambda n: {
                "Version": "2012-10-17",
                "Statement": [GRANT] * 1 + [_deny(Sid=f"S{i}", Action=f"kms:X{i}*") for i in range(n)],
            }
        ),
        "unresolvable-variables": _fill(
            lambda n: _policy(_deny(Resource=[f"arn:aws:kms:*:${{aws:SourceIp}}{i}*" for i in range(n)]))
        ),
        # `${` over and over with no `}`: a regular expression for variables rescans the rest from every one
        # (quadratic; about 1 s at 30 KB before the scan was made linear).
        "unclosed-variables-condition": _fill(
            lambda n: _policy(_deny(Condition={"StringEquals": {"kms:CallerAccount": "${" * n}}))
        ),
        "unclosed-variables-resource": _fill(lambda n: _policy(_deny(Resource=["${" * n]))),
        "principal-lookalikes": _fill(
            lambda n: _policy(
                {
                    **GRANT,
                    "Principal": {"AWS": [f"arn:aws:iam::{ROCKSET.account}:role/{'*' * 10}{i}" for i in range(n)]},
                }
            )
        ),
    }


def _time_ms(text: str, key_arn: str | None) -> float:
    runs = []
    for _ in range(REPEATS):
        # Cold caches every run: a hostile policy brings patterns the guard has not seen.
        actions.covers.cache_clear()
        actions.expand.cache_clear()
        wildcards.compile_glob.cache_clear()
        actions.all_actions()
        start = time.perf_counter()
        assess_policy(parse_policy(text), ROCKSET, key_arn=key_arn)
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def measure() -> dict[str, float]:
    """name -> the slower of (key ARN known, offline) median evaluation time in ms."""
    out = {}
    for name, text in policies().items():
        out[name] = max(_time_ms(text, KEY_ARN), _time_ms(text, None))
    return out


def worst_policy_ms() -> tuple[float, str]:
    """The slowest adversarial policy's evaluation time in ms, and its name."""
    times = measure()
    name = max(times, key=times.__getitem__)
    return times[name], name


if __name__ == "__main__":
    for name, ms in sorted(measure().items(), key=lambda item: -item[1]):
        print(f"{name:32} {ms:8.2f} ms")
    ms, name = worst_policy_ms()
    print(f"worst_policy_ms = {ms:.2f} ({name}); goal <= 50")
