"""The synthetic plate generator and the spliced real plates."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from core import plates
from core.data import encode_label
from core.images import read_rgb
from core.synth import (
    ATLAS_CHARS,
    DEGRADATIONS,
    FONT_DIR,
    FONT_FILES,
    HARSH,
    LATIN_FONT_FILES,
    MATCHED,
    Look,
    SpliceDataset,
    SynthDataset,
    character_cells,
    label_for,
    load_glyphs,
    look_stats,
    real_glyph_masks,
    render_plate,
    splice_plate,
)

from ._util import REAL


def test_font_subsets_and_atlas_are_bundled():
    for name in FONT_FILES + LATIN_FONT_FILES:
        f = FONT_DIR / name
        assert f.is_file() and f.stat().st_size < 1_000_000
        assert name in (FONT_DIR / "README.md").read_text(encoding="utf-8")  # source and licence named
    for lic in ("OFL.txt", "LICENSE-Apache-2.0.txt", "LICENSE-DejaVu-Bitstream-Vera.txt"):
        assert (FONT_DIR / lic).is_file()
    glyphs = load_glyphs()
    for fi in range(len(FONT_FILES)):
        for ch in ATLAS_CHARS:
            m = glyphs[(fi, ch)]
            assert m.dtype == np.uint8 and m.ndim == 2 and m.max() > 128
    # Latin fonts: letters and digits, each font its own shapes
    for fi in range(len(FONT_FILES), len(FONT_FILES) + len(LATIN_FONT_FILES)):
        for ch in plates.OTHERS:
            m = glyphs[(fi, ch)]
            assert m.dtype == np.uint8 and m.ndim == 2 and m.max() > 128
    zeros = [glyphs[(fi, "0")] for fi in range(len(FONT_FILES) + len(LATIN_FONT_FILES))]
    assert len({(z.shape, z.tobytes()) for z in zeros}) == len(zeros)


def test_labels_are_valid_deterministic_and_cover_all_characters():
    labels = [label_for(i, seed=3) for i in range(620)]
    assert labels == [label_for(i, seed=3) for i in range(620)]
    assert labels != [label_for(i, seed=4) for i in range(620)]
    assert all(plates.is_valid_label(lab) for lab in labels)
    assert {lab[0] for lab in labels} == set(plates.PROVINCES)
    # provinces cycle: exactly uniform
    counts = {ch: sum(lab[0] == ch for lab in labels) for ch in plates.PROVINCES}
    assert set(counts.values()) == {20}
    assert {c for lab in labels for c in lab[1:]} == set(plates.OTHERS)
    assert {lab[1] for lab in labels} == set(plates.LETTERS)


def test_render_is_deterministic_with_expected_shape():
    a = render_plate("皖A26Y56", 5)
    b = render_plate("皖A26Y56", np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert 24 <= a.shape[0] <= 60 and 94 <= a.shape[1] <= 190
    c = render_plate("京PL3N67", 6, size=(24, 94))
    assert c.shape == (24, 94, 3)
    # blue plate: blue channel dominates on average
    assert c[..., 2].mean() > c[..., 0].mean()


def test_synth_dataset_yields_plate_dataset_tensors():
    ds = SynthDataset(40, seed=11)
    assert len(ds) == 40
    x, y = ds[7]
    x2, y2 = SynthDataset(40, seed=11)[7]
    assert x.shape == (3, 64, 224) and x.dtype == torch.float32
    assert y.shape == (7,) and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2)
    rgb, label = ds.sample(7)
    assert torch.equal(y, torch.from_numpy(encode_label(label)))
    shapes = {ds.sample(i)[0].shape[0] for i in range(40)}
    assert len(shapes) > 1  # sizes vary between real-crop size and twice that


def test_synth_dataset_with_augment_and_bounds():
    import pytest

    from core.data import train_augmentations

    ds = SynthDataset(3, seed=0, augment=train_augmentations(1.0))
    x, _ = ds[2]
    assert x.shape == (3, 64, 224) and torch.isfinite(x).all()
    with pytest.raises(IndexError):
        ds.sample(3)


def test_splice_keeps_label_consistent_with_cells():
    items = [(p, plates.parse_name(p.name).label) for p in sorted(REAL.glob("*.jpg"))[:40]]
    ds = SpliceDataset(items, 30, seed=1)
    seen = set()
    for i in range(30):
        rgb, label = ds.sample(i)
        assert rgb.shape == (24, 94, 3) and rgb.dtype == np.uint8
        assert plates.is_valid_label(label)
        seen.add(label)
    assert len(seen - {lab for _, lab in items}) > 0  # new combinations
    a, b = ds[3], SpliceDataset(items, 30, seed=1)[3]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # p_swap=0 returns a real crop unchanged
    imgs, labs = ds.images, ds.labels
    out, lab = splice_plate(imgs, labs, np.random.default_rng(0), p_swap=0.0)
    assert lab in labs and any(np.array_equal(out, im) for im in imgs)


def test_splice_anywhere_moves_characters_between_serial_positions(monkeypatch):
    # Crops 440 px wide (1 px = 1 mm) whose every serial character window is painted with
    # a code for (crop, position): the pasted window must carry the code its label names.
    from core import synth
    from core.synth import CHAR_W, CHAR_X

    monkeypatch.setattr(synth, "_match_brightness", lambda cell, around: cell)  # keep the codes exact

    rng = np.random.default_rng(5)
    labs = ["皖A" + "".join(rng.choice(list(plates.OTHERS), 5)) for _ in range(12)]
    imgs = []
    for i in range(len(labs)):
        im = np.zeros((140, 440, 3), np.uint8)
        for j in range(2, 7):
            c = CHAR_X[j] + CHAR_W / 2
            im[:, int(c - 28) : int(c + 28)] = (10 * i + 10, 40 * j, 128)
        imgs.append(im)
    moved = 0
    for seed in range(40):
        out, lab = splice_plate(imgs, labs, np.random.default_rng(seed), p_swap=1.0, p_anywhere=1.0)
        for k in range(2, 7):
            c = int(CHAR_X[k] + CHAR_W / 2)
            donor, j = (int(out[70, c, 0]) - 10) // 10, int(out[70, c, 1]) // 40
            assert lab[k] == labs[donor][j]  # the label follows the pixels
            moved += j != k
    assert moved > 100  # most of the 200 serial cells changed position
    # Letters are found wherever the crops have them when p_letter asks for them.
    out, lab = splice_plate(imgs, labs, np.random.default_rng(1), p_swap=1.0, p_letter=1.0, p_anywhere=1.0)
    assert all(ch.isalpha() for ch in lab[2:])


def _real_items():
    from core.dataset import scan_folder

    return [(read_rgb(s.path), s.label) for s in scan_folder(REAL) if s.valid]


def _glyph_canvas(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A template drawn where a glyph sits in a :func:`character_cells` cell (45 px high)."""
    c = np.zeros(shape, np.float32)
    w = min(22, max(3, round(mask.shape[1] * 45 / mask.shape[0])))
    t = cv2.resize(mask.astype(np.float32) / 255, (w, 45), interpolation=cv2.INTER_AREA)
    y, x = (shape[0] - 45) // 2, (shape[1] - w) // 2
    c[y : y + 45, x : x + w] = t
    return c


