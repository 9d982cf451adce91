"""GUI tests (pytest-qt, offscreen): open, worst-first order, edit/rename/undo, filters, keys, problems, cancel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from gui.table_model import COL_CER, COL_FILE, COL_SCORE, SORT_ROLE

CORRUPT = "0998-皖A12345.jpg"
IGNORED_QT_MESSAGES = ("propagateSizeHints", "does not support raise()")  # the offscreen plugin: show(), raise_()


@pytest.fixture(autouse=True)
def _fail_on_qt_warnings(qtlog):
    yield
    bad = [
        r.message for r in qtlog.records if r.type.value >= 1 and not any(m in r.message for m in IGNORED_QT_MESSAGES)
    ]
    assert not bad, f"Qt warnings: {bad}"


@pytest.fixture
def dataset(real_crops) -> Path:
    folder = real_crops(20)
    (folder / CORRUPT).write_bytes(b"\x00\x01not a jpeg at all\xff")
    return folder


@pytest.fixture
def window(qtbot, tmp_path, random_checkpoint):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(model_path=random_checkpoint, settings=settings)
    win.resize(1280, 800)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def open_and_wait(qtbot, win: MainWindow, folder: Path, timeout: int = 60000) -> None:
    with qtbot.waitSignal(win.sig_run_finished, timeout=timeout):
        assert win.open_folder(folder)
    qtbot.waitUntil(lambda: win.counts_label.text() != "", timeout=2000)


def rows_in_view(win: MainWindow):
    return [win.model.row_at(i) for i in range(win.model.rowCount())]


def current(win: MainWindow):
    return win._current_row()


def test_open_predicts_everything_worst_first(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    rows = rows_in_view(window)
    assert len(rows) == 21
    assert rows[0].rel == CORRUPT and rows[0].error  # unreadable first
    readable = [r for r in rows if not r.error and not r.label_error]
    scores = [r.label_score for r in readable]
    assert scores == sorted(scores) and None not in scores  # likeliest label errors first
    assert window.model.sort_column == COL_SCORE
    # The app picked the first row for the user while predicting; after the final sort the worst row has it.
    assert current(window).rel == CORRUPT
    assert "CPU" in window.model_label.text() and "m.pt" in window.model_label.text()
    assert "21 samples" in window.counts_label.text()
    # Sorting by another column, numerically, then back.
    window.table.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    rels = [r.rel for r in rows_in_view(window)]
    assert rels == sorted(rels)
    window.table.sortByColumn(COL_CER, Qt.SortOrder.DescendingOrder)
    assert rows_in_view(window)[0].rel == CORRUPT
    cers = [r.cer for r in rows_in_view(window) if not r.error and not r.label_error]
    assert cers == sorted(cers, reverse=True)
    window.table.sortByColumn(COL_SCORE, Qt.SortOrder.AscendingOrder)
    assert rows_in_view(window)[0].rel == CORRUPT


def test_a_confident_disagreement_comes_before_an_unsure_one(qtbot, tmp_path):
    """With the bundled model on real crops: a label the model confidently contradicts (one character
    changed) is the first row; a crop the model misreads unsurely, with the same CER, comes later."""
    from core.models import load_checkpoint
    from core.plates import parse_name
    from core.predict import default_model_path

    from ._util import REAL as REAL_CROPS

    folder = tmp_path / "ds"
    folder.mkdir()
    crops = sorted(REAL_CROPS.glob("*.jpg"))
    for src in crops[300:318]:
        (folder / src.name).write_bytes(src.read_bytes())
    # a crop the bundled model misreads unsurely: of its held-out errors, the least confident with
    # one serial character wrong (recorded in the checkpoint, so the test follows the bundled file)
    errors = load_checkpoint(default_model_path()).metrics["heldout_real_errors"]
    label = {e["file"]: parse_name(e["file"]).label for e in errors}
    one_char = [e for e in errors if label[e["file"]][0] == e["pred"][0]
                and sum(a != b for a, b in zip(label[e["file"]], e["pred"])) == 1]  # fmt: skip
    pick = min(one_char, key=lambda e: e["conf"])
    assert pick["conf"] < 0.8
    unsure = next(p for p in crops if p.name == pick["file"])
    (folder / unsure.name).write_bytes(unsure.read_bytes())
    # a clear crop with one character of its label changed: 5 -> S at the 6th position
    clear = next(p for p in crops if p.name.startswith("0085-"))  # 皖A55756
    wrong = "0085-皖A557S6.jpg"
    (folder / wrong).write_bytes(clear.read_bytes())
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)  # the bundled model
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, folder)
    rows = rows_in_view(win)
    by_rel = {r.rel: r for r in rows}
    assert by_rel[wrong].cer == by_rel[unsure.name].cer == pytest.approx(1 / 7)
    assert rows[0].rel == wrong and rows[0].suspect == 5
    assert [r.rel for r in rows].index(unsure.name) > 0
    assert "1 likely label error" in win.counts_label.text()
    win.table.select_row(0)
    assert win.inspector.chars.suspect == 5  # the inspector marks the suspicious character
    win.close()


def test_the_inspector_says_when_the_prediction_was_read_zoomed_in_or_as_a_negative(qtbot, tmp_path):
    # p(label) (the review order's) is the crop as framed, the prediction's p may be a zoomed read: the two
    # rows of numbers can disagree, and the inspector must say why; a yellow plate may be read as its
    # negative, and the inspector says so too; after a reopen (from the store) too
    import cv2
    import numpy as np

    from core.images import read_rgb
    from core.synth import loose_frame

    from ._util import REAL, dark_on_yellow

    folder = tmp_path / "ds"
    folder.mkdir()
    for i, src in enumerate(sorted(REAL.glob("*.jpg"))[:96:16]):
        (folder / src.name).write_bytes(src.read_bytes())  # tight crops, read as framed
        loose = loose_frame(read_rgb(src).astype(np.float32), np.random.default_rng(i), 0.4).astype(np.uint8)
        cv2.imwrite(str(folder / f"9{i:03d}-{src.name.split('-', 1)[1]}"), cv2.cvtColor(loose, cv2.COLOR_RGB2BGR))
        yellow = loose_frame(
            np.ascontiguousarray(dark_on_yellow(read_rgb(src))[..., ::-1]), np.random.default_rng(i), 0.2
        )  # BGR
        cv2.imwrite(str(folder / f"8{i:03d}-{src.name.split('-', 1)[1]}"), np.rint(yellow).astype(np.uint8))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)  # the bundled model, which reads some loose crops zoomed
    qtbot.addWidget(win)
    win.show()
    for _ in range(2):  # read, then served from the store
        open_and_wait(qtbot, win, folder)
        rows = rows_in_view(win)
        zoomed = [i for i, r in enumerate(rows) if r.zoomed]
        assert zoomed and not any(rows[i].rel[0] == "0" for i in zoomed)  # only loose crops read zoomed here
        win.table.select_row(zoomed[0])
        assert win.inspector.chars.zoomed and "zoomed in" in win.inspector.chars.toolTip()
        assert "zoomed" in win.inspector.chars.prediction_title
        negative = [i for i, r in enumerate(rows) if r.negative]
        assert len(negative) >= 3 and all(rows[i].rel[0] == "8" for i in negative)  # the yellow ones only
        win.table.select_row(negative[0])
        assert win.inspector.chars.negative and "negative" in win.inspector.chars.prediction_title
        assert "yellow plate" in win.inspector.chars.toolTip()
        win.table.select_row(next(i for i, r in enumerate(rows) if not r.zoomed and not r.negative))
        assert not win.inspector.chars.zoomed and not win.inspector.chars.negative
        assert win.inspector.chars.toolTip() == "" and win.inspector.chars.prediction_title == "Prediction"
    win.close()


def test_second_open_uses_the_cache(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    first = {r.rel: r.prediction for r in rows_in_view(window)}
    batches = []
    with qtbot.waitSignal(window.sig_folder_loaded, timeout=20000):
        window.open_folder(dataset)
        window.open_run.worker.sig_batch.connect(batches.append)
    # Cached rows are in the table at once, before any prediction.
    assert window.model.rowCount() == 21
    assert {r.rel: r.prediction for r in window.model.table.rows} == first
    qtbot.waitUntil(lambda: not window.running, timeout=20000)
    assert batches == []


def test_a_restarted_app_reads_the_folder_from_the_cache(qtbot, window, dataset, tmp_path, random_checkpoint):
    # a new window (the app started again) has no loaded model: it must look the cache up under the
    # key the predictor saved it with (core.predict.reading_identity), not predict everything again
    open_and_wait(qtbot, window, dataset)
    first = {r.rel: r.prediction for r in rows_in_view(window)}
    window.close()
    settings = QSettings(str(tmp_path / "settings2.ini"), QSettings.Format.IniFormat)
    again = MainWindow(model_path=random_checkpoint, settings=settings)
    qtbot.addWidget(again)
    batches = []
    with qtbot.waitSignal(again.sig_folder_loaded, timeout=20000):
        again.open_folder(dataset)
        again.open_run.worker.sig_batch.connect(batches.append)
    assert {r.rel: r.prediction for r in again.model.table.rows} == first
    qtbot.waitUntil(lambda: not again.running, timeout=20000)
    assert batches == []
    again.close()


def test_reading_once_is_a_remembered_choice_with_its_own_cache(qtbot, window, dataset, tmp_path, random_checkpoint):
    # Model ▸ Read Shifted and Zoomed Views off: the folder is read again, once per crop (never served the three-view
    # cache); the choice survives a restart, which then reads from the one-view cache; back on, the
    # three-view readings come from their own cache
    def readings(win):
        return {r.rel: (r.prediction, r.confidence) for r in rows_in_view(win)}

    open_and_wait(qtbot, window, dataset)
    assert window.predictor.views and window.act_views.isChecked()
    three = readings(window)
    batches = []
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000):
        window.act_views.trigger()
        window.open_run.worker.sig_batch.connect(batches.append)
    assert sum(len(b) for b in batches) == 21 and not window.predictor.views
    assert "one view" in window.model_label.text()
    once = readings(window)
    assert once != three
    window.close()
    again = MainWindow(model_path=random_checkpoint, settings=window.settings)
    qtbot.addWidget(again)
    assert not again.act_views.isChecked()
    batches.clear()
    with qtbot.waitSignal(again.sig_run_finished, timeout=60000):
        again.open_folder(dataset)
        again.open_run.worker.sig_batch.connect(batches.append)
    assert batches == [] and readings(again) == once
    with qtbot.waitSignal(again.sig_run_finished, timeout=60000):
        again.act_views.trigger()
        again.open_run.worker.sig_batch.connect(batches.append)
    assert batches == [] and readings(again) == three and again.settings.value("views", False, bool)
    again.close()


def test_reopen_shows_the_cache_before_the_scan_then_reconciles(qtbot, window, dataset):
    """Rows of the last session show before the scan; files added, removed, changed or renamed
    behind the app's back end up right: never lost, never twice."""
    import shutil

    from ._util import REAL as REAL_CROPS

    open_and_wait(qtbot, window, dataset)
    first = {r.rel for r in rows_in_view(window)}
    names = sorted(first - {CORRUPT})
    gone, changed, renamed = names[0], names[1], names[2]
    (dataset / gone).unlink()
    with open(dataset / changed, "ab") as f:
        f.write(b"\0")
    (dataset / renamed).rename(dataset / "0999-皖A99999.jpg")
    added = "0998-京B12345.jpg"
    shutil.copy2(sorted(REAL_CROPS.glob("*.jpg"))[100], dataset / added)

    at_load = []
    window.sig_folder_loaded.connect(lambda _f: at_load.append({r.rel for r in window.model.table.rows}))
    batches = []
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000):
        window.open_folder(dataset)
        window.open_run.worker.sig_batch.connect(lambda b: batches.extend(r.rel for r in b))
    assert at_load == [first]  # the cached rows, before the folder was scanned
    rels = [r.rel for r in rows_in_view(window)]
    on_disk = {p.name for p in dataset.iterdir() if p.is_file()}
    assert on_disk == (first - {gone, renamed}) | {"0999-皖A99999.jpg", added}
    assert len(rels) == len(set(rels)) and set(rels) == on_disk
    assert sorted(batches) == sorted([changed, "0999-皖A99999.jpg", added])  # only these were predicted again
    assert all(r.prediction or r.error for r in rows_in_view(window))
    assert window.counts["n"] == len(on_disk) and f"{len(on_disk)} samples" in window.counts_label.text()
    scores = [r.label_score for r in rows_in_view(window) if not r.error and not r.label_error]
    assert scores == sorted(scores)  # review order again after the run


