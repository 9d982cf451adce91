"""Hostile model and image files: refused before they cost memory, with a message naming the file.

Every dataset file and every model file a user is handed is untrusted input. These tests build
such files (NaN weights, zip and image bombs, a swapped ONNX cache, ...) and check that they are
refused clearly, that a broken model's outputs never become records, and that peak memory on
the bombs stays far below what decoding them would take.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core import predict as predict_mod
from core.cli import main
from core.dataset import scan_folder
from core.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageReadError, read_rgb
from core.models import (
    MAX_CHECKPOINT_BYTES,
    MAX_CHECKPOINT_UNPACKED_BYTES,
    Checkpoint,
    CheckpointError,
    ModelConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from core.predict import ModelOutputError, Predictor, predict_samples

from .._util import REAL, REPO

GIB = 1024**3


def real_files(n: int) -> list[Path]:
    return sorted(REAL.glob("*.jpg"))[:n]


def copy_real(dst: Path, n: int) -> None:
    """``n`` real crops (names kept: ``<id>-<PLATE>.jpg``) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(REAL.glob("*.jpg"))[::7][:n]:
        shutil.copy2(f, dst / f.name)


def _random_ckpt(path: Path, arch: str = "lstm", seed: int = 0) -> Path:
    """A sound checkpoint with random weights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch)
    return save_checkpoint(Checkpoint(cfg, build_model(cfg).state_dict()), path)


_PEAK_KB = """
import resource, sys
try:  # the high-water mark of this process's own memory; ru_maxrss can carry the forking parent's (Linux)
    with open('/proc/self/status') as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == 'darwin' else 1)
print('PEAK', peak)
"""


def _peak_rss_mb(code: str, timeout: float = 120) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; its peak resident memory (MB) and its stdout."""
    script = code + _PEAK_KB
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    peak_kb = int(r.stdout.rsplit("PEAK", 1)[1])
    return peak_kb / 1024, r.stdout


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def ckpt_dict() -> dict:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lstm")
    return Checkpoint(cfg, build_model(cfg).state_dict()).to_dict()


def _save(d: dict, path: Path, **changes) -> Path:
    d = {**d, "state_dict": dict(d["state_dict"]), **changes}
    torch.save(d, path)
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_checkpoint_with_non_finite_weights_is_refused(ckpt_dict, tmp_path, value):
    sd = dict(ckpt_dict["state_dict"])
    w = sd["other_head.weight"].clone()
    w[3, 7] = value
    sd["other_head.weight"] = w
    p = _save(ckpt_dict, tmp_path / "nan.pt", state_dict=sd)
    with pytest.raises(CheckpointError, match="non-finite") as e:
        load_checkpoint(p)
    assert str(p) in str(e.value) and "other_head.weight" in str(e.value)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"std": [0.229, 0.0, 0.225]}, "std"),
        ({"std": [0.229, float("nan"), 0.225]}, "std"),
        ({"std": [0.229, float("inf"), 0.225]}, "std"),
        ({"std": [-0.2, 0.2, 0.2]}, "std"),
        ({"std": [1e-30, 0.2, 0.2]}, "std"),
        ({"mean": [float("inf"), 0.4, 0.4]}, "mean"),
        ({"mean": [float("nan"), 0.4, 0.4]}, "mean"),
        ({"mean": [0.4, 0.4]}, "mean"),
        ({"mean": "abc"}, "mean"),
        ({"provinces": "ABCDEFGHJKLMNOPQRSTUVWXYZ012345"}, "provinces"),  # 31 characters, not provinces
        ({"provinces": "皖" * 31}, "duplicate"),
        ({"provinces": ""}, "provinces"),
        ({"provinces": ["皖"] * 31}, "provinces"),
        ({"others": "0123456789ABCDEFGHJKLMNOPQRSTUVWX☃"}, "others"),
        ({"input_size": [100_000, 100_000]}, "input size"),
        ({"input_size": [0, 224]}, "input size"),
        ({"input_size": [64]}, "input size"),
        ({"input_size": [128, 224]}, "input size"),  # plausible, but this model then reads 14 columns
        ({"config": {"arch": "lstm", "dropout": 0.2, "hidden": 100_000}}, "hidden"),
        ({"config": {"arch": "lstm", "dropout": 7.0, "hidden": 128}}, "dropout"),
        ({"config": "lstm"}, "config"),
        ({"version": "1"}, "version"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"summary": "trained on stolen data"}, "summary"),
    ],
)
def test_checkpoint_with_absurd_metadata_is_refused(ckpt_dict, tmp_path, changes, fragment):
    """Each of these was loaded, crashed later (NaN, IndexError) or crashed the CLI (TypeError)."""
    p = _save(ckpt_dict, tmp_path / "odd.pt", **changes)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and fragment in msg and len(msg.splitlines()) == 1


