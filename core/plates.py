"""Plate alphabets, the plate grammar, and label <-> file-name schemes.

Three naming schemes are understood (``Scheme``):

* ``dl1``   ``<id>-<PLATE>.<ext>`` (CCPD2019-dl1, the default), e.g. ``0001-皖A26Y56.jpg``
* ``plate`` ``<PLATE>.<ext>``, e.g. ``皖A26Y56.jpg``
* ``ccpd``  original full-image CCPD names whose 5th ``-`` field holds the plate
  as indices into CCPD's provinces/alphabets/ads tables, e.g.
  ``025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg``;
  the 3rd field is the plate's bounding box and the 4th its four corners in the photo
  (``ParsedName.box``, ``ParsedName.corners``; ``core.ccpd.crop_plate`` cuts the plate out)

A name that does not parse is never an exception: :func:`parse_name` returns a
``ParsedName`` whose ``error`` says what is wrong, so the sample can be shown and fixed.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath

#: The 31 province characters, in the notebook's (sorted) order: index = class id.
PROVINCES = "云京冀吉宁川新晋桂沪津浙渝湘琼甘皖粤苏蒙藏豫贵赣辽鄂闽陕青鲁黑"
#: Latin letters and digits for positions 1..6: 0-9 and A-Z without I ('O' occurs).
OTHERS = "0123456789ABCDEFGHJKLMNOPQRSTUVWXYZ"
LETTERS = "".join(c for c in OTHERS if c.isalpha())
PLATE_LEN = 7

#: Pinyin of each province character, for typing without a Chinese input method.
PROVINCE_PINYIN = {
    "云": "yun", "京": "jing", "冀": "ji", "吉": "ji", "宁": "ning", "川": "chuan",
    "新": "xin", "晋": "jin", "桂": "gui", "沪": "hu", "津": "jin", "浙": "zhe",
    "渝": "yu", "湘": "xiang", "琼": "qiong", "甘": "gan", "皖": "wan", "粤": "yue",
    "苏": "su", "蒙": "meng", "藏": "zang", "豫": "yu", "贵": "gui", "赣": "gan",
    "辽": "liao", "鄂": "e", "闽": "min", "陕": "shan", "青": "qing", "鲁": "lu",
    "黑": "hei",
}  # fmt: skip


def provinces_matching(typed: str) -> list[str]:
    """Province characters whose pinyin starts with ``typed`` (case-insensitive).

    Several provinces share a syllable (ji: 冀 吉; yu: 渝 豫), so this returns all
    candidates in alphabet order; an exact character match is returned alone.
    """
    typed = typed.strip().lower()
    if not typed:
        return list(PROVINCES)
    if typed in PROVINCES:
        return [typed]
    return [ch for ch in PROVINCES if PROVINCE_PINYIN[ch].startswith(typed)]


# CCPD's own index tables (README of detectRecog/CCPD). 'O' at the end of each
# table is CCPD's "unknown" slot; 警/学 are special plates outside our alphabet.
CCPD_PROVINCES = [
    "皖", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙", "京", "闽", "赣",
    "鲁", "豫", "鄂", "湘", "粤", "桂", "琼", "川", "贵", "云", "藏", "陕", "甘", "青", "宁",
    "新", "警", "学", "O",
]  # fmt: skip
CCPD_ALPHABETS = list("ABCDEFGHJKLMNPQRSTUVWXYZO")
CCPD_ADS = list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_PLATE_RE = re.compile(rf"^[{PROVINCES}][{LETTERS}][{OTHERS}]{{5}}$")
# 7 indices (CCPD2019's blue plates) or 8 (CCPD2020's green new-energy plates: read, said invalid)
_CCPD_FIELD_RE = re.compile(r"^\d+(?:_\d+){6,7}$")
# CCPD's geometry fields: "x1&y1_x2&y2" (box) and four "x&y" vertices (corners). Six digits at
# most: pixel coordinates of a photo, never an integer that takes long to read.
_CCPD_POINT = r"([0-9]{1,6})&([0-9]{1,6})"
_CCPD_BOX_RE = re.compile(rf"^{_CCPD_POINT}_{_CCPD_POINT}$")
_CCPD_CORNERS_RE = re.compile(rf"^{_CCPD_POINT}_{_CCPD_POINT}_{_CCPD_POINT}_{_CCPD_POINT}$")
# A collision suffix the parsers skip: "-2" in dl1/ccpd names, "_2" in plate names.
_PLATE_SUFFIX_RE = re.compile(r"^(?P<plate>.+?)(?:_(?P<n>\d+))?$")


class Scheme(str, Enum):
    """How a file name carries its label."""

    DL1 = "dl1"
    PLATE = "plate"
    CCPD = "ccpd"


def label_error(label: str) -> str | None:
    """Say what is wrong with a label, or ``None`` when it is a valid plate.

    Args:
        label: The candidate plate text, e.g. ``"皖A26Y56"``.

    Returns:
        A short, human-readable reason, or ``None``.
    """
    if not label:
        return "empty label"
    if len(label) != PLATE_LEN:
        return f"label {label!r} has {len(label)} characters, a plate has {PLATE_LEN}"
    if label[0] not in PROVINCES:
        return f"{label[0]!r} at position 1 is not one of the 31 province characters"
    for i, ch in enumerate(label[1:], start=1):
        if ch not in OTHERS:
            hint = " (plates use 1, not I)" if ch == "I" else ""
            return f"{ch!r} at position {i + 1} is not a plate letter or digit{hint}"
    if label[1] not in LETTERS:
        return f"{label[1]!r} at position 2 must be a letter (city code)"
    return None


def is_valid_label(label: str) -> bool:
    """Whether ``label`` follows the plate grammar: province, letter, 5 alphanumerics."""
    return _PLATE_RE.match(label) is not None


#: What people type between a plate's characters, dropped from a typed label.
LABEL_SEPARATORS = "·•・- "


def normalize_label(text: str) -> str:
    """Clean typed text into a label: NFKC (full-width letters and digits from a Chinese keyboard, and
    compatibility ideographs, become the plain characters), drop separators, upper-case Latin letters."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = "".join(ch for ch in text if ch not in LABEL_SEPARATORS)
    return "".join(ch.upper() if ch.isascii() else ch for ch in text)


