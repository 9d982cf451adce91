"""Helper for tests/test_relabel.py: applies (or undoes) a CSV of corrections, to be killed at random.

Usage: python tests/relabel_worker.py FOLDER CSV CHUNK
Prints "ready" once the store is open, then relabels from the CSV; when the CSV is
already fully applied it undoes it instead, so every run has renames to interrupt.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.relabel import read_corrections, relabel_from_csv, undo  # noqa: E402
from core.store import Store  # noqa: E402


def main() -> int:
    folder, csv_path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
