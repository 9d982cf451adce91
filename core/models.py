"""The notebook's two recognizers as plain ``nn.Module``s, chosen by name, and checkpoints.

Both read a 3x64x224 normalised crop, reduce it with four conv blocks to a
256 x 1 x 7 feature map (one column per plate character) and classify column 0
over the 31 provinces and columns 1..6 over the 35 letters/digits.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import struct
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import plates
from .files import write_bytes

CHECKPOINT_FORMAT = "plate-review-checkpoint"
CHECKPOINT_VERSION = 1
INPUT_SIZE = (64, 224)  # (height, width): plate ratio ~2:7, one 32-px cell per character
MEAN = (0.485, 0.456, 0.406)  # albumentations.Normalize defaults (ImageNet)
STD = (0.229, 0.224, 0.225)

# Limits on a checkpoint file, checked before torch.load: every model file a user is handed is
# untrusted input, and a zip that claims gigabytes, or a pickle that builds millions of objects,
# must be refused with a message instead of taking the machine's memory.
MAX_CHECKPOINT_BYTES = 200 * 1024**2
"""Largest checkpoint file read (200 MiB). The bundled model is ~5 MB, the largest allowed
configuration (:data:`MAX_HIDDEN`) ~150 MB."""
MAX_CHECKPOINT_UNPACKED_BYTES = 1024**3
"""Largest total uncompressed size of a checkpoint's zip members (1 GiB), read from its central
directory before anything is unpacked: ``torch.load`` allocates each member at its stated size."""
MAX_CHECKPOINT_ENTRIES = 10_000
"""Most members in a checkpoint's zip (a model has one per tensor: ~50). Also bounds the central
directory to ``MAX_CHECKPOINT_ENTRIES`` KiB, so that reading it cannot take much memory either."""
MAX_CHECKPOINT_PICKLE_BYTES = 4 * 1024**2
"""Largest pickle (``data.pkl``) in a checkpoint (4 MiB; a model's is ~20 KB): unpickling builds
Python objects at up to ~40 bytes of memory per byte of pickle."""
MAX_HIDDEN = 1024
"""Largest LSTM hidden size a checkpoint may ask for (the models use 128): the model is built
at that size before its weights are checked, ~36M parameters at 1024."""
MAX_INPUT_SIDE = 1024
"""Largest input height or width a checkpoint may ask for (the models read 64 x 224)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a recognizer.

    Attributes:
        arch: ``"lstm"`` (CNN + 2-layer BiLSTM, the notebook's best), ``"simple"`` (CNN only) or
            ``"lstm-fast"`` (the LSTM model with a strided backbone: same size, ~5x less compute).
        dropout: Dropout2d probability in the conv blocks and between LSTM layers.
        hidden: LSTM hidden size per direction (the heads see ``2 * hidden`` features).
    """

    arch: str = "lstm"
    dropout: float = 0.2
    hidden: int = 128


def _conv_block(cin: int, cout: int, stride: Any, dropout: float, bn: bool = True, pool: Any = 2) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, stride=stride)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.MaxPool2d(pool, pool))
    return layers


def _backbone(dropout: float, strided: bool = False) -> nn.Sequential:
    """The notebook's four conv blocks: 3 -> 32 -> 64 -> 128 -> 256 channels, 1 x 7 columns out.

    Notebook layout: 64x224 -> 32x112 -> 8x56 (stride (2,1)) -> 4x28 -> 1x7 (stride 2); the
    last block has no BatchNorm or dropout. ``strided`` moves the work to lower resolution
    with the same layers and weights shapes: the first conv has stride 2 and the last one
    stride (2,1) followed by a (1,2) pool (64x224 -> 16x56 -> 4x28 -> 2x14 -> 1x7), about a
    fifth of the multiply-adds. Plate crops are ~94x24 px, so nothing the camera saw is lost.
    """
    if strided:
        return nn.Sequential(
            *_conv_block(3, 32, 2, dropout),
            *_conv_block(32, 64, (2, 1), dropout),
            *_conv_block(64, 128, 1, dropout),
            *_conv_block(128, 256, (2, 1), 0.0, bn=False, pool=(1, 2)),
        )
    return nn.Sequential(
        *_conv_block(3, 32, 1, dropout),
        *_conv_block(32, 64, (2, 1), dropout),
        *_conv_block(64, 128, 1, dropout),
        *_conv_block(128, 256, 2, 0.0, bn=False),
    )


class SimpleNumbersOCR(nn.Module):
    """The notebook's CNN: conv features per character column, two linear heads (~405k params)."""

    strided = False  # see _backbone

    def __init__(self, dropout: float = 0.2, n_provinces: int = 31, n_others: int = 35, **_: Any):
        super().__init__()
        self.cnn = _backbone(dropout, self.strided)
        self.province_head = nn.Linear(256, n_provinces)
        self.other_head = nn.Linear(256, n_others)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 256, 1, 7) -> (B, 7, 256)
        return self.cnn(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits ``(B, 1, n_provinces)`` for position 0 and ``(B, 6, n_others)`` for 1..6."""
        f = self.features(x)
        return self.province_head(f[:, :1]), self.other_head(f[:, 1:])


class LSTMNumbersOCR(SimpleNumbersOCR):
    """The notebook's CNN + 2-layer bidirectional LSTM (256 -> 2x128), ~1.2M params."""

    def __init__(self, dropout: float = 0.2, hidden: int = 128, n_provinces: int = 31, n_others: int = 35, **_: Any):
        super().__init__(dropout, n_provinces, n_others)
        self.lstm = nn.LSTM(256, hidden, num_layers=2, batch_first=True, dropout=dropout, bidirectional=True)
        self.province_head = nn.Linear(2 * hidden, n_provinces)
        self.other_head = nn.Linear(2 * hidden, n_others)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, _ = self.lstm(self.features(x))
        return self.province_head(f[:, :1]), self.other_head(f[:, 1:])


class FastLSTMNumbersOCR(LSTMNumbersOCR):
    """:class:`LSTMNumbersOCR` with the strided backbone: same parameters, ~1/5 of the compute."""

    strided = True


ARCHITECTURES: dict[str, type[SimpleNumbersOCR]] = {
    "simple": SimpleNumbersOCR,
    "lstm": LSTMNumbersOCR,
    "lstm-fast": FastLSTMNumbersOCR,
}


def build_model(config: ModelConfig, provinces: str = plates.PROVINCES, others: str = plates.OTHERS) -> nn.Module:
    """Instantiate an architecture by name.

    Raises:
        ValueError: unknown architecture name.
    """
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.arch](
        dropout=config.dropout, hidden=config.hidden, n_provinces=len(provinces), n_others=len(others)
    )


VIEW_SHIFT = 0.02
"""Test-time views (:func:`read_crops`): besides the crop itself, the model reads it
shifted by this share of the input's width to the right and to the left (4 px of 224), its edge
columns repeated. Averaging the three views' probabilities reads 0.5-3 points more synthetic
plates right than the crop alone (docs/MODEL.md, "Model", the Reading entry)."""


def shifted_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch ``(B, C, H, W)``, the batch shifted right, and shifted left, by :data:`VIEW_SHIFT`
    of its width, the edge columns repeated (no black borders)."""
    w = int(x.shape[-1])  # a constant in an ONNX export: the input width is fixed
    s = max(1, round(VIEW_SHIFT * w))
    right = nn.functional.pad(x, (s, 0, 0, 0), mode="replicate")[..., :w]
    left = nn.functional.pad(x, (0, s, 0, 0), mode="replicate")[..., s:]
    return x, right, left


ZOOM_WINDOWS = (
    (0.08, 0.08, 0.08, 0.08),
    (0.16, 0.16, 0.16, 0.16),
    (0.16, 0.16, 0.32, 0.0),
    (0.16, 0.16, 0.0, 0.32),
)
"""Zoomed views (:func:`read_crops`): the crop is read again cut to each of these windows and resized
back, the plate larger in the frame. Each is ``(top, bottom, left, right)``, the share of the input's
height cut off that side (0.08 of 64 = 5 px): two centred zooms, then the second off-centre to either
side, for plates that do not sit in the middle of a loose crop. Crops from other
cameras are looser than the tight crops the model trained on, and a loose crop reads better zoomed."""

ZOOM_MARGIN = 0.1
"""A zoomed read replaces the crop's own only when its confidence (the product of the 7 characters'
top probabilities) is higher by this much: on tight crops the crop's own read stays. Chosen on the dev
synthetic sets and the validation crops framed as other cameras frame them (docs/MODEL.md)."""

ZOOM_FLOOR = 1e-3
"""No zoom where the crop's own confidence is below this: the model cannot read the crop at all (random
noise reads at 4e-4, median), and reading it 12 more times would only cost time. Loose yellow crops the
zoom reads right sit at 1e-3..1e-2, so the floor stays below them (docs/MODEL.md)."""


READING_FORMAT = 3
"""Bumped when :func:`read_crops` computes its reads in another way (2: the label read is the mean of the
crop's reads where it is read zoomed; 3: light plates are also read as their negative), so that stores and
exports of the earlier reading are not served."""


READING_SUMMARY = "3 views, zoomed where unsure, light plates also as negatives"
"""The reading with views (:func:`read_crops`) in a few words, for descriptions and benchmark headers."""


def views_fingerprint() -> str:
    """8 hex digits that change with the reading's settings (:data:`VIEW_SHIFT`, :data:`ZOOM_WINDOWS`,
    :data:`ZOOM_MARGIN`, :data:`ZOOM_FLOOR`, :data:`READING_FORMAT`): part of the store's and the ONNX
    cache's key for a reading with views."""
    settings = (VIEW_SHIFT, ZOOM_WINDOWS, ZOOM_MARGIN, ZOOM_FLOOR, READING_FORMAT)
    settings += (LIGHT_PLATE, LIGHT_PLATE_WINDOW, NEGATIVE_COLOURS)
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:8]


