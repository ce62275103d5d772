"""Many keys (CDK context `keys`): 100 keys synthesize inside what AWS accepts, IAM names exactly those keys, the key
list travels in the keys layer the runtime reads back, and a bad list is reported whole at synth.

What moto never checks is checked here by number, on the synthesized templates with every reference resolved to the
longest text it can become (worst_case.py): a role's inline policies at most 10,240 characters, a managed policy at
most 6,144 (IAM counts JSON without whitespace), at most 10 managed policies per role, at most 500 resources per
template, a function's environment at most 4 KB.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kms_guard.aws.kms import KEY_STATE_ACTIONS, POLICY_WRITE_ACTIONS, READ_ACTIONS
from kms_guard.core import profiles
from kms_guard.core.coverage import CANARY_ALIAS, CANARY_ROLE_NAME, RULE_NAMES
from kms_guard.deployment import MAX_KEYS, deployment_from_env
from kms_guard.settings import ENV_NAMES

from infra.config import KEYS_FILE, ConfigError, config_from_context
from tests.infra import worst_case
from tests.infra.conftest import KEY_ARN, build
from tests.infra.test_checks import assert_cfn_lint_clean

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
LONG_REGIONS = (
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "eu-central-1",
    "eu-central-2",
    "us-west-2",
    "us-east-1",
    "eu-west-1",
)
"""The Regions the keys are spread over (the longest names first: ARNs at their longest)."""
CLICKHOUSE_ROLE = "arn:aws:iam::999988887777:role/clickhouse-kms-access-for-the-customers-warehouse"
VENDORS: tuple[dict[str, Any], ...] = (
    {},  # the default vendor (Rockset)
    {"vendor": "elastic"},
    {"vendor": "databricks-managed-services"},
    {"vendor": "databricks-storage"},
    {"vendor": "clickhouse", "vendorRoles": [CLICKHOUSE_ROLE]},
    {"vendor": "confluent", "vendorRoles": ["arn:aws:iam::999988887777:role/confluent-byok-access"]},
)
SHARED: dict[str, Any] = {
    "alertEmails": ["security@example.com"],
    "trustedPrincipals": ["arn:aws:iam::111122223333:role/platform-automation"],
    "canary": True,
    "securityHub": True,
    "findingEvents": True,
    "secondOpinion": True,
}


def key_id(index: int) -> str:
    return f"mrk-{index:032x}"


def hundred_keys() -> list[dict[str, Any]]:
    """100 keys, 3 Regions each over 12 Regions, six vendors; policy repair on for three keys in four, key state
    restore for every other key, so every combination of write actions occurs."""
    keys = []
    for index in range(MAX_KEYS):
        home = LONG_REGIONS[index % len(LONG_REGIONS)]
        regions = [home, LONG_REGIONS[(index + 1) % len(LONG_REGIONS)], LONG_REGIONS[(index + 5) % len(LONG_REGIONS)]]
        entry: dict[str, Any] = {"keyArn": f"arn:aws:kms:{home}:{ACCOUNT}:key/{key_id(index)}", "regions": regions}
        entry.update(VENDORS[index % len(VENDORS)])
        if index % 4 != 3:
            entry["remediation"] = ("restore-statement", "revert")[index % 2]
        if index % 2 == 0:
            entry["restoreKeyState"] = True
        keys.append(entry)
    return keys


def cli_context() -> dict[str, Any]:
    """The feature flags cdk.json gives every `cdk` command (minimizePolicies among them): synthesized as deployed."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {k: v for k, v in context.items() if k.startswith("@aws-cdk/")}


@functools.cache
def hundred() -> dict[str, Any]:
    import aws_cdk as cdk

    from infra.app import build_app

    config = config_from_context({"keys": hundred_keys(), **SHARED})
    app, home, _ = build_app(config, cdk.App(context=cli_context()))
    assembly = app.synth()  # cdk-nag runs here: an unacknowledged finding raises
    directory = Path(assembly.directory)
    templates = {
        stack.stack_name: json.loads((directory / stack.template_file).read_text()) for stack in assembly.stacks
    }
    return {"config": config, "assembly": assembly, "templates": templates, "home": home}


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


