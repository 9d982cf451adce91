"""Typing a label without a Chinese input method: live grammar check and a province picker."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from core.plates import PROVINCE_PINYIN, PROVINCES, label_error, normalize_label, provinces_matching

from . import style
from .fonts import plate_font


class _LabelLine(QLineEdit):
    """The label field: Enter submits, Escape cancels, Ctrl+P jumps to the province filter."""

    sig_escape = Signal()
    """Escape pressed."""
    sig_province = Signal()
    """Ctrl+P pressed."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.sig_escape.emit()
            return
        if event.key() == Qt.Key.Key_P and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.sig_province.emit()
            return
        super().keyPressEvent(event)


class _PinyinLine(QLineEdit):
    """The pinyin filter: Enter picks the first match, Escape goes back to the label."""

    sig_escape = Signal()
    """Escape pressed."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.sig_escape.emit()
            return
        super().keyPressEvent(event)


class LabelEditor(QWidget):
    """A label field with live validation and 31 province buttons filtered by pinyin.

    Typed text is normalised as it is typed (upper case, separators dropped). The
    province buttons replace the first character; typing pinyin initials in the small
    field beside them (``wan`` → 皖, ``j`` → 京 冀 吉 晋 津) highlights the matches and
    Enter picks the first.
    """

    sig_submitted = Signal(str)
    """Enter with a valid label: the new label."""
    sig_cancelled = Signal()
    """Escape: editing abandoned."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.edit = _LabelLine()
        self.edit.setFont(plate_font(15, bold=True))
        self.edit.setPlaceholderText("type a label, e.g. 皖A26Y56")
        self.edit.setMinimumHeight(34)
        self.edit.setClearButtonEnabled(True)
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setObjectName("primary")
        self.apply_btn.setToolTip("Rename the file to this label (Enter)")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.pinyin = _PinyinLine()
        self.pinyin.setPlaceholderText("pinyin (Ctrl+P)")
        self.pinyin.setFixedWidth(120)
        self.pinyin.setToolTip("Type pinyin initials of the province (wan → 皖); Enter picks the first match")
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        grid.setSpacing(3)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, ch in enumerate(PROVINCES):
            b = QPushButton(ch)
            b.setObjectName("province")
            b.setFont(plate_font(11))
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setToolTip(PROVINCE_PINYIN[ch])
            b.clicked.connect(lambda _=False, c=ch: self.set_province(c))
            grid.addWidget(b, i // 11, i % 11)
            self.buttons[ch] = b

        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(self.edit, 1)
        row.addWidget(self.apply_btn)
        prow = QHBoxLayout()
        prow.setSpacing(6)
        title = QLabel("Province")
        title.setObjectName("muted")
        prow.addWidget(title)
        prow.addWidget(self.pinyin)
        prow.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addLayout(prow)
        lay.addLayout(grid)

        self.edit.textEdited.connect(self._on_edit_text_edited)
        self.edit.returnPressed.connect(self.submit)
        self.edit.sig_escape.connect(self.sig_cancelled)
        self.edit.sig_province.connect(self.focus_pinyin)
        self.apply_btn.clicked.connect(self.submit)
        self.pinyin.textEdited.connect(self._on_pinyin_text_edited)
        self.pinyin.returnPressed.connect(self._on_pinyin_return_pressed)
        self.pinyin.sig_escape.connect(self.focus_label)
        self._validate()

    # ------------------------------------------------------------------ API

    def set_label(self, text: str) -> None:
        """Show ``text`` (the current label) without submitting it."""
        self.edit.setText(text)
        self.pinyin.clear()
        self._highlight([])
        self._validate()

    def label(self) -> str:
        return normalize_label(self.edit.text())

    def focus_label(self) -> None:
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def focus_pinyin(self) -> None:
        self.pinyin.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.pinyin.selectAll()

    def set_province(self, ch: str) -> None:
        """Replace the first character with province ``ch`` (or prepend it to a Latin-only text)."""
        text = self.label()
        if text and text[0] in PROVINCES:
            text = ch + text[1:]
        elif len(text) == 7:
            text = ch + text[1:]
        else:
            text = ch + text
        self.edit.setText(text)
        self.pinyin.clear()
        self._highlight([])
        self._validate()
        self.edit.setFocus(Qt.FocusReason.OtherFocusReason)
        self.edit.setCursorPosition(1)

    @Slot()
    def submit(self) -> None:
        """Emit sig_submitted when the label is valid; otherwise keep editing."""
        label = self.label()
        if label_error(label) is None:
            self.sig_submitted.emit(label)
        else:
            self._validate()

    # ---------------------------------------------------------------- slots

    @Slot(str)
    def _on_edit_text_edited(self, text: str) -> None:
        norm = normalize_label(text)
        if norm != text:
            pos = self.edit.cursorPosition()
            removed = len(text) - len(norm)
            self.edit.setText(norm)
            self.edit.setCursorPosition(max(0, pos - removed))
        self._validate()

    @Slot(str)
    def _on_pinyin_text_edited(self, text: str) -> None:
        self._highlight(provinces_matching(text) if text.strip() else [])

    @Slot()
    def _on_pinyin_return_pressed(self) -> None:
        matches = provinces_matching(self.pinyin.text())
        if self.pinyin.text().strip() and matches:
            self.set_province(matches[0])

    def _highlight(self, chars: list[str]) -> None:
        on = set(chars)
        for ch, b in self.buttons.items():
            m = "true" if ch in on else "false"
            if b.property("match") != m:
                b.setProperty("match", m)
                b.style().unpolish(b)
                b.style().polish(b)

    def _validate(self) -> None:
        label = self.label()
        err = label_error(label) if label else "type a label (province, city letter, 5 letters or digits)"
        self.apply_btn.setEnabled(err is None)
        if err is None:
            self.status.setText("✓ valid plate")
            self.status.setStyleSheet(f"color: {style.GOOD.name()};")
        else:
            self.status.setText(err)
            self.status.setStyleSheet(f"color: {style.WARN.name() if label else style.MUTED};")
        self.status.setProperty("error", err or "")
