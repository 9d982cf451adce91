from __future__ import annotations

import math

import pytest
import torch

from core.dataset import scan_folder
from core.models import load_checkpoint
from core.train import TrainConfig, plate_loss, split_items, train

from ._util import REAL, copy_real, random_checkpoint_file


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    copy_real(d, 24, step=11)
    return [(s.file, s.label) for s in scan_folder(d)]


def test_tiny_run_lowers_the_loss(items, tmp_path):
    torch.set_num_threads(2)
    steps = []
    cfg = TrainConfig(arch="simple", epochs=12, batch_size=8, lr=3e-3, lr_gamma=1.0, augment_strength=0, seed=1)
    res = train(cfg, items[:16], items[16:], out=tmp_path / "m.pt", on_step=steps.append)
    losses = [s.loss for s in steps]
    assert len(losses) == 24
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert res.best_path and load_checkpoint(res.best_path).config.arch == "simple"
    assert [e.epoch for e in res.history] == list(range(1, 13))
    best = min(res.history, key=lambda e: (e.val_cer, e.val_loss))
    assert load_checkpoint(res.best_path).metrics["val_cer"] == pytest.approx(best.val_cer)


def test_callbacks_carry_the_figures(items):
    epochs = []
    res = train(TrainConfig(arch="simple", epochs=2, batch_size=8, seed=0), items, on_epoch=epochs.append)
    e = epochs[-1]
    assert e.epochs == 2 and 0 <= e.val_accuracy <= 1 and e.val_cer >= 0 and e.images_per_s > 0
    assert math.isfinite(e.train_loss) and math.isfinite(e.val_loss)
    assert e.lr == pytest.approx(2e-4 * 0.5)  # ExponentialLR(0.5) per epoch
    assert res.checkpoint.summary["train_samples"] + res.checkpoint.summary["val_samples"] == len(items)


def test_cancel_keeps_a_loadable_checkpoint(items, tmp_path):
    n = {"steps": 0}

    def stop():
        return n["steps"] >= 2

    def on_step(s):
        n["steps"] = s.step

    res = train(TrainConfig(epochs=5, batch_size=4), items, out=tmp_path / "c.pt", on_step=on_step, should_stop=stop)
    assert res.stopped and res.steps == 2
    assert load_checkpoint(tmp_path / "c.pt").config.arch == "lstm"


def test_fine_tune_starts_from_init(items, tmp_path):
    init = random_checkpoint_file(tmp_path / "init.pt", arch="simple", seed=5)
    res = train(
        TrainConfig(init=str(init), epochs=1, max_steps=1, batch_size=4, lr=1e-12), items, out=tmp_path / "f.pt"
    )
    got = load_checkpoint(tmp_path / "f.pt")
    want = load_checkpoint(init)
    assert got.config.arch == "simple" and res.checkpoint.summary["init"] == str(init)
    w = "cnn.0.weight"
    assert torch.allclose(got.state_dict[w], want.state_dict[w], atol=1e-6)


def test_seed_reproducible(items):
    cfg = TrainConfig(arch="simple", epochs=1, max_steps=3, batch_size=4, seed=7)
    a = train(cfg, items).checkpoint.state_dict["province_head.weight"]
    b = train(cfg, items).checkpoint.state_dict["province_head.weight"]
    assert torch.equal(a, b)


def test_invalid_labels_rejected(items):
    with pytest.raises(ValueError, match="invalid labels"):
        train(TrainConfig(epochs=1), items + [(items[0][0], "皖AI0000")])


def test_split_and_loss():
    tr, va = split_items([(i, "x") for i in range(100)], 0.1, seed=0)
    assert len(tr) == 90 and len(va) == 10 and not {a for a, _ in tr} & {a for a, _ in va}
    first = torch.zeros(2, 1, 31)
    tail = torch.zeros(2, 6, 35)
    y = torch.zeros(2, 7, dtype=torch.long)
    assert plate_loss(first, tail, y).item() == pytest.approx((math.log(31) + 6 * math.log(35)) / 7, rel=1e-5)
    weighted = plate_loss(first, tail, y, province_weight=3.0).item()
    assert weighted == pytest.approx((3 * math.log(31) + 6 * math.log(35)) / 9, rel=1e-5)


def test_province_weight_reaches_the_loss(items, monkeypatch):
    # TrainConfig.province_weight must reach every training step's loss; 1 is the notebook's loss.
    import core.train as ct

    seen = []
    real = ct.plate_loss

    def spy(first, tail, y, province_weight=1.0):
        seen.append(province_weight)
        return real(first, tail, y, province_weight)

    monkeypatch.setattr(ct, "plate_loss", spy)
    train(TrainConfig(epochs=1, max_steps=2, batch_size=4, device="cpu", workers=0, province_weight=2.5), items)
    assert 2.5 in seen
    first = torch.randn(3, 1, 31)
    tail = torch.randn(3, 6, 35)
    y = torch.randint(0, 31, (3, 7))
    ce = torch.nn.functional.cross_entropy
    notebook = (ce(first[:, 0], y[:, 0]) + 6 * ce(tail.reshape(-1, 35), y[:, 1:].reshape(-1))) / 7
    assert torch.equal(real(first, tail, y), notebook)  # weight 1: the bundled model's arithmetic, bit for bit


