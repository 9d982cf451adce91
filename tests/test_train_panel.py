"""The Train panel: live curves from a real (tiny) fine-tune, cancel, errors, before/after, k-fold results."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

import gui.train_panel as tp  # noqa: E402
import gui.train_worker as tw  # noqa: E402
from core.finetune import Comparison, CrossValResult, read_curves  # noqa: E402
from core.models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from core.predict import PredictionResult  # noqa: E402
from gui.train_panel import TrainPanel  # noqa: E402

from ._util import REAL  # noqa: E402


@pytest.fixture(scope="module")
def panel_base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("panelbase") / "current.pt"
    save_checkpoint(Checkpoint(ModelConfig(), build_model(ModelConfig()).state_dict()), path)
    return path


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    d = tmp_path / "dataset"
    d.mkdir()
    for f in sorted(REAL.glob("*.jpg"))[::17][:16]:
        shutil.copy2(f, d / f.name)
    return d


@pytest.fixture
def panel(qtbot, tiny_folder, panel_base_ckpt) -> TrainPanel:
    p = TrainPanel()
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()
    p.set_dataset(tiny_folder, current_model=panel_base_ckpt, states_provider=dict)
    p.curves._timer.setInterval(50)
    p.predict_backend = "torch"
    p.device_combo.setCurrentIndex(p.device_combo.findData("cpu"))
    p.batch_spin.setValue(4)
    p.lr_spin.setValue(1e-3)
    p.val_split_spin.setValue(0.25)  # 16 -> 12 train (3 steps of 4) + 4 validation
    yield p
    p.shutdown(20000)


def _wait_idle(qtbot, panel: TrainPanel, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=timeout)


def _n(item) -> int:
    x, _ = item.getData()
    return 0 if x is None else len(x)


def test_one_epoch_reaches_the_plots_then_use_this_model(qtbot, panel, tiny_folder, panel_base_ckpt, monkeypatch):
    steps, epochs = [], []

    class SpyWorker(tw.TrainWorker):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.sig_step.connect(steps.append, Qt.ConnectionType.DirectConnection)
            self.sig_epoch.connect(epochs.append, Qt.ConnectionType.DirectConnection)

    monkeypatch.setattr(tp, "TrainWorker", SpyWorker)
    panel.epochs_spin.setValue(1)
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.is_running()
    # a second start while one runs is impossible
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    assert panel.start() is False

    raw = panel.curves.items["train_loss_raw"]
    seen_lengths = []
    qtbot.waitUntil(lambda: _n(raw) >= 1, timeout=60000)
    seen_lengths.append(_n(raw))
    _wait_idle(qtbot, panel)
    panel.curves.refresh()
    seen_lengths.append(_n(raw))
    assert seen_lengths[-1] == 3 and seen_lengths[0] <= seen_lengths[-1]
    assert len(steps) == 3 and len(epochs) == 1
    assert _n(panel.curves.items["train_loss_ema"]) == 3
    assert _n(panel.curves.items["lr"]) == 3
    for name in ("val_loss", "val_accuracy", "val_cer"):
        assert _n(panel.curves.items[name]) == 1

    r = panel.last_result
    assert r is not None and not r.stopped and panel.error_frame.isHidden()
    ck_path = r.checkpoint_path
    assert ck_path.parent == tiny_folder / ".plate-review" / "models"
    ck = load_checkpoint(ck_path)
    assert ck.summary["base"] == str(panel_base_ckpt) and ck.summary["selection"]["selected"] == 16
    # workers per device (none here on the CPU); never plainly forked from this Qt process
    assert ck.summary["workers"] == 0 and panel.train_config().start_method in ("forkserver", "spawn")
    assert panel.train_config().workers is None
    rows = read_curves(r.curves_path)
    assert sum(row.train_loss is not None for row in rows) == 3 and sum(row.is_validation for row in rows) == 1
    assert len(r.val_samples) == 4

    # reopen the curves later
    panel.curves.clear()
    assert _n(raw) == 0
    assert panel.open_curves(r.curves_path)
    assert _n(raw) == 3 and _n(panel.curves.items["val_cer"]) == 1

    # "Use this model": before/after on the validation part, then the app is told to switch
    # (a model that reads worse would be asked about first: say yes here)
    asked = []
    monkeypatch.setattr(
        tp.QMessageBox,
        "question",
        staticmethod(lambda *a, **k: asked.append(a[2]) or tp.QMessageBox.StandardButton.Yes),
    )
    assert panel.use_button.isEnabled()
    with qtbot.waitSignal(panel.sig_model_accepted, timeout=60000) as blocker:
        panel.use_button.click()
    assert blocker.args == [str(ck_path)]
    c = panel.last_comparison
    assert c.n == 4 and c.old_accuracy is not None
    assert panel.cmp_labels[("old", "cer")].text() != "--" and panel.cmp_labels[("new", "cer")].text() != "--"
    assert panel.current_model == str(ck_path)
    _wait_idle(qtbot, panel)


def test_the_step_axis_has_whole_steps_only(qtbot):
    import pyqtgraph as pg

    from gui.curves import CurvesWidget

    w = CurvesWidget()
    qtbot.addWidget(w)
    for step in (1, 2, 3, 4):  # a short run: pyqtgraph alone would tick at 1.5, 2.5...
        w.add_step(step, 0.5, 1e-4)
    w.refresh()
    assert any(v % 1 for _sp, vals in pg.AxisItem("bottom").tickValues(1, 4, 600) for v in vals)
    for plot in w.plots.values():
        axis = plot.getAxis("bottom")
        levels = axis.tickValues(1, 4, 600)
        assert levels and all(float(v).is_integer() for _sp, vals in levels for v in vals)
        assert all(sp >= 1 for sp, _vals in levels)
        assert axis.tickStrings([1.0, 2.0], 1.0, 1.0) == ["1", "2"]


def test_cancel_stops_at_the_next_step_and_keeps_a_checkpoint(qtbot, panel, monkeypatch):
    # Deterministic rather than timed: once Cancel is clicked, at most the optimiser step
    # already under way may finish. (The latency itself, < 2 s, is measured by
    # bench/bench_train.py: one step plus the checkpoint write.)
    steps: list[tuple[int, bool]] = []
    emit = tw.TrainWorker._emit_step

    def record(self, s):
        steps.append((s.step, self.stop_flag()))
        emit(self, s)

    monkeypatch.setattr(tw.TrainWorker, "_emit_step", record)
    panel.epochs_spin.setValue(200)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=60000)  # training is really under way
    panel.cancel_button.click()
    _wait_idle(qtbot, panel, timeout=10000)
    after_cancel = [step for step, stopping in steps if stopping]
    assert len(after_cancel) <= 1, f"{len(after_cancel)} steps ran after Cancel"
    r = panel.last_result
    assert r.stopped and r.train.steps == steps[-1][0] < 200 * 3
    assert load_checkpoint(r.checkpoint_path).state_dict
    assert "Cancelled" in panel.status_label.text()
    assert panel.start_button.isEnabled()


def test_trains_and_cancels_with_worker_processes_as_on_a_gpu(qtbot, panel, monkeypatch):
    """On a GPU the panel's runs get augmentation workers (forkserver or spawn, never a plain fork)."""
    import core.train as ct

    monkeypatch.setattr(ct, "default_workers", lambda device: 2)
    panel.epochs_spin.setValue(200)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1 or not panel.is_running(), timeout=120000)
    assert panel.is_running(), panel.status_label.text()
    panel.cancel_button.click()
    _wait_idle(qtbot, panel, timeout=15000)
    r = panel.last_result
    assert r.stopped and r.train.steps < 200 * 3
    assert load_checkpoint(r.checkpoint_path).summary["workers"] == 2