# --- inside AWS's limits, by number ----------------------------------------------------------------------------------


def test_a_hundred_keys_fit_every_limit_moto_does_not_check() -> None:
    built = hundred()
    templates = built["templates"]
    assert len(built["config"].keys) == 100
    measured: dict[str, int] = {}
    for name, template in templates.items():
        assert len(template["Resources"]) <= 500, name
        for role, size in worst_case.inline_policy_sizes(template).items():
            assert size <= 10_240, (name, role, size)
        for policy, size in worst_case.managed_policy_sizes(template).items():
            assert size <= 6_144, (name, policy, size)
        for function, size in worst_case.environment_sizes(template).items():
            assert size <= 4_096, (name, function, size)
        assert len(json.dumps(template, separators=(",", ":"))) <= 1_000_000  # a template from S3: 1 MB
    home = templates["KmsGuard"]
    measured["resources"] = len(home["Resources"])
    measured["inline"] = max(worst_case.inline_policy_sizes(home).values())
    measured["managed"] = max(worst_case.managed_policy_sizes(home).values())
    measured["managed_count"] = len(worst_case.managed_policy_sizes(home))
    measured["environment"] = max(worst_case.environment_sizes(home).values())
    # Not a vacuous pass: the key statements are big enough to need several managed policies, each nearly full.
    assert measured["managed_count"] >= 4
    assert measured["managed"] > 5_000
    print(f"100 keys, worst case: {measured}")


def test_cfn_lint_is_clean_on_every_template_of_a_hundred_keys() -> None:
    """cdk-nag ran at synth (hundred() raises on an unacknowledged finding); cfn-lint reads the templates."""
    assert len(hundred()["templates"]) > 10
    assert_cfn_lint_clean(hundred()["assembly"].directory, stacks=len(hundred()["templates"]))


def test_the_only_kms_wildcards_acknowledged_are_each_keys_own_id_in_any_region() -> None:
    directory = Path(hundred()["assembly"].directory)
    acknowledged: dict[str, set[str]] = {}
    for metadata in directory.glob("*.metadata.json"):
        for path, entries in json.loads(metadata.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule in entry["data"]:
                        acknowledged.setdefault(rule.removeprefix("Annotation::"), set()).add(path)
    kms = {r for r in acknowledged if r.startswith("AwsSolutions-IAM5[Resource::arn:aws:kms:")}
    canary = {f"AwsSolutions-IAM5[Resource::arn:aws:kms:{r}:{ACCOUNT}:key/*]" for r in hundred()["config"].regions}
    keys = {f"AwsSolutions-IAM5[Resource::arn:aws:kms:*:{ACCOUNT}:key/{key_id(i)}]" for i in range(MAX_KEYS)}
    assert kms == keys | canary
    for rule in keys:  # on the managed policy that holds it, nowhere else
        [path] = acknowledged[rule]
        assert "/KeyAccess" in path, path


def test_each_guard_role_has_the_key_policies_attached_within_the_quota() -> None:
    home = hundred()["templates"]["KmsGuard"]
    policies = resources(home, "AWS::IAM::ManagedPolicy")
    attached: dict[str, list[str]] = {}
    for logical_id, policy in policies.items():
        for role in worst_case.roles_of(policy["Properties"].get("Roles")):
            attached.setdefault(role, []).append(logical_id)
    guard_roles = [r for r in resources(home, "AWS::IAM::Role") if r.startswith(("KmsEvent", "ScheduledCheck"))]
    assert len(guard_roles) == 2
    assert set(attached) == set(guard_roles)  # not the canary's role
    for role in guard_roles:
        assert sorted(attached[role]) == sorted(policies)
        assert len(attached[role]) + len(home["Resources"][role]["Properties"].get("ManagedPolicyArns", [])) <= 10


def test_the_worst_case_resolver_measures_what_it_is_given() -> None:
    """The measurement can fail: a reference resolves to the longest name its type allows, an unknown one raises."""
    template = {"Resources": {"T": {"Type": "AWS::SNS::Topic"}, "L": {"Type": "AWS::Logs::LogGroup"}}}
    topic = worst_case.resolve({"Ref": "T"}, template)
    assert topic.startswith("arn:aws-us-gov:sns:")
    assert topic.endswith(":" + "n" * 256)
    joined = worst_case.resolve({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":x"]]}, template)
    assert joined == "arn:aws-us-gov:x"
    assert worst_case.resolve({"Fn::Sub": "${L.Arn}/${AWS::Region}"}, template).endswith(":*/us-isof-south-1")
    with pytest.raises(worst_case.UnknownIntrinsic):
        worst_case.resolve({"Fn::If": ["c", "a", "b"]}, template)


