"""What the pages show, as plain values: stored events turned into chat items, runs and rows.

Pure functions over ``Record``s and messages, with no web framework in sight, so the rules
(which item an event becomes, which model calls belong to which run) are tested on their own
and the templates only lay the values out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Union

import msgspec

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    CheckpointSaved,
    HistoryCleared,
    InvalidKeyError,
    Message,
    MessageAppended,
    MessageRedacted,
    PayloadErased,
    Record,
    RunRecorded,
    SessionForked,
    SessionKey,
    SessionTagged,
    ToolMessage,
)

__all__ = [
    "Block",
    "Item",
    "MessageView",
    "ModelCallView",
    "RunView",
    "ToolCallView",
    "chat_items",
    "Resolver",
    "model_call_view",
    "message_view",
    "pretty_json",
]

# Messages by role for people, as the command line names them.
_ROLE = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "system": "system",
         "tool": "tool", "function": "function"}

# Inline data URLs can be megabytes of base64: the page names them, it does not print them.
_URL_SHOWN = 200


class Block(msgspec.Struct, frozen=True):
    """One content block: ``kind`` is ``text``, ``image`` (its URL, shown as text) or ``json``."""

    kind: str
    text: str


class ToolCallView(msgspec.Struct, frozen=True):
    """A tool call an AI message asked for."""

    name: str
    id: Union[str, None]
    args: str


class MessageView(msgspec.Struct, frozen=True):
    """A message as the chat shows it."""

    role: str
    type: str
    blocks: list[Block]
    name: Union[str, None] = None
    id: Union[str, None] = None
    tool_calls: list[ToolCallView] = []
    tool_call_id: Union[str, None] = None
    usage: Union[str, None] = None
    extra: Union[str, None] = None


class ModelCallView(msgspec.Struct, frozen=True):
    """One model call made during a run: whatever of the request and response was recorded."""

    type: str
    fields: list[tuple[str, str]]
    request: list[MessageView] = []
    response: list[MessageView] = []


class RunView(msgspec.Struct, frozen=True):
    """One recorded chain run and the model calls linked to it.

    A saved turn's run names its messages by version (``input_versions``,
    ``output_versions``); a run that saved no turn carries its messages itself.
    """

    run_id: str
    status: str
    latency_ms: float
    history_version: int
    model: Union[str, None]
    error: Union[str, None]
    input: list[MessageView]
    output: list[MessageView]
    input_versions: list[int] = []
    output_versions: list[int] = []
    model_calls: list[ModelCallView] = []


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the chat, in version order.

    ``kind`` picks the template: ``message``, ``cleared``, ``redacted``, ``erased``, ``forked``,
    ``tagged``, ``run``, or ``event`` for a type this page does not know (shown as its JSON).
    """

    kind: str
    version: int
    position: int
    recorded_at: datetime
    type: str
    message: Union[MessageView, None] = None
    run: Union[RunView, None] = None
    inherited: list[MessageView] = []
    parent: Union[SessionKey, None] = None
    parent_version: int = 0
    target_version: int = 0
    text: str = ""


def pretty_json(value: Any) -> str:
    """Indented JSON, non-ASCII kept, anything msgspec cannot encode shown by ``repr``."""
    return json.dumps(msgspec.to_builtins(value, str_keys=True, enc_hook=repr), indent=2,
                      ensure_ascii=False, sort_keys=True)


def _role(message: Message) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    return _ROLE.get(message.type, message.type)


def _block(block: Union[str, dict[str, Any]]) -> Block:
    if isinstance(block, str):
        return Block("text", block)
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return Block("text", block["text"])
    if kind == "image_url":
        image = block.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            shown = url if len(url) <= _URL_SHOWN else f"{url[:_URL_SHOWN]}… ({len(url):,} characters)"
            return Block("image", shown)
    return Block("json", pretty_json(block))


def message_view(message: Message) -> MessageView:
    """The chat's view of one message: role, content blocks, tool calls or the call answered."""
    content = message.content
    blocks = [Block("text", content)] if isinstance(content, str) else [_block(b) for b in content]
    calls: list[ToolCallView] = []
    usage = None
    if isinstance(message, AIMessage):
        calls = [ToolCallView(str(c.get("name", "")), c.get("id"), pretty_json(c.get("args", {})))
                 for c in message.tool_calls]
        usage = pretty_json(message.usage_metadata) if message.usage_metadata else None
    extra: dict[str, Any] = {k: v for k, v in (("additional_kwargs", message.additional_kwargs),
                                               ("response_metadata", message.response_metadata))
                             if v}
    if isinstance(message, ToolMessage):
        if message.status != "success":
            extra["status"] = message.status
        if message.artifact is not None:
            extra["artifact"] = message.artifact
    return MessageView(
        role=_role(message), type=message.type, blocks=blocks, name=message.name,
        id=message.id, tool_calls=calls,
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
        usage=usage, extra=pretty_json(extra) if extra else None,
    )


def _messages(value: Any) -> list[MessageView]:
    if isinstance(value, Message):
        return [message_view(value)]
    if isinstance(value, list) and value and all(isinstance(m, Message) for m in value):
        return [message_view(m) for m in value]
    return []


