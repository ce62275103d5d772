"""A real deploy, locally (`make deploy-local`, part of `make test`).

The pinned CDK CLI synthesizes the app with a real key's ARN, bootstraps every Region, deploys every stack, deploys
again (the CLI must find no change), and destroys, against a moto server on 127.0.0.1. In between, the deployed
functions' own configuration, read back from the local Lambda API, drives the real handlers: the code the CLI
published (downloaded from the bootstrap bucket and checked against the function's `CodeSha256`), with exactly the
function's environment, on a real CloudTrail event; the alert arrives on a queue subscribed to the deployed topic.

moto gaps met on this road and how the run gets past each (local_cloud.py holds the workarounds):
- account ID: the server runs with `MOTO_ACCOUNT_ID` = the key's account, or the CLI refuses the stacks' `env`;
- template upload: `AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION` names the server as `localhost` (moto parses the bucket
  from a TemplateURL's path only for that host);
- the Powertools layer: a stand-in with the template's layer name and version is published in moto; moto's
  CloudFormation drops `Layers` (and `Architectures`) from functions, so Powertools comes from uv.lock here;
- moto does not run Lambda functions without Docker, nor EventBridge Lambda targets: the handlers run in a fresh
  process the way the Lambda runtime imports them (lambda_invoke.py);
- moto's CloudFormation creates no SNS subscriptions (the email one included): the test subscribes its own queue;
- resources moto's CloudFormation skips (alarms, topic and queue policies, event invoke configs, subscriptions) and
  the properties it drops (TTL, PITR, SSE, layers, architecture) are asserted on the templates by tests/infra, not
  here; this test checks the skipped ones are exactly those, so a new gap (or a fixed one) is seen;
- moto reports no stack outputs: the deployed names are read from the stack's resources and the function settings;
- moto enforces no IAM (roles, key policies): grants are held to the adapters' declarations in tests/infra;
- a deploy with a real change fails on moto (after the CLI deletes its previous change set, DescribeChangeSet answers
  ValidationError, not ChangeSetNotFound; `--method=direct` does not finish): only the no-change redeploy is covered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from kms_guard_cli.simulated import SimulatedAccount

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
HOME, REPLICA, THIRD = "us-west-2", "us-east-1", "eu-west-1"
REGIONS = (HOME, REPLICA, THIRD)
STACKS = {HOME: "KmsGuard", REPLICA: f"KmsGuardForwarder-{REPLICA}", THIRD: f"KmsGuardForwarder-{THIRD}"}
SKIPPED_BY_MOTO = {
    "AWS::CDK::Metadata",  # the CLI's version reporting; nothing to create
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
}
"""Resource types moto 5.2's CloudFormation reports as created but lists without a type or a logical ID."""
EVENT_HANDLER = "kms_guard.handlers.kms_event.handler"
SCHEDULED_HANDLER = "kms_guard.handlers.scheduled_check.handler"
"""The entry points (design.md, stable); written out, so the test needs no aws_cdk import (jsii start-up)."""


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    account: SimulatedAccount
    session: boto3.Session
    cli: CdkCli
    assembly: Path
    work: Path
    layer_stand_in: str
    outputs: dict[str, str]

    def client(self, service: str, region: str = HOME) -> Any:
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def template(self, stack: str) -> dict[str, Any]:
        template: dict[str, Any] = json.loads((self.assembly / f"{stack}.template.json").read_text())
        return template


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("deploy-local")
    with moto_server(ACCOUNT) as endpoint, pytest.MonkeyPatch.context() as env:
        use_offline_aws(env, endpoint, HOME, work)
        # Given: the customer's multi-Region key (a replica in every other Region), as the SaaS vendor needs it.
        account = SimulatedAccount.create(regions=REGIONS, endpoint_url=endpoint, table="unused", topic="unused")
        assert account.account == ACCOUNT
        cli = CdkCli(offline_environment(endpoint, HOME, work))
        context = {"keyArn": account.key_arn, "regions": ",".join(REGIONS), "alertEmails": "security@example.com"}
        assembly = work / "cdk.out"
        outputs = {"synth": cli("synth", "--quiet", "--output", str(assembly), *context_args(context))}

        stand_in = stand_in_powertools(account.client("lambda", HOME), assembly / "KmsGuard.template.json")

        # When: bootstrap each Region, deploy every stack, deploy again (the app synthesized anew).
        environments = [f"aws://{ACCOUNT}/{region}" for region in REGIONS]
        outputs["bootstrap"] = cli("bootstrap", "--app", str(assembly), *environments)
        deploy = ("deploy", "--all", "--require-approval", "never")
        outputs["deploy"] = cli(*deploy, "--app", str(assembly))
        outputs["redeploy"] = cli(*deploy, "--output", str(work / "cdk.out.2"), *context_args(context))
        yield Deployment(
            endpoint=endpoint,
            account=account,
            session=account.admin,
            cli=cli,
            assembly=assembly,
            work=work,
            layer_stand_in=stand_in,
            outputs=outputs,
        )


