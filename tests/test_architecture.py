"""Core never imports Qt (napari's import-linter contract, as a test)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from ._util import REPO

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "gui", "shiboken6")


def test_core_sources_import_no_qt():
    offenders = []
    for path in (REPO / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_all_of_core_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, core, core.cli\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


TORCH_FREE = ("core.review_table", "core.dataset", "core.records", "core.label_score", "core.store", "core.session",
              "core.relabel", "core.export", "core.duplicates", "gui.table_model", "gui.review_view")  # fmt: skip


def test_dataset_and_review_modules_load_no_torch():
    """Torch is imported only where a model runs: the review's data types stay cheap to import."""
    code = (
        f"import importlib, sys\nfor m in {TORCH_FREE!r}: importlib.import_module(m)\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
