"""Chat messages: a superset of LangChain's message dicts and OpenAI chat messages.

Each message type is a msgspec Struct tagged by ``type`` (``"human"``, ``"ai"``, ...), so a list
of mixed messages encodes to plain JSON and decodes back to the right classes. ``content`` can be
given positionally or by keyword, and messages compare equal field by field, like LangChain's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Union

import msgspec

from chatledger.eventstore._errors import InvalidInputError
from chatledger.eventstore._schemas import json_schema, message_core_schema

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "AnyMessage",
    "ChatMessage",
    "FunctionMessage",
    "HumanMessage",
    "Message",
    "SystemMessage",
    "ToolMessage",
    "from_langchain_dict",
    "from_openai",
    "get_buffer_string",
    "openai_tool_calls",
    "to_langchain_dict",
    "to_openai",
]

Content = Union[str, list[Union[str, dict[str, Any]]]]


def _check_content(owner: str, content: object) -> None:
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(b, (str, dict)) for b in content):
        return
    raise InvalidInputError(
        f"{owner}.content must be a string or a list of strings and dicts, "
        f"got {type(content).__name__}"
    )


class Message(msgspec.Struct, tag_field="type", omit_defaults=True, repr_omit_defaults=True,
              gc=False):
    """Fields every message has. Use a concrete type such as ``HumanMessage``."""

    content: Content
    additional_kwargs: dict[str, Any] = {}
    response_metadata: dict[str, Any] = {}
    name: Union[str, None] = None
    id: Union[str, None] = None

    type: ClassVar[str] = "message"

    def __post_init__(self) -> None:
        # Runs on every decode too (a 10k-message load calls it 10k times): the common case
        # of plain text and no name/id returns after one type check.
        if (type(self.content) is str and (self.name is None or type(self.name) is str)
                and (self.id is None or type(self.id) is str)):
            return
        _check_content(type(self).__name__, self.content)
        if self.name is not None and not isinstance(self.name, str):
            raise InvalidInputError(f"{type(self).__name__}.name must be a string or None")
        if self.id is not None and not isinstance(self.id, str):
            raise InvalidInputError(f"{type(self).__name__}.id must be a string or None")

    @property
    def text(self) -> str:
        """The text of the message: ``content`` itself, or its text blocks joined."""
        if isinstance(self.content, str):
            return self.content
        out = []
        for block in self.content:
            if isinstance(block, str):
                out.append(block)
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                out.append(block["text"])
        return "".join(out)

    # pydantic models can hold messages (``history: list[Message]``), as LangChain's can.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validated by msgspec: the message itself or its dict; dumped as its dict."""
        return message_core_schema(cls, _schema_target(cls))

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: Any) -> dict[str, Any]:
        """msgspec's JSON Schema: for ``Message`` itself, any of the message types."""
        return json_schema(_schema_target(cls))


class HumanMessage(Message, tag="human"):
    """A message from the user."""

    type: ClassVar[str] = "human"


class SystemMessage(Message, tag="system"):
    """An instruction to the model."""

    type: ClassVar[str] = "system"


def _normalise_tool_calls(owner: str, calls: object) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InvalidInputError(f"{owner}.tool_calls must be a list of dicts")
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise InvalidInputError(f"{owner}.tool_calls entries need a string 'name', got {call!r}")
        args = call.get("args", {})
        if not isinstance(args, dict):
            raise InvalidInputError(f"{owner}.tool_calls[{call['name']!r}].args must be a dict")
        if call.get("type") == "tool_call" and "args" in call and "id" in call:
            out.append(call)
        else:
            out.append({**call, "args": args, "id": call.get("id"), "type": "tool_call"})
    return out


class AIMessage(Message, tag="ai", kw_only=True):
    """A reply from the model, possibly with tool calls and token usage."""

    tool_calls: list[dict[str, Any]] = []
    invalid_tool_calls: list[dict[str, Any]] = []
    usage_metadata: Union[dict[str, Any], None] = None

    type: ClassVar[str] = "ai"

    def __post_init__(self) -> None:
        Message.__post_init__(self)
        if self.tool_calls:
            self.tool_calls = _normalise_tool_calls(type(self).__name__, self.tool_calls)


