"""Export to the CCPD2019-dl1 layout: round trip, skipped samples, refusals, source untouched."""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from core import export as E
from core import relabel as R
from core.cli.labels import add_label_commands
from core.dataset import scan_folder
from core.errors import CliError
from core.review_state import ReviewState
from core.store import Store

from ._util import REAL


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    srcs = sorted(REAL.glob("*.jpg"))[:40]
    for p in srcs[:36]:
        shutil.copy2(p, d / p.name)
    shutil.copy2(srcs[36], d / "皖A12345.jpg")  # plate scheme: gets a running id
    shutil.copy2(srcs[37], d / "0999-皖AI2345.jpg")  # invalid label ('I')
    (d / "0998-皖A00001.jpg").write_bytes(b"not a jpeg")  # unreadable
    shutil.copy2(srcs[38], d / "0997-皖B00002.jpg")  # will be marked invalid in review
    return d


def _tree_hash(d: Path, skip_hidden: bool = True) -> str:
    paths = []
    for root, dirs, files in os.walk(d):
        if skip_hidden:
            dirs[:] = [x for x in dirs if not x.startswith(".")]
        paths += [Path(root) / f for f in files]
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(d)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_export_round_trip(ds: Path, tmp_path: Path):
    first = sorted(x.name for x in ds.iterdir())[0]
    with Store.open(ds) as s:
        rep = R.relabel(s, [(first, "皖A77777")])
        renamed = rep.renamed[0][1]
        s.set_state("0997-皖B00002.jpg", ReviewState.INVALID)
        before = _tree_hash(ds)
        report = E.export_dataset(ds, tmp_path / "out", split={"train": 0.75, "test": 0.25}, seed=3, store=s)
    assert _tree_hash(ds) == before  # the source is never modified
    out = tmp_path / "out"
    assert report.read == 40 and sum(report.written.values()) == 37
    assert {r for r, _ in report.skipped} == {"0999-皖AI2345.jpg", "0998-皖A00001.jpg", "0997-皖B00002.jpg"}
    assert report.written == {"train": 28, "test": 9}

    with open(out / "manifest.csv", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert len(manifest) == 37
    samples = {s.rel: s for s in scan_folder(out)}
    assert set(samples) == {m["file"] for m in manifest}
    for m in manifest:  # identical labels and bytes
        s = samples[m["file"]]
        assert s.valid and s.label == m["label"] and s.parsed.scheme.value == "dl1"
        assert (out / m["file"]).read_bytes() == (ds / m["source file"]).read_bytes()
        src_label = Path(m["source file"]).stem.split("-")[-1] if "-" in m["source file"] else None
        assert src_label is None or src_label == s.label
    row = next(m for m in manifest if m["source file"] == renamed)
    assert row["review state"] == "fixed" and row["file"].endswith(f"{renamed.split('-')[0]}-皖A77777.jpg")
    plate_row = next(m for m in manifest if m["source file"] == "皖A12345.jpg")
    assert Path(plate_row["file"]).name.split("-")[0].isdigit()

    with open(out / "changes.csv", encoding="utf-8") as f:
        changes = list(csv.DictReader(f))
    assert len(changes) == 1 and changes[0]["name before review"] == first and changes[0]["new label"] == "皖A77777"
    with open(out / "skipped.csv", encoding="utf-8") as f:
        skipped = {r["file"]: r["reason"] for r in csv.DictReader(f)}
    assert "invalid label" in skipped["0999-皖AI2345.jpg"] and "unreadable" in skipped["0998-皖A00001.jpg"]
    assert "invalid" in skipped["0997-皖B00002.jpg"]
    for part in ("train", "test"):
        lines = (out / f"rec_gt_{part}.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == report.written[part]
        for line in lines:
            path, label = line.split("\t")
            assert path.startswith(f"{part}/") and samples[path].label == label


def test_export_without_store_and_links_and_seed(ds: Path, tmp_path: Path):
    before = _tree_hash(ds, skip_hidden=False)
    a = E.export_dataset(ds, tmp_path / "a", seed=1, link=True)
    b = E.export_dataset(ds, tmp_path / "b", seed=1)
    c = E.export_dataset(ds, tmp_path / "c", seed=2)
    assert _tree_hash(ds, skip_hidden=False) == before and not (ds / ".plate-review").exists()
    assert a.linked == sum(a.written.values())
    assert sorted(os.listdir(tmp_path / "a" / "test")) == sorted(os.listdir(tmp_path / "b" / "test"))
    assert sorted(os.listdir(tmp_path / "a" / "test")) != sorted(os.listdir(tmp_path / "c" / "test"))
    f = sorted(os.listdir(tmp_path / "a" / "train"))[0]
    assert os.stat(tmp_path / "a" / "train" / f).st_nlink >= 2
    assert b.written == c.written == {"train": 34, "test": 4}


def test_export_refuses_bad_destinations(ds: Path, tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for dest in (ds, ds / "export", tmp_path / "full"):
        with pytest.raises(E.ExportError) as e:
            E.export_dataset(ds, dest)
        assert e.value.refused
    assert not (ds / "export").exists()
    with pytest.raises(ValueError):
        E.parse_split("train=0.9,test=0.2")
    with pytest.raises(ValueError, match="repeated split name 'A'"):  # one folder on macOS and Windows
        E.parse_split("a=0.5,A=0.5")
    outside = tmp_path / "a-file"
    outside.write_text("x")
    with pytest.raises(E.ExportError, match="cannot write") as e:  # nothing started: refused, not "again"
        E.export_dataset(ds, outside / "export")
    assert e.value.refused and "again" not in str(e.value)
    assert E.parse_split("train=0.8,val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}


def test_export_fails_loudly_when_a_sample_is_missing(ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = shutil.copy2
    calls = {"n": 0}

    def lossy(src, dst):
        calls["n"] += 1
        if calls["n"] != 5:  # one file silently not written
            real(src, dst)

    monkeypatch.setattr(E.shutil, "copy2", lossy)
    with pytest.raises(E.ExportError, match="1 missing"):
        E.export_dataset(ds, tmp_path / "out")


def test_export_cli(ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    ap = argparse.ArgumentParser()
    add_label_commands(ap.add_subparsers())
    args = ap.parse_args(["export", str(ds), "--out", str(tmp_path / "out"), "--split", "train=0.5,test=0.5"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "exported=38 skipped=2 read=40"
    args = ap.parse_args(["export", str(ds), "--out", str(tmp_path / "out")])
    with pytest.raises(CliError, match="not empty"):
        args.func(args)
    args = ap.parse_args(["export", str(ds), "--out", str(tmp_path / "o2"), "--split", "train=2"])
    with pytest.raises(CliError, match="--split"):
        args.func(args)


def test_a_long_id_that_a_collision_suffix_would_push_past_255_bytes_gets_a_number(tmp_path: Path):
    src = tmp_path / "ds"
    name = "9" * (250 - len("-皖A12345.jpg".encode())) + "-皖A12345.jpg"  # 250 bytes
    assert len(name.encode()) == 250
    for sub in ("a", "b"):  # the same name twice: the second needs a suffix
        (src / sub).mkdir(parents=True)
        shutil.copy2(sorted(REAL.glob("*.jpg"))[0], src / sub / name)
    report = E.export_dataset(src, tmp_path / "out", split={"train": 1.0})
    names = sorted(p.name for p in (tmp_path / "out" / "train").iterdir())
    assert report.written == {"train": 2} and name in names and all(len(n.encode()) <= 255 for n in names)
