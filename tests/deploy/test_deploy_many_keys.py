"""A hundred keys, deployed for real, locally (`make deploy-local`, part of `make test`).

The pinned CDK CLI synthesizes the app with the CDK context `keys` given as JSON text (`-c keys='[...]'`, as a user
types it): 100 multi-Region keys that exist in the moto server (each with its vendor's grant in every Region), six
vendors, 3 Regions each over twelve Regions. It bootstraps every Region, deploys the home stack and a forwarder in
each other Region, and deploys again (no change: the keys layer is named by its content). Then the deployed scheduled
check runs as Lambda runs it, on the deployed code and environment, and reports every key by itself: one key whose
grant was removed is non-compliant and alerts about that key alone, every other key is compliant.

The whole module takes about 30 s (creating the keys 6 s, synth 5 s, bootstrap 4 s, deploy 3 s, redeploy 6 s, the
check 3 s). What moto does not check at this size (IAM's and Lambda's limits) is measured in
tests/infra/test_many_keys.py. moto gaps (test_deploy_local.py lists the others): its CloudFormation drops the
functions' `Layers`, so the deployed functions have no /opt: the test downloads the keys layer the CLI published (its
zip checked against the layer version moto created) and points KMS_GUARD_KEYS_FILE at that file; and it lists the
layer version with an empty physical ID (the layer is found by its generated name).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from kms_guard.core import profiles
from kms_guard.core.repair import guard_statements
from kms_guard.settings import ENV_NAMES
from kms_guard_cli.simulated import SimulatedAccount, key_policy

from tests.deploy.local_cloud import (
    CdkCli,
    context_args,
    download_asset,
    invoke_like_lambda,
    moto_server,
    offline_environment,
    resources_by_type,
    stack_names,
    stand_in_powertools,
    unpack,
    use_offline_aws,
)
from tests.support import admin_statement, policy_text

ACCOUNT = "111122223333"
REGIONS = (
    "us-west-2",
    "us-east-1",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "eu-west-2",
    "eu-north-1",
    "ca-central-1",
    "sa-east-1",
)
"""Each key is in three consecutive ones; the union is all twelve (a home stack and eleven forwarders)."""
HOME = REGIONS[0]
KEYS = 100
VENDORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rockset", ()),
    ("elastic", ()),
    ("databricks-managed-services", ()),
    ("databricks-storage", ()),
    ("clickhouse", ("arn:aws:iam::999988887777:role/clickhouse-kms",)),
    ("confluent", ("arn:aws:iam::999988887777:role/confluent-byok",)),
)
SCHEDULED_HANDLER = "kms_guard.handlers.scheduled_check.handler"
KEYS_FILE = "/opt/kms-guard/keys.json"
"""Where Lambda would find the keys file (infra.config.KEYS_FILE; written out: no aws_cdk import here)."""


def key_regions(index: int) -> list[str]:
    """Three consecutive Regions of the twelve, the key's primary first (the first key's primary is the home Region)."""
    first = index % len(REGIONS)
    return [REGIONS[(first + step) % len(REGIONS)] for step in range(3)]


@dataclass(frozen=True)
class Deployed:
    endpoint: str
    account: SimulatedAccount
    session: boto3.Session
    entries: list[dict[str, Any]]
    assembly: Path
    work: Path
    outputs: dict[str, str]
    seconds: dict[str, float]

    def client(self, service: str, region: str = HOME) -> Any:
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint)  # type: ignore[call-overload]


def create_keys(first: SimulatedAccount) -> list[dict[str, Any]]:
    """Every key in the moto server with its vendor's grant in each of its Regions; the `keys` entries for them."""
    entries = []
    for index in range(KEYS):
        name, roles = VENDORS[index % len(VENDORS)]
        regions = key_regions(index)
        profile = profiles.load(name, roles=roles)
        policy = key_policy(ACCOUNT, *guard_statements(profile, regions[0]))
        if index == 0:
            key = first
            for region in regions:
                key.put_policy(region, policy)
        else:
            key = first.add_key(policy=policy, description=f"{name} key {index}", regions=regions)
        entry: dict[str, Any] = {"keyArn": key.key_arn, "regions": regions}
        if name != "rockset":
            entry["vendor"] = name
        if roles:
            entry["vendorRoles"] = list(roles)
        if index % 3 == 0:
            entry["remediation"] = "restore-statement"
        entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    work = tmp_path_factory.mktemp("deploy-many-keys")
    seconds: dict[str, float] = {}
    with moto_server(ACCOUNT) as endpoint, pytest.MonkeyPatch.context() as env:
        use_offline_aws(env, endpoint, HOME, work)
        started = time.monotonic()
        # Given: 100 keys in the account, each with its vendor's grant, in three of the twelve Regions.
        account = SimulatedAccount.create(regions=key_regions(0), endpoint_url=endpoint, table="unused", topic="unused")
        assert account.account == ACCOUNT
        entries = create_keys(account)
        seconds["keys"] = time.monotonic() - started
        cli = CdkCli(offline_environment(endpoint, HOME, work))
        context = {"keys": json.dumps(entries, separators=(",", ":")), "alertEmails": "security@example.com"}
        assembly = work / "cdk.out"
        mark = time.monotonic()
        outputs = {"synth": cli("synth", "--quiet", "--output", str(assembly), *context_args(context))}
        seconds["synth"] = time.monotonic() - mark
        stand_in_powertools(account.client("lambda", HOME), assembly / "KmsGuard.template.json")

        # When: bootstrap each Region, deploy every stack, deploy again (the app synthesized anew).
        mark = time.monotonic()
        environments = [f"aws://{ACCOUNT}/{region}" for region in REGIONS]
        outputs["bootstrap"] = cli("bootstrap", "--app", str(assembly), *environments)
        seconds["bootstrap"] = time.monotonic() - mark
        mark = time.monotonic()
        deploy = ("deploy", "--all", "--require-approval", "never", "--concurrency", "12")
        outputs["deploy"] = cli(*deploy, "--app", str(assembly))
        seconds["deploy"] = time.monotonic() - mark
        mark = time.monotonic()
        outputs["redeploy"] = cli(*deploy, "--output", str(work / "cdk.out.2"), *context_args(context))
        seconds["redeploy"] = time.monotonic() - mark
        yield Deployed(
            endpoint=endpoint,
            account=account,
            session=account.admin,
            entries=entries,
            assembly=assembly,
            work=work,
            outputs=outputs,
            seconds=seconds,
        )


