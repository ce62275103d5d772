#!/usr/bin/env python3
"""CDK entry point: read the context once into a typed config, build the stacks. No AWS call at synth."""

from __future__ import annotations

import sys

import aws_cdk as cdk

from infra.app import build_app
from infra.config import CONTEXT_KEYS, ConfigError, config_from_context


def main() -> None:
    app = cdk.App()
    context = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    context = {key: value for key, value in context.items() if value is not None}
    try:
        config = config_from_context(context)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"kms-guard configuration: {problem}", file=sys.stderr)
        sys.exit(2)
    build_app(config, app)
    app.synth()


if __name__ == "__main__":
    main()
