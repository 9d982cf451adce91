"""Robust image reading: unicode paths, any common format and bit depth, clear errors.

Every image file is untrusted input: its size on disk and its size in pixels (read from
the header, without decoding) are checked before it is decoded, so that a small file that
claims 20000 x 20000 pixels is refused instead of taking gigabytes.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from typing import NamedTuple

import cv2
import numpy as np

from .errors import PlateReviewError

MAX_IMAGE_BYTES = 50 * 1024**2
"""Largest image file read (50 MiB). Plate crops are a few KB, full CCPD photos ~200 KB."""
MAX_IMAGE_PIXELS = 40_000_000
"""Largest image decoded, in pixels (40 megapixels; a CCPD photo is 720 x 1160 = 0.8 MP). Read
from the file's header before decoding: a decoded 40 MP image takes 120 MB as 8-bit RGB."""
MAX_IMAGE_DECODED_BYTES = 8 * MAX_IMAGE_PIXELS
"""Largest decoded image, in bytes, estimated from the header (320 MB: 40 MP of 16-bit RGBA).
Deep formats get fewer pixels: a float RGB HDR or PFM 26 MP, a float64 RGBA TIFF 10 MP."""

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block


class ImageReadError(PlateReviewError):
    """A file could not be read as an image; ``str(err)`` names the file and the reason.

    Attributes:
        path: The file.
        reason: Why it could not be read, for the user.
        missing: The file does not exist (deleted or renamed), as opposed to unreadable.
    """

    def __init__(self, path: str | os.PathLike, reason: str, missing: bool = False):
        self.path = str(path)
        self.reason = reason
        self.missing = missing
        super().__init__(f"{self.path}: {reason}")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an 8-bit RGB array (H, W, 3).

    Decodes from bytes so that unicode/Chinese paths work on every platform
    (``cv2.imread`` cannot open them on Windows). Grayscale is expanded, alpha is
    dropped, 16-bit and float images are scaled to 8 bits. Files over
    :data:`MAX_IMAGE_BYTES` and images whose header claims more than
    :data:`MAX_IMAGE_PIXELS` are refused before decoding.

    Raises:
        ImageReadError: missing, empty, too large, unreadable or undecodable file.
    """
    p = os.fspath(path)  # a str, not a Path: building one costs ~20 us, a third of decoding a crop
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageReadError(p, "file not found (deleted or renamed?)", missing=True) from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a folder, not an image") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except OSError as e:
        raise ImageReadError(p, f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageReadError(p, "is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(p, "not a regular file (a device, pipe or socket)")
        if st.st_size > MAX_IMAGE_BYTES:
            raise ImageReadError(p, _too_large_file(st.st_size))
        raw = _read_fd(fd, st.st_size + 1)  # one byte more than the size: a file that grows is seen
    except OSError as e:
        raise ImageReadError(p, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if not raw:
        raise ImageReadError(p, "empty file (0 bytes)")
    if len(raw) > st.st_size:
        raise ImageReadError(p, "the file changed while being read")
    try:
        header = image_header(raw)
    except ValueError as e:
        raise ImageReadError(p, str(e)) from None
    if header is not None:
        _check_size(p, header)
    data = np.frombuffer(raw, dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # OpenCV's own size limits and some damaged files raise
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "decoder error"
        raise ImageReadError(p, f"not a decodable image ({data.size} bytes: {msg})") from None
    if img is None:
        raise ImageReadError(p, f"not a decodable image ({data.size} bytes, corrupt or not an image)")
    return to_rgb8(img, p, in_place=True)


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of an open file (``os.read``: ``f.read(n)`` would allocate ``n`` bytes first)."""
    chunks = []
    while limit > 0:
        chunk = os.read(fd, limit)
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large_file(size: int) -> str:
    return f"file too large to be an image here ({size / 2**20:,.1f} MiB; the limit is {MAX_IMAGE_BYTES // 2**20} MiB)"


class ImageHeader(NamedTuple):
    """What an image file's header says, read without decoding."""

    width: int
    height: int
    bytes_per_pixel: int
    """An upper estimate of the decoded image's bytes per pixel (OpenCV, ``IMREAD_UNCHANGED``)."""


