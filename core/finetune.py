"""Fine-tuning on a dataset's current labels: item selection, runs with curves, before/after, k-fold scoring.

The labels are the file names (a relabel renames the file), so the "current,
corrected" labels are simply what :func:`core.data.scan_folder` reads now. The
review states of the store decide which samples train: verified and fixed ones
always, unreviewed ones unless excluded, unreadable and invalid ones never (nor
any file whose name is not a valid plate).

Nothing here touches review states or labels: a new model's predictions never
override a human decision.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import plates
from .data import PlateDataset, encode_label, train_augmentations
from .dataset import STORE_DIRNAME, Sample, scan_folder
from .files import WriteError, write_problem
from .images import ImageReadError
from .metrics import corpus_cer
from .models import INPUT_SIZE, load_checkpoint
from .predict import PredictionResult, Predictor, Progress, predict_samples
from .results_csv import BASE_COLUMNS, write_results_csv
from .review_state import NEVER_TRAIN_STATES, ReviewState
from .train import EpochInfo, StepInfo, TrainConfig, TrainResult, split_items, train

CURVES_HEADER = ["step", "epoch", "train_loss", "val_loss", "val_accuracy", "val_cer", "lr", "images_per_s"]
CROSSVAL_HEADER = [*BASE_COLUMNS, "fold"]


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """The samples a fine-tune trains on, and why the others were left out.

    Attributes:
        samples: Samples to train on (valid labels, allowed review states), sorted by ``rel``.
        excluded: ``{rel: reason}`` for every sample left out.
    """

    samples: list[Sample]
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> list[tuple[str, str]]:
        """``(path, label)`` pairs for :func:`core.train.train`."""
        return [(s.file, s.label) for s in self.samples]

    def summary(self) -> dict[str, int]:
        """Counts for the checkpoint metadata and the panel: ``{"train": n, "<reason>": n, ...}``."""
        out = {"selected": len(self.samples)}
        for reason in self.excluded.values():
            out[reason] = out.get(reason, 0) + 1
        return out


def select_training_samples(
    samples: Iterable[Sample], states: Mapping[str, str] | None = None, include_unreviewed: bool = True
) -> Selection:
    """Choose the samples to fine-tune on from their current labels and review states.

    Args:
        samples: From :func:`core.data.scan_folder` (labels = current file names).
        states: ``{rel: review state}``; missing = unreviewed (as ``Store.states()`` returns).
        include_unreviewed: Also train on samples nobody reviewed yet.

    Returns:
        A :class:`Selection`; reasons are ``unreadable``, ``invalid``, ``invalid label``, ``unreviewed``.
    """
    states = states or {}
    chosen: list[Sample] = []
    excluded: dict[str, str] = {}
    for s in samples:
        state = states.get(s.rel, ReviewState.UNREVIEWED)
        if state in NEVER_TRAIN_STATES:
            excluded[s.rel] = state
        elif not s.valid:
            excluded[s.rel] = "invalid label"
        elif state == ReviewState.UNREVIEWED and not include_unreviewed:
            excluded[s.rel] = ReviewState.UNREVIEWED
        else:
            chosen.append(s)
    chosen.sort(key=lambda s: s.rel)
    return Selection(chosen, excluded)


def read_states(folder: str | os.PathLike) -> dict[str, str]:
    """The review states of a dataset folder from its store (``{}`` when the store is unavailable)."""
    try:
        from .store import Store
    except ImportError:  # the store is optional for training
        return {}
    store = Store.open(folder, reconcile=False)
    try:
        return store.states()
    finally:
        store.close()


def folder_selection(
    folder: str | os.PathLike, states: Mapping[str, str] | None = None, include_unreviewed: bool = True
) -> Selection:
    """:func:`select_training_samples` over a whole folder; ``states=None`` reads them from the store."""
    samples = scan_folder(folder)
    if states is None:
        states = read_states(folder)
    return select_training_samples(samples, states, include_unreviewed)


def models_dir(folder: str | os.PathLike) -> Path:
    """Where fine-tuned checkpoints of a dataset go: ``<store folder>/models``.

    The store folder is ``<dataset>/.plate-review`` or, for a read-only dataset, the
    store's fallback location (``core.store.store_location``).
    """
    try:
        from .store import store_location
    except ImportError:
        return Path(folder).resolve() / STORE_DIRNAME / "models"
    return store_location(folder)[0] / "models"


def new_checkpoint_path(folder: str | os.PathLike, now: float | None = None) -> Path:
    """A fresh ``<store folder>/models/<YYYYmmdd-HHMMSS>.pt`` path (suffixed if it exists)."""
    d = models_dir(folder)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = d / f"{stamp}.pt"
    n = 2
    while path.exists():
        path = d / f"{stamp}-{n}.pt"
        n += 1
    return path


def curves_path(checkpoint: str | os.PathLike) -> Path:
    """The curves CSV next to a checkpoint: ``<stem>.curves.csv``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".curves.csv")


