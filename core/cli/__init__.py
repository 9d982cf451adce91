"""`plate-review`: the command line over the same core functions the GUI uses.

Exit codes: 0 success (unreadable files are not a failure), 2 bad arguments or a
missing folder/model (one line on stderr, no traceback), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import CliError, PlateReviewError
from ..models import CheckpointError
from . import crossval, labels, model_commands


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage + exiting, so errors stay one clear line."""

    def error(self, message: str):  # noqa: D102
        raise CliError(f"{self.prog}: {message}")


def app_version() -> str:
    """The installed package's version (``pyproject.toml``), or ``unknown`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plate-review")
    except PackageNotFoundError:
        return "unknown"


def build_parser(
    extra_commands: Sequence[Callable[[argparse._SubParsersAction], None]] = (),
) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="plate-review",
        description="Find and fix wrong labels in licence-plate OCR datasets (labels in file names).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (stderr)")
    parser.add_argument("--version", action="version", version=f"plate-review {app_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    model_commands.add_model_commands(sub)
    crossval.add_crossval_command(sub)
    labels.add_label_commands(sub)
    for add in extra_commands:
        add(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    extra_commands: Sequence[Callable[[argparse._SubParsersAction], None]] = (),
) -> int:
    """Run ``plate-review`` with ``argv``; ``extra_commands`` register more subcommands.

    The ``gui`` subcommand is registered by :func:`gui.cli.main` (the console script), so
    that core never imports the GUI.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(extra_commands).parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (CheckpointError, PlateReviewError, NotADirectoryError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so in one line; the traceback goes to the log with -v
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        print(f"error: unexpected {type(e).__name__}: {e} (run with -v for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
