"""The layers, held by the imports themselves: dependencies only flow inwards (README, Development).

- `kms_guard.core` imports nothing of ours outside `core`, and nothing from AWS;
- `kms_guard.guard` (the use case) imports `core` and `settings` only: it declares its ports, never an adapter;
- nothing in the Lambda asset imports the CLI package or moto; boto3 is not imported at all (botocore is enough).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "kms_guard"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_core_imports_only_core_and_the_standard_library() -> None:
    for path in modules(PACKAGE / "core"):
        ours = {m for m in imports_of(path) if m.startswith("kms_guard")}
        assert all(m.startswith("kms_guard.core") for m in ours), (path.name, ours)
        assert not {m for m in imports_of(path) if m.split(".")[0] in {"boto3", "botocore", "aws_lambda_powertools"}}


def test_the_use_case_imports_no_adapter() -> None:
    ours = {m for m in imports_of(PACKAGE / "guard.py") if m.startswith("kms_guard")}
    assert ours
    assert all(m.startswith("kms_guard.core") or m == "kms_guard.settings" for m in ours), ours


def test_the_lambda_asset_never_imports_the_cli_moto_or_boto3() -> None:
    for path in modules(PACKAGE):
        roots = {m.split(".")[0] for m in imports_of(path)}
        assert not roots & {"kms_guard_cli", "moto", "boto3"}, (path, roots & {"kms_guard_cli", "moto", "boto3"})


def test_only_the_errors_module_reads_botocores_error_shape() -> None:
    readers = [
        path.relative_to(PACKAGE).as_posix()
        for path in modules(PACKAGE)
        if '"Error"' in path.read_text() or "botocore.exceptions" in path.read_text()
    ]
    assert readers == ["aws/errors.py"]
