"""Narrowing the table by value: province, character position, a confusion, a score range, a state;
and the confusion matrix whose cells narrow the table to one confusion."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import plates
from core.review_state import ReviewState
from core.review_table import Narrowing

from . import style
from .fonts import plate_font


class NarrowBar(QWidget):
    """A row of value filters under the quick filters; every change emits the whole :class:`Narrowing`."""

    sig_changed = Signal(object)
    """The narrowing changed (core.review_table.Narrowing)."""
    sig_confusions = Signal()
    """The Confusions… button: show the confusion matrix."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("filterBar")
        self._confusion: tuple[str, str] | None = None
        self.province = QComboBox()
        self.province.addItem("Any province", None)
        for ch in plates.PROVINCES:
            self.province.addItem(f"{ch} {plates.PROVINCE_PINYIN[ch]}", ch)
        self.province.setToolTip("Only labels of this province (the first character)")
        self.position = QComboBox()
        self.position.addItem("Any position", None)
        for i in range(7):
            self.position.addItem(f"Position {i + 1}", i)
        self.position.setToolTip("Only rows read otherwise than labelled at this character (1: the province)")
        self.measure = QComboBox()
        self.measure.addItem("Score", "score")
        self.measure.addItem("Confidence", "conf")
        self.measure.setToolTip("The range beside applies to the label score (the review order) or to the "
                                "model's confidence in its own reading")  # fmt: skip
        self.score_min, self.score_max = QDoubleSpinBox(), QDoubleSpinBox()
        for box, value in ((self.score_min, 0.0), (self.score_max, 1.0)):
            box.setRange(0.0, 1.0)
            box.setDecimals(3)
            box.setSingleStep(0.01)
            box.setValue(value)
            box.setKeyboardTracking(False)  # filter when the number is complete, not per keystroke
            box.setFixedWidth(72)
        self.score_min.setToolTip("From (inclusive)")
        self.score_max.setToolTip("Up to (inclusive)")
        self.state = QComboBox()
        self.state.addItem("Any state", None)
        for s in ReviewState:
            self.state.addItem(s.value, s.value)
        self.state.setToolTip("Only rows in this state (as the State column shows it)")
        self.confusion_chip = QToolButton()
        self.confusion_chip.setObjectName("chip")
        self.confusion_chip.setCheckable(True)
        self.confusion_chip.setToolTip("Only rows whose reading has the second character where the label has the "
                                       "first; click to clear")  # fmt: skip
        self.confusion_chip.clicked.connect(lambda: self.set_confusion(None))
        self.confusion_chip.hide()
        self.confusions_btn = QPushButton("Confusions…")
        self.confusions_btn.setToolTip("Which characters are read as which: click a cell to see those rows")
        self.confusions_btn.clicked.connect(self.sig_confusions)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 0, 8, 6)
        lay.setSpacing(4)
        for text, w in (("", self.province), ("", self.position), ("", self.measure), ("", self.score_min),
                        ("–", self.score_max), ("", self.state)):  # fmt: skip
            if text:
                lay.addWidget(QLabel(text))
            lay.addWidget(w, 1 if isinstance(w, QComboBox) else 0)
            lay.addSpacing(2)
        # Combos as narrow as a few characters when the window is (their lists show every entry whole).
        for combo, chars in ((self.province, 6), (self.position, 6), (self.measure, 5), (self.state, 6)):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(chars)
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)  # wider when there is room
            combo.setMaximumWidth(150)
        lay.addWidget(self.confusion_chip)
        lay.addWidget(self.confusions_btn)
        lay.addWidget(self.clear_btn)
        for combo in (self.province, self.position, self.state, self.measure):
            combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            combo.currentIndexChanged.connect(self._emit)
        for box in (self.score_min, self.score_max):
            box.valueChanged.connect(self._emit)

    def narrowing(self) -> Narrowing:
        lo, hi = self.score_min.value(), self.score_max.value()
        lo, hi = (lo if lo > 0.0 else None), (hi if hi < 1.0 else None)
        conf = self.measure.currentData() == "conf"
        return Narrowing(
            province=self.province.currentData(),
            position=self.position.currentData(),
            confusion=self._confusion,
            score_min=None if conf else lo,
            score_max=None if conf else hi,
            conf_min=lo if conf else None,
            conf_max=hi if conf else None,
            state=self.state.currentData(),
        )

    def set_confusion(self, pair: tuple[str, str] | None) -> None:
        """Narrow to the rows where the reading has ``pair[1]`` where the label has ``pair[0]`` (``None``: any)."""
        self._confusion = pair
        self.confusion_chip.setVisible(pair is not None)
        if pair is not None:
            self.confusion_chip.setText(f"{pair[0]} read as {pair[1]}  ✕")
            self.confusion_chip.setChecked(True)
        self._emit()

    @Slot()
    def clear(self) -> None:
        """Every value filter off (one change)."""
        widgets = (self.province, self.position, self.state, self.measure, self.score_min, self.score_max)
        for w in widgets:
            w.blockSignals(True)
        for combo in (self.province, self.position, self.state, self.measure):
            combo.setCurrentIndex(0)
        self.score_min.setValue(0.0)
        self.score_max.setValue(1.0)
        for w in widgets:
            w.blockSignals(False)
        self.set_confusion(None)

    @Slot()
    def _emit(self) -> None:
        self.sig_changed.emit(self.narrowing())


