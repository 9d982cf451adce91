"""The one worker convention (gui.worker): the order of its signals, structured errors, and its thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QObject, Qt  # noqa: E402

from gui.worker import Worker, WorkerError, describe_error, start_worker  # noqa: E402


class _Returns(Worker):
    def work(self) -> int:
        return 42


class _Raises(Worker):
    def work(self) -> None:
        raise ValueError("3 training items have invalid labels\nsecond line")


def _record(worker: Worker) -> list:
    """Every outcome signal of ``worker``, in order, recorded in the thread that emits it."""
    events: list = []
    direct = Qt.ConnectionType.DirectConnection
    worker.sig_started.connect(lambda: events.append(("started",)), direct)
    worker.sig_returned.connect(lambda v: events.append(("returned", v)), direct)
    worker.sig_errored.connect(lambda e: events.append(("errored", e)), direct)
    worker.sig_finished.connect(lambda: events.append(("finished",)), direct)
    return events


def test_a_worker_that_returns_emits_started_returned_finished(qtbot):
    worker = _Returns()
    events = _record(worker)
    worker.run()
    assert events == [("started",), ("returned", 42), ("finished",)]


def test_a_worker_that_raises_emits_errored_then_finished_not_returned(qtbot):
    worker = _Raises()
    events = _record(worker)
    worker.run()  # never raises
    assert [e[0] for e in events] == ["started", "errored", "finished"]
    err = events[1][1]
    assert isinstance(err, WorkerError)
    assert err.message == "ValueError: 3 training items have invalid labels"  # the first line
    assert not err.out_of_memory
    assert "Traceback" in err.traceback and "invalid labels" in err.traceback


def test_out_of_memory_is_a_field_not_a_substring(qtbot):
    class Oom(Worker):
        def work(self) -> None:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    worker = Oom()
    events = _record(worker)
    worker.run()
    err = events[1][1]
    assert err.out_of_memory and err.message == "Out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert not describe_error(ValueError("the label is out of memory range")).out_of_memory
    assert not describe_error(RuntimeError("a shape mismatch")).out_of_memory


def test_stop_sets_the_flag():
    worker = _Returns()
    assert not worker.stop_flag()
    worker.stop()
    assert worker.stop_flag()


def test_the_thread_ends_while_the_gui_thread_blocks_in_wait(qtbot):
    release = threading.Event()

    class Slow(Worker):
        def work(self) -> str:
            release.wait(5)
            return "done"

    parent = QObject()
    worker = Slow()
    events = _record(worker)
    done: list = []
    thread = start_worker(worker, parent, on_done=lambda: done.append(True))
    qtbot.waitUntil(lambda: events[:1] == [("started",)], timeout=5000)
    release.set()
    t0 = time.perf_counter()
    assert thread.wait(5000)  # the GUI thread processes no events here: a queued quit would never run
    assert time.perf_counter() - t0 < 4
    assert [e[0] for e in events] == ["started", "returned", "finished"]
    qtbot.waitUntil(lambda: done == [True], timeout=5000)  # on_done runs in the GUI thread afterwards


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="True and None are immortal from Python 3.12: no refcounts")
def test_the_qt_binding_keeps_python_refcounts_across_emit(qtbot):
    """Workers emit thousands of signals. PySide6 6.12.0's emit dropped a reference to True per call, and
    the interpreter died at exit (bool_dealloc / none_dealloc): pyproject excludes it, this checks."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        sig = Signal(object)

    e, got = Emitter(), []
    e.sig.connect(got.append)
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(100):
        e.sig.emit(None)
    got.clear()
    assert (sys.getrefcount(True), sys.getrefcount(None)) == before
