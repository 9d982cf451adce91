from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torchmetrics.text import CharErrorRate

from core import predict as predict_mod
from core.dataset import scan_folder
from core.decode import apply_grammar, decode
from core.images import read_rgb
from core.label_score import sort_for_review
from core.metrics import cer, corpus_cer
from core.plates import LETTERS, OTHERS, PROVINCES, is_valid_label, parse_name
from core.predict import PredictionResult, Predictor, StopFlag, predict_samples

from ._util import REAL, copy_real, dark_on_yellow, random_checkpoint_file, real_files


@pytest.fixture
def ckpt(random_checkpoint):
    return random_checkpoint


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "数据集"
    copy_real(d, 20)
    (d / "0900-皖A00000.jpg").write_bytes(b"this is not a jpeg")
    (d / "0901-皖AI0000.jpg").write_bytes(copy_real(tmp_path / "x", 1)[0].read_bytes())  # invalid label
    (d / "notes.txt").write_text("ignored")
    return d


def test_results_for_every_image_file(folder, ckpt):
    samples = scan_folder(folder)
    assert len(samples) == 22  # notes.txt is not an image
    res = predict_samples(samples, Predictor(ckpt), batch_size=8, workers=0)
    assert [r.rel for r in res] == [s.rel for s in samples]
    bad = {r.rel: r for r in res if r.error}
    assert list(bad) == ["0900-皖A00000.jpg"] and "not a decodable image" in bad["0900-皖A00000.jpg"].error
    assert bad["0900-皖A00000.jpg"].prediction == "" and bad["0900-皖A00000.jpg"].cer is None
    inv = next(r for r in res if r.rel.startswith("0901"))
    assert inv.label_error and inv.prediction  # shown, scored, fixable
    for r in res:
        if r.error:
            continue
        assert len(r.prediction) == 7 and len(r.probs) == 7 and len(r.runner_up) == 7
        assert r.prediction[1] in LETTERS  # grammar: city code is a letter
        assert is_valid_label(r.prediction)
        assert r.confidence == pytest.approx(float(np.prod(r.probs)))
        assert all(p >= q for p, q in zip(r.probs, r.runner_up_probs))
        assert r.cer == pytest.approx(cer(r.prediction, r.label))
        assert r.correct == (r.prediction == r.label)


def test_workers_and_backends_agree(folder, ckpt, monkeypatch):
    samples = scan_folder(folder)
    made = []
    real_loader = predict_mod.DataLoader
    monkeypatch.setattr(predict_mod, "DataLoader", lambda *a, **kw: made.append(kw) or real_loader(*a, **kw))
    onnx = predict_samples(samples, Predictor(ckpt, backend="onnx"), batch_size=8, workers=1)
    # never a plain fork of this (maybe threaded, e.g. the GUI's) process
    assert made[0]["multiprocessing_context"] in ("forkserver", "spawn")
    torch_ = predict_samples(samples, Predictor(ckpt, backend="torch"), batch_size=5, workers=0)
    for a, b in zip(onnx, torch_):
        assert a.rel == b.rel and a.error == b.error
        if not a.error:
            assert np.allclose(a.probs, b.probs, atol=1e-2)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_views_average_the_crop_and_the_crop_shifted_either_way(backend):
    three, one = Predictor(None, backend=backend), Predictor(None, backend=backend, views=False)  # the bundled model
    assert three.views and three.model_hash != one.model_hash  # the store never serves one reading for the other
    h, w = three.checkpoint.input_size
    crops = np.random.default_rng(1).integers(0, 256, (5, h, w, 3), dtype=np.uint8)
    s = round(0.02 * w)  # 4 px of 224, edge columns repeated
    right = np.concatenate([np.repeat(crops[:, :, :1], s, 2), crops[:, :, : w - s]], 2)
    left = np.concatenate([crops[:, :, s:], np.repeat(crops[:, :, -1:], s, 2)], 2)

    def prepared(images):
        return np.stack([three.prepare(im) for im in images])

    got = three.probabilities(prepared(crops))
    singles = [one.probabilities(prepared(v)) for v in (crops, right, left)]
    framed = got.zoomed == 0
    assert framed.sum() >= 3 and not singles[0].zoomed.any()
    for k in range(2):  # a crop not read zoomed shows its own read: the three views' mean
        want = np.mean([sv[k] for sv in singles], 0)
        assert np.allclose(got[k][framed], want[framed], atol=1e-5)
        assert np.abs(got[k][framed] - singles[0][k][framed]).max() > 0.01  # the views change what is read
    assert all(np.array_equal(a, b) for a, b in zip(singles[0][:2], singles[0][2:4]))  # one view: one read


