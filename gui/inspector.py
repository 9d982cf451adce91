"""The inspector: a large, crisp view of the selected crop, the per-character comparison, the editor.

For a CCPD photograph (a whole street scene whose name says where the plate is) the large
view shows the plate as the model reads it (``core.ccpd.crop_plate``), and a strip below it
the whole photo and a close-up of the plate's surroundings with the plate's outline drawn:
what the camera saw next to what the model read.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import plates
from core.ccpd import PlateRegion, crop_named, crop_plate, plate_region
from core.images import ImageReadError, read_rgb
from core.label_score import LIKELY_ERROR_THRESHOLD
from core.review_table import Row

from . import style
from .fonts import plate_font
from .label_editor import LabelEditor
from .table_model import score_text

#: A label character is framed as suspicious when the label score is at most this (the likely-error
#: threshold would hide the weakest character of a merely doubtful label).
SUSPECT_BELOW = 0.5
#: The colour of a plate's outline drawn on a photo (bright, to be seen on any street scene).
OUTLINE = QColor("#22c55e")
#: Height of the photo strip shown under the plate for CCPD photographs (at most; it gives way
#: down to :data:`PHOTO_STRIP_MIN` on a small screen), and of the plate's view above it (at least).
PHOTO_STRIP_HEIGHT = 150
PHOTO_STRIP_MIN = 70
PLATE_VIEW_MIN = 100

Outline = tuple[tuple[tuple[float, float], ...], bool]
"""A polygon to draw over an image, in its pixel-edge coordinates, and whether it is the
plate's own outline (solid, bright) or its bounding box (thin, dashed)."""


