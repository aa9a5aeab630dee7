"""``verify``, defined once for every backend.

One pass over the stored rows in position order, each row read from its own columns: every
payload digest (under its salt), envelope digest and chain link is recomputed, versions must run
1..n per stream (and, where the backend promises it, positions 1..n against the position
counter), and the history projection and catalog are folded from the log as it goes. Then the
catalog, key rows, history and clears tables are compared with that fold, and, given a log head
kept elsewhere, the log must be an append-only extension of it (an RFC 6962 consistency proof).
Every problem names the stream, version, position and kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Union

import msgspec

from chatledger.eventstore import _codec, _merkle
from chatledger.eventstore._errors import ChatledgerError, InvalidKeyError
from chatledger.eventstore._heads import LogHead, leaf_of
from chatledger.eventstore._keys import SessionKey
from chatledger.eventstore._projection import APPENDED_PREFIX as _APPENDED
from chatledger.eventstore._projection import stored_step
from chatledger.eventstore._store import PROGRESS_EVERY, Problem, Progress

__all__ = ["CatalogRow", "LogTables", "VERIFY_COLUMNS", "check_against", "verify_log"]


VERIFY_COLUMNS = ("stream_id", "version", "position", "event_id", "type", "recorded_at", "data",
                  "meta", "payload_digest", "digest", "chain", "salt")
"""The columns of a stored row, in the order ``verify_log`` takes them."""


class CatalogRow(NamedTuple):
    """A ``streams`` row: the stream's head and its catalog columns.

    ``projected_version`` is how far the projection has applied this stream (PostgreSQL);
    None where one checkpoint covers the whole log (SQLite).
    """

    stream_id: str
    key: str
    version: int
    chain: str
    created_at: str
    updated_at: str
    message_count: int
    cleared_version: int
    tags: str
    projected_version: Union[int, None] = None


StreamTables = tuple[Iterable[Sequence[Any]], Iterable[Sequence[Any]], Iterable[Sequence[Any]]]
"""One stream's events, history rows and clears, as ``LogTables.stream`` reads them."""


class LogTables(NamedTuple):
    """The tables the log is checked against, read in the same snapshot as the rows."""

    catalog: Iterable[CatalogRow]
    keys: Iterable[tuple[str, str, str]]  # name, value, stream_id
    history: Iterable[tuple[str, int, int, str]]  # stream_id, version, idx, message
    clears: Iterable[tuple[str, int]]  # stream_id, version
    # One stream's events (version, position, type, data), history rows (version, idx,
    # message) and clear versions: read again to locate a stream whose tables differ.
    stream: Union[Callable[[str], StreamTables], None] = None


_MOD = 1 << 64


def _h(*row: object) -> int:
    """A 64-bit hash of one table row, summed per stream (a multiset hash, order-free).

    Python's own hash of strings is keyed with a secret drawn afresh by every process, so
    whoever edits the tables cannot aim an edit at an unchanged sum; it costs a fraction of
    a SHA-256.
    """
    return hash(row) % _MOD


class _Stream:
    """What the pass knows of one stream so far: its chain and the fold of its projection."""

    __slots__ = ("chain", "cleared", "clears", "count", "erased", "first_at", "history", "last_at",
                 "next", "redacted", "tags", "tainted")

    def __init__(self, recorded_at: str) -> None:
        self.next = 1
        self.chain = _codec.GENESIS
        self.erased: dict[int, tuple[int, bool]] = {}  # version: position, salt kept
        self.redacted: set[int] = set()
        self.first_at = recorded_at
        self.last_at = recorded_at
        self.history = [0, 0]  # sum of row hashes, rows
        self.clears = [0, 0]
        self.count = 0
        self.cleared = 0
        self.tags: set[str] = set()
        self.tainted = False


def _fold(state: _Stream, version: int, type_: str, data: str | None) -> None:
    """Apply one event to the stream's projection fold (erased payloads add nothing)."""
    try:
        step = stored_step(type_, data)
    except ChatledgerError:
        return  # an undecodable payload is already reported as altered
    for idx, message in enumerate(step.messages):
        text = message if isinstance(message, str) else _codec.encode(message).decode()
        state.history[0] = (state.history[0] + _h(version, idx, text)) % _MOD
        state.history[1] += 1
        state.count += 1
    if step.clears:
        state.clears[0] = (state.clears[0] + _h(version)) % _MOD
        state.clears[1] += 1
        state.cleared = version
        state.count = 0
    state.tags |= set(step.tags_added)
    state.tags -= set(step.tags_removed)


