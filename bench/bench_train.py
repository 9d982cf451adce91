"""Training throughput: images/s of core.train.train on the bundled real crops.

Run:  python bench/bench_train.py [--steps 20] [--threads 2] [--batch-size 64]

Measures every architecture with the notebook's augmentations (+ extras) and data
loading in the loop (workers=0 and workers=1), as `plate-review train` runs it, in three
CPU modes: float32 in the standard NCHW layout (PyTorch's default), float32 NHWC,
and NHWC with bf16 autocast (what ``core.train`` does on a CPU with native bf16;
skipped where :func:`core.train.cpu_bf16` is false). Then the same for the bundled
recipe's mixed-stage data (real crops, spliced and synthetic plates: rendering costs as
much as the model there), including one render worker with one torch thread. The first
steps are excluded (warm-up). Then, per architecture, the cancel latency: the time from
the stop flag being set (mid-run, as the Train panel's Cancel button does) to ``train``
returning with its checkpoint written (the requirement is < 2 s).
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
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import torch
    from torch.utils.data import ConcatDataset

    import core.train as core_train
    from bench.bench_predict import cpu_name
    from core.data import PlateDataset, train_augmentations
    from core.dataset import scan_folder
    from core.synth import SpliceDataset, SynthDataset
    from core.train import TrainConfig, cpu_bf16, train

    items = [(s.file, s.label) for s in scan_folder(ROOT / "data" / "plates_real")]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; native bf16: {cpu_bf16()}; load {os.getloadavg()}")
    modes = [("float32 NCHW", False, False), ("float32 NHWC", True, False)]
    if cpu_bf16():
        modes.append(("bf16 autocast NHWC (the default)", True, True))

    def measure(arch: str, data, workers: int, threads: int, nhwc: bool, amp: bool) -> float:
        torch.set_num_threads(threads)
        core_train.NHWC_ON_CPU = nhwc
        times: list[float] = []
        cfg = TrainConfig(arch=arch, epochs=100, batch_size=args.batch_size, max_steps=args.steps + args.warmup,
                          workers=workers, val_split=0.0, device="cpu", amp=amp, seed=0)  # fmt: skip
        train(cfg, data, on_step=lambda s: times.append(time.perf_counter()))
        core_train.NHWC_ON_CPU = True
        return (len(times) - args.warmup) * args.batch_size / (times[-1] - times[args.warmup - 1])

    print("\nReal crops with augmentations (plate-review train, the Train panel):\n")
    print("| arch | mode | workers | threads | images/s (after warm-up) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for arch in ("lstm", "lstm-fast", "simple"):
        for mode, nhwc, amp in modes:
            for workers in (0, 1):
                ips = measure(arch, items, workers, args.threads, nhwc, amp)
                print(f"| {arch} | {mode} | {workers} | {args.threads} | {ips:.1f} |", flush=True)

    # Like the mixed stage of the default recipe (core.recipe; real x 12 : spliced : synthetic = 23 : 39 : 39 %),
    # with a little more rendering: 12 : 44 : 44 % here (1,600 : 6,000 : 6,000).
    real = items[: len(items) * 2 // 3]
    aug = train_augmentations(1.0, seed=1)
    mixed = ConcatDataset([PlateDataset(real * 4, augment=aug),
                           SpliceDataset(real, 6000, seed=3, augment=aug, p_letter=0.5),
                           SynthDataset(6000, seed=2, latin_fonts=False)])  # fmt: skip
    print("\nThe bundled recipe's mixed-stage data (real + spliced + synthetic), lstm-fast:\n")
    print("| mode | workers | threads | images/s (after warm-up) |")
    print("| --- | ---: | ---: | ---: |")
    for mode, nhwc, amp in modes:
        for workers, threads in ((0, args.threads), (1, max(1, args.threads - 1))):
            ips = measure("lstm-fast", mixed, workers, threads, nhwc, amp)
            print(f"| {mode} | {workers} | {threads} | {ips:.1f} |", flush=True)
    torch.set_num_threads(args.threads)

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