class ImageView(QWidget):
    """Shows one image fitted to the widget (Lanczos-resampled, so crisp) or at 1:1; the mouse wheel
    zooms about the pointer, dragging pans, a double click fits again."""

    MAX_SIDE = 4096  # the longest side a zoom may resample the image to (memory)

    sig_fit = Signal()
    """A double click fitted the image again."""

    def __init__(self, parent=None, margin: int = 12, min_height: int = 140):
        super().__init__(parent)
        self._rgb: np.ndarray | None = None
        self._message = "No sample selected"
        self._scaled: QImage | None = None
        self._scaled_for: QSize | None = None
        self._outlines: list[Outline] = []
        self.margin = margin
        self.fit = True
        self.zoom: float | None = None  # a wheel zoom's scale (None: fit or 1:1)
        self._pan = QPointF(0.0, 0.0)  # the image's offset from centred, in widget pixels
        self._drag: QPointF | None = None
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, rgb: np.ndarray | None, message: str = "", outlines: list[Outline] | None = None) -> None:
        """Show ``rgb`` (H, W, 3 uint8), or ``message`` in a placeholder when ``None``.

        ``outlines`` are drawn over the image (see :data:`Outline`); at 1:1 an image larger
        than the view is centred on the first one instead of on its middle.
        """
        self._rgb = rgb
        self._message = message
        self._outlines = list(outlines or [])
        self._scaled = None
        self.zoom, self._pan = None, QPointF(0.0, 0.0)
        self.update()

    def set_fit(self, fit: bool) -> None:
        self.fit = fit
        self.zoom, self._pan = None, QPointF(0.0, 0.0)
        self._scaled = None
        self.update()

    def scale(self) -> float:
        """Displayed pixels per image pixel now."""
        if self._rgb is None:
            return 1.0
        if self.zoom is not None:
            return self.zoom
        if not self.fit:
            return 1.0
        h, w = self._rgb.shape[:2]
        area = self.rect().adjusted(self.margin, self.margin, -self.margin, -self.margin)
        return min(area.width() / w, area.height() / h)

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the image point under ``at`` (widget coordinates; default: the centre) still."""
        if self._rgb is None:
            return
        h, w = self._rgb.shape[:2]
        old_t = self._target()
        s_old = self.scale()
        s_new = min(max(s_old * factor, 0.25 * min(1.0, s_old)), self.MAX_SIDE / max(w, h))
        at = QPointF(self.rect().center()) if at is None else at
        # the image point under `at`, then where it lands at the new scale; the pan makes up the difference
        ix, iy = (at.x() - old_t.left()) / s_old, (at.y() - old_t.top()) / s_old
        self.zoom = s_new
        self._pan = QPointF(0.0, 0.0)
        centred = self._target()
        self._pan = QPointF(at.x() - ix * s_new - centred.left(), at.y() - iy * s_new - centred.top())
        self._scaled = None
        self.update()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if self._rgb is None or not steps:
            event.ignore()  # nothing to zoom: the panel scrolls
            return
        self.zoom_by(1.25**steps, event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self._rgb is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag is not None:
            self._pan += event.position() - self._drag
            self._drag = event.position()
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.set_fit(True)
        self.sig_fit.emit()

    @property
    def has_image(self) -> bool:
        return self._rgb is not None

    def _target(self) -> QRect:
        h, w = self._rgb.shape[:2]
        m = self.margin
        area = self.rect().adjusted(m, m, -m, -m)
        s = self.scale()
        tw, th = max(1, round(w * s)), max(1, round(h * s))
        left, top = area.left() + (area.width() - tw) // 2, area.top() + (area.height() - th) // 2
        if self.zoom is not None:
            return QRect(round(left + self._pan.x()), round(top + self._pan.y()), tw, th)
        if self._outlines and (tw > area.width() or th > area.height()):
            quad = self._outlines[0][0]
            cx, cy = sum(x for x, _ in quad) / len(quad) * s, sum(y for _, y in quad) / len(quad) * s
            if tw > area.width():
                left = round(min(area.left(), max(area.right() + 1 - tw, area.center().x() - cx)))
            if th > area.height():
                top = round(min(area.top(), max(area.bottom() + 1 - th, area.center().y() - cy)))
        return QRect(left, top, tw, th)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1f2430"))
        if self._rgb is None:
            p.setPen(QColor("#c7ccd6"))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.1)
            p.setFont(f)
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self._message)  # fmt: skip
            return
        t = self._target()
        if self._scaled is None or self._scaled_for != t.size():
            h, w = self._rgb.shape[:2]
            if (t.width(), t.height()) == (w, h):
                arr = self._rgb
            else:
                interp = cv2.INTER_LANCZOS4 if t.width() > w else cv2.INTER_AREA
                arr = cv2.resize(self._rgb, (t.width(), t.height()), interpolation=interp)
            arr = np.ascontiguousarray(arr)
            self._scaled = QImage(
                arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGB888
            ).copy()
            self._scaled_for = t.size()
        p.drawImage(t.topLeft(), self._scaled)
        if self._outlines:
            self._draw_outlines(p, t)

    def _draw_outlines(self, p: QPainter, t: QRect) -> None:
        h, w = self._rgb.shape[:2]
        sx, sy = t.width() / w, t.height() / h
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for quad, main in reversed(self._outlines):  # the plate's own outline on top
            poly = QPolygonF([QPointF(t.left() + x * sx, t.top() + y * sy) for x, y in quad])
            if main:
                p.setPen(QPen(QColor(0, 0, 0, 110), 4))  # a dark halo: visible on light and dark scenes
                p.drawPolygon(poly)
                p.setPen(QPen(OUTLINE, 2))
                p.drawPolygon(poly)
            else:
                pen = QPen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.drawPolygon(poly)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(480, 180)


class CharGrid(QWidget):
    """Label and prediction aligned character by character, with probabilities and runner-ups.

    The label's most suspicious character (the weakest in the label score) is framed in red,
    and the ``p(label)`` line gives the model's probability of each of the label's characters.
    Where the prediction is the model's reading of the crop zoomed in (``Row.zoomed``) or of its
    negative (``Row.negative``), its title says so, and its tooltip what that means: ``p(label)`` (the
    review order's) is then the crop's reads averaged, as framed and zoomed.
    """

    ZOOMED_TIP = ("The prediction, its p and runner-ups are the model's reading of the crop zoomed in:\n"
                  "it was unsure of the crop as framed and surer zoomed. p(label), and so the review order,\n"
                  "come from all its reads averaged, as framed and zoomed.")  # fmt: skip
    NEGATIVE_TIP = ("The crop is a light plate with dark characters (a yellow plate): the model read it also\n"
                    "as its negative, white characters on blue as on the plates it learnt from, and was surer\n"
                    "of that reading; the prediction and p(label) are the negative's.")  # fmt: skip

    def __init__(self, parent=None):
        super().__init__(parent)
        self._row: Row | None = None
        self.suspect: int | None = None  # position of the label's weakest character, when it is suspicious
        self._big = plate_font(17, bold=True)
        self._small = plate_font(8.5)
        self.setMinimumHeight(self.sizeHint().height())
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_row(self, row: Row | None) -> None:
        self._row = row
        score = row.label_score if row is not None else None
        self.suspect = row.suspect if score is not None and score <= SUSPECT_BELOW else None
        tips = [tip for on, tip in ((self.negative, self.NEGATIVE_TIP), (self.zoomed, self.ZOOMED_TIP)) if on]
        self.setToolTip("\n\n".join(tips))
        self.update()

    @property
    def zoomed(self) -> bool:
        """The row shown has a prediction read zoomed in."""
        return self._row is not None and self._row.zoomed

    @property
    def negative(self) -> bool:
        """The row shown has a prediction read from the crop's negative."""
        return self._row is not None and self._row.negative

    @property
    def prediction_title(self) -> str:
        """The prediction row's title: how the prediction was read, where not simply as framed."""
        how = ", ".join(w for on, w in ((self.zoomed, "zoomed"), (self.negative, "negative")) if on)
        return f"Prediction\n{how}" if how else "Prediction"

    def sizeHint(self) -> QSize:  # noqa: N802
        fb, fs = QFontMetrics(self._big), QFontMetrics(self._small)
        return QSize(420, 2 * (fb.height() + 10) + 3 * (fs.height() + 4) + 21)

    def paintEvent(self, event) -> None:  # noqa: N802
        row = self._row
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fb, fs = QFontMetrics(self._big), QFontMetrics(self._small)
        rows = [
            ("p(label)", "lprob"),
            ("Label", "label"),
            (self.prediction_title, "pred"),
            ("p", "prob"),
            ("Runner-up", "runner"),
        ]
        # the titles' column: as wide as its longest line ("zoomed, negative"), at least 78 px
        label_w = max(78, max(fs.horizontalAdvance(line) for t, _ in rows for line in t.split("\n")) + 12)
        n = 7
        if row is not None:
            n = max(7, len(row.label), len(row.prediction))
        cell_w = max(30, min(56, (self.width() - label_w - 4) // n))
        hb, hs = fb.height() + 10, fs.height() + 4
        y = 2
        for title, kind in rows:
            h = hb if kind in ("label", "pred") else hs
            p.setFont(self._small)
            p.setPen(QColor(style.MUTED))
            p.drawText(QRect(0, y, label_w - 8, h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, title)
            for i in range(n):
                r = QRect(label_w + i * cell_w, y, cell_w - 4, h)
                self._cell(p, r, kind, i, row)
            y += h + (6 if kind == "pred" else 3)

    def _cell(self, p: QPainter, r: QRect, kind: str, i: int, row: Row | None) -> None:
        label = row.label if row else ""
        pred = row.prediction if row else ""
        if kind in ("label", "pred"):
            text = (label if kind == "label" else pred)[i : i + 1]
            differs = bool(pred) and (label[i : i + 1] != pred[i : i + 1])
            bg = QColor("#ffffff")
            fg = QColor(style.TEXT)
            border = QColor(style.BORDER)
            width = 1
            if kind == "pred" and differs:
                bg, fg, border = style.BAD_BG, style.BAD, style.BAD
            elif kind == "label" and row is not None and row.label_error and text:
                bg, fg = style.WARN_BG, style.WARN
            elif kind == "label" and i == self.suspect:
                bg, fg, border, width = style.BAD_BG, style.BAD, style.BAD, 3
            p.setPen(QPen(border, width))
            p.setBrush(bg)
            p.drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)
            p.setFont(self._big)
            p.setPen(fg)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, text or ("·" if row else ""))
            return
        p.setFont(self._small)
        if kind in ("prob", "lprob"):
            probs = (row.probs if kind == "prob" else row.label_probs) if row else []
            if i < len(probs):
                v = probs[i]
                bar = QRect(r.left() + 2, r.bottom() - 2, max(1, round((r.width() - 4) * v)), 2)
                c = style.GOOD if v >= 0.9 else style.WARN if v >= 0.6 else style.BAD
                p.fillRect(bar, c)
                p.setPen(QColor(style.TEXT))
                p.drawText(r.adjusted(0, 0, 0, -3), Qt.AlignmentFlag.AlignCenter, f"{v:.2f}")
            return
        ru = row.runner_up if row else ""
        rp = row.runner_up_probs if row else []
        if i < len(ru):
            p.setPen(QColor(style.MUTED))
            txt = f"{ru[i]} {rp[i]:.2f}" if i < len(rp) else ru[i]
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, txt)


class DuplicateStrip(QFrame):
    """The crops that are (nearly) the same picture as the inspected one, side by side, with their labels.

    A click on one selects it in the table (``sig_select``). Hidden when there are none.
    """

    sig_select = Signal(str)
    """The user clicked a duplicate (its rel)."""

    MAX_SHOWN = 4

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("duplicates")
        self.title = QLabel()
        self.title.setWordWrap(True)
        self._buttons = QHBoxLayout()
        self._buttons.setSpacing(6)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.title)
        lay.addLayout(self._buttons)
        self.rels: list[str] = []
        self.hide()

    def set_rows(self, root: Path | None, row: Row | None, others: list[Row]) -> None:
        while self._buttons.count():
            item = self._buttons.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rels = [r.rel for r in others]
        if row is None or not others:
            self.hide()
            return
        conflict = any(r.label != row.label for r in others)
        self.title.setText(
            f"⚠ The same picture under {'another label' if conflict else 'the same label'}"
            + (": one of these labels is wrong." if conflict else ".")
        )
        self.title.setStyleSheet(f"color: {(style.BAD if conflict else style.MUTED_C).name()}; font-weight: 600;")
        for r in others[: self.MAX_SHOWN]:
            b = QToolButton()
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            b.setText(r.label or "—")
            b.setFont(plate_font(10, bold=r.label != row.label))
            b.setToolTip(f"{r.rel}\nClick to inspect it")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            if root is not None:
                try:
                    path = root / r.rel
                    rgb = np.ascontiguousarray(crop_named(read_rgb(path), path))
                    img = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
                    pm = QPixmap.fromImage(img.scaled(QSize(120, 32), Qt.AspectRatioMode.KeepAspectRatio,
                                                      Qt.TransformationMode.SmoothTransformation))  # fmt: skip
                    b.setIcon(QIcon(pm))
                    b.setIconSize(pm.size())
                except ImageReadError:
                    pass
            b.clicked.connect(lambda _checked=False, rel=r.rel: self.sig_select.emit(rel))
            self._buttons.addWidget(b)
        if len(others) > self.MAX_SHOWN:
            self._buttons.addWidget(QLabel(f"+{len(others) - self.MAX_SHOWN} more"))
        self._buttons.addStretch(1)
        self.show()