def test_a_sound_checkpoint_with_a_smaller_alphabet_still_loads(tmp_path):
    cfg = ModelConfig(arch="simple")
    provinces, others = "皖沪京", "0123456789ABC"
    ck = Checkpoint(cfg, build_model(cfg, provinces, others).state_dict(), provinces=provinces, others=others)
    back = load_checkpoint(save_checkpoint(ck, tmp_path / "small.pt"))
    assert back.provinces == provinces and back.others == others


def _zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """Write a zip by hand: (name, method 0/8, payload as stored, crc32, uncompressed size) per member."""
    out, cd = bytearray(), bytearray()
    for name, method, payload, crc, usize in members:
        nb = name.encode()
        off = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), usize, len(nb), 0)
        out += nb + payload
        cd += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(payload),
            usize,
            len(nb),
            0,
            0,
            0,
            0,
            0,
            off,
        )
        cd += nb
    n = len(members)
    out += cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(cd), len(out), 0)
    path.write_bytes(bytes(out))
    return path


def _zeros_deflated(n_mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``n_mib`` MiB of zeros (~1 KB per MiB), built without compressing
    them all: full flushes make every 1 MiB block encode to the same bytes. And its CRC-32."""
    mib = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(mib) + c.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(mib, crc)
    stream = head + block * (n_mib - 2) + tail
    assert zlib.decompressobj(-15).decompress(stream[: 64 * 1024], 1 << 20) == mib  # spot check
    return stream, crc


def _members(path: Path) -> list[tuple[str, int, bytes, int, int]]:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return [(i.filename, 0, z.read(i), i.CRC, i.file_size) for i in z.infolist()]


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    return _random_ckpt(tmp_path_factory.mktemp("good") / "m.pt", arch="simple")


def test_hand_written_zip_of_a_checkpoint_loads(good_ckpt, tmp_path):
    """The zip writer of these tests makes checkpoints PyTorch reads (so the bombs below are real)."""
    p = _zip(tmp_path / "rezipped.pt", _members(good_ckpt))
    assert load_checkpoint(p).config.arch == "simple"


def test_zip_bomb_checkpoint_is_refused_before_unpacking(good_ckpt, tmp_path):
    """A 3 MB checkpoint whose first weight unpacks to 3 GiB: refused from the zip directory, before
    torch.load; before, torch allocated and inflated it (3.4 GB, 29 s) and only then failed."""
    members = _members(good_ckpt)
    stream, crc = _zeros_deflated(3 * 1024)
    target = next(i for i, m in enumerate(members) if m[0].endswith("/data/0"))
    members[target] = (members[target][0], 8, stream, crc, 3 * GIB)
    bomb = _zip(tmp_path / "bomb.pt", members)
    assert bomb.stat().st_size < 5 * 1024**2  # 1.6 MB of weights, 3.2 MB of bomb
    with pytest.raises(CheckpointError, match=r"unpacks to 3,07\d MiB") as e:
        load_checkpoint(bomb)
    assert str(bomb) in str(e.value)
    peak, out = _peak_rss_mb(
        "from core.models import load_checkpoint, CheckpointError\n"
        f"try:\n    load_checkpoint({str(bomb)!r})\nexcept CheckpointError as e:\n    print('REFUSED', e)\n"
    )
    assert "REFUSED" in out and peak < 1024, f"peak memory {peak:.0f} MB"


def test_oversized_and_foreign_archives_are_refused(good_ckpt, tmp_path):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: nothing is written, nothing must be read
    with pytest.raises(CheckpointError, match="too large") as e:
        load_checkpoint(big)
    assert str(big) in str(e.value)

    members = _members(good_ckpt)
    pkl = next(i for i, m in enumerate(members) if m[0].endswith("data.pkl"))
    name, _, payload, _, _ = members[pkl]
    padded = payload[:-1] + b"N" * (5 * 1024**2) + b"0."  # still a pickle: NONEs popped, STOP
    members[pkl] = (name, 0, padded, zlib.crc32(padded), len(padded))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(_zip(tmp_path / "fat_pickle.pt", members))

    prefixed = tmp_path / "prefixed.pt"
    prefixed.write_bytes(b"\0" * 1000 + good_ckpt.read_bytes())  # zip readers disagree on these
    with pytest.raises(CheckpointError, match="not a zip"):
        load_checkpoint(prefixed)

    legacy = tmp_path / "legacy.pt"  # the pre-zip format allocates storages at sizes it declares
    torch.save(torch.load(good_ckpt, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="not a zip"):
        load_checkpoint(legacy)


def test_limits_are_documented_constants():
    import core.images
    import core.models

    assert MAX_CHECKPOINT_UNPACKED_BYTES <= GIB and MAX_IMAGE_PIXELS <= 40_000_000 and MAX_IMAGE_BYTES <= 50 * 2**20
    for name in ("MAX_CHECKPOINT_BYTES", "MAX_CHECKPOINT_UNPACKED_BYTES", "MAX_HIDDEN", "MAX_INPUT_SIDE"):
        assert f"{name} = " in Path(core.models.__file__).read_text()
    for name in ("MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS"):
        src = Path(core.images.__file__).read_text()
        assert f"{name} = " in src and src.split(f"{name} = ", 1)[1].split("\n", 2)[1].startswith('"""')


# --------------------------------------------------------------------------- model outputs


@pytest.fixture(scope="module")
def overflow_ckpt(tmp_path_factory) -> Path:
    """Finite weights that overflow: the LSTM's outputs saturate near 1, the heads' weights are 3e38,
    so every logit is +inf and the softmax NaN (in PyTorch and in onnxruntime)."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lstm")
    sd = build_model(cfg).state_dict()
    for k in ("lstm.bias_ih_l1", "lstm.bias_ih_l1_reverse"):
        sd[k] = torch.full_like(sd[k], 100.0)
    for head in ("province_head", "other_head"):
        sd[f"{head}.weight"] = torch.full_like(sd[f"{head}.weight"], 3e38)
    return save_checkpoint(Checkpoint(cfg, sd), tmp_path_factory.mktemp("overflow") / "overflow.pt")


@pytest.fixture
def crops(tmp_path) -> Path:
    d = tmp_path / "数据"
    copy_real(d, 6)
    return d


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_non_finite_outputs_are_an_error_naming_the_model(overflow_ckpt, crops, backend):
    predictor = Predictor(overflow_ckpt, backend=backend)  # finite weights: it loads
    samples = scan_folder(crops)
    with pytest.raises(ModelOutputError) as e:
        predict_samples(samples, predictor, batch_size=4, workers=0)
    msg = str(e.value)
    assert str(overflow_ckpt) in msg and samples[0].file in msg and "non-finite" in msg


def test_misshapen_or_out_of_range_outputs_are_an_error(good_ckpt, crops, monkeypatch):
    predictor = Predictor(good_ckpt, backend="torch")
    samples = scan_folder(crops)
    real = predictor.probabilities
    for fake in (
        lambda b: real(b)._replace(first=real(b).first[:, :, :5]),  # a province head of 5 classes
        lambda b: real(b)._replace(first=real(b).first - 0.5),  # not probabilities
        lambda b: real(b)._replace(label_tail=real(b).label_tail * np.nan),  # the read that scores labels
        lambda b: real(b)._replace(zoomed=real(b).zoomed[:2]),  # zoomed flags for two crops of four
        lambda b: real(b)._replace(negative=real(b).negative + 0.5),  # negative flags that are not flags
    ):
        monkeypatch.setattr(predictor, "probabilities", fake)
        with pytest.raises(ModelOutputError, match=str(good_ckpt).replace("\\", "\\\\")):
            predict_samples(samples, predictor, batch_size=4, workers=0)


def test_apply_grammar_no_longer_hides_nan(good_ckpt):
    p = Predictor(good_ckpt, backend="torch")
    tail = np.full((1, 6, 35), 1 / 35, np.float32)
    tail[0, 3, 4] = np.nan
    out = p.apply_grammar(tail)
    assert np.isnan(out[0, 3, 4]) and np.isnan(tail[0, 3, 4])  # a copy, NaN kept for the check to see
    assert out[0, 0].sum() == pytest.approx(1.0) and not out[0, 0, :10].any()  # letters only at position 2


def test_cli_exits_2_on_a_model_with_non_finite_outputs(overflow_ckpt, crops, tmp_path, capsys):
    """Before: exit 0 and a CSV with confidence=nan."""
    out = tmp_path / "r.csv"
    assert main(["predict", str(crops), "--model", str(overflow_ckpt), "--out", str(out), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert str(overflow_ckpt) in err and "non-finite" in err and not out.exists()


def test_cli_exits_2_on_a_checkpoint_with_nan_weights(ckpt_dict, crops, tmp_path, capsys):
    sd = dict(ckpt_dict["state_dict"])
    sd["province_head.bias"] = torch.full_like(sd["province_head.bias"], float("nan"))
    bad = _save(ckpt_dict, tmp_path / "nan.pt", state_dict=sd)
    assert main(["predict", str(crops), "--model", str(bad), "--out", str(tmp_path / "r.csv"), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "non-finite" in err and len(err.splitlines()) == 1


def test_gui_shows_the_error_instead_of_painting_nan(qtbot, overflow_ckpt, crops, tmp_path, monkeypatch):
    """Before: NaN probabilities reached the table and the inspector's paint events (a segfault)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    from gui.main_window import MainWindow

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: shown.append(a[2])))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(model_path=overflow_ckpt, settings=settings)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.sig_run_finished, timeout=60000):
        assert win.open_folder(crops)
    qtbot.waitUntil(lambda: bool(shown), timeout=5000)
    assert "overflow.pt" in shown[0] and "non-finite" in shown[0]
    assert "ModelOutputError" not in shown[0]  # the app's own errors say what happened in words, no class names
    rows = [win.model.row_at(i) for i in range(win.model.rowCount())]
    assert all(not r.probs and r.confidence is None or np.isfinite(r.confidence) for r in rows)
    win.repaint()  # painting what is there is safe
    win.close()


