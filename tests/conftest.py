"""Shared test fixtures. Qt runs headless (offscreen) in every test."""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ["QT_QPA_PLATFORM"] = "offscreen"
# The user's cache, settings and data folders (platformdirs, QSettings) point into a temporary
# folder for the session, the subprocesses included: the tests neither use ONNX exports or
# settings that the user's own sessions (or earlier test runs) left, nor leave theirs behind.
_USER_DIRS = tempfile.mkdtemp(prefix="plate-review-tests-")
for _var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_USER_DIRS, _var.lower())


from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ._util import REAL, random_checkpoint_file  # noqa: E402


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_USER_DIRS, ignore_errors=True)


@pytest.fixture
def real_crops(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``real_crops(n=20, folder="crops", start=0)`` copies n real crops into tmp_path/folder.

    The crops are every file of data/plates_real from ``start`` on, sorted by name,
    names kept (``<id>-<PLATE>.jpg``). Returns the folder.
    """

    def make(n: int = 20, folder: str = "crops", start: int = 0) -> Path:
        dst = tmp_path / folder
        dst.mkdir(parents=True, exist_ok=True)
        for src in sorted(REAL.glob("*.jpg"))[start : start + n]:
            shutil.copy2(src, dst / src.name)
        return dst

    return make


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint with random weights (tests must not depend on model quality); made once per session."""
    return random_checkpoint_file(tmp_path_factory.mktemp("model") / "m.pt")


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    """A small dataset: 8 real crops, half in ``sub/``, and a file that is not an image."""
    d = tmp_path / "ds"
    (d / "sub").mkdir(parents=True)
    for i, p in enumerate(sorted(REAL.glob("*.jpg"))[:8]):
        shutil.copy2(p, (d / "sub" if i % 2 else d) / p.name)
    (d / "notes.txt").write_text("not an image")
    return d
