"""How likely a sample's label is right: the one label score of the app, and the review order.

A reader that confidently disagrees with a label points at a label error; a reader that
is unsure points at its own error. So the score is built from the probability the reader
gives to the label's *own* characters (cleanlab's "self-confidence", per character), not
from how sure it is of its own prediction:

    label_score = min over positions i of p_i(label[i])

the probability of the label's weakest character, in [0, 1], higher = the label is more
likely right, with that position kept as the most suspicious character. The form was chosen
by measurement (``bench/bench_label_errors.py``, docs/BENCHMARKS.md): on held-out crops with
injected confusable-character errors it put more of them in the first rows than the
whole-plate probability, the margin against the best other character, and confident
learning's per-class thresholds.

:func:`review_keys` is the one review order of the app (the CSV, ``eval``, the GUI, the
benchmark): unreadable files, then invalid labels, then label score ascending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Label score at or below which a label is counted as a likely error (the GUI's count and
#: filter, ``eval``, the user guide). Chosen on the benchmark (docs/BENCHMARKS.md "Label
#: errors"): it flags 98 % of the injected errors, three in four flagged rows being errors.
LIKELY_ERROR_THRESHOLD = 0.01


def label_char_probs(
    label: str, first: np.ndarray, tail: np.ndarray, provinces: str, others: str
) -> list[float] | None:
    """The reader's probability of each of the label's own characters, from its full outputs.

    Args:
        label: A valid 7-character label.
        first: Province probabilities ``(n_provinces,)`` (or ``(1, n_provinces)``).
        tail: Probabilities of the other 6 positions ``(6, n_others)``.
        provinces, others: The model's alphabets.

    Returns:
        7 probabilities, or ``None`` when the label has a character the model cannot read.
    """
    if len(label) != 1 + len(tail):
        return None
    i0 = provinces.find(label[0])
    idx = [others.find(c) for c in label[1:]]
    if i0 < 0 or min(idx) < 0:
        return None
    first = np.asarray(first).reshape(-1)
    tail = np.asarray(tail)
    return [float(first[i0]), *tail[np.arange(len(idx)), idx].tolist()]


def label_char_probs_from_top2(
    label: str, prediction: str, probs: Sequence[float], runner_up: str, runner_up_probs: Sequence[float]
) -> list[float] | None:
    """The same probabilities, recovered from a stored record's two best characters per position.

    Used when a file is renamed after it was predicted (the full outputs are not kept).
    Where the label's character is the best or second-best one the value is exact; otherwise
    it is bounded above by what the two best leave (``1 - p1 - p2``) and by ``p2``, which
    is what it is taken to be.
    """
    if not prediction or len(label) != len(prediction) or len(probs) != len(label):
        return None
    out = []
    for i, ch in enumerate(label):
        if ch == prediction[i]:
            out.append(float(probs[i]))
        elif i < len(runner_up) and ch == runner_up[i] and i < len(runner_up_probs):
            out.append(float(runner_up_probs[i]))
        else:
            p2 = float(runner_up_probs[i]) if i < len(runner_up_probs) else 0.0
            out.append(max(0.0, min(p2, 1.0 - float(probs[i]) - p2)))
    return out


def label_score(char_probs: Sequence[float] | None) -> tuple[float | None, int | None]:
    """The label score and the position of its most suspicious character.

    Args:
        char_probs: From :func:`label_char_probs` (``None``: no score).

    Returns:
        ``(score, position)``: the probability of the weakest of the label's characters
        (non-finite values count as 0) and its position (0-based), or ``(None, None)``.
    """
    if char_probs is None or len(char_probs) == 0:
        return None, None
    p = np.nan_to_num(np.asarray(char_probs, np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, 1.0)
    i = int(np.argmin(p))
    return float(p[i]), i


# ---------------------------------------------------------------- second opinion


def combined_score(first: float | None, second: float | None) -> float | None:
    """Two readers' label scores as one: the larger (a label is doubted only when both doubt it).

    Chosen on the benchmark (docs/BENCHMARKS.md "Label errors"): against the bundled model alone
    it removes the rows where one reader misreads a crop with confidence and the other reads the
    label (93.3 % of the injected errors first against 92.9 %, 100 % with the held-out crop whose
    own label is wrong counted); the product and the mean rank did worse.
    """
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def with_second_opinion(records: Iterable[Any], second: Mapping[str, Any]) -> list[Any]:
    """The records with a second reader's reading and score (``second``: ``{rel: record}``), and
    ``label_score`` the combined one (:func:`combined_score`). Records are copied, not changed."""
    from dataclasses import replace

    out = []
    for r in records:
        rec = r.to_record() if hasattr(r, "to_record") else r
        o = second.get(rec.rel)
        if o is None:
            out.append(rec)
            continue
        out.append(replace(rec, second_prediction=o.prediction or "", second_label_score=o.label_score,
                           label_score=combined_score(rec.label_score, o.label_score)))  # fmt: skip
    return out


# ---------------------------------------------------------------- review order

#: Primary groups of the review order, first shown first.
GROUP_UNREADABLE, GROUP_INVALID, GROUP_SCORED = 0, 1, 2

#: Sort orders a results list can be written in.
SORT_ORDERS = ("score", "cer")


def review_keys(
    error: np.ndarray,
    label_error: np.ndarray,
    score: np.ndarray,
    cer: np.ndarray,
    confidence: np.ndarray,
    by: str = "score",
) -> tuple[np.ndarray, ...]:
    """The one review order, as numpy sort keys (for ``np.lexsort``; the first key is the primary one).

    ``by="score"`` (the default): unreadable, invalid labels, then label score ascending
    (the likeliest label errors first; rows without a score after the scored ones), ties
    by CER descending. ``by="cer"``: the same groups, then CER descending, ties by
    confidence ascending (the order before label scores existed).

    Args:
        error, label_error: Boolean columns (unreadable, invalid label).
        score: Label scores (NaN where none).
        cer: CER (negative where none).
        confidence: The reading's confidence (0 where none).
        by: One of :data:`SORT_ORDERS`.

    Returns:
        The keys, each ascending in review order.
    """
    group = np.where(error, GROUP_UNREADABLE, np.where(label_error, GROUP_INVALID, GROUP_SCORED)).astype(np.int8)
    if by == "cer":
        return group, -cer, confidence
    if by != "score":
        raise ValueError(f"unknown review order {by!r}; expected one of {', '.join(SORT_ORDERS)}")
    return group, np.where(np.isnan(score), 2.0, score), -cer


def sort_for_review(records: Iterable[Any], by: str = "score") -> list[Any]:
    """Records in review order (:func:`review_keys`), ties by file name."""
    recs = list(records)
    if not recs:
        return []
    keys = review_keys(
        np.fromiter((r.error is not None for r in recs), np.bool_, len(recs)),
        np.fromiter((bool(r.label_error) for r in recs), np.bool_, len(recs)),
        np.array([np.nan if r.label_score is None else r.label_score for r in recs], np.float64),
        np.array([-1.0 if r.cer is None else r.cer for r in recs], np.float64),
        np.array([r.confidence or 0.0 for r in recs], np.float64),
        by,
    )
    perm = np.lexsort((np.array([r.rel for r in recs]), *keys[::-1]))
    return [recs[i] for i in perm.tolist()]