def test_out_of_memory_offers_half_the_batch(qtbot, panel, monkeypatch):
    calls = []

    def oom(config, *a, **kw):
        calls.append(config.batch_size)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tw, "run_finetune", oom)
    panel.batch_spin.setValue(64)
    assert panel.start()
    _wait_idle(qtbot, panel)
    assert panel.error_frame.isVisible() and "Out of memory" in panel.error_label.text()
    assert panel.retry_button.isVisible() and "32" in panel.retry_button.text()
    panel.retry_button.click()
    _wait_idle(qtbot, panel)
    assert calls == [64, 32] and panel.batch_spin.value() == 32
    assert "16" in panel.retry_button.text()


def test_a_bad_file_error_is_reported_not_raised(qtbot, panel, monkeypatch):
    def boom(*a, **kw):
        raise ValueError("3 training items have invalid labels, e.g. x.jpg")

    monkeypatch.setattr(tw, "run_finetune", boom)
    assert panel.start()
    _wait_idle(qtbot, panel)
    assert panel.error_frame.isVisible() and "invalid labels" in panel.error_label.text()
    assert not panel.retry_button.isVisible()
    assert panel.start_button.isEnabled()


def _r(rel: str, label: str, pred: str) -> SimpleNamespace:
    return SimpleNamespace(rel=rel, label=label, prediction=pred, error=None, label_error=None)


