"""Imports point one way only (eventstore <- projections <- runtime <- tools), form no cycle,
and always name the ``chatledger`` namespace."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["eventstore", "projections", "runtime", "tools"]
RANK = {f"chatledger.{name}": i for i, name in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    """The dotted module name a source file under ROOT installs as (``chatledger.<folder>...``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["chatledger", *parts])


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every (line, absolute module) that ``source`` imports, relative imports resolved.

    Imports anywhere count: inside functions, under ``if TYPE_CHECKING``, and
    ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name. ``from a
    import b`` yields both ``a`` and ``a.b``: which of them is a module is decided by the caller.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # ``from . import runtime`` imports a module by name
                yield node.lineno, f"{target}.{alias.name}" if target else alias.name
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                yield node.lineno, first.value


def _layer(module: str) -> str | None:
    return next((layer for layer in RANK if module == layer or module.startswith(layer + ".")),
                None)


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` that point from ``module``'s layer to a higher one."""
    own = RANK[_layer(module) or ""]
    bad = []
    for line, target in imported_modules(source, module, is_package):
        layer = _layer(target)
        if layer is not None and RANK[layer] > own:
            bad.append(f"{module}:{line} imports {target}")
    return bad


def bare_layer_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of a layer by its folder name (``eventstore``) instead of ``chatledger.eventstore``."""
    return [f"{module}:{line} imports {target}"
            for line, target in imported_modules(source, module, is_package)
            if target.split(".")[0] in LAYERS]


def source_files() -> list[Path]:
    """Every .py file of every layer package."""
    return sorted(p for layer in LAYERS if (ROOT / layer).is_dir()
                  for p in (ROOT / layer).rglob("*.py"))


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _known(target: str, known: Collection[str]) -> str | None:
    """The longest prefix of ``target`` that is one of the ``known`` modules."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def import_graph(files: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the chatledger modules it imports, anywhere in its source.

    ``from pkg import sub`` is an edge to ``pkg.sub`` when that is a module, else to ``pkg``.
    """
    graph: dict[str, set[str]] = {}
    for name, (source, is_package) in files.items():
        targets: list[str | None] = []
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets += [_known(alias.name, files) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                pkg = _resolve(node, name, is_package)
                targets += [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in files else _known(pkg, files)
                            for a in node.names]
            elif isinstance(node, ast.Call) and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in ("import_module", "__import__"):
                    targets.append(_known(node.args[0].value, files))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _all_files() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
            for p in source_files()}


def test_every_layer_package_is_walked() -> None:
    """The walk sees every layer, so the checks below are not empty."""
    walked = {p.relative_to(ROOT).parts[0] for p in source_files()}
    assert set(LAYERS) <= walked


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_imports(path: Path) -> None:
    """A module never imports from a layer above its own."""
    source = path.read_text(encoding="utf-8")
    assert upward_imports(source, module_name(path), path.name == "__init__.py") == []


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_bare_layer_imports(path: Path) -> None:
    """Every import of our own code names the chatledger namespace."""
    source = path.read_text(encoding="utf-8")
    assert bare_layer_imports(source, module_name(path), path.name == "__init__.py") == []


def test_no_import_cycles() -> None:
    """No set of modules imports itself round, lazy and type-checking imports included."""
    assert cycles(import_graph(_all_files())) == []


def test_cycle_finder_finds_a_lazy_cycle() -> None:
    """A cycle closed by an import inside a function is found."""
    files = {
        "chatledger.runtime._a": ("from chatledger.runtime._b import B\n", False),
        "chatledger.runtime._b": ("def f():\n    from chatledger.runtime._a import A\n", False),
        "chatledger.runtime._c": ("from chatledger.runtime._a import A\n", False),
    }
    assert cycles(import_graph(files)) == [["chatledger.runtime._a", "chatledger.runtime._b"]]


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("import chatledger.runtime", "chatledger.eventstore._store", False),
        ("from chatledger.projections import ChatHistory", "chatledger.eventstore._store", False),
        ("from chatledger.tools.cli import main", "chatledger.projections._history", False),
        ("import chatledger.tools.bench", "chatledger.runtime.models", True),
        ("def f():\n    from chatledger.runtime import x", "chatledger.eventstore._codec", False),
        ("import importlib\nimportlib.import_module('chatledger.tools.cli')",
         "chatledger.runtime._base", False),
        ("if TYPE_CHECKING:\n    from chatledger.projections import X",
         "chatledger.eventstore._keys", False),
        ("from ... import runtime", "chatledger.eventstore.sqlite._sql", False),
        ("from chatledger import tools", "chatledger.runtime._base", False),
    ],
)
def test_checker_catches_upward_imports(source: str, module: str, is_package: bool) -> None:
    """The checker flags each kind of upward import, so a violation cannot slip through."""
    assert upward_imports(source, module, is_package) != []


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("from chatledger.eventstore import SessionKey", "chatledger.projections._history", False),
        ("from . import _codec", "chatledger.eventstore._store", False),
        ("from ._keys import SessionKey", "chatledger.eventstore._store", False),
        ("import msgspec, sqlite3", "chatledger.eventstore.sqlite", True),
        ("from chatledger.projections import ChatHistory\nimport chatledger.eventstore",
         "chatledger.tools.cli", False),
        ("from .models import FakeChatModel", "chatledger.runtime", True),
        ("from .. import _codec", "chatledger.eventstore.sqlite._store", False),
        ("from ..models import _fake", "chatledger.runtime.models._openai", False),
    ],
)
def test_checker_allows_downward_imports(source: str, module: str, is_package: bool) -> None:
    """Imports of the same or a lower layer, and third-party imports, are allowed."""
    assert upward_imports(source, module, is_package) == []


@pytest.mark.parametrize("source", ["import eventstore", "from runtime import Runnable",
                                    "def f():\n    from tools.cli import main"])
def test_checker_catches_bare_layer_imports(source: str) -> None:
    """An import of ``eventstore`` (not ``chatledger.eventstore``) is flagged."""
    assert bare_layer_imports(source, "chatledger.projections._history") != []
