"""Exceptions shared by the core and the command line."""

from __future__ import annotations


class PlateReviewError(Exception):
    """Base class of the errors Plate Review reports to the user (message, no traceback)."""


class CliError(PlateReviewError):
    """Bad command-line arguments or a missing folder: one line on stderr, exit code 2."""

    exit_code = 2
