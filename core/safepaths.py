"""Containment of dataset paths: what a store, a journal, an undo step or a CSV may name.

Everything inside a dataset folder (its ``.plate-review`` store included) and every CSV a
user is handed is untrusted: a crafted store can hold journal rows or undo steps naming
``/etc/passwd`` or ``../../x.jpg``, a CSV can name ``.plate-review/store.sqlite``. Every
relative path that comes from such a source passes two checks before any file is touched:

* :func:`rel_problem` (lexical, no disk access): a relative POSIX path, no ``..``, no
  empty, ``.`` or hidden (``.``-led) component, so never inside ``.plate-review``; an
  image file name; no NUL or backslash.
* :func:`disk_problem` (on disk): the folders on the way are real folders inside the
  dataset (no symbolic link among them), and an existing file is a plain file, not a link.

A rename pair must also stay in one folder (:func:`pair_problem`): relabelling never moves a
file to another folder, so a journal row or undo step that does is forged.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import plates


def rel_problem(rel: object) -> str | None:
    """Why ``rel`` may not name a sample of a dataset (lexically), or ``None`` when it may."""
    if not isinstance(rel, str) or not rel:
        return "empty or not a path"
    if "\0" in rel or "\\" in rel:
        return "the path holds a NUL or a backslash"
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return "an absolute path (only paths inside the dataset folder are allowed)"
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            return "the path leaves its folder ('..', '.' or an empty part)"
        if part.startswith("."):
            return "a hidden file or folder (the app's own store is never a sample)"
    if not plates.is_image_name(parts[-1]):
        return "not an image file name"
    return None


def pair_problem(src: object, dst: object) -> str | None:
    """Why a rename ``src`` -> ``dst`` from a journal, undo step or request is not allowed, or ``None``."""
    for rel in (src, dst):
        why = rel_problem(rel)
        if why:
            return f"{rel!r}: {why}"
    if str(src).rpartition("/")[0] != str(dst).rpartition("/")[0]:
        return f"{src!r} -> {dst!r}: a relabel never moves a file to another folder"
    return None


def disk_problem(root: Path, rel: str, must_exist: bool = False) -> str | None:
    """Why ``root/rel`` may not be touched on disk, or ``None``; ``rel`` passed :func:`rel_problem`.

    The folders between ``root`` and the file must be real folders (a symbolic link among
    them could lead anywhere); the file, when it exists, must be a regular file, not a link.

    Args:
        root: The dataset folder (resolved).
        rel: The relative path.
        must_exist: Report a missing file as a problem too.
    """
    parts = rel.split("/")
    d = root
    for part in parts[:-1]:
        d = d / part
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            return "folder not found" if must_exist else None
        except OSError as e:
            return f"cannot read folder {part!r}: {e.strerror or e}"
        if stat.S_ISLNK(st.st_mode):
            return f"folder {part!r} is a symbolic link (it could lead outside the dataset)"
        if not stat.S_ISDIR(st.st_mode):
            return f"{part!r} is not a folder"
    try:
        st = os.lstat(root / rel)
    except FileNotFoundError:
        return "file not found" if must_exist else None
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link (never followed or renamed)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None