def test_real_glyph_templates_are_the_plate_font():
    """Templates from half of the real crops: reproducible on the other half, and they read
    the other half's real digit cells better than the bundled font's glyphs do."""
    items = _real_items()
    half_a, half_b = items[0::2], items[1::2]
    a, b = real_glyph_masks(half_a), real_glyph_masks(half_b)
    assert set("0123456789A皖") <= set(a)  # frequent characters get one
    assert not set(a) & {"I", "O", "闽"}  # never or rarely seen ones do not
    for m in a.values():
        assert m.dtype == np.uint8 and m.shape[0] == 96 and m.max() > 200 and m.min() < 30
    # each digit's template matches the same digit's template from the other half best
    shape = (70, 28)
    for d in "0123456789":
        scores = {e: float(cv2.matchTemplate(_glyph_canvas(a[d], shape), _glyph_canvas(b[e], shape),
                                             cv2.TM_CCOEFF_NORMED)[0, 0]) for e in "0123456789"}  # fmt: skip
        assert max(scores, key=scores.get) == d, (d, scores)

    def read_digits(templates):
        right = total = 0
        for rgb, label in half_b[:120]:
            for ch, cell in list(zip(label, character_cells(rgb)))[2:]:
                if ch.isdigit():
                    padded = cv2.copyMakeBorder(cell, 4, 4, 4, 4, cv2.BORDER_REPLICATE)
                    scores = {d: float(cv2.matchTemplate(padded, _glyph_canvas(m, cell.shape), cv2.TM_CCOEFF_NORMED).max())
                              for d, m in templates.items()}  # fmt: skip
                    right += max(scores, key=scores.get) == ch
                    total += 1
        return right / total

    font = load_glyphs()
    real_acc = read_digits({d: a[d] for d in "0123456789"})
    font_acc = read_digits({d: font[(0, d)] for d in "0123456789"})
    assert real_acc > font_acc + 0.05, (real_acc, font_acc)  # measured 0.58 vs 0.47 on these crops