class AIMessageChunk(AIMessage, tag="AIMessageChunk", kw_only=True):
    """A piece of a streamed reply. Chunks add up with ``+``; stores keep only whole messages."""

    tool_call_chunks: list[dict[str, Any]] = []

    type: ClassVar[str] = "AIMessageChunk"

    def __add__(self, other: object) -> AIMessageChunk:
        if not isinstance(other, AIMessageChunk):
            return NotImplemented
        return AIMessageChunk(
            content=_merge_content(self.content, other.content),
            additional_kwargs={**self.additional_kwargs, **other.additional_kwargs},
            response_metadata={**self.response_metadata, **other.response_metadata},
            name=self.name or other.name,
            id=self.id or other.id,
            tool_calls=[*self.tool_calls, *other.tool_calls],
            invalid_tool_calls=[*self.invalid_tool_calls, *other.invalid_tool_calls],
            usage_metadata=_merge_usage(self.usage_metadata, other.usage_metadata),
            tool_call_chunks=[*self.tool_call_chunks, *other.tool_call_chunks],
        )

    def to_message(self) -> AIMessage:
        """The whole ``AIMessage`` this chunk (usually a sum of chunks) stands for."""
        tool_calls = list(self.tool_calls)
        invalid = list(self.invalid_tool_calls)
        if self.tool_call_chunks and not tool_calls:
            tool_calls, invalid = _assemble_tool_calls(self.tool_call_chunks, invalid)
        return AIMessage(
            content=self.content,
            additional_kwargs=self.additional_kwargs,
            response_metadata=self.response_metadata,
            name=self.name,
            id=self.id,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=self.usage_metadata,
        )


def _merge_content(a: Content, b: Content) -> Content:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    left = [a] if isinstance(a, str) else list(a)
    right = [b] if isinstance(b, str) else list(b)
    return [x for x in [*left, *right] if x != ""]


def _merge_usage(
    a: Union[dict[str, Any], None], b: Union[dict[str, Any], None]
) -> Union[dict[str, Any], None]:
    if a is None or b is None:
        return a if b is None else b
    merged = dict(a)
    for k, v in b.items():
        if isinstance(v, int) and isinstance(merged.get(k), int):
            merged[k] = merged[k] + v
        else:
            merged[k] = v
    return merged


def _assemble_tool_calls(
    chunks: list[dict[str, Any]], invalid: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Join streamed tool-call fragments by index and parse their JSON arguments."""
    by_index: dict[Any, dict[str, Any]] = {}
    for chunk in chunks:
        slot = by_index.setdefault(chunk.get("index", 0), {"name": "", "args": "", "id": None})
        slot["name"] += chunk.get("name") or ""
        slot["args"] += chunk.get("args") or ""
        slot["id"] = slot["id"] or chunk.get("id")
    calls = []
    for slot in by_index.values():
        try:
            args = json.loads(slot["args"]) if slot["args"] else {}
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
        except ValueError as e:
            invalid.append({"type": "invalid_tool_call", "id": slot["id"], "name": slot["name"],
                            "args": slot["args"], "error": str(e)})
            continue
        calls.append({"name": slot["name"], "args": args, "id": slot["id"], "type": "tool_call"})
    return calls, invalid


class ToolMessage(Message, tag="tool", kw_only=True):
    """The result of a tool call; ``tool_call_id`` names the call it answers."""

    tool_call_id: str
    artifact: Any = None
    status: str = "success"

    type: ClassVar[str] = "tool"

    def __post_init__(self) -> None:
        if not isinstance(self.content, (str, list)):
            self.content = str(self.content)
        super().__post_init__()
        if not isinstance(self.tool_call_id, str):
            self.tool_call_id = str(self.tool_call_id)
        if self.status not in ("success", "error"):
            raise InvalidInputError(
                f"ToolMessage.status must be 'success' or 'error', got {self.status!r}"
            )


class ChatMessage(Message, tag="chat", kw_only=True):
    """A message with an arbitrary ``role``."""

    role: str

    type: ClassVar[str] = "chat"


class FunctionMessage(Message, tag="function"):
    """A legacy function result; ``name`` is the function's name."""

    type: ClassVar[str] = "function"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name:
            raise InvalidInputError("FunctionMessage needs a name")


AnyMessage = Union[
    HumanMessage, AIMessage, AIMessageChunk, SystemMessage, ToolMessage, ChatMessage,
    FunctionMessage,
]



def _schema_target(cls: type[Message]) -> Any:
    """The type a pydantic field annotated ``cls`` validates to: any message for ``Message``."""
    return AnyMessage if cls is Message else cls


_BY_TYPE: dict[str, type[Message]] = {
    "human": HumanMessage,
    "ai": AIMessage,
    "system": SystemMessage,
    "tool": ToolMessage,
    "chat": ChatMessage,
    "function": FunctionMessage,
    "AIMessageChunk": AIMessageChunk,
}
# LangChain's chunk types other than AI's arrive only in imports; they become whole messages.
_CHUNK_ALIASES = {
    "HumanMessageChunk": "human",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "ChatMessageChunk": "chat",
    "FunctionMessageChunk": "function",
}
_LC_ORDER = ("content", "additional_kwargs", "response_metadata", "type", "name", "id")
_LC_EXTRA: dict[str, tuple[str, ...]] = {
    "ai": ("tool_calls", "invalid_tool_calls", "usage_metadata"),
    "AIMessageChunk": ("tool_calls", "invalid_tool_calls", "usage_metadata", "tool_call_chunks"),
    "tool": ("tool_call_id", "artifact", "status"),
    "chat": ("role",),
}
# Fields LangChain has that we do not keep; dropped on import only when they hold a default.
_LC_DEFAULTS: dict[str, Any] = {"example": False, "chunk_position": None}


def to_langchain_dict(message: Message) -> dict[str, Any]:
    """Return LangChain's ``{"type": ..., "data": {...}}`` form, with every key present."""
    data = {
        "content": message.content,
        "additional_kwargs": message.additional_kwargs,
        "response_metadata": message.response_metadata,
        "type": message.type,
        "name": message.name,
        "id": message.id,
    }
    for field in _LC_EXTRA.get(message.type, ()):
        data[field] = getattr(message, field)
    return {"type": message.type, "data": data}


def from_langchain_dict(item: Mapping[str, Any]) -> Message:
    """Build a message from LangChain's ``{"type": ..., "data": {...}}`` form.

    Raises:
        InvalidInputError: Unknown type, or a field chatledger cannot keep losslessly.
    """
    if not isinstance(item, Mapping) or "type" not in item or "data" not in item:
        raise InvalidInputError(f"expected a LangChain message dict with 'type' and 'data', got {item!r}")
    kind = _CHUNK_ALIASES.get(item["type"], item["type"])
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise InvalidInputError(f"unknown LangChain message type {item['type']!r}")
    data = dict(item["data"])
    inner = data.pop("type", kind)
    if inner not in (kind, item["type"]):
        raise InvalidInputError(f"message data type {inner!r} contradicts outer type {item['type']!r}")
    allowed = set(_LC_ORDER) | set(_LC_EXTRA.get(kind, ()))
    kwargs: dict[str, Any] = {}
    for field, value in data.items():
        if field in allowed:
            kwargs[field] = value
        elif (field in _LC_DEFAULTS and value == _LC_DEFAULTS[field]) or field in ("tool_call_chunks", "chunk_position"):
            continue
        else:
            raise InvalidInputError(f"LangChain message field {field!r} is not supported")
    try:
        message: Message = msgspec.convert(kwargs | {"type": kind}, AnyMessage)  # type: ignore[arg-type]
    except msgspec.ValidationError as e:
        raise InvalidInputError(f"bad LangChain {kind} message: {e}") from e
    return message


_OPENAI_ROLE = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant",
                "system": "system", "tool": "tool", "function": "function"}