# --- IAM names exactly the configured keys ---------------------------------------------------------------------------


def kms_grants(template: dict[str, Any], role: str) -> list[tuple[list[str], list[str], dict[str, Any]]]:
    """(actions, resources, condition) of every statement with a KMS action that reaches `role`."""
    documents = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and role in worst_case.roles_of(
            props.get("Roles")
        ):
            documents.append(props["PolicyDocument"])
    out = []
    for document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            found = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if any(a.startswith("kms:") for a in actions) and all(isinstance(r, str) for r in found):
                out.append((actions, found, statement.get("Condition", {})))
    return out


@pytest.mark.parametrize("role_prefix", ["KmsEventFunctionRole", "ScheduledCheckFunctionRole"])
def test_iam_names_exactly_the_configured_keys(role_prefix: str) -> None:
    home = hundred()["templates"]["KmsGuard"]
    [role] = [r for r in resources(home, "AWS::IAM::Role") if r.startswith(role_prefix)]
    reads: set[str] = set()
    writes: dict[str, set[str]] = {}
    for actions, arns, condition in kms_grants(home, role):
        assert not condition
        for arn in arns:
            assert not arn.endswith("key/*"), arn
            assert arn.startswith("arn:aws:kms:"), arn
            assert f":{ACCOUNT}:key/mrk-" in arn, arn
            if set(actions) & set(READ_ACTIONS):
                assert sorted(actions) == sorted(READ_ACTIONS), (arn, actions)
                reads.add(arn)
            else:
                writes.setdefault(arn, set()).update(actions)
    # Expected from the list itself (not from the code under test): reads on each key's ID in any Region ...
    keys = hundred_keys()
    assert reads == {f"arn:aws:kms:*:{ACCOUNT}:key/{key_id(i)}" for i in range(len(keys))}
    # ... writes only for the keys allowed to write, exactly their actions, only in their configured Regions.
    expected: dict[str, set[str]] = {}
    for index, entry in enumerate(keys):
        allowed = set(POLICY_WRITE_ACTIONS) if entry.get("remediation", "off") != "off" else set()
        allowed |= set(KEY_STATE_ACTIONS) if entry.get("restoreKeyState") else set()
        for region in entry["regions"] if allowed else ():
            expected[f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id(index)}"] = allowed
    assert writes == expected
    assert len(expected) < 3 * len(keys)  # some keys alert only: their writes are absent, not merely unchecked


def test_the_only_open_key_resource_is_the_canarys_own_alias() -> None:
    """`key/*` appears once, on the canary's role, limited to keys carrying the canary alias; never on the guard's."""
    home = hundred()["templates"]["KmsGuard"]
    [canary_role] = [
        r for r, v in resources(home, "AWS::IAM::Role").items() if v["Properties"].get("RoleName") == CANARY_ROLE_NAME
    ]
    for role in resources(home, "AWS::IAM::Role"):
        for _, arns, condition in kms_grants(home, role):
            if any(a.endswith("key/*") for a in arns):
                assert role == canary_role
                assert condition == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [CANARY_ALIAS]}}


