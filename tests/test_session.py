"""ReviewSession: one open dataset (cache rows before the scan, batch decisions, CV scores, duplicates)."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.records import PredictionResult
from core.session import ReviewSession
from core.store import Store, scan_files

from ._util import REAL, copy_real, prediction_row


def test_cached_rows_before_the_scan_then_reconcile(ds: Path):
    """The rows of the last session come back without a scan; reconcile finds what changed behind the app's back."""
    files = scan_files(ds)
    with Store.open(ds) as s:
        s.put_predictions("m", [prediction_row(f.rel) for f in files], {f.rel: (f.size, f.mtime_ns) for f in files})
    gone, changed, renamed = files[0].rel, files[1].rel, files[2].rel
    (ds / gone).unlink()
    with open(ds / changed, "ab") as f:
        f.write(b"\0")
    new_name = renamed.rsplit("/", 1)[0] + "/9999-皖A99999.jpg" if "/" in renamed else "9999-皖A99999.jpg"
    (ds / renamed).rename(ds / new_name)
    shutil.copy2(sorted(REAL.glob("*.jpg"))[20], ds / "sub" / "added-皖B12345.jpg")
    with ReviewSession(ds) as session:
        rows = session.cached("m")
        assert [r.rel for r in rows] == sorted(f.rel for f in files)  # as last stored, by rel: no scan needed
        assert session.cached("") == [] and session.cached("other") == []
        now = session.scan()
        stale, pending, todo = session.reconcile("m", rows, now)
        assert sorted(stale) == sorted([gone, changed, renamed])
        assert sorted(p.rel for p in pending) == sorted([changed, new_name, "sub/added-皖B12345.jpg"])
        assert all(isinstance(p, PredictionResult) and not p.prediction for p in pending) and [t.rel for t in todo] == [
            p.rel for p in pending
        ]
        shown = {r.rel for r in rows} - set(stale) | {p.rel for p in pending}
        assert shown == {f.rel for f in now}  # nothing lost, nothing twice
        # The same split as load(); predictions of files that are gone are dropped from the store.
        records, todo2 = session.load("m", now)
        assert {r.rel for r in records} == shown and {t.rel for t in todo2} == {p.rel for p in pending}
        left = {r.rel for r in session.cached("m")}
        assert gone not in left and renamed not in left and changed in left


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_accepting_a_selection_is_one_undo_step(tmp_path: Path):
    folder = tmp_path / "sel"
    files = copy_real(folder, 4)
    names = _names(folder)
    labels = [f.name.split("-", 1)[1][:-4] for f in files]
    items = [
        (files[0].name, labels[0], labels[0][:-1] + ("1" if labels[0][-1] != "1" else "2")),  # renamed
        (files[1].name, labels[1], labels[1][:-1] + ("1" if labels[1][-1] != "1" else "2")),  # renamed
        (files[2].name, labels[2], labels[2]),  # already right: verified
        (files[3].name, labels[3], ""),  # no prediction: reported, left alone
    ]
    with ReviewSession(folder) as s:
        out = s.accept_predictions(items)
        assert len(out.renamed) == 2 and s.get_state(files[2].name) == "verified"
        assert any("no valid prediction" in m for m in out.messages)
        after = _names(folder)
        back = s.undo()
        assert _names(folder) == names and s.get_state(files[2].name) == "unreviewed" and len(back.renamed) == 2
        s.redo()
        assert _names(folder) == after and s.get_state(files[2].name) == "verified"


def test_verifying_a_selection_is_one_undo_entry(ds: Path):
    rels = [f.rel for f in scan_files(ds)][:3]
    with ReviewSession(ds) as s:
        s.set_states(rels, "verified")
        assert all(s.get_state(r) == "verified" for r in rels)
        s.undo()
        assert all(s.get_state(r) == "unreviewed" for r in rels)


def test_crossval_scores_come_back_in_a_new_session(ds: Path):
    rels = [f.rel for f in scan_files(ds)]
    cv = {r: PredictionResult(r, "", prediction="京A00000", label_score=0.5) for r in rels}
    with ReviewSession(ds) as s:
        s.save_crossval(cv, {"folds": 2})
    with ReviewSession(ds) as s:
        got = s.crossval()
        assert set(got) == set(rels) and got[rels[0]].label_score == 0.5 and s.crossval_info() == {"folds": 2}
    with ReviewSession(ds, use_store=False) as s:
        assert s.crossval() == {}


def test_duplicate_groups_from_the_records():
    recs = [PredictionResult("a.jpg", "京A00000", image_hash=5), PredictionResult("b.jpg", "京A00001", image_hash=7),
            PredictionResult("c.jpg", "京A00002", image_hash=0x5555555555555555), PredictionResult("d.jpg", "京A00003")]  # fmt: skip
    groups = ReviewSession.duplicate_groups(recs)
    assert [g.rels for g in groups] == [("a.jpg", "b.jpg")] and groups[0].labels_differ


def test_decisions_are_undoable_after_a_restart(ds: Path):
    rels = [f.rel for f in scan_files(ds)]
    with ReviewSession(ds) as s:
        s.set_state(rels[0], "verified")
        s.set_states(rels[1:3], "unreadable")
        s.relabel(rels[3], rels[3].rsplit("-", 1)[1][:-4])  # the label it has: marked fixed, no rename
    with ReviewSession(ds) as s:  # a new session: the history is the store's
        assert [h.description for h in s.store.history()][-3:] == [f"{rels[0]}: verified", "2 files: unreadable",
                                                                      f"{rels[3]} -> {rels[3].rsplit('-', 1)[1][:-4]}"]  # fmt: skip
        assert s.get_state(rels[3]) == "fixed"
        s.undo()
        assert s.get_state(rels[3]) == "unreviewed"
        s.undo()
        assert s.get_state(rels[1]) == s.get_state(rels[2]) == "unreviewed"
        s.undo()
        assert s.get_state(rels[0]) == "unreviewed"
        s.redo()
        assert s.get_state(rels[0]) == "verified"