def test_synth_draws_real_templates_on_some_plates():
    class Spy(dict):
        used = 0

        def get(self, key, default=None):
            Spy.used += 1
            return super().get(key, default)

    glyphs = Spy(real_glyph_masks(_real_items()[:200]))
    plain = SynthDataset(40, seed=9)
    real = SynthDataset(40, seed=9, real_glyphs=glyphs)
    with_templates = 0
    for i in range(40):
        before = Spy.used
        img, label = real.sample(i)
        with_templates += Spy.used > before
        assert label == plain.sample(i)[1] and img.dtype == np.uint8
    assert 10 <= with_templates <= 30  # about half the plates use the templates, the rest the fonts
    # an empty template set leaves the generator's random stream, so every image, unchanged
    assert all(
        np.array_equal(plain.sample(i)[0], SynthDataset(40, seed=9, real_glyphs={}).sample(i)[0]) for i in range(5)
    )


def test_latin_fonts_switch_the_serial_glyphs_only_when_asked():
    noto = SynthDataset(30, seed=5, latin_fonts=False)
    latin = SynthDataset(30, seed=5)
    assert [noto.sample(i)[1] for i in range(30)] == [latin.sample(i)[1] for i in range(30)]
    differ = sum(not np.array_equal(noto.sample(i)[0], latin.sample(i)[0]) for i in range(30))
    assert differ > 15  # the Latin-font generator draws from its own random stream
    again = SynthDataset(30, seed=5, latin_fonts=False)
    assert all(np.array_equal(noto.sample(i)[0], again.sample(i)[0]) for i in range(30))


def test_p_real_sets_the_share_of_plates_drawn_with_the_real_templates():
    block = {"D": np.full((96, 40), 255, np.uint8)}  # a template unlike any font's D
    seeds = range(20)

    def render(p_real):
        return [render_plate("皖AD0000", s, size=(24, 94), real_glyphs=block, p_real=p_real) for s in seeds]

    never, always, half = render(0.0), render(1.0), render(0.5)
    assert all(not np.array_equal(a, b) for a, b in zip(never, always))  # the same stream: only the D differs
    as_never = sum(np.array_equal(h, a) for h, a in zip(half, never))
    as_always = sum(np.array_equal(h, a) for h, a in zip(half, always))
    assert as_never + as_always == 20 and 4 <= as_always <= 16


