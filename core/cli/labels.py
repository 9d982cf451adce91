"""`plate-review relabel | undo | redo | export | repair`: label changes through the store's journal.

Every command opens the dataset's store first, which reconciles renames a killed
process left unfinished; what that found is printed on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CliError
from ..store import Store


def add_label_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``relabel``, ``undo``, ``redo`` and ``export`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "relabel",
        help="apply label corrections from a CSV (file,label) with crash-safe renames (one undo step)",
        description="Rename files to carry corrected labels. Running it again after a crash or a kill "
        "completes the batch: rows already applied are skipped. Exit 1 when some rows failed.",
    )
    p.add_argument("folder", help="dataset folder")
    p.add_argument("--from", dest="csv", required=True, metavar="CSV", help="CSV with header file,label")
    p.set_defaults(func=cmd_relabel)

    for name, verb in (("undo", "undo the last label changes"), ("redo", "redo label changes that were undone")):
        p = subparsers.add_parser(name, help=f"{verb} (history kept in the dataset's store)")
        p.add_argument("folder", help="dataset folder")
        p.add_argument("--steps", type=int, default=1, metavar="N", help="number of actions (default 1)")
        p.set_defaults(func=cmd_undo if name == "undo" else cmd_redo)

    p = subparsers.add_parser(
        "repair",
        help="set a damaged store aside and start a new one (images untouched; history and states are lost)",
    )
    p.add_argument("folder", help="dataset folder")
    p.set_defaults(func=cmd_repair)

    p = subparsers.add_parser(
        "export",
        help="write the corrected dataset to a new folder (CCPD2019-dl1 layout, manifest, PaddleOCR lists)",
    )
    p.add_argument("folder", help="dataset folder (never modified)")
    p.add_argument("--out", required=True, metavar="DIR", help="new, empty output folder")
    p.add_argument("--split", default="train=0.9,test=0.1", help="split fractions (default train=0.9,test=0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split shuffle (default 0)")
    p.add_argument("--link", action="store_true", help="hard-link files instead of copying them")
    p.set_defaults(func=cmd_export)


def _open_store(folder: str) -> Store:
    if not Path(folder).is_dir():
        raise CliError(f"{folder}: not a folder")
    store = Store.open(folder)
    if store.notice:
        print(f"note: {store.notice}", file=sys.stderr)
    for msg in store.messages:
        print(f"note: {msg}", file=sys.stderr)
    return store


def _print_report(report) -> None:
    for _, msg in report.failed:
        print(msg, file=sys.stderr)
    for msg in report.messages:
        print(msg, file=sys.stderr)


def cmd_relabel(args: argparse.Namespace) -> int:
    """``plate-review relabel FOLDER --from CSV``."""
    from ..relabel import read_corrections, relabel_from_csv

    if not Path(args.csv).is_file():
        raise CliError(f"{args.csv}: no such CSV file")
    try:
        rows = read_corrections(args.csv)
    except (ValueError, UnicodeDecodeError) as e:
        raise CliError(str(e)) from None
    store = _open_store(args.folder)
    try:
        report = relabel_from_csv(store, rows, description=f"relabel from {Path(args.csv).name}")
    finally:
        store.close()
    _print_report(report)
    print(report.summary())
    return 1 if report.failed else 0


def _cmd_history(args: argparse.Namespace, kind: str) -> int:
    from ..relabel import redo, undo

    if args.steps < 1:
        raise CliError(f"--steps must be at least 1, not {args.steps}")
    store = _open_store(args.folder)
    try:
        report = (undo if kind == "undo" else redo)(store, args.steps)
    finally:
        store.close()
    _print_report(report)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_undo(args: argparse.Namespace) -> int:
    """``plate-review undo FOLDER [--steps N]``."""
    return _cmd_history(args, "undo")


def cmd_redo(args: argparse.Namespace) -> int:
    """``plate-review redo FOLDER [--steps N]``."""
    return _cmd_history(args, "redo")


def cmd_repair(args: argparse.Namespace) -> int:
    """``plate-review repair FOLDER``: a damaged store is set aside (kept, renamed) and a new one started."""
    from ..store import STORE_FILENAME, StoreError, repair_store

    if not Path(args.folder).is_dir():
        raise CliError(f"{args.folder}: not a folder")
    try:
        store = Store.open(args.folder)
    except StoreError:
        for line in repair_store(args.folder):
            print(line)
        store = Store.open(args.folder)
        store.close()
        print(f"a new {STORE_FILENAME} is in place; predictions will be computed again at the next run")
        return 0
    store.close()
    print(f"{args.folder}: the store opens fine; nothing to repair")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``plate-review export FOLDER --out DIR [--split train=0.9,test=0.1] [--seed N] [--link]``."""
    from ..export import ExportError, export_dataset, parse_split

    try:
        split = parse_split(args.split)
    except ValueError as e:
        raise CliError(f"--split: {e}") from None
    if not Path(args.folder).is_dir():
        raise CliError(f"{args.folder}: not a folder")
    store = _open_store(args.folder)
    try:
        report = export_dataset(args.folder, args.out, split=split, seed=args.seed, link=args.link, store=store)
    except ExportError as e:
        if e.refused:
            raise CliError(str(e)) from None
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for line in report.lines():
        print(line)
    return 0
