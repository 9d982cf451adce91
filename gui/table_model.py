"""The results table: a list model over the review rows, a filter proxy, delegates, the view.

Sorting is done by the source model over precomputed numeric/str keys (``SORT_ROLE``
gives the same keys per cell), because a proxy comparing 200,000 rows through Python
``data()`` calls takes seconds; the proxy only filters (``filterAcceptsRow``) and
forwards ``sort()`` to the source. Default order: worst first (CER column descending:
unreadable, invalid labels, then CER descending, ties by confidence ascending).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFontMetrics, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QStyle, QStyledItemDelegate, QTableView

from . import style
from .fonts import plate_font
from core.session import INVALID, MISSING, UNREADABLE, UNREVIEWED, cer_of, label_info

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2

COL_IMAGE, COL_FILE, COL_LABEL, COL_PRED, COL_CER, COL_CONF, COL_STATE = range(7)
HEADERS = ["Image", "File", "Label", "Prediction", "CER", "Confidence", "State"]
THUMB_SIZE = QSize(112, 28)
_STATE_ORDER = {MISSING: 0, UNREADABLE: 1, INVALID: 2, UNREVIEWED: 3, "fixed": 4, "verified": 5}
_STATE_TEXT = {UNREVIEWED: "", "verified": "✓ verified", "fixed": "✎ fixed", UNREADABLE: "⚠ unreadable",
               INVALID: "⚠ invalid", MISSING: "✕ missing"}  # fmt: skip


_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, SORT_ROLE, ROW_ROLE, Qt.ItemDataRole.DecorationRole,
                    Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                    Qt.ItemDataRole.ToolTipRole})  # fmt: skip


class Row:
    """One sample in the table: its prediction (if any) and its review state."""

    __slots__ = ("rel", "label", "label_error", "prediction", "_rec", "confidence", "cer", "correct", "error",
                 "state", "missing", "_hay")  # fmt: skip

    def __init__(self, rec, state: str = UNREVIEWED):
        self.rel: str = rec.rel
        self.label: str = rec.label
        self.label_error: str | None = rec.label_error
        self.state = state
        self.missing = False
        self.prediction: str = rec.prediction or ""
        self._rec = rec  # probs / runner-up are read from it only when inspected (decoded lazily)
        self.confidence: float = rec.confidence or 0.0
        self.cer: float | None = rec.cer
        self.correct: bool | None = rec.correct
        self.error: str | None = rec.error
        self._hay: str | None = None

    @property
    def probs(self) -> list[float]:
        return self._rec.probs

    @property
    def runner_up(self) -> str:
        return self._rec.runner_up

    @property
    def runner_up_probs(self) -> list[float]:
        return self._rec.runner_up_probs

    def set_prediction(self, rec) -> None:
        self.prediction = rec.prediction or ""
        self._rec = rec
        self.confidence = rec.confidence or 0.0
        self.cer = rec.cer
        self.correct = rec.correct
        self.error = rec.error
        self._hay = None

    @property
    def haystack(self) -> str:
        """What the text filter searches: file name, label and prediction, case-folded."""
        if self._hay is None:
            self._hay = f"{self.rel}\t{self.label}\t{self.prediction}".casefold()
        return self._hay

    def rename(self, rel: str) -> None:
        """The file now has another name: take its label from it and recompute CER."""
        self.rel = rel
        self._hay = None
        self.label, self.label_error = label_info(rel)
        if self.prediction:
            self.cer = cer_of(self.prediction, self.label) if self.label else None
            self.correct = self.prediction == self.label
        self.missing = False

    @property
    def predicted(self) -> bool:
        return bool(self.prediction) or self.error is not None

    @property
    def mismatch(self) -> bool:
        return self.error is not None or self.label_error is not None or (bool(self.prediction) and not self.correct)

    @property
    def display_state(self) -> str:
        if self.missing:
            return MISSING
        if self.state == UNREVIEWED and self.error:
            return UNREADABLE
        if self.state == UNREVIEWED and self.label_error:
            return INVALID
        return self.state

    def worst_key(self) -> tuple:
        """Ascending key whose descending order is worst first (core.predict.worst_first_key)."""
        group = 3 if self.missing else 2 if self.error else 1 if self.label_error else 0
        return (group, -1.0 if self.cer is None else self.cer, -self.confidence)


def _sort_keys(rows: list[Row], col: int) -> tuple[np.ndarray, ...]:
    """The numpy sort keys of column ``col``, aligned with ``rows``."""
    n = len(rows)
    if col == COL_CER:
        group = np.fromiter((3 if r.missing else 2 if r.error else 1 if r.label_error else 0 for r in rows), np.int8, n)
        cer = np.fromiter((-1.0 if r.cer is None else r.cer for r in rows), np.float64, n)
        conf = np.fromiter((r.confidence for r in rows), np.float64, n)
        return group, cer, conf
    if col == COL_CONF:
        return (np.fromiter((-1.0 if r.error else r.confidence for r in rows), np.float64, n),)
    if col == COL_STATE:
        return (np.fromiter((_STATE_ORDER.get(r.display_state, 9) for r in rows), np.int8, n),)
    if col in (COL_LABEL, COL_PRED):
        return (np.array([r.label if col == COL_LABEL else r.prediction for r in rows]),)
    return (np.array([r.rel for r in rows]),)


def _perm_from_keys(keys: tuple[np.ndarray, ...], col: int, descending: bool) -> np.ndarray:
    if col == COL_CER:
        group, cer, conf = keys
        if descending:
            return np.lexsort((conf, -cer, -group))
        return np.lexsort((-conf, cer, group))
    (k,) = keys
    if descending:
        if k.dtype.kind in "fi":
            return np.argsort(-k.astype(np.float64), kind="stable")
        return np.argsort(k, kind="stable")[::-1]
    return np.argsort(k, kind="stable")


def _sort_perm(rows: list[Row], col: int, descending: bool) -> np.ndarray:
    """Permutation ordering ``rows`` by column ``col`` (numpy, stable for ascending)."""
    return _perm_from_keys(_sort_keys(rows, col), col, descending)


def _sort_key(row: Row, col: int):
    if col == COL_CER:
        return row.worst_key()
    if col == COL_CONF:
        return -1.0 if row.error else row.confidence
    if col == COL_LABEL:
        return row.label
    if col == COL_PRED:
        return row.prediction
    if col == COL_STATE:
        return _STATE_ORDER.get(row.display_state, 9)
    return row.rel


class ResultsModel(QAbstractTableModel):
    """The review rows, in the current sort order.

    Args:
        thumbnails: A ``ThumbnailCache`` for the image column, or ``None`` (no images).
    """

    sig_changed = Signal()
    """Rows were added or changed (counts need refreshing)."""
    sig_thumbnail = Signal()
    """A thumbnail arrived: the views repaint their visible image cells."""

    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.rows: list[Row] = []
        self._row_of: dict[str, int] = {}
        self.thumbnails = thumbnails
        self.sort_column = COL_CER
        self.sort_order = Qt.SortOrder.DescendingOrder
        self._proxy_ref = None  # weakref to the ResultsProxy over this model (set by the proxy)
        self._last_perm: np.ndarray | None = None
        self._keys: dict[int, tuple[np.ndarray, ...]] = {}  # sort keys per column, aligned with rows
        self._plate_font = plate_font(11)
        self._placeholder: QPixmap | None = None
        if thumbnails is not None:
            thumbnails.sig_ready.connect(self._on_thumbnails_ready)
            thumbnails.sig_missing.connect(self._on_thumbnails_missing)

    # ------------------------------------------------------------ Qt API

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if role not in _ROLES or not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_FILE:
                return row.rel
            if col == COL_LABEL:
                return row.label or "—"
            if col == COL_PRED:
                return row.prediction or ("unreadable" if row.error else "")
            if col == COL_CER:
                return "" if row.cer is None else f"{row.cer:.2f}"
            if col == COL_CONF:
                return f"{row.confidence:.1%}" if row.prediction else ""
            if col == COL_STATE:
                return _STATE_TEXT.get(row.display_state, row.display_state)
            return None
        if role == SORT_ROLE:
            return _sort_key(row, col) if col != COL_CER else row.worst_key()[1]
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DecorationRole and col == COL_IMAGE and self.thumbnails is not None:
            pm = self.thumbnails.get(row.rel)
            return pm if pm is not None else self._placeholder_pixmap()
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_LABEL and row.label_error:
                return style.WARN
            if col == COL_STATE:
                return style.STATE_COLORS.get(row.display_state)
            if col == COL_FILE and row.missing:
                return style.BAD
            if col == COL_PRED and row.error:
                return style.BAD
            return None
        if role == Qt.ItemDataRole.FontRole and col in (COL_LABEL, COL_PRED):
            return self._plate_font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_CER, COL_CONF):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.missing:
                return f"{row.rel}: file not found (deleted or moved outside Plate Review)"
            if row.error:
                return f"Unreadable image: {row.error}"
            if col == COL_LABEL and row.label_error:
                return f"Invalid label: {row.label_error}"
            if col == COL_IMAGE and self.thumbnails is not None:
                return self.thumbnails.failure(row.rel)
        return None

    def _placeholder_pixmap(self) -> QPixmap:
        if self._placeholder is None:
            pm = QPixmap(THUMB_SIZE)
            pm.fill(QColor("#eef0f3"))
            self._placeholder = pm
        return self._placeholder

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Re-order the rows by a column (stable; keeps selection through persistent indexes).

        When a :class:`ResultsProxy` sits on this model the proxy drives the re-order
        (it can skip re-filtering every row when no filter is on); otherwise the rows are
        permuted inside a layout change.
        """
        proxy = self._proxy_ref() if self._proxy_ref is not None else None
        if proxy is not None and proxy.sourceModel() is self:
            proxy.sort(column, order)
        else:
            self.sort_permutation(column, order)
            self.apply_permutation(self._last_perm, layout=True)

    def sort_permutation(self, column: int, order) -> np.ndarray | None:
        """Record the sort column/order and return the permutation (numpy) that applies it."""
        self.sort_column, self.sort_order = column, order
        self._last_perm = None
        if self.rows:
            keys = self._keys.get(column)
            if keys is None:  # built once, then permuted along with the rows until an edit
                keys = self._keys[column] = _sort_keys(self.rows, column)
            self._last_perm = _perm_from_keys(keys, column, order == Qt.SortOrder.DescendingOrder)
        return self._last_perm

    def apply_permutation(self, perm: np.ndarray | None, layout: bool = True) -> np.ndarray | None:
        """Put row ``perm[i]`` at position ``i``; returns ``new position`` per old row.

        ``layout=True`` signals a layout change (observers re-map everything, persistent
        indexes follow their rows); ``layout=False`` reports it as a change of every row's
        data (``dataChanged``), for a proxy that re-maps its own persistent indexes and
        knows no row's filter result changed.
        """
        if perm is None or not len(perm):
            return None
        n = len(perm)
        new_pos = np.empty(n, np.int64)
        new_pos[perm] = np.arange(n)
        if layout:
            self.layoutAboutToBeChanged.emit()
        old_persistent = self.persistentIndexList()
        arr = np.empty(n, dtype=object)
        arr[:] = self.rows
        self.rows = arr[perm].tolist()
        self._row_of = None
        self._keys = {c: tuple(k[perm] for k in ks) for c, ks in self._keys.items()}
        if old_persistent:
            self.changePersistentIndexList(
                old_persistent, [self.index(int(new_pos[i.row()]), i.column()) for i in old_persistent]
            )
        if layout:
            self.layoutChanged.emit()
        else:
            self.dataChanged.emit(self.index(0, 0), self.index(n - 1, len(HEADERS) - 1))
        return new_pos

    def resort(self) -> None:
        """Apply the current sort order again (after rows were added or changed)."""
        self.sort(self.sort_column, self.sort_order)

    # ------------------------------------------------------------ content

    def _reindex(self) -> None:
        self._row_of = None  # rebuilt on the next lookup
        self._keys = {}

    def _index(self) -> dict[str, int]:
        if self._row_of is None:
            self._row_of = {r.rel: i for i, r in enumerate(self.rows)}
        return self._row_of

    def set_records(self, records: Iterable, states: dict[str, str]) -> None:
        """Replace every row (at open) and sort by the current column."""
        self.beginResetModel()
        get = states.get
        rows = [Row(r, get(r.rel, UNREVIEWED)) for r in records]
        if rows:
            arr = np.empty(len(rows), dtype=object)
            arr[:] = rows
            rows = arr[_sort_perm(rows, self.sort_column, self.sort_order == Qt.SortOrder.DescendingOrder)].tolist()
        self.rows = rows
        self._reindex()
        self.endResetModel()
        self.sig_changed.emit()

    def clear(self) -> None:
        self.set_records([], {})

    def add_predictions(self, results: list) -> None:
        """Fill in predictions of existing rows; rows not in the table yet are appended."""
        self._keys = {}
        new = []
        changed = []
        for r in results:
            i = self._index().get(r.rel)
            if i is None:
                new.append(Row(r))
            else:
                self.rows[i].set_prediction(r)
                changed.append(i)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), len(HEADERS) - 1))
        if new:
            first = len(self.rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self.rows.extend(new)
            index = self._index()
            for k, row in enumerate(new):
                index[row.rel] = first + k
            self.endInsertRows()
        self.sig_changed.emit()

    def row_of(self, rel: str) -> int | None:
        return self._index().get(rel)

    def row_changed(self, i: int) -> None:
        self._keys = {}  # the row's sort keys may have changed
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(HEADERS) - 1))
        self.sig_changed.emit()

    def apply_rename(self, old: str, new: str) -> int | None:
        i = self._index().pop(old, None)
        if i is None:
            return None
        if self.thumbnails is not None:
            self.thumbnails.forget(old)
        self.rows[i].rename(new)
        self._index()[new] = i
        self.row_changed(i)
        return i

    def set_state(self, rel: str, state: str) -> int | None:
        i = self._index().get(rel)
        if i is not None:
            self.rows[i].state = state
            self.row_changed(i)
        return i

    def mark_missing(self, rel: str) -> int | None:
        i = self._index().get(rel)
        if i is not None and not self.rows[i].missing:
            self.rows[i].missing = True
            self.row_changed(i)
        return i

    def _on_thumbnails_ready(self, rel: str) -> None:
        self.sig_thumbnail.emit()

    def _on_thumbnails_missing(self, rel: str) -> None:
        self.mark_missing(rel)