def test_render_can_leave_out_each_degradation_and_keeps_the_rest():
    with pytest.raises(ValueError, match="unknown degradations"):
        render_plate("皖A26Y56", 1, skip={"rain"})
    full = [render_plate(label_for(i, 8), np.random.default_rng([8, i, 2])) for i in range(30)]
    for name in DEGRADATIONS:
        left_out = [render_plate(label_for(i, 8), np.random.default_rng([8, i, 2]), skip={name}) for i in range(30)]
        assert all(a.shape == b.shape for a, b in zip(full, left_out))  # same size: the same random stream
        assert any(not np.array_equal(a, b) for a, b in zip(full, left_out)), name
    # All left out: the plate fills the image exactly (no margins, no tilt), so every edge pixel is
    # plate blue rather than the background around it, and the image is sharper than the full render.
    clean = [render_plate(label_for(i, 8), np.random.default_rng([8, i, 2]), skip=DEGRADATIONS) for i in range(30)]
    for im in clean:
        edges = np.concatenate([im[:, 0], im[:, -1], im[0], im[-1]]).astype(int)
        assert (edges[:, 2] > edges[:, 0] + 20).mean() > 0.9
    # Only blur left in: never sharper than the clean plate, clearly blurred on some (45 % are).

    def sharpness(im):
        return cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()

    blur = [render_plate(label_for(i, 8), np.random.default_rng([8, i, 2]), skip=set(DEGRADATIONS) - {"blur"})
            for i in range(30)]  # fmt: skip
    ratios = [sharpness(a) / sharpness(b) for a, b in zip(blur, clean)]
    assert max(ratios) <= 1.0 + 1e-6 and sum(r < 0.8 for r in ratios) >= 5
    # Only JPEG left in: the difference from the fully clean plate is compression noise only.
    jpeg = [render_plate(label_for(i, 8), np.random.default_rng([8, i, 2]), skip=set(DEGRADATIONS) - {"jpeg"})
            for i in range(30)]  # fmt: skip

    def reencoded(im, q):
        return cv2.imdecode(cv2.imencode(".jpg", im[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)[
            ..., ::-1
        ]

    compressed = [i for i, (a, b) in enumerate(zip(jpeg, clean)) if not np.array_equal(a, b)]
    assert len(compressed) >= 15  # 80 % are compressed
    for i in compressed:  # each is the clean plate re-encoded at some quality in 30..95
        assert any(np.array_equal(jpeg[i], reencoded(clean[i], q)) for q in range(30, 96)), i
    ds = SynthDataset(5, seed=8, skip={"blur", "noise"})
    img, label = ds.sample(3)
    assert label == label_for(3, 8) and img.shape == SynthDataset(5, seed=8).sample(3)[0].shape


def test_look_stats_measures_contrast_and_sharpness():
    rng = np.random.default_rng(0)
    sharp = np.zeros((24, 94, 3), np.uint8)
    sharp[4:20, 10:84:6] = 220  # white bars on black
    contrast, sharpness, white, blue = look_stats(sharp)
    assert contrast == pytest.approx(220) and white == pytest.approx(220) and blue == pytest.approx(0)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.2)
    assert look_stats(blurred)[1] < 0.5 * sharpness
    dim = (sharp * 0.5).astype(np.uint8)  # half the contrast, same edges: same normalised sharpness
    assert look_stats(dim)[0] == pytest.approx(110, abs=1)
    assert look_stats(dim)[1] == pytest.approx(sharpness, rel=0.05)
    flat = np.full((24, 94, 3), 90, np.uint8) + rng.integers(0, 2, (24, 94, 3), dtype=np.uint8)
    assert look_stats(flat)[0] <= 1


def test_a_look_only_rescales_the_draws():
    # Same random stream: the same labels and plate sizes; a Look equal to HARSH renders the
    # default plates bit for bit, MATCHED renders different (cleaner) pixels.
    default, same = SynthDataset(12, seed=21), SynthDataset(12, seed=21, look=Look())
    matched = SynthDataset(12, seed=21, look=MATCHED)
    assert Look() == HARSH
    for i in range(12):
        (a, la), (b, lb), (c, lc) = default.sample(i), same.sample(i), matched.sample(i)
        assert la == lb == lc and a.shape == c.shape
        assert np.array_equal(a, b)
    assert sum(not np.array_equal(default.sample(i)[0], matched.sample(i)[0]) for i in range(12)) >= 10


def test_matched_look_is_calibrated_to_the_real_crops_and_harsh_is_not():
    # What MATCHED was tuned on (scripts/synth_vs_real.py): the real crops' median contrast and
    # contrast-normalised sharpness, and how few real crops are flatter or blurrier.
    real = np.array([look_stats(read_rgb(f)) for f in sorted(REAL.glob("*.jpg"))[::3]])
    real_med, real_p5 = np.median(real, 0), np.percentile(real, 5, 0)

    def stats(look):
        ds = SynthDataset(150, seed=424242, latin_fonts=False, look=look)
        return np.array([look_stats(ds.sample(i)[0]) for i in range(150)])

    matched, harsh = stats(MATCHED), stats(HARSH)
    for j in (0, 1):  # contrast, sharpness
        assert np.median(matched[:, j]) == pytest.approx(real_med[j], rel=0.15), j
        assert (matched[:, j] < real_p5[j]).mean() < 0.12, j
    assert np.median(harsh[:, 1]) < 0.7 * real_med[1]  # the old generator: much blurrier
    assert (harsh[:, 1] < real_p5[1]).mean() > 0.25


def test_planar_blend_is_the_broadcast_formula_bit_for_bit():
    # The bundled model was trained on plates drawn with the broadcast formula; the faster
    # per-plane version must not change a bit of them.
    from core.synth import _blend

    rng = np.random.default_rng(3)
    alpha = rng.random((75, 235), dtype=np.float32)
    alpha[::7] = 0.0
    alpha[:, ::5] = 1.0
    bg, fg = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    want = bg[None, None, :] * (1 - alpha[..., None]) + fg[None, None, :] * alpha[..., None]
    got = _blend(alpha, bg, fg)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)


