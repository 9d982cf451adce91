"""ResultsModel over the review table: sorting and filtering keep the selection on its sample; edits re-filter."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from core.records import PredictionResult
from gui.review_view import ReviewView
from gui.table_model import COL_CER, COL_FILE, COL_SCORE, ResultsModel


def _Rec(i: int, cer: float | None, pred: str = "皖A00000") -> PredictionResult:  # noqa: N802
    label = f"皖A{i:05d}"
    prediction = label if cer == 0.0 else pred  # correct == (prediction == label), as in core
    score = 0.9 if cer == 0.0 else round(0.5 - (cer or 0) / 2 + (i % 3) / 100, 4)
    return PredictionResult(
        rel=f"{i:03d}-皖A{i:05d}.jpg", label=label, prediction=prediction, probs=[0.9] * 7,
        runner_up_probs=[0.1] * 7, confidence=0.5, cer=cer, correct=cer == 0.0,
        label_probs=[0.95] * 6 + [score], label_score=score,
    )  # fmt: skip


def _setup(qtbot):
    model = ResultsModel()
    table = ReviewView()
    qtbot.addWidget(table)
    table.setModel(model)
    model.set_records([_Rec(i, (i % 7) / 7) for i in range(50)], {})
    return model, table


def _shown(model):
    return [model.row_at(i).rel for i in range(model.rowCount())]


def test_sort_without_filter_keeps_current_sample(qtbot):
    model, table = _setup(qtbot)
    table.select_row(10)
    rel = model.row_at(10).rel
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert _shown(model) == sorted(r.rel for r in model.table.rows)
    assert model.row_at(table.current_row()).rel == rel
    table.sortByColumn(COL_FILE, Qt.SortOrder.DescendingOrder)
    assert _shown(model) == sorted((r.rel for r in model.table.rows), reverse=True)
    assert model.row_at(table.current_row()).rel == rel
    assert model.row_of(rel) is not None and model.table.rows[model.table.row_of(rel)].rel == rel
    assert len(table.selectionModel().selectedRows()) == 1


def test_sort_with_filter_and_edits_refilter(qtbot):
    model, table = _setup(qtbot)
    model.set_text("a0001")  # rows 10..19
    assert sorted(_shown(model)) == sorted(r.rel for r in model.table.rows if "a0001" in r.rel.casefold())
    table.select_row(3)
    rel = model.row_at(3).rel
    table.sortByColumn(COL_CER, Qt.SortOrder.DescendingOrder)
    cers = [model.row_at(i).cer for i in range(model.rowCount())]
    assert cers == sorted(cers, reverse=True) and model.rowCount() == 10
    assert model.row_at(table.current_row()).rel == rel
    model.set_text("")
    model.set_quick("unreviewed", True)
    n = model.rowCount()
    model.set_state(model.row_at(0).rel, "verified")  # dynamic filtering still on after sorts
    assert model.rowCount() == n - 1
    model.resort()
    assert model.rowCount() == n - 1


def test_rows_decode_probabilities_lazily():
    model = ResultsModel()
    rec = _Rec(1, 0.0)
    model.set_records([rec], {})
    row = model.table.rows[0]
    assert row.probs == [0.9] * 7 and row.runner_up_probs == [0.1] * 7


def test_crossval_column_values_tooltip_and_sort(qtbot):
    from gui.table_model import COL_CV, HEADERS, SORT_ROLE

    model, table = _setup(qtbot)
    assert HEADERS[COL_CV] == "CV score"
    rels = sorted(r.rel for r in model.table.rows)
    cv = {rel: PredictionResult(rel=rel, label="", prediction=f"皖B{i:05d}", confidence=0.5, cer=0.5,
                                label_score=(i % 5) / 7) for i, rel in enumerate(rels[:20])}  # fmt: skip
    cv[rels[20]] = PredictionResult(rel=rels[20], label="", error="not a decodable image")
    table.select_row(7)
    current = model.row_at(7).rel
    model.set_crossval(cv)
    i = model.row_of(rels[3])
    assert model.index(i, COL_CV).data() == f"{3 / 7:.3f}"
    assert model.index(i, COL_CV).data(SORT_ROLE)[0] == 3 / 7
    assert "皖B00003" in model.index(i, COL_CV).data(Qt.ItemDataRole.ToolTipRole)
    assert "unreadable" in model.index(model.row_of(rels[20]), COL_CV).data(Qt.ItemDataRole.ToolTipRole)
    no_cv = model.row_of(rels[30])
    assert model.index(no_cv, COL_CV).data() == "" and model.index(no_cv, COL_CV).data(SORT_ROLE)[0] == 2.0
    # The cross-validated score is the label score that orders the review where there is one.
    assert model.index(i, COL_SCORE).data() == f"{3 / 7:.3f}"
    assert "cross-validated" in model.index(i, COL_SCORE).data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(no_cv, COL_SCORE).data() == f"{model.table.rows[no_cv].label_score:.3f}"

    table.sortByColumn(COL_CV, Qt.SortOrder.DescendingOrder)
    keys = [model.index(r, COL_CV).data(SORT_ROLE) for r in range(model.rowCount())]
    assert keys == sorted(keys, reverse=True) and keys[-1][0] == 0.0
    assert model.row_at(table.current_row()).rel == current
    table.sortByColumn(COL_CV, Qt.SortOrder.AscendingOrder)
    keys = [model.index(r, COL_CV).data(SORT_ROLE) for r in range(model.rowCount())]
    assert keys == sorted(keys)
    table.sortByColumn(COL_SCORE, Qt.SortOrder.AscendingOrder)
    keys = [model.index(r, COL_SCORE).data(SORT_ROLE) for r in range(model.rowCount())]
    assert keys == sorted(keys) and model.row_at(0).rel in {rels[0], rels[5], rels[10], rels[15]}  # CV score 0
    # A rename keeps the sample's CV score; a reload of the same records re-applies it.
    model.apply_rename(rels[3], "003-皖A99999.jpg")
    assert model.index(model.row_of("003-皖A99999.jpg"), COL_CV).data() == f"{3 / 7:.3f}"
    model.set_crossval({})
    assert model.index(model.row_of(rels[4]), COL_CV).data() == ""


def test_review_order_by_label_score_and_likely_errors(qtbot):
    """Default order: label score ascending; a rename makes the score follow the new label; the
    'likely' quick filter and count take the rows at or below the threshold."""
    from gui.table_model import SORT_ROLE

    model = ResultsModel()
    recs = [_Rec(i, (i % 7) / 7) for i in range(20)]
    # confident disagreement: the model reads 8 where the label has B (a label error)
    sure = PredictionResult("100-皖AB0000.jpg", "皖AB0000", prediction="皖A80000", probs=[0.99] * 7,
                            runner_up="皖AB0000", runner_up_probs=[0.005] * 7, confidence=0.93, cer=1 / 7,
                            correct=False, label_probs=[0.99, 0.99, 0.005, 0.99, 0.99, 0.99, 0.99],
                            label_score=0.005)  # fmt: skip
    # unsure disagreement: the model's own mistake, with a larger CER
    unsure = PredictionResult("101-皖A11111.jpg", "皖A11111", prediction="皖A77711", probs=[0.99, 0.99, 0.4, 0.4,
                              0.4, 0.99, 0.99], runner_up="皖A11177", runner_up_probs=[0.01, 0.01, 0.35, 0.35, 0.35,
                              0.01, 0.01], confidence=0.06, cer=3 / 7, correct=False,
                              label_probs=[0.99, 0.99, 0.35, 0.35, 0.35, 0.99, 0.99], label_score=0.35)  # fmt: skip
    model.set_records([*recs, unsure, sure], {})
    assert model.sort_column == COL_SCORE and model.table.rows[0].rel == sure.rel
    assert model.table.rows[0].suspect == 2
    keys = [model.index(r, COL_SCORE).data(SORT_ROLE) for r in range(model.rowCount())]
    assert keys == sorted(keys)
    assert model.stats()["likely_errors"] == 1
    model.set_quick("likely", True)
    assert [model.row_at(i).rel for i in range(model.rowCount())] == [sure.rel]
    # Accepting the prediction: the label becomes 皖A80000, its score that of the prediction.
    model.apply_rename(sure.rel, "100-皖A80000.jpg")
    row = model.table.rows[model.table.row_of("100-皖A80000.jpg")]
    assert row.label_score == pytest.approx(0.99) and row.correct
    assert model.rowCount() == 0 and model.stats()["likely_errors"] == 0
    model.set_quick("likely", False)
    # A label naming neither of the two best characters: bounded by what they leave.
    model.apply_rename("101-皖A11111.jpg", "101-皖A22211.jpg")
    row = model.table.rows[model.table.row_of("101-皖A22211.jpg")]
    assert row.label_score == pytest.approx(0.25) and row.suspect == 2


def test_numpy_counts_and_filters_match_the_rows(qtbot):
    model, table = _setup(qtbot)
    model.set_state(model.table.rows[3].rel, "verified")
    model.set_state(model.table.rows[4].rel, "fixed")
    assert model.stats() == pytest.approx(_stats(list(model.table.rows)))
    model.set_quick("unreviewed", True)
    model.set_text("a0002")
    shown = [model.row_at(i) for i in range(model.rowCount())]
    assert model.stats() == pytest.approx(_stats(shown)) and shown == model.shown_rows()
    assert all(r.state == "unreviewed" and "a0002" in r.rel.casefold() for r in shown)


def _passes(model, row) -> bool:
    """The filters, judged row by row in Python (the table does it with numpy over its columns)."""
    q, text = model.quick, model.table.text
    return (("mismatches" not in q or row.mismatch) and ("unreviewed" not in q or row.state == "unreviewed")
            and (not text or text in row.haystack))  # fmt: skip


def _stats(rows) -> dict:
    """The counts, row by row in Python."""
    scored = [r for r in rows if not r.error and not r.label_error and r.prediction]
    return {
        "n": len(rows),
        "predicted": len(scored),
        "accuracy": sum(bool(r.correct) for r in scored) / len(scored) if scored else None,
        "cer": sum(r.cer or 0.0 for r in scored) / len(scored) if scored else None,
        "reviewed": sum(r.state in ("verified", "fixed") for r in rows),
        "unreadable": sum(r.error is not None for r in rows),
        "invalid": sum(not r.error and bool(r.label_error) for r in rows),
        "likely_errors": sum(r.label_score is not None and r.label_score <= 0.01 for r in rows),
        "duplicate_conflicts": 0,
    }


def _expected(model, key, reverse=False):
    """The rels the model should show: the rows passing its filters, in order of ``key``."""
    passing = [r for r in model.table.rows if _passes(model, r)]
    return [r.rel for r in sorted(passing, key=key, reverse=reverse)]


def test_sort_with_a_filter_on_orders_the_shown_rows_and_keeps_the_selection(qtbot):
    model, table = _setup(qtbot)
    model.set_quick("mismatches", True)  # the 42 rows whose CER is not 0
    assert model.rowCount() == 42
    table.select_row(5)
    rel = model.row_at(5).rel
    for col, order, key in ((COL_FILE, Qt.SortOrder.AscendingOrder, lambda r: r.rel),
                            (COL_FILE, Qt.SortOrder.DescendingOrder, lambda r: r.rel),
                            (COL_CER, Qt.SortOrder.AscendingOrder, lambda r: r.cer)):  # fmt: skip
        table.sortByColumn(col, order)
        assert _shown(model) == _expected(model, key, reverse=order == Qt.SortOrder.DescendingOrder)
        assert model.row_at(table.current_row()).rel == rel
        assert len(table.selectionModel().selectedRows()) == 1
        assert [model.row_of(x) for x in _shown(model)[:3]] == [0, 1, 2]
    # An edit under the filter, then a sort: the rows shown still match the filter.
    model.set_quick("unreviewed", True)
    gone = model.row_at(0).rel
    model.set_state(gone, "verified")
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert gone not in _shown(model) and _shown(model) == _expected(model, lambda r: r.rel)
    # Filters off: every row, in one sorted order, selection kept.
    model.set_quick("unreviewed", False)
    model.set_quick("mismatches", False)
    assert model.rowCount() == 50 and _shown(model) == sorted(r.rel for r in model.table.rows)
    assert [r.rel for r in model.table.rows] == _shown(model)
    assert model.row_at(table.current_row()).rel == rel
    # A filter that hides rows after a sort under another filter (the source is re-sorted first).
    model.set_text("a0001")
    table.sortByColumn(COL_FILE, Qt.SortOrder.DescendingOrder)
    model.set_quick("mismatches", True)  # hides 014 (CER 0)
    assert _shown(model) == _expected(model, lambda r: r.rel, reverse=True) and len(_shown(model)) == 9
    model.set_text("")
    assert _shown(model) == _expected(model, lambda r: r.rel, reverse=True) and len(_shown(model)) == 42


def test_remove_rows_keeps_the_rest_selection_counts_and_cv(qtbot):
    from gui.table_model import COL_CV

    model, table = _setup(qtbot)
    rels = [r.rel for r in model.table.rows]
    model.set_crossval({rel: PredictionResult(rel=rel, label="", prediction="", cer=0.5, label_score=0.5)
                        for rel in rels[10:13]})  # fmt: skip
    model.set_state(rels[12], "verified")
    table.select_row(20)
    current = model.row_at(20)
    model.set_quick("unreviewed", True)
    assert model.remove([rels[0], rels[11], "not-in-the-table.jpg", rels[30]]) == 3
    removed = {rels[0], rels[11], rels[30]}
    assert len(model.table) == 47 and [r.rel for r in model.table.rows] == [r for r in rels if r not in removed]
    assert all(model.row_of(r) is None for r in (rels[0], rels[11], rels[30]))
    assert all(model.table.rows[model.table.row_of(r.rel)] is r for r in model.table.rows)
    assert model.row_at(table.current_row()) is current
    assert model.rowCount() == 46 and _shown(model) == [r.rel for r in model.table.rows if r.state == "unreviewed"]
    assert model.stats() == pytest.approx(_stats(model.shown_rows()))
    assert model.index(model.row_of(rels[10]), COL_CV).data() == "0.500"
    assert model.index(model.row_of(rels[13]), COL_CV).data() == ""
    model.remove([current.rel])
    assert not table.currentIndex().isValid() and len(model.table) == 46
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert _shown(model) == sorted(r.rel for r in model.table.rows if r.state == "unreviewed")
