"""The main window: open a folder, browse the likeliest label errors first, inspect, fix labels in a keystroke or two."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSettings, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import session as sess
from core.errors import PlateReviewError
from core.predict import Progress
from core.review_state import ReviewState

from .actions import ACTIONS, BY_NAME, HELP_GROUPS, MENUS, QUICK_FILTER_ACTIONS, shown_key
from .inspector import Inspector
from .narrow_bar import ConfusionDialog, NarrowBar
from .review_view import ReviewView
from .table_model import COL_SCORE, COL_SECOND, THUMB_SIZE, ResultsModel, Row
from .worker import WorkerError, start_worker
from .workers import ExportWorker, OpenWorker, SecondOpinionWorker, ThumbnailCache

log = logging.getLogger(__name__)

SAMPLE_FOLDER = Path(__file__).resolve().parents[1] / "resources" / "sample"
MAX_RECENT = 8


@dataclass
class OpenRun:
    """One open of a folder (scan, cached rows, predictions): its worker and thread, and the rows on their way."""

    worker: OpenWorker
    thread: QThread | None = None
    states: dict[str, str] = field(default_factory=dict)
    """Review states of the rows still to come (``{rel: state}``), from the store."""
    unpredicted: list = field(default_factory=list)
    """Label-only records of the files not predicted yet: shown as they are when no model loads."""
    auto_selected: Row | None = None
    """The row selected for the user (not by them) as the first rows came in; the worst row replaces it."""


@dataclass
class SecondRun:
    """The second reader's pass over the open folder (Model ▸ Second Opinion), after the open run."""

    worker: SecondOpinionWorker
    thread: QThread | None = None