# --------------------------------------------------------------------------- ONNX cache


def test_swapped_onnx_cache_is_not_used(tmp_path, crops, caplog):
    """The export cached beside a checkpoint is tied to it by the checkpoint's SHA-256 in its metadata:
    an export of another checkpoint put in its place is replaced, with a warning naming the file."""
    a = _random_ckpt(tmp_path / "a" / "m.pt", seed=1)
    b = _random_ckpt(tmp_path / "b" / "m.pt", seed=2)
    pa, pb = Predictor(a, backend="onnx"), Predictor(b, backend="onnx")
    cache_a = predict_mod.onnx_cache_path(a, pa.checkpoint_sha)
    cache_b = predict_mod.onnx_cache_path(b, pb.checkpoint_sha)
    assert predict_mod.onnx_checkpoint_sha(cache_a.read_bytes()) == pa.checkpoint_sha
    shutil.copyfile(cache_b, cache_a)  # same file name, another model inside

    samples = scan_folder(crops)
    with caplog.at_level(logging.WARNING, logger="core.predict"):
        swapped = predict_samples(samples, Predictor(a, backend="onnx"), batch_size=8, workers=0)
    assert any(str(cache_a) in r.getMessage() and "not made from" in r.getMessage() for r in caplog.records)
    own = predict_samples(samples, Predictor(a, backend="torch"), batch_size=8, workers=0)
    other = predict_samples(samples, Predictor(b, backend="torch"), batch_size=8, workers=0)
    assert all(np.allclose(x.probs, y.probs, atol=1e-3) for x, y in zip(swapped, own))
    assert not all(np.allclose(x.probs, y.probs, atol=1e-3) for x, y in zip(swapped, other))
    assert predict_mod.onnx_checkpoint_sha(cache_a.read_bytes()) == pa.checkpoint_sha  # exported again


