"""ResultsModel / ResultsProxy: sorting through the source keeps the selection on its sample, with and without filters."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from core.records import PredictionResult
from gui.table_model import COL_CER, COL_FILE, COL_SCORE, ResultsModel, ResultsProxy, ReviewTable


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
    proxy = ResultsProxy()
    proxy.setSourceModel(model)
    table = ReviewTable()
    qtbot.addWidget(table)
    table.setModel(proxy)
    model.set_records([_Rec(i, (i % 7) / 7) for i in range(50)], {})
    return model, proxy, table


def _shown(proxy):
    return [proxy.row_at(i).rel for i in range(proxy.rowCount())]


def test_sort_without_filter_keeps_current_sample(qtbot):
    model, proxy, table = _setup(qtbot)
    table.select_proxy_row(10)
    rel = proxy.row_at(10).rel
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert _shown(proxy) == sorted(r.rel for r in model.rows)
    assert proxy.row_at(table.current_proxy_row()).rel == rel
    table.sortByColumn(COL_FILE, Qt.SortOrder.DescendingOrder)
    assert _shown(proxy) == sorted((r.rel for r in model.rows), reverse=True)
    assert proxy.row_at(table.current_proxy_row()).rel == rel
    assert model.row_of(rel) is not None and model.rows[model.row_of(rel)].rel == rel
    assert len(table.selectionModel().selectedRows()) == 1


def test_sort_with_filter_and_edits_refilter(qtbot):
    model, proxy, table = _setup(qtbot)
    proxy.set_text("a0001")  # rows 10..19
    assert sorted(_shown(proxy)) == sorted(r.rel for r in model.rows if "a0001" in r.rel.casefold())
    table.select_proxy_row(3)
    rel = proxy.row_at(3).rel
    table.sortByColumn(COL_CER, Qt.SortOrder.DescendingOrder)
    cers = [proxy.row_at(i).cer for i in range(proxy.rowCount())]
    assert cers == sorted(cers, reverse=True) and proxy.rowCount() == 10
    assert proxy.row_at(table.current_proxy_row()).rel == rel
    proxy.set_text("")
    proxy.set_quick("unreviewed", True)
    n = proxy.rowCount()
    model.set_state(proxy.row_at(0).rel, "verified")  # dynamic filtering still on after sorts
    assert proxy.rowCount() == n - 1
    model.resort()
    assert proxy.rowCount() == n - 1
    assert proxy.dynamicSortFilter()


def test_rows_decode_probabilities_lazily():
    model = ResultsModel()
    rec = _Rec(1, 0.0)
    model.set_records([rec], {})
    row = model.rows[0]
    assert row.probs == [0.9] * 7 and row.runner_up_probs == [0.1] * 7


def test_crossval_column_values_tooltip_and_sort(qtbot):
    from gui.table_model import COL_CV, HEADERS, SORT_ROLE

    model, proxy, table = _setup(qtbot)
    assert HEADERS[COL_CV] == "CV score"
    rels = sorted(r.rel for r in model.rows)
    cv = {rel: PredictionResult(rel=rel, label="", prediction=f"皖B{i:05d}", confidence=0.5, cer=0.5,
                                label_score=(i % 5) / 7) for i, rel in enumerate(rels[:20])}  # fmt: skip
    cv[rels[20]] = PredictionResult(rel=rels[20], label="", error="not a decodable image")
    table.select_proxy_row(7)
    current = proxy.row_at(7).rel
    model.set_crossval(cv)
    i = model.row_of(rels[3])
    assert model.index(i, COL_CV).data() == f"{3 / 7:.3f}"
    assert model.index(i, COL_CV).data(SORT_ROLE) == 3 / 7
    assert "皖B00003" in model.index(i, COL_CV).data(Qt.ItemDataRole.ToolTipRole)
    assert "unreadable" in model.index(model.row_of(rels[20]), COL_CV).data(Qt.ItemDataRole.ToolTipRole)
    no_cv = model.row_of(rels[30])
    assert model.index(no_cv, COL_CV).data() == "" and model.index(no_cv, COL_CV).data(SORT_ROLE) == 2.0
    # The cross-validated score is the label score that orders the review where there is one.
    assert model.index(i, COL_SCORE).data() == f"{3 / 7:.3f}"
    assert "cross-validated" in model.index(i, COL_SCORE).data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(no_cv, COL_SCORE).data() == f"{model.rows[no_cv].label_score:.3f}"

    table.sortByColumn(COL_CV, Qt.SortOrder.DescendingOrder)
    keys = [proxy.index(r, COL_CV).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert keys == sorted(keys, reverse=True) and keys[-1] == 0.0
    assert proxy.row_at(table.current_proxy_row()).rel == current
    table.sortByColumn(COL_CV, Qt.SortOrder.AscendingOrder)
    keys = [proxy.index(r, COL_CV).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert keys == sorted(keys)
    table.sortByColumn(COL_SCORE, Qt.SortOrder.AscendingOrder)
    keys = [proxy.index(r, COL_SCORE).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert keys == sorted(keys) and proxy.row_at(0).rel in {rels[0], rels[5], rels[10], rels[15]}  # CV score 0
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
    proxy = ResultsProxy()
    proxy.setSourceModel(model)
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
    assert model.sort_column == COL_SCORE and model.rows[0].rel == sure.rel
    assert model.rows[0].suspect == 2
    keys = [model.index(r, COL_SCORE).data(SORT_ROLE) for r in range(model.rowCount())]
    assert keys == sorted(keys)
    assert proxy.stats()["likely_errors"] == 1
    proxy.set_quick("likely", True)
    assert [proxy.row_at(i).rel for i in range(proxy.rowCount())] == [sure.rel]
    # Accepting the prediction: the label becomes 皖A80000, its score that of the prediction.
    model.apply_rename(sure.rel, "100-皖A80000.jpg")
    row = model.rows[model.row_of("100-皖A80000.jpg")]
    assert row.label_score == pytest.approx(0.99) and row.correct
    assert proxy.rowCount() == 0 and proxy.stats()["likely_errors"] == 0
    proxy.set_quick("likely", False)
    # A label naming neither of the two best characters: bounded by what they leave.
    model.apply_rename("101-皖A11111.jpg", "101-皖A22211.jpg")
    row = model.rows[model.row_of("101-皖A22211.jpg")]
    assert row.label_score == pytest.approx(0.25) and row.suspect == 2


def test_numpy_counts_and_filters_match_the_rows(qtbot):
    from gui.table_model import stats

    model, proxy, table = _setup(qtbot)
    model.set_state(model.rows[3].rel, "verified")
    model.set_state(model.rows[4].rel, "fixed")
    assert proxy.stats() == pytest.approx(stats(list(model.rows)))
    proxy.set_quick("unreviewed", True)
    proxy.set_text("a0002")
    shown = [proxy.row_at(i) for i in range(proxy.rowCount())]
    assert proxy.stats() == pytest.approx(stats(shown)) and shown == proxy.shown_rows()
    assert all(r.state == "unreviewed" and "a0002" in r.rel.casefold() for r in shown)


def _expected(model, proxy, key, reverse=False):
    """The rels the proxy should show: the rows passing its filters, in order of ``key``."""
    passing = [r for r in model.rows if proxy.accepts(r)]
    return [r.rel for r in sorted(passing, key=key, reverse=reverse)]


def test_sort_with_a_filter_on_orders_the_shown_rows_and_keeps_the_selection(qtbot):
    model, proxy, table = _setup(qtbot)
    proxy.set_quick("mismatches", True)  # the 42 rows whose CER is not 0
    assert proxy.rowCount() == 42
    table.select_proxy_row(5)
    rel = proxy.row_at(5).rel
    for col, order, key in ((COL_FILE, Qt.SortOrder.AscendingOrder, lambda r: r.rel),
                            (COL_FILE, Qt.SortOrder.DescendingOrder, lambda r: r.rel),
                            (COL_CER, Qt.SortOrder.AscendingOrder, lambda r: r.cer)):  # fmt: skip
        table.sortByColumn(col, order)
        assert _shown(proxy) == _expected(model, proxy, key, reverse=order == Qt.SortOrder.DescendingOrder)
        assert proxy.row_at(table.current_proxy_row()).rel == rel
        assert len(table.selectionModel().selectedRows()) == 1
        assert [proxy.mapToSource(proxy.index(i, 0)).row() for i in range(3)] == [
            model.row_of(x) for x in _shown(proxy)[:3]]  # fmt: skip
    # An edit under the filter, then a sort: the rows shown still match the filter.
    proxy.set_quick("unreviewed", True)
    gone = proxy.row_at(0).rel
    model.set_state(gone, "verified")
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert gone not in _shown(proxy) and _shown(proxy) == _expected(model, proxy, lambda r: r.rel)
    # Filters off: every row, in one sorted order, selection kept.
    proxy.set_quick("unreviewed", False)
    proxy.set_quick("mismatches", False)
    assert proxy.rowCount() == 50 and _shown(proxy) == sorted(r.rel for r in model.rows)
    assert [r.rel for r in model.rows] == _shown(proxy)
    assert proxy.row_at(table.current_proxy_row()).rel == rel
    # A filter that hides rows after a sort under another filter (the source is re-sorted first).
    proxy.set_text("a0001")
    table.sortByColumn(COL_FILE, Qt.SortOrder.DescendingOrder)
    proxy.set_quick("mismatches", True)  # hides 014 (CER 0)
    assert _shown(proxy) == _expected(model, proxy, lambda r: r.rel, reverse=True) and len(_shown(proxy)) == 9
    proxy.set_text("")
    assert _shown(proxy) == _expected(model, proxy, lambda r: r.rel, reverse=True) and len(_shown(proxy)) == 42


def test_remove_rows_keeps_the_rest_selection_counts_and_cv(qtbot):
    from gui.table_model import COL_CV, stats

    model, proxy, table = _setup(qtbot)
    rels = [r.rel for r in model.rows]
    model.set_crossval({rel: PredictionResult(rel=rel, label="", prediction="", cer=0.5, label_score=0.5)
                        for rel in rels[10:13]})  # fmt: skip
    model.set_state(rels[12], "verified")
    table.select_proxy_row(20)
    current = proxy.row_at(20)
    proxy.set_quick("unreviewed", True)
    assert model.remove([rels[0], rels[11], "not-in-the-table.jpg", rels[30]]) == 3
    removed = {rels[0], rels[11], rels[30]}
    assert model.rowCount() == 47 and [r.rel for r in model.rows] == [r for r in rels if r not in removed]
    assert all(model.row_of(r) is None for r in (rels[0], rels[11], rels[30]))
    assert all(model.rows[model.row_of(r.rel)] is r for r in model.rows)
    assert proxy.row_at(table.current_proxy_row()) is current
    assert proxy.rowCount() == 46 and _shown(proxy) == [r.rel for r in model.rows if r.state == "unreviewed"]
    assert proxy.stats() == pytest.approx(stats(proxy.shown_rows()))
    assert model.index(model.row_of(rels[10]), COL_CV).data() == "0.500"
    assert model.index(model.row_of(rels[13]), COL_CV).data() == ""
    model.remove([current.rel])
    assert not table.currentIndex().isValid() and model.rowCount() == 46
    table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    assert _shown(proxy) == sorted(r.rel for r in model.rows if r.state == "unreviewed")
