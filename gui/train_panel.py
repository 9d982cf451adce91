"""The Train panel: one-click fine-tuning with live curves, an honest before/after, k-fold scoring.

The window that mounts it (a dock or a tab) wires it::

    panel.set_dataset(folder, current_model=path, states_provider=session.states)
    panel.sig_show_samples.connect(...)       # filter/select these rows
    panel.sig_crossval_results.connect(...)   # {rel: PredictionResult} as a column / sort key
    panel.sig_model_accepted.connect(...)     # switch to this checkpoint and re-run inference
    panel.shutdown()                          # in closeEvent: stop a running job and wait

Training uses the folder's current labels (file names) and review states: verified
and fixed samples, unreviewed ones unless excluded, never unreadable or invalid
ones. Nothing here changes labels or review states.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.data import thread_safe_start_method
from core.dataset import Sample, scan_folder
from core.finetune import (
    Comparison,
    CrossValResult,
    FinetuneResult,
    Selection,
    folder_selection,
    models_dir,
    new_checkpoint_path,
    read_curves,
)
from core.models import CheckpointError, load_checkpoint
from core.predict import Progress
from core.train import EpochInfo, StepInfo, TrainConfig

from .curves import CurvesWidget
from .train_worker import CompareWorker, CrossValWorker, TrainWorker
from .worker import WorkerError, start_worker

log = logging.getLogger(__name__)

SCRATCH = "__scratch__"
OTHER = "__other__"


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03`` / ``--`` for unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _pct(v: float | None) -> str:
    return "--" if v is None or not math.isfinite(v) else f"{100 * v:.1f} %"


def _rate(v: float | None) -> str:
    return "--" if v is None or not math.isfinite(v) else f"{v:.4f}"


class TrainPanel(QWidget):
    """Fine-tune the recognizer on the open folder, watch the curves, compare before/after.

    Attributes:
        predict_backend: Predictor backend for the comparison and k-fold scoring (``auto``).
        last_result: The last finished (or cancelled) training run.
        last_comparison: The last before/after comparison.
        last_crossval: The last k-fold scoring.
    """

    sig_show_samples = Signal(list)
    """The user asked to see these samples (list of rel paths): filter/select them in the table."""
    sig_crossval_results = Signal(dict)
    """Out-of-sample scores {rel: PredictionResult} from k-fold fine-tuning, for a column / sort key."""
    sig_model_accepted = Signal(str)
    """The user chose "Use this model": the checkpoint path the app should predict with from now on."""
    sig_running_changed = Signal(bool)
    """A background job (training, comparison, k-fold scoring) started (True) or ended (False)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.folder: Path | None = None
        self.current_model: str | None = None
        self.states_provider: Callable[[], Mapping[str, str]] | None = None
        self.predict_backend = "auto"
        self.last_result: FinetuneResult | None = None
        self.last_comparison: Comparison | None = None
        self.last_crossval: CrossValResult | None = None
        self._thread: QThread | None = None
        self._worker: Any = None
        self._job: str | None = None
        self._t_start = 0.0
        self._last_step: StepInfo | None = None
        self._retry_batch: int | None = None
        self._build()
        self._wheel_guard = _WheelGuard(self)
        for w in self._setting_widgets():
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not the wheel's: scrolling the panel changes nothing
            w.installEventFilter(self._wheel_guard)
        # The app style sheet has no disabled look for buttons; make "not now" visible here.
        self.setStyleSheet("QPushButton:disabled { color: #9ca3af; background: #f9fafb; }")
        self._update_enabled()

    # ================================================================== settings

    def _setting_widgets(self) -> list[QWidget]:
        return [self.base_combo, self.arch_combo, self.epochs_spin, self.lr_spin, self.batch_spin, self.val_combo,
                self.val_split_spin, self.device_combo, self.folds_spin]  # fmt: skip

    def save_settings(self, settings) -> None:
        """Remember the form (QSettings group ``train``) for the next start."""
        settings.beginGroup("train")
        for name in ("epochs_spin", "lr_spin", "batch_spin", "val_split_spin", "folds_spin"):
            settings.setValue(name, getattr(self, name).value())
        for name in ("arch_combo", "val_combo", "device_combo"):
            settings.setValue(name, getattr(self, name).currentIndex())
        settings.setValue("unreviewed_check", self.unreviewed_check.isChecked())
        settings.endGroup()

    def restore_settings(self, settings) -> None:
        """Put back what :meth:`save_settings` remembered (values out of range are clamped by the widgets)."""
        settings.beginGroup("train")
        try:
            for name in ("epochs_spin", "batch_spin", "folds_spin"):
                if settings.contains(name):
                    getattr(self, name).setValue(int(settings.value(name)))
            for name in ("lr_spin", "val_split_spin"):
                if settings.contains(name):
                    getattr(self, name).setValue(float(settings.value(name)))
            for name in ("arch_combo", "val_combo", "device_combo"):
                if settings.contains(name):
                    i = int(settings.value(name))
                    combo = getattr(self, name)
                    if 0 <= i < combo.count():
                        combo.setCurrentIndex(i)
            if settings.contains("unreviewed_check"):
                self.unreviewed_check.setChecked(str(settings.value("unreviewed_check")).lower() in ("true", "1"))
        except (TypeError, ValueError):  # a damaged settings file: keep the defaults
            log.warning("the Train panel's saved settings could not be read; defaults kept")
        finally:
            settings.endGroup()

    # ================================================================== UI

    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        split = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(split)

        # ---- left: settings (scrolls when the dock is short)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(left)
        scroll.setMinimumWidth(300)

        model_box = QGroupBox("Model")
        mf = QFormLayout(model_box)
        self.base_combo = QComboBox()
        self.base_combo.addItem("Current model", None)
        self.base_combo.addItem("From scratch", SCRATCH)
        self.base_combo.addItem("Other checkpoint…", OTHER)
        self.base_combo.activated.connect(self._on_base_combo_activated)
        self.base_combo.currentIndexChanged.connect(self._on_base_combo_changed)
        mf.addRow("Start from", self.base_combo)
        self.arch_combo = QComboBox()
        self.arch_combo.addItem("CNN + BiLSTM (lstm)", "lstm")
        self.arch_combo.addItem("CNN + BiLSTM, strided: ~5x faster (lstm-fast)", "lstm-fast")
        self.arch_combo.addItem("CNN only (simple)", "simple")
        mf.addRow("Architecture", self.arch_combo)
        lv.addWidget(model_box)

        train_box = QGroupBox("Training")
        tf = QFormLayout(train_box)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 500)
        self.epochs_spin.setValue(3)
        tf.addRow("Epochs", self.epochs_spin)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(1e-4)
        tf.addRow("Learning rate", self.lr_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(64)
        tf.addRow("Batch size", self.batch_spin)
        self.val_combo = QComboBox()
        self.val_combo.addItem("Split off the folder", "split")
        self.val_combo.addItem("Separate folder", "folder")
        self.val_combo.currentIndexChanged.connect(self._on_val_combo_changed)
        tf.addRow("Validation", self.val_combo)
        self.val_split_spin = QDoubleSpinBox()
        self.val_split_spin.setRange(0.0, 0.5)
        self.val_split_spin.setSingleStep(0.05)
        self.val_split_spin.setDecimals(2)
        self.val_split_spin.setValue(0.10)
        self.val_split_label = QLabel("Held out")
        tf.addRow(self.val_split_label, self.val_split_spin)
        vrow = QHBoxLayout()
        self.val_folder_edit = QLineEdit()
        self.val_folder_edit.setPlaceholderText("validation folder")
        self.val_browse = QPushButton("…")
        self.val_browse.setFixedWidth(28)
        self.val_browse.clicked.connect(self._on_val_browse_clicked)
        vrow.addWidget(self.val_folder_edit)
        vrow.addWidget(self.val_browse)
        self.val_folder_label = QLabel("Folder")
        tf.addRow(self.val_folder_label, vrow)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto", "auto")
        self.device_combo.addItem("CPU", "cpu")
        if torch.cuda.is_available():
            self.device_combo.addItem(f"CUDA ({torch.cuda.get_device_name(0)})", "cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            self.device_combo.addItem("Apple MPS", "mps")
        tf.addRow("Device", self.device_combo)
        # Combos as wide as the column, not as their longest entry (the list still shows it whole):
        # otherwise the column needs more than a 1366-px screen leaves it and its right edge is cut.
        for combo in (self.base_combo, self.arch_combo, self.val_combo, self.device_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
            combo.setToolTip(combo.currentText())
            combo.currentTextChanged.connect(combo.setToolTip)
        self.unreviewed_check = QCheckBox("Include unreviewed samples")
        self.unreviewed_check.setChecked(True)
        self.unreviewed_check.setToolTip(
            "Verified and fixed samples always train; unreadable and invalid ones never do."
        )
        tf.addRow(self.unreviewed_check)
        lv.addWidget(train_box)
        self._on_val_combo_changed()

        brow = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        brow.addWidget(self.start_button, 1)
        brow.addWidget(self.cancel_button)
        lv.addLayout(brow)

        self.error_frame = QFrame()
        self.error_frame.setStyleSheet(
            "QFrame { background: #fee2e2; border: 1px solid #fca5a5; border-radius: 4px; }"
            "QLabel { border: none; color: #991b1b; }"
        )
        ef = QVBoxLayout(self.error_frame)
        ef.setContentsMargins(8, 6, 8, 6)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ef.addWidget(self.error_label)
        self.retry_button = QPushButton("Retry with a smaller batch")
        self.retry_button.clicked.connect(self._on_retry_button_clicked)
        ef.addWidget(self.retry_button)
        self.error_frame.hide()
        lv.addWidget(self.error_frame)

        cv_box = QGroupBox("Out-of-sample scoring")
        cg = QGridLayout(cv_box)
        cv_help = QLabel("Fine-tune k times; each sample is scored by a model that never trained on it.")
        cv_help.setWordWrap(True)
        cv_help.setObjectName("muted")
        cg.addWidget(cv_help, 0, 0, 1, 2)
        cg.addWidget(QLabel("Folds"), 1, 0)
        self.folds_spin = QSpinBox()
        self.folds_spin.setRange(2, 20)
        self.folds_spin.setValue(5)
        cg.addWidget(self.folds_spin, 1, 1)
        self.crossval_button = QPushButton("Cross-validated scoring")
        self.crossval_button.clicked.connect(self._on_crossval_button_clicked)
        cg.addWidget(self.crossval_button, 2, 0, 1, 2)
        lv.addWidget(cv_box)
        lv.addStretch(1)
        split.addWidget(scroll)

        # ---- middle: status, curves
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 0, 6, 0)
        srow = QHBoxLayout()
        self.status_label = QLabel("Open a folder to fine-tune on its current labels.")
        self.status_label.setWordWrap(True)
        srow.addWidget(self.status_label, 1)
        self.speed_label = QLabel("")
        self.speed_label.setObjectName("muted")
        self.speed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        srow.addWidget(self.speed_label)
        rv.addLayout(srow)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        rv.addWidget(self.progress)

        self.curves = CurvesWidget()
        self.curves.setMinimumHeight(220)
        rv.addWidget(self.curves, 3)

        arow = QHBoxLayout()
        self.open_curves_button = QPushButton("Open curves…")
        self.open_curves_button.clicked.connect(self._on_open_curves_button_clicked)
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Compare with the current model on the validation part, then switch to it")
        self.use_button.clicked.connect(self._on_use_button_clicked)
        self.result_label = QLabel("")
        self.result_label.setObjectName("muted")
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        arow.addWidget(self.result_label, 1)
        arow.addWidget(self.open_curves_button)
        arow.addWidget(self.use_button)
        rv.addLayout(arow)

        split.addWidget(right)

        # ---- right: before / after
        ba = QGroupBox("Before / after (validation part)")
        bv = QVBoxLayout(ba)
        self.compare_hint = QLabel(
            "After training, “Use this model” predicts the validation part with the current and the new "
            "model and lists the samples the new one fixed and broke. Labels and review decisions are never changed."
        )
        self.compare_hint.setWordWrap(True)
        self.compare_hint.setObjectName("muted")
        bv.addWidget(self.compare_hint)
        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        self.cmp_labels: dict[tuple[str, str], QLabel] = {}
        for c, head in enumerate(("", "Accuracy", "CER")):
            lab = QLabel(head)
            lab.setObjectName("sectionTitle")
            grid.addWidget(lab, 0, c)
        for r, (key, text) in enumerate((("old", "Current model"), ("new", "New model")), start=1):
            grid.addWidget(QLabel(text), r, 0)
            for c, metric in enumerate(("accuracy", "cer"), start=1):
                lab = QLabel("--")
                self.cmp_labels[(key, metric)] = lab
                grid.addWidget(lab, r, c)
        grid.setColumnStretch(3, 1)
        bv.addLayout(grid)
        self.fixed_title = QLabel("Fixed by the new model")
        self.broken_title = QLabel("Broken by the new model")
        self.fixed_list = QListWidget()
        self.broken_list = QListWidget()
        self.show_fixed_button = QPushButton("Show all")
        self.show_fixed_button.clicked.connect(self._on_show_fixed_button_clicked)
        self.show_broken_button = QPushButton("Show all")
        self.show_broken_button.clicked.connect(self._on_show_broken_button_clicked)
        for title, lst, button in (
            (self.fixed_title, self.fixed_list, self.show_fixed_button),
            (self.broken_title, self.broken_list, self.show_broken_button),
        ):
            head = QHBoxLayout()
            head.addWidget(title, 1)
            head.addWidget(button)
            bv.addLayout(head)
            lst.setMinimumHeight(60)
            lst.setToolTip("Click a sample to show it in the table")
            lst.itemActivated.connect(self._on_list_item_activated)
            lst.itemClicked.connect(self._on_list_item_activated)
            bv.addWidget(lst, 1)
        self._clickable_rels = True
        self._out_name = ""  # the checkpoint a training run writes
        split.addWidget(ba)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setCollapsible(1, False)
        split.setSizes([300, 760, 300])
        try:
            from .fonts import plate_font

            for lst in (self.fixed_list, self.broken_list):
                lst.setFont(plate_font(lst.font().pointSizeF()))
        except Exception:  # fonts are cosmetic
            pass

    # ================================================================== public API

    def set_dataset(
        self,
        folder: str | Path | None,
        current_model: str | Path | None = None,
        states_provider: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """Point the panel at a dataset folder.

        Args:
            folder: The dataset folder (``None``: nothing open).
            current_model: The checkpoint the app predicts with (base of fine-tuning, "before" model).
            states_provider: Returns ``{rel: review state}`` (the session's); ``None``: every sample unreviewed.
        """
        self.folder = Path(folder) if folder else None
        self.states_provider = states_provider
        self.set_current_model(current_model)
        if self.folder is not None and not self.is_running():
            self.status_label.setText(f"Fine-tune on the current labels of {self.folder.name}.")
        self._update_enabled()

    def set_current_model(self, path: str | Path | None) -> None:
        """The checkpoint the app predicts with now (the "before" model and the default base)."""
        self.current_model = str(path) if path else None
        name = Path(self.current_model).name if self.current_model else "none"
        self.base_combo.setItemText(0, f"Current model ({name})")
        self.base_combo.setItemData(0, self.current_model)
        model = self.base_combo.model()
        item = model.item(0) if hasattr(model, "item") else None
        if item is not None:
            item.setEnabled(self.current_model is not None)
        if self.current_model is None and self.base_combo.currentIndex() == 0:
            self.base_combo.setCurrentIndex(1)
        elif self.current_model is not None and self.base_combo.currentData() == SCRATCH and not self.is_running():
            self.base_combo.setCurrentIndex(0)
        self._on_base_combo_changed()

    def is_running(self) -> bool:
        """Whether a background job (training, comparison, k-fold scoring) is under way."""
        return self._thread is not None

    def train_config(self) -> TrainConfig:
        """The configuration the form describes."""
        base = self.base_combo.currentData()
        init = None if base in (SCRATCH, OTHER, None) else str(base)
        return TrainConfig(
            arch=self.arch_combo.currentData(),
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            val_split=self.val_split_spin.value(),
            device=self.device_combo.currentData(),
            init=init,
            workers=None,  # none on the CPU, augmentation workers on a GPU (core.train.default_workers)
            start_method=thread_safe_start_method(),  # Qt's threads run here: never a plain fork
        )

    def start(self) -> bool:
        """Start fine-tuning as the form says; False (with a message) when it cannot start now."""
        if self.is_running():
            return False
        if self.folder is None:
            self._show_error("Open a dataset folder first.")
            return False
        self._hide_error()
        config = self.train_config()
        folder, include_unreviewed = self.folder, self.unreviewed_check.isChecked()
        try:
            states = self.states_provider() if self.states_provider else {}
            val_folder = None
            if self.val_combo.currentData() == "folder":
                val_folder = self.val_folder_edit.text().strip()
                if not val_folder or not Path(val_folder).is_dir():
                    raise ValueError("choose an existing validation folder")
            out = new_checkpoint_path(folder)
        except Exception as e:  # noqa: BLE001 - reported in the panel
            self._show_error(f"Cannot start: {e}")
            return False

        # The folders are scanned in the worker's thread (seconds for a large folder).
        def selection() -> Selection:
            sel = folder_selection(folder, states, include_unreviewed)
            if not sel.samples:
                raise ValueError("no samples to train on: all are unreadable, invalid or excluded")
            return sel

        def validation() -> list[Sample]:
            samples = [s for s in scan_folder(val_folder) if s.valid]
            if not samples:
                raise ValueError(f"no samples with valid labels in {val_folder}")
            return samples

        self._clickable_rels = val_folder is None
        self._out_name = out.name
        self.status_label.setText(f"Reading {folder.name}… → {out.name}")
        self.curves.clear()
        self.clear_comparison()  # the figures of an earlier run must not stand beside this one
        self.result_label.setText("")
        self._last_step = None
        self._t_start = time.perf_counter()
        self.progress.setRange(0, 0)
        summary = {
            "dataset": str(self.folder),
            "base": config.init or "scratch",
            "include_unreviewed": self.unreviewed_check.isChecked(),
        }
        worker = TrainWorker(config, selection, str(out), validation if val_folder else None, summary)
        worker.sig_selected.connect(self._on_worker_selected)
        worker.sig_step.connect(self._on_worker_step)
        worker.sig_epoch.connect(self._on_worker_epoch)
        worker.sig_returned.connect(self._on_worker_finished)
        worker.sig_errored.connect(self._on_worker_failed)
        self._launch("train", worker)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (training keeps its best checkpoint so far)."""
        if self._worker is not None:
            self._worker.stop()
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop any job and wait for its thread (call from the main window's closeEvent)."""
        thread = self._thread
        if thread is None:
            return True
        if self._worker is not None:
            self._worker.stop()
        return thread.wait(timeout_ms)

    def open_curves(self, path: str | Path) -> bool:
        """Show a curves CSV written by an earlier run."""
        try:
            rows = read_curves(path)
        except (OSError, ValueError) as e:
            self._show_error(f"Cannot open curves: {e}")
            return False
        self._hide_error()
        self.curves.clear()
        self.curves.add_rows(rows)
        vals = [r for r in rows if r.is_validation]
        best = min((r.val_cer for r in vals if r.val_cer is not None), default=None)
        self.status_label.setText(
            f"{Path(path).name}: {len(rows) - len(vals)} steps, {len(vals)} validation passes"
            + (f", best val CER {best:.4f}" if best is not None else "")
        )
        return True

    def use_model(self) -> bool:
        """Compare the last trained model with the current one on the validation part, then adopt it."""
        r = self.last_result
        if self.is_running() or r is None or r.checkpoint_path is None:
            return False
        self._hide_error()
        old = self.current_model if self.current_model and Path(self.current_model).is_file() else None
        self.status_label.setText(f"Comparing on {len(r.val_samples)} validation samples…")
        self.progress.setRange(0, max(1, len(r.val_samples) * (2 if old else 1)))
        self.progress.setValue(0)
        worker = CompareWorker(r.val_samples, old, str(r.checkpoint_path), r.config.device, self.predict_backend)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_returned.connect(self._on_compare_finished)
        worker.sig_errored.connect(self._on_worker_failed)
        self._launch("compare", worker)
        return True

    def start_crossval(self) -> bool:
        """Run k-fold out-of-sample scoring of the whole folder in the background."""
        if self.is_running() or self.folder is None:
            return False
        self._hide_error()
        states = self.states_provider() if self.states_provider else {}
        folder, k = self.folder, self.folds_spin.value()

        def samples() -> list[Sample]:  # scanned in the worker's thread
            found = scan_folder(folder)
            if len(found) < k:
                raise ValueError(f"{len(found)} samples are too few for {k} folds")
            return found

        config = self.train_config()
        if config.init is None and self.base_combo.currentData() != SCRATCH and self.current_model:
            config = replace(config, init=self.current_model)
        self.status_label.setText(f"Cross-validated scoring: {k} folds over {folder.name}…")
        self.progress.setRange(0, k * 1000)
        self.progress.setValue(0)
        worker = CrossValWorker(
            samples, k, config, states=states, include_unreviewed=self.unreviewed_check.isChecked(),
            backend=self.predict_backend,
        )  # fmt: skip
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_returned.connect(self._on_crossval_finished)
        worker.sig_errored.connect(self._on_worker_failed)
        self._launch("crossval", worker)
        return True

    # ================================================================== job plumbing

    def _launch(self, job: str, worker: Any) -> None:
        self._job = job
        self._worker = worker
        self._thread = start_worker(worker, self, self._on_thread_finished)
        self._update_enabled()
        self.sig_running_changed.emit(True)

    @Slot()
    def _on_thread_finished(self) -> None:
        self._thread = self._worker = None  # start_worker cleans both up
        self._job = None
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self._update_enabled()
        self.sig_running_changed.emit(False)

    def _update_enabled(self) -> None:
        running = self.is_running()
        has_folder = self.folder is not None
        for w in (self.base_combo, self.epochs_spin, self.lr_spin, self.batch_spin, self.val_combo,
                  self.val_split_spin, self.val_folder_edit, self.val_browse, self.device_combo,
                  self.unreviewed_check, self.folds_spin):  # fmt: skip
            w.setEnabled(not running)
        self.arch_combo.setEnabled(not running and self.base_combo.currentData() == SCRATCH)
        self.start_button.setEnabled(not running and has_folder)
        self.crossval_button.setEnabled(not running and has_folder)
        self.cancel_button.setEnabled(running)
        self.open_curves_button.setEnabled(not running or self._job != "train")
        self.use_button.setEnabled(
            not running and self.last_result is not None and self.last_result.checkpoint_path is not None
        )
        self.retry_button.setEnabled(not running)
        for b in (self.show_fixed_button, self.show_broken_button):
            b.setEnabled(self.last_comparison is not None and self._clickable_rels)

    def _show_error(self, text: str, retry_batch: int | None = None) -> None:
        self.error_label.setText(text)
        self._retry_batch = retry_batch
        self.retry_button.setVisible(retry_batch is not None)
        if retry_batch is not None:
            self.retry_button.setText(f"Retry with batch size {retry_batch}")
        self.error_frame.show()

    def _hide_error(self) -> None:
        self.error_frame.hide()
        self._retry_batch = None

    # ================================================================== slots: form

    @Slot(int)
    def _on_base_combo_activated(self, index: int) -> None:
        if self.base_combo.itemData(index) != OTHER:
            return
        start = str(models_dir(self.folder)) if self.folder else ""
        path, _ = QFileDialog.getOpenFileName(self, "Base checkpoint", start, "Checkpoints (*.pt);;All files (*)")
        if not path:
            self.base_combo.setCurrentIndex(0 if self.current_model else 1)
            return
        self.base_combo.insertItem(2, Path(path).name, path)
        self.base_combo.setItemData(2, path, Qt.ItemDataRole.ToolTipRole)
        self.base_combo.setCurrentIndex(2)

    @Slot(int)
    def _on_base_combo_changed(self, _index: int = -1) -> None:
        base = self.base_combo.currentData()
        if base not in (SCRATCH, OTHER) and base:
            # Fine-tuning keeps the base's architecture: show it (the combo is disabled then).
            try:
                arch = load_checkpoint(base).config.arch
            except CheckpointError:
                arch = None  # reported when training starts
            i = self.arch_combo.findData(arch)
            if i >= 0:
                self.arch_combo.setCurrentIndex(i)
        self.arch_combo.setEnabled(not self.is_running() and base == SCRATCH)

    @Slot(int)
    def _on_val_combo_changed(self, _index: int = -1) -> None:
        split = self.val_combo.currentData() == "split"
        for w in (self.val_split_spin, self.val_split_label):
            w.setVisible(split)
        for w in (self.val_folder_edit, self.val_browse, self.val_folder_label):
            w.setVisible(not split)

    @Slot()
    def _on_val_browse_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Validation folder", self.val_folder_edit.text())
        if path:
            self.val_folder_edit.setText(path)

    @Slot()
    def _on_start_button_clicked(self) -> None:
        self.start()

    @Slot()
    def _on_cancel_button_clicked(self) -> None:
        self.cancel()

    @Slot()
    def _on_retry_button_clicked(self) -> None:
        if self._retry_batch is not None:
            self.batch_spin.setValue(self._retry_batch)
            self.start()

    @Slot()
    def _on_crossval_button_clicked(self) -> None:
        self.start_crossval()

    @Slot()
    def _on_open_curves_button_clicked(self) -> None:
        start = str(models_dir(self.folder)) if self.folder else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open curves", start, "Curves (*.curves.csv *.csv);;All files (*)")
        if path:
            self.open_curves(path)

    @Slot()
    def _on_use_button_clicked(self) -> None:
        self.use_model()

    @Slot(QListWidgetItem)
    def _on_list_item_activated(self, item: QListWidgetItem) -> None:
        if self._clickable_rels:
            self.sig_show_samples.emit([item.data(Qt.ItemDataRole.UserRole)])

    @Slot()
    def _on_show_fixed_button_clicked(self) -> None:
        if self.last_comparison and self._clickable_rels:
            self.sig_show_samples.emit(list(self.last_comparison.fixed))

    @Slot()
    def _on_show_broken_button_clicked(self) -> None:
        if self.last_comparison and self._clickable_rels:
            self.sig_show_samples.emit(list(self.last_comparison.broken))

    # ================================================================== slots: workers

    @Slot(object)
    def _on_worker_selected(self, selection: Selection) -> None:
        excluded = selection.summary()
        excluded.pop("selected", None)
        ex = ", ".join(f"{n} {why}" for why, n in sorted(excluded.items()))
        self.status_label.setText(
            f"Training on {len(selection.samples)} samples" + (f" (left out: {ex})" if ex else "")
            + f" → {self._out_name}"
        )  # fmt: skip

    @Slot(object)
    def _on_worker_step(self, s: StepInfo) -> None:
        self._last_step = s
        self.curves.add_step(s.step, s.loss, s.lr)
        if self.progress.maximum() != s.total_steps:
            self.progress.setRange(0, max(1, s.total_steps))
        self.progress.setValue(s.step)
        cancelling = self._worker is not None and self._worker.stop_flag()
        if not cancelling:
            self.speed_label.setText(
                f"epoch {s.epoch} · step {s.step}/{s.total_steps} · {s.images_per_s:.1f} img/s · "
                f"ETA {format_duration(s.eta_s)}"
            )

    @Slot(object)
    def _on_worker_epoch(self, e: EpochInfo) -> None:
        self.curves.add_validation(e.step, e.val_loss, e.val_accuracy, e.val_cer)
        best = " (best so far)" if e.is_best else ""
        self.result_label.setText(
            f"epoch {e.epoch}/{e.epochs}: val accuracy {_pct(e.val_accuracy)}, val CER {_rate(e.val_cer)}{best}"
        )

    @Slot(object)
    def _on_worker_finished(self, r: FinetuneResult) -> None:
        self.last_result = r
        self.curves.refresh()
        elapsed = format_duration(time.perf_counter() - self._t_start)
        best = r.train.checkpoint.metrics if r.train.checkpoint else {}
        cer = best.get("val_cer")
        what = "Cancelled" if r.stopped else "Finished"
        self.status_label.setText(
            f"{what} after {r.train.steps} steps ({elapsed}). "
            f"Best checkpoint: {r.checkpoint_path.name if r.checkpoint_path else 'none'}"
            + (f", val CER {cer:.4f}" if isinstance(cer, float) and math.isfinite(cer) else "")
        )
        self.speed_label.setText("")
        self.result_label.setText(f"Curves: {r.curves_path.name}")
        if r.skipped:
            names = ", ".join(Path(p).name for p in list(r.skipped)[:3])
            more = f" and {len(r.skipped) - 3} more" if len(r.skipped) > 3 else ""
            self._show_error(f"Skipped {len(r.skipped)} unreadable files: {names}{more}.")
        self.result_label.setToolTip(str(r.checkpoint_path or ""))

    @Slot(object)
    def _on_worker_failed(self, err: WorkerError) -> None:
        job = self._job or "job"
        retry = None
        message = err.message
        if err.out_of_memory and job == "train" and self.batch_spin.value() > 1:
            retry = max(1, self.batch_spin.value() // 2)
            message += " — the GPU ran out of memory; a smaller batch usually fits."
        self._show_error(f"{job.capitalize()} failed: {message}", retry)
        self.status_label.setText(f"{job.capitalize()} failed.")
        self.speed_label.setText("")

    @Slot(object)
    def _on_worker_progress(self, p: Progress) -> None:
        if self.progress.maximum() != p.total:
            self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)
        if p.message:
            self.status_label.setText(p.message)
        self.speed_label.setText(f"ETA {format_duration(p.eta_s)}")

    @Slot(object)
    def _on_compare_finished(self, c: Comparison) -> None:
        self.last_comparison = c
        self.show_comparison(c)
        self.speed_label.setText("")
        r = self.last_result
        if r is not None and r.checkpoint_path is not None:
            if not self._confirm_switch(c):
                self.status_label.setText(
                    f"Kept the current model: {r.checkpoint_path.name} reads {_pct(c.new_accuracy)} of the "
                    f"{c.n} validation samples against {_pct(c.old_accuracy)}."
                )
                return
            self.status_label.setText(
                f"Now using {r.checkpoint_path.name}: compared on {c.n} validation samples "
                f"({len(c.fixed)} fixed, {len(c.broken)} broken). Model ▸ Use Previous Model goes back."
            )
            self.set_current_model(r.checkpoint_path)
            self.sig_model_accepted.emit(str(r.checkpoint_path))

    def _confirm_switch(self, c: Comparison) -> bool:
        """Ask before switching to a model that reads the validation part worse than the current one."""
        worse = c.old_accuracy is not None and (
            c.new_accuracy < c.old_accuracy
            or (c.new_accuracy == c.old_accuracy and (c.new_cer or 0) > (c.old_cer or 0))
        )
        if not worse:
            return True
        answer = QMessageBox.question(
            self, "Plate Review",
            f"The new model reads {_pct(c.new_accuracy)} of the {c.n} validation samples exactly (CER "
            f"{_rate(c.new_cer)}); the current one {_pct(c.old_accuracy)} (CER {_rate(c.old_cer)}).\n\n"
            "Switch to the new model anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Yes

    def clear_comparison(self) -> None:
        """Empty the before/after table and the fixed/broken lists (a new run is starting)."""
        self.last_comparison = None
        for lab in self.cmp_labels.values():
            lab.setText("--")
            lab.setStyleSheet("")
        self.fixed_title.setText("Fixed by the new model")
        self.broken_title.setText("Broken by the new model")
        self.fixed_list.clear()
        self.broken_list.clear()
        self._update_enabled()

    def show_comparison(self, c: Comparison) -> None:
        """Fill the before/after table and the fixed/broken lists."""
        self.compare_hint.hide()
        self.last_comparison = c
        self._update_enabled()
        self.cmp_labels[("old", "accuracy")].setText(_pct(c.old_accuracy))
        self.cmp_labels[("old", "cer")].setText(_rate(c.old_cer))
        self.cmp_labels[("new", "accuracy")].setText(_pct(c.new_accuracy))
        self.cmp_labels[("new", "cer")].setText(_rate(c.new_cer))
        for key in ("accuracy", "cer"):
            old, new = getattr(c, f"old_{key}"), getattr(c, f"new_{key}")
            better = old is not None and ((new > old) if key == "accuracy" else (new < old))
            worse = old is not None and ((new < old) if key == "accuracy" else (new > old))
            colour = "#15803d" if better else "#dc2626" if worse else "#1f2937"
            self.cmp_labels[("new", key)].setStyleSheet(f"color: {colour}; font-weight: 600;")
        self.fixed_title.setText(f"Fixed by the new model ({len(c.fixed)})")
        self.broken_title.setText(f"Broken by the new model ({len(c.broken)})")
        for lst, rels, res in ((self.fixed_list, c.fixed, c.new), (self.broken_list, c.broken, c.new)):
            lst.clear()
            for rel in rels:
                r = res.get(rel)
                old = c.old.get(rel)
                text = rel
                if r is not None and old is not None:
                    text = f"{rel}   {old.prediction or '∅'} → {r.prediction or '∅'}"
                it = QListWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, rel)
                if not self._clickable_rels:
                    it.setToolTip("from the separate validation folder (not in the open dataset)")
                lst.addItem(it)

    @Slot(object)
    def _on_crossval_finished(self, cv: CrossValResult) -> None:
        self.last_crossval = cv
        self.speed_label.setText("")
        scored = [r for r in cv.results.values() if r.cer is not None and not r.label_error]
        acc = sum(bool(r.correct) for r in scored) / len(scored) if scored else float("nan")
        state = "Cancelled: partial" if cv.stopped else "Done"
        self.status_label.setText(
            f"{state} out-of-sample scores for {len(cv.results)} samples ({cv.k} folds), accuracy {_pct(acc)}."
        )
        self.sig_crossval_results.emit(dict(cv.results))


class _WheelGuard(QObject):
    """The mouse wheel over a number or a list that does not have the focus scrolls the panel,
    instead of changing the setting under the pointer."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()
            return True
        return False
