"""GUI scale benchmark: a 200,000-row results table and a warm-cache open of a 200,000-file folder.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--rows 200000] [--no-folder]
        [--folder DIR] [--only-open] [--opens N] [--cold N [--rounds R] [--one-view]]

Prints timings for model load, sort by every column, text/quick filters, counts,
scrolling (paint of a page with thumbnails), the real open of a folder whose
predictions are cached in the store, and the peak RSS. ``--cold N``: predicting N files
nobody predicted before, in the window (open -> run finished, the predictions written to the
folder's store) and with ``plate-review predict`` on the same files, with ``--no-cache`` (no
store) and as a user runs it (writing the store, which is first removed), interleaved rounds,
images/s of each; all read each
crop as the app does by default (three shifted views, zoomed where unsure, light plates also as negatives), or once with ``--one-view`` (*Model ▸ Read Shifted and Zoomed Views* off);
and the benchmark process's peak RSS after the first open (run it with ``--no-folder --only-open``
for the open alone).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models import READING_SUMMARY  # noqa: E402
from core.plates import LETTERS, OTHERS, PROVINCES  # noqa: E402
from core.predict import PredictionResult  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rand_plate(rng: random.Random) -> str:
    return rng.choice(PROVINCES) + rng.choice(LETTERS) + "".join(rng.choice(OTHERS) for _ in range(5))


def synthetic(n: int, seed: int = 0) -> list[PredictionResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rand_plate(rng)
        pred = label if rng.random() < 0.9 else label[:-1] + rng.choice(OTHERS)
        probs = [rng.uniform(0.5, 1.0) for _ in range(7)]
        conf = 1.0
        for p in probs:
            conf *= p
        r = PredictionResult(
            rel=f"{i:06d}-{label}.jpg", label=label, prediction=pred, probs=probs,
            runner_up=rand_plate(rng), runner_up_probs=[1 - p for p in probs], confidence=conf,
            cer=sum(a != b for a, b in zip(pred, label)) / 7, correct=pred == label,
        )  # fmt: skip
        if i % 5000 == 0:
            r.prediction, r.probs, r.error, r.cer, r.correct = "", [], "not a decodable image", None, None
        out.append(r)
    return out


def timed(label: str, fn, results: list) -> float:
    """Wall time of ``fn()``; also prints this process's CPU time (the machine may be shared)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    results.append((label, dt))
    print(f"{label:<48} {dt * 1000:9.1f} ms  (cpu {dc * 1000:.0f} ms)", flush=True)
    return dt


def bench_model(app, n: int, results: list) -> None:
    from PySide6.QtCore import Qt

    from gui.main_window import MainWindow
    from gui.table_model import COL_CER, COL_CONF, COL_CV, COL_FILE, HEADERS

    recs = synthetic(n)
    win = MainWindow(model_path=None, use_store=False)
    win.resize(1280, 800)
    win.show()
    app.processEvents()
    timed(f"load {n:,} rows into the model (worst first)", lambda: win.model.set_records(recs, {}), results)
    app.processEvents()
    for col, name in enumerate(HEADERS):
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
            o = "asc" if order == Qt.SortOrder.AscendingOrder else "desc"
            timed(
                f"sort by {name} {o}",
                lambda c=col, od=order: (win.table.sortByColumn(c, od), app.processEvents()),
                results,
            )
    win.table.sortByColumn(COL_CER, Qt.SortOrder.DescendingOrder)
    win.table.select_row(100)
    timed("text filter '皖a1'", lambda: (win.filter_edit.setText("皖a1"), app.processEvents()), results)
    timed("clear text filter", lambda: (win.filter_edit.clear(), app.processEvents()), results)
    timed(
        "quick filter: mismatches on", lambda: (win.set_quick_filter("mismatches", True), app.processEvents()), results
    )
    timed(
        "quick filter: mismatches off",
        lambda: (win.set_quick_filter("mismatches", False), app.processEvents()),
        results,
    )
    timed("counts over all rows", win.model.stats, results)
    win.set_quick_filter("mismatches", True)
    timed("counts with a quick filter on", win.model.stats, results)
    win.set_quick_filter("mismatches", False)
    cv = {r.rel: r for r in recs[::-1]}  # k-fold results for every row, then sort by them
    timed("cross-validation results -> CV score column", lambda: win.model.set_crossval(cv), results)
    timed("sort by CV score desc", lambda: (win.table.sortByColumn(COL_CV, Qt.SortOrder.DescendingOrder),
          app.processEvents()), results)  # fmt: skip
    timed("sort by CER desc with 1 filter on", lambda: (win.set_quick_filter("unreviewed", True),
          win.table.sortByColumn(COL_CER, Qt.SortOrder.DescendingOrder), app.processEvents()), results)  # fmt: skip
    win.set_quick_filter("unreviewed", False)
    win.set_quick_filter("mismatches", True)  # ~10 % of the rows shown
    for col, name in ((COL_FILE, "File"), (COL_CONF, "Confidence"), (COL_CER, "CER")):
        for order, o in ((Qt.SortOrder.AscendingOrder, "asc"), (Qt.SortOrder.DescendingOrder, "desc")):
            timed(f"re-sort by {name} {o}, mismatches filter on", lambda c=col, od=order: (
                  win.table.sortByColumn(c, od), app.processEvents()), results)  # fmt: skip
    timed("quick filter: mismatches off after those sorts",
          lambda: (win.set_quick_filter("mismatches", False), app.processEvents()), results)  # fmt: skip
    sb = win.table.verticalScrollBar()
    frames = []
    for k in range(60):
        t = time.perf_counter()
        sb.setValue(int(sb.maximum() * k / 60))
        win.table.viewport().repaint()
        frames.append(time.perf_counter() - t)
    frames.sort()
    print(
        f"{'scroll: paint one page (median / worst of 60)':<48} {frames[30] * 1000:9.1f} / {frames[-1] * 1000:.1f} ms"
    )
    results.append(("scroll page paint median", frames[30]))
    win.close()
    app.processEvents()