# LangChain's mark for a system message that OpenAI calls "developer" (kept in
# ``additional_kwargs`` so the role survives a round trip).
_ROLE_MARK = "__openai_role__"
# Assistant fields whose presence means "content": null is what the server sent beside them.
_NULL_CONTENT_WITH = ("refusal", "function_call", "audio")


def _openai_calls(tool_calls: Sequence[dict[str, Any]],
                  invalid: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Tool calls in OpenAI's form, the arguments as ``json.dumps`` writes them; invalid ones
    with their arguments' text as it came."""
    return [{"id": call.get("id"), "type": "function",
             "function": {"name": call["name"], "arguments": json.dumps(call.get("args", {}))}}
            for call in tool_calls] + [
            {"id": call.get("id"), "type": "function",
             "function": {"name": call.get("name") or "", "arguments": call.get("args") or ""}}
            for call in invalid]


def openai_tool_calls(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI ``tool_calls`` as LangChain's ``(tool_calls, invalid_tool_calls)``: arguments
    that are not a JSON object make an invalid call (with the text and the error) rather than
    an error, as in LangChain, so the model can be shown its mistake."""
    calls: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for call in raw or []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or {}
        name = function.get("name") or ""
        arguments = function.get("arguments")
        try:
            if isinstance(arguments, Mapping):
                args = dict(arguments)
            else:
                args = json.loads(arguments) if arguments else {}
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
        except ValueError as e:
            invalid.append({"type": "invalid_tool_call", "id": call.get("id"), "name": name,
                            "args": arguments, "error": str(e)})
            continue
        calls.append({"name": name, "args": args, "id": call.get("id"), "type": "tool_call"})
    return calls, invalid


def to_openai(message: Message) -> dict[str, Any]:
    """Return the OpenAI Chat Completions form of a message.

    Every field ``from_openai`` kept in ``additional_kwargs`` (refusal, reasoning, audio, the
    raw tool calls, unknown ones too) goes back unchanged and in its order after role and
    content, so ``to_openai(from_openai(item)) == item`` for what OpenAI sends and accepts.
    Raw tool calls are used only while they still match the message's ``tool_calls`` (same
    ids): an edited message is converted as edited.

    Raises:
        InvalidInputError: The message has no OpenAI role.
    """
    extras = message.additional_kwargs
    if isinstance(message, ChatMessage):
        role = message.role
    elif isinstance(message, SystemMessage) and extras.get(_ROLE_MARK) == "developer":
        role = "developer"
    else:
        role = _OPENAI_ROLE.get(message.type, "")
    if not role:
        raise InvalidInputError(f"{type(message).__name__} has no OpenAI role")
    out: dict[str, Any] = {"role": role, "content": message.content}
    tail: dict[str, Any] = {}
    if message.name is not None:
        tail["name"] = message.name
    keep_calls = False
    if isinstance(message, AIMessage):
        raw = extras.get("tool_calls")
        every = [*message.tool_calls, *message.invalid_tool_calls]
        ids = sorted(str(call.get("id")) for call in every)
        keep_calls = (isinstance(raw, list) and bool(ids)
                      and sorted(str(c.get("id")) if isinstance(c, Mapping) else "" for c in raw)
                      == ids)
        if every and not keep_calls:
            tail["tool_calls"] = _openai_calls(message.tool_calls, message.invalid_tool_calls)
        if message.content == "" and (every or any(k in extras for k in _NULL_CONTENT_WITH)):
            out["content"] = None  # no text beside the calls or the refusal
    if isinstance(message, ToolMessage):
        tail["tool_call_id"] = message.tool_call_id
    for name, value in extras.items():
        if name in ("role", "content", _ROLE_MARK) or (name == "tool_calls" and not keep_calls):
            continue
        out[name] = value
        tail.pop(name, None)
    out.update(tail)
    return out


def from_openai(item: Mapping[str, Any]) -> Message:
    """Build a message from an OpenAI chat message dict, losslessly: fields beyond role,
    content, name (and a tool message's ``tool_call_id``) are kept in ``additional_kwargs``
    as they came (an assistant's raw ``tool_calls`` too, beside the parsed ones, where the
    parsed ones would not give back the same bytes), and the
    ``developer`` role is a system message marked as LangChain marks it.

    Tool-call arguments that are not a JSON object make ``invalid_tool_calls``, as in
    LangChain (and as a model's reply is read).

    Raises:
        InvalidInputError: Not a dict, or no role.
    """
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"expected an OpenAI message dict, got {type(item).__name__}")
    role = item.get("role")
    content = item.get("content")
    content = "" if content is None else content
    name = item.get("name")
    extras = {k: v for k, v in item.items() if k not in ("role", "content", "name")}
    if role == "user":
        return HumanMessage(content=content, name=name, additional_kwargs=extras)
    if role in ("system", "developer"):
        if role == "developer":
            extras = {_ROLE_MARK: "developer", **extras}
        return SystemMessage(content=content, name=name, additional_kwargs=extras)
    if role == "tool":
        call_id = extras.pop("tool_call_id", "")
        return ToolMessage(content=content, tool_call_id=call_id, name=name,
                           additional_kwargs=extras)
    if role == "function":
        return FunctionMessage(content=content, name=name, additional_kwargs=extras)
    if role == "assistant":
        calls, invalid = openai_tool_calls(item.get("tool_calls"))
        if (calls or invalid) and extras.get("tool_calls") == _openai_calls(calls, invalid):
            del extras["tool_calls"]  # the parsed calls give them back exactly
        return AIMessage(content=content, name=name, tool_calls=calls,
                         invalid_tool_calls=invalid, additional_kwargs=extras)
    if isinstance(role, str) and role:
        return ChatMessage(content=content, role=role, name=name, additional_kwargs=extras)
    raise InvalidInputError(f"OpenAI message has no role: {item!r}")


_BUFFER_ROLE = {"human": "Human", "ai": "AI", "AIMessageChunk": "AI", "system": "System",
                "tool": "Tool", "function": "Function"}


def get_buffer_string(messages: Iterable[Message]) -> str:
    """Render messages as ``Role: text`` lines, the way LangChain's ``str(history)`` does."""
    lines = []
    for m in messages:
        role = m.role if isinstance(m, ChatMessage) else _BUFFER_ROLE[m.type]
        line = f"{role}: {m.text}"
        if isinstance(m, AIMessage) and m.tool_calls:
            line += str(m.tool_calls)
        lines.append(line)
    return "\n".join(lines)
