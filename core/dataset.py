"""Samples of a dataset folder: the one folder walk, and what each entry is (torch-free).

A sample is an image file whose label is in its name (``core.plates``). The walk lists every
entry with an image name, with the reason when it must not be read (a stranger's dataset can
hold links out of the folder, names that are not UTF-8, folders named ``x.jpg``):
:func:`scan_folder` gives samples, ``core.store.scan_files`` their identities for the cache.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import plates

#: The app's folder inside a dataset (the store, fine-tuned models); hidden, so never a sample.
STORE_DIRNAME = ".plate-review"


@dataclass(frozen=True)
class Sample:
    """One image file of a dataset folder and what its name says.

    Attributes:
        file: Absolute path of the file, as a string (a folder scan makes one per file, and
            a ``Path`` would cost ~20 us each: 6 % of an end-to-end prediction run, A/B measured).
        rel: Path relative to the dataset folder, with '/' separators (the stable key). A name
            that is not valid UTF-8 keeps its bytes as ``os.fsdecode`` gives them (surrogates).
        parsed: The label read from the file name (``parsed.error`` when invalid).
        error: Why the entry cannot be used as an image, found by the folder scan (see
            :data:`SCAN_REASONS`), or ``None``. Such a file must never be read.
    """

    file: str
    rel: str
    parsed: plates.ParsedName
    error: str | None = None

    @property
    def path(self) -> Path:
        """:attr:`file` as a ``Path``."""
        return Path(self.file)

    @property
    def label(self) -> str:
        return self.parsed.label

    @property
    def valid(self) -> bool:
        """The label is a valid plate and the scan found nothing wrong with the entry (trainable)."""
        return self.error is None and self.parsed.valid


#: What :func:`scan_folder` says about an entry it lists but that must not be read
#: (``Sample.error``), in the order the checks are made. ``{detail}`` is the OS error text.
NOT_UTF8_FILE = "file name is not valid UTF-8"
NOT_UTF8_FOLDER = "folder name is not valid UTF-8"
LINK_OUTSIDE = "symbolic link out of the dataset folder (not followed)"
LINK_DANGLING = "symbolic link to nothing"
LINK_NOT_FILE = "symbolic link to something other than a file"
IS_FOLDER = "a folder, not an image file"
NOT_REGULAR = "not a regular file"
UNREADABLE_ENTRY = "cannot be read: {detail}"
UNREADABLE_FOLDER = "folder cannot be read: {detail}"
SCAN_REASONS = (NOT_UTF8_FILE, NOT_UTF8_FOLDER, LINK_OUTSIDE, LINK_DANGLING, LINK_NOT_FILE, IS_FOLDER, NOT_REGULAR,
                UNREADABLE_ENTRY, UNREADABLE_FOLDER)  # fmt: skip
_SURROGATE = re.compile("[\ud800-\udfff]")


def _os_detail(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _link_problem(path: str, root_prefix: str) -> str | None:
    """Why the symbolic link ``path`` must not be read, or ``None`` if it leads to a file inside the folder."""
    try:
        target = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError):  # dangling, a loop, or a component we may not look at
        return LINK_DANGLING
    if not target.startswith(root_prefix):
        return LINK_OUTSIDE
    try:
        if os.path.isfile(target):
            return None
    except (OSError, ValueError):
        pass
    return LINK_NOT_FILE


def _entry_problem(e: os.DirEntry, path: str, rel: str, root_prefix: str) -> str | None:
    """Why the entry ``e`` (at ``path``) of an image-like name cannot be listed as a readable image
    (``None``: it can)."""
    if not rel.isascii() and _SURROGATE.search(rel):
        return NOT_UTF8_FILE if _SURROGATE.search(e.name) else NOT_UTF8_FOLDER
    try:
        if e.is_symlink():
            return _link_problem(path, root_prefix)
        if e.is_file(follow_symlinks=False):
            return None
        return IS_FOLDER if e.is_dir(follow_symlinks=False) else NOT_REGULAR
    except OSError as err:
        return UNREADABLE_ENTRY.format(detail=_os_detail(err))


_EXTS = tuple(plates.IMAGE_EXTENSIONS)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def walk_images(
    folder: str | os.PathLike, recursive: bool = True
) -> Iterator[tuple[str, str, str, str | None, os.DirEntry | None]]:
    """The one folder walk of the app: every entry with an image name, and why it cannot be read.

    Hidden entries (including the app's own ``.plate-review`` store) are skipped, and so are
    entries whose name is not an image name (``README.txt``, a symbolic link to a folder).
    Everything else with an image name is yielded, one bad entry never ending the walk;
    entries that cannot be used as an image come with a reason and must not be read: a name
    that is not valid UTF-8 (:data:`NOT_UTF8_FILE`), a symbolic link that does not lead to a
    file inside the folder (followed only inside it), a folder (also walked), a FIFO, socket
    or device. A sub-folder that cannot be listed is itself yielded, with the folder's rel
    (:data:`UNREADABLE_FOLDER`). Order: unsorted.

    Folders are listed through a descriptor where the platform allows, so ``entry.stat()``
    (while the walk is at that entry) is an ``fstatat`` relative to it, not a path walk.

    Yields:
        ``(rel, folder_path, name, error, entry)``: ``rel`` with '/' separators, the absolute
        path of the entry's folder (the entry is ``os.path.join(folder_path, name)``), the
        name, the reason or ``None``, and the ``os.DirEntry`` (``None`` for a folder yielded
        for its own problem).

    Raises:
        NotADirectoryError: ``folder`` does not exist or is not a folder.
        OSError: ``folder`` itself cannot be listed.
    """
    root = os.path.abspath(folder)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{folder}: not a folder")
    root = os.path.realpath(root)
    root_prefix = os.path.join(root, "")
    join = os.path.join
    stack = [("", root)]
    folders: set[str] = set()  # rels of folders with an image name, yielded after their listing
    while stack:
        prefix, d = stack.pop()
        try:
            try:
                fd = os.open(d, _DIR_FLAGS)
            except OSError:  # not openable as a descriptor (e.g. Windows): list by path
                fd = None
            try:
                with os.scandir(d if fd is None else fd) as it:
                    for e in it:
                        name = e.name
                        if name[0] == ".":
                            continue
                        try:
                            is_dir = e.is_dir(follow_symlinks=False)
                        except OSError:
                            is_dir = False
                        if is_dir and recursive:
                            stack.append((f"{prefix}{name}/", join(d, name)))
                        if not name.lower().endswith(_EXTS):
                            continue
                        rel = prefix + name
                        if is_dir and recursive:
                            folders.add(rel)  # the folder's own problem, if any, says more: after its listing
                            continue
                        try:
                            plain = not is_dir and e.is_file(follow_symlinks=False)
                        except OSError:
                            plain = False
                        ok = plain and (rel.isascii() or not _SURROGATE.search(rel))
                        error = None if ok else _entry_problem(e, join(d, name), rel, root_prefix)  # rare
                        yield rel, d, name, error, e
            finally:
                if fd is not None:
                    os.close(fd)
        except OSError as err:
            if d == root:
                raise
            rel = prefix[:-1]
            folders.discard(rel)
            yield rel, os.path.dirname(d), os.path.basename(d), UNREADABLE_FOLDER.format(detail=_os_detail(err)), None
            continue
        rel = prefix[:-1]
        if rel in folders:
            folders.discard(rel)
            yield rel, os.path.dirname(d), os.path.basename(d), IS_FOLDER, None


def scan_folder(folder: str | os.PathLike, scheme: str | None = None, recursive: bool = True) -> list[Sample]:
    """The samples of a dataset folder (:func:`walk_images`), sorted by relative path.

    Raises:
        NotADirectoryError: ``folder`` does not exist or is not a folder.
        OSError: ``folder`` itself cannot be listed.
    """
    parse, join = plates.parse_name, os.path.join
    out = [
        Sample(join(d, name), rel, parse(name, scheme), error)
        for rel, d, name, error, _e in walk_images(folder, recursive)
    ]
    out.sort(key=lambda s: s.rel)
    return out
