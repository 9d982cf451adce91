"""Near-duplicate plate crops by perceptual hash: (nearly) the same picture under two labels.

The hash is ``imagehash.dhash`` with ``hash_size=8``: the crop is converted to grey,
shrunk (Lanczos) to 9x8 pixels, and each of the 64 bits says whether a pixel is
brighter than its right-hand neighbour. Two crops are near duplicates when their
hashes differ in at most :data:`DEFAULT_MAX_DISTANCE` bits (Hamming distance).
Two near-duplicate crops with different labels are a certain label error.

Why dhash and why 4 bits (``bench/bench_duplicates.py``, on the 600 real crops of
``data/plates_real``, 94x24 px, all different plates; figures in docs/BENCHMARKS.md):

* Different plates stay apart: the nearest of the 179,700 pairs of different real
  crops differ in 8 bits (pHash: 6, average hash: 1). Plates share one layout, so
  their hashes are much closer than those of unrelated photos, and the thresholds
  used for photos (about 10 bits) would join different plates (13 real pairs).
  Among 20,000 synthetic plates (2e8 pairs) 6 pairs are within 4 bits: at that rate
  a folder of 200,000 such plates has some 600 false pairs, and real crops are more
  alike than synthetic ones (within 8 bits: 1.7e-5 of real pairs, 4e-6 of synthetic
  ones), so the threshold is not raised further.
* The same crop re-encoded (JPEG 75), resized by 5-10 %, 10 % brighter, darker or
  lower in contrast, or slightly blurred stays within 4 bits in 98 % of cases (99 %
  or more for each of those but a Gaussian blur of radius 1 px, 87 %).
* A crop cut 1-2 px differently is caught only partly: at 24 px height one pixel is
  4 % of the picture. 1 px off the left and right: 85 %; 1 px off every side: 17 %;
  2 px: 0-1 %. Neither of the other two hashes does better at a threshold this safe.
* pHash catches the photometric variants a little better (99.9 %) but the shifted
  crops worse (17 % against dhash's 26 % over all 1-2 px variants), comes 2 bits
  nearer to a different plate, and costs twice as long (about 95 us a crop).

The hash is stored as a *signed* 64-bit integer so that SQLite's INTEGER column
holds it: the 64 bits, read big-endian in imagehash's row-major bit order (the same
number as ``int(str(h), 16)``), are taken as two's complement, i.e. an unsigned
value ``u >= 2**63`` becomes ``u - 2**64``. The Hamming distance is the same
either way (:func:`hamming_distance`).

:func:`near_duplicate_groups` joins crops into connected components under that
distance without comparing all pairs: by the pigeonhole principle two 64-bit hashes
within ``d`` bits agree, when split into ``m`` chunks, within ``r`` bits on at least
one chunk whenever ``m * (r + 1) > d``; each chunk is bucketed and only hashes whose
chunks are that close are compared (multi-index hashing, Norouzi et al. 2012).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

HASH_SIZE = 8
"""Side of the hash grid: 8 gives 64 bits, one SQLite INTEGER."""

DEFAULT_MAX_DISTANCE = 4
"""Largest Hamming distance (bits) at which two crops count as near duplicates."""

_BITS = HASH_SIZE * HASH_SIZE
_MASK64 = (1 << 64) - 1
_DENSE_BITS = 22  # chunks up to this wide are looked up in a table of 2**bits bucket starts
_BATCH = 1 << 22  # candidate pairs expanded at a time (bounds memory on crowded buckets)


def hash_to_int(h: imagehash.ImageHash) -> int:
    """The 64 bits of an imagehash hash as a signed 64-bit Python int.

    Args:
        h: A hash of ``hash_size=8`` from any imagehash function.

    Returns:
        ``int(str(h), 16)`` reinterpreted as two's complement: in
        ``[-2**63, 2**63 - 1]``, storable in an SQLite INTEGER.

    Raises:
        ValueError: The hash does not have 64 bits.
    """
    bits = np.asarray(h.hash, dtype=bool).ravel()
    if bits.size != _BITS:
        raise ValueError(f"expected a {_BITS}-bit hash, got {bits.size} bits")
    return int.from_bytes(np.packbits(bits).tobytes(), "big", signed=True)


def image_hash(rgb: np.ndarray) -> int:
    """Perceptual hash (imagehash ``dhash``, 64 bits) of one crop.

    About 47 us for a 94x24 crop and 115 us for 230x70 on one core of the development
    machine (``bench/bench_duplicates.py``); most of it is Pillow's Lanczos shrink.

    Args:
        rgb: An ``(H, W, 3)`` uint8 RGB array, as :func:`core.images.read_rgb` returns.

    Returns:
        The hash as a signed 64-bit int (see :func:`hash_to_int`).

    Raises:
        ValueError: ``rgb`` is not an ``(H, W, 3)`` uint8 array with H, W >= 1.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {type(rgb).__name__} {shape}")
    grey = Image.fromarray(rgb).convert("L")
    return hash_to_int(imagehash.dhash(grey, hash_size=HASH_SIZE))


