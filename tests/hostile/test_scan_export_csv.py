"""A dataset from a stranger: one bad entry is one bad entry, an interrupted export resumes,
no CSV cell becomes a spreadsheet formula.

Tests run as root, which ignores permissions: an unreadable folder is simulated by making
``os.scandir`` (and the descriptor route ``core.store.scan_files`` takes) fail for it.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import data as D
from core import export as E
from core import images
from core.cli import main
from core.dataset import (
    IS_FOLDER,
    LINK_DANGLING,
    LINK_NOT_FILE,
    LINK_OUTSIDE,
    NOT_REGULAR,
    NOT_UTF8_FILE,
    NOT_UTF8_FOLDER,
    scan_folder,
)
from core.results_csv import FORMULA_LEADS, escape_cell, printable, unescape_cell

from .._util import REPO, copy_real, real_files

BAD_NAME = b"0100-\xff\xfe.jpg"  # not valid UTF-8
FORMULA_NAMES = ["=1+2-皖A12345.jpg", "+1-皖A12346.jpg", "-1-皖A12347.jpg", "@SUM(1)-皖A12348.jpg", "\t1-皖A12349.jpg"]


def _make_file(folder: Path, name: bytes, data: bytes) -> str:
    """Create ``folder/name`` from raw bytes; returns the name as ``os.fsdecode`` gives it."""
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return os.fsdecode(name)


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` cannot be listed (PermissionError), whether opened by path or by descriptor."""
    real = os.scandir
    denied = getattr(real, "denied", set())
    denied.add(str(folder))

    def scandir(path=".", *a, **k):
        where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else os.fspath(path)
        if where in denied:
            raise PermissionError(13, "Permission denied", where)
        return real(path, *a, **k)

    scandir.denied = denied
    monkeypatch.setattr(os, "scandir", scandir)


def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:  # strict UTF-8: raises on a bad byte
        return list(csv.reader(f))


# --------------------------------------------------------------------------- scan


def test_scan_lists_a_name_that_is_not_utf8_as_unreadable(tmp_path: Path):
    copy_real(tmp_path / "ds", 2)
    bad = _make_file(tmp_path / "ds", BAD_NAME, b"x")
    os.mkdir(os.fsencode(tmp_path / "ds") + b"/d\xe9j\xe0")  # a folder name that is not UTF-8 either
    inner = _make_file(tmp_path / "ds", b"d\xe9j\xe0/0101-\xe7\x9a\x96A12345.jpg", b"x")
    by_rel = {s.rel: s for s in scan_folder(tmp_path / "ds")}
    assert len(by_rel) == 4
    assert by_rel[bad].error == NOT_UTF8_FILE and not by_rel[bad].valid
    assert os.fsencode(by_rel[bad].rel) == BAD_NAME  # os.fsdecode's surrogateescape form: the bytes come back
    assert by_rel[inner].error == NOT_UTF8_FOLDER
    assert sum(s.error is None and s.valid for s in by_rel.values()) == 2


def test_scan_lists_an_unreadable_subfolder_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    copy_real(tmp_path / "ds", 2)
    copy_real(tmp_path / "ds" / "sub", 2, step=5)
    copy_real(tmp_path / "ds" / "ok", 1, step=3)
    _deny(monkeypatch, tmp_path / "ds" / "sub")
    (tmp_path / "ds" / "x.jpg").mkdir()  # a folder with an image name that cannot be listed: one entry
    _deny(monkeypatch, tmp_path / "ds" / "x.jpg")
    samples = scan_folder(tmp_path / "ds")
    assert [(s.rel, s.error) for s in samples if s.error] == [
        ("sub", "folder cannot be read: Permission denied"),
        ("x.jpg", "folder cannot be read: Permission denied"),
    ]
    assert len(samples) == 5 and any(s.rel.startswith("ok/") for s in samples)


