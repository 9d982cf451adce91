"""Workers that run fine-tuning, the before/after comparison and k-fold scoring off the GUI thread.

Each is a :class:`gui.worker.Worker`: ``work`` calls a core function and returns its
result (``sig_returned``); a failure comes as ``sig_errored`` (a ``WorkerError`` whose
``out_of_memory`` the panel turns into advice); ``sig_finished`` always comes last.
Cancel sets the worker's ``stop_flag``, which the core functions poll.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Signal

from core.dataset import Sample
from core.finetune import (
    Comparison,
    CrossValResult,
    FinetuneResult,
    Selection,
    compare_models,
    crossval_scores,
    run_finetune,
)
from core.predict import Progress
from core.train import EpochInfo, StepInfo, TrainConfig

from .worker import Worker


class TrainWorker(Worker):
    """Runs :func:`core.finetune.run_finetune` and relays its callbacks.

    Args:
        config: The training configuration.
        selection: The samples to train on, or a function that makes them (called in the
            worker's thread: scanning a large folder takes seconds).
        out: Checkpoint path.
        val_samples: A separate validation set (or a function that makes it), or ``None`` to split one off.
        extra_summary: Added to the checkpoint metadata.
    """

    sig_selected = Signal(object)
    """The samples to train on are known (core.finetune.Selection), before the first step."""
    sig_step = Signal(object)
    """One optimiser step finished (core.train.StepInfo)."""
    sig_epoch = Signal(object)
    """One validation pass finished (core.train.EpochInfo)."""

    def __init__(
        self,
        config: TrainConfig,
        selection: Selection | Callable[[], Selection],
        out: str,
        val_samples: Sequence[Sample] | Callable[[], Sequence[Sample]] | None = None,
        extra_summary: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config, self.selection, self.out = config, selection, out
        self.val_samples, self.extra_summary = val_samples, extra_summary

    def work(self) -> FinetuneResult:
        """Fine-tune; the result also when cancelled (``stopped``)."""
        if callable(self.selection):
            self.selection = self.selection()
        if callable(self.val_samples):
            self.val_samples = self.val_samples()
        self.sig_selected.emit(self.selection)
        return run_finetune(
            self.config,
            self.selection,
            self.out,
            val_samples=self.val_samples,
            on_step=self._emit_step,
            on_epoch=self._emit_epoch,
            should_stop=self.stop_flag,
            extra_summary=self.extra_summary,
        )

    def _emit_step(self, s: StepInfo) -> None:
        self.sig_step.emit(s)

    def _emit_epoch(self, e: EpochInfo) -> None:
        self.sig_epoch.emit(e)


class CompareWorker(Worker):
    """Predicts the validation part with the old and the new model (:func:`core.finetune.compare_models`)."""

    sig_progress = Signal(object)
    """Prediction progress (core.predict.Progress)."""

    def __init__(self, samples: Sequence[Sample], old_model: str | None, new_model: str, device: str, backend: str):
        super().__init__()
        self.samples, self.old_model, self.new_model = list(samples), old_model, new_model
        self.device, self.backend = device, backend

    def work(self) -> Comparison:
        """The comparison of the two models."""
        return compare_models(
            self.samples, self.old_model, self.new_model, device=self.device, backend=self.backend,
            progress=self.sig_progress.emit, should_stop=self.stop_flag,
        )  # fmt: skip


class CrossValWorker(Worker):
    """Runs :func:`core.finetune.crossval_scores` (k-fold out-of-sample scoring).

    ``samples`` may be a function that makes them, called in the worker's thread.
    """

    sig_progress = Signal(object)
    """Overall progress (core.predict.Progress; ``message`` names the fold and phase)."""

    def __init__(
        self, samples: Sequence[Sample] | Callable[[], Sequence[Sample]], k: int, config: TrainConfig, **kwargs: Any
    ):
        super().__init__()
        self.samples = samples if callable(samples) else list(samples)
        self.k, self.config, self.kwargs = k, config, kwargs

    def work(self) -> CrossValResult:
        """The scores, possibly partial when cancelled."""
        if callable(self.samples):
            self.samples = list(self.samples())
        return crossval_scores(
            self.samples, self.k, config=self.config, progress=self._emit_progress, should_stop=self.stop_flag,
            **self.kwargs,
        )  # fmt: skip

    def _emit_progress(self, p: Progress) -> None:
        self.sig_progress.emit(p)