def test_yellow_plates_are_black_on_yellow_and_leave_the_blue_looks_alone():

    from core.synth import HARSH, render_plate

    rgb = render_plate("皖A26Y56", 11, size=(48, 188), look=replace(HARSH, p_yellow=1.0)).astype(int)
    r, g, b = (np.median(rgb[..., c]) for c in range(3))
    assert r > b + 40 and g > b + 40  # a yellow ground
    grey = rgb.mean(axis=2)
    assert np.percentile(grey, 5) < 0.5 * np.median(grey)  # dark characters on it
    # p_yellow = 0 draws no extra random number: the blue looks keep their random stream.
    assert np.array_equal(render_plate("皖A26Y56", 11, look=HARSH), render_plate("皖A26Y56", 11,
                                                                                look=replace(HARSH, p_yellow=0.0)))  # fmt: skip


def test_other_camera_looks_keep_the_plates_and_loosen_and_enlarge_the_crops():

    from core.synth import CAMERAS

    def blue_share(rgb):
        r, b = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
        return float((b > r + 30).mean())

    tight, loose = SynthDataset(60, seed=8, look=MATCHED), SynthDataset(60, seed=8, look=replace(MATCHED, margin=1.6))
    shares = []
    for i in range(60):
        (a, la), (b, lb) = tight.sample(i), loose.sample(i)
        assert la == lb and a.shape == b.shape  # a rescale only: the same plates and sizes
        shares.append((blue_share(a), blue_share(b)))
    t, lo = np.mean(shares, 0)
    assert lo < t - 0.01  # the plate fills less of a looser crop (0.81 against 0.83 of the pixels)
    widths = [SynthDataset(300, seed=9, look=replace(MATCHED, size_max=2.45)).sample(i)[0].shape[1] for i in range(300)]
    assert 188 < max(widths) <= 231
    assert CAMERAS.p_yellow > 0 and CAMERAS.margin > 1 and CAMERAS.size_max > 2 and CAMERAS.p_stamp > 0


def test_a_timestamp_stays_at_the_top_or_bottom_edge_and_washing_drains_the_colour():
    from core.synth import _stamp, _wash

    grey = np.full((42, 138, 3), 100.0, np.float32)
    for seed in range(20):
        out = _stamp(grey.copy(), np.random.default_rng(seed))
        changed = np.abs(out - grey).max(axis=(1, 2)) > 1
        assert changed.any()  # text was printed
        assert not changed[int(0.3 * 42) : int(0.65 * 42)].any()  # not over the characters' middle rows
        assert out.max() > 200  # light text with a dark edge
    blue = np.zeros((24, 94, 3), np.float32)
    blue[..., 2] = 200.0
    washed = _wash(blue, np.random.default_rng(0))
    assert washed.min() > 20 and (washed[..., 2] - washed[..., 0]).mean() < 0.8 * 200  # lifted blacks, less colour