@pytest.mark.parametrize("content", [b"\x08\x07garbage" * 100, b""])
def test_damaged_onnx_cache_is_exported_again_with_a_warning(good_ckpt, crops, caplog, content):
    p = Predictor(good_ckpt, backend="onnx")
    cache = predict_mod.onnx_cache_path(good_ckpt, p.checkpoint_sha)
    cache.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="core.predict"):
        p2 = Predictor(good_ckpt, backend="onnx")
    assert any(str(cache) in r.getMessage() for r in caplog.records)
    assert predict_samples(scan_folder(crops), p2, batch_size=8, workers=0)[0].prediction
    assert predict_mod.onnx_checkpoint_sha(cache.read_bytes()) == p.checkpoint_sha


def test_foreign_onnx_beside_a_read_only_checkpoint_falls_back_to_the_user_cache(tmp_path, crops, monkeypatch):
    a = _random_ckpt(tmp_path / "ro" / "m.pt", seed=3)
    b = _random_ckpt(tmp_path / "b" / "m.pt", seed=4)
    pb = Predictor(b, backend="onnx")
    sha_a = Predictor(a, backend="torch").checkpoint_sha
    beside = predict_mod.onnx_cache_path(a, sha_a)
    shutil.copyfile(predict_mod.onnx_cache_path(b, pb.checkpoint_sha), beside)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_export = predict_mod.export_onnx

    def export(ckpt, path, sha, views):
        if path.parent == a.parent:
            raise PermissionError(13, "Permission denied")
        return real_export(ckpt, path, sha, views)

    monkeypatch.setattr(predict_mod, "export_onnx", export)
    p = Predictor(a, backend="onnx")
    samples = scan_folder(crops)
    got = predict_samples(samples, p, batch_size=8, workers=0)
    own = predict_samples(samples, Predictor(a, backend="torch"), batch_size=8, workers=0)
    assert all(np.allclose(x.probs, y.probs, atol=1e-3) for x, y in zip(got, own))
    assert list((tmp_path / "cache").rglob(f"{sha_a}*.onnx"))