def test_type_a_label_renames_the_file_then_undo_redo(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    window.table.select_row(3)
    row = current(window)
    nxt = window.model.row_at(4)
    old = row.rel
    new_label = "京A12345" if row.label != "京A12345" else "沪B54321"
    ident, _ = old.split("-", 1)
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_E)
    assert window.inspector.editor.edit.hasFocus()
    window.inspector.editor.edit.clear()
    qtbot.keyClicks(window.inspector.editor.edit, new_label.lower()[1:])  # Latin part typed in lower case
    window.inspector.editor.set_province(new_label[0])
    assert window.inspector.editor.label() == new_label
    qtbot.keyClick(window.inspector.editor.edit, Qt.Key.Key_Return)
    new_rel = f"{ident}-{new_label}.jpg"
    assert (dataset / new_rel).exists() and not (dataset / old).exists()
    assert row.rel == new_rel and row.label == new_label and row.state == "fixed"
    assert row.cer is not None
    assert current(window) is nxt  # moved on to the next sample
    assert window.table.hasFocus()

    qtbot.keySequence(window, QKeySequence("Ctrl+Z"))
    assert (dataset / old).exists() and not (dataset / new_rel).exists()
    assert row.rel == old and row.state == "unreviewed"
    qtbot.keySequence(window, QKeySequence("Ctrl+Shift+Z"))
    assert (dataset / new_rel).exists() and row.state == "fixed"