def test_the_plate_q_is_a_zero_with_an_inner_tail_and_only_when_asked():

    from core.synth import _plate_q, load_glyphs

    zero, q = load_glyphs()[(0, "0")], _plate_q(0)
    assert q.shape == zero.shape and (q >= zero).all()  # the 0, plus a stroke
    h, w = q.shape
    added = (q.astype(int) - zero) > 128
    assert added.any() and not added[: int(0.6 * h)].any() and not added[:, : int(0.45 * w)].any()  # lower right
    # Off by default: the blue looks' Q plates are drawn as before.
    assert np.array_equal(
        render_plate("皖A77Q40", 3, look=MATCHED), render_plate("皖A77Q40", 3, look=replace(MATCHED, p_plate_q=0.0))
    )
    assert not np.array_equal(
        render_plate("皖A77Q40", 3, look=MATCHED), render_plate("皖A77Q40", 3, look=replace(MATCHED, p_plate_q=1.0))
    )


def test_the_glyph_atlas_builds_from_the_bundled_fonts_and_from_other_cjk_fonts(tmp_path):
    from core import synth

    bundled = synth.load_glyphs()
    out = synth.build_glyph_atlas(tmp_path / "a.npz", chars="皖冀A0")
    again = synth.load_glyphs.__wrapped__(out)
    assert all(np.array_equal(again[k], bundled[k]) for k in again)  # the bundled atlas, as committed
    regular = synth.FONT_DIR / synth.FONT_FILES[1]
    other = synth.load_glyphs.__wrapped__(synth.build_glyph_atlas(tmp_path / "b.npz", chars="皖", cjk_fonts=(regular,)))
    assert np.array_equal(other[(0, "皖")], bundled[(1, "皖")])  # slot 0 drawn from the font it was given
    assert not np.array_equal(other[(0, "皖")], bundled[(0, "皖")])


def test_the_province_font_benchmark_draws_provinces_in_the_font_it_is_given(
    tmp_path, capsys, random_checkpoint, monkeypatch
):
    import bench.bench_province_fonts as bpf
    import core.recipe as recipe  # main() imports predict from it when it runs
    from core import synth

    drawn = []
    orig = recipe.predict

    def spy(model, images, ck, **kw):
        drawn.append(list(images))
        return orig(model, images, ck, **kw)

    monkeypatch.setattr(recipe, "predict", spy)
    regular = synth.FONT_DIR / synth.FONT_FILES[1]
    assert (
        bpf.main(["--font", str(regular), "--per", "1", "--looks", "matched", "--model", str(random_checkpoint)]) == 0
    )
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ") and "of 31" in ln]
    assert [r.split(" | ")[0] for r in rows] == ["| as trained (Noto Sans SC)", f"| {regular.name}"]
    assert len(drawn) == 2 and [im.shape for im in drawn[0]] == [im.shape for im in drawn[1]]  # the same plates...
    # ...with other province glyphs: those drawn in the Bold slot (about half) now get the Regular design
    assert sum(not np.array_equal(a, b) for a, b in zip(*drawn)) >= 8