def skipped_path(checkpoint: str | os.PathLike) -> Path:
    """The list of files a run skipped, next to its checkpoint: ``<stem>.skipped.tsv``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".skipped.tsv")


def read_skipped(path: str | os.PathLike) -> dict[str, str]:
    """``{file: reason}`` from a :func:`skipped_path` file (empty when there is none)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:  # paths as written
            return {row[0]: row[1] for row in csv.reader(f, delimiter="\t") if len(row) == 2}
    except FileNotFoundError:
        return {}


# --------------------------------------------------------------------------- curves


@dataclass
class CurveRow:
    """One line of the curves CSV: a training step (``train_loss`` set) or a validation pass (``val_*`` set)."""

    step: int
    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_cer: float | None = None
    lr: float | None = None
    images_per_s: float | None = None

    @property
    def is_validation(self) -> bool:
        return self.val_loss is not None or self.val_cer is not None

    @classmethod
    def from_step(cls, s: StepInfo) -> CurveRow:
        return cls(s.step, s.epoch, train_loss=s.loss, lr=s.lr, images_per_s=s.images_per_s)

    @classmethod
    def from_epoch(cls, e: EpochInfo) -> CurveRow:
        return cls(
            e.step, e.epoch, val_loss=e.val_loss, val_accuracy=e.val_accuracy, val_cer=e.val_cer, lr=e.lr,
            images_per_s=e.images_per_s,
        )  # fmt: skip

    def to_row(self) -> list[str]:
        def f(v: float | None) -> str:
            return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"

        return [str(self.step), str(self.epoch)] + [
            f(v) for v in (self.train_loss, self.val_loss, self.val_accuracy, self.val_cer, self.lr, self.images_per_s)
        ]


