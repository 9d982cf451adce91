"""bench/bench_restyled_real.py: real crops restyled as other cameras show plates (blue and yellow)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import bench.bench_restyled_real as brr
from core.images import read_rgb

from ._util import real_files


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return read_rgb(real_files(1, step=5)[0])


def _restyle(crop: np.ndarray, colour: str, seed: int = 2026, copy: int = 0, index: int = 3) -> np.ndarray:
    return brr.restyle(crop, brr.restyle_rng(seed, index, copy, colour), colour)


def _hue(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)[..., 0]


def test_restyle_is_deterministic_per_seed_crop_copy_and_colour(crop):
    a = _restyle(crop, "blue")
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert np.array_equal(a, _restyle(crop, "blue"))
    assert np.array_equal(_restyle(crop, "yellow"), _restyle(crop, "yellow"))
    for other in (_restyle(crop, "blue", seed=2027), _restyle(crop, "blue", copy=1), _restyle(crop, "blue", index=4)):
        assert other.shape != a.shape or not np.array_equal(other, a)
    with pytest.raises(ValueError):
        brr.restyle(crop, np.random.default_rng(0), "green")


def test_restyled_plates_are_larger_keep_their_aspect_and_have_margins(crop):
    h, w = crop.shape[:2]
    outs = [_restyle(crop, c, copy=k) for c in brr.COLOURS for k in range(8)]
    aspects = []
    for out in outs:
        H, W = out.shape[:2]
        assert 138 <= W <= 230 + 0.5 * H + 2 and H > 1.4 * h  # a camera's size, margins at most 1/4 height a side
        aspects.append(W / H)
    assert all(2.2 < a < 4.8 for a in aspects), aspects
    # margins are as tall as they are wide (a share of the plate's height), so they make the image less elongated
    assert np.mean(aspects) < 0.93 * (w / h), (np.mean(aspects), w / h)
    assert len({o.shape for o in outs}) > 8  # sizes and margins vary copy to copy


def test_place_puts_the_plate_unchanged_inside_uneven_margins():
    plate = np.random.default_rng(1).uniform(0, 255, (40, 160, 3)).astype(np.float32)
    margins = []
    for s in range(20):
        img = brr._place(plate, np.random.default_rng(s))
        H, W = img.shape[:2]
        hits = [(y, x) for y in range(H - 39) for x in range(W - 159) if np.array_equal(img[y, x], plate[0, 0])]
        (top, left), = [(y, x) for y, x in hits if np.array_equal(img[y : y + 40, x : x + 160], plate)]  # fmt: skip
        margins.append((top, H - 40 - top, left, W - 160 - left))
    m = np.array(margins)
    assert m.min() >= 0 and m.max() <= 10  # U(0, 0.25) x 40 px, rounded
    assert m.mean() > 3 and len({tuple(r) for r in m}) == 20  # present, and drawn independently per side


def test_yellow_is_dark_characters_on_yellow_where_the_crop_is_white_on_blue(crop):
    w = brr.whiteness(crop)
    chars, ground = w > 0.8, w < 0.2
    assert chars.sum() > 50 and ground.sum() > 200
    assert crop[chars].mean() > crop[ground].mean() + 60  # the real crop: white characters on blue
    for s in range(5):
        y = np.clip(brr._yellow(w, np.random.default_rng(s)), 0, 255).astype(np.uint8)
        bg, fg = y[ground].mean(0), y[chars].mean(0)
        assert fg.max() < 90 and bg[:2].min() > fg.max() + 30  # dark characters, lighter red+green ground
        assert bg[2] < 0.8 * bg[:2].min()  # little blue: yellow
        assert 15 <= np.median(_hue(y)[ground]) <= 34
    # the whole restyle: the middle of a yellow copy is yellow, of a blue copy blue
    for k in range(4):
        yellow, blue = _restyle(crop, "yellow", copy=k), _restyle(crop, "blue", copy=k)
        for img, lo, hi in ((yellow, 12, 36), (blue, 95, 130)):
            H, W = img.shape[:2]
            assert lo <= np.median(_hue(img[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3])) <= hi


def test_the_table_gives_accuracy_cer_and_the_model_over_peer_error_ratio():
    labels = {"blue": ["皖A12345", "皖B12345"], "yellow": ["皖A12345", "皖B12345"]}
    reads = {
        "m": {"blue": ["皖A12345", "皖B12345"], "yellow": ["皖A12345", "苏B12345"]},
        "peer": {"blue": ["皖A12345", "皖B1234"], "yellow": ["皖A1234", "皖B12355"]},
    }
    rows = {ln.split(" | ")[0].strip("| "): ln.strip("| ").split(" | ") for ln in brr.table(reads, labels, "peer")}
    assert rows["blue"] == ["blue", "2", "100.0", "0.0000", "50.0", "0.0714", "0.00"]
    assert rows["yellow"][:3] == ["yellow", "2", "50.0"] and rows["yellow"][-1] == "0.50"
    assert rows["both"][:3] == ["both", "4", "75.0"] and rows["both"][-1] == "0.33"
    assert brr.province_wrong(reads["m"]["yellow"], labels["yellow"]) == (1, 1)
    assert brr.confusions(reads["peer"]["yellow"], labels["yellow"]) == [("4", "5", 1)]  # equal lengths only


def test_main_reads_both_colours_with_the_bundled_model(capsys, tmp_path):
    png = tmp_path / "ex.png"
    argv = ["--no-peer", "--copies", "1", "--limit", "12", "--crops", "val", "--save-examples", str(png)]
    assert brr.main(argv) == 0
    out = capsys.readouterr().out
    rows = {ln.split(" | ")[0]: ln.strip("| ").split(" | ") for ln in out.splitlines() if ln.startswith("| ")}
    assert {"| blue", "| yellow", "| both"} <= set(rows), out
    assert rows["| blue"][1] == "12" and rows["| both"][1] == "24"
    assert float(rows["| blue"][2]) >= 50, out  # the bundled model reads real blue crops ~90 %
    assert float(rows["| yellow"][2]) >= 20, out
    assert "yellow confusions" in out and "province wrong" in out
    grid = read_rgb(png)
    assert grid.shape[0] > 2 * 40 and grid.shape[1] > 6 * 138


def test_a_step_left_out_leaves_the_others_as_drawn(crop):
    full = _restyle(crop, "blue")
    no_margins = brr.restyle(crop, brr.restyle_rng(2026, 3, 0, "blue"), "blue", ("margins",))
    no_turn = brr.restyle(crop, brr.restyle_rng(2026, 3, 0, "blue"), "blue", ("turn",))
    assert no_margins.shape[0] < full.shape[0] or no_margins.shape[1] < full.shape[1]  # the plate alone
    assert no_turn.shape == full.shape and not np.array_equal(no_turn, full)  # same size and margins, level
    bare = brr.restyle(crop, brr.restyle_rng(2026, 3, 0, "yellow"), "yellow", brr.STEPS)
    assert bare.shape[0] > crop.shape[0] and bare.shape[0] / bare.shape[1] == pytest.approx(
        crop.shape[0] / crop.shape[1], rel=0.1
    )  # only resized and recoloured
    with pytest.raises(ValueError):
        brr.restyle(crop, brr.restyle_rng(2026, 3, 0, "blue"), "blue", ("blur",))


def test_the_label_error_bench_can_read_the_crops_restyled(tmp_path):
    # bench_label_errors --restyled: the held-out crops framed as other cameras frame them, each in blue and
    # yellow, named so that the app reads their labels, the pixels the restyle's (lossless PNG)
    from bench.bench_label_errors import restyled_crops
    from core.dataset import scan_folder

    held = real_files(2, step=50)
    files = restyled_crops(held, tmp_path)
    assert len(files) == 4 and len({f.name for f in files}) == 4
    samples = {s.rel: s for s in scan_folder(tmp_path)}
    assert [samples[f.name].label for f in files] == [p.name.split("-", 1)[1][:-4] for p in held] * 2
    want = brr.restyled_set([read_rgb(p) for p in held], [samples[f.name].label for f in files[:2]], "yellow", 1, 2026)
    assert np.array_equal(read_rgb(files[2]), want[0][0])