def test_dataloader_workers_do_not_repeat_augmentations():
    # Two workers over 8 copies of one crop, two epochs: the augmented images must differ.
    # Without the reseed each worker (and each epoch) repeats the seeded pipeline's draws.
    from torch.utils.data import ConcatDataset, DataLoader

    from core.data import PlateDataset, train_augmentations
    from core.train import _worker_init

    f = sorted(REAL.glob("*.jpg"))[0]
    aug = train_augmentations(1.0, seed=0)
    ds = ConcatDataset([PlateDataset([(f, f.stem.split("-", 1)[1])] * 4, augment=aug)] * 2)
    dl = DataLoader(ds, batch_size=1, num_workers=2, worker_init_fn=_worker_init,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    images = [x.numpy().tobytes() for _ in range(2) for x, _ in dl]
    # 14 of 16 differ (an image can come out unchanged when no transform fires); without the
    # reseed only 3 do.
    assert len(images) == 16 and len(set(images)) >= 12


@pytest.mark.parametrize(("amp", "native_bf16", "precision"), [
    (True, True, "bfloat16 autocast"), (True, False, "float32"), (False, True, "float32"),
])  # fmt: skip
def test_cpu_precision_follows_the_cpu(items, monkeypatch, amp, native_bf16, precision):
    """bf16 autocast on the CPU only where it is native (else oneDNN emulates it, slower), and
    the saved weights are float32 and in the standard layout whatever the training layout."""
    import core.train as core_train

    monkeypatch.setattr(core_train, "cpu_bf16", lambda: native_bf16)
    cfg = TrainConfig(arch="lstm-fast", epochs=1, batch_size=8, max_steps=2, device="cpu", amp=amp, seed=0)
    res = train(cfg, items[:16], items[16:])
    assert res.checkpoint.summary["precision"] == precision
    for name, t in res.checkpoint.state_dict.items():
        assert t.is_contiguous(), name  # not channels_last: loads and exports like any checkpoint
        assert not t.is_floating_point() or t.dtype == torch.float32, name


def test_default_workers_follow_the_device(monkeypatch):
    import core.train as tr

    assert tr.default_workers(torch.device("cpu")) == 0  # the step and the augmentation share the cores
    for cpus, want in ((16, tr.GPU_WORKERS), (3, 2), (1, 0)):
        monkeypatch.setattr(tr.os, "cpu_count", lambda c=cpus: c)
        assert tr.default_workers(torch.device("cuda")) == want


def test_workers_start_as_asked(items, monkeypatch):
    """``workers=None`` resolves per device; a spawned worker really trains (the GUI's way)."""
    import core.train as tr

    made = []

    real_loader = tr.DataLoader

    def recording_loader(*a, **kw):
        made.append(kw)
        return real_loader(*a, **kw)

    monkeypatch.setattr(tr, "DataLoader", recording_loader)
    cfg = TrainConfig(arch="simple", epochs=1, max_steps=2, batch_size=4, device="cpu", val_split=0.25)
    res = train(cfg, items[:12])
    assert res.checkpoint.summary["workers"] == 0 and all(kw["num_workers"] == 0 for kw in made)

    made.clear()
    res = train(TrainConfig(**{**cfg.__dict__, "workers": 1, "start_method": "spawn"}), items[:12])
    assert res.checkpoint.summary["workers"] == 1 and res.checkpoint.summary["steps"] == 2
    assert [kw["multiprocessing_context"] for kw in made] == ["spawn", "spawn"]


def test_weights_broken_by_a_huge_learning_rate_are_never_saved(tmp_path, capsys):
    from core.cli import main

    folder = tmp_path / "crops"
    copy_real(folder, 16)
    out = tmp_path / "m.pt"
    args = ["train", str(folder), "--out", str(out), "--max-steps", "3", "--epochs", "1", "--workers", "0",
            "--arch", "lstm-fast", "--batch-size", "8"]  # fmt: skip
    assert main([*args, "--lr", "1e30"]) == 2  # broken weights or a non-finite loss: either way, no file
    assert "training diverged" in capsys.readouterr().err and not out.exists()
    for bad in ("nan", "0", "-1", "inf"):
        assert main([*args, "--lr-gamma", bad]) == 2
        assert "must be a finite number above 0" in capsys.readouterr().err


def test_training_without_a_validation_set_says_so_instead_of_nan(tmp_path, capsys):
    from core.cli import main

    folder = tmp_path / "crops"
    copy_real(folder, 8)
    assert main(["train", str(folder), "--out", str(tmp_path / "m.pt"), "--max-steps", "1", "--epochs", "1",
                 "--workers", "0", "--val-split", "0", "--arch", "lstm-fast"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "no validation set (the latest epoch is kept)" in out and "nan" not in out and "*best" not in out
