"""The ``plate-review`` console script: the core command line plus the ``gui`` subcommand.

Lives in gui/ because core/ never imports the GUI; Qt is imported only when the
``gui`` subcommand runs, so every other command works without a display.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from core.cli import main as core_main


def add_gui_command(sub: argparse._SubParsersAction) -> None:
    """Register ``plate-review gui [FOLDER] [--model PATH]``."""
    p = sub.add_parser("gui", help="open the review app (on FOLDER, or the bundled sample folder)")
    p.add_argument("folder", nargs="?", help="dataset folder")
    p.add_argument("--model", help="checkpoint (default: the bundled model)")
    p.set_defaults(func=_run_gui)


def _run_gui(args: argparse.Namespace) -> int:
    from .app import run

    argv = [args.folder] if args.folder else []
    if args.model:
        argv += ["--model", args.model]
    return run(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plate-review`` console script."""
    return core_main(argv, extra_commands=[add_gui_command])
