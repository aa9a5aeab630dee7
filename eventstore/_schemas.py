"""JSON Schema of a type (from msgspec), and what lets pydantic models hold chat messages.

A message annotation in a pydantic model (``history: list[Message]``, ``reply: AIMessage``)
validates through ``msgspec.convert``: a message passes as itself, its dict form becomes the
message; it dumps as that dict, and its JSON Schema is msgspec's. pydantic is imported only by
pydantic, when it builds such a model.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["json_schema", "message_core_schema"]


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """Replace ``$ref``s into ``defs`` with their definitions (messages are not recursive).

    A discriminator keeps its property name; its mapping named the definitions just inlined.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 32:
            return _inline(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
        out = {k: _inline(v, defs, depth) for k, v in node.items() if k != "$defs"}
        discriminator = out.get("discriminator")
        if isinstance(discriminator, dict) and "mapping" in discriminator:
            out["discriminator"] = {k: v for k, v in discriminator.items() if k != "mapping"}
        return out
    if isinstance(node, list):
        return [_inline(v, defs, depth) for v in node]
    return node


def json_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of a type, definitions inlined; ``{}`` (anything) for ``Any`` or a type
    msgspec cannot describe."""
    if tp is Any:
        return {}
    try:
        schema = msgspec.json.schema(tp)
    except (TypeError, ValueError):
        return {}
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def message_core_schema(cls: type, target: Any) -> Any:
    """pydantic's core schema for the message class ``cls``: an instance of it passes
    unchanged, anything else is converted to ``target`` by msgspec (a dict in any of the
    message types ``target`` covers); it serialises to its dict."""
    from pydantic_core import core_schema

    def check(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return msgspec.convert(value, target, strict=False)
        except (msgspec.ValidationError, TypeError) as e:
            raise ValueError(f"not a {cls.__name__}: {e}") from e

    return core_schema.no_info_plain_validator_function(
        check, serialization=core_schema.plain_serializer_function_ser_schema(
            msgspec.to_builtins))