# --------------------------------------------------------------------------- images


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real plate crop whose frame header claims ``width x height``: a few KB that libjpeg would
    decode into a full-size image (the missing data filled in grey)."""
    raw = bytearray(real_files(1)[0].read_bytes())
    i = 2
    while raw[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + int.from_bytes(raw[i + 2 : i + 4], "big")
    raw[i + 5 : i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = zlib.compress(b"\0" * 1000)
    idat = b"IDAT" + data
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(data)) + idat + struct.pack(">I", zlib.crc32(idat))
        + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    )  # fmt: skip


def _bmp_claiming(width: int, height: int) -> bytes:
    """Read by Pillow's header parser (no fast path here), decoded by OpenCV."""
    header = struct.pack("<2sIHHI", b"BM", 54 + 1000, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 1000, 2835, 2835, 0, 0)
    return header + info + b"\0" * 1000


def _pam_claiming(width: int, height: int) -> bytes:
    """A format Pillow does not identify; OpenCV does."""
    return f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n".encode() + b"\0" * 1000


def _hdr_claiming(width: int, height: int) -> bytes:
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode() + b"\0" * 1000


def _tiff_claiming(width: int, height: int) -> bytes:
    """A float32 RGBA TIFF (OpenCV decodes those, Pillow cannot open them): header only."""
    entries = [  # tag, type, count, value (SHORT=3, LONG=4); 258 and 339 point at 4 SHORTs after the IFD
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 4, 0), (259, 3, 1, 8), (262, 3, 1, 2),
        (273, 4, 1, 0), (277, 3, 1, 4), (278, 4, 1, height), (279, 4, 1, 1000), (339, 3, 4, 0),
    ]  # fmt: skip
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    bits_at, format_at, data_at = ifd_end, ifd_end + 8, ifd_end + 16
    out = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        value = {258: bits_at, 339: format_at, 273: data_at}.get(tag, value)
        packed = struct.pack("<HHI", tag, typ, count)
        out += packed + (struct.pack("<HH", value, 0) if typ == 3 and count == 1 else struct.pack("<I", value))
    return (
        out + struct.pack("<I", 0) + struct.pack("<4H", 32, 32, 32, 32) + struct.pack("<4H", 3, 3, 3, 3) + bytes(1000)
    )


@pytest.mark.parametrize(
    "make", [_jpeg_claiming, _png_claiming, _bmp_claiming, _pam_claiming, _hdr_claiming, _tiff_claiming]
)
def test_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, make):
    folder = tmp_path / "图片"
    folder.mkdir()
    p = folder / f"0001-皖A12345{'.jpg' if make is _jpeg_claiming else '.png'}"
    p.write_bytes(make(10000, 8000))
    with pytest.raises(ImageReadError, match="too large") as e:
        read_rgb(p)
    assert str(p) in str(e.value) and "10000 x 8000 pixels (80 megapixels; the limit is 40)" in e.value.reason
    p.write_bytes(make(20000, 20000))  # beyond Pillow's own limit, too
    with pytest.raises(ImageReadError, match="too large"):
        read_rgb(p)


