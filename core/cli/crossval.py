"""`crossval` subcommand: k-fold out-of-sample scoring of a folder (every sample scored by a model that never saw it)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..dataset import scan_folder
from ..errors import CliError
from ..files import check_writable
from ..finetune import crossval_scores, read_states, write_crossval_csv
from ..models import ARCHITECTURES
from ..predict import Progress, default_model_path
from ..session import ReviewSession
from ..train import TrainConfig
from .argtypes import int_at_least, positive_float


def add_crossval_command(sub: argparse._SubParsersAction) -> None:
    """Register ``crossval`` on the ``plate-review`` parser."""
    c = sub.add_parser(
        "crossval",
        help="k-fold fine-tune and score every sample with a model that never trained on it (CSV)",
    )
    c.add_argument("folder", help="dataset folder (labels in file names)")
    c.add_argument("--folds", type=int_at_least(2), default=5, help="number of folds K (default 5)")
    c.add_argument("--out", default="crossval.csv", help="CSV to write (default: crossval.csv)")
    c.add_argument("--init", help="checkpoint to fine-tune from (default: the bundled model, else from scratch)")
    c.add_argument("--scratch", action="store_true", help="train each fold from scratch instead of fine-tuning")
    c.add_argument("--arch", choices=sorted(ARCHITECTURES), default="lstm", help="architecture when from scratch")
    c.add_argument("--epochs", type=int_at_least(1), default=1, help="epochs per fold (default 1)")
    c.add_argument("--batch-size", type=int_at_least(1), default=64)
    c.add_argument("--lr", type=positive_float, default=2e-4)
    c.add_argument(
        "--val-split", type=float, default=0.1, help="part of each fold's training data for picking its best epoch"
    )
    c.add_argument("--max-steps", type=int_at_least(1), default=None, help="cap the optimiser steps per fold")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--exclude-unreviewed", action="store_true", help="train only on verified/fixed samples")
    c.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    c.set_defaults(func=cmd_crossval)


def cmd_crossval(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise CliError(f"folder not found: {args.folder}")
    if args.init and not Path(args.init).is_file():
        raise CliError(f"model file not found: {args.init}")
    if not 0 <= args.val_split < 1:
        raise CliError(f"--val-split must be in [0, 1): {args.val_split}")
    check_writable(args.out)  # before the folds train, not after
    init = args.init
    if init is None and not args.scratch and default_model_path().is_file():
        init = str(default_model_path())
    samples = scan_folder(folder)
    if len(samples) < args.folds:
        raise CliError(f"{len(samples)} image files in {folder}: too few for {args.folds} folds")
    config = TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_split=args.val_split,
        seed=args.seed, device=args.device, max_steps=args.max_steps, init=None if args.scratch else init,
    )  # fmt: skip
    bar = tqdm(total=args.folds * 1000, desc="crossval", disable=not sys.stderr.isatty(), file=sys.stderr)

    def progress(p: Progress) -> None:
        bar.set_description_str(p.message[:60])
        bar.update(p.done - bar.n)

    try:
        cv = crossval_scores(
            samples, k=args.folds, config=config, progress=progress, states=read_states(folder),
            include_unreviewed=not args.exclude_unreviewed,
        )  # fmt: skip
    finally:
        bar.close()
    with ReviewSession(folder) as session:  # the GUI shows them, and they order its review, after a restart
        session.save_crossval(cv.results, {"folds": cv.k, "samples": len(cv.results), "base": init or "scratch",
                                           "created": time.time(), "stopped": cv.stopped})  # fmt: skip
    write_crossval_csv(cv, args.out)
    scored = [r for r in cv.results.values() if r.cer is not None and not r.label_error]
    acc = sum(bool(r.correct) for r in scored) / len(scored) if scored else 0.0
    mean_cer = sum(r.cer for r in scored) / len(scored) if scored else 0.0
    print(f"wrote {args.out}", file=sys.stderr)
    print(f"n={len(cv.results)} folds={cv.k} accuracy={acc:.4f} mean_cer={mean_cer:.4f} base={init or 'scratch'}")
    return 0