def test_keyboard_flow(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    t = window.table
    t.setFocus()
    t.select_row(0)
    qtbot.keyClick(t, Qt.Key.Key_J)
    qtbot.keyClick(t, Qt.Key.Key_J)
    assert t.current_row() == 2
    qtbot.keyClick(t, Qt.Key.Key_K)
    assert t.current_row() == 1
    qtbot.keyClick(t, Qt.Key.Key_Down)
    assert t.current_row() == 2
    # Space: verified, next.
    row = current(window)
    assert not row.label_error and not row.error
    qtbot.keyClick(t, Qt.Key.Key_Space)
    assert row.state == "verified" and t.current_row() == 3
    assert window.session.get_state(row.rel) == "verified"
    # Enter: the prediction becomes the label (file renamed), next.
    row = current(window)
    pred, old = row.prediction, row.rel
    assert pred and pred != row.label
    qtbot.keyClick(t, Qt.Key.Key_Return)
    assert not (dataset / old).exists() and (dataset / row.rel).exists()
    assert row.label == pred and row.state == "fixed" and row.cer == 0.0
    assert t.current_row() == 4
    # Undo the rename, then the verify, in that order.
    window.undo()
    assert (dataset / old).exists() and row.label != pred
    window.undo()
    assert all(r.state != "verified" for r in window.model.table.rows)


def test_filters_and_counts(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    some = window.model.table.rows[5]
    window.filter_edit.setText(some.label.lower())
    shown = rows_in_view(window)
    assert some in shown and all(some.label in r.rel or some.label in r.prediction for r in shown)
    window.filter_edit.clear()
    assert window.model.rowCount() == 21

    window.set_quick_filter("unreadable", True)
    assert [r.rel for r in rows_in_view(window)] == [CORRUPT]
    qtbot.waitUntil(lambda: window.counts_label.text().startswith("1 of 21"), timeout=2000)
    window.set_quick_filter("unreadable", False)

    window.set_quick_filter("mismatches", True)
    assert all(r.mismatch for r in rows_in_view(window))
    window.set_quick_filter("mismatches", False)

    window.set_quick_filter("unreviewed", True)
    before = window.model.rowCount()
    window.table.select_row(2)
    window.table.setFocus()
    target = window.model.row_at(2)
    follower = window.model.row_at(3)
    qtbot.keyClick(window.table, Qt.Key.Key_Space)
    assert target.state == "verified"
    assert window.model.rowCount() == before - 1  # verified rows leave the unreviewed view
    assert current(window) is follower
    window.set_quick_filter("unreviewed", False)


def test_crossval_results_from_the_train_panel_become_a_sortable_column(qtbot, window, dataset):
    from core.predict import PredictionResult
    from gui.table_model import COL_CV

    open_and_wait(qtbot, window, dataset)
    panel = window.train_dock.widget()
    rels = sorted(r.rel for r in rows_in_view(window))
    cv = {rel: PredictionResult(rel=rel, label="", prediction="京A00000", confidence=0.9, cer=0.5,
                                label_score=i / 20) for i, rel in enumerate(rels[:10])}  # fmt: skip
    panel.sig_crossval_results.emit(cv)
    i = window.model.row_of(rels[9])
    assert window.model.index(i, COL_CV).data() == f"{9 / 20:.3f}"
    assert "京A00000" in window.model.index(i, COL_CV).data(Qt.ItemDataRole.ToolTipRole)
    window.table.sortByColumn(COL_CV, Qt.SortOrder.DescendingOrder)
    keys = [window.model.index(r, COL_CV).data(SORT_ROLE) for r in range(window.model.rowCount())]
    assert keys == sorted(keys, reverse=True) and keys[-1][0] == 0.0
    window.table.sortByColumn(COL_CV, Qt.SortOrder.AscendingOrder)
    assert [r.rel for r in rows_in_view(window)][:10] == rels[:10]


def test_crossval_scores_survive_a_restart_and_order_the_review(qtbot, window, dataset, tmp_path, random_checkpoint):
    from core.predict import PredictionResult
    from gui.table_model import COL_CV

    open_and_wait(qtbot, window, dataset)
    rels = sorted(r.rel for r in rows_in_view(window) if not r.error)
    # out-of-fold scores: the last file is the likeliest label error
    cv = {rel: PredictionResult(rel=rel, label="", prediction="京A00000", probs=[0.9] * 7, runner_up="京B11111",
                                runner_up_probs=[0.05] * 7, confidence=0.5, cer=0.5, label_probs=[0.9] * 7,
                                label_score=1.0 - i / 40) for i, rel in enumerate(rels)}  # fmt: skip
    window.train_dock.widget().sig_crossval_results.emit(cv)
    window.close()
    settings = QSettings(str(tmp_path / "settings2.ini"), QSettings.Format.IniFormat)
    again = MainWindow(model_path=random_checkpoint, settings=settings)
    qtbot.addWidget(again)
    again.show()
    open_and_wait(qtbot, again, dataset)
    i = again.model.row_of(rels[-1])
    assert again.model.index(i, COL_CV).data() == f"{1.0 - (len(rels) - 1) / 40:.3f}"
    shown = [r.rel for r in rows_in_view(again)]
    assert shown[0] == CORRUPT and shown[1:] == rels[::-1]  # the cross-validated score orders the review
    again.close()


def test_a_model_trained_on_the_folder_says_so(qtbot, window, dataset, tmp_path):
    from core.models import load_checkpoint, save_checkpoint

    ck = load_checkpoint(window.model_path)
    ck.summary["dataset"] = str(dataset)
    path = tmp_path / "trained-here.pt"
    save_checkpoint(ck, path)
    assert ck.trained_on(dataset) and not ck.trained_on(tmp_path)
    open_and_wait(qtbot, window, dataset)
    assert "trained on this folder" not in window.model_label.text()
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000):
        window.set_model(path)
    assert "trained on this folder" in window.model_label.text()
    assert "cross-validated" in window.model_label.toolTip()


def test_batch_accept_and_verify_are_one_undo_step(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    t = window.table
    t.select_row(1)
    for _ in range(4):  # Shift+Down extends the selection: rows 1..5
        qtbot.keyClick(t, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    rows = window.selected_rows()
    assert len(rows) == 5 and CORRUPT not in {r.rel for r in rows}
    before = sorted(p.name for p in dataset.iterdir() if p.is_file())
    expected = {r.prediction for r in rows}
    qtbot.keyClick(t, Qt.Key.Key_Return)
    after = sorted(p.name for p in dataset.iterdir() if p.is_file())
    renamed = [r for r in rows if r.label != r.prediction]  # the rows now carry their predictions
    assert {r.label for r in rows} == expected and all(r.state in ("fixed", "verified") for r in rows)
    assert after != before or not renamed
    qtbot.keySequence(window, QKeySequence("Ctrl+Z"))  # one step undoes the whole selection
    assert sorted(p.name for p in dataset.iterdir() if p.is_file()) == before
    assert all(r.state == "unreviewed" for r in rows)
    qtbot.keySequence(window, QKeySequence("Ctrl+Shift+Z"))
    assert sorted(p.name for p in dataset.iterdir() if p.is_file()) == after
    qtbot.keySequence(window, QKeySequence("Ctrl+Z"))
    # Space on a selection: every label verified, one undo.
    t.select_row(6)
    for _ in range(2):
        qtbot.keyClick(t, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    rows = window.selected_rows()
    qtbot.keyClick(t, Qt.Key.Key_Space)
    assert len(rows) == 3 and all(r.state == "verified" for r in rows)
    assert all(window.session.get_state(r.rel) == "verified" for r in rows)
    qtbot.keySequence(window, QKeySequence("Ctrl+Z"))
    assert all(r.state == "unreviewed" for r in rows)


def test_near_duplicates_with_different_labels_are_flagged_side_by_side(qtbot, window, dataset):
    import cv2
    import numpy as np

    src = sorted(p for p in dataset.iterdir() if p.is_file() and p.name != CORRUPT)[3]
    img = cv2.imdecode(np.fromfile(src, np.uint8), cv2.IMREAD_COLOR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])  # the same picture, re-encoded
    other = "0990-京A00000.jpg"
    buf.tofile(dataset / other)
    open_and_wait(qtbot, window, dataset)
    window.set_quick_filter("duplicates", True)
    assert sorted(r.rel for r in rows_in_view(window)) == sorted([src.name, other])
    assert window.counts["duplicate_conflicts"] == 2 and "same-picture conflicts" in window.counts_label.text()
    from gui.table_model import COL_STATE

    assert window.model.index(0, COL_STATE).data() == "⚠ duplicate"
    window.table.select_row(0)
    strip = window.inspector.duplicates
    assert strip.isVisible() and len(strip.rels) == 1 and "wrong" in strip.title.text()
    first = current(window).rel
    strip.sig_select.emit(strip.rels[0])  # a click on the duplicate inspects it
    assert current(window).rel != first and current(window).rel in (src.name, other)
    window.set_quick_filter("duplicates", False)


def test_invalid_label_filter(qtbot, window, dataset):
    bad = dataset / "0997-皖AI2345.jpg"
    (dataset / sorted(os.listdir(dataset))[1]).rename(bad)
    open_and_wait(qtbot, window, dataset)
    window.set_quick_filter("invalid", True)
    rows = rows_in_view(window)
    assert [r.rel for r in rows] == [bad.name]
    window.table.select_row(0)
    assert "not a plate letter" in window.inspector.problem.text()
    # An invalid label cannot be verified with Space; the file keeps its name.
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Space)
    assert rows[0].state == "unreviewed" and bad.exists()


def test_unreadable_file_shows_a_placeholder_and_the_reason(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    p = window.model.row_of(CORRUPT)
    window.table.select_row(p)
    assert not window.inspector.image.has_image
    assert "not a decodable image" in window.inspector.problem.text()
    assert window.inspector.problem.isVisible()
    assert not window.inspector.accept_btn.isEnabled()
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Return)  # nothing to accept: no crash, no rename
    assert (dataset / CORRUPT).exists()


def test_a_disabled_button_looks_disabled(qtbot):
    # The app's style sheet colours buttons itself: without :disabled rules a disabled "Accept
    # prediction" (an unreadable crop has nothing to accept) looked as clickable as an enabled one.
    from PySide6.QtWidgets import QPushButton

    from gui import style

    app = QApplication.instance()
    before = app.styleSheet()
    app.setStyleSheet(style.STYLE_SHEET)
    try:
        for name in ("primary", "plain"):
            on, off = QPushButton("Accept prediction"), QPushButton("Accept prediction")
            for b in (on, off):
                b.setObjectName(name)
                b.resize(160, 30)
                qtbot.addWidget(b)
            off.setEnabled(False)
            look = [b.grab().toImage().pixelColor(8, 15).name() for b in (on, off)]
            assert look[0] != look[1], name
    finally:
        app.setStyleSheet(before)


def test_file_deleted_behind_the_apps_back(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    window.table.select_row(5)
    row = current(window)
    window.table.select_row(6)
    (dataset / row.rel).unlink()
    window.table.select_row(5)
    assert row.missing and row.display_state == "missing"
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Return)
    qtbot.keyClick(window.table, Qt.Key.Key_Space)
    assert row.missing  # still there, marked; nothing raised


def test_cancel_a_running_prediction(qtbot, window, real_crops):
    folder = real_crops(400, folder="big")
    window.batch_size = 16
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000) as blocker:
        window.open_folder(folder)
        qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=30000)
        assert window.progress_box.isVisible() and window.cancel_btn.isEnabled()
        qtbot.mouseClick(window.cancel_btn, Qt.MouseButton.LeftButton)
    assert blocker.args == [True]
    assert 0 < window.model.rowCount() < 400
    assert not window.running and not window.progress_box.isVisible()
    assert "Cancelled" in window.statusBar().currentMessage()


