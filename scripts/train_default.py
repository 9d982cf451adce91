"""Reproduce the bundled default model, resources/models/default.pt, from scratch.

    python scripts/train_default.py            # ~1 h on an idle 2-core CPU
    python scripts/train_default.py --quick    # a few minutes, smoke test of the recipe

Recipe (seeds fixed):

1. Split data/plates_real (600 real 94x24 crops): the 150 crops listed in
   data/splits/heldout.txt are never used for training or selection; of the other
   450, a fixed 60 are the real validation part (model selection), 390 train.
2. Pretrain the notebook's LSTM recognizer (arch "lstm", 64x224) from scratch on
   14,000 synthetic plates (core.synth.SynthDataset: all 31 provinces equally
   often), Adam 1e-3; validation = real val part + 120 synthetic plates.
3. Train on, per epoch, the 390 real training crops x 5 (notebook augmentations +
   extras), 1,550 plates spliced from their character cells
   (core.synth.SpliceDataset) and 3,500 fresh synthetic plates; 4 epochs, Adam
   1e-3 decayed x0.6 per epoch; best checkpoint by validation CER. Then two more
   such stages, each from the previous best with fresh seeds: 4 epochs of real x 8
   + 2,400 spliced + 2,000 synthetic, Adam 5e-4 decayed x0.6 per epoch. The
   stage whose best has the lowest validation CER (then loss) is shipped.
4. Evaluate once on the held-out crops (accuracy, CER, confidence ROC AUC) and on
   50 held-out synthetic plates per province; record everything in the checkpoint.

The budget (~102k training images) is what this 2-core CPU trains in about an
hour when it is not shared (~40 images/s; ~80 min at the 11-39 images/s we got
while other jobs ran); see docs/MODEL.md. ``--resume`` skips every stage that
finished before in WORK (marked by WORK/<stage>.done; same seeds, same weights).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import plates  # noqa: E402
from core.data import PlateDataset, preprocess, scan_folder, train_augmentations  # noqa: E402
from core.images import read_rgb  # noqa: E402
from core.metrics import corpus_cer  # noqa: E402
from core.models import Checkpoint, count_parameters, load_checkpoint, save_checkpoint  # noqa: E402
from core.synth import SpliceDataset, SynthDataset  # noqa: E402
from core.train import TrainConfig, train  # noqa: E402

REAL_DIR = ROOT / "data" / "plates_real"
HELDOUT = ROOT / "data" / "splits" / "heldout.txt"
OUT = ROOT / "resources" / "models" / "default.pt"
VAL_SEED, N_VAL_REAL, N_VAL_SYNTH = 7, 60, 120


class Shifting(Dataset):
    """``n`` items of a huge lazy dataset, moved to fresh indices by :meth:`next_epoch`."""

    def __init__(self, base: Dataset, n: int):
        self.base, self.n, self.offset = base, n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.base[self.offset + i]

    def next_epoch(self, *_):
        self.offset += self.n


def real_split() -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, val, held-out) ``(path, label)`` lists of the real crops."""
    held = set(HELDOUT.read_text(encoding="utf-8").split())
    items = [(str(s.path), s.label) for s in scan_folder(REAL_DIR) if s.valid]
    rest = [it for it in items if Path(it[0]).name not in held]
    heldout = [it for it in items if Path(it[0]).name in held]
    assert len(heldout) == len(held), "held-out list does not match data/plates_real"
    rng = random.Random(VAL_SEED)
    rng.shuffle(rest)
    return sorted(rest[N_VAL_REAL:]), sorted(rest[:N_VAL_REAL]), heldout


@torch.inference_mode()
def predict(model: torch.nn.Module, images: list[np.ndarray], ckpt: Checkpoint, batch: int = 128):
    """Labels (raw argmax), labels with position 1 constrained to a letter, confidences."""
    letters = torch.tensor([ckpt.others.index(c) for c in plates.LETTERS])
    raw, constrained, conf = [], [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack([preprocess(im) for im in images[i : i + batch]]))
        first, tail = model(x)
        pf, pt = first.softmax(-1)[:, 0], tail.softmax(-1)
        f_max, f_arg = pf.max(-1)
        t_max, t_arg = pt.max(-1)
        conf += (f_max * t_max.prod(-1)).tolist()
        l_arg = letters[pt[:, 0, letters].argmax(-1)]
        for a, row, la in zip(f_arg.tolist(), t_arg.tolist(), l_arg.tolist()):
            s = ckpt.provinces[a] + "".join(ckpt.others[j] for j in row)
            raw.append(s)
            constrained.append(s[0] + ckpt.others[la] + s[2:])
    return raw, constrained, conf


