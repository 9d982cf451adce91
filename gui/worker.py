"""The one worker convention for work off the GUI thread (after napari's and superqt's workers).

A :class:`Worker` is a ``QObject`` that :func:`start_worker` moves to its own ``QThread``.
Its ``run`` slot emits ``sig_started``, calls the subclass's :meth:`Worker.work`, then
``sig_returned`` with what ``work`` returned (also after a cancelled run) or ``sig_errored``
with a :class:`WorkerError`, and last, always, ``sig_finished``. Progress signals (napari's
"yielded") are each subclass's own (``sig_progress``, ``sig_step``, ``sig_batch``…); all are
queued to the GUI thread. :meth:`Worker.stop` sets a :class:`core.progress.StopFlag` that
the core functions poll; threads are never terminated.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from core.progress import StopFlag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerError:
    """Why a worker's run failed.

    Attributes:
        message: One paragraph for the user.
        out_of_memory: The run ran out of (GPU) memory: a smaller batch may fit.
        traceback: The formatted traceback (for the log or a bug report).
    """

    message: str
    out_of_memory: bool = False
    traceback: str = ""


def _torch_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is torch's CUDA out-of-memory error (never imports torch: without it loaded, it is not)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(e, torch.cuda.OutOfMemoryError)


def describe_error(e: BaseException, tb: str = "") -> WorkerError:
    """A one-line message for the user, whether ``e`` is an out-of-memory error, and ``tb``.

    Torch reports some allocator failures as a plain ``RuntimeError`` whose message says
    "out of memory"; those count as out of memory too.
    """
    oom = _torch_out_of_memory(e) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if oom:
        return WorkerError(f"Out of memory: {first or type(e).__name__}", True, tb)
    return WorkerError(f"{type(e).__name__}: {first}" if first else type(e).__name__, False, tb)


class Worker(QObject):
    """Base of every worker: ``run`` calls :meth:`work` and reports the outcome through signals.

    Subclasses implement :meth:`work` (poll ``self.stop_flag``) and may word errors their own
    way (:meth:`describe`).
    """

    sig_started = Signal()
    """The run began (emitted in the worker's thread, before ``work``)."""
    sig_returned = Signal(object)
    """What ``work`` returned (also when the run was cancelled); ``sig_finished`` follows."""
    sig_errored = Signal(object)
    """``work`` raised: a :class:`WorkerError`; ``sig_finished`` follows, ``sig_returned`` does not come."""
    sig_finished = Signal()
    """The run is over: always the last signal, after ``sig_returned`` or ``sig_errored``."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_flag = StopFlag()

    def stop(self) -> None:
        """Ask the run to end at its next check of ``stop_flag`` (thread-safe)."""
        self.stop_flag.set()

    def work(self) -> Any:
        """Do the work in the worker's thread; the return value goes out with ``sig_returned``."""
        raise NotImplementedError

    def describe(self, e: BaseException, tb: str) -> WorkerError:
        """The :class:`WorkerError` reported for ``e`` (:func:`describe_error`; override to word it otherwise)."""
        return describe_error(e, tb)

    @Slot()
    def run(self) -> None:
        """Emit ``sig_started``, do :meth:`work`, emit ``sig_returned`` or ``sig_errored``, then ``sig_finished``."""
        self.sig_started.emit()
        try:
            result = self.work()
        except BaseException as e:  # noqa: BLE001 - reported, never raised into Qt's event loop
            tb = traceback.format_exc()
            log.error("%s failed:\n%s", type(self).__name__, tb)
            if _torch_out_of_memory(e):
                torch = sys.modules["torch"]
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            self.sig_errored.emit(self.describe(e, tb))
        else:
            self.sig_returned.emit(result)
        self.sig_finished.emit()


def start_worker(worker: Worker, parent: QObject | None = None, on_done: Callable[[], None] | None = None) -> QThread:
    """Move ``worker`` to a new QThread and start its ``run`` there; the thread quits after ``sig_finished``.

    ``on_done`` runs in the GUI thread once the thread has finished, after every signal of the
    worker has been delivered there (drop references to the worker and thread there). The thread
    keeps the worker alive until then, and is deleted (``deleteLater``) after ``on_done``.

    Args:
        worker: The worker (not yet started, without a parent).
        parent: The thread's parent.
        on_done: Called without arguments when the thread has finished.

    Returns:
        The running thread.
    """
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: QThread.quit is thread-safe, and a queued quit never runs while the GUI thread blocks in wait().
    worker.sig_finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    if on_done is not None:
        thread.finished.connect(on_done)
    kept = [worker]  # dropped in the GUI thread, not in the ending thread: queued signals may still name it
    thread.finished.connect(lambda: kept.clear())  # queued to the GUI thread, after on_done
    thread.finished.connect(thread.deleteLater)
    thread.start()
    return thread
