"""The Train panel's fine-tuning path without Qt: ``core.finetune.run_finetune`` as the panel
calls it (default workers, started as the panel starts them; a stop flag), on the 600 real crops plus one corrupt file.

Run:  python bench/finetune_path.py [--device cuda] [--epochs 15]

Prints the device, the number of augmentation workers the run chose, its wall time and
images/s, and which files it skipped (the corrupt one must be listed: a worker's skip has
to reach the result). Used by bench/gpu_check.sh on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import finetune as ft  # noqa: E402
from core.data import thread_safe_start_method  # noqa: E402
from core.models import load_checkpoint  # noqa: E402
from core.predict import StopFlag, default_model_path  # noqa: E402
from core.train import TrainConfig  # noqa: E402

CORRUPT = "9999-皖A12345.jpg"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crops"
        shutil.copytree(ROOT / "data" / "plates_real", folder)
        (folder / CORRUPT).write_bytes(b"not a jpeg")
        sel = ft.folder_selection(folder, states={})
        cfg = TrainConfig(
            init=str(default_model_path()),
            epochs=args.epochs,
            device=args.device,
            workers=None,
            start_method=thread_safe_start_method(),
        )
        t = time.perf_counter()
        r = ft.run_finetune(cfg, sel, Path(tmp) / "m.pt", should_stop=StopFlag())
        wall = time.perf_counter() - t
        summary = load_checkpoint(r.checkpoint_path).summary
        steps = r.train.steps
        secs = r.train.seconds
        print(f"device {summary['device']}, workers {summary['workers']}: {steps} steps of {cfg.batch_size} in "
              f"{secs:.1f} s = {steps * cfg.batch_size / secs:.0f} images/s (validation included; "
              f"{wall:.1f} s with the set-up)")  # fmt: skip
        print(f"skipped: {sorted(Path(p).name for p in r.skipped)}")
        ok = [Path(p).name for p in r.skipped] == [CORRUPT]
        print("corrupt file reported:", "yes" if ok else "NO")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
