"""The arrows that must never exist (see the README's architecture section)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "mlflywheel"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_orchestration_knows_airflow():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "orchestration" not in path.parts
        and any(m == "airflow" or m.startswith("airflow.") for m in imported_modules(path))
    ]
    assert offenders == []


def test_package_never_imports_dags_or_plugins():
    for path in PACKAGE.rglob("*.py"):
        assert not any(m.split(".")[0] in ("dags", "plugins") for m in imported_modules(path)), path


def test_gate_does_no_io():
    allowed = {"__future__", "json", "math", "dataclasses", "typing"}
    assert imported_modules(PACKAGE / "gate.py") <= allowed