def test_scan_never_follows_a_symlink_out_and_names_odd_entries(tmp_path: Path):
    ds, outside = tmp_path / "ds", tmp_path / "outside"
    inside = copy_real(ds, 2)
    secret = copy_real(outside, 1, step=9)[0]
    (ds / "0200-皖A11111.jpg").symlink_to(secret)  # out of the folder
    (ds / "0201-皖A11112.jpg").symlink_to(ds / "gone.jpg")  # dangling
    (ds / "0202-皖A11113.jpg").symlink_to(inside[0])  # inside: an image like any other
    (ds / "0203-皖A11114.jpg").symlink_to(ds / "sub")  # to a folder
    (ds / "0204-皖A11115.jpg").mkdir()  # a folder with an image name: listed, and scanned
    copy_real(ds / "0204-皖A11115.jpg", 1, step=4)
    (ds / "sub").mkdir()
    (ds / "loop.jpg").symlink_to(ds / "loop.jpg")
    os.mkfifo(ds / "0205-皖A11116.jpg")  # reading it would block for ever
    (ds / "notes.txt").write_text("not an image")  # not an image name: not listed
    (ds / ".hidden.jpg").write_bytes(b"x")  # hidden: not listed
    errors = {s.rel: s.error for s in scan_folder(ds)}
    assert errors["0200-皖A11111.jpg"] == LINK_OUTSIDE
    assert errors["0201-皖A11112.jpg"] == LINK_DANGLING
    assert errors["loop.jpg"] == LINK_DANGLING
    assert errors["0202-皖A11113.jpg"] is None
    assert errors["0203-皖A11114.jpg"] == LINK_NOT_FILE
    assert errors["0204-皖A11115.jpg"] == IS_FOLDER
    assert errors["0205-皖A11116.jpg"] == NOT_REGULAR
    assert sum(r.startswith("0204-皖A11115.jpg/") and e is None for r, e in errors.items()) == 1
    assert len(errors) == 2 + 7 + 1


# --------------------------------------------------------------------------- predict


def test_predict_writes_bad_names_and_formulas_safely(tmp_path: Path, random_checkpoint: Path, capfd):
    ds = tmp_path / "ds"
    files = copy_real(ds, 3)
    bad = _make_file(ds, BAD_NAME, files[0].read_bytes())
    for name, src in zip(FORMULA_NAMES, real_files(len(FORMULA_NAMES), step=5)):
        shutil.copy2(src, ds / name)
    out = tmp_path / "r.csv"
    rc = main(
        ["predict", str(ds), "--model", str(random_checkpoint), "--out", str(out), "--workers", "0", "--no-cache"]
    )
    assert rc == 0, capfd.readouterr().err
    rows = _rows(out)
    body = rows[1:]
    assert len(body) == 3 + 1 + len(FORMULA_NAMES)
    for row in body:
        for cell in row:
            assert not cell or cell[0] not in FORMULA_LEADS - {"'"}, row
    assert {unescape_cell(r[0]) for r in body} == {s.rel for s in scan_folder(ds)}
    assert bad in {unescape_cell(r[0]) for r in body}


# --------------------------------------------------------------------------- train


def _train(ds: Path, out: Path) -> int:
    return main(["train", str(ds), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--arch", "simple",
                 "--val-split", "0.25", "--workers", "0"])  # fmt: skip


@pytest.mark.parametrize("folder", [b"ds", b"d\xffs"], ids=["plain", "folder-name-not-utf8"])
def test_train_skips_and_reports_a_corrupt_image(folder: bytes, tmp_path: Path, capsys: pytest.CaptureFixture):
    ds = tmp_path / os.fsdecode(folder)
    copy_real(ds, 7, step=3)
    (ds / "0900-皖A00000.jpg").write_bytes(b"not a jpeg")  # a plate name, a corrupt image
    rc = _train(ds, tmp_path / "t.pt")
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "t.pt").exists(), err
    corrupt = [x for x in err.splitlines() if "0900-皖A00000.jpg" in x]  # every item is read in one epoch
    assert len(corrupt) == 1 and corrupt[0].startswith(
        f"skipped unreadable {printable(str(ds / '0900-皖A00000.jpg'))}: "
    )
    assert corrupt[0].split(".jpg: ", 1)[1].strip()  # with its reason
    assert "skipped 1 unreadable file(s)" in err


def test_train_reports_entries_it_must_not_read(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture):
    ds, outside = tmp_path / "ds", tmp_path / "outside"
    copy_real(ds, 6, step=3)
    _make_file(ds, BAD_NAME, b"x")
    (ds / "0901-皖A00001.jpg").symlink_to(copy_real(outside, 1, step=5)[0])
    copy_real(ds / "sub", 1, step=9)
    _deny(monkeypatch, ds / "sub")
    read, real_read = [], D.read_rgb
    monkeypatch.setattr(D, "read_rgb", lambda path: (read.append(os.path.basename(path)), real_read(path))[1])
    rc = _train(ds, tmp_path / "t.pt")
    lines = capsys.readouterr().err.splitlines()
    assert rc == 0, lines
    assert len(read) == 6 and not {"0901-皖A00001.jpg", os.fsdecode(BAD_NAME)} & set(read)  # never opened
    assert f"skipping unreadable 0100-\\xff\\xfe.jpg: {NOT_UTF8_FILE}" in lines
    assert f"skipping unreadable 0901-皖A00001.jpg: {LINK_OUTSIDE}" in lines
    assert "skipping unreadable sub: folder cannot be read: Permission denied" in lines


