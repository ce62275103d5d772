"""cdk-nag acknowledgments: one finding on one construct, with the reason written next to its cause."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on one construct, with the reason next to the cause."""
    Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