def make_folder(tmp: Path, n: int) -> Path:
    """A folder of ``n`` hard-linked real crops whose predictions are all cached; returns the checkpoint."""
    from core.models import Checkpoint, ModelConfig, build_model, file_sha256, save_checkpoint
    from core.store import Store, scan_files

    folder = tmp / "ds"
    folder.mkdir(parents=True)
    srcs = sorted((ROOT / "data" / "plates_real").glob("*.jpg"))
    recs = synthetic(n, seed=1)
    t = time.perf_counter()
    for i, r in enumerate(recs):
        os.link(srcs[i % len(srcs)], folder / r.rel)
    print(f"(made {n:,} hard-linked files in {time.perf_counter() - t:.1f} s)")
    ckpt = tmp / "m.pt"
    save_checkpoint(Checkpoint(ModelConfig(), build_model(ModelConfig()).state_dict()), ckpt)
    h = file_sha256(ckpt)
    t = time.perf_counter()
    with Store.open(folder) as st:
        idents = {f.rel: (f.size, f.mtime_ns) for f in scan_files(folder)}
        st.put_predictions(h, recs, idents)
    print(f"(warmed the prediction cache in {time.perf_counter() - t:.1f} s)")
    (tmp / "ready").write_text(str(n))
    return ckpt


def bench_folder(app, n: int, results: list, tmp: Path | None = None, opens: int = 1) -> None:
    """Open a warm-cache folder of ``n`` files ``opens`` times (in one window).

    ``tmp``: a folder to build the data set in, or to reuse when an earlier run built it
    there (kept); ``None``: a temporary folder, removed at the end.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    from gui.main_window import MainWindow

    keep = tmp is not None
    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_")) if tmp is None else tmp
    try:
        if (tmp / "ready").is_file() and (tmp / "ready").read_text() == str(n):
            ckpt = tmp / "m.pt"
            print(f"(reusing the {n:,}-file folder in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            ckpt = make_folder(tmp, n)
        win = MainWindow(model_path=ckpt)  # later opens re-open in the same window, as Predict Again does
        win.resize(1280, 800)
        win.show()
        app.processEvents()
        run: dict = {}  # the open being timed
        win.sig_run_finished.connect(lambda _c: run["loop"].quit())
        win.sig_folder_loaded.connect(
            lambda _f: run.setdefault("shown", (time.perf_counter() - run["t"], time.process_time() - run["c"]))
        )
        for _ in range(opens):
            run.clear()
            run["loop"] = loop = QEventLoop()
            QTimer.singleShot(120000, loop.quit)
            t, c = run["t"], run["c"] = time.perf_counter(), time.process_time()
            win.open_folder(tmp / "ds")
            loop.exec()
            total, ctotal = time.perf_counter() - t, time.process_time() - c
            app.processEvents()
            s_wall, s_cpu = run.get("shown", (-1, -1))
            print(f"{'open folder, warm cache: rows shown':<48} {s_wall * 1000:9.1f} ms  (cpu {s_cpu * 1000:.0f} ms)")
            print(
                f"{'open folder, warm cache: run finished':<48} {total * 1000:9.1f} ms  (cpu {ctotal * 1000:.0f} ms;"
                f" {win.model.rowCount():,} rows; load average {os.getloadavg()[0]:.2f}; peak RSS {peak_rss_mb():.0f} MB)",
                flush=True,
            )
            results.append(("warm open shown", s_wall))
            results.append(("warm open finished", total))
        win.close()
        app.processEvents()
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_cold(app, n: int, rounds: int, views: bool = True) -> None:
    """Images/s of a first open in the window against the CLI's predict, on ``n`` real crops."""
    import statistics
    import subprocess

    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from gui.main_window import MainWindow

    srcs = sorted((ROOT / "data" / "plates_real").glob("*.jpg"))
    gui_ips, cli_ips, store_ips = [], [], []
    for r in range(rounds):
        tmp = Path(tempfile.mkdtemp(prefix="bench_cold_"))
        try:
            folder = tmp / "ds"
            folder.mkdir()
            for i in range(n):
                src = srcs[i % len(srcs)]
                os.link(src, folder / f"{i:06d}{src.name[src.name.index('-') :]}")
            settings = QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)
            settings.setValue("views", views)
            win = MainWindow(settings=settings)
            win.resize(1280, 800)
            win.show()
            app.processEvents()
            loop = QEventLoop()
            win.sig_run_finished.connect(lambda _c, lp=loop: lp.quit())
            t = time.perf_counter()
            QTimer.singleShot(0, lambda w=win, f=folder: w.open_folder(f))
            loop.exec()
            gui_ips.append(n / (time.perf_counter() - t))
            if r == 0:  # the first open only: later rounds reuse what earlier windows left allocated
                print(f"{'first open in the window: peak RSS':<48} {peak_rss_mb():9.0f} MB", flush=True)
            win.close()
            app.processEvents()
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "core.cli", "predict", str(folder), "--no-cache", "--out",
                            str(tmp / "r.csv"), *([] if views else ["--one-view"])],
                           cwd=ROOT, check=True, capture_output=True)  # fmt: skip
            cli_ips.append(n / (time.perf_counter() - t))
            shutil.rmtree(folder / ".plate-review")  # the window's store: the CLI predicts every file again
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "core.cli", "predict", str(folder), "--out",
                            str(tmp / "r.csv"), *([] if views else ["--one-view"])],
                           cwd=ROOT, check=True, capture_output=True)  # fmt: skip
            store_ips.append(n / (time.perf_counter() - t))
            print(f"cold round {r + 1}: window {gui_ips[-1]:.0f} images/s, CLI {cli_ips[-1]:.0f} images/s "
                  f"(writing the store: {store_ips[-1]:.0f})", flush=True)  # fmt: skip
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    g, c, s = statistics.median(gui_ips), statistics.median(cli_ips), statistics.median(store_ips)
    reading = f"default reading: {READING_SUMMARY}" if views else "one view"
    print(f"{f'first open of {n:,} files ({reading}): window / CLI':<48} {g:9.0f} / {c:.0f} images/s = {g / c:.0%}")
    print(f"{'  against the CLI writing the store as the window does':<48} {g:9.0f} / {s:.0f} images/s = {g / s:.0%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--no-folder", action="store_true", help="skip the real folder open (needs ~1 GB disk)")
    ap.add_argument("--folder", type=Path, help="build the folder-open data set here and keep it (reused when built)")
    ap.add_argument("--only-open", action="store_true", help="skip the table benchmark")
    ap.add_argument("--opens", type=int, default=1, help="open the folder this many times")
    ap.add_argument("--cold", type=int, default=0, help="also: a first open of this many files, window vs CLI")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --cold")
    ap.add_argument(
        "--one-view",
        action="store_true",
        help="--cold reads each crop once (default: as the app reads, three shifted views, zoomed where unsure, light plates also as negatives)",
    )
    args = ap.parse_args()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from gui import fonts, style

    QCoreApplication.setOrganizationName("PlateReviewBench")
    app = QApplication([])
    app.setStyle("Fusion")
    fonts.install_app_fonts(app)
    app.setStyleSheet(style.STYLE_SHEET)
    results: list = []
    print(f"cpu: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; Qt offscreen; rows={args.rows:,}")
    if not args.only_open:
        bench_model(app, args.rows, results)
        print(f"{'peak RSS after the model benchmark':<48} {peak_rss_mb():9.0f} MB")
    if not args.no_folder:
        bench_folder(app, args.rows, results, args.folder, args.opens)
    if args.cold:
        bench_cold(app, args.cold, args.rounds, views=not args.one_view)
    print(f"{'peak RSS':<48} {peak_rss_mb():9.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