@dataclass(frozen=True)
class ParsedName:
    """What a file name says about its sample.

    Attributes:
        name: The file name (no folder).
        scheme: The scheme the name was read with.
        label: The plate text found in the name ("" when none could be found).
        id: The id part kept across renames (dl1 index, CCPD prefix fields), or "". A dl1 id may
            hold ``-`` (``2023-01-05`` in ``2023-01-05-皖A0W669.jpg``) when the second field is not a
            plate and exactly one later field is.
        error: Why the label is invalid, or ``None``.
        box: CCPD names only: the plate's bounding box in the photo, ``(x1, y1, x2, y2)`` in
            pixels (top-left, bottom-right; ``x1 < x2``, ``y1 < y2``), from the 3rd ``-`` field;
            ``None`` for other schemes and when the field is malformed.
        corners: CCPD names only: the plate's four corners in the photo, ``((x, y), ...)`` in
            CCPD's order right-bottom, left-bottom, left-top, right-top (clockwise from the
            right-bottom one), from the 4th ``-`` field; ``None`` as for ``box``.
        tail: dl1 names only: what follows the plate (``cam3`` in ``0015-皖A0H628-cam3.jpg``), a
            collision counter excepted; a rename keeps it.
    """

    name: str
    scheme: Scheme
    label: str
    id: str = ""
    error: str | None = None
    box: tuple[int, int, int, int] | None = None
    corners: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
    tail: str = ""

    @property
    def valid(self) -> bool:
        return self.error is None


def _stem_suffix(name: str) -> tuple[str, str]:
    """``(PurePath(name).stem, PurePath(name).suffix)`` for a bare file name, without building a
    path object: this runs once per file of folders of 200,000 crops (5x faster)."""
    i = name.rfind(".")
    if 0 < i < len(name) - 1:
        return name[:i], name[i:]
    return name, ""


def detect_scheme(name: str) -> Scheme:
    """Guess the naming scheme of one file name."""
    stem = _stem_suffix(os.path.basename(name))[0]
    fields = stem.split("-")
    if len(fields) >= 5 and _CCPD_FIELD_RE.match(fields[4]):
        return Scheme.CCPD
    if len(fields) >= 2:
        return Scheme.DL1
    return Scheme.PLATE


def _ccpd_decode(field: str) -> tuple[str, str | None]:
    idx = [int(x) for x in field.split("_")]
    tables = [CCPD_PROVINCES, CCPD_ALPHABETS] + [CCPD_ADS] * (len(idx) - 2)
    chars = []
    for pos, (i, table) in enumerate(zip(idx, tables)):
        if i >= len(table):
            return "", f"CCPD index {i} at position {pos + 1} is out of range"
        chars.append(table[i])
    return "".join(chars), None


