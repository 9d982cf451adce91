"""CCPD full photographs: the plate's box and corners from the name, the crop a reader sees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core import plates
from core.ccpd import crop_named, crop_plate, plate_region
from core.data import InferenceDataset, PlateDataset, preprocess, resize_for_model
from core.dataset import scan_folder
from core.duplicates import image_hash
from core.images import read_rgb
from core.plates import Scheme, build_name, parse_name

from ._util import real_files

CCPD = "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg"
FRAME_HW = (1160, 720)


def ccpd_name(label: str, box: tuple[int, int, int, int], corners: list[tuple[int, int]] | None = None) -> str:
    """A CCPD name; ``corners`` in CCPD's order RB, LB, LT, RT (default: the box's own corners)."""
    x1, y1, x2, y2 = box
    corners = corners or [(x2, y2), (x1, y2), (x1, y1), (x2, y1)]
    c = "_".join(f"{x}&{y}" for x, y in corners)
    return f"025-95_113-{x1}&{y1}_{x2}&{y2}-{c}-{plates._ccpd_encode(label)}-37-15.jpg"


def grey_frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    f = np.full((*FRAME_HW, 3), 128, np.uint8)
    f[::7] = 100  # some texture, so a wrong offset would show
    return np.clip(f.astype(np.int16) + rng.integers(-10, 10, f.shape), 0, 255).astype(np.uint8)


def upright_photo(crop: np.ndarray, label: str, at: tuple[int, int] = (154, 383)) -> tuple[np.ndarray, str]:
    """A 720x1160 frame with ``crop`` pasted at ``at``, and its CCPD name."""
    f = grey_frame()
    h, w = crop.shape[:2]
    x, y = at
    f[y : y + h, x : x + w] = crop
    return f, ccpd_name(label, (x, y, x + w, y + h))


def tilted_photo(crop: np.ndarray, label: str) -> tuple[np.ndarray, str, tuple[int, int]]:
    """A frame with ``crop`` (3x) warped into a tilted quadrilateral; its name; the plate's size."""
    big = cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    h, w = big.shape[:2]
    lt, rt, rb, lb = (200, 600), (200 + w, 570), (206 + w, 570 + h), (206, 600 + h)
    m = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]) - 0.5,
                                    np.float32([lt, rt, rb, lb]) - 0.5)  # fmt: skip
    f = grey_frame()
    warped = cv2.warpPerspective(big, m, (FRAME_HW[1], FRAME_HW[0]), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (FRAME_HW[1], FRAME_HW[0]))
    f[mask > 127] = warped[mask > 127]
    xs, ys = [p[0] for p in (lt, rt, rb, lb)], [p[1] for p in (lt, rt, rb, lb)]
    name = ccpd_name(label, (min(xs), min(ys), max(xs), max(ys)), [rb, lb, lt, rt])
    return f, name, (w, h)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def real():
    """A real 94x24 crop and its label."""
    f = real_files(1)[0]
    return read_rgb(f), parse_name(f.name).label


# --------------------------------------------------------------------------- names


def test_ccpd_name_carries_box_and_corners():
    p = parse_name(CCPD)
    assert p.scheme is Scheme.CCPD and p.label == "皖AY339S" and p.valid
    assert p.box == (154, 383, 386, 473)
    assert p.corners == ((386, 473), (177, 454), (154, 383), (363, 402))
    for other in ("0001-皖A26Y56.jpg", "皖A26Y56.jpg"):
        assert parse_name(other).box is None and parse_name(other).corners is None


GOOD_BOX, GOOD_CORNERS = "154&383_386&473", "386&473_177&454_154&383_363&402"


@pytest.mark.parametrize(
    "bad",
    [
        "154&383_386",  # a point short
        "a&383_386&473",  # not a number
        "386&473_154&383_363&402",  # three points
        "386&473_177&454_154&383_363&402_1&1",  # five points
        "+154&383_386&473",  # a sign
        "1234567&1_1234568&2",  # seven digits: not a pixel coordinate
        "",
        "１５４&383_386&473",  # non-ASCII digits
        "154&383_386&473_",
    ],
)
def test_malformed_geometry_gives_no_box_but_the_label(bad):
    """A malformed box or corners field is dropped alone; the other one and the label still parse."""
    for box, corners in ((bad, GOOD_CORNERS), (GOOD_BOX, bad)):
        p = parse_name(f"025-95_113-{box}-{corners}-0_0_22_27_27_33_16-37-15.jpg")
        assert p.scheme is Scheme.CCPD and p.label == "皖AY339S" and p.valid
        if box is bad:
            assert p.box is None and p.corners == parse_name(CCPD).corners
        else:
            assert p.box == (154, 383, 386, 473) and p.corners is None


