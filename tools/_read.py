"""Read commands: ``sessions``, ``history``, ``log``, ``verify``, ``stats``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import click

from chatledger.eventstore import InvalidInputError
from chatledger.projections import window
from chatledger.tools._audit import read_head
from chatledger.tools._context import (
    CHECK_FAILED,
    Ledger,
    pass_ledger,
    require_session,
    table_flags,
)
from chatledger.tools._keys import parse_filters, parse_key
from chatledger.tools._output import (
    counter_bar,
    echo_json,
    echo_rows,
    event_summary,
    format_time,
    key_text,
    message_dict,
    message_text,
    plural,
    problem_dict,
    record_dict,
    role_of,
    safe,
    session_dict,
    shorten,
    table,
)
from chatledger.tools._parse import MAX_INT, is_number, parse_number, parse_time, shown

__all__ = ["COMMANDS", "parse_as_of"]

SESSION_COLUMNS = ["stream_id", "key", "version", "message_count", "created_at", "last_active",
                   "tags", "cursor"]
RECORD_COLUMNS = ["position", "stream_id", "version", "event_id", "type", "recorded_at",
                  "digest", "chain", "meta", "event"]

KEY = click.argument("key", nargs=-1, required=True, metavar="KEY...")


def parse_as_of(text: str) -> tuple[int | None, datetime | None]:
    """``--as-of``: a version number, or an ISO 8601 time that names its zone (as UTC).

    A time without fractions of a second means the end of that second, so a time shown to
    the second names the state after every event recorded in it.

    Raises:
        InvalidInputError: Neither form, a version beyond 2**63 - 1, a time without a zone,
            or one outside the years 1 to 9999 in UTC.
    """
    if is_number(text):
        return parse_number(text, "--as-of"), None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"--as-of {shown(text)} is neither a version number nor an ISO 8601 time; "
            "expected e.g. 5 or 2024-05-01T12:00:00Z"
        ) from None
    moment = parse_time(text, "--as-of")
    if moment.microsecond == 0 and not re.search(r"\d[.,]\d", text.partition("T")[2]
                                                 or text.partition(" ")[2]):
        moment += timedelta(microseconds=999_999)
    return None, moment


@click.command()
@click.argument("filters", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--limit", type=click.IntRange(min=1, max=MAX_INT), default=20,
              show_default=True, help="Sessions per page.")
@click.option("--after", metavar="CURSOR", help="Start after this cursor (printed by the "
              "previous page).")
@table_flags
@pass_ledger
def sessions(ledger: Ledger, filters: tuple[str, ...], limit: int, after: str | None,
             as_json: bool) -> None:
    """List sessions, most recently active first.

    \b
    Example: chatledger sessions user_id=123 --limit 10
    """
    # one more than the page says whether another follows
    rows = ledger.store().sessions(limit=min(limit + 1, MAX_INT), after=after,
                                   **parse_filters(filters))
    page, more = rows[:limit], len(rows) > limit
    cursor = page[-1].cursor if more else None
    fmt = ledger.output(as_json)
    if fmt == "json":
        echo_json({"sessions": [session_dict(s) for s in page], "next": cursor})
        return
    if fmt != "table":
        echo_rows(fmt, [session_dict(s) for s in page], SESSION_COLUMNS)
        if cursor is not None:
            click.echo(f"next page: --after '{cursor}'", err=True)
        return
    if not page:
        click.echo("no sessions")
        return
    click.echo(table(
        ["KEY", "VERSION", "MESSAGES", "CREATED", "LAST ACTIVE", "TAGS"],
        ([key_text(s.key), s.version, s.message_count,
          format_time(s.created_at), format_time(s.last_active), ",".join(s.tags)]
         for s in page)))
    if cursor is not None:
        click.echo(f"next page: --after '{cursor}'")


@click.command()
@KEY
@click.option("--as-of", "as_of", metavar="VERSION|TIME",
              help="The history as it stood at a version or an ISO 8601 time with a zone.")
@click.option("--window", "last", type=click.IntRange(min=1), metavar="N",
              help="Only the last N messages (a tool call stays with its results).")
@table_flags
@pass_ledger
def history(ledger: Ledger, key: tuple[str, ...], as_of: str | None, last: int | None,
            as_json: bool) -> None:
    """Show a session's messages, now or as of a version or time.

    \b
    Example: chatledger history user_id=123 conversation_id=1 --as-of 2
    """
    session_key = parse_key(key)
    when = parse_as_of(as_of) if as_of is not None else None
    store = ledger.store()
    require_session(store, session_key)
    head = store.version(session_key)
    if when is None:
        version, messages = store.load_history(session_key)
    else:
        version, messages = store.load_history_at(session_key, version=when[0], time=when[1])
    if last is not None:
        messages = window(messages, last=last)
    fmt = ledger.output(as_json)
    if fmt == "json":
        echo_json({"key": session_key.parts, "stream_id": session_key.stream_id,
                   "version": version, "head": head,
                   "messages": [message_dict(m) for m in messages]})
        return
    if fmt != "table":
        echo_rows(fmt, [{"index": i, "role": role_of(m), "content": message_text(m),
                         "message": message_dict(m)} for i, m in enumerate(messages, 1)],
                  ["index", "role", "content"])
        return
    title = f"{key_text(session_key)}  version {version}"
    if version != head:
        title += f" (as of; the session is at {head})"
    click.echo(f"{safe(title)}  {plural(len(messages), 'message')}")
    if messages:
        click.echo(table(["#", "ROLE", "CONTENT"],
                         ([i, role_of(m), shorten(message_text(m), 10_000)]
                          for i, m in enumerate(messages, 1))))


@click.command()
@KEY
@table_flags
@pass_ledger
def log(ledger: Ledger, key: tuple[str, ...], as_json: bool) -> None:
    """Show a session's raw events.

    \b
    Example: chatledger log abc123 --json
    """
    session_key = parse_key(key)
    store = ledger.store()
    require_session(store, session_key)
    records = store.read(session_key)
    fmt = ledger.output(as_json)
    if fmt == "json":
        echo_json([record_dict(r) for r in records])
        return
    if fmt != "table":
        echo_rows(fmt, [record_dict(r) for r in records], RECORD_COLUMNS)
        return
    click.echo(table(["POSITION", "VERSION", "TYPE", "RECORDED", "DIGEST", "SUMMARY"],
                     ([r.position, r.version, r.type, format_time(r.recorded_at),
                       r.digest[:12], event_summary(r)] for r in records)))


@click.command()
@click.argument("key", nargs=-1, metavar="[KEY]...")
@click.option("--against", "against", type=click.Path(dir_okay=False), default=None,
              help="A log head saved by `chatledger head --out`: the log must extend it.")
@table_flags
@pass_ledger
@click.pass_context
def verify(ctx: click.Context, ledger: Ledger, key: tuple[str, ...], against: str | None,
           as_json: bool) -> None:
    """Check every row, the catalog and the projections (exit 0 only if intact).

    With a KEY only that session is checked. Each problem is listed with its stream, version,
    position, kind (altered, missing, reordered, erased, catalog, projection, integrity,
    head) and detail; the exit status is then 1. With --against FILE the log must also be an
    append-only extension of that saved head (a consistency proof).

    \b
    Example: chatledger verify --against heads/2026-01-01.json && echo intact
    """
    log_head = read_head(against) if against is not None else None
    if log_head is not None and key:
        raise InvalidInputError("--against checks the whole log: give no KEY")
    store = ledger.store()
    session_key = parse_key(key) if key else None
    if session_key is not None:
        require_session(store, session_key)
    total = (session_key and store.version(session_key)) or store.event_count()
    with counter_bar(length=total, label="verifying") as bar:
        report = store.verify(session_key, against=log_head, progress=bar)
    fmt = ledger.output(as_json)
    if fmt == "json":
        echo_json({"ok": report.ok, "streams": report.streams, "events": report.events,
                   "problems": [problem_dict(p) for p in report.problems]})
    elif fmt != "table":
        echo_rows(fmt, [problem_dict(p) for p in report.problems],
                  ["stream_id", "version", "position", "kind", "detail"])
    elif report.ok:
        click.echo(f"intact: {plural(report.events, 'event')} in "
                   f"{plural(report.streams, 'session')}; every digest, chain link, catalog "
                   "and projection row checks out"
                   + (f"; the log extends the head of {plural(log_head.size, 'event')}"
                      if log_head is not None else ""))
    else:
        click.echo(table(["STREAM", "VERSION", "POSITION", "KIND", "DETAIL"],
                         ([p.stream_id, p.version, "" if p.position is None else p.position,
                           p.kind, p.detail] for p in report.problems)))
        click.echo(f"{plural(len(report.problems), 'problem')} in {plural(report.events, 'event')}")
    if not report.ok:
        ctx.exit(CHECK_FAILED)


@click.command()
@table_flags
@pass_ledger
def stats(ledger: Ledger, as_json: bool) -> None:
    """Show counts of sessions, events and messages.

    \b
    Example: chatledger stats --json
    """
    numbers = ledger.store().stats()
    numbers["last_position"] = ledger.store().last_position()
    fmt = ledger.output(as_json)
    if fmt == "json":
        echo_json(numbers)
        return
    flat = [(f"{name}.{sub}", v) for name, value in numbers.items() if isinstance(value, dict)
            for sub, v in value.items()]
    flat += [(name, value) for name, value in numbers.items() if not isinstance(value, dict)]
    if fmt != "table":
        echo_rows(fmt, [{"stat": k, "value": v} for k, v in sorted(flat)], ["stat", "value"])
        return
    click.echo(table(["STAT", "VALUE"], sorted(flat)))


COMMANDS = [sessions, history, log, verify, stats]