class ConfusionDialog(QDialog):
    """The folder's confusions as a matrix: a row per label character, a column per character read
    in its place (only characters with a confusion); a click on a cell narrows the table to it."""

    sig_pick = Signal(object)
    """A cell was clicked: (label's character, reading's character)."""

    MAX_CHARS = 24  # per axis, the most confused first

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Confusions: label vs reading, per character")
        self.grid = QTableWidget()
        self.grid.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.grid.setFont(plate_font(11))
        self.grid.cellClicked.connect(self._on_grid_cell_clicked)
        self.grid.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.grid.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.note = QLabel()
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.note)
        lay.addWidget(self.grid, 1)
        self._rows: list[str] = []
        self._cols: list[str] = []

    def set_confusions(self, counts: dict[tuple[str, str], int], n_rows: int) -> None:
        """Show ``{(label's, reading's): count}`` (from ``ReviewTable.confusions``) over ``n_rows`` rows."""
        by_label: dict[str, int] = {}
        by_read: dict[str, int] = {}
        for (a, b), c in counts.items():
            by_label[a] = by_label.get(a, 0) + c
            by_read[b] = by_read.get(b, 0) + c
        self._rows = sorted(by_label, key=lambda ch: -by_label[ch])[: self.MAX_CHARS]
        self._cols = sorted(by_read, key=lambda ch: -by_read[ch])[: self.MAX_CHARS]
        self.grid.clear()
        self.grid.setRowCount(len(self._rows))
        self.grid.setColumnCount(len(self._cols))
        self.grid.setVerticalHeaderLabels([f"{a} ({by_label[a]})" for a in self._rows])
        self.grid.setHorizontalHeaderLabels(self._cols)
        top = max(counts.values(), default=1)
        for i, a in enumerate(self._rows):
            for j, b in enumerate(self._cols):
                c = counts.get((a, b), 0)
                item = QTableWidgetItem(str(c) if c else "")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if c:
                    item.setBackground(style.BAD_BG if c >= max(2, top // 3) else style.WARN_BG)
                    item.setToolTip(f"{c} characters labelled {a} read as {b}: click to see those rows")
                self.grid.setItem(i, j, item)
        self.grid.horizontalHeader().setMinimumSectionSize(30)
        self.resize(max(460, min(900, 110 + 34 * len(self._cols))), max(260, min(700, 150 + 30 * len(self._rows))))
        total = sum(counts.values())
        self.note.setText(
            f"{total:,} characters read otherwise than labelled, over {n_rows:,} rows (same length only). "
            "Down the side: the label's character (how often it was misread); across: what was read in its place. "
            "A cell seen many times is a pattern: the model's weakness or a labelling habit. Click it to see those rows."
            if counts else "No character of a label is read otherwise in the rows shown."
        )  # fmt: skip

    @Slot(int, int)
    def _on_grid_cell_clicked(self, row: int, col: int) -> None:
        item = self.grid.item(row, col)
        if item is not None and item.text():
            self.sig_pick.emit((self._rows[row], self._cols[col]))
