"""Regressions for the adversarial review of the evaluator (findings F1-F7; the policies are the review's own)."""

import io
import json
from typing import Any

import pytest
from kms_guard.core import actions as catalogue
from kms_guard.core.compliance import assess_policy
from kms_guard.core.findings import RegionReport
from kms_guard.core.policy import parse_policy
from kms_guard.core.remediation import plan_region
from kms_guard.core.repair import plan_repair, plan_restore_statement
from kms_guard.core.vendor import ROCKSET
from kms_guard_cli.main import run

KEY = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
VENDOR_ROOT = "arn:aws:iam::318212636800:root"
REQUIRED = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
GUARD_ROLE: dict[str, Any] = {
    "Sid": "GuardRole",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111122223333:role/KmsGuard"},
    "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy"],
    "Resource": "*",
}
VENDOR_GRANT: dict[str, Any] = {
    "Sid": "Vendor",
    "Effect": "Allow",
    "Principal": {"AWS": VENDOR_ROOT},
    "Action": REQUIRED,
    "Resource": "*",
}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def verdict(text: str, key_arn: str | None = None) -> str:
    from kms_guard.core.findings import verdict_of

    return verdict_of(assess_policy(parse_policy(text), ROCKSET, key_arn=key_arn).findings)


# --- F3: the guard's Sid on a statement that grants more than the vendor's access ---------------------------------

