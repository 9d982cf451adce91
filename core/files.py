"""Writing a file so that a failed write leaves the previous file or none, and says why.

One home for the temporary-and-rename pattern and for wording a failed write. Every file the
app writes whole (the CSVs, checkpoints, ONNX exports, an export's lists) goes through
:func:`atomic_write` or :func:`atomic_path`: the bytes go to a temporary file beside the target,
which replaces the target only once it is complete, and is removed if anything fails. A full
disk is the usual failure; :class:`WriteError` then names the file and says how much room is
left on its disk, and the previous file, if there was one, is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .dataset import STORE_DIRNAME
from .errors import PlateReviewError
from .plates import IMAGE_EXTENSIONS

#: errno values that mean "no room": a full disk, a full quota, a file-size limit.
NO_ROOM = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code is not None)


class WriteError(PlateReviewError):
    """A file could not be written; the message names it and says why. Nothing was replaced.

    Attributes:
        path: The file that was being written.
    """

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes free on the disk that holds ``path`` (or its nearest existing folder); ``None`` if unknown."""
    p = Path(path)
    for q in (p, *p.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(q).free
    return None


def human_bytes(n: int) -> str:
    """``n`` bytes for a person: ``0 bytes``, ``340 KB``, ``2.5 MB``, ``1.2 GB`` (powers of 1024)."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if n >= 100 else f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def room_left(path: str | os.PathLike) -> str:
    """``(340 KB free on its disk)``, or an empty string when the free space cannot be read."""
    free = free_bytes(path)
    return "" if free is None else f" ({human_bytes(free)} free on its disk)"


def output_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` may not be written as an output (a CSV, a checkpoint, an ONNX file), or ``None``:
    it would replace an image (a dataset's sample, most likely: ``--out`` given a crop's name) or
    land beside a dataset's store in its ``.plate-review`` folder (the app's own sub-folders, such
    as ``models``, are fine)."""
    p = Path(path)
    if p.resolve().parent.name == STORE_DIRNAME:
        return f"in a dataset's {STORE_DIRNAME} folder, beside its store and undo history"
    if p.suffix.lower() in IMAGE_EXTENSIONS and p.exists():
        return "an image file (an output never replaces one)"
    return None


def probe_folder(folder: str | os.PathLike) -> None:
    """Make ``folder`` (and its parents) and write and remove an empty file there: raises the
    ``OSError`` that a write in it would (read-only, no permission, no room)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike) -> Path:
    """Make sure ``path`` can be written as an output before a long run makes it (its folder is made,
    and a probe file is written there and removed). Returns ``path``.

    Raises:
        WriteError: :func:`output_problem` refuses it, it is a folder, or its folder cannot be written.
    """
    path = Path(path)
    problem = output_problem(path) or ("a folder" if path.is_dir() else None)
    if problem:
        raise WriteError(f"{path}: not written: {problem}", path)
    try:
        probe_folder(path.parent)
    except OSError as e:
        raise WriteError(write_problem(path, e), path) from e
    return path


def write_problem(path: str | os.PathLike, e: OSError, shown: str | None = None) -> str:
    """``cannot write PATH: WHY`` for a failed write of ``path`` (``shown`` in its place, if given);
    no room left adds how much is free on the disk."""
    why = e.strerror or str(e)
    if e.errno in NO_ROOM:
        why += room_left(path)
    return f"cannot write {shown or path}: {why}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, tmp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; it replaces ``path`` when the block ends.

    ``path``'s folder is made if missing. If the block raises, or the write fails, the temporary file
    is removed and ``path`` keeps its previous content (or stays absent). An ``OSError`` becomes a
    :class:`WriteError` naming ``path``; so does a ``path`` that :func:`output_problem` refuses,
    before anything is written.

    Args:
        path: The file to write.
        tmp_name: The temporary file's name (default: ``path``'s name plus ``.tmp``).
    """
    path = Path(path)
    problem = output_problem(path)
    if problem:
        raise WriteError(f"{path}: not written: {problem}", path)
    tmp = path.with_name(tmp_name or path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(write_problem(path, e), path) from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    fsync: bool = False,
    tmp_name: str | None = None,
) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` once complete.

    As :func:`atomic_path`, with the file opened (``mode`` ``w`` or ``wb``; ``encoding`` and
    ``newline`` as :func:`open`, ignored in binary mode). ``fsync``: flush the bytes to the disk
    before the rename (a file that must survive a power cut).
    """
    binary = "b" in mode
    with atomic_path(path, tmp_name) as tmp:
        with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else newline) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_write`; returns ``path``."""
    with atomic_write(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"), fsync)