# --- the union of the keys' Regions ----------------------------------------------------------------------------------


def test_forwarders_coverage_and_canaries_span_the_union_of_the_keys_regions() -> None:
    built = hundred()
    config, templates = built["config"], built["templates"]
    union = {r for entry in hundred_keys() for r in entry["regions"]}
    home_region = hundred_keys()[0]["keyArn"].split(":")[3]
    assert config.home_region == home_region
    assert set(config.regions) == union
    assert set(templates) == {"KmsGuard"} | {f"KmsGuardForwarder-{r}" for r in union - {home_region}}
    stacks = {s.stack_name: s.environment.region for s in built["assembly"].stacks}
    assert stacks["KmsGuard"] == home_region
    for name, template in templates.items():
        assert len(resources(template, "AWS::KMS::Alias")) == 1, name  # the canary key, in every Region
        rules = {r["Properties"].get("Name") for r in resources(template, "AWS::Events::Rule").values()}
        assert set(RULE_NAMES) <= rules, name
        if name != "KmsGuard":
            assert stacks[name] in union
    home = templates["KmsGuard"]
    [scheduled_role] = [r for r in resources(home, "AWS::IAM::Role") if r.startswith("ScheduledCheckFunctionRole")]
    rule_arns = {
        arn
        for p in resources(home, "AWS::IAM::Policy").values()
        if scheduled_role in worst_case.roles_of(p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "events:DescribeRule" in s["Action"]
        for arn in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert rule_arns == {f"arn:aws:events:{r}:{ACCOUNT}:rule/{n}" for r in union for n in RULE_NAMES}


# --- the key list travels in the keys layer --------------------------------------------------------------------------


def test_the_functions_get_the_keys_layer_and_its_file_name_instead_of_per_key_variables() -> None:
    home = hundred()["templates"]["KmsGuard"]
    [layer_id] = resources(home, "AWS::Lambda::LayerVersion")
    functions = resources(home, "AWS::Lambda::Function")
    assert len(functions) == 3  # the event function, the scheduled check, the canary
    per_key = {ENV_NAMES[n] for n in ("key_arn", "regions", "remediation", "restore_key_state", "vendor_account")}
    per_key |= {ENV_NAMES[n] for n in ("vendor", "vendor_roles", "vendor_profile")}
    for function in functions.values():
        props = function["Properties"]
        assert {"Ref": layer_id} in props["Layers"]
        assert len(props["Layers"]) == 2  # Powertools and the keys
        variables = props["Environment"]["Variables"]
        assert variables[ENV_NAMES["keys_file"]] == KEYS_FILE == "/opt/kms-guard/keys.json"
        assert not per_key & set(variables)
        assert variables[ENV_NAMES["trusted_principals"]] == SHARED["trustedPrincipals"][0]
        assert variables[ENV_NAMES["security_hub"]] == "true"


def test_the_runtime_reads_back_every_key_from_the_staged_layer() -> None:
    """The layer's content, as CDK staged it for upload, is what `deployment_from_env` reads at cold start: every key
    with its own Regions, vendor and repairs."""
    built = hundred()
    home = built["templates"]["KmsGuard"]
    assembly = Path(built["assembly"].directory)
    [layer] = resources(home, "AWS::Lambda::LayerVersion").values()
    key = layer["Properties"]["Content"]["S3Key"]
    manifest = json.loads((assembly / "KmsGuard.assets.json").read_text())
    [source] = [f["source"] for h, f in manifest["files"].items() if key.startswith(h)]
    assert source["packaging"] == "zip"
    staged = assembly / source["path"]
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == ["kms-guard/keys.json"]
    [function] = [
        f
        for f in resources(home, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].endswith("scheduled_check.handler")
    ]
    environment = {k: v for k, v in function["Properties"]["Environment"]["Variables"].items() if isinstance(v, str)}
    environment[ENV_NAMES["keys_file"]] = str(staged / "kms-guard" / "keys.json")
    deployment = deployment_from_env(environment)
    keys = hundred_keys()
    assert [s.key_arn for s in deployment.keys] == [k["keyArn"] for k in keys]
    for settings, entry in zip(deployment.keys, keys, strict=True):
        assert list(settings.regions) == entry["regions"]
        assert settings.remediation == entry.get("remediation", "off")
        assert settings.restore_key_state == bool(entry.get("restoreKeyState"))
        assert settings.vendor.name == entry.get("vendor", "rockset")
        assert settings.home == keys[0]["keyArn"].split(":")[3]
        assert settings.trusted_principals == tuple(SHARED["trustedPrincipals"])
    assert deployment.keys[4].vendor.grants()[0].roles == (CLICKHOUSE_ROLE,)
    assert not list(assembly.glob("kms-guard-keys-*"))  # the layer's own folder is gone once staged


def test_the_function_asset_stays_our_code_alone() -> None:
    built = hundred()
    manifest = json.loads((Path(built["assembly"].directory) / "KmsGuard.assets.json").read_text())
    zipped = [f["source"]["path"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"]
    assert len(zipped) == 2  # the functions' code and the keys layer
    code = [p for p in zipped if (Path(built["assembly"].directory) / p / "kms_guard").is_dir()]
    assert len(code) == 1
    assert not list((Path(built["assembly"].directory) / code[0]).rglob("keys.json"))


@pytest.mark.parametrize(
    "entry",
    [
        {"keyArn": KEY_ARN, "regions": ["us-west-2", "us-east-1"], "remediation": "revert", "vendor": "elastic"},
        {"keyArn": KEY_ARN, "vendor": "tidb", "vendorAccount": "444455556666", "restoreKeyState": True},
        {"keyArn": KEY_ARN, "regions": "us-west-2,eu-west-1"},
    ],
    ids=["elastic, repairs", "tidb, its account", "rockset"],
)
def test_a_list_of_one_key_deploys_exactly_as_the_single_key_context_keys(entry: dict[str, Any]) -> None:
    # regions [] (as an older cdk.json holds) says nothing; conftest's keyArn is left out
    listed = build(keys=json.dumps([entry]), keyArn=None, regions=[])
    single = build(**{"regions": None, **entry})  # not conftest's Regions: the entry's, or its own Region
    assert listed["home"].to_json() == single["home"].to_json()
    assert {r: t.to_json() for r, t in listed["forwarders"].items()} == {
        r: t.to_json() for r, t in single["forwarders"].items()
    }


# --- a bad list: every problem at once, at synth -------------------------------------------------------------------


def problems(context: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_context(context)
    return info.value.problems


def test_every_problem_of_the_list_is_reported_at_once_one_line_each() -> None:
    good = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(1)}"
    keys = [
        {"keyArn": good, "regions": ["us-west-2", "us-east-1"]},
        {"keyArn": good},  # a duplicate
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/vendor"},
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"},  # Rockset: mrk only
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(2)}", "remedation": "revert"},
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(3)}", "remediation": "auto"},
        {"keyArn": f"arn:aws:kms:us-west-2:444455556666:key/{key_id(4)}"},
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(5)}", "regions": ["us-east-1"]},
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(6)}", "vendor": "nobody"},
    ]
    found = problems({"keys": keys, "keyArn": KEY_ARN, "vendorAccount": "123456789012", "alertEmails": "nope"})
    assert all("\n" not in p for p in found)
    expected = [
        "keyArn: a setting of each key, and keys is given",
        "alertEmails: not an email address",
        "vendorAccount: a setting of each key, and keys is given",
        "keys[1]: key mrk-00000000000000000000000000000001 is already keys[0]",
        "keys[2].keyArn: alias ARNs are not supported",
        "keys[3].keyArn: key 1234abcd-12ab-34cd-56ef-1234567890ab is not a multi-Region key",
        "keys[4]: unknown field 'remedation'",
        "keys[5].remediation: unknown mode 'auto'",
        "keys[6].keyArn: account 444455556666",
        "keys[7].regions: the Regions (us-east-1) must include the key's own Region us-west-2",
        "keys[8].vendor: unknown vendor",
    ]
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_a_shared_setting_is_one_problem_not_one_per_key() -> None:
    keys = [{"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(i)}"} for i in range(5)]
    found = problems({"keys": keys, "trustedPrincipals": "alice"})
    assert found == ["trustedPrincipals: not an IAM role or user ARN: 'alice'"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{'keyArn': 'x'}]", "keys: not JSON (Expecting property name enclosed in double quotes"),
        ('{"keyArn": "x"}', "keys: must be a list of key objects"),
        ("[]", "keys: the list is empty"),
        ([KEY_ARN], "keys[0]: must be an object with at least keyArn"),
    ],
)
def test_a_list_that_is_not_a_list_of_keys_is_one_clear_problem(raw: Any, message: str) -> None:
    found = problems({"keys": raw})
    assert len(found) == 1, found
    assert found[0].startswith(message), found