class CurveLog:
    """Appends curve rows to a CSV as they come (flushed, so a crash keeps what was logged).

    A row that cannot be written (a full disk) raises :class:`core.files.WriteError` naming the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with self._writing():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "w", encoding="utf-8", newline="")
            self._w = csv.writer(self._f)
            self._w.writerow(CURVES_HEADER)
            self._f.flush()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise WriteError(write_problem(self.path, e), self.path) from e

    def add(self, row: CurveRow) -> None:
        if self._f.closed:
            return
        with self._writing():
            self._w.writerow(row.to_row())
            self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CurveLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_curves(path: str | os.PathLike) -> list[CurveRow]:
    """Read a curves CSV written by :class:`CurveLog`.

    Raises:
        ValueError: the file does not have the curves header.
    """

    def num(v: str | None) -> float | None:
        if v is None or v.strip() == "":
            return None
        return float(v)

    with open(path, encoding="utf-8", newline="") as f:
        r = csv.DictReader(f)
        if r.fieldnames is None or not set(CURVES_HEADER) <= set(r.fieldnames):
            raise ValueError(f"{path}: not a curves CSV (expected header {','.join(CURVES_HEADER)})")
        rows = []
        for d in r:
            rows.append(
                CurveRow(
                    int(float(d["step"])),
                    int(float(d["epoch"])),
                    num(d["train_loss"]),
                    num(d["val_loss"]),
                    num(d["val_accuracy"]),
                    num(d["val_cer"]),
                    num(d["lr"]),
                    num(d["images_per_s"]),
                )  # fmt: skip
            )
    return rows


# --------------------------------------------------------------------------- a fine-tuning run


class TolerantPlateDataset(PlateDataset):
    """A :class:`core.data.PlateDataset` that skips files it cannot read instead of ending the run.

    An unreadable file (corrupt, vanished) is replaced by the next readable item and
    remembered in :attr:`bad` (``{path: reason}``), so one bad crop in 100,000 does not
    kill an hour of training; the run reports it at the end.

    With ``should_stop`` set, items stop being read once it returns True: a blank
    image is returned instead, so the batch being assembled when the user cancels
    costs nothing (``core.train`` polls ``should_stop`` before using it and drops it).
    Use it for training data only, never for validation.

    DataLoader workers read from copies of this object: what they put in :attr:`bad` never
    reaches the caller. So each skip is also appended to ``skipped_log`` (one short line per
    write, safe from several processes), which :func:`read_skipped` reads back after the
    run. A worker that receives the object pickled (spawn, forkserver) gets no
    ``should_stop`` (a thread lock cannot be pickled); the training loop still polls it.
    """

    def __init__(self, *args: Any, should_stop: Callable[[], bool] | None = None,
                 skipped_log: str | os.PathLike | None = None, **kwargs: Any):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.bad: dict[str, str] = {}
        self.should_stop = should_stop
        self.skipped_log = skipped_log
        self._blank: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "should_stop": None}

    def _skip(self, path: str, reason: str) -> None:
        seen = path in self.bad  # by this process: written once, not once per epoch
        self.bad[path] = reason
        if self.skipped_log is not None and not seen:
            # surrogateescape: a path that is not valid UTF-8 (its folder's name) must not end the run here
            with open(self.skipped_log, "a", encoding="utf-8", errors="surrogateescape", newline="") as f:
                csv.writer(f, delimiter="\t").writerow([path, " ".join(reason.split())])

    def __getitem__(self, idx: int):
        if self.should_stop is not None and self.should_stop():
            if self._blank is None:
                self._blank = torch.zeros((3, *INPUT_SIZE), dtype=torch.float32)
            return self._blank, torch.from_numpy(encode_label(self.items[idx][1], self.provinces, self.others))
        n = len(self.items)
        for k in range(min(n, 20)):
            j = (idx + k) % n
            try:
                return super().__getitem__(j)
            except ImageReadError as e:
                self._skip(self.items[j][0], e.reason)
            except Exception as e:  # a decoder or augmentation crash on one file
                self._skip(self.items[j][0], f"{type(e).__name__}: {e}")
        raise ImageReadError(self.items[idx][0], "no readable image among 20 consecutive training files")


@dataclass
class FinetuneResult:
    """What :func:`run_finetune` produced.

    Attributes:
        train: The :class:`core.train.TrainResult` (``checkpoint`` is the best one).
        checkpoint_path: Where the best checkpoint was written.
        curves_path: The curves CSV beside it.
        val_samples: The validation part (the before/after comparison runs on it).
        selection: Which samples were used and which excluded.
        config: The configuration actually run.
        skipped: ``{path: reason}`` of files that could not be read and were skipped.
    """

    train: TrainResult
    checkpoint_path: Path | None
    curves_path: Path
    val_samples: list[Sample]
    selection: Selection
    config: TrainConfig
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return self.train.stopped


def run_finetune(
    config: TrainConfig,
    selection: Selection,
    out: str | os.PathLike,
    val_samples: Sequence[Sample] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_summary: Mapping[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune (or train from scratch) on a selection, logging curves next to the checkpoint.

    The validation part is split off the selection here (``config.val_split``, ``config.seed``)
    unless ``val_samples`` is given (a separate validation folder), so the caller knows it
    for the before/after comparison.

    Args:
        config: Training configuration (``init`` = base checkpoint or ``None`` for scratch).
        selection: From :func:`select_training_samples` / :func:`folder_selection`.
        out: The checkpoint path (the best by validation CER is kept there, also on cancel).
        val_samples: Validation samples instead of a split (their labels must be valid).
        on_step: Called after every optimiser step (from the training thread).
        on_epoch: Called after every validation pass.
        should_stop: Polled every step; True ends the run keeping the best checkpoint.
        extra_summary: Added to the checkpoint's training summary.

    Raises:
        ValueError: nothing to train on, or invalid labels.
    """
    if not selection.samples:
        raise ValueError("no training samples (all unreadable, invalid or excluded?)")
    if val_samples is None:
        train_s, val_s = split_items([(s, s.label) for s in selection.samples], config.val_split, config.seed)
        train_samples = [s for s, _ in train_s]
        val_list = [s for s, _ in val_s]
    else:
        train_samples = list(selection.samples)
        val_list = [s for s in val_samples if s.valid]
    bad_labels = [s for s in [*train_samples, *val_list] if not plates.is_valid_label(s.label)]
    if bad_labels:
        raise ValueError(f"{len(bad_labels)} samples have invalid labels, e.g. {bad_labels[0].rel}")
    if config.init:
        base = load_checkpoint(config.init)
        provinces, others = base.provinces, base.others
        del base
    else:
        provinces, others = plates.PROVINCES, plates.OTHERS
    out = Path(out)
    skip_log = skipped_path(out)
    skip_log.unlink(missing_ok=True)  # a list from an earlier run to the same path
    train_ds = TolerantPlateDataset(
        [(s.file, s.label) for s in train_samples],
        train_augmentations(config.augment_strength, seed=config.seed),
        provinces,
        others,
        should_stop=should_stop,
        skipped_log=skip_log,
    )
    val_ds = TolerantPlateDataset([(s.file, s.label) for s in val_list], None, provinces, others, skipped_log=skip_log)
    cpath = curves_path(out)
    summary = {
        "selection": selection.summary(),
        "val_source": "split" if val_samples is None else "folder",
        **(extra_summary or {}),
    }
    with CurveLog(cpath) as log:

        def step_cb(s: StepInfo) -> None:
            log.add(CurveRow.from_step(s))
            if on_step:
                on_step(s)

        def epoch_cb(e: EpochInfo) -> None:
            log.add(CurveRow.from_epoch(e))
            if on_epoch:
                on_epoch(e)

        result = train(
            config,
            train_ds,
            val_ds,
            out=out,
            on_step=step_cb,
            on_epoch=epoch_cb,
            should_stop=should_stop,
            extra_summary=summary,
        )
    skipped = {**train_ds.bad, **val_ds.bad, **read_skipped(skip_log)}  # the workers' skips too
    return FinetuneResult(result, result.best_path, cpath, val_list, selection, config, skipped)


