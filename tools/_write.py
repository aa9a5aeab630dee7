"""Commands that write: ``init``, ``export`` (a file), ``import``, ``fork``, ``rebuild``, ``erase``."""

from __future__ import annotations

import time

import click
import msgspec

from chatledger.eventstore import ChatledgerError, redact_url
from chatledger.projections import ChatHistory
from chatledger.tools._context import CHECK_FAILED, Ledger, json_flag, pass_ledger, require_session
from chatledger.tools._files import is_stream
from chatledger.tools._keys import override_key, parse_filters, parse_key
from chatledger.tools._output import counter_bar, echo_json, plural
from chatledger.tools.export import FORMATS, ExportRejected, export
from chatledger.tools.importer import import_langchain_sqlite

__all__ = ["COMMANDS"]


@click.command("export")
@click.argument("filters", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="jsonl: one message per line; openai: fine-tuning chat JSONL, one "
                   "conversation per line; parquet: needs pyarrow; otel: OTLP/JSON GenAI "
                   "spans of the recorded turns and model calls.")
@click.option("--out", "path", required=True, metavar="PATH",
              help="The file to write (replaced only when the export succeeds, keeping its "
                   "permissions); - is standard output; a pipe or /dev/stdout is written in "
                   "place.")
@click.option("--strict", is_flag=True,
              help="openai: fail (exit 1, no file) if any conversation is invalid, instead of "
                   "skipping it.")
@click.option("--include-content", is_flag=True,
              help="otel: put the messages in the spans (gen_ai.input.messages, "
                   "gen_ai.output.messages).")
@click.option("--endpoint", metavar="URL",
              help="otel: also POST the spans to this OTLP/HTTP collector "
                   "(e.g. http://localhost:4318).")
@json_flag
@pass_ledger
@click.pass_context
def export_command(ctx: click.Context, ledger: Ledger, filters: tuple[str, ...], fmt: str,
                   path: str, strict: bool, include_content: bool, endpoint: str | None,
                   as_json: bool) -> None:
    """Export messages as JSONL, OpenAI fine-tuning JSONL or Parquet; runs as OTel spans.

    The file is written whole or not at all. jsonl lines carry stream_id, key, version, index,
    position, recorded_at and the message as chatledger's JSON. openai lines are
    {"messages": [...]} built from each session's current history; conversations that are not
    valid fine-tuning examples are skipped and reported (or fail the export with --strict).
    otel writes OTLP/JSON GenAI spans: one per recorded turn, one "chat MODEL" per model call
    (--include-content adds the messages; --endpoint also posts them to a collector).

    \b
    Example: chatledger export --format openai --out train.jsonl user_id=123
    """
    store = ledger.store()
    try:
        summary = export(store, path, fmt=fmt, key_filter=parse_filters(filters), strict=strict,
                         include_content=include_content, endpoint=endpoint)
    except ExportRejected as e:
        click.echo(f"Error: {e}", err=True)
        ctx.exit(CHECK_FAILED)
    to_stderr = is_stream(path)  # e.g. --out /dev/stdout: keep the data stream clean
    if ledger.wants_json(as_json):
        echo_json(msgspec.to_builtins(summary), err=to_stderr)
        return
    if fmt == "openai":
        click.echo(f"wrote {plural(summary.conversations, 'conversation')} "
                   f"({plural(summary.messages, 'message')}) "
                   f"to {path}", err=to_stderr)
        if summary.skipped:
            click.echo(f"skipped {plural(summary.skipped, 'conversation')} (not valid "
                       f"fine-tuning examples); first: {summary.first_problem}", err=True)
    elif fmt == "otel":
        click.echo(f"wrote {plural(summary.spans, 'span')} ({plural(summary.messages, 'turn')}) "
                   f"to {path}" + (f" and sent them to {endpoint}" if endpoint else ""),
                   err=to_stderr)
    else:
        click.echo(f"wrote {plural(summary.messages, 'message')} to {path}", err=to_stderr)


@click.group("import")
def import_group() -> None:
    """Import conversations from another store."""


@import_group.command("langchain-sqlite")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--table", default="message_store", show_default=True,
              help="The SQLChatMessageHistory table.")
@click.option("--session-column", default="session_id", show_default=True,
              help="The column holding the session id.")
@click.option("--source", default="", metavar="NAME",
              help="Name this source, when several databases reuse session and row ids.")
@json_flag
@pass_ledger
def import_langchain(ledger: Ledger, path: str, table: str, session_column: str, source: str,
                     as_json: bool) -> None:
    """Import a LangChain SQLChatMessageHistory SQLite file.

    Each session_id becomes the chatledger session session_id=<value>, messages in row order.
    Rows imported before are skipped (their event ids are derived from the rows), and every
    row is checked before anything is written.

    \b
    Example: chatledger import langchain-sqlite memory.db
    """
    summary = import_langchain_sqlite(ledger.store(create=True), path, table=table,
                                      session_column=session_column, source=source)
    if ledger.wants_json(as_json):
        echo_json(msgspec.to_builtins(summary))
        return
    click.echo(f"imported {plural(summary.imported, 'message')} into "
               f"{plural(summary.sessions, 'session')} from "
               f"{path} ({summary.already_present} were already there)")


