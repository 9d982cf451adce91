"""The bundled model, as shipped: loads, and reads the held-out real crops as its card says.

Guards the whole inference path (reading, the one preprocessing, ONNX export,
grammar-aware decoding) against drifting from what the model was evaluated with.
"""

from __future__ import annotations

import pytest

from core.dataset import scan_folder
from core.metrics import corpus_cer
from core.models import load_checkpoint
from core.predict import Predictor, default_model_path, predict_samples

from ._util import REAL, REPO

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="no bundled model yet")


@pytest.fixture(scope="module")
def heldout():
    names = set((REPO / "data" / "splits" / "heldout.txt").read_text(encoding="utf-8").split())
    samples = [s for s in scan_folder(REAL) if s.path.name in names]
    assert len(samples) == len(names) == 150
    return samples


def test_card_figures_reproduce(heldout):
    ck = load_checkpoint(default_model_path())
    assert ck.config.arch in ("lstm", "lstm-fast") and ck.input_size == (64, 224)
    assert default_model_path().stat().st_size <= 5 * 1024 * 1024
    assert ck.metrics["read_with_views"]  # the card's figures are read as the app reads (views, zoom)
    res = predict_samples(heldout, Predictor(backend="onnx"), workers=0)
    acc = sum(r.correct for r in res) / len(res)
    cer = corpus_cer([r.prediction for r in res], [r.label for r in res])
    assert acc == pytest.approx(ck.metrics["heldout_real_accuracy"], abs=0.014)  # 2 crops of 150
    assert cer == pytest.approx(ck.metrics["heldout_real_cer"], abs=0.003)


def test_onnx_and_torch_agree_on_real_crops(heldout):
    a = predict_samples(heldout, Predictor(backend="onnx"), workers=0)
    b = predict_samples(heldout, Predictor(backend="torch"), workers=0)
    same = sum(x.prediction == y.prediction for x, y in zip(a, b))
    assert same >= len(a) - 1


def test_the_model_card_shows_the_bundled_files_figures():
    # docs/MODEL.md's held-out rows are the ones the recipe prints from the checkpoint's metrics:
    # replacing the bundled file without its card fails here.
    from core.recipe import card_tables

    card = (REPO / "docs" / "MODEL.md").read_text(encoding="utf-8").splitlines()
    rows = card_tables(load_checkpoint(default_model_path()).metrics)
    assert len(rows) == 1 + 4 + 4
    missing = [row for row in rows if row not in card]
    assert not missing, "docs/MODEL.md lacks these rows of the bundled file's figures:\n" + "\n".join(missing)
