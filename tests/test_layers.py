"""Layers of the package: who may import whom, and no import cycles.

Every module of ``gw_ops`` is parsed with :mod:`ast` (nothing is imported), and every
import counts: module-level ones and the function-local ones that hide a dependency
from a casual reader.  Rules (the brief's standards):

* ``rules/``, ``formats/`` and ``science/`` import nothing from ``handlers/``,
  ``airflow/``, ``ops/``, ``local_gracedb/``, ``vtp/`` or ``mock/``;
* ``handlers/`` imports nothing from ``airflow/`` or ``ops/``;
* the import graph of ``gw_ops`` has no cycle.

The checks are plain functions of a graph, so the last tests run them on a small
synthetic graph with a violation and a cycle to show that they fail when they must.
"""
from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "gw_ops"

#: Folder (first name under gw_ops) -> folders it must not import from.
FORBIDDEN: Mapping[str, frozenset[str]] = {
    **{lower: frozenset({"handlers", "airflow", "ops", "local_gracedb", "vtp", "mock"})
       for lower in ("rules", "formats", "science")},
    "handlers": frozenset({"airflow", "ops"}),
}


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    """Dotted name of a module file of the package (``__init__.py`` is the package)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(source: str, tries: int = 3) -> ast.Module:
    """``ast.parse``, tried again on CPython 3.11's "AST constructor recursion depth
    mismatch": the AST constructor keeps its recursion depth in state that another thread
    parsing at the same moment disturbs (seen once in a full run with both cores busy;
    which thread of the test process was parsing then is not known).  Nothing wrong with the source then;
    a real problem of the source is a SyntaxError, raised at once."""
    for attempt in range(tries):
        try:
            return ast.parse(source)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every dotted name a module imports, function-local imports included; relative
    imports resolved.  ``from a import b`` gives both ``a`` and ``a.b`` (``b`` may be a
    submodule or a name; :func:`import_graph` keeps what is a module)."""
    names: set[str] = set()
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """``{module: gw_ops modules it imports}`` for every module under ``root``."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        imported = imported_names(path.read_text(), module, path.name == "__init__.py")
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def folder_of(module: str) -> str:
    """First folder under ``gw_ops`` (``gw_ops.rules.raven`` -> ``rules``), or ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def layer_violations(graph: Mapping[str, set[str]],
                     forbidden: Mapping[str, frozenset[str]] = FORBIDDEN) -> list[str]:
    """``"importer -> imported"`` for every import a layer may not make."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items()
                  for target in targets
                  if folder_of(target) in forbidden.get(folder_of(module), ()))


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(target) == 1:
                return path[path.index(target):] + [target]
            elif not state.get(target):
                state[target] = 1
                path.append(target)
                stack.append(iter(sorted(graph.get(target, ()))))
    return None


# --- the package ------------------------------------------------------------------------

def test_graph_sees_module_level_and_function_local_imports():
    graph = import_graph()
    assert "gw_ops.rules.superevents" in graph["gw_ops.handlers.superevents"]
    # imported only inside a function (the DAG processor must not load it)
    assert "gw_ops.science.ext_skymaps" in graph["gw_ops.handlers.raven"]
    assert len(graph) > 50


def test_lower_layers_import_no_upper_layer():
    assert layer_violations(import_graph()) == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


# --- the checks fail when they must ------------------------------------------------------

SYNTHETIC_SOURCES = {
    "gw_ops/__init__.py": "",
    "gw_ops/rules/__init__.py": "",
    "gw_ops/rules/a.py": "def f():\n    from gw_ops.handlers import b\n",
    "gw_ops/handlers/__init__.py": "",
    "gw_ops/handlers/b.py": "from ..rules import a\nimport gw_ops.airflow.c\n",
    "gw_ops/airflow/__init__.py": "",
    "gw_ops/airflow/c.py": "from gw_ops.rules.a import f\n",
}


def test_self_check_on_a_synthetic_package(tmp_path):
    for name, source in SYNTHETIC_SOURCES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    graph = import_graph(tmp_path / "gw_ops")
    assert graph["gw_ops.rules.a"] == {"gw_ops.handlers", "gw_ops.handlers.b"}
    assert graph["gw_ops.handlers.b"] == {"gw_ops.rules", "gw_ops.rules.a", "gw_ops.airflow.c"}
    assert layer_violations(graph) == ["gw_ops.handlers.b -> gw_ops.airflow.c",
                                       "gw_ops.rules.a -> gw_ops.handlers.b"]
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"gw_ops.rules.a", "gw_ops.handlers.b"} <= set(cycle)


def test_self_check_accepts_a_clean_graph():
    clean = {"gw_ops.handlers.b": {"gw_ops.rules.a"}, "gw_ops.rules.a": set()}
    assert layer_violations(clean) == [] and find_cycle(clean) is None