def zoomed(x: torch.Tensor, window: tuple[float, float, float, float]) -> torch.Tensor:
    """A batch ``(B, C, H, W)`` cut to ``window`` (:data:`ZOOM_WINDOWS`) and resized back to ``H x W``."""
    h, w = int(x.shape[-2]), int(x.shape[-1])  # constants in an ONNX export: the input size is fixed
    top, bottom, left, right = (round(f * h) for f in window)
    if not (top or bottom or left or right):
        return x
    cut = x[..., top : h - bottom, left : w - right]
    return nn.functional.interpolate(cut, size=(h, w), mode="bilinear", align_corners=False)


def _shifted_mean(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    reads = [model(v) for v in shifted_views(x)]
    return tuple(torch.stack([r[i].float().softmax(-1) for r in reads]).mean(0) for i in (0, 1))


def read_confidence(first: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    """``(B,)`` product of the 7 positions' top probabilities (before the grammar)."""
    return first[:, 0].max(-1).values * tail.max(-1).values.prod(-1)


class Reading(NamedTuple):
    """What the app reads of a batch (:func:`read_crops`): softmax probabilities ``(B, 1, n_provinces)``
    and ``(B, 6, n_others)`` of the read it shows (``first``, ``tail``) and of the read the review order
    scores labels with (``label_first``, ``label_tail``), ``zoomed`` ``(B,)``: 1.0 where the shown
    read is of the crop zoomed in, 0.0 where it is of the crop as framed, and ``negative`` ``(B,)``: 1.0
    where the reading is of the crop's negative (a light plate with dark characters, :func:`as_negative`)."""

    first: Any
    tail: Any
    label_first: Any
    label_tail: Any
    zoomed: Any
    negative: Any


LIGHT_PLATE = 20.0
"""A light plate with dark characters (a single-row yellow plate: black on yellow) is a crop more than half
of whose central window's pixels (:data:`LIGHT_PLATE_WINDOW`) have (R + G) / 2 - B above this (pixel values
0-255): :func:`light_plates`. Chosen where the medians of blue and yellow plates meet: blue plates reach 18.5
(the training crops, tight or framed as other cameras frame them; synthetic blue plates -5), yellow ones
start at 17 (those crops recomposed as yellow plates; synthetic yellow plates 26.5). A blue crop taken for a
light plate costs only time: its negative's reading is kept only where surer (docs/MODEL.md)."""

LIGHT_PLATE_WINDOW = (0.25, 0.25, 0.15, 0.15)
"""The central window :data:`LIGHT_PLATE` looks at, as ``(top, bottom, left, right)`` shares cut off."""

NEGATIVE_COLOURS = ((30.0, 70.0, 138.0), (169.0, 200.0, 227.0))
"""The background and character colours (RGB 0-255) of a crop read as its negative: the median
background and character colours of the 390 training crops (white on blue)."""


def _percentiles(values: torch.Tensor, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per row of ``(B, N)``, each percentile in ``qs`` (0-100), linearly interpolated as
    ``numpy.percentile``'s default: the two values either side from a partial sort (``topk``, which
    exports to ONNX), of the smallest values below the median, of the largest above it."""
    n = int(values.shape[1])
    out = []
    for q in qs:
        pos = q / 100 * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        if lo < n // 2:  # ascending: the lo-th and hi-th smallest
            part = values.topk(hi + 1, dim=1, largest=False).values
            a, b = part[:, lo], part[:, hi]
        else:  # descending: the same two counted from the largest
            part = values.topk(n - lo, dim=1).values
            a, b = part[:, n - 1 - lo], part[:, n - 1 - hi]
        out.append(a + (b - a) * (pos - lo))
    return out


def _pixel_terms(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(m, s)`` such that ``x * s + m`` are the pixels (0-255) of a batch ``x`` normalised with ``mean`` and
    ``std`` (:func:`core.data.preprocess`), and ``(pixels - m) / s`` normalises them again."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None] * 255.0
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None] * 255.0
    return m, s


def light_plates(x: torch.Tensor, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> torch.Tensor:
    """``(B,)`` bool: the crops of a batch ``(B, 3, H, W)`` normalised with ``mean`` and ``std`` that are
    light plates with dark characters (:data:`LIGHT_PLATE`); only the central window is un-normalised."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    top, bottom, left, right = LIGHT_PLATE_WINDOW
    m, s = _pixel_terms(x, mean, std)
    win = x[..., round(top * h) : h - round(bottom * h), round(left * w) : w - round(right * w)] * s + m
    yellowness = 0.5 * (win[:, 0] + win[:, 1]) - win[:, 2]
    return (yellowness > LIGHT_PLATE).float().mean((1, 2)) > 0.5


def as_negative(pixels: torch.Tensor) -> torch.Tensor:
    """A batch of RGB pixels ``(B, 3, H, W)``, 0-255, as white characters on blue: each crop's
    (R + G) / 2, stretched from its 10th to its 97th percentile and inverted, blends
    :data:`NEGATIVE_COLOURS`' background into their characters' colour. A light plate with dark
    characters then looks like the white-on-blue crops the model learnt the plate font from."""
    white = 0.5 * (pixels[:, 0] + pixels[:, 1])
    lo, hi = _percentiles(white.flatten(1), (10.0, 97.0))
    span = (hi - lo).clamp(min=1.0)
    ink = 1.0 - ((white - lo[:, None, None]) / span[:, None, None]).clamp(0.0, 1.0)
    bg, fg = (torch.tensor(c, dtype=pixels.dtype, device=pixels.device)[None, :, None, None] for c in NEGATIVE_COLOURS)
    return bg + ink[:, None] * (fg - bg)


def read_crops(
    model: nn.Module,
    x: torch.Tensor,
    views: bool = True,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
) -> Reading:
    """The app's reading of a batch normalised with ``mean`` and ``std``.

    With ``views``: the mean over the crop and its two shifted views (:func:`shifted_views`), the
    crop's own read; then the same for the crop cut to each of :data:`ZOOM_WINDOWS` (:func:`zoomed`),
    which replaces it in the shown read for the images where it is more confident by :data:`ZOOM_MARGIN`
    (not for crops the model cannot read at all: own confidence below :data:`ZOOM_FLOOR`).
    The label read is the mean of the crop's own read and its four zoomed reads where it was read
    zoomed, the own read elsewhere: scored on the confident zoomed read alone, a zoom that reads a
    correctly labelled crop confidently wrong puts it among the likely label errors; on the own read
    alone, a loose crop read right only zoomed does (docs/MODEL.md).
    Light plates with dark characters (:func:`light_plates`) whose own read is unsure (below
    1 - :data:`ZOOM_MARGIN`, where the zoom starts) are also read as their negative (:func:`as_negative`):
    where the negative's own read is more confident, the negative is read from there on, zoom and label
    read included.
    Without ``views``: the crop alone, for every read (training's checkpoint selection).

    Each view is read with one model call, not stacked into one larger batch: the same probabilities,
    in about the working memory of one batch (two where every crop is an unsure light plate)."""
    if not views:
        first, tail = model(x)
        first, tail = first.float().softmax(-1), tail.float().softmax(-1)
        zeros = first.new_zeros(first.shape[0])
        return Reading(first, tail, first, tail, zeros, zeros)
    own_first, own_tail = _shifted_mean(model, x)
    own_conf = read_confidence(own_first, own_tail)
    # Light plates read unsure as they are: their negatives' own read (plus the first crop again, so that the
    # batch is never empty; its read there is dropped). Where surer, the crop is read as its negative from here.
    idx = torch.nonzero(light_plates(x, mean, std) & (own_conf < 1.0 - ZOOM_MARGIN + 1e-3)).flatten()
    n = idx.shape[0]
    some = torch.cat([idx, idx.new_zeros(1)])
    m, s = _pixel_terms(x, mean, std)
    negatives = (as_negative(x.index_select(0, some) * s + m) - m) / s
    neg_first, neg_tail = _shifted_mean(model, negatives)
    take = (read_confidence(neg_first, neg_tail) > own_conf.index_select(0, some))[:n]
    chosen = idx[take]
    own_first, own_tail = own_first.clone(), own_tail.clone()
    own_first[chosen], own_tail[chosen] = neg_first[:n][take], neg_tail[:n][take]
    negative = torch.zeros_like(own_conf)
    negative[chosen] = 1.0
    row = torch.zeros(own_conf.shape, dtype=idx.dtype, device=x.device)
    row[idx] = torch.arange(n, device=x.device)  # each light unsure crop's row in `negatives`

    def crops(rows: torch.Tensor) -> torch.Tensor:  # the input of these crops as they are read: some negatives
        neg = negative.index_select(0, rows).bool()[:, None, None, None]
        return torch.where(neg, negatives.index_select(0, row.index_select(0, rows)), x.index_select(0, rows))

    return _zoom_where_unsure(model, crops, own_first, own_tail)._replace(negative=negative)


def _zoom_where_unsure(model: nn.Module, crops: Callable[[torch.Tensor], torch.Tensor], own_first: torch.Tensor,
                       own_tail: torch.Tensor) -> Reading:  # fmt: skip
    """:func:`read_crops`' zoom, given the crops' own read: the shown read, the label read, the zoomed flags.
    ``crops(rows)`` gives the model input of the crops at those rows (the crop, or its negative)."""
    own_conf = read_confidence(own_first, own_tail)
    # A confidence is at most 1, so a zoomed read can replace the own read only where the own confidence is
    # below 1 - ZOOM_MARGIN (here with 1e-3 to spare for rounding): only those crops are read zoomed (most
    # tight crops are not), and not those the model cannot read at all (below ZOOM_FLOOR); plus the first
    # crop again so that the zoomed batch is never empty; its read there is dropped.
    idx = torch.nonzero((own_conf < 1.0 - ZOOM_MARGIN + 1e-3) & (own_conf >= ZOOM_FLOOR)).flatten()
    n = idx.shape[0]
    some = torch.cat([idx, idx.new_zeros(1)])
    xs, first, tail, best = crops(some), own_first[some], own_tail[some], own_conf[some]
    sum_first, sum_tail, took = first.clone(), tail.clone(), torch.zeros_like(best)
    for window in ZOOM_WINDOWS:
        zf, zt = _shifted_mean(model, zoomed(xs, window))
        sum_first, sum_tail = sum_first + zf, sum_tail + zt
        score = read_confidence(zf, zt) - ZOOM_MARGIN
        take = score > best
        first, tail = torch.where(take[:, None, None], zf, first), torch.where(take[:, None, None], zt, tail)
        best, took = torch.where(take, score, best), torch.where(take, 1.0, took)
    shown_first, shown_tail = own_first.clone(), own_tail.clone()
    shown_first[idx], shown_tail[idx] = first[:n], tail[:n]
    label_first, label_tail = own_first.clone(), own_tail.clone()
    reads = 1 + len(ZOOM_WINDOWS)
    label_first[idx], label_tail[idx] = sum_first[:n] / reads, sum_tail[:n] / reads
    shown_zoomed = torch.zeros_like(own_conf)
    shown_zoomed[idx] = took[:n]
    return Reading(shown_first, shown_tail, label_first, label_tail, shown_zoomed, torch.zeros_like(own_conf))


def read_probabilities(model: nn.Module, x: torch.Tensor, views: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The shown read of :func:`read_crops`: ``(first, tail)``."""
    reading = read_crops(model, x, views)
    return reading.first, reading.tail


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged, too large, or not a sound Plate Review checkpoint;
    ``str(err)`` names the file and the problem."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild and run a model, in one file (nanoGPT's ckpt.pt style).

    Attributes:
        config: Architecture and its hyper-parameters.
        state_dict: Model weights.
        provinces: Class order of the province head.
        others: Class order of the letters/digits head.
        input_size: (height, width) the model reads.
        mean: Per-channel normalisation mean (RGB, 0..1 scale).
        std: Per-channel normalisation std.
        metrics: Evaluation figures (e.g. ``val_cer``, held-out accuracy).
        summary: Training summary: recipe, data, epochs, seconds, seed.
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    provinces: str = plates.PROVINCES
    others: str = plates.OTHERS
    input_size: tuple[int, int] = INPUT_SIZE
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """Rebuild the model with these weights, in eval mode on the CPU."""
        model = build_model(self.config, self.provinces, self.others)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def trained_on(self, folder: str | os.PathLike) -> bool:
        """Whether this model was trained on the dataset ``folder`` (its training summary names it).

        Its label scores on that folder are then in-sample: a model tends to agree with the
        labels it trained on, right or wrong, so cross-validated scores are the ones to trust.
        """
        dataset = self.summary.get("dataset")
        if not dataset:
            return False
        try:
            return Path(str(dataset)).resolve() == Path(folder).resolve()
        except OSError:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "provinces": self.provinces,
            "others": self.others,
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "metrics": _plain(self.metrics),
            "summary": _plain(self.summary),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def _plain(obj: Any) -> Any:
    """Keep only types that ``torch.load(weights_only=True)`` accepts."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write a checkpoint atomically (:func:`core.files.write_bytes`): a crash or a full disk never
    leaves half a file (a full disk raises :class:`core.files.WriteError` naming the file)."""
    buf = io.BytesIO()  # serialised in memory: torch's own writer reports a full disk as a RuntimeError
    torch.save(ckpt.to_dict(), buf)
    return write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint safely and check that it is sound.

    The file is untrusted input: its size, its zip directory (members, unpacked size, pickle
    size) are checked before it is unpacked, and ``torch.load(weights_only=True)`` reads it (a
    foreign .pt cannot run code). Then the configuration, the alphabets (characters of
    :mod:`core.plates`, no duplicates), the input size, the normalisation (finite mean, finite
    positive std) and the weights (all finite) are checked, and a blank input is run through
    the model to check its output shapes.

    Raises:
        CheckpointError: the file is missing, too large, damaged, or not a sound Plate Review
            checkpoint; the message names the file and the problem.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path}: a CTC recognizer (.onnx) reads plates but cannot be fine-tuned or imported here: "
            "training uses the app's own architectures (start from the bundled model or a .pt/.pth)"
        )
    data = _read_checkpoint_file(path)
    _check_archive(path, data)
    try:
        d = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged/unsafe files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint ({first})") from None
    del data
    if isinstance(d, dict) and d.get("format") != CHECKPOINT_FORMAT:
        d = from_notebook(d, path) or d
    if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a model this app reads: expected a Plate Review checkpoint (.pt), the notebook's "
            "state_dict (.pth) or its PyTorch Lightning checkpoint (.ckpt)"
        )
    version = d.get("version", 0)
    if type(version) is not int:
        raise CheckpointError(f"{path}: damaged checkpoint (version {version!r} is not a number)")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than this app understands")
    try:
        ckpt = Checkpoint(
            config=_config(d["config"]),
            state_dict=d["state_dict"],
            provinces=_alphabet(d["provinces"], plates.PROVINCES, "provinces"),
            others=_alphabet(d["others"], plates.OTHERS, "others"),
            input_size=_input_size(d["input_size"]),
            mean=_triple(d["mean"], "mean"),
            std=_triple(d["std"], "std", positive=True),
            metrics=_mapping(d.get("metrics", {}), "metrics"),
            summary=_mapping(d.get("summary", {}), "summary"),
        )
        _check_weights(ckpt.state_dict)
        model = build_model(ckpt.config, ckpt.provinces, ckpt.others)
        model.load_state_dict(ckpt.state_dict)
        _check_output_shapes(model.eval(), ckpt)
    except KeyError as e:
        raise CheckpointError(f"{path}: damaged checkpoint (no {e} entry)") from None
    except (TypeError, ValueError, RuntimeError) as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()] or [type(e).__name__]
        if lines[0].startswith("Error(s) in loading state_dict"):  # torch names the layers on the next lines
            detail = "; ".join(lines[1:4]) + ("; ..." if len(lines) > 4 else "")
            raise CheckpointError(f"{path}: its weights do not fit a {ckpt.config.arch} model ({detail})") from None
        raise CheckpointError(f"{path}: damaged checkpoint ({lines[0]})") from None
    return ckpt


#: The notebook's layer names (``SimpleNumbersOCR`` / ``LSTMNumbersOCR``, a LightningModule) and
#: ours. The conv blocks are the same ``nn.Sequential`` indices: only the prefixes differ.
NOTEBOOK_PREFIXES = {"cnn_layers.": "cnn.", "hieroglyphs_cls.": "province_head.", "other_cls.": "other_head.",
                     "lstm.": "lstm."}  # fmt: skip


def from_notebook(d: dict, path: str | os.PathLike) -> dict | None:
    """A checkpoint dict (this app's format) from the notebook's own files, or ``None`` when ``d`` is not one.

    The notebook saves ``torch.save(model.state_dict(), 'lstm_model.pth')`` of its LightningModule
    (layers ``cnn_layers``, ``lstm``, ``hieroglyphs_cls``, ``other_cls``); Lightning's trainer
    writes ``.ckpt`` files holding that state_dict under ``'state_dict'``. Both are read here:
    the architecture (``simple`` or ``lstm``) comes from the layers present, the classes are the
    notebook's (the 31 provinces and 35 letters and digits, sorted, as :mod:`core.plates`), the
    input and normalisation its transforms' (Resize 64x224, ImageNet Normalize). The rest of
    :func:`load_checkpoint` then checks shapes and weights as for any checkpoint.

    Raises:
        CheckpointError: it is a notebook file but not one this app can read (unknown layers,
            other class counts); the message names the file and what was expected.
    """
    kind = "the notebook's state_dict"
    sd: Any = d
    if isinstance(d.get("state_dict"), dict) and ("pytorch-lightning_version" in d or "epoch" in d):
        sd, kind = d["state_dict"], "a PyTorch Lightning checkpoint of the notebook's model"
    if not (isinstance(sd, dict) and sd and all(isinstance(k, str) for k in sd)):
        return None
    if not any(k.startswith("hieroglyphs_cls.") for k in sd) or not any(k.startswith("cnn_layers.") for k in sd):
        return None
    state = {}
    for k, v in sd.items():
        if k.startswith("loss."):
            continue  # the notebook's CrossEntropyLoss: no weights
        prefix = next((p for p in NOTEBOOK_PREFIXES if k.startswith(p)), None)
        if prefix is None or not torch.is_tensor(v):
            raise CheckpointError(
                f"{path}: {kind} with an unexpected entry {k!r}: expected only the layers "
                f"{', '.join(p.rstrip('.') for p in NOTEBOOK_PREFIXES)}"
            )
        state[NOTEBOOK_PREFIXES[prefix] + k[len(prefix) :]] = v
    arch = "lstm" if "lstm.weight_hh_l0" in state else "simple"
    hidden = int(state["lstm.weight_hh_l0"].shape[1]) if arch == "lstm" else 128
    try:
        n_prov, n_oth = int(state["province_head.weight"].shape[0]), int(state["other_head.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"{path}: {kind} without its {e} layer") from None
    if (n_prov, n_oth) != (len(plates.PROVINCES), len(plates.OTHERS)):
        raise CheckpointError(
            f"{path}: {kind} with {n_prov} province and {n_oth} character classes; the notebook's are "
            f"{len(plates.PROVINCES)} and {len(plates.OTHERS)} (its training set's, sorted)"
        )
    summary: dict[str, Any] = {"imported_from": str(path), "import_format": kind}
    for key in ("epoch", "global_step", "pytorch-lightning_version"):
        if isinstance(d.get(key), (int, str)):
            summary[f"lightning_{key.replace('-', '_')}"] = d[key]
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": {"arch": arch, "dropout": 0.2, "hidden": hidden},
        "state_dict": state,
        "provinces": plates.PROVINCES,
        "others": plates.OTHERS,
        "input_size": list(INPUT_SIZE),
        "mean": list(MEAN),
        "std": list(STD),
        "metrics": {},
        "summary": summary,
    }


def _read_checkpoint_file(path: Path) -> bytes:
    """The file's bytes, at most :data:`MAX_CHECKPOINT_BYTES` (read once: what is checked is what is loaded)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before opening: opening a named pipe would block
            raise CheckpointError(f"{path}: model file not found (it is a folder or a device, not a file)")
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > MAX_CHECKPOINT_BYTES:
                raise CheckpointError(
                    f"{path}: model file too large ({st.st_size / 2**20:,.1f} MiB; a checkpoint is at most "
                    f"{MAX_CHECKPOINT_BYTES // 2**20} MiB)"
                )
            data = f.read(st.st_size + 1)  # one byte more than the size: a file that grows is seen
    except FileNotFoundError:
        raise CheckpointError(f"{path}: model file not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the model file ({e.strerror or e})") from None
    if len(data) > st.st_size:
        raise CheckpointError(f"{path}: the model file changed while being read")
    return data


def _zip_directory(data: bytes) -> tuple[int, int] | None:
    """``(entries, central directory bytes)`` from a zip's end records; ``None`` when ``data`` is
    not a zip whose directory sits right before its end records.

    The records are read as :mod:`zipfile` reads them (the last end record; the zip64 one just
    before it when there is a zip64 locator), and a zip with data before it or a zip64 locator
    pointing elsewhere is refused: there PyTorch's reader could see another directory than the
    one checked here.
    """
    pos = data.rfind(b"PK\x05\x06", max(0, len(data) - (22 + 0xFFFF)))
    if pos < 0 or pos + 22 > len(data):
        return None
    entries, cd_size, cd_offset = struct.unpack_from("<HLL", data, pos + 10)
    end = pos
    loc = pos - 20
    if loc >= 0 and data[loc : loc + 4] == b"PK\x06\x07":  # zip64 locator: the zip64 end record precedes it
        rec = loc - 56
        (located,) = struct.unpack_from("<Q", data, loc + 8)
        if rec < 0 or located != rec or data[rec : rec + 4] != b"PK\x06\x06":
            return None
        entries, cd_size, cd_offset = struct.unpack_from("<QQQ", data, rec + 32)
        end = rec
    if cd_offset + cd_size != end:
        return None
    return entries, cd_size


def _check_archive(path: Path, data: bytes) -> None:
    """Refuse, before unpacking, a checkpoint that is not a zip or would unpack to too much."""
    directory = _zip_directory(data)
    if directory is None:
        raise CheckpointError(f"{path}: not a loadable checkpoint (not a zip archive as torch.save writes)")
    entries, cd_size = directory
    if entries > MAX_CHECKPOINT_ENTRIES or cd_size > MAX_CHECKPOINT_ENTRIES * 1024:
        raise CheckpointError(
            f"{path}: not a Plate Review checkpoint ({entries:,} zip members, {cd_size:,} bytes of zip directory; "
            f"a checkpoint has at most {MAX_CHECKPOINT_ENTRIES:,} members)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
    except (zipfile.BadZipFile, ValueError, struct.error, OSError) as e:
        raise CheckpointError(f"{path}: not a loadable checkpoint (damaged zip archive: {e})") from None
    _check_members(path, sizes)
    reader_type = getattr(torch._C, "PyTorchFileReader", None)  # private: checked where it exists
    if reader_type is None or not hasattr(reader_type, "get_record_size"):
        return
    try:  # PyTorch's own reader (miniz) must see the same: it allocates each record at the size it reads
        reader = reader_type(io.BytesIO(data))
        torch_sizes = {name: reader.get_record_size(name) for name in reader.get_all_records()}
    except Exception as e:  # torch raises RuntimeError and others for damaged archives
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint ({first})") from None
    _check_members(path, torch_sizes)


def _check_members(path: Path, sizes: dict[str, int]) -> None:
    """Member count, total unpacked size and pickle size of a checkpoint's zip within the limits."""
    if len(sizes) > MAX_CHECKPOINT_ENTRIES:
        raise CheckpointError(f"{path}: not a Plate Review checkpoint ({len(sizes):,} zip members)")
    unpacked = sum(sizes.values())
    if unpacked > MAX_CHECKPOINT_UNPACKED_BYTES:
        raise CheckpointError(
            f"{path}: model file unpacks to {unpacked / 2**20:,.0f} MiB, more than the "
            f"{MAX_CHECKPOINT_UNPACKED_BYTES // 2**20:,} MiB a checkpoint may hold (a decompression bomb?)"
        )
    for name, size in sizes.items():
        if name.endswith(".pkl") and size > MAX_CHECKPOINT_PICKLE_BYTES:
            raise CheckpointError(
                f"{path}: not a Plate Review checkpoint (its pickle {name} is {size / 2**20:,.1f} MiB; "
                f"a checkpoint's is at most {MAX_CHECKPOINT_PICKLE_BYTES // 2**20} MiB)"
            )


def _config(raw: Any) -> ModelConfig:
    if not isinstance(raw, dict):
        raise TypeError(f"config is a {type(raw).__name__}, not a mapping")
    config = ModelConfig(**raw)
    if not isinstance(config.arch, str) or config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; known: {sorted(ARCHITECTURES)}")
    if type(config.hidden) is not int or not 1 <= config.hidden <= MAX_HIDDEN:
        raise ValueError(f"LSTM hidden size {config.hidden!r} is not a whole number from 1 to {MAX_HIDDEN}")
    if type(config.dropout) not in (int, float) or not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout {config.dropout!r} is not a number from 0 to 1")
    return config


def _alphabet(raw: Any, allowed: str, name: str) -> str:
    """A head's class order: a non-empty string of ``allowed`` characters, each once."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"the {name} alphabet is not a non-empty string")
    strange = sorted(set(raw) - set(allowed))
    if strange:
        raise ValueError(f"the {name} alphabet has characters that are not plate characters: {''.join(strange)!r}")
    if len(set(raw)) != len(raw):
        raise ValueError(f"the {name} alphabet has duplicate characters")
    return raw


def _input_size(raw: Any) -> tuple[int, int]:
    size = tuple(raw) if isinstance(raw, (list, tuple)) else ()
    if len(size) != 2 or not all(type(v) is int and 8 <= v <= MAX_INPUT_SIDE for v in size):
        raise ValueError(f"absurd input size {raw!r} (height and width from 8 to {MAX_INPUT_SIDE} pixels)")
    return size  # type: ignore[return-value]


def _triple(raw: Any, name: str, positive: bool = False) -> tuple[float, float, float]:
    """Per-channel normalisation terms: three finite numbers (positive ones for the std)."""
    vals = tuple(raw) if isinstance(raw, (list, tuple)) else ()
    if len(vals) != 3 or not all(type(v) in (int, float) for v in vals):
        raise ValueError(f"normalisation {name} {raw!r} is not three numbers")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"normalisation {name} {list(vals)} is not finite")
    if positive and not all(1e-6 <= v <= 1e6 for v in vals):
        raise ValueError(f"normalisation {name} {list(vals)} is zero, negative or absurd (not from 1e-6 to 1e6)")
    if not all(abs(v) <= 1e6 for v in vals):
        raise ValueError(f"normalisation {name} {list(vals)} is absurd (beyond 1e6)")
    return tuple(float(v) for v in vals)  # type: ignore[return-value]


def _mapping(raw: Any, name: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError(f"{name} is a {type(raw).__name__}, not a mapping")
    return raw


def _check_weights(state_dict: Any) -> None:
    """Every entry a tensor, every floating-point weight finite (a NaN weight makes every output NaN)."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict is a {type(state_dict).__name__}, not a mapping")
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"weight {name!r} is a {type(t).__name__}, not a tensor")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"weight {name!r} has {bad:,} non-finite values (NaN or infinity)")


def _check_output_shapes(model: nn.Module, ckpt: Checkpoint) -> None:
    """Run a blank crop of the checkpoint's input size: one province and six other positions must come out."""
    h, w = ckpt.input_size
    with torch.inference_mode():
        first, tail = model(torch.zeros(1, 3, h, w))
    want = ((1, 1, len(ckpt.provinces)), (1, 6, len(ckpt.others)))
    if (tuple(first.shape), tuple(tail.shape)) != want:
        raise ValueError(
            f"the model reads {h}x{w} crops into outputs {tuple(first.shape)} and {tuple(tail.shape)}, "
            f"not {want[0]} and {want[1]}: wrong input size for this architecture"
        )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file: the model identity used by caches."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
