"""`plate-review train` under torchrun: 2 gloo processes on CPU, DistributedDataParallel, one checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch.distributed as dist

from core.models import load_checkpoint

from ._util import REAL, REPO


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_train_under_torchrun_with_two_gloo_processes(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for f in sorted(REAL.glob("*.jpg"))[::13][:10]:
        shutil.copy2(f, folder / f.name)
    out = tmp_path / "ddp.pt"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # two processes on a small shared CPU
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "QT_QPA_PLATFORM": "offscreen",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "core.cli",
        "train", str(folder), "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--epochs", "1",
        "--val-split", "0.2", "--device", "cpu",
    ]  # fmt: skip
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[:8000]}"
    ck = load_checkpoint(out)
    assert ck.summary["world_size"] == 2
    assert ck.summary["steps"] >= 1
    # only rank 0 prints the result line
    assert p.stdout.count("saved ") == 1, p.stdout
    assert not list(tmp_path.glob("*.tmp"))
