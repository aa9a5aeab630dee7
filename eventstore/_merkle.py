"""Merkle tree heads and proofs over the log, as RFC 6962 (and RFC 9162, section 2.1) define them.

Pure functions, no database: a leaf is an event's ``digest`` (its 32 bytes), in position order;
``leaf_hash = SHA-256(0x00 || leaf)``, ``node = SHA-256(0x01 || left || right)``. A tree head
(size, root) commits to the first ``size`` events; an inclusion proof shows that one event is
among them, a consistency proof that a later head extends an earlier one. Anyone holding a head
can check either proof with ``verify_inclusion`` / ``verify_consistency``, without the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
_H = 32


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: SHA-256 of 0x00 and the leaf's bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node: SHA-256 of 0x01 and its two children."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A tree over leaf hashes that grows one leaf at a time.

    Only perfect subtrees are kept (level ``j`` holds the roots of aligned runs of ``2**j``
    leaves, 32 bytes each in one bytearray); a ragged right edge is hashed on demand, in
    O(log² n). So appending costs one leaf hash and, on average, one node hash, and the root of
    any prefix costs O(log n): a head after the first is cheap.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.size = 0
        for h in leaf_hashes:
            self.append(h)

    def append(self, h: bytes) -> None:
        """Add one leaf hash (``leaf_hash`` of the leaf) at the right edge."""
        self.size += 1
        levels = self._levels
        levels[0] += h
        j, count = 0, self.size
        while count % 2 == 0:
            level = levels[j]
            parent = node_hash(bytes(level[-2 * _H:-_H]), bytes(level[-_H:]))
            if len(levels) == j + 1:
                levels.append(bytearray())
            levels[j + 1] += parent
            j += 1
            count //= 2

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return bytes(self._levels[0][index * _H:(index + 1) * _H])

    def _node(self, lo: int, hi: int) -> bytes:
        """The hash of the subtree over leaves ``lo..hi-1`` (RFC 6962's MTH of that range)."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            j = n.bit_length() - 1
            k = lo >> j
            return bytes(self._levels[j][k * _H:(k + 1) * _H])
        k = _split(n)
        return node_hash(self._node(lo, lo + k), self._node(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The tree head hash of the first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"no prefix of {size} leaves in a tree of {self.size}")
        if size == 0:
            return EMPTY_ROOT
        return self._node(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size}")
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:  # RFC 6962 PATH, from the root down; the proof lists it bottom up
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._node(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._node(lo, lo + k))
                lo = lo + k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``size`` leaves extends the tree of ``old`` leaves."""
        size = self.size if size is None else size
        if not 0 <= old <= size <= self.size:
            raise ValueError(f"no consistency proof from {old} to {size} leaves")
        if old in (0, size):
            return []
        return self._subproof(old, 0, size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        # RFC 6962 SUBPROOF(m, D[lo:hi], b)
        n = hi - lo
        if m == n:
            return [] if complete else [self._node(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._node(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._node(lo, lo + k)]


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The tree head hash over ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).root()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """True when ``proof`` shows the leaf hash ``leaf`` at ``index`` of the tree ``(size, root)``.

    RFC 9162, section 2.1.3.2.
    """
    if not 0 <= index < size or len(leaf) != _H:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != _H:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    RFC 9162, section 2.1.4.2; an empty old tree is extended by every tree.
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof or any(len(p) != _H for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
