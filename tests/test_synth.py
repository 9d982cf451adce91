"""The synthetic plate generator and the spliced real plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core import plates
from core.data import encode_label
from core.synth import (
    ATLAS_CHARS,
    FONT_DIR,
    FONT_FILES,
    SpliceDataset,
    SynthDataset,
    label_for,
    load_glyphs,
    render_plate,
    splice_plate,
)

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "data" / "plates_real"


def test_font_subsets_and_atlas_are_bundled():
    for name in FONT_FILES:
        f = FONT_DIR / name
        assert f.is_file() and f.stat().st_size < 1_000_000
    assert (FONT_DIR / "OFL.txt").is_file()
    glyphs = load_glyphs()
    for fi in range(len(FONT_FILES)):
        for ch in ATLAS_CHARS:
            m = glyphs[(fi, ch)]
            assert m.dtype == np.uint8 and m.ndim == 2 and m.max() > 128


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
