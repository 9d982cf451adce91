"""Colours and the application style sheet (one light, neutral theme)."""

from __future__ import annotations

from PySide6.QtGui import QColor

from core.review_state import ReviewState

ACCENT = "#2563eb"
TEXT = "#1f2937"
MUTED = "#6b7280"
BORDER = "#d1d5db"
PANEL = "#f8fafc"
WINDOW = "#ffffff"

BAD = QColor("#dc2626")
BAD_BG = QColor("#fee2e2")
WARN = QColor("#b45309")
WARN_BG = QColor("#fef3c7")
GOOD = QColor("#15803d")
GOOD_BG = QColor("#dcfce7")
INFO = QColor("#1d4ed8")
INFO_BG = QColor("#dbeafe")
MUTED_C = QColor(MUTED)

#: Colour of each review state in the table and inspector.
STATE_COLORS = {
    ReviewState.UNREVIEWED: QColor(MUTED),
    ReviewState.VERIFIED: GOOD,
    ReviewState.FIXED: INFO,
    ReviewState.UNREADABLE: BAD,
    ReviewState.INVALID: WARN,
    ReviewState.MISSING: BAD,
}

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QToolBar {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER}; spacing: 6px; padding: 4px 6px; }}
QToolBar QToolButton {{ padding: 4px 8px; border-radius: 4px; color: {TEXT}; }}
QToolBar QToolButton:hover {{ background: #e5e7eb; }}
QToolBar QToolButton:checked {{ background: {ACCENT}; color: white; }}
QLineEdit {{ border: 1px solid {BORDER}; border-radius: 4px; padding: 3px 6px; background: white; }}
QLineEdit:focus {{ border: 1px solid {ACCENT}; }}
QTableView {{ border: none; gridline-color: #eef0f3; selection-background-color: #dbeafe;
             selection-color: {TEXT}; alternate-background-color: #fafbfc; }}
QHeaderView::section {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER};
                        border-right: 1px solid #eef0f3; padding: 4px 6px; color: {MUTED}; font-weight: 600; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar::item {{ border: none; }}
QSplitter::handle {{ background: {BORDER}; }}
QProgressBar {{ border: 1px solid {BORDER}; border-radius: 4px; background: white; height: 12px; text-align: center; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QPushButton {{ border: 1px solid {BORDER}; border-radius: 4px; padding: 4px 10px; background: white; color: {TEXT}; }}
QPushButton:hover {{ background: #f3f4f6; }}
QPushButton:default {{ border: 1px solid {ACCENT}; }}
QPushButton:disabled {{ color: #9ca3af; background: #f9fafb; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border: 1px solid {ACCENT}; }}
QPushButton#primary:hover {{ background: #1d4ed8; }}
QPushButton#primary:disabled {{ background: #bfdbfe; border: 1px solid #bfdbfe; color: white; }}
QPushButton#province {{ padding: 2px; min-width: 26px; max-width: 30px; }}
QPushButton#province[match="true"] {{ background: #dbeafe; border: 1px solid {ACCENT}; }}
QWidget#filterBar {{ background: white; border-bottom: 1px solid {BORDER}; }}
QWidget#summaryBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; }}
QToolButton#chip {{ border: 1px solid {BORDER}; border-radius: 11px; padding: 2px 10px; background: white; color: {TEXT}; }}
QToolButton#chip:hover {{ background: #f3f4f6; }}
QToolButton#chip:checked {{ background: {ACCENT}; color: white; border: 1px solid {ACCENT}; }}
QFrame#inspector {{ background: {PANEL}; }}
QLabel#sectionTitle {{ color: {MUTED}; font-weight: 600; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#counts {{ color: {TEXT}; padding: 0 8px; }}
"""
