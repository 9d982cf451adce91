"""Batched inference over a list of files: result records, progress, cancel.

On CPU the model runs in onnxruntime (exported once from the checkpoint and
cached in the user's cache folder, ~3x faster than eager PyTorch on this model); on CUDA/MPS it
runs in PyTorch under ``inference_mode`` (autocast on CUDA). Decoding, resizing
and batching happen in DataLoader workers, overlapped with the model.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import plates
from .data import (
    InferenceDataset,
    collate_inference,
    normalisation_terms,
    preprocess,
    resize_for_model,
    thread_safe_start_method,
    worker_start_method,
)
from .dataset import Sample
from .decode import apply_grammar, top2
from .device import describe_device, resolve_device
from .errors import PlateReviewError
from .files import WriteError, atomic_write
from .label_score import label_char_probs, label_score
from .metrics import cer as char_error_rate
from .models import (
    MAX_CHECKPOINT_BYTES,
    READING_SUMMARY,
    Checkpoint,
    CheckpointError,
    Reading,
    file_sha256,
    load_checkpoint,
    read_crops,
    views_fingerprint,
)
from .progress import Progress, StopFlag
from .records import PredictionResult

log = logging.getLogger(__name__)

ONNX_OPSET = 17

ONNX_CHECKPOINT_KEY = "plate_review_checkpoint_sha256"
"""Key of the ONNX export's metadata entry holding the SHA-256 of the checkpoint it was exported
from: a cached export is used only for that checkpoint, never because of its file name alone."""


class ModelOutputError(PlateReviewError):
    """The model's outputs are not probabilities (NaN, infinity, out of range or misshapen):
    a broken or hostile checkpoint. ``str(err)`` names the model file and the batch's first file."""


def default_model_path() -> Path:
    """The checkpoint bundled with the app (resources/models/default.pt)."""
    return Path(str(importlib_resources.files("resources").joinpath("models/default.pt")))


class _ExportModule(torch.nn.Module):
    """What we export: uint8 RGB pixels (B, H, W, 3) in, softmax probabilities out.

    Normalisation (:func:`core.data.preprocess`'s ``x * scale + bias`` with the same
    float32 terms) and the HWC -> CHW transpose run inside the graph, so the Python side
    only decodes and resizes (:func:`core.data.resize_for_model`). With ``views``, the outputs
    are the six of :class:`core.models.Reading` (the shown read, over the shifted and zoomed views and
    the negative, the label read, the zoomed and negative flags, :func:`core.models.read_crops`);
    without, the crop's read alone (two).
    """

    def __init__(self, model: torch.nn.Module, mean: Sequence[float], std: Sequence[float], views: bool = True):
        super().__init__()
        self.model = model
        self.views = views
        self.mean, self.std = tuple(mean), tuple(std)
        scale, bias = normalisation_terms(self.mean, self.std)
        self.register_buffer("scale", torch.from_numpy(scale.copy())[None])
        self.register_buffer("bias", torch.from_numpy(bias.copy())[None])

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = pixels.permute(0, 3, 1, 2).float() * self.scale + self.bias
        reading = read_crops(self.model, x, self.views, self.mean, self.std)
        return tuple(reading) if self.views else reading[:2]


#: Bumped when the exported graph changes (its inputs, outputs, or how it reads the views), so stale
#: cached exports are not reused.
ONNX_FORMAT = "u8v8"


def onnx_cache_path(ckpt_path: Path, sha: str, views: bool = True) -> Path:
    """Where the ONNX export of a checkpoint lives: the user's cache, keyed by the checkpoint's hash.

    Never beside the checkpoint: a file there may come from whoever handed over the checkpoint,
    and an ONNX graph can compute anything; the app reads only exports it wrote itself.
    """
    from platformdirs import user_cache_dir

    name = f"{reading_identity(sha, views)}.{ONNX_FORMAT}{graph_code_fingerprint()}.onnx"
    return Path(user_cache_dir("plate-review")) / "onnx" / name


