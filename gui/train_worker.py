"""Worker objects that run fine-tuning, the before/after comparison and k-fold scoring off the GUI thread.

Each worker is a ``QObject`` moved to a ``QThread``; its ``run`` slot calls a core
function and reports through signals (queued to the GUI thread). Cancel sets a
:class:`core.predict.StopFlag` that the core functions poll; threads are never
terminated.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from core.dataset import Sample
from core.finetune import Selection, compare_models, crossval_scores, run_finetune
from core.predict import Progress, StopFlag
from core.train import EpochInfo, StepInfo, TrainConfig


def describe_error(e: BaseException) -> tuple[str, bool]:
    """A one-paragraph message for the panel, and whether it is a (CUDA) out-of-memory error."""
    oom = isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if oom:
        return f"Out of memory: {first or type(e).__name__}", True
    return f"{type(e).__name__}: {first}" if first else type(e).__name__, False


class _Worker(QObject):
    """Base: a stop flag and the error handling shared by the workers."""

    sig_failed = Signal(str, bool)
    """The run failed: (message, out_of_memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_flag = StopFlag()
        self.traceback: str | None = None

    def stop(self) -> None:
        """Ask the run to end at its next check (thread-safe)."""
        self.stop_flag.set()

    def _fail(self, e: BaseException) -> None:
        self.traceback = traceback.format_exc()
        if isinstance(e, torch.cuda.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        msg, oom = describe_error(e)
        self.sig_failed.emit(msg, oom)


class TrainWorker(_Worker):
    """Runs :func:`core.finetune.run_finetune` and relays its callbacks.

    Args:
        config: The training configuration.
        selection: The samples to train on.
        out: Checkpoint path.
        val_samples: A separate validation set, or ``None`` to split one off.
        extra_summary: Added to the checkpoint metadata.
    """

    sig_step = Signal(object)
    """One optimiser step finished (core.train.StepInfo)."""
    sig_epoch = Signal(object)
    """One validation pass finished (core.train.EpochInfo)."""
    sig_finished = Signal(object)
    """The run ended, normally or cancelled (core.finetune.FinetuneResult)."""

    def __init__(
        self,
        config: TrainConfig,
        selection: Selection,
        out: str,
        val_samples: Sequence[Sample] | None = None,
        extra_summary: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config, self.selection, self.out = config, selection, out
        self.val_samples, self.extra_summary = val_samples, extra_summary

    @Slot()
    def run(self) -> None:
        try:
            result = run_finetune(
                self.config,
                self.selection,
                self.out,
                val_samples=self.val_samples,
                on_step=self._emit_step,
                on_epoch=self._emit_epoch,
                should_stop=self.stop_flag,
                extra_summary=self.extra_summary,
            )
        except BaseException as e:  # noqa: BLE001 - every failure is reported in the panel
            self._fail(e)
            return
        self.sig_finished.emit(result)

    def _emit_step(self, s: StepInfo) -> None:
        self.sig_step.emit(s)

    def _emit_epoch(self, e: EpochInfo) -> None:
        self.sig_epoch.emit(e)


class CompareWorker(_Worker):
    """Predicts the validation part with the old and the new model (:func:`core.finetune.compare_models`)."""

    sig_progress = Signal(object)
    """Prediction progress (core.predict.Progress)."""
    sig_finished = Signal(object)
    """The comparison (core.finetune.Comparison)."""

    def __init__(self, samples: Sequence[Sample], old_model: str | None, new_model: str, device: str, backend: str):
        super().__init__()
        self.samples, self.old_model, self.new_model = list(samples), old_model, new_model
        self.device, self.backend = device, backend

    @Slot()
    def run(self) -> None:
        try:
            cmp = compare_models(
                self.samples, self.old_model, self.new_model, device=self.device, backend=self.backend,
                progress=self.sig_progress.emit, should_stop=self.stop_flag,
            )  # fmt: skip
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
            return
        self.sig_finished.emit(cmp)


class CrossValWorker(_Worker):
    """Runs :func:`core.finetune.crossval_scores` (k-fold out-of-sample scoring)."""

    sig_progress = Signal(object)
    """Overall progress (core.predict.Progress; ``message`` names the fold and phase)."""
    sig_finished = Signal(object)
    """The scores (core.finetune.CrossValResult), possibly partial when cancelled."""

    def __init__(self, samples: Sequence[Sample], k: int, config: TrainConfig, **kwargs: Any):
        super().__init__()
        self.samples, self.k, self.config, self.kwargs = list(samples), k, config, kwargs

    @Slot()
    def run(self) -> None:
        try:
            cv = crossval_scores(
                self.samples, self.k, config=self.config, progress=self._emit_progress, should_stop=self.stop_flag,
                **self.kwargs,
            )  # fmt: skip
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
            return
        self.sig_finished.emit(cv)

    def _emit_progress(self, p: Progress) -> None:
        self.sig_progress.emit(p)


def start_worker(worker: _Worker, parent: QObject, on_done: Callable[[], None]) -> QThread:
    """Move ``worker`` to a new thread, start ``worker.run`` there, quit the thread when it reports.

    ``on_done`` runs in the GUI thread after the thread has finished (clean up references there).
    """
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: QThread.quit is thread-safe, and a queued call would never run while the GUI thread blocks in wait().
    worker.sig_finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    worker.sig_failed.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.finished.connect(on_done)
    thread.start()
    return thread