def test_views_are_read_one_model_call_each_and_only_unsure_crops_zoomed():
    # stacked into one batch three times the size, three views took about three times the working
    # memory (a first open of 200,000 crops in the window went over 1.5 GB); the ONNX graph is a trace
    # of the same function. A zoomed read can only be shown where the crop's own read is less sure than
    # 1 - ZOOM_MARGIN, so only those crops are read zoomed: tight crops read at about the three views' speed;
    # and not crops the model cannot read at all (own confidence below ZOOM_FLOOR): a folder of those read
    # 15 times each ran at 1.8x the peer's speed
    from core import models
    from core.data import preprocess
    from core.synth import loose_frame

    model = Predictor(None, backend="torch")._model
    crops = [read_rgb(p) for p in real_files(16, step=37)]
    crops[-4:] = [loose_frame(c.astype(np.float32), np.random.default_rng(i), 0.4).astype(np.uint8) for i, c in enumerate(crops[-4:])]  # fmt: skip
    crops[:2] = [np.full_like(crops[0], 128), np.random.default_rng(0).integers(0, 256, crops[1].shape, np.uint8)]
    x = torch.from_numpy(np.stack([preprocess(im) for im in crops]))  # 10 tight crops, 4 framed loosely, 2 unreadable
    m, s = (torch.tensor(v)[None, :, None, None] * 255 for v in (models.MEAN, models.STD))
    sizes = []
    hook = model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    try:
        with torch.inference_mode():
            first, tail, *_ = models.read_crops(model, x)
            own_first, own_tail = models._shifted_mean(model, x)
            conf = models.read_confidence(own_first, own_tail)
            light = models.light_plates(x) & (conf < 1 - models.ZOOM_MARGIN)  # light plates read unsure: negatives
            if light.any():  # the surer of a light crop and its negative
                negatives = (models.as_negative((x * s + m)[light]) - m) / s
                conf[light] = torch.maximum(
                    conf[light], models.read_confidence(*models._shifted_mean(model, negatives))
                )
    finally:
        hook.remove()
    sizes = sizes[: -3 * (1 + int(light.any()))]  # the own reads again, for the test
    unsure, unreadable = int((conf < 1 - models.ZOOM_MARGIN).sum()), int((conf < models.ZOOM_FLOOR).sum())
    assert unreadable == 2 and 0 < unsure - unreadable < 8 and first.shape[0] == tail.shape[0] == 16
    assert torch.equal(first[:2], own_first[:2]) and torch.equal(tail[:2], own_tail[:2])  # shown: their own read
    negative_calls = [int(light.sum()) + 1] * 3  # the negatives' own read, and one crop again
    zoom_calls = [unsure - unreadable + 1] * 3 * len(models.ZOOM_WINDOWS)  # 3 views of each window of those + one
    assert sizes == [16] * 3 + negative_calls + zoom_calls


def test_the_reading_key_changes_with_the_views_settings(monkeypatch):
    # the store and the ONNX cache are keyed by the reading: predictions made with other zoom windows
    # must never be served for this reading
    from core import models
    from core.predict import reading_identity

    key = reading_identity("abc")
    monkeypatch.setattr(models, "ZOOM_WINDOWS", models.ZOOM_WINDOWS[:2])
    assert reading_identity("abc") != key and reading_identity("abc", views=False) == "abc"
    fewer = reading_identity("abc")
    monkeypatch.setattr(models, "ZOOM_FLOOR", 0.0)
    assert reading_identity("abc") not in (key, fewer)
    assert predict_mod.onnx_cache_path(None, "abc").name.startswith(reading_identity("abc"))


def as_framed(model, x):
    """core.models.read_crops' reading of the crops as they are (never as negatives): own read, zoom."""
    from core import models

    return models._zoom_where_unsure(model, lambda rows: x.index_select(0, rows), *models._shifted_mean(model, x))


