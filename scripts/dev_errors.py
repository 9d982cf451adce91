"""What a recognizer gets wrong on the development synthetic set, and on its own training crops.

    python scripts/dev_errors.py [--model resources/models/default.pt] [--other runs/x/default.pt]

Reads the dev synthetic set that recipe decisions use (``SynthDataset(31 x
100, seed=7777)``, the recipe's Noto glyphs; neither a training seed nor the held-out seed
424242) in both looks (HARSH, MATCHED), and prints for each model: plates wrong, how many
have the province wrong, how many a serial character (positions 2-7), how many are an ``O``
read as ``0``, and the commonest character confusions. ``--train-crops`` also reads the 450
non-held-out real crops (a refit model trained on them: a sanity check, not a score). The
held-out crops are never read. With ``--other``, the plates each model alone gets wrong are
counted too (a paired comparison on the same plates).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import plates  # noqa: E402
from core.images import read_rgb  # noqa: E402
from core.models import load_checkpoint  # noqa: E402
from core.recipe import LOOKS, predict, real_split  # noqa: E402
from core.synth import SynthDataset  # noqa: E402


def breakdown(pred: list[str], truth: list[str]) -> dict:
    """Counts of wrong plates by kind, and the commonest (true, read) character pairs."""
    wrong = [(p, t) for p, t in zip(pred, truth) if p != t]
    pairs = collections.Counter((a, b) for p, t in wrong for a, b in zip(t, p) if a != b)
    return {
        "plates": len(truth),
        "wrong": len(wrong),
        "province_wrong": sum(p[0] != t[0] for p, t in wrong),
        "serial_wrong": sum(p[1:] != t[1:] for p, t in wrong),
        "O_read_0": sum(any(a == "O" and b == "0" for a, b in zip(t, p)) for p, t in wrong),
        "top_confusions": [f"{a}->{b} x{n}" for (a, b), n in pairs.most_common(12)],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.pt"))
    ap.add_argument("--other", help="a second checkpoint, compared plate by plate")
    ap.add_argument("--per-province", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7777)
    ap.add_argument("--train-crops", action="store_true", help="also read the 450 non-held-out real crops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpts = {name: load_checkpoint(path) for name, path in (("model", args.model), ("other", args.other)) if path}
    models = {name: ck.build().eval() for name, ck in ckpts.items()}
    report: dict = {name: {} for name in ckpts}
    for look_name, look in LOOKS.items():
        ds = SynthDataset(args.per_province * len(plates.PROVINCES), seed=args.seed, latin_fonts=False, look=look)
        images, labels = map(list, zip(*(ds.sample(i) for i in range(len(ds)))))
        reads = {name: predict(models[name], images, ck)[0] for name, ck in ckpts.items()}
        for name in ckpts:
            report[name][look_name] = breakdown(reads[name], labels)
        if "other" in reads:
            only = {
                name: sum(r != t and o == t for r, o, t in zip(reads[name], reads[other], labels))
                for name, other in (("model", "other"), ("other", "model"))
            }
            report["paired_" + look_name] = {f"only_{k}_wrong": v for k, v in only.items()}
    if args.train_crops:
        train, val, _ = real_split()
        crops = train + val
        images = [read_rgb(p) for p, _ in crops]
        for name, ck in ckpts.items():
            raw = predict(models[name], images, ck)[0]
            report[name]["train_crops_accuracy"] = sum(r == lab for r, (_, lab) in zip(raw, crops)) / len(crops)
    for name in ckpts:
        r = report[name]
        r["total_wrong"] = sum(r[look]["wrong"] for look in LOOKS)
        r["total_serial_wrong"] = sum(r[look]["serial_wrong"] for look in LOOKS)
    print(json.dumps({"models": {n: str(getattr(args, n)) for n in ckpts}, **report}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