# --------------------------------------------------------------------------- export


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    copy_real(d, 12, step=3)
    return d


def _exported(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not any(x.startswith(".") for x in p.relative_to(out).parts)
    }


def test_export_goes_on_past_bad_entries_and_escapes_its_csvs(ds: Path, tmp_path: Path, monkeypatch, capsys):
    real = real_files()  # the dataset has every third: 0, 3, ...
    (tmp_path / "outside").mkdir()
    secret = Path(shutil.copy2(real[1], tmp_path / "outside"))
    (ds / "0300-皖A33333.jpg").symlink_to(secret)
    _make_file(ds, BAD_NAME, real[2].read_bytes())
    (ds / "sub").mkdir()
    shutil.copy2(real[4], ds / "sub")
    _deny(monkeypatch, ds / "sub")
    shutil.copy2(real[5], ds / FORMULA_NAMES[0])  # valid plate label, formula-like name
    shutil.copy2(real[7], ds / "=cmd|'calc'!A0.jpg")  # invalid label: skipped.csv
    shutil.copy2(real[8], ds / "\n7\t-皖A12350.jpg")  # an id that would split a rec_gt line
    read, real_read = [], images.read_rgb
    monkeypatch.setattr(images, "read_rgb", lambda path: (read.append(os.path.basename(path)), real_read(path))[1])
    rc = main(["export", str(ds), "--out", str(tmp_path / "out"), "--split", "train=0.5,test=0.5"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert printed.out.splitlines()[-1] == "exported=14 skipped=4 read=18"
    assert "skipped 0100-\\xff\\xfe.jpg: unreadable: file name is not valid UTF-8" in printed.out
    out = tmp_path / "out"
    assert secret.read_bytes() not in _exported(out).values()  # the link out was never followed
    assert len(read) == 14 and not {"0300-皖A33333.jpg", os.fsdecode(BAD_NAME)} & set(read)
    skipped = {unescape_cell(r[0]): r[1] for r in _rows(out / "skipped.csv")[1:]}
    assert skipped == {
        "0300-皖A33333.jpg": f"unreadable: {LINK_OUTSIDE}",
        os.fsdecode(BAD_NAME): f"unreadable: {NOT_UTF8_FILE}",
        "sub": "unreadable: folder cannot be read: Permission denied",
        "=cmd|'calc'!A0.jpg": skipped["=cmd|'calc'!A0.jpg"],
    }
    assert skipped["=cmd|'calc'!A0.jpg"].startswith("invalid label")
    for name in ("skipped.csv", "manifest.csv", "changes.csv"):
        for row in _rows(out / name):
            assert all(not c or c[0] not in FORMULA_LEADS - {"'"} for c in row), (name, row)
    manifest = {unescape_cell(r[2]): r for r in _rows(out / "manifest.csv")[1:]}
    assert FORMULA_NAMES[0] in manifest and "\n7\t-皖A12350.jpg" in manifest
    for part in ("train", "test"):
        lines = (out / f"rec_gt_{part}.txt").read_text(encoding="utf-8").split("\n")[:-1]
        assert all(line.count("\t") == 1 for line in lines) and len(lines) == len(os.listdir(out / part))
    assert not (out / E.MARKER).exists()


class Killed(BaseException):
    """The process ending where it stands (nothing may catch it as an error)."""


def test_an_interrupted_export_resumes(ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    real = shutil.copy2
    calls = {"n": 0}

    def killed_half_way(src, dst):
        calls["n"] += 1
        if calls["n"] == 5:
            data = Path(src).read_bytes()
            Path(dst).write_bytes(data[: len(data) // 2])
            raise Killed  # mid-file
        return real(src, dst)

    monkeypatch.setattr(E.shutil, "copy2", killed_half_way)
    with pytest.raises(Killed):
        E.export_dataset(ds, out, seed=4)
    monkeypatch.setattr(E.shutil, "copy2", real)
    done = _exported(out)
    assert len(done) == 4 and (out / E.MARKER).exists()
    sources = {p.read_bytes() for p in ds.iterdir()}
    assert all(data in sources for data in done.values())  # a final name only on a complete file
    # what a kill leaves besides: a partial temporary, and a complete file that no longer matches its source
    (out / "train" / ".plate-review-99.part").write_bytes(b"half")
    damaged = sorted(out.glob("*/*.jpg"))[0]
    damaged.write_bytes(b"changed")

    report = E.export_dataset(ds, out, seed=4)
    assert report.kept == 3 and sum(report.written.values()) == 12
    assert not list(out.rglob("*.part")) and not (out / E.MARKER).exists()
    E.export_dataset(ds, fresh, seed=4)
    assert _exported(out) == _exported(fresh)
    with pytest.raises(E.ExportError, match="not empty"):  # a finished export is not written over
        E.export_dataset(ds, out, seed=4)


def test_an_unfinished_export_of_another_folder_is_refused(ds: Path, tmp_path: Path, monkeypatch):
    other = copy_real(tmp_path / "other", 2)[0].parent

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(E.shutil, "copy2", disk_full)
    with pytest.raises(E.ExportError, match=r"No space left on device \(.* free on its disk\); .* again to finish"):
        E.export_dataset(ds, tmp_path / "out")
    monkeypatch.undo()
    assert not list((tmp_path / "out").rglob("*.part"))
    with pytest.raises(E.ExportError, match="unfinished export of") as e:
        E.export_dataset(other, tmp_path / "out")
    assert e.value.refused


KILL_CHILD = """
import os, shutil, signal, sys
from pathlib import Path
from core import data as D
from core import export as E
from core import images
real, n = shutil.copy2, [0]
def copy(src, dst):
    n[0] += 1
    if n[0] == 6:
        data = Path(src).read_bytes()
        with open(dst, "wb") as f:
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
E.shutil.copy2 = copy
E.export_dataset(sys.argv[1], sys.argv[2], seed=1, check_images=False)
"""


def test_an_export_killed_with_sigkill_resumes(ds: Path, tmp_path: Path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    r = subprocess.run([sys.executable, "-c", KILL_CHILD, str(ds), str(out)], cwd=REPO, capture_output=True)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode(errors="replace")
    assert len(list(out.rglob(".plate-review-*.part"))) == 1  # the file being written when killed
    sources = {p.read_bytes() for p in ds.iterdir()}
    assert len(_exported(out)) == 5 and all(data in sources for data in _exported(out).values())
    report = E.export_dataset(ds, out, seed=1)
    assert report.kept == 5
    E.export_dataset(ds, fresh, seed=1)
    assert _exported(out) == _exported(fresh) and not list(out.rglob("*.part"))


# --------------------------------------------------------------------------- CSV cells


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'quoted", "''", "'", "=a\\b", "a\\xff", "plain.jpg",
     "皖A12345", "", os.fsdecode(BAD_NAME), "=" + os.fsdecode(b"\x80\\x80"), "\ud800lone", " =1"],
)  # fmt: skip
def test_escape_cell_is_safe_and_unescape_cell_undoes_it(text: str):
    cell = escape_cell(text)
    cell.encode("utf-8")  # valid UTF-8 whatever the name
    assert not cell or cell[0] not in FORMULA_LEADS - {"'"}
    assert unescape_cell(cell) == text
    plain = text[0] not in FORMULA_LEADS and " " not in (text[0], text[-1]) and text.isprintable() if text else True
    assert (cell == text) == plain  # spaces at either end are escaped too: a reader strips unescaped cells


def test_escape_contract_examples():
    assert escape_cell("=1+2-皖A12345.jpg") == "'=1+2-皖A12345.jpg"
    assert escape_cell("'x") == "''x"
    assert escape_cell(os.fsdecode(BAD_NAME)) == "'0100-\\xff\\xfe.jpg"
    assert escape_cell("=a\\b") == "'=a\\\\b"
    assert escape_cell(3) == 3 and escape_cell("0.5000") == "0.5000"
    assert unescape_cell("'0100-\\xff\\xfe.jpg") == os.fsdecode(BAD_NAME)
    assert unescape_cell("plain\\xff") == "plain\\xff"  # not escaped: taken as it is
    assert printable("a\nb" + os.fsdecode(b"\xff")) == "a\\nb\\xff"