# Fields a model-call event is expected to carry, in the order a reader wants them.
_CALL_FIELDS = ("provider", "model", "finish_reason", "response_id", "latency_ms", "parameters",
                "usage")


Resolver = Callable[[Any], "tuple[list[Message], Message | None] | None"]
"""Gives a model call's request and response with the messages it shares with its turn
(stored once, referred to by the call) put back; None when they cannot be found."""


def model_call_view(event: Any, resolve: Resolver | None = None) -> ModelCallView:
    """Render one model-call event (any event linked to a run by ``run_id``).

    Known fields come first, in a fixed order, then every other field as JSON; request and
    response messages render as chat messages when they are messages, references to the
    turn's messages resolved through ``resolve``. Extend this function as model-call events
    grow fields; unknown fields are never dropped.
    """
    data = msgspec.to_builtins(event, enc_hook=repr)
    data = data if isinstance(data, dict) else {"value": data}
    data.pop("type", None)
    data.pop("run_id", None)
    resolved = resolve(event) if resolve is not None else None
    if resolved is not None:
        request = [message_view(m) for m in resolved[0]]
        response = [] if resolved[1] is None else [message_view(resolved[1])]
    else:
        request = _messages(getattr(event, "request", None) or getattr(event, "messages", None))
        response = _messages(getattr(event, "response", None))
    if request:
        data.pop("request", None)
        data.pop("messages", None)
    if response:
        data.pop("response", None)
    order = [f for f in _CALL_FIELDS if f in data] + sorted(f for f in data if f not in _CALL_FIELDS)
    fields = [(f, data[f] if isinstance(data[f], str) else pretty_json(data[f])) for f in order]
    return ModelCallView(type=_tag(event), fields=fields, request=request, response=response)


def _tag(event: Any) -> str:
    config = getattr(type(event), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else type(event).__name__


def _run_view(run: RunRecorded, calls: list[ModelCallView]) -> RunView:
    return RunView(run_id=run.run_id, status=run.status, latency_ms=run.latency_ms,
                   history_version=run.history_version, model=run.model, error=run.error,
                   input=[message_view(m) for m in run.input],
                   output=[message_view(m) for m in run.output],
                   input_versions=list(run.input_versions),
                   output_versions=list(run.output_versions), model_calls=calls)


def _linked_run(event: Any) -> str | None:
    """The run a non-run event belongs to (model calls carry their run's ``run_id``)."""
    if isinstance(event, RunRecorded):
        return None
    run_id = getattr(event, "run_id", None)
    return run_id if isinstance(run_id, str) else None


def chat_items(records: Sequence[Record], resolve: Resolver | None = None) -> list[Item]:
    """The chat for a slice of a stream: one item per event, model calls inside their run.

    A model call whose run is not in ``records`` (a page boundary falls between them) is shown
    on its own, so nothing is hidden.
    """
    runs_here = {r.event.run_id for r in records if isinstance(r.event, RunRecorded)}
    calls: dict[str, list[ModelCallView]] = {}
    for rec in records:
        run_id = _linked_run(rec.event)
        if run_id is not None and run_id in runs_here:
            calls.setdefault(run_id, []).append(model_call_view(rec.event, resolve))
    items = []
    for rec in records:
        run_id = _linked_run(rec.event)
        if run_id is not None and run_id in runs_here:
            continue
        items.append(_item(rec, calls))
    return items


def _item(rec: Record, calls: dict[str, list[ModelCallView]]) -> Item:
    base: dict[str, Any] = {"version": rec.version, "position": rec.position,
                            "recorded_at": rec.recorded_at, "type": rec.type}
    match rec.event:
        case MessageAppended(message=message):
            return Item(kind="message", message=message_view(message), **base)
        case HistoryCleared(reason=reason):
            return Item(kind="cleared", text=reason or "", **base)
        case MessageRedacted(version=target, reason=reason):
            return Item(kind="redacted", target_version=target, text=reason, **base)
        case PayloadErased(erased_type=erased):
            return Item(kind="erased", text=erased, **base)
        case SessionForked(parent=parent, parent_version=at, messages=inherited):
            try:
                parent_key: SessionKey | None = SessionKey(**parent)
            except InvalidKeyError:  # a malformed stored key is shown as JSON, not a crash
                parent_key = None
            return Item(kind="forked", parent=parent_key, parent_version=at,
                        inherited=[message_view(m) for m in inherited],
                        text=pretty_json(parent), **base)
        case RunRecorded():
            return Item(kind="run", run=_run_view(rec.event, calls.get(rec.event.run_id, [])),
                        **base)
        case SessionTagged(added=added, removed=removed):
            text = ", ".join([*(f"+{t}" for t in added), *(f"-{t}" for t in removed)])
            return Item(kind="tagged", text=text, **base)
        case CheckpointSaved(checkpoint_id=cid, parent_id=parent, metadata=meta, messages=added):
            # the serialised checkpoint body is LangGraph's bytes: show what a reader can use
            shown = {"checkpoint_id": cid, "parent_id": parent, "metadata": meta,
                     "messages_added": added}
            return Item(kind="event", text=pretty_json(shown), **base)
        case _:
            return Item(kind="event", text=pretty_json(rec.event), **base)
