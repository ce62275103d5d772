"""Build the whole app from a config: used by app.py (the CDK entry point) and by the infra tests."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import GuardConfig
from infra.stacks import ForwarderStack, GuardStack


def build_app(config: GuardConfig, app: cdk.App | None = None) -> tuple[cdk.App, GuardStack, list[ForwarderStack]]:
    app = app or cdk.App()
    env = cdk.Environment(account=config.account, region=config.home_region)
    home = GuardStack(
        app,
        "KmsGuard",
        config=config,
        env=env,
        description=config.description,
    )
    forwarders = []
    for region in config.other_regions:
        forwarder = ForwarderStack(
            app,
            f"KmsGuardForwarder-{region}",
            config=config,
            env=cdk.Environment(account=config.account, region=region),
            description=f"kms-guard: forwards KMS events from {region} to {config.home_region}",
        )
        forwarder.add_stack_dependency(home)
        forwarders.append(forwarder)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, home, forwarders