@click.command()
@click.argument("key", nargs=-1, required=True, metavar="KEY...")
@click.option("--to", "new_parts", multiple=True, required=True, metavar="NAME=VALUE",
              help="The new key's parts; parts not given are kept from KEY (repeatable).")
@click.option("--at", "at_version", type=click.IntRange(min=0), metavar="VERSION",
              help="Fork the history as of this version [default: the current one].")
@json_flag
@pass_ledger
def fork(ledger: Ledger, key: tuple[str, ...], new_parts: tuple[str, ...],
         at_version: int | None, as_json: bool) -> None:
    """Start a new session from a session's history.

    \b
    Example: chatledger fork user_id=123 conversation_id=1 --to conversation_id=2 --at 4
    """
    source = parse_key(key)
    target = override_key(source, new_parts)
    store = ledger.store(write=True)
    require_session(store, source)
    forked = ChatHistory(source, store).fork(target, at_version=at_version)
    view = forked.load()
    if ledger.wants_json(as_json):
        echo_json({"from": source.parts, "to": target.parts, "version": view.version,
                   "messages": len(view.messages)})
        return
    click.echo(f"forked {source.stream_id} into {target.stream_id} "
               f"with {plural(len(view.messages), 'message')}")


@click.command()
@json_flag
@pass_ledger
def init(ledger: Ledger, as_json: bool) -> None:
    """Create an empty ledger at --db (an existing one is kept, upgraded if it is older).

    Opening a ledger never creates one; this command, the first append of `chat`, `import`
    and `demo` do.

    \b
    Example: chatledger --db sqlite:///audit.db init
    """
    store = ledger.store(create=True)
    events = store.event_count()
    if ledger.wants_json(as_json):
        echo_json({"url": redact_url(ledger.url), "events": events})
        return
    click.echo(f"ledger ready at {redact_url(ledger.url)} ({plural(events, 'event')})")


@click.command()
@json_flag
@pass_ledger
def rebuild(ledger: Ledger, as_json: bool) -> None:
    """Rebuild the projections by replaying the whole log.

    \b
    Example: chatledger rebuild
    """
    store = ledger.store(write=True)
    started = time.perf_counter()
    with counter_bar(length=store.event_count(), label="rebuilding") as bar:
        events = store.rebuild(progress=bar)
    seconds = time.perf_counter() - started
    rate = events / seconds if seconds > 0 else 0.0
    if ledger.wants_json(as_json):
        echo_json({"events": events, "seconds": round(seconds, 3),
                   "events_per_second": round(rate)})
        return
    click.echo(f"replayed {plural(events, 'event')} in {seconds:.2f} s ({rate:,.0f} events/s)")


@click.command()
@click.argument("key", nargs=-1, required=True, metavar="KEY...")
@click.option("--version", "versions", type=click.IntRange(min=1), multiple=True,
              metavar="V", help="Erase only this event's payload (repeatable) "
                                "[default: every message of the session].")
@click.option("--reason", default="erasure requested", show_default=True,
              help="Recorded with the erasure.")
@click.option("--yes", is_flag=True, help="Confirm: erased content cannot be recovered.")
@json_flag
@pass_ledger
def erase(ledger: Ledger, key: tuple[str, ...], versions: tuple[int, ...], reason: str,
          yes: bool, as_json: bool) -> None:
    """Lawfully erase message content (digests stay).

    Each erased event is recorded by a MessageRedacted event naming its version and reason.

    \b
    Example: chatledger erase user_id=123 conversation_id=1 --version 3 --yes
    """
    session_key = parse_key(key)
    if not yes:
        raise ChatledgerError("erase removes content for good; add --yes to confirm")
    store = ledger.store(write=True)
    require_session(store, session_key)
    receipt = store.erase(session_key, versions=list(versions) or None, reason=reason)
    copies = sorted({e.stream_id for e in receipt.erased} - {receipt.stream_id})
    if ledger.wants_json(as_json):
        echo_json({"stream_id": receipt.stream_id, "erased": len(receipt.versions),
                   "version": receipt.version, "purged": receipt.purged,
                   "events": [{"stream_id": e.stream_id, "version": e.version,
                               "position": e.position, "payload_digest": e.payload_digest}
                              for e in receipt.erased],
                   "before": msgspec.to_builtins(receipt.before),
                   "after": msgspec.to_builtins(receipt.after)})
        return
    click.echo(f"erased {plural(len(receipt.versions), 'event')} of {receipt.stream_id}"
               + (f" and the copies in {plural(len(copies), 'fork')} ({', '.join(copies)})"
                  if copies else "")
               + "; their salted digests remain, so verify still passes")
    if not receipt.purged:
        click.echo("the erased bytes are not yet purged from storage: run `chatledger purge`")


COMMANDS = [init, export_command, import_group, fork, rebuild, erase]