def test_a_zoomed_read_replaces_the_crops_own_only_where_it_is_clearly_more_confident():
    # crops from other cameras are looser than the training crops: the app reads each crop also zoomed
    # and keeps a zoomed read where it is more confident by ZOOM_MARGIN; the label read is the mean of
    # the five reads where the crop is read zoomed, the own read elsewhere
    from core import models
    from core.data import preprocess
    from core.synth import loose_frame

    model = Predictor(None, backend="torch")._model
    crops = [read_rgb(p) for p in real_files(16, step=37)]
    loose = [loose_frame(c.astype(np.float32), np.random.default_rng(i), 0.4).astype(np.uint8) for i, c in enumerate(crops)]  # fmt: skip
    with torch.inference_mode():
        for images, zoomed_at_least, zoomed_at_most in ((crops, 0, 3), (loose, 4, 16)):  # 0 and 8 of 16 now
            x = torch.from_numpy(np.stack([preprocess(im) for im in images]))
            first, tail, label_first, label_tail, shown_zoomed, _ = as_framed(model, x)
            reads = [models._shifted_mean(model, models.zoomed(x, w)) for w in ((0.0,) * 4, *models.ZOOM_WINDOWS)]
            conf = torch.stack([models.read_confidence(*r) for r in reads])
            read_zoomed = (conf[0] >= models.ZOOM_FLOOR) & (conf[0] < 1 - models.ZOOM_MARGIN)
            conf[1:] -= models.ZOOM_MARGIN
            want = torch.where(read_zoomed, conf.argmax(0), 0)  # ties: the crop's own read
            for b in range(len(images)):
                k = int(want[b])
                assert torch.allclose(first[b], reads[k][0][b], atol=1e-6) and torch.allclose(tail[b], reads[k][1][b], atol=1e-6)  # fmt: skip
                js = range(5) if read_zoomed[b] else [0]
                for got, i in ((label_first, 0), (label_tail, 1)):
                    assert torch.allclose(got[b], torch.stack([reads[j][i][b] for j in js]).mean(0), atol=1e-6)
            assert torch.equal(shown_zoomed, (want > 0).float())
            assert zoomed_at_least <= int((want > 0).sum()) <= zoomed_at_most, want
    assert torch.equal(models.zoomed(x, (0.0,) * 4), x) and models.zoomed(x, models.ZOOM_WINDOWS[3]).shape == x.shape


def test_light_plates_with_dark_characters_are_also_read_as_their_negative():
    # single-row yellow plates (black on yellow) carry the plate font the model learnt as white on blue:
    # where the app is unsure of a light plate it reads its negative too, and where the negative's own read
    # is surer reads the negative from there on (its zoom, its label read); blue crops are never taken for
    # light plates, and their reading is the reading as framed
    from core import models
    from core.data import preprocess
    from core.synth import loose_frame

    model = Predictor(None, backend="torch")._model
    files = real_files(24, step=23)
    crops, labels = [read_rgb(p) for p in files], [parse_name(p.name).label for p in files]
    yellow = [  # the crops' characters, dark on yellow, framed loosely
        np.rint(loose_frame(dark_on_yellow(c, stretch=True), np.random.default_rng(i), 0.25)).astype(np.uint8)
        for i, c in enumerate(crops)
    ]
    m, s = (torch.tensor(v)[None, :, None, None] * 255 for v in (models.MEAN, models.STD))
    right = {}
    with torch.inference_mode():
        for name, images in (("blue", crops), ("yellow", yellow)):
            x = torch.from_numpy(np.stack([preprocess(im) for im in images]))
            assert bool(models.light_plates(x).all()) == (name == "yellow")
            assert not models.light_plates(x).any() or name == "yellow"
            reading = models.read_crops(model, x)
            framed = as_framed(model, x)
            if name == "blue":  # nothing read as a negative: the reading as framed, every output
                assert (
                    all(torch.allclose(a, b, atol=1e-6) for a, b in zip(reading, framed)) and not reading.negative.any()
                )
            else:  # the negative's whole reading where the crop's own read is unsure and the negative's surer
                negatives = (models.as_negative(x * s + m) - m) / s
                neg = as_framed(model, negatives)
                own = models.read_confidence(*models._shifted_mean(model, x))
                surer = (models.read_confidence(*models._shifted_mean(model, negatives)) > own) & (own < 0.9)
                assert torch.equal(reading.negative, surer.float()) and surer.sum() >= len(images) // 3
                for got, a, b in zip(reading[:5], neg[:5], framed[:5]):
                    assert torch.allclose(got, torch.where(surer.view(-1, *[1] * (a.dim() - 1)), a, b), atol=1e-5)
            for key, r in (("app", reading), ("framed", framed)):
                plates = decode(r.first.numpy(), apply_grammar(r.tail.numpy(), OTHERS), PROVINCES, OTHERS)
                right[name, key] = sum(p == label for p, label in zip(plates, labels))
    assert right["blue", "app"] == right["blue", "framed"] >= 22
    assert right["yellow", "app"] >= right["blue", "app"] - 2 and right["yellow", "app"] > right["yellow", "framed"], (
        right
    )


