"""The `plate-review` contract: CSV columns and order, summary line, exit codes."""

from __future__ import annotations

import csv
import re
import subprocess
import sys

import pytest

from core.cli import main
from core.results_csv import PREDICT_HEADER as CSV_HEADER

from ._util import REPO, copy_real

SUMMARY = re.compile(r"^n=(\d+) unreadable=(\d+) invalid=(\d+) accuracy=([\d.]+) cer=([\d.]+) images_per_s=([\d.]+)$")


@pytest.fixture
def ckpt(random_checkpoint):
    return random_checkpoint


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "plates 车牌"
    copy_real(d / "train", 10)
    copy_real(d / "test", 5, step=13)
    (d / "test" / "0999-皖A12345.jpg").write_bytes(b"")
    (d / "0998-皖AI2345.jpg").write_bytes((d / "test" / "0999-皖A12345.jpg").read_bytes() or b"x")
    (d / "0997-皖AI2346.jpg").write_bytes(next((d / "train").iterdir()).read_bytes())
    return d


def test_predict_csv_contract(folder, ckpt, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert main(["predict", str(folder), "--model", str(ckpt), "--out", str(out), "--workers", "0"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = SUMMARY.match(last)
    assert m, last
    assert (int(m[1]), int(m[2]), int(m[3])) == (18, 2, 1)
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_HEADER
    body = [dict(zip(CSV_HEADER, r)) for r in rows[1:]]
    assert len(body) == 18
    # unreadable first (empty prediction/cer, error filled), then invalid labels, then CER descending
    assert [r["file"] for r in body[:2]] == sorted(["0998-皖AI2345.jpg", "test/0999-皖A12345.jpg"])
    assert all(r["error"] and r["prediction"] == "" and r["cer"] == "" and r["label_score"] == "" for r in body[:2])
    assert body[2]["file"] == "0997-皖AI2346.jpg" and body[2]["error"] == "" and body[2]["label_score"] == ""
    rest = body[3:]
    scores = [float(r["label_score"]) for r in rest]
    assert scores == sorted(scores) and all(0.0 <= s <= 1.0 for s in scores)
    assert all(r["correct"] in ("0", "1") for r in rest)
    assert any(r["file"].startswith("train/") for r in rest)  # relative to FOLDER, recursive


def test_predict_sort_cer_gives_the_cer_order(folder, ckpt, tmp_path):
    out = tmp_path / "results.csv"
    args = ["predict", str(folder), "--model", str(ckpt), "--out", str(out), "--workers", "0", "--sort", "cer"]
    assert main(args) == 0
    with open(out, encoding="utf-8", newline="") as f:
        body = list(csv.DictReader(f))
    assert CSV_HEADER == ["file", "label", "prediction", "cer", "correct", "confidence", "label_score", "zoomed",
                          "negative", "error"]  # fmt: skip
    keys = [(-float(r["cer"]), float(r["confidence"])) for r in body[3:]]
    assert keys == sorted(keys)
    by_score = [float(r["label_score"]) for r in body[3:]]
    assert by_score != sorted(by_score)  # a random model: the two orders differ


def test_predict_csv_says_which_crops_were_read_zoomed_in_or_as_negatives(tmp_path):
    # the bundled model reads a loose crop zoomed in and a yellow plate as its negative: the CSV says so
    import cv2
    import numpy as np

    from core.images import read_rgb
    from core.synth import loose_frame

    from ._util import REAL, dark_on_yellow

    folder = tmp_path / "ds"
    folder.mkdir()
    for i, src in enumerate(sorted(REAL.glob("*.jpg"))[:48:8]):
        (folder / src.name).write_bytes(src.read_bytes())
        rgb, label = read_rgb(src), src.name.split("-", 1)[1]
        loose = loose_frame(rgb.astype(np.float32), np.random.default_rng(i), 0.4)
        cv2.imwrite(str(folder / f"9{i:03d}-{label}"), cv2.cvtColor(np.rint(loose).astype(np.uint8), cv2.COLOR_RGB2BGR))
        yellow = dark_on_yellow(rgb)
        cv2.imwrite(
            str(folder / f"8{i:03d}-{label}"), cv2.cvtColor(np.rint(yellow).astype(np.uint8), cv2.COLOR_RGB2BGR)
        )
    out = tmp_path / "r.csv"
    assert main(["predict", str(folder), "--out", str(out), "--workers", "0"]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    kind = {"0": "tight", "8": "yellow", "9": "loose"}
    flags = {k: [(r["zoomed"], r["negative"]) for r in rows if kind[r["file"][0]] == k] for k in kind.values()}
    assert all(f in (("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")) for v in flags.values() for f in v)
    assert all(n == "0" for k in ("tight", "loose") for _, n in flags[k])  # blue plates: never a negative
    assert sum(n == "1" for _, n in flags["yellow"]) >= 3 and any(z == "1" for z, _ in flags["loose"])


def test_predict_reports_the_same_picture_under_two_labels(folder, ckpt, tmp_path, capsys):
    src = sorted((folder / "train").iterdir())[0]
    (folder / "0990-京A00000.jpg").write_bytes(src.read_bytes())
    assert main(["predict", str(folder), "--model", str(ckpt), "--out", str(tmp_path / "r.csv"), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("same picture, different labels:"))
    assert "0990-京A00000.jpg (京A00000)" in line and f"train/{src.name}" in line


def test_eval_prints_positions_and_confusions(folder, ckpt, capsys):
    assert main(["eval", str(folder), "--model", str(ckpt), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "per position:" in out and "7:" in out and "->" in out and "accuracy:" in out
    assert SUMMARY.match(out.strip().splitlines()[-1])


def test_train_cli_writes_checkpoint(folder, tmp_path, capsys):
    out = tmp_path / "t.pt"
    rc = main(["train", str(folder / "train"), "--out", str(out), "--epochs", "1", "--batch-size", "4",
               "--max-steps", "1", "--arch", "simple"])  # fmt: skip
    assert rc == 0 and out.exists()
    assert "epoch 1/1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["predict", "/definitely/not/here"], "folder not found"),
        (["predict", "{folder}", "--model", "/no/model.pt"], "model file not found"),
        (["predict", "{folder}", "--batch-size", "0"], "at least 1"),
        (["predict", "{folder}", "--device", "tpu"], "invalid choice"),
        (["train", "{folder}"], "--out"),
        (["frobnicate"], "invalid choice"),
        (["predict", "{junkmodel}"], "not a folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, fragment, folder, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    assert main([a.format(folder=folder, junkmodel=junk) for a in args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_damaged_model_exit_2_without_traceback(folder, tmp_path):
    # a real process: what a user sees on the terminal
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk" * 10)
    r = subprocess.run(
        [sys.executable, "-m", "core.cli", "predict", str(folder), "--model", str(junk)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "junk.pt" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_console_script_entry_point():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["plate-review"] == "gui.cli:main"


def test_predict_reuses_the_store_cache(folder, ckpt, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["predict", str(folder), "--model", str(ckpt), "--workers", "0"]
    assert main([*args, "--out", str(a)]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(b)]) == 0
    assert "18 predictions from the cache, 0 to compute" in capsys.readouterr().err
    assert a.read_bytes() == b.read_bytes()
    # a changed file is predicted again
    f = next((folder / "train").iterdir())
    f.write_bytes(f.read_bytes() + b"\0")
    assert main([*args, "--out", str(b)]) == 0
    assert "17 predictions from the cache, 1 to compute" in capsys.readouterr().err


def test_one_view_and_three_views_are_cached_apart(folder, ckpt, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["predict", str(folder), "--model", str(ckpt), "--workers", "0"]
    assert main([*args, "--one-view", "--out", str(a)]) == 0
    assert "one view" in capsys.readouterr().err
    assert main([*args, "--out", str(b)]) == 0
    err = capsys.readouterr().err
    assert "3 views" in err and "from the cache" not in err  # the one-view reading is not served again
    assert a.read_bytes() != b.read_bytes()
    assert main([*args, "--one-view", "--out", str(b)]) == 0
    assert "18 predictions from the cache, 0 to compute" in capsys.readouterr().err
    assert a.read_bytes() == b.read_bytes()


def test_no_cache_leaves_the_folder_untouched(folder, ckpt, tmp_path):
    assert main(["predict", str(folder), "--model", str(ckpt), "--workers", "0", "--no-cache",
                 "--out", str(tmp_path / "r.csv")]) == 0  # fmt: skip
    assert not (folder / ".plate-review").exists()
