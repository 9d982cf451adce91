"""Near-duplicate crops by perceptual hash (core.duplicates)."""

from __future__ import annotations

import time

import cv2
import imagehash
import numpy as np
import pytest

from core.duplicates import (
    DEFAULT_MAX_DISTANCE,
    DuplicateGroup,
    flag_label_conflicts,
    hamming_distance,
    hash_to_int,
    image_hash,
    near_duplicate_groups,
    near_pairs,
)
from core.images import read_rgb, to_rgb8

from ._util import REAL as REAL_CROPS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _real(n: int | None = None) -> list:
    files = sorted(REAL_CROPS.glob("*.jpg"))
    return files[:n] if n else files


def _label(path) -> str:
    return path.stem.split("-", 1)[1]


def _jpeg(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return to_rgb8(cv2.imdecode(buf, cv2.IMREAD_COLOR))


def _flip(value: int, bits) -> int:
    """``value`` with the given bit positions flipped, kept in the signed 64-bit range."""
    u = value & (2**64 - 1)
    for b in bits:
        u ^= 1 << int(b)
    return u - 2**64 if u >= 2**63 else u


# --------------------------------------------------------------------------- the hash


def test_image_hash_is_a_deterministic_signed_int64():
    values = [image_hash(read_rgb(p)) for p in _real()]
    assert all(isinstance(v, int) and INT64_MIN <= v <= INT64_MAX for v in values)
    assert any(v < 0 for v in values) and any(v > 0 for v in values)  # the top bit is used, stored signed
    rgb = read_rgb(_real(1)[0])
    assert image_hash(rgb) == image_hash(rgb.copy()) == values[0]
    assert image_hash(np.ascontiguousarray(rgb[:, ::-1])[:, ::-1]) == values[0]  # strided views are fine


def test_hash_is_imagehash_dhash_as_twos_complement():
    rgb = read_rgb(_real(1)[0])
    from PIL import Image

    h = imagehash.dhash(Image.fromarray(rgb), hash_size=8)
    unsigned = int(str(h), 16)
    assert image_hash(rgb) == (unsigned - 2**64 if unsigned >= 2**63 else unsigned)
    ones = imagehash.ImageHash(np.ones((8, 8), bool))
    top = imagehash.ImageHash(np.eye(1, 64, 0, dtype=bool).reshape(8, 8))
    assert hash_to_int(ones) == -1
    assert hash_to_int(top) == INT64_MIN
    with pytest.raises(ValueError, match="64-bit"):
        hash_to_int(imagehash.ImageHash(np.ones((4, 4), bool)))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((24, 94), np.uint8),
        np.zeros((24, 94, 3), np.float32),
        np.zeros((24, 94, 4), np.uint8),
        np.zeros((0, 94, 3), np.uint8),
    ],
)
def test_image_hash_rejects_what_is_not_rgb8(bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_hash(bad)


def test_hamming_distance_ignores_the_sign():
    assert hamming_distance(-1, INT64_MAX) == 1
    assert hamming_distance(-1, 0) == 64
    assert hamming_distance(INT64_MIN, 0) == 1
    assert hamming_distance(2**64 - 1, -1) == 0  # unsigned and signed spelling of one hash


# --------------------------------------------------------------------------- on real crops


def test_re_encoded_resized_and_shifted_copies_group_with_their_crop():
    items = []
    files = _real(20)
    for k, p in enumerate(files):
        rgb = read_rgb(p)
        items += [
            (p.name, image_hash(rgb), _label(p)),
            (f"copy/{k:02d}-jpeg75.jpg", image_hash(_jpeg(rgb)), "WRONG"),
            (
                f"copy/{k:02d}-resized.jpg",
                image_hash(cv2.resize(rgb, (85, 22), interpolation=cv2.INTER_AREA)),
                _label(p),
            ),
        ]
    rgb = read_rgb(files[0])
    items.append(("copy/00-shifted.jpg", image_hash(_jpeg(rgb[:, 1:-1])), "ALSO WRONG"))  # 1 px off each side

    groups = near_duplicate_groups(items)

    assert len(groups) == 20
    by_first = {g.rels[0]: g for g in groups}  # "0000-..." sorts before "copy/..."
    for k, p in enumerate(files):
        g = by_first[p.name]
        want = {p.name, f"copy/{k:02d}-jpeg75.jpg", f"copy/{k:02d}-resized.jpg"} | (
            {"copy/00-shifted.jpg"} if k == 0 else set()
        )
        assert set(g.rels) == want
        assert g.labels_differ
    conflicts = flag_label_conflicts(groups)
    assert len(conflicts) == 61 and sorted(set(conflicts.values())) == list(range(20))


def test_different_real_crops_never_group():
    files = _real()
    assert len(files) == 600
    items = [(p.name, image_hash(read_rgb(p)), _label(p)) for p in files]
    assert near_duplicate_groups(items) == []
    # and the nearest pair of different plates is well above the threshold
    h = np.array([v for _, v, _ in items], np.int64).view(np.uint64)
    nearest = min(int(np.bitwise_count(h[k] ^ h[k + 1 :]).min()) for k in range(h.size - 1))
    assert nearest > DEFAULT_MAX_DISTANCE + 2


# --------------------------------------------------------------------------- grouping


def test_labels_differ():
    assert not DuplicateGroup(("a", "b"), ("皖A12345", "皖A12345")).labels_differ
    assert DuplicateGroup(("a", "b"), ("皖A12345", "皖A12346")).labels_differ
    assert DuplicateGroup(("a", "b", "c"), ("X", "X", "Y")).labels_differ


def test_groups_and_conflict_ids_are_sorted_and_stable():
    base = 0x0123_4567_89AB_CDEF
    other = _flip(base, range(0, 64, 2))  # 32 bits away from base
    third = _flip(base, range(1, 64, 2))
    items = [
        ("z/2.jpg", base, "A"),
        ("b/2.jpg", _flip(other, [5]), "Q"),
        ("z/1.jpg", _flip(base, [3, 40]), "B"),
        ("b/1.jpg", other, "P"),
        ("c/1.jpg", third, "S"),
        ("c/2.jpg", _flip(third, [63]), "S"),
        ("lonely.jpg", _flip(base, range(0, 64, 3)), "A"),
    ]
    groups = near_duplicate_groups(items)
    assert groups == [
        DuplicateGroup(("b/1.jpg", "b/2.jpg"), ("P", "Q")),
        DuplicateGroup(("c/1.jpg", "c/2.jpg"), ("S", "S")),
        DuplicateGroup(("z/1.jpg", "z/2.jpg"), ("B", "A")),
    ]
    assert flag_label_conflicts(groups) == {"b/1.jpg": 0, "b/2.jpg": 0, "z/1.jpg": 1, "z/2.jpg": 1}
    assert flag_label_conflicts(reversed(groups)) == flag_label_conflicts(groups)
    # ids follow the first rel, not the last
    late = DuplicateGroup(("a/1.jpg", "z/9.jpg"), ("A", "B"))
    assert flag_label_conflicts([groups[0], late]) == {"a/1.jpg": 0, "z/9.jpg": 0, "b/1.jpg": 1, "b/2.jpg": 1}
    assert near_duplicate_groups(reversed(items)) == groups


def test_groups_are_connected_components():
    a = 0
    b = _flip(a, range(4))  # a-b: 4 bits
    c = _flip(b, range(4, 8))  # b-c: 4 bits, a-c: 8 bits
    groups = near_duplicate_groups([("a", a, "X"), ("c", c, "X"), ("b", b, "Y")], max_distance=4)
    assert groups == [DuplicateGroup(("a", "b", "c"), ("X", "Y", "X"))]
    assert near_duplicate_groups([("a", a, "X"), ("c", c, "X")], max_distance=4) == []
    assert near_duplicate_groups([("a", a, "X"), ("b", b, "Y")], max_distance=3) == []


def test_a_long_chain_is_one_group():
    rng = np.random.default_rng(3)
    values = [int(rng.integers(INT64_MIN, INT64_MAX))]
    for _ in range(399):  # each hash 3 bits from the previous one, mostly 5-6 from the one before that
        values.append(_flip(values[-1], rng.choice(64, size=3, replace=False)))
    order = rng.permutation(len(values))
    items = [(f"{k:03d}", values[k], "A") for k in order]
    groups = near_duplicate_groups(items, max_distance=3)
    assert [g.rels for g in groups] == [tuple(f"{k:03d}" for k in range(len(values)))]


def test_groups_match_a_reference_union_find():
    rng = np.random.default_rng(7)
    centres = rng.integers(INT64_MIN, INT64_MAX, size=30, dtype=np.int64, endpoint=True).view(np.uint64)
    u = centres[rng.integers(0, 30, 1500)]
    for _ in range(5):  # about 5 random bits off the centre: chains, stars and loose ends
        u = u ^ (np.uint64(1) << rng.integers(0, 64, u.size).astype(np.uint64))
    items = [(f"{k:04d}", int(v), str(k % 3)) for k, v in enumerate(u.view(np.int64))]
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    d = np.bitwise_count(u[:, None] ^ u[None, :])
    for a, b in zip(*np.nonzero(np.triu(d <= DEFAULT_MAX_DISTANCE, 1))):
        parent[find(int(a))] = find(int(b))
    members: dict[int, list[str]] = {}
    for k, (rel, _, _) in enumerate(items):
        members.setdefault(find(k), []).append(rel)
    want = sorted(tuple(sorted(m)) for m in members.values() if len(m) > 1)
    assert 20 < len(want) and max(map(len, want)) > 5
    assert [g.rels for g in near_duplicate_groups(items)] == want


def test_none_hashes_are_ignored():
    assert near_duplicate_groups([("a", None, "X"), ("b", None, "Y")]) == []
    items = [("a", None, "X"), ("b", 7, "X"), ("c", None, "Y"), ("d", 7, "Z"), ("e", None, "Z")]
    assert near_duplicate_groups(items) == [DuplicateGroup(("b", "d"), ("X", "Z"))]
    assert near_duplicate_groups([]) == []
    assert near_duplicate_groups([("a", 1, "X")]) == []


def test_signed_int64_extremes_and_range_check():
    items = [("min", INT64_MIN, "A"), ("zero", 0, "B"), ("max", INT64_MAX, "C"), ("minus1", -1, "D")]
    # INT64_MIN and 0 differ only in the top bit, as do INT64_MAX and -1
    assert near_duplicate_groups(items, max_distance=1) == [
        DuplicateGroup(("max", "minus1"), ("C", "D")),
        DuplicateGroup(("min", "zero"), ("A", "B")),
    ]
    with pytest.raises(ValueError, match="signed 64-bit"):
        near_duplicate_groups([("a", 2**63, "A"), ("b", 0, "B")])
    for bad in (-1, 64):
        with pytest.raises(ValueError, match="max_distance"):
            near_duplicate_groups([("a", 1, "A"), ("b", 0, "B")], max_distance=bad)


def test_many_copies_of_one_picture_are_one_group():
    items = [(f"{k:05d}.jpg", 12345, "A" if k else "B") for k in range(20000)]
    t0 = time.perf_counter()
    groups = near_duplicate_groups(items)
    assert time.perf_counter() - t0 < 2.0
    assert len(groups) == 1 and len(groups[0].rels) == 20000 and groups[0].labels_differ


@pytest.mark.parametrize("max_distance", [0, 1, 2, 3, 4, 5, 6, 8, 11, 17])
def test_near_pairs_matches_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    for n in (2, 50, 700):
        # clusters of hashes a few bits apart, so that there are pairs at every distance
        centres = rng.integers(INT64_MIN, INT64_MAX, size=8, dtype=np.int64, endpoint=True).view(np.uint64)
        u = centres[rng.integers(0, 8, n)]
        flips = rng.integers(0, 64, size=(n, max_distance + 3))
        for c in range(flips.shape[1]):
            u = u ^ (np.uint64(1) << flips[:, c].astype(np.uint64))
        u[: n // 10] = u[n // 10 : 2 * (n // 10)]  # some identical hashes too
        i, j = near_pairs(u.view(np.int64), max_distance)
        d = np.bitwise_count(u[:, None] ^ u[None, :])
        bi, bj = np.nonzero(np.triu(d <= max_distance, 1))
        assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_scale_200k_hashes_finds_exactly_the_planted_pairs():
    rng = np.random.default_rng(2024)
    n = 200_000
    values = rng.integers(INT64_MIN, INT64_MAX, size=n, dtype=np.int64, endpoint=True).tolist()
    chosen = rng.choice(n, size=800, replace=False).tolist()
    pairs = list(zip(chosen[0:600:2], chosen[1:600:2]))  # 300 planted pairs, 1..max_distance bits apart
    for k, (a, b) in enumerate(pairs):
        values[b] = _flip(values[a], rng.choice(64, size=1 + k % DEFAULT_MAX_DISTANCE, replace=False))
    for a in chosen[600:799]:  # 199 copies just out of reach of their original
        values.append(_flip(values[a], rng.choice(64, size=DEFAULT_MAX_DISTANCE + 1, replace=False)))
    items = [(f"{k:06d}.jpg", v, "A") for k, v in enumerate(values)]
    a, b = pairs[0]
    items[b] = (items[b][0], None, "A")  # a crop without a hash breaks its pair

    t0 = time.perf_counter()
    groups = near_duplicate_groups(items)
    elapsed = time.perf_counter() - t0

    assert {g.rels for g in groups} == {
        (f"{a:06d}.jpg", f"{b:06d}.jpg") if a < b else (f"{b:06d}.jpg", f"{a:06d}.jpg") for a, b in pairs[1:]
    }
    assert elapsed < 5.0, f"{elapsed:.1f} s for {len(items):,} hashes"
