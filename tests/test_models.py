from __future__ import annotations

import pickle

import pytest
import torch

from core.models import (
    Checkpoint,
    CheckpointError,
    ModelConfig,
    build_model,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)


@pytest.mark.parametrize("arch, params", [("simple", 405_826), ("lstm", 1_196_354), ("lstm-fast", 1_196_354)])
def test_architectures_match_notebook(arch, params):
    m = build_model(ModelConfig(arch=arch)).eval()
    assert count_parameters(m) == params  # notebook: ~405k and ~1.2M
    first, tail = m(torch.zeros(2, 3, 64, 224))
    assert first.shape == (2, 1, 31) and tail.shape == (2, 6, 35)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(ModelConfig(arch="resnet"))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build_model(ModelConfig()).eval()
    ck = Checkpoint(ModelConfig(), m.state_dict(), metrics={"val_cer": 0.01}, summary={"recipe": "test"})
    path = save_checkpoint(ck, tmp_path / "m.pt")
    # loads with weights_only=True directly, too
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "plate-review-checkpoint" and raw["input_size"] == [64, 224]
    back = load_checkpoint(path)
    assert back.metrics["val_cer"] == 0.01 and back.summary["recipe"] == "test"
    x = torch.randn(3, 3, 64, 224)
    with torch.inference_mode():
        a, b = m(x), back.build()(x)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_damaged_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save(build_model(ModelConfig()).state_dict(), plain)  # a bare state_dict from elsewhere
    with pytest.raises(CheckpointError, match="not a model this app reads: expected a Plate Review checkpoint"):
        load_checkpoint(plain)
    good = save_checkpoint(Checkpoint(ModelConfig(), build_model(ModelConfig()).state_dict()), tmp_path / "g.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        load_checkpoint(cut)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_code_is_not_executed(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"format": "plate-review-checkpoint", "x": _Evil()}, p, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert "pwned" not in capsys.readouterr().out


def test_wrong_weights_for_arch(tmp_path):
    ck = Checkpoint(ModelConfig(arch="lstm"), build_model(ModelConfig(arch="simple")).state_dict())
    p = save_checkpoint(ck, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="its weights do not fit a lstm model"):
        load_checkpoint(p)
