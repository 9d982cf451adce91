"""How a model reads provinces drawn in CJK fonts it never trained on.

    python bench/bench_province_fonts.py --font /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc \\
        [--font OTHER ...] [--model CKPT] [--per 40] [--looks matched,yellow] [--one-view]

The bundled recipe draws every province glyph with Noto Sans SC (Bold or Regular,
resources/fonts/); real plates use their own plate font, and the real crops have too few
provinces other than 皖 to teach it. This benchmark draws the held-out synthetic plates of the
recipe's evaluation (seed 7777, ``--per`` plates per province, in each of ``--looks``) twice: as
trained, and with every province glyph taken from each ``--font`` instead
(``core.synth.Look.p_province_font`` 1.0 with that one design: the same plates otherwise, the
serial unchanged), and prints the model's exact-plate accuracy and the plates whose province it
misreads. A model whose province errors multiply under another sans design reads provinces by
the training font's details, not by the characters' shapes. A model trained with
``train_default.py --camera-province-fonts`` has seen the designs of
``core.synth.PROVINCE_FONT_FILES``: judge it on fonts that are not among them.

Needs fontTools (``pip install fonttools``, the atlas builder's build-time dependency) and
font files of your own: any TrueType/OpenType font or collection (its first font) with the 31
province characters, e.g. Debian's fonts-wqy-zenhei, fonts-wqy-microhei, fonts-arphic-uming.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def province_glyphs(font: Path, work: Path) -> dict:
    """The 31 province masks of ``font``: ``{province: ink mask}``, as the renderer draws them."""
    from core import synth

    return synth.load_province_designs(synth.build_province_atlas(work / f"{font.stem}.npz", fonts=(font,)))[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--font", action="append", default=[], type=Path, help="a CJK font file (repeatable)")
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--per", type=int, default=40, help="plates per province and look")
    ap.add_argument("--looks", default="matched,yellow", help="comma-separated core.recipe.EVAL_LOOKS")
    ap.add_argument(
        "--one-view",
        action="store_true",
        help="read each plate once (default: as the app reads, three shifted views, zoomed where unsure, light plates also as negatives)",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    from core import plates, synth
    from core.models import READING_SUMMARY, load_checkpoint
    from core.predict import default_model_path
    from core.recipe import EVAL_LOOKS, predict

    torch.set_num_threads(args.threads)
    for f in args.font:
        if not f.is_file():
            ap.error(f"{f}: no such font file")
    model_path = args.model or default_model_path()
    ck = load_checkpoint(model_path)
    model = ck.build().eval()
    variants: dict[str, dict | None] = {"as trained (Noto Sans SC)": None}
    with tempfile.TemporaryDirectory() as work:
        for f in args.font:
            variants[f.name] = province_glyphs(f, Path(work))
    looks = args.looks.split(",")
    print(f"model: {model_path.name}; {args.per} plates per province and look (seed 7777); "
          f"{'one view' if args.one_view else f'the app reading ({READING_SUMMARY})'}")  # fmt: skip
    print(
        "| province font | " + " | ".join(f"{lk} exact | {lk} province wrong" for lk in looks) + " | worst provinces |"
    )
    print("|---|" + "---:|---:|" * len(looks) + "---|")
    for name, design in variants.items():
        cells, worst = [], collections.Counter()
        for look in looks:
            lk = EVAL_LOOKS[look] if design is None else replace(EVAL_LOOKS[look], p_province_font=1.0)
            ds = synth.SynthDataset(args.per * len(plates.PROVINCES), seed=7777, latin_fonts=False, look=lk,
                                    province_designs=None if design is None else (design,))  # fmt: skip
            images, labels = map(list, zip(*(ds.sample(i) for i in range(len(ds)))))
            pred = predict(model, images, ck, views=not args.one_view)[0]
            wrong = sum(p != t for p, t in zip(pred, labels))
            province = [t[0] for p, t in zip(pred, labels) if p[0] != t[0]]
            worst.update(province)
            cells += [f"{1 - wrong / len(labels):.1%}", f"{len(province)} of {len(labels)}"]
        top = ", ".join(f"{ch} {n}" for ch, n in worst.most_common(4))
        print(f"| {name} | " + " | ".join(cells) + f" | {top} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
