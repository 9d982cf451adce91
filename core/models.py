"""The notebook's two recognizers as plain ``nn.Module``s, chosen by name, and checkpoints.

Both read a 3x64x224 normalised crop, reduce it with four conv blocks to a
256 x 1 x 7 feature map (one column per plate character) and classify column 0
over the 31 provinces and columns 1..6 over the 35 letters/digits.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import plates

CHECKPOINT_FORMAT = "plate-review-checkpoint"
CHECKPOINT_VERSION = 1
INPUT_SIZE = (64, 224)  # (height, width): plate ratio ~2:7, one 32-px cell per character
MEAN = (0.485, 0.456, 0.406)  # albumentations.Normalize defaults (ImageNet)
STD = (0.229, 0.224, 0.225)


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


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged or not a Plate Review checkpoint."""


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
    """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt.to_dict(), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``: a foreign .pt cannot run code).

    Raises:
        CheckpointError: the file is missing, damaged, or not a Plate Review checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged/unsafe files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint ({first})") from None
    if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a Plate Review checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    if d.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {d['version']} is newer than this app understands")
    try:
        ckpt = Checkpoint(
            config=ModelConfig(**d["config"]),
            state_dict=d["state_dict"],
            provinces=d["provinces"],
            others=d["others"],
            input_size=tuple(d["input_size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            metrics=d.get("metrics", {}),
            summary=d.get("summary", {}),
        )
        build_model(ckpt.config, ckpt.provinces, ckpt.others).load_state_dict(ckpt.state_dict)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({str(e).splitlines()[0]})") from None
    return ckpt


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file: the model identity used by caches."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
