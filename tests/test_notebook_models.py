"""The notebook's own model files open as they are: its state_dict (.pth) and Lightning's .ckpt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.cli import main as cli
from core.data import preprocess, resize_for_model
from core.decode import decode
from core.images import read_rgb
from core.models import CheckpointError, load_checkpoint
from core.plates import OTHERS, PROVINCES
from core.predict import Predictor

from ._util import REAL


def _block(cin: int, cout: int, stride, last: bool = False) -> list[nn.Module]:
    if last:
        return [nn.Conv2d(cin, cout, 3, padding=1, stride=stride), nn.ReLU(), nn.MaxPool2d(2, 2)]
    return [nn.Conv2d(cin, cout, 3, padding=1, stride=stride), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout2d(0.2),
            nn.MaxPool2d(2, 2)]  # fmt: skip


class NotebookOCR(nn.Module):
    """The notebook's layout and layer names (written from its description, not imported)."""

    def __init__(self, lstm: bool):
        super().__init__()
        self.cnn_layers = nn.Sequential(
            *_block(3, 32, 1), *_block(32, 64, (2, 1)), *_block(64, 128, 1), *_block(128, 256, 2, last=True)
        )
        width = 256
        if lstm:
            self.lstm = nn.LSTM(256, 128, num_layers=2, batch_first=True, dropout=0.2, bidirectional=True)
        self.hieroglyphs_cls = nn.Linear(width, len(PROVINCES))
        self.other_cls = nn.Linear(width, len(OTHERS))
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x):
        out = self.cnn_layers(x).squeeze(2).permute(0, 2, 1)
        if hasattr(self, "lstm"):
            out, _ = self.lstm(out)
        return self.hieroglyphs_cls(out[:, :1]), self.other_cls(out[:, 1:])


def _trained_like(lstm: bool) -> NotebookOCR:
    torch.manual_seed(3)
    m = NotebookOCR(lstm)
    for mod in m.modules():  # BatchNorm statistics as after training, not the identity
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.mark.parametrize("lstm", [True, False])
@pytest.mark.parametrize("how", ["pth", "ckpt"])
def test_the_notebooks_files_read_plates_as_its_own_forward(tmp_path, lstm, how):
    m = _trained_like(lstm)
    path = tmp_path / f"model.{how}"
    if how == "pth":
        torch.save(m.state_dict(), path)  # what the notebook does
    else:  # what Lightning's trainer writes (built here: no Lightning dependency)
        torch.save({"epoch": 6, "global_step": 1234, "pytorch-lightning_version": "1.8.6", "state_dict": m.state_dict(),
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}], "lr_schedulers": []}, path)  # fmt: skip
    ck = load_checkpoint(path)
    assert ck.config.arch == ("lstm" if lstm else "simple") and ck.summary["imported_from"] == str(path)
    files = sorted(REAL.glob("*.jpg"))[:24]
    x = torch.from_numpy(np.stack([preprocess(read_rgb(f)) for f in files]))
    with torch.inference_mode():
        first, tail = m(x)
    p = Predictor(path, backend="torch", views=False)  # the notebook reads the crop alone
    f2, t2 = p.probabilities(np.stack([p.prepare(read_rgb(f)) for f in files]))[:2]
    assert np.allclose(f2, first.softmax(-1).numpy(), atol=1e-5) and np.allclose(
        t2, tail.softmax(-1).numpy(), atol=1e-5
    )
    got = [r[0] for r in p.decode(f2, p.apply_grammar(t2))]
    assert got == decode(first, tail, PROVINCES, OTHERS)  # its own argmax, with the plate grammar applied


def test_import_model_saves_a_plate_review_checkpoint(tmp_path, capsys):
    src = tmp_path / "lstm_model.pth"
    torch.save(_trained_like(True).state_dict(), src)
    out = tmp_path / "model.pt"
    assert cli(["import-model", str(src), "--out", str(out)]) == 0
    ck = load_checkpoint(out)
    assert ck.summary["import_format"] == "the notebook's state_dict" and ck.summary["imported_from"] == str(src)
    assert "wrote" in capsys.readouterr().out