def hamming_distance(a: int, b: int) -> int:
    """Number of differing bits between two hashes (signed or unsigned 64-bit ints)."""
    return ((a ^ b) & _MASK64).bit_count()


@dataclass(frozen=True)
class DuplicateGroup:
    """Crops that are (nearly) the same picture.

    Attributes:
        rels: The crops' relative paths, sorted.
        labels: Their labels, in the order of ``rels``.
    """

    rels: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def labels_differ(self) -> bool:
        """True when the crops do not all carry the same label (a certain label error)."""
        return len(set(self.labels)) > 1


def _chunks(m: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of ``m`` near-equal chunks covering the 64 bits."""
    widths = [_BITS // m + (1 if i < _BITS % m else 0) for i in range(m)]
    shifts = [sum(widths[:i]) for i in range(m)]
    return list(zip(shifts, widths))


def _plan(n: int, max_distance: int) -> tuple[int, int]:
    """Pick the number of chunks ``m`` and the per-chunk radius ``r`` (``m * (r + 1) > max_distance``).

    Minimises the expected work for ``n`` uniformly spread hashes: ``m`` tables, each
    probed at every flip pattern of at most ``r`` bits, each probe costing one lookup
    per hash plus the candidates it finds.
    """
    best: tuple[float, int, int] | None = None
    for r in range(4):
        m = -(-(max_distance + 1) // (r + 1))
        if m > _BITS:
            continue
        w_min, w_max = _BITS // m, -(-_BITS // m)
        probes = sum(math.comb(w_max, k) for k in range(r + 1))
        cost = m * probes * (n + n * n / 2.0**w_min)
        if best is None or cost < best[0]:
            best = (cost, m, r)
    assert best is not None
    return best[1], best[2]


def near_pairs(hashes: np.ndarray, max_distance: int = DEFAULT_MAX_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of hashes within ``max_distance`` bits, without comparing all pairs.

    Multi-index hashing: the bits are split into ``m`` chunks and, for every chunk,
    each hash is compared only with the hashes whose chunk differs from its own in at
    most ``r`` bits, where ``m * (r + 1) > max_distance`` guarantees that no close
    pair is missed. ``m`` and ``r`` are chosen by :func:`_plan`. Identical hashes are
    pairs too; a value repeated ``k`` times yields ``k * (k - 1) / 2`` pairs, so
    deduplicate first when there may be many copies (:func:`near_duplicate_groups` does).

    Args:
        hashes: 1-D int64 or uint64 array of 64-bit hashes.
        max_distance: Largest Hamming distance of a pair, 0 to 63.

    Returns:
        ``(i, j)``: index arrays (intp) with ``i < j``, each pair once, sorted by ``(i, j)``.

    Raises:
        ValueError: ``max_distance`` out of range or ``hashes`` not 1-D 64-bit integers.
    """
    if not 0 <= max_distance < _BITS:
        raise ValueError(f"max_distance must be in 0..{_BITS - 1}, got {max_distance}")
    h = np.asarray(hashes)
    if h.ndim != 1 or h.dtype not in (np.int64, np.uint64):
        raise ValueError(f"expected a 1-D int64/uint64 array, got {h.dtype} {h.shape}")
    u = h.view(np.uint64)
    n = u.size
    empty = np.empty(0, np.intp)
    if n < 2:
        return empty, empty
    m, r = _plan(n, max_distance)
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    for shift, width in _chunks(m):
        keys = ((u >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        if width <= _DENSE_BITS:
            starts = np.zeros((1 << width) + 1, np.int64)
            np.cumsum(np.bincount(keys, minlength=1 << width), out=starts[1:])
        else:
            sorted_keys = keys[order]
        for k in range(r + 1):
            for bits in itertools.combinations(range(width), k):
                flip = sum(1 << b for b in bits)
                if flip:
                    # each unordered pair differs by ``flip`` both ways: probe from the side
                    # whose highest flipped bit is 0, so it is found once
                    src = np.flatnonzero((keys & (1 << bits[-1])) == 0)
                    query = keys[src] ^ flip
                else:
                    src = np.arange(n)
                    query = keys
                if width <= _DENSE_BITS:
                    lo, hi = starts[query], starts[query + 1]
                else:
                    lo = np.searchsorted(sorted_keys, query, "left")
                    hi = np.searchsorted(sorted_keys, query, "right")
                _expand(u, order, src, lo, hi, max_distance, bool(flip), found_i, found_j)
    if not found_i:
        return empty, empty
    i = np.concatenate(found_i)
    j = np.concatenate(found_j)
    code = np.unique(i.astype(np.int64) * n + j)  # a pair close on several chunks is found several times
    return (code // n).astype(np.intp), (code % n).astype(np.intp)


def _expand(
    u: np.ndarray,
    order: np.ndarray,
    src: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_distance: int,
    flipped: bool,
    found_i: list[np.ndarray],
    found_j: list[np.ndarray],
) -> None:
    """Compare each ``src[q]`` with the bucket ``order[lo[q]:hi[q]]``; append the close pairs as (min, max)."""
    counts = hi - lo
    has = counts > 0
    src, lo, counts = src[has], lo[has], counts[has]
    if src.size == 0:
        return
    ends = np.cumsum(counts)
    a = 0
    while a < src.size:  # batches of about _BATCH candidates
        b = max(a + 1, int(np.searchsorted(ends, ends[a] - counts[a] + _BATCH, "right")))
        c = counts[a:b]
        first = ends[a:b] - c
        pos = np.arange(int(first[0]), int(ends[b - 1])) - np.repeat(first - lo[a:b], c)
        i = np.repeat(src[a:b], c)
        j = order[pos]
        keep = np.bitwise_count(u[i] ^ u[j]) <= max_distance
        if not flipped:
            keep &= i < j
        i, j = i[keep], j[keep]
        if i.size:
            found_i.append(np.minimum(i, j))
            found_j.append(np.maximum(i, j))
        a = b


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component root (smallest member index) of each of ``n`` nodes, given edges ``(i, j)``."""
    parent = np.arange(n)
    while i.size:
        ri, rj = parent[i], parent[j]
        live = ri != rj
        if not live.any():
            break
        i, j, ri, rj = i[live], j[live], ri[live], rj[live]
        np.minimum.at(parent, np.maximum(ri, rj), np.minimum(ri, rj))  # hook roots onto smaller roots
        while True:  # pointer jumping until every node points at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
    return parent


def near_duplicate_groups(
    items: Iterable[tuple[str, int | None, str]], max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[DuplicateGroup]:
    """Group crops whose hashes are within ``max_distance`` bits, transitively.

    Groups are connected components: if A is near B and B near C, A, B and C form
    one group even when A and C are further apart. Identical hashes are merged first,
    so thousands of copies of one picture cost no more than one. 200,000 crops take
    about 0.3 s at the default distance (``bench/bench_duplicates.py``).

    Args:
        items: ``(rel, hash, label)`` per crop; ``hash`` is :func:`image_hash`'s value
            (signed 64-bit) or None for a crop without one, which is ignored.
        max_distance: Largest Hamming distance that joins two crops, 0 to 63.

    Returns:
        Groups of two or more crops, each with its rels sorted, the groups sorted by
        their first rel.

    Raises:
        ValueError: A hash is outside the signed 64-bit range, or ``max_distance`` is
            out of range.
    """
    rels: list[str] = []
    values: list[int] = []
    labels: list[str] = []
    for rel, value, label in items:
        if value is None:
            continue
        rels.append(rel)
        values.append(value)
        labels.append(label)
    if not 0 <= max_distance < _BITS:
        raise ValueError(f"max_distance must be in 0..{_BITS - 1}, got {max_distance}")
    if len(values) < 2:
        return []
    try:
        hashes = np.array(values, dtype=np.int64)
    except OverflowError:
        bad = next(v for v in values if not -(1 << 63) <= v < 1 << 63)
        raise ValueError(f"hash {bad} is outside the signed 64-bit range (use image_hash's value)") from None
    unique, inverse = np.unique(hashes, return_inverse=True)
    i, j = near_pairs(unique, max_distance) if max_distance else (np.empty(0, np.intp),) * 2
    # only the unique hashes that have a neighbour take part in the union
    nodes = np.unique(np.concatenate([i, j]))
    root_of_unique = np.arange(unique.size)
    if nodes.size:
        roots = _components(nodes.size, np.searchsorted(nodes, i), np.searchsorted(nodes, j))
        root_of_unique[nodes] = nodes[roots]
    root = root_of_unique[inverse.ravel()]
    sizes = np.bincount(root, minlength=unique.size)
    members: dict[int, list[int]] = {}
    for k in np.flatnonzero(sizes[root] >= 2).tolist():
        members.setdefault(int(root[k]), []).append(k)
    groups = []
    for ks in members.values():
        ks.sort(key=rels.__getitem__)
        groups.append(DuplicateGroup(tuple(rels[k] for k in ks), tuple(labels[k] for k in ks)))
    groups.sort(key=lambda g: g.rels)
    return groups


def flag_label_conflicts(groups: Iterable[DuplicateGroup]) -> dict[str, int]:
    """Number the groups whose labels differ and map each of their rels to its group's id.

    Args:
        groups: Groups as :func:`near_duplicate_groups` returns them.

    Returns:
        ``{rel: group id}`` for every rel of every group with differing labels; ids
        are 0, 1, 2, ... in the order of the groups' first (smallest) rel.
    """
    conflicting = sorted((g for g in groups if g.labels_differ), key=lambda g: min(g.rels))
    return {rel: gid for gid, g in enumerate(conflicting) for rel in g.rels}
