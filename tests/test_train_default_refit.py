"""``scripts/train_default.py --refit``: which real crops each stage trains and selects on.

``core.train.train`` is replaced by a stand-in that records its arguments and writes an
untrained checkpoint, so the test checks the script's plumbing in seconds.
"""

from pathlib import Path

import pytest
import torch
from torch.utils.data import ConcatDataset

import scripts.train_default as td
from core.data import PlateDataset
from core.models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint
from core.synth import SpliceDataset
from core.train import EpochInfo, TrainResult


def _names(items) -> set[str]:
    return {Path(p).name for p, _ in items}


def _real_crops(data: ConcatDataset) -> tuple[set[str], set[str]]:
    """(names of the augmented real crops, of the crops the spliced plates are cut from)."""
    real, spliced = set(), set()
    for part in data.datasets:
        if isinstance(part, PlateDataset):
            real |= _names(part.items)
        elif isinstance(getattr(part, "dataset", None), SpliceDataset):
            spliced |= set(part.dataset.labels)  # labels: SpliceDataset keeps images, not paths
    return real, spliced


@pytest.fixture
def calls(monkeypatch):
    recorded = []

    def fake_train(cfg, data, val=None, out=None, on_epoch=None, **_):
        recorded.append({"cfg": cfg, "data": data, "val": val})
        torch.manual_seed(len(recorded))
        ck = Checkpoint(
            config=ModelConfig(arch=cfg.arch), state_dict=build_model(ModelConfig(arch=cfg.arch)).state_dict()
        )
        path = save_checkpoint(ck, out)
        nan = float("nan")
        history = [
            EpochInfo(e, cfg.epochs, e, 1.0, nan, nan, 0.5, cfg.lr, 1.0, 1.0, True) for e in range(1, cfg.epochs + 1)
        ]
        return TrainResult(checkpoint=ck, best_path=path, history=history, seconds=1.0)

    monkeypatch.setattr(td, "train", fake_train)
    monkeypatch.setattr(td, "HELDOUT_SYNTH_PER_PROVINCE", 1)
    monkeypatch.setattr(td, "DEV_SYNTH_PER_PROVINCE", 1)  # the set each polish epoch is measured on
    return recorded


def test_refit_trains_mixed_and_polish_on_the_validation_crops_too(tmp_path, calls):
    # --refit is the default (the bundled file's recipe), so no flag is given.
    train_real, val_real, heldout = td.real_split()
    out = tmp_path / "m.pt"
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(out)]) == 0
    pretrain, mixed, *polish = calls
    assert len(polish) == 2  # --quick: two polish epochs
    # The pretrain stage is synthetic only and still selects with the validation crops.
    assert pretrain["val"] is not None and _real_crops(pretrain["data"]) == (set(), set())
    # The stages with real crops train on all 450 non-held-out crops and select on nothing.
    everything = _names(train_real) | _names(val_real)
    for call in (mixed, *polish):
        real, spliced = _real_crops(call["data"])
        assert real == everything and not real & _names(heldout)
        assert spliced == {lab for _, lab in train_real + val_real}
        assert call["val"] is None
    assert mixed["cfg"].epochs == td.REFIT_MIXED_EPOCHS
    ck = load_checkpoint(out)
    assert ck.summary["data"]["real_train"] == 450 and ck.summary["data"]["real_val"] == 0
    assert ck.summary["polish"]["chosen_epoch"] == 2  # the last polish epoch ships
    assert ck.summary["recipe"].endswith(" --refit")


def test_without_refit_the_validation_crops_stay_out_of_training(tmp_path, calls):
    train_real, val_real, _ = td.real_split()
    assert td.main(["--quick", "--dev", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    _, mixed, *polish = calls
    assert mixed["cfg"].epochs == 26
    for call in (mixed, *polish):
        real, spliced = _real_crops(call["data"])
        assert real == _names(train_real) and spliced == {lab for _, lab in train_real}
        assert call["val"] is not None


def test_refit_refuses_dev(capsys):
    with pytest.raises(SystemExit):
        td.main(["--refit", "--dev"])
    assert "--refit trains on the validation crops" in capsys.readouterr().err


def test_province_stage_follows_the_polish_stage_with_its_weight(tmp_path, calls):
    out = tmp_path / "m.pt"
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(out), "--province-epochs", "2"]) == 0
    _, _, *later = calls
    polish, province = later[:2], later[2:]
    assert [c["cfg"].province_weight for c in polish] == [1.0, 1.0]
    assert [c["cfg"].province_weight for c in province] == [3.0, 3.0]
    assert province[0]["cfg"].init.endswith("polish_2.pt")  # stage 5 continues the polish stage's output
    assert province[0]["cfg"].lr == td.PROVINCE_LR
    ck = load_checkpoint(out)
    assert ck.summary["province"]["chosen_epoch"] == 2 and ck.summary["selected_stage"] == "province epoch 2"
    assert "--province-epochs 2 --province-weight 3.0" in ck.summary["recipe"]


def test_start_continues_a_checkpoint_with_the_province_stage_only(tmp_path, calls):
    first = tmp_path / "first.pt"
    assert td.main(["--quick", "--work", str(tmp_path / "w1"), "--out", str(first)]) == 0
    n_before = len(calls)
    src = load_checkpoint(first)
    out = tmp_path / "second.pt"
    argv = ["--quick", "--start", str(first), "--province-epochs", "2", "--province-weight", "6"]
    assert td.main([*argv, "--work", str(tmp_path / "w2"), "--out", str(out)]) == 0
    province = calls[n_before:]
    assert len(province) == 2 and province[0]["cfg"].init == str(first)
    assert all(c["cfg"].province_weight == 6.0 and c["val"] is None for c in province)
    ck = load_checkpoint(out)
    assert ck.summary["recipe"] == src.summary["recipe"] + " --province-epochs 2 --province-weight 6.0"
    assert set(ck.summary["history"]) == {*src.summary["history"], "province"}
    assert "province" in ck.summary["seconds_per_stage"] and "heldout_real_accuracy" in ck.metrics


def test_start_needs_the_province_stage(tmp_path, capsys):
    with pytest.raises(SystemExit):
        td.main(["--start", str(tmp_path / "x.pt")])
    assert "needs --province-epochs" in capsys.readouterr().err


def test_a_cpu_without_bf16_is_told_the_recipe_is_slow(tmp_path, calls, monkeypatch, capsys):
    monkeypatch.setattr(td, "cpu_bf16", lambda: False)
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    assert td.SLOW_CPU_NOTE in capsys.readouterr().out
    monkeypatch.setattr(td, "cpu_bf16", lambda: True)
    assert td.main(["--quick", "--resume", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    assert td.SLOW_CPU_NOTE not in capsys.readouterr().out
