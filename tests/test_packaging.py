"""The distribution installs one top-level package, ``chatledger``, holding every source file."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("eventstore", "projections", "runtime", "tools")


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_packages_list_every_source_folder() -> None:
    """pyproject lists exactly the folders that hold an __init__.py, as chatledger.<folder>."""
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    folders = sorted(
        "chatledger." + ".".join(p.parent.relative_to(ROOT).parts)
        for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")
    )
    assert sorted(setuptools["packages"]) == folders
    assert setuptools["package-dir"] == {f"chatledger.{layer}": layer for layer in LAYERS}


@pytest.mark.slow
def test_wheel_installs_only_chatledger(tmp_path: Path) -> None:
    """The built wheel's top level is chatledger/ (and its dist-info), with every source file."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("chatledger-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"chatledger"}
    sources = {f"chatledger/{p.relative_to(ROOT)}" for layer in LAYERS
               for p in (ROOT / layer).rglob("*.py")}
    assert sources <= set(names)
    assert {f"chatledger/{layer}/py.typed" for layer in LAYERS} <= set(names)
    web = {f"chatledger/{p.relative_to(ROOT)}" for p in (ROOT / "tools" / "serve").rglob("*")
           if p.suffix in (".html", ".css", ".js")}
    assert web and web <= set(names), "the web view's templates and static files must ship"


def test_module_entry_point_runs_the_cli(tmp_path: Path) -> None:
    """``python -m chatledger.tools`` is the chatledger command line."""
    result = subprocess.run([sys.executable, "-m", "chatledger.tools", "--help"],
                            capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage: chatledger" in result.stdout
