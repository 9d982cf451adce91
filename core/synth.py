"""Synthetic Chinese plates (blue; single-row yellow on request), and real-looking plates spliced from real crops.

Two sources of labelled training images besides the real crops:

* :func:`render_plate` draws a standard blue plate (440 x 140 mm: white characters
  on blue, province, letter, separator dot, 5 characters, white frame, rivets) with
  glyphs from the bundled Noto Sans CJK SC subsets, then degrades it like a real
  tight crop: perspective, loose or tight crop margins, size ~94x24 to 188x48,
  illumination, colour casts, dirt, blur, noise and JPEG artefacts.
  :class:`SynthDataset` renders on the fly, deterministic per ``(seed, index)``, and
  cycles the 31 provinces so every province is equally frequent.
* :class:`SpliceDataset` makes new plates from real crops: the layout is fixed and
  the crops are tight, so character cells cut at the standard cell boundaries
  from different real plates can be joined into a plate with a known label.

The glyph bitmaps are read from ``resources/fonts/plate_glyphs.npz``; that file
is built once from the font subsets with ``python -m core.synth --build-atlas``
(needs fontTools, a build-time tool only).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from . import plates
from .ccpd import crop_named
from .data import encode_label, preprocess
from .images import read_rgb

FONT_DIR = Path(__file__).resolve().parent.parent / "resources" / "fonts"
#: CJK fonts: every plate character. Font indices 0, 1 in the atlas.
FONT_FILES = ("NotoSansSC-Bold-subset.otf", "NotoSansSC-Regular-subset.otf")
#: Latin fonts for letters and digits only (indices 2.. in the atlas): the plate font is none
#: of them, so several shapes (square, condensed, geometric) surround it. resources/fonts/README.md.
LATIN_FONT_FILES = (
    "RobotoCondensed-Bold-subset.ttf",
    "DejaVuSansCondensed-Bold-subset.ttf",
    "Play-Bold.ttf",
    "LeagueSpartan-Bold.otf",
)
ATLAS_PATH = FONT_DIR / "plate_glyphs.npz"
#: Province-only subsets of other CJK designs (weights, serif, kai, condensed): the glyph shapes of
#: ``Look.p_province_font``, so that the province is read by its shape, not by Noto Sans' details.
PROVINCE_FONT_FILES = (
    "NotoSansSC-Light-provinces.otf",
    "NotoSansSC-Medium-provinces.otf",
    "NotoSansSC-Black-provinces.otf",
    "NotoSerifSC-Regular-provinces.otf",
    "NotoSerifSC-Bold-provinces.otf",
    "NotoSerifSC-Black-provinces.otf",
    "WenKai-Regular-provinces.ttf",
    "WenKai-Bold-provinces.ttf",
    "SmileySans-Oblique-provinces.ttf",
)
PROVINCE_ATLAS_PATH = FONT_DIR / "province_glyphs.npz"
ATLAS_CHARS = plates.PROVINCES + plates.OTHERS
DEGRADATIONS = ("photometric", "margins", "geometry", "blur", "noise", "jpeg")
"""What :func:`render_plate` can leave out: illumination gradient, shadow band, dirt, colour
cast and contrast; crop margins; perspective jitter, slant and skew; Gaussian or motion blur;
Gaussian noise; JPEG compression."""


@dataclass(frozen=True)
class Look:
    """Strengths of the plate's contrast and of the degradations :func:`render_plate` draws.

    Every value only rescales or gates a random draw, so two looks render the same plates
    (labels, fonts, geometry, margins) from the same random stream.
    """

    white_min: float = 200.0  # characters' grey level is drawn from [white_min, 255]
    p_dull: float = 0.1  # dull characters, blended 30 % towards the blue
    p_thin: float = 0.3  # strokes eroded by one pixel
    contrast_min: float = 0.7  # global contrast factor drawn from [contrast_min, 1.2]
    p_blur: float = 0.35  # Gaussian blur (sigma 0.3..0.9 px at 24 px height, times ``blur``)
    p_motion: float = 0.10  # horizontal motion blur (2..4 px, times ``blur``)
    blur: float = 1.0
    noise: float = 1.0  # Gaussian noise sigma 2..10 grey levels, times this (on half the plates)
    jpeg_min: int = 30  # JPEG quality drawn from [30, 95], raised to at least this
    antialias: float = 0.5  # Gaussian sigma, in output pixels, before warping the drawn plate down
    p_yellow: float = 0.0  # single-row yellow plates (black characters on yellow; large vehicles)
    # What other cameras' crops add (docs/MODEL.md, "Known limits"). The defaults keep the
    # random stream of the looks above: a rescale only, or a draw made only when the field is set.
    margin: float = 1.0  # loose crops: positive margins times this (1.6: up to ~25 % of the height)
    size_max: float = 2.0  # drawn output sizes reach this times 94x24 (2.45: ~230 px wide)
    p_stamp: float = 0.0  # a camera's timestamp text printed over the crop
    p_washed: float = 0.0  # washed-out colour: haze lifts the blacks and drains the saturation
    p_plate_q: float = 0.0  # Qs drawn as the plate font does (a 0 with a short inner tail)
    p_province_font: float = 0.0  # provinces drawn in another CJK design (:func:`load_province_designs`)
    province_warp: float = 0.0  # those glyphs' strokes thickened or thinned, sheared and turned (1.0: full range)


HARSH = Look()
"""The default look: markedly blurrier and lower in contrast than the real crops
(``scripts/synth_vs_real.py``); the bundled model's recipe renders with it."""

MATCHED = Look(
    white_min=230.0,
    p_dull=0.08,
    p_thin=0.1,
    contrast_min=0.8,
    p_blur=0.2,
    p_motion=0.05,
    blur=0.6,
    noise=0.7,
    jpeg_min=50,
    antialias=0.28,
)
"""Calibrated so that contrast and sharpness match the real crops (``scripts/synth_vs_real.py``)."""

CAMERAS = replace(MATCHED, p_yellow=0.3, margin=1.6, size_max=2.45, p_stamp=0.1, p_washed=0.2, p_motion=0.1,
                  p_plate_q=1.0)  # fmt: skip
"""MATCHED plus what crops from other cameras show: yellow plates, looser and larger crops, timestamp
text, washed colour, motion blur as often as the blur draw allows (10 %), and the plate font's
Q. Each was checked against what the teacher reads (``bench/bench_teacher_critic.py``)."""