def test_a_hundred_keys_deploy_a_home_stack_and_a_forwarder_in_every_other_region(deployed: Deployed) -> None:
    stacks = {HOME: "KmsGuard"} | {r: f"KmsGuardForwarder-{r}" for r in REGIONS[1:]}
    assert {r for e in deployed.entries for r in e["regions"]} == set(REGIONS)
    for region, stack in stacks.items():
        statuses = stack_names(deployed.client("cloudformation", region))
        assert statuses == {"CDKToolkit": "CREATE_COMPLETE", stack: "CREATE_COMPLETE"}, region
        assert re.search(rf"✅\s+{re.escape(stack)}\s*$", deployed.outputs["deploy"], re.MULTILINE), stack
    for stack in stacks.values():
        assert re.search(rf"{re.escape(stack)} \(no changes\)", deployed.outputs["redeploy"]), stack
    home = resources_by_type(deployed.client("cloudformation"), "KmsGuard")
    assert len(home["AWS::Lambda::Function"]) == 2
    assert len(home["AWS::Lambda::LayerVersion"]) == 1
    assert len(home["AWS::IAM::ManagedPolicy"]) >= 2  # the keys' statements, packed under IAM's size limit
    print(f"100 keys deployed locally, seconds: { {k: round(v, 1) for k, v in deployed.seconds.items()} }")


def scheduled_function(deployed: Deployed) -> dict[str, Any]:
    lambda_ = deployed.client("lambda")
    configurations = [
        lambda_.get_function_configuration(FunctionName=f["FunctionName"])
        for f in lambda_.list_functions()["Functions"]
    ]
    scheduled: list[dict[str, Any]] = [c for c in configurations if c["Handler"] == SCHEDULED_HANDLER]
    assert len(scheduled) == 1
    return scheduled[0]


def deployed_template(deployed: Deployed) -> dict[str, Any]:
    body = deployed.client("cloudformation").get_template(StackName="KmsGuard")["TemplateBody"]
    template: dict[str, Any] = body if isinstance(body, dict) else json.loads(body)
    return template


