"""``verify``, defined once for every backend: recompute every digest and chain link from the
stored rows and name each row that does not check out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._store import PROGRESS_EVERY, Problem, Progress, VerifyReport

__all__ = ["VerifyRow", "verify_rows"]


class VerifyRow(msgspec.Struct, array_like=True):
    """A raw stored row as ``verify`` checks it."""

    stream_id: str
    version: int
    position: int
    event_id: str
    type: str
    recorded_at: str
    data: Union[str, None]
    meta: str
    payload_digest: str
    digest: str
    chain: str




def verify_rows(
    rows: Iterable[VerifyRow], heads: dict[str, tuple[int, str]],
    progress: Progress | None = None,
) -> VerifyReport:
    """Recompute every digest and chain link; name each altered, missing or reordered row."""
    problems: list[Problem] = []
    events = 0
    seen: set[str] = set()
    stream = None
    prev_chain = _codec.GENESIS
    expected = 1
    last_position = 0
    erased: dict[int, int] = {}
    redacted: set[int] = set()

    def close(stream_id: str) -> None:
        for version, position in erased.items():
            if version not in redacted:
                problems.append(Problem(stream_id, version, position, "erased",
                                        "payload removed without a MessageRedacted event"))
        head = heads.get(stream_id)
        if head is not None and (head[0] != expected - 1 or head[1] != prev_chain):
            problems.append(Problem(stream_id, head[0], None, "missing",
                                    f"stream head is version {head[0]} but the log ends at "
                                    f"version {expected - 1} or its chain differs"))

    for row in rows:
        events += 1
        if progress is not None and events % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        if row.stream_id != stream:
            if stream is not None:
                close(stream)
            stream, prev_chain, expected, last_position = row.stream_id, _codec.GENESIS, 1, 0
            erased, redacted = {}, set()
            seen.add(row.stream_id)
        if row.version != expected:
            problems.append(Problem(row.stream_id, expected, None, "missing",
                                    f"versions {expected}..{row.version - 1} are missing"))
        if row.data is None:
            erased[row.version] = row.position
        elif _codec.payload_digest(row.data.encode()) != row.payload_digest:
            problems.append(Problem(row.stream_id, row.version, row.position, "altered",
                                    "payload does not match its digest"))
        elif row.type == "message_redacted":
            try:
                redacted.add(int(_codec.decode_json(row.data)["version"]))
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                pass  # the digest check above already vouched for this payload
        digest = _codec.digest_of(row.position, row.stream_id, row.version, row.event_id,
                                  row.type, row.recorded_at, row.payload_digest, row.meta)
        if digest != row.digest:
            problems.append(Problem(row.stream_id, row.version, row.position, "altered",
                                    "envelope does not match its digest"))
        if row.position <= last_position:
            problems.append(Problem(row.stream_id, row.version, row.position, "reordered",
                                    f"position {row.position} is not after {last_position}"))
        if _codec.chain_of(prev_chain, row.digest) != row.chain:
            problems.append(Problem(row.stream_id, row.version, row.position, "reordered",
                                    "chain link does not follow from the previous event"))
        prev_chain = row.chain
        expected = row.version + 1
        last_position = max(last_position, row.position)
    if stream is not None:
        close(stream)
    if progress is not None and events % PROGRESS_EVERY:
        progress(events % PROGRESS_EVERY)
    for stream_id, (version, _) in heads.items():
        if stream_id not in seen and version > 0:
            problems.append(Problem(stream_id, version, None, "missing",
                                    f"stream head is version {version} but no events are stored"))
    return VerifyReport(streams=len(heads), events=events, problems=problems)
