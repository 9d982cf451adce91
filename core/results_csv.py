"""The results CSV that `predict` and `crossval` write (UTF-8, review order, written atomically)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .label_score import sort_for_review
from .records import PredictionResult

#: Columns of `plate-review predict`; `crossval` replaces ``error`` with ``fold``.
BASE_COLUMNS = ["file", "label", "prediction", "cer", "correct", "confidence", "label_score"]
PREDICT_HEADER = [*BASE_COLUMNS, "error"]


def result_row(r: PredictionResult) -> list[Any]:
    """The :data:`BASE_COLUMNS` of one result (empty prediction/cer/confidence/score where there is none)."""
    return [
        r.rel,
        r.label,
        r.prediction,
        "" if r.cer is None else f"{r.cer:.4f}",
        "" if r.correct is None else int(r.correct),
        "" if r.error is not None else f"{r.confidence:.4f}",
        "" if r.label_score is None else f"{r.label_score:.6f}",
    ]


def write_results_csv(
    results: Iterable[PredictionResult],
    path: str | os.PathLike,
    last_column: tuple[str, Callable[[PredictionResult], Any]] = ("error", lambda r: r.error or ""),
    sort: str = "score",
) -> Path:
    """Write results in review order through a temp file.

    Args:
        results: Prediction results (or records with the same attributes).
        path: CSV to write.
        last_column: Name and getter of the final column (``error`` for predict).
        sort: ``score`` (likeliest label errors first) or ``cer``
            (see :func:`core.label_score.review_key`).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    name, get = last_column
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([*BASE_COLUMNS, name])
        for r in sort_for_review(results, sort):
            w.writerow([*result_row(r), get(r)])
    os.replace(tmp, path)
    return path
