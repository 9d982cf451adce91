"""How the synthetic plates compare with the real crops in contrast and sharpness.

    python scripts/synth_vs_real.py [--look harsh|matched] [-n 600]

Prints the 5/10/50/90 % quantiles of :func:`core.synth.look_stats` (grey-level contrast,
contrast-normalised Laplacian sharpness, character and plate grey) over the real
training and validation crops (never the held-out ones) and over ``n`` synthetic plates
of the held-out synthetic seed, plus the share of synthetic plates blurrier or flatter
than the 5th percentile of the real crops. This is what :data:`core.synth.MATCHED` was
calibrated with (docs/MODEL.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.images import read_rgb  # noqa: E402
from core.recipe import LOOKS, real_split  # noqa: E402
from core.synth import Look, SynthDataset, look_stats  # noqa: E402

NAMES = ("contrast", "sharpness", "white", "blue")


def real_stats() -> np.ndarray:
    train, val, _ = real_split()
    return np.array([look_stats(read_rgb(p)) for p, _ in train + val])


def synth_stats(look: Look, n: int, seed: int = 424242) -> np.ndarray:
    ds = SynthDataset(n, seed=seed, latin_fonts=False, look=look)
    return np.array([look_stats(ds.sample(i)[0]) for i in range(n)])


def report(real: np.ndarray, synth: np.ndarray, name: str) -> str:
    q = (5, 10, 50, 90)
    lines = [f"| statistic | real (n={len(real)}) | synthetic {name} (n={len(synth)}) |", "|---|---|---|"]
    for j, stat in enumerate(NAMES):
        fmt = "{:.3f}" if stat == "sharpness" else "{:.0f}"
        r = " / ".join(fmt.format(v) for v in np.percentile(real[:, j], q))
        s = " / ".join(fmt.format(v) for v in np.percentile(synth[:, j], q))
        lines.append(f"| {stat} (5/10/50/90 %) | {r} | {s} |")
    for j in (0, 1):
        share = (synth[:, j] < np.percentile(real[:, j], 5)).mean()
        lines.append(f"| synthetic below the real 5 % of {NAMES[j]} | 5 % | {share:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--look", choices=sorted(LOOKS), default="matched")
    ap.add_argument("-n", type=int, default=600)
    args = ap.parse_args(argv)
    print(report(real_stats(), synth_stats(LOOKS[args.look], args.n), args.look))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
