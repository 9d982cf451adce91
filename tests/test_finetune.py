"""core.finetune: training-item selection, curves CSV, before/after, k-fold scoring, the crossval CLI."""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import core.finetune as ft
from core import plates
from core.dataset import Sample, scan_folder
from core.models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint
from core.predict import StopFlag
from core.train import EpochInfo, StepInfo, TrainConfig

from ._util import REAL


def _copy_crops(dst: Path, n: int, step: int = 11) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(REAL.glob("*.jpg"))[::step][:n]:
        shutil.copy2(f, dst / f.name)
    return dst


@pytest.fixture(scope="module")
def ft_base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights LSTM checkpoint (quality is irrelevant here)."""
    path = tmp_path_factory.mktemp("ftbase") / "base.pt"
    save_checkpoint(Checkpoint(ModelConfig(), build_model(ModelConfig()).state_dict()), path)
    return path


def _sample(rel: str) -> Sample:
    return Sample(str(Path("/nowhere") / rel), rel, plates.parse_name(rel))


# ---------------------------------------------------------------- selection


def test_selection_uses_current_labels_and_review_states():
    samples = [
        _sample("0001-皖A26Y56.jpg"),  # verified
        _sample("0002-沪C21F13.jpg"),  # fixed
        _sample("0003-浙A6MX97.jpg"),  # unreviewed
        _sample("0004-皖A016E2.jpg"),  # unreadable
        _sample("0005-皖A0G826.jpg"),  # invalid (a human said the label is wrong/unusable)
        _sample("0006-XX.jpg"),  # name is not a valid plate
    ]
    states = {
        "0001-皖A26Y56.jpg": "verified",
        "0002-沪C21F13.jpg": "fixed",
        "0004-皖A016E2.jpg": "unreadable",
        "0005-皖A0G826.jpg": "invalid",
    }
    sel = ft.select_training_samples(samples, states)
    assert [s.rel for s in sel.samples] == ["0001-皖A26Y56.jpg", "0002-沪C21F13.jpg", "0003-浙A6MX97.jpg"]
    assert sel.excluded == {
        "0004-皖A016E2.jpg": "unreadable",
        "0005-皖A0G826.jpg": "invalid",
        "0006-XX.jpg": "invalid label",
    }
    assert sel.items[1] == (str(Path("/nowhere/0002-沪C21F13.jpg")), "沪C21F13")

    strict = ft.select_training_samples(samples, states, include_unreviewed=False)
    assert [s.rel for s in strict.samples] == ["0001-皖A26Y56.jpg", "0002-沪C21F13.jpg"]
    assert strict.excluded["0003-浙A6MX97.jpg"] == "unreviewed"
    assert strict.summary() == {"selected": 2, "unreviewed": 1, "unreadable": 1, "invalid": 1, "invalid label": 1}


def test_checkpoint_path_is_under_the_store_models_folder(tmp_path):
    p = ft.new_checkpoint_path(tmp_path, now=0)
    assert p.parent == ft.models_dir(tmp_path)
    assert p.suffix == ".pt" and p.parent.parent.name == ".plate-review"
    p.write_bytes(b"x")
    assert ft.new_checkpoint_path(tmp_path, now=0) != p  # never overwrites an earlier run
    assert ft.curves_path(p).name == p.stem + ".curves.csv"


# ---------------------------------------------------------------- curves CSV


def test_curves_csv_round_trip(tmp_path):
    path = tmp_path / "run.curves.csv"
    with ft.CurveLog(path) as log:
        log.add(ft.CurveRow.from_step(StepInfo(1, 1, 4, 3.5, 2e-4, 10.0, 3.0)))
        log.add(ft.CurveRow.from_step(StepInfo(1, 2, 4, 3.25, 2e-4, 11.0, 2.0)))
        log.add(ft.CurveRow.from_epoch(EpochInfo(1, 2, 2, 3.3, 3.1, 0.25, 0.4, 2e-4, 11.0, 1.0, True)))
    with open(path, encoding="utf-8") as f:
        assert f.readline().strip() == "step,epoch,train_loss,val_loss,val_accuracy,val_cer,lr,images_per_s"
    rows = ft.read_curves(path)
    assert [r.step for r in rows] == [1, 2, 2]
    assert rows[1].train_loss == pytest.approx(3.25) and not rows[1].is_validation
    assert rows[2].is_validation and rows[2].val_cer == pytest.approx(0.4) and rows[2].train_loss is None
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError):
        ft.read_curves(bad)


# ---------------------------------------------------------------- before / after


def _res(rel: str, label: str, pred: str, error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(rel=rel, label=label, prediction=pred, error=error, label_error=None)


def test_compare_results_lists_fixed_and_broken():
    old = [
        _res("a", "皖A26Y56", "皖A26Y56"),  # right -> right
        _res("b", "皖A26Y57", "皖A26Y51"),  # wrong -> right  (fixed)
        _res("c", "皖A26Y58", "皖A26Y58"),  # right -> wrong  (broken)
        _res("d", "皖A26Y59", "皖B26Y50"),  # wrong -> wrong
        _res("e", "皖A26Y50", "", error="unreadable"),  # not compared
    ]
    new = [
        _res("a", "皖A26Y56", "皖A26Y56"),
        _res("b", "皖A26Y57", "皖A26Y57"),
        _res("c", "皖A26Y58", "皖A26Y5B"),
        _res("d", "皖A26Y59", "皖A26Y50"),
        _res("e", "皖A26Y50", "", error="unreadable"),
    ]
    c = ft.compare_results(old, new)
    assert c.n == 4
    assert c.fixed == ["b"] and c.broken == ["c"]
    assert c.old_accuracy == pytest.approx(0.5) and c.new_accuracy == pytest.approx(0.5)
    # old: b 1 char, d 2 chars wrong; new: c 1, d 1 -> 3/28 vs 2/28
    assert c.old_cer == pytest.approx(3 / 28) and c.new_cer == pytest.approx(2 / 28)
    alone = ft.compare_results(None, new)
    assert alone.old_accuracy is None and alone.fixed == [] and alone.n == 4


def test_compare_models_on_real_predictions(tmp_path, ft_base_ckpt):
    folder = _copy_crops(tmp_path / "d", 3)
    samples = scan_folder(folder)
    c = ft.compare_models(samples, ft_base_ckpt, ft_base_ckpt, device="cpu", backend="torch")
    assert c.n == 3 and c.fixed == [] and c.broken == []  # the same model never fixes or breaks anything
    assert c.old_cer == pytest.approx(c.new_cer)


# ---------------------------------------------------------------- run_finetune: bad files


@pytest.mark.parametrize(
    "workers, start", [(0, None), (2, "spawn"), (2, "forkserver")], ids=["in-process", "spawned", "forkserver"]
)
def test_finetune_skips_an_unreadable_file_and_logs_curves(tmp_path, ft_base_ckpt, workers, start):
    """Also with DataLoader workers (the GUI spawns them on a GPU): their skips reach the result."""
    folder = _copy_crops(tmp_path / "d", 6)
    (folder / "0999-皖A12345.jpg").write_bytes(b"not a jpeg")
    sel = ft.folder_selection(folder, states={})
    out = tmp_path / "m.pt"
    # 7 samples, batch 4 (last partial batch dropped): one step
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", init=str(ft_base_ckpt), val_split=0.0,
                      workers=workers, start_method=start)  # fmt: skip
    stop = StopFlag()  # holds a thread lock, which a spawned worker cannot receive
    r = ft.run_finetune(cfg, sel, out, should_stop=stop)
    assert [Path(p).name for p in r.skipped] == ["0999-皖A12345.jpg"]
    assert "0999-皖A12345.jpg" in ft.skipped_path(out).read_text(encoding="utf-8")
    assert load_checkpoint(r.checkpoint_path).summary["selection"]["selected"] == 7
    rows = ft.read_curves(r.curves_path)
    assert [row.step for row in rows if row.train_loss is not None] == [1]


# ---------------------------------------------------------------- k-fold scoring


def test_kfold_never_predicts_a_sample_with_a_model_trained_on_it(tmp_path, ft_base_ckpt, monkeypatch):
    folder = _copy_crops(tmp_path / "d", 9)
    (folder / "0998-bad-name.jpg").write_bytes((folder / sorted(p.name for p in folder.iterdir())[0]).read_bytes())
    samples = scan_folder(folder)
    assert len(samples) == 10

    trained: dict[str, set[str]] = {}  # checkpoint path -> rels its model trained or validated on
    predicted: dict[str, str] = {}  # rel -> checkpoint path of the model that predicted it
    real_run, real_predict = ft.run_finetune, ft.predict_samples

    def spy_run(config, selection, out, *a, **kw):
        trained[str(out)] = {s.rel for s in selection.samples}
        return real_run(config, selection, out, *a, **kw)

    def spy_predict(samples_, predictor, *a, **kw):
        for s in samples_:
            assert s.rel not in predicted, "a sample was scored twice"
            predicted[s.rel] = str(predictor.model_path)
        return real_predict(samples_, predictor, *a, **kw)

    monkeypatch.setattr(ft, "run_finetune", spy_run)
    monkeypatch.setattr(ft, "predict_samples", spy_predict)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", val_split=0.0, max_steps=1)
    cv = ft.crossval_scores(samples, k=3, init=ft_base_ckpt, config=cfg, backend="torch", work_dir=tmp_path / "cv")

    assert set(cv.folds) == {s.rel for s in samples}
    sizes = sorted(list(cv.folds.values()).count(f) for f in range(3))
    assert sizes == [3, 3, 4]
    assert set(cv.results) == {s.rel for s in samples} == set(predicted)
    for rel, f in cv.folds.items():
        assert rel not in cv.trained_on[f]
        assert rel not in trained[predicted[rel]], f"{rel} was scored by a model trained on it"
        assert Path(predicted[rel]).name == f"fold{f}.pt"
        # every other fold's model did train on it (when its label is trainable)
        if plates.parse_name(rel).valid:
            assert all(rel in cv.trained_on[g] for g in range(3) if g != f)
    assert cv.results["0998-bad-name.jpg"].label_error  # scored, never trained on
    assert assign_is_deterministic(samples)


def assign_is_deterministic(samples: list[Sample]) -> bool:
    rels = [s.rel for s in samples]
    return ft.assign_folds(rels, 3, 0) == ft.assign_folds(list(reversed(rels)), 3, 0)


def test_kfold_rejects_bad_k():
    with pytest.raises(ValueError):
        ft.crossval_scores([_sample("0001-皖A26Y56.jpg")] * 3, k=1)
    with pytest.raises(ValueError):
        ft.crossval_scores([_sample("0001-皖A26Y56.jpg")] * 3, k=4)


# ---------------------------------------------------------------- CLI


def test_crossval_cli_writes_the_csv(tmp_path, ft_base_ckpt, capsys, monkeypatch):
    import core.cli.crossval as cli

    folder = _copy_crops(tmp_path / "d", 6)
    seen = {}

    def fake_scores(samples, k, config, **kw):  # the core function is tested above; this checks the plumbing
        seen.update(k=k, config=config, **kw)
        folds = ft.assign_folds([s.rel for s in samples], k)
        res = {
            s.rel: ft.PredictionResult(s.rel, s.label, prediction=s.label, confidence=0.9, cer=0.0, correct=True)
            for s in samples
        }
        return ft.CrossValResult(res, folds, [set() for _ in range(k)], k)

    monkeypatch.setattr(cli, "crossval_scores", fake_scores)
    parser = argparse.ArgumentParser()
    cli.add_crossval_command(parser.add_subparsers())
    out = tmp_path / "cv.csv"
    args = parser.parse_args(
        ["crossval", str(folder), "--folds", "2", "--out", str(out), "--init", str(ft_base_ckpt),
         "--max-steps", "1", "--batch-size", "4", "--val-split", "0", "--device", "cpu"]
    )  # fmt: skip
    assert args.func(args) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "label", "prediction", "cer", "correct", "confidence", "label_score", "zoomed", "negative",
                       "fold"]  # fmt: skip
    assert sorted(r[0] for r in rows[1:]) == sorted(p.name for p in folder.iterdir() if p.is_file())
    assert {r[9] for r in rows[1:]} == {"0", "1"}  # the fold
    assert "folds=2" in capsys.readouterr().out
    assert seen["k"] == 2 and seen["config"].init == str(ft_base_ckpt) and seen["config"].max_steps == 1
    assert seen["include_unreviewed"] is True
