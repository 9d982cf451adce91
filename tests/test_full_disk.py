"""A full disk: a failed write names its file and says why, nothing on disk is lost, and a read
goes on where only its cache cannot be written.

Three ways to run out of room: SQLite's own page limit (``PRAGMA max_page_count``: SQLite answers
SQLITE_FULL, as it does on a full disk), the process's file-size limit (``RLIMIT_FSIZE``: the
kernel refuses the write with EFBIG), and, where the tests may mount one, a 3 MB tmpfs that is
really full (ENOSPC, SQLite's shared-memory file included).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from core import store as store_mod
from core.cli import main
from core.export import ExportError, export_dataset
from core.files import WriteError, write_problem
from core.models import load_checkpoint, save_checkpoint
from core.predict import Predictor
from core.records import PredictionResult
from core.relabel import relabel
from core.results_csv import write_results_csv
from core.store import Store, StoreFullError

resource = pytest.importorskip("resource")
signal = pytest.importorskip("signal")


def fill(store: Store) -> None:
    """Let the store hold no more pages than it has now: a write that needs a page fails with SQLITE_FULL."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")


def results(n: int, prefix: str = "x") -> list[PredictionResult]:
    return [PredictionResult(f"{prefix}{i}.jpg", "皖A12345", prediction="皖A12345", probs=[0.9] * 7) for i in range(n)]


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """No file this process writes may grow past ``nbytes`` (writes past it fail with EFBIG)."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal that kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def full_store(monkeypatch):
    """Every store opened from now on is full (``fill``) once open."""
    real_open = Store.open.__func__

    def open_full(cls, folder, reconcile=True):
        s = real_open(cls, folder, reconcile)
        fill(s)
        return s

    monkeypatch.setattr(Store, "open", classmethod(open_full))


def test_a_full_store_refuses_a_write_by_name_rolls_it_back_and_stays_usable(real_crops):
    folder = real_crops(2)
    s = Store.open(folder)
    ident = {f"x{i}.jpg": (1, 2) for i in range(2000)}
    s.put_predictions("m", results(1, "kept"), {"kept0.jpg": (1, 2)})
    fill(s)
    with pytest.raises(StoreFullError) as e:
        s.put_predictions("m", results(2000), ident)
    msg = str(e.value)
    assert str(s.path) in msg and "cannot write the store" in msg and "Nothing in the store was lost" in msg
    assert "damaged" not in msg and "repair" not in msg  # a full store is not a damaged one: repair would lose it
    assert not s.conn.in_transaction  # rolled back: the next write can begin
    assert s.conn.execute("SELECT rel FROM predictions").fetchall() == [("kept0.jpg",)]
    s.conn.execute("PRAGMA max_page_count = 1000000")  # room again
    assert s.put_predictions("m", results(2000), ident) == 2000
    s.close()


def test_a_store_that_cannot_open_on_a_full_disk_is_not_called_damaged(real_crops, monkeypatch):
    folder = real_crops(2)
    Store.open(folder).close()

    def no_shared_memory(*a, **kw):  # what SQLite says when it cannot size its -shm file on a full disk
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "__init__", no_shared_memory)
    monkeypatch.setattr(store_mod, "free_bytes", lambda path: 0)
    with pytest.raises(StoreFullError, match="cannot open the store: the disk is full") as e:
        Store.open(folder)
    assert "repair" not in str(e.value)
    monkeypatch.setattr(store_mod, "free_bytes", lambda path: 50 << 30)  # room: then it is damage
    with pytest.raises(store_mod.StoreError, match="damaged.*plate-review repair"):
        Store.open(folder)
    assert (folder / ".plate-review" / "store.sqlite").is_file()  # nothing set aside either way


def test_predict_reads_every_file_and_says_why_nothing_was_cached(real_crops, random_checkpoint, tmp_path, capsys,
                                                                  full_store):  # fmt: skip
    folder = real_crops(12)
    out = tmp_path / "r.csv"
    assert main(["predict", str(folder), "--model", str(random_checkpoint), "--out", str(out), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: predictions not cached" in err and str(folder / ".plate-review" / "store.sqlite") in err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 12


def test_a_csv_that_cannot_be_written_leaves_the_previous_one(tmp_path):
    out = tmp_path / "results.csv"
    write_results_csv(results(2), out)
    before = out.read_bytes()
    with file_size_limit(300), pytest.raises(WriteError) as e:
        write_results_csv(results(50), out)
    assert str(e.value).startswith(f"cannot write {out}: File too large") and e.value.path == out
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temporary left behind


def test_a_checkpoint_that_cannot_be_written_is_named_and_not_left_half_written(tmp_path, random_checkpoint):
    ckpt = load_checkpoint(random_checkpoint)
    out = tmp_path / "models" / "m.pt"
    with file_size_limit(4096), pytest.raises(WriteError, match=f"cannot write {out}: File too large"):
        save_checkpoint(ckpt, out)
    assert list(out.parent.iterdir()) == []
    save_checkpoint(ckpt, out)
    assert load_checkpoint(out).config == ckpt.config


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_no_room_left_says_how_much_is_free(tmp_path):
    with pytest.raises(OSError) as e, open("/dev/full", "wb") as f:
        f.write(b"x")
        f.flush()
    assert e.value.errno == errno.ENOSPC
    msg = write_problem(tmp_path / "a.csv", e.value)
    assert msg.startswith(f"cannot write {tmp_path / 'a.csv'}: No space left on device (") and "free on its disk" in msg


def test_an_export_that_runs_out_of_room_says_how_to_finish_and_finishes_when_run_again(real_crops, tmp_path):
    folder = real_crops(6)
    out = tmp_path / "export"
    with file_size_limit(600), pytest.raises(ExportError, match="export to it again to finish") as e:
        export_dataset(folder, out)
    assert "File too large" in str(e.value)
    report = export_dataset(folder, out)
    assert sum(report.written.values()) == 6 and not list(out.rglob("*.part*"))


def test_the_reader_falls_back_to_pytorch_when_its_onnx_export_cannot_be_written(
    random_checkpoint, tmp_path, monkeypatch, real_crops
):
    pytest.importorskip("onnxruntime")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr("core.predict.onnx_cache_path", lambda *a, **kw: blocker / "m.onnx")
    reader = Predictor(random_checkpoint, device="cpu")
    assert reader.backend == "torch" and "PyTorch" in reader.description
    with pytest.raises(WriteError, match=f"cannot write {blocker / 'm.onnx'}"):
        Predictor(random_checkpoint, device="cpu", backend="onnx")  # asked for by name: said, not replaced


# --------------------------------------------------------------- a disk that is really full


@pytest.fixture
def full_disk(tmp_path):
    """A 3 MB tmpfs holding 12 real crops and a filler that leaves it (nearly) no room; skip where
    the tests may not mount one (not root, or no CAP_SYS_ADMIN in a container)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _leave_no_room(mnt: Path) -> Path:
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_on_a_really_full_disk_every_command_says_so_and_nothing_is_lost(full_disk, real_crops, random_checkpoint,
                                                                          tmp_path, capsys):  # fmt: skip
    folder = full_disk / "ds"
    shutil.copytree(real_crops(12), folder)
    before = sorted(p.name for p in folder.iterdir())
    filler = _leave_no_room(full_disk)
    model = ["--model", str(random_checkpoint), "--workers", "0"]

    out = tmp_path / "r.csv"
    assert main(["predict", str(folder), *model, "--out", str(out)]) == 0  # the read is not stopped by its cache
    err = capsys.readouterr().err
    assert "warning:" in err and "the disk is full" in err and "damaged" not in err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 13

    assert main(["predict", str(folder), *model, "--no-cache", "--out", str(full_disk / "r.csv")]) == 2
    assert "No space left on device" in capsys.readouterr().err and not (full_disk / "r.csv").exists()

    wrong = before[0].split("-", 1)[0] + "-皖A00000.jpg"
    corrections = tmp_path / "c.csv"
    corrections.write_text(f"file,label\n{before[0]},皖A00000\n", encoding="utf-8")
    assert main(["relabel", str(folder), "--from", str(corrections)]) == 2
    assert "the disk is full" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == before  # not renamed

    assert main(["export", str(folder), "--out", str(tmp_path / "export")]) == 2  # its store cannot even open
    assert "cannot open the store: the disk is full" in capsys.readouterr().err
    roomy = real_crops(12, folder="roomy")
    assert main(["export", str(roomy), "--out", str(full_disk / "export")]) == 1  # into the full disk
    err = capsys.readouterr().err
    assert "No space left on device" in err and "export to it again to finish" in err

    filler.unlink()  # room again: everything works, nothing was lost
    assert main(["relabel", str(folder), "--from", str(corrections)]) == 0
    assert (folder / wrong).is_file()
    assert main(["undo", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == before
    assert main(["export", str(roomy), "--out", str(full_disk / "export")]) == 0  # finishes the unfinished one
    assert len(list((full_disk / "export").glob("*/*.jpg"))) == 12


def test_a_rename_the_store_cannot_record_is_put_back_and_said(real_crops, monkeypatch):
    # The journal's "pending" entries fitted, the renames were made, then the store filled up before it
    # could record them done: those files get their names back, so the report and the disk agree; the
    # chunk before was recorded and stays renamed.
    folder = real_crops(5)
    names = sorted(p.name for p in folder.iterdir())
    new = [n.split("-")[0] + "-皖A00000.jpg" for n in names]
    s = Store.open(folder)
    real_finish, calls = Store.journal_finish, []

    def full_on_second_chunk(self, outcomes):
        calls.append(len(outcomes))
        if len(calls) == 2:
            raise StoreFullError("store.sqlite: cannot write the store: the disk is full")
        return real_finish(self, outcomes)

    monkeypatch.setattr(Store, "journal_finish", full_on_second_chunk)
    report = relabel(s, [(n, "皖A00000") for n in names], chunk=2)
    assert calls == [2, 2]  # the third chunk was not begun
    assert report.renamed == list(zip(names[:2], new[:2]))
    assert [rel for rel, _ in report.failed] == names[2:] and all("no room" in why for _, why in report.failed)
    assert report.messages == ["store.sqlite: cannot write the store: the disk is full"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == sorted(new[:2] + names[2:])
    monkeypatch.undo()
    s.close()
    s = Store.open(folder)  # room again: the second chunk's pending entries settle as never done
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == sorted(new[:2] + names[2:])
    assert [r[0] for r in s.conn.execute("SELECT status FROM journal ORDER BY rowid")] == ["done"] * 2 + [
        "cancelled"
    ] * 2
    assert relabel(s, [(names[2], "皖A00000")]).renamed == [(names[2], new[2])]
    s.close()


def test_a_training_curve_that_cannot_be_written_names_its_file(tmp_path):
    from core.finetune import CurveLog, CurveRow

    path = tmp_path / "curves.csv"
    with (
        CurveLog(path) as log,
        file_size_limit(200),
        pytest.raises(WriteError, match=f"cannot write {path}: File too large"),
    ):
        for step in range(50):
            log.add(CurveRow(step, 1, train_loss=1.0 / (step + 1)))


def test_an_edit_after_a_read_that_could_not_be_cached_compares_with_what_was_read(real_crops, random_checkpoint):
    # The store holds an older reading of the files (copied since: other times); the new reading could
    # not be cached. A rename checks the file against the new reading, not the stale one ("changed on disk").
    from core.session import ReviewSession

    folder = real_crops(4)
    reader = Predictor(random_checkpoint, device="cpu")
    with ReviewSession(folder) as session:
        files = session.scan()
        stale = {f.rel: (f.size, f.mtime_ns - 10**9) for f in files}
        session.store.put_predictions("an older reader", [PredictionResult(rel, "") for rel in stale], stale)
        fill(session.store)
        with contextlib.suppress(StoreFullError):  # the prediction table's pages full to the last row
            for i in range(100000):
                session.store.put_predictions("junk", results(1, f"j{i}-"), {f"j{i}-0.jpg": (1, 2)})
        todo = session.load(reader.model_hash, files)[1]
        session.predict(todo, reader, files, workers=0)
        assert session.cache_problem and "cannot write the store" in session.cache_problem
        rel = files[0][0]
        assert session.store.known_identity(rel) == stale[rel]  # what the store knows is stale
        out = session.relabel(rel, "皖A00000")  # the journal's pages have room, the cache's had not
        assert not out.failed, out.messages
        assert out.renamed == [(rel, rel.split("-")[0] + "-皖A00000.jpg")]


def test_an_output_never_replaces_an_image_or_lands_beside_the_store(real_crops, random_checkpoint, tmp_path, capsys):
    folder = real_crops(3)
    crop = sorted(folder.glob("*.jpg"))[0]
    before = crop.read_bytes()
    model = ["--model", str(random_checkpoint), "--workers", "0"]
    assert main(["predict", str(folder), *model, "--out", str(crop)]) == 2
    assert "not written: an image file" in capsys.readouterr().err and crop.read_bytes() == before
    store = folder / ".plate-review" / "store.sqlite"
    assert main(["predict", str(folder), *model, "--out", str(store)]) == 2
    assert f"{store}: not written: in a dataset's .plate-review folder" in capsys.readouterr().err
    assert main(["predict", str(folder), *model, "--out", str(tmp_path / "r.csv")]) == 0  # the store still opens
    assert main(["import-model", str(random_checkpoint), "--out", str(crop)]) == 2
    assert crop.read_bytes() == before


def test_an_output_that_cannot_be_written_is_said_before_the_work_not_after(real_crops, tmp_path, capsys):
    folder = real_crops(3)
    a_folder = tmp_path / "odir"
    a_folder.mkdir()
    blocked = tmp_path / "a-file" / "cv.csv"  # its folder would have to be a file
    (tmp_path / "a-file").write_text("x")
    for out, why in ((a_folder, "not written: a folder"), (blocked, "cannot write")):
        for cmd in (["crossval", str(folder), "--folds", "3", "--max-steps", "1"], ["train", str(folder), "--max-steps", "1"],
                    ["predict", str(folder)]):  # fmt: skip
            assert main([*cmd, "--out", str(out)]) == 2, cmd
            err = capsys.readouterr().err
            assert why in err and len(err.strip().splitlines()) == 1, (cmd, err)  # one line: nothing ran first