# --------------------------------------------------------------------------- before / after


@dataclass
class Comparison:
    """Old vs new model on the same samples.

    Attributes:
        n: Samples compared (readable, valid label, predicted by both).
        old_accuracy: Exact-match accuracy of the old model (``None`` when there is no old model).
        old_cer: Corpus CER of the old model.
        new_accuracy: Exact-match accuracy of the new model.
        new_cer: Corpus CER of the new model.
        fixed: Samples the old model got wrong and the new one right (``rel``, sorted).
        broken: Samples the old model got right and the new one wrong.
        old: ``{rel: result}`` of the old model.
        new: ``{rel: result}`` of the new model.
    """

    n: int
    old_accuracy: float | None
    old_cer: float | None
    new_accuracy: float
    new_cer: float
    fixed: list[str]
    broken: list[str]
    old: dict[str, PredictionResult] = field(default_factory=dict, repr=False)
    new: dict[str, PredictionResult] = field(default_factory=dict, repr=False)


def _scored(results: Iterable[Any]) -> dict[str, Any]:
    return {r.rel: r for r in results if r.error is None and not r.label_error and r.label}


def _acc_cer(results: Sequence[Any]) -> tuple[float, float]:
    if not results:
        return 0.0, 0.0
    acc = sum(r.prediction == r.label for r in results) / len(results)
    return acc, corpus_cer([r.prediction for r in results], [r.label for r in results])


