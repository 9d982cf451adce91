"""Accuracy and character error rate, as the notebook measures them (torchmetrics)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein


def cer(prediction: str, label: str) -> float:
    """Character error rate of one prediction against its label.

    The same figure as torchmetrics' CharErrorRate (edit distance / label length;
    a test checks they agree), computed with rapidfuzz because it is called once per
    sample on folders of 200,000 crops and torchmetrics costs ~90 us a call.
    """
    if not label:
        return 1.0 if prediction else 0.0
    return Levenshtein.distance(prediction, label) / len(label)


def corpus_cer(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """Total edit distance over total label length, as torchmetrics.CharErrorRate computes it."""
    if not labels:
        return 0.0
    from torchmetrics.functional.text import char_error_rate  # imports torch: only when asked

    return float(char_error_rate(list(predictions), list(labels)))


@dataclass
class EvalReport:
    """Figures of a set of predictions against labels (for `plate-review eval`)."""

    n: int
    accuracy: float
    cer: float
    char_accuracy: float
    per_position: list[float]
    confusions: list[tuple[str, str, int]] = field(default_factory=list)


def evaluate_strings(predictions: Sequence[str], labels: Sequence[str], top_confusions: int = 15) -> EvalReport:
    """Exact match, CER, per-position accuracy and the most frequent (label -> predicted) confusions."""
    n = len(labels)
    if n == 0:
        return EvalReport(0, 0.0, 0.0, 0.0, [])
    width = max(len(x) for x in labels)
    pos_ok = [0] * width
    pos_n = [0] * width
    conf: Counter[tuple[str, str]] = Counter()
    exact = 0
    for p, t in zip(predictions, labels):
        exact += p == t
        for i, ch in enumerate(t):
            pos_n[i] += 1
            q = p[i] if i < len(p) else ""
            if q == ch:
                pos_ok[i] += 1
            else:
                conf[(ch, q or "∅")] += 1
    per_pos = [ok / m if m else 0.0 for ok, m in zip(pos_ok, pos_n)]
    return EvalReport(
        n=n,
        accuracy=exact / n,
        cer=corpus_cer(predictions, labels),
        char_accuracy=sum(pos_ok) / max(1, sum(pos_n)),
        per_position=per_pos,
        confusions=[(a, b, c) for (a, b), c in conf.most_common(top_confusions)],
    )