def _ccpd_box(field: str) -> tuple[int, int, int, int] | None:
    """The box of a CCPD name's 3rd field ``x1&y1_x2&y2``, or ``None`` when malformed or empty."""
    m = _CCPD_BOX_RE.match(field)
    if m is None:
        return None
    x1, y1, x2, y2 = map(int, m.groups())
    return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


def _ccpd_corners(field: str) -> tuple[tuple[int, int], ...] | None:
    """The four corners of a CCPD name's 4th field ``x&y_x&y_x&y_x&y``, or ``None`` when malformed."""
    m = _CCPD_CORNERS_RE.match(field)
    if m is None:
        return None
    v = list(map(int, m.groups()))
    return tuple((v[i], v[i + 1]) for i in range(0, 8, 2))


def _ccpd_encode(label: str) -> str:
    tables = [CCPD_PROVINCES, CCPD_ALPHABETS] + [CCPD_ADS] * 5
    out = []
    for pos, (ch, table) in enumerate(zip(label, tables)):
        if ch not in table:
            raise ValueError(f"{ch!r} at position {pos + 1} cannot be written in a CCPD name")
        out.append(str(table.index(ch)))
    return "_".join(out)


def parse_name(name: str, scheme: Scheme | str | None = None) -> ParsedName:
    """Read the label from a file name.

    Args:
        name: File name or path; only the last component is used.
        scheme: Force a scheme; ``None`` or ``"auto"`` detects it per name.

    Returns:
        A ``ParsedName``; ``error`` is set when no valid plate could be read.
    """
    name = os.path.basename(name)
    stem = _stem_suffix(name)[0]
    sch = detect_scheme(name) if scheme in (None, "auto") else Scheme(scheme)
    fields = stem.split("-")
    if sch is Scheme.CCPD:
        if len(fields) < 5 or not _CCPD_FIELD_RE.match(fields[4]):
            return ParsedName(name, sch, "", error="not a CCPD name (5th '-' field is not 7 or 8 indices)")
        label, err = _ccpd_decode(fields[4])
        return ParsedName(name, sch, label, "-".join(fields[:4]), err or label_error(label),
                          _ccpd_box(fields[2]), _ccpd_corners(fields[3]))  # fmt: skip
    if sch is Scheme.DL1:
        if len(fields) < 2:
            return ParsedName(name, sch, "", error="no '-' in the name: expected <id>-<PLATE>.<ext>")
        at = 1
        error = label_error(fields[1])
        if error:  # an id with '-' in it (a date: 2023-01-05-皖A0W669.jpg): the one field that is a plate
            plates_at = [i for i in range(2, len(fields)) if label_error(fields[i]) is None]
            if len(plates_at) == 1:
                at, error = plates_at[0], None
        rest = fields[at + 1 :]
        if rest and rest[-1].isdigit() and len(rest[-1]) <= 3:  # a collision counter (build_name's n)
            rest = rest[:-1]
        return ParsedName(name, sch, fields[at], "-".join(fields[:at]), error, tail="-".join(rest))
    m = _PLATE_SUFFIX_RE.match(stem)
    label = m.group("plate") if m else stem
    return ParsedName(name, sch, label, "", label_error(label))


def build_name(parsed: ParsedName, new_label: str, n: int = 0) -> str:
    """The file name for ``new_label`` in the same scheme, keeping id and extension.

    Args:
        parsed: The current name, as returned by :func:`parse_name`.
        new_label: The corrected plate; must be valid.
        n: Collision counter; ``n >= 2`` adds a suffix that :func:`parse_name` skips.

    Raises:
        ValueError: If ``new_label`` is not a valid plate.
    """
    err = label_error(new_label)
    if err:
        raise ValueError(err)
    ext = PurePath(parsed.name).suffix
    stem = PurePath(parsed.name).stem
    if parsed.scheme is Scheme.CCPD:
        fields = stem.split("-")
        if len(fields) >= 5 and _CCPD_FIELD_RE.match(fields[4]):
            fields[4] = _ccpd_encode(new_label)
            # Drop an earlier collision suffix so suffixes never pile up.
            fields = fields[:7]
            base = "-".join(fields)
        else:
            base = new_label
    elif parsed.scheme is Scheme.DL1:
        base = f"{parsed.id}-{new_label}" if parsed.id else new_label
        if parsed.tail:
            base += f"-{parsed.tail}"
    else:
        base = new_label
    if n >= 2:
        sep = "_" if parsed.scheme is Scheme.PLATE else "-"
        base = f"{base}{sep}{n}"
    return base + ext


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension we read."""
    return _stem_suffix(os.path.basename(name))[1].lower() in IMAGE_EXTENSIONS
