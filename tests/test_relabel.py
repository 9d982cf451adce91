"""Crash-safe renames, collisions, undo/redo across restarts, the relabel CLI."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core import plates
from core import relabel as R
from core.cli.labels import add_label_commands
from core.errors import CliError
from core.review_state import ReviewState
from core.store import JournalEntry, Store, scan_files

from ._util import REAL

WORKER = Path(__file__).with_name("relabel_worker.py")


def _copy(dst: Path, n: int) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in REAL.glob("*.jpg"))[:n]
    for name in names:
        shutil.copy2(REAL / name, dst / name)
    return names


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _listing(d: Path) -> dict[str, str]:
    return {f.rel: _sha(d / f.rel) for f in scan_files(d)}


def _run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    add_label_commands(ap.add_subparsers())
    args = ap.parse_args(argv)
    return args.func(args)


# ----------------------------------------------------------------- kill test


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path):
    ds = tmp_path / "ds"
    names = _copy(ds, 300)
    labels = [plates.parse_name(n).label for n in names]
    new_name = {n: plates.build_name(plates.parse_name(n), labels[(i + 1) % len(names)]) for i, n in enumerate(names)}
    csv_path = tmp_path / "fix.csv"
    csv_path.write_text("file,label\n" + "".join(f"{n},{plates.parse_name(new_name[n]).label}\n" for n in names))
    before = _listing(ds)
    old_of_sha = {sha: rel for rel, sha in before.items()}
    with Store.open(ds) as s:  # cached predictions must follow the renames
        s.put_predictions("m", [{"rel": n, "label": plates.parse_name(n).label, "prediction": ""} for n in names])

    def start(*stall: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, str(WORKER), str(ds), str(csv_path), "7", *stall],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        return p

    def kill_and_check(p: subprocess.Popen) -> bool:
        """Kill ``p``, recover, check nothing was lost; True when the kill left a batch pending."""
        p.send_signal(signal.SIGKILL)
        p.wait()
        s = Store.open(ds, reconcile=False)
        pending = s.pending_count() > 0
        s.reconcile()
        after = _listing(ds)
        # No file lost or duplicated: the same multiset of contents.
        assert Counter(after.values()) == Counter(before.values())
        states, origins = s.states(), s.origins()
        assert s.pending_count() == 0
        for rel, sha in after.items():
            old = old_of_sha[sha]
            assert rel in (old, new_name[old]), f"{rel} is neither the old nor the new name of {old}"
            if rel == old:  # the store agrees with the disk
                assert rel not in states and rel not in origins
            else:
                assert states.get(rel) == ReviewState.FIXED and origins.get(rel) == old
        assert set(states) <= set(after)
        cached = s.cached_predictions("m", scan_files(ds))
        assert set(cached) == set(after) and all(r.label == plates.parse_name(r.rel).label for r in cached.values())
        s.close()
        return pending

    # Kills at chosen moves, so recovery is exercised whatever the machine's speed: before
    # a batch's first move, in the middle of one, and between a move's link and unlink
    # (both names on disk). Runs alternate between applying the CSV and undoing it.
    for stall in ("before:1", "linked:4", "before:12", "linked:7", "linked:1", "before:30"):
        p = start(stall)
        assert p.stdout.readline().strip() == "stalled", p.stderr.read()
        assert kill_and_check(p), f"the kill at {stall} left no batch pending"

    # Kills at random moments, drawn within how long a full pass takes on this machine
    # (measured by one uninterrupted pass), for the moments nobody thought of.
    p = start()
    t0 = time.perf_counter()
    assert p.wait() == 0, p.stderr.read()
    full_pass = time.perf_counter() - t0
    rng = random.Random(20240611)
    for _ in range(10):
        p = start()
        time.sleep(rng.uniform(0.0, full_pass))
        kill_and_check(p)

    # Completing the batch: run to the end, then undo everything from a fresh store.
    subprocess.run([sys.executable, str(WORKER), str(ds), str(csv_path), "50"], check=True, capture_output=True)
    with Store.open(ds) as s:
        listing = _listing(ds)
        if set(listing) != set(new_name.values()):  # the last kill left it applied: the run undid it
            assert set(listing) == set(names)
            R.redo(s, steps=100)
        assert set(_listing(ds)) == set(new_name.values())
        R.undo(s, steps=100)
    assert _listing(ds) == before


# ---------------------------------------------------------- journal recovery


def test_reconcile_completes_half_done_rename_and_reports_vanished(tmp_path: Path):
    names = _copy(tmp_path, 3)
    s = Store.open(tmp_path)
    step = s.begin_step("test")
    new = [plates.build_name(plates.parse_name(n), "皖A1234" + str(i)) for i, n in enumerate(names)]
    ino = [os.stat(tmp_path / n).st_ino for n in names]
    entries = [
        JournalEntry("do", names[i], new[i], step, i, ino[i], None, None, None, None, ReviewState.FIXED, "human")
        for i in range(3)
    ]
    s.journal_pending(entries)
    os.link(tmp_path / names[0], tmp_path / new[0])  # killed between link and unlink
    (tmp_path / names[1]).unlink()  # deleted behind the app's back, rename never done
    s.close()  # entries stay pending, as after a kill
    s = Store.open(tmp_path)
    assert s.pending_count() == 0
    assert sorted(os.listdir(tmp_path)) == sorted([".plate-review", new[0], names[2]])
    assert any(names[1] in m and "vanished" in m for m in s.messages), s.messages
    assert s.states() == {new[0]: ReviewState.FIXED}
    assert s.origins() == {new[0]: names[0]}
    assert s.history()[0].status == "applied"
    R.undo(s)
    assert sorted(os.listdir(tmp_path)) == sorted([".plate-review", names[0], names[2]])
    s.close()


def test_exception_mid_batch_leaves_consistent_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    names = _copy(tmp_path, 6)
    calls = {"n": 0}
    real = R.move_no_overwrite

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(R, "move_no_overwrite", flaky)
    with Store.open(tmp_path) as s:
        with pytest.raises(KeyboardInterrupt):
            R.relabel(s, [(n, "皖A0000" + str(i)) for i, n in enumerate(names)], chunk=100)
        assert s.pending_count() == 0
        assert len(s.origins()) == 3 and all((tmp_path / r).exists() for r in s.origins())


# ------------------------------------------------------------ undo / redo


def test_undo_and_redo_survive_restart(tmp_path: Path):
    names = _copy(tmp_path, 4)
    before = _listing(tmp_path)
    with Store.open(tmp_path) as s:
        s.set_state(names[0], ReviewState.VERIFIED)
        r1 = R.relabel(s, [(names[0], "皖A11111"), (names[1], "皖A22222")])
        r2 = R.relabel(s, [(names[2], "皖A33333")])
        assert len(r1.renamed) == 2 and len(r2.renamed) == 1
    with Store.open(tmp_path) as s:  # a new instance: history comes from the database
        assert [h.items for h in s.history()] == [2, 1]
        R.undo(s)
        assert names[2] in _listing(tmp_path)
        R.undo(s)
        assert _listing(tmp_path) == before
        assert s.states() == {names[0]: ReviewState.VERIFIED}  # the state before the change is restored
        assert R.undo(s).messages == ["nothing to undo"]
    with Store.open(tmp_path) as s:
        R.redo(s, steps=2)
        want = {
            plates.build_name(plates.parse_name(n), lab) for n, lab in zip(names, ["皖A11111", "皖A22222", "皖A33333"])
        }
        assert want <= set(_listing(tmp_path))
        R.undo(s)
        R.relabel(s, [(names[3], "皖A44444")])  # a new action discards the redo stack
        assert R.redo(s).messages == ["nothing to redo"]


def test_undo_when_old_name_was_taken_meanwhile(tmp_path: Path):
    names = _copy(tmp_path, 1)
    with Store.open(tmp_path) as s:
        R.relabel(s, [(names[0], "皖A11111")])
        shutil.copy2(REAL / sorted(os.listdir(REAL))[5], tmp_path / names[0])  # someone reuses the name
        R.undo(s)
    got = sorted(os.listdir(tmp_path))
    parsed = plates.parse_name(names[0])
    assert plates.build_name(parsed, parsed.label, 2) in got and names[0] in got  # nothing overwritten


# -------------------------------------------------------------- collisions


def test_collision_in_plate_scheme(tmp_path: Path):
    src = sorted(REAL.glob("*.jpg"))[:3]
    for p, name in zip(src, ["皖A11111.jpg", "皖A22222.jpg", "皖A33333.jpg"]):
        shutil.copy2(p, tmp_path / name)
    before = _listing(tmp_path)
    with Store.open(tmp_path) as s:
        rep = R.relabel(s, [("皖A22222.jpg", "皖A11111"), ("皖A33333.jpg", "皖A11111")])
        assert sorted(new for _, new in rep.renamed) == ["皖A11111_2.jpg", "皖A11111_3.jpg"]
        assert Counter(_listing(tmp_path).values()) == Counter(before.values())
        assert {plates.parse_name(n).label for n in os.listdir(tmp_path) if n.endswith(".jpg")} == {"皖A11111"}
        R.undo(s)
    assert _listing(tmp_path) == before


def test_case_only_difference_on_case_insensitive_fs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Linux is case-sensitive: simulate a case-insensitive file system for the existence check.
    real_lexists = os.path.lexists

    def ci_lexists(p):
        p = Path(p)
        return real_lexists(p) or any(c.casefold() == p.name.casefold() for c in os.listdir(p.parent))

    (tmp_path / "0001-皖a11111.jpg").write_bytes(b"x")
    monkeypatch.setattr(R.os.path, "lexists", ci_lexists)
    assert R.target_name(tmp_path, "0001-皖a11111.jpg", "皖A11111") == "0001-皖A11111-2.jpg"


def test_move_never_overwrites_even_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    with pytest.raises(FileExistsError):
        R.move_no_overwrite(a, b)

    def no_link(*_a, **_k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(R.os, "link", no_link)
    with pytest.raises(FileExistsError):
        R.move_no_overwrite(a, b)
    assert a.read_bytes() == b"a" and b.read_bytes() == b"b"
    R.move_no_overwrite(a, tmp_path / "c.jpg")
    assert not a.exists() and (tmp_path / "c.jpg").read_bytes() == b"a"


# --------------------------------------------------- behind the app's back


def test_vanished_and_changed_files_are_reported(tmp_path: Path):
    names = _copy(tmp_path, 3)
    with Store.open(tmp_path) as s:
        s.set_states({names[0]: ReviewState.VERIFIED, names[1]: ReviewState.VERIFIED})
        st = os.stat(tmp_path / names[1])
        (tmp_path / names[0]).unlink()
        (tmp_path / names[1]).write_bytes(b"different content")
        rep = R.relabel(
            s,
            [R.Change(names[0], "皖A11111"), R.Change(names[1], "皖A22222", (st.st_size, st.st_mtime_ns))],
        )
        assert not rep.renamed
        msgs = dict(rep.failed)
        assert "not found" in msgs[names[0]] and "changed on disk" in msgs[names[1]]
        assert s.states() == {}  # the store follows the disk
        assert os.path.exists(tmp_path / names[1])  # a changed file is not renamed


# ------------------------------------------------------------------- CLI


def test_relabel_cli_idempotent_and_reports_line_numbers(tmp_path: Path, capsys: pytest.CaptureFixture):
    ds = tmp_path / "ds"
    names = _copy(ds, 6)
    csv_path = tmp_path / "fix.csv"
    rows = [
        f"{names[0]},皖A11111",
        f"{names[1]},皖AI1111",  # line 3: 'I' is not a plate letter
        f"{names[2]},皖a33333",  # normalised to upper case
        "missing.jpg,皖A44444",  # line 5
        f"{names[4]},xyz",  # line 6
        f"{names[5]},皖A66666",
    ]
    csv_path.write_text("\ufefffile,label\n" + "\n".join(rows) + "\n", encoding="utf-8")

    # A first run killed after two renames: simulated by applying only those rows.
    with Store.open(ds) as s:
        R.relabel_from_csv(s, [r for r in R.read_corrections(csv_path) if r.file in (names[0], names[2])])
    assert _run(["relabel", str(ds), "--from", str(csv_path)]) == 1
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == "renamed=1 skipped=2 failed=3"
    assert "line 3:" in err and names[1] in err and "line 5:" in err and "missing.jpg" in err and "line 6:" in err
    assert "line 2:" not in err

    # Again: everything applied is skipped, nothing renamed twice.
    before = _listing(ds)
    assert _run(["relabel", str(ds), "--from", str(csv_path)]) == 1
    out, _ = capsys.readouterr()
    assert out.strip().splitlines()[-1] == "renamed=0 skipped=3 failed=3"
    assert _listing(ds) == before
    assert sum("皖A" in n for n in os.listdir(ds)) == 3

    # Without the store's history, files already carrying the new name count as done.
    shutil.rmtree(ds / ".plate-review")
    assert _run(["relabel", str(ds), "--from", str(csv_path)]) == 1
    out, _ = capsys.readouterr()
    assert out.strip().splitlines()[-1] == "renamed=0 skipped=3 failed=3"


def test_undo_redo_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture):
    names = _copy(tmp_path / "ds", 2)
    csv_path = tmp_path / "fix.csv"
    csv_path.write_text(f"file,label\n{names[0]},皖A11111\n{names[1]},皖A22222\n")
    assert _run(["relabel", str(tmp_path / "ds"), "--from", str(csv_path)]) == 0
    assert _run(["undo", str(tmp_path / "ds"), "--steps", "1"]) == 0
    assert sorted(n for n in os.listdir(tmp_path / "ds") if not n.startswith(".")) == names
    assert _run(["redo", str(tmp_path / "ds")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "renamed=2 skipped=0 failed=0"
    with pytest.raises(CliError) as e:
        _run(["undo", str(tmp_path / "nope")])
    assert e.value.exit_code == 2 and "not a folder" in str(e.value)
    with pytest.raises(CliError):
        _run(["relabel", str(tmp_path / "ds"), "--from", str(tmp_path / "none.csv")])
    bad = tmp_path / "bad.csv"
    bad.write_text("name,plate\nx,y\n")
    with pytest.raises(CliError, match="header"):
        _run(["relabel", str(tmp_path / "ds"), "--from", str(bad)])
    with pytest.raises(CliError):
        _run(["undo", str(tmp_path / "ds"), "--steps", "0"])


def test_a_corrections_csv_that_is_not_utf8_is_named_with_its_line_and_the_way_out(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("file,label\n0015-皖A0H628.jpg,皖A0H627\n".encode("gbk"))  # Excel's CSV on Chinese Windows
    with pytest.raises(ValueError, match=r"gbk\.csv: not UTF-8 text \(line 2\); save it as \"CSV UTF-8\""):
        R.read_corrections(gbk)
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes("file,label\r\n0015-皖A0H628.jpg,皖A0H627\r\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"u16\.csv: not UTF-8 text \(UTF-16\)"):
        R.read_corrections(utf16)
    crlf = tmp_path / "crlf.csv"  # UTF-8 with a BOM and Windows line ends still reads
    crlf.write_bytes("\ufefffile,label\r\n0015-皖A0H628.jpg,皖A0H627\r\n".encode())
    assert [(r.file, r.label) for r in R.read_corrections(crlf)] == [("0015-皖A0H628.jpg", "皖A0H627")]


def test_a_name_with_a_leading_space_survives_the_csv_round_trip(tmp_path):
    from core.records import PredictionResult
    from core.results_csv import write_results_csv

    out = tmp_path / "r.csv"
    names = [" 0015-皖A0H628.jpg", "0016-皖A0H629.jpg"]
    write_results_csv(
        [PredictionResult(n, plates.parse_name(n.strip()).label, prediction="皖A0H627") for n in names], out
    )
    assert sorted(r.file for r in R.read_corrections(out)) == sorted(names)  # not stripped to another name