def test_bootstrap_and_deploy_create_every_stack_in_its_region(deployment: Deployment) -> None:
    for region in REGIONS:
        assert f"aws://{ACCOUNT}/{region} bootstrapped" in deployment.outputs["bootstrap"]
        statuses = stack_names(deployment.client("cloudformation", region))
        assert statuses == {"CDKToolkit": "CREATE_COMPLETE", STACKS[region]: "CREATE_COMPLETE"}
    for stack in STACKS.values():
        assert re.search(rf"✅\s+{re.escape(stack)}\s*$", deployment.outputs["deploy"], re.MULTILINE), stack
    home = resources_by_type(deployment.client("cloudformation"), "KmsGuard")
    assert len(home["AWS::Lambda::Function"]) == 2
    assert len(home["AWS::DynamoDB::Table"]) == 1
    assert len(home["AWS::SNS::Topic"]) == 1
    assert len(home["AWS::Events::Rule"]) == 3  # CloudTrail API calls, KMS's own events, the schedule


def test_moto_skips_exactly_the_known_resource_types(deployment: Deployment) -> None:
    """What moto's CloudFormation leaves out is asserted on the templates (tests/infra); a change here is news."""
    for region, stack in STACKS.items():
        template = deployment.template(stack)["Resources"]
        listed = deployment.client("cloudformation", region).list_stack_resources(StackName=stack)
        created = {r["LogicalResourceId"] for r in listed["StackResourceSummaries"]}
        skipped = {resource["Type"] for name, resource in template.items() if name not in created}
        expected = SKIPPED_BY_MOTO & {resource["Type"] for resource in template.values()}
        assert skipped == expected, f"{stack}: moto's skipped types changed: {sorted(skipped ^ expected)}"
    assert {"AWS::CloudWatch::Alarm", "AWS::SNS::Subscription"} <= {
        r["Type"] for r in deployment.template("KmsGuard")["Resources"].values()
    }


def test_redeploy_finds_no_change(deployment: Deployment) -> None:
    """The app synthesized again (same context, a new output folder) deploys nothing: synth is deterministic and the
    CLI compared the new templates with the deployed ones."""
    redeploy = deployment.outputs["redeploy"]
    for stack in STACKS.values():
        assert re.search(rf"{re.escape(stack)} \(no changes\)", redeploy), redeploy[-3000:]
    assert "creating CloudFormation changeset" not in redeploy
    assert "Publishing" not in redeploy.replace("Published", "")


