"""Benchmark the store: journaled renames per second, and reopening a 200,000-file folder.

Usage: python bench/bench_store.py [--renames 10000] [--files 200000]

Creates its data in a temporary folder (files are hard links of one real crop, so 200k
files cost little disk). Targets: >= 1,000 renames/s; reopen (scan + stat + cache lookup)
with a warm cache < 3 s. Also times ``Store.cached_rows`` (what the GUI shows before its scan).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import plates  # noqa: E402
from core import relabel as R  # noqa: E402
from core.store import Store, scan_files  # noqa: E402

REAL = Path(__file__).resolve().parents[1] / "data" / "plates_real"


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        model = platform.processor()
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _make(folder: Path, n: int, srcs: list[Path]) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i in range(n):
        sub = folder / f"part{i // 20000:02d}"  # sub-folders, as large datasets have
        sub.mkdir(exist_ok=True)
        name = f"{i:06d}-皖A{i % 100000:05d}.jpg"
        os.link(srcs[i % len(srcs)], sub / name)  # spread: ext4 allows 65,000 links per file
        names.append(f"{sub.name}/{name}")
    return names


def bench_renames(tmp: Path, n: int) -> dict[str, float]:
    folder = tmp / "renames"
    names = _make(folder, n, sorted(REAL.glob("*.jpg")))
    with Store.open(folder) as s:
        changes = [(rel, "京B" + plates.parse_name(rel.rsplit("/", 1)[1]).label[2:]) for rel in names]
        t = time.perf_counter()
        rep = R.relabel(s, changes)
        t_do = time.perf_counter() - t
        assert len(rep.renamed) == n, rep.summary()
        t = time.perf_counter()
        R.undo(s)
        t_undo = time.perf_counter() - t
    return {"renames": n, "relabel_s": t_do, "relabel_per_s": n / t_do, "undo_s": t_undo, "undo_per_s": n / t_undo}


def bench_reopen(tmp: Path, n: int) -> dict[str, float]:
    folder = tmp / "reopen"
    t = time.perf_counter()
    _make(folder, n, sorted(REAL.glob("*.jpg")))
    t_make = time.perf_counter() - t
    files = scan_files(folder)
    recs = [
        {"rel": f.rel, "label": "皖A00000", "prediction": "皖A00000", "probs": [0.99] * 7, "runner_up": "京B11111",
         "runner_up_probs": [0.01] * 7, "confidence": 0.93, "cer": 0.0, "correct": True}
        for f in files
    ]  # fmt: skip
    model = "0" * 64
    with Store.open(folder) as s:
        t = time.perf_counter()
        s.put_predictions(model, recs, {f.rel: (f.size, f.mtime_ns) for f in files})
        t_put = time.perf_counter() - t
    del recs, files
    # Warm cache, fresh Store: what opening the folder again costs.
    c0 = time.process_time()  # CPU time too: wall time is inflated when the machine is shared
    t0 = time.perf_counter()
    s = Store.open(folder)
    t1 = time.perf_counter()
    files = scan_files(folder)
    t2 = time.perf_counter()
    cached = s.cached_predictions(model, files)
    t3 = time.perf_counter()
    c3 = time.process_time()
    s.close()
    assert len(cached) == n
    # What the GUI shows before it scans: the cached rows as last stored (no scan, no stat).
    with Store.open(folder) as s:
        t = time.perf_counter()
        rows = s.cached_rows(model)
        t_rows = time.perf_counter() - t
    assert len(rows) == n
    del rows
    # The same with core.data.scan_folder (parses names) + os.stat, as predict may do it.
    from core.dataset import scan_folder

    t4 = time.perf_counter()
    samples = scan_folder(folder)
    stats = [(x.rel, *(lambda st: (st.st_size, st.st_mtime_ns))(os.stat(x.file))) for x in samples]
    t5 = time.perf_counter()
    with Store.open(folder) as s2:
        cached2 = s2.cached_predictions(model, stats)
    t6 = time.perf_counter()
    assert len(cached2) == n
    return {
        "files": n, "make_s": t_make, "put_s": t_put, "open_s": t1 - t0, "scan_stat_s": t2 - t1,
        "lookup_s": t3 - t2, "reopen_total_s": t3 - t0, "reopen_cpu_s": c3 - c0, "scan_folder_stat_s": t5 - t4,
        "reopen_total_scan_folder_s": t6 - t4, "cached_rows_s": t_rows,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renames", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=200_000)
    args = ap.parse_args()
    print(f"machine: {_cpu()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        r = bench_renames(Path(tmp), args.renames)
        print(f"journaled renames: {r['renames']} in {r['relabel_s']:.2f} s = {r['relabel_per_s']:,.0f} renames/s "
              f"(undo: {r['undo_s']:.2f} s = {r['undo_per_s']:,.0f}/s)  target >= 1,000/s")  # fmt: skip
        o = bench_reopen(Path(tmp), args.files)
        print(f"reopen {o['files']:,} files, warm cache: {o['reopen_total_s']:.2f} s total "
              f"(open+reconcile {o['open_s']:.2f} s, scan+stat {o['scan_stat_s']:.2f} s, "
              f"cache lookup {o['lookup_s']:.2f} s; CPU time {o['reopen_cpu_s']:.2f} s)  target < 3 s")  # fmt: skip
        print(f"  rows shown before the scan (Store.cached_rows, no stat): {o['cached_rows_s']:.2f} s")
        print(f"  with core.data.scan_folder + os.stat instead: {o['reopen_total_scan_folder_s']:.2f} s "
              f"(scan+parse+stat {o['scan_folder_stat_s']:.2f} s)")  # fmt: skip
        print(
            f"  (setup: {o['make_s']:.1f} s to create the files, {o['put_s']:.1f} s to cache {o['files']:,} predictions)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
