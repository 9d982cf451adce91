"""The training loop of the notebook, as a plain function with callbacks, cancel and checkpoints.

Loss (CE(position 0) + 6 * CE(positions 1..6)) / 7, Adam, ExponentialLR per epoch,
90/10 train/val split, best checkpoint kept by validation CER. Runs on CUDA with
mixed precision when present, on CPU otherwise, and under ``torchrun`` with
DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from . import plates
from .data import PlateDataset, reseed_augmentations, train_augmentations, worker_start_method
from .decode import decode
from .device import resolve_device
from .errors import PlateReviewError
from .malloc import retain_freed_memory
from .metrics import corpus_cer
from .models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint


class TrainingDiverged(PlateReviewError, FloatingPointError):
    """The loss, the weights or the validation loss stopped being finite (a learning rate too high,
    most often); the run stops and writes no checkpoint of the broken weights."""


def _check_finite(model: nn.Module, step: int) -> None:
    """Raise :class:`TrainingDiverged` when a weight of ``model`` is NaN or infinite (an update that
    broke the weights after a finite loss): such weights are never validated or saved."""
    bad = next((n for n, t in model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()), None)
    if bad is not None:
        raise TrainingDiverged(f"training diverged by step {step} (weight {bad} is no longer finite); "
                               "try a lower learning rate")  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data.

    Attributes:
        arch: Architecture name (``lstm`` or ``simple``); ignored when ``init`` is given.
        epochs: Passes over the training data.
        batch_size: Images per step (per process under torchrun).
        lr: Adam learning rate (notebook: 2e-4).
        lr_gamma: ExponentialLR factor applied after every epoch (notebook: 0.5).
        val_split: Fraction held out for validation when no validation set is given.
        seed: Seed for the split, the shuffling, augmentations and initial weights.
        device: ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda`` or ``mps``.
        workers: DataLoader worker processes (0 = load in the training thread); ``None`` =
            :func:`default_workers` for the device the run lands on.
        start_method: How worker processes start (``None``: the platform's default, fork on
            Linux). A caller with threads of its own (the GUI) must not fork: use
            :func:`core.data.thread_safe_start_method`.
        augment_strength: 0 = the notebook's augmentations only; 1 = plus margins, colour, JPEG, noise.
        dropout: Dropout probability of a model built from scratch.
        weight_decay: Adam weight decay.
        init: Checkpoint to fine-tune from; ``None`` trains from scratch.
        max_steps: Stop after this many optimiser steps (quick runs, tests).
        amp: Mixed precision: bf16 (fp16 where bf16 is missing) on CUDA, bf16 on a CPU
            that computes it natively (AVX512-BF16 or AMX; :func:`cpu_bf16`). Weights,
            loss and validation stay float32.
        val_every_steps: Also validate every N steps (live curves on long epochs); ``None`` = per epoch.
        province_weight: Weight of the province character in the loss, against 1 for each of
            the other six (:func:`plate_loss`; 1 = the notebook's loss).
        distill_weight: Weight of the teacher's soft targets (:func:`distill_loss`) added to the
            label's loss, for data that yields ``(x, y, soft)`` (core.teacher.TeacherPool).
        distill_province: Whether the soft targets teach the province too (False: positions 1-6 only).
    """

    arch: str = "lstm"
    epochs: int = 7
    batch_size: int = 64
    lr: float = 2e-4
    lr_gamma: float = 0.5
    val_split: float = 0.1
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    start_method: str | None = None
    augment_strength: float = 1.0
    dropout: float = 0.2
    weight_decay: float = 0.0
    init: str | None = None
    max_steps: int | None = None
    amp: bool = True
    val_every_steps: int | None = None
    province_weight: float = 1.0
    distill_weight: float = 0.0
    distill_province: bool = True


@dataclass
class StepInfo:
    """Reported after every optimiser step."""

    epoch: int
    step: int  # global step, from 1
    total_steps: int
    loss: float
    lr: float
    images_per_s: float
    eta_s: float


@dataclass
class EpochInfo:
    """Reported after every validation pass (end of epoch, or every ``val_every_steps``)."""

    epoch: int
    epochs: int
    step: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_cer: float
    lr: float
    images_per_s: float
    seconds: float
    is_best: bool


@dataclass
class TrainResult:
    """What a run produced."""

    checkpoint: Checkpoint | None
    best_path: Path | None
    history: list[EpochInfo] = field(default_factory=list)
    stopped: bool = False
    steps: int = 0
    seconds: float = 0.0


def cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX).

    Only there does bf16 autocast speed CPU training up (1.7x for ``lstm-fast`` on a
    2-core Zen 4, docs/BENCHMARKS.md); elsewhere oneDNN emulates it and it is slower.
    """
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # private helpers: absent in some builds
        return False


#: Train in NHWC (channels-last) on the CPU, where oneDNN's convolutions are faster in it
#: (bench/bench_train.py turns it off to measure the difference).
NHWC_ON_CPU = True


def _nhwc(device: torch.device) -> bool:
    return NHWC_ON_CPU and device.type == "cpu"


def _to_device(x: torch.Tensor, device: torch.device, non_blocking: bool = False) -> torch.Tensor:
    """A batch on ``device``, in the model's memory layout."""
    x = x.to(device, non_blocking=non_blocking)
    return x.contiguous(memory_format=torch.channels_last) if _nhwc(device) else x


def plate_loss(
    first_logits: torch.Tensor, tail_logits: torch.Tensor, target: torch.Tensor, province_weight: float = 1.0
) -> torch.Tensor:
    """The notebook's loss, (CE(province) + 6 * CE(tail)) / 7, with the province's weight
    ``province_weight`` instead of 1: (w * CE(province) + 6 * CE(tail)) / (w + 6)."""
    first = nn.functional.cross_entropy(first_logits.reshape(-1, first_logits.shape[-1]), target[:, 0])
    tail = nn.functional.cross_entropy(tail_logits.reshape(-1, tail_logits.shape[-1]), target[:, 1:].reshape(-1))
    return (province_weight * first + 6 * tail) / (province_weight + 6)


