"""Export the corrected dataset to a new folder in the CCPD2019-dl1 layout.

``DIR/<split>/<id>-<PLATE>.<ext>`` (ids: the dl1 id when the source name has one, else
a zero-padded running index), plus, beside the splits:

* ``manifest.csv``   -- file, label, original name, review state (one row per exported file)
* ``changes.csv``    -- file, original name, old label, new label (labels changed in Plate Review)
* ``skipped.csv``    -- file, reason (unreadable and invalid samples: listed, never silently dropped)
* ``rec_gt_<split>.txt`` -- PaddleOCR recognition labels, ``<split>/<name><TAB><label>``

Files are copied (``shutil.copy2``) or hard-linked, never moved: the source folder is
not modified. After writing, the output is checked against what was read and an
:class:`ExportError` is raised if a single readable sample is missing.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import plates
from .errors import PlateReviewError
from .progress import Progress
from .store import INVALID, UNREADABLE, UNREVIEWED, Store, scan_files

DEFAULT_SPLIT = {"train": 0.9, "test": 0.1}


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
    """

    out: Path
    read: int = 0
    written: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    changed: int = 0
    linked: int = 0

    def lines(self) -> list[str]:
        """Human summary, last line ``exported=N skipped=N read=N``."""
        out = [f"{name}: {n} file(s) in {self.out / name}" for name, n in self.written.items()]
        out += [f"skipped {rel}: {why}" for rel, why in self.skipped]
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
        if not name.replace("_", "").isalnum() or name in out:
            raise ValueError(f"bad or repeated split name {name!r}")
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


def _check_out(root: Path, out: Path) -> None:
    if out == root or out.is_relative_to(root):
        raise ExportError(f"{out}: cannot export into the source folder {root}", refused=True)
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"{out}: exists and is not a folder", refused=True)
        if any(out.iterdir()):
            raise ExportError(f"{out}: folder is not empty; export needs a new or empty folder", refused=True)


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

    Raises:
        ExportError: ``out`` is the source, inside it, or not empty (``refused``), the export
            was stopped, or the written files do not match what was read.
        NotADirectoryError: ``folder`` is not a folder.
    """
    root = Path(folder).resolve()
    dest = Path(out).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    _check_out(root, dest)
    split = dict(DEFAULT_SPLIT if split is None else split)
    states = store.states() if store is not None else {}
    origins = store.origins() if store is not None else {}
    report = ExportReport(dest)

    files = scan_files(root)
    report.read = len(files)
    keep: list[tuple[str, plates.ParsedName]] = []
    for i, f in enumerate(files):
        parsed = plates.parse_name(f.rel.rsplit("/", 1)[-1])
        state = states.get(f.rel, UNREVIEWED)
        reason = None
        if state == UNREADABLE:
            reason = "unreadable (marked in review)"
        elif parsed.error:
            reason = f"invalid label: {parsed.error}"
        elif state == INVALID:
            reason = "marked invalid in review"
        elif check_images:
            from .images import ImageReadError, read_rgb  # cv2: imported only when images are checked

            try:
                read_rgb(root / f.rel)
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
        ident = parsed.id if parsed.scheme is plates.Scheme.DL1 and parsed.id else f"{k:0{width}d}"
        base = plates.ParsedName(rel.rsplit("/", 1)[-1], plates.Scheme.DL1, parsed.label, ident)
        n = 0
        while True:
            name = plates.build_name(base, parsed.label, n)
            if f"{part}/{name}".casefold() not in taken:
                break
            n = 2 if n == 0 else n + 1
        taken.add(f"{part}/{name}".casefold())
        plan.append((rel, f"{part}/{name}", parsed.label, parsed))

    dest.mkdir(parents=True, exist_ok=True)
    for name in split:
        (dest / name).mkdir(exist_ok=True)
    for i, (rel, out_rel, _, _) in enumerate(plan):
        if should_stop is not None and should_stop():
            raise ExportError(f"export stopped after {i} of {len(plan)} files; {dest} is incomplete")
        src, dst = root / rel, dest / out_rel
        if link:
            try:
                os.link(src, dst)
                report.linked += 1
            except OSError:  # another device or no hard links: copy instead
                shutil.copy2(src, dst)
        else:
            shutil.copy2(src, dst)
        if progress is not None and i % 200 == 0:
            progress(Progress(i, len(plan), message="writing"))

    by_split: dict[str, list[tuple[str, str]]] = {name: [] for name in split}
    with open(dest / "manifest.csv", "w", newline="", encoding="utf-8") as mf:
        w = csv.writer(mf)
        w.writerow(["file", "label", "original name", "review state"])
        for rel, out_rel, label, _ in plan:
            w.writerow([out_rel, label, rel, states.get(rel, UNREVIEWED)])
            by_split[out_rel.split("/", 1)[0]].append((out_rel, label))
    with open(dest / "changes.csv", "w", newline="", encoding="utf-8") as cf:
        w = csv.writer(cf)
        w.writerow(["file", "original name", "old label", "new label"])
        for rel, out_rel, label, _ in plan:
            orig = origins.get(rel)
            if orig is None:
                continue
            old = plates.parse_name(orig.rsplit("/", 1)[-1]).label
            if old != label:
                w.writerow([out_rel, orig, old, label])
                report.changed += 1
    with open(dest / "skipped.csv", "w", newline="", encoding="utf-8") as sf:
        w = csv.writer(sf)
        w.writerow(["file", "reason"])
        w.writerows(report.skipped)
    for name, rows in by_split.items():
        with open(dest / f"rec_gt_{name}.txt", "w", newline="\n", encoding="utf-8") as lf:
            lf.writelines(f"{out_rel}\t{label}\n" for out_rel, label in rows)
        report.written[name] = len(rows)

    _verify(root, dest, plan, report)
    return report


def _verify(root: Path, dest: Path, plan: list, report: ExportReport) -> None:
    """Count what was written against what was read; fail loudly on any difference."""
    on_disk = {f.rel: f.size for f in scan_files(dest)}
    missing = [
        f"{rel} -> {out_rel}" for rel, out_rel, _, _ in plan if on_disk.get(out_rel) != os.stat(root / rel).st_size
    ]
    extra = len(on_disk) - len(plan)
    if missing or extra or len(plan) + len(report.skipped) != report.read:
        head = "; ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ExportError(
            f"export to {dest} is incomplete: read {report.read}, exported {len(plan)}, skipped "
            f"{len(report.skipped)}, {len(missing)} missing or truncated ({head or 'none'}), "
            f"{max(extra, 0)} unexpected file(s)"
        )
