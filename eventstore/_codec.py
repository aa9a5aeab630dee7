"""The one codec: events and messages to JSON and back, digests, and upcasters.

Encoders and decoders are built once at import (msgspec's performance advice). Stored events
whose tag was retired are upcast here, and nowhere else, before they are decoded.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast, get_args

import msgspec

from chatledger.eventstore._errors import InvalidInputError, StoreError
from chatledger.eventstore._events import AnyEvent, Event, MessageAppended, PayloadErased
from chatledger.eventstore._messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    Message,
    SystemMessage,
)

__all__ = [
    "GENESIS",
    "chain_of",
    "collector_paused",
    "decode_event",
    "decode_json",
    "decode_messages",
    "digest_of",
    "encode",
    "encode_event",
    "encode_meta",
    "format_time",
    "new_event_id",
    "new_ids_and_salts",
    "new_salt",
    "now_text",
    "parse_time",
    "payload_digest",
    "unequal",
]

_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(AnyEvent)
_messages_decoder = msgspec.json.Decoder(list[AnyMessage])
_json_decoder = msgspec.json.Decoder()

encode = _encoder.encode



def _run_recorded_v1(data: dict[str, Any], version: int) -> dict[str, Any]:
    """``run_recorded`` (copies of the turn's messages) -> ``run_recorded_v2`` (versions).

    A saved (``ok``) run was appended right after its input and output messages, in the same
    append, so their versions are the ones just below the run's own; a run that was not saved
    keeps its messages inline, as before.
    """
    data = {**data, "type": "run_recorded_v2"}
    if data.get("status") == "ok":
        n_in, n_out = len(data.pop("input", [])), len(data.pop("output", []))
        first = version - n_in - n_out
        data["input_versions"] = list(range(first, first + n_in))
        data["output_versions"] = list(range(first + n_in, version))
    return data


# Upcasters: retired tag -> pure function from the stored dict (and the event's version in its
# stream) to the dict of a current event. Add ``"old_tag": fn`` when a tag changes meaning.
UPCASTERS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "run_recorded": _run_recorded_v1,
}

# Every tag a stored event may carry: the current events' and the retired ones upcast on read.
KNOWN_TYPES = frozenset([*(cls.__struct_config__.tag for cls in get_args(AnyEvent)),
                         *UPCASTERS])

GENESIS = "0" * 64


def encode_event(event: Event) -> bytes:
    """Encode an event to JSON (its tag included).

    Raises:
        InvalidInputError: The event holds a value JSON cannot carry, or a field of the wrong
            type (it would not decode back).
    """
    plain = _plain_text(event)
    if not plain and (not isinstance(event, Event) or isinstance(event, PayloadErased)):
        raise InvalidInputError(f"expected an event such as MessageAppended, got {event!r}")
    name = type(event).__name__
    try:
        data = _encoder.encode(event)
    except RecursionError:
        raise InvalidInputError(f"{name} is nested too deeply to store") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(f"{name} cannot be encoded: {e}") from e
    # msgspec does not check field types on construction, so e.g. MessageAppended(message="hi")
    # encodes fine; decoding it back here keeps a malformed event from poisoning the stream,
    # where every later read would fail on it. A plain text message is known to read back.
    if plain:
        return data
    try:
        back = _event_decoder.decode(data)
    except RecursionError:
        raise InvalidInputError(f"{name} is nested too deeply to store") from None
    except msgspec.DecodeError as e:
        raise InvalidInputError(f"{name} is malformed: {e}") from e
    if back != event:
        # JSON has no NaN or infinity (msgspec writes null), no tuples, no non-str keys...:
        # storing such a value would silently change it.
        raise InvalidInputError(f"{name} would not read back equal: {unequal(event, back, name)}")
    return data


# Message types whose decoding (``__post_init__`` included) checks nothing beyond what
# ``_plain_text`` checks; a test holds their fields and checks to that.
_TEXT_MESSAGES = frozenset({HumanMessage, AIMessage, SystemMessage})


def _plain_text(event: Event) -> bool:
    """True for the common event whose encoding is known to read back equal without
    decoding it: a ``MessageAppended`` of a text message (exact types, as the decoder would
    make them) whose other fields hold their defaults, and whose name and id are text or None.

    A str encodes to JSON text that decodes to the same str (one that cannot be encoded,
    such as a lone surrogate, was refused by the encoder already); the defaults are omitted
    from the JSON and come back as themselves. Anything else (a subclass, a dict or list
    with content, a value of another type) takes the decode-back check.
    """
    if type(event) is not MessageAppended:
        return False
    m = event.message
    kind = type(m)
    if (kind not in _TEXT_MESSAGES or type(m.content) is not str
            or type(m.additional_kwargs) is not dict or m.additional_kwargs
            or type(m.response_metadata) is not dict or m.response_metadata
            or (m.name is not None and type(m.name) is not str)
            or (m.id is not None and type(m.id) is not str)):
        return False
    if kind is AIMessage:
        ai = cast(AIMessage, m)
        return (type(ai.tool_calls) is list and not ai.tool_calls
                and type(ai.invalid_tool_calls) is list and not ai.invalid_tool_calls
                and ai.usage_metadata is None)
    return True


def encode_meta(meta: dict[str, Any]) -> str:
    """Encode an append's ``meta`` object, refusing what would not read back equal.

    Raises:
        InvalidInputError: A value JSON cannot carry, or one that would change on the way.
    """
    if type(meta) is dict and not meta:
        return "{}"  # most appends carry none
    try:
        data = _encoder.encode(meta)
        back = _json_decoder.decode(data)
    except RecursionError:
        raise InvalidInputError("meta is nested too deeply to store") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(f"meta cannot be encoded as JSON: {e}") from e
    if back != meta:
        raise InvalidInputError(f"meta would not read back equal: {unequal(meta, back, 'meta')}")
    return data.decode()


def unequal(given: Any, stored: Any, path: str) -> str:
    """Name the first field where ``given`` and its decoded form ``stored`` differ."""
    if (isinstance(given, float) and given != given) or given in (float("inf"), float("-inf")):
        return f"{path} is {given!r}; JSON has no NaN or infinity"
    if isinstance(given, msgspec.Struct) and type(given) is type(stored):
        for field in given.__struct_fields__:
            a, b = getattr(given, field), getattr(stored, field)
            if a != b:
                return unequal(a, b, f"{path}.{field}")
    elif isinstance(given, dict) and isinstance(stored, dict):
        for k, a in given.items():
            if not isinstance(k, str):
                return f"{path} has a key {k!r} that is not text"
            if k not in stored or stored[k] != a:
                return unequal(a, stored.get(k), f"{path}[{k!r}]")
    elif isinstance(given, list) and isinstance(stored, list) and len(given) == len(stored):
        for i, (a, b) in enumerate(zip(given, stored, strict=True)):
            if a != b:
                return unequal(a, b, f"{path}[{i}]")
    return f"{path} is {type(given).__name__} {_short(given)}, stored it would read back as " \
           f"{type(stored).__name__} {_short(stored)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_event(type_: str, data: bytes | str | None,
                 version: int = 0) -> AnyEvent | PayloadErased:
    """Decode a stored event; an erased payload (``None``) becomes ``PayloadErased``.

    A retired tag is upcast first; ``version`` is the event's version in its stream, which
    some upcasters need.

    Raises:
        StoreError: The stored JSON does not decode to a known event.
    """
    if data is None:
        return PayloadErased(erased_type=type_)
    try:
        if type_ in UPCASTERS:
            raw = UPCASTERS[type_](_json_decoder.decode(data), version)
            upcast: AnyEvent = msgspec.convert(raw, AnyEvent)  # type: ignore[arg-type]
            return upcast
        event: AnyEvent = _event_decoder.decode(data)
        return event
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as e:
        raise StoreError(f"stored {type_} event does not decode: {e}") from e


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector while decoding many objects.

    A long history allocates two dicts per message, and in a process holding many objects the
    collections they trigger (full ones included) cost more than the decode itself. Decoded
    messages, events and records hold no reference cycles, so nothing is left for it to find.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def decode_messages(data: bytes | str) -> list[Message]:
    """Decode a JSON array of messages (with the cycle collector paused).

    Raises:
        StoreError: The stored JSON does not decode to messages.
    """
    with collector_paused():
        try:
            return _messages_decoder.decode(data)  # type: ignore[return-value]
        except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as e:
            raise StoreError(f"stored history does not decode: {e}") from e


def decode_json(data: bytes | str) -> Any:
    """Decode any JSON value."""
    return _json_decoder.decode(data)


def new_salt() -> str:
    """A fresh per-event salt: 16 random bytes as hex text (``prepare`` takes an append's
    salts with its ids from ``new_ids_and_salts``)."""
    return os.urandom(16).hex()


def payload_digest(data: bytes, salt: str | None = None) -> str:
    """SHA-256 of an event's salt and encoded payload.

    The salt is stored with the payload and erased with it, so the digest kept after an
    erasure cannot be matched against guesses of the erased text. Events written before salts
    existed have none (``salt=None``): their digest is of the payload alone.
    """
    return hashlib.sha256(data if salt is None else salt.encode() + data).hexdigest()


def digest_of(
    position: int, stream_id: str, version: int, event_id: str, type_: str,
    recorded_at: str, payload: str, meta: str,
) -> str:
    """SHA-256 over every envelope field and the payload digest."""
    text = f"{position}\x1f{stream_id}\x1f{version}\x1f{event_id}\x1f{type_}\x1f{recorded_at}\x1f{payload}\x1f{meta}"
    return hashlib.sha256(text.encode()).hexdigest()


def chain_of(previous: str, digest: str) -> str:
    """The stream's chain link: SHA-256 of the previous link and this event's digest."""
    return hashlib.sha256(f"{previous}{digest}".encode()).hexdigest()


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text (``2026-01-02T03:04:05.123456Z``), so stored times sort as text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_second: tuple[int, str] = (-1, "")
"""The last second ``now_text`` formatted, and its text up to the microseconds."""


def now_text() -> str:
    """The current time as ``format_time`` writes it.

    Every append calls this: the date and time of day are formatted once a second, and only
    the microseconds on each call (a quarter of the cost of a ``datetime`` round trip).
    """
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second
    if cached[0] != seconds:
        t = time.gmtime(seconds)
        cached = _second = (seconds, f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
                                     f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.")
    return f"{cached[1]}{micros:06d}Z"


def new_event_id() -> str:
    """A UUIDv7 text: time-ordered, so ids of one append sit side by side in the id index."""
    return new_ids_and_salts(1)[0][0]


# The UUID variant's hex digit (binary 10xx) for each random hex digit, as ``(r & 0x3) | 0x8``.
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def new_ids_and_salts(count: int) -> list[tuple[str, str]]:
    """``count`` pairs of a new event id and a new salt, from one read of the random source.

    The id is a UUIDv7: the 48-bit millisecond, version 7 over the first of 10 random bytes'
    digits, the variant over the fifth (keeping its two low bits), as 36 characters. The salt
    is 16 random bytes as hex text.
    """
    ms = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    r = os.urandom(26 * count).hex()
    return [(f"{head}{r[i + 1:i + 4]}-{_VARIANT[r[i + 4]]}{r[i + 5:i + 8]}-{r[i + 8:i + 20]}",
             r[i + 20:i + 52]) for i in range(0, 52 * count, 52)]


def parse_time(text: str) -> datetime:
    """Inverse of ``format_time``: an aware UTC datetime."""
    return datetime.fromisoformat(text)