def distill_loss(first_logits: torch.Tensor, tail_logits: torch.Tensor, soft: torch.Tensor,
                 province_weight: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Cross-entropy against a teacher's per-position distributions, weighted as :func:`plate_loss`.

    ``soft`` is ``(B, 7, K)`` (core.teacher.position_targets): row 0 over the provinces, rows 1-6
    over the other characters, zero-padded to K; a plate whose rows are all zero has no soft
    target and is left out of the mean (0 when no plate has one).
    """
    has = soft[:, 0].sum(-1) > 0
    if not bool(has.any()):
        return first_logits.sum() * 0.0
    first = first_logits.reshape(len(soft), -1)[has]
    tail = tail_logits[has]
    s = soft[has]
    p_first = s[:, 0, : first.shape[-1]]
    p_tail = s[:, 1:, : tail.shape[-1]]
    ce_first = -(p_first * nn.functional.log_softmax(first, -1)).sum(-1).mean()
    ce_tail = -(p_tail * nn.functional.log_softmax(tail, -1)).sum(-1).mean()
    return (province_weight * ce_first + 6 * ce_tail) / (province_weight + 6)


def collate_train(batch: list[tuple]) -> list[torch.Tensor]:
    """Stack ``(x, y)`` and ``(x, y, soft)`` items into one batch: ``[x, y]`` when none has soft
    targets, else ``[x, y, soft]`` with all-zero rows for the items without. torch's own
    collation does the stacking (in a worker, straight into shared memory)."""
    soft = next((b[2] for b in batch if len(b) > 2), None)
    if soft is not None:
        zero = torch.zeros_like(soft)
        batch = [b if len(b) > 2 else (*b, zero) for b in batch]
    return default_collate(batch)


def split_items(
    items: Sequence[tuple[Any, str]], val_split: float, seed: int
) -> tuple[list[tuple[Any, str]], list[tuple[Any, str]]]:
    """Shuffle with ``seed`` and cut off ``val_split`` of the items for validation."""
    items = list(items)
    rng = random.Random(seed)
    rng.shuffle(items)
    n_val = int(round(len(items) * val_split)) if val_split > 0 else 0
    if 0 < val_split and len(items) >= 2:
        n_val = max(1, n_val)
    return items[n_val:], items[:n_val]


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


#: Augmentation workers on a GPU. With none, the training thread's own decoding and
#: augmentation held a CUDA fine-tune at ~780 images/s on an H200; 6 reached ~2,000
#: (docs/BENCHMARKS.md, "GPU").
GPU_WORKERS = 6


def default_workers(device: torch.device) -> int:
    """DataLoader workers for ``workers=None``: none on the CPU, where the training step and
    the augmentation share the cores (a worker process would take one of them from the step);
    on a GPU up to :data:`GPU_WORKERS`, leaving one core for the loop."""
    if device.type == "cpu":
        return 0
    return max(0, min(GPU_WORKERS, (os.cpu_count() or 1) - 1))


def _worker_init(worker_id: int) -> None:
    # torch gives each worker of each epoch its own initial seed; pass it on to every RNG the
    # data pipeline draws from, the albumentations pipelines' own included.
    retain_freed_memory()  # inherited when forked; not with spawn or forkserver
    s = torch.initial_seed() % (2**32)
    np.random.seed(s)
    random.seed(s)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        reseed_augmentations(info.dataset, s)


@torch.inference_mode()
def validate(
    model: nn.Module, loader: DataLoader, device: torch.device, provinces: str, others: str
) -> tuple[float, float, float]:
    """Mean loss, exact-match accuracy and CER over a loader."""
    was_training = model.training
    model.eval()
    losses, preds, labels = [], [], []
    for batch in loader:
        x, y = batch[0], batch[1]
        x, y = _to_device(x, device), y.to(device)
        first, tail = model(x)
        losses.append(plate_loss(first.float(), tail.float(), y).item() * len(x))
        preds += decode(first, tail, provinces, others)  # the app's decoding: selection sees what users see
        labels += [provinces[r[0]] + "".join(others[j] for j in r[1:]) for r in y.tolist()]
    model.train(was_training)
    n = max(1, len(labels))
    acc = sum(p == t for p, t in zip(preds, labels)) / n
    return sum(losses) / n, acc, corpus_cer(preds, labels)


def _as_dataset(data: Any, augment: Any, provinces: str, others: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    return PlateDataset(data, augment=augment, provinces=provinces, others=others)


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def train(
    config: TrainConfig,
    train_data: Sequence[tuple[Any, str]] | Dataset,
    val_data: Sequence[tuple[Any, str]] | Dataset | None = None,
    out: str | os.PathLike | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> TrainResult:
    """Train or fine-tune a recognizer.

    Args:
        config: Hyper-parameters (see :class:`TrainConfig`).
        train_data: ``(path, label)`` pairs with valid labels, or a Dataset yielding
            ``(x, y)`` like :class:`~core.data.PlateDataset`.
        val_data: Same forms; ``None`` splits ``val_split`` off a list ``train_data``.
        out: Where the best checkpoint (by validation CER) is written.
        on_step: Called after every optimiser step.
        on_epoch: Called after every validation pass.
        should_stop: Polled every step; when it returns True the run ends and the
            best checkpoint so far is kept.
        extra_summary: Merged into the checkpoint's training summary (recipe, data).

    Returns:
        A :class:`TrainResult`; ``checkpoint`` is the best one.

    Raises:
        ValueError: no training data, or an invalid label in the data.
    """
    rank, world, local_rank = _dist_info()
    is_main = rank == 0
    retain_freed_memory()  # 1.1-1.15x CPU training images/s (core/malloc.py)
    _seed_all(config.seed + rank)
    if world > 1 and torch.cuda.is_available() and config.device in ("auto", "cuda"):
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = resolve_device(config.device)

    base: Checkpoint | None = load_checkpoint(config.init) if config.init else None
    provinces = base.provinces if base else plates.PROVINCES
    others = base.others if base else plates.OTHERS
    model_cfg = base.config if base else ModelConfig(arch=config.arch, dropout=config.dropout)
    model = build_model(model_cfg, provinces, others)
    if base:
        model.load_state_dict(base.state_dict)

    if not isinstance(train_data, Dataset) and val_data is None:
        train_data, val_data = split_items(train_data, config.val_split, config.seed)
    for data in (train_data, val_data):
        if data is not None and not isinstance(data, Dataset):
            bad = [(p, lab) for p, lab in data if not plates.is_valid_label(lab)]
            if bad:
                raise ValueError(f"{len(bad)} training items have invalid labels, e.g. {bad[0][0]}: {bad[0][1]!r}")
    augment = train_augmentations(config.augment_strength, seed=config.seed + rank)
    train_ds = _as_dataset(train_data, augment, provinces, others)
    val_ds = _as_dataset(val_data, None, provinces, others) if val_data is not None else None
    if len(train_ds) == 0:
        raise ValueError("no training samples (all unreadable, invalid or excluded?)")

    workers = default_workers(device) if config.workers is None else config.workers
    start_method = worker_start_method(config.start_method) if workers else None
    model.to(device)
    if _nhwc(device):  # 1.3x the float32 training step on the CPU (docs/BENCHMARKS.md)
        model.to(memory_format=torch.channels_last)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    raw_model = model.module if world > 1 else model

    g = torch.Generator().manual_seed(config.seed)
    sampler = DistributedSampler(train_ds, world, rank, shuffle=True, seed=config.seed) if world > 1 else None
    pin = device.type == "cuda"
    train_dl = DataLoader(
        train_ds,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=g,
        worker_init_fn=_worker_init,
        drop_last=len(train_ds) > config.batch_size * world,
        pin_memory=pin,
        persistent_workers=workers > 0,
        multiprocessing_context=start_method,
        collate_fn=collate_train,
    )
    val_dl = (
        DataLoader(
            val_ds,
            batch_size=max(64, config.batch_size),
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
            multiprocessing_context=start_method,
            collate_fn=collate_train,
        )
        if val_ds is not None and len(val_ds) > 0 and is_main
        else None
    )

    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, config.lr_gamma)
    use_amp = config.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16()))
    amp_dtype = torch.float16 if device.type == "cuda" and not torch.cuda.is_bf16_supported() else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    steps_per_epoch = len(train_dl)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    out_path = Path(out) if out else None
    result = TrainResult(checkpoint=None, best_path=None)
    best_key = (math.inf, math.inf)
    t_start = time.perf_counter()
    step = 0
    seen = 0
    running: list[float] = []
    summary = {
        "config": asdict(config),
        "train_samples": len(train_ds),
        "val_samples": len(val_ds) if val_ds is not None else 0,
        "init": config.init,
        "world_size": world,
        "device": str(device),
        "workers": workers,
        "precision": f"{str(amp_dtype).removeprefix('torch.')} autocast" if use_amp else "float32",
        **(extra_summary or {}),
    }

    def make_ckpt(metrics: dict[str, Any]) -> Checkpoint:
        state = {
            k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in raw_model.state_dict().items()
        }
        return Checkpoint(
            config=model_cfg, state_dict=state, provinces=provinces, others=others, metrics=metrics,
            summary={**summary, "steps": step, "seconds": round(time.perf_counter() - t_start, 1)},
        )  # fmt: skip

    def validation_pass(epoch: int) -> None:
        nonlocal best_key
        train_loss = float(np.mean(running)) if running else float("nan")
        running.clear()
        _check_finite(raw_model, step)
        if val_dl is not None:
            vl, va, vc = validate(raw_model, val_dl, device, provinces, others)
            if not math.isfinite(vl):  # finite weights whose outputs are not (weights grown huge)
                raise TrainingDiverged(f"training diverged by step {step} (validation loss {vl}); "
                                       "try a lower learning rate")  # fmt: skip
        else:
            vl, va, vc = float("nan"), float("nan"), float("nan")
        key = (vc if not math.isnan(vc) else -step, vl if not math.isnan(vl) else 0.0)
        is_best = key < best_key
        elapsed = time.perf_counter() - t_start
        info = EpochInfo(
            epoch=epoch, epochs=config.epochs, step=step, train_loss=train_loss, val_loss=vl, val_accuracy=va,
            val_cer=vc, lr=opt.param_groups[0]["lr"], images_per_s=seen / max(elapsed, 1e-9),
            seconds=elapsed, is_best=is_best,
        )  # fmt: skip
        result.history.append(info)
        if is_best:
            best_key = key
            result.checkpoint = make_ckpt(
                {"val_loss": vl, "val_accuracy": va, "val_cer": vc, "epoch": epoch, "step": step}
            )
            if out_path is not None:
                result.best_path = save_checkpoint(result.checkpoint, out_path)
        if on_epoch:
            on_epoch(info)

    model.train()
    stop = False
    for epoch in range(1, config.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for batch in train_dl:
            if should_stop and should_stop():
                stop = True
                break
            x, y = _to_device(batch[0], device, pin), batch[1].to(device, non_blocking=pin)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                first, tail = model(x)
                loss = plate_loss(first.float(), tail.float(), y, config.province_weight)
                if config.distill_weight and len(batch) > 2:
                    soft = batch[2].to(device, non_blocking=pin)
                    w_province = config.province_weight if config.distill_province else 0.0
                    loss = loss + config.distill_weight * distill_loss(first.float(), tail.float(), soft, w_province)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            seen += len(x) * world
            lv = loss.item()
            if not math.isfinite(lv):
                raise TrainingDiverged(f"training diverged at step {step} (loss {lv}); try a lower learning rate")
            running.append(lv)
            elapsed = time.perf_counter() - t_start
            ips = seen / max(elapsed, 1e-9)
            if on_step and is_main:
                eta = (total_steps - step) * config.batch_size * world / max(ips, 1e-9)
                on_step(StepInfo(epoch, step, total_steps, lv, opt.param_groups[0]["lr"], ips, eta))
            if config.val_every_steps and step % config.val_every_steps == 0 and is_main:
                validation_pass(epoch)
            if step >= total_steps:
                stop = config.max_steps is not None and step >= config.max_steps
                break
        if should_stop and should_stop():
            result.stopped = True
            break
        if is_main and (running or not result.history):
            validation_pass(epoch)
        sched.step()
        if stop:
            break
    if is_main and result.checkpoint is None:
        # Cancelled before the first validation: keep the weights reached so far.
        _check_finite(raw_model, step)
        result.checkpoint = make_ckpt({"stopped_before_validation": True})
        if out_path is not None:
            result.best_path = save_checkpoint(result.checkpoint, out_path)
    result.steps = step
    result.seconds = time.perf_counter() - t_start
    return result