def verify_log(
    rows: Iterable[Sequence[Any]], read_tables: Callable[[], LogTables], *,
    stream_id: str | None = None, checkpoint: int | None = None,
    last_position: int | None = None, tree: _merkle.MerkleTree | None = None,
    progress: Progress | None = None,
) -> tuple[list[Problem], int, int]:
    """Check every row, then the tables against the fold of the log.

    Args:
        rows: Every event (of ``stream_id`` only, if given), in position order, as
            ``VERIFY_COLUMNS``.
        read_tables: Reads the catalog, key, history and clears tables (of ``stream_id`` only).
        stream_id: The one stream being checked, or None for the whole log.
        checkpoint: The last position the projection has applied (SQLite), or None when
            each catalog row says how far its stream is projected (PostgreSQL).
        last_position: The position counter, when positions must run 1..n without a gap.
        tree: Collects the leaf hashes of the rows, for a check against a log head.
        progress: Called now and then with how many more rows were checked.

    Returns:
        The problems, the number of streams and the number of events.
    """
    problems: list[Problem] = []
    streams: dict[str, _Stream] = {}
    events = 0
    previous = 0
    gapless = last_position is not None
    # The three digests are _codec's payload_digest, digest_of and chain_of, inlined: this loop
    # runs once per event of the log, and the calls cost a fifth of it.
    sha256 = hashlib.sha256
    skip = len(_APPENDED)
    for sid, version, position, event_id, type_, at, data, meta, pdigest, digest, chain, salt \
            in rows:
        events += 1
        if progress is not None and events % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        state = None
        if tree is not None:
            tree.append(_merkle.leaf_hash(leaf_of(digest)))
        try:
            if type_ not in _codec.KNOWN_TYPES:
                problems.append(Problem(sid, version, position, "unknown",
                                        f"event type {type_!r} is not one this chatledger knows "
                                        "(written by a newer release, or altered)"))
            if stream_id is not None and sid != stream_id:
                problems.append(Problem(sid, version, position, "altered",
                                        f"row found under stream {stream_id!r} names another stream"))
                continue
            if gapless and position > previous + 1:
                problems.append(Problem("", 0, previous + 1, "missing",
                                        f"positions {previous + 1}..{position - 1} are missing"))
            previous = max(previous, position)
            state = streams.get(sid)
            if state is None:
                state = streams[sid] = _Stream(at)
            if version > state.next:
                problems.append(Problem(sid, state.next, None, "missing",
                                        f"versions {state.next}..{version - 1} are missing"))
            elif version < state.next:
                problems.append(Problem(sid, version, position, "reordered",
                                        f"version {version} comes after version {state.next - 1}"))
            if data is None:
                state.erased[version] = (position, salt is not None)
            elif (sha256((salt + data).encode()) if salt is not None
                  else sha256(data.encode())).hexdigest() != pdigest:
                problems.append(Problem(sid, version, position, "altered",
                                        "payload does not match its digest"))
                state.tainted = True  # its projection rows now differ too: one problem is enough
            elif type_ == "message_redacted":
                try:
                    state.redacted.add(int(_codec.decode_json(data)["version"]))
                except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                    pass  # the digest check above already vouched for this payload
            if sha256(f"{position}\x1f{sid}\x1f{version}\x1f{event_id}\x1f{type_}\x1f{at}\x1f"
                      f"{pdigest}\x1f{meta}".encode()).hexdigest() != digest:
                problems.append(Problem(sid, version, position, "altered",
                                        "envelope does not match its digest"))
            if sha256(f"{state.chain}{digest}".encode()).hexdigest() != chain:
                problems.append(Problem(sid, version, position, "reordered",
                                        "chain link does not follow from the previous event"))
            if checkpoint is not None and position > checkpoint:
                pass  # not applied to the projection yet (a store opened without projections)
            elif type_ == "message_appended" and data is not None and data.startswith(_APPENDED) \
                    and data[-1] == "}":
                # the common event, inline: one message, its JSON a slice of the payload
                state.history[0] = (state.history[0] + hash((version, 0, data[skip:-1]))) % _MOD
                state.history[1] += 1
                state.count += 1
            else:
                _fold(state, version, type_, data)
            state.chain = chain
            if version >= state.next:
                state.next = version + 1
            if at > state.last_at:
                state.last_at = at
        except (TypeError, AttributeError, ValueError) as e:
            # a column holding a value of the wrong storage class (SQLite lets an attacker
            # with the file past STRICT): one problem, and the pass goes on
            problems.append(Problem(str(sid), version if type(version) is int else 0,
                                    position if type(position) is int else None, "altered",
                                    f"a column holds a value of the wrong type ({e})"))
            if type(version) is int and state is not None:
                state.tainted = True
    if progress is not None and events % PROGRESS_EVERY:
        progress(events % PROGRESS_EVERY)
    if gapless and last_position is not None and previous != last_position:
        if previous < last_position:
            problems.append(Problem("", 0, last_position, "missing",
                                    f"positions {previous + 1}..{last_position} are missing: "
                                    "the log's tail was removed"))
        else:
            problems.append(Problem("", 0, previous, "altered",
                                    f"positions beyond the log's counter ({last_position})"))
    for sid, state in streams.items():
        for version, (position, salted) in state.erased.items():
            if version not in state.redacted:
                problems.append(Problem(sid, version, position, "erased",
                                        "payload removed without a MessageRedacted event"))
            elif salted:
                problems.append(Problem(sid, version, position, "altered",
                                        "an erased payload's salt is still stored"))
    _check_tables(problems, streams, read_tables(), checkpoint)
    return problems, len(streams), events