def test_label_editor_validation_and_pinyin(qtbot):
    from gui.label_editor import LabelEditor

    ed = LabelEditor()
    qtbot.addWidget(ed)
    submitted = []
    ed.sig_submitted.connect(submitted.append)
    qtbot.keyClicks(ed.edit, "a12345")
    assert ed.edit.text() == "A12345"
    assert not ed.apply_btn.isEnabled() and "characters" in ed.status.text()
    qtbot.keyClicks(ed.pinyin, "wan")
    assert ed.buttons["皖"].property("match") == "true" and ed.buttons["京"].property("match") == "false"
    qtbot.keyClick(ed.pinyin, Qt.Key.Key_Return)
    assert ed.label() == "皖A12345" and ed.apply_btn.isEnabled()
    ed.edit.setText("皖AI2345")
    ed._validate()
    assert "plates use 1, not I" in ed.status.text()
    ed.edit.setText("皖A12345")
    qtbot.keyClick(ed.edit, Qt.Key.Key_Return)
    assert submitted == ["皖A12345"]


def test_help_dialog_and_recent_folders(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    assert window.recent_folders()[0] == str(dataset.resolve())
    window.show_help()
    assert window.help_dialog.isVisible()
    assert "Space" in window.help_dialog.findChildren(type(window.counts_label))[0].text()
    window.help_dialog.close()
    QApplication.processEvents()


def test_a_refused_model_is_said_in_a_dialog_and_not_opened_again(qtbot, tmp_path, dataset, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: shown.append(a[2])))
    bad = tmp_path / "weird.pth"
    bad.write_bytes(b"not a model at all" * 10)
    settings = QSettings(str(tmp_path / "settings-bad.ini"), QSettings.Format.IniFormat)
    win = MainWindow(model_path=bad, settings=settings)
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, dataset)
    assert shown and "weird.pth" in shown[0] and "weights_only" not in shown[0]
    assert win.model.rowCount() == 21  # the samples are listed with their labels
    assert settings.value("model_path", "") == "" and win.model_path is None
    win.close()


