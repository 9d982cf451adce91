"""PaddleOCR-style CTC recognizers (ONNX + dictionary) as readers: best path, probabilities, label score."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.cli import main as cli
from core.ctc import CTCReader
from core.models import CheckpointError
from core.predict import open_reader

from ._util import REAL

CHARS = "皖A12345S"


class _Fixed(nn.Module):
    """A CTC 'recognizer' whose per-frame probabilities are fixed: the label likelihoods are known exactly."""

    def __init__(self, probs: np.ndarray):
        super().__init__()
        self.register_buffer("p", torch.from_numpy(probs))

    def forward(self, x):
        return self.p[None].expand(x.shape[0], -1, -1) + 0 * x.mean()


def _table() -> np.ndarray:
    """Frames: 皖 _ A _ 1 _ 2 _ 3 _ 4 _ {5: 0.6, S: 0.4} _ (one-hot elsewhere; class 0 = blank)."""
    t = np.zeros((14, len(CHARS) + 1), np.float32)
    for f, ch in enumerate("皖A12345"):
        t[2 * f, CHARS.index(ch) + 1] = 1.0
        t[2 * f + 1, 0] = 1.0
    t[12] = 0
    t[12, CHARS.index("5") + 1], t[12, CHARS.index("S") + 1] = 0.6, 0.4
    return t


def export_fixed_recognizer(folder: Path) -> tuple[Path, Path]:
    """A CTC recognizer whose frames are fixed (:func:`_table`: it reads every image as
    皖A12345), written as ``folder/rec.onnx`` with its dictionary ``folder/rec.txt``."""
    path, chars = folder / "rec.onnx", folder / "rec.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Fixed(_table()), (torch.zeros(1, 3, 32, 320),), str(path), input_names=["x"],
                          output_names=["probs"], dynamic_axes={"x": {0: "b", 3: "w"}, "probs": {0: "b"}},
                          opset_version=17, dynamo=False)  # fmt: skip
    chars.write_text("\n".join(CHARS) + "\n", encoding="utf-8")
    return path, chars


@pytest.fixture
def recognizer(tmp_path):
    return export_fixed_recognizer(tmp_path)[0]


def test_best_path_probabilities_and_the_ctc_label_score(recognizer, tmp_path):
    r = open_reader(recognizer)
    assert isinstance(r, CTCReader) and r.dict_path.name == "rec.txt"
    probs = r.probabilities(np.zeros((1, 3, 32, 320), np.float32))[0]
    text, char_p = r.best_path(probs)
    assert text == "皖A12345" and char_p == pytest.approx([1, 1, 1, 1, 1, 1, 0.6])
    scores = r.label_scores(np.stack([probs] * 4), ["皖A12345", "皖A1234S", "皖A12344", "皖A1234Q"])
    assert scores[0] == pytest.approx(0.6, abs=1e-5) and scores[1] == pytest.approx(0.4, abs=1e-5)
    assert scores[2] == pytest.approx(0.0, abs=1e-6) and scores[3] is None  # Q: not in the dictionary


def test_predict_with_a_ctc_recognizer_orders_by_its_label_score(recognizer, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    src = sorted(REAL.glob("*.jpg"))[0]
    shutil.copy2(src, ds / "0001-皖A12345.jpg")
    shutil.copy2(src, ds / "0002-皖A1234S.jpg")
    out = tmp_path / "r.csv"
    assert cli(["predict", str(ds), "--model", str(recognizer), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["file"] for r in rows] == ["0002-皖A1234S.jpg", "0001-皖A12345.jpg"]
    assert float(rows[0]["label_score"]) == pytest.approx(0.4, abs=1e-4) and rows[1]["prediction"] == "皖A12345"


def test_a_wrong_or_missing_dictionary_is_one_line(recognizer, tmp_path, capsys):
    (tmp_path / "rec.txt").unlink()
    with pytest.raises(CheckpointError, match="needs its character dictionary"):
        CTCReader(recognizer)
    short = tmp_path / "short.txt"
    short.write_text("皖\nA\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not this model's dictionary"):
        CTCReader(recognizer, short)
    from ._util import copy_real

    copy_real(tmp_path / "ds", 4)
    assert cli(["train", str(tmp_path / "ds"), "--out", str(tmp_path / "t.pt"), "--init", str(recognizer)]) == 2
    assert "cannot be fine-tuned" in capsys.readouterr().err


def test_the_window_reads_with_a_ctc_recognizer_and_its_cache_is_used_again(qtbot, recognizer, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    dict_file = tmp_path / "elsewhere.txt"
    (tmp_path / "rec.txt").rename(dict_file)  # not beside the model: given explicitly
    ds = tmp_path / "ds"
    ds.mkdir()
    shutil.copy2(sorted(REAL.glob("*.jpg"))[0], ds / "0001-皖A1234S.jpg")
    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.sig_folder_loaded, timeout=20000):
        win.open_folder(ds)
    qtbot.waitUntil(lambda: not win.running, timeout=30000)
    with qtbot.waitSignal(win.sig_run_finished, timeout=30000):
        win.set_model(recognizer, dict_file)
    row = win.model.table.rows[0]
    assert row.prediction == "皖A12345" and row.label_score == pytest.approx(0.4, abs=1e-4)
    batches = []
    with qtbot.waitSignal(win.sig_run_finished, timeout=30000):
        win.open_folder(ds)
        win.open_run.worker.sig_batch.connect(batches.append)
    assert batches == []  # the second open reads the cache: the reader's identity is the same
    win.close()