def context_box(shape: tuple[int, ...], region: PlateRegion, aspect: float = 2.0) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)``: a close-up around the plate, about twice its width and ``aspect``
    wide:high (clamped to the image), so the outline is seen with what surrounds it."""
    h, w = int(shape[0]), int(shape[1])
    xs, ys = [x for x, _ in region.quad], [y for _, y in region.quad]
    bw, bh = max(xs) - min(xs), max(ys) - min(ys)
    cw = min(w, max(bw * 2.0, bh * 2.5 * aspect, 8.0))
    ch = min(h, max(cw / aspect, bh * 2.5, 8.0))
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    x1 = int(round(min(max(0.0, cx - cw / 2), w - cw)))
    y1 = int(round(min(max(0.0, cy - ch / 2), h - ch)))
    return x1, y1, min(w, x1 + int(round(cw))), min(h, y1 + int(round(ch)))


class PhotoStrip(QFrame):
    """Under the plate of a CCPD photograph: the whole photo and a close-up of the plate's
    surroundings, with the plate's outline (and bounding box) drawn. Hidden for plain crops."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("photoStrip")
        self.caption = QLabel()
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        self.frame_view = ImageView(margin=4, min_height=60)
        self.context_view = ImageView(margin=4, min_height=60)
        self.frame_view.setToolTip("The whole photograph; the plate's outline in green")
        self.context_view.setToolTip("Around the plate: green, the outline the model's crop is rectified from;\n"
                                     "dashed, the plate's bounding box in the file name")  # fmt: skip
        for v in (self.frame_view, self.context_view):
            v.setMinimumHeight(PHOTO_STRIP_MIN)
            v.setMaximumHeight(PHOTO_STRIP_HEIGHT)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(self.frame_view)
        row.addWidget(self.context_view, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.caption)
        lay.addLayout(row)
        self.region: PlateRegion | None = None
        self.hide()

    def set_photo(self, rgb: np.ndarray | None, parsed: plates.ParsedName | None, region: PlateRegion | None) -> None:
        """Show the photo ``rgb`` with ``region`` outlined (``None``: hide the strip)."""
        self.region = region
        if rgb is None or parsed is None or region is None:
            self.frame_view.set_image(None)
            self.context_view.set_image(None)
            self.hide()
            return
        h, w = rgb.shape[:2]
        outlines: list[Outline] = [(region.quad, True)]
        if region.rectified and parsed.box is not None:
            x1, y1, x2, y2 = parsed.box
            outlines.append((((x1, y1), (x2, y1), (x2, y2), (x1, y2)), False))
        m = self.frame_view.margin
        self.frame_view.setFixedWidth(min(200, round((PHOTO_STRIP_HEIGHT - 2 * m) * w / h) + 2 * m))
        self.frame_view.set_image(rgb, outlines=outlines)
        cx1, cy1, cx2, cy2 = context_box(rgb.shape, region)
        shifted = [(tuple((x - cx1, y - cy1) for x, y in quad), main) for quad, main in outlines]
        self.context_view.set_image(np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2]), outlines=shifted)
        how = "rectified from the green outline" if region.rectified else "cut out of the green box"
        self.caption.setText(f"The {w}×{h} photo: the plate above is {how}.")
        self.show()


