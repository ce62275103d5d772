"""What IAM grants on the guarded keys, as plain data (no CDK): the statements, and how they are packed into policies.

Least privilege, no wildcard key: per key, with the actions its adapter declares (`kms_guard.aws.kms`),
- reads (READ_ACTIONS) on that key in any Region, `arn:<partition>:kms:*:<account>:key/<key-id>` for a multi-Region
  key: the guard reads the replicas it finds outside the configured Regions (REPLICA_UNWATCHED), and a multi-Region
  key ID names only that key and its replicas. A single-Region key exists in its own Region only: its own ARN;
- writes (POLICY_WRITE_ACTIONS when its remediation is not off, KEY_STATE_ACTIONS when restoreKeyState) only on that
  key's ARN in each Region configured for it.

IAM's limits (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html), counted as IAM counts
them, on the policy JSON without whitespace: a role's inline policies at most 10,240 characters in all, a managed
policy at most 6,144, at most 10 managed policies attached to a role (the default quota). One key's statements stay
inline (as they always were); many keys' go into managed policies packed by `policy_documents`, each under the limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kms_guard.aws.kms import KEY_STATE_ACTIONS, POLICY_WRITE_ACTIONS, READ_ACTIONS
from kms_guard.core.arns import KeyArn
from kms_guard.settings import Remediation

INLINE_POLICIES_LIMIT = 10_240
"""A role's inline policies, all together (characters, whitespace not counted)."""
MANAGED_POLICY_LIMIT = 6_144
"""One customer-managed policy (characters, whitespace not counted)."""
MANAGED_POLICIES_PER_ROLE = 10
"""Managed policies attached to one role (IAM's default quota; an account may raise it to 20)."""
POLICY_VERSION = "2012-10-17"

Statement = dict[str, Any]


@dataclass(frozen=True)
class KeyAccess:
    """One guarded key, as IAM sees it: where it is watched and what the guard may change on it."""

    key: KeyArn
    regions: tuple[str, ...]
    remediation: Remediation = "off"
    restore_key_state: bool = False

    @property
    def read_arns(self) -> tuple[str, ...]:
        """Where the guard may read the key: a multi-Region key in any Region, a single-Region key in its own."""
        if not self.key.is_multi_region:
            return (str(self.key),)
        return (region_wildcard(self.key),)

    @property
    def write_arns(self) -> tuple[str, ...]:
        """The key in each configured Region: the only places the guard may change it."""
        return tuple(str(self.key.in_region(r)) for r in self.regions)

    @property
    def write_actions(self) -> tuple[str, ...]:
        """Exactly the write actions the configured repairs need (none when alerting only)."""
        policy = POLICY_WRITE_ACTIONS if self.remediation != "off" else ()
        return policy + (KEY_STATE_ACTIONS if self.restore_key_state else ())

    @property
    def actions(self) -> tuple[str, ...]:
        """Every KMS action the guard needs on this key (what the key policy statement for the guard must allow)."""
        return READ_ACTIONS + self.write_actions


def region_wildcard(key: KeyArn) -> str:
    """The key and its replicas: its ARN with the Region left open."""
    return f"arn:{key.partition}:kms:*:{key.account}:key/{key.key_id}"


def key_statements(keys: Sequence[KeyAccess]) -> list[tuple[tuple[str, ...], list[str]]]:
    """(actions, resources) per statement: every key's reads in one, then the writes, one per set of write actions,
    each key's configured Regions only. The order follows the configuration (deterministic templates)."""
    groups: dict[tuple[str, ...], list[str]] = {READ_ACTIONS: [arn for k in keys for arn in k.read_arns]}
    for access in keys:
        if access.write_actions:
            groups.setdefault(access.write_actions, []).extend(access.write_arns)
    return list(groups.items())


def document_size(statements: Sequence[Statement]) -> int:
    """A policy document's size as IAM counts it: its JSON without whitespace."""
    document = {"Version": POLICY_VERSION, "Statement": list(statements)}
    return len(json.dumps(document, separators=(",", ":")))


def statement(actions: Sequence[str], resources: Sequence[str]) -> Statement:
    """An Allow statement as CloudFormation carries it (lists even for one item: the larger form is measured)."""
    return {"Action": list(actions), "Effect": "Allow", "Resource": list(resources)}


def policy_documents(keys: Sequence[KeyAccess], limit: int = MANAGED_POLICY_LIMIT) -> list[list[Statement]]:
    """The key statements packed into as few policy documents as fit `limit` each, resource by resource, in order."""
    documents: list[list[Statement]] = [[]]
    for actions, resources in key_statements(keys):
        for arn in resources:
            current = documents[-1]
            grown = _with(current, actions, arn)
            if document_size(grown) > limit:
                grown = _with([], actions, arn)
                if document_size(grown) > limit:
                    raise ValueError(f"one statement for {arn} is over {limit} characters")
                documents.append(grown)
            else:
                documents[-1] = grown
    return [d for d in documents if d]


def _with(document: list[Statement], actions: Sequence[str], arn: str) -> list[Statement]:
    """The document with `arn` added: to its last statement when that has the same actions, else in a new one."""
    if document and document[-1]["Action"] == list(actions):
        last = document[-1]
        return [*document[:-1], {**last, "Resource": [*last["Resource"], arn]}]
    return [*document, statement(actions, [arn])]
