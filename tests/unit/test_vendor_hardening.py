"""Vendor profiles, as an adversary tried them: what a profile or a key policy must not be able to make the guard do.

- A vendor "role" or account in the key's own account is the customer-role kind: a grant to the key's account root
  only lets that account's IAM policies decide (KMS key policy default), so the guard refuses it instead of
  vouching for it.
- A statement carrying the guard's Sid with `Principal "*"` under other conditions than the vendor's pin is the
  customer's: rewriting it would change who may use the key.
- A custom profile's pin must name the vendor: no negated, IfExists or ForAllValues operator, no policy variable, no
  value that matches everyone, and at least one condition on who calls.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from kms_guard.core import profiles
from kms_guard.core.repair import plan_restore_statement
from kms_guard.settings import SettingsError, build_settings
from kms_guard_cli.main import run

KEY = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
ADMIN = {
    "Sid": "Admin",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return run(list(argv), out, err), out.getvalue(), err.getvalue()


def policy(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [ADMIN, *statements]})


def test_a_vendor_role_in_the_keys_own_account_is_refused_not_compliant(tmp_path: Path) -> None:
    path = tmp_path / "admin.json"
    path.write_text(policy())
    own_role = "arn:aws:iam::111122223333:role/AtlasKmsRole"
    code, _, err = cli("check-policy", str(path), "--vendor", "clickhouse", "--vendor-role", own_role, "--key-arn", KEY)
    assert code == 2
    assert "key's own account" in err
    with pytest.raises(SettingsError, match="key's own account"):
        build_settings(key_arn=KEY, vendor="clickhouse", vendor_roles=[own_role])
    code, _, err = cli("check-policy", str(path), "--vendor-account", "111122223333", "--key-arn", KEY)
    assert code == 2


def test_a_cross_account_vendor_role_is_still_accepted(tmp_path: Path) -> None:
    path = tmp_path / "admin.json"
    path.write_text(policy())
    role = "arn:aws:iam::576599896960:role/kms-request-role"
    code, out, _ = cli("check-policy", str(path), "--vendor", "clickhouse", "--vendor-role", role, "--key-arn", KEY)
    assert code == 1  # not granted, but evaluated
    assert "NON-COMPLIANT" in out


def elastic_statement(conditions: dict[str, object]) -> dict[str, object]:
    return {
        "Sid": "KmsGuardElasticAccess",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["kms:Decrypt"],
        "Resource": "*",
        "Condition": conditions,
    }


@pytest.mark.parametrize(
    "conditions",
    [
        {"ForAnyValue:StringEquals": {"aws:PrincipalOrgID": ["o-ygducmlz12", "o-customer123"]}},
        {"StringEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}},
        {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-customer123/*"}},
    ],
    ids=["customer-org-too", "customer-vpce", "customer-org-only"],
)
def test_a_customer_wildcard_statement_carrying_the_guard_sid_is_never_rewritten(
    conditions: dict[str, object],
) -> None:
    elastic = profiles.load("elastic")
    plan = plan_restore_statement(policy(elastic_statement(conditions)), elastic, key_arn=KEY)
    assert plan.status == "refused"
    assert plan.refusal == "guard-sid-grants-more"
    assert plan.policy is None


def test_the_vendors_own_pinned_statement_is_still_repaired() -> None:
    elastic = profiles.load("elastic")
    code, statement, _ = cli("statement", "--vendor", "elastic", "--output", "json")
    assert code == 0
    [canonical] = json.loads(statement)["statements"]
    broken = dict(canonical, Action=["kms:Decrypt"])
    plan = plan_restore_statement(policy(broken), elastic, key_arn=KEY)
    assert plan.status == "repair", plan.description


PIN: dict[str, object] = {
    "operator": "ForAnyValue:StringLike",
    "key": "aws:PrincipalOrgPaths",
    "values": ["o-ygducmlz12/r-e5t3/*"],
}


def custom_profile(conditions: list[dict[str, object]]) -> str:
    shipped = json.loads(Path(profiles.__file__).parent.parent.joinpath("data/vendors/elastic.json").read_text())
    shipped["name"] = "custom"
    shipped["grants"][0]["conditions"]["value"] = conditions
    return json.dumps(shipped)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"operator": "Bool", "key": "aws:SecureTransport", "values": ["true"]}, "cannot pin"),
        ({**PIN, "values": ["*"]}, "matches every caller"),
        ({**PIN, "operator": "ForAllValues:StringLike"}, "cannot pin"),
        ({**PIN, "operator": "StringLikeIfExists"}, "cannot pin"),
        ({**PIN, "operator": "StringNotLike"}, "cannot pin"),
        (
            {"operator": "StringEquals", "key": "aws:PrincipalAccount", "values": ["${aws:PrincipalAccount}"]},
            "policy variable",
        ),
        ({"operator": "StringEquals", "key": "kms:ViaService", "values": ["ec2.eu-west-1.amazonaws.com"]}, "who calls"),
    ],
    ids=["transport", "star", "forallvalues", "ifexists", "negated", "variable", "viaservice-only"],
)
def test_a_custom_profile_whose_pin_names_nobody_is_refused(condition: dict[str, object], message: str) -> None:
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.parse(custom_profile([condition]), "custom.json")


def test_a_custom_profile_with_a_key_written_twice_or_nested_too_deep_is_one_clear_error() -> None:
    text = custom_profile([PIN])
    twice = text.replace('"name": "custom"', '"name": "custom", "name": "other"')
    with pytest.raises(profiles.ProfileError, match="written twice"):
        profiles.parse(twice, "custom.json")
    deep = text[:-1] + ', "$comment": ' + "[" * 20_000 + "]" * 20_000 + "}"
    with pytest.raises(profiles.ProfileError, match="nested too deeply"):
        profiles.parse(deep, "custom.json")


@pytest.mark.parametrize(
    "conditions",
    [
        {"Bool": {"aws:SecureTransport": "true"}},
        {"ForAllValues:StringLike": {"aws:PrincipalOrgPaths": "o-ygducmlz12/r-e5t3/*"}},
        {"ForAnyValue:StringLikeIfExists": {"aws:PrincipalOrgPaths": "o-ygducmlz12/r-e5t3/*"}},
        {"ForAnyValue:StringNotLike": {"aws:PrincipalOrgPaths": "o-other/*"}},
        {"Null": {"aws:SourceVpce": "true"}},
        {"StringLike": {"kms:CallerAccount": "*"}},
        {"StringEquals": {"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}},
    ],
    ids=["transport", "forallvalues", "ifexists", "negated", "no-vpce", "any-account", "via-service-only"],
)
def test_an_allow_to_everyone_whose_conditions_limit_nobody_is_public(conditions: dict[str, Any]) -> None:
    statement: dict[str, object] = {
        "Sid": "Wide",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    from kms_guard.core.compliance import assess_policy
    from kms_guard.core.policy import parse_policy
    from kms_guard.core.vendor import ROCKSET

    wide: dict[str, object] = {**statement, "Condition": conditions}
    assessment = assess_policy(parse_policy(policy(wide)), ROCKSET)
    assert "PUBLIC_PRINCIPAL" in [f.code.value for f in assessment.findings if f.statement == "Wide"]


def test_an_allow_to_everyone_pinned_to_an_organization_is_not_public() -> None:
    from kms_guard.core.compliance import assess_policy
    from kms_guard.core.policy import parse_policy
    from kms_guard.core.vendor import ROCKSET

    statement: dict[str, object] = {
        "Sid": "Org",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-customer123"}},
    }
    assessment = assess_policy(parse_policy(policy(statement)), ROCKSET)
    assert "PUBLIC_PRINCIPAL" not in [f.code.value for f in assessment.findings]


@pytest.mark.parametrize(
    "value",
    [
        "318212636800\n",
        "arn:aws:iam::576599896960:role/kms\n",
        "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab\n",
    ],
)
def test_a_trailing_newline_never_passes_for_an_identifier(value: str) -> None:
    """Python's `$` also matches before a final newline: identifiers are checked to the very end of the text."""
    from kms_guard.core.arns import ArnError, KeyArn
    from kms_guard.core.vendor import ACCOUNT_ID, ROLE_ARN

    assert not ACCOUNT_ID.match(value)
    assert not ROLE_ARN.match(value)
    with pytest.raises(ArnError):
        KeyArn.parse(value)


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:kms:us-west-2:\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661:key/mrk-1",
        "arn:aws:kms:us-west-\u0662:111122223333:key/mrk-1",
        "arn:aws:iam::576599896960:role/r\u00f4le",
        "us-west-\u0662",
    ],
)
def test_an_identifier_with_another_scripts_digits_or_letters_never_passes(value: str) -> None:
    """Python's `\\d` and `\\w` also match Arabic-Indic digits and accented letters: identifiers are ASCII only. A
    replica Region comes from the key's metadata, which whoever controls the key controls, and becomes a boto3 client
    Region and a fix command."""
    from kms_guard.core.arns import REGION, ArnError, KeyArn
    from kms_guard.core.compliance import RegionObservation
    from kms_guard.core.replicas import unwatched_regions
    from kms_guard.core.vendor import ROLE_ARN

    assert not ROLE_ARN.match(value)
    assert not REGION.match(value)
    with pytest.raises(ArnError):
        KeyArn.parse(value)
    metadata = {"MultiRegionConfiguration": {"PrimaryKey": {"Region": value}, "ReplicaKeys": [{"Region": value}]}}
    observation = RegionObservation("us-west-2", "arn:aws:kms:us-west-2:111122223333:key/mrk-1", metadata)
    assert unwatched_regions(["us-west-2"], [observation], hinted=[value]) == ()
