"""Render docs/screenshot.png: the main window at 1280x800 on the sample folder after inference.

    QT_QPA_PLATFORM=offscreen python -m gui.screenshot [--model CKPT] [--row 3] [--out docs/screenshot.png]
        [--size 1280x800] [--second MODEL [--second-dict DICT]] [--confusions OUT] [--train]
        [--folder DIR [--select FILE]]

Works on a copy of resources/sample/ (the bundled folder is never written to).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: resources/models/default.pt)")
    ap.add_argument("--row", type=int, default=3, help="table row to select")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--size", default="1280x800", help="window size, WxH")
    ap.add_argument("--second", help="a second opinion (Model > Second Opinion) to show")
    ap.add_argument("--second-dict", help="the second reader's dictionary, if it is a CTC recognizer")
    ap.add_argument("--confusions", help="also save the confusion matrix (View > Confusions) to this file")
    ap.add_argument("--train", action="store_true", help="with the Train panel open")
    ap.add_argument("--folder", help="a folder to show instead of the bundled sample (copied first)")
    ap.add_argument("--select", help="select this file instead of --row")
    args = ap.parse_args(argv)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from . import fonts, style
    from .main_window import SAMPLE_FOLDER, MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="plate_review_shot_"))
    try:
        folder = tmp / "sample"
        shutil.copytree(args.folder or SAMPLE_FOLDER, folder)
        app = QApplication.instance() or QApplication([])
        app.setStyle("Fusion")
        fonts.install_app_fonts(app)
        app.setStyleSheet(style.STYLE_SHEET)
        win = MainWindow(model_path=args.model, settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
        win.resize(*map(int, args.size.lower().split("x")))
        win.show()
        done: list[bool] = []
        win.sig_run_finished.connect(done.append)
        win.open_folder(folder)
        t = time.time()
        while not done and time.time() - t < 300:
            app.processEvents()
            time.sleep(0.01)
        if args.second:
            second: list[bool] = []
            win.sig_second_finished.connect(lambda: second.append(True))
            win.set_second_opinion(args.second, args.second_dict)
            while not second and time.time() - t < 300:
                app.processEvents()
                time.sleep(0.01)
        row = win.model.row_of(args.select) if args.select else None
        win.table.select_row(args.row if row is None else row)
        win.table.setFocus()
        for _ in range(50):
            app.processEvents()
            time.sleep(0.02)
        if args.train and win.train_dock is not None:
            win.train_dock.show()
            for _ in range(20):
                app.processEvents()
                time.sleep(0.02)
        win.grab().save(args.out)
        if args.confusions:
            win.show_confusions()
            for _ in range(20):
                app.processEvents()
                time.sleep(0.02)
            win.confusion_dialog.grab().save(args.confusions)
        print(f"wrote {args.out} ({win.model_label.text()})")
        win.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
