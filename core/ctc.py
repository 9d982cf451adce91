"""PaddleOCR-style CTC recognizers as readers: an ONNX model and its character dictionary.

Most Chinese plate-OCR models are of this kind (a CRNN with CTC output, exported to ONNX,
with a ``*_dict.txt`` listing one character per line; class 0 is the CTC blank). A
:class:`CTCReader` reads plates with one the way PaddleOCR runs it (BGR, height 32, width from
the aspect ratio, pixels scaled to [-1, 1], right-padded to 320) and gives the app's one
prediction record: the best path's text and per-character probabilities, and the label score
from the CTC likelihood of the label as written (the forward algorithm, as
``torch.nn.functional.ctc_loss`` computes it): the probability the reader gives to the whole
plate as the file name spells it.

Training stays with the app's own architectures: a CTC reader predicts and scores only.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from .data import InferenceDataset
from .dataset import Sample
from .models import MAX_CHECKPOINT_BYTES, CheckpointError
from .records import PredictionResult

#: PaddleOCR's recognizer input: height 32, right-padded to at least this width.
CTC_HEIGHT, CTC_MIN_WIDTH = 32, 320


def find_dictionary(model_path: Path) -> Path | None:
    """The character dictionary beside a model: ``<stem>.txt``, ``<stem>_dict.txt`` or the one ``*dict*.txt``."""
    for cand in (model_path.with_suffix(".txt"), model_path.with_name(model_path.stem + "_dict.txt")):
        if cand.is_file():
            return cand
    found = sorted(p for p in model_path.parent.glob("*dict*.txt") if p.is_file())
    return found[0] if len(found) == 1 else None


def ctc_prepare(rgb: np.ndarray, width: int = CTC_MIN_WIDTH) -> np.ndarray:
    """PaddleOCR's ``resize_norm_img``: BGR, height 32 keeping the ratio (at most ``width``), [-1, 1], right-padded."""
    h, w = rgb.shape[:2]
    rw = max(1, min(width, int(math.ceil(CTC_HEIGHT * w / h))))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    x = cv2.resize(bgr, (rw, CTC_HEIGHT)).astype(np.float32).transpose(2, 0, 1) * (2.0 / 255.0) - 1.0
    out = np.zeros((3, CTC_HEIGHT, width), np.float32)
    out[:, :, :rw] = x
    return out