def _check_tables(problems: list[Problem], streams: dict[str, _Stream], tables: LogTables,
                  checkpoint: int | None) -> None:
    seen: set[str] = set()
    projected: dict[str, int | None] = {}
    for row in tables.catalog:
        sid = row.stream_id
        seen.add(sid)
        state = streams.get(sid)
        if type(row.version) is not int or type(row.message_count) is not int \
                or type(row.cleared_version) is not int or not all(
                    type(v) is str for v in (row.chain, row.created_at, row.updated_at, row.key,
                                             row.tags)):
            problems.append(Problem(str(sid), 0, None, "catalog",
                                    "the catalog row holds a value of the wrong type"))
            continue
        if state is None:
            if row.version > 0:
                problems.append(Problem(sid, row.version, None, "missing",
                                        f"stream head is version {row.version} but no events "
                                        "are stored"))
            else:
                problems.append(Problem(sid, 0, None, "catalog",
                                        "a catalog row for a session with no events"))
            continue
        if row.version != state.next - 1 or row.chain != state.chain:
            problems.append(Problem(sid, row.version, None, "missing",
                                    f"stream head is version {row.version} but the log ends at "
                                    f"version {state.next - 1} or its chain differs"))
        else:
            _check_catalog_row(problems, row, state)
        projected[sid] = None if checkpoint is not None else row.projected_version
    for sid, state in streams.items():
        if sid not in seen:
            problems.append(Problem(sid, state.next - 1, None, "catalog",
                                    "the stream has events but no catalog row"))
    keys: dict[str, set[tuple[str, str]]] = {}
    for name, value, sid in tables.keys:
        keys.setdefault(sid, set()).add((name, value))
    for sid in seen | set(keys):
        try:
            parts = set(SessionKey.from_stream_id(sid).parts.items())
        except (InvalidKeyError, ValueError):
            parts = set()
        if keys.get(sid, set()) != parts and (sid in streams or sid in keys):
            problems.append(Problem(sid, 0, None, "catalog",
                                    "the key rows (stream_keys) do not match the stream's key"))
    history: dict[str, list[int]] = {}
    for sid, version, idx, message in tables.history:
        acc = history.setdefault(sid, [0, 0])
        acc[0] = (acc[0] + _h(version, idx, message)) % _MOD
        acc[1] += 1
    clears: dict[str, list[int]] = {}
    for sid, version in tables.clears:
        acc = clears.setdefault(sid, [0, 0])
        acc[0] = (acc[0] + _h(version)) % _MOD
        acc[1] += 1
    # A stream already reported (a row altered, missing or erased) has projection rows that
    # differ as a consequence: the first problem is the one to act on.
    flagged: dict[str, set[int]] = {}
    for p in problems:
        flagged.setdefault(p.stream_id, set()).add(p.version)
    for sid in set(streams) | set(history) | set(clears):
        if sid in flagged:
            # ... but a projection row edited apart from them is a problem of its own
            if tables.stream is not None and 0 not in flagged[sid]:
                where = _locate(tables.stream(sid), checkpoint, projected.get(sid),
                                skip=flagged[sid])
                if where is not None:
                    problems.append(Problem(sid, where[0], where[1], "projection",
                                            f"{where[2]} differ from the log"))
            continue
        state = streams.get(sid)
        want_h = state.history if state is not None else [0, 0]
        want_c = state.clears if state is not None else [0, 0]
        head = state.next - 1 if state is not None else 0
        lag = projected.get(sid)
        if lag is not None and lag != head:
            # The projection lags on this stream (appends of a projections=False store): its
            # tables must hold exactly the fold of the events up to where it has applied them.
            where = _locate(tables.stream(sid), checkpoint, lag) if tables.stream else None
            if where is not None:
                problems.append(Problem(sid, where[0], where[1], "projection",
                                        f"{where[2]} differ from the log (projected up to "
                                        f"version {lag})"))
            continue
        if history.get(sid, [0, 0]) != want_h or clears.get(sid, [0, 0]) != want_c:
            got = history.get(sid, [0, 0])[1]
            where = (_locate(tables.stream(sid), checkpoint, projected.get(sid))
                     if tables.stream is not None else None)
            version, position, what = where or (head, None, "rows")
            problems.append(Problem(sid, version, position, "projection",
                                    f"the history or clears table differs from the fold of the "
                                    f"log ({got} history rows for {want_h[1]} messages): {what}"))


