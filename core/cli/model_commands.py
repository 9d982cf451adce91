"""`predict`, `train` and `eval` subcommands."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch.distributed as dist
from tqdm import tqdm

from .. import plates
from ..data import train_augmentations
from ..dataset import scan_folder
from ..distributed import cleanup_distributed, init_distributed, is_main_process
from ..errors import CliError
from ..files import check_writable
from ..label_score import LIKELY_ERROR_THRESHOLD, SORT_ORDERS, sort_for_review, with_second_opinion
from ..metrics import corpus_cer, evaluate_strings
from ..models import ARCHITECTURES, load_checkpoint
from ..predict import PredictionResult, Predictor, open_reader
from ..results_csv import printable, write_results_csv
from ..session import ReviewSession
from ..store import StoreFullError
from ..train import EpochInfo, StepInfo, TrainConfig, split_items, train
from .argtypes import fraction, int_at_least, positive_float


def _folder(text: str) -> Path:
    p = Path(text)
    if not p.exists():
        raise CliError(f"folder not found: {text}")
    if not p.is_dir():
        raise CliError(f"not a folder: {text}")
    return p


def _model(text: str | None) -> str | None:
    if text is not None and not Path(text).is_file():
        raise CliError(f"model file not found: {text}")
    return text


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    """Register predict/train/eval on the ``plate-review`` parser."""
    dev = dict(choices=["auto", "cpu", "cuda", "mps"], default="auto", help="where the model runs (default: auto)")
    one_view = dict(action="store_true", help="read each crop alone, not averaged with its two views shifted by "
                    "2 %% of its width, nor zoomed where unsure, nor light plates as negatives: 2.7x the speed "
                    "on tight crops, more on loose ones, fewer plates right (docs/MODEL.md)")  # fmt: skip

    p = sub.add_parser("predict", help="run the model over a folder, write a CSV worst first")
    p.add_argument("folder", help="dataset folder (labels in file names)")
    p.add_argument(
        "--model", help="checkpoint, the notebook's .pth/.ckpt, or a CTC recognizer .onnx (default: the bundled model)"
    )
    p.add_argument("--dict", help="character dictionary of a CTC recognizer (default: found beside the .onnx)")
    p.add_argument(
        "--second-model", metavar="PATH",
        help="a second reader (checkpoint, notebook file or CTC .onnx): its reading is added and the label "
        "score combines both (a label is doubted only when both readers doubt it)",
    )  # fmt: skip
    p.add_argument("--second-dict", help="character dictionary of the second reader, if it is a CTC recognizer")
    p.add_argument("--out", default="results.csv", help="CSV to write (default: results.csv)")
    p.add_argument(
        "--sort", choices=SORT_ORDERS, default="score",
        help="row order: score = likeliest label errors first (default); cer = largest CER first",
    )  # fmt: skip
    p.add_argument("--device", **dev)
    p.add_argument("--one-view", **one_view)
    p.add_argument("--batch-size", type=int_at_least(1), default=128)
    p.add_argument("--workers", type=int_at_least(0), default=None, help="decode processes (default: auto)")
    p.add_argument("--no-cache", action="store_true", help="predict every file again; do not open the dataset store")
    p.set_defaults(func=cmd_predict)

    t = sub.add_parser("train", help="train or fine-tune a model on a folder")
    t.add_argument("folder")
    t.add_argument("--out", required=True, help="checkpoint to write (best by validation CER)")
    t.add_argument("--init", help="checkpoint to fine-tune from (default: from scratch)")
    t.add_argument("--arch", choices=sorted(ARCHITECTURES), default="lstm")
    t.add_argument("--epochs", type=int_at_least(1), default=7)
    t.add_argument("--batch-size", type=int_at_least(1), default=64)
    t.add_argument("--lr", type=positive_float, default=2e-4)
    t.add_argument("--lr-gamma", type=positive_float, default=0.5, help="learning-rate factor per epoch (default 0.5)")
    t.add_argument("--val-split", type=fraction, default=0.1)
    t.add_argument("--val", help="validation folder (instead of --val-split)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--workers",
        type=int_at_least(0),
        default=None,
        help="augmentation processes (default: none on the CPU, up to 6 on a GPU)",
    )
    t.add_argument("--max-steps", type=int_at_least(1), default=None)
    t.add_argument("--device", **dev)
    t.set_defaults(func=cmd_train)

    m = sub.add_parser(
        "import-model",
        help="save the notebook's state_dict (.pth) or Lightning checkpoint (.ckpt) as a Plate Review checkpoint",
    )
    m.add_argument("model_in", metavar="IN", help="the notebook's .pth or .ckpt (or any checkpoint this app reads)")
    m.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    m.set_defaults(func=cmd_import_model)

    x = sub.add_parser("export-model", help="export a checkpoint to ONNX for deployment (checked against PyTorch)")
    x.add_argument("checkpoint", help="a Plate Review checkpoint, or the notebook's .pth/.ckpt")
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--one-view", **one_view)
    x.set_defaults(func=cmd_export_model)

    e = sub.add_parser("eval", help="accuracy, CER, per-position accuracy and confusions on a folder")
    e.add_argument("folder")
    e.add_argument("--model")
    e.add_argument("--dict", help="character dictionary of a CTC recognizer (.onnx)")
    e.add_argument("--device", **dev)
    e.add_argument("--one-view", **one_view)
    e.add_argument("--batch-size", type=int_at_least(1), default=128)
    e.add_argument("--workers", type=int_at_least(0), default=None)
    e.add_argument("--no-cache", action="store_true", help="predict every file again; do not open the dataset store")
    e.set_defaults(func=cmd_eval)


def _run_predict(args: argparse.Namespace) -> tuple[list[PredictionResult], Predictor, float]:
    """Predict a folder through its store: cached results for unchanged files, the model for the rest."""
    folder = _folder(args.folder)
    predictor = open_reader(_model(args.model), device=args.device, dict_path=args.dict, views=not args.one_view)
    t0 = time.perf_counter()
    results = _predict_with(args, folder, predictor)
    second_path = getattr(args, "second_model", None)
    if second_path:
        second = open_reader(_model(second_path), device=args.device, dict_path=args.second_dict,
                             views=not args.one_view)  # fmt: skip
        print(f"second opinion: {second.description}", file=sys.stderr)
        other = {r.rel: r for r in _predict_with(args, folder, second)}
        results = with_second_opinion(results, other)
    return results, predictor, time.perf_counter() - t0


def _predict_with(args: argparse.Namespace, folder: Path, predictor) -> list[PredictionResult]:
    """One reader's records of every file of the folder (cached where still valid).

    A store that cannot be opened or written for want of room (a full disk) does not stop the
    reading: it goes on without caching, and a warning says so.
    """
    try:
        session = ReviewSession(folder, use_store=not args.no_cache)
    except StoreFullError as e:
        print(f"warning: reading without the prediction cache: {e}", file=sys.stderr)
        session = ReviewSession(folder, use_store=False)
    with session:
        for note in session.notices:
            print(note, file=sys.stderr)
        files = session.scan()
        if not files:
            raise CliError(f"no image files in {folder}")
        records, todo = session.load(predictor.model_hash, files)
        if len(todo) < len(records):
            print(f"{len(records) - len(todo)} predictions from the cache, {len(todo)} to compute", file=sys.stderr)
        bar = tqdm(total=len(todo), unit="img", desc="predict", disable=not sys.stderr.isatty(), file=sys.stderr)
        try:
            fresh = session.predict(
                todo, predictor, files, batch_size=args.batch_size, workers=args.workers,
                progress=lambda p: bar.update(p.done - bar.n),
            )  # fmt: skip
        finally:
            bar.close()
        if session.cache_problem:
            print(f"warning: predictions not cached: {session.cache_problem}", file=sys.stderr)
    by_rel = {r.rel: r for r in fresh}
    return [by_rel.get(r.rel, r) for r in records]


def summary_line(results: list[PredictionResult], seconds: float) -> str:
    """`n=... unreadable=... invalid=... accuracy=... cer=... images_per_s=...` (over valid, readable samples)."""
    scored = [r for r in results if r.error is None and not r.label_error]
    unreadable = sum(r.error is not None for r in results)
    invalid = sum(bool(r.label_error) and r.error is None for r in results)
    acc = sum(bool(r.correct) for r in scored) / len(scored) if scored else 0.0
    c = corpus_cer([r.prediction for r in scored], [r.label for r in scored]) if scored else 0.0
    return (
        f"n={len(results)} unreadable={unreadable} invalid={invalid} accuracy={acc:.4f} cer={c:.4f} "
        f"images_per_s={len(results) / max(seconds, 1e-9):.1f}"
    )


def report_duplicates(results: list[PredictionResult]) -> int:
    """Print (stderr) each group of near-duplicate crops whose labels differ; return how many groups."""
    groups = [g for g in ReviewSession.duplicate_groups(results) if g.labels_differ]
    for g in groups:
        same = " = ".join(f"{printable(rel)} ({label})" for rel, label in zip(g.rels, g.labels))
        print(f"same picture, different labels: {same}", file=sys.stderr)
    return len(groups)


def cmd_import_model(args: argparse.Namespace) -> int:
    """``plate-review import-model IN --out model.pt``: the notebook's .pth/.ckpt as a Plate Review checkpoint."""
    from ..models import load_checkpoint, save_checkpoint

    src = Path(args.model_in)
    ckpt = load_checkpoint(src)  # reads and checks it; CheckpointError names the file
    out = Path(args.out)
    if out.exists() and out.resolve() == src.resolve():
        raise CliError(f"{out}: the output must not be the input file")
    ckpt.summary.setdefault("imported_from", str(src))
    save_checkpoint(ckpt, out)
    how = ckpt.summary.get("import_format", "a Plate Review checkpoint")
    print(f"wrote {out}: {ckpt.config.arch} model from {how} ({src})")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    """``plate-review export-model CKPT --out model.onnx``: the app's graph, checked against PyTorch."""
    from ..predict import export_for_deployment

    diff = export_for_deployment(args.checkpoint, args.out, views=not args.one_view)
    reading = ("the crop alone" if args.one_view else
               "the read shown: the mean over the crop and its two shifted views, or zoomed where surer; "
               "then the read that scores labels (the crop's reads averaged where it is read zoomed); "
               "then 1 where the read shown is a zoomed one")  # fmt: skip
    print(f"wrote {args.out}: uint8 RGB (batch, height, width, 3) in, province and character probabilities "
          f"({reading}) out; "
          f"largest difference from PyTorch on 16 random images {diff:.1e}")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    check_writable(args.out)  # before the reading, not after
    results, predictor, seconds = _run_predict(args)
    write_results_csv(results, args.out, sort=args.sort, second_opinion=bool(args.second_model))
    for r in results:
        if r.error is not None:
            print(f"unreadable: {printable(r.rel)}: {r.error}", file=sys.stderr)
    report_duplicates(results)
    print(f"model: {predictor.description}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    print(summary_line(results, seconds))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    results, predictor, seconds = _run_predict(args)
    scored = [r for r in results if r.error is None and not r.label_error]
    rep = evaluate_strings([r.prediction for r in scored], [r.label for r in scored])
    print(f"model: {predictor.description}")
    print(f"samples scored: {rep.n} (unreadable {sum(r.error is not None for r in results)}, "
          f"invalid labels {sum(bool(r.label_error) and r.error is None for r in results)})")  # fmt: skip
    print(f"accuracy:       {rep.accuracy:.4f}")
    print(f"cer:            {rep.cer:.4f}")
    print(f"char accuracy:  {rep.char_accuracy:.4f}")
    print("per position:   " + "  ".join(f"{i + 1}:{a:.4f}" for i, a in enumerate(rep.per_position)))
    if rep.confusions:
        print("most frequent confusions (label -> predicted: count):")
        for a, b, c in rep.confusions:
            print(f"  {a} -> {b}: {c}")
    likely = [
        r for r in sort_for_review(scored) if r.label_score is not None and r.label_score <= LIKELY_ERROR_THRESHOLD
    ]
    print(f"likely label errors (label score <= {LIKELY_ERROR_THRESHOLD}): {len(likely)}")
    for r in likely[:10]:
        print(f"  {r.rel}: label {r.label}, read {r.prediction}, label score {r.label_score:.4f}")
    if len(likely) > 10:
        print(f"  ... and {len(likely) - 10} more (plate-review predict lists them all, first)")
    print(summary_line(results, seconds))
    return 0


def _train_items(folder: Path, quiet: bool = False) -> list[tuple[str, str]]:
    """``(path, label)`` of the trainable files of ``folder``; the others are reported on stderr.

    Entries the scan found unusable (``Sample.error``: never read) get a line each; files
    with invalid labels are counted.
    """
    samples = scan_folder(folder)
    items = [(s.file, s.label) for s in samples if s.valid]
    unreadable = [s for s in samples if s.error is not None]
    invalid = len(samples) - len(items) - len(unreadable)
    if not quiet:
        for s in unreadable:
            print(f"skipping unreadable {printable(s.rel)}: {printable(s.error)}", file=sys.stderr)
        if invalid:
            print(f"skipping {invalid} files with invalid labels in {folder}", file=sys.stderr)
    if not items:
        raise CliError(f"no samples with valid labels in {folder}")
    return items


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a folder; under ``torchrun`` every process runs this and rank 0 writes."""
    init_distributed(args.device)
    try:
        return _train(args)
    finally:
        cleanup_distributed()


def _train(args: argparse.Namespace) -> int:
    from ..finetune import TolerantPlateDataset, read_skipped, skipped_path

    main_process = is_main_process()
    folder = _folder(args.folder)
    if main_process:
        check_writable(args.out)  # before the training, not after
    items = _train_items(folder, quiet=not main_process)
    val_items = _train_items(_folder(args.val), quiet=not main_process) if args.val else None
    config = TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_gamma=args.lr_gamma,
        val_split=args.val_split, seed=args.seed, device=args.device, workers=args.workers,
        init=_model(args.init), max_steps=args.max_steps,
    )  # fmt: skip
    if val_items is None:  # the split train() would make, made here to wrap both parts
        items, val_items = split_items(items, config.val_split, config.seed)
    # A file that cannot be decoded is skipped and reported, not the end of the run (as in the GUI):
    # each skip is logged beside the checkpoint (also by DataLoader workers), read back at the end.
    skip_log = skipped_path(args.out)
    if main_process:
        skip_log.parent.mkdir(parents=True, exist_ok=True)  # as the checkpoint will be
        skip_log.unlink(missing_ok=True)  # a list from an earlier run to the same path
    provinces, others = _label_alphabets(config.init)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    train_ds = TolerantPlateDataset(
        items, train_augmentations(config.augment_strength, seed=config.seed + rank), provinces, others,
        skipped_log=skip_log,
    )  # fmt: skip
    val_ds = TolerantPlateDataset(val_items, None, provinces, others, skipped_log=skip_log)
    bar = tqdm(unit="step", desc="train", disable=not (main_process and sys.stderr.isatty()), file=sys.stderr)

    def on_step(s: StepInfo) -> None:
        bar.total = s.total_steps
        bar.set_postfix(loss=f"{s.loss:.3f}", ips=f"{s.images_per_s:.0f}")
        bar.update(s.step - bar.n)

    validating = len(val_ds) > 0

    def on_epoch(e: EpochInfo) -> None:
        validated = (
            f"val_loss={e.val_loss:.4f} val_accuracy={e.val_accuracy:.4f} val_cer={e.val_cer:.4f}"
            if validating else "no validation set (the latest epoch is kept)"
        )  # fmt: skip
        msg = (
            f"epoch {e.epoch}/{e.epochs} step {e.step}: train_loss={e.train_loss:.4f} {validated} lr={e.lr:.2e} "
            f"images_per_s={e.images_per_s:.1f}{' *best' if e.is_best and validating else ''}"
        )
        (bar.write if not bar.disable else print)(msg)

    try:
        result = train(
            config, train_ds, val_ds, out=args.out, on_step=on_step, on_epoch=on_epoch,
            extra_summary={"dataset": str(Path(args.folder).resolve())},
        )  # fmt: skip
    finally:
        bar.close()
    if main_process:
        skipped = {**train_ds.bad, **val_ds.bad, **read_skipped(skip_log)}  # the workers' skips too
        for path, reason in sorted(skipped.items()):
            print(f"skipped unreadable {printable(path)}: {printable(reason)}", file=sys.stderr)
        if skipped:
            print(f"skipped {len(skipped)} unreadable file(s); list in {skip_log}", file=sys.stderr)
        print(f"saved {result.best_path} ({result.steps} steps, {result.seconds:.0f} s)")
    return 0


def _label_alphabets(init: str | None) -> tuple[str, str]:
    """The province and character alphabets a run encodes labels with: the base checkpoint's, or the defaults."""
    if not init:
        return plates.PROVINCES, plates.OTHERS
    base = load_checkpoint(init)
    return base.provinces, base.others
