"""OpenAI fine-tuning chat examples: a history converted and checked before it is written.

An example is ``{"messages": [...]}`` with roles system, user, assistant and tool; assistant
tool calls carry their arguments as JSON strings; a tool message answers a tool call made by an
earlier assistant message; and at least one assistant message is there to learn from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chatledger.eventstore import InvalidInputError, Message, to_openai

__all__ = ["InvalidExample", "finetune_example"]

ROLES = ("system", "user", "assistant", "tool")
_KEEP = ("role", "content", "name", "tool_calls", "tool_call_id")


class InvalidExample(ValueError):
    """A history that is not a valid fine-tuning example; the message says why."""


def _text_only(blocks: list[Any], where: str) -> str:
    out = []
    for block in blocks:
        if isinstance(block, str):
            out.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(
                block.get("text"), str):
            out.append(block["text"])
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidExample(f"{where} has a {kind!r} content block; only text is accepted")
    return "".join(out)


def _user_blocks(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, str):
            out.append({"type": "text", "text": block})
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(
                block.get("text"), str):
            out.append({"type": "text", "text": block["text"]})
        elif isinstance(block, dict) and block.get("type") == "image_url":
            out.append({"type": "image_url", "image_url": block.get("image_url")})
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidExample(f"{where} has a {kind!r} content block; "
                                 "only text and image_url are accepted")
    return out


def _json_object(text: Any) -> bool:
    try:
        return isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def finetune_example(messages: Sequence[Message]) -> dict[str, Any]:
    """Convert a history into one fine-tuning example, checking it on the way.

    Raises:
        InvalidExample: A role fine-tuning does not accept, a tool message answering no earlier
            tool call, a tool call without an id or whose arguments are not a JSON object,
            content blocks it cannot carry, a refusal or other message without content, or
            no assistant message.
    """
    if not messages:
        raise InvalidExample("no messages")
    out = []
    open_calls: set[str] = set()
    assistants = 0
    for n, message in enumerate(messages, 1):
        where = f"message {n}"
        try:
            item = to_openai(message)
        except InvalidInputError as e:
            raise InvalidExample(f"{where}: {e}") from e
        role = item["role"]
        if role == "developer":  # a system message by its newer name
            role = item["role"] = "system"
        if role not in ROLES:
            raise InvalidExample(f"{where} has role {role!r}; fine-tuning accepts "
                                 + ", ".join(ROLES))
        content = item.get("content")
        if isinstance(content, list):
            item["content"] = (_user_blocks(content, where) if role == "user"
                               else _text_only(content, where))
        elif content is None and not (role == "assistant" and item.get("tool_calls")):
            if item.get("refusal"):
                raise InvalidExample(f"{where} is a refusal with no content "
                                     f"({item['refusal']!r}); fine-tuning takes assistant "
                                     "text or tool calls")
            raise InvalidExample(f"{where} has no content")
        if role == "assistant":
            assistants += 1
            for call in item.get("tool_calls", []):
                if not isinstance(call.get("id"), str) or not call["id"]:
                    raise InvalidExample(f"{where} has a tool call without an id")
                if not _json_object(call.get("function", {}).get("arguments")):
                    raise InvalidExample(f"{where} has tool call {call['id']!r} whose arguments "
                                         "are not a JSON object")
                open_calls.add(call["id"])
        if role == "tool":
            answered = item.get("tool_call_id")
            if answered not in open_calls:
                raise InvalidExample(f"{where} answers tool call {answered!r}, which no earlier "
                                     "assistant message made")
            open_calls.discard(answered)
            item.pop("name", None)
        out.append({k: item[k] for k in _KEEP if k in item})
    if not assistants:
        raise InvalidExample("no assistant message")
    return {"messages": out}
