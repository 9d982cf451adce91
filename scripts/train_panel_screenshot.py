"""Render docs/train_panel.png: the Train panel mid-way through a real (small) fine-tune.

Usage::

    QT_QPA_PLATFORM=offscreen python scripts/train_panel_screenshot.py [--model CKPT] [--n 32]

Copies ``--n`` real crops from data/plates_real into a temporary folder, fine-tunes
``--model`` (default: the bundled model, else random weights) with batch 4 on the CPU
and saves a screenshot once two validation passes are drawn. A second image with
the before/after filled in is written with ``--after``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.models import Checkpoint, ModelConfig, build_model, save_checkpoint  # noqa: E402
from core.predict import default_model_path  # noqa: E402


def _wait(app: QApplication, cond, timeout_s: float) -> bool:
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(100)
    waited = [0.0]

    def tick() -> None:
        waited[0] += 0.1
        if cond() or waited[0] > timeout_s:
            loop.quit()

    timer.timeout.connect(tick)
    timer.start()
    loop.exec()
    return bool(cond())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="base checkpoint (default: bundled model, else random weights)")
    ap.add_argument("--n", type=int, default=32, help="crops to copy")
    ap.add_argument("--out", default=str(REPO / "docs" / "train_panel.png"))
    ap.add_argument("--after", help="also save a screenshot after 'Use this model' here")
    ap.add_argument("--size", default="1400x560")
    args = ap.parse_args()

    app = QApplication.instance() or QApplication([])
    try:
        from gui.fonts import install_app_fonts
        from gui.style import STYLE_SHEET

        install_app_fonts(app)
        app.setStyleSheet(STYLE_SHEET)
    except ImportError:
        pass
    from gui.train_panel import TrainPanel

    tmp = Path(tempfile.mkdtemp(prefix="plate-review-shot-"))
    try:
        folder = tmp / "plates_sample"
        folder.mkdir()
        for f in sorted((REPO / "data" / "plates_real").glob("*.jpg"))[::7][: args.n]:
            shutil.copy2(f, folder / f.name)
        model = args.model or (str(default_model_path()) if default_model_path().is_file() else None)
        if model is None:
            model = str(tmp / "random.pt")
            save_checkpoint(Checkpoint(ModelConfig(), build_model(ModelConfig()).state_dict()), model)
        base = tmp / "current.pt"
        shutil.copy2(model, base)

        w, h = (int(v) for v in args.size.split("x"))
        panel = TrainPanel()
        panel.resize(w, h)
        panel.set_dataset(folder, current_model=base, states_provider=dict)
        panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
        panel.epochs_spin.setValue(5)
        panel.batch_spin.setValue(4)
        panel.lr_spin.setValue(3e-4)
        panel.val_split_spin.setValue(0.25)
        panel.predict_backend = "torch"
        panel.show()
        if not panel.start():
            print(panel.error_label.text(), file=sys.stderr)
            return 1
        n_val = lambda: len(panel.curves.series("val_cer")[0])  # noqa: E731
        _wait(app, lambda: n_val() >= 3 and (panel._last_step is not None and panel._last_step.step % 6 >= 2), 600)
        panel.curves.refresh()
        app.processEvents()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        panel.grab().save(args.out)
        print(f"wrote {args.out}")
        if args.after:
            _wait(app, lambda: not panel.is_running(), 600)
            panel.use_model()
            _wait(app, lambda: not panel.is_running(), 600)
            app.processEvents()
            panel.grab().save(args.after)
            print(f"wrote {args.after}")
        else:
            panel.cancel()
            panel.shutdown(30000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
