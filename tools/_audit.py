"""Audit commands: ``head`` (a log head to keep elsewhere), ``prove`` (an inclusion proof) and
``purge`` (finish removing erased bytes from storage). ``verify --against`` lives with verify."""

from __future__ import annotations

import click

from chatledger.eventstore import ChatledgerError, InvalidInputError, LogHead, verify_proof
from chatledger.tools._context import CHECK_FAILED, Ledger, json_flag, pass_ledger
from chatledger.tools._files import atomic_path, database_file, refuse_database
from chatledger.tools._output import echo_json, format_time, table
from chatledger.tools.serve._heads import MAX_HEAD_BYTES

__all__ = ["COMMANDS", "read_head"]


def read_head(path: str) -> LogHead:
    """The log head saved in ``path`` by ``chatledger head --out``.

    Raises:
        InvalidInputError: The file cannot be read, is longer than a head file can be
            (``MAX_HEAD_BYTES``), or holds no log head.
    """
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_HEAD_BYTES + 1)  # /dev/zero or a stray huge file: not a head
    except OSError as e:
        raise InvalidInputError(f"cannot read the log head {path!r}: {e.strerror}") from e
    if len(text) > MAX_HEAD_BYTES:
        raise InvalidInputError(f"--against {path!r} is not a log head: a head file is at "
                                f"most {MAX_HEAD_BYTES:,} bytes, this one is longer")
    try:
        return LogHead.from_json(text)
    except InvalidInputError as e:
        raise InvalidInputError(f"{path!r}: {e}") from e


def _head_rows(head: LogHead) -> list[tuple[str, object]]:
    at = format_time(head.recorded_at) if head.recorded_at is not None else ""
    return [("size", head.size), ("root", head.root), ("position", head.position),
            ("recorded_at", at)]


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the head to this file (JSON), to keep outside the database.")
@json_flag
@pass_ledger
def head(ledger: Ledger, out: str | None, as_json: bool) -> None:
    """Print the log head: an RFC 6962 Merkle root over every event so far.

    Keep heads somewhere the database's writers cannot change (another machine, a git
    commit, a transparency log); `chatledger verify --against FILE` later proves the log
    still holds exactly those events, unchanged, with only new ones after them.

    \b
    Example: chatledger head --out heads/$(date +%F).json
    """
    store = ledger.store()
    if out is not None:
        refuse_database(out, database_file(store))
    log_head = store.head()
    if out is not None:
        try:
            with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.write(log_head.to_json() + "\n")
        except OSError as e:
            raise ChatledgerError(f"cannot write {out!r}: {e.strerror}") from e
    if ledger.wants_json(as_json):
        click.echo(log_head.to_json())
        return
    click.echo(table(["FIELD", "VALUE"], _head_rows(log_head)))
    if out is not None:
        click.echo(f"written to {out}")


@click.command()
@click.argument("position", type=click.IntRange(min=1))
@click.option("--against", "against", type=click.Path(dir_okay=False), default=None,
              help="Prove inclusion in this saved head [default: the current head].")
@json_flag
@pass_ledger
def prove(ledger: Ledger, position: int, against: str | None, as_json: bool) -> None:
    """Print an inclusion proof of the event at POSITION in the log head.

    Anyone holding the head can check the proof without the database (the JSON is what
    `chatledger.eventstore.verify_proof` takes).

    \b
    Example: chatledger prove 42 --against heads/2026-01-01.json --json
    """
    log_head = read_head(against) if against is not None else None
    proof = ledger.store().prove(position, log_head)
    if not verify_proof(proof, log_head):
        raise ChatledgerError(f"the proof of position {position} does not check out")
    if ledger.wants_json(as_json):
        echo_json({"position": proof.position, "index": proof.index, "size": proof.size,
                   "digest": proof.digest, "hashes": proof.hashes, "root": proof.root})
        return
    click.echo(table(["FIELD", "VALUE"], [
        ("position", proof.position), ("index", proof.index), ("size", proof.size),
        ("digest", proof.digest), ("root", proof.root),
        *((f"hashes[{i}]", h) for i, h in enumerate(proof.hashes))]))
    click.echo(f"event at position {position} is leaf {proof.index} of the head of "
               f"{proof.size} events; the proof checks out")


@click.command()
@json_flag
@pass_ledger
@click.pass_context
def purge(ctx: click.Context, ledger: Ledger, as_json: bool) -> None:
    """Finish removing erased content from the database's storage.

    SQLite: checkpoints and truncates the WAL, without waiting on readers (exit 1 while a
    reader still holds an older snapshot: run it again later). PostgreSQL: VACUUM FULL of
    the tables that held payloads, which locks them while it runs; backups and archived WAL
    keep what they hold.

    \b
    Example: chatledger erase user_id=123 --yes && chatledger purge
    """
    purged = ledger.store(write=True).purge()
    if ledger.wants_json(as_json):
        echo_json({"purged": purged})
    elif purged:
        click.echo("purged: no erased content is left in the database's files")
    else:
        click.echo("not purged: a reader still holds an older snapshot; run purge again later")
    if not purged:
        ctx.exit(CHECK_FAILED)


COMMANDS = [head, prove, purge]
