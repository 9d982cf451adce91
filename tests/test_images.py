from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from core.images import ImageReadError, read_rgb

from ._util import real_files


@pytest.fixture
def bgr():
    img = np.zeros((24, 94, 3), np.uint8)
    img[:, :, 0] = 200  # blue in BGR
    img[5:10, 5:20] = 255
    return img


def _write(path, ext, img):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_formats_and_chinese_path(tmp_path, bgr, ext):
    folder = tmp_path / "车牌 数据"
    folder.mkdir()
    p = _write(folder / f"0001-皖A26Y56{ext}", ext, bgr)
    rgb = read_rgb(p)
    assert rgb.shape == (24, 94, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 2] > 150 and rgb[0, 0, 0] < 50  # BGR was turned into RGB


def test_gray_rgba_and_16bit(tmp_path, bgr):
    gray = _write(tmp_path / "g.png", ".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    rgba = _write(tmp_path / "a.png", ".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    deep = _write(tmp_path / "d.png", ".png", bgr.astype(np.uint16) * 257)
    for p in (gray, rgba, deep):
        rgb = read_rgb(p)
        assert rgb.shape == (24, 94, 3) and rgb.dtype == np.uint8
    assert abs(int(read_rgb(deep)[0, 0, 2]) - 200) <= 1


def test_real_crop_reads():
    assert read_rgb(real_files(1)[0]).shape == (24, 94, 3)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"not an image at all", "not a decodable image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "not a decodable"),
    ],
)
def test_bad_files_raise_clear_error(tmp_path, content, reason):
    p = tmp_path / "0001-皖A26Y56.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageReadError) as e:
        read_rgb(p)
    assert reason in e.value.reason and "0001-皖A26Y56.jpg" in str(e.value)


def test_truncated_jpeg(tmp_path):
    data = real_files(1)[0].read_bytes()
    p = tmp_path / "t.jpg"
    p.write_bytes(data[: len(data) // 3])
    try:  # libjpeg may decode a truncated file partially; it must never crash
        assert read_rgb(p).shape[2] == 3
    except ImageReadError as e:
        assert "t.jpg" in str(e)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_rgb(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_rgb(tmp_path)


def test_a_missing_file_is_told_apart_from_a_corrupt_one(tmp_path):
    with pytest.raises(ImageReadError) as gone:
        read_rgb(tmp_path / "gone.jpg")
    assert gone.value.missing
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError) as bad:
        read_rgb(corrupt)
    assert not bad.value.missing


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores file permissions")
def test_permission_denied(tmp_path, bgr):
    p = _write(tmp_path / "x.png", ".png", bgr)
    p.chmod(0)
    with pytest.raises(ImageReadError, match="permission"):
        read_rgb(p)