# Standard plate geometry (GA 36), in mm: 440 x 140, characters 45 x 90,
# 12 mm gaps, 34 mm between characters 2 and 3 holding the separator dot.
PLATE_W, PLATE_H = 440.0, 140.0
CHAR_W, CHAR_H = 45.0, 90.0
CHAR_X = (15.5, 72.5, 151.5, 208.5, 265.5, 322.5, 379.5)  # left edges
CHAR_Y = 25.0
DOT_X = 134.0
#: Cell boundaries (fractions of the plate width) midway between characters.
CELL_CUTS = (0.0, 66.5 / 440, 134.0 / 440, 202.0 / 440, 259.0 / 440, 316.0 / 440, 373.0 / 440, 1.0)


# --------------------------------------------------------------------------- glyphs


def build_glyph_atlas(
    out: str | os.PathLike = ATLAS_PATH,
    height: int = 96,
    chars: str = ATLAS_CHARS,
    cjk_fonts: tuple = FONT_FILES,
    latin_fonts: tuple = LATIN_FONT_FILES,
) -> Path:
    """Rasterise ``chars`` from the bundled font subsets into an .npz of ink masks.

    Each glyph is cropped to its ink box; masks are uint8 (0..255), ``height`` px
    for a full-height glyph. ``cjk_fonts``: the fonts of the CJK slots (font indices 0, 1...),
    names in resources/fonts or paths (a font collection's first font); ``latin_fonts`` follow
    them with the letters and digits. Build-time only: needs fontTools.
    """
    from fontTools.pens.basePen import BasePen  # build-time dependency
    from fontTools.ttLib import TTFont

    class _Flatten(BasePen):
        def __init__(self, glyphset):
            super().__init__(glyphset)
            self.contours: list[list[tuple[float, float]]] = []
            self.cur: list[tuple[float, float]] = []

        def _moveTo(self, p):
            self.cur = [p]

        def _lineTo(self, p):
            self.cur.append(p)

        def _curveToOne(self, p1, p2, p3):
            p0 = self.cur[-1]
            for t in np.linspace(0, 1, 9)[1:]:
                a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                self.cur.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                                 a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))  # fmt: skip

        def _qCurveToOne(self, p1, p2):
            p0 = self.cur[-1]
            for t in np.linspace(0, 1, 7)[1:]:
                a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t**2
                self.cur.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))

        def _closePath(self):
            if len(self.cur) > 2:
                self.contours.append(self.cur)
            self.cur = []

        _endPath = _closePath

    arrays: dict[str, np.ndarray] = {}
    ss = 4  # supersampling
    fonts = [(f, chars) for f in cjk_fonts] + [(f, plates.OTHERS) for f in latin_fonts]
    for fi, (fname, font_chars) in enumerate(fonts):
        font = TTFont(FONT_DIR / fname, fontNumber=0)
        cmap, gs = font.getBestCmap(), font.getGlyphSet()
        upm = font["head"].unitsPerEm
        # Scale so that a digit's height (cap height ~ 0.73 em) maps to `height` px.
        scale = height * ss / (0.74 * upm)
        for ch in font_chars:
            pen = _Flatten(gs)
            gs[cmap[ord(ch)]].draw(pen)
            pts = [np.array(c, np.float64) for c in pen.contours]
            allp = np.concatenate(pts)
            x0, y0 = allp.min(0)
            x1, y1 = allp.max(0)
            w = int(np.ceil((x1 - x0) * scale)) + 2 * ss
            h = int(np.ceil((y1 - y0) * scale)) + 2 * ss
            canvas = np.zeros((h, w), np.uint8)
            polys = [np.round(np.stack([(c[:, 0] - x0) * scale + ss, (y1 - c[:, 1]) * scale + ss], 1)).astype(np.int32)
                     for c in pts]  # fmt: skip
            # Counters run opposite to outer contours: an even-odd fill gives the glyph.
            for poly in polys:
                m = np.zeros_like(canvas)
                cv2.fillPoly(m, [poly], 255)
                canvas ^= m
            small = cv2.resize(canvas, (max(1, w // ss), max(1, h // ss)), interpolation=cv2.INTER_AREA)
            arrays[f"{fi}_{ord(ch)}"] = small
    out = Path(out)
    np.savez_compressed(out, **arrays)
    return out


@functools.lru_cache(maxsize=1)
def load_glyphs(path: str | os.PathLike = ATLAS_PATH) -> dict[tuple[int, str], np.ndarray]:
    """``{(font_index, char): uint8 ink mask}`` from the bundled atlas."""
    with np.load(path) as z:
        out = {}
        for k in z.files:
            fi, code = k.split("_")
            out[(int(fi), chr(int(code)))] = z[k]
    return out


def build_province_atlas(out: str | os.PathLike = PROVINCE_ATLAS_PATH, fonts: tuple = PROVINCE_FONT_FILES) -> Path:
    """The province glyphs of ``fonts`` (default: :data:`PROVINCE_FONT_FILES`), one atlas slot per
    font, for :func:`load_province_designs`. Build-time only: needs fontTools."""
    return build_glyph_atlas(out, chars=plates.PROVINCES, cjk_fonts=tuple(fonts), latin_fonts=())


@functools.lru_cache(maxsize=4)
def load_province_designs(path: str | os.PathLike = PROVINCE_ATLAS_PATH) -> tuple[dict[str, np.ndarray], ...]:
    """The province glyphs of other CJK designs: one ``{province: uint8 ink mask}`` per design, from
    an atlas :func:`build_province_atlas` wrote (default: the bundled one). What the renderer
    draws a province with on a share ``Look.p_province_font`` of the plates."""
    by_font: dict[int, dict[str, np.ndarray]] = {}
    for (fi, ch), m in load_glyphs.__wrapped__(path).items():
        by_font.setdefault(fi, {})[ch] = m
    designs = tuple(by_font[k] for k in sorted(by_font))
    missing = [f"design {i}: {''.join(sorted(set(plates.PROVINCES) - set(d)))}" for i, d in enumerate(designs)
               if set(plates.PROVINCES) - set(d)]  # fmt: skip
    if not designs or missing:
        raise ValueError(f"{path}: not a province atlas (missing provinces: {'; '.join(missing) or 'all'})")
    return designs


# --------------------------------------------------------------------------- labels


def _char_weights(chars: str) -> np.ndarray:
    """Sampling probabilities for ``chars`` that follow real plates (GA 36 serials).

    Digits are about twice as common as letters in positions 3..7 of real plates, and
    'O' (like 'I', which the alphabet lacks) is not issued, so it stays rare: kept in the
    data so its class never dies, but far below the others so the model does not learn
    that an 'O' is as likely as a '0'.
    """
    w = np.array([3.0 if c.isdigit() else (0.05 if c == "O" else 1.0) for c in chars])
    return w / w.sum()


_LETTER_P = _char_weights(plates.LETTERS)
_OTHER_P = _char_weights(plates.OTHERS)


def label_for(index: int, seed: int) -> str:
    """The label of synthetic sample ``index``: provinces cycle, other positions follow real plates.

    Deterministic in ``(seed, index)``. Position 1 is a letter (plate grammar),
    positions 2..6 any of the 35 letters/digits, drawn with :func:`_char_weights`.
    """
    rng = np.random.default_rng([seed, index, 1])
    prov = plates.PROVINCES[(index + seed) % len(plates.PROVINCES)]
    letter = plates.LETTERS[rng.choice(len(plates.LETTERS), p=_LETTER_P)]
    tail = "".join(plates.OTHERS[i] for i in rng.choice(len(plates.OTHERS), size=5, p=_OTHER_P))
    return prov + letter + tail


# --------------------------------------------------------------------------- rendering


#: The plate font's "1": a plain vertical bar (ink mask, 96 px high like the atlas glyphs).
_PLAIN_ONE = np.full((96, 10), 255, np.uint8)


@functools.lru_cache(maxsize=16)
def _plate_q(font: int) -> np.ndarray:
    """The plate font's Q: the font's 0 with a short tail inside its lower right (Noto's and the
    Latin fonts' Q have a long tail below the bowl, which readers of real plates take for 0)."""
    m = load_glyphs()[(font, "0")].copy()
    h, w = m.shape
    thick = max(2, int(round(0.13 * w)))
    cv2.line(m, (int(0.55 * w), int(0.66 * h)), (int(0.92 * w), int(0.97 * h)), 255, thick, cv2.LINE_AA)
    return m


def _warp_glyph(m: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Another weight and slant of an ink mask (96 px high): strokes up to ~2 px thicker or
    thinner per side, a shear up to 0.15 and a turn up to 3 degrees, each times ``strength``;
    cropped to the ink again."""
    r = int(round(rng.integers(-2, 3) * strength))
    if r:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(r) + 1, 2 * abs(r) + 1))
        m = cv2.dilate(m, k) if r > 0 else cv2.erode(m, k)
    pad = int(0.3 * m.shape[0])
    m = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    a = np.deg2rad(_u(rng, -3, 3) * strength)
    sh = _u(rng, -0.15, 0.15) * strength
    c, s = np.cos(a), np.sin(a)
    cx, cy = m.shape[1] / 2, m.shape[0] / 2
    lin = np.array([[c, -s], [s, c]]) @ np.array([[1.0, sh], [0.0, 1.0]])
    aff = np.hstack([lin, (np.array([cx, cy]) - lin @ np.array([cx, cy]))[:, None]])
    m = cv2.warpAffine(m, aff, (m.shape[1], m.shape[0]), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(m > 32)
    if not len(ys):
        return m
    return m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def _plate_colours(rng: np.random.Generator, look: Look) -> tuple[np.ndarray, np.ndarray]:
    """Background and character colour, RGB float 0..255: white on blue, or black on yellow
    (``look.p_yellow``; drawn only when it is set, so the blue looks keep their random stream)."""
    if look.p_yellow and rng.random() < look.p_yellow:
        hue = _u(rng, 18, 32)  # OpenCV hue: yellow ~ 20..30, towards orange when faded
        bg = cv2.cvtColor(np.uint8([[[hue, _u(rng, 140, 255), _u(rng, 140, 255)]]]), cv2.COLOR_HSV2RGB)[0, 0]
        fg = np.full(3, _u(rng, 5, 70), np.float32) + rng.uniform(0, 15, 3).astype(np.float32)
        if rng.random() < look.p_dull:  # worn characters, grey towards the yellow
            fg = 0.7 * fg + 0.3 * bg
        return bg.astype(np.float32), fg
    hue = _u(rng, 100, 122)  # OpenCV hue (0..180): blue ~ 105..120
    sat = _u(rng, 150, 255)
    val = _u(rng, 120, 255)
    bg = cv2.cvtColor(np.uint8([[[hue, sat, val]]]), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    fg = np.full(3, _u(rng, look.white_min, 255), np.float32) - rng.uniform(0, 25, 3).astype(np.float32)
    if rng.random() < look.p_dull:  # dull, low-contrast characters
        fg = 0.7 * fg + 0.3 * bg
    return bg, fg


def _paste_glyph(alpha: np.ndarray, mask: np.ndarray, x: float, y: float, w: float, h: float) -> None:
    """Max-blend a glyph mask resized to (w, h) at (x, y) into ``alpha`` (float 0..1)."""
    wi, hi = max(1, int(round(w))), max(1, int(round(h)))
    g = cv2.resize(mask, (wi, hi), interpolation=cv2.INTER_AREA if wi < mask.shape[1] else cv2.INTER_LINEAR)
    xi, yi = int(round(x)), int(round(y))
    H, W = alpha.shape
    x0, y0, x1, y1 = max(0, xi), max(0, yi), min(W, xi + wi), min(H, yi + hi)
    if x1 <= x0 or y1 <= y0:
        return
    sub = g[y0 - yi : y1 - yi, x0 - xi : x1 - xi].astype(np.float32) / 255.0
    np.maximum(alpha[y0:y1, x0:x1], sub, out=alpha[y0:y1, x0:x1])


def _blend(alpha: np.ndarray, bg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``bg * (1 - alpha) + fg * alpha`` per channel: (H, W) coverage, RGB colours -> (H, W, 3).

    Computed one channel plane at a time: the same float32 operations as the broadcast
    ``bg[None, None] * (1 - alpha[..., None]) + ...``, so the same bits, about 3x faster
    (numpy's broadcast over a last axis of 3 loops per pixel).
    """
    inv = 1 - alpha
    return cv2.merge([inv * bg[c] + alpha * fg[c] for c in range(3)])


def _draw_plate(
    label: str,
    rng: np.random.Generator,
    ppm: float,
    real_glyphs: dict[str, np.ndarray] | None = None,
    latin_fonts: bool = True,
    look: Look = HARSH,
    p_real: float = 0.5,
    province_designs: Sequence[dict[str, np.ndarray]] | None = None,
) -> np.ndarray:
    """The flat plate, ``ppm`` pixels per mm, RGB float32 0..255.

    Letters and digits come from one of the Latin fonts on 60 % of the plates
    (``latin_fonts``), else from the province's Noto font. With ``real_glyphs``
    (:func:`real_glyph_masks`), a share ``p_real`` of the plates (half by default) draw
    every character that has a real template with it (the plate font itself). A share
    ``look.p_province_font`` draw the province from one of ``province_designs`` (default:
    :func:`load_province_designs`) unless a real template draws it.
    """
    glyphs = load_glyphs()
    W, H = int(round(PLATE_W * ppm)), int(round(PLATE_H * ppm))
    bg, fg = _plate_colours(rng, look)
    alpha = np.zeros((H, W), np.float32)  # foreground (white) coverage
    font = int(rng.integers(2))  # CJK font of the province (and of the rest, unless a Latin font is drawn)
    province = None  # another design's province glyph; drawn only when the look asks (the stream stays)
    p_design = look.p_province_font
    if p_design and (p_design >= 1 or rng.random() < p_design):
        designs = load_province_designs() if province_designs is None else province_designs
        province = designs[0 if len(designs) == 1 else int(rng.integers(len(designs)))][label[0]]
        if look.province_warp:
            province = _warp_glyph(province, rng, look.province_warp)
    latin = font
    if latin_fonts and rng.random() >= 0.4:
        latin = len(FONT_FILES) + int(rng.integers(len(LATIN_FONT_FILES)))
    real = real_glyphs if real_glyphs and rng.random() < p_real else {}
    thin = rng.random() < look.p_thin
    # White frame, ~1.5..3 mm inside the edge, ~1..2 mm thick, rounded corners.
    if rng.random() < 0.9:
        inset, th = _u(rng, 1.0, 3.5) * ppm, max(1, int(round(_u(rng, 0.8, 2.2) * ppm)))
        frame = np.zeros((H, W), np.uint8)
        r = int(round(_u(rng, 2, 6) * ppm))
        x0, y0, x1, y1 = int(inset), int(inset), int(W - 1 - inset), int(H - 1 - inset)
        cv2.rectangle(frame, (x0 + r, y0), (x1 - r, y1), 255, th)
        cv2.rectangle(frame, (x0, y0 + r), (x1, y1 - r), 255, th)
        cv2.rectangle(frame, (x0 + r + th, y0 + th), (x1 - r - th, y1 - th), 0, -1)
        cv2.rectangle(frame, (x0 + th, y0 + r + th), (x1 - th, y1 - r - th), 0, -1)
        np.maximum(alpha, frame.astype(np.float32) / 255 * _u(rng, 0.6, 1.0), out=alpha)
    # Characters: each fills its 45 x 90 mm cell; narrow glyphs (1, J...) keep their aspect.
    dx_all, dy_all = _u(rng, -3, 3), _u(rng, -4, 4)
    ch_h = _u(rng, 82, 94)
    for i, ch in enumerate(label):
        m = real.get(ch)
        if m is None and i == 0 and province is not None:
            m = province
        elif m is None:
            m = glyphs[(font if i == 0 else latin, ch)]
            if ch == "1" and rng.random() < 0.7:
                m = _PLAIN_ONE  # the plate font's 1 is a plain bar; Noto's has a flag (read as V, 7)
            elif ch == "Q" and look.p_plate_q and (look.p_plate_q >= 1 or rng.random() < look.p_plate_q):
                m = _plate_q(font if i == 0 else latin)
        if thin and i > 0:
            m = cv2.erode(m, np.ones((3, 3), np.uint8))
        mh, mw = m.shape
        h = ch_h * (_u(rng, 0.9, 1.0) if i == 0 else 1.0)
        w_fit = CHAR_W * _u(rng, 0.9, 1.02)
        # Real templates keep their true aspect; font glyphs are widened towards the cell's. (The
        # Latin-font generator draws the factor for the province too and ignores it; the Noto-only
        # one never did: each keeps the random stream its bundled models were trained with.)
        stretch = 1.0
        if i > 0 or latin_fonts:
            stretch = _u(rng, 0.95, 1.1) if ch in real else _u(rng, 1.0, 1.6)
        w = min(w_fit, mw / mh * h * stretch) if i > 0 else w_fit
        x = CHAR_X[i] + (CHAR_W - w) / 2 + dx_all + _u(rng, -1, 1)
        y = CHAR_Y + (CHAR_H - h) / 2 + dy_all + _u(rng, -1, 1)
        _paste_glyph(alpha, m, x * ppm, y * ppm, w * ppm, h * ppm)
    # Separator dot.
    cv2.circle(alpha, (int(round((DOT_X + dx_all) * ppm)), int(round((70 + dy_all) * ppm))),
               max(1, int(round(_u(rng, 3.5, 5.5) * ppm))), 1.0, -1, lineType=cv2.LINE_AA)  # fmt: skip
    img = _blend(alpha, bg, fg)
    # Rivets: two small (light or dark) dots near the top, sometimes the bottom too.
    if rng.random() < 0.6:
        col = rng.uniform(40, 230, 3).astype(np.float32) if rng.random() < 0.5 else fg * 0.9
        ys = [_u(rng, 10, 22)] + ([_u(rng, 118, 130)] if rng.random() < 0.3 else [])
        for y in ys:
            for xr in (_u(rng, 120, 148), _u(rng, 290, 320)):
                cv2.circle(img, (int(xr * ppm), int(y * ppm)), max(1, int(_u(rng, 2.5, 4.5) * ppm)),
                           col.tolist(), -1, lineType=cv2.LINE_AA)  # fmt: skip
    return img


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """What surrounds the plate: car paint, bumper, shadow; smooth noise, RGB float."""
    base = rng.uniform(10, 200, 3).astype(np.float32)
    if rng.random() < 0.5:
        base = np.full(3, _u(rng, 10, 120), np.float32) + rng.uniform(-10, 10, 3).astype(np.float32)
    small = rng.normal(0, 30, (4, 4, 3)).astype(np.float32)
    return np.clip(base + cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255)


def loose_frame(plate: np.ndarray, rng: np.random.Generator, max_margin: float = 0.25) -> np.ndarray:
    """A tight crop as a looser camera crop frames it: margins of ``U(0, max_margin)`` x its height
    on each side (top, bottom, left, right, drawn in that order and independently) over
    :func:`_background` (car paint, bumper, shadow). Float32 RGB out; the crop's pixels unchanged."""
    ph, pw = plate.shape[:2]
    top, bottom, left, right = (int(round(rng.uniform(0, max_margin) * ph)) for _ in range(4))
    img = _background(rng, ph + top + bottom, pw + left + right)
    img[top : top + ph, left : left + pw] = plate
    return img


def _wash(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze and drained colour: towards a light grey by 20-50 %, saturation down to 40-80 %."""
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * _u(rng, 0.4, 0.8)
    return img + (_u(rng, 150, 230) - img) * _u(rng, 0.2, 0.5)


_STAMP_DIGITS = "0123456789"


def _stamp(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's date and time printed over the crop: a white (or yellow) line of Hershey text
    a quarter to two fifths of the crop's height, over its top edge or its bottom edge, partly off it."""
    h, w = img.shape[:2]
    d = "".join(_STAMP_DIGITS[int(k)] for k in rng.integers(0, 10, 12))
    text = f"20{d[:2]}-{d[2:4]}-{d[4:6]} {d[6:8]}:{d[8:10]}:{d[10:12]}"
    scale = _u(rng, 0.25, 0.4) * h / 22.0  # FONT_HERSHEY_PLAIN's capitals are ~0.6 x 22 px at scale 1
    thick = max(1, int(round(scale)))
    colour = (250.0, 250.0, 250.0) if rng.random() < 0.7 else (250.0, 230.0, 60.0)
    x = int(_u(rng, -0.3, 0.3) * w)
    y = int(_u(rng, 0.08, 0.25) * h) if rng.random() < 0.5 else int(_u(rng, 0.95, 1.15) * h)
    edge, fill = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    cv2.putText(edge, text, (x, y), cv2.FONT_HERSHEY_PLAIN, scale, 255, thick + 1, cv2.LINE_AA)
    cv2.putText(fill, text, (x, y), cv2.FONT_HERSHEY_PLAIN, scale, 255, thick, cv2.LINE_AA)
    out = img * (1 - cv2.merge([edge.astype(np.float32) / 255 * 0.6] * 3))
    a = fill.astype(np.float32) / 255
    return _blend(a, np.zeros(3, np.float32), np.float32(colour)) + out * cv2.merge([1 - a] * 3)


def render_plate(
    label: str,
    rng: np.random.Generator | int,
    size: tuple[int, int] | None = None,
    real_glyphs: dict[str, np.ndarray] | None = None,
    latin_fonts: bool = True,
    skip: Collection[str] = (),
    look: Look = HARSH,
    p_real: float = 0.5,
    province_designs: Sequence[dict[str, np.ndarray]] | None = None,
) -> np.ndarray:
    """Render one degraded, tightly cropped plate image.

    Args:
        label: A valid plate, e.g. ``"皖A26Y56"``.
        rng: A numpy Generator or an int seed.
        size: Output ``(height, width)``; ``None`` draws it: mostly 24x94 (the real
            crops), otherwise up to twice that.
        real_glyphs: Optional plate-font templates (:func:`real_glyph_masks`) used on
            a share ``p_real`` of the plates (half by default; 1.0: every plate, with the
            same random stream).
        latin_fonts: Draw letters and digits with the bundled Latin fonts too (False:
            Noto only, the generator of the first bundled models, same random stream).
        skip: Degradations to leave out, any of :data:`DEGRADATIONS`. Every random
            value is still drawn, so the plate, its size and the other degradations are
            those of the full render with the same ``rng`` (for ablations:
            ``scripts/synth_ablation.py``).
        look: How strong the character colour, stroke and degradations are: :data:`HARSH`
            (the default, the bundled recipe's) or
            :data:`MATCHED` (calibrated to the real crops' contrast and sharpness). Same
            random stream either way: the plates differ only in those strengths.
        province_designs: The province glyphs ``look.p_province_font`` draws from, one
            ``{province: ink mask}`` per design (default: :func:`load_province_designs`).
            With ``p_province_font`` 1.0 and one design the random stream is the same as
            without: the same plates, the province drawn in that design.

    Returns:
        RGB uint8 array of shape ``(height, width, 3)``.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    unknown = set(skip) - set(DEGRADATIONS)
    if unknown:
        raise ValueError(f"unknown degradations {sorted(unknown)}; known: {', '.join(DEGRADATIONS)}")
    photo, margins, geometry = ("photometric" not in skip), ("margins" not in skip), ("geometry" not in skip)
    if size is None:
        if rng.random() < 0.6:
            size = (24, 94)
        else:
            s = 1.0 + _u(rng, 0.0, 1.0) * (look.size_max - 1.0)
            size = (int(round(24 * s * _u(rng, 0.92, 1.08))), int(round(94 * s)))
    oh, ow = size
    # Draw at about 2-3x the output resolution, then warp down (pre-blurred to avoid aliasing).
    ppm = max(0.35, min(1.0, 2.5 * ow / PLATE_W))
    plate = _draw_plate(label, rng, ppm, real_glyphs, latin_fonts, look, p_real, province_designs)
    ph, pw = plate.shape[:2]
    # Illumination gradient and a soft shadow band.
    if rng.random() < 0.7:
        gx, gy = np.linspace(-1, 1, pw, dtype=np.float32), np.linspace(-1, 1, ph, dtype=np.float32)
        grad = (1 + _u(rng, -0.35, 0.35) * gx)[None, :] + (_u(rng, -0.25, 0.25) * gy)[:, None]
        if photo:
            plate *= cv2.merge([grad] * 3)  # not grad[..., None]: the same product, 2x faster
    if rng.random() < 0.2:
        x0 = int(_u(rng, 0, pw))
        x1, f = x0 + int(_u(rng, 0.1, 0.5) * pw), _u(rng, 0.6, 0.85)
        if photo:
            plate[:, x0:x1] *= f
    # Dirt: dark, low-frequency blotches.
    if rng.random() < 0.3:
        d = cv2.resize(rng.random((6, 18)).astype(np.float32), (pw, ph), interpolation=cv2.INTER_CUBIC)
        dirt = 1 - _u(rng, 0.1, 0.45) * np.clip(d - 0.5, 0, 1) * 2
        if photo:
            plate *= cv2.merge([dirt] * 3)
    # Plate corners in the output image: tight crop with random margins (negative = cut off).
    mx0, mx1 = (_u(rng, -0.03, 0.06) for _ in range(2))
    my0, my1 = (_u(rng, -0.08, 0.16) for _ in range(2))
    if rng.random() < 0.6:  # most real crops are nearly exact
        mx0, mx1, my0, my1 = (v * 0.3 for v in (mx0, mx1, my0, my1))
    if look.margin != 1.0:  # looser crops: only the margins grow, cut-off edges stay as they are
        mx0, mx1, my0, my1 = (v * look.margin if v > 0 else v for v in (mx0, mx1, my0, my1))
    if not margins:
        mx0 = mx1 = my0 = my1 = 0.0
    x0, x1 = mx0 * ow, ow * (1 - mx1)
    y0, y1 = my0 * oh, oh * (1 - my1)
    dst = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    jit = np.float32(rng.normal(0, 1, (4, 2))) * np.float32([ow * 0.015, oh * 0.04])
    # Slant (top shifted against bottom) and rotation-like skew (one end higher): real crops
    # reach ~10 degrees (a skew of ~0.6 of the height over the width), most are near level.
    shear = float(np.clip(rng.normal(0, 0.15), -0.45, 0.45)) * oh
    skew = float(np.clip(rng.normal(0, 0.2), -0.7, 0.7)) * oh
    if not geometry:
        jit, shear, skew = jit * 0, 0.0, 0.0
    dst += jit + np.float32([[shear, 0], [shear, 0], [-shear, 0], [-shear, 0]]) / 2
    dst += np.float32([[0, -skew], [0, skew], [0, skew], [0, -skew]]) / 2
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    M = cv2.getPerspectiveTransform(src, dst)
    sigma = look.antialias * pw / ow
    plate = cv2.GaussianBlur(plate, (0, 0), sigma) if sigma > 0.6 else plate
    bgimg = _background(rng, oh, ow)
    out = cv2.warpPerspective(plate, M, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(-1, -1, -1))  # fmt: skip
    mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), M, (ow, oh), flags=cv2.INTER_LINEAR)
    mask = cv2.merge([mask] * 3)  # (H, W, 3) rather than broadcast (H, W, 1): same values, faster
    out = np.where(mask > 0, out * mask + bgimg * (1 - mask), bgimg)
    if look.p_washed and rng.random() < look.p_washed:
        out = _wash(out, rng)
    if look.p_stamp and rng.random() < look.p_stamp:
        out = _stamp(out, rng)
    # Colour cast, contrast, blur, noise, JPEG.
    cast = rng.uniform(0.8, 1.15, 3).astype(np.float32)
    offset = rng.uniform(-20, 20, 3).astype(np.float32)
    c, level = _u(rng, look.contrast_min, 1.2), _u(rng, 0.75, 1.2)
    if photo:
        out = out * cast + offset
        out = (out - out.mean()) * c + out.mean() * level
    r = rng.random()
    if r < 0.35:
        blur_sigma = _u(rng, 0.3, 0.9) * look.blur * oh / 24
        if "blur" not in skip and r < look.p_blur:
            out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    elif r < 0.45:
        k = max(2, int(round(_u(rng, 2, 4) * look.blur * oh / 24)))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        if "blur" not in skip and r < 0.35 + look.p_motion:
            out = cv2.filter2D(out, -1, kern)
    if rng.random() < 0.5:
        noise = rng.normal(0, _u(rng, 2, 10) * look.noise, out.shape).astype(np.float32)
        if "noise" not in skip:
            out = out + noise
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        quality = max(look.jpeg_min, int(rng.integers(30, 96)))
        if "jpeg" not in skip:
            ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def look_stats(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """What :class:`Look` is calibrated on, measured on a crop at the real crops' 94x24.

    Returns ``(contrast, sharpness, white, blue)``: the 5-95 % grey-level range, the variance
    of the Laplacian divided by the squared range (edge sharpness independent of contrast),
    the median grey of the brightest 8 % of pixels (the characters) and of the darker half
    (the plate's blue).
    """
    g = cv2.cvtColor(cv2.resize(rgb, (94, 24), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    g = g.astype(np.float32)
    lo, p50, p92, hi = np.percentile(g, [5, 50, 92, 95])
    contrast = float(hi - lo)
    sharpness = float(cv2.Laplacian(g, cv2.CV_32F).var()) / max(contrast, 1.0) ** 2
    return contrast, sharpness, float(np.median(g[g >= p92])), float(np.median(g[g <= p50]))


class SynthDataset(Dataset):
    """``n`` synthetic plates rendered on the fly; sample ``i`` is the same for a given seed.

    Yields the same ``(x, y)`` as :class:`core.data.PlateDataset`: the preprocessed
    3x64x224 float tensor and the 7 class indices.

    Args:
        n: Number of samples (an epoch).
        seed: Fixes every label and image.
        augment: Optional albumentations pipeline applied after rendering. When set,
            the augmentations draw from numpy's global state (the DataLoader seeds it).
        real_glyphs: Optional plate-font templates from real crops (:func:`real_glyph_masks`).
        latin_fonts: See :func:`render_plate`.
        skip: Degradations to leave out (:func:`render_plate`); sample ``i`` is otherwise
            the same plate as without.
        look: Contrast and degradation strengths (:class:`Look`; :data:`HARSH` by default).
        province_designs: The province glyph sets ``look.p_province_font`` draws from
            (:func:`render_plate`; default: the bundled ones).
        p_real: The share of plates that draw ``real_glyphs`` (:func:`render_plate`).
    """

    def __init__(self, n: int, seed: int = 0, augment: Callable | None = None,
                 real_glyphs: dict[str, np.ndarray] | None = None, latin_fonts: bool = True,
                 skip: Collection[str] = (), look: Look = HARSH,
                 province_designs: Sequence[dict[str, np.ndarray]] | None = None, p_real: float = 0.5):  # fmt: skip
        self.n, self.seed, self.augment = int(n), int(seed), augment
        self.real_glyphs, self.latin_fonts, self.skip = real_glyphs, latin_fonts, frozenset(skip)
        self.look, self.province_designs, self.p_real = look, province_designs, p_real

    def __len__(self) -> int:
        return self.n

    def sample(self, idx: int) -> tuple[np.ndarray, str]:
        """The RGB image and label of sample ``idx`` (before augmentation)."""
        if not 0 <= idx < self.n:
            raise IndexError(idx)
        label = label_for(idx, self.seed)
        rng = np.random.default_rng([self.seed, idx, 2])
        img = render_plate(label, rng, real_glyphs=self.real_glyphs, latin_fonts=self.latin_fonts, skip=self.skip,
                           look=self.look, p_real=self.p_real, province_designs=self.province_designs)  # fmt: skip
        return img, label

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, label = self.sample(idx)
        if self.augment is not None:
            rgb = self.augment(image=rgb)["image"]
        return torch.from_numpy(preprocess(rgb)), torch.from_numpy(encode_label(label))


# --------------------------------------------------------------------------- real glyph templates


_CELL_PPM, _CELL_PAD = 0.5, 6.0  # cells at 0.5 px/mm, 6 mm of margin each side


def character_cells(rgb: np.ndarray) -> list[np.ndarray]:
    """The 7 character cells of a tight real crop, as whiteness maps (float32, 0..1).

    The crop is scaled to the standard plate at 0.5 px/mm (220 x 70) and each cell cut
    at its GA 36 position with 6 mm of margin (35 x 70 px); whiteness is (R + G) / 2
    (white characters, blue ground) stretched from its 10th to its 97th percentile.
    """
    pw, ph = int(round(PLATE_W * _CELL_PPM)), int(round(PLATE_H * _CELL_PPM))
    cw = int(round((CHAR_W + 2 * _CELL_PAD) * _CELL_PPM))
    f = rgb.astype(np.float32)
    white = cv2.resize(0.5 * f[..., 0] + 0.5 * f[..., 1], (pw, ph), interpolation=cv2.INTER_CUBIC)
    out = []
    for x in CHAR_X:
        x0 = min(max(0, int(round((x - _CELL_PAD) * _CELL_PPM))), pw - cw)
        c = white[:, x0 : x0 + cw]
        lo, hi = np.percentile(c, (10, 97))
        out.append(np.clip((c - lo) / max(float(hi - lo), 1.0), 0, 1).astype(np.float32))
    return out


def real_glyph_masks(
    items: Sequence[tuple[np.ndarray, str]], min_count: int = 8, min_agreement: float = 0.8, height: int = 96
) -> dict[str, np.ndarray]:
    """Ink masks of the real plate font, recovered from labelled real crops.

    None of the bundled fonts is the plate font (its 3 has a flat top, its M a shallow
    V, its 0 and D are squarer; a model trained on font glyphs alone reads real 3s as
    5s and Ms as Hs). The crops are tight and the layout fixed, so every character's
    cell sits at a known place: each cell is cut from the crop (scaled to the standard
    plate), its whiteness (R+G: white characters, blue ground) stretched to 0..1, the
    cells of one character aligned on their median by normalised cross-correlation
    (shifts up to 4 px), and the pixel-wise median of the aligned cells is the
    template: noise, blur, dirt and neighbours average out. Characters seen fewer than
    ``min_count`` times, or whose template is not reproducible (the medians of alternate
    cells correlate below ``min_agreement``), get none: the fonts draw them.

    Args:
        items: ``(rgb, label)`` of real crops (training crops only).
        min_count: Cells needed for a template.
        height: Mask height in px for a full-height glyph, as in the glyph atlas.

    Returns:
        ``{char: uint8 mask}`` cropped to the ink, like :func:`load_glyphs`' values.
    """
    r = 4
    cells: dict[str, list[np.ndarray]] = {}
    for rgb, label in items:
        for ch, c in zip(label, character_cells(rgb)):
            cells.setdefault(ch, []).append(c)
    y0, y1 = int((CHAR_Y - 5) * _CELL_PPM), int((CHAR_Y + CHAR_H + 5) * _CELL_PPM)
    out: dict[str, np.ndarray] = {}
    for ch, cs in cells.items():
        if len(cs) < min_count:
            continue
        ref = np.median(np.stack(cs), 0).astype(np.float32)
        for _ in range(3):
            aligned = []
            for c in cs:
                cp = cv2.copyMakeBorder(c, r, r, r, r, cv2.BORDER_REPLICATE)
                score = cv2.matchTemplate(cp, ref, cv2.TM_CCOEFF_NORMED)
                dy, dx = np.unravel_index(int(np.argmax(score)), score.shape)
                aligned.append(cp[dy : dy + c.shape[0], dx : dx + c.shape[1]])
            ref = np.median(np.stack(aligned), 0).astype(np.float32)
        # Split-half check: the medians of alternate cells must agree, else the cells are too
        # few or too varied for a trustworthy template (on the 390 training crops only U, seen
        # 15 times, fails: 0.75 against 0.84-1.0 for the others).
        al = np.stack(aligned)
        halves = [np.ascontiguousarray(np.median(al[i::2], 0)[y0:y1], dtype=np.float32) for i in (0, 1)]
        if float(cv2.matchTemplate(halves[0], halves[1], cv2.TM_CCOEFF_NORMED)[0, 0]) < min_agreement:
            continue
        t = ref[y0:y1]
        lo, hi = np.percentile(t, (30, 99))
        t = cv2.resize(np.clip((t - lo) / max(hi - lo, 1e-3), 0, 1), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        m = np.clip((t - 0.5) / 0.3 + 0.5, 0, 1)  # soft threshold: crisp strokes, anti-aliased edges
        ys, xs = np.nonzero(m > 0.5)
        if len(ys) == 0:
            continue
        m = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        w = max(1, int(round(m.shape[1] * height / m.shape[0])))
        out[ch] = (cv2.resize(m, (w, height), interpolation=cv2.INTER_AREA) * 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- real splicing


@functools.lru_cache(maxsize=4)
def _donors(labels: tuple[str, ...]) -> tuple[dict[str, list[int]], list[list[int]]]:
    """Crops by province, and by position the crops with a letter there (computed once per crop set)."""
    by_prov: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_prov.setdefault(lab[0], []).append(i)
    letter_at = [[i for i, lab in enumerate(labels) if lab[k].isalpha()] for k in range(7)]
    return by_prov, letter_at


@functools.lru_cache(maxsize=4)
def _letter_cells(labels: tuple[str, ...]) -> list[tuple[int, int]]:
    """Every ``(crop, position)`` with a letter in the serial positions 3..7."""
    return [(i, k) for i, lab in enumerate(labels) for k in range(2, 7) if lab[k].isalpha()]


def _serial_window(k: int, width: int) -> tuple[int, int]:
    """Pixel columns of serial character ``k``'s own 57 mm pitch, centred on the character.

    Serial characters sit at a fixed 57 mm pitch, so these windows are the same width at
    every position and a character moves between positions by translation alone.
    """
    centre = CHAR_X[k] + CHAR_W / 2
    pitch = CHAR_X[3] - CHAR_X[2]
    return int(round((centre - pitch / 2) / PLATE_W * width)), int(round((centre + pitch / 2) / PLATE_W * width))


def splice_plate(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    rng: np.random.Generator,
    p_swap: float = 0.5,
    p_letter: float = 0.0,
    p_anywhere: float = 0.0,
) -> tuple[np.ndarray, str]:
    """Join character cells of real crops into a new plate with a known label.

    A base crop is drawn; each of its 7 cells (cut at :data:`CELL_CUTS`) is replaced,
    with probability ``p_swap``, by the same cell of another crop, resized to fit.
    Province cells are drawn from distinct provinces first so rare provinces appear
    as often as the others. With probability ``p_letter`` a serial cell (positions
    3..7) comes from a crop with a letter there: letters are a third of real serial
    characters and the rare ones (Q, D, B, Z) are what gets confused with digits.

    With probability ``p_anywhere`` a swapped serial cell may come from *any* serial
    position of the donor (moved by its character pitch, see :func:`_serial_window`),
    so a letter seen only at the 3rd position of real crops also appears at the 7th.
    """
    n = len(images)
    base = int(rng.integers(n))
    out = images[base].copy()
    h, w = out.shape[:2]
    chars = list(labels[base])
    by_prov, letter_at = _donors(tuple(labels))
    for k in range(7):
        if rng.random() >= p_swap:
            continue
        if k >= 2 and p_anywhere > 0 and rng.random() < p_anywhere:
            _paste_moved_cell(out, images, labels, chars, k, rng, p_letter)
            continue
        if k == 0:
            provs = sorted(by_prov)
            donor = int(rng.choice(by_prov[provs[int(rng.integers(len(provs)))]]))
        elif k >= 2 and p_letter > 0 and rng.random() < p_letter:
            donor = int(rng.choice(letter_at[k])) if letter_at[k] else int(rng.integers(n))
        else:
            donor = int(rng.integers(n))
        src = images[donor]
        sh, sw = src.shape[:2]
        a, b = int(round(CELL_CUTS[k] * w)), int(round(CELL_CUTS[k + 1] * w))
        sa, sb = int(round(CELL_CUTS[k] * sw)), int(round(CELL_CUTS[k + 1] * sw))
        if b <= a or sb <= sa:
            continue
        cell = cv2.resize(src[:, sa:sb], (b - a, h), interpolation=cv2.INTER_LINEAR)
        out[:, a:b] = _match_brightness(cell, out[:, a:b])
        chars[k] = labels[donor][k]
    return out, "".join(chars)


def _match_brightness(cell: np.ndarray, around: np.ndarray) -> np.ndarray:
    """Scale a donor cell's colour channels to the base crop's at the place it goes."""
    gain = (around.reshape(-1, 3).mean(0) + 1) / (cell.reshape(-1, 3).mean(0) + 1)
    return np.clip(cell.astype(np.float32) * np.clip(gain, 0.7, 1.4), 0, 255).astype(np.uint8)


def _paste_moved_cell(
    out: np.ndarray,
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    chars: list[str],
    k: int,
    rng: np.random.Generator,
    p_letter: float,
) -> None:
    """Put a serial character from any serial position of some crop at position ``k``."""
    letters = _letter_cells(tuple(labels))
    if p_letter > 0 and letters and rng.random() < p_letter:
        donor, j = letters[int(rng.integers(len(letters)))]
    else:
        donor, j = int(rng.integers(len(images))), int(rng.integers(2, 7))
    src = images[donor]
    a, b = _serial_window(k, out.shape[1])
    sa, sb = _serial_window(j, src.shape[1])
    if b <= a or sb <= sa:
        return
    cell = cv2.resize(src[:, sa:sb], (b - a, out.shape[0]), interpolation=cv2.INTER_LINEAR)
    out[:, a:b] = _match_brightness(cell, out[:, a:b])
    chars[k] = labels[donor][j]


class SpliceDataset(Dataset):
    """``n`` plates spliced from real crops (:func:`splice_plate`), deterministic per seed.

    Args:
        items: ``(path, label)`` pairs of real crops with valid labels (training part only); a CCPD
            photograph contributes its plate, rectified.
        n: Samples per epoch.
        seed: Fixes which cells are joined.
        augment: Optional albumentations pipeline applied after splicing.
        p_swap, p_letter, p_anywhere: Passed to :func:`splice_plate`.
    """

    def __init__(self, items: Sequence[tuple[str | os.PathLike, str]], n: int, seed: int = 0,
                 augment: Callable | None = None, p_swap: float = 0.5, p_letter: float = 0.0,
                 p_anywhere: float = 0.0):  # fmt: skip
        self.images = [crop_named(read_rgb(p), p) for p, _ in items]  # a CCPD photograph gives its plate
        self.labels = [lab for _, lab in items]
        self.n, self.seed, self.augment, self.p_swap, self.p_letter = int(n), int(seed), augment, p_swap, p_letter
        self.p_anywhere = p_anywhere

    def __len__(self) -> int:
        return self.n

    def sample(self, idx: int) -> tuple[np.ndarray, str]:
        rng = np.random.default_rng([self.seed, idx, 3])
        return splice_plate(self.images, self.labels, rng, self.p_swap, self.p_letter, self.p_anywhere)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, label = self.sample(idx)
        if self.augment is not None:
            rgb = self.augment(image=rgb)["image"]
        return torch.from_numpy(preprocess(rgb)), torch.from_numpy(encode_label(label))


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-atlas", action="store_true", help="rasterise the font subsets into the glyph atlas")
    ap.add_argument("--preview", metavar="PNG", help="write a grid of synthetic plates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--province-fonts", type=float, default=0.0, metavar="P",
                    help="share of the preview's provinces drawn in the other CJK designs")  # fmt: skip
    args = ap.parse_args(argv)
    if args.build_atlas:
        print(build_glyph_atlas())
        print(build_province_atlas())
    if args.preview:
        look = replace(HARSH, p_province_font=args.province_fonts)
        ds = SynthDataset(40, seed=args.seed, look=look)
        tiles = [cv2.resize(ds.sample(i)[0], (282, 72), interpolation=cv2.INTER_LINEAR) for i in range(40)]
        grid = np.vstack([np.hstack(tiles[r : r + 4]) for r in range(0, 40, 4)])
        cv2.imwrite(args.preview, grid[..., ::-1])
        print(args.preview)


if __name__ == "__main__":
    _main()