class Inspector(QFrame):
    """Right-hand panel: image, file facts, character comparison, actions, label editor."""

    sig_accept = Signal()
    """The user asked to accept the prediction."""
    sig_verify = Signal()
    """The user asked to keep the label (verified)."""
    sig_submit = Signal(str)
    """The user typed a new label."""
    sig_cancel_edit = Signal()
    """The user left the editor without applying."""
    sig_missing = Signal(str)
    """The selected file does not exist any more (rel)."""
    sig_select = Signal(str)
    """The user asked to inspect another sample (rel), e.g. a near duplicate."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.root: Path | None = None
        self.row: Row | None = None
        self.image = ImageView()
        self.photo = PhotoStrip()
        self.fit_btn = QPushButton("Fit")
        self.one_btn = QPushButton("1:1")
        for b in (self.fit_btn, self.one_btn):
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.fit_btn.setChecked(True)
        self.fit_btn.setToolTip("Zoom to fit (Ctrl+0)")
        self.one_btn.setToolTip("Actual pixels (Ctrl+1)")
        grp = QButtonGroup(self)
        grp.addButton(self.fit_btn)
        grp.addButton(self.one_btn)
        grp.setExclusive(True)
        self.fit_btn.clicked.connect(lambda: self.image.set_fit(True))  # clicked: also after a wheel zoom
        self.one_btn.clicked.connect(lambda: self.image.set_fit(False))
        self.image.sig_fit.connect(lambda: self.fit_btn.setChecked(True))

        self.title = QLabel()
        self.title.setFont(plate_font(12, bold=True))
        # A long name (a CCPD photo's) is clipped, not a reason to widen the window; the tooltip has it all.
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(80)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts = QLabel()
        self.facts.setObjectName("muted")
        self.facts.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(
            f"background: {style.WARN_BG.name()}; color: {style.WARN.name()}; border-radius: 4px; padding: 6px;"
        )
        self.problem.hide()
        self.chars = CharGrid()
        self.duplicates = DuplicateStrip()
        self.duplicates.sig_select.connect(self.sig_select)
        #: Set by the window: ``rel -> [Row]`` of the crops that are the same picture.
        self.duplicates_provider = None
        #: Set by the window: ``rel ->`` the second reader's reading (a record) or ``None``.
        self.second_provider = None
        self.accept_btn = QPushButton("Accept prediction   Enter")
        self.accept_btn.setObjectName("primary")
        self.verify_btn = QPushButton("Label is right   Space")
        for b in (self.accept_btn, self.verify_btn):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.accept_btn.clicked.connect(self.sig_accept)
        self.verify_btn.clicked.connect(self.sig_verify)
        self.editor = LabelEditor()
        self.editor.sig_submitted.connect(self.sig_submit)
        self.editor.sig_cancelled.connect(self.sig_cancel_edit)

        zoom = QHBoxLayout()
        zoom.setSpacing(4)
        zoom.addWidget(self.title, 1)
        zoom.addWidget(self.fit_btn)
        zoom.addWidget(self.one_btn)
        actions = QHBoxLayout()
        actions.setSpacing(6)
        actions.addWidget(self.accept_btn)
        actions.addWidget(self.verify_btn)
        actions.addStretch(1)
        fix_title = QLabel("Fix the label  (E)")
        fix_title.setObjectName("sectionTitle")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 12, 14, 12)
        lay.setSpacing(8)
        lay.addLayout(zoom)
        lay.addWidget(self.image, 3)
        lay.addWidget(self.photo, 2)
        lay.addWidget(self.facts)
        lay.addWidget(self.problem)
        lay.addWidget(self.chars)
        lay.addWidget(self.duplicates)
        lay.addLayout(actions)
        lay.addSpacing(4)
        lay.addWidget(fix_title)
        lay.addWidget(self.editor)
        lay.addStretch(1)
        self.show_row(None)

    def show_row(self, row: Row | None) -> None:
        """Show a sample (``None``: nothing selected)."""
        self.row = row
        self.chars.set_row(row)
        provider = self.duplicates_provider
        self.duplicates.set_rows(self.root, row, provider(row.rel) if provider is not None and row is not None else [])
        if row is None:
            self.title.setText("No sample selected")
            self.title.setToolTip("")
            self.facts.setText("Open a folder (Ctrl+O) or drop one on the window.")
            self.problem.hide()
            self.image.set_image(None, "No sample selected")
            self.photo.set_photo(None, None, None)
            self.editor.set_label("")
            self._enable(False)
            return
        self.title.setText(row.rel)
        self.title.setToolTip(row.rel)
        problems = []
        rgb = None
        msg = ""
        if self.root is not None:
            try:
                rgb = read_rgb(self.root / row.rel)
            except ImageReadError as e:
                msg = f"Cannot show this image:\n{e.reason}"
                if e.missing:
                    self.sig_missing.emit(row.rel)
                    problems.append("The file is missing: it was deleted or moved outside Plate Review.")
                else:
                    problems.append(f"Unreadable image: {e.reason}")
        if row.error and not problems:
            problems.append(f"Unreadable image: {row.error}")
        if row.label_error:
            problems.append(f"Invalid label in the file name: {row.label_error}")
        photo, parsed, region = rgb, None, None
        if rgb is not None and "&" in row.rel:  # named like a CCPD photograph: show the plate the model reads
            parsed = plates.parse_name(row.rel)
            region = plate_region(parsed, rgb.shape) if parsed.scheme is plates.Scheme.CCPD else None
            if region is not None:
                rgb = crop_plate(photo, parsed)
        self.image.set_image(rgb, msg)
        self.image.setMinimumHeight(PLATE_VIEW_MIN if region is not None else 140)  # room for the photo strip
        self.photo.set_photo(photo, parsed, region)
        facts = []
        if rgb is not None:
            size = f"{rgb.shape[1]}×{rgb.shape[0]} px"
            facts.append(f"{size} plate from a {photo.shape[1]}×{photo.shape[0]} photo" if region is not None else size)
        if row.label_score is not None:
            pos = row.suspect
            weakest = f", weakest: {pos + 1} '{row.label[pos]}'" if pos is not None and pos < len(row.label) else ""
            likely = "  ⚠ likely label error" if row.label_score <= LIKELY_ERROR_THRESHOLD else ""
            facts.append(f"label score {score_text(row.label_score)}{weakest}{likely}")
        if row.prediction:
            facts.append(f"CER {row.cer:.2f}" if row.cer is not None else "no CER")
            facts.append(f"confidence {row.confidence:.1%}")
        elif not row.error:
            facts.append("not predicted yet")
        second = self.second_provider(row.rel) if self.second_provider is not None else None
        if second is not None:
            agree = "agrees with the label" if second.prediction == row.label else "reads otherwise"
            facts.append(f"second reader: {second.prediction or 'unreadable'} ({agree}, label score "
                         f"{score_text(second.label_score) or '—'})")  # fmt: skip
        facts.append(f"state: {row.display_state}")
        self.facts.setText("   ·   ".join(facts))
        self.problem.setText("\n".join(problems))
        self.problem.setVisible(bool(problems))
        self.editor.set_label(row.label if not row.label_error else (row.prediction or row.label))
        self._enable(True)
        self.accept_btn.setEnabled(bool(row.prediction) and not row.missing)
        self.verify_btn.setEnabled(not row.label_error and not row.missing)

    def _enable(self, on: bool) -> None:
        for w in (self.accept_btn, self.verify_btn, self.editor):
            w.setEnabled(on)
