"""Export the corrected dataset to a new folder in the CCPD2019-dl1 layout.

``DIR/<split>/<id>-<PLATE>.<ext>`` (ids: the dl1 id when the source name has one, else
a zero-padded running index), plus, beside the splits:

* ``manifest.csv``   -- file, label, source file, review state (one row per exported file; the
  source file is its name in the dataset folder now)
* ``changes.csv``    -- file, name before review, old label, new label (labels changed in Plate
  Review; the name before review is the file's name before Plate Review first renamed it)
* ``skipped.csv``    -- file, reason (unreadable and invalid samples: listed, never silently dropped)
* ``rec_gt_<split>.txt`` -- PaddleOCR recognition labels, ``<split>/<name><TAB><label>``

Files are copied (``shutil.copy2``) or hard-linked, never moved: the source folder is
not modified. A CCPD full photograph (its name gives the plate's box and corners) is
exported as its plate, rectified (:func:`core.ccpd.crop_plate`, what the model reads),
written as a JPEG: the output is a crop dataset like the rest. After writing, the output is checked against what was read and an
:class:`ExportError` is raised if a single readable sample is missing.

A file appears under its final name only once complete (written to a hidden temporary
beside it, then renamed), and ``.plate-review-export.json`` in the output folder marks an
export that has not finished: exporting the same folder to it again resumes (complete,
identical files are kept, temporaries removed), where any other non-empty folder is refused.
Every CSV cell goes through :func:`core.results_csv.escape_cell` (no spreadsheet formulas).
"""

from __future__ import annotations

import contextlib
import csv
import filecmp
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from . import plates
from .dataset import scan_folder
from .errors import PlateReviewError
from .files import WriteError, atomic_write, write_problem
from .progress import Progress
from .results_csv import escape_cell, printable
from .review_state import ReviewState
from .store import Store, scan_files

DEFAULT_SPLIT = {"train": 0.9, "test": 0.1}

#: In the output folder while an export is unfinished: its source and the files it writes.
MARKER = ".plate-review-export.json"
MAX_NAME_BYTES = 255  # a file name's limit on the usual file systems (ext4, APFS, NTFS in UTF-16 units)
_PART_PREFIX, _PART_SUFFIX = ".plate-review-", ".part"  # temporaries: hidden, never a final name