def keys_layer(deployed: Deployed) -> Path:
    """The keys layer as the CLI published it, unpacked where Lambda would put it (its /opt): moto's CloudFormation
    created the layer version but drops `Layers` from the functions, so no /opt exists for them."""
    template = deployed_template(deployed)
    [(logical_id, layer)] = [
        (k, r) for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"
    ]
    archive = download_asset(deployed.session, deployed.endpoint, layer["Properties"]["Content"], ACCOUNT, HOME)
    [created] = resources_by_type(deployed.client("cloudformation"), "KmsGuard")["AWS::Lambda::LayerVersion"]
    assert created["LogicalResourceId"] == logical_id
    # moto gap: the stack lists the layer version with an empty PhysicalResourceId; moto named the layer after the
    # stack and the logical ID, as CloudFormation does, so it is found by that name.
    lambda_ = deployed.client("lambda")
    [layer_name] = [x["LayerName"] for x in lambda_.list_layers()["Layers"] if f"-{logical_id}-" in x["LayerName"]]
    [version] = lambda_.list_layer_versions(LayerName=layer_name)["LayerVersions"]
    content = lambda_.get_layer_version(LayerName=layer_name, VersionNumber=version["Version"])["Content"]
    assert base64.b64encode(hashlib.sha256(archive).digest()).decode() == content["CodeSha256"]
    return unpack(archive, deployed.work / "opt")


def test_the_functions_are_told_the_keys_file_and_no_single_key(deployed: Deployed) -> None:
    variables = scheduled_function(deployed)["Environment"]["Variables"]
    assert variables[ENV_NAMES["keys_file"]] == KEYS_FILE
    assert ENV_NAMES["key_arn"] not in variables
    assert ENV_NAMES["regions"] not in variables
    document = json.loads((keys_layer(deployed) / "kms-guard" / "keys.json").read_text())
    assert document["format"] == 1
    assert [k["keyArn"] for k in document["keys"]] == [e["keyArn"] for e in deployed.entries]


def test_the_deployed_scheduled_check_reports_every_key_by_itself(deployed: Deployed) -> None:
    configuration = scheduled_function(deployed)
    template = deployed_template(deployed)
    physical = {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in resources_by_type(deployed.client("cloudformation"), "KmsGuard")["AWS::Lambda::Function"]
    }
    code = template["Resources"][physical[configuration["FunctionName"]]]["Properties"]["Code"]
    archive = download_asset(deployed.session, deployed.endpoint, code, ACCOUNT, HOME)
    assert base64.b64encode(hashlib.sha256(archive).digest()).decode() == configuration["CodeSha256"]
    task_root = unpack(archive, deployed.work / "task")
    opt = keys_layer(deployed)
    # The function's own environment, with the keys file where this machine has the layer (moto drops Layers).
    variables = dict(configuration["Environment"]["Variables"])
    assert variables[ENV_NAMES["keys_file"]] == KEYS_FILE
    variables[ENV_NAMES["keys_file"]] = str(opt / "kms-guard" / "keys.json")
    configuration = {**configuration, "Environment": {"Variables": variables}}

    # moto's CloudFormation creates no subscriptions: subscribe a queue to the deployed topic, as a team's tooling would.
    topic_arn = variables[ENV_NAMES["topic_arn"]]
    sqs = deployed.client("sqs")
    queue_url = sqs.create_queue(QueueName="many-keys-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    subscriber = replace(deployed.account, topic_arn=topic_arn, queue_url=queue_url)

    # Given one key (the 42nd, Databricks storage) lost its vendor's grant in its second Region
    broken = deployed.entries[41]
    broken_key = replace(subscriber, key_arn=broken["keyArn"], key_id=broken["keyArn"].rsplit("/", 1)[1])
    broken_key.put_policy(broken["regions"][1], policy_text(admin_statement()))

    # When the deployed scheduled check runs, as Lambda runs it
    started = time.monotonic()
    invocation = invoke_like_lambda(
        task_root=task_root,
        configuration=configuration,
        event=subscriber.event("scheduled-check"),
        endpoint=deployed.endpoint,
        workdir=deployed.work,
    )
    elapsed = time.monotonic() - started
    result = invocation.result

    # Then every key has its own result, in the configured order, evaluated in its own Regions
    assert "failed" not in result, result.get("failed")
    reported = result["keys"]
    assert [k["key_arn"] for k in reported] == [e["keyArn"] for e in deployed.entries]
    verdicts: dict[str, str] = {}
    for entry, key in zip(deployed.entries, reported, strict=True):
        assert [r["region"] for r in key["report"]["regions"]] == entry["regions"], key["key_arn"]
        verdicts[key["key_arn"]] = key["report"]["verdict"]
    assert verdicts.pop(broken["keyArn"]) == "non-compliant"
    assert set(verdicts.values()) == {"compliant"}, {k: v for k, v in verdicts.items() if v != "compliant"}
    # and the one alert is about the broken key alone
    alerts = subscriber.delivered_alerts()
    assert len(alerts) == 1, [a["subject"] for a in alerts]
    assert broken_key.key_id in alerts[0]["subject"]
    assert broken["regions"][1] in alerts[0]["attributes"]["regions"]
    print(f"scheduled check of 100 keys on moto: {elapsed:.1f} s")
