"""core.teacher: a CTC reader's per-position soft targets, the teacher pool, and distillation in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset

from core import plates
from core.data import PlateDataset, encode_label
from core.predict import open_reader
from core.teacher import TeacherPool, position_targets, soft_width
from core.train import TrainConfig, collate_train, distill_loss, plate_loss, train

from ._util import REAL
from .test_ctc import CHARS, _table, recognizer  # noqa: F401 (the fixture)


class _Chars:
    """Just what position_targets needs of a reader: its classes' characters (0 = blank)."""

    chars = ["<blank>", *CHARS]


def _column(alphabet: str, ch: str) -> int:
    return alphabet.index(ch)


def test_each_character_of_a_seven_character_best_path_gets_its_frames_distribution():
    # The fixed table: 皖 _ A _ 1 _ 2 _ 3 _ 4 _ {5: 0.6, S: 0.4} _
    soft, texts = position_targets(_Chars(), _table()[None])
    assert texts == ["皖A12345"]
    assert soft.shape == (1, 7, soft_width())
    row0 = soft[0, 0]
    assert row0[_column(plates.PROVINCES, "皖")] == pytest.approx(1.0) and row0.sum() == pytest.approx(1.0)
    assert row0[len(plates.PROVINCES) :].sum() == 0  # the province row is zero-padded
    last = soft[0, 6]
    assert last[_column(plates.OTHERS, "5")] == pytest.approx(0.6) and last[
        _column(plates.OTHERS, "S")
    ] == pytest.approx(0.4)
    assert soft[0, 1, _column(plates.OTHERS, "A")] == pytest.approx(1.0)


def test_a_run_over_several_frames_is_averaged_and_renormalised_over_the_position_alphabet():
    t = _table()
    t[13] = 0  # the last character's run is two frames: {5: .6, S: .4} and {5: .45, S: .25, blank: .3}
    t[13, CHARS.index("5") + 1], t[13, CHARS.index("S") + 1], t[13, 0] = 0.45, 0.25, 0.3
    soft, _ = position_targets(_Chars(), t[None])
    last = soft[0, 6]
    # The mean over frames 12-13 of the characters (blank left out), renormalised: 0.525 / 0.85.
    assert last[_column(plates.OTHERS, "5")] == pytest.approx(0.525 / 0.85, abs=1e-5)
    assert last.sum() == pytest.approx(1.0)


def test_no_soft_target_where_the_best_path_is_not_a_plate():
    short = _table()
    short[12] = 0
    short[12, 0] = 1.0  # the 7th character gone: 6 characters
    bad = _table()
    bad[0] = 0
    bad[0, CHARS.index("A") + 1] = 1.0  # a letter where the province goes
    soft, texts = position_targets(_Chars(), np.stack([short, bad]))
    assert texts == ["皖A1234", "AA12345"]
    assert not soft.any()


def test_the_pool_keeps_what_the_teacher_reads_as_labelled(recognizer):  # noqa: F811
    reader = open_reader(recognizer)  # reads every image as 皖A12345 (its frames are fixed)
    img = np.full((24, 94, 3), 128, np.uint8)
    items = [(img, "皖A12345"), (img, "皖A12344"), (img, "皖A12345")]
    pool = TeacherPool.build(reader, iter(items), batch=2)
    assert len(pool) == 2 and pool.labels == ["皖A12345", "皖A12345"]
    r = pool.report
    assert (r.images, r.read_exactly, r.kept, r.wrong_length) == (3, 2, 2, 0)
    assert r.confusions == {"4->5": 1}
    x, y, soft = pool[0]
    assert x.shape == (3, 64, 224) and torch.equal(y, torch.from_numpy(encode_label("皖A12345")))
    assert soft[6, _column(plates.OTHERS, "5")] == pytest.approx(0.6)
    every = TeacherPool.build(reader, iter(items), keep="all")
    assert len(every) == 3 and not every.soft[1].any() and every.soft[0].any()  # no soft target against the label
    # keep="serial": the serial characters must be read as labelled, the province need not be
    other_province = [(img, "苏A12345"), (img, "苏A12344"), (img, "皖A12345")]
    serial = TeacherPool.build(reader, iter(other_province), keep="serial")
    assert serial.labels == ["苏A12345", "皖A12345"] and serial.report.kept == 2
    assert not serial.soft[0].any() and serial.soft[1].any()  # soft targets only where it read the whole plate
    with pytest.raises(ValueError, match="keep must be one of"):
        TeacherPool.build(reader, iter(items), keep="province")


class _ProvinceByBrightness:
    """A teacher that reads 皖A12345 on bright images and 苏A12345 on dark ones."""

    chars = ["<blank>", *CHARS, "苏"]

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for x in batch:
            t = np.zeros((14, len(self.chars)), np.float32)
            t[:, : len(CHARS) + 1] = _table()
            if x[:, :, :8].mean() < -0.5:  # dark (left of the padding): the province frame reads 苏
                t[0] = 0
                t[0, len(self.chars) - 1] = 1.0
            out.append(t)
        return np.stack(out)


