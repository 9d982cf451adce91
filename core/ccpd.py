"""The plate inside a CCPD photograph: where it is and the upright crop a reader needs (torch-free).

A CCPD file (``Scheme.CCPD``) is a whole 720x1160 street photograph, not a plate crop; its
name carries the plate's bounding box and four corners (``ParsedName.box``,
``ParsedName.corners``). A plate reader trained on crops reads nothing in the whole frame,
so every place that feeds a reader (``core.data.InferenceDataset``, ``core.data.PlateDataset``)
and the inspector cut the plate out first with :func:`crop_plate`.

The crop is the corners' quadrilateral rectified (a perspective warp) to an upright
rectangle whose width and height are the quadrilateral's mean edge lengths: the plate at
the resolution the camera saw it, without inventing an aspect ratio (a plate seen at an
angle stays as narrow as it looked; the reader resizes to its own input anyway, 224x64
for the bundled model, and the CCPD-derived crops it learnt from are free-aspect box crops
resized to 94x24). For an upright plate this is exactly the box crop. Names without usable
corners fall back to the box, and names without a usable box to the whole image. Nothing
here raises on odd geometry: a box outside the image, zero-size or crossed corners all
fall back.

A file named like CCPD that is already a plate crop (its box lies mostly outside the small
image) is returned whole: the coordinates do not describe that image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from . import plates

#: How far (pixels, at least) a corner may lie outside the image and still be used: CCPD's
#: hand-placed corners of a plate at the frame's edge run a few pixels past it.
CORNER_TOLERANCE = 4
#: Below this fraction of its area inside the image, a box does not describe the image.
MIN_INSIDE = 0.5


@dataclass(frozen=True)
class PlateRegion:
    """Where :func:`crop_plate` takes the plate from, in image pixels.

    Attributes:
        quad: The plate outline drawn or warped: four ``(x, y)`` float corners in the order
            left-top, right-top, right-bottom, left-bottom (pixel-edge coordinates: the
            image spans ``0..w`` by ``0..h``).
        size: The crop's ``(width, height)``.
        rectified: True when ``quad`` is CCPD's corners (a perspective warp); False when it
            is the (clamped) bounding box, cut out as is.
    """

    quad: tuple[tuple[float, float], ...]
    size: tuple[int, int]
    rectified: bool


def _clamped_box(box: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int] | None:
    """``box`` cut to the image, or ``None`` when less than :data:`MIN_INSIDE` of it is inside."""
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if cx2 - cx1 < 1 or cy2 - cy1 < 1:
        return None
    if (cx2 - cx1) * (cy2 - cy1) < MIN_INSIDE * (x2 - x1) * (y2 - y1):
        return None
    return cx1, cy1, cx2, cy2


def _usable_corners(corners, w: int, h: int) -> np.ndarray | None:
    """CCPD's corners (RB, LB, LT, RT) as a float (4, 2) array LT, RT, RB, LB, or ``None``
    when they do not make a convex plate of at least 2x2 pixels inside the image."""
    if corners is None:
        return None
    rb, lb, lt, rt = corners
    q = np.array([lt, rt, rb, lb], dtype=np.float64)
    tol = max(CORNER_TOLERANCE, 0.02 * max(w, h))
    if (q[:, 0] < -tol).any() or (q[:, 0] > w + tol).any() or (q[:, 1] < -tol).any() or (q[:, 1] > h + tol).any():
        return None
    # Convex and clockwise on screen (y down): every turn has the same, positive, sign.
    edges = np.roll(q, -1, axis=0) - q
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (turns > 0).all():
        return None
    width, height = _quad_size(q)
    if width < 2 or height < 2:
        return None
    return q


def _quad_size(q: np.ndarray) -> tuple[int, int]:
    """Mean lengths of the top/bottom and left/right edges of ``q`` (LT, RT, RB, LB), rounded."""
    lt, rt, rb, lb = q
    width = (np.hypot(*(rt - lt)) + np.hypot(*(rb - lb))) / 2
    height = (np.hypot(*(lb - lt)) + np.hypot(*(rb - rt))) / 2
    return int(round(width)), int(round(height))


def plate_region(parsed: plates.ParsedName, shape: tuple[int, ...]) -> PlateRegion | None:
    """Where the plate of ``parsed`` lies in an image of ``shape`` (``(h, w, ...)``).

    Returns:
        The corners when they are usable, else the box cut to the image, else ``None``
        (no geometry in the name, or it does not describe this image: use the whole image).
    """
    if parsed.box is None and parsed.corners is None:
        return None
    h, w = int(shape[0]), int(shape[1])
    if w < 1 or h < 1:
        return None
    if parsed.box is not None:
        outline = parsed.box
    else:  # corners without a box: their bounding box says whether they describe this image
        xs, ys = [c[0] for c in parsed.corners], [c[1] for c in parsed.corners]
        outline = (min(xs), min(ys), max(xs), max(ys))
        if outline[0] >= outline[2] or outline[1] >= outline[3]:
            return None
    box = _clamped_box(outline, w, h)
    if box is None:
        return None
    q = _usable_corners(parsed.corners, w, h)
    if q is not None:
        return PlateRegion(tuple(map(tuple, q.tolist())), _quad_size(q), True)
    if parsed.box is None:
        return None
    x1, y1, x2, y2 = box
    return PlateRegion(((x1, y1), (x2, y1), (x2, y2), (x1, y2)), (x2 - x1, y2 - y1), False)


def crop_plate(rgb: np.ndarray, parsed: plates.ParsedName) -> np.ndarray:
    """The plate of a CCPD photograph, upright, as a new contiguous array (see the module notes).

    Args:
        rgb: The image, ``(H, W)`` or ``(H, W, C)`` (``core.images.read_rgb`` output).
        parsed: Its name, :func:`core.plates.parse_name`.

    Returns:
        The rectified corners' quadrilateral, else the box cut to the image, else ``rgb``
        itself (unchanged, not copied) when the name has no usable geometry for this image.
    """
    region = plate_region(parsed, rgb.shape)
    if region is None:
        return rgb
    w, h = region.size
    if not region.rectified:
        x1, y1 = int(region.quad[0][0]), int(region.quad[0][1])
        return np.ascontiguousarray(rgb[y1 : y1 + h, x1 : x1 + w])
    # Pixel-edge coordinates to OpenCV's pixel-centre ones: the output's edges are at -0.5 and
    # w - 0.5, so an upright quadrilateral maps by a pure shift (the crop is the box's pixels).
    src = np.asarray(region.quad, np.float32) - 0.5
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) - 0.5
    m = cv2.getPerspectiveTransform(src, dst)
    if not np.isfinite(m).all():  # unreachable for a convex quad; never a crash on a degenerate one
        return rgb
    out = cv2.warpPerspective(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def crop_named(rgb: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """:func:`crop_plate` for the file ``path`` (its name parsed here); ``rgb`` itself unless it is
    named like a CCPD photograph. Costs ~0.1 us for names without ``&`` (every crop dataset)."""
    name = os.path.basename(os.fsdecode(path))
    if "&" not in name:
        return rgb
    parsed = plates.parse_name(name)
    if parsed.scheme is not plates.Scheme.CCPD:
        return rgb
    return crop_plate(rgb, parsed)
