"""The modules of zto form layers: no import cycle, and the pure modules load no Flask.

Imports are read from the source (all of them: at the top, inside functions, under
``TYPE_CHECKING``), so a cycle fails here even when Python would tolerate it at run
time; each module is also imported alone in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "zto"
MODULES = sorted(f"zto.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__")
# No web framework below the views: exceptions, metrics, statistics, settings, signing.
PURE = ("zto.errors", "zto.metrics", "zto.stats", "zto.stats_redis", "zto.settings", "zto.signing")


def imports_of(module: str) -> set[str]:
    """The zto modules ``module`` imports, anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module.split('.')[1]}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = f"zto.{node.module}" if node.module else "zto"
            elif node.module and node.module.split(".")[0] == "zto":
                base = node.module
            else:
                continue
            if base == "zto":
                found.update(f"zto.{alias.name}" for alias in node.names)
            else:
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("zto."))
    return found & set(MODULES)


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_zto_has_no_import_cycle():
    graph = {module: imports_of(module) for module in MODULES}
    assert "zto.metrics" in graph["zto.context"]  # the parser sees relative imports
    assert cycle_in(graph) is None


def test_the_pure_modules_import_no_web_code():
    for module in PURE:
        assert not imports_of(module) & {"zto.context", "zto.app", "zto.page_auth", "zto.error_handlers"}, module


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_no_flask(module):
    code = f"import sys, {module}; print(sorted(m for m in ('flask', 'werkzeug') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_module_imports_alone():
    """Each module first, in a fresh interpreter: an import cycle that bites only in one
    order (``a`` imports ``b`` imports ``a``) fails here."""
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for module in MODULES:
        result = subprocess.run([sys.executable, "-c", code, module], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{module}: {result.stderr}"
