"""Log heads and inclusion proofs: the values, the check anyone can run offline, and the
tree a store keeps in memory so that a head after the first costs only the new events.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from array import array
from collections.abc import Iterable
from datetime import datetime
from typing import Union

import msgspec

from chatledger.eventstore import _codec, _merkle
from chatledger.eventstore._errors import InvalidInputError, NotFoundError

__all__ = ["HeadCache", "InclusionProof", "LogHead", "leaf_of", "verify_proof"]

_MAX = 2**63 - 1  # positions and sizes are SQLite and PostgreSQL 64-bit integers


def leaf_of(digest: object) -> bytes:
    """The tree's leaf for an event: its digest's 32 bytes (a digest that is not 64 hex digits,
    or not text at all, which verify reports as altered, is hashed instead, so it still makes
    one leaf)."""
    if not isinstance(digest, str):
        return hashlib.sha256(repr(digest).encode()).digest()
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        raw = b""
    return raw if len(raw) == 32 else hashlib.sha256(digest.encode()).digest()


class LogHead(msgspec.Struct, frozen=True):
    """A Merkle tree head (RFC 6962) over the event digests of the log, in position order.

    ``size`` events are covered, the last at ``position`` (recorded at ``recorded_at``);
    ``root`` is the tree's hash in hex. Keep heads outside the database: a later
    ``verify(against=head)`` proves the log still holds exactly those events, unchanged, with
    only new ones after them.
    """

    size: int
    root: str
    position: int
    recorded_at: Union[datetime, None]

    def __post_init__(self) -> None:
        for name in ("size", "position"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _MAX:
                raise InvalidInputError(f"not a chatledger log head: {name} must be an int "
                                        f"from 0 to 2**63 - 1, got {value!r}")
        if not isinstance(self.root, str) or len(self.root) != 64 or any(
                c not in "0123456789abcdef" for c in self.root):
            raise InvalidInputError("not a chatledger log head: root must be 64 lowercase hex "
                                    "digits")

    def to_json(self) -> str:
        """The head as one line of JSON (what ``chatledger head --out`` writes)."""
        return _codec.encode(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> LogHead:
        """Read a head written by ``to_json``.

        Raises:
            InvalidInputError: The text is not a log head.
        """
        try:
            head: LogHead = msgspec.json.decode(text, type=cls)
        except msgspec.DecodeError as e:
            text = str(e)
            raise InvalidInputError(text if text.startswith("not a chatledger log head")
                                    else f"not a chatledger log head: {text}") from e
        return head


class InclusionProof(msgspec.Struct, frozen=True):
    """Proof that the event at ``position`` (the ``index``-th, from 0) is in the tree head
    ``(size, root)``: its ``digest`` and the audit path ``hashes`` (hex), RFC 6962.

    Check it without a database with ``verify_proof``.
    """

    position: int
    index: int
    size: int
    digest: str
    hashes: list[str]
    root: str


def verify_proof(proof: InclusionProof, head: LogHead | None = None) -> bool:
    """True when ``proof`` shows its event in the tree head it names (and that head is
    ``head``, when given). Needs no database: keep heads elsewhere and check proofs anywhere.
    """
    if head is not None and (head.size != proof.size or head.root != proof.root):
        return False
    try:
        leaf = _merkle.leaf_hash(bytes.fromhex(proof.digest))
        hashes = [bytes.fromhex(h) for h in proof.hashes]
        root = bytes.fromhex(proof.root)
    except ValueError:
        return False
    return _merkle.verify_inclusion(leaf, proof.index, proof.size, hashes, root)


class HeadCache:
    """The Merkle tree of the log as far as this store has read it, grown on each ``head()``.

    Leaves are only ever appended below the reader horizon, so what was read stays the
    log's prefix; a rewrite behind the store's back is what ``verify(against=head)`` finds.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tree = _merkle.MerkleTree()
        self.positions = array("q")
        self.digests = bytearray()
        self.recorded_at: str | None = None

    @property
    def last_position(self) -> int:
        """The position of the last event read (0 before the first)."""
        return self.positions[-1] if self.positions else 0

    def extend(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Add events (position, digest, recorded_at) after ``last_position``, in order."""
        for position, digest, recorded_at in rows:
            raw = leaf_of(digest)
            self.tree.append(_merkle.leaf_hash(raw))
            self.digests += raw
            self.positions.append(position)
            self.recorded_at = recorded_at

    def head(self) -> LogHead:
        """The head over every event read so far."""
        size, at = self.tree.size, self.recorded_at
        return LogHead(size=size, root=self.tree.root().hex(),
                       position=self.positions[-1] if size else 0,
                       recorded_at=_codec.parse_time(at) if at is not None else None)

    def prove(self, position: int, head: LogHead | None = None) -> InclusionProof:
        """The inclusion proof of the event at ``position`` in ``head`` (the latest by default).

        Raises:
            NotFoundError: No event at ``position`` in the head.
            InvalidInputError: ``head`` is not a head of this log as read so far.
        """
        size = self.tree.size if head is None else head.size
        if size > self.tree.size:
            raise InvalidInputError(f"the head covers {size} events; this log has "
                                    f"{self.tree.size} below its reader horizon")
        if head is not None and self.tree.root(size).hex() != head.root:
            raise InvalidInputError("the head's root is not this log's root at that size: "
                                    "run verify(against=head)")
        index = bisect.bisect_left(self.positions, position, 0, size)
        if index >= size or self.positions[index] != position:
            raise NotFoundError(f"no event at position {position} in the head of {size} events")
        return InclusionProof(position=position, index=index, size=size,
                              digest=self.digests[index * 32:(index + 1) * 32].hex(),
                              hashes=[h.hex() for h in self.tree.inclusion_proof(index, size)],
                              root=self.tree.root(size).hex())
