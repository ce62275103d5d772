"""A synthesized template's values as AWS would see them, at their longest: what moto never checks (IAM's policy size
limits, Lambda's 4 KB environment) is measured on these.

Every reference CloudFormation resolves at deploy time is replaced by the longest text it can become: the longest
partition (`aws-us-gov`), a 15-character Region, the longest physical name each resource type allows (CloudFormation
generates names from the stack and logical IDs, truncated to the service's limit). An intrinsic this module does not
know fails the measurement instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PARTITION = "aws-us-gov"
"""The longest partition name."""
REGION = "us-isof-south-1"
"""A Region name as long as any (15 characters)."""
ACCOUNT = "123456789012"
URL_SUFFIX = "amazonaws.com.cn"
STACK_NAME = "S" * 128
"""CloudFormation allows 128 characters for a stack name."""

NAME_LIMITS = {
    "AWS::SNS::Topic": 256,
    "AWS::DynamoDB::Table": 255,
    "AWS::SQS::Queue": 80,
    "AWS::Logs::LogGroup": 512,
    "AWS::Lambda::Function": 64,
    "AWS::IAM::Role": 64,
    "AWS::IAM::ManagedPolicy": 128,
    "AWS::Lambda::LayerVersion": 140,
    "AWS::Events::Rule": 64,
    "AWS::KMS::Key": 36,  # a key ID (a UUID, or mrk- and 32 hex digits)
}
"""The longest name (or ID) each resource type can have: its service's limit."""


class UnknownIntrinsic(ValueError):
    """A value this module cannot resolve; the measurement would be a guess."""


def name_of(template: Mapping[str, Any], logical_id: str) -> str:
    kind = template["Resources"][logical_id]["Type"]
    props = template["Resources"][logical_id].get("Properties", {})
    explicit = {
        "AWS::SNS::Topic": "TopicName",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::IAM::Role": "RoleName",
        "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
        "AWS::Lambda::LayerVersion": "LayerName",
        "AWS::Events::Rule": "Name",
    }.get(kind)
    if explicit and isinstance(props.get(explicit), str):
        return str(props[explicit])
    if kind not in NAME_LIMITS:
        raise UnknownIntrinsic(f"no worst-case name for {kind} ({logical_id})")
    return "n" * NAME_LIMITS[kind]


def arn_of(template: Mapping[str, Any], logical_id: str) -> str:
    kind = template["Resources"][logical_id]["Type"]
    name = name_of(template, logical_id)
    prefix = f"arn:{PARTITION}"
    arns = {
        "AWS::SNS::Topic": f"{prefix}:sns:{REGION}:{ACCOUNT}:{name}",
        "AWS::DynamoDB::Table": f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "AWS::SQS::Queue": f"{prefix}:sqs:{REGION}:{ACCOUNT}:{name}",
        "AWS::Logs::LogGroup": f"{prefix}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
        "AWS::Lambda::Function": f"{prefix}:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::IAM::Role": f"{prefix}:iam::{ACCOUNT}:role/{name}",
        "AWS::IAM::ManagedPolicy": f"{prefix}:iam::{ACCOUNT}:policy/{name}",
        "AWS::Lambda::LayerVersion": f"{prefix}:lambda:{REGION}:{ACCOUNT}:layer:{name}:99999",
        "AWS::Events::Rule": f"{prefix}:events:{REGION}:{ACCOUNT}:rule/{name}",
        "AWS::KMS::Key": f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{name}",
    }
    if kind not in arns:
        raise UnknownIntrinsic(f"no worst-case ARN for {kind} ({logical_id})")
    return arns[kind]


def ref(template: Mapping[str, Any], target: str) -> str:
    pseudo = {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": URL_SUFFIX,
        "AWS::StackName": STACK_NAME,
    }
    if target in pseudo:
        return pseudo[target]
    kind = template["Resources"][target]["Type"]
    if kind in ("AWS::SNS::Topic", "AWS::IAM::ManagedPolicy", "AWS::Lambda::LayerVersion"):
        return arn_of(template, target)  # what Ref returns for these types
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT}/{name_of(template, target)}"
    return name_of(template, target)


def get_att(template: Mapping[str, Any], target: str, attribute: str) -> str:
    if attribute in ("Arn", "TopicArn"):
        return arn_of(template, target)
    if attribute == "QueueName":
        return name_of(template, target)
    raise UnknownIntrinsic(f"no worst case for Fn::GetAtt {target}.{attribute}")


_SUB = re.compile(r"\$\{([^}]+)\}")


def resolve(value: Any, template: Mapping[str, Any]) -> Any:
    """`value` with every intrinsic replaced by its longest resolution."""
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        [(name, argument)] = value.items()
        if name == "Ref":
            return ref(template, argument)
        if name == "Fn::GetAtt":
            target, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return get_att(template, target, attribute)
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(p, template)) for p in parts)
        if name == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return _SUB.sub(lambda m: _sub_variable(m.group(1), variables, template), text)
        if name.startswith("Fn::") or name == "Condition":
            raise UnknownIntrinsic(f"{name} is not resolved here: {json.dumps(value)[:200]}")
    return {k: resolve(v, template) for k, v in value.items()}


def _sub_variable(name: str, variables: Mapping[str, Any], template: Mapping[str, Any]) -> str:
    if name in variables:
        return str(resolve(variables[name], template))
    if "." in name:
        target, attribute = name.split(".", 1)
        return get_att(template, target, attribute)
    return ref(template, name)


def compact(document: Any) -> int:
    """A policy's size as IAM counts it: its JSON without whitespace."""
    return len(json.dumps(document, separators=(",", ":")))


def roles_of(value: Any) -> list[str]:
    """The logical IDs of the roles a policy's `Roles` names."""
    return [r["Ref"] for r in value or [] if isinstance(r, dict) and "Ref" in r]


def inline_policy_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    """Per role (logical ID): the worst-case size of all its inline policies together."""
    sizes: dict[str, int] = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                document = resolve(policy["PolicyDocument"], template)
                sizes[logical_id] = sizes.get(logical_id, 0) + compact(document)
            sizes.setdefault(logical_id, 0)
        elif resource["Type"] == "AWS::IAM::Policy":
            document = resolve(props["PolicyDocument"], template)
            for role in roles_of(props.get("Roles")):
                sizes[role] = sizes.get(role, 0) + compact(document)
    return sizes


def managed_policy_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    return {
        logical_id: compact(resolve(resource["Properties"]["PolicyDocument"], template))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
    }


def environment_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    """Per function: its environment's size as Lambda counts it (names and values, in bytes), at its longest."""
    sizes = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        variables = resolve(resource["Properties"].get("Environment", {}).get("Variables", {}), template)
        sizes[logical_id] = sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items())
    return sizes