# p/fix1.json: the customer's admin statement (root, kms:*) carrying the guard's Sid.
FIX1 = doc(
    {
        "Sid": "KmsGuardRocksetAccess",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
)
# p/fix2.json: admin and a vendor role in one statement, kms:*, an IP condition, plus the guard's role.
FIX2 = doc(
    {
        "Sid": "KmsGuardRocksetAccess",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::318212636800:role/rockset"]},
        "Action": ["kms:*"],
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
    },
    GUARD_ROLE,
)


def _owned(**changes: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "KmsGuardRocksetAccess",
        "Effect": "Allow",
        "Principal": {"AWS": VENDOR_ROOT},
        "Action": ["kms:Encrypt"],
        "Resource": "*",
    }
    statement.update(changes)
    return {k: v for k, v in statement.items() if v is not None}


SOURCE_IP = {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
"""An undecidable condition: the vendor's grant is not whole, so the planner has something to repair."""

GRANTS_MORE = {
    "admin-root-kms-star": FIX1,
    "admin-and-vendor-role-with-condition": FIX2,
    "vendor-with-kms-star": doc(_owned(Action="kms:*", Condition=SOURCE_IP), GUARD_ROLE),
    "vendor-with-put-key-policy": doc(_owned(Action=["kms:Encrypt", "kms:PutKeyPolicy"]), GUARD_ROLE),
    "vendor-and-another-account": doc(
        _owned(Principal={"AWS": [VENDOR_ROOT, "arn:aws:iam::444455556666:root"]}), GUARD_ROLE
    ),
    "vendor-and-everyone": doc(_owned(Principal="*"), GUARD_ROLE),
    "not-action": doc(_owned(Action=None, NotAction="kms:PutKeyPolicy", Condition=SOURCE_IP), GUARD_ROLE),
    "not-resource": doc(_owned(Resource=None, NotResource="arn:aws:kms:us-west-2:111122223333:key/other"), GUARD_ROLE),
    "other-service-action": doc(_owned(Action=["kms:Encrypt", "s3:GetObject"]), GUARD_ROLE),
    "resource-wildcard-pattern": doc(_owned(Resource="arn:aws:kms:*"), GUARD_ROLE),
}


@pytest.mark.parametrize("name", sorted(GRANTS_MORE))
def test_f3_planner_refuses_to_rewrite_a_guard_sid_statement_that_grants_more_than_the_vendor(name: str) -> None:
    text = GRANTS_MORE[name]
    for key_arn in (None, KEY):
        plan = plan_restore_statement(text, ROCKSET, key_arn=key_arn)
        assert plan.status == "refused", plan.description
        assert plan.refusal == "guard-sid-grants-more"
        assert plan.policy is None
        assert "statement KmsGuardRocksetAccess carries the guard's Sid but grants more than" in (plan.description)
        assert "the guard will not rewrite it" in plan.description
        # revert without a baseline falls back to the same planner, and keeps the refusal
        reverted = plan_repair("revert", text, ROCKSET, key_arn=key_arn)
        assert reverted.status == "refused"
        assert reverted.refusal == "guard-sid-grants-more"


@pytest.mark.parametrize("name", ["admin-root-kms-star", "admin-and-vendor-role-with-condition"])
def test_f3_fix_policy_cannot_repair_a_guard_sid_on_the_admin_statement(name: str, tmp_path: Any) -> None:
    path = tmp_path / "policy.json"
    path.write_text(GRANTS_MORE[name])
    code, out, err = call("fix-policy", str(path))
    assert code == 1
    assert out == ""
    assert err.startswith("cannot repair safely: statement KmsGuardRocksetAccess carries the guard's Sid")
    code, out, _ = call("fix-policy", str(path), "--output", "json")
    assert code == 1
    assert json.loads(out)["status"] == "refused"
    assert json.loads(out)["policy"] is None


def test_f3_live_restore_statement_refuses_too() -> None:
    findings = assess_policy(parse_policy(FIX2), ROCKSET, region="us-west-2", key_arn=KEY).findings
    report = RegionReport("us-west-2", KEY, "Enabled", findings, FIX2)
    for mode in ("restore-statement", "revert"):
        plan = plan_region(report, ROCKSET, mode=mode, restore_key_state=False, baseline=None)
        assert plan is not None
        assert not plan.writes
        assert plan.refused is not None
        assert "carries the guard's Sid but grants more than" in plan.refused


VENDOR_ONLY = {
    "account-root": doc(_owned(), GUARD_ROLE),
    "bare-account-id": doc(_owned(Principal={"AWS": "318212636800"}), GUARD_ROLE),
    "generate-data-key-star": doc(_owned(Action=["kms:GenerateDataKey*"]), GUARD_ROLE),
    "with-a-condition": doc(_owned(Condition=SOURCE_IP), GUARD_ROLE),
    "resource-the-key": doc(_owned(Resource=KEY), GUARD_ROLE),
}


@pytest.mark.parametrize("name", sorted(VENDOR_ONLY))
def test_f3_a_vendor_only_guard_statement_is_still_repaired(name: str) -> None:
    plan = plan_restore_statement(VENDOR_ONLY[name], ROCKSET, key_arn=KEY)
    assert plan.status == "repair", plan.description
    assert plan.policy is not None
    assert verdict(plan.policy, KEY) == "compliant"
    owned = json.loads(plan.policy)["Statement"][0]
    assert owned["Principal"] == {"AWS": VENDOR_ROOT}
    assert set().union(*(catalogue.expand(a) for a in owned["Action"])) == set(ROCKSET.concrete_actions)
    assert "Condition" not in owned
    assert json.loads(plan.policy)["Statement"][1] == GUARD_ROLE


def test_f3_a_guard_sid_deny_is_still_refused_as_a_deny() -> None:
    plan = plan_restore_statement(doc(_owned(Effect="Deny"), GUARD_ROLE), ROCKSET)
    assert plan.refusal in ("guard-sid-on-deny", "deny-blocks-vendor")


# --- F1: Arn* operators, whole-string glob versus one glob per ARN component --------------------------------------


def _deny_unless(operator: str, pattern: str) -> str:
    """The review's shape: a whole vendor grant plus a Deny to everyone that is meant to exempt the vendor."""
    deny = {
        "Sid": "D",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {operator: {"aws:PrincipalArn": pattern}},
    }
    return doc(VENDOR_GRANT, deny)


@pytest.mark.parametrize(
    ("operator", "pattern"),
    [
        ("ArnNotLike", "arn:aws:iam?:318212636800:*"),  # p/arnnotlike_q_in_service.json: `iam?` never matches `iam`
        ("ArnNotLike", "arn:aws:iam::318212636800*"),  # p/arnnotlike_5comp.json: no resource component
        ("ArnNotEquals", "arn:aws:iam::318212636800*"),  # p/arnnotequals_star_tail.json
        ("ArnNotLike", "arn:aws:iam::*"),  # p/arnnotlike_star_account.json
        ("ArnNotLike", "arn:aws:iam::318212636800?*"),  # p/arnnotlike_qcolon.json
        ("ArnNotLike", "arn:*"),  # p/arnnotlike_arnstar.json
    ],
)
def test_f1_an_arn_exemption_the_two_readings_disagree_on_is_at_risk_not_compliant(operator: str, pattern: str) -> None:
    text = _deny_unless(operator, pattern)
    for key_arn in (None, KEY):
        assessment = assess_policy(parse_policy(text), ROCKSET, key_arn=key_arn)
        assert verdict(text, key_arn) == "at-risk"
        assert set(assessment.conditional) == set(ROCKSET.concrete_actions)


@pytest.mark.parametrize(
    ("operator", "pattern", "expected"),
    [
        # the ordinary exemption of the vendor's account: both readings agree it matches every vendor principal
        ("ArnNotLike", "arn:aws:iam::318212636800:*", "compliant"),
        ("ArnNotLike", "arn:*:iam::318212636800:*", "compliant"),
        ("ArnNotLike", "arn:aws:iam::31821263680?:*", "compliant"),
        # only some of the vendor's principals are exempt: unknown under both readings
        ("ArnNotLike", "arn:aws:iam::318212636800:role/*", "at-risk"),
        ("ArnNotEquals", "arn:aws:iam::318212636800:root", "at-risk"),
        # another account: the Deny applies to the vendor under both readings
        ("ArnNotLike", "arn:aws:iam::111122223333:*", "non-compliant"),
        ("ArnLike", "arn:aws:iam::318212636800:*", "non-compliant"),
        ("ArnLike", "arn:aws:iam::111122223333:*", "compliant"),
    ],
)
def test_f1_ordinary_arn_conditions_keep_their_verdicts(operator: str, pattern: str, expected: str) -> None:
    assert verdict(_deny_unless(operator, pattern)) == expected
    assert verdict(_deny_unless(operator, pattern), KEY) == expected


def test_f1_arn_like_of_a_known_arn_is_unknown_only_where_the_readings_disagree() -> None:
    from kms_guard.core.evaluate import arn_like
    from kms_guard.core.tri import Tri

    role = "arn:aws:iam::318212636800:role/a:b"
    assert arn_like("arn:aws:iam::318212636800:role/*", role) is Tri.TRUE
    assert arn_like("arn:aws:iam::318212636800:role/a:*", role) is Tri.TRUE  # the 6th component keeps its colons
    assert arn_like("arn:aws:iam::*:role/a:b", role) is Tri.TRUE
    assert arn_like("arn:aws:iam::111122223333:*", role) is Tri.FALSE
    assert arn_like("arn:aws:iam::318212636800:user/*", role) is Tri.FALSE
    assert arn_like("arn:aws:iam?:318212636800:*", role) is Tri.UNKNOWN  # `?` takes a `:` only in the whole reading
    assert arn_like("arn:aws:iam::318212636800*", role) is Tri.UNKNOWN  # five components
    assert arn_like("arn:*", role) is Tri.UNKNOWN
    assert arn_like("*", role) is Tri.UNKNOWN  # one component against six


# --- F4: policy variables found in linear time; the budget is checked inside long loops ----------------------------


def _unclosed_variables_policy(where: str, size: int = 30_000) -> str:
    """p/var_quad_cond.json / p/var_quad_res.json: `${` repeated with no `}`, a valid policy of about `size` bytes."""
    deny: dict[str, Any] = {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    if where == "condition":
        deny["Condition"] = {"StringEquals": {"kms:CallerAccount": "${" * (size // 2)}}
    else:
        deny["Resource"] = ["${" * (size // 2)]
    return doc(VENDOR_GRANT, deny)


def test_f4_variable_substitution_reads_variables_as_before() -> None:
    import random
    import re

    from kms_guard.core.evaluate import Caller, _facts, substitute

    facts = _facts(Caller("318212636800"))
    old = re.compile(r"\$\{([^}]*)\}")  # the previous (quadratic) reading: the body runs to the next `}`

    def reference(text: str) -> tuple[str | None, bool]:
        # The old tokenisation, each variable's body then read on its own (one `${body}`: nothing to tokenise).
        unknown = special = False

        def one(found: re.Match[str]) -> str:
            nonlocal unknown, special
            value, is_special = substitute("${" + found.group(1) + "}", facts)
            special = special or is_special
            unknown = unknown or value is None
            return value or ""

        result = old.sub(one, text)
        return (None, special) if unknown else (result, special)

    rng = random.Random(4)
    alphabet = ["${", "}", "{", "$", "a", " ", "*", "?", "kms:CallerAccount", "aws:PrincipalAccount"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert substitute(text, facts) == reference(text), text
    assert substitute("${", facts) == ("${", False)
    assert substitute("x${${kms:CallerAccount}y", facts) == (None, False)  # body `${kms:CallerAccount`: unknown
    assert substitute("${kms:CallerAccount}${$}${", facts) == ("318212636800$${", False)


@pytest.mark.parametrize("where", ["condition", "resource"])
def test_f4_a_30kb_policy_of_unclosed_variables_evaluates_quickly(where: str) -> None:
    import time

    text = _unclosed_variables_policy(where)
    assert len(text.encode()) <= 32_768
    policy = parse_policy(text)
    for key_arn in (None, KEY):
        start = time.process_time()
        assess_policy(policy, ROCKSET, key_arn=key_arn)
        spent = time.process_time() - start
        # Linear: a few ms. The regular expression took about 1 s of CPU here (quadratic in the value's length).
        assert spent < 0.25, f"{spent:.3f} s of CPU for a {len(text)}-byte policy"


def test_f4_the_budget_is_checked_inside_one_statement_with_many_resources() -> None:
    from kms_guard.core.evaluate import Budget, BudgetExceeded

    ticks = 0

    def clock() -> float:
        nonlocal ticks
        ticks += 1
        return float(ticks)

    # One statement, 2000 resources that each need a search: a deadline of 100 clock reads must stop it inside the
    # statement (checked only per statement and per condition value before, it ran to the end).
    deny = {
        "Sid": "D",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": [f"arn:*?*?:x:y:z{i}:key/x" for i in range(2000)],
    }
    policy = parse_policy(doc(VENDOR_GRANT, deny))
    with pytest.raises(BudgetExceeded):
        assess_policy(policy, ROCKSET, budget=Budget(100, clock=clock))
    ticks = 0
    actions = doc(VENDOR_GRANT, {**deny, "Resource": "*", "Action": [f"kms:X{i}*" for i in range(2000)]})
    with pytest.raises(BudgetExceeded):
        assess_policy(parse_policy(actions), ROCKSET, budget=Budget(100, clock=clock))


def test_f4_the_benchmark_holds_the_unclosed_variables_policies() -> None:
    from bench.adversarial import policies

    names = set(policies())
    assert {"unclosed-variables-condition", "unclosed-variables-resource"} <= names
    assert "${${${" in policies()["unclosed-variables-condition"]


# --- F5: the nesting check before decoding is linear, whatever the strings hold ----------------------------------


def _cli_subprocess(argv: list[str], stdin: bytes | None = None, timeout: float = 60) -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("functions", "cli")),
        "PYTHONIOENCODING": "utf-8:strict",
        "PYTHONUTF8": "0",
        "LC_ALL": "C.UTF-8",
    }
    return subprocess.run(
        [sys.executable, "-m", "kms_guard_cli", *argv],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    "text",
    [
        '["' + '\\"' * 16380,  # p/depth_regex_escq.json: 32 KB, a string that never closes, full of escaped quotes
        '["' + "\\\\" * 8190 + '\\"' * 8190,
        '{"a": "' + '\\"[' * 10900,
    ],
    ids=["escaped-quotes", "backslashes-then-quotes", "quotes-and-brackets"],
)
def test_f5_an_unterminated_string_is_refused_in_linear_time(text: str) -> None:
    import time

    from kms_guard.core.policy import PolicyError

    start = time.process_time()
    with pytest.raises(PolicyError, match="not valid JSON"):
        parse_policy(text)
    spent = time.process_time() - start
    assert spent < 0.25, f"{spent:.3f} s of CPU to refuse {len(text)} characters"  # was about 2 s (quadratic)


def test_f5_a_4mb_unterminated_string_through_the_cli_is_one_line_and_quick(tmp_path: Any) -> None:
    path = tmp_path / "big.json"
    path.write_text('["' + '\\"' * (2 * 1024 * 1024 - 2))
    assert path.stat().st_size <= 4 * 1024 * 1024
    result = _cli_subprocess(["check-policy", str(path)], timeout=30)  # was hours
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1
    assert b"not valid JSON" in result.stderr


def test_f5_the_nesting_limit_still_holds_and_strings_do_not_count() -> None:
    from kms_guard.core.policy import MAX_DEPTH, PolicyError

    with pytest.raises(PolicyError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_policy('{"a":' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}")
    with pytest.raises(PolicyError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_policy("[" * 2_000_000)
    # brackets and escaped quotes inside strings are text, not nesting
    grant = {**VENDOR_GRANT, "Sid": '\\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{\\\\'}
    assert verdict(doc(grant)) == "compliant"


# --- F6 + F7: policy text in text output is escaped; output never fails to encode ---------------------------------

_ALLOW_ALL = dict(VENDOR_GRANT, Sid="A")
# p/sid_inject.json: a Deny whose Sid forges a verdict line, clears the screen and reverses the text after it.
SID_INJECT = doc(
    _ALLOW_ALL,
    {
        "Sid": "x\nCOMPLIANT: key policy for Rockset (account 318212636800)\n  granted: everything\x1b[2J\u202e",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
    },
)
# p/condkey_inject.json: the same through a condition key the guard quotes in GRANT_CONDITIONAL.
CONDKEY_INJECT = doc(
    dict(
        _ALLOW_ALL,
        Condition={
            "StringEquals": {
                "aws:SourceIp\nCOMPLIANT: key policy for Rockset (account 318212636800)\n  granted: all": "x"
            }
        },
    )
)
# p/surrogate_*.json: lone surrogates, valid JSON (`\ud800` escapes), that no UTF-8 stream can encode.
SURROGATE_SID_PUBLIC = doc(dict(_ALLOW_ALL, Sid="\ud800", Principal="*"))
SURROGATE_SID_DENY = doc(
    _ALLOW_ALL, {"Sid": "\ud800", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
)
SURROGATE_CONDKEY = doc(
    dict(_ALLOW_ALL, Action=["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]),
    {
        "Sid": "B",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceIp\ud800\n": "1"}},
    },
)

HOSTILE = {
    "sid_inject": (SID_INJECT, 1),
    "condkey_inject": (CONDKEY_INJECT, 3),
    "surrogate_sid_public": (SURROGATE_SID_PUBLIC, 0),
    "surrogate_sid_deny": (SURROGATE_SID_DENY, 1),
    "surrogate_condkey": (SURROGATE_CONDKEY, 3),
}


def _assert_safe_lines(text: str) -> None:
    for line in text.splitlines():
        assert line.isascii(), repr(line)
        assert line.isprintable(), repr(line)
    text.encode("utf-8", "strict")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_f6_f7_check_policy_text_escapes_what_the_policy_says(name: str, tmp_path: Any) -> None:
    text, expected = HOSTILE[name]
    path = tmp_path / f"{name}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, out, err = call("check-policy", str(path))
    assert code == expected
    assert err == ""
    _assert_safe_lines(out)
    lines = out.splitlines()
    # one verdict line, the first; every other line is indented (granted/missing/conditional or a finding)
    assert not lines[0].startswith(" ")
    assert all(line.startswith("  ") for line in lines[1:]), lines
    assert sum("COMPLIANT:" in line.split(" ", 1)[0] for line in lines) <= 1
    if name == "sid_inject":
        assert "x\\u000aCOMPLIANT: key policy" in out
        assert "\\u001b[2J\\u202e" in out
    if name.startswith("surrogate"):
        assert "\\ud800" in out


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_f6_f7_fix_policy_stderr_is_one_escaped_line(name: str, tmp_path: Any) -> None:
    text, _ = HOSTILE[name]
    path = tmp_path / f"{name}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, out, err = call("fix-policy", str(path))
    assert code in (0, 1)
    assert err.count("\n") == 1
    _assert_safe_lines(err)
    out.encode("utf-8", "strict")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_f6_f7_the_real_command_with_a_strict_utf8_stdout_never_shows_a_traceback(name: str, tmp_path: Any) -> None:
    text, expected = HOSTILE[name]
    path = tmp_path / f"{name}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for command in ("check-policy", "fix-policy"):
        result = _cli_subprocess([command, str(path)])
        assert b"Traceback" not in result.stderr, result.stderr.decode("utf-8", "replace")
        assert b"\x1b" not in result.stdout + result.stderr
        assert "\u202e".encode() not in result.stdout + result.stderr
        if command == "check-policy":
            assert result.returncode == expected
            lines = result.stdout.decode("ascii").splitlines()
            assert sum(line.startswith("COMPLIANT:") for line in lines) == (1 if expected == 0 else 0)
            assert all(line.startswith("  ") for line in lines[1:])
        else:
            assert result.returncode in (0, 1)
            assert result.stderr.count(b"\n") == 1


def test_f6_json_output_is_unchanged_and_keeps_the_sid_exactly(tmp_path: Any) -> None:
    path = tmp_path / "sid.json"
    path.write_text(SID_INJECT)
    code, out, _ = call("check-policy", str(path), "--output", "json")
    assert code == 1
    statements = {f.get("statement") for f in json.loads(out)["findings"]}
    assert json.loads(SID_INJECT)["Statement"][1]["Sid"] in statements


def test_f6_render_finding_escapes_every_field_from_outside() -> None:
    from kms_guard.core.findings import Code, Finding
    from kms_guard_cli.main import render_finding, safe_text

    finding = Finding(Code.ACTION_DENIED, "critical", "us-west-2\n", "a\r\nb\u2028c\u200bd\udc80", (), "S\x00\u202e")
    line = render_finding(finding)
    assert line == (
        "  CRITICAL ACTION_DENIED [us-west-2\\u000a] (statement S\\u0000\\u202e): a\\u000d\\u000ab\\u2028c\\u200bd\\udc80"
    )
    assert safe_text("Grüße 日本 \U0001f600") == "Grüße 日本 \U0001f600"  # printable text is left alone
    assert safe_text("\U000e0001") == "\\U000e0001"  # a format character outside the BMP


# --- F2: one condition key written twice in different case inside one operator ----------------------------------


def _deny_with_condition(condition: dict[str, Any]) -> str:
    deny = {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    return doc(VENDOR_GRANT, {**deny, "Condition": condition})


CASE_DUPLICATES = {
    # p/dupkey_case.json: ANDed, the TRUE branch and the FALSE one made the Deny "not apply" (compliant)
    "dupkey_case": {"StringEquals": {"kms:CallerAccount": "318212636800", "KMS:CallerAccount": "111111111111"}},
    # p/dup_key_case_notequals.json
    "dup_key_case_notequals": {"StringNotEquals": {"aws:SourceVpce": "vpce-1", "AWS:SOURCEVPCE": "vpce-2"}},
    "qualified-ifexists": {"ForAnyValue:StringLikeIfExists": {"aws:PrincipalArn": "a", "AWS:PrincipalARN": "b"}},
}


@pytest.mark.parametrize("name", sorted(CASE_DUPLICATES))
def test_f2_a_condition_key_twice_in_different_case_is_bad_input(name: str, tmp_path: Any) -> None:
    from kms_guard.core.policy import PolicyError

    text = _deny_with_condition(CASE_DUPLICATES[name])
    with pytest.raises(PolicyError, match=r"^Statement\[1\]\.Condition\.[A-Za-z:]+: condition key .* case-insensitive"):
        parse_policy(text)
    path = tmp_path / "policy.json"
    path.write_text(text)
    for command in ("check-policy", "fix-policy"):
        code, out, err = call(command, str(path))
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1
        assert "Statement[1].Condition." in err
        assert "case-insensitive" in err


def test_f2_a_live_policy_with_case_duplicates_is_unreadable_for_that_region() -> None:
    from kms_guard.core.compliance import RegionObservation, assess_region

    metadata = {
        "KeyState": "Enabled",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "MultiRegion": True,
    }
    text = _deny_with_condition(CASE_DUPLICATES["dupkey_case"])
    report = assess_region(RegionObservation("us-west-2", KEY, metadata, text), ROCKSET)
    assert [f.code.value for f in report.findings] == ["POLICY_UNREADABLE"]
    assert report.verdict == "non-compliant"


def test_f2_the_same_key_under_different_operators_is_still_accepted() -> None:
    # p/dup_op_qual.json: two operators, one key each: ANDed as AWS does; exact-case keys in separate blocks too
    text = _deny_with_condition(
        {"StringEquals": {"kms:CallerAccount": "1"}, "StringEqualsIfExists": {"KMS:CallerAccount": "318212636800"}}
    )
    assert verdict(text) == "compliant"