def test_a_folder_on_a_full_disk_is_shown_and_a_dialog_says_its_predictions_are_not_cached(
    qtbot, window, dataset, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    from core.store import Store

    real_open = Store.open.__func__

    def open_full(cls, folder, reconcile=True):  # the store cannot grow: SQLite answers "disk is full"
        s = real_open(cls, folder, reconcile)
        s.conn.execute(f"PRAGMA max_page_count = {s.conn.execute('PRAGMA page_count').fetchone()[0]}")
        return s

    monkeypatch.setattr(Store, "open", classmethod(open_full))
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: shown.append(a[2])))
    open_and_wait(qtbot, window, dataset)
    assert window.model.rowCount() == 21 and all(r.prediction or r.error for r in rows_in_view(window))
    assert len(shown) == 1 and "could not be cached" in shown[0] and "store.sqlite: cannot write the store" in shown[0]
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000):
        window.rerun()  # read again: still not cached, said again
    assert len(shown) == 2


def test_the_keys_start_in_the_table_not_the_filter_box(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    assert QApplication.focusWidget() is window.table
    first = current(window).rel
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_J)
    assert window.filter_edit.text() == "" and current(window).rel != first


def test_export_from_the_window(qtbot, window, dataset, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a, **k: shown.append(a[2])))
    open_and_wait(qtbot, window, dataset)
    assert window.act_export in window.menuBar().actions()[0].menu().actions()
    out = tmp_path / "exported"
    with qtbot.waitSignal(window.sig_export_finished, timeout=60000) as blocker:
        window.export_to(out)
    report = blocker.args[0]
    assert report is not None and sum(report.written.values()) == 20  # the corrupt file is skipped
    assert (out / "manifest.csv").exists() and shown and "exported=20" in shown[0]
    assert window.act_export.isEnabled()


