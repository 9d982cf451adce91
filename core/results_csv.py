"""The results CSV that `predict` and `crossval` write (UTF-8, review order, written atomically).

Also the cell escaping every CSV written by core uses (:func:`escape_cell`, undone by
:func:`unescape_cell`): a dataset from a stranger must not get formulas into a spreadsheet.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .files import atomic_write
from .label_score import sort_for_review
from .records import PredictionResult

#: Columns of `plate-review predict`; `crossval` replaces ``error`` with ``fold``.
#: ``zoomed`` and ``negative``: 1 where the prediction is the crop's read zoomed in or as its negative
#: (core.records.PredictionResult), 0 elsewhere, empty where there is no prediction.
BASE_COLUMNS = ["file", "label", "prediction", "cer", "correct", "confidence", "label_score", "zoomed", "negative"]
PREDICT_HEADER = [*BASE_COLUMNS, "error"]
#: With a second reader (``predict --second-model``), before the last column (``label_score`` is then the
#: combined score).
SECOND_COLUMNS = ["second_prediction", "second_label_score"]


#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"),
#: and the quote itself, so that escaping can be undone without ambiguity.
FORMULA_LEADS = frozenset("=+-@\t\r'")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = re.compile("[\\\\\ud800-\udfff]")
_UNESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _escape_char(m: re.Match) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    n = ord(c)
    return f"\\x{n - 0xDC00:02x}" if 0xDC80 <= n <= 0xDCFF else f"\\u{n:04x}"


def _unescape_seq(m: re.Match) -> str:
    seq = m.group(1)
    if seq == "\\":
        return "\\"
    return chr(0xDC00 + int(seq[1:], 16)) if seq[0] == "x" else chr(int(seq[1:], 16))


def escape_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula and that is valid UTF-8; undone by :func:`unescape_cell`.

    Text starting with ``= + - @``, a tab, a carriage return or ``'``, starting or ending with a
    space (a reader strips unescaped cells: a file name ``" 0015-皖A0H628.jpg"`` must come back
    whole), or holding characters UTF-8 cannot encode (a file name that is not valid UTF-8, as
    ``os.fsdecode`` gives it), is written as ``'`` + the text with ``\\`` doubled, each undecodable
    byte NN (U+DCNN) as ``\\xNN`` and any other lone surrogate as ``\\uXXXX``. Anything else, and
    any non-string value, is returned as it is.
    """
    if type(value) is not str or not value:
        return value
    if (
        value[0] not in FORMULA_LEADS
        and value[0] != " "
        and value[-1] != " "
        and (value.isascii() or not _SURROGATE.search(value))
    ):
        return value
    return "'" + _ESCAPE.sub(_escape_char, value)


def unescape_cell(text: str) -> str:
    """The original text of a cell written through :func:`escape_cell` (the exact inverse).

    A cell starting with ``'`` was escaped: the quote is dropped and ``\\\\``, ``\\xNN``,
    ``\\uXXXX`` are decoded; any other cell is returned unchanged. Apply it to the raw cell,
    before any strip: the leading whitespace of an escaped cell belongs to the text.
    """
    if not text.startswith("'"):
        return text
    return _UNESCAPE.sub(_unescape_seq, text[1:])


def printable(text: str) -> str:
    """``text`` for a terminal or a log line: undecodable bytes as ``\\xNN``, control characters
    as ``\\n``, ``\\t``, ``\\x01``... (one line per entry, and no UnicodeEncodeError on stdout)."""
    if text.isprintable():  # False for control characters and lone surrogates alike
        return text
    return _CONTROL.sub(lambda m: _escape_char(m) if m.group() > "\x7f" else repr(m.group())[1:-1], text)


def result_row(r: PredictionResult) -> list[Any]:
    """The :data:`BASE_COLUMNS` of one result (empty prediction/cer/confidence/score where there is none)."""
    read = r.error is None and bool(r.prediction)
    return [
        r.rel,
        r.label,
        r.prediction,
        "" if r.cer is None else f"{r.cer:.4f}",
        "" if r.correct is None else int(r.correct),
        "" if r.error is not None else f"{r.confidence:.4f}",
        "" if r.label_score is None else f"{r.label_score:.6f}",
        int(bool(getattr(r, "zoomed", False))) if read else "",
        int(bool(getattr(r, "negative", False))) if read else "",
    ]


def write_results_csv(
    results: Iterable[PredictionResult],
    path: str | os.PathLike,
    last_column: tuple[str, Callable[[PredictionResult], Any]] = ("error", lambda r: r.error or ""),
    sort: str = "score",
    second_opinion: bool = False,
) -> Path:
    """Write results in review order through a temp file; text cells through :func:`escape_cell`.

    Args:
        results: Prediction results (or records with the same attributes).
        path: CSV to write.
        last_column: Name and getter of the final column (``error`` for predict).
        sort: ``score`` (likeliest label errors first) or ``cer``
            (see :func:`core.label_score.review_keys`).
        second_opinion: Add :data:`SECOND_COLUMNS` before the last column (a second reader's
            reading and score; ``label_score`` is then the combined score).
    """
    path = Path(path)
    name, get = last_column
    extra = SECOND_COLUMNS if second_opinion else []
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow([*BASE_COLUMNS, *extra, name])
        for r in sort_for_review(results, sort):
            more = []
            if second_opinion:
                s2 = r.second_label_score
                more = [r.second_prediction, "" if s2 is None else f"{s2:.6f}"]
            w.writerow([escape_cell(c) for c in (*result_row(r), *more, get(r))])
    return path