@pytest.mark.parametrize("box", ["386&473_154&383", "154&383_154&473", "154&383_386&383"])
def test_empty_or_reversed_box_is_no_box(box):
    p = parse_name(f"025-95_113-{box}-{GOOD_CORNERS}-0_0_22_27_27_33_16-37-15.jpg")
    assert p.box is None and p.corners is not None and p.label == "皖AY339S"


def test_rename_keeps_box_and_corners():
    p = parse_name(CCPD)
    assert p.box is not None and p.corners is not None
    for n in (0, 2):
        q = parse_name(build_name(p, "京PL3N67", n))
        assert q.label == "京PL3N67" and q.box == p.box and q.corners == p.corners
        assert parse_name(build_name(q, "皖AY339S")).name == CCPD


# --------------------------------------------------------------------------- crop_plate


def test_crop_plate_cuts_the_pasted_crop_out(real):
    crop, label = real
    frame, name = upright_photo(crop, label)
    p = parse_name(name)
    out = crop_plate(frame, p)
    assert out.shape == crop.shape and out.flags.c_contiguous
    assert np.array_equal(out, crop)
    region = plate_region(p, frame.shape)
    assert region.rectified and region.size == (crop.shape[1], crop.shape[0])
    # The box alone (corners malformed) cuts the same pixels.
    box_only = parse_name(name.replace(name.split("-")[3], "1&2"))
    assert box_only.corners is None
    assert np.array_equal(crop_plate(frame, box_only), crop)
    assert not plate_region(box_only, frame.shape).rectified


