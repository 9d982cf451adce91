"""Training throughput: images/s of core.train.train on the bundled real crops.

Run:  python bench/bench_train.py [--steps 20] [--threads 2] [--batch-size 64]

Measures every architecture with the notebook's augmentations (+ extras) and data
loading in the loop (workers=0 and workers=1), as `plate-review train` runs it.
The first steps are excluded (warm-up). Then, per architecture, the cancel latency: the
time from the stop flag being set (mid-run, as the Train panel's Cancel button does) to
``train`` returning with its checkpoint written (the requirement is < 2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import torch

    from bench.bench_predict import cpu_name
    from core.data import scan_folder
    from core.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    items = [(s.file, s.label) for s in scan_folder(ROOT / "data" / "plates_real")]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch threads={args.threads}; load {os.getloadavg()}")
    print("| arch | workers | batch | images/s (after warm-up) |")
    print("| --- | ---: | ---: | ---: |")
    for arch in ("lstm", "lstm-fast", "simple"):
        for workers in (0, 1):
            times: list[float] = []

            def on_step(s, times=times):
                times.append(time.perf_counter())

            cfg = TrainConfig(arch=arch, epochs=100, batch_size=args.batch_size, max_steps=args.steps,
                              workers=workers, val_split=0.0, device="cpu")  # fmt: skip
            train(cfg, items, on_step=on_step)
            span = times[-1] - times[args.warmup - 1]
            ips = (len(times) - args.warmup) * args.batch_size / span
            print(f"| {arch} | {workers} | {args.batch_size} | {ips:.1f} |", flush=True)

    print("\n| arch | batch | cancel -> checkpoint written, s (median of 3) |")
    print("| --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("lstm", "lstm-fast", "simple"):
            waits: list[float] = []
            for _ in range(3):
                flag: dict[str, float] = {}

                def on_step(s, flag=flag):
                    if s.step == args.warmup and "t" not in flag:
                        flag["t"] = time.perf_counter()

                cfg = TrainConfig(arch=arch, epochs=100, batch_size=args.batch_size, workers=0,
                                  val_split=0.0, device="cpu")  # fmt: skip
                res = train(cfg, items, out=Path(tmp) / "c.pt", on_step=on_step, should_stop=lambda f=flag: "t" in f)
                waits.append(time.perf_counter() - flag["t"])
                assert res.stopped
            print(f"| {arch} | {args.batch_size} | {statistics.median(waits):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