def _locate(tables: StreamTables, checkpoint: int | None, projected: int | None,
            skip: set[int] | None = None) -> tuple[int, int | None, str] | None:
    """The first version of one stream (``skip`` aside: versions already reported) whose
    history rows or clear differ from its events."""
    events, history, clears = tables
    want: dict[int, list[tuple[int, str]]] = {}
    want_clears: set[int] = set()
    positions: dict[int, int] = {}
    for version, position, type_, data in events:
        positions[version] = position
        if (checkpoint is not None and position > checkpoint) or \
                (projected is not None and version > projected):
            continue
        try:
            step = stored_step(type_, data)
        except (ChatledgerError, TypeError, AttributeError):
            continue  # undecodable, or not text at all: reported as altered
        want[version] = [(i, m if isinstance(m, str) else _codec.encode(m).decode())
                         for i, m in enumerate(step.messages)]
        if step.clears:
            want_clears.add(version)
    got: dict[int, list[tuple[int, str]]] = {}
    for version, idx, message in history:
        got.setdefault(version, []).append((idx, message))
    got_clears = {version for (version,) in clears}
    for version in sorted(set(want) | set(got) | want_clears | got_clears):
        if skip is not None and version in skip:
            continue
        if sorted(want.get(version, [])) != sorted(got.get(version, [])):
            return version, positions.get(version), f"the history rows of version {version}"
        if (version in want_clears) != (version in got_clears):
            return version, positions.get(version), f"the clear at version {version}"
    return None


def _check_catalog_row(problems: list[Problem], row: CatalogRow, state: _Stream) -> None:
    sid = row.stream_id
    wrong = []
    try:
        parts = _codec.decode_json(row.key)
        if SessionKey(**parts).stream_id != sid:
            wrong.append("key")
    except (msgspec.DecodeError, TypeError, ValueError, InvalidKeyError):
        wrong.append("key")
    if row.created_at != state.first_at:
        wrong.append("created_at")
    if row.projected_version is not None and not 0 <= row.projected_version <= row.version:
        wrong.append("projected_version")
    if row.updated_at != state.last_at:
        wrong.append("updated_at")
    lagging = row.projected_version is not None and row.projected_version != state.next - 1
    if not lagging and not state.tainted:
        if row.message_count != state.count:
            wrong.append("message_count")
        if row.cleared_version != state.cleared:
            wrong.append("cleared_version")
        try:
            if set(_codec.decode_json(row.tags)) != state.tags:
                wrong.append("tags")
        except (msgspec.DecodeError, TypeError):
            wrong.append("tags")
    if wrong:
        problems.append(Problem(sid, row.version, None, "catalog",
                                f"catalog {', '.join(wrong)} differ from the log"))


def check_against(problems: list[Problem], tree: _merkle.MerkleTree, head: LogHead,
                  positions: Callable[[int], tuple[str, int, int] | None]) -> None:
    """Prove the log (``tree``) an append-only extension of ``head``; else add a problem.

    ``positions(index)`` names the event at a leaf index: (stream_id, version, position).
    """
    at = positions(head.size - 1) if head.size else None
    where = (at[0], at[1], at[2]) if at is not None else ("", 0, head.position)
    if tree.size < head.size:
        problems.append(Problem("", 0, head.position, "head",
                                f"the log holds {tree.size} events, fewer than the {head.size} "
                                "of the head: events were removed"))
        return
    if head.size and at is not None and at[2] != head.position:
        problems.append(Problem(*where, "head",
                                f"event {head.size} of the log is at position {at[2]}, the "
                                f"head's last is at {head.position}"))
        return
    proof = tree.consistency_proof(head.size)
    if not _merkle.verify_consistency(head.size, tree.size, bytes.fromhex(head.root),
                                      tree.root(), proof):
        problems.append(Problem(*where, "head",
                                f"the log is not an append-only extension of the head of "
                                f"{head.size} events (root {head.root[:16]}...): an event at or "
                                "before this position was changed, removed or inserted"))
