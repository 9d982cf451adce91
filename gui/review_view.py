"""The results table's view: review keys on the current row, and the prediction painted against the label."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QPersistentModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QKeyEvent, QKeySequence, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QStyle, QStyledItemDelegate, QTableView

from core.review_table import Row

from . import style
from .actions import table_keys
from .table_model import (
    COL_CER,
    COL_CONF,
    COL_CV,
    COL_FILE,
    COL_IMAGE,
    COL_LABEL,
    COL_PRED,
    COL_SCORE,
    COL_SECOND,
    COL_STATE,
    ROW_ROLE,
    THUMB_SIZE,
)


class PredictionDelegate(QStyledItemDelegate):
    """Paints a reading with the characters that differ from the label highlighted.

    Args:
        second: Paint the second reader's reading (the cell's text) instead of the row's prediction.
    """

    def __init__(self, parent=None, second: bool = False):
        super().__init__(parent)
        self.second = second

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        row: Row = index.data(ROW_ROLE)
        text = "" if row is None else (index.data() or "") if self.second else row.prediction
        if not text or (self.second and text == "unreadable"):
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
        for i, ch in enumerate(text):
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


class ReviewView(QTableView):
    """The results view; the review keys (the table-scope entries of ``gui.actions.ACTIONS``) act
    on the current row while it has the focus. With several rows selected, Enter and Space act
    on all of them (one undo step).
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
        # Shift/Ctrl+click and Shift+arrows select many rows for the batch actions (Enter, Space).
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
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
        self.setItemDelegateForColumn(COL_SECOND, PredictionDelegate(self, second=True))
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(True)
        hh.setSortIndicator(COL_SCORE, Qt.SortOrder.AscendingOrder)
        # Qt key -> action name, from the action table (keys without modifiers)
        self._keys = {QKeySequence(k)[0].key(): name for k, name in table_keys().items()}

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {COL_IMAGE: THUMB_SIZE.width() + 12, COL_FILE: 190, COL_LABEL: 96, COL_PRED: 100, COL_SCORE: 100, COL_CER: 52,
                  COL_CONF: 84, COL_STATE: 96, COL_CV: 84, COL_SECOND: 124}  # fmt: skip
        for col, w in widths.items():
            self.setColumnWidth(col, w)
        hh.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        hh.moveSection(hh.visualIndex(COL_SECOND), COL_PRED + 1)  # the two readings side by side
        hh.setStretchLastSection(False)

    def selected_rows(self) -> list[int]:
        """The selected rows (model rows), top to bottom."""
        sm = self.selectionModel()
        return sorted({i.row() for i in sm.selectedRows()}) if sm is not None else []

    def current_row(self) -> int:
        idx = self.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_row(self, row: int) -> None:
        """Make ``row`` (model row, clamped) current and selected, and scroll to it."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return
        row = max(0, min(row, model.rowCount() - 1))
        idx = model.index(row, COL_FILE)
        self.setCurrentIndex(idx)
        self.selectRow(row)
        self.scrollTo(idx)
        self._anchor = QPersistentModelIndex(idx)

    def _extend_selection(self, delta: int) -> None:
        """Shift+Down/Up: select from the anchor (the row last made current alone) to the moved current row."""
        model = self.model()
        cur = self.current_row()
        if model is None or cur < 0:
            return
        new = max(0, min(cur + delta, model.rowCount() - 1))
        anchor = getattr(self, "_anchor", None)
        a = anchor.row() if anchor is not None and anchor.isValid() else cur
        sm = self.selectionModel()
        flags = QItemSelectionModel.SelectionFlag
        sm.setCurrentIndex(model.index(new, COL_FILE), flags.NoUpdate)
        sel = QItemSelection(model.index(min(a, new), 0), model.index(max(a, new), model.columnCount() - 1))
        sm.select(sel, flags.ClearAndSelect | flags.Rows)
        self.scrollTo(model.index(new, COL_FILE))

    def mousePressEvent(self, event) -> None:  # noqa: N802
        super().mousePressEvent(event)
        if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = QPersistentModelIndex(self.currentIndex())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods == Qt.KeyboardModifier.ShiftModifier and key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self._extend_selection(1 if key == Qt.Key.Key_Down else -1)
            return
        if mods == Qt.KeyboardModifier.NoModifier:
            action = self._keys.get(key)
            if action is not None:
                self._act(action)
                return
        super().keyPressEvent(event)
        if not mods & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = QPersistentModelIndex(self.currentIndex())

    def _act(self, action: str) -> None:
        """Do the table action ``action`` (a name of ``gui.actions.ACTIONS``)."""
        if action == "next":
            self.select_row(self.current_row() + 1)
        elif action == "prev":
            self.select_row(max(0, self.current_row() - 1))
        else:
            {"accept": self.sig_accept, "verify": self.sig_verify, "edit": self.sig_edit,
             "unreadable": self.sig_unreadable}[action].emit()  # fmt: skip

    def keyboardSearch(self, search: str) -> None:  # noqa: N802
        """Disabled: letters are review keys, not type-ahead search."""
