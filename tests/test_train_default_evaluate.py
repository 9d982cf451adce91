"""``scripts/train_default.py --evaluate``: held-out figures rewritten, weights untouched."""

import pytest
import torch

import scripts.train_default as td
from core.models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint

from ._util import script_checkpoint


def test_evaluate_rewrites_the_held_out_figures_and_keeps_the_weights(tmp_path, monkeypatch):
    path = script_checkpoint(tmp_path / "m.pt")
    before = load_checkpoint(path)
    monkeypatch.setattr(td, "HELDOUT_SYNTH_PER_PROVINCE", 2)  # 2 x 31 plates per look: fast
    assert td.main(["--evaluate", str(path)]) == 0
    after = load_checkpoint(path)
    assert all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in before.state_dict)
    assert after.summary == before.summary
    m = after.metrics
    assert m["val_cer"] == 0.5  # training figures kept
    assert m["synth_per_province_n"] == 2 and m["synth_look"] == "matched"  # the look it was trained with
    assert m["heldout_real_n"] == 150 and 0.0 <= m["heldout_real_accuracy"] <= 1.0
    assert set(m["synth_harsh_per_province_accuracy"]) == set(before.provinces)


def test_evaluate_refuses_a_checkpoint_the_script_did_not_write(tmp_path):
    cfg = ModelConfig(arch="lstm-fast")
    path = save_checkpoint(Checkpoint(config=cfg, state_dict=build_model(cfg).state_dict()), tmp_path / "x.pt")
    with pytest.raises(SystemExit, match="not a checkpoint written by this script"):
        td.evaluate_only(path, 2)