class MainWindow(QMainWindow):
    """The review window.

    Args:
        model_path: Checkpoint to predict with (``None``: the last one chosen, else the bundled model).
        use_store: Keep a store in the dataset folder (cache, states, undo); ``False`` for read-only use.
        settings: Where user settings live (default: ``QSettings()``).
    """

    sig_folder_loaded = Signal(str)
    """A folder's cached rows are in the table (those of the last session, shown before the scan); the folder path."""
    sig_run_finished = Signal(bool)
    """A prediction run ended; True when cancelled."""
    sig_second_finished = Signal()
    """The second reader's pass over the folder ended."""
    sig_export_finished = Signal(object)
    """An export ended: its ``core.export.ExportReport``, or ``None`` when it did not finish."""

    def __init__(self, model_path: str | Path | None = None, use_store: bool = True, settings: QSettings | None = None):
        super().__init__()
        self._export_thread = None  # the running export, if any (see export_to)
        self._export_worker = None
        self._export_failure: str | None = None
        self._shown_once = False
        self.previous_model: Path | None = None  # the model before the last switch (Use Previous Model)
        self.settings = settings or QSettings()
        saved = self.settings.value("model_path", "", str)
        self.model_path: Path | None = Path(model_path) if model_path else (Path(saved) if saved else None)
        saved_dict = self.settings.value("dict_path", "", str) if not model_path else ""
        self.dict_path: Path | None = Path(saved_dict) if saved_dict else None  # a CTC model's dictionary
        self.views = self.settings.value("views", True, bool)  # Model ▸ Read Shifted and Zoomed Views
        self.use_store = use_store
        self.batch_size = 64
        self.session: sess.ReviewSession | None = None
        self.folder: Path | None = None
        self.predictor = None
        self.open_run: OpenRun | None = None  # the open (scan, cache, predictions) under way
        self.second_run: SecondRun | None = None  # the second reader's pass over the folder, after the open
        self.second_description = ""  # the second reader, as its last pass described it
        self.confusion_dialog: ConfusionDialog | None = None
        self.thumbnails: ThumbnailCache | None = None

        self.setWindowTitle("Plate Review")
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        self.model = ResultsModel()
        self.table = ReviewView()
        self.table.setModel(self.model)
        self.inspector = Inspector()
        self.inspector.setMinimumWidth(420)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status()
        self._build_train_dock()

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_table_panel())
        # The inspector scrolls rather than push the window past a small screen (or a shown Train dock).
        self.inspector_scroll = QScrollArea()
        self.inspector_scroll.setWidget(self.inspector)
        self.inspector_scroll.setWidgetResizable(True)
        self.inspector_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.inspector_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.inspector_scroll.setMinimumWidth(440)
        split.addWidget(self.inspector_scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([800, 480])
        split.setChildrenCollapsible(False)
        split.setHandleWidth(1)
        self.setCentralWidget(split)

        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(120)
        # While a run predicts, the rows it adds are sorted into the review order this often.
        self._resort_timer = QTimer(self)
        self._resort_timer.setInterval(2000)
        self._resort_timer.timeout.connect(self._on_resort_timer_timeout)
        self._counts_timer.timeout.connect(self._update_counts)
        # The worker's batches (64 crops, ~16 a second) reach the table together, this often: each
        # insertion repaints the rows in view, and the main thread's painting took the prediction's CPU.
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(250)
        self._flush_timer.timeout.connect(self._flush_batches)
        self._pending: list = []  # predictions of the open run not in the table yet

        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.table.sig_accept.connect(self.accept_prediction)
        self.table.sig_verify.connect(self.verify_label)
        self.table.sig_edit.connect(self.edit_label)
        self.table.sig_unreadable.connect(self.mark_unreadable)
        self.inspector.sig_accept.connect(self.accept_prediction)
        self.inspector.sig_verify.connect(self.verify_label)
        self.inspector.sig_submit.connect(self._on_inspector_submit)
        self.inspector.sig_cancel_edit.connect(self._on_inspector_cancel_edit)
        self.inspector.sig_missing.connect(self._on_inspector_missing)
        self.inspector.sig_select.connect(self._on_inspector_select)
        self.inspector.duplicates_provider = self.model.duplicates_of
        self.inspector.second_provider = functools.partial(self.model.table.reading_of, "second")
        self.model.sig_changed.connect(self._counts_timer.start)
        self.model.sig_thumbnail.connect(self.table.viewport().update)
        self.model.rowsInserted.connect(self._counts_timer.start)
        self.model.rowsRemoved.connect(self._counts_timer.start)
        self.model.modelReset.connect(self._counts_timer.start)
        self._update_model_label()
        self._update_undo_actions()
        self._update_counts()
        geo = self.settings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
            self.fit_to_screen()
        dock_state = self.settings.value("window_state")
        if dock_state is not None:
            self.restoreState(dock_state)  # the Train dock: where it was, shown or not
        self._restore_sort()

    def fit_to_screen(self) -> None:
        """Keep the window inside the screen's available area (a size saved at another scale factor
        or on a larger screen would hang off its edges)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        w, h = min(self.width(), area.width()), min(self.height(), area.height())
        if (w, h) != (self.width(), self.height()):
            self.resize(w, h)
        x = min(max(self.x(), area.left()), area.right() - w + 1)
        y = min(max(self.y(), area.top()), area.bottom() - h + 1)
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    # ------------------------------------------------------------------ building

    def _slots(self) -> dict:
        """What each action of :data:`gui.actions.ACTIONS` does."""
        slots = {
            "next": lambda: self._move(1), "prev": lambda: self._move(-1), "accept": self.accept_prediction,
            "verify": self.verify_label, "edit": self.edit_label, "unreadable": self.mark_unreadable,
            "undo": self.undo, "redo": self.redo, "find": self._focus_filter,
            "fit": lambda: self.inspector.fit_btn.click(), "one": lambda: self.inspector.one_btn.click(),
            "open": self.choose_folder, "sample": lambda: self.open_folder(SAMPLE_FOLDER), "export": self.choose_export,
            "quit": self.close, "model": self.choose_model, "default_model": lambda: self.set_model(None),
            "previous_model": lambda: self.set_model(self.previous_model), "views": self.set_views,
            "second": self.choose_second_opinion,
            "no_second": lambda: self.set_second_opinion(None), "rerun": self.rerun, "cancel": self.cancel_run,
            "help": self.show_help, "about": self._about, "confusions": self.show_confusions,
        }  # fmt: skip
        for name, *_ in QUICK_FILTER_ACTIONS:
            slots[f"quick_{name}"] = lambda on, k=name: self.set_quick_filter(k, on)
        return slots

    def _build_actions(self) -> None:
        """One QAction per entry of the action table (``act_<name>``); the Train panel's comes with its dock."""
        slots = self._slots()
        self.actions_by_name: dict[str, QAction] = {}
        for spec in ACTIONS:
            if spec.scope == "help" or spec.name == "train":
                continue
            a = QAction(spec.text, self)
            if spec.scope == "window":
                a.setShortcuts([QKeySequence(k) for k in spec.keys])
                self.addAction(a)
            elif spec.keys:  # the table's key: shown in the menu, handled by the table while it has the focus
                a.setText(f"{spec.text}\t{shown_key(spec.keys[0])}")
            tip = spec.help[:1].upper() + spec.help[1:]
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({spec.keys[0]})" if spec.keys and spec.scope == "window" else tip)
            a.setCheckable(spec.checkable)
            a.triggered.connect(slots[spec.name])
            setattr(self, f"act_{spec.name}", a)
            self.actions_by_name[spec.name] = a
        self.act_cancel.setEnabled(False)
        self.act_previous_model.setEnabled(False)
        self.act_no_second.setEnabled(False)
        self.act_views.setChecked(self.views)
        self.quick_actions: dict[str, QAction] = {}
        for name, _text, chip, _tip in QUICK_FILTER_ACTIONS:
            a = self.quick_actions[name] = self.actions_by_name[f"quick_{name}"]
            a.setIconText(chip)  # the filter bar's chip: short, so the window fits 1280 px

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setMovable(False)
        tb.setObjectName("main_toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addAction(self.act_rerun)
        tb.addSeparator()
        tb.addAction(self.act_undo)
        tb.addAction(self.act_redo)
        tb.addSeparator()
        tb.addAction(self.act_help)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.folder_label = QLabel()
        self.folder_label.setObjectName("muted")
        tb.addWidget(self.folder_label)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_table_panel(self) -> QWidget:
        """Filter box, quick filters and counts above the table."""
        self.filter_edit = QLineEdit()
        self.filter_edit.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # Ctrl+F or a click; the keys start in the table
        self.filter_edit.setPlaceholderText("Filter  (Ctrl+F)")
        self.filter_edit.setToolTip("Show the rows whose file name, label or prediction contains this text")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(140)
        self.filter_edit.setMaximumWidth(300)
        self.filter_edit.textChanged.connect(self._on_filter_edit_text_changed)
        self.filter_edit.returnPressed.connect(self.table.setFocus)
        bar = QWidget()
        bar.setObjectName("filterBar")
        lay = QHBoxLayout(bar)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(4)
        lay.addWidget(self.filter_edit)
        lay.addSpacing(6)
        for a in self.quick_actions.values():
            b = QToolButton()
            b.setDefaultAction(a)
            b.setObjectName("chip")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            lay.addWidget(b)
        lay.addStretch(1)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("counts")
        panel = QWidget()
        v = QVBoxLayout(panel)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addWidget(bar)
        self.narrow_bar = NarrowBar()
        self.narrow_bar.sig_changed.connect(self._on_narrow_bar_changed)
        self.narrow_bar.sig_confusions.connect(self.show_confusions)
        v.addWidget(self.narrow_bar)
        v.addWidget(self.table, 1)
        summary = QWidget()
        summary.setObjectName("summaryBar")
        h = QHBoxLayout(summary)
        h.setContentsMargins(10, 4, 10, 4)
        h.addWidget(self.counts_label)
        h.addStretch(1)
        v.addWidget(summary)
        return panel

    def _build_menus(self) -> None:
        """The menus, from :data:`gui.actions.MENUS`."""
        mb = self.menuBar()
        for title, names in MENUS:
            m = mb.addMenu(title)
            for name in names:
                if name is None:
                    m.addSeparator()
                elif name == "recent":
                    self.recent_menu = m.addMenu("Open &Recent")
                    self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
                elif name == "train":
                    self.view_menu = m  # the Train panel's toggle joins it with its dock (_build_train_dock)
                else:
                    m.addAction(self.actions_by_name[name])

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.progress_box = QWidget()
        lay = QHBoxLayout(self.progress_box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setFixedWidth(180)
        self.progress_bar.setTextVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel_run)
        lay.addWidget(self.progress_label)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.cancel_btn)
        self.progress_box.hide()
        sb.addPermanentWidget(self.progress_box)
        self.model_label = QLabel()
        self.model_label.setObjectName("muted")
        sb.addPermanentWidget(self.model_label)

    def _build_train_dock(self) -> None:
        """A 'Train' dock holding the fine-tuning panel (gui.train_panel.TrainPanel)."""
        self.train_dock = None
        from .train_panel import TrainPanel

        try:
            panel = TrainPanel(self)
            panel.sig_crossval_results.connect(self.show_crossval)
            panel.sig_model_accepted.connect(self.set_model)
            panel.sig_show_samples.connect(self.select_samples)
            self.sig_folder_loaded.connect(self._on_folder_loaded_train)
            self.sig_run_finished.connect(self._on_run_finished_train)
        except Exception:  # a broken panel must not keep the review app from opening
            log.exception("the training panel failed to start")
            return
        dock = QDockWidget("Train", self)
        dock.setObjectName("train_dock")
        dock.setWidget(panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.hide()
        spec = BY_NAME["train"]
        act = dock.toggleViewAction()
        act.setText(spec.text)
        act.setShortcuts([QKeySequence(k) for k in spec.keys])
        act.setStatusTip(spec.help)
        self.view_menu.addAction(act)
        self.act_train = act
        self.train_dock = dock
        panel.restore_settings(self.settings)
        dock.visibilityChanged.connect(self._on_train_dock_visibility_changed)

    def current_model_path(self) -> str | None:
        """The checkpoint the review reads with now (the loaded one, else the chosen one, else the bundled one)."""
        pred = self.predictor
        if pred is not None and getattr(pred, "model_path", None):  # a reader has no path when built in memory
            return str(pred.model_path)
        if self.model_path:
            return str(self.model_path)
        from core.predict import default_model_path

        path = default_model_path()
        return str(path) if path.is_file() else None

    @Slot(str)
    def _on_folder_loaded_train(self, folder: str) -> None:
        """The Train panel works on the open folder, from its current model, with the session's review states."""
        session = self.session
        self.train_dock.widget().set_dataset(folder, self.current_model_path(), session.states if session else None)

    @Slot(bool)
    def _on_run_finished_train(self, _cancelled: bool) -> None:
        panel = self.train_dock.widget()
        if not panel.is_running() and panel.folder is not None:
            panel.set_current_model(self.current_model_path())

    @Slot(bool)
    def _on_train_dock_visibility_changed(self, visible: bool) -> None:
        """Shown, the Train dock takes at most about 45 % of the window: the table keeps its rows."""
        if visible and self.train_dock is not None and self.train_dock.height() > 0.55 * self.height():
            self.resizeDocks([self.train_dock], [max(280, int(0.45 * self.height()))], Qt.Orientation.Vertical)

    # ------------------------------------------------------------------ folders

    @Slot()
    def choose_folder(self) -> None:
        start = str(self.folder or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        """Open a dataset folder: show cached results at once, predict the rest in the background."""
        path = Path(folder).expanduser()
        if not path.is_dir():
            QMessageBox.warning(self, "Plate Review", f"{path} is not a folder.")
            return False
        self.stop_run()
        if self.session is not None:
            self.session.close()
            self.session = None
        if path.resolve() != self.folder:
            self.model.set_crossval({})  # k-fold scores belong to the folder they were computed on
            self.model.set_second({})
            self.second_description = ""
        self.folder = path.resolve()
        self.setWindowTitle(f"{self.folder.name} — Plate Review")
        self.folder_label.setText(str(self.folder))
        self._add_recent(self.folder)
        self._reset_thumbnails()
        self.model.clear()
        self.inspector.root = self.folder
        self.inspector.show_row(None)
        self._show_second_column()
        self._start(OpenWorker(self.folder, self.model_path, self.predictor, self.use_store, self.batch_size,
                               dict_path=self.dict_path, views=self.views))  # fmt: skip
        return True

    def _reset_thumbnails(self) -> None:
        if self.thumbnails is not None:
            self.thumbnails.stop()
            self.thumbnails.deleteLater()
        self.thumbnails = ThumbnailCache(self.folder, THUMB_SIZE, parent=self)
        self.model.set_thumbnails(self.thumbnails)

    def _add_recent(self, folder: Path) -> None:
        if folder == SAMPLE_FOLDER.resolve():
            return
        recent = [f for f in self.recent_folders() if f != str(folder)]
        self.settings.setValue("recent_folders", [str(folder), *recent][:MAX_RECENT])

    def recent_folders(self) -> list[str]:
        v = self.settings.value("recent_folders", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    @Slot()
    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_folders()
        for f in recent:
            a = self.recent_menu.addAction(f)
            a.triggered.connect(lambda _=False, f=f: self.open_folder(f))
        if not recent:
            a = self.recent_menu.addAction("No recent folders")
            a.setEnabled(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        folder = self._dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.open_folder(folder)

    @staticmethod
    def _dropped_folder(event) -> Path | None:
        md = event.mimeData()
        for url in md.urls() if md.hasUrls() else []:
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                return p if p.is_dir() else p.parent if p.is_file() else None
        return None

    # ------------------------------------------------------------------ runs

    def _start(self, worker: OpenWorker) -> None:
        self.open_run = OpenRun(worker)
        worker.sig_opened.connect(self._on_worker_opened)
        worker.sig_loaded.connect(self._on_worker_loaded)
        worker.sig_reconciled.connect(self._on_worker_reconciled)
        worker.sig_crossval.connect(self._on_worker_crossval)
        worker.sig_duplicates.connect(self._on_worker_duplicates)
        worker.sig_model.connect(self._on_worker_model)
        worker.sig_batch.connect(self._on_worker_batch)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_errored.connect(self._on_worker_errored)
        worker.sig_finished.connect(self._on_worker_finished)
        self.progress_bar.setRange(0, 0)
        self.progress_label.setText("Opening…")
        self.progress_box.show()
        self.cancel_btn.setEnabled(True)
        self.act_cancel.setEnabled(True)
        self.act_rerun.setEnabled(False)
        self.open_run.thread = start_worker(worker, self)

    @property
    def running(self) -> bool:
        return self.open_run is not None and self.open_run.thread.isRunning()

    def _from_run(self) -> OpenRun | None:
        """The open run when the signal being handled comes from its worker (not from one stopped since)."""
        run = self.open_run
        return run if run is not None and self.sender() is run.worker else None

    @Slot()
    def cancel_run(self) -> None:
        """Ask the running prediction to stop after its current batch (the window stays usable)."""
        run = self.open_run or self.second_run
        if run is not None:
            run.worker.stop()
            self.progress_label.setText("Cancelling…")
            self.cancel_btn.setEnabled(False)

    def stop_run(self, timeout_ms: int = 10000) -> None:
        """Cancel the running workers and wait for their threads (never terminated)."""
        self._stop_second(timeout_ms)
        run, self.open_run = self.open_run, None
        self._resort_timer.stop()
        self._flush_timer.stop()
        self._pending = []  # the stopped run's predictions not in the table yet
        if run is not None:
            run.worker.stop()
            if not run.thread.wait(timeout_ms):
                log.warning("the prediction worker did not stop within %d ms", timeout_ms)

    # ------------------------------------------------------------------ export

    @Slot()
    def choose_export(self) -> None:
        """File ▸ Export: pick a new or empty folder, then export there (the dataset is never modified)."""
        if self.folder is None:
            self.statusBar().showMessage("Open a dataset folder first", 6000)
            return
        out = QFileDialog.getExistingDirectory(self, "Export the corrected dataset into (a new or empty folder)",
                                               str(self.folder.parent))  # fmt: skip
        if out:
            self.export_to(Path(out))

    def export_to(self, out: Path) -> None:
        """Export the open folder to ``out`` in a worker thread; a dialog gives the outcome."""
        if self._export_thread is not None:
            self.statusBar().showMessage("An export is already running", 6000)
            return
        worker = ExportWorker(self.folder, out, self.session.store if self.session is not None else None)
        self._export_worker = worker
        self._export_failure = None
        worker.sig_progress.connect(self._on_export_progress)
        worker.sig_errored.connect(self._on_export_errored)
        worker.sig_returned.connect(self._on_export_finished)
        self.act_export.setEnabled(False)
        self.statusBar().showMessage(f"Exporting to {out}…")
        self._export_thread = start_worker(worker, self)

    @Slot(object)
    def _on_export_progress(self, p: Progress) -> None:
        self.statusBar().showMessage(f"Exporting: {p.done:,}/{p.total:,} files")

    @Slot(object)
    def _on_export_errored(self, err: WorkerError) -> None:
        self._export_failure = err.message
        self._on_export_finished(None)

    @Slot(object)
    def _on_export_finished(self, report) -> None:
        thread = self._export_thread
        self._export_thread = None
        self._export_worker = None
        if thread is not None:
            thread.wait(5000)
        self.act_export.setEnabled(True)
        self.sig_export_finished.emit(report)
        if report is None:
            QMessageBox.warning(self, "Plate Review", f"The export did not finish:\n{self._export_failure}")
            return
        lines = report.lines()
        self.statusBar().showMessage(lines[-1], 10000)
        QMessageBox.information(self, "Plate Review", f"Exported to {report.out}:\n\n" + "\n".join(lines[:12]))

    @Slot()
    def rerun(self) -> None:
        """Predict again: cached predictions of the current model show at once, the rest is predicted."""
        if self.folder is not None and not self.running:
            self.open_folder(self.folder)

    def _ask_model_file(self, title: str, start: Path | None) -> tuple[str, str | None] | None:
        """A model file, and the dictionary of a CTC recognizer when it is not beside it; ``None``: cancelled."""
        path, _ = QFileDialog.getOpenFileName(
            self, title, str(start or Path.home()), "Models (*.pt *.pth *.ckpt *.onnx);;All files (*)"
        )
        if not path:
            return None
        if path.lower().endswith(".onnx"):  # a CTC recognizer needs its character dictionary
            from core.ctc import find_dictionary

            if find_dictionary(Path(path)) is None:
                dict_path, _ = QFileDialog.getOpenFileName(
                    self, "The recognizer's character dictionary (one character per line)",
                    str(Path(path).parent), "Dictionaries (*.txt);;All files (*)",
                )  # fmt: skip
                return (path, dict_path) if dict_path else None
        return path, None

    @Slot()
    def choose_model(self) -> None:
        chosen = self._ask_model_file("Open checkpoint", self.model_path.parent if self.model_path else None)
        if chosen:
            self.set_model(*chosen)

    @Slot()
    def choose_second_opinion(self) -> None:
        """Model ▸ Second Opinion: pick a second reader for this folder."""
        if self.folder is None:
            self.statusBar().showMessage("Open a dataset folder first", 6000)
            return
        second = self.second_opinion()
        chosen = self._ask_model_file("Second opinion: a second model", second[0].parent if second else None)
        if chosen:
            self.set_second_opinion(*chosen)

    def _second_key(self) -> str:
        """The setting that remembers the open folder's second reader (in the user's settings, never in the
        folder: a dataset from someone else must not choose which files the app loads)."""
        return "second_opinion/" + hashlib.sha1(str(self.folder).encode("utf-8", "surrogateescape")).hexdigest()

    def second_opinion(self) -> tuple[Path, Path | None] | None:
        """The open folder's second reader and its dictionary, or ``None``."""
        if self.folder is None:
            return None
        v = self.settings.value(self._second_key(), [])
        v = [v] if isinstance(v, str) else list(v or [])  # QSettings gives a one-item list back as a str
        model, dict_path = (v + ["", ""])[:2]
        return (Path(model), Path(dict_path) if dict_path else None) if model else None

    def set_second_opinion(self, path: str | Path | None, dict_path: str | Path | None = None) -> None:
        """Read the open folder with a second model too (``None``: no longer); remembered for this folder."""
        if self.folder is None:
            return
        self._stop_second()
        self.settings.setValue(self._second_key(), [str(path), str(dict_path or "")] if path else [])
        self.model.set_second({})
        self._show_second_column()
        if path and not self.running:
            self._start_second()

    def _show_second_column(self) -> None:
        on = self.second_opinion() is not None
        self.table.setColumnHidden(COL_SECOND, not on)
        self.act_no_second.setEnabled(on)

    def _start_second(self) -> None:
        second = self.second_opinion()
        if second is None or self.session is None:
            return
        worker = SecondOpinionWorker(self.session, second[0], second[1], self.batch_size, views=self.views)
        worker.sig_batch.connect(self._on_second_batch)
        worker.sig_progress.connect(self._on_second_progress)
        worker.sig_returned.connect(self._on_second_returned)
        worker.sig_errored.connect(self._on_second_errored)
        worker.sig_finished.connect(self._on_second_finished)
        self.second_run = SecondRun(worker)
        self.progress_bar.setRange(0, 0)
        self.progress_label.setText("Second opinion…")
        self.progress_box.show()
        self.cancel_btn.setEnabled(True)
        self.act_cancel.setEnabled(True)
        self.second_run.thread = start_worker(worker, self)

    def _from_second(self) -> SecondRun | None:
        run = self.second_run
        return run if run is not None and self.sender() is run.worker else None

    @Slot(object)
    def _on_second_batch(self, readings: dict) -> None:
        if self._from_second() is not None:
            self.model.add_second(readings)

    @Slot(object)
    def _on_second_progress(self, p: Progress) -> None:
        if self._from_second() is not None:
            self._show_progress(p)

    @Slot(object)
    def _on_second_returned(self, description: str) -> None:
        if self._from_second() is not None:
            self.second_description = description
            self._update_model_label()

    @Slot(object)
    def _on_second_errored(self, err: WorkerError) -> None:
        if self._from_second() is None:
            return
        self.settings.setValue(self._second_key(), [])  # a refused file is not opened again
        self._show_second_column()
        QMessageBox.warning(self, "Plate Review", f"The second opinion could not be read:\n{err.message}\n\n"
                            "Choose another model with Model ▸ Second Opinion….")  # fmt: skip

    @Slot()
    def _on_second_finished(self) -> None:
        run = self._from_second()
        if run is None:
            return
        self.second_run = None
        self.progress_box.hide()
        self.act_cancel.setEnabled(False)
        if self.model.needs_resort:  # the combined scores reorder the review
            self._resort_keeping_place()
        self._update_counts()
        self.sig_second_finished.emit()

    def _stop_second(self, timeout_ms: int = 10000) -> None:
        run, self.second_run = self.second_run, None
        if run is not None:
            run.worker.stop()
            if not run.thread.wait(timeout_ms):
                log.warning("the second reader did not stop within %d ms", timeout_ms)
            self.progress_box.hide()

    def set_model(self, path: str | Path | None, dict_path: str | Path | None = None) -> None:
        """Predict with another model (``None``: the bundled one) and re-open the folder.

        ``dict_path``: the character dictionary of a CTC recognizer (.onnx), when not beside it.
        """
        self.dict_path = Path(dict_path) if dict_path else None
        self.settings.setValue("dict_path", str(self.dict_path) if self.dict_path else "")
        new = Path(path) if path else None
        if new != self.model_path:
            self.previous_model = self.model_path
            self.act_previous_model.setEnabled(True)
        self.model_path = new
        self.settings.setValue("model_path", str(self.model_path) if self.model_path else "")
        self.predictor = None
        self._update_model_label()
        if self.folder is not None:
            self.stop_run()
            self.open_folder(self.folder)

    def set_views(self, on: bool) -> None:
        """Read each crop three times and average (``True``), or once; remembered, and the open folder is
        read again (its readings of the other kind stay cached under their own key)."""
        on = bool(on)
        self.act_views.setChecked(on)
        if on == self.views:
            return
        self.views = on
        self.settings.setValue("views", on)
        self.predictor = None
        self._update_model_label()
        if self.folder is not None:
            self.stop_run()
            self.model.set_second({})  # the second reader reads again too, after the open
            self.open_folder(self.folder)

    @Slot(object)
    def _on_worker_opened(self, session) -> None:
        if self._from_run() is None:
            session.close()
            return
        self.session = session
        for note in session.notices:
            self.statusBar().showMessage(note, 10000)
        self._update_undo_actions()

    @Slot(object, object)
    def _on_worker_loaded(self, records: list, states: dict) -> None:
        run = self._from_run()
        if run is None:
            return
        run.states = states
        run.unpredicted = self.model.set_records(records, states, predicted_only=True)
        if self.model.rowCount():
            self.table.select_row(0)
        self.sig_folder_loaded.emit(str(self.folder))

    @Slot(object, object)
    def _on_worker_reconciled(self, stale: list, pending: list) -> None:
        """The scan is in: take out rows of files gone or changed; files to predict wait for their prediction."""
        run = self._from_run()
        if run is None:
            return
        stale_set = set(stale)
        run.unpredicted = [r for r in run.unpredicted if r.rel not in stale_set] + pending
        current = self._current_row()
        if self.model.remove(stale) and current is not None and self.model.row_of(current.rel) is None:
            self.table.select_row(0)

    @Slot(object)
    def _on_worker_crossval(self, results: dict) -> None:
        """Cross-validated scores stored by an earlier run: they order the review again."""
        if self._from_run() is None:
            return
        self.model.set_crossval(results)
        self.model.resort()

    @Slot(object)
    def _on_worker_duplicates(self, groups: list) -> None:
        """Near-duplicate crops of the folder: flagged where their labels differ."""
        if self._from_run() is None:
            return
        self._flush_batches()  # the groups name crops of the last batches too
        self.model.set_duplicates(groups)
        self.inspector.show_row(self._current_row())

    @Slot(object, str)
    def _on_worker_model(self, predictor, text: str) -> None:
        if predictor is not None:
            self.predictor = predictor
            ck = getattr(predictor, "checkpoint", None)  # None for a CTC recognizer (never trained here)
            in_sample = self.folder is not None and ck is not None and ck.trained_on(self.folder)
            self.model_label.setText(f"{text}  ·  ⚠ trained on this folder" if in_sample else text)
            self.model_label.setToolTip(
                f"{predictor.model_path}\n\nThis model was trained on this folder: it tends to agree with the labels "
                "it learnt, right or wrong, so its label scores miss errors. Run cross-validated scoring "
                "(Train panel) for out-of-sample scores; they then order the review." if in_sample
                else str(predictor.model_path)
            )  # fmt: skip
        else:
            self.model_label.setText(text.splitlines()[0][:120])
            # No model: show every sample with its label so names can still be reviewed.
            run = self.open_run
            if run is not None:
                self.model.add_predictions(run.unpredicted, run.states)
            if self.model_path is not None:  # a refused file is not opened again at the next start
                self.model_path = None
                self.dict_path = None
                self.settings.setValue("model_path", "")
                self.settings.setValue("dict_path", "")
            self.statusBar().showMessage(
                "No model could be loaded: open a checkpoint (Model ▸ Open Checkpoint…)", 15000
            )
            QMessageBox.warning(
                self, "Plate Review",
                f"{text.removeprefix('no model: ')}\n\nThe samples are listed with their labels; open another model "
                "with Model ▸ Open Checkpoint… (this one will not be opened again at the next start).",
            )  # fmt: skip

    @Slot(object)
    def _on_worker_batch(self, results: list) -> None:
        if self._from_run() is None:
            return
        self._pending.extend(results)
        if self.model.rowCount() == 0:
            self._flush_batches()  # the first rows at once
        elif not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush_batches(self) -> None:
        """Put the open run's predictions that came in since the last flush into the table."""
        self._flush_timer.stop()
        results, self._pending = self._pending, []
        run = self.open_run
        if run is None or not results:
            return
        had = self.model.rowCount()
        self.model.add_predictions(results, run.states)
        if not self._resort_timer.isActive():
            self._resort_timer.start()
        if had == 0 and self.model.rowCount():
            self.table.select_row(0)
            # Selected for the user, not by them: after the final sort, the worst row takes its place.
            run.auto_selected = self._current_row()

    def _resort_keeping_place(self, run: OpenRun | None = None) -> None:
        """Sort the rows that came in (or changed) into the review order. The row the user is on stays
        selected; a row an open ``run`` selected for them gives its place to the new first row."""
        current = self._current_row()
        self.model.resort()
        if current is not None and run is not None and current is run.auto_selected:
            self.table.select_row(0)
            self.table.scrollToTop()
            run.auto_selected = self._current_row()
        elif current is not None:
            self._select_row(current)

    @Slot()
    def _on_resort_timer_timeout(self) -> None:
        if self.open_run is not None and self.model.needs_resort:
            self._resort_keeping_place(self.open_run)

    @Slot(object)
    def _on_worker_progress(self, p: Progress) -> None:
        if self._from_run() is not None:
            self._show_progress(p)

    def _show_progress(self, p: Progress) -> None:
        """A run's progress in the status bar (a message names a phase; with a total, a bar and the speed)."""
        if p.message:
            self.progress_label.setText(p.message)
        if p.total:
            self.progress_bar.setRange(0, p.total)
            self.progress_bar.setValue(p.done)
            if p.images_per_s > 0:
                eta = int(round(p.eta_s))
                self.progress_label.setText(
                    f"{p.message or 'Predicting'} {p.done:,}/{p.total:,}  ·  {p.images_per_s:,.0f} img/s  ·  "
                    f"ETA {eta // 60}:{eta % 60:02d}"
                )
        else:
            self.progress_bar.setRange(0, 0)

    @Slot(object)
    def _on_worker_errored(self, err: WorkerError) -> None:
        if self._from_run() is None:
            return
        QMessageBox.warning(self, "Plate Review", f"Could not open {self.folder}:\n{err.message}")

    @Slot()
    def _on_worker_finished(self) -> None:
        run = self._from_run()
        if run is None:
            return
        cancelled = run.worker.stop_flag()  # what work() returns, and known after a failure too
        self._flush_batches()
        self.progress_box.hide()
        self.act_cancel.setEnabled(False)
        self.act_rerun.setEnabled(True)
        self.open_run = None
        self._resort_timer.stop()
        if self.model.needs_resort:  # predictions came in since the last sort
            self._resort_keeping_place(run)
        if self.model.rowCount() and not self.table.currentIndex().isValid():
            self.table.select_row(0)
        n = len(self.model.table)
        self.statusBar().showMessage(
            f"Cancelled: {n:,} samples shown; Predict Again (Ctrl+R) finishes the rest" if cancelled
            else f"{n:,} samples, likeliest label errors first", 8000
        )  # fmt: skip
        self._update_undo_actions()
        self._update_counts()
        problem = self.session.cache_problem if self.session is not None else None
        if problem:  # a full disk: the rows are shown, but edits will fail until there is room
            QMessageBox.warning(self, "Plate Review", f"The folder was read, but its predictions could not be "
                                f"cached (the next open reads them again):\n\n{problem}")  # fmt: skip
        self.sig_run_finished.emit(cancelled)
        if not cancelled:
            self._start_second()

    @Slot(dict)
    def show_crossval(self, results: dict) -> None:
        """Show k-fold out-of-sample label scores ({rel: PredictionResult}); they order the review."""
        self.model.set_crossval(results)
        n = sum(1 for rel in results if self.model.row_of(rel) is not None)
        self.model.resort()
        if self.session is not None and results:
            cv = self.train_dock.widget().last_crossval if self.train_dock else None
            self.session.save_crossval(results, {"folds": cv.k if cv else None, "samples": len(results),
                                                 "created": time.time()})  # fmt: skip
        self.statusBar().showMessage(
            f"Cross-validated label scores for {n:,} samples: they now order the review (CV score column)", 8000
        )

    # ------------------------------------------------------------------ selection

    def _current_row(self) -> Row | None:
        idx = self.table.currentIndex()
        if not idx.isValid():
            return None
        return self.model.row_at(idx.row())

    def _select_row(self, row: Row) -> bool:
        p = self.model.row_of(row.rel)
        if p is None:
            return False
        self.table.select_row(p)
        return True

    def select_samples(self, rels: list[str]) -> int:
        """Select these samples in the table (the first becomes current); say how many a filter hides.

        Returns:
            The number selected.
        """
        rows = [p for p in map(self.model.row_of, rels) if p is not None]
        if rows:
            self.table.select_row(rows[0])
            sm = self.table.selectionModel()
            flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            for p in rows[1:]:
                sm.select(self.model.index(p, 0), flags)
            self.table.setFocus()
        hidden = len(rels) - len(rows)
        if hidden:
            self.statusBar().showMessage(
                f"{hidden} of {len(rels)} sample(s) not shown: clear the filter to see them", 8000
            )
        elif rows:
            self.statusBar().showMessage(f"{len(rows)} sample(s) selected", 5000)
        return len(rows)

    def _move(self, delta: int) -> None:
        self.table.select_row(max(0, self.table.current_row() + delta))
        self.table.setFocus()

    @Slot()
    def _on_table_current_changed(self, current, previous) -> None:
        self.inspector.show_row(self._current_row())

    @Slot(str)
    def _on_inspector_select(self, rel: str) -> None:
        """Inspect another sample (a near duplicate); clears a filter that hides it."""
        p = self.model.row_of(rel)
        if p is None:
            self.filter_edit.clear()
            for name, a in self.quick_actions.items():
                if a.isChecked() and name != "duplicates":
                    self.set_quick_filter(name, False)
            p = self.model.row_of(rel)
        if p is not None:
            self.table.select_row(p)
            self.table.setFocus()

    @Slot(str)
    def _on_inspector_missing(self, rel: str) -> None:
        self.model.mark_missing(rel)

    # ------------------------------------------------------------------ editing

    def _act(self, fn, *args) -> None:
        """Run an edit on the current row, apply its outcome, and move to the next sample."""
        row = self._current_row()
        if row is None or self.session is None:
            return
        cur = self.table.current_row()
        nxt = self.model.row_at(cur + 1)
        try:
            out = fn(row, *args)
        except (sess.SessionError, PlateReviewError) as e:  # e.g. another process is renaming files here
            self.statusBar().showMessage(str(e), 8000)
            return
        if out is None:
            return
        self._apply(out)
        ok = not out.missing and not out.failed
        if ok and nxt is not None and self._select_row(nxt):
            pass
        elif self._current_row() is not row or not ok:
            self.table.select_row(cur)
        self.inspector.show_row(self._current_row())
        self.table.setFocus()

    def _apply(self, out: sess.EditOutcome) -> None:
        for old, new in out.renamed:
            self.model.apply_rename(old, new)
        for rel, st in out.states.items():
            self.model.set_state(rel, st)
        for rel in out.missing:
            self.model.mark_missing(rel)
        if out.messages:
            self.statusBar().showMessage("; ".join(out.messages), 10000)
        elif out.renamed:
            old, new = out.renamed[-1]
            self.statusBar().showMessage(f"Renamed {old} → {new}", 6000)
        self._update_undo_actions()

    def selected_rows(self) -> list[Row]:
        """The rows selected in the table, in display order."""
        out = []
        for p in self.table.selected_rows():
            row = self.model.row_at(p)
            if row is not None:
                out.append(row)
        return out

    def _act_many(self, fn, rows: list[Row]) -> None:
        """Run a batch edit on selected rows, apply its outcome, keep the first row current."""
        first = self.table.selected_rows()[0]
        try:
            out = fn(rows)
        except (sess.SessionError, PlateReviewError) as e:
            self.statusBar().showMessage(str(e), 8000)
            return
        self._apply(out)
        done = len(out.renamed) + len([r for r in out.states if r not in {n for _, n in out.renamed}])
        self.statusBar().showMessage(
            f"{done:,} of {len(rows):,} selected samples done (Ctrl+Z undoes them together)"
            + (f"; {'; '.join(out.messages[:3])}" if out.messages else ""), 10000)  # fmt: skip
        self.table.select_row(first)
        self.inspector.show_row(self._current_row())
        self.table.setFocus()

    @Slot()
    def accept_prediction(self) -> None:
        """Rename the current file to its prediction (state fixed), then go to the next sample.

        With several rows selected: accept every prediction of the selection, as one undo step.
        """
        rows = self.selected_rows()
        if len(rows) > 1 and self.session is not None:
            self._act_many(lambda rs: self.session.accept_predictions(
                [(r.rel, r.label, r.prediction) for r in rs if not r.missing]), rows)  # fmt: skip
            return

        def do(row: Row):
            if row.missing:
                raise sess.SessionError(f"{row.rel}: the file is missing")
            if not row.prediction:
                raise sess.SessionError("No prediction to accept for this sample")
            if row.prediction == row.label:
                return self.session.set_state(row.rel, ReviewState.VERIFIED)
            return self.session.relabel(row.rel, row.prediction)

        self._act(do)

    @Slot()
    def verify_label(self) -> None:
        """Keep the label, mark it verified, go to the next sample (all selected ones: one undo step)."""
        rows = self.selected_rows()
        if len(rows) > 1 and self.session is not None:
            self._act_many(lambda rs: self.session.set_states(
                [r.rel for r in rs if not r.label_error and not r.missing], ReviewState.VERIFIED), rows)  # fmt: skip
            return

        def do(row: Row):
            if row.label_error:
                raise sess.SessionError(f"The label cannot be verified: {row.label_error}")
            return self.session.set_state(row.rel, ReviewState.VERIFIED)

        self._act(do)

    @Slot()
    def mark_unreadable(self) -> None:
        """Mark the current crop unreadable (no plate can be read from it)."""
        self._act(lambda row: self.session.set_state(row.rel, ReviewState.UNREADABLE))

    @Slot()
    def edit_label(self) -> None:
        """Put the focus in the label editor."""
        if self._current_row() is not None:
            self.inspector.editor.focus_label()

    @Slot(str)
    def _on_inspector_submit(self, label: str) -> None:
        def do(row: Row, label: str):
            if label == row.label:
                return self.session.set_state(row.rel, ReviewState.VERIFIED)
            return self.session.relabel(row.rel, label)

        self._act(do, label)

    @Slot()
    def _on_inspector_cancel_edit(self) -> None:
        self.inspector.show_row(self._current_row())
        self.table.setFocus()

    @Slot()
    def undo(self) -> None:
        if self.session is not None and self.session.can_undo:
            self._undo_redo(self.session.undo)

    @Slot()
    def redo(self) -> None:
        if self.session is not None and self.session.can_redo:
            self._undo_redo(self.session.redo)

    def _undo_redo(self, fn) -> None:
        try:
            out = fn()
        except PlateReviewError as e:  # another process is renaming files in this folder
            self.statusBar().showMessage(str(e), 8000)
            return
        self._apply(out)
        target = out.renamed[-1][1] if out.renamed else next(iter(out.states), None)
        if target is not None:
            p = self.model.row_of(target)
            if p is not None:
                self.table.select_row(p)
        self.inspector.show_row(self._current_row())

    def _update_undo_actions(self) -> None:
        s = self.session
        self.act_undo.setEnabled(s is not None and s.can_undo)
        self.act_redo.setEnabled(s is not None and s.can_redo)

    # ------------------------------------------------------------------ filters, counts

    @Slot(str)
    def _on_filter_edit_text_changed(self, text: str) -> None:
        self.model.set_text(text)
        self._counts_timer.start()

    def _focus_filter(self) -> None:
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    def set_quick_filter(self, name: str, on: bool) -> None:
        """Turn a quick filter (likely, mismatches, unreviewed, invalid, unreadable) on or off."""
        a = self.quick_actions[name]
        if a.isChecked() != on:
            a.setChecked(on)
        current = self._current_row()
        self.model.set_quick(name, on)
        if current is None or not self._select_row(current):
            self.table.select_row(0)
        self._counts_timer.start()

    @Slot(object)
    def _on_narrow_bar_changed(self, narrowing) -> None:
        current = self._current_row()
        self.model.set_narrowing(narrowing)
        if current is None or not self._select_row(current):
            self.table.select_row(0)
        self._counts_timer.start()

    @Slot()
    def show_confusions(self) -> None:
        """View ▸ Confusions: the matrix of the rows shown; a cell narrows the table to its rows."""
        if self.confusion_dialog is None:
            self.confusion_dialog = ConfusionDialog(self)
            self.confusion_dialog.sig_pick.connect(self.narrow_bar.set_confusion)
        table = self.model.table
        self.confusion_dialog.set_confusions(table.confusions(shown_only=True), len(table.view))
        self.confusion_dialog.show()
        self.confusion_dialog.raise_()

    @Slot()
    def _update_counts(self) -> None:
        s = self.model.stats()
        total = len(self.model.table)
        parts = [f"{s['n']:,}" + (f" of {total:,}" if s["n"] != total else "") + " samples"]
        if s["accuracy"] is not None:
            parts.append(f"accuracy {s['accuracy']:.1%}")
            parts.append(f"CER {s['cer']:.3f}")
        parts.append(f"{s['likely_errors']:,} likely label errors")
        if self.open_run is not None and self._resort_timer.isActive():
            parts.append(f"predicting: new rows take their place every {self._resort_timer.interval() // 1000} s")
        if s.get("duplicate_conflicts"):
            parts.append(f"{s['duplicate_conflicts']:,} same-picture conflicts")
        parts.append(f"{s['reviewed']:,} reviewed")
        self.counts_label.setText("   ·   ".join(parts))
        self.counts = s

    def _update_model_label(self) -> None:
        if self.predictor is not None:
            text = self.predictor.description
        else:
            name = self.model_path.name if self.model_path else "default.pt (bundled)"
            text = f"Model: {name}, loads on first prediction"
        if self.second_description and self.second_opinion() is not None:
            text += f"  ·  second opinion: {self.second_description}"
        self.model_label.setText(text)

    # ------------------------------------------------------------------ help, close

    @Slot()
    def show_help(self) -> None:
        """F1: the list of keyboard shortcuts."""
        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        rows = []
        for group in HELP_GROUPS:
            rows.append(f"<tr><td colspan=2 style='padding-top:10px'><b>{group}</b></td></tr>")
            for spec in (a for a in ACTIONS if a.group == group):
                rows.append(
                    f"<tr><td style='padding:2px 16px 2px 0'><code>{spec.keys_text}</code></td>"
                    f"<td>{spec.help}</td></tr>"
                )
        lab = QLabel("<table>" + "".join(rows) + "</table>")
        lab.setTextFormat(Qt.TextFormat.RichText)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(dlg.reject)
        bb.accepted.connect(dlg.accept)
        lay = QVBoxLayout(dlg)
        lay.addWidget(lab)
        lay.addWidget(bb)
        self.help_dialog = dlg
        dlg.open()

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About Plate Review",
            "<b>Plate Review</b><br>Find and fix wrong labels in licence-plate OCR datasets:"
            " likeliest label errors first, safe renames with undo.",
        )

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:  # review keys (J, K, Enter, Space) go to the table from the start
            self._shown_once = True
            self.table.setFocus()

    def _restore_sort(self) -> None:
        """The sort column and order of the last session (the review order when none was saved)."""
        try:
            col = int(self.settings.value("sort_column", COL_SCORE))
            order = Qt.SortOrder(int(self.settings.value("sort_order", int(Qt.SortOrder.AscendingOrder.value))))
        except (TypeError, ValueError):
            return
        if 0 <= col < self.model.columnCount():
            self.model.set_sort(col, order)
            self.table.horizontalHeader().setSortIndicator(col, order)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("sort_column", self.model.sort_column)
        self.settings.setValue("sort_order", int(self.model.sort_order.value))
        if self.train_dock is not None:
            self.train_dock.widget().shutdown()  # a running job: the flag, then wait
            self.train_dock.widget().save_settings(self.settings)
        if self._export_thread is not None:  # stop in order: the flag, then wait (never terminate)
            self._export_worker.stop()
            self._export_thread.wait(30000)
        # Loading a model (first ONNX export) does not poll the stop flag: give it time to end.
        self.stop_run(timeout_ms=120000)
        if self.thumbnails is not None:
            self.thumbnails.stop()
        if self.session is not None:
            self.session.close()
            self.session = None
        super().closeEvent(event)
