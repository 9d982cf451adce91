"""Measure near-duplicate detection: which perceptual hash, which threshold, how fast.

Usage: python bench/bench_duplicates.py [--synthetic 20000] [--items 200000]

1. Hashes the 600 real crops of data/plates_real (all different plates) with imagehash's
   average hash, dhash and pHash (``hash_size=8``, 64 bits) and prints, for each:
   the Hamming distances between all pairs of *different* crops (percentiles, and how
   many pairs fall within each threshold: false matches), and the distance between each
   crop and light variants of itself (JPEG 75, resize, brightness/contrast, blur: the
   "photometric" variants; 1-2 px border crops and shifts: the "geometric" ones), as the
   share caught at each threshold (recall).
2. ``--synthetic N``: false matches among N synthetic plates (``core.synth``, the look
   matched to the real crops, 94x24) for rates too small to see in 600 crops, and what
   they extrapolate to for a folder of ``--items`` crops. 0 skips it.
3. Speed: ``core.duplicates.image_hash`` per crop (94x24 and 230x70), and
   ``near_duplicate_groups`` on ``--items`` random hashes with planted near pairs.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.duplicates import (  # noqa: E402
    DEFAULT_MAX_DISTANCE,
    hash_to_int,
    image_hash,
    near_duplicate_groups,
)
from core.images import read_rgb  # noqa: E402

REAL = Path(__file__).resolve().parents[1] / "data" / "plates_real"
THRESHOLDS = range(0, 13)

HASHES: dict[str, Callable[[np.ndarray], int]] = {
    "ahash": lambda rgb: hash_to_int(imagehash.average_hash(Image.fromarray(rgb).convert("L"))),
    "dhash": image_hash,  # what core.duplicates uses
    "phash": lambda rgb: hash_to_int(imagehash.phash(Image.fromarray(rgb).convert("L"))),
}


def _jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _crop(im: Image.Image, left: int, top: int, right: int, bottom: int) -> Image.Image:
    w, h = im.size
    return im.crop((left, top, w - right, h - bottom))


def _resize(im: Image.Image, f: float) -> Image.Image:
    w, h = im.size
    return im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)


PHOTOMETRIC: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg q75": _jpeg,
    "resize 95%": lambda im: _resize(im, 0.95),
    "resize 90%": lambda im: _resize(im, 0.90),
    "resize 110%": lambda im: _resize(im, 1.10),
    "brightness +10%": lambda im: ImageEnhance.Brightness(im).enhance(1.10),
    "brightness -10%": lambda im: ImageEnhance.Brightness(im).enhance(0.90),
    "contrast -10%": lambda im: ImageEnhance.Contrast(im).enhance(0.90),
    "blur r=0.6": lambda im: im.filter(ImageFilter.GaussianBlur(0.6)),
    "blur r=1.0": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
}
GEOMETRIC: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 1px left+right": lambda im: _crop(im, 1, 0, 1, 0),
    "crop 1px top+bottom": lambda im: _crop(im, 0, 1, 0, 1),
    "crop 1px all sides": lambda im: _crop(im, 1, 1, 1, 1),
    "shift 1px (crop left+top)": lambda im: _crop(im, 1, 1, 0, 0),
    "crop 2px all sides": lambda im: _crop(im, 2, 2, 2, 2),
    "shift 2px (crop left+top)": lambda im: _crop(im, 2, 2, 0, 0),
    "crop 1px + jpeg q75 + bright +5%": lambda im: _jpeg(ImageEnhance.Brightness(_crop(im, 1, 1, 1, 1)).enhance(1.05)),
}


def _popcount_pairs(h: np.ndarray) -> np.ndarray:
    """Histogram (65 bins) of the Hamming distances of all pairs i < j."""
    u = h.view(np.uint64)
    hist = np.zeros(65, np.int64)
    for k in range(u.size - 1):
        hist += np.bincount(np.bitwise_count(u[k] ^ u[k + 1 :]), minlength=65)
    return hist


def _percentiles(hist: np.ndarray, qs: tuple[float, ...]) -> list[int]:
    """Distance at each percentile ``q`` of the pairs (q=0: the smallest distance)."""
    cum = np.cumsum(hist)
    return [int(np.searchsorted(cum, max(1, math.ceil(q / 100 * cum[-1])), "left")) for q in qs]


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def real_crops(images: list[np.ndarray]) -> None:
    pils = [Image.fromarray(rgb) for rgb in images]
    n = len(images)
    pairs = n * (n - 1) // 2
    print(f"\n## Real crops: {n} crops (all different plates), {pairs:,} pairs of different crops")
    sizes = {rgb.shape[:2] for rgb in images}
    print(f"crop sizes (h, w): {sorted(sizes)[:5]}{' ...' if len(sizes) > 5 else ''}")
    qs = (0, 0.01, 0.1, 1, 5, 50)
    recall_tables = {}
    print("\n### Distances between different crops (false matches)\n")
    print(_row(["hash"] + [f"p{q:g}" if q else "min" for q in qs] + [f"<= {t}" for t in THRESHOLDS]))
    print(_row(["---"] * (1 + len(qs) + len(THRESHOLDS))))
    for name, fn in HASHES.items():
        base = np.array([fn(rgb) for rgb in images], np.int64)
        hist = _popcount_pairs(base)
        cum = np.cumsum(hist)
        print(_row([name] + _percentiles(hist, qs) + [int(cum[t]) for t in THRESHOLDS]))
        dist = {}
        for vname, vf in {**PHOTOMETRIC, **GEOMETRIC}.items():
            vh = np.array([fn(np.asarray(vf(im))) for im in pils], np.int64)
            dist[vname] = np.bitwise_count((vh ^ base).view(np.uint64))
        recall_tables[name] = dist
    print("\n### Variants of a crop caught (recall, % of 600) at each threshold\n")
    print(_row(["hash", "variants"] + [f"<= {t}" for t in THRESHOLDS]))
    print(_row(["---"] * (2 + len(THRESHOLDS))))
    for name, dist in recall_tables.items():
        for group, names in (("photometric (9)", PHOTOMETRIC), ("geometric (7)", GEOMETRIC)):
            d = np.concatenate([dist[v] for v in names])
            print(_row([name, group] + [f"{100 * np.mean(d <= t):.1f}" for t in THRESHOLDS]))
    for name, dist in recall_tables.items():
        print(f"\n### {name}: each variant, median / p95 / max distance and recall at <= 2, 4, 6, 8\n")
        print(_row(["variant", "median", "p95", "max", "<= 2", "<= 4", "<= 6", "<= 8"]))
        print(_row(["---"] * 8))
        for vname, d in dist.items():
            p50, p95 = np.percentile(d, [50, 95], method="higher")
            rec = [f"{100 * np.mean(d <= t):.1f}" for t in (2, 4, 6, 8)]
            print(_row([vname, f"{p50:g}", f"{p95:g}", int(d.max())] + rec))


def synthetic(n: int, items: int) -> None:
    from core import synth

    t0 = time.perf_counter()
    images = [synth.render_plate(synth.label_for(i, 7), i, size=(24, 94), look=synth.MATCHED) for i in range(n)]
    pairs = n * (n - 1) // 2
    target = items * (items - 1) // 2
    print(
        f"\n## Synthetic plates: {n:,} (core.synth, MATCHED look, 94x24; rendered in "
        f"{time.perf_counter() - t0:.0f} s), {pairs:,} pairs of different plates\n"
    )
    print("False matches at each threshold; the rate per pair and what it gives for all pairs of")
    print(f"{items:,} crops ({target:.2e} pairs) if those were plates like these.\n")
    print(_row(["hash", "threshold", "pairs", "rate per pair", f"expected among {items:,} crops"]))
    print(_row(["---"] * 5))
    for name, fn in HASHES.items():
        cum = np.cumsum(_popcount_pairs(np.array([fn(rgb) for rgb in images], np.int64)))
        for t in range(0, 9):
            rate = cum[t] / pairs
            bound = "" if cum[t] else f" (< {3 / pairs:.1e}, rule of three)"
            print(_row([name, f"<= {t}", int(cum[t]), f"{rate:.1e}{bound}", f"{rate * target:,.0f}"]))


def _best_us(fn: Callable[[np.ndarray], int], images: list[np.ndarray], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for rgb in images:
            fn(rgb)
        best = min(best, (time.perf_counter() - t0) / len(images))
    return best * 1e6


def speed(images: list[np.ndarray], items: int) -> None:
    print("\n## Speed\n")
    big = [np.asarray(Image.fromarray(rgb).resize((230, 70), Image.Resampling.BILINEAR)) for rgb in images]
    print(_row(["hash", "us per 94x24 crop", "us per 230x70 crop"]))
    print(_row(["---"] * 3))
    for name, fn in HASHES.items():
        print(
            _row(
                [
                    name + (" (image_hash)" if fn is image_hash else ""),
                    f"{_best_us(fn, images):.1f}",
                    f"{_best_us(fn, big):.1f}",
                ]
            )
        )

    rng = np.random.default_rng(0)
    planted = 1000
    print(
        f"\nnear_duplicate_groups on {items:,} random hashes, {planted // 2} of them copied max_distance bits away:\n"
    )
    print(_row(["max_distance", "seconds (best of 3)", "groups", "planted pairs found"]))
    print(_row(["---"] * 4))
    for d in sorted({2, DEFAULT_MAX_DISTANCE, 6, 8}):
        base = rng.integers(-(2**63), 2**63 - 1, size=items, dtype=np.int64, endpoint=True)
        u = base.view(np.uint64)
        for k in range(planted // 2):  # item 2k+1 is item 2k with d random bits flipped
            bits = rng.choice(64, size=d, replace=False)
            u[2 * k + 1] = u[2 * k] ^ np.uint64(sum(1 << int(b) for b in bits))
        rows = [(f"{i:07d}.jpg", int(v), "A" if i % 2 else "B") for i, v in enumerate(base.tolist())]
        best, groups = float("inf"), []
        for _ in range(3):
            t0 = time.perf_counter()
            groups = near_duplicate_groups(rows, max_distance=d)
            best = min(best, time.perf_counter() - t0)
        want = {(f"{2 * k:07d}.jpg", f"{2 * k + 1:07d}.jpg") for k in range(planted // 2)}
        found = sum(1 for g in groups if g.rels in want)
        print(_row([d, f"{best:.2f}", len(groups), f"{found} of {planted // 2}"]))


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=20000, help="synthetic plates for the false-match tail (0: skip)")
    ap.add_argument("--items", type=int, default=200000, help="crops in the folder being modelled")
    args = ap.parse_args(argv)
    print(
        f"# bench_duplicates: {_cpu()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, imagehash {imagehash.__version__}, "
        f"Pillow {Image.__version__}; DEFAULT_MAX_DISTANCE = {DEFAULT_MAX_DISTANCE}"
    )
    images = [read_rgb(p) for p in sorted(REAL.glob("*.jpg"))]
    real_crops(images)
    if args.synthetic:
        synthetic(args.synthetic, args.items)
    speed(images, args.items)


if __name__ == "__main__":
    main()