def deployed_functions(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The deployed functions' configuration as the Lambda API returns it, by handler."""
    lambda_ = deployment.client("lambda")
    names = [f["FunctionName"] for f in lambda_.list_functions()["Functions"]]
    configurations = [lambda_.get_function_configuration(FunctionName=name) for name in names]
    return {c["Handler"]: c for c in configurations}


def function_code(deployment: Deployment, configuration: dict[str, Any]) -> bytes:
    """The asset the CLI published for this function, found through the deployed stack's template."""
    cloudformation = deployment.client("cloudformation")
    physical = {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in resources_by_type(cloudformation, "KmsGuard")["AWS::Lambda::Function"]
    }
    body = cloudformation.get_template(StackName="KmsGuard")["TemplateBody"]  # botocore parses a JSON body
    template = body if isinstance(body, dict) else json.loads(body)
    code = template["Resources"][physical[configuration["FunctionName"]]]["Properties"]["Code"]
    archive = download_asset(deployment.session, deployment.endpoint, code, ACCOUNT, HOME)
    assert base64.b64encode(hashlib.sha256(archive).digest()).decode() == configuration["CodeSha256"]
    return archive


def test_deployed_functions_are_configured_for_the_key(deployment: Deployment) -> None:
    functions = deployed_functions(deployment)
    assert set(functions) == {EVENT_HANDLER, SCHEDULED_HANDLER}
    home = resources_by_type(deployment.client("cloudformation"), "KmsGuard")
    topic_arn = home["AWS::SNS::Topic"][0]["PhysicalResourceId"]
    table = home["AWS::DynamoDB::Table"][0]["PhysicalResourceId"]
    for configuration in functions.values():
        variables = configuration["Environment"]["Variables"]
        assert variables["KMS_GUARD_KEY_ARN"] == deployment.account.key_arn
        assert variables["KMS_GUARD_REGIONS"] == ",".join(REGIONS)
        assert variables["KMS_GUARD_TOPIC_ARN"] == topic_arn
        assert variables["KMS_GUARD_STATE_TABLE"] == table
        assert configuration["Runtime"].startswith("python3.")
        # moto gap: CloudFormation drops Layers. The template names the layer; the stand-in resolves it in moto.
        assert [layer["Arn"] for layer in configuration.get("Layers", [])] in ([], [deployment.layer_stand_in])
        template_function = next(
            r
            for r in deployment.template("KmsGuard")["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == configuration["Handler"]
        )
        (layer_arn,) = template_function["Properties"]["Layers"]
        assert layer_arn.split(":")[-2:] == deployment.layer_stand_in.split(":")[-2:]
        name, version = layer_arn.split(":")[-2:]
        stand_in = deployment.client("lambda").get_layer_version(LayerName=name, VersionNumber=int(version))
        assert stand_in["LayerVersionArn"] == deployment.layer_stand_in


def test_a_broken_replica_policy_alerts_through_the_deployed_topic(deployment: Deployment) -> None:
    functions = deployed_functions(deployment)
    topic_arn = functions[EVENT_HANDLER]["Environment"]["Variables"]["KMS_GUARD_TOPIC_ARN"]
    # moto's CloudFormation creates no subscriptions: subscribe a queue, as a security team's tooling would.
    sqs = deployment.client("sqs")
    queue_url = sqs.create_queue(QueueName="deployed-topic-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployment.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    subscriber = replace(deployment.account, topic_arn=topic_arn, queue_url=queue_url)

    def run(handler: str, event: dict[str, Any], name: str) -> dict[str, Any]:
        configuration = functions[handler]
        task_root = unpack(function_code(deployment, configuration), deployment.work / f"task-{name}")
        invocation = invoke_like_lambda(
            task_root=task_root,
            configuration=configuration,
            event=event,
            endpoint=deployment.endpoint,
            workdir=deployment.work,
        )
        assert Path(invocation.module_file).is_relative_to(task_root), invocation.module_file
        return invocation.result

    # Given the deployed scheduled check finds the key compliant everywhere (and says nothing)
    checked = run(SCHEDULED_HANDLER, subscriber.event("scheduled-check"), "scheduled")
    assert checked["report"]["verdict"] == "compliant", checked
    assert subscriber.delivered_alerts() == []

    # When someone drops Rockset's grant from the replica's policy and CloudTrail reports it
    subscriber.put_policy(REPLICA, policy_text(admin_statement()))
    event = subscriber.event("put-key-policy-removes-decrypt", region=REPLICA, new_id=True)
    handled = run(EVENT_HANDLER, event, "event")

    # Then the deployed event function alerts through the deployed topic, and records state in the deployed table
    assert handled["decision"] == "evaluated", handled
    assert handled["report"]["verdict"] == "non-compliant"
    alerts = subscriber.delivered_alerts()
    assert len(alerts) == 1, alerts
    (alert,) = alerts
    assert alert["severity"] == "critical"
    assert "ACTION_NOT_GRANTED" in alert["codes"]
    assert REPLICA in alert["attributes"]["regions"]
    assert subscriber.key_id in alert["subject"]
    table = functions[EVENT_HANDLER]["Environment"]["Variables"]["KMS_GUARD_STATE_TABLE"]
    assert deployment.client("dynamodb").scan(TableName=table)["Count"] > 0


@pytest.mark.destroys
def test_destroy_removes_every_stack_and_keeps_the_state_table(deployment: Deployment) -> None:
    table = resources_by_type(deployment.client("cloudformation"), "KmsGuard")["AWS::DynamoDB::Table"][0]
    output = deployment.cli("destroy", "--app", str(deployment.assembly), "--all", "--force")
    for region, stack in STACKS.items():
        assert re.search(rf"{re.escape(stack)}: destroyed", output), output[-3000:]
        assert stack_names(deployment.client("cloudformation", region)) == {
            "CDKToolkit": "CREATE_COMPLETE",
            stack: "DELETE_COMPLETE",
        }
    assert deployment.client("lambda").list_functions()["Functions"] == []
    topics = {t["TopicArn"] for t in deployment.client("sns").list_topics()["Topics"]}
    assert not any(":KmsGuard-" in arn for arn in topics), topics
    # The state table is retained by design (the revert baselines and the repair log outlive the stack).
    assert table["PhysicalResourceId"] in deployment.client("dynamodb").list_tables()["TableNames"]
