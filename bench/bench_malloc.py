"""CPU training with glibc's malloc defaults against ``core.malloc.retain_freed_memory``, in one run.

Run:  python bench/bench_malloc.py [--rounds 2] [--steps 30]

The setting is process-wide and cannot be undone, so every figure comes from a fresh child
process, started with ``PLATE_REVIEW_MALLOC_DEFAULTS=1`` (glibc's defaults) or without it
(what ``core.train`` does), the two alternating round by round so that background load
hits both alike. The median round is reported, with the ratio. Measured:

* render: ms per synthetic plate as the bundled recipe draws them (``SynthDataset``, Noto
  glyphs), in the process itself;
* Train panel: ``lstm-fast`` fine-tuning on the real crops as ``plate-review train`` and the
  Train panel run it (no DataLoader worker, 2 torch threads), images/s after warm-up;
* recipe pretrain: ``lstm-fast`` on synthetic plates rendered by one DataLoader worker with
  one torch thread (``scripts/train_default.py``'s default on 2 cores), images/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = {"render": "render, ms/plate (lower is better)", "panel": "Train panel, images/s",
         "pretrain": "recipe pretrain stream, images/s"}  # fmt: skip


def child(kind: str, steps: int, warmup: int = 3) -> float:
    from core.malloc import retain_freed_memory

    retain_freed_memory()  # a no-op under PLATE_REVIEW_MALLOC_DEFAULTS=1
    import torch

    from core.synth import SynthDataset

    if kind == "render":
        ds = SynthDataset(10**6, seed=2, latin_fonts=False)
        for i in range(50):
            ds.sample(i)
        t = time.perf_counter()
        for i in range(50, 1050):
            ds.sample(i)
        return time.perf_counter() - t  # s per 1,000 plates = ms per plate

    from core.dataset import scan_folder
    from core.train import TrainConfig, train

    if kind == "panel":
        data, workers, threads = [(s.file, s.label) for s in scan_folder(ROOT / "data" / "plates_real")], 0, 2
    else:
        data, workers, threads = SynthDataset(10**6, seed=2, latin_fonts=False), 1, 1
    torch.set_num_threads(threads)
    times: list[float] = []
    cfg = TrainConfig(arch="lstm-fast", epochs=100, batch_size=64, max_steps=steps + warmup, workers=workers,
                      val_split=0.0, device="cpu", seed=0)  # fmt: skip
    train(cfg, data, on_step=lambda s: times.append(time.perf_counter()))
    return (len(times) - warmup) * 64 / (times[-1] - times[warmup - 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--child", choices=sorted(KINDS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(child(args.child, args.steps))
        return 0

    from bench.bench_predict import cpu_name

    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; load {os.getloadavg()}")
    settings = {"glibc defaults": {"PLATE_REVIEW_MALLOC_DEFAULTS": "1"}, "retained (core.malloc)": {}}
    results: dict[tuple[str, str], list[float]] = {}
    for kind in KINDS:
        for _ in range(args.rounds):
            for name, extra in settings.items():
                env = {k: v for k, v in os.environ.items() if k != "PLATE_REVIEW_MALLOC_DEFAULTS"} | extra
                out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(args.steps)],
                                     env=env, capture_output=True, text=True, check=True)  # fmt: skip
                results.setdefault((kind, name), []).append(float(out.stdout.split()[-1]))
    print("\n| measure | glibc defaults | retained | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for kind, label in KINDS.items():
        a, b = (statistics.median(results[(kind, n)]) for n in settings)
        ratio = a / b if kind == "render" else b / a
        print(f"| {label} | {a:.3f} | {b:.3f} | {ratio:.2f}x |", flush=True)
    print(f"\nload after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
