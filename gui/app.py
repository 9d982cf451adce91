"""Start the review app: ``run(argv) -> exit code`` (used by main.py and ``plate-review gui``)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import weakref
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("plate_review.gui")

ORG, APP = "PlateReview", "Plate Review"


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="plate-review gui", description="Review licence-plate labels, likeliest label errors first."
    )
    from core.cli import app_version

    p.add_argument("--version", action="version", version=f"plate-review {app_version()}")
    p.add_argument("folder", nargs="?", help="dataset folder (default: the bundled sample folder)")
    p.add_argument("--model", help="checkpoint to predict with (default: the bundled model)")
    p.add_argument("--no-store", action="store_true", help="do not write .plate-review/ (no cache, no renames)")
    return p.parse_args(list(argv))


def install_excepthook(parent_getter=lambda: None) -> None:
    """Show unexpected exceptions (from slots and events) in a dialog and log them; keep running.

    ``parent_getter`` returns the dialog's parent window or ``None`` (a ``weakref.ref`` fits).
    """
    from PySide6.QtWidgets import QMessageBox

    def hook(etype, value, tb) -> None:
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, value, tb)
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log.error("unexpected error:\n%s", text)
        try:
            box = QMessageBox(parent_getter())
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle("Plate Review: unexpected error")
            box.setText(f"{etype.__name__}: {value}")
            box.setInformativeText("Your edits are saved. The app keeps running; details are in the log.")
            box.setDetailedText(text)
            box.exec()
        except Exception:  # never let the hook itself crash the app
            sys.__excepthook__(etype, value, tb)

    sys.excepthook = hook


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (folder, --model), open the main window, run the event loop."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from . import fonts, style
    from .main_window import SAMPLE_FOLDER, MainWindow

    QCoreApplication.setOrganizationName(ORG)
    QCoreApplication.setApplicationName(APP)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    fonts.install_app_fonts(app)
    app.setStyleSheet(style.STYLE_SHEET)
    win = MainWindow(model_path=args.model, use_store=not args.no_store)
    # The hook must not keep the window alive: it would outlive the QApplication, and Python would
    # free its wrapper during interpreter shutdown, after Qt is gone.
    install_excepthook(weakref.ref(win))
    try:
        win.show()
        folder = Path(args.folder) if args.folder else SAMPLE_FOLDER
        if not folder.is_dir():
            print(f"error: {folder}: not a folder", file=sys.stderr)
            return 2
        win.open_folder(folder)
        return app.exec()
    finally:
        close_window(win)


def close_window(win) -> None:
    """Delete the window's Qt objects now, while the application exists (its closeEvent has stopped every
    thread), and restore Python's exception hook: nothing Qt outlives the event loop."""
    from PySide6.QtCore import QCoreApplication, QEvent

    sys.excepthook = sys.__excepthook__
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