class ResultsProxy(QSortFilterProxyModel):
    """Filters rows by text and quick filters; sorting is forwarded to the source model."""

    QUICK_FILTERS = ("mismatches", "unreviewed", "invalid", "unreadable")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._text = ""
        self._quick: set[str] = set()
        self._bulk: list[bool] | None = None  # filter results per source row during a bulk re-filter
        self.setDynamicSortFilter(True)

    def setSourceModel(self, model) -> None:  # noqa: N802
        super().setSourceModel(model)
        if isinstance(model, ResultsModel):
            model._proxy_ref = weakref.ref(self)

    @property
    def filtering(self) -> bool:
        """Whether a text or quick filter is on."""
        return bool(self._text or self._quick)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by having the source model permute its rows (numpy), never by ``lessThan``.

        ``QSortFilterProxyModel`` re-filters every source row (one Python
        ``filterAcceptsRow`` call each, ~3 us in PySide6) whenever the source signals a
        layout change. With no filter on, no row's filter result can change: the source
        reports the re-order as a data change with dynamic filtering paused, and the proxy
        moves its own persistent indexes (selection, current row) inside its own layout
        change. With a filter on, the filter results are computed once per row before the
        layout change and ``filterAcceptsRow`` only looks them up.
        """
        src = self.sourceModel()
        if not isinstance(src, ResultsModel):
            if src is not None:
                src.sort(column, order)
            return
        perm = src.sort_permutation(column, order)
        if perm is None:
            return
        if self.filtering:
            accepted = np.fromiter(map(self.accepts, src.rows), bool, len(src.rows))
            self._bulk = accepted[perm].tolist()
            try:
                src.apply_permutation(perm, layout=True)
            finally:
                self._bulk = None
            return
        self.setDynamicSortFilter(False)
        try:
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            old = [(p.row(), p.column()) for p in persistent]
            new_pos = src.apply_permutation(perm, layout=False)
            if persistent:
                self.changePersistentIndexList(persistent, [self.index(int(new_pos[r]), c) for r, c in old])
            self.layoutChanged.emit()
        finally:
            self.setDynamicSortFilter(True)

    def set_text(self, text: str) -> None:
        text = text.strip().casefold()
        if text != self._text:
            self._begin()
            self._text = text
            self._end()

    def set_quick(self, name: str, on: bool) -> None:
        if name not in self.QUICK_FILTERS:
            raise ValueError(name)
        if (name in self._quick) != on:
            self._begin()
            (self._quick.add if on else self._quick.discard)(name)
            self._end()

    @property
    def quick(self) -> frozenset[str]:
        return frozenset(self._quick)

    def _begin(self) -> None:
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()

    def _end(self) -> None:
        src = self.sourceModel()
        if self.filtering and isinstance(src, ResultsModel):
            self._bulk = [self.accepts(r) for r in src.rows]
        try:
            if hasattr(self, "endFilterChange"):
                self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
            else:  # Qt < 6.10
                self.invalidateFilter()
        finally:
            self._bulk = None

    def accepts(self, row: Row) -> bool:
        """Whether ``row`` passes the current filters (also used for counts)."""
        q = self._quick
        if q:
            if "mismatches" in q and not row.mismatch:
                return False
            if "unreviewed" in q and row.state != UNREVIEWED:
                return False
            if "invalid" in q and not row.label_error:
                return False
            if "unreadable" in q and not row.error:
                return False
        return not self._text or self._text in row.haystack

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        bulk = self._bulk
        if bulk is not None:  # a bulk re-filter: results computed beforehand
            return bulk[source_row]
        if not self._text and not self._quick:
            return True
        return self.accepts(self.sourceModel().rows[source_row])

    def shown_rows(self) -> list[Row]:
        """The rows that pass the filters (source order)."""
        rows = self.sourceModel().rows
        if not self._text and not self._quick:
            return rows
        return [r for r in rows if self.accepts(r)]

    def row_at(self, proxy_row: int) -> Row | None:
        if 0 <= proxy_row < self.rowCount():
            src = self.mapToSource(self.index(proxy_row, 0))
            return self.sourceModel().rows[src.row()]
        return None

    def proxy_row_of(self, rel: str) -> int | None:
        i = self.sourceModel().row_of(rel)
        if i is None:
            return None
        p = self.mapFromSource(self.sourceModel().index(i, 0))
        return p.row() if p.isValid() else None


def stats(rows: list[Row]) -> dict:
    """Counts for the rows shown: n, predicted, accuracy, mean CER, reviewed."""
    npred = correct = reviewed = unreadable = invalid = 0
    cer_sum = 0.0
    for r in rows:
        if r.error:
            unreadable += 1
        elif r.label_error:
            invalid += 1
        elif r.prediction:
            npred += 1
            cer_sum += r.cer or 0.0
            if r.correct:
                correct += 1
        if r.state == "verified" or r.state == "fixed":
            reviewed += 1
    return {
        "n": len(rows),
        "predicted": npred,
        "accuracy": correct / npred if npred else None,
        "cer": cer_sum / npred if npred else None,
        "reviewed": reviewed,
        "unreadable": unreadable,
        "invalid": invalid,
    }


class PredictionDelegate(QStyledItemDelegate):
    """Paints the prediction with the characters that differ from the label highlighted."""

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        row: Row = index.data(ROW_ROLE)
        if row is None or not row.prediction:
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        option.text = ""
        style_ = option.widget.style() if option.widget else None
        if style_ is not None:
            style_.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        painter.save()
        font = index.data(Qt.ItemDataRole.FontRole) or option.font
        painter.setFont(font)
        fm = QFontMetrics(font)
        rect = option.rect.adjusted(6, 0, -4, 0)
        x = rect.left()
        label = row.label
        h = fm.height()
        y = rect.top() + (rect.height() - h) // 2
        for i, ch in enumerate(row.prediction):
            w = fm.horizontalAdvance(ch)
            bad = i >= len(label) or label[i] != ch
            if bad:
                painter.fillRect(QRect(x - 1, y, w + 2, h), style.BAD_BG)
                painter.setPen(QPen(style.BAD))
            else:
                painter.setPen(QPen(QColor(style.TEXT)))
            painter.drawText(QRect(x, y, w, h), Qt.AlignmentFlag.AlignCenter, ch)
            x += w + 1
        painter.restore()


class ReviewTable(QTableView):
    """The results view; review keys act on the current row when it has focus.

    J / Down: next, K / Up: previous, Enter: accept prediction, Space: verify label,
    E / F2: edit label, X: mark unreadable.
    """

    sig_accept = Signal()
    """Enter: relabel the current sample with its prediction."""
    sig_verify = Signal()
    """Space: keep the label, mark verified."""
    sig_edit = Signal()
    """E or F2: type a label."""
    sig_unreadable = Signal()
    """X: mark the crop unreadable (no valid plate can be read)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setSortingEnabled(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setIconSize(THUMB_SIZE)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(THUMB_SIZE.height() + 8)
        self.setItemDelegateForColumn(COL_PRED, PredictionDelegate(self))
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(True)
        hh.setSortIndicator(COL_CER, Qt.SortOrder.DescendingOrder)

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {COL_IMAGE: THUMB_SIZE.width() + 12, COL_FILE: 190, COL_LABEL: 96, COL_PRED: 100, COL_CER: 52,
                  COL_CONF: 84, COL_STATE: 96}  # fmt: skip
        for col, w in widths.items():
            self.setColumnWidth(col, w)
        hh.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        hh.setStretchLastSection(False)

    def current_proxy_row(self) -> int:
        idx = self.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_proxy_row(self, row: int) -> None:
        """Make ``row`` (proxy numbering, clamped) current and selected, and scroll to it."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return
        row = max(0, min(row, model.rowCount() - 1))
        idx = model.index(row, COL_FILE)
        self.setCurrentIndex(idx)
        self.selectRow(row)
        self.scrollTo(idx)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods == Qt.KeyboardModifier.NoModifier:
            if key == Qt.Key.Key_J:
                self.select_proxy_row(self.current_proxy_row() + 1)
                return
            if key == Qt.Key.Key_K:
                self.select_proxy_row(max(0, self.current_proxy_row() - 1))
                return
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.sig_accept.emit()
                return
            if key == Qt.Key.Key_Space:
                self.sig_verify.emit()
                return
            if key in (Qt.Key.Key_E, Qt.Key.Key_F2):
                self.sig_edit.emit()
                return
            if key == Qt.Key.Key_X:
                self.sig_unreadable.emit()
                return
        super().keyPressEvent(event)

    def keyboardSearch(self, search: str) -> None:  # noqa: N802
        """Disabled: letters are review keys, not type-ahead search."""


__all__ = [
    "COL_CER",
    "HEADERS",
    "ResultsModel",
    "ResultsProxy",
    "ReviewTable",
    "Row",
    "SORT_ROLE",
    "stats",
]