def test_over_a_hundred_keys_is_refused() -> None:
    keys = [{"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(i)}"} for i in range(MAX_KEYS + 1)]
    assert problems({"keys": keys})[0] == "keys: 101 keys; one deployment guards at most 100 (split the list)"


def test_more_key_statements_than_a_role_can_attach_are_refused_at_synth() -> None:
    """100 keys repaired in 17 Regions each would need more managed policies than IAM attaches to a role."""
    regions = [*LONG_REGIONS, "ca-central-1", "sa-east-1", "eu-north-1", "eu-west-3", "ap-south-1"]
    keys = [
        {
            "keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(i)}",
            "regions": regions,
            "remediation": "revert",
            "restoreKeyState": True,
        }
        for i in range(MAX_KEYS)
    ]
    [problem] = problems({"keys": keys})
    assert problem.startswith("keys: the guard's access to these keys takes ")
    assert "IAM attaches at most 10 to a role" in problem


def test_a_vendor_profile_file_travels_embedded_in_the_keys_file_not_the_environment(tmp_path: Path) -> None:
    """A profile too large for Lambda's 4 KB environment is fine in a key list: it travels in the keys layer. Paths
    are read where the app runs; a missing one is that entry's problem."""
    document = {**profiles.shipped("confluent").raw, "name": "acme"}

    def noise(seed: str) -> str:  # a source that does not compress
        return "".join(hashlib.sha256(f"{seed}{j}".encode()).hexdigest() for j in range(9))[:590]

    for i, grant in enumerate(document["grants"]):
        grant["actions"] = {**grant["actions"], "source": noise(str(i))}
    for part in ("minutes", "text", "recovery"):
        document["outage"][part] = {**document["outage"][part], "source": noise(part)}
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(document))
    role = "arn:aws:iam::999988887777:role/acme"
    keys = [
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(1)}"},
        {"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id(2)}", "vendorProfile": str(path), "vendorRoles": role},
    ]
    config = config_from_context({"keys": keys})
    assert config.keys_file is not None
    [_, entry] = json.loads(config.keys_file)["keys"]
    assert entry["vendorProfile"].startswith("zlib+base64:")
    # the same profile for one key, in the environment, fails the synth
    [single] = problems({"keyArn": keys[1]["keyArn"], "vendorProfile": str(path), "vendorRoles": role})
    assert "over Lambda's 4096-byte limit" in single
    environment = config.environment("arn:aws:sns:us-west-2:111122223333:t", "table")
    assert sum(len(k) + len(v) for k, v in environment.items()) < 1024
    missing = {"keyArn": keys[1]["keyArn"], "vendorProfile": str(tmp_path / "missing.json")}
    [problem] = problems({"keys": [keys[0], missing]})
    assert problem.startswith(f"keys[1].vendorProfile: cannot read '{tmp_path / 'missing.json'}': No such file")


