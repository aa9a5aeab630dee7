"""Imports point one way only: eventstore <- projections <- runtime <- tools."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["eventstore", "projections", "runtime", "tools"]
RANK = {name: i for i, name in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    """The dotted module name of a source file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every (line, absolute module) that ``source`` imports, relative imports resolved.

    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal name count too.
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


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` that point from ``module``'s layer to a higher one."""
    own = RANK[module.split(".")[0]]
    bad = []
    for line, target in imported_modules(source, module, is_package):
        top = target.split(".")[0]
        if top in RANK and RANK[top] > own:
            bad.append(f"{module}:{line} imports {target}")
    return bad


def source_files() -> list[Path]:
    """Every .py file of every layer package."""
    return sorted(p for layer in LAYERS if (ROOT / layer).is_dir()
                  for p in (ROOT / layer).rglob("*.py"))


def test_every_layer_package_is_walked() -> None:
    """The walk sees the eventstore and projections packages, so the check below is not empty."""
    walked = {p.relative_to(ROOT).parts[0] for p in source_files()}
    assert {"eventstore", "projections"} <= walked


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_imports(path: Path) -> None:
    """A module never imports from a layer above its own."""
    source = path.read_text(encoding="utf-8")
    assert upward_imports(source, module_name(path), path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("import runtime", "eventstore._store", False),
        ("from projections import ChatHistory", "eventstore._store", False),
        ("from tools.cli import main", "projections._history", False),
        ("import tools.bench", "runtime.models", True),
        ("def f():\n    from runtime import x", "eventstore._codec", False),
        ("import importlib\nimportlib.import_module('tools.cli')", "runtime._base", False),
        ("if TYPE_CHECKING:\n    from projections import X", "eventstore._keys", False),
    ],
)
def test_checker_catches_upward_imports(source: str, module: str, is_package: bool) -> None:
    """The checker flags each kind of upward import, so a violation cannot slip through."""
    assert upward_imports(source, module, is_package) != []


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("from eventstore import SessionKey", "projections._history", False),
        ("from . import _codec", "eventstore._store", False),
        ("from ._keys import SessionKey", "eventstore._store", False),
        ("import msgspec, sqlite3", "eventstore._sqlite", False),
        ("from projections import ChatHistory\nimport eventstore", "tools.cli", False),
        ("from .models import FakeChatModel", "runtime", True),
        ("from .. import _codec", "eventstore.sub.mod", False),
        ("from ..models import _fake", "runtime.models._openai", False),
    ],
)
def test_checker_allows_downward_imports(source: str, module: str, is_package: bool) -> None:
    """Imports of the same or a lower layer, and third-party imports, are allowed."""
    assert upward_imports(source, module, is_package) == []