def compare_results(old: Iterable[Any] | None, new: Iterable[Any]) -> Comparison:
    """Compare two models' results (``PredictionResult``-like: rel, label, prediction, error, label_error).

    Only samples readable with a valid label and present in both sets are compared
    (all new ones when ``old`` is ``None``). Correctness is exact match against the
    sample's current label.
    """
    new_d = _scored(new)
    old_d = _scored(old) if old is not None else None
    rels = sorted(new_d if old_d is None else new_d.keys() & old_d.keys())
    new_acc, new_cer = _acc_cer([new_d[r] for r in rels])
    if old_d is None:
        return Comparison(len(rels), None, None, new_acc, new_cer, [], [], {}, new_d)
    old_acc, old_cer = _acc_cer([old_d[r] for r in rels])
    fixed = [r for r in rels if old_d[r].prediction != old_d[r].label and new_d[r].prediction == new_d[r].label]
    broken = [r for r in rels if old_d[r].prediction == old_d[r].label and new_d[r].prediction != new_d[r].label]
    return Comparison(len(rels), old_acc, old_cer, new_acc, new_cer, fixed, broken, old_d, new_d)


def compare_models(
    samples: Sequence[Sample],
    old_model: str | os.PathLike | None,
    new_model: str | os.PathLike,
    device: str = "auto",
    backend: str = "auto",
    batch_size: int = 128,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Comparison:
    """Predict ``samples`` with both checkpoints and compare (``old_model=None``: new model only)."""
    total = len(samples) * (2 if old_model else 1)

    def prog(offset: int, label: str) -> Callable[[Progress], None] | None:
        if progress is None:
            return None
        return lambda p: progress(Progress(offset + p.done, total, p.images_per_s, p.eta_s, label))

    old_res = None
    if old_model:
        old_pred = Predictor(old_model, device=device, backend=backend)
        old_res = predict_samples(
            samples, old_pred, batch_size, workers=0, progress=prog(0, "old model"), should_stop=should_stop
        )
    new_pred = Predictor(new_model, device=device, backend=backend)
    new_res = predict_samples(
        samples, new_pred, batch_size, workers=0, progress=prog(total - len(samples), "new model"),
        should_stop=should_stop,
    )  # fmt: skip
    return compare_results(old_res, new_res)


# --------------------------------------------------------------------------- k-fold scoring


@dataclass
class CrossValResult:
    """Out-of-sample predictions from k-fold fine-tuning.

    Attributes:
        results: ``{rel: PredictionResult}``, each from the model of the sample's own fold.
        folds: ``{rel: fold}`` (0-based): which fold each sample was held out in.
        trained_on: For each fold, the ``rel`` of every sample its model trained (or validated) on.
        k: Number of folds.
        stopped: Cancelled before every fold was done (``results`` holds the finished folds).
    """

    results: dict[str, PredictionResult]
    folds: dict[str, int]
    trained_on: list[set[str]]
    k: int
    stopped: bool = False


def assign_folds(rels: Sequence[str], k: int, seed: int = 0) -> dict[str, int]:
    """A deterministic, balanced fold per sample (shuffled with ``seed``; sizes differ by at most one)."""
    order = sorted(rels)
    random.Random(seed).shuffle(order)
    return {rel: i % k for i, rel in enumerate(order)}


def crossval_scores(
    samples: Sequence[Sample],
    k: int = 5,
    init: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    states: Mapping[str, str] | None = None,
    include_unreviewed: bool = True,
    backend: str = "auto",
    work_dir: str | os.PathLike | None = None,
) -> CrossValResult:
    """Score every sample with a model that never saw it: k-fold fine-tuning from ``init``.

    Every sample is assigned to one fold. For fold ``f`` a model is fine-tuned on the
    trainable samples (see :func:`select_training_samples`) of the *other* folds (its
    validation split, for picking the best checkpoint, also comes from those) and then
    predicts only the samples of fold ``f`` -- including unreadable/invalid ones, which
    never train anyway.

    Args:
        samples: The dataset's samples (``scan_folder``).
        k: Number of folds (>= 2).
        init: Checkpoint to fine-tune from (overrides ``config.init``); ``None`` = ``config.init``.
        config: Training configuration per fold (default: 1 epoch of ``TrainConfig()``).
        progress: Called with overall progress (``message`` says the fold and phase).
        should_stop: Polled during training and prediction; finished folds are kept.
        states: Review states (``{rel: state}``) deciding what trains.
        include_unreviewed: Train on unreviewed samples too.
        backend: Predictor backend (``auto``: onnxruntime on CPU).
        work_dir: Where fold checkpoints go (default: a temporary folder, deleted after).

    Returns:
        A :class:`CrossValResult`.

    Raises:
        ValueError: ``k`` < 2 or more folds than samples.
    """
    if k < 2:
        raise ValueError(f"k-fold scoring needs at least 2 folds, got {k}")
    if len(samples) < k:
        raise ValueError(f"{len(samples)} samples cannot be split into {k} folds")
    config = config or TrainConfig(epochs=1)
    if init is not None:
        config = replace(config, init=str(init))
    folds = assign_folds([s.rel for s in samples], k, config.seed)
    selection = select_training_samples(samples, states, include_unreviewed)
    by_fold: list[list[Sample]] = [[] for _ in range(k)]
    for s in samples:
        by_fold[folds[s.rel]].append(s)
    out = CrossValResult({}, folds, [set() for _ in range(k)], k)
    stop = should_stop or (lambda: False)
    t0 = time.perf_counter()
    units = 1000

    def report(fold: int, frac: float, msg: str) -> None:
        if progress is None:
            return
        done = int((fold + min(max(frac, 0.0), 1.0)) * units)
        el = time.perf_counter() - t0
        eta = el / done * (k * units - done) if done else float("nan")
        progress(Progress(done, k * units, len(out.results) / max(el, 1e-9), eta, msg))

    tmp = tempfile.TemporaryDirectory(prefix="plate-review-cv-") if work_dir is None else None
    wdir = Path(tmp.name if tmp else work_dir)
    wdir.mkdir(parents=True, exist_ok=True)
    try:
        for f in range(k):
            if stop():
                out.stopped = True
                break
            train_sel = Selection([s for s in selection.samples if folds[s.rel] != f])
            out.trained_on[f] = {s.rel for s in train_sel.samples}
            if not train_sel.samples:
                raise ValueError(f"fold {f + 1}: no training samples outside the fold")
            ckpt = wdir / f"fold{f}.pt"

            def on_step(s: StepInfo, f: int = f) -> None:
                report(
                    f, 0.8 * s.step / max(1, s.total_steps), f"fold {f + 1}/{k}: training step {s.step}/{s.total_steps}"
                )

            report(f, 0.0, f"fold {f + 1}/{k}: training on {len(train_sel.samples)} samples")
            res = run_finetune(config, train_sel, ckpt, on_step=on_step, should_stop=stop)
            if res.stopped or stop():
                out.stopped = True
                break
            report(f, 0.8, f"fold {f + 1}/{k}: predicting {len(by_fold[f])} held-out samples")
            predictor = Predictor(res.checkpoint_path, device=config.device, backend=backend)
            held = by_fold[f]

            def on_pred(p: Progress, f: int = f, n: int = len(held)) -> None:
                report(f, 0.8 + 0.2 * p.done / max(1, n), f"fold {f + 1}/{k}: predicting {p.done}/{n}")

            preds = predict_samples(held, predictor, workers=0, progress=on_pred, should_stop=stop)
            if len(preds) < len(held):
                out.stopped = True
                break
            for r in preds:
                out.results[r.rel] = r
            report(f, 1.0, f"fold {f + 1}/{k} done")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def write_crossval_csv(cv: CrossValResult, path: str | os.PathLike) -> Path:
    """Write ``file,label,prediction,cer,correct,confidence,fold`` rows, worst CER first, atomically."""
    return write_results_csv(cv.results.values(), path, ("fold", lambda r: cv.folds.get(r.rel, "")))
    return path