def _check_size(path: str, header: ImageHeader) -> None:
    w, h, bpp = header
    pixels = w * h
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            path,
            f"image too large to read: {w} x {h} pixels ({pixels / 1e6:,.0f} megapixels; "
            f"the limit is {MAX_IMAGE_PIXELS / 1e6:,.0f})",
        )
    if pixels * bpp > MAX_IMAGE_DECODED_BYTES:
        raise ImageReadError(
            path,
            f"image too large to read: {w} x {h} pixels of {bpp} bytes would take {pixels * bpp / 1e6:,.0f} MB "
            f"decoded (the limit is {MAX_IMAGE_DECODED_BYTES / 1e6:,.0f} MB)",
        )


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)
#: Formats OpenCV decodes whose header Pillow reads (Pillow is asked only for these).
_PIL_FORMATS = ["JPEG", "PNG", "BMP", "DIB", "TIFF", "WEBP", "PPM", "SUN", "JPEG2000", "GIF", "AVIF"]


def image_header(raw: bytes) -> ImageHeader | None:
    """Width, height and decoded bytes per pixel of an encoded image, from its header, without
    decoding it; ``None`` when the format is not recognised (OpenCV may still decode it).

    JPEG, PNG, TIFF and the text headers OpenCV reads that Pillow does not (Radiance HDR, PAM,
    PFM) are parsed here, in microseconds; other formats are left to Pillow, which reads only
    the header in ``Image.open``.

    Raises:
        ValueError: a TIFF/PFM/PAM/HDR header that cannot be read, or an image Pillow itself
            refuses as a decompression bomb; the message says which.
    """
    if raw[:3] == b"\xff\xd8\xff":
        header = _jpeg_header(raw)
        if header is not None:
            return header
    elif raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR":
        w, h = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
        return ImageHeader(w, h, 8 if raw[24:25] == b"\x10" else 4)  # 16- or 8-bit, up to 4 channels
    elif raw[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        try:
            return _tiff_header(raw)
        except (ValueError, IndexError, KeyError, struct.error):
            raise ValueError("cannot read the image header (damaged TIFF file?)") from None
    elif raw[:2] in (b"PF", b"Pf", b"P7", b"#?"):
        try:
            return _text_header(raw)
        except (ValueError, IndexError, KeyError):
            raise ValueError("cannot read the image header (damaged PFM, PAM or HDR file?)") from None
    return _pil_header(raw)


def _jpeg_header(raw: bytes) -> ImageHeader | None:
    """The first start-of-frame segment, skipping the other segments (as libjpeg does)."""
    i, n = 2, len(raw)
    while i + 10 <= n:
        if raw[i] != 0xFF:  # libjpeg skips stray bytes before a marker
            i = raw.find(b"\xff", i)
            if i < 0:
                return None
            continue
        m = raw[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
        elif m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            i += 2
        elif m in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        elif m in _JPEG_SOF:
            bits, components = raw[i + 4], raw[i + 9]
            h, w = int.from_bytes(raw[i + 5 : i + 7], "big"), int.from_bytes(raw[i + 7 : i + 9], "big")
            bpp = max(components, 3) * (2 if bits > 8 else 1)
            return ImageHeader(w, h, bpp) if w and h else None
        else:
            i += 2 + int.from_bytes(raw[i + 2 : i + 4], "big")
    return None


_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8 (BigTIFF)


def _tiff_header(raw: bytes) -> ImageHeader:
    """Size, samples per pixel and bits per sample from the first image directory (the page OpenCV
    reads) of a TIFF or BigTIFF. Pillow cannot open some TIFFs OpenCV decodes (float RGBA)."""
    bo = "<" if raw[:2] == b"II" else ">"
    big = struct.unpack_from(bo + "H", raw, 2)[0] == 43
    if big:
        ifd = struct.unpack_from(bo + "Q", raw, 8)[0]
        count, pos, entry, count_fmt, inline = struct.unpack_from(bo + "Q", raw, ifd)[0], ifd + 8, 20, "Q", 8
    else:
        ifd = struct.unpack_from(bo + "I", raw, 4)[0]
        count, pos, entry, count_fmt, inline = struct.unpack_from(bo + "H", raw, ifd)[0], ifd + 2, 12, "I", 4
    tags: dict[int, tuple[int, ...]] = {}
    for k in range(min(count, 4096)):
        e = pos + k * entry
        tag, typ = struct.unpack_from(bo + "HH", raw, e)
        if tag not in (256, 257, 258, 277):  # width, length, bits per sample, samples per pixel
            continue
        n = struct.unpack_from(bo + count_fmt, raw, e + 4)[0]
        fmt = _TIFF_TYPES[typ]
        at = e + 4 + struct.calcsize(count_fmt)
        if n * struct.calcsize(fmt) > inline:
            at = struct.unpack_from(bo + ("Q" if big else "I"), raw, at)[0]
        tags[tag] = struct.unpack_from(bo + fmt * max(1, min(n, 16)), raw, at)
    samples = tags.get(277, (1,))[0]
    bits = max(tags.get(258, (1,)))
    if not 1 <= samples <= 64 or not 1 <= bits <= 128:
        raise ValueError("absurd samples per pixel or bits per sample")
    return ImageHeader(tags[256][0], tags[257][0], max(samples, 3) * max(1, (bits + 7) // 8))


def _text_header(raw: bytes) -> ImageHeader:
    """From a PFM (``PF``/``Pf``), PAM (``P7``) or Radiance HDR (``#?``) header."""
    head = raw[:4096].decode("latin-1")
    if head.startswith(("PF", "Pf")):  # float32, colour (PF) or grey (Pf)
        tokens = head[2:].split()
        return ImageHeader(int(tokens[0]), int(tokens[1]), 12 if head[1] == "F" else 4)
    if head.startswith("P7"):
        fields = {}
        for line in head.splitlines()[1:]:
            key, _, value = line.strip().partition(" ")
            if key == "ENDHDR":
                break
            fields[key] = value.strip()
        depth = max(int(fields.get("DEPTH", "1")), 3)
        wide = int(fields.get("MAXVAL", "255")) > 255
        return ImageHeader(int(fields["WIDTH"]), int(fields["HEIGHT"]), depth * (2 if wide else 1))
    # Radiance HDR (decoded as float32 RGB): header lines, an empty line, then the resolution
    # line, e.g. "-Y 480 +X 640"
    body = head.replace("\r\n", "\n").split("\n\n", 1)
    if len(body) < 2:
        raise ValueError("no resolution line")
    tokens = body[1].split("\n", 1)[0].split()
    if len(tokens) != 4:
        raise ValueError("bad resolution line")
    return ImageHeader(int(tokens[3]), int(tokens[1]), 12)


def _pil_header(raw: bytes) -> ImageHeader | None:
    """Pillow's reading of the header (``Image.open`` does not decode); ``None`` if it cannot."""
    from PIL import Image  # imported only for the formats parsed nowhere else

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we refuse those ourselves
            with Image.open(io.BytesIO(raw), formats=_PIL_FORMATS) as im:
                bands = len(im.getbands())
                depth = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
                return ImageHeader(im.width, im.height, max(bands, 4) * depth)
    except Image.DecompressionBombError:  # beyond Pillow's own limit, hence far beyond ours
        raise ValueError(
            f"image too large to read (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:,.0f} megapixels; "
            f"the limit is {MAX_IMAGE_PIXELS / 1e6:,.0f})"
        ) from None
    except Exception:  # unidentified or damaged: OpenCV decides, as before
        return None


def to_rgb8(img: np.ndarray, path: str | os.PathLike = "<array>", in_place: bool = False) -> np.ndarray:
    """Convert a decoded OpenCV image (BGR/BGRA/gray, any depth) to 8-bit RGB.

    ``in_place``: ``img`` may be overwritten (it is the caller's own, just decoded): a deep
    image then takes no second full-size copy.
    """
    if img.size == 0 or img.ndim not in (2, 3):
        raise ImageReadError(path, f"unsupported image shape {img.shape}")
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            shifted = np.right_shift(img, 8, out=img if in_place else None)
            img = shifted.astype(np.uint8)
        else:
            f = img if in_place and img.dtype == np.float32 else img.astype(np.float32)  # f is ours
            lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            f -= lo
            f *= scale
            np.nan_to_num(f, copy=False)
            np.clip(f, 0, 255, out=f)
            img = f.astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ImageReadError(path, f"unsupported number of channels: {channels}")


def encode_jpeg(rgb: np.ndarray, what: str, quality: int = 95) -> bytes:
    """``rgb`` (8-bit RGB) as JPEG bytes; ``what`` names the image in the OSError if it cannot be encoded."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {what} as JPEG")
    return buf.tobytes()