def test_keys_as_json_text_and_as_a_list_are_the_same_configuration() -> None:
    keys = hundred_keys()[:3]
    assert config_from_context({"keys": json.dumps(keys)}) == config_from_context({"keys": keys})


def test_the_app_reports_a_bad_list_one_line_per_problem_without_traceback(tmp_path: Path) -> None:
    """As `cdk synth -c keys='[...]'` runs it: the list arrives as JSON text."""
    keys = [{"keyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/x"}, {"keyArn": KEY_ARN, "regions": "us-east-1"}]
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_CONTEXT_JSON": json.dumps({"keys": json.dumps(keys), "regions": "us-west-2"}),
    }
    result = subprocess.run(
        [sys.executable, "app.py"], capture_output=True, text=True, env=env, timeout=120, check=False, cwd=ROOT
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("kms-guard configuration:")]
    assert lines == [
        "kms-guard configuration: regions: a setting of each key, and keys is given: set it in the entries of keys "
        "(or drop keys to guard the one key of keyArn)",
        "kms-guard configuration: keys[0].keyArn: alias ARNs are not supported; give the full key ARN",
        "kms-guard configuration: keys[1].regions: the Regions (us-east-1) must include the key's own Region us-west-2",
    ]
    assert "Traceback" not in result.stderr


