"""``chatledger chat``: a conversation that persists, one line per turn, with slash commands.

Lines come from stdin (a terminal or a pipe). Each line is one turn through
``runtime.RunnableWithMessageHistory``, so the session's history is loaded before the model
answers and the turn is appended to the log after. ``/history`` shows the session,
``/as-of N`` the session as of version N, ``/quit`` (or end of input) leaves.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from chatledger.eventstore import ChatledgerError, EventStore, HumanMessage, SessionKey
from chatledger.projections import ChatHistory
from chatledger.runtime import RunnableWithMessageHistory
from chatledger.tools._output import message_text, plural, role_of, safe, table

__all__ = ["HELP", "input_lines", "make_model", "run_chat"]

Echo = Callable[..., None]

HELP = "commands: /history, /as-of N, /quit"


def make_model(*, base_url: str | None, model: str | None) -> Any:
    """The offline model, or an OpenAI-compatible one when ``base_url`` is given.

    Raises:
        ChatledgerError: ``model`` without ``base_url`` or the other way round.
    """
    if base_url is None:
        if model is not None:
            raise ChatledgerError("--model needs --base-url (the offline model has no choices)")
        from chatledger.runtime.models import OfflineChatModel

        return OfflineChatModel()
    if not model:
        raise ChatledgerError("--base-url (or $OPENAI_BASE_URL) needs --model NAME (the model "
                              "the server serves)")
    from chatledger.runtime.models import OpenAIChatModel

    return OpenAIChatModel(model=model, base_url=base_url)


def _show(store: EventStore, key: SessionKey, echo: Echo, version: int | None) -> None:
    if version is None:
        at, messages = store.load_history(key)
    else:
        at, messages = store.load_history_at(key, version=version)
    echo(f"{key.stream_id} at version {at}: {plural(len(messages), 'message')}")
    if messages:
        echo(table(["#", "ROLE", "CONTENT"],
                   ([i, role_of(m), message_text(m)] for i, m in enumerate(messages, 1))))


def _command(line: str, store: EventStore, key: SessionKey, echo: Echo) -> bool:
    """Run a slash command; False when it asks to leave."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/quit", "/exit"):
        return False
    if name == "/history" and not arg:
        _show(store, key, echo, None)
    elif name == "/as-of":
        if not (arg.isascii() and arg.isdigit()):
            echo(f"/as-of takes a version number, e.g. /as-of 2; got {arg or 'nothing'!r}",
                 err=True)
        else:
            _show(store, key, echo, int(arg))
    else:
        echo(f"unknown command {line!r}; {HELP}", err=True)
    return True


def input_lines(stdin: TextIO, *, prompt: str) -> Iterator[str]:
    """The lines typed: on a terminal through ``input`` with readline's line editing and
    history; from a pipe as bytes decoded leniently, so no input can end the chat."""
    if stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (importing it gives input() line editing)
        if isinstance(stdin, io.TextIOWrapper):
            stdin.reconfigure(errors="replace")  # a stray byte typed must not end the chat
        while True:
            try:
                yield input(prompt)
            except EOFError:
                return
    else:
        for n, raw in enumerate(stdin.buffer):
            text = raw.decode("utf-8", errors="replace")
            yield text.removeprefix("\ufeff") if n == 0 else text  # a byte-order mark


def run_chat(store: EventStore, key: SessionKey, model: Any, lines: Iterable[str], echo: Echo,
             *, prompt: Callable[[], None] | None = None) -> int:
    """Converse on ``key`` with ``model``, one turn per line of ``lines``.

    Returns:
        The number of turns whose model call failed (each was reported and recorded).
    """
    chain = RunnableWithMessageHistory(model, lambda: ChatHistory(key, store))
    failures = 0
    if prompt:
        prompt()
    for raw in lines:
        line = raw.strip()
        if not line:
            pass
        elif line.startswith("/"):
            try:
                if not _command(line, store, key, echo):
                    break
            except ChatledgerError as e:
                echo(f"Error: {e}", err=True)
        else:
            started = False  # the reply's prefix goes out with its first chunk
            try:
                for chunk in chain.stream([HumanMessage(content=line)]):
                    if not started:
                        echo("assistant> ", nl=False)
                        started = True
                    echo(safe(chunk.text, lines=True), nl=False)
                echo("" if started else "assistant> ")
            except ChatledgerError as e:
                failures += 1
                if started:
                    echo("")
                echo(f"Error: {e}", err=True)
        if prompt:
            prompt()
    return failures
