"""The public surface of ``eventstore``: a sorted, complete ``__all__`` and the names DESIGN.md promises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from chatledger import eventstore
from chatledger.eventstore import _errors

# Every name DESIGN.md lists as importable from eventstore.
DESIGN_NAMES = [
    "open_store", "SessionKey", "MessageAppended", "HistoryCleared", "MessageRedacted",
    "SessionForked", "RunRecorded", "SessionTagged", "ChatledgerError", "ConcurrencyError",
    "InvalidKeyError", "HumanMessage", "AIMessage", "SystemMessage", "ToolMessage", "EventStore",
]
STORE_METHODS = ["append", "read", "read_all", "sessions", "verify", "version", "last_position",
                 "purge", "rebuild", "load_history", "load_history_at", "close"]
RECORD_FIELDS = ["position", "stream_id", "version", "event_id", "recorded_at", "event", "meta"]
# Statement modules (``_sqlite_sql``) are plain constants read through their module name.
PRIVATE_MODULES = sorted(
    m.name.removeprefix("chatledger.eventstore.")
    for m in pkgutil.walk_packages(eventstore.__path__, prefix="chatledger.eventstore.")
    if not m.name.endswith("_sql"))


def test_all_is_sorted_and_unique() -> None:
    """eventstore.__all__ is sorted and has no duplicates."""
    assert eventstore.__all__ == sorted(set(eventstore.__all__))


def test_every_name_in_all_is_importable() -> None:
    """Every name in eventstore.__all__ can be imported from eventstore."""
    namespace: dict[str, object] = {}
    exec(f"from chatledger.eventstore import {', '.join(eventstore.__all__)}", namespace)
    assert all(namespace[name] is getattr(eventstore, name) for name in eventstore.__all__)


def test_all_lists_every_public_name() -> None:
    """No public class or function of eventstore is left out of __all__."""
    public = {n for n, v in vars(eventstore).items()
              if not n.startswith("_") and not inspect.ismodule(v)
              and n not in ("annotations",)}
    assert public <= set(eventstore.__all__)


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_design_names_exist(name: str) -> None:
    """Each name DESIGN.md promises is exported by eventstore."""
    assert name in eventstore.__all__
    assert getattr(eventstore, name) is not None


@pytest.mark.parametrize("module", PRIVATE_MODULES)
def test_private_modules_have_sorted_complete_all(module: str) -> None:
    """Each eventstore module declares a sorted __all__ whose names all exist."""
    mod = importlib.import_module(f"chatledger.eventstore.{module}")
    names = getattr(mod, "__all__", None)
    assert names is not None, f"eventstore.{module} has no __all__"
    assert list(names) == sorted(set(names))
    missing = [n for n in names if not hasattr(mod, n)]
    assert missing == []


def test_store_has_the_design_methods() -> None:
    """EventStore has the methods of DESIGN.md, with options keyword-only."""
    for name in STORE_METHODS:
        assert callable(getattr(eventstore.EventStore, name))
    append = inspect.signature(eventstore.EventStore.append).parameters
    read = inspect.signature(eventstore.EventStore.read).parameters
    for params, options in ((append, ("expected_version", "event_ids", "meta")),
                            (read, ("after_version", "until_version", "until_time"))):
        for option in options:
            assert params[option].kind is inspect.Parameter.KEYWORD_ONLY
    assert append["expected_version"].default is None


def test_record_has_the_design_fields() -> None:
    """Record carries position, stream_id, version, event_id, recorded_at, event and meta."""
    fields = eventstore.Record.__struct_fields__
    assert set(RECORD_FIELDS) <= set(fields)


def test_error_tree_has_one_root() -> None:
    """Every error class derives from ChatledgerError and is named ...Error."""
    errors = [getattr(_errors, n) for n in _errors.__all__]
    for cls in errors:
        assert issubclass(cls, eventstore.ChatledgerError)
        assert cls.__name__.endswith("Error")
        assert getattr(eventstore, cls.__name__) is cls
    assert issubclass(eventstore.InvalidKeyError, ValueError)
    assert issubclass(eventstore.InvalidInputError, ValueError)


def test_event_tags_are_explicit_and_stable() -> None:
    """Every stored event type has an explicit snake_case tag, not its class name."""
    tags = {cls.__name__: cls.__struct_config__.tag for cls in (
        eventstore.MessageAppended, eventstore.HistoryCleared, eventstore.MessageRedacted,
        eventstore.SessionForked, eventstore.RunRecorded, eventstore.SessionTagged)}
    assert tags == {
        "MessageAppended": "message_appended", "HistoryCleared": "history_cleared",
        "MessageRedacted": "message_redacted", "SessionForked": "session_forked",
        "RunRecorded": "run_recorded_v2", "SessionTagged": "session_tagged",
    }


def test_store_contract_is_abstract() -> None:
    """EventStore is an ABC: a backend that misses one of its methods cannot be built."""
    assert inspect.isabstract(eventstore.EventStore)
    assert set(STORE_METHODS) <= eventstore.EventStore.__abstractmethods__

    class Partial(eventstore.EventStore):  # every method but close
        pass

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_backends_implement_the_whole_contract() -> None:
    """Both backends implement every abstract method of the contract."""
    from chatledger.eventstore.postgres import PostgresStore
    from chatledger.eventstore.sqlite import SQLiteStore

    for backend in (SQLiteStore, PostgresStore):
        assert not inspect.isabstract(backend), backend.__abstractmethods__
