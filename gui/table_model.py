"""The results table's Qt model: a thin list model over :class:`core.review_table.ReviewTable`.

The rows the model has are the rows the review table shows (``table.view``: sorted, then
filtered), so no proxy sits between it and the view: sorting and filtering are numpy
passes over the table's columns, and the model re-maps the view's persistent indexes
(selection, current row) itself in one layout change. An edit that makes a row leave or
enter the filtered rows removes or inserts that row. Default order: the review order
(Label score column ascending; see ``core.label_score.review_keys``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPixmap

from core.label_score import LIKELY_ERROR_THRESHOLD
from core.review_state import ReviewState
from core.review_table import QUICK_FILTERS, Narrowing, ReviewTable, Row

from . import style
from .fonts import plate_font

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2

COL_IMAGE, COL_FILE, COL_LABEL, COL_PRED, COL_SCORE, COL_CER, COL_CONF, COL_STATE, COL_CV, COL_SECOND = range(10)
HEADERS = ["Image", "File", "Label", "Prediction", "Label score", "CER", "Confidence", "State", "CV score",
           "Second reading"]  # fmt: skip
#: The review table's sort key of each column.
SORT_KEY_OF = ("file", "file", "label", "prediction", "label_score", "cer", "confidence", "state", "cv", "second")
SCORE_TIP = ("Label score: the probability the model gives to the label's weakest character. "
             f"Low = the label is likely wrong (at or below {LIKELY_ERROR_THRESHOLD}: counted as a likely label "
             "error). Sorted ascending, this is the review order.")  # fmt: skip
SECOND_TIP = ("What a second reader (Model ▸ Second Opinion) reads. With two readers the label score is the "
              "larger of theirs: a label is doubted only when both doubt it.")  # fmt: skip
CV_TIP = ("Cross-validated label score: from a model that never trained on the sample (k-fold "
          "fine-tuning, Train panel). Where present, it orders the review.")  # fmt: skip
THUMB_SIZE = QSize(112, 28)
_STATE_TEXT = {ReviewState.UNREVIEWED: "", ReviewState.VERIFIED: "✓ verified", ReviewState.FIXED: "✎ fixed", ReviewState.UNREADABLE: "⚠ unreadable",
               ReviewState.INVALID: "⚠ invalid", ReviewState.MISSING: "✕ missing"}  # fmt: skip
_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, SORT_ROLE, ROW_ROLE, Qt.ItemDataRole.DecorationRole,
                    Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                    Qt.ItemDataRole.ToolTipRole})  # fmt: skip
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def score_text(s: float | None) -> str:
    """A label score as the table shows it (three decimals; the smallest ones as '<0.001')."""
    if s is None:
        return ""
    return "<0.001" if s < 0.0005 else f"{s:.3f}"


class ResultsModel(QAbstractTableModel):
    """The rows of a review as shown: model row ``i`` is ``table.view[i]``.

    Args:
        thumbnails: A ``ThumbnailCache`` for the image column, or ``None`` (no images).
    """

    QUICK_FILTERS = tuple(QUICK_FILTERS)

    sig_changed = Signal()
    """Rows were added or changed (counts need refreshing)."""
    sig_thumbnail = Signal()
    """A thumbnail arrived: the views repaint their visible image cells."""

    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.table = ReviewTable()
        self.thumbnails = thumbnails
        self._nrows = 0  # len(table.view) as announced to the views
        self._sort_column = COL_SCORE
        self._plate_font = plate_font(11)
        self._placeholder: QPixmap | None = None
        if thumbnails is not None:
            self.set_thumbnails(thumbnails)

    def set_thumbnails(self, thumbnails) -> None:
        """Show images from this ``ThumbnailCache`` (one per folder)."""
        self.thumbnails = thumbnails
        self._placeholder = None
        thumbnails.sig_ready.connect(self.sig_thumbnail)  # repaint, no row lookup
        thumbnails.sig_missing.connect(self.mark_missing)

    # ------------------------------------------------------------ sort and filter state

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return Qt.SortOrder.DescendingOrder if self.table.descending else Qt.SortOrder.AscendingOrder

    def set_sort(self, column: int, order: Qt.SortOrder) -> None:
        """Set the sort column and order without sorting (applies at the next load or sort)."""
        self._sort_column = column
        self.table.sort_key = SORT_KEY_OF[column]
        self.table.descending = order == Qt.SortOrder.DescendingOrder

    @property
    def needs_resort(self) -> bool:
        """Rows were added or changed since the last sort."""
        return self.table.needs_resort

    @property
    def quick(self) -> frozenset[str]:
        return self.table.quick

    def set_text(self, text: str) -> None:
        """Show the rows whose file name, label or prediction contains ``text`` (case-insensitive)."""
        if text.strip().casefold() != self.table.text:
            self._relayout(lambda: self.table.set_filter(text, self.table.quick))

    def set_quick(self, name: str, on: bool) -> None:
        """Turn a quick filter (one of :data:`core.review_table.QUICK_FILTERS`) on or off."""
        if name not in QUICK_FILTERS:
            raise ValueError(name)
        if (name in self.table.quick) != on:
            quick = self.table.quick | {name} if on else self.table.quick - {name}
            self._relayout(lambda: self.table.set_filter(self.table.text, quick))

    def set_narrowing(self, narrowing: Narrowing) -> None:
        """Filter by value too (province, position, confusion, score range, state)."""
        if narrowing != self.table.narrowing:
            self._relayout(lambda: self.table.set_filter(self.table.text, self.table.quick, narrowing))

    def stats(self) -> dict:
        """Counts over the rows shown (:meth:`core.review_table.ReviewTable.stats`)."""
        return self.table.stats()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Re-order the rows by a column (stable; the selection stays on its samples)."""
        self._sort_column = column
        self._relayout(lambda: self.table.sort(SORT_KEY_OF[column], order == Qt.SortOrder.DescendingOrder))

    def resort(self) -> None:
        """Apply the current sort order again (after rows were added or changed)."""
        self._relayout(self.table.sort)

    def _relayout(self, change: Callable[[], None], renumbers: bool = False) -> None:
        """Run ``change`` (a new order or filter) inside one layout change; persistent indexes follow their
        samples, or become invalid where the sample is no longer shown. ``renumbers``: the change
        renumbers the records (a removal), so samples are followed by name, not by record index."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        view = self.table.view
        ks = [int(view[i.row()]) for i in persistent]
        rels = [self.table.row_k(k).rel for k in ks] if renumbers else None
        change()
        self._nrows = len(self.table.view)
        if persistent:
            if renumbers:
                new = [self.table.view_row_of(rel) for rel in rels]
            else:
                pos = self.table.view_pos()
                new = [int(pos[k]) if pos[k] >= 0 else None for k in ks]
            self.changePersistentIndexList(
                persistent, [QModelIndex() if r is None else self.index(r, i.column()) for r, i in zip(new, persistent)]
            )
        self.layoutChanged.emit()
        self.sig_changed.emit()

    # ------------------------------------------------------------ Qt API

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else self._nrows

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[section]
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_CV:
                return CV_TIP
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_SCORE:
                return SCORE_TIP
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_SECOND:
                return SECOND_TIP
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if role not in _ROLES or not index.isValid():
            return None
        t = self.table
        k = int(t.view[index.row()])
        col = index.column()
        if role == SORT_ROLE:
            return tuple(x.item() for x in t.keys(SORT_KEY_OF[col], np.array([k])))
        row = t.row_k(k)
        if role == ROW_ROLE:
            return row
        if col == COL_CV:
            return self._cv_data(k, role)
        if col == COL_SECOND:
            return self._second_data(k, row, role)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_FILE:
                return row.rel
            if col == COL_LABEL:
                return row.label or "—"
            if col == COL_PRED:
                return row.prediction or ("unreadable" if row.error else "")
            if col == COL_SCORE:
                return score_text(t.score_shown(k))
            if col == COL_CER:
                return "" if row.cer is None else f"{row.cer:.2f}"
            if col == COL_CONF:
                return f"{row.confidence:.1%}" if row.prediction else ""
            if col == COL_STATE:
                state = row.display_state
                if t.has_duplicates and state == ReviewState.UNREVIEWED and t.in_conflict(row.rel):
                    return "⚠ duplicate"
                return _STATE_TEXT.get(state, state)
            return None
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
            if col == COL_SCORE:
                s = t.score_shown(k)
                return style.BAD if s is not None and s <= LIKELY_ERROR_THRESHOLD else None
            return None
        if role == Qt.ItemDataRole.FontRole and col in (COL_LABEL, COL_PRED):
            return self._plate_font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_SCORE, COL_CER, COL_CONF):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.missing:
                return f"{row.rel}: file not found (deleted or moved outside Plate Review)"
            if row.error:
                return f"Unreadable image: {row.error}"
            if col == COL_LABEL and row.label_error:
                return f"Invalid label: {row.label_error}"
            if col == COL_SCORE:
                return self._score_tip(k, row)
            if col == COL_IMAGE and self.thumbnails is not None:
                return self.thumbnails.failure(row.rel)
        return None

    def _cv_data(self, k: int, role):
        cv = self.table.reading_k("cv", k)
        score = None if cv is None else cv.label_score
        if role == Qt.ItemDataRole.DisplayRole:
            return score_text(score)
        if role == Qt.ItemDataRole.ForegroundRole:
            return style.BAD if score is not None and score <= LIKELY_ERROR_THRESHOLD else None
        if role == Qt.ItemDataRole.ToolTipRole:
            if cv is None:
                return None
            if getattr(cv, "error", None):
                return f"CV: unreadable ({cv.error})"
            return (f"CV prediction: {cv.prediction or '—'}  (CER {cv.cer if cv.cer is not None else 0:.2f}, "
                    f"confidence {(cv.confidence or 0.0):.1%})")  # fmt: skip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT
        return None

    def _second_data(self, k: int, row: Row, role):
        second = self.table.reading_k("second", k)
        if second is None:
            return None
        text = second.prediction or ""
        if role == Qt.ItemDataRole.DisplayRole:
            return text or ("unreadable" if getattr(second, "error", None) else "")
        if role == Qt.ItemDataRole.FontRole:
            return self._plate_font
        if role == Qt.ItemDataRole.ForegroundRole:
            return style.BAD if text and text != row.label else None
        if role == Qt.ItemDataRole.ToolTipRole:
            s = second.label_score
            return f"Second reader: {text or '—'}" + (f"; its label score {s:.4f}" if s is not None else "")
        return None

    def _score_tip(self, k: int, row: Row) -> str | None:
        s = self.table.score_shown(k)
        if s is None:
            return None
        cv = self.table.reading_k("cv", k)
        cv = cv if cv is not None and cv.label_score is not None else None
        second = self.table.reading_k("second", k) if cv is None else None
        src = ("cross-validated (a model that never saw this crop)" if cv is not None
               else "the larger of the two readers'" if second is not None and second.label_score is not None
               else "this model")  # fmt: skip
        pos = cv.suspect if cv is not None else row.suspect
        where = f"; weakest: character {pos + 1} '{row.label[pos]}'" if pos is not None and pos < len(row.label) else ""
        return f"Label score {s:.4f} from {src}{where}. " + SCORE_TIP

    def _placeholder_pixmap(self) -> QPixmap:
        if self._placeholder is None:
            pm = QPixmap(THUMB_SIZE)
            pm.fill(QColor("#eef0f3"))
            self._placeholder = pm
        return self._placeholder

    # ------------------------------------------------------------ rows

    def row_at(self, i: int) -> Row | None:
        """The row shown at model row ``i``, or ``None``."""
        return self.table.view_row(i) if 0 <= i < self._nrows else None

    def row_of(self, rel: str) -> int | None:
        """The model row of the sample ``rel``, or ``None`` (not in the table, or filtered out)."""
        return self.table.view_row_of(rel)

    def shown_rows(self) -> list[Row]:
        return self.table.shown_rows()

    def duplicates_of(self, rel: str) -> list[Row]:
        return self.table.duplicates_of(rel)

    # ------------------------------------------------------------ content

    def set_records(self, records: Iterable, states: dict[str, str], predicted_only: bool = False) -> list:
        """Replace every row (at open), sorted by the current column; see ``ReviewTable.set_records``."""
        self.beginResetModel()
        left_out = self.table.set_records(records, states, predicted_only)
        self._nrows = len(self.table.view)
        self.endResetModel()
        self.sig_changed.emit()
        return left_out

    def clear(self) -> None:
        self.set_records([], {})

    def add_predictions(self, results: list, states: dict[str, str] | None = None) -> None:
        """Fill in predictions of existing rows; rows not in the table yet are appended.

        ``states`` gives the review state of appended rows (``{rel: state}``).
        """
        first = self._nrows
        changed, shown_new = self.table.add(results, states)
        if shown_new:
            self.beginInsertRows(QModelIndex(), first, first + shown_new - 1)
            self._nrows = len(self.table.view)
            self.endInsertRows()
        for k in changed:
            self._row_changed(k, signal=False)
        self.sig_changed.emit()

    def remove(self, rels: Iterable[str]) -> int:
        """Take the rows of these samples out (files gone or changed on disk); unknown rels are ignored.

        One layout change whatever the number of rows; returns the number of rows removed.
        """
        rels = list(rels)
        if not any(self.table.k_of(r) is not None for r in rels):
            return 0
        n = 0

        def change() -> None:
            nonlocal n
            n = self.table.remove(rels)

        self._relayout(change, renumbers=True)
        return n

    def set_crossval(self, results: dict) -> None:
        """Show out-of-sample (k-fold) predictions: ``{rel: PredictionResult}`` -> the CV score column."""
        if "likely" in self.table.quick:  # the cross-validated score decides what is likely
            self._relayout(lambda: (self.table.set_crossval(results), self.table.refilter()))
            return
        self.table.set_crossval(results)
        if self._nrows:
            self.dataChanged.emit(self.index(0, COL_SCORE), self.index(self._nrows - 1, COL_CV))
        self.sig_changed.emit()

    def set_second(self, results: dict) -> None:
        """Show a second reader's predictions (``{rel: record}``; ``{}``: none); the label score combines both."""
        if "likely" in self.table.quick:
            self._relayout(lambda: (self.table.set_second(results), self.table.refilter()))
            return
        self.table.set_second(results)
        if self._nrows:
            self.dataChanged.emit(self.index(0, 0), self.index(self._nrows - 1, len(HEADERS) - 1))
        self.sig_changed.emit()

    def add_second(self, results: dict) -> None:
        """More of the second reader's predictions, as they come in."""
        self.table.add_second(results)
        for rel in results:
            k = self.table.k_of(rel)
            if k is not None:
                self._row_changed(k, signal=False)
        self.sig_changed.emit()

    def set_duplicates(self, groups: Iterable) -> None:
        """Near-duplicate groups of the folder (``core.duplicates.DuplicateGroup``), from the last run."""
        if "duplicates" in self.table.quick:
            self._relayout(lambda: (self.table.set_duplicates(groups), self.table.refilter()))
            return
        if self.table.set_duplicates(groups):
            self.sig_changed.emit()
            if self._nrows:
                self.dataChanged.emit(self.index(0, COL_STATE), self.index(self._nrows - 1, COL_STATE))

    def _row_changed(self, k: int, signal: bool = True) -> None:
        """Record ``k`` changed: repaint it, or take it out of / put it into the rows shown."""
        change = self.table.visibility_change(k)
        if change is None:
            i = self.table.view_pos()[k]
            if i >= 0:
                self.dataChanged.emit(self.index(int(i), 0), self.index(int(i), len(HEADERS) - 1))
        elif change[0] == "hide":
            self.beginRemoveRows(QModelIndex(), change[1], change[1])
            self.table.apply_visibility(k)
            self._nrows -= 1
            self.endRemoveRows()
        else:
            self.beginInsertRows(QModelIndex(), change[1], change[1])
            self.table.apply_visibility(k)
            self._nrows += 1
            self.endInsertRows()
        if signal:
            self.sig_changed.emit()

    def apply_rename(self, old: str, new: str) -> int | None:
        """The file ``old`` was renamed to ``new``: its label follows; returns its model row."""
        if self.thumbnails is not None:
            self.thumbnails.forget(old)
        k = self.table.rename(old, new)
        if k is None:
            return None
        self._row_changed(k)
        return self.table.view_row_of(new)

    def set_state(self, rel: str, state: str) -> int | None:
        k = self.table.set_state(rel, state)
        if k is not None:
            self._row_changed(k)
        return self.row_of(rel)

    def mark_missing(self, rel: str) -> int | None:
        k = self.table.mark_missing(rel)
        if k is not None:
            self._row_changed(k)
        return self.row_of(rel)


__all__ = [
    "COL_CER",
    "COL_CV",
    "COL_SCORE",
    "HEADERS",
    "ResultsModel",
    "Row",
    "SORT_ROLE",
]
