"""RFC 6962 Merkle tree heads and proofs: the certificate-transparency test vectors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatledger.eventstore._merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The reference vectors of RFC 6962 implementations (transparency-dev/merkle, proof/verify_test.go).
LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]]
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]


def h(*hexes: str) -> list[bytes]:
    """Hex strings to bytes."""
    return [bytes.fromhex(x) for x in hexes]


# (leaf number counted from 1, tree size, audit path)
INCLUSION = [
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (3, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (2, 5, h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]

# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (6, 7, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
]

TREE = MerkleTree([leaf_hash(leaf) for leaf in LEAVES])


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    """``proof`` with one bit of its ``i``-th hash flipped."""
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 16]) + out[i][1:]
    return out


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    """The head of an empty log is SHA-256 of the empty string."""
    assert MerkleTree().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference_vectors(size: int) -> None:
    """The root of every prefix of the eight reference leaves is the published one."""
    assert TREE.root(size) == ROOTS[size - 1]
    assert root_of([leaf_hash(leaf) for leaf in LEAVES[:size]]) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_and_verify(leaf: int, size: int, proof: list[bytes]) -> None:
    """Generated audit paths equal the reference ones and verify; any corruption fails."""
    index = leaf - 1
    assert TREE.inclusion_proof(index, size) == proof
    lh = leaf_hash(LEAVES[index])
    root = ROOTS[size - 1]
    assert verify_inclusion(lh, index, size, proof, root)
    assert not verify_inclusion(lh, index + 1, size, proof, root)
    assert not verify_inclusion(lh, index, size * 2, proof, root)
    assert not verify_inclusion(leaf_hash(b"WrongLeaf"), index, size, proof, root)
    assert not verify_inclusion(lh, index, size, proof, EMPTY_ROOT)
    assert not verify_inclusion(lh, index, size, [*proof, root], root)
    assert not verify_inclusion(lh, index, size, [root, *proof], root)
    for i in range(len(proof)):
        assert not verify_inclusion(lh, index, size, flipped(proof, i), root)
    if proof:
        assert not verify_inclusion(lh, index, size, proof[:-1], root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_and_verify(old: int, new: int, proof: list[bytes]) -> None:
    """Generated consistency proofs equal the reference ones and verify; corruptions fail."""
    assert TREE.consistency_proof(old, new) == proof
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    assert verify_consistency(old, new, r1, r2, proof)
    if not proof:
        return
    assert not verify_consistency(old, new, r2, r1, proof)
    assert not verify_consistency(old + 1, new, r1, r2, proof)
    assert not verify_consistency(old, new * 2, r1, r2, proof)
    assert not verify_consistency(old, new, r1, r2, [])
    assert not verify_consistency(old, new, r1, r2, proof[:-1])
    assert not verify_consistency(old, new, r1, r2, [*proof, r1])
    assert not verify_consistency(old, new, r1, r2, [proof[0], *proof])
    for i in range(len(proof)):
        assert not verify_consistency(old, new, r1, r2, flipped(proof, i))


def test_consistency_edge_cases() -> None:
    """An empty tree is extended by any tree; equal sizes need equal roots; no time travel."""
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [ROOTS[0]])
    assert verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    assert not verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    assert not verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])


@given(st.integers(1, 70), st.data())
def test_every_proof_of_every_prefix_verifies(n: int, data: st.DataObject) -> None:
    """For random sizes, generated inclusion and consistency proofs check out, and a grown tree
    keeps the roots of its prefixes."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(leaves)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert tree.root(size) == root_of(leaves[:size])
    assert verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index, size),
                            tree.root(size))
    assert verify_consistency(old, size, tree.root(old), tree.root(size),
                              tree.consistency_proof(old, size))
    if old < size:
        other = MerkleTree([*leaves[:old - 1], leaf_hash(b"forged"), *leaves[old:]])
        assert not verify_consistency(old, size, other.root(old), tree.root(size),
                                      tree.consistency_proof(old, size))