@functools.lru_cache(maxsize=1)
def graph_code_fingerprint() -> str:
    """``.`` and 8 hex digits of the source of the modules an export traces (:mod:`core.models`: the
    architectures and :func:`core.models.read_crops`; this module: the export's wrapper), so that an
    export made by other code is never served, even where :data:`ONNX_FORMAT` was not bumped (an
    export costs seconds; a stale one reads wrong). ``""`` where the source cannot be read (a frozen
    app): :data:`ONNX_FORMAT` alone keys the export then."""
    import inspect

    from . import models

    try:
        text = inspect.getsource(models) + inspect.getsource(_ExportModule)
    except (OSError, TypeError):
        return ""
    return "." + hashlib.sha256(text.encode()).hexdigest()[:8]


#: How many ONNX exports the user's cache keeps (~5 MB each): the most recently used ones.
ONNX_CACHE_KEEP = 12

#: An unfinished export (``*.tmp``, left by a process killed while exporting) older than this is removed.
_STALE_TMP_SECONDS = 3600.0


def prune_onnx_cache(folder: Path, keep: int = ONNX_CACHE_KEEP) -> list[Path]:
    """Remove from the ONNX cache ``folder`` the exports of earlier formats or code, all but the ``keep``
    most recently used exports (by modification time: a served export is touched), and unfinished
    exports older than an hour. Returns what was removed. Files that vanish or cannot be removed
    meanwhile (another process at work) are skipped."""
    now = time.time()
    current, removed = [], []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        name = entry.name
        if name.endswith(f".{ONNX_FORMAT}{graph_code_fingerprint()}.onnx"):
            current.append((mtime, name))
            continue
        if name.endswith(".onnx") or (name.endswith(".tmp") and now - mtime > _STALE_TMP_SECONDS):
            removed.append(name)
    current.sort(reverse=True)
    removed += [name for _, name in current[keep:]]
    gone = []
    for name in removed:
        with contextlib.suppress(OSError):
            (folder / name).unlink()
            gone.append(folder / name)
    if gone:
        log.info("ONNX cache %s: removed %d old export(s)", folder, len(gone))
    return gone


