"""Input and output schemas of runnables, shaped like LangChain's ``get_input_schema``.

A schema is a pydantic model when pydantic is installed (titled ``<Name>Input`` /
``<Name>Output``; a bare type becomes a root model, named keys an object), else its JSON
Schema as a dict. Either way the JSON Schema of a type comes from msgspec, which knows the
message Structs, and values validate through ``msgspec.convert``, so a model accepts the
messages themselves as well as their dict form.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Annotated, Any, Union

import msgspec

from chatledger.eventstore import AnyMessage, Message
from chatledger.eventstore._schemas import json_schema

__all__ = ["history_input_schema", "history_output_schema", "json_schema", "schema_model",
           "type_args"]


def type_args(runnable: Any) -> tuple[Any, Any]:
    """The (input, output) types a runnable declares: ``RunnableLambda[int, str](f)`` or a
    class defined as ``Runnable[int, str]``; ``Any`` for what is not declared."""
    candidates = [getattr(runnable, "__orig_class__", None)]
    for cls in type(runnable).__mro__:
        candidates += list(getattr(cls, "__orig_bases__", ()))
    for candidate in candidates:
        args = typing.get_args(candidate)
        if len(args) == 2 and not any(isinstance(a, typing.TypeVar) for a in args):
            return args[0], args[1]
    return Any, Any


class _Msgspec:
    """A pydantic annotation: validate with ``msgspec.convert``, describe with msgspec."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        tp = self.tp

        def check(value: Any) -> Any:
            if tp is Any:
                return value
            try:
                return msgspec.convert(value, tp, strict=False)
            except (msgspec.ValidationError, TypeError) as e:
                raise ValueError(str(e)) from e

        return core_schema.no_info_plain_validator_function(check)

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        # the model's own title (``<Name>Input``) names it, not the type's
        return {k: v for k, v in json_schema(self.tp).items() if k != "title"}


def schema_model(name: str, root: Any = Any, fields: dict[str, Any] | None = None) -> Any:
    """A model (or, without pydantic, a JSON Schema dict) titled ``name``.

    ``fields`` maps required keys to their types (an object); without it the schema is
    ``root`` itself.
    """
    try:
        import pydantic
    except ImportError:
        if fields is None:
            return {**json_schema(root), "title": name}
        return {"title": name, "type": "object",
                "properties": {k: {"title": k.replace("_", " ").title(), **json_schema(t)}
                               for k, t in fields.items()},
                "required": list(fields)}
    if fields is None:
        base = pydantic.RootModel[Annotated[Any, _Msgspec(root)]]  # type: ignore[misc]
        return type(name, (base,), {"__module__": __name__})
    return pydantic.create_model(
        name, __module__=__name__,
        **{k: (Annotated[Any, _Msgspec(t)], ...) for k, t in fields.items()})  # type: ignore[call-overload]


# -- RunnableWithMessageHistory, in LangChain's shapes (reference section 1.10) ---------------
_INPUT, _OUTPUT = "RunnableWithChatHistoryInput", "RunnableWithChatHistoryOutput"


def history_input_schema(input_messages_key: str | None, history_messages_key: str | None) -> Any:
    """The wrapper's input: ``{input_key: str | message | messages}`` with both keys,
    ``{input_key: messages}`` with only the input key, else a list of messages.

    The pydantic model is LangChain's, annotation for annotation (``Message`` standing for its
    ``BaseMessage``), so a model built the LangChain way describes and validates the same.
    """
    if input_messages_key and history_messages_key:
        native: Any = Union[str, Message, Sequence[Message]]
        portable: Any = Union[str, AnyMessage, list[AnyMessage]]
    else:
        native, portable = Sequence[Message], list[AnyMessage]
    try:
        import pydantic
    except ImportError:
        if input_messages_key is None:
            return schema_model(_INPUT, portable)
        return schema_model(_INPUT, fields={input_messages_key: portable})
    if input_messages_key is None:
        return type(_INPUT, (pydantic.RootModel[native],), {"__module__": __name__})
    return pydantic.create_model(  # type: ignore[call-overload]
        _INPUT, __module__=__name__, **{input_messages_key: (native, ...)})


def history_output_schema(*keys: str | None) -> Any:
    """The wrapper's output, as LangChain describes it: an object when any key is set, else a
    list of messages."""
    return schema_model(_OUTPUT, dict[str, Any] if any(keys) else list[AnyMessage])
