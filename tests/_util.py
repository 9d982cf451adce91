"""Plain helpers shared by the tests (fixtures live in the test files / conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from core.models import Checkpoint, ModelConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "data" / "plates_real"


def real_files(n: int | None = None, step: int = 1) -> list[Path]:
    """Real crops bundled in data/plates_real (every ``step``-th, first ``n``)."""
    files = sorted(REAL.glob("*.jpg"))[::step]
    return files[:n] if n else files


def copy_real(dst: Path, n: int, step: int = 7) -> list[Path]:
    """Copy ``n`` real crops (spread over the folder) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for f in real_files(n, step):
        shutil.copy2(f, dst / f.name)
        out.append(dst / f.name)
    return out


def random_checkpoint_file(path: Path, arch: str = "lstm", seed: int = 0) -> Path:
    """A valid checkpoint with random weights (for contract tests, not quality)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch)
    return save_checkpoint(Checkpoint(cfg, build_model(cfg).state_dict()), path)


def script_checkpoint(path: Path, look: str = "matched") -> Path:
    """A checkpoint that scripts/train_default.py recognises as its own (random weights)."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lstm-fast")
    ck = Checkpoint(
        config=cfg,
        state_dict=build_model(cfg).state_dict(),
        metrics={"val_cer": 0.5, "synth_per_province_n": 50},
        summary={"recipe": "python scripts/train_default.py", "look": {"name": look}, "synth": "noto"},
    )
    return save_checkpoint(ck, path)


def prediction_row(rel: str, prediction: str = "皖A12345", **kw) -> dict:
    """The fields of a prediction record as a dict (what ``Store.put_predictions`` takes), overridable."""
    rec = dict(rel=rel, label="", label_error=None, prediction=prediction, probs=[0.9] * 7,
               runner_up="1234567", runner_up_probs=[0.05] * 7, confidence=0.5, cer=0.3, correct=False, error=None)  # fmt: skip
    rec.update(kw)
    return rec


def dark_on_yellow(rgb: np.ndarray, stretch: bool = False) -> np.ndarray:
    """A blue crop's characters as a single-row yellow plate shows them, dark on yellow (float32 RGB): the
    light plate :func:`core.models.read_crops` also reads as its negative. ``stretch``: the characters'
    map stretched from its 10th to its 97th percentile first, as bench_restyled_real recomposes one."""
    w = rgb[..., :2].astype(np.float32).mean(-1, keepdims=True)
    if stretch:
        lo, hi = np.percentile(w, (10, 97))
        w = np.clip((w - lo) / max(hi - lo, 1.0), 0, 1)
    else:
        w = w / 255
    return (1 - w) * np.float32([225, 190, 30]) + w * np.float32([35, 35, 30])
