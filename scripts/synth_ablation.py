"""Which synthetic degradations cost the model its per-province accuracy.

    python scripts/synth_ablation.py [--model resources/models/default.pt] [--per-province 50]

Reads held-out synthetic plates (``SynthDataset(31 x N, seed=424242)``, the set of the
per-province table in docs/MODEL.md) with every degradation, with none, with one alone
and with all but one (``core.synth.DEGRADATIONS``; leaving one out keeps the same plates
and the other degradations exactly, see ``render_plate(skip=...)``), and prints the
whole-plate and province-character accuracy of each as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import plates  # noqa: E402
from core.models import load_checkpoint  # noqa: E402
from core.recipe import predict  # noqa: E402
from core.synth import DEGRADATIONS, SynthDataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.pt"))
    ap.add_argument("--per-province", type=int, default=50)
    ap.add_argument("--seed", type=int, default=424242)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.model)
    model = ckpt.build()
    latin = ckpt.summary.get("synth", "noto") == "plate"  # the generator the model was trained with
    n = args.per_province * len(plates.PROVINCES)
    everything = frozenset(DEGRADATIONS)
    rows = [("all (the test set)", frozenset()), ("none", everything)]
    rows += [(f"only {d}", everything - {d}) for d in DEGRADATIONS]
    rows += [(f"all but {d}", frozenset({d})) for d in DEGRADATIONS]
    print(f"{args.model}: {n} synthetic plates (seed {args.seed}, {'plate' if latin else 'noto'} generator)")
    print("| degradations | whole plate | province character | weakest province (whole plate) |")
    print("| --- | ---: | ---: | --- |")
    for name, skip in rows:
        ds = SynthDataset(n, seed=args.seed, latin_fonts=latin, skip=skip)
        images, labels = zip(*(ds.sample(i) for i in range(n)))
        raw, _, _ = predict(model, list(images), ckpt)
        per = {p: [r == t for r, t in zip(raw, labels) if t[0] == p] for p in plates.PROVINCES}
        weakest = min(per, key=lambda p: sum(per[p]) / len(per[p]))
        whole = sum(r == t for r, t in zip(raw, labels)) / n
        prov = sum(r[0] == t[0] for r, t in zip(raw, labels)) / n
        print(
            f"| {name} | {whole:.1%} | {prov:.1%} | {weakest} {sum(per[weakest]) / len(per[weakest]):.0%} |", flush=True
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
