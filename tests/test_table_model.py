"""ResultsModel / ResultsProxy: sorting through the source keeps the selection on its sample, with and without filters."""

from __future__ import annotations

from PySide6.QtCore import Qt

from gui.table_model import COL_CER, COL_FILE, ResultsModel, ResultsProxy, ReviewTable


class _Rec:
    def __init__(self, i: int, cer: float | None, pred: str = "皖A00000"):
        self.rel = f"{i:03d}-皖A{i:05d}.jpg"
        self.label = f"皖A{i:05d}"
        self.label_error = None
        self.prediction = pred
        self.probs = [0.9] * 7
        self.runner_up = ""
        self.runner_up_probs = [0.1] * 7
        self.confidence = 0.5
        self.cer = cer
        self.correct = cer == 0.0
        self.error = None


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