def test_the_hybrid_pool_keeps_on_their_serial_only_the_provinces_the_teacher_cannot_read():
    bright, dark = np.full((24, 94, 3), 200, np.uint8), np.full((24, 94, 3), 20, np.uint8)
    items = [
        (bright, "皖A12345"),  # read exactly
        (bright, "苏A12345"),  # read 皖: 苏 is read right on 2 of its 3 serial-right plates, so dropped
        (dark, "苏A12345"),  # read exactly
        (bright, "京A12345"),  # read 皖: 京 is never read right, so kept on its serial
        (dark, "苏A12345"),  # read exactly
        (dark, "皖A12345"),  # read 苏: 皖 read right on 1 of 2, not under half, so dropped
        (bright, "京A12344"),  # serial misread: never kept
    ]
    pool = TeacherPool.build(_ProvinceByBrightness(), iter(items), keep="hybrid", batch=3)
    assert pool.labels == ["皖A12345", "苏A12345", "京A12345", "苏A12345"]  # in the order read
    assert pool.report.unread_provinces == "京" and pool.report.kept == 4
    assert [bool(s.any()) for s in pool.soft] == [True, True, False, True]  # no soft target against the label
    assert "provinces it cannot read: 京" in pool.report.line()
    agree = TeacherPool.build(_ProvinceByBrightness(), iter(items), keep="agree")
    assert agree.labels == ["皖A12345", "苏A12345", "苏A12345"]
    serial = TeacherPool.build(_ProvinceByBrightness(), iter(items), keep="serial")
    assert len(serial) == 6


def test_distill_loss_is_the_label_loss_for_one_hot_targets_and_skips_plates_without():
    torch.manual_seed(0)
    first, tail = torch.randn(4, 1, 31), torch.randn(4, 6, 35)
    y = torch.from_numpy(np.stack([encode_label(lab) for lab in ["皖A12345", "苏B99999", "京Q0D8B1", "沪C00000"]]))
    soft = torch.zeros(4, 7, 35)
    soft[:, 0, :31] = torch.nn.functional.one_hot(y[:, 0], 31).float()
    soft[:, 1:] = torch.nn.functional.one_hot(y[:, 1:], 35).float()
    assert distill_loss(first, tail, soft, 3.0).item() == pytest.approx(
        plate_loss(first, tail, y, 3.0).item(), rel=1e-5
    )
    soft[2:] = 0  # two plates without a teacher reading: the mean is over the first two only
    assert distill_loss(first, tail, soft).item() == pytest.approx(
        plate_loss(first[:2], tail[:2], y[:2]).item(), rel=1e-5
    )
    assert distill_loss(first, tail, torch.zeros(4, 7, 35)).item() == 0.0


def test_batches_mix_items_with_and_without_soft_targets():
    x, y, s = torch.zeros(3, 4, 4), torch.zeros(7, dtype=torch.long), torch.ones(7, 35)
    assert len(collate_train([(x, y), (x, y)])) == 2
    xs, ys, softs = collate_train([(x, y), (x, y, s)])
    assert xs.shape == (2, 3, 4, 4) and softs.shape == (2, 7, 35)
    assert not softs[0].any() and softs[1].all()


def test_the_distill_weight_reaches_training(recognizer, tmp_path):  # noqa: F811
    # The same data, seeds and steps with and without the soft targets' weight: different weights
    # come out, so the teacher's targets reach the loss. Real crops without soft targets in the same
    # batches (ConcatDataset of a pool and a PlateDataset).
    reader = open_reader(recognizer)
    real = sorted(REAL.glob("*.jpg"))[:8]
    from core.images import read_rgb

    pool = TeacherPool.build(reader, ((read_rgb(p), "皖A12345") for p in real[:4]))
    assert len(pool) == 4
    items = [(str(p), p.stem.split("-", 1)[1]) for p in real[4:]]
    data = ConcatDataset([pool, PlateDataset(items)])
    outs = []
    for w in (0.0, 5.0):
        cfg = TrainConfig(arch="simple", epochs=1, batch_size=4, lr=1e-3, seed=3, workers=0, max_steps=2,
                          distill_weight=w, device="cpu")  # fmt: skip
        res = train(cfg, data, data, out=tmp_path / f"m{w}.pt")
        outs.append(res.checkpoint.state_dict)
    assert any(not torch.equal(outs[0][k], outs[1][k]) for k in outs[0] if outs[0][k].is_floating_point())


def test_a_saved_pool_comes_back_only_for_its_key(recognizer, tmp_path):  # noqa: F811
    reader = open_reader(recognizer)
    items = [(np.full((24, 94, 3), 128, np.uint8), "皖A12345"), (np.zeros((42, 138, 3), np.uint8), "皖A12345")]
    pool = TeacherPool.build(reader, iter(items))
    path = pool.save(tmp_path / "pool.npz", "key-1")
    back = TeacherPool.load(path, "key-1")
    assert back is not None and back.labels == pool.labels and np.array_equal(back.soft, pool.soft)
    assert [im.shape for im in back.images] == [(24, 94, 3), (42, 138, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(back.images, pool.images))
    assert back.report.read_exactly == 2 and back.report.images == 2
    assert TeacherPool.load(path, "key-2") is None  # made by something else: built again
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert TeacherPool.load(tmp_path / "bad.npz", "key-1") is None
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])  # a run killed while writing (no .tmp rename)
    assert TeacherPool.load(tmp_path / "cut.npz", "key-1") is None
    assert TeacherPool.load(tmp_path / "missing.npz", "key-1") is None


def test_without_the_province_the_soft_targets_teach_positions_one_to_six_only():
    torch.manual_seed(1)
    first, tail = torch.randn(2, 1, 31), torch.randn(2, 6, 35)
    soft = torch.zeros(2, 7, 35)
    soft[:, 0, 3], soft[:, 1:, 5] = 1.0, 1.0
    other = soft.clone()
    other[:, 0] = 0
    other[:, 0, 7] = 1.0  # another province
    assert distill_loss(first, tail, soft, 0.0).item() == pytest.approx(distill_loss(first, tail, other, 0.0).item())
    assert distill_loss(first, tail, soft, 1.0).item() != pytest.approx(distill_loss(first, tail, other, 1.0).item())
