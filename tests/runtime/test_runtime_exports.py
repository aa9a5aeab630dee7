"""The runtime's public names: sorted, complete, importable; and the runtime keeps no state."""

from __future__ import annotations

import importlib
import inspect

import pytest

from chatledger import eventstore, runtime
from chatledger.eventstore import _messages
from chatledger.projections import ChatHistory
from chatledger.runtime import RunnableWithMessageHistory, langgraph
from chatledger.runtime.models import FakeChatModel


@pytest.mark.parametrize("module", [runtime, runtime.models, langgraph])
def test_all_is_sorted_and_importable(module: object) -> None:
    """``__all__`` is sorted and every name in it exists."""
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert hasattr(module, name), name


def test_all_covers_every_public_class_of_the_private_modules() -> None:
    """Every public class defined in runtime's private modules is exported from ``runtime``."""
    exported = set(runtime.__all__)
    for name in ("_compose", "_config", "_lambda", "_passthrough", "_prompts", "_runnable",
                 "_with_history"):
        module = importlib.import_module(f"chatledger.runtime.{name}")
        for attr, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not attr.startswith("_"):
                assert attr in exported, f"runtime.{name}.{attr} is not exported"


def test_design_contract_names_are_exported() -> None:
    """The names DESIGN.md promises are importable from ``runtime`` and ``runtime.models``."""
    for name in ("HumanMessage", "AIMessage", "SystemMessage", "ToolMessage", "ChatPromptTemplate",
                 "MessagesPlaceholder", "RunnableLambda", "RunnableParallel",
                 "RunnablePassthrough", "RunnableWithMessageHistory", "ConfigurableFieldSpec"):
        assert name in runtime.__all__
    for name in ("ChatModel", "FakeChatModel", "OfflineChatModel", "OpenAIChatModel"):
        assert name in runtime.models.__all__
    assert "ChatledgerSaver" in langgraph.__all__


def test_every_message_class_of_the_log_is_also_a_runtime_name() -> None:
    """DESIGN.md puts the message classes in ``runtime`` ("also in eventstore"): all of them,
    the base ``Message`` (for ``list[Message]`` fields) and ``AnyMessage`` included."""
    for name in _messages.__all__:
        value = getattr(eventstore, name, None)
        if (inspect.isclass(value) and issubclass(value, eventstore.Message)) \
                or name == "AnyMessage":
            assert getattr(runtime, name, None) is value, f"runtime.{name} is missing"


def test_wrapper_keeps_no_state_between_calls(db_url: str) -> None:
    """Invoking the wrapper leaves its attributes exactly as they were."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]),
                                       lambda session_id: ChatHistory(session_id, db_url))
    before = {k: v for k, v in vars(chain).items() if k != "runnable"}
    chain.invoke("hi", {"session_id": "s"})
    list(chain.stream("again", {"session_id": "s"}))
    assert {k: v for k, v in vars(chain).items() if k != "runnable"} == before