def test_before_after_lists_emit_the_samples_to_show(qtbot, panel):
    from core.finetune import compare_results

    old = [
        _r("a.jpg", "皖A26Y56", "皖A26Y50"),
        _r("b.jpg", "皖A26Y57", "皖A26Y57"),
        _r("c.jpg", "皖A26Y58", "皖A26Y58"),
    ]
    new = [
        _r("a.jpg", "皖A26Y56", "皖A26Y56"),
        _r("b.jpg", "皖A26Y57", "皖A26Y51"),
        _r("c.jpg", "皖A26Y58", "皖A26Y58"),
    ]
    c: Comparison = compare_results(old, new)
    panel.last_comparison = c
    panel.show_comparison(c)
    assert panel.fixed_list.count() == 1 and panel.broken_list.count() == 1
    assert "(1)" in panel.fixed_title.text()
    with qtbot.waitSignal(panel.sig_show_samples) as b:
        panel.fixed_list.itemClicked.emit(panel.fixed_list.item(0))
    assert b.args == [["a.jpg"]]
    with qtbot.waitSignal(panel.sig_show_samples) as b:
        panel.show_broken_button.click()
    assert b.args == [["b.jpg"]]


def test_crossval_results_are_emitted(qtbot, panel, monkeypatch):
    def fake(samples, k, config=None, progress=None, should_stop=None, **kw):
        for i in range(k):
            progress(tw.Progress((i + 1) * 1000, k * 1000, 1.0, 0.0, f"fold {i + 1}/{k}"))
        res = {s.rel: PredictionResult(s.rel, s.label, prediction=s.label, cer=0.0, correct=True) for s in samples}
        return CrossValResult(res, {s.rel: 0 for s in samples}, [set() for _ in range(k)], k)

    monkeypatch.setattr(tw, "crossval_scores", fake)
    panel.folds_spin.setValue(3)
    with qtbot.waitSignal(panel.sig_crossval_results, timeout=20000) as b:
        panel.crossval_button.click()
    assert len(b.args[0]) == 16
    _wait_idle(qtbot, panel)
    assert "16 samples" in panel.status_label.text()


def test_architecture_shows_the_base_checkpoints(qtbot, panel, tmp_path):
    """Fine-tuning keeps the base's architecture, so the (disabled) combo must show it, not a default."""
    fast = tmp_path / "fast.pt"
    save_checkpoint(
        Checkpoint(ModelConfig(arch="lstm-fast"), build_model(ModelConfig(arch="lstm-fast")).state_dict()), fast
    )
    panel.set_current_model(fast)
    assert panel.base_combo.currentIndex() == 0
    assert panel.arch_combo.currentData() == "lstm-fast"
    assert not panel.arch_combo.isEnabled()
    panel.base_combo.setCurrentIndex(panel.base_combo.findData(tp.SCRATCH))
    assert panel.arch_combo.isEnabled()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    panel.set_current_model(tmp_path / "bad.pt")  # a damaged file: no crash, reported at training time
    assert panel.base_combo.currentIndex() == 0


def test_a_worse_model_is_not_used_without_asking(qtbot, panel, monkeypatch):
    from core.finetune import Comparison

    c = Comparison(
        n=10, old_accuracy=1.0, old_cer=0.0, new_accuracy=0.0, new_cer=1.0, fixed=[], broken=[], old={}, new={}
    )
    asked = []
    monkeypatch.setattr(
        tp.QMessageBox, "question", staticmethod(lambda *a, **k: asked.append(a[2]) or tp.QMessageBox.StandardButton.No)
    )
    assert panel._confirm_switch(c) is False and len(asked) == 1 and "anyway" in asked[0]
    better = Comparison(
        n=10, old_accuracy=0.5, old_cer=0.1, new_accuracy=0.9, new_cer=0.02, fixed=[], broken=[], old={}, new={}
    )
    asked.clear()
    assert panel._confirm_switch(better) is True and not asked  # better: no question


def test_a_new_run_clears_the_last_comparison(qtbot, panel):
    from core.finetune import Comparison

    c = Comparison(n=4, old_accuracy=0.5, old_cer=0.1, new_accuracy=0.75, new_cer=0.05, fixed=["a.jpg"], broken=[])
    panel.show_comparison(c)
    assert panel.cmp_labels[("new", "accuracy")].text() != "--" and panel.fixed_list.count() == 1
    panel.clear_comparison()  # what start() does before training
    assert all(lab.text() == "--" for lab in panel.cmp_labels.values()) and panel.fixed_list.count() == 0
    assert panel.last_comparison is None
