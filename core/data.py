"""Samples of a dataset folder, the shared preprocessing, the notebook's augmentations, Datasets."""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Sequence

# albumentations asks PyPI for a newer version of itself on import: a network request every
# time the app starts, and a 2 s timeout plus a warning on an offline machine. A desktop tool
# must not phone home; a user who wants the check can still set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from . import plates  # noqa: E402
from .ccpd import crop_named  # noqa: E402
from .duplicates import image_hash  # noqa: E402
from .images import ImageReadError, read_rgb  # noqa: E402
from .models import INPUT_SIZE, MEAN, STD  # noqa: E402


def preprocess(
    rgb: np.ndarray,
    input_size: tuple[int, int] = INPUT_SIZE,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> np.ndarray:
    """The one preprocessing used by training and inference: resize, normalise, CHW float32.

    Equivalent to the notebook's ``A.Resize(64, 224), A.Normalize(), ToTensorV2()`` (a test
    checks it against albumentations). OpenCV's blobFromImage does the HWC->CHW float copy
    in C++ and the normalisation is two in-place passes: ~4x faster than plain numpy, which
    matters because it runs once per image on every prediction.
    """
    x = cv2.dnn.blobFromImage(resize_for_model(rgb, input_size))[0]
    scale, bias = normalisation_terms(tuple(mean), tuple(std))
    x *= scale
    x += bias
    return x


def resize_for_model(rgb: np.ndarray, input_size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """The geometric half of :func:`preprocess`: the crop resized to the model input, uint8 HWC.

    The onnxruntime predictor feeds batches of these and normalises inside its graph
    (4x less memory to move per crop than float CHW, no per-image float passes in Python).
    """
    h, w = input_size
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=8)
def normalisation_terms(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, bias) so that ``x * scale + bias == (x / 255 - mean) / std``."""
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return (1.0 / (255.0 * s))[:, None, None], (-m / s)[:, None, None]


class LooseFrame(A.ImageOnlyTransform):
    """A tight crop framed as a looser camera frames plates (:func:`core.synth.loose_frame`):
    margins of up to ``max_margin`` x its height on each side over a car-paint background.
    Draws from the transform's own generator (seeded by its ``A.Compose``)."""

    def __init__(self, max_margin: float = 0.25, p: float = 0.5):
        super().__init__(p=p)
        self.max_margin = max_margin

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        from .synth import loose_frame  # core.synth builds on this module

        out = loose_frame(img.astype(np.float32), self.random_generator, self.max_margin)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def train_augmentations(strength: float = 1.0, seed: int | None = None, loose: float = 0.0) -> A.Compose:
    """The notebook's training augmentations (before :func:`preprocess`).

    Blur(1..3), RGBShift(5), RandomBrightnessContrast(0.2, 0.2), Perspective(0.025),
    plus, following the notebook's error analysis, random crop margins (crops that
    are not perfectly tight), stronger colour changes, JPEG artefacts and noise.
    ``strength=0`` gives the notebook's set only. ``seed`` makes the random draws
    reproducible (albumentations keeps its own generator, not numpy's). ``loose`` > 0
    first frames that share of the crops loosely (:class:`LooseFrame`, margins up to a
    quarter of the height); 0 adds nothing, so the pipeline draws what it drew without it.
    """
    notebook = [
        A.Blur(blur_limit=(3, 3), p=0.5),
        A.RGBShift(r_shift_limit=5, g_shift_limit=5, b_shift_limit=5, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.Perspective(scale=(0.025, 0.025), p=0.3),
    ]
    first = [LooseFrame(p=loose)] if loose > 0 else []
    if strength <= 0:
        return A.Compose(first + notebook, seed=seed)
    extra = [
        A.Affine(
            translate_percent={"x": (-0.03 * strength, 0.03 * strength), "y": (-0.06 * strength, 0.06 * strength)},
            scale=(1 - 0.08 * strength, 1 + 0.04 * strength),
            rotate=(-8 * strength, 8 * strength),  # real crops are often tilted by 5-10 degrees
            shear={"x": (-8 * strength, 8 * strength), "y": (-4 * strength, 4 * strength)},
            border_mode=cv2.BORDER_REPLICATE,
            p=0.5,
        ),
        A.HueSaturationValue(
            hue_shift_limit=int(10 * strength),
            sat_shift_limit=int(25 * strength),
            val_shift_limit=int(20 * strength),
            p=0.3,
        ),
        A.GaussNoise(std_range=(0.01, 0.05 * strength), p=0.2),
        A.ImageCompression(quality_range=(max(10, int(90 - 60 * strength)), 95), p=0.3),
        A.MotionBlur(blur_limit=(3, 5), p=0.1 * strength),
    ]
    return A.Compose(first + notebook + extra, seed=seed)


def encode_label(label: str, provinces: str = plates.PROVINCES, others: str = plates.OTHERS) -> np.ndarray:
    """Class indices (7,) of a valid label: position 0 in ``provinces``, 1..6 in ``others``."""
    return np.array([provinces.index(label[0])] + [others.index(c) for c in label[1:]], dtype=np.int64)


def thread_safe_start_method() -> str:
    """How a process with threads of its own (the GUI) should start DataLoader workers.

    ``forkserver`` where the platform has it: workers fork from a single-threaded server
    that has imported torch, OpenCV and albumentations once (:func:`worker_start_method`), so
    6 workers start in ~0.3 s after the first run, against ~7 s per run with ``spawn``, which
    imports everything again in every worker (2 cores; on a 16-core GPU machine a 15-epoch
    panel fine-tune with spawned workers took 83 s, most of it start-up). ``spawn`` elsewhere
    (Windows). A plain ``fork`` could copy the caller's threads mid-use.
    """
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def worker_start_method(method: str | None) -> str | None:
    """``method`` for a DataLoader's ``multiprocessing_context``, ready to use: a forkserver
    is told to import ``core.train`` (this module with it, and torch, OpenCV, albumentations)
    before it forks workers. Preloading only this module left each forked worker importing
    the rest (6 workers, 6-epoch fine-tune, 2 cores: 11.4 s against 6.5 s; 1 predict worker:
    1,850 against ~2,900 images/s). It takes effect when the server starts, the first
    forkserver use in this process."""
    if method == "forkserver":
        multiprocessing.set_forkserver_preload(["core.train"])
    return method


def reseed_augmentations(dataset: Dataset, seed: int) -> None:
    """Give every albumentations pipeline in ``dataset`` a new seed (in a DataLoader worker).

    A seeded pipeline keeps its own random state, which the global seeds do not touch, and
    each DataLoader worker starts from a copy of the main process's: without a reseed every
    worker, and every epoch's fresh workers, would repeat the same draws. Walks the torch
    nesting conventions (``ConcatDataset.datasets``, ``Subset.dataset``) down to datasets
    with an ``augment`` attribute.
    """
    stack, seen = [dataset], set()
    while stack:
        d = stack.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        aug = getattr(d, "augment", None)
        if hasattr(aug, "set_random_seed") and id(aug) not in seen:
            seen.add(id(aug))
            aug.set_random_seed((seed + len(seen)) % 2**32)
        stack.extend(getattr(d, "datasets", None) or ())
        if isinstance(getattr(d, "dataset", None), Dataset):
            stack.append(d.dataset)


class PlateDataset(Dataset):
    """(image tensor, class indices) for valid labelled samples; used by training.

    Args:
        items: ``(path, label)`` pairs; labels must be valid plates.
        augment: Optional albumentations pipeline applied before :func:`preprocess`.
        image_fn: Optional callable ``(index) -> RGB array`` replacing file reads
            (synthetic data).
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike, str]],
        augment: Callable | None = None,
        provinces: str = plates.PROVINCES,
        others: str = plates.OTHERS,
    ):
        self.items = [(str(p), lab) for p, lab in items]
        self.augment = augment
        self.provinces, self.others = provinces, others

    def __len__(self) -> int:
        return len(self.items)

    def load(self, idx: int) -> np.ndarray:
        """The item's crop: the file's pixels, or the plate cut out of a CCPD photograph
        (:func:`core.ccpd.crop_named`), so fine-tuning on CCPD photos trains on plates."""
        path = self.items[idx][0]
        return crop_named(read_rgb(path), path)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = self.load(idx)
        if self.augment is not None:
            rgb = self.augment(image=rgb)["image"]
        x = torch.from_numpy(preprocess(rgb))
        y = torch.from_numpy(encode_label(self.items[idx][1], self.provinces, self.others))
        return x, y


class InferenceDataset(Dataset):
    """Preprocessed crops for prediction; unreadable files yield an error instead of raising.

    ``uint8=True`` yields :func:`resize_for_model` pixels (HWC uint8) for a model that
    normalises itself (the ONNX export); otherwise :func:`preprocess` output (CHW float32).
    ``prepare`` (a picklable callable, RGB in) replaces both, for readers with their own
    preprocessing (``core.ctc``).
    Each item also carries the crop's perceptual hash (:func:`core.duplicates.image_hash`),
    taken from the decoded pixels while they are at hand, for near-duplicate detection.
    A file named like a CCPD photograph is read as its plate (:func:`core.ccpd.crop_named`,
    the name parsed per item, in the worker): the crop is what is prepared and hashed.
    ``crop=False`` reads every file whole.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        input_size: tuple[int, int] = INPUT_SIZE,
        mean: Sequence[float] = MEAN,
        std: Sequence[float] = STD,
        uint8: bool = False,
        errors: Sequence[str | None] | None = None,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
        crop: bool = True,
    ):
        self.paths = [str(p) for p in paths]
        self.prepare = prepare
        self.crop = crop
        self.input_size, self.mean, self.std, self.uint8 = input_size, mean, std, uint8
        #: Per path, why the scan found it must not be read (``Sample.error``): never opened.
        self.errors = list(errors) if errors is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: int) -> tuple[int, np.ndarray | None, str | None, int | None]:
        if self.errors is not None and self.errors[idx] is not None:
            return idx, None, self.errors[idx], None
        try:
            path = self.paths[idx]
            rgb = read_rgb(path)
            if self.crop:
                rgb = crop_named(rgb, path)
            if self.prepare is not None:
                x = self.prepare(rgb)
            elif self.uint8:
                x = resize_for_model(rgb, self.input_size)
            else:
                x = preprocess(rgb, self.input_size, self.mean, self.std)
        except ImageReadError as e:
            return idx, None, e.reason, None
        except Exception as e:  # a decoder crash on one file must not stop the run
            return idx, None, f"cannot decode: {type(e).__name__}: {e}", None
        try:
            h = image_hash(rgb)
        except Exception:  # a hash is a hint: never a reason to lose the prediction
            h = None
        return idx, x, None, h


def collate_inference(batch: list[tuple[int, np.ndarray | None, str | None, int | None]]):
    """Stack readable crops; keep indices and errors of the unreadable ones, and the hashes."""
    ok = [(i, x, h) for i, x, err, h in batch if x is not None]
    errors = [(i, err) for i, x, err, _h in batch if x is None]
    idx = [i for i, _, _ in ok]
    xs = np.stack([x for _, x, _ in ok]) if ok else np.zeros((0, 3, *INPUT_SIZE), np.float32)  # unused when empty
    return idx, xs, errors, [h for _, _, h in ok]