def test_provinces_can_be_drawn_in_the_other_bundled_designs(tmp_path):
    from core import plates, synth

    designs = synth.load_province_designs()
    assert len(designs) == len(synth.PROVINCE_FONT_FILES) >= 8
    assert all(set(d) == set(plates.PROVINCES) for d in designs)
    # the bundled atlas is what the bundled font subsets rasterise to
    again = synth.load_province_designs(synth.build_province_atlas(tmp_path / "p.npz"))
    assert all(np.array_equal(a[c], b[c]) for a, b in zip(designs, again) for c in plates.PROVINCES)
    # one design at p 1.0: the same plate (the random stream is kept), only the province cell redrawn
    ink = {c: np.full((96, 60), 255, np.uint8) for c in plates.PROVINCES}  # a solid block for every province
    block = replace(MATCHED, p_province_font=1.0)
    base = render_plate("皖A26Y56", 5, size=(48, 188), look=MATCHED, skip=("geometry",))
    other = render_plate("皖A26Y56", 5, size=(48, 188), look=block, skip=("geometry",), province_designs=(ink,))
    diff = np.abs(base.astype(int) - other.astype(int)).max(axis=(0, 2))
    # (columns 0-25: the province cell; from 40 on, past the JPEG block it shares with the A, nothing moves)
    assert diff[: 188 * 60 // 440].max() > 60 and diff[40:].max() <= 2
    # a share of a dataset's plates, from each of the designs it is given; none without the look's share
    drawn = []

    class Seen(dict):
        def __getitem__(self, ch):
            drawn.append((id(self), ch))
            return super().__getitem__(ch)

    spies = tuple(Seen(d) for d in designs[:3])
    half = SynthDataset(100, seed=3, look=replace(MATCHED, p_province_font=0.5), province_designs=spies)
    labels = [half.sample(i)[1] for i in range(100)]
    assert 35 <= len(drawn) <= 65 and {i for i, _ in drawn} == {id(d) for d in spies}
    assert {ch for _, ch in drawn} <= {lab[0] for lab in labels}
    drawn.clear()
    [SynthDataset(100, seed=3, look=MATCHED, province_designs=spies).sample(i) for i in range(100)]
    assert drawn == []


def test_a_province_atlas_missing_provinces_is_refused(tmp_path):
    from core import synth

    bad = tmp_path / "bad.npz"
    np.savez(bad, **{f"0_{ord('皖')}": np.zeros((4, 4), np.uint8)})
    with pytest.raises(ValueError, match="bad.npz: not a province atlas"):
        synth.load_province_designs(bad)


def test_a_warped_province_glyph_changes_weight_and_slant_but_stays_a_glyph():
    from core import synth

    glyph = synth.load_province_designs()[0]["皖"]
    rng = np.random.default_rng(0)
    warped = [synth._warp_glyph(glyph, rng, 1.0) for _ in range(20)]
    ink, base = [int((w > 127).sum()) for w in warped], int((glyph > 127).sum())
    assert min(ink) < 0.8 * base and max(ink) > 1.2 * base  # thinner and bolder strokes
    assert all(0.7 < w.shape[0] / glyph.shape[0] < 1.4 for w in warped)  # cropped to the ink again
    assert len({w.shape for w in warped}) > 10  # sheared and turned by different amounts


def test_a_crop_is_framed_loosely_with_its_pixels_kept_and_reproducibly():
    from core.data import LooseFrame, train_augmentations
    from core.synth import loose_frame

    crop = read_rgb(sorted(REAL.glob("*.jpg"))[7])
    h, w = crop.shape[:2]
    shapes = set()
    for s in range(12):
        out = loose_frame(crop.astype(np.float32), np.random.default_rng(s))
        H, W = out.shape[:2]
        assert h <= H <= h + 2 * round(0.25 * h) and w <= W <= w + 2 * round(0.25 * h)
        shapes.add((H, W))
        found = [
            (y, x)
            for y in range(H - h + 1)
            for x in range(W - w + 1)
            if np.array_equal(out[y : y + h, x : x + w], crop)
        ]
        assert len(found) == 1  # the crop, unchanged, somewhere inside its margins
    assert len(shapes) >= 8  # each side drawn on its own
    # As an augmentation: that share of the crops, drawn from the pipeline's own seeded generator.
    a, b = train_augmentations(0.0, seed=3, loose=1.0), train_augmentations(0.0, seed=3, loose=1.0)
    outs = [a(image=crop)["image"] for _ in range(6)]
    assert all(o.shape[0] > h or o.shape[1] > w for o in outs) and outs[0].dtype == np.uint8
    assert all(np.array_equal(o, b(image=crop)["image"]) for o in outs)
    a.set_random_seed(9), b.set_random_seed(9)  # what a DataLoader worker's reseed does
    assert all(np.array_equal(a(image=crop)["image"], b(image=crop)["image"]) for _ in range(4))
    half = train_augmentations(0.0, seed=4, loose=0.5)
    assert 6 <= sum(half(image=crop)["image"].shape != crop.shape for _ in range(40)) <= 34
    assert not any(isinstance(t, LooseFrame) for t in train_augmentations(1.0, seed=3).transforms)
