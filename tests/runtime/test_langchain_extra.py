"""The LangChain bridge names the extra to install when langchain-core is missing."""

from __future__ import annotations

import builtins
import importlib
import sys
from typing import Any

import pytest


def test_a_missing_langchain_core_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the LangChain bridge without langchain-core names chatledger[langchain]."""
    real_import = builtins.__import__

    def no_langchain(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("langchain_core"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_langchain)
    monkeypatch.delitem(sys.modules, "chatledger.runtime.langchain", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'chatledger\[langchain\]'"):
        importlib.import_module("chatledger.runtime.langchain")