def test_version(capsys):
    from core.cli import main as cli

    with pytest.raises(SystemExit):
        cli(["--version"])
    assert capsys.readouterr().out.startswith("plate-review ")


def test_a_saved_window_larger_than_the_screen_is_clamped(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "big.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    area = first.screen().availableGeometry()
    first.resize(area.width() * 2, area.height() * 2)  # e.g. saved at another scale factor
    settings.setValue("geometry", first.saveGeometry())
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    assert again.width() <= area.width() and again.height() <= area.height()


def test_use_previous_model_goes_back(qtbot, window, dataset, tmp_path, random_checkpoint):
    import shutil

    other = tmp_path / "other.pt"
    shutil.copy2(random_checkpoint, other)
    assert not window.act_previous_model.isEnabled()
    window.set_model(other)
    assert window.act_previous_model.isEnabled() and window.previous_model == random_checkpoint
    window.act_previous_model.trigger()
    assert window.model_path == random_checkpoint and window.previous_model == other


def test_show_all_selects_every_sample_of_the_list(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    rels = [window.model.row_at(i).rel for i in (2, 5, 7)]
    panel = window.train_dock.widget()
    panel.sig_show_samples.emit(rels)  # what "Show all" sends
    assert sorted(r.rel for r in window.selected_rows()) == sorted(rels)
    window.set_quick_filter("unreadable", True)  # hides them: the window says so
    assert window.select_samples(rels) == 0 and "not shown" in window.statusBar().currentMessage()
    window.set_quick_filter("unreadable", False)


def test_settings_dock_and_sort_order_come_back_and_the_wheel_leaves_settings_alone(qtbot, tmp_path):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent

    settings = QSettings(str(tmp_path / "keep.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    panel = win.train_dock.widget()
    panel.epochs_spin.setValue(9)
    panel.batch_spin.setValue(32)
    win.train_dock.show()
    win.model.sort(COL_CER, Qt.SortOrder.DescendingOrder)
    # the wheel over a setting without focus does not change it
    spin = panel.batch_spin
    ev = QWheelEvent(QPointF(5, 5), QPointF(spin.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, 120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    QApplication.sendEvent(spin, ev)
    assert spin.value() == 32
    win.close()
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    again.show()
    p2 = again.train_dock.widget()
    assert p2.epochs_spin.value() == 9 and p2.batch_spin.value() == 32
    assert again.model.sort_column == COL_CER and again.model.sort_order == Qt.SortOrder.DescendingOrder
    assert again.train_dock.isVisible()
    again.close()


def test_the_window_fits_a_1280x768_screen_with_the_train_panel_open(qtbot, window):
    window.train_dock.show()
    need = window.minimumSizeHint()
    assert need.width() <= 1280 and need.height() <= 768, need


def test_the_window_wires_the_train_panel(qtbot, window, dataset, tmp_path, random_checkpoint):
    """The panel trains on the open folder from the window's model with the session's states; its
    results select rows, its accepted model re-opens the folder, and closing the window stops its job."""
    from ._util import random_checkpoint_file

    open_and_wait(qtbot, window, dataset)
    panel = window.train_dock.widget()
    assert panel.folder == dataset and panel.current_model == str(random_checkpoint)
    rels = [r.rel for r in rows_in_view(window)]
    window.session.set_state(rels[0], "verified")
    assert panel.states_provider() == window.session.states() == {rels[0]: "verified"}
    panel.sig_show_samples.emit([rels[1], rels[3]])
    assert {window.model.row_at(i.row()).rel for i in window.table.selectionModel().selectedRows()} == {
        rels[1], rels[3]}  # fmt: skip
    other = random_checkpoint_file(tmp_path / "other.pt", seed=1)
    with qtbot.waitSignal(window.sig_run_finished, timeout=60000):
        panel.sig_model_accepted.emit(str(other))
    assert window.model_path == other and panel.current_model == str(other)
    stopped = []
    panel.shutdown = lambda *a: stopped.append(True) or True
    window.close()
    assert stopped == [True]


def test_a_second_opinion_is_shown_combined_and_remembered_per_folder(qtbot, window, dataset, tmp_path, real_crops):
    from core.label_score import combined_score
    from gui.table_model import COL_SECOND

    from ._util import random_checkpoint_file

    open_and_wait(qtbot, window, dataset)
    assert window.table.isColumnHidden(COL_SECOND) and not window.act_no_second.isEnabled()
    other = random_checkpoint_file(tmp_path / "second.pt", seed=3)
    with qtbot.waitSignal(window.sig_second_finished, timeout=60000):
        window.set_second_opinion(other)
    assert not window.table.isColumnHidden(COL_SECOND) and window.act_no_second.isEnabled()
    rows = [r for r in rows_in_view(window) if r.prediction]
    assert rows and all(window.model.table.reading_of("second", r.rel) is not None for r in rows)
    for r in rows:  # the order's score is the two readers' combined one
        k = window.model.table.k_of(r.rel)
        assert window.model.table.score_shown(k) == pytest.approx(
            combined_score(r.label_score, window.model.table.reading_of("second", r.rel).label_score)
        )
    i = window.model.row_of(rows[0].rel)
    assert window.model.index(i, COL_SECOND).data() == window.model.table.reading_of("second", rows[0].rel).prediction
    assert "second opinion" in window.model_label.text()
    keys = [window.model.index(j, COL_SCORE).data(SORT_ROLE) for j in range(window.model.rowCount())]
    assert keys == sorted(keys)  # re-sorted once the second readings were in

    # Another folder has no second reader; coming back brings it back (from the cache).
    elsewhere = real_crops(3, folder="elsewhere", start=40)
    open_and_wait(qtbot, window, elsewhere)
    assert window.table.isColumnHidden(COL_SECOND) and window.second_opinion() is None
    with qtbot.waitSignal(window.sig_second_finished, timeout=60000):
        open_and_wait(qtbot, window, dataset)
    assert window.second_opinion()[0] == other and window.model.table.has_second
    window.set_second_opinion(None)
    assert window.table.isColumnHidden(COL_SECOND) and not window.model.table.has_second


def test_one_action_table_makes_the_menus_the_keys_and_the_help(qtbot, window):
    """Every action of gui.actions is in a menu with its keys, in the F1 help, and in the user guide."""
    from PySide6.QtWidgets import QLabel

    from gui.actions import ACTIONS, MENUS, shown_key

    from ._util import REPO

    in_menus = [a for m in window.menuBar().actions() for a in m.menu().actions()]
    for spec in ACTIONS:
        if spec.scope == "help":
            continue
        act = getattr(window, f"act_{spec.name}")
        assert act in in_menus, spec.name
        if spec.scope == "window":
            assert [k.toString() for k in act.shortcuts()] == [QKeySequence(k).toString() for k in spec.keys]
    assert sum(len([n for n in names if n not in (None, "recent")]) for _t, names in MENUS) == len(
        [a for a in ACTIONS if a.scope != "help"])  # fmt: skip
    window.show_help()
    text = window.help_dialog.findChild(QLabel).text()
    guide = (REPO / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    for spec in ACTIONS:
        if spec.group:
            assert spec.help in text, spec.name
            for key in map(shown_key, spec.keys):
                assert key in guide, f"the user guide does not name {key} ({spec.name})"
    window.help_dialog.close()


def test_narrow_by_value_and_by_a_confusion_cell(qtbot, window, dataset):
    open_and_wait(qtbot, window, dataset)
    bar = window.narrow_bar
    rows = rows_in_view(window)
    province = rows[0].label[0]
    bar.province.setCurrentIndex(bar.province.findData(province))
    shown = rows_in_view(window)
    assert shown and all(r.label.startswith(province) for r in shown)
    qtbot.waitUntil(lambda: window.counts_label.text().startswith(f"{len(shown)} of 21"), timeout=2000)
    bar.clear()
    assert window.model.rowCount() == 21
    bar.score_max.setValue(0.5)
    assert all(window.model.table.score_shown(r.k) <= 0.5 for r in rows_in_view(window))
    bar.clear()
    window.show_confusions()
    dlg = window.confusion_dialog
    counts = window.model.table.confusions()
    assert dlg.isVisible() and dlg.grid.rowCount() == min(dlg.MAX_CHARS, len({a for a, _ in counts}))
    if counts:  # a random model misreads plenty: click its commonest confusion
        (a, b), n = max(counts.items(), key=lambda kv: kv[1])
        i, j = dlg._rows.index(a), dlg._cols.index(b)
        assert dlg.grid.item(i, j).text() == str(n)
        dlg.grid.cellClicked.emit(i, j)
        shown = rows_in_view(window)
        assert shown and all(any(x == a and y == b for x, y in zip(r.label, r.prediction)) for r in shown)
        assert bar.confusion_chip.isVisible()
        bar.confusion_chip.click()
        assert window.model.rowCount() == 21 and not bar.confusion_chip.isVisible()
    dlg.close()


def test_the_inspector_zooms_with_the_wheel_about_the_pointer_and_pans(qtbot, window, dataset):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent

    open_and_wait(qtbot, window, dataset)
    window.table.select_row(5)
    view = window.inspector.image
    assert view.has_image and view.zoom is None
    fit = view.scale()
    at = QPointF(view._target().center()) + QPointF(20, 3)  # a point on the image, right of its centre
    t = view._target()
    before = ((at.x() - t.left()) / fit, (at.y() - t.top()) / fit)  # the image pixel under the pointer
    wheel = QWheelEvent(at, view.mapToGlobal(at), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    QApplication.sendEvent(view, wheel)
    assert view.scale() == pytest.approx(fit * 1.25**2)
    t = view._target()
    after = ((at.x() - t.left()) / view.scale(), (at.y() - t.top()) / view.scale())
    assert after == pytest.approx(before, abs=0.6)  # the same pixel stays under the pointer
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at.toPoint())
    qtbot.mouseMove(view, (at + QPointF(-30, 0)).toPoint())
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=(at + QPointF(-30, 0)).toPoint())
    assert view._target().left() == t.left() - 30  # dragged left by 30 px
    window.act_fit.trigger()  # Ctrl+0: fit again, even though Fit was already the checked button
    assert view.zoom is None and view.scale() == pytest.approx(fit)
    window.act_one.trigger()
    assert view.scale() == 1.0 and window.inspector.one_btn.isChecked()
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton)
    assert view.scale() == pytest.approx(fit) and window.inspector.fit_btn.isChecked()


def test_rows_join_the_review_order_while_a_first_open_predicts(qtbot, window, dataset):
    """The first open of a folder sorts the rows in as they are predicted, not only at the end."""
    from core.label_score import sort_for_review

    window.batch_size = 2
    window._resort_timer.setInterval(1)
    window._flush_timer.setInterval(1)
    sorted_mid_run = []

    def check(_rows) -> None:
        if window.open_run is not None and window.model.rowCount() >= 6 and not window.model.needs_resort:
            shown = [r.rel for r in rows_in_view(window)]
            sorted_mid_run.append(shown == [r.rel for r in sort_for_review(rows_in_view(window))])

    window.model.layoutChanged.connect(check)
    open_and_wait(qtbot, window, dataset)
    assert sorted_mid_run and all(sorted_mid_run)
    assert window.model.row_at(0) is window._current_row()  # the first row in the end is the one selected


def test_a_first_open_puts_the_workers_batches_into_the_table_together(qtbot, window, dataset):
    # each insertion repaints the rows in view: one per worker batch (15 a second) took a fifth of the
    # prediction's CPU at 200,000 crops; the batches that come in meanwhile join the table together
    window.batch_size = 2
    window._flush_timer.setInterval(60000)  # nothing flushes on the timer during this run
    inserted = []
    window.model.rowsInserted.connect(lambda *_a: inserted.append(window.model.rowCount()))
    open_and_wait(qtbot, window, dataset)
    n = sum(p.is_file() for p in dataset.iterdir())  # 21 files: 11 batches of 2
    assert window.open_run is None and window.model.rowCount() == n and not window._pending
    assert len(inserted) <= 2  # the first batch at once, the rest when the run finished


def test_nothing_qt_outlives_the_event_loop(tmp_path):
    """After the app's event loop ends, its window is deleted while the application still exists and the
    exception hook no longer holds it: Python never frees a Qt wrapper during interpreter shutdown."""
    import subprocess
    import sys

    from ._util import REPO

    code = (
        "import sys, shiboken6\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "import gui.app as ga\n"
        "app = QApplication([])\n"
        "wins = []\n"
        "def close():\n"
        "    w = next(w for w in app.topLevelWidgets() if type(w).__name__ == 'MainWindow')\n"
        "    wins.append(w)\n"
        "    w.close()\n"
        "QTimer.singleShot(500, close)\n"
        "rc = ga.run(['--no-store'])\n"
        "print(rc, shiboken6.isValid(wins[0]), sys.excepthook is sys.__excepthook__)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-3:] == ["0", "False", "True"], r.stdout + r.stderr[-2000:]


@pytest.mark.skipif(os.name == "nt", reason="the lock holder uses fcntl")
def test_an_edit_while_another_process_renames_says_so_at_once(qtbot, window, dataset):
    """The window waits about a second for another process's changes, then says the folder is busy:
    no frozen window, no error dialog, nothing changed."""
    import subprocess
    import sys
    import time

    open_and_wait(qtbot, window, dataset)
    lock = window.session.store.path.parent / "changes.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a+b')\n"
         "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(20)\n", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        window.table.select_row(2)
        row = window._current_row()
        t = time.monotonic()
        window.verify_label()
        waited = time.monotonic() - t
        assert waited < 5, waited
        assert row.state == "unreviewed" and window.session.get_state(row.rel) == "unreviewed"
        assert "another Plate Review process" in window.statusBar().currentMessage()
    finally:
        holder.kill()
        holder.wait()
    window.verify_label()  # the folder is free again
    assert row.state == "verified"


def test_the_second_opinion_setting_keeps_any_path(window, tmp_path):
    """A file name may hold a comma or a newline (POSIX): the folder's choice comes back exactly."""
    window.folder = tmp_path
    window.set_second_opinion("/models/a,\nb.onnx", "/models/dict, 1.txt")
    assert window.second_opinion() == (Path("/models/a,\nb.onnx"), Path("/models/dict, 1.txt"))
    window.set_second_opinion(None)
    assert window.second_opinion() is None
