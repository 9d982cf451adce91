"""core.label_score: the label score, its suspicious character, the review order, a second opinion."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from core.label_score import (
    combined_score,
    label_char_probs,
    label_char_probs_from_top2,
    label_score,
    sort_for_review,
    with_second_opinion,
)
from core.plates import OTHERS, PROVINCES
from core.records import PredictionResult


def test_score_of_constructed_probabilities_and_its_suspicious_character():
    first = np.full(len(PROVINCES), 0.001)
    first[PROVINCES.index("皖")] = 0.97
    tail = np.full((6, len(OTHERS)), 0.001)
    for i, ch in enumerate("A80000"):
        tail[i, OTHERS.index(ch)] = 0.95
    tail[1, OTHERS.index("B")] = 0.02  # the label says B where the model sees an 8
    lp = label_char_probs("皖AB0000", first, tail, PROVINCES, OTHERS)
    assert lp == pytest.approx([0.97, 0.95, 0.02, 0.95, 0.95, 0.95, 0.95])
    assert label_score(lp) == (pytest.approx(0.02), 2)
    assert label_char_probs("皖AB000", first, tail, PROVINCES, OTHERS) is None  # 6 characters
    assert label_score(None) == (None, None) and label_score([0.5, float("nan")]) == (0.0, 1)
    # from a stored record's two best characters: exact where known, bounded where not
    top2 = label_char_probs_from_top2("皖AB0000", "皖A80000", [0.97] + [0.95] * 6, "京AB1111", [0.01, 0.01, 0.02, 0.01, 0.01, 0.01, 0.01])  # fmt: skip
    assert top2[2] == pytest.approx(0.02) and top2[3] == pytest.approx(0.95)


def test_a_second_opinion_ranks_what_both_readers_doubt_first():
    mk = PredictionResult
    first = [
        mk("both-doubt", "皖AB0000", prediction="皖A80000", cer=1 / 7, label_score=0.01),
        mk("own-misread", "皖A12345", prediction="皖A12845", cer=1 / 7, label_score=0.003),
        mk("fine", "皖A11111", prediction="皖A11111", cer=0.0, label_score=0.98),
    ]
    second = {
        "both-doubt": mk("both-doubt", "皖AB0000", prediction="皖A80000", label_score=0.02),
        "own-misread": mk("own-misread", "皖A12345", prediction="皖A12345", label_score=0.9),
    }
    combined = with_second_opinion(first, second)
    assert [r.rel for r in sort_for_review(combined)] == ["both-doubt", "own-misread", "fine"]
    assert combined[0].second_prediction == "皖A80000" and combined[0].label_score == 0.02
    assert combined[2].second_label_score is None and combined[2].label_score == 0.98  # no second reading
    assert first[0].label_score == 0.01  # the inputs are not changed
    assert combined_score(None, 0.3) == 0.3 and combined_score(0.2, None) == 0.2


def test_predict_with_a_second_model_writes_both_readings(tmp_path, random_checkpoint):
    from core.cli import main as cli

    from ._util import copy_real

    folder = tmp_path / "ds"
    copy_real(folder, 6)
    out = tmp_path / "r.csv"
    assert cli(["predict", str(folder), "--out", str(out), "--second-model", str(random_checkpoint)]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(rows[0])[6:11] == ["label_score", "zoomed", "negative", "second_prediction", "second_label_score"]
    assert all(r["second_prediction"] for r in rows)
    # the combined score is the larger of the two readers' scores
    assert all(float(r["label_score"]) >= float(r["second_label_score"]) - 1e-6 for r in rows)
    # again: both readings now come from the store (read back rows, not fresh records), the same CSV
    first = out.read_bytes()
    assert cli(["predict", str(folder), "--out", str(out), "--second-model", str(random_checkpoint)]) == 0
    assert out.read_bytes() == first
