"""Helper for tests/test_relabel.py: applies (or undoes) a CSV of corrections, to be killed at random.

Usage: python tests/relabel_worker.py FOLDER CSV CHUNK [before:N | linked:N]
Prints "ready" once the store is open, then relabels from the CSV; when the CSV is
already fully applied it undoes it instead, so every run has renames to interrupt.

With ``before:N`` the worker stops just before its N-th file move, with ``linked:N``
after the N-th move has made the new hard link but before the old name is unlinked;
either way it prints "stalled" and waits to be killed. Kills then land inside a batch
for certain, whatever the machine's speed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import time  # noqa: E402

from core import relabel  # noqa: E402
from core.relabel import read_corrections, relabel_from_csv, undo  # noqa: E402
from core.store import Store  # noqa: E402


def _stall_at(spec: str) -> None:
    """Make the N-th file move stop (see the module docstring)."""
    where, n = spec.split(":")
    real_move = relabel.move_no_overwrite
    calls = 0

    def move(src, dst) -> None:
        nonlocal calls
        calls += 1
        if calls == int(n):
            if where == "linked":
                os.link(src, dst, follow_symlinks=False)  # the first half of move_no_overwrite
            print("stalled", flush=True)
            while True:
                time.sleep(60)
        real_move(src, dst)

    relabel.move_no_overwrite = move


def main() -> int:
    folder, csv_path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4:
        _stall_at(sys.argv[4])
    rows = read_corrections(csv_path)
    store = Store.open(folder)
    print("ready", flush=True)
    if all(not os.path.exists(os.path.join(folder, r.file)) for r in rows):
        report = undo(store, steps=100, chunk=chunk)
        print("undo", report.summary(), flush=True)
    else:
        report = relabel_from_csv(store, rows, chunk=chunk)
        print("relabel", report.summary(), flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