class CTCReader:
    """A PaddleOCR-style CTC recognizer (ONNX) with its dictionary, on onnxruntime's CPU provider.

    The same interface as :class:`core.predict.Predictor` where :func:`core.predict.predict_samples`
    and the store use it (``model_hash``, ``description``, ``dataset``, ``read``).

    Args:
        model_path: The ``.onnx`` file.
        dict_path: Its character dictionary (one character per line); ``None``: found beside it.
        threads: CPU threads for onnxruntime (default: torch's setting).

    Raises:
        CheckpointError: a missing, too large or damaged file, no dictionary, or a dictionary
            that does not fit the model; the message names the file and what was expected.
    """

    kind = "ctc"
    trainable = False

    def __init__(self, model_path: str | os.PathLike, dict_path: str | os.PathLike | None = None,
                 threads: int | None = None):  # fmt: skip
        import onnxruntime as ort

        self.model_path = Path(model_path)
        data = _read(self.model_path, "model")
        found = Path(dict_path) if dict_path else find_dictionary(self.model_path)
        if found is None:
            raise CheckpointError(
                f"{self.model_path}: a CTC recognizer needs its character dictionary (one character per line): "
                "give it with --dict FILE, or put it beside the model as <name>.txt"
            )
        self.dict_path = found
        raw = _read(found, "dictionary")
        try:
            lines = raw.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise CheckpointError(f"{found}: the dictionary is not UTF-8 text") from None
        self.chars = ["<blank>", *(ln.rstrip("\r\n") for ln in lines)]
        self.model_hash = _identity(data, raw)
        self.threads = threads or torch.get_num_threads()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
            probe = self._session.run(None, {self._input: np.zeros((1, 3, CTC_HEIGHT, CTC_MIN_WIDTH), np.float32)})[0]
        except Exception as e:  # onnxruntime raises its own types for damaged graphs
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{self.model_path}: not a recognizer onnxruntime can run ({first[:200]})") from None
        if probe.ndim != 3:
            raise CheckpointError(f"{self.model_path}: outputs of shape {probe.shape}, not (batch, time, classes)")
        n = probe.shape[-1]
        if n == len(self.chars) + 1:  # PaddleOCR's use_space_char adds a space as the last class
            self.chars.append(" ")
        if n != len(self.chars):
            raise CheckpointError(
                f"{found}: the dictionary has {len(self.chars) - 1} characters but {self.model_path.name} has "
                f"{n} classes (blank + {n - 1}): not this model's dictionary"
            )
        self._index = {c: i for i, c in enumerate(self.chars) if i}
        self.device = torch.device("cpu")
        self.checkpoint = None  # not trainable: see module docstring

    @property
    def description(self) -> str:
        return f"{self.model_path.name} (CTC, {len(self.chars) - 1} characters) on CPU ({self.threads} threads), onnxruntime"

    def dataset(self, samples: Sequence[Sample]) -> InferenceDataset:
        """Decoding and PaddleOCR's preprocessing of the samples (picklable, for DataLoader workers)."""
        return InferenceDataset([s.file for s in samples], errors=[s.error for s in samples],
                                prepare=functools.partial(ctc_prepare, width=CTC_MIN_WIDTH))  # fmt: skip

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Per-frame class probabilities ``(B, T, C)`` of a batch of :func:`ctc_prepare` outputs."""
        probs = self._session.run(None, {self._input: batch})[0].astype(np.float32)
        if not np.isfinite(probs).all():
            raise CheckpointError(f"{self.model_path}: the recognizer gave non-finite outputs")
        sums = probs.sum(-1)
        if not np.allclose(sums, 1.0, atol=1e-3):  # logits: make them probabilities
            probs = torch.from_numpy(probs).softmax(-1).numpy()
        return probs

    def read(self, xs: np.ndarray, samples: Sequence[Sample], hashes: Sequence[int | None] | None = None
             ) -> list[PredictionResult]:  # fmt: skip
        """The records of a batch: best path, its characters' probabilities, the label's CTC likelihood."""
        probs = self.probabilities(xs)
        scores = self.label_scores(probs, [s.label if s.valid else "" for s in samples])
        out = []
        for b, s in enumerate(samples):
            text, char_p = self.best_path(probs[b])
            r = PredictionResult(rel=s.rel, label=s.label, label_error=s.parsed.error, prediction=text, probs=char_p,
                                 confidence=float(np.prod(char_p)) if char_p else 0.0, label_score=scores[b])  # fmt: skip
            if s.label:
                from .metrics import cer

                r.cer = cer(text, s.label)
                r.correct = text == s.label
            if hashes is not None:
                r.image_hash = hashes[b]
            out.append(r)
        return out

    def best_path(self, probs: np.ndarray) -> tuple[str, list[float]]:
        """Greedy CTC decoding of one sample ``(T, C)``: the text and each character's probability
        (the highest over the frames of its run)."""
        runs = best_path_runs(probs)
        text = "".join(self.chars[k] for k, _, _ in runs)
        return text, [float(probs[t0:t1, k].max()) for k, t0, t1 in runs]

    def label_scores(self, probs: np.ndarray, labels: Sequence[str]) -> list[float | None]:
        """``p(label | crop)`` under CTC (all alignments), per sample; ``None`` for an empty label or a
        character the dictionary does not have."""
        out: list[float | None] = [None] * len(labels)
        rows = [b for b, lab in enumerate(labels) if lab and all(c in self._index for c in lab)]
        if not rows:
            return out
        log_p = torch.from_numpy(np.log(np.clip(probs[rows], 1e-30, 1.0))).transpose(0, 1)  # (T, B, C)
        targets = torch.tensor([self._index[c] for b in rows for c in labels[b]], dtype=torch.long)
        t_len = torch.full((len(rows),), log_p.shape[0], dtype=torch.long)
        l_len = torch.tensor([len(labels[b]) for b in rows], dtype=torch.long)
        nll = torch.nn.functional.ctc_loss(log_p, targets, t_len, l_len, blank=0, reduction="none", zero_infinity=False)
        for b, v in zip(rows, nll.tolist()):
            out[b] = float(math.exp(-v)) if math.isfinite(v) else 0.0
        return out


def best_path_runs(probs: np.ndarray) -> list[tuple[int, int, int]]:
    """The characters of one sample's greedy CTC path ``(T, C)``: ``(class, first frame, last
    frame + 1)`` for each run of the same non-blank class (class 0 is the blank)."""
    runs: list[tuple[int, int, int]] = []
    prev = 0
    for t, k in enumerate(probs.argmax(-1).tolist()):
        if k and k == prev:
            runs[-1] = (k, runs[-1][1], t + 1)
        elif k:
            runs.append((k, t, t + 1))
        prev = k
    return runs


def _identity(model: bytes, dictionary: bytes) -> str:
    """The reader's identity for the prediction cache: the model and its dictionary together."""
    return hashlib.sha256(hashlib.sha256(model).digest() + dictionary).hexdigest()


def reader_identity(model_path: str | os.PathLike, dict_path: str | os.PathLike | None = None) -> str:
    """:attr:`CTCReader.model_hash` of a model and its dictionary without loading the model ("" when
    the files cannot be read: the reader itself will say why)."""
    model_path = Path(model_path)
    found = Path(dict_path) if dict_path else find_dictionary(model_path)
    try:
        return _identity(_read(model_path, "model"), _read(found, "dictionary")) if found else ""
    except CheckpointError:
        return ""


def _read(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"{path}: {what} file too large ({size / 2**20:,.1f} MiB)")
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder, not a {what} file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what} file ({e.strerror or e})") from None