def test_other_files_get_one_line_naming_what_was_expected(tmp_path, capsys):
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, odd)
    with pytest.raises(CheckpointError, match="notebook's state_dict"):
        load_checkpoint(odd)
    other_classes = tmp_path / "other.pth"
    sd = _trained_like(False).state_dict()
    sd["other_cls.weight"] = torch.zeros(40, 256)
    sd["other_cls.bias"] = torch.zeros(40)
    torch.save(sd, other_classes)
    with pytest.raises(CheckpointError, match="40 character classes"):
        load_checkpoint(other_classes)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00garbage" * 100)
    assert cli(["import-model", str(garbage), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "garbage.ckpt" in err[0] and "weights_only" not in err[0]


def test_fine_tuning_starts_from_the_notebooks_file(tmp_path):
    from ._util import copy_real

    src = tmp_path / "lstm_model.pth"
    torch.save(_trained_like(True).state_dict(), src)
    folder = tmp_path / "ds"
    copy_real(folder, 8)
    out = tmp_path / "tuned.pt"
    rc = cli(["train", str(folder), "--out", str(out), "--init", str(src), "--epochs", "1", "--max-steps", "1",
              "--batch-size", "4", "--val-split", "0.25"])  # fmt: skip
    assert rc == 0 and load_checkpoint(out).summary["init"] == str(src)


def test_export_model_writes_an_onnx_that_matches_pytorch(tmp_path, capsys):
    import onnxruntime as ort

    src = tmp_path / "lstm_model.pth"
    torch.save(_trained_like(True).state_dict(), src)
    out = tmp_path / "deploy.onnx"
    assert cli(["export-model", str(src), "--out", str(out)]) == 0
    assert "largest difference from PyTorch" in capsys.readouterr().out
    files = sorted(REAL.glob("*.jpg"))[:4]
    p = Predictor(src, backend="torch")
    pixels = np.stack([resize_for_model(read_rgb(f), (64, 224)) for f in files])
    first, tail = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"pixels": pixels})[:2]
    f2, t2 = p.probabilities(np.stack([p.prepare(read_rgb(f)) for f in files]))[:2]
    assert np.allclose(first, f2, atol=1e-4) and np.allclose(tail, t2, atol=1e-4)


def test_weights_of_another_size_are_said_layer_by_layer(tmp_path):
    sd = _trained_like(True).state_dict()
    key = next(k for k in sd if k.startswith("lstm.weight_ih_l0"))
    sd[key] = torch.zeros(sd[key].shape[0], sd[key].shape[1] // 2)  # a narrower LSTM input
    path = tmp_path / "narrow.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "do not fit" in msg and "size mismatch for lstm.weight_ih_l0" in msg and "damaged" not in msg


def test_export_model_never_replaces_its_input_nor_a_good_export_with_a_refused_one(tmp_path, capsys, monkeypatch):
    import onnxruntime as ort

    src = tmp_path / "lstm_model.pth"
    torch.save(_trained_like(True).state_dict(), src)
    before = src.read_bytes()
    assert cli(["export-model", str(src), "--out", str(src)]) == 2
    assert "must not be the checkpoint itself" in capsys.readouterr().err and src.read_bytes() == before
    out = tmp_path / "deploy.onnx"
    assert cli(["export-model", str(src), "--out", str(out)]) == 0
    good = out.read_bytes()

    real_session = ort.InferenceSession

    class Off:  # an onnxruntime whose readings differ from PyTorch's
        def __init__(self, *a, **kw):
            self.real = real_session(*a, **kw)

        def run(self, *a, **kw):
            return [o + 0.5 for o in self.real.run(*a, **kw)]

    monkeypatch.setattr(ort, "InferenceSession", Off)
    assert cli(["export-model", str(src), "--out", str(out)]) == 2
    assert "differs from PyTorch" in capsys.readouterr().err
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["deploy.onnx", "lstm_model.pth"]


def test_the_apps_own_deployment_export_is_named_for_what_it_is(tmp_path):
    from core.predict import open_reader

    src = tmp_path / "lstm_model.pth"
    torch.save(_trained_like(True).state_dict(), src)
    out = tmp_path / "deploy.onnx"
    assert cli(["export-model", str(src), "--out", str(out), "--one-view"]) == 0
    with pytest.raises(CheckpointError, match="a deployment export of a Plate Review checkpoint"):
        open_reader(out)