@pytest.mark.parametrize("make, mb", [(_hdr_claiming, 474), (_tiff_claiming, 480)])
def test_deep_image_within_the_pixel_limit_but_too_large_decoded_is_refused(tmp_path, make, mb):
    """A 2.5 MB float HDR of 7900 x 5000 pixels (under 40 MP) took 2.4 GB to read: the decoded
    size, estimated from the header, is limited too."""
    p = tmp_path / "deep.tif"
    p.write_bytes(make(7900, 5000) if make is _hdr_claiming else make(6000, 5000))
    with pytest.raises(ImageReadError, match=f"would take {mb} MB decoded") as e:
        read_rgb(p)
    assert str(p) in str(e.value)


def test_image_bomb_peak_memory(tmp_path):
    """A 4 KB JPEG claiming 20000 x 20000 pixels: before, read_rgb took 2.7 GB to decode it."""
    p = tmp_path / "炸弹.jpg"
    p.write_bytes(_jpeg_claiming(20000, 20000))
    peak, out = _peak_rss_mb(
        "from core.images import read_rgb, ImageReadError\n"
        f"try:\n    read_rgb({str(p)!r})\nexcept ImageReadError as e:\n    print('REFUSED', e.reason)\n"
    )
    assert "REFUSED image too large" in out and peak < 1024, f"peak memory {peak:.0f} MB"


def test_images_within_the_limits_and_unusual_formats_still_read(tmp_path):
    import cv2

    big = np.zeros((1160, 720, 3), np.uint8)  # a full CCPD photo
    big[100:200, 100:300] = 255
    ok, enc = cv2.imencode(".jpg", big)
    (tmp_path / "ccpd.jpg").write_bytes(enc.tobytes())
    assert read_rgb(tmp_path / "ccpd.jpg").shape == (1160, 720, 3)
    (tmp_path / "edge.png").write_bytes(_png_claiming(1, 1)[:8])  # a cut PNG: undecodable, not "too large"
    with pytest.raises(ImageReadError, match="not a decodable image"):
        read_rgb(tmp_path / "edge.png")
    small = np.full((24, 94, 3), 128, np.uint8)
    rgba = np.dstack([small, small[:, :, :1]]).astype(np.float32) / 255
    for ext in (".hdr", ".pam", ".pfm", ".bmp", ".tif", ".webp", ".ppm", ".tiff"):  # Pillow knows some, OpenCV all
        img = small.astype(np.float32) / 255 if ext in (".hdr", ".pfm") else rgba if ext == ".tiff" else small
        ok, enc = cv2.imencode(ext, img)
        assert ok, ext
        p = tmp_path / f"x{ext}"
        p.write_bytes(enc.tobytes())
        assert read_rgb(p).shape == (24, 94, 3), ext


def test_file_too_large_is_refused_without_reading_it(tmp_path):
    p = tmp_path / "huge.jpg"
    with open(p, "wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)  # sparse
    with pytest.raises(ImageReadError, match="file too large") as e:
        read_rgb(p)
    assert str(p) in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_does_not_hang(tmp_path):
    fifo = tmp_path / "0001-皖A12345.jpg"
    os.mkfifo(fifo)
    got: list = []
    t = threading.Thread(target=lambda: got.append(_error_of(fifo)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
    assert got and "not a regular file" in got[0]


def _error_of(path: Path) -> str:
    try:
        read_rgb(path)
    except ImageReadError as e:
        return e.reason
    return "read"


def test_image_bomb_in_a_dataset_is_an_unreadable_row(tmp_path, good_ckpt):
    d = tmp_path / "数据集"
    copy_real(d, 3)
    (d / "0900-皖A00000.jpg").write_bytes(_jpeg_claiming(20000, 20000))
    res = predict_samples(scan_folder(d), Predictor(good_ckpt), batch_size=8, workers=0)
    bad = [r for r in res if r.error]
    assert len(res) == 4 and [r.rel for r in bad] == ["0900-皖A00000.jpg"]
    assert "too large" in bad[0].error and "20000 x 20000" in bad[0].error
