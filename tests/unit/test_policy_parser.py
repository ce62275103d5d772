"""The policy parser: accepts every form KMS accepts, rejects anything else with one line naming the place."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kms_guard.core.policy import Condition, PolicyError, parse_policy, parse_policy_document

from tests.support import policy_text, rockset_statement


def test_normalises_strings_and_lists() -> None:
    policy = parse_policy(policy_text(rockset_statement(actions="kms:Decrypt")))
    statement = policy.statements[0]
    assert statement.actions == ("kms:Decrypt",)
    assert statement.resources == ("*",)
    assert statement.label == "RocksetAccess"


def test_statement_without_sid_is_labelled_by_position() -> None:
    raw = rockset_statement()
    del raw["Sid"]
    policy = parse_policy(policy_text(rockset_statement("A"), raw))
    assert policy.statements[1].label == "#1"


def test_condition_operators_are_flattened_with_qualifiers() -> None:
    raw = rockset_statement()
    raw["Condition"] = {
        "ForAnyValue:StringLikeIfExists": {"aws:PrincipalOrgPaths": ["o-1/*", "o-2/*"]},
        "Bool": {"aws:SecureTransport": True},
        "NumericLessThan": {"kms:RecipientAttestation:ImageSha384": 5},
    }
    conditions = parse_policy(policy_text(raw)).statements[0].conditions
    assert conditions == (
        Condition("StringLike", "aws:PrincipalOrgPaths", ("o-1/*", "o-2/*"), if_exists=True, qualifier="ForAnyValue"),
        Condition("Bool", "aws:SecureTransport", ("true",)),
        Condition("NumericLessThan", "kms:RecipientAttestation:ImageSha384", ("5",)),
    )


def test_accepts_bytes() -> None:
    assert parse_policy(policy_text(rockset_statement()).encode()).statements


BAD = [
    ("", "policy is empty"),
    ("   \n", "policy is empty"),
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object, not a list"),
    ("null", "must be a JSON object, not null"),
    ('"x"', "must be a JSON object, not a string"),
    ("{}", "Statement: missing"),
    ('{"Statement": []}', "Statement: must contain at least one statement"),
    ('{"Statement": 5}', "Statement: must be an object or a list"),
    ('{"Statement": [5]}', "Statement[0]: must be an object"),
    ('{"Version": "2020-01-01", "Statement": {}}', "Version: must be one of"),
    ('{"Statment": []}', "unknown top-level element 'Statment'"),
    ('{"Statement": {"Effect": "allow"}}', 'Statement[0].Effect: must be "Allow" or "Deny"'),
    (
        '{"Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}}',
        "Statement[0]: needs Principal or NotPrincipal",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "NotPrincipal": "*", "Action": "kms:*", "Resource": "*"}}',
        "Statement[0]: has both Principal and NotPrincipal",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Resource": "*"}}',
        "Statement[0]: needs Action or NotAction",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*"}}',
        "Statement[0]: needs Resource or NotResource",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"}}',
        "Statement[0].Action: must be a string or a non-empty list",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": [1], "Resource": "*"}}',
        "Statement[0].Action[0]: must be a non-empty string",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "me", "Action": "kms:*", "Resource": "*"}}',
        "Statement[0].Principal: must be",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": {"User": "x"}, "Action": "kms:*", "Resource": "*"}}',
        "unknown principal type 'User'",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": {"AWS": []}, "Action": "kms:*", "Resource": "*"}}',
        "Statement[0].Principal.AWS",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": []}}',
        "Statement[0].Condition: must be an object",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"StringEquals": 1}}}',
        "Statement[0].Condition.StringEquals: must be a non-empty object",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"Any:StringEquals": {"k": "v"}}}}',
        "unknown set qualifier 'Any'",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"StringEquals": {"k": []}}}}',
        "needs at least one value",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"StringEquals": {"k": {"a": 1}}}}}',
        "must be a string, number or boolean",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Sid": 3}}',
        "Statement[0].Sid: must be a string",
    ),
    (
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Actions": "x"}}',
        "Statement[0]: unknown element 'Actions'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_rejects_what_is_not_a_policy_with_one_line_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_utf8_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="not UTF-8"):
        parse_policy(b"\xff\xfe{}")


def test_deeply_nested_json_is_a_policy_error_not_a_crash() -> None:
    with pytest.raises(PolicyError):
        parse_policy("[" * 100_000 + "]" * 100_000)


def test_error_values_are_bounded_and_printable() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(json.dumps({"Version": "\x07" + "x" * 10_000, "Statement": {}}))
    assert len(str(info.value)) < 200
    assert "\x07" not in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
policy_keys = st.sampled_from(
    [
        "Version",
        "Statement",
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "AWS",
        "StringEquals",
        "ForAnyValue:StringLike",
        "Allow",
        "Deny",
        "*",
    ]
)
policy_shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["*", "Allow", "Deny", "kms:*", "2012-10-17", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(policy_keys, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, policy_shaped))
def test_parser_raises_only_its_own_error_on_arbitrary_json(doc: object) -> None:
    try:
        parse_policy(json.dumps(doc))
    except PolicyError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_parser_raises_only_its_own_error_on_arbitrary_text(text: str) -> None:
    try:
        parse_policy(text)
    except PolicyError:
        pass


def test_document_api_rejects_non_objects() -> None:
    with pytest.raises(PolicyError):
        parse_policy_document([1, 2])
