"""The SQLite store: prediction cache, review states, read-only datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import relabel as R
from core import store as store_mod
from core.review_state import ReviewState
from core.store import Store, scan_files

from ._util import prediction_row


def test_scan_files_matches_scan_folder(ds: Path):
    from core.dataset import scan_folder

    files = scan_files(ds)
    assert [f.rel for f in files] == [s.rel for s in scan_folder(ds)]
    assert all(f.size == os.stat(ds / f.rel).st_size for f in files)


def test_store_location_and_wal(ds: Path):
    with Store.open(ds) as s:
        assert s.path == ds.resolve() / ".plate-review" / "store.sqlite"
        assert s.notice is None
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_prediction_cache_keyed_by_file_and_model(ds: Path):
    files = scan_files(ds)
    with Store.open(ds) as s:
        n = s.put_predictions("model-a", [prediction_row(f.rel, label=f"L{i}") for i, f in enumerate(files)],
                              {f.rel: (f.size, f.mtime_ns) for f in files})  # fmt: skip
        assert n == len(files)
    # Reopen: everything is cached for model-a, nothing for another model.
    with Store.open(ds) as s:
        got = s.cached_predictions("model-a", files)
        assert set(got) == {f.rel for f in files}
        r = got[files[0].rel]
        assert r.probs == [0.9] * 7 and r.runner_up_probs == [0.05] * 7 and r.correct is False and r.cer == 0.3
        # a row read back is the record that was stored, every field of it (a second opinion is never stored)
        assert r.to_record() == store_mod.PredictionRecord(**prediction_row(files[0].rel, label="L0"))
        assert s.cached_predictions("model-b", files) == {}
        # A changed file (new mtime) or a resized one is not served from the cache.
        os.utime(ds / files[0].rel, ns=(files[0].mtime_ns, files[0].mtime_ns + 10**9))
        with open(ds / files[1].rel, "ab") as f:
            f.write(b"\0")
        got = s.cached_predictions("model-a", scan_files(ds))
        assert files[0].rel not in got and files[1].rel not in got and len(got) == len(files) - 2


def test_put_predictions_accepts_dataclasses_and_stats_files(ds: Path):
    files = scan_files(ds)
    with Store.open(ds) as s:
        recs = [
            store_mod.PredictionRecord(**prediction_row(f.rel, error="x", prediction="", correct=None))
            for f in files[:2]
        ]
        recs[1].zoomed = recs[0].negative = True
        s.put_predictions("m", recs)  # no identities given: stat'ed now
        got = s.cached_predictions("m", files)
        assert set(got) == {f.rel for f in files[:2]} and got[files[0].rel].correct is None
        assert got[files[1].rel].zoomed is True and got[files[0].rel].zoomed is False
        assert got[files[0].rel].negative is True and got[files[1].rel].negative is False


def test_cached_predictions_follow_renames(ds: Path):
    files = scan_files(ds)
    rel = files[0].rel
    with Store.open(ds) as s:
        s.put_predictions("m", [prediction_row(rel, prediction="皖A12345", label="x", cer=1.0)])
        rep = R.relabel(s, [(rel, "皖A12345")])
        new = rep.renamed[0][1]
        got = s.cached_predictions("m", scan_files(ds))
        assert rel not in got and got[new].label == "皖A12345" and got[new].correct is True and got[new].cer == 0.0


def test_label_score_follows_renames(ds: Path):
    """After a rename the cached label score is that of the new label, from the two best characters."""
    files = scan_files(ds)
    rel = files[0].rel
    with Store.open(ds) as s:
        s.put_predictions("m", [prediction_row(rel, prediction="皖A12345", runner_up="京B12346", label="x",
                                     probs=[0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.7],
                                     runner_up_probs=[0.005, 0.005, 0.005, 0.005, 0.005, 0.005, 0.2],
                                     label_probs=[0.99] * 7, label_score=0.99)])  # fmt: skip
        new = R.relabel(s, [(rel, "皖A12346")]).renamed[0][1]  # the runner-up at the last position
        got = s.cached_predictions("m", scan_files(ds))[new]
        assert got.label_score == pytest.approx(0.2) and got.suspect == 6
        new2 = R.relabel(s, [(new, "皖A12349")]).renamed[0][1]  # neither of the two best: bounded by what is left
        got = s.cached_predictions("m", scan_files(ds))[new2]
        assert got.label_score == pytest.approx(0.1) and got.label_probs[:6] == pytest.approx([0.99] * 6)


def test_crossval_scores_survive_a_restart_and_follow_the_files(ds: Path):
    from core.records import PredictionResult

    files = scan_files(ds)
    rels = [f.rel for f in files]
    cv = [PredictionResult(r, "皖A12345", prediction="皖A12345", probs=[0.9] * 7, runner_up="京B00000",
                           runner_up_probs=[0.05] * 7, cer=0.0, correct=True, label_probs=[0.9] * 7,
                           label_score=0.1 * i) for i, r in enumerate(rels)]  # fmt: skip
    with Store.open(ds) as s:
        assert s.put_crossval(cv, {"folds": 5}) == len(rels)
        assert s.cached_predictions("other-model", files) == {}
    (ds / rels[1]).unlink()
    with open(ds / rels[2], "ab") as f:
        f.write(b"\0")  # changed content: its out-of-fold score no longer applies
    with Store.open(ds) as s:
        assert s.crossval_info() == {"folds": 5}
        got = s.crossval(scan_files(ds))
        assert set(got) == set(rels) - {rels[1], rels[2]}
        assert got[rels[3]].label_score == pytest.approx(0.3)
        # a newer run replaces the older one entirely
        s.put_crossval(cv[:1], {"folds": 2})
        assert set(s.crossval(scan_files(ds))) == {rels[0]} and s.crossval_info()["folds"] == 2


def test_old_store_gets_label_scores_without_predicting_again(ds: Path):
    """A store written before label scores (no label_probs/label_score columns) is migrated on open."""
    import sqlite3

    files = scan_files(ds)
    rel = files[0].rel
    label = rel.rsplit("-", 1)[1][:-4]
    with Store.open(ds) as s:
        s.put_predictions("m", [prediction_row(rel, prediction=label, label=label, cer=0.0, correct=True)])
        path = s.path
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE p2 AS SELECT model, rel, size, mtime_ns, label, label_error, prediction, probs, "
                "runner_up, runner_up_probs, confidence, cer, correct, error, updated FROM predictions")  # fmt: skip
    con.execute("DROP TABLE predictions")
    con.execute("ALTER TABLE p2 RENAME TO predictions")
    con.commit()
    con.close()
    with Store.open(ds) as s:
        got = s.cached_predictions("m", files)[rel]
        assert got.label_score == pytest.approx(0.9) and got.label_probs == pytest.approx([0.9] * 7)
        assert got.zoomed is False and got.negative is False  # rows from before zoomed reads were read as framed


def test_states_and_model_rerun_keeps_human_decisions(ds: Path):
    files = scan_files(ds)
    a, b, c = (f.rel for f in files[:3])
    with Store.open(ds) as s:
        assert s.get_state(a) == ReviewState.UNREVIEWED
        s.set_state(a, ReviewState.VERIFIED)
        R.relabel(s, [(b, "皖A12345")])
        b = s.origins() and next(iter(s.origins()))
        with pytest.raises(ValueError):
            s.set_state(c, "great")
    with Store.open(ds) as s:
        # A model re-run: new predictions and automatic states never replace human decisions.
        s.put_predictions("m2", [prediction_row(r, prediction="京A00000") for r in (a, b, c)])
        s.set_states({a: ReviewState.UNREADABLE, b: ReviewState.INVALID, c: ReviewState.UNREADABLE}, source="model")
        assert s.states() == {a: ReviewState.VERIFIED, b: ReviewState.FIXED, c: ReviewState.UNREADABLE}
        assert (ds / a).exists() and (ds / b).exists()  # labels (names) untouched
        assert s.cached_predictions("m2", scan_files(ds))[a].prediction == "京A00000"  # stored beside
        s.set_state(c, ReviewState.UNREVIEWED)
        assert c not in s.states()


def test_sync_states_follows_the_disk(ds: Path):
    files = scan_files(ds)
    with Store.open(ds) as s:
        s.set_states(
            {files[0].rel: ReviewState.VERIFIED, files[1].rel: ReviewState.FIXED, files[2].rel: ReviewState.VERIFIED}
        )
        (ds / files[0].rel).unlink()
        (ds / files[1].rel).write_bytes(b"replaced by another tool")
        msgs = s.sync_states()
        assert any(files[0].rel in m and "no longer exists" in m for m in msgs)
        assert any(files[1].rel in m and "changed" in m for m in msgs)
        assert s.states() == {files[2].rel: ReviewState.VERIFIED}


def test_read_only_dataset_uses_user_data_dir(ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Tests run as root here, where chmod 0o555 does not stop writes: the folder is made
    # read-only for real (so a non-root run exercises the genuine probe) and the probe is
    # also patched to report what a normal user would see.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(store_mod, "_dataset_writable", lambda folder: False)
    os.chmod(ds, 0o555)
    try:
        with Store.open(ds) as s:
            assert s.notice and "read-only" in s.notice and str(ds.resolve()) in s.notice
            assert str(s.path).startswith(str(tmp_path / "xdg" / "plate-review"))
            s.set_state(scan_files(ds)[0].rel, ReviewState.VERIFIED)
        with Store.open(ds) as s:  # the same per-dataset folder is found again
            assert len(s.states()) == 1
    finally:
        os.chmod(ds, 0o755)
    assert not (ds / ".plate-review").exists()


def test_real_probe_detects_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert store_mod._dataset_writable(tmp_path) is False
