"""Hostile stores, CSVs and bad days: a dataset from a stranger touches nothing outside it.

Each test builds its corpus in a temp folder: a dataset of real crops, an outside folder
holding a "victim" file, and a store or CSV crafted as an attacker (or an unlucky disk) would.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core import relabel as R
from core.cli import main as cli
from core.session import ReviewSession
from core.store import STORE_DIRNAME, STORE_FILENAME, Store, StoreError

from .._util import copy_real


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """``(dataset, outside)``: 6 real crops, and a folder next to it with a victim image."""
    ds = tmp_path / "ds"
    copy_real(ds, 6)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.jpg").write_bytes(b"precious")
    return ds, outside


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _craft(ds: Path, sql: list[tuple[str, tuple]]) -> None:
    """Create the dataset's store, then write rows into it behind the app's back."""
    Store.open(ds).close()
    con = sqlite3.connect(ds / STORE_DIRNAME / STORE_FILENAME)
    for q, args in sql:
        con.execute(q, args)
    con.commit()
    con.close()


@pytest.mark.parametrize("target", ["ABS", "../outside/victim.jpg", "sub/../../outside/victim.jpg"])
def test_a_crafted_pending_journal_row_touches_nothing_outside(world, target):
    ds, outside = world
    victim = outside / "victim.jpg"
    src = str(victim) if target == "ABS" else target
    name = _names(ds)[0]
    _craft(ds, [("INSERT INTO journal(kind, step, seq, src, dst, status, owner, created) "
                 "VALUES('do', 1, 0, ?, ?, 'pending', NULL, 0)", (src, name))])  # fmt: skip
    before = _names(ds)
    with ReviewSession(ds) as s:  # opening reconciles the journal: the forged row must not be replayed
        notes = "\n".join(s.notices)
    assert victim.read_bytes() == b"precious" and _names(ds) == before
    assert "set aside" in notes and "never replayed" in notes
    assert any(p.name.startswith(f"{STORE_FILENAME}.quarantined-") for p in (ds / STORE_DIRNAME).iterdir())


def test_a_crafted_undo_step_cannot_pull_an_outside_file_in(world, capsys):
    ds, outside = world
    _craft(ds, [
        ("INSERT INTO steps(id, description, created, status) VALUES(1, 'x', 0, 'applied')", ()),
        ("INSERT INTO step_items(step, seq, a_rel, b_rel, applied) VALUES(1, 0, ?, 'stolen.jpg', 1)",
         (str(outside / "victim.jpg"),)),
    ])  # fmt: skip
    (ds / "stolen.jpg").write_bytes(b"bait")
    assert cli(["undo", str(ds)]) == 0
    assert (outside / "victim.jpg").read_bytes() == b"precious" and (ds / "stolen.jpg").read_bytes() == b"bait"
    assert "set aside" in capsys.readouterr().err


def test_a_forged_owner_token_is_never_a_file_name(world):
    ds, outside = world
    (outside / "x.lock").write_bytes(b"keep")
    rel = os.path.relpath(outside / "x", ds / STORE_DIRNAME / "owners")
    name = _names(ds)[0]
    _craft(ds, [("INSERT INTO journal(kind, step, seq, src, dst, status, owner, created) "
                 "VALUES('do', 1, 0, ?, ?, 'pending', ?, 0)", (name, "0000-皖A00000.jpg", rel))])  # fmt: skip
    Store.open(ds).close()
    assert (outside / "x.lock").read_bytes() == b"keep"


@pytest.mark.parametrize(
    "row",
    ["../outside/victim.jpg", "ABS", "link/{name}", ".plate-review/store.sqlite", "{name}/../../outside/victim.jpg"],
)
def test_relabel_csv_refuses_paths_outside_the_dataset(world, tmp_path, row, capsys):
    ds, outside = world
    name = _names(ds)[0]
    os.symlink(ds, ds / "link")  # a folder link inside the dataset, back to itself
    Store.open(ds).close()
    store_bytes = (ds / STORE_DIRNAME / STORE_FILENAME).stat().st_size
    path = str(outside / "victim.jpg") if row == "ABS" else row.format(name=name)
    csv_path = tmp_path / "fix.csv"
    csv_path.write_text(f"file,label\n{path},京A12345\n", encoding="utf-8")
    before = _names(ds)
    assert cli(["relabel", str(ds), "--from", str(csv_path)]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "line 2" in err
    assert _names(ds) == before and (outside / "victim.jpg").read_bytes() == b"precious"
    assert (ds / STORE_DIRNAME / STORE_FILENAME).exists()
    assert (ds / STORE_DIRNAME / STORE_FILENAME).stat().st_size >= store_bytes


def test_a_store_folder_that_is_a_link_is_set_aside_and_nothing_is_written_outside(world):
    ds, outside = world
    os.symlink(outside, ds / STORE_DIRNAME)
    with ReviewSession(ds) as s:
        notes = "\n".join(s.notices)
        assert s.store.path.parent == ds.resolve() / STORE_DIRNAME and not (ds / STORE_DIRNAME).is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.jpg"]
    assert "link" in notes


def test_disk_full_during_a_relabel_keeps_the_undo_history_right(world, monkeypatch):
    """The renames happen, then the commit of their outcome fails (disk full): the step is not
    dropped, its id is never reused, and after a reopen undo puts back exactly those files."""
    ds, _ = world
    names = _names(ds)
    store = Store.open(ds)
    real_finish = store.journal_finish
    calls = {"n": 0}

    def full(outcomes):
        calls["n"] += 1
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "journal_finish", full)
    with pytest.raises(sqlite3.OperationalError):
        R.relabel(store, [(names[0], "京A11111"), (names[1], "京A22222")])
    monkeypatch.setattr(store, "journal_finish", real_finish)
    renamed = _names(ds)
    assert renamed != names  # the renames were done before the failure
    store.close()
    with Store.open(ds) as s:  # the next open settles the journal into the step
        steps = s.history()
        assert len(steps) == 1 and steps[0].items == 2 and steps[0].status == "applied"
        first = steps[0].id
        other = R.relabel(s, [(_names(ds)[2], "京A33333")])
        assert other.step > first  # never reused
        R.undo(s)
        rep = R.undo(s)
        assert rep.step == first and not rep.failed
    assert _names(ds) == names


def test_two_processes_changing_one_folder_take_turns(world):
    """A second relabel/undo waits for the first instead of racing it (and marking its work lost)."""
    ds, _ = world
    names = _names(ds)
    a, b = Store.open(ds), Store.open(ds)
    R.relabel(a, [(names[0], "京A11111")])
    R.relabel(a, [(names[1], "京A22222")])
    done = []
    with a.mutating():
        t = threading.Thread(target=lambda: done.append(R.undo(b)))
        t.start()
        time.sleep(0.4)
        assert not done  # waiting for a's lock
        rep_a = R.undo(a)
    t.join(10)
    rep_b = done[0]
    assert {rep_a.step, rep_b.step} == {1, 2} and not rep_a.failed and not rep_b.failed
    assert _names(ds) == names and [h.status for h in a.history()] == ["undone", "undone"]
    a.close()
    b.close()


def test_a_busy_folder_says_so(world, monkeypatch):
    ds, _ = world
    a, b = Store.open(ds), Store.open(ds)
    with a.mutating(), pytest.raises(StoreError, match="another Plate Review process"), b.mutating(timeout_s=0.2):
        pass
    a.close()
    b.close()


def test_the_window_undoes_only_its_own_step(world):
    ds, _ = world
    names = _names(ds)
    with ReviewSession(ds) as s:
        s.relabel(names[0], "京A11111")
        other = Store.open(ds)  # another process renames a file meanwhile
        R.relabel(other, [(names[1], "京A22222")])
        out = s.undo()
        assert "another Plate Review process" in " ".join(out.messages) and not out.renamed
        assert "0000-京A22222.jpg" not in names and any("京A22222" in n for n in _names(ds))
        R.undo(other)  # undone where it was made: now the window's own step is the latest again
        other.close()
        out = s.undo()
        assert out.renamed and _names(ds) == names


def test_a_kill_at_the_end_of_an_undo_is_settled_and_the_next_undo_goes_on(world, monkeypatch):
    ds, _ = world
    names = _names(ds)
    store = Store.open(ds)
    R.relabel(store, [(names[0], "京A11111")])
    R.relabel(store, [(names[1], "京A22222")])

    def killed(outcomes):  # the renames are done, the process dies before recording them
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "journal_finish", killed)
    with pytest.raises(KeyboardInterrupt):
        R.undo(store)
    monkeypatch.undo()
    store.close()
    with Store.open(ds) as s:
        assert [h.status for h in s.history()] == ["applied", "undone"]
        rep = R.undo(s)
        assert rep.step == 1 and rep.renamed
    assert _names(ds) == names


def test_empty_and_damaged_stores(world, capsys):
    ds, _ = world
    d = ds / STORE_DIRNAME
    d.mkdir()
    (d / STORE_FILENAME).write_bytes(b"")
    with ReviewSession(ds) as s:
        assert any("0 bytes" in n for n in s.notices)
    shutil.rmtree(d)
    d.mkdir()
    (d / STORE_FILENAME).write_bytes(b"SQLite format 3\0" + os.urandom(3000))
    with pytest.raises(StoreError, match="plate-review repair"):
        Store.open(ds)
    assert cli(["predict", str(ds), "--out", str(ds.parent / "r.csv")]) == 2
    assert "plate-review repair" in capsys.readouterr().err
    assert cli(["repair", str(ds)]) == 0
    assert "set aside" in capsys.readouterr().out
    Store.open(ds).close()


def test_a_file_changed_behind_the_apps_back_is_not_renamed_from_the_window(world):
    ds, _ = world
    names = _names(ds)
    with ReviewSession(ds) as s:
        s.store.put_predictions("m", [{"rel": names[0], "label": "", "prediction": "京A11111"}])
        with open(ds / names[0], "ab") as f:
            f.write(b"\0")  # the content the window showed is not the content on disk any more
        out = s.relabel(names[0], "京A11111")
    assert not out.renamed and "changed on disk" in " ".join(out.messages) and _names(ds) == names


def test_a_formula_file_name_goes_through_predict_csv_and_back_into_relabel(world, tmp_path):
    """The predict CSV escapes a name like '=1+2-...' against spreadsheets; relabel reads it back."""
    ds, _ = world
    src = sorted(ds.iterdir())[0]
    name = "=1+2-皖A12345.jpg"
    src.rename(ds / name)
    out = tmp_path / "r.csv"
    assert cli(["predict", str(ds), "--out", str(out), "--no-cache"]) == 0
    rows = out.read_text(encoding="utf-8").splitlines()
    assert not any(r.startswith(("=", "+", "-", "@")) for r in rows) and any(r.startswith("'=1+2") for r in rows)
    fix = tmp_path / "fix.csv"
    fix.write_text("file,label\n" + next(r for r in rows if r.startswith("'=1+2")).split(",")[0] + ",京A54321\n",
                   encoding="utf-8")  # fmt: skip
    assert cli(["relabel", str(ds), "--from", str(fix)]) == 0
    assert (ds / "=1+2-京A54321.jpg").exists() and not (ds / name).exists()


def test_predict_lists_bad_entries_as_unreadable_and_never_reads_them(world, tmp_path, monkeypatch):
    """With the store on (the default): a link out of the folder and a name that is not UTF-8 are
    rows with their reason; the run goes on; the linked outside file is never opened."""
    import csv

    import core.data as data

    ds, outside = world
    victim = copy_real(outside, 1, step=11)[0]
    os.symlink(victim, ds / "0900-皖A00900.jpg")
    bad = os.fsencode(str(ds)) + b"/0901-\xff\xfe.jpg"
    with open(bad, "wb") as f:
        f.write((ds / _names(ds)[0]).read_bytes())
    opened = []
    real = data.read_rgb  # what the decode step calls
    monkeypatch.setattr(data, "read_rgb", lambda p, *a, **k: (opened.append(str(p)), real(p, *a, **k))[1])
    out = tmp_path / "r.csv"
    assert cli(["predict", str(ds), "--out", str(out)]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert "symbolic link out of the dataset folder" in rows["0900-皖A00900.jpg"]["error"]
    assert any("not valid UTF-8" in r["error"] for r in rows.values())
    assert opened and not any(str(victim) in p or "0900-" in p for p in opened)
    assert cli(["predict", str(ds), "--out", str(out)]) == 0  # the cached run says the same