def test_crop_plate_rectifies_a_tilted_plate(real):
    crop, label = real
    frame, name, (w, h) = tilted_photo(crop, label)
    out = crop_plate(frame, parse_name(name))
    assert abs(out.shape[1] - w) <= 2 and abs(out.shape[0] - h) <= 2
    want = cv2.resize(crop, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    err = np.abs(out.astype(np.float32) - want)[3:-3, 3:-3].mean()  # edges: interpolation with the frame
    x1, y1, x2, y2 = parse_name(name).box
    boxed = cv2.resize(frame[y1:y2, x1:x2], (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA)
    assert err < 12, err
    assert err < 0.5 * np.abs(boxed.astype(np.float32) - want)[3:-3, 3:-3].mean()  # better than the box


@pytest.mark.parametrize(
    "box, corners, expect",
    [
        (
            (700, 1100, 730, 1170),
            [(730, 1170), (700, 1170), (700, 1100), (9000, 1100)],
            "clamped",
        ),  # box cut to the image
        ((800, 1200, 900, 1300), None, "whole"),  # entirely outside
        ((0, 0, 40, 2400), None, "whole"),  # less than half inside
        ((100, 100, 300, 160), [(100, 100), (300, 160), (300, 100), (100, 160)], "box"),  # crossed corners
        ((100, 100, 300, 160), [(300, 160), (100, 160), (100, 100), (5000, 100)], "box"),  # a corner far outside
        ((100, 100, 300, 160), [(300, 160), (300, 160), (300, 160), (300, 160)], "box"),  # all one point
        ((100, 100, 300, 160), [(300, 100), (100, 100), (100, 160), (300, 160)], "box"),  # counter-clockwise
    ],
)
def test_crop_plate_odd_geometry_never_crashes(box, corners, expect):
    frame = grey_frame()
    p = parse_name(ccpd_name("皖A016E2", box, corners))
    assert p.box == box  # the name's box: crop_plate decides what to do with it
    out = crop_plate(frame, p)
    if expect == "whole":
        assert out is frame
    elif expect == "clamped":
        assert out.shape == (1160 - 1100, 720 - 700, 3)
        assert np.array_equal(out, frame[1100:, 700:])
    else:
        assert np.array_equal(out, frame[100:160, 100:300])


def test_crop_plate_leaves_other_images_whole(real):
    crop, label = real
    assert crop_plate(crop, parse_name("0001-皖A26Y56.jpg")) is crop
    # A crop already cut out, under a CCPD name: its box is outside the small image.
    assert crop_plate(crop, parse_name(CCPD)) is crop
    assert crop_named(crop, "/x/" + CCPD) is crop and crop_named(crop, "/x/0001-皖A26Y56.jpg") is crop
    # A corner a few pixels past the frame's edge is CCPD's hand annotation: still rectified.
    frame = grey_frame()
    p = parse_name(ccpd_name(label, (600, 1100, 722, 1160), [(722, 1162), (600, 1160), (600, 1100), (722, 1100)]))
    assert plate_region(p, frame.shape).rectified
    assert crop_plate(frame, p).shape == (61, 122, 3)
    gray = frame[..., 0]
    assert crop_plate(gray, parse_name(ccpd_name(label, (10, 20, 50, 30)))).shape == (10, 40)


# --------------------------------------------------------------------------- readers


def test_inference_dataset_reads_the_plate_of_a_ccpd_photo(tmp_path, real):
    crop, label = real
    frame, name = upright_photo(crop, label)
    path = write_rgb(tmp_path / name, frame)
    plate = crop_plate(read_rgb(path), parse_name(name))  # the JPEG-decoded pixels of the plate
    assert plate.shape == crop.shape
    i, x, err, h = InferenceDataset([path])[0]
    assert err is None and np.array_equal(x, preprocess(plate))
    assert h == image_hash(plate) and h != image_hash(read_rgb(path))
    _, xu, _, hu = InferenceDataset([path], uint8=True)[0]
    assert np.array_equal(xu, resize_for_model(plate)) and hu == h
    _, xp, _, _ = InferenceDataset([path], prepare=lambda rgb: np.asarray(rgb.shape))[0]
    assert tuple(xp) == plate.shape
    _, xw, _, _ = InferenceDataset([path], crop=False)[0]
    assert np.array_equal(xw, preprocess(read_rgb(path)))


def test_plate_dataset_trains_on_the_plate(tmp_path, real):
    crop, label = real
    frame, name = upright_photo(crop, label)
    path = write_rgb(tmp_path / name, frame)
    ds = PlateDataset([(path, label)])
    plate = crop_plate(read_rgb(path), parse_name(name))
    assert plate.shape == crop.shape
    assert np.array_equal(ds.load(0), plate)
    x, _y = ds[0]
    assert np.array_equal(x.numpy(), preprocess(plate))


def test_bundled_model_reads_a_ccpd_photo_like_its_crop(tmp_path):
    """The bundled model reads the synthetic photo of a real crop as it reads the crop itself."""
    from core.predict import Predictor, predict_samples

    folder = tmp_path / "ds"
    folder.mkdir()
    files = real_files(4, step=37)
    photos = {}
    for k, f in enumerate(files):
        crop, label = read_rgb(f), parse_name(f.name).label
        write_rgb(folder / f.name.replace(".jpg", ".png"), crop)  # lossless: the same pixels as in the photo
        if k % 2:
            frame, name, _ = tilted_photo(crop, label)
        else:
            frame, name = upright_photo(crop, label, at=(100 + 40 * k, 300 + 90 * k))
        write_rgb(folder / name.replace(".jpg", ".png"), frame)
        photos[name.replace(".jpg", ".png")] = f.name.replace(".jpg", ".png")
    samples = scan_folder(folder)
    assert sum(s.parsed.scheme is Scheme.CCPD for s in samples) == len(files)
    res = {r.rel: r for r in predict_samples(samples, Predictor(), batch_size=8, workers=0)}
    for photo, crop_rel in photos.items():
        got, want = res[photo], res[crop_rel]
        assert got.error is None and got.prediction == want.prediction, (photo, got.prediction, want.prediction)
        assert got.label == want.label
    upright = [p for k, p in enumerate(photos) if k % 2 == 0]
    for photo in upright:  # the same pixels: the same read, to the probability
        assert res[photo].confidence == pytest.approx(res[photos[photo]].confidence, abs=1e-4)


# --------------------------------------------------------------------------- inspector


def test_inspector_shows_the_plate_and_the_photo_with_its_outline(tmp_path, real):
    from PySide6.QtWidgets import QApplication

    from core.records import PredictionResult
    from gui.inspector import Inspector
    from gui.table_model import Row

    app = QApplication.instance() or QApplication([])
    crop, label = real
    frame, name, _ = tilted_photo(crop, label)
    write_rgb(tmp_path / name, frame)
    write_rgb(tmp_path / "0001-皖A26Y56.png", crop)
    ins = Inspector()
    ins.root = tmp_path
    ins.resize(440, 860)
    ins.show()
    ins.show_row(Row(PredictionResult(name, label)))
    app.processEvents()
    photo = read_rgb(tmp_path / name)
    plate = crop_plate(photo, parse_name(name))
    assert np.array_equal(ins.image._rgb, plate)  # the large view: what the model reads
    assert not ins.photo.isHidden() and ins.photo.region.rectified
    assert ins.photo.frame_view._rgb is photo or np.array_equal(ins.photo.frame_view._rgb, photo)
    quad, main = ins.photo.frame_view._outlines[0]
    assert main and quad == plate_region(parse_name(name), photo.shape).quad
    assert ins.photo.context_view.has_image and len(ins.photo.context_view._outlines) == 2  # outline and box
    assert "plate from a 720×1160 photo" in ins.facts.text()
    ins.grab()  # paints the outlines
    ins.show_row(Row(PredictionResult("0001-皖A26Y56.png", "皖A26Y56")))
    assert ins.photo.isHidden() and np.array_equal(ins.image._rgb, read_rgb(tmp_path / "0001-皖A26Y56.png"))
    ins.show_row(None)
    assert ins.photo.isHidden()
    ins.close()


def test_the_table_thumbnail_of_a_ccpd_photo_shows_its_plate():
    from PySide6.QtCore import QSize

    from gui.workers import _plate_box

    name = "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg"
    box = _plate_box(f"sub/{name}", QSize(720, 1160))
    assert (box.x(), box.y(), box.width(), box.height()) == (154, 383, 232, 90)
    assert _plate_box("0001-皖A12345.jpg", QSize(94, 24)) is None


# --------------------------------------------------------------------------- export


def test_export_writes_the_plate_of_a_photograph_not_the_photograph(tmp_path, real):
    from core.export import export_dataset

    crop, label = real
    src = tmp_path / "ds"
    src.mkdir()
    frame, name, (w, h) = tilted_photo(crop, label)
    write_rgb(src / name, frame)
    write_rgb(src / f"0001-{label}.png", crop)  # a crop among photographs is copied as it is
    report = export_dataset(src, tmp_path / "out", split={"train": 1.0})
    assert report.cropped == 1 and report.written == {"train": 2}
    assert any("exported as their plate's crop" in line for line in report.lines())
    out = sorted((tmp_path / "out" / "train").iterdir())
    photo_out = next(p for p in out if "&" not in p.name and p.suffix == ".jpg")
    got = read_rgb(photo_out)
    want = crop_named(frame, name)
    assert got.shape == want.shape and abs(got.shape[1] - w) <= 3  # the rectified plate, not the 720x1160 frame
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 4  # JPEG at quality 95
    assert parse_name(photo_out.name).label == label
    assert (tmp_path / "out" / "train" / f"0001-{label}.png").read_bytes() == (src / f"0001-{label}.png").read_bytes()


def test_a_photograph_that_cannot_be_read_at_export_time_names_itself(tmp_path, real):
    from core.export import ExportError, export_dataset

    crop, label = real
    src = tmp_path / "ds"
    src.mkdir()
    frame, name, _ = tilted_photo(crop, label)
    write_rgb(src / name, frame)
    (src / name).write_bytes(b"\xff\xd8\xff not a jpeg any more")  # damaged after naming
    with pytest.raises(ExportError, match="cannot write"):
        export_dataset(src, tmp_path / "out", split={"train": 1.0}, check_images=False)
    assert (src / name).read_bytes().startswith(b"\xff\xd8\xff")  # the source is untouched


def test_a_png_photograph_exports_its_plate_under_a_jpg_name(tmp_path, real):
    from core.export import export_dataset

    crop, label = real
    src = tmp_path / "ds"
    src.mkdir()
    frame, name, _ = tilted_photo(crop, label)
    write_rgb(src / name.replace(".jpg", ".png"), frame)
    export_dataset(src, tmp_path / "out", split={"train": 1.0})
    (out,) = (tmp_path / "out" / "train").iterdir()
    assert out.suffix == ".jpg" and out.read_bytes()[:3] == b"\xff\xd8\xff"  # the name says what the bytes are
