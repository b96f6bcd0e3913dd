"""The arrows that must never exist (see the README's architecture section)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "mlflywheel"
# Stage modules run the same in a task, a pod, a notebook or a test: they never know Airflow.
AIRFLOW_AWARE = ("orchestration",)
# The one door to MLflow, and the model class it loads.
MLFLOW_AWARE = {"registry.py", "training/pyfunc_model.py"}
KEYS_MODULE = "lake/keys.py"
ZONE_PREFIXES = ("landing/", "raw/", "validated/", "quarantine/", "reports/", "snapshots/", "state/")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if name.startswith("mlflywheel.") else None
    return relative is not None and (
        (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()
    )


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports in functions too).

    ``from pkg import sub`` counts as importing the module ``pkg.sub`` where that is a module of
    the package, else as importing ``pkg``.
    """
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names} if base else set()
            submodules = {m for m in submodules if is_module(m)}
            names.update(submodules)
            if len(submodules) < len(node.names):  # some names are attributes of ``base`` itself
                names.add(base)
    return names


def package_graph() -> dict[str, set[str]]:
    """mlflywheel's own import graph, module -> the mlflywheel modules it imports."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in imported_modules(path) if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_only_orchestration_knows_airflow():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if not any(part in path.parts for part in AIRFLOW_AWARE)
        and any(m == "airflow" or m.startswith("airflow.") for m in imported_modules(path))
    ]
    assert offenders == []


def test_only_the_registry_knows_mlflow():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() not in MLFLOW_AWARE
        and any(m == "mlflow" or m.startswith("mlflow.") for m in imported_modules(path))
    ]
    assert offenders == []


def test_package_never_imports_dags_or_plugins():
    for path in PACKAGE.rglob("*.py"):
        assert not any(m.split(".")[0] in ("dags", "plugins") for m in imported_modules(path)), path


def test_gate_does_no_io():
    allowed = {"__future__", "json", "math", "dataclasses", "typing"}
    assert {m.split(".")[0] for m in imported_modules(PACKAGE / "gate.py")} <= allowed


def test_no_import_cycle_in_the_package():
    assert find_cycle(package_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_base_modules_do_not_import_their_implementations():
    graph = package_graph()
    assert not graph["mlflywheel.lake.base"] & {"mlflywheel.lake.local", "mlflywheel.lake.s3"}
    for module in ("mlflywheel.ledger", "mlflywheel.ledger_postgres", "mlflywheel.lake"):
        assert not any(m.startswith("mlflywheel.sources") for m in graph[module]), module
    assert "mlflywheel.lake.s3" not in graph["mlflywheel.lake"]  # chosen by scheme, imported on use


def test_stages_never_import_the_dev_stack_or_the_demo():
    dev = ("mlflywheel.devstack", "mlflywheel.demo")
    for name, imports in package_graph().items():
        if not name.startswith(dev):
            assert not any(m.startswith(dev) for m in imports), name


def test_lake_keys_come_from_the_keys_module():
    """No module but lake/keys.py spells a zone path in a string."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == KEYS_MODULE:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            if is_text and (node.value.startswith(ZONE_PREFIXES) or "/dt=" in node.value):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert offenders == []