def test_the_onnx_graph_reads_light_plates_as_the_torch_reading_does(tmp_path, monkeypatch):
    # the app reads with onnxruntime: its graph must pick the same crops' negatives as PyTorch does
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from core.synth import loose_frame

    crops = []
    for i, f in enumerate(real_files(12, step=41)):
        plate = dark_on_yellow(read_rgb(f))
        crops.append(np.rint(loose_frame(plate, np.random.default_rng(i), 0.25)).astype(np.uint8))
    got = {}
    for backend in ("onnx", "torch"):
        p = Predictor(None, backend=backend)
        got[backend] = p.probabilities(np.stack([p.prepare(c) for c in crops]))
    a, b = got["onnx"], got["torch"]
    assert np.array_equal(a.negative, b.negative) and a.negative.sum() >= 3
    assert np.array_equal(a.zoomed, b.zoomed)
    for x, y in zip(a[:4], b[:4]):
        assert np.allclose(x, y, atol=2e-3)


def test_onnx_export_is_cached_in_the_user_cache_never_beside_the_checkpoint(ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p1 = Predictor(ckpt, backend="onnx")
    assert Predictor(ckpt, backend="onnx", views=False).checkpoint_sha == p1.checkpoint_sha
    cached = predict_mod.onnx_cache_path(ckpt, p1.checkpoint_sha)
    assert cached != predict_mod.onnx_cache_path(ckpt, p1.checkpoint_sha, views=False)
    assert cached.exists() and str(cached).startswith(str(tmp_path / "cache"))
    assert not list(ckpt.parent.glob("*.onnx"))  # a file beside a checkpoint is never the app's
    data = cached.read_bytes()
    calls = []
    monkeypatch.setattr(predict_mod, "export_onnx", lambda *a: calls.append(a))
    Predictor(ckpt, backend="onnx")
    assert calls == [] and cached.read_bytes() == data


def test_an_export_made_by_other_code_is_not_served():
    # a change to the traced code (the reading, an architecture) that forgot to bump ONNX_FORMAT must not
    # serve the export of the code before it: the cache name carries a hash of that code
    import hashlib
    import inspect

    from core import models

    source = inspect.getsource(models) + inspect.getsource(predict_mod._ExportModule)
    want = "." + hashlib.sha256(source.encode()).hexdigest()[:8]
    assert predict_mod.graph_code_fingerprint() == want
    assert predict_mod.onnx_cache_path(None, "abc").name.endswith(f".{predict_mod.ONNX_FORMAT}{want}.onnx")


def test_the_onnx_cache_keeps_the_most_recently_used_exports(ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sha = Predictor(ckpt, backend="onnx").checkpoint_sha
    cached = predict_mod.onnx_cache_path(ckpt, sha)
    folder = cached.parent
    fmt = predict_mod.ONNX_FORMAT + predict_mod.graph_code_fingerprint()
    others = [folder / f"{i:064x}.views.{fmt}.onnx" for i in range(predict_mod.ONNX_CACHE_KEEP)]
    for i, p in enumerate(others):  # exports of other checkpoints, used after this one...
        p.write_bytes(b"x")
        os.utime(p, (2000 + i, 2000 + i))
    os.utime(cached, (1000, 1000))
    old_format = folder / f"{sha}.views.u8.onnx"
    old_format.write_bytes(b"x")
    old_code = folder / f"{sha}.views.{predict_mod.ONNX_FORMAT}.0badc0de.onnx"  # made by other code, same format
    old_code.write_bytes(b"x")
    stale_tmp, fresh_tmp = folder / "a.onnx.1.tmp", folder / "b.onnx.2.tmp"  # killed mid-export / exporting now
    stale_tmp.write_bytes(b"x")
    os.utime(stale_tmp, (1000, 1000))
    fresh_tmp.write_bytes(b"x")
    unrelated = folder / "notes.txt"
    unrelated.write_text("not ours to judge")
    Predictor(ckpt, backend="onnx")  # ...but this one is used again now: served, and so kept
    other = random_checkpoint_file(tmp_path / "other.pt", seed=1)
    new = Predictor(other, backend="onnx")  # a new export: the cache is pruned
    assert predict_mod.onnx_cache_path(other, new.checkpoint_sha).exists() and cached.exists()
    assert not others[0].exists() and all(p.exists() for p in others[2:])  # the two least recently used go
    assert not old_format.exists() and not old_code.exists() and not stale_tmp.exists()
    assert fresh_tmp.exists() and unrelated.exists()
    assert len(list(folder.glob(f"*.{fmt}.onnx"))) == predict_mod.ONNX_CACHE_KEEP


def test_cancel_stops_between_batches(folder, ckpt):
    samples = scan_folder(folder)
    flag = StopFlag()
    seen = []

    def on_batch(batch):
        seen.append(len(batch))
        flag.set()

    res = predict_samples(samples, Predictor(ckpt), batch_size=4, workers=0, on_batch=on_batch, should_stop=flag)
    assert len(seen) == 1 and len(res) == 4 < len(samples)


def test_progress_reports(folder, ckpt):
    got = []
    predict_samples(scan_folder(folder), Predictor(ckpt), batch_size=10, workers=0, progress=got.append)
    assert [p.done for p in got] == [10, 20, 22] and got[-1].total == 22


def test_cer_order_is_the_old_worst_first():
    mk = PredictionResult
    rs = [
        mk("a", "皖A00000", prediction="皖A00000", cer=0.0, confidence=0.9),
        mk("b", "皖A00000", prediction="皖A00001", cer=1 / 7, confidence=0.8),
        mk("c", "皖A00000", prediction="皖A00011", cer=2 / 7, confidence=0.7),
        mk("d", "皖A00000", prediction="皖A00001", cer=1 / 7, confidence=0.3),
        mk("e", "x", label_error="bad", prediction="皖A00001", cer=1.0),
        mk("f", "皖A00000", error="corrupt"),
    ]
    assert [r.rel for r in sort_for_review(rs, "cer")] == ["f", "e", "c", "d", "b", "a"]


def test_review_order_puts_confident_disagreement_first():
    mk = PredictionResult
    rs = [
        mk("ok", "皖A00000", prediction="皖A00000", cer=0.0, confidence=0.9, label_score=0.9),
        # the model is unsure and wrong: its own mistake, CER 2/7
        mk("unsure", "皖A00000", prediction="皖A00B80", cer=2 / 7, confidence=0.1, label_score=0.3),
        # the model is sure the 5th character is not what the label says: a label error, CER 1/7
        mk("sure", "皖A00000", prediction="皖A00800", cer=1 / 7, confidence=0.95, label_score=0.002),
        mk("pending", "皖A00000"),
        mk("bad", "x", label_error="bad", prediction="皖A00001", cer=1.0),
        mk("corrupt", "皖A00000", error="corrupt"),
    ]
    assert [r.rel for r in sort_for_review(rs)] == ["corrupt", "bad", "sure", "unsure", "ok", "pending"]


def test_predicted_records_carry_the_label_score(tmp_path):
    """Real crops: a label whose character the model reads confidently as another gets a low
    score with that character marked; the correct label scores high."""
    src = sorted(REAL.glob("*.jpg"))[0]
    right = src.name
    label = right.split("-", 1)[1][:-4]
    wrong_label = label[:6] + ("1" if label[6] != "1" else "2")
    (tmp_path / right).write_bytes(src.read_bytes())
    (tmp_path / f"9999-{wrong_label}.jpg").write_bytes(src.read_bytes())
    res = {r.label: r for r in predict_samples(scan_folder(tmp_path), Predictor(), workers=0)}
    good, bad = res[label], res[wrong_label]
    assert good.correct and good.label_score > 0.5 and len(good.label_probs) == 7
    assert bad.label_score < 0.05 and bad.suspect == 6
    assert good.prediction == bad.prediction  # the same pixels, the same reading


def test_the_label_score_comes_from_the_label_read_not_the_shown_one(tmp_path):
    # a zoom that reads a correctly labelled crop confidently wrong must not put the crop among the
    # likely label errors: the shown read may be zoomed, the label is scored with the label read
    # (the mean of the crop's reads where it was read zoomed, core.models.read_crops)
    from core.models import Reading
    from core.predict import results_from_outputs

    src = sorted(REAL.glob("*.jpg"))[0]
    (tmp_path / src.name).write_bytes(src.read_bytes())
    samples = scan_folder(tmp_path)
    label = samples[0].label
    p = Predictor()
    own = p.probabilities(np.stack([p.prepare(read_rgb(s.file)) for s in samples]))
    other = "1" if label[6] != "1" else "2"
    shown_tail = own.label_tail.copy()
    shown_tail[0, 5] = 0.0
    shown_tail[0, 5, p.checkpoint.others.index(other)] = 1.0
    zoomed = own.zoomed + 1
    (rec,) = results_from_outputs(
        p, samples, Reading(own.label_first, shown_tail, own.label_first, own.label_tail, zoomed, own.negative)
    )
    assert rec.prediction == label[:6] + other and not rec.correct  # shown: the other read
    assert rec.label_score > 0.5  # scored: the label read
    assert rec.zoomed  # and the record says the shown read is a zoomed one
    (framed,) = results_from_outputs(p, samples, own)
    assert not framed.zoomed and framed.correct
    (swapped,) = results_from_outputs(
        p, samples, Reading(own.label_first, own.label_tail, own.label_first, shown_tail, own.zoomed, own.negative)
    )
    assert swapped.correct and swapped.label_score < 0.01 and swapped.suspect == 6


def test_cer_matches_torchmetrics():
    rng = random.Random(0)
    alphabet = "皖京沪AB01O8"
    metric = CharErrorRate()
    for _ in range(300):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        p = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        assert cer(p, t) == pytest.approx(float(metric(p, t)), abs=1e-6)
    assert corpus_cer(["皖A00000", "皖A0000"], ["皖A00001", "皖A00000"]) == pytest.approx(2 / 14)


def test_missing_model_is_clear(tmp_path):
    from core.models import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        Predictor(tmp_path / "nope.pt")


def test_unavailable_device_is_clear(ckpt):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Predictor(ckpt, device="cuda")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(folder, ckpt):  # pragma: no cover - GPU machines only
    samples = scan_folder(folder)
    a = predict_samples(samples, Predictor(ckpt, device="cuda"), workers=0)
    b = predict_samples(samples, Predictor(ckpt, device="cpu", backend="torch"), workers=0)
    for x, y in zip(a, b):
        assert x.prediction == y.prediction or max(x.probs) < 0.6


def test_preprocess_matches_the_notebook_pipeline():
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from core.data import preprocess
    from core.images import read_rgb

    from ._util import real_files

    ref = A.Compose([A.Resize(64, 224), A.Normalize(), ToTensorV2()])
    for f in real_files(5, step=97):
        rgb = read_rgb(f)
        got = preprocess(rgb)
        assert got.shape == (3, 64, 224) and got.dtype == np.float32 and got.flags.c_contiguous
        assert np.abs(got - ref(image=rgb)["image"].numpy()).max() < 1e-4


def test_an_export_beside_the_checkpoint_is_never_read_nor_touched(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ck = random_checkpoint_file(tmp_path / "m.pt")
    sha = predict_mod.file_sha256(ck)
    old = tmp_path / f"m.pt.{sha[:12]}.u8.onnx"  # where earlier versions cached it: anyone could have put it there
    old.write_bytes(b"not an export of this checkpoint")
    p = Predictor(ck, backend="onnx")
    assert p.takes_uint8 and predict_mod.onnx_cache_path(ck, sha).exists()
    assert old.read_bytes() == b"not an export of this checkpoint"


def test_onnx_backend_with_auto_device_runs_on_the_cpu_beside_a_gpu(ckpt, monkeypatch):
    """On a CUDA machine `auto` means the GPU, but onnxruntime here is the CPU provider:
    asking for it must give the CPU, not a silent switch to PyTorch on the GPU."""
    real = predict_mod.resolve_device
    monkeypatch.setattr(predict_mod, "resolve_device", lambda d: torch.device("cuda") if d == "auto" else real(d))
    p = Predictor(ckpt, backend="onnx")
    assert p.backend == "onnx" and p.device.type == "cpu" and p.takes_uint8