class ExportError(PlateReviewError):
    """The export was refused (``refused``: bad output folder) or its output is incomplete."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass
class ExportReport:
    """What an export read and wrote.

    Attributes:
        out: The output folder.
        read: Image files found in the source folder.
        written: Files written per split.
        skipped: ``(source rel, reason)`` of samples not exported (also in ``skipped.csv``).
        changed: Exported samples whose label was changed in Plate Review.
        linked: Files hard-linked (the rest were copied).
        kept: Files an unfinished earlier export had already written completely (not written again).
        cropped: CCPD photographs exported as their plate's crop.
    """

    out: Path
    read: int = 0
    written: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    changed: int = 0
    linked: int = 0
    kept: int = 0
    cropped: int = 0

    def lines(self) -> list[str]:
        """Human summary, last line ``exported=N skipped=N read=N``."""
        out = [f"{name}: {n} file(s) in {self.out / name}" for name, n in self.written.items()]
        out += [f"skipped {printable(rel)}: {printable(why)}" for rel, why in self.skipped]
        if self.kept:
            out.append(f"resumed an unfinished export: {self.kept} file(s) were already complete")
        if self.cropped:
            out.append(f"{self.cropped} CCPD photograph(s) exported as their plate's crop")
        out.append(f"exported={sum(self.written.values())} skipped={len(self.skipped)} read={self.read}")
        return out


def parse_split(text: str) -> dict[str, float]:
    """Parse ``"train=0.9,test=0.1"`` into ``{"train": 0.9, "test": 0.1}`` (fractions summing to 1).

    Raises:
        ValueError: Malformed text, a bad split name, or fractions not summing to 1.
    """
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"expected name=fraction pairs like train=0.9,test=0.1, got {text!r}")
        if not name.replace("_", "").isalnum() or name.casefold() in {n.casefold() for n in out}:
            raise ValueError(f"bad or repeated split name {name!r} (names are folders: case does not tell them apart "
                             "on every disk)")  # fmt: skip
        try:
            frac = float(value)
        except ValueError:
            raise ValueError(f"{value.strip()!r} is not a number") from None
        if not 0 <= frac <= 1:
            raise ValueError(f"fraction {frac} of {name!r} is not between 0 and 1")
        out[name] = frac
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"fractions sum to {sum(out.values()):g}, not 1")
    return out


def _part(folder: Path, name: str) -> Path:
    return folder / f"{_PART_PREFIX}{name}{_PART_SUFFIX}"


def _check_out(root: Path, out: Path) -> dict | None:
    """Refuse a bad output folder; return the marker of an unfinished export of ``root`` there (to resume)."""
    if out == root or out.is_relative_to(root):
        raise ExportError(f"{out}: cannot export into the source folder {root}", refused=True)
    if not out.exists():
        return None
    if not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder", refused=True)
    names = set(os.listdir(out))
    if MARKER not in names:
        if names - {_part(out, MARKER).name}:  # a marker half written is all an export leaves before its marker
            raise ExportError(f"{out}: folder is not empty; export needs a new or empty folder", refused=True)
        return None
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        source, splits, files = marker["source"], list(marker["splits"]), list(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(
            f"{out}: holds an unfinished export whose record ({MARKER}) cannot be read; "
            "delete the folder or choose another", refused=True,
        ) from None  # fmt: skip
    if source != str(root):
        raise ExportError(
            f"{out}: holds an unfinished export of {source}; export that folder to it again to finish, "
            "or choose another folder", refused=True,
        )  # fmt: skip
    return {"source": source, "splits": splits, "files": files}


def _split_name_ok(name: object) -> bool:
    return isinstance(name, str) and bool(name) and name.replace("_", "").isalnum()


def _resume_clean(dest: Path, marker: dict, splits: list[str], files: set[str]) -> None:
    """Remove what an unfinished export wrote that this one will not: temporaries, files no longer planned.

    Only names the marker lists (``<split>/<file name>``, checked: nothing outside ``dest``)
    and this module's temporaries are touched.
    """
    old_splits = [s for s in marker["splits"] if _split_name_ok(s)]
    for d in [dest, *(dest / name for name in {*old_splits, *splits})]:
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            if n.startswith(_PART_PREFIX) and n.endswith(_PART_SUFFIX):
                (d / n).unlink(missing_ok=True)
    for out_rel in marker["files"]:
        part, _, name = out_rel.partition("/") if isinstance(out_rel, str) else ("", "", "")
        if out_rel in files or part not in old_splits or name in ("", ".", "..") or any(c in name for c in "/\\"):
            continue
        (dest / part / name).unlink(missing_ok=True)
    for name in set(old_splits) - set(splits):
        (dest / f"rec_gt_{name}.txt").unlink(missing_ok=True)
        try:
            (dest / name).rmdir()
        except OSError:  # not empty (not only ours) or gone
            pass


def _write_marker(dest: Path, root: Path, splits: list[str], files: list[str]) -> None:
    # fsync: a marker lost to a power cut would make the folder refused, not resumed
    with atomic_write(dest / MARKER, fsync=True, tmp_name=_part(dest, MARKER).name) as f:
        json.dump({"source": str(root), "splits": splits, "files": files}, f)  # ASCII: any path survives


def _same_content(src: str | os.PathLike, dst: Path) -> bool:
    """Whether ``dst`` exists and holds exactly the bytes of ``src`` (a hard link of it, or an identical copy)."""
    try:
        d = os.stat(dst, follow_symlinks=False)
        s = os.stat(src)
    except OSError:
        return False
    if (s.st_dev, s.st_ino) == (d.st_dev, d.st_ino):
        return True
    return s.st_size == d.st_size and filecmp.cmp(src, dst, shallow=False)


def _write_csv(path: Path, header: list[str], rows) -> None:
    """A CSV through a temporary and a rename, every cell through :func:`escape_cell`."""
    with atomic_write(path, newline="", tmp_name=_part(path.parent, path.name).name) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([escape_cell(c) for c in row] for row in rows)


def _assign_splits(n: int, split: Mapping[str, float], seed: int) -> list[str]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out = [""] * n
    names = list(split)
    start = 0
    for k, name in enumerate(names):
        count = n - start if k == len(names) - 1 else min(n - start, round(split[name] * n))
        for i in order[start : start + count]:
            out[i] = name
        start += count
    return out


def export_dataset(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    split: Mapping[str, float] | None = None,
    seed: int = 0,
    link: bool = False,
    store: Store | None = None,
    check_images: bool = True,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ExportReport:
    """Write the dataset's current (corrected) labels to a new folder; the source is not modified.

    Args:
        folder: The dataset folder.
        out: A new or empty folder outside ``folder``.
        split: Split name -> fraction (default train 0.9, test 0.1), shuffled with ``seed``.
        seed: Seed of the split shuffle.
        link: Hard-link instead of copying (falls back to a copy across devices).
        store: The dataset's store, for review states and the change log (optional).
        check_images: Decode every image and skip the unreadable ones.
        progress: Called every 200 files.
        should_stop: Polled while writing; stopping raises :class:`ExportError`.

    An export that did not finish (killed, stopped, a full disk) is finished by running it
    again into the same folder: files already complete and identical are kept.

    Raises:
        ExportError: ``out`` is the source, inside it, or not empty and not an unfinished
            export of ``folder`` (``refused``), the export was stopped or could not write a
            file (run it again to finish), or the written files do not match what was read.
        NotADirectoryError: ``folder`` is not a folder.
    """
    root = Path(folder).resolve()
    dest = Path(out).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    marker = _check_out(root, dest)
    split = dict(DEFAULT_SPLIT if split is None else split)
    states = store.states() if store is not None else {}
    origins = store.origins() if store is not None else {}
    report = ExportReport(dest)

    files = scan_folder(root)  # entries that must not be read come with their reason (Sample.error)
    report.read = len(files)
    keep: list[tuple[str, plates.ParsedName]] = []
    for i, f in enumerate(files):
        parsed = f.parsed
        state = states.get(f.rel, ReviewState.UNREVIEWED)
        reason = None
        if f.error is not None:
            reason = f"unreadable: {f.error}"
        elif state == ReviewState.UNREADABLE:
            reason = "unreadable (marked in review)"
        elif parsed.error:
            reason = f"invalid label: {parsed.error}"
        elif state == ReviewState.INVALID:
            reason = "marked invalid in review"
        elif check_images:
            from .images import ImageReadError, read_rgb  # cv2: imported only when images are checked

            try:
                read_rgb(f.file)
            except ImageReadError as e:
                reason = f"unreadable: {e.reason}"
            except Exception as e:  # a decoder crash on one file is a skip, not a failed export
                reason = f"unreadable: {type(e).__name__}: {e}"
        if reason:
            report.skipped.append((f.rel, reason))
        else:
            keep.append((f.rel, parsed))
        if progress is not None and i % 200 == 0:
            progress(Progress(i, len(files), message="checking images"))

    splits = _assign_splits(len(keep), split, seed)
    width = max(4, len(str(len(keep))))
    taken: set[str] = set()
    plan: list[tuple[str, str, str, plates.ParsedName]] = []  # (source rel, out rel, label, parsed)
    for k, ((rel, parsed), part) in enumerate(zip(keep, splits)):
        # the source's id only if printable: a tab or a newline in it would split the rec_gt line
        keep_id = parsed.scheme is plates.Scheme.DL1 and parsed.id and parsed.id.isprintable()
        ident = parsed.id if keep_id else f"{k:0{width}d}"
        src_name = rel.rsplit("/", 1)[-1]
        if _is_photo(parsed):  # the plate is cut out and written as a JPEG, whatever the photo's format
            src_name = str(PurePath(src_name).with_suffix(".jpg"))
        base = plates.ParsedName(src_name, plates.Scheme.DL1, parsed.label, ident)
        n = 0
        while True:
            name = plates.build_name(base, parsed.label, n)
            numbered = f"{k:0{width}d}"
            if len(name.encode("utf-8")) > MAX_NAME_BYTES and base.id != numbered:  # a long id and a suffix
                base = plates.ParsedName(src_name, plates.Scheme.DL1, parsed.label, numbered)
                continue
            if f"{part}/{name}".casefold() not in taken:
                break
            n = 2 if n == 0 else n + 1
        taken.add(f"{part}/{name}".casefold())
        plan.append((rel, f"{part}/{name}", parsed.label, parsed))

    unfinished = f"{dest} is incomplete: export to it again to finish"
    planned = [out_rel for _, out_rel, _, _ in plan]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # nothing started: there is nothing to finish
        raise ExportError(write_problem(dest, e), refused=True) from e
    with _finish_later(dest, unfinished):
        if marker is not None:
            _resume_clean(dest, marker, list(split), set(planned))
        _write_marker(dest, root, list(split), planned)  # before the first file: a rerun knows the folder is ours
        for name in split:
            (dest / name).mkdir(exist_ok=True)
    for i, (rel, out_rel, _, _) in enumerate(plan):
        if should_stop is not None and should_stop():
            raise ExportError(f"export stopped after {i} of {len(plan)} files; {unfinished}")
        src, dst = root / rel, dest / out_rel
        crop = _is_photo(plan[i][3])
        # complete from the unfinished run (a crop's final name appears only on a complete file)
        if marker is not None and (dst.is_file() if crop else _same_content(src, dst)):
            report.kept += 1
            continue
        tmp = _part(dst.parent, str(i))
        try:
            tmp.unlink(missing_ok=True)  # never write into a leftover: it may be a hard link to a source
            if crop:
                tmp.write_bytes(_plate_jpeg(src, plan[i][3]))
                report.cropped += 1
            elif link and _try_link(src, tmp):
                report.linked += 1
            else:
                shutil.copy2(src, tmp)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"{write_problem(dst, e, f'{printable(rel)} to {dst}')}; {unfinished}") from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            os.replace(tmp, dst)  # the final name appears only on a complete file
        except FileNotFoundError:  # the copy wrote nothing: _verify names the file
            pass
        if progress is not None and i % 200 == 0:
            progress(Progress(i, len(plan), message="writing"))

    by_split: dict[str, list[tuple[str, str]]] = {name: [] for name in split}
    for _rel, out_rel, label, _ in plan:
        by_split[out_rel.split("/", 1)[0]].append((out_rel, label))
    changes = []
    for rel, out_rel, label, _ in plan:
        orig = origins.get(rel)
        if orig is None:
            continue
        old = plates.parse_name(orig.rsplit("/", 1)[-1]).label
        if old != label:
            changes.append([out_rel, orig, old, label])
    report.changed = len(changes)
    with _finish_later(dest, unfinished):
        _write_csv(
            dest / "manifest.csv", ["file", "label", "source file", "review state"],
            ([out_rel, label, rel, states.get(rel, ReviewState.UNREVIEWED)] for rel, out_rel, label, _ in plan),
        )  # fmt: skip
        _write_csv(dest / "changes.csv", ["file", "name before review", "old label", "new label"], changes)
        _write_csv(dest / "skipped.csv", ["file", "reason"], report.skipped)
        for name, rows in by_split.items():
            path = dest / f"rec_gt_{name}.txt"
            with atomic_write(path, newline="\n", tmp_name=_part(dest, path.name).name) as lf:
                lf.writelines(f"{out_rel}\t{label}\n" for out_rel, label in rows)
            report.written[name] = len(rows)

    _verify(root, dest, plan, report)
    if hasattr(os, "sync"):
        os.sync()  # the files on disk before the marker goes: a power cut cannot leave a "finished" partial export
    (dest / MARKER).unlink()
    return report


@contextlib.contextmanager
def _finish_later(dest: Path, unfinished: str) -> Iterator[None]:
    """Report a failed write in ``dest`` (a full disk) as an :class:`ExportError` that says how to finish."""
    try:
        yield
    except WriteError as e:
        raise ExportError(f"{e}; {unfinished}") from e
    except OSError as e:
        raise ExportError(f"{write_problem(e.filename or dest, e)}; {unfinished}") from e


def _is_photo(parsed: plates.ParsedName) -> bool:
    """Whether the file is a CCPD full photograph whose name says where its plate is."""
    return parsed.scheme is plates.Scheme.CCPD and (parsed.box is not None or parsed.corners is not None)


def _plate_jpeg(src: Path, parsed: plates.ParsedName) -> bytes:
    """The plate of the photograph ``src``, rectified, as JPEG bytes (quality 95)."""
    from .ccpd import crop_plate
    from .images import ImageReadError, encode_jpeg, read_rgb

    try:
        crop = crop_plate(read_rgb(src), parsed)
    except ImageReadError as e:  # changed since the scan checked it: reported like a failed copy
        raise OSError(e.reason) from None
    return encode_jpeg(crop, f"the plate of {src.name}")


def _try_link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError:  # another device or no hard links: copy instead
        return False


def _verify(root: Path, dest: Path, plan: list, report: ExportReport) -> None:
    """Count what was written against what was read; fail loudly on any difference."""
    on_disk = {f.rel: f.size for f in scan_files(dest)}

    def complete(rel: str, out_rel: str, parsed: plates.ParsedName) -> bool:
        size = on_disk.get(out_rel, -1)
        return size > 0 if _is_photo(parsed) else size == os.stat(root / rel).st_size  # a crop: any non-empty JPEG

    missing = [f"{rel} -> {out_rel}" for rel, out_rel, _, parsed in plan if not complete(rel, out_rel, parsed)]
    extra = len(on_disk) - len(plan)
    if missing or extra or len(plan) + len(report.skipped) != report.read:
        head = "; ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ExportError(
            f"export to {dest} is incomplete: read {report.read}, exported {len(plan)}, skipped "
            f"{len(report.skipped)}, {len(missing)} missing or truncated ({head or 'none'}), "
            f"{max(extra, 0)} unexpected file(s)"
        )
