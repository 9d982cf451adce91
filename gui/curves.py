"""Live training curves (pyqtgraph): loss, validation accuracy/CER, learning rate.

One :class:`pyqtgraph.PlotDataItem` per series is created once; points are
appended to plain lists and pushed with ``setData`` from a GUI-thread timer at
most every ``refresh_ms`` (default 500 ms), so thousands of steps per minute
never flood the event loop. Every item downsamples (``peak``) and clips to view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: Series name -> (plot, legend text, colour, width, symbol).
SERIES: dict[str, tuple[str, str, str, float, str | None]] = {
    "train_loss_raw": ("loss", "train loss (raw)", "#a5b4fc", 1.0, None),
    "train_loss_ema": ("loss", "train loss (EMA)", "#2563eb", 2.0, None),
    "val_loss": ("loss", "val loss", "#dc2626", 2.0, "o"),
    "val_accuracy": ("quality", "val accuracy", "#15803d", 2.0, "o"),
    "val_cer": ("quality", "val CER", "#b45309", 2.0, "s"),
    "lr": ("lr", "learning rate", "#6b7280", 1.5, None),
}


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


class StepAxis(pg.AxisItem):
    """The step axis: ticks at whole steps only (a run of a few steps gets no tick at 1.5)."""

    def tickValues(self, minVal, maxVal, size):
        levels = super().tickValues(minVal, maxVal, size)
        return [(max(spacing, 1.0), [v for v in values if float(v).is_integer()]) for spacing, values in levels]


class CurvesWidget(QWidget):
    """Three stacked plots sharing the step axis: loss, validation quality, learning rate.

    Args:
        parent: Parent widget.
        refresh_ms: Minimum interval between redraws.
        ema_alpha: Smoothing factor of the train-loss EMA (bias-corrected, like TensorBoard's).
    """

    def __init__(self, parent: QWidget | None = None, refresh_ms: int = 500, ema_alpha: float = 0.1):
        super().__init__(parent)
        self.ema_alpha = ema_alpha
        self._data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in SERIES}
        self._ema = 0.0
        self._ema_n = 0
        self._dirty = False
        self.redraws = 0

        pg.setConfigOptions(antialias=True)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.view.ci.layout.setSpacing(4)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)

        self.plots: dict[str, pg.PlotItem] = {}
        titles = {"loss": "Loss", "quality": "Validation", "lr": "Learning rate"}
        for row, key in enumerate(("loss", "quality", "lr")):
            p = self.view.addPlot(row=row, col=0, axisItems={"bottom": StepAxis(orientation="bottom")})
            p.setTitle(self._title_html(titles[key], key), size="9pt")
            p.showGrid(x=True, y=True, alpha=0.15)
            p.setMenuEnabled(False)
            for ax in ("left", "bottom"):
                p.getAxis(ax).setTextPen("#6b7280")
                p.getAxis(ax).setPen("#d1d5db")
            p.getAxis("left").setWidth(48)
            self.plots[key] = p
        self.plots["quality"].setXLink(self.plots["loss"])
        self.plots["lr"].setXLink(self.plots["loss"])
        self.plots["quality"].setYRange(-0.02, 1.04, padding=0)
        self.plots["lr"].setLabel("bottom", "step", color="#6b7280")
        self.view.ci.layout.setRowStretchFactor(0, 5)
        self.view.ci.layout.setRowStretchFactor(1, 4)
        self.view.ci.layout.setRowStretchFactor(2, 2)

        self.items: dict[str, pg.PlotDataItem] = {}
        for name, (plot, _text, colour, width, symbol) in SERIES.items():
            pen = pg.mkPen(colour, width=width)
            kw: dict[str, Any] = {"pen": pen}
            if symbol:
                kw.update(symbol=symbol, symbolSize=6, symbolBrush=colour, symbolPen=colour)
            item = self.plots[plot].plot([], [], **kw)
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            self.items[name] = item

        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()
        self.refresh()

    @staticmethod
    def _title_html(title: str, plot: str) -> str:
        """The plot title with an inline legend (coloured line glyphs), so no legend box covers the data."""
        keys = "".join(
            f'&nbsp;&nbsp;<span style="color:{colour}; font-weight:700">{"●" if symbol else "━"}</span>'
            f'&nbsp;<span style="color:#6b7280">{text}</span>'
            for p, text, colour, _w, symbol in SERIES.values()
            if p == plot and plot != "lr"
        )
        return f'<span style="color:#374151; font-weight:600">{title}</span>{keys}'

    # ------------------------------------------------------------------ data in

    def add_step(self, step: int, loss: float, lr: float | None = None) -> None:
        """Record one training step (drawn at the next refresh)."""
        if _finite(loss):
            self._append("train_loss_raw", step, loss)
            self._ema_n += 1
            self._ema = self.ema_alpha * loss + (1 - self.ema_alpha) * self._ema
            self._append("train_loss_ema", step, self._ema / (1 - (1 - self.ema_alpha) ** self._ema_n))
        if _finite(lr):
            self._append("lr", step, lr)

    def add_validation(
        self, step: int, val_loss: float | None, val_accuracy: float | None, val_cer: float | None
    ) -> None:
        """Record one validation pass (NaN/None values are skipped)."""
        for name, v in (("val_loss", val_loss), ("val_accuracy", val_accuracy), ("val_cer", val_cer)):
            if _finite(v):
                self._append(name, step, v)

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Record rows of a curves CSV (:class:`core.finetune.CurveRow`) and redraw now."""
        for r in rows:
            if r.train_loss is not None:
                self.add_step(r.step, r.train_loss, r.lr)
            if r.is_validation:
                self.add_validation(r.step, r.val_loss, r.val_accuracy, r.val_cer)
        self.refresh()

    def clear(self) -> None:
        """Forget every point and redraw empty plots."""
        for xs, ys in self._data.values():
            xs.clear()
            ys.clear()
        self._ema, self._ema_n = 0.0, 0
        self._dirty = True
        self.refresh()

    def _append(self, name: str, x: float, y: float) -> None:
        xs, ys = self._data[name]
        xs.append(float(x))
        ys.append(float(y))
        self._dirty = True

    def series(self, name: str) -> tuple[list[float], list[float]]:
        """The recorded points of one series (x, y)."""
        return self._data[name]

    # ------------------------------------------------------------------ drawing

    @Slot()
    def _on_timer_timeout(self) -> None:
        if self._dirty:
            self.refresh()

    def refresh(self) -> None:
        """Push the recorded points to the plot items now (normally done by the timer)."""
        self._dirty = False
        self.redraws += 1
        for name, item in self.items.items():
            xs, ys = self._data[name]
            item.setData(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        for key, plot in self.plots.items():  # an empty plot shows no numbers (pyqtgraph's default range)
            shown = any(self._data[name][0] for name, spec in SERIES.items() if spec[0] == key)
            for ax in ("left", "bottom"):
                plot.getAxis(ax).setStyle(showValues=shown)