def _problems(context: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_context(context)
    return caught.value.problems


def test_hostile_keys_text_and_profile_paths_are_one_line_each_never_a_traceback(tmp_path: Path) -> None:
    [line] = _problems({"keys": "[" * 5000 + "]" * 5000})
    assert line.startswith("keys: not JSON (")
    [line] = _problems({"keys": '[{"keyArn": "arn:aws:kms:us-west-2:111122223333:key/mrk-1", "keyArn": "x"}]'})
    assert line.startswith("keys: not JSON (the field 'keyArn' appears twice in one object)")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00profile")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (profiles.MAX_PROFILE_BYTES + 10))
    arn = "arn:aws:kms:us-west-2:111122223333:key/mrk-{:032x}"
    found = _problems(
        {
            "keys": [
                {"keyArn": arn.format(1), "vendorProfile": "p\x00.json"},
                {"keyArn": arn.format(2), "vendorProfile": str(binary)},
                {"keyArn": arn.format(3), "vendorProfile": str(big)},
                {"keyArn": arn.format(4), "vendorProfile": "missing\nkms-guard configuration: all good.json"},
            ]
        }
    )
    assert [line.split(":", 1)[0] for line in found] == [f"keys[{i}].vendorProfile" for i in range(4)]
    assert "not a usable path" in found[0]
    assert "not UTF-8" in found[1]
    assert "larger than 65536 bytes" in found[2]
    assert all("\n" not in line for line in found)  # a path's newline cannot forge a line of its own


def test_a_list_whose_keys_file_the_functions_would_refuse_fails_the_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key embeds its own profile, so 100 keys naming one large profile (64 KB of sources that do not compress)
    make a keys file of megabytes, which the runtime bounds (deployment.MAX_KEYS_FILE). The synth checks the same
    bound, instead of deploying functions whose every cold start fails; shown here with the bound lowered, so that an
    ordinary list crosses it."""
    from kms_guard import deployment

    monkeypatch.setattr(deployment, "MAX_KEYS_FILE", 5_000)
    keys = [{"keyArn": f"arn:aws:kms:us-west-2:111122223333:key/mrk-{n:032x}"} for n in range(MAX_KEYS)]
    [line] = _problems({"keys": keys})
    assert line.startswith("keys: the keys file would be ")
    assert line.endswith("over the 5000 the functions read")