def roc_auc(scores: list[float], positive: list[bool]) -> float | None:
    """ROC AUC of ``scores`` separating positives (correct) from negatives (wrong); ties count half."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def evaluate(ckpt: Checkpoint, heldout: list[tuple[str, str]], n_per_province: int) -> dict:
    model = ckpt.build()
    labels = [lab for _, lab in heldout]
    raw, cons, conf = predict(model, [read_rgb(p) for p, _ in heldout], ckpt)
    ok = [p == t for p, t in zip(raw, labels)]
    errors = [{"file": Path(p).name, "pred": r, "conf": round(c, 4)}
              for (p, _), r, c, o in zip(heldout, raw, conf, ok) if not o]  # fmt: skip
    synth = SynthDataset(n_per_province * len(plates.PROVINCES), seed=424242)
    s_imgs, s_labels = zip(*(synth.sample(i) for i in range(len(synth))))
    s_raw, _, _ = predict(model, list(s_imgs), ckpt)
    per_prov = {}
    for ch in plates.PROVINCES:
        idx = [i for i, lab in enumerate(s_labels) if lab[0] == ch]
        per_prov[ch] = sum(s_raw[i] == s_labels[i] for i in idx) / len(idx)
    return {
        "heldout_real_n": len(labels),
        "heldout_real_accuracy": sum(ok) / len(ok),
        "heldout_real_cer": corpus_cer(raw, labels),
        "heldout_real_accuracy_letter_rule": sum(p == t for p, t in zip(cons, labels)) / len(labels),
        "heldout_real_cer_letter_rule": corpus_cer(cons, labels),
        "heldout_real_confidence_auc": roc_auc(conf, ok),
        "heldout_real_errors": errors,
        "heldout_real_min_conf_correct": min((c for c, o in zip(conf, ok) if o), default=None),
        "synth_per_province_n": n_per_province,
        "synth_per_province_accuracy": per_prov,
        "synth_accuracy": sum(p == t for p, t in zip(s_raw, s_labels)) / len(s_labels),
        "synth_cer": corpus_cer(s_raw, list(s_labels)),
    }


def log_epoch(tag: str):
    def cb(e):
        print(f"[{tag}] epoch {e.epoch}/{e.epochs} step {e.step} train_loss {e.train_loss:.4f} "
              f"val_loss {e.val_loss:.4f} val_acc {e.val_accuracy:.4f} val_cer {e.val_cer:.4f} "
              f"lr {e.lr:.2e} {e.images_per_s:.0f} img/s {e.seconds:.0f}s{' *' if e.is_best else ''}", flush=True)  # fmt: skip

    return cb


def run_stage(
    name: str, work: Path, resume: bool, cfg: TrainConfig, data: Dataset, val: Dataset, shifting: list[Shifting]
) -> tuple[Path, list[dict], float]:
    """One train() call; with ``resume``, a stage that finished before (WORK/<name>.done) is skipped."""
    out, done = work / f"{name}.pt", work / f"{name}.done"
    if resume and done.is_file() and out.is_file():
        print(f"[{name}] reusing {out} (finished earlier with the same seeds)", flush=True)
        info = json.loads(done.read_text())
        return out, info["history"], info["seconds"]
    cb = log_epoch(name)

    def on_epoch(e):
        cb(e)
        for s in shifting:
            s.next_epoch()

    res = train(cfg, data, val, out=out, on_epoch=on_epoch)
    history = [vars(e) for e in res.history]
    done.write_text(json.dumps({"history": history, "seconds": res.seconds}))
    return res.best_path, history, res.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--work", default=str(ROOT / "runs" / "default"), help="intermediate checkpoints")
    ap.add_argument("--quick", action="store_true", help="tiny budget: checks the recipe runs end to end")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true",
                    help="skip stages that finished earlier in WORK (same seeds, so the same weights)")  # fmt: skip
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    q = args.quick
    pre_n, pre_epochs = (640, 1) if q else (14000, 1)
    # (real repeats, spliced, synthetic) per epoch, epochs, lr, for the two mixed stages
    mix1 = (1, 128, 128, 1, 1e-3) if q else (5, 1550, 3500, 4, 1e-3)
    mix2 = (1, 128, 128, 1, 5e-4) if q else (8, 2400, 2000, 4, 5e-4)
    mix3 = mix2  # a third stage, the same mix with fresh seeds, from the second stage's best
    n_per_prov = 4 if q else 50

    train_real, val_real, heldout = real_split()
    print(f"real crops: train {len(train_real)}, val {len(val_real)}, held-out {len(heldout)}", flush=True)
    val = ConcatDataset([PlateDataset(val_real), SynthDataset(N_VAL_SYNTH, seed=99)])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    histories: dict[str, list] = {}

    # 1. synthetic pretraining from scratch
    pre_cfg = TrainConfig(arch="lstm", epochs=pre_epochs, batch_size=64, lr=1e-3, lr_gamma=0.6, seed=1, device="cpu",
                          workers=0)  # fmt: skip
    pre_data = Shifting(SynthDataset(10**9, seed=1), pre_n)
    path, histories["pretrain"], seconds["pretrain"] = run_stage(
        "pretrain", work, args.resume, pre_cfg, pre_data, val, [pre_data]
    )

    # 2, 3. mixed training: real training crops (augmented) + spliced real cells + fresh synthetic plates
    aug = train_augmentations(1.0)
    candidates: list[tuple[tuple[float, float], str, Path]] = []
    for i, (name, (rep, n_splice, n_synth, epochs, lr)) in enumerate(
        (("finetune", mix1), ("finetune2", mix2), ("finetune3", mix3))
    ):
        synth_ds = Shifting(SynthDataset(10**9, seed=2 + 10 * i), n_synth)
        splice_ds = Shifting(SpliceDataset(train_real, 10**9, seed=3 + 10 * i, augment=aug), n_splice)
        data = ConcatDataset([PlateDataset(train_real * rep, augment=aug), splice_ds, synth_ds])
        cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, lr_gamma=0.6, seed=4 + 10 * i, device="cpu",
                          workers=0, init=str(path))  # fmt: skip
        path, histories[name], seconds[name] = run_stage(name, work, args.resume, cfg, data, val, [synth_ds, splice_ds])
        best = min((e["val_cer"], e["val_loss"]) for e in histories[name])
        candidates.append((best, name, path))

    # Selection across stages, by validation only: a later stage ships only if it beat the earlier ones.
    _, chosen, path = min(candidates)
    print(f"selected {chosen} by validation CER", flush=True)

    # 4. held-out evaluation (once, on the selected checkpoint) and the bundled file
    ckpt = load_checkpoint(path)
    te = time.time()
    metrics = evaluate(ckpt, heldout, n_per_prov)
    seconds["evaluate"] = time.time() - te
    ckpt.metrics = {**ckpt.metrics, **metrics}
    ckpt.summary = {
        **ckpt.summary,
        "recipe": "python scripts/train_default.py" + (" --quick" if q else ""),
        "data": {
            "real": "data/plates_real (600 crops, LPRNet_Pytorch test set)",
            "heldout": "data/splits/heldout.txt (150 crops, never trained on or selected with)",
            "real_train": len(train_real), "real_val": len(val_real),
            "pretrain": f"{pre_epochs} x {pre_n} synthetic plates (core.synth, seed 1), lr 1e-3",
            "finetune": f"{mix1[3]} x ({len(train_real)} real x {mix1[0]} augmented + {mix1[1]} spliced "
                        f"+ {mix1[2]} synthetic), lr {mix1[4]} x0.6/epoch",
            "finetune2": f"{mix2[3]} x ({len(train_real)} real x {mix2[0]} augmented + {mix2[1]} spliced "
                         f"+ {mix2[2]} synthetic), lr {mix2[4]} x0.6/epoch",
            "finetune3": "the same as finetune2, fresh seeds, from finetune2's best",
            "val": f"{len(val_real)} real + {N_VAL_SYNTH} synthetic (selection by CER)",
        },
        "history": histories,
        "selected_stage": chosen,
        "params": count_parameters(ckpt.build()),
        "seconds_per_stage": {k: round(v, 1) for k, v in seconds.items()},
        "seconds_total": round(sum(seconds.values()), 1), "threads": args.threads,
        "machine": "2-core AMD EPYC CPU, shared with other jobs (load 3-7)",
    }  # fmt: skip
    out = save_checkpoint(ckpt, args.out)
    show = {k: v for k, v in metrics.items() if k != "heldout_real_errors"}
    print(json.dumps(show, ensure_ascii=False, indent=1))
    print("errors:", json.dumps(metrics["heldout_real_errors"], ensure_ascii=False))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); stages {seconds}; this run {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
