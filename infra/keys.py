"""The guarded keys in the home stack: the guard functions' access to them, and (many keys) the keys layer.

Access (infra.grants says what, and why it fits IAM's limits): one key's statements are inline in each guard
function's role, as they always were; many keys' are customer-managed policies, each within IAM's size limit, attached
to both guard roles (the event function and the scheduled check need the same keys).

The keys layer (many keys): Lambda allows 4 KB of environment, which 100 keys do not fit, so the key list travels in a
Lambda layer holding one file, `kms-guard/keys.json` (`kms_guard.deployment.keys_document`: every key's Regions
written out, its vendor profile embedded), which Lambda extracts to `/opt/kms-guard/keys.json`; the functions are told
its path in `KMS_GUARD_KEYS_FILE`. A layer version cannot be edited in place and is replaced with the deployment, so
the keys the functions guard are exactly the keys that were deployed. The function asset stays our code alone.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Stage
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.config import KEYS_FILE, GuardConfig
from infra.grants import KeyAccess, key_statements, policy_documents, region_wildcard
from infra.nag import acknowledge

KEYS_FILE_IN_LAYER = KEYS_FILE.removeprefix("/opt/")
"""The keys file's path inside the layer (Lambda extracts layers under /opt)."""

_WILDCARD_REASON = (
    "Reads only (DescribeKey, GetKeyPolicy) on one configured multi-Region key in any Region: its key ID names only "
    "that key and its replicas, and the guard reads the replicas it finds outside the configured Regions "
    "(REPLICA_UNWATCHED), which it cannot know at deploy time. Writes are granted only in the configured Regions."
)


def grant_key_access(scope: Construct, config: GuardConfig, roles: Sequence[iam.Role]) -> list[iam.ManagedPolicy]:
    """Give each guard role access to exactly the configured keys: inline for one key, managed policies for many
    (returned, in order)."""
    if not config.many_keys:
        for role in roles:
            for actions, resources in key_statements(config.keys):
                role.add_to_policy(iam.PolicyStatement(actions=list(actions), resources=resources))
            _acknowledge_region_wildcards(role, config.keys)
        return []
    documents = policy_documents(config.keys)
    policies = []
    for index, document in enumerate(documents, start=1):
        policy = iam.ManagedPolicy(
            scope,
            f"KeyAccess{index}",
            description=f"kms-guard: the guard functions' access to the guarded KMS keys ({index} of {len(documents)})",
            statements=[
                iam.PolicyStatement(actions=list(s["Action"]), resources=list(s["Resource"])) for s in document
            ],
            roles=list(roles),
        )
        in_policy = {arn for s in document for arn in s["Resource"]}
        _acknowledge_region_wildcards(policy, [k for k in config.keys if region_wildcard(k.key) in in_policy])
        policies.append(policy)
    return policies


def _acknowledge_region_wildcards(construct: Construct, keys: Sequence[KeyAccess]) -> None:
    for access in keys:
        for arn in access.read_arns:
            if "*" in arn:
                acknowledge(construct, f"AwsSolutions-IAM5[Resource::{arn}]", _WILDCARD_REASON)


class KeysLayer(Construct):
    """Many keys: the deployed keys file in a layer of its own (`/opt/kms-guard/keys.json` at run time).

    The layer's folder is written under the app's output directory, staged by CDK into the cloud assembly (a copy
    named by its content hash, as every asset), then removed: a synth leaves no temporary directory behind, and the
    same keys always give the same asset (a redeploy with the same keys changes nothing)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        document: str,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = Stage.of(self)
        assert stage is not None
        outdir = Path(stage.asset_outdir)
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        source = outdir / f"kms-guard-keys-{digest[:16]}"
        shutil.rmtree(source, ignore_errors=True)
        (source / KEYS_FILE_IN_LAYER).parent.mkdir(parents=True)
        (source / KEYS_FILE_IN_LAYER).write_text(document, encoding="utf-8")
        try:
            self.layer = lambda_.LayerVersion(
                self,
                "Layer",
                code=lambda_.Code.from_asset(str(source)),
                compatible_runtimes=[runtime],
                compatible_architectures=[architecture],
                description=f"kms-guard: the guarded keys, {KEYS_FILE} (sha256 {digest[:16]})",
            )
            asset = self.layer.node.find_child("Code")
            assert isinstance(asset, s3_assets.Asset)
            self.staged = outdir / asset.asset_path
        except BaseException:
            shutil.rmtree(source, ignore_errors=True)
            raise
        # CDK staged the asset as the layer was built (a copy in the assembly, named by its hash); unless staging is
        # off (SAM's context), the asset is that copy, and the folder written here is no longer needed.
        if self.staged.resolve() != source.resolve():
            if (self.staged / KEYS_FILE_IN_LAYER).read_text(encoding="utf-8") != document:
                raise RuntimeError(f"the keys layer staged at {self.staged} does not hold the keys file written")
            shutil.rmtree(source)
