"""The synthesized templates, asserted by intent: routing, least privilege, nothing that fails silently."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template
from aws_cdk.cx_api import CloudFormationStackArtifact
from kms_guard.aws.coverage import RULE_READ_ACTIONS, TRAIL_LIST_ACTIONS, TRAIL_READ_ACTIONS
from kms_guard.aws.kms import KEY_STATE_ACTIONS, POLICY_WRITE_ACTIONS, READ_ACTIONS
from kms_guard.aws.state import STATE_ACTIONS
from kms_guard.core.coverage import RULE_NAMES
from moto import mock_aws

from infra.function import FUNCTIONS_DIR, LAMBDA_RUNTIME, TESTED_PYTHON
from infra.layers import POWERTOOLS_LAYER_VERSION
from tests.infra.conftest import KEY_ARN, REGIONS, Built, build
from tests.support import EVENTS, load_event

ROOT = Path(__file__).resolve().parents[2]
KEY_ARNS = [KEY_ARN.replace("us-west-2", r) for r in REGIONS]
KEY_ANY_REGION = KEY_ARN.replace("us-west-2", "*")
"""The key and its replicas wherever they are: the guard reads replicas it finds outside the configured Regions
(REPLICA_UNWATCHED), so reads are granted in any Region on this key ID; writes only in the configured Regions."""
RULE_ARNS = [f"arn:aws:events:{r}:111122223333:rule/{name}" for r in REGIONS for name in RULE_NAMES]
COVERAGE_GRANTS = {
    json.dumps("*"): list(TRAIL_LIST_ACTIONS),
    json.dumps("arn:aws:cloudtrail:*:*:trail/*"): list(TRAIL_READ_ACTIONS),
    json.dumps(RULE_ARNS): list(RULE_READ_ACTIONS),
}


def resources(template: Template, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def policy_statements(template: Template) -> list[tuple[str, list[str], Any]]:
    out = []
    for logical_id, policy in resources(template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            out.append((logical_id, actions, statement["Resource"]))
    return out


def kms_statements(template: Template, role_prefix: str) -> list[tuple[list[str], Any]]:
    return [
        (a, r)
        for lid, a, r in policy_statements(template)
        if lid.startswith(role_prefix) and r in (KEY_ARNS, KEY_ANY_REGION)
    ]


@pytest.mark.parametrize("role", ["KmsEventFunctionRole", "ScheduledCheckFunctionRole"])
def test_alerting_only_roles_can_only_read_the_key(off: Built, role: str) -> None:
    assert kms_statements(off["home"], role) == [(list(READ_ACTIONS), KEY_ANY_REGION)]


@pytest.mark.parametrize("role", ["KmsEventFunctionRole", "ScheduledCheckFunctionRole"])
def test_remediation_adds_exactly_the_write_actions_in_the_configured_regions(on: Built, role: str) -> None:
    writes = list(POLICY_WRITE_ACTIONS) + list(KEY_STATE_ACTIONS)
    assert kms_statements(on["home"], role) == [(list(READ_ACTIONS), KEY_ANY_REGION), (writes, KEY_ARNS)]


def test_policy_repair_without_key_state_restore() -> None:
    template = build(remediation="revert")["home"]
    expected = [(list(READ_ACTIONS), KEY_ANY_REGION), (list(POLICY_WRITE_ACTIONS), KEY_ARNS)]
    assert kms_statements(template, "KmsEventFunctionRole") == expected


def test_a_single_region_key_is_read_in_its_own_region_only() -> None:
    """No Region wildcard where there can be no replica: a single-Region key (for a vendor that allows one)."""
    single = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    template = build(keyArn=single, regions=["us-west-2"], vendor="elastic", remediation="restore-statement")["home"]
    statements = [(a, r) for lid, a, r in policy_statements(template) if lid.startswith("KmsEventFunctionRole")]
    assert (list(READ_ACTIONS), single) in statements
    assert (list(POLICY_WRITE_ACTIONS), single) in statements
    assert not [r for a, r in statements if any(x.startswith("kms:") for x in a) and ":*:" in json.dumps(r)]


def test_no_kms_wildcards_and_no_kms_action_on_star(on: Built) -> None:
    for template in [on["home"], *on["forwarders"].values()]:
        for _, actions, resource in policy_statements(template):
            kms_actions = [a for a in actions if a.startswith("kms:")]
            assert "kms:*" not in kms_actions
            if kms_actions:
                assert resource != "*"
                assert "*" not in (resource if isinstance(resource, list) else [resource])
                # the only wildcard on a KMS resource is the Region of the guarded key's ID, for reads
                for arn in resource if isinstance(resource, list) else [resource]:
                    if isinstance(arn, str) and "*" in arn:
                        assert (arn, kms_actions) == (KEY_ANY_REGION, list(READ_ACTIONS))


def test_each_role_reaches_only_its_topic_table_log_group_and_dlq(on: Built) -> None:
    home = on["home"]
    [topic] = resources(home, "AWS::SNS::Topic")
    [topic_key] = resources(home, "AWS::KMS::Key")
    [table] = resources(home, "AWS::DynamoDB::Table")
    for function_id in ("KmsEventFunction", "ScheduledCheckFunction"):
        [log_group] = [k for k in resources(home, "AWS::Logs::LogGroup") if k.startswith(function_id)]
        [dlq] = [k for k in resources(home, "AWS::SQS::Queue") if k.startswith(f"{function_id}AsyncDlq")]
        allowed = {
            json.dumps({"Ref": topic}): ["sns:Publish"],
            json.dumps({"Fn::GetAtt": [topic_key, "Arn"]}): ["kms:Decrypt", "kms:GenerateDataKey*"],
            json.dumps([{"Fn::GetAtt": [table, "Arn"]}]): list(STATE_ACTIONS),
            json.dumps({"Fn::GetAtt": [log_group, "Arn"]}): ["logs:CreateLogStream", "logs:PutLogEvents"],
            json.dumps({"Fn::GetAtt": [dlq, "Arn"]}): ["sqs:SendMessage"],
            json.dumps(KEY_ANY_REGION): list(READ_ACTIONS),
            json.dumps(KEY_ARNS): list(POLICY_WRITE_ACTIONS) + list(KEY_STATE_ACTIONS),
        }
        if function_id == "ScheduledCheckFunction":  # the coverage self-check runs on the schedule only
            allowed |= COVERAGE_GRANTS
        statements = [(a, r) for lid, a, r in policy_statements(home) if lid.startswith(f"{function_id}Role")]
        assert sorted(json.dumps(r) for _, r in statements) == sorted(allowed), function_id
        for actions, resource in statements:
            assert actions == allowed[json.dumps(resource)], (function_id, resource)
    lambda_roles = [
        r
        for r in resources(home, "AWS::IAM::Role").values()
        if "lambda" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(lambda_roles) == 2  # one per function
    assert all("ManagedPolicyArns" not in r["Properties"] for r in lambda_roles)


def test_statement_actions_follow_the_adapters_declarations(on: Built) -> None:
    assert set(READ_ACTIONS) == {"kms:DescribeKey", "kms:GetKeyPolicy"}
    granted = {a for _, actions, _ in policy_statements(on["home"]) for a in actions}
    assert set(READ_ACTIONS) | set(POLICY_WRITE_ACTIONS) | set(KEY_STATE_ACTIONS) | set(STATE_ACTIONS) <= granted


# --- functions -------------------------------------------------------------------------------------------------


def _python(version: str) -> tuple[int, int]:
    """(3, 11) from '>=3.11', '3.11', 'py311' or 'python3.11'."""
    major, minor = re.findall(r"(\d)\.?(\d+)", version)[0]
    return int(major), int(minor)


def test_python_versions_are_written_next_to_each_other_and_agree() -> None:
    """infra/function.py holds both: the Lambda runs the newest Python runtime aws-cdk-lib offers, and the oldest
    Python the code and tests run on is the one pyproject.toml states for pip, ruff and mypy alike."""
    from aws_cdk import aws_lambda

    offered = [getattr(aws_lambda.Runtime, n) for n in dir(aws_lambda.Runtime) if n.startswith("PYTHON_3_")]
    newest = max(offered, key=lambda r: _python(r.name))
    assert LAMBDA_RUNTIME.name == newest.name
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert _python(pyproject["project"]["requires-python"]) == TESTED_PYTHON
    assert _python(pyproject["tool"]["ruff"]["target-version"]) == TESTED_PYTHON
    assert _python(pyproject["tool"]["mypy"]["python_version"]) == TESTED_PYTHON
    assert sys.version_info[:2] >= TESTED_PYTHON
    assert _python(LAMBDA_RUNTIME.name) >= TESTED_PYTHON


def test_functions_runtime_architecture_layer_and_settings(on: Built) -> None:
    functions = resources(on["home"], "AWS::Lambda::Function")
    assert len(functions) == 2
    handlers = set()
    for function in functions.values():
        props = function["Properties"]
        handlers.add(props["Handler"])
        assert props["Runtime"] == LAMBDA_RUNTIME.name == "python3.14"
        assert props["Architectures"] == ["arm64"]
        assert props["Layers"] == [
            f"arn:aws:lambda:us-west-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:{POWERTOOLS_LAYER_VERSION}"
        ]
        env = props["Environment"]["Variables"]
        assert env["KMS_GUARD_KEY_ARN"] == KEY_ARN
        assert env["KMS_GUARD_REGIONS"] == ",".join(REGIONS)
        assert env["KMS_GUARD_REMEDIATION"] == "restore-statement"
        assert env["KMS_GUARD_RESTORE_KEY_STATE"] == "true"
        assert env["KMS_GUARD_DRY_RUN"] == "false"
        assert env["KMS_GUARD_VENDOR_ACCOUNT"] == "318212636800"
        assert env["KMS_GUARD_TOPIC_ARN"] == {"Ref": next(iter(resources(on["home"], "AWS::SNS::Topic")))}
        assert env["KMS_GUARD_STATE_TABLE"] == {"Ref": next(iter(resources(on["home"], "AWS::DynamoDB::Table")))}
        assert "DeadLetterConfig" in props
        assert "LoggingConfig" in props
    assert handlers == {"kms_guard.handlers.kms_event.handler", "kms_guard.handlers.scheduled_check.handler"}


def test_lambda_environment_is_named_once_by_the_settings_and_accepted_by_them() -> None:
    """The variable names are written once (`kms_guard.settings.ENV_NAMES`): the CDK sets exactly those (plus
    Powertools' own), and the runtime's parser accepts what the CDK sets and reads back the configured values."""
    from kms_guard.settings import ENV_NAMES, settings_from_env

    trusted = "arn:aws:iam::111122223333:role/platform-automation"
    built = build(
        remediation="revert",
        restoreKeyState=True,
        dryRun=True,
        trustedPrincipals=trusted,
        vendorAccount="123456789012",
        securityHub=True,
        findingEvents=True,
        secondOpinion=True,
    )
    home = built["home"]
    [topic_id] = resources(home, "AWS::SNS::Topic")
    [table_id] = resources(home, "AWS::DynamoDB::Table")
    deployed = {  # what CloudFormation resolves the two references to
        json.dumps({"Ref": topic_id}): "arn:aws:sns:us-west-2:111122223333:kms-guard-alerts",
        json.dumps({"Ref": table_id}): "kms-guard-state",
    }
    functions = resources(home, "AWS::Lambda::Function")
    assert len(functions) == 2
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        # The vendor profile settings are set only when given (vendor and vendorProfile exclude each other).
        only_when_given = {ENV_NAMES[f] for f in ("vendor", "vendor_roles", "vendor_profile")}
        only_when_given.add(ENV_NAMES["keys_file"])  # many keys only (test_many_keys.py)
        expected = set(ENV_NAMES.values()) - only_when_given
        assert set(variables) == expected | {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
        env = {k: v if isinstance(v, str) else deployed[json.dumps(v)] for k, v in variables.items()}
        settings = settings_from_env(env)
        assert str(settings.key) == KEY_ARN
        assert settings.regions == tuple(REGIONS)
        assert settings.topic_arn == "arn:aws:sns:us-west-2:111122223333:kms-guard-alerts"
        assert settings.state_table == "kms-guard-state"
        assert settings.remediation == "revert"
        assert settings.restore_key_state
        assert settings.dry_run
        assert settings.trusted_principals == (trusted,)
        assert settings.vendor.account == "123456789012"
        assert (settings.security_hub, settings.finding_events, settings.second_opinion) == (True, True, True)


def test_async_invocations_retry_then_dead_letter(off: Built) -> None:
    configs = resources(off["home"], "AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 2
    for config in configs.values():
        assert config["Properties"]["MaximumRetryAttempts"] == 2


def test_each_guard_function_runs_one_invocation_at_a_time(on: Built) -> None:
    """Two invocations for one burst of changes would both repair and both alert; throttled async events wait."""
    guards = {
        name: f["Properties"]
        for name, f in resources(on["home"], "AWS::Lambda::Function").items()
        if str(f["Properties"].get("Handler", "")).startswith("kms_guard.handlers.")
        and "canary" not in str(f["Properties"].get("Handler"))
    }
    assert len(guards) == 2
    assert {p.get("ReservedConcurrentExecutions") for p in guards.values()} == {1}


def test_log_groups_have_retention(off: Built) -> None:
    groups = resources(off["home"], "AWS::Logs::LogGroup")
    assert len(groups) == 2
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {365}


def test_function_asset_is_the_functions_folder_as_it_stands(off: Built, tmp_path: Path) -> None:
    """The asset holds exactly the source files under functions/ (the kms_guard package): no CLI, no demo, no caches."""
    assembly = off["assembly"]
    stack = assembly.get_stack_by_name("KmsGuard")
    asset_dirs = {Path(assembly.directory) / a["path"] for a in _file_assets(stack)}
    [asset] = [d for d in asset_dirs if (d / "kms_guard").exists()]
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    source = sorted(
        str(p.relative_to(FUNCTIONS_DIR))
        for p in FUNCTIONS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )
    assert files == source
    assert "kms_guard/handlers/kms_event.py" in files
    assert "kms_guard/data/kms_actions.json" in files
    assert {f.split("/")[0] for f in files} == {"kms_guard"}
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    zipped = tmp_path / "asset.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            archive.write(asset / f, f)
    assert zipped.stat().st_size < 200 * 1024


TWO_KEYS = [
    {"keyArn": KEY_ARN, "regions": ["us-west-2", "us-east-1"]},
    {"keyArn": KEY_ARN.replace("1234abcd", "5678abcd"), "vendor": "elastic", "remediation": "revert"},
]


@pytest.mark.parametrize(
    "context",
    [{"keyArn": KEY_ARN, "regions": ["us-west-2", "us-east-1"]}, {"keys": TWO_KEYS}],
    ids=["one key", "many keys: the keys layer"],
)
def test_a_synth_leaves_no_temporary_directory_behind(tmp_path: Path, context: dict[str, Any]) -> None:
    """The asset is a folder as it stands: a synth stages nothing in the temporary directory. Run in a fresh process
    whose TMPDIR is this test's folder, so Node's (jsii's) temporary files would land there too. With many keys, the
    keys layer's folder is written in the output directory and gone once CDK staged its copy."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[2]
    script = (
        "import sys; sys.path[:0] = ['functions', '.']\n"
        "import aws_cdk as cdk\n"
        "from infra.app import build_app\n"
        "from infra.config import config_from_context\n"
        f"config = config_from_context({context!r})\n"
        f"app, _, _ = build_app(config, cdk.App(outdir={str(out)!r}))\n"
        "app.synth()\n"
    )
    env = {**os.environ, "TMPDIR": str(temp), "TMP": str(temp), "TEMP": str(temp)}
    subprocess.run([sys.executable, "-c", script], cwd=root, env=env, check=True, capture_output=True, timeout=300)
    assert (out / "KmsGuard.template.json").is_file()
    assert sorted(p.name for p in temp.iterdir()) == []
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert all(name.startswith("asset.") for name in folders), folders
    assert len(folders) == (2 if "keys" in context else 1)  # the functions' code (and the keys layer)


def _file_assets(stack: CloudFormationStackArtifact) -> list[dict[str, Any]]:
    manifest = json.loads(Path(stack.assembly.directory, f"{stack.stack_name}.assets.json").read_text())
    return [f["source"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"]


def test_lambda_modules_never_import_cli_or_demo_code() -> None:
    for module in (FUNCTIONS_DIR / "kms_guard").rglob("*.py"):
        text = module.read_text()
        assert "kms_guard_cli" not in text, module
        assert "import moto" not in text, module
        assert "from moto" not in text, module


# --- routing ---------------------------------------------------------------------------------------------------

RELEVANT = [
    "put-key-policy-removes-decrypt",
    "disable-key-replica",
    "enable-key",
    "schedule-key-deletion-primary-with-replicas",
    "cancel-key-deletion",
    "replicate-key-without-grant",
    "update-primary-region-new-primary-no-resources",
    "delete-imported-key-material",
    "delete-key-service-event",
    "kms-cmk-deletion",
    "kms-imported-key-material-expiration",
]
NOT_ROUTED = ["decrypt-read-only", "s3-put-bucket-policy", "disable-key-failed-access-denied", "scheduled-check"]


def _replica_created(region: str) -> dict[str, Any]:
    """What the replica's Region logs when a replica is created: a CreateKey (aws-facts.md). Derived from the
    ReplicateKey fixture: same key, same caller, the call named as the replica's Region records it."""
    event = load_event("replicate-key-without-grant")
    event["detail"]["eventName"] = "CreateKey"
    event["detail"]["awsRegion"] = region
    event["region"] = region
    return event


def route(patterns: list[dict[str, Any]], events: list[dict[str, Any]], region: str) -> list[dict[str, Any]]:
    """Put each event on a moto event bus whose rules carry the synthesized patterns: the events that arrive."""
    with mock_aws():
        eventbridge = boto3.client("events", region_name=region, aws_access_key_id="t", aws_secret_access_key="t")
        sqs = boto3.client("sqs", region_name=region, aws_access_key_id="t", aws_secret_access_key="t")
        queue = sqs.create_queue(QueueName="target")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for i, pattern in enumerate(patterns):
            eventbridge.put_rule(Name=f"r{i}", EventPattern=json.dumps(pattern))
            eventbridge.put_targets(Rule=f"r{i}", Targets=[{"Id": "q", "Arn": queue_arn}])
        for event in events:
            eventbridge.put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event.get("resources", []),
                    }
                ]
            )
        received = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                received.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return received


def _routed(patterns: list[dict[str, Any]], event_names: list[str], region: str) -> list[tuple[str, str]]:
    """Each fixture event, as logged in `region`, routed by the patterns: (detail-type, event name) of what arrives."""
    events = []
    for name in event_names:
        event = _replica_created(region) if name == "CreateKey" else load_event(name)
        event["region"] = region
        if "awsRegion" in event.get("detail", {}):
            event["detail"]["awsRegion"] = region
        events.append(event)
    return [
        (body["detail-type"], body["detail"].get("eventName", body["detail-type"]))
        for body in route(patterns, events, region)
    ]


def event_patterns(template: Template) -> list[dict[str, Any]]:
    return [
        r["Properties"]["EventPattern"]
        for r in resources(template, "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    ]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_a_replica_created_in_another_region_is_forwarded_and_routed_at_home(off: Built, region: str) -> None:
    forwarded = _routed(event_patterns(off["forwarders"][region]), ["CreateKey"], region)
    assert forwarded == [("AWS API Call via CloudTrail", "CreateKey")]
    assert _routed(event_patterns(off["home"]), ["CreateKey"], region) == forwarded


@pytest.mark.parametrize("region", REGIONS)
def test_home_rules_match_every_key_event_from_every_region(off: Built, region: str) -> None:
    # Events from other Regions arrive on the home bus unchanged (forwarded), so the home rules must match them too.
    received = _routed(event_patterns(off["home"]), RELEVANT, region)
    assert len(received) == len(RELEVANT)


def test_rules_ignore_read_only_calls_failed_calls_and_other_services(off: Built) -> None:
    assert _routed(event_patterns(off["home"]), NOT_ROUTED, "us-west-2") == []


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_forwarders_route_the_same_events_to_the_home_bus(off: Built, region: str) -> None:
    template = off["forwarders"][region]
    assert event_patterns(template) == event_patterns(off["home"])
    assert len(_routed(event_patterns(template), RELEVANT, region)) == len(RELEVANT)
    home_bus = "arn:aws:events:us-west-2:111122223333:event-bus/default"
    for rule in resources(template, "AWS::Events::Rule").values():
        [target] = rule["Properties"]["Targets"]
        assert target["Arn"] == home_bus
        assert "RoleArn" in target
        assert "DeadLetterConfig" in target
    [(actions, resource)] = [(a, r) for _, a, r in policy_statements(template)]
    assert (actions, resource) == (["events:PutEvents"], home_bus)


def test_every_rule_target_retries_and_has_a_dead_letter_queue(on: Built) -> None:
    targets = [
        target
        for template in [on["home"], *on["forwarders"].values()]
        for rule in resources(template, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
    ]
    assert len(targets) == 3 + 2 * 2  # 2 event rules + the schedule at home, 2 forwarding rules per other Region
    for target in targets:
        assert "Arn" in target["DeadLetterConfig"]
        if "RoleArn" in target:
            # An event-bus target takes no RetryPolicy (EventBridge does not support one there): delivery is retried
            # by EventBridge itself, then lands in the dead-letter queue.
            assert "RetryPolicy" not in target
        else:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 2


def test_schedule(off: Built) -> None:
    schedules = [
        r for r in resources(off["home"], "AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]
    ]
    assert [s["Properties"]["ScheduleExpression"] for s in schedules] == ["rate(15 minutes)"]
    assert "ScheduledCheckFunction" in json.dumps(schedules[0]["Properties"]["Targets"])


# --- alerts, alarms, encryption --------------------------------------------------------------------------------


def test_alert_topic_is_encrypted_with_a_rotated_key_and_has_email_subscriptions(off: Built) -> None:
    """Who may publish (CloudWatch alarms, TLS only) is asserted by meaning in test_alarm_delivery.py."""
    home = off["home"]
    [topic] = resources(home, "AWS::SNS::Topic").values()
    [key_id] = resources(home, "AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert resources(home, "AWS::KMS::Key")[key_id]["Properties"]["EnableKeyRotation"] is True
    home.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "security@example.com"})


def test_state_table(off: Built) -> None:
    [table] = resources(off["home"], "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]


def test_queues_are_encrypted_and_tls_only(on: Built) -> None:
    for template in [on["home"], *on["forwarders"].values()]:
        for queue in resources(template, "AWS::SQS::Queue").values():
            assert queue["Properties"]["SqsManagedSseEnabled"] is True
        for policy in resources(template, "AWS::SQS::QueuePolicy").values():
            assert any(
                s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                for s in policy["Properties"]["PolicyDocument"]["Statement"]
            )


def test_alarms_watch_errors_every_dead_letter_queue_and_the_heartbeat(off: Built) -> None:
    home = off["home"]
    alarms = resources(home, "AWS::CloudWatch::Alarm")
    queues = resources(home, "AWS::SQS::Queue")
    watched = {json.dumps(a["Properties"].get("Dimensions", [])) for a in alarms.values()}
    for queue_id in queues:
        assert any(queue_id in w for w in watched), f"no alarm on {queue_id}"
    errors = [a for a in alarms.values() if a["Properties"].get("MetricName") == "Errors"]
    assert len(errors) == 2
    assert len([a for a in alarms.values() if "Metrics" in a["Properties"]]) == 1  # the heartbeat
    topic_id = next(iter(resources(home, "AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


# --- the heartbeat -----------------------------------------------------------------------------------------------


def _heartbeat(template: Template) -> dict[str, Any]:
    alarm: dict[str, Any]
    [alarm] = [
        a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values() if "Metrics" in a["Properties"]
    ]
    return alarm


DEPLOYED = datetime(2026, 1, 7, 10, 17, tzinfo=UTC)  # a Wednesday, between scheduled runs
SIMULATED = timedelta(days=21)
RunsAt = Callable[[datetime], bool]


def _weekday_morning(t: datetime) -> bool:
    return t.weekday() < 5 and (t.hour, t.minute) == (9, 0)


def _evaluate(alarm: dict[str, Any], values: list[float | None], state: str) -> str:
    """One evaluation of a CloudWatch alarm over its evaluation range (oldest first, None = no datapoint), per
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html. Not modelled:
    CloudWatch may look back further than the range when data is missing (by an amount it does not document), which
    can only delay a change; the bounds asserted below leave a period of slack for it."""
    treat = alarm["TreatMissingData"]
    below = alarm["ComparisonOperator"] == "LessThanThreshold"
    assert below or alarm["ComparisonOperator"] == "GreaterThanThreshold", "extend the model rather than guess"
    present = [v for v in values if v is not None]
    if treat == "breaching":
        breaching = len(values) - len(present)
    elif treat == "notBreaching":
        breaching = 0
    elif not present:
        return "INSUFFICIENT_DATA" if treat == "missing" else state  # "ignore" keeps the state
    else:
        breaching = 0
    breaching += sum(1 for v in present if (v < alarm["Threshold"] if below else v > alarm["Threshold"]))
    return "ALARM" if breaching >= alarm["DatapointsToAlarm"] else "OK"


def _notifications(alarm: dict[str, Any], runs: list[tuple[datetime, bool]]) -> list[tuple[datetime, str]]:
    """The alarm evaluated every minute from the deploy for SIMULATED, on Lambda's metrics for `runs` (when, whether
    it succeeded): the state changes that notify, by the template's actions. A new alarm starts in
    INSUFFICIENT_DATA."""
    metric = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {k: (v["Metric"]["MetricName"], v["Stat"]) for k, v in metric.items()} == {
        "invocations": ("Invocations", "Sum"),
        "errors": ("Errors", "Sum"),
    }
    assert [m["Expression"] for m in alarm["Metrics"] if "Expression" in m] == ["invocations - errors"]
    [period] = {v["Period"] for v in metric.values()}
    sums: dict[int, list[int]] = {}  # period number -> [invocations, errors]; Lambda publishes none without a run
    for when, succeeded in runs:
        counts = sums.setdefault(int(when.timestamp()) // period, [0, 0])
        counts[0] += 1
        counts[1] += 0 if succeeded else 1
    notifying = {
        state
        for state, key in (
            ("ALARM", "AlarmActions"),
            ("OK", "OKActions"),
            ("INSUFFICIENT_DATA", "InsufficientDataActions"),
        )
        if alarm.get(key)
    }
    state, out = "INSUFFICIENT_DATA", list[tuple[datetime, str]]()
    for minute in range(int(SIMULATED.total_seconds()) // 60):
        now = DEPLOYED + timedelta(minutes=minute)
        last = int(now.timestamp()) // period - 1  # the newest complete period
        values: list[float | None] = []
        for number in range(last - alarm["EvaluationPeriods"] + 1, last + 1):
            sum_of = sums.get(number)
            values.append(None if sum_of is None else sum_of[0] - sum_of[1])
        new = _evaluate(alarm, values, state)
        if new != state and new in notifying:
            out.append((now, new))
        state = new
    return out


def _runs(runs_at: RunsAt, until: datetime, failing: Callable[[datetime], bool] = lambda _: False) -> list[Any]:
    minutes = int((until - DEPLOYED).total_seconds()) // 60
    times = [DEPLOYED + timedelta(minutes=m) for m in range(1, minutes)]
    return [(t, not failing(t)) for t in times if runs_at(t)]


@pytest.mark.parametrize(
    ("schedule", "runs_at", "interval"),
    [
        ("rate(15 minutes)", lambda t: t.minute % 15 == 2, timedelta(minutes=15)),
        ("rate(1 hour)", lambda t: t.minute == 40, timedelta(hours=1)),
        ("rate(1 day)", lambda t: (t.hour, t.minute) == (10, 30), timedelta(days=1)),
        ("cron(0/10 * * * ? *)", lambda t: t.minute % 10 == 0, timedelta(minutes=10)),
        ("cron(0 6 * * ? *)", lambda t: (t.hour, t.minute) == (6, 0), timedelta(days=1)),
        ("cron(0 9 ? * MON-FRI *)", _weekday_morning, timedelta(days=3)),  # Friday 09:00 to Monday 09:00
    ],
)
def test_heartbeat_is_quiet_after_a_deploy_and_fires_when_runs_stop_or_fail(
    schedule: str, runs_at: RunsAt, interval: timedelta
) -> None:
    """The synthesized alarm evaluated as CloudWatch would, minute by minute over three weeks of the schedule's runs
    (a rate's runs start at the deploy, at some minute CloudWatch chooses): quiet from the deploy while runs succeed
    (no run yet is no alarm: the defect of issue 11), one notification when runs stop, one when they keep failing, none
    for one failed run among successes."""
    alarm = _heartbeat(build(checkSchedule=schedule)["home"])
    end = DEPLOYED + SIMULATED
    assert _notifications(alarm, _runs(runs_at, end)) == []

    stop = DEPLOYED + timedelta(days=7)
    last_run = _runs(runs_at, stop)[-1][0]
    [(when, state)] = _notifications(alarm, _runs(runs_at, stop))
    assert state == "INSUFFICIENT_DATA"
    [period] = {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m}
    window = timedelta(seconds=period * alarm["EvaluationPeriods"])
    assert last_run + interval < when  # a run that is merely not due yet is not an outage
    assert when <= last_run + window + interval  # and two intervals without a run are noticed

    failing = _runs(runs_at, end, failing=lambda t: t >= stop)
    [(when, state)] = _notifications(alarm, failing)
    assert state == "ALARM"
    assert stop < when <= stop + window + interval

    first_failure = next(t for t, _ in _runs(runs_at, end) if t >= stop)
    once = _runs(runs_at, end, failing=lambda t: t == first_failure)
    assert _notifications(alarm, once) == []


@pytest.mark.parametrize("schedule", ["rate(15 minutes)", "rate(1 day)", "cron(0 9 ? * MON-FRI *)"])
def test_the_heartbeat_window_is_one_cloudwatch_accepts(schedule: str) -> None:
    alarm = _heartbeat(build(checkSchedule=schedule)["home"])
    [period] = {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert period % 60 == 0
    assert period * alarm["EvaluationPeriods"] <= (86400 if period < 3600 else 7 * 86400)


def test_forwarder_dlq_alarm_goes_to_a_regional_encrypted_topic(off: Built) -> None:
    template = off["forwarders"]["eu-west-1"]
    [alarm] = resources(template, "AWS::CloudWatch::Alarm").values()
    [topic_id] = resources(template, "AWS::SNS::Topic")
    assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    assert "KmsMasterKeyId" in resources(template, "AWS::SNS::Topic")[topic_id]["Properties"]


@pytest.mark.parametrize(
    ("key_arn", "layer"),
    [
        (KEY_ARN, "arn:aws:lambda:us-west-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64"),
        (
            "arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python314-arm64",
        ),
        (
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws-us-gov:lambda:us-gov-west-1:165093116878:layer:AWSLambdaPowertoolsPythonV3-python314-arm64",
        ),
    ],
)
def test_powertools_layer_comes_from_the_keys_partition_and_region(key_arn: str, layer: str) -> None:
    home = build(keyArn=key_arn, regions=[key_arn.split(":")[3]])["home"]
    for function in resources(home, "AWS::Lambda::Function").values():
        assert function["Properties"]["Layers"] == [f"{layer}:{POWERTOOLS_LAYER_VERSION}"]


def test_a_govcloud_deployment_names_no_commercial_arn() -> None:
    """Every opt-in on, in aws-us-gov: each ARN the templates write is in the key's partition (or AWS::Partition); a
    literal `arn:aws:` would be a statement that matches nothing there (a grant silently lost) or a refused template."""
    key = "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    built = build(
        keyArn=key,
        regions=["us-gov-west-1", "us-gov-east-1"],
        remediation="restore-statement",
        restoreKeyState=True,
        canary=True,
        securityHub=True,
        findingEvents=True,
        secondOpinion=True,
    )
    templates = [built["home"], *built["forwarders"].values()]
    assert len(templates) == 2
    for template in templates:
        text = json.dumps(template.to_json())
        assert "arn:aws-us-gov:" in text
        assert re.findall(r"arn:aws:[^\"]{0,80}", text) == []


def test_stacks_are_pinned_to_the_key_account_and_regions(on: Built) -> None:
    stacks = {s.stack_name: s.environment for s in on["assembly"].stacks}
    assert {name: (env.account, env.region) for name, env in stacks.items()} == {
        "KmsGuard": ("111122223333", "us-west-2"),
        "KmsGuardForwarder-us-east-1": ("111122223333", "us-east-1"),
        "KmsGuardForwarder-eu-west-1": ("111122223333", "eu-west-1"),
    }


def test_single_region_key_has_no_forwarders() -> None:
    assert build(regions=["us-west-2"])["forwarders"] == {}


def test_events_patterns_fixture_files_exist() -> None:
    for name in RELEVANT + NOT_ROUTED:
        assert (EVENTS / f"{name}.json").exists()


@pytest.mark.parametrize(("remediation", "restore"), [("off", False), ("restore-statement", False), ("revert", True)])
def test_key_policy_statement_for_the_guard_matches_what_the_cdk_grants(remediation: str, restore: bool) -> None:
    from kms_guard_cli.main import guard_role_statement

    from infra.config import config_from_context
    from infra.function import kms_actions

    config = config_from_context({"keyArn": KEY_ARN, "remediation": remediation, "restoreKeyState": restore})
    assert guard_role_statement(["arn:aws:iam::111122223333:role/x"], remediation, restore)["Action"] == kms_actions(
        config
    )


def test_stack_outputs_name_the_guard_roles(off: Built) -> None:
    outputs = off["home"].find_outputs("*")
    assert {"GuardRoleArns", "AlertTopicArn", "StateTableName"} <= set(outputs)
    joined = json.dumps(outputs["GuardRoleArns"]["Value"])
    assert "KmsEventFunctionRole" in joined
    assert "ScheduledCheckFunctionRole" in joined