def export_onnx(ckpt: Checkpoint, path: Path, checkpoint_sha: str, views: bool = True,
                check: Callable[[bytes], None] | None = None) -> Path:  # fmt: skip
    """Export a checkpoint to ONNX (uint8 pixels in, probabilities out, dynamic batch), atomically.

    ``checkpoint_sha`` (the checkpoint file's :func:`core.models.file_sha256`) is written into
    the model's metadata (:data:`ONNX_CHECKPOINT_KEY`), so that the cached file is tied to the
    checkpoint it came from (:func:`onnx_checkpoint_sha`). ``views``: the graph reads the crop with
    its shifted and zoomed views and as a negative (:func:`core.models.read_crops`), six outputs; without, two.
    ``check``: called with the serialised model before it is written (raise to refuse it).
    """
    import onnx

    model = _ExportModule(ckpt.build(), ckpt.mean, ckpt.std, views).eval()
    names = ["province", "others", "label_province", "label_others", "zoomed", "negative"][: 6 if views else 2]
    h, w = ckpt.input_size
    import warnings

    graph = io.BytesIO()  # traced in memory: only a complete export reaches the disk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter warns about LSTM batch sizes
        torch.onnx.export(
            model,
            (torch.zeros(2, h, w, 3, dtype=torch.uint8),),
            graph,
            input_names=["pixels"],
            output_names=names,
            dynamic_axes={"pixels": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    proto = onnx.load_model_from_string(graph.getvalue())
    onnx.helper.set_model_props(proto, {ONNX_CHECKPOINT_KEY: checkpoint_sha})
    data = proto.SerializeToString()
    if check is not None:
        check(data)  # before the file: a refused export leaves the previous one
    # a per-process temporary name: two processes exporting the same checkpoint do not share one
    with atomic_write(path, "wb", tmp_name=f"{path.name}.{os.getpid()}.tmp") as f:
        f.write(data)
    return path


def onnx_checkpoint_sha(model_bytes: bytes) -> str | None:
    """The checkpoint SHA-256 an ONNX export was made from (its :data:`ONNX_CHECKPOINT_KEY`
    metadata), or ``None`` when it has none or uses external data files (never ours).

    Raises:
        Exception: ``model_bytes`` is not an ONNX model (ValueError, protobuf's DecodeError and others).
    """
    import onnx

    proto = onnx.load_model_from_string(model_bytes)
    if not proto.graph.node:  # protobuf reads an empty or cut file as an empty model
        raise ValueError("not an ONNX model (no graph)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return None
    return {p.key: p.value for p in proto.metadata_props}.get(ONNX_CHECKPOINT_KEY)


def reading_identity(checkpoint_sha: str, views: bool = True) -> str:
    """The store's key for a checkpoint's predictions (:attr:`Predictor.model_hash`), known before
    the model is loaded: the checkpoint file's SHA-256, marked when read with views, so that a
    cache of one reading is never served as the other: ``.zoom`` and a fingerprint of the views'
    settings (:func:`core.models.views_fingerprint`), so that changing the shifts, windows, margin,
    floor or how :func:`core.models.read_crops` computes its reads reads every folder again."""
    return checkpoint_sha + (f".zoom{views_fingerprint()}" if views else "")


class Predictor:
    """A loaded model ready to read plates, on the chosen device and backend.

    Args:
        model_path: Checkpoint file; ``None`` = the bundled default model.
        device: ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda`` or ``mps``.
        backend: ``auto`` (onnxruntime on CPU when installed, else torch), ``onnx`` or ``torch``.
            ``onnx`` with device ``auto`` runs on the CPU (onnxruntime's CPU provider) even
            where a GPU is present; with an explicit GPU device it falls back to torch.
        threads: CPU threads for the model (default: torch's setting).
        views: Read each crop as it is and shifted by 2 % of its width either way, averaged, and
            where that read is unsure the same in four zoomed windows, a zoomed read shown where
            clearly more confident, and light plates (yellow) it is unsure of also as their negative
            (:func:`core.models.read_crops`): more plates right, loose crops and yellow plates from other
            cameras above all, at a third of the model's speed on tight crops (less on loose ones, an
            eighteenth at worst). ``False``: the crop alone.

    Raises:
        CheckpointError: the model file is missing or damaged.
        ValueError: an unavailable device.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        device: str = "auto",
        backend: str = "auto",
        threads: int | None = None,
        views: bool = True,
    ):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.views = views
        self.checkpoint = load_checkpoint(self.model_path)
        self.checkpoint_sha = file_sha256(self.model_path)
        self.model_hash = reading_identity(self.checkpoint_sha, views)
        """The store's cache key (:func:`reading_identity`)."""
        if backend == "onnx" and device == "auto":
            device = "cpu"  # onnxruntime runs here on the CPU: asking for it picks the CPU, even beside a GPU
        self.device = resolve_device(device)
        self.threads = threads or torch.get_num_threads()
        chosen = backend == "onnx"
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and _has_onnxruntime() else "torch"
        if backend == "onnx" and self.device.type != "cpu":
            backend = "torch"
        self._session = None
        self._model = None
        if backend == "onnx":
            try:
                self._session = self._onnx_session()
            except WriteError as e:  # no room for the export (a full disk): PyTorch reads the same
                if chosen:
                    raise
                log.warning("%s; reading with PyTorch instead of onnxruntime", e)
                backend = "torch"
        self.backend = backend
        if backend == "torch":
            self._model = self.checkpoint.build().to(self.device)
            if self.device.type == "cpu":
                self._model = self._model.to(memory_format=torch.channels_last)

    @property
    def description(self) -> str:
        """E.g. ``'default.pt (lstm) on CPU (2 threads), onnxruntime, 3 views, zoomed where unsure, ...'``
        (:data:`core.models.READING_SUMMARY`)."""
        return (
            f"{self.model_path.name} ({self.checkpoint.config.arch}) on {describe_device(self.device)}, "
            f"{'onnxruntime' if self.backend == 'onnx' else 'PyTorch'}, {READING_SUMMARY if self.views else 'one view'}"
        )

    def _onnx_session(self):
        """An onnxruntime session of the checkpoint's cached ONNX export, exported first when the
        cache is missing, damaged or not made from this checkpoint (its metadata names another)."""
        path = onnx_cache_path(self.model_path, self.checkpoint_sha, self.views)
        session = self._cached_session(path)
        if session is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: the cache's pruning keeps it
            return session
        self._export(path)
        prune_onnx_cache(path.parent)
        session = self._cached_session(path)
        if session is None:
            raise CheckpointError(
                f"{path}: the ONNX export just made from {self.model_path} does not load "
                "(replaced meanwhile, or an onnxruntime problem: the warning above says which)"
            )
        return session

    def _export(self, path: Path) -> None:
        log.info("exporting %s to ONNX at %s", self.model_path, path)
        export_onnx(self.checkpoint, path, self.checkpoint_sha, self.views)

    def _cached_session(self, path: Path):
        """A session of the ONNX file at ``path`` if it is an export of this checkpoint, else ``None``
        (a warning names the file when it exists but is damaged or made from another checkpoint)."""
        import onnxruntime as ort

        try:
            if path.stat().st_size > 2 * MAX_CHECKPOINT_BYTES:
                log.warning("%s: ONNX export too large to be one of %s; exporting again", path, self.model_path)
                return None
            data = path.read_bytes()  # read once: what is checked is what runs
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("%s: cannot read the ONNX export (%s); exporting again", path, e.strerror or e)
            return None
        try:
            sha = onnx_checkpoint_sha(data)
        except Exception as e:  # protobuf raises DecodeError and others for damaged files
            log.warning("%s: damaged ONNX export (%s); exporting %s again", path, _first_line(e), self.model_path)
            return None
        if sha is None:  # an export by an earlier version (or one that hides where it came from)
            log.info("%s: ONNX export without a checkpoint hash; exporting %s again", path, self.model_path)
            return None
        if sha != self.checkpoint_sha:
            log.warning(
                "%s: ONNX export not made from %s (its checkpoint hash is %s, not %s); exporting again",
                path, self.model_path, sha[:12], self.checkpoint_sha[:12],
            )  # fmt: skip
            return None
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged cache file: export again
            log.warning("%s: damaged ONNX export (%s); exporting %s again", path, _first_line(e), self.model_path)
            return None

    @property
    def takes_uint8(self) -> bool:
        """True when :meth:`probabilities` wants resized uint8 HWC pixels (the ONNX graph
        normalises); False when it wants :func:`core.data.preprocess` output (PyTorch)."""
        return self._session is not None

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """One RGB crop as this predictor's model input (see :attr:`takes_uint8`)."""
        ck = self.checkpoint
        if self.takes_uint8:
            return resize_for_model(rgb, ck.input_size)
        return preprocess(rgb, ck.input_size, ck.mean, ck.std)

    def probabilities(self, batch: np.ndarray) -> Reading:
        """The :class:`core.models.Reading` (numpy arrays: softmax ``(B, 1, n_provinces)``,
        ``(B, 6, n_others)``, shown and label read; zoomed flags ``(B,)``) of a batch of
        :meth:`prepare` outputs."""
        if self._session is not None:
            outs = self._session.run(None, {"pixels": batch})
            if len(outs) == len(Reading._fields):
                return Reading(*outs)
            zeros = np.zeros(len(batch), np.float32)
            return Reading(*outs, *outs, zeros, zeros)
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device.type == "cuda"):
            reading = read_crops(self._model, x, self.views, self.checkpoint.mean, self.checkpoint.std)
        return Reading(*(a.cpu().numpy() for a in reading))

    def apply_grammar(self, tail: np.ndarray) -> np.ndarray:
        """The tail head's probabilities with the plate grammar applied (:func:`core.decode.apply_grammar`)."""
        return apply_grammar(tail, self.checkpoint.others)

    def check_outputs(self, reading: Reading, first_file: str | os.PathLike) -> None:
        """Check that :meth:`probabilities` returned probabilities: the expected shapes, finite,
        within [0, 1], for the shown and the label read, and zoomed and negative flags of 0 or 1. A broken or
        hostile checkpoint (weights that overflow, an absurd normalisation) makes NaN or infinity,
        which must never reach a record or a paint event.

        Raises:
            ModelOutputError: naming the model file and ``first_file`` (the batch's first file).
        """
        ck = self.checkpoint
        n = len(reading.first)
        want = ((n, 1, len(ck.provinces)), (n, 6, len(ck.others)))
        problem = None
        for first, tail in ((reading.first, reading.tail), (reading.label_first, reading.label_tail)):
            if (first.shape, tail.shape) != want:
                problem = f"outputs of shapes {first.shape} and {tail.shape}, not {want[0]} and {want[1]}"
            elif bad := sum(int((~np.isfinite(a)).sum()) for a in (first, tail)):
                problem = f"{bad:,} non-finite probabilities (NaN or infinity)"
            elif min(float(first.min()), float(tail.min())) < 0 or max(float(first.max()), float(tail.max())) > 1.001:
                problem = "probabilities outside [0, 1]"
            if problem:
                break
        for name in ("zoomed", "negative"):
            z = np.asarray(getattr(reading, name))
            if not problem and (z.shape != (n,) or not np.isin(z, (0.0, 1.0)).all()):
                problem = f"{name} flags of shape {z.shape} that are not all 0 or 1, not ({n},)"
        if problem:
            raise ModelOutputError(
                f"{self.model_path}: the model gave {problem} on the batch starting with {first_file} "
                "(a broken or incompatible model file)"
            )

    kind = "plates"
    trainable = True

    def dataset(self, samples: Sequence[Sample]) -> InferenceDataset:
        """Decoding and this model's preprocessing of the samples (for :func:`predict_samples`)."""
        ck = self.checkpoint
        return InferenceDataset([s.file for s in samples], ck.input_size, ck.mean, ck.std, uint8=self.takes_uint8,
                                errors=[s.error for s in samples])  # fmt: skip

    def read(
        self, xs: np.ndarray, samples: Sequence[Sample], hashes: Sequence[int | None] | None = None
    ) -> list[PredictionResult]:
        """The records of a batch of prepared crops (:meth:`dataset` items)."""
        return results_from_outputs(self, samples, self.probabilities(xs), hashes)

    def decode(self, first: np.ndarray, tail: np.ndarray) -> list[tuple[str, list[float], str, list[float]]]:
        """Top-2 characters and probabilities per position (:func:`core.decode.top2`); ``tail``
        from :meth:`apply_grammar`."""
        return top2(first, tail, self.checkpoint.provinces, self.checkpoint.others)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_result(
    sample: Sample,
    decoded: tuple[str, list[float], str, list[float]] | None,
    error: str | None,
    label_probs: list[float] | None = None,
) -> PredictionResult:
    """Build the :class:`PredictionResult` of one sample from its decoded output or read error.

    Args:
        sample: The sample.
        decoded: One item of :meth:`Predictor.decode`.
        error: Why the image could not be read (then ``decoded`` is ``None``).
        label_probs: The model's probabilities of the label's characters
            (:func:`core.label_score.label_char_probs`), ``None`` when the label is invalid.
    """
    r = PredictionResult(rel=sample.rel, label=sample.label, label_error=sample.parsed.error)
    if error is not None:
        r.error = error
        return r
    assert decoded is not None
    pred, probs, runner, rprobs = decoded
    r.prediction, r.probs, r.runner_up, r.runner_up_probs = pred, probs, runner, rprobs
    r.confidence = float(np.prod(probs))
    if sample.label:
        r.cer = char_error_rate(pred, sample.label)
        r.correct = pred == sample.label
    if label_probs is not None:
        r.label_probs = label_probs
        r.label_score = label_score(label_probs)[0]
    return r


def results_from_outputs(
    predictor: Predictor,
    samples: Sequence[Sample],
    reading: Reading,
    hashes: Sequence[int | None] | None = None,
) -> list[PredictionResult]:
    """The records of a batch of samples from the model's raw outputs (the one place they are made):
    the prediction from the shown read, the label score from the label read
    (:func:`core.models.read_crops` says which and why).

    ``hashes``: the crops' perceptual hashes (:func:`core.duplicates.image_hash`), if taken.

    Raises:
        ModelOutputError: the outputs are not probabilities (:meth:`Predictor.check_outputs`).
    """
    if len(samples):
        predictor.check_outputs(reading, samples[0].file)
    first, tail = reading.first, predictor.apply_grammar(reading.tail)
    label_first = reading.label_first
    label_tail = tail if reading.label_tail is reading.tail else predictor.apply_grammar(reading.label_tail)
    ck = predictor.checkpoint
    out = []
    for b, (s, dec) in enumerate(zip(samples, predictor.decode(first, tail))):
        lp = label_char_probs(s.label, label_first[b], label_tail[b], ck.provinces, ck.others) if s.valid else None
        r = make_result(s, dec, None, lp)
        r.zoomed, r.negative = bool(reading.zoomed[b]), bool(reading.negative[b])
        if hashes is not None:
            r.image_hash = hashes[b]
        out.append(r)
    return out


def export_for_deployment(model_path: str | os.PathLike, out: str | os.PathLike, n_check: int = 16,
                          seed: int = 0, views: bool = True) -> float:  # fmt: skip
    """Export a checkpoint to ONNX for deployment and check it against PyTorch.

    The graph is the app's own (uint8 RGB pixels ``(B, H, W, 3)`` resized to the checkpoint's
    input size in, softmax probabilities of the province and of the six other positions out;
    the normalisation and, with ``views``, the shifted, zoomed and negative views,
    :func:`core.models.read_crops`, are inside, six outputs). ``n_check`` random images go through both (half
    of them yellowish, so that the negative's part of the graph is checked too); the export is refused when
    their probabilities differ by more than 1e-4.

    Returns:
        The largest absolute difference seen.

    Raises:
        CheckpointError: the checkpoint cannot be read, or the export does not match PyTorch.
    """
    import onnxruntime as ort

    model_path, out = Path(model_path), Path(out)
    if out.exists() and out.resolve() == model_path.resolve():
        raise WriteError(f"{out}: the output must not be the checkpoint itself", out)
    ckpt = load_checkpoint(model_path)
    h, w = ckpt.input_size
    pixels = np.random.default_rng(seed).integers(0, 256, (n_check, h, w, 3), dtype=np.uint8)
    pixels[n_check // 2 :, ..., 2] //= 4  # light plates with dark characters (core.models.light_plates)
    with torch.inference_mode():
        want = _ExportModule(ckpt.build(), ckpt.mean, ckpt.std, views).eval()(torch.from_numpy(pixels))
    diff = math.inf

    def check(data: bytes) -> None:
        nonlocal diff
        so = ort.SessionOptions()
        so.log_severity_level = 3
        got = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, {"pixels": pixels})
        diff = max(float(np.abs(g - t.numpy()).max()) for g, t in zip(got, want))
        if not diff <= 1e-4:
            raise CheckpointError(f"{model_path}: the ONNX export differs from PyTorch by {diff:.2e}; not written")

    export_onnx(ckpt, out, file_sha256(model_path), views, check=check)
    return diff


def _is_deployment_export(path: Path) -> bool:
    """Whether ``path`` is an ONNX file :func:`export_for_deployment` wrote (it names its checkpoint)."""
    try:
        return path.stat().st_size <= 2 * MAX_CHECKPOINT_BYTES and onnx_checkpoint_sha(path.read_bytes()) is not None
    except Exception:  # unreadable, or not ONNX: the CTC reader says why
        return False


def open_reader(
    model_path: str | os.PathLike | None = None,
    device: str = "auto",
    backend: str = "auto",
    threads: int | None = None,
    dict_path: str | os.PathLike | None = None,
    views: bool = True,
):
    """The reader for a model file: a PaddleOCR-style CTC recognizer for ``.onnx`` (with its
    dictionary, ``core.ctc.CTCReader``), else a :class:`Predictor` (checkpoints, the notebook's files)
    reading each crop with its shifted views unless ``views`` is False (CTC readers read the crop alone).

    Raises:
        CheckpointError: the file cannot be used; the message names it and what was expected.
    """
    if model_path is not None and Path(model_path).suffix.lower() == ".onnx":
        from .ctc import CTCReader

        if device not in ("auto", "cpu"):
            raise CheckpointError(f"{model_path}: CTC recognizers run on the CPU (onnxruntime), not on {device}")
        if _is_deployment_export(Path(model_path)):
            raise CheckpointError(f"{model_path}: a deployment export of a Plate Review checkpoint (export-model); "
                                  "open the checkpoint (.pt) it was made from")  # fmt: skip
        return CTCReader(model_path, dict_path, threads)
    if dict_path is not None:
        raise CheckpointError(f"{model_path or 'the bundled model'}: --dict is for CTC recognizers (.onnx) only")
    return Predictor(model_path, device=device, backend=backend, threads=threads, views=views)


def default_workers(predictor: Predictor, n: int) -> int:
    """DataLoader processes for decoding: only cores the model leaves free, and only for big folders.

    Decoding and preprocessing a 94x24 crop costs ~0.1-0.2 ms against ~1.5 ms of LSTM
    inference on 2 CPU threads. Measured on 2 cores (docs/BENCHMARKS.md): decoding in this
    thread between model calls reaches 86 % of the model-only speed; a worker process
    halves it (seconds to start, it imports torch, and it competes for the model's cores),
    and a prefetch thread was ~10 % slower than in-turn decoding (GIL and core contention).
    So decoding overlaps inference only where the model leaves cores free.
    """
    cores = os.cpu_count() or 1
    spare = cores - (predictor.threads if predictor.device.type == "cpu" else 1)
    if spare < 1 or n < 2000:
        return 0
    return min(4, spare)


def predict_samples(
    samples: Sequence[Sample],
    predictor: Predictor,
    batch_size: int = 128,
    workers: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_batch: Callable[[list[PredictionResult]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[PredictionResult]:
    """Run the model over samples; unreadable files become results with ``error`` set.

    Args:
        samples: From :func:`core.data.scan_folder` (or a subset).
        predictor: A loaded :class:`Predictor`.
        batch_size: Images per model call.
        workers: DataLoader processes decoding and resizing (default: :func:`default_workers`;
            0 = in this thread, between model calls).
        progress: Called after every batch.
        on_batch: Called with each batch's results as soon as they exist (live tables).
        should_stop: Polled between batches; when True, returns what is done so far.

    Returns:
        Results in the order of ``samples`` (only those done, if stopped).
    """
    n = len(samples)
    if n == 0:
        return []
    ds = predictor.dataset(samples)
    if workers is None:
        workers = default_workers(predictor, n)
    workers = min(workers, max(0, (n + batch_size - 1) // batch_size))
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_inference,
        prefetch_factor=4 if workers else None,
        pin_memory=predictor.device.type == "cuda",
        # fork would copy a torch/ORT thread pool mid-use; a forkserver (spawn on Windows) is safe
        multiprocessing_context=worker_start_method(thread_safe_start_method()) if workers else None,
        persistent_workers=False,
    )
    results: list[PredictionResult | None] = [None] * n
    done = 0
    t0 = time.perf_counter()
    for idx, xs, errors, hashes in loader:
        if should_stop and should_stop():
            break
        batch_results = []
        if len(idx):
            batch = predictor.read(xs, [samples[i] for i in idx], hashes)
            for i, r in zip(idx, batch):
                results[i] = r
                batch_results.append(r)
        for i, err in errors:
            results[i] = make_result(samples[i], None, err)
            batch_results.append(results[i])
        done += len(idx) + len(errors)
        if on_batch:
            on_batch(batch_results)
        if progress:
            el = time.perf_counter() - t0
            ips = done / max(el, 1e-9)
            progress(Progress(done, n, ips, (n - done) / max(ips, 1e-9), "predicting"))
    return [r for r in results if r is not None]


def predict_paths(
    paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None, **kwargs: Any
) -> list[PredictionResult]:
    """Convenience: predict arbitrary files (labels parsed from their names)."""
    root_p = Path(root) if root else None
    samples = []
    for p in map(Path, paths):
        rel = p.relative_to(root_p).as_posix() if root_p else p.name
        samples.append(Sample(str(p), rel, plates.parse_name(p.name)))
    predictor = kwargs.pop("predictor", None) or Predictor(kwargs.pop("model_path", None))
    return predict_samples(samples, predictor, **kwargs)


__all__ = [
    "CheckpointError",
    "ModelOutputError",
    "PredictionResult",
    "Predictor",
    "Progress",
    "StopFlag",
    "default_model_path",
    "predict_samples",
]
