"""Background work: opening a folder (scan, cache, inference), exporting it, and loading thumbnails.

The open and the export are :class:`gui.worker.Worker` objects (started with
``gui.worker.start_worker``): the core functions report through callbacks and poll the
worker's stop flag, the worker turns callbacks into signals (queued to the GUI thread),
and the outcome comes as ``sig_returned`` or ``sig_errored``, then ``sig_finished``.
Stopping sets the flag and waits; threads are never terminated.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QImage, QImageReader, QPixmap

from core import plates
from core.errors import PlateReviewError
from core.gc_pause import gc_paused
from core.progress import Progress
from core.session import ReviewSession

from .worker import Worker, WorkerError

#: How long an edit in the window waits while another process (a CLI relabel) changes the folder:
#: the GUI thread waits, so the window says the folder is busy instead of freezing.
EDIT_LOCK_WAIT_S = 1.0


class OpenWorker(Worker):
    """Show a dataset's cached predictions at once, then scan the folder, reconcile, predict the rest.

    The rows of the last session (the store's cached predictions for the model) are
    handed over before the scan (``sig_loaded``), because a scan stats every file (about
    a second per 200,000); the scan then finds what changed behind the app's back
    (``sig_reconciled``: rows to take out, files to predict). ``work`` returns whether the
    run was cancelled; a failure (``sig_errored``) means the folder could not be opened.

    Args:
        folder: The dataset folder.
        model_path: Checkpoint (``None``: the bundled default model).
        predictor: A loaded predictor to reuse (must match ``model_path``), or ``None``.
        use_store: Open the dataset store (cache, states, renames).
        batch_size: Images per model call.
        views: Read each crop with its shifted views (``core.predict.open_reader``); ``False``: once.
    """

    sig_opened = Signal(object)
    """The session is open (a ReviewSession, handed to the GUI thread)."""
    sig_loaded = Signal(object, object)
    """The cached predictions as last stored, before the scan: (list of records, {rel: state}).

    Typed ``object`` so a queued delivery hands over the Python objects as they are; a
    ``list``/``dict`` signature converts every element to and from a QVariant (~0.3 s
    for 200,000 records)."""
    sig_reconciled = Signal(object, object)
    """What the scan found, after ``sig_loaded``: (rels whose cached row is stale: file gone or
    changed; a label-only record per file without a valid prediction, predicted next)."""
    sig_duplicates = Signal(object)
    """Groups of near-duplicate crops over every predicted file (list of core.duplicates.DuplicateGroup),
    at the end of a run that was not cancelled."""
    sig_crossval = Signal(object)
    """Stored cross-validated predictions still valid after the scan ({rel: record}), after ``sig_reconciled``."""
    sig_model = Signal(object, str)
    """The predictor is ready (Predictor or None, and a description or why it failed)."""
    sig_batch = Signal(object)
    """New predictions (list of PredictionResult), in the order they were computed."""
    sig_progress = Signal(object)
    """Progress of the current phase (core.predict.Progress; message names the phase)."""

    def __init__(
        self,
        folder: str | Path,
        model_path: str | Path | None = None,
        predictor=None,
        use_store: bool = True,
        batch_size: int = 64,
        session: ReviewSession | None = None,
        dict_path: str | Path | None = None,
        views: bool = True,
    ):
        super().__init__()
        self.dict_path = dict_path  # the dictionary of a CTC recognizer (.onnx), when not beside it
        self.views = views
        self.folder = Path(folder)
        self.model_path = model_path
        self.predictor = predictor
        self.use_store = use_store
        self.batch_size = batch_size
        self.session = session

    def work(self) -> bool:
        """Do the whole open; returns whether it was cancelled (``stop()``: after the current batch)."""
        self._run()
        return self.stop_flag()

    def describe(self, e: BaseException, tb: str) -> WorkerError:
        """The whole message, not only its first line (shown in a dialog); the error's type only
        where it is not one of the app's own (those say what happened in words)."""
        text = str(e) if isinstance(e, PlateReviewError) else f"{type(e).__name__}: {e}"
        return replace(super().describe(e, tb), message=text)

    @staticmethod
    def _duplicates(session: ReviewSession, model_hash: str, fresh: list | None) -> list:
        """Near-duplicate groups of the folder: from the store's cached hashes (every prediction of
        the run is cached by now), or from the run's records when there is no store."""
        if session.store is not None and model_hash:
            return session.cached_duplicate_groups(model_hash)
        return session.duplicate_groups(fresh or [])

    def _phase(self, msg: str, done: int = 0, total: int = 0) -> None:
        self.sig_progress.emit(Progress(done, total, 0.0, 0.0, msg))

    def _run(self) -> None:
        from core.models import file_sha256
        from core.predict import default_model_path, open_reader, reading_identity

        if self.session is None:
            self._phase("Opening dataset…")
            self.session = ReviewSession(self.folder, use_store=self.use_store, lock_wait_s=EDIT_LOCK_WAIT_S)
            self.sig_opened.emit(self.session)
        session = self.session
        model_path = Path(self.model_path) if self.model_path else default_model_path()
        model_hash = ""
        if self.predictor is not None:
            model_hash = self.predictor.model_hash
        elif model_path.is_file() and model_path.suffix.lower() == ".onnx":  # a CTC reader: model + dictionary
            from core.ctc import reader_identity

            model_hash = reader_identity(model_path, self.dict_path)
        elif model_path.is_file():  # the key the predictor will save under
            model_hash = reading_identity(file_sha256(model_path), self.views)
        # Cache rows and the scan are a few hundred thousand small tuples (no cycles): with the
        # cyclic GC on, each of its many collections would walk the whole growing heap.
        with gc_paused():
            self._phase("Reading the cache…")
            records = session.cached(model_hash)
            self.sig_loaded.emit(records, session.states())
            self._phase("Scanning folder…")
            files = session.scan()
            if self.stop_flag():
                return
            stale, pending, todo = session.reconcile(model_hash, records, files)
            self.sig_reconciled.emit(stale, pending)
            cv = session.crossval(files)
            if cv:
                self.sig_crossval.emit(cv)
        if not todo or self.stop_flag():
            if not self.stop_flag():
                self.sig_duplicates.emit(self._duplicates(session, model_hash, None))
            return
        predictor = self.predictor
        if predictor is None:
            self._phase("Loading model…")
            try:
                predictor = open_reader(model_path, dict_path=self.dict_path, views=self.views)
            except Exception as e:  # missing/damaged checkpoint: the table still works without predictions
                self.sig_model.emit(None, f"no model: {e}")
                return
            self.predictor = predictor
        self.sig_model.emit(predictor, predictor.description)
        self._phase("Predicting…", 0, len(todo))
        fresh = session.predict(
            todo,
            predictor,
            files,
            batch_size=self.batch_size,
            progress=lambda p: self.sig_progress.emit(Progress(p.done, p.total, p.images_per_s, p.eta_s, "")),
            on_batch=self.sig_batch.emit,
            should_stop=self.stop_flag,
        )
        if not self.stop_flag():
            self._phase("Looking for near-duplicate crops…")
            self.sig_duplicates.emit(self._duplicates(session, predictor.model_hash, fresh))


class SecondOpinionWorker(Worker):
    """Reads an open folder with a second reader: its cached readings first, then the files it has not read.

    ``work`` returns the reader's description. Its readings are cached in the store under
    the reader's own identity, like the first reader's.

    Args:
        session: The open dataset (used here only while the window runs nothing else on it).
        model_path: The second reader's file (checkpoint, notebook file or CTC .onnx).
        dict_path: A CTC recognizer's dictionary, when not beside it.
        batch_size: Images per model call.
        views: Read each crop with its shifted views (``core.predict.open_reader``); ``False``: once.
    """

    sig_batch = Signal(object)
    """Readings of the second reader, ``{rel: record}`` (the cached ones first, then as they are computed)."""
    sig_progress = Signal(object)
    """Progress (core.progress.Progress; message names the phase)."""

    def __init__(self, session: ReviewSession, model_path: str | Path, dict_path: str | Path | None = None,
                 batch_size: int = 64, views: bool = True):  # fmt: skip
        super().__init__()
        self.session, self.model_path, self.dict_path, self.batch_size = session, model_path, dict_path, batch_size
        self.views = views

    def work(self) -> str:
        from core.predict import open_reader

        self.sig_progress.emit(Progress(0, 0, 0.0, 0.0, "Second opinion: loading the reader…"))
        reader = open_reader(Path(self.model_path), dict_path=self.dict_path, views=self.views)
        self.sig_progress.emit(Progress(0, 0, 0.0, 0.0, "Second opinion: reading the cache…"))
        with gc_paused():
            files = self.session.scan()
            records, todo = self.session.load(reader.model_hash, files)
            self.sig_batch.emit({r.rel: r for r in records if r.prediction or r.error})
        if todo and not self.stop_flag():
            self.session.predict(
                todo, reader, files, batch_size=self.batch_size,
                progress=lambda p: self.sig_progress.emit(replace(p, message="Second opinion")),
                on_batch=lambda batch: self.sig_batch.emit({r.rel: r for r in batch}),
                should_stop=self.stop_flag,
            )  # fmt: skip
        return reader.description


class ExportWorker(Worker):
    """Exports the open dataset (``core.export.export_dataset``) off the GUI thread; cancellable.

    ``work`` returns the ``core.export.ExportReport``; ``sig_errored`` says why the export did
    not finish (the message names the file; running it again resumes).
    """

    sig_progress = Signal(object)
    """core.predict.Progress of the export."""

    def __init__(self, folder: Path, out: Path, store=None, split: dict | None = None, link: bool = False):
        super().__init__()
        self.folder, self.out, self.store, self.split, self.link = folder, out, store, split, link

    def work(self):
        """Export; returns the ``core.export.ExportReport``."""
        from core.export import export_dataset

        return export_dataset(self.folder, self.out, split=self.split, link=self.link, store=self.store,
                              progress=self.sig_progress.emit, should_stop=self.stop_flag)  # fmt: skip

    def describe(self, e: BaseException, tb: str) -> WorkerError:
        """An ``ExportError``'s own message (it names the file), else the type and the whole message."""
        from core.export import ExportError

        message = str(e) if isinstance(e, ExportError) else f"{type(e).__name__}: {e}"
        return replace(super().describe(e, tb), message=message)


# ---------------------------------------------------------------------- thumbnails


def _plate_box(rel: str, size: QSize) -> QRect | None:
    """The plate's box a CCPD file name gives (``core.plates``), inside an image of ``size``, or ``None``."""
    if "&" not in rel:  # only CCPD names carry a box: no parsing for the others
        return None
    box = plates.parse_name(rel.rsplit("/", 1)[-1]).box
    if box is None:
        return None
    x1, y1, x2, y2 = box
    r = QRect(x1, y1, x2 - x1, y2 - y1).intersected(QRect(0, 0, size.width(), size.height()))
    return r if r.width() > 1 and r.height() > 1 else None


class ThumbnailCache(QObject):
    """Lazily loaded, bounded cache of table thumbnails.

    ``get(rel)`` returns the pixmap when cached, else ``None`` and queues the file; a
    background thread decodes the newest requests first (the rows on screen now) and
    drops requests beyond ``max_pending`` (rows scrolled past).
    """

    sig_ready = Signal(str)
    """A thumbnail for this rel is ready (or failed: get() then returns the placeholder)."""
    sig_missing = Signal(str)
    """The file of this rel does not exist any more."""
    _sig_loaded = Signal(str, QImage, str, bool)

    def __init__(self, root: Path, size: QSize, capacity: int = 3000, max_pending: int = 256, parent=None):
        super().__init__(parent)
        self.root = Path(root)
        self.size = size
        self.capacity = capacity
        self.max_pending = max_pending
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: dict[str, str] = {}
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._sig_loaded.connect(self._on_loader_loaded, Qt.ConnectionType.QueuedConnection)
        self._thread = threading.Thread(target=self._loop, name="thumbnails", daemon=True)
        self._thread.start()

    def get(self, rel: str) -> QPixmap | None:
        """The cached thumbnail of ``rel``, or ``None`` (queued for loading)."""
        pm = self._cache.get(rel)
        if pm is not None:
            self._cache.move_to_end(rel)
            return pm
        if rel in self._failed:
            return None
        with self._cond:
            if rel not in self._queued:
                self._queued.add(rel)
                self._queue.append(rel)
                while len(self._queue) > self.max_pending:
                    self._queued.discard(self._queue.popleft())
                self._cond.notify()
        return None

    def failure(self, rel: str) -> str | None:
        """Why the thumbnail of ``rel`` could not be made, or ``None``."""
        return self._failed.get(rel)

    def forget(self, rel: str) -> None:
        """Drop a cached thumbnail (after a rename)."""
        self._cache.pop(rel, None)
        self._failed.pop(rel, None)

    def clear(self) -> None:
        self._cache.clear()
        self._failed.clear()

    def stop(self) -> None:
        """Stop the loader thread (waits briefly)."""
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout=2.0)

    def __len__(self) -> int:
        return len(self._cache)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                rel = self._queue.pop()  # newest first
                self._queued.discard(rel)
            path = self.root / rel
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            src = reader.size()
            why = ""
            img = QImage()
            missing = not path.exists()
            if missing:
                why = "file not found"
            elif src.isValid() and src.height() > 0:
                box = _plate_box(rel, src)  # a CCPD photo: the thumbnail shows its plate
                if box is not None:
                    reader.setClipRect(box)
                    src = box.size()
                h = self.size.height()
                w = max(1, min(self.size.width(), round(src.width() * h / src.height())))
                reader.setScaledSize(QSize(w, h))
                img = reader.read()
            if not why and img.isNull():
                why = reader.errorString() or "not a decodable image"
            try:
                self._sig_loaded.emit(rel, img, why, missing)
            except RuntimeError:  # the cache was deleted while loading
                return

    @Slot(str, QImage, str, bool)
    def _on_loader_loaded(self, rel: str, img: QImage, why: str, missing: bool) -> None:
        if missing:
            self._failed[rel] = why
            self.sig_missing.emit(rel)
        elif why:
            self._failed[rel] = why
        else:
            self._cache[rel] = QPixmap.fromImage(img)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        self.sig_ready.emit(rel)
