"""core.review_table: the review's order, filters and counts, checked row by row in Python (no Qt)."""

from __future__ import annotations

import random
from itertools import product

import pytest

from core.label_score import LIKELY_ERROR_THRESHOLD, sort_for_review
from core.records import PredictionResult
from core.review_table import QUICK_FILTERS, SORT_KEYS, ReviewTable, shown_state


def _records(n: int = 60, seed: int = 0) -> list[PredictionResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = f"皖A{i:05d}"
        kind = rng.random()
        if kind < 0.08:  # unreadable
            out.append(PredictionResult(f"{i:03d}-{label}.jpg", label, error="not a decodable image"))
            continue
        if kind < 0.15:  # invalid label
            out.append(PredictionResult(f"{i:03d}-bad{i}.jpg", "bad", label_error="not a plate", prediction=label,
                                        confidence=0.5, probs=[0.9] * 7))  # fmt: skip
            continue
        correct = rng.random() < 0.6
        pred = label if correct else f"皖B{i:05d}"
        score = round(rng.uniform(0.5, 1.0) if correct else rng.uniform(0.0, 0.4), 3)
        out.append(PredictionResult(
            f"{i:03d}-{label}.jpg", label, prediction=pred, probs=[0.9] * 7, confidence=round(rng.random(), 3),
            cer=0.0 if correct else round(rng.choice([1, 2, 3]) / 7, 4), correct=correct,
            label_probs=[0.99] * 6 + [score], label_score=score,
        ))  # fmt: skip
    return out


def _passes(row, quick, text, table) -> bool:
    """The filters, row by row."""
    score = table.score_shown(row.k)
    checks = {
        "likely": score is not None and score <= LIKELY_ERROR_THRESHOLD,
        "duplicates": table.in_conflict(row.rel),
        "mismatches": row.mismatch,
        "unreviewed": row.state == "unreviewed",
        "invalid": bool(row.label_error),
        "unreadable": bool(row.error),
    }
    return all(checks[q] for q in quick) and (not text or text in row.haystack)


@pytest.fixture
def table() -> ReviewTable:
    t = ReviewTable()
    t.set_records(_records(), {"005-皖A00005.jpg": "verified", "006-皖A00006.jpg": "fixed"})
    return t


def test_the_review_order_is_the_csv_order(table):
    """The default order of the table is the one review order (core.label_score), as the CSV writes it."""
    recs = _records()
    assert [r.rel for r in table.rows] == [r.rel for r in sort_for_review(recs)]
    by_cer = ReviewTable()
    by_cer.set_records(recs, {})
    by_cer.sort("cer", descending=True)
    assert [r.rel for r in by_cer.rows] == [r.rel for r in sort_for_review(recs, "cer")]


@pytest.mark.parametrize("key", SORT_KEYS)
def test_every_sort_key_both_ways_is_stable_and_ordered(table, key):
    python_key = {
        "file": lambda r: r.rel, "label": lambda r: r.label, "prediction": lambda r: r.prediction,
        "confidence": lambda r: -1.0 if r.error else r.confidence,
    }.get(key)  # fmt: skip
    for descending in (False, True):
        before = [r.rel for r in table.rows]
        table.sort(key, descending)
        rows = list(table.rows)
        assert sorted(r.rel for r in rows) == sorted(before)
        if python_key is not None:
            values = [python_key(r) for r in rows]
            assert values == sorted(values, reverse=descending)
            # ties keep the order they had
            for a, b in zip(rows, rows[1:]):
                if python_key(a) == python_key(b):
                    assert before.index(a.rel) < before.index(b.rel)


def test_missing_files_come_first_in_the_review_order(table):
    last = table.rows[-1].rel
    table.mark_missing(last)
    table.sort()
    assert table.rows[0].rel == last and table.rows[0].display_state == "missing"


@pytest.mark.parametrize("quick", [(), ("mismatches",), ("unreviewed",), ("likely",), ("invalid",), ("unreadable",),
                                   ("mismatches", "unreviewed")])  # fmt: skip
@pytest.mark.parametrize("text", ["", "a0001", "bad"])
def test_filters_match_the_rows_one_by_one(table, quick, text):
    table.set_filter(text.upper(), quick)  # matched case-insensitively
    expected = [r.rel for r in table.rows if _passes(r, quick, text, table)]
    assert [r.rel for r in table.shown_rows()] == expected
    assert [table.view_row_of(rel) for rel in expected] == list(range(len(expected)))


def test_unknown_filters_and_keys_are_refused(table):
    with pytest.raises(ValueError, match="quick filter"):
        table.set_filter("", ["nope"])
    with pytest.raises(ValueError, match="sort key"):
        table.sort("nope")
    assert set(QUICK_FILTERS) >= {"likely", "mismatches"}


def test_an_edit_moves_a_row_out_of_and_into_the_filtered_rows(table):
    table.set_filter("", ["unreviewed"])
    shown = [r.rel for r in table.shown_rows()]
    rel = shown[3]
    k = table.set_state(rel, "verified")
    assert table.visibility_change(k) == ("hide", 3)
    table.apply_visibility(k)
    assert [r.rel for r in table.shown_rows()] == shown[:3] + shown[4:]
    k = table.set_state(rel, "unreviewed")
    assert table.visibility_change(k) == ("show", 3)  # back at its place in the order
    table.apply_visibility(k)
    assert [r.rel for r in table.shown_rows()] == shown
    assert table.visibility_change(k) is None


def test_added_rows_are_appended_and_filtered_until_the_next_sort():
    recs = _records()
    t = ReviewTable()
    t.set_records(recs[:40], {})
    t.set_filter("", ["mismatches"])
    changed, shown_new = t.add(recs[40:] + [recs[0]], {})
    assert changed == [0] and t.needs_resort
    new_mismatches = [r.rel for r in recs[40:] if r.error or r.label_error or not r.correct]
    assert shown_new == len(new_mismatches)
    assert [r.rel for r in t.shown_rows()][-shown_new:] == new_mismatches
    t.sort()
    assert not t.needs_resort
    assert [r.rel for r in t.shown_rows()] == [r.rel for r in sort_for_review(recs) if r.rel in
                                               {x.rel for x in t.rows if x.mismatch}]  # fmt: skip


def test_remove_compacts_and_keeps_order_states_and_crossval(table):
    rels = [r.rel for r in table.rows]
    cv_rel = rels[10]
    table.set_crossval({cv_rel: PredictionResult(cv_rel, "", prediction="皖A00000", label_score=0.002)})
    table.set_filter("", ["unreviewed"])
    assert table.remove([rels[0], rels[1], "not-there.jpg"]) == 2
    assert len(table) == len(rels) - 2 and [r.rel for r in table.rows] == rels[2:]
    assert table.reading_of("cv", cv_rel).label_score == 0.002 and table.score_shown(table.k_of(cv_rel)) == 0.002
    assert table.row_of(rels[0]) is None and table.k_of(rels[2]) is not None
    assert [r.rel for r in table.shown_rows()] == [r.rel for r in table.rows if r.state == "unreviewed"]


def test_rename_moves_the_label_and_the_score(table):
    row = next(r for r in table.rows if r.prediction and not r.correct and not r.label_error)
    new = f"{row.rel[:3]}-{row.prediction}.jpg"
    k = table.rename(row.rel, new)
    assert table.row_k(k).label == row.prediction and table.row_k(k).correct
    assert table.k_of(new) == k and table.row_of(new) is not None
    table.set_filter(row.prediction.lower(), [])
    assert [r.rel for r in table.shown_rows()] == [new] or new in [r.rel for r in table.shown_rows()]


def test_counts_match_the_rows(table):
    def count(rows):
        scored = [r for r in rows if not r.error and not r.label_error and r.prediction]
        return {
            "n": len(rows),
            "predicted": len(scored),
            "accuracy": sum(bool(r.correct) for r in scored) / len(scored),
            "cer": sum(r.cer or 0.0 for r in scored) / len(scored),
            "reviewed": sum(r.state in ("verified", "fixed") for r in rows),
            "unreadable": sum(bool(r.error) for r in rows),
            "invalid": sum(not r.error and bool(r.label_error) for r in rows),
            "likely_errors": sum(r.label_score is not None and r.label_score <= LIKELY_ERROR_THRESHOLD for r in rows),
            "duplicate_conflicts": 0,
        }

    assert table.stats() == pytest.approx(count(list(table.rows)))
    table.set_filter("a000", ["unreviewed"])
    assert table.stats() == pytest.approx(count(table.shown_rows()))
    assert table.stats(shown_only=False) == pytest.approx(count(list(table.rows)))


def test_the_shown_state_is_one_rule_for_rows_and_columns():
    t = ReviewTable()
    recs, combos = [], list(product(["unreviewed", "verified", "fixed"], [None, "bad image"], [None, "bad"], [0, 1]))
    for i, (_state, error, label_error, _missing) in enumerate(combos):
        recs.append(PredictionResult(f"{i}.jpg", "x", error=error, label_error=label_error))
    t.set_records(recs, {f"{i}.jpg": c[0] for i, c in enumerate(combos)})
    for i, combo in enumerate(combos):
        if combo[3]:
            t.mark_missing(f"{i}.jpg")
    codes = t._display_codes()
    for i, (state, error, label_error, missing) in enumerate(combos):
        k = t.k_of(f"{i}.jpg")
        expected = shown_state(state, error, label_error, bool(missing))
        assert t.row_k(k).display_state == expected == t._state_names[codes[k]]


def test_duplicates_with_other_labels_are_conflicts(table):
    class Group:
        def __init__(self, rels):
            self.rels = rels

    a, b, c = (r.rel for r in list(table.rows)[:3])
    assert table.set_duplicates([Group([a, b])]) and table.in_conflict(a)
    assert [r.rel for r in table.duplicates_of(a)] == [b]
    table.set_filter("", ["duplicates"])
    assert {r.rel for r in table.shown_rows()} == {a, b}
    assert table.stats()["duplicate_conflicts"] == 2 and not table.in_conflict(c)
    assert not ReviewTable().set_duplicates([])  # nothing before, nothing after: no change


def test_a_second_reader_combines_scores_and_follows_renames():
    """Two readers agreeing against a label rank it first; one reader's own doubt alone does not."""
    both = PredictionResult("0-皖A11111.jpg", "皖A11111", prediction="皖A77777", probs=[0.9] * 7, runner_up="皖A11111",
                            runner_up_probs=[0.05] * 7, cer=5 / 7, correct=False, label_score=0.05)  # fmt: skip
    first_only = PredictionResult("1-皖A22222.jpg", "皖A22222", prediction="皖A88888", probs=[0.9] * 7,
                                  cer=5 / 7, correct=False, label_score=0.001)  # fmt: skip
    fine = PredictionResult("2-皖A33333.jpg", "皖A33333", prediction="皖A33333", cer=0.0, correct=True, label_score=0.9)
    t = ReviewTable()
    t.set_records([both, first_only, fine], {})
    assert [r.rel for r in t.rows][0] == first_only.rel  # one reader alone: its own confident misreading first
    second = {
        both.rel: PredictionResult(
            both.rel,
            both.label,
            prediction="皖A77777",
            probs=[0.95] * 7,
            runner_up="皖A11111",
            runner_up_probs=[0.02] * 7,
            label_score=0.02,
        ),  # fmt: skip
        first_only.rel: PredictionResult(first_only.rel, first_only.label, prediction="皖A22222", label_score=0.97),
    }
    t.set_second(second)
    assert t.needs_resort
    t.sort()
    assert [r.rel for r in t.rows][0] == both.rel
    assert t.score_shown(t.k_of(both.rel)) == 0.05 and t.score_shown(t.k_of(first_only.rel)) == 0.97
    assert t.score_shown(t.k_of(fine.rel)) == 0.9  # no second reading: the first reader's score
    t.set_filter("", ["likely"])
    assert [r.rel for r in t.shown_rows()] == []  # 0.05 and 0.97 are above the threshold
    # Accepting the readers' plate: the second reader's score follows the new label too.
    k = t.rename(both.rel, "0-皖A77777.jpg")
    assert (
        t.reading_of("second", "0-皖A77777.jpg").label_score == pytest.approx(0.95)
        and t.reading_of("second", both.rel) is None
    )
    assert t.score_shown(k) == pytest.approx(0.95)
    t.set_second({})
    assert not t.has_second and t.score_shown(t.k_of(first_only.rel)) == 0.001


def test_narrowing_by_province_position_confusion_score_and_state():
    from core.review_table import Narrowing

    recs = [
        PredictionResult(
            "a-皖A12345.jpg", "皖A12345", prediction="皖A12845", cer=1 / 7, correct=False, label_score=0.3
        ),
        PredictionResult(
            "b-皖B33333.jpg", "皖B33333", prediction="皖B33383", cer=1 / 7, correct=False, label_score=0.001
        ),
        PredictionResult("c-沪C44444.jpg", "沪C44444", prediction="沪C44444", cer=0.0, correct=True, label_score=0.97),
        PredictionResult(
            "d-沪D35555.jpg", "沪D35555", prediction="沪D85555", cer=1 / 7, correct=False, label_score=0.2
        ),
        PredictionResult("e-沪E66666.jpg", "沪E66666", error="not a decodable image"),
    ]
    t = ReviewTable()
    t.set_records(recs, {"c-沪C44444.jpg": "verified"})

    def shown(**kw) -> list[str]:
        t.set_filter("", [], Narrowing(**kw))
        return sorted(r.rel[0] for r in t.shown_rows())

    assert shown(province="沪") == ["c", "d", "e"]
    assert shown(position=4) == ["a"] and shown(position=5) == ["b"] and shown(position=2) == ["d"]
    assert shown(confusion=("3", "8")) == ["a", "b", "d"] and shown(confusion=("5", "8")) == []
    assert shown(score_min=0.1, score_max=0.5) == ["a", "d"] and shown(score_max=0.01) == ["b"]
    assert shown(state="verified") == ["c"] and shown(state="unreadable") == ["e"]
    for rel, conf in (
        ("a-皖A12345.jpg", 0.4),
        ("b-皖B33333.jpg", 0.9),
        ("c-沪C44444.jpg", 0.99),
        ("d-沪D35555.jpg", 0.6),
    ):
        t.row_k(t.k_of(rel)).confidence = conf
        t._sync(t.k_of(rel))
    assert shown(conf_max=0.5) == ["a"] and shown(conf_min=0.5) == ["b", "c", "d"]  # e: no reading, no confidence
    assert shown(province="沪", confusion=("3", "8")) == ["d"]
    assert t.stats()["n"] == 1
    t.set_filter("", [], Narrowing())
    assert len(t.shown_rows()) == 5 and not t.filtering
    assert t.confusions() == {("3", "8"): 3}
    t.set_filter("", [], Narrowing(province="皖"))
    assert t.confusions(shown_only=True) == {("3", "8"): 2}


def test_a_rename_moves_the_cross_validated_score_with_the_label():
    """Accepting what a model that never saw the crop read makes its own score of the label high."""
    rec = PredictionResult("0-皖A11111.jpg", "皖A11111", prediction="皖A11111", probs=[0.9] * 7, runner_up="皖A11111",
                           runner_up_probs=[0.01] * 7, cer=0.0, correct=True, label_score=0.9)  # fmt: skip
    cv = PredictionResult(rec.rel, rec.label, prediction="皖A77111", probs=[0.95] * 7, runner_up="皖A11777",
                          runner_up_probs=[0.03] * 7, cer=2 / 7, correct=False, label_score=0.03)  # fmt: skip
    t = ReviewTable()
    t.set_records([rec], {})
    t.set_crossval({rec.rel: cv})
    assert t.score_shown(0) == 0.03
    t.rename(rec.rel, "0-皖A77111.jpg")
    assert t.reading_of("cv", "0-皖A77111.jpg").label_score == pytest.approx(0.95) and t.score_shown(
        0
    ) == pytest.approx(0.95)


def test_a_rename_moves_a_cross_validated_score_read_back_from_the_store(tmp_path):
    """After a restart the k-fold scores are rows read back from the store, not fresh records: a rename
    must move them too (it raised AttributeError on the row's missing second-opinion fields)."""
    from core.store import Store, scan_files

    (tmp_path / "0-皖A11111.jpg").write_bytes(b"not read here")
    rec = PredictionResult("0-皖A11111.jpg", "皖A11111", prediction="皖A11111", probs=[0.9] * 7, runner_up="皖A11111",
                           runner_up_probs=[0.01] * 7, cer=0.0, correct=True, label_score=0.9)  # fmt: skip
    cv = PredictionResult(rec.rel, rec.label, prediction="皖A77111", probs=[0.95] * 7, runner_up="皖A11777",
                          runner_up_probs=[0.03] * 7, cer=2 / 7, correct=False, label_score=0.03)  # fmt: skip
    with Store.open(tmp_path) as s:
        s.put_crossval([cv], {"folds": 5})
        stored = s.crossval(scan_files(tmp_path))
    assert type(stored[rec.rel]) is not PredictionResult
    t = ReviewTable()
    t.set_records([rec], {})
    t.set_crossval(stored)
    t.rename(rec.rel, "0-皖A77111.jpg")
    assert t.reading_of("cv", "0-皖A77111.jpg").label_score == pytest.approx(0.95)
