"""Crash-safe renames of label changes, with undo/redo persisted in the store.

Every rename goes through the store's journal: a batch of renames is committed as
``pending`` before any file is touched, the files are renamed, then the batch is
marked done in one transaction (with the review states, cached predictions and undo
history moved to the new names). A process killed at any point leaves pending entries
that :meth:`core.store.Store.reconcile` settles from the disk on the next open, so every
file ends with exactly its old or its new name and the store agrees.

Files are never overwritten: a rename is ``os.link(src, dst)`` + ``os.unlink(src)``
(the link fails if ``dst`` exists); where hard links are unsupported, ``os.rename``
after checking that ``dst`` does not exist. When the target name is taken (two crops
of one plate in the ``<PLATE>.jpg`` scheme, or a case-only difference on a
case-insensitive file system) the name gets a collision suffix via
``plates.build_name(parsed, label, n)`` with n = 2, 3, ...

Undo steps: one call of :func:`relabel` is one undo step, so a CSV of corrections is
undone as a whole (``undo --steps N`` undoes the last N actions); the GUI calls
:func:`relabel` once per edited sample, giving one step per edit.
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import plates
from .progress import Progress
from .results_csv import unescape_cell
from .review_state import ReviewState
from .safepaths import disk_problem, pair_problem, rel_problem
from .store import (
    CANCELLED,
    DONE,
    FAILED,
    HUMAN,
    LOST,
    JournalEntry,
    Store,
    StoreFullError,
    resolve_interrupted,
)

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 500  # renames per journal transaction: few fsyncs, little redone after a kill


@dataclass(frozen=True)
class Change:
    """A label change requested for one file.

    Attributes:
        rel: The file, relative to the dataset folder ('/' separators).
        label: The new plate (normalised and checked before use).
        expected: ``(size, mtime_ns)`` the caller saw; when the file differs now it is not renamed.
    """

    rel: str
    label: str
    expected: tuple[int, int] | None = None


@dataclass
class RelabelReport:
    """What a relabel/undo/redo did; each message names its file.

    Attributes:
        step: The undo step created (relabel) or worked on (undo/redo), or ``None``.
        renamed: ``(old rel, new rel)`` of each renamed file.
        skipped: ``(rel, why)`` for requests with nothing to do (already labelled so, stopped).
        failed: ``(rel, why)`` for requests that could not be applied (missing file, invalid label...).
        messages: Other notes (nothing to undo, reconciled renames).
    """

    step: int | None = None
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    restated: list[str] = field(default_factory=list)
    """Files whose review state changed without a rename (decisions, and their undo/redo)."""
    gone: list[str] = field(default_factory=list)
    """Files found missing or changed behind the app's back (among ``failed``; the store forgot them)."""

    def summary(self) -> str:
        return f"renamed={len(self.renamed)} skipped={len(self.skipped)} failed={len(self.failed)}"


def move_no_overwrite(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``, failing with ``FileExistsError`` instead of overwriting.

    ``os.rename`` silently replaces an existing target on POSIX, so the rename is a hard
    link (which refuses an existing target) followed by an unlink. File systems without
    hard links fall back to a rename after an existence check.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except (FileExistsError, FileNotFoundError):
        raise
    except (OSError, NotImplementedError):
        # No hard links here (FAT/exFAT, some network shares): check, then rename.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "target exists", str(dst)) from None
        os.rename(src, dst)
        return
    try:
        os.unlink(src)
    except OSError:
        os.unlink(dst)  # keep exactly one name
        raise


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    return (parent + "/" if parent else ""), name


def target_name(root: Path, rel: str, label: str, reserved: set[str] | None = None) -> str | None:
    """The free relative name ``rel`` gets for ``label``, or ``None`` when it already has it.

    Args:
        root: The dataset folder.
        rel: The current relative name.
        label: A valid plate.
        reserved: Casefolded names already promised to other files of the batch (updated).
    """
    prefix, name = _split(rel)
    parsed = plates.parse_name(name)
    reserved = set() if reserved is None else reserved
    n = 0
    while True:
        cand = plates.build_name(parsed, label, n)
        if cand == name:
            return None
        cand_rel = prefix + cand
        key = cand_rel.casefold()
        # lexists is also true for a case-only variant on case-insensitive file systems.
        if key not in reserved and not os.path.lexists(root / cand_rel):
            reserved.add(key)
            return cand_rel
        n = 2 if n == 0 else n + 1


def _free_variant(root: Path, rel: str, reserved: set[str]) -> str:
    """``rel`` if free, else a suffixed variant that the parser still reads the same way."""
    if rel.casefold() not in reserved and not os.path.lexists(root / rel):
        reserved.add(rel.casefold())
        return rel
    prefix, name = _split(rel)
    parsed = plates.parse_name(name)
    n = 2
    while True:
        if parsed.valid:
            cand = plates.build_name(parsed, parsed.label, n)
        else:  # an invalid original label cannot go through build_name
            stem, ext = os.path.splitext(name)
            cand = f"{stem}~{n}{ext}"
        cand_rel = prefix + cand
        if cand_rel.casefold() not in reserved and not os.path.lexists(root / cand_rel):
            reserved.add(cand_rel.casefold())
            return cand_rel
        n += 1


def _perform(root: Path, e: JournalEntry) -> tuple[JournalEntry, str, str | None]:
    src, dst = root / e.src, root / e.dst
    try:
        move_no_overwrite(src, dst)
        return e, DONE, None
    except FileNotFoundError:
        if not os.path.lexists(src):
            return e, LOST, f"{e.src}: file no longer exists (deleted or moved outside Plate Review); not renamed"
        return e, FAILED, f"{e.src}: cannot rename to {e.dst}: folder not found"
    except FileExistsError:
        return e, FAILED, f"{e.src}: {e.dst} appeared meanwhile; not renamed (nothing overwritten)"
    except OSError as ex:
        return e, FAILED, f"{e.src}: cannot rename to {e.dst}: {ex.strerror or ex}"


def _put_back(root: Path, outcomes: list[tuple[JournalEntry, str, str | None]]) -> list[JournalEntry]:
    """Give the files renamed in ``outcomes`` their names back (their journal entries, still pending,
    then read as never done: a later open settles them from the disk). Returns the entries whose file
    could not be put back: renamed they stay, and the next open records them done."""
    left = []
    for e, st, _msg in outcomes:
        if st == DONE:
            try:
                move_no_overwrite(root / e.dst, root / e.src)
            except OSError as ex:
                log.warning("%s: renamed to %s but not recorded, and not put back (%s)", e.src, e.dst, ex)
                left.append(e)
    return left


def _not_done(report: RelabelReport, entries: list[JournalEntry], full: StoreFullError) -> None:
    """Report ``entries`` as not renamed because the store is full (said once, in ``messages``)."""
    report.failed.extend((e.src, "not renamed: the store has no room to record it") for e in entries)
    report.messages.append(str(full))


def _end_step(store: Store, step: int) -> None:
    """:meth:`Store.end_step`, unless the store has no room to: the step then stays pending, and the
    next open settles it from its journal (as after a failed commit)."""
    try:
        store.end_step(step)
    except StoreFullError as e:
        log.warning("step %s left for the next open to settle: %s", step, e)


def _execute(
    store: Store,
    entries: list[JournalEntry],
    report: RelabelReport,
    chunk: int,
    progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> bool:
    """Rename ``entries`` through the journal, ``chunk`` per transaction, into ``report``. Returns
    whether it stopped because the store is full (the rest reported as not renamed)."""
    root = store.folder
    total = len(entries)
    for start in range(0, total, max(1, chunk)):
        if should_stop is not None and should_stop():
            report.skipped.extend((e.src, "stopped before renaming") for e in entries[start:])
            break
        try:
            journaled = store.journal_pending(entries[start : start + chunk])
        except StoreFullError as full:
            _not_done(report, entries[start:], full)
            return True
        outcomes: list[tuple[JournalEntry, str, str | None]] = []
        full = None
        try:
            for e in journaled:
                outcomes.append(_perform(root, e))
        finally:
            # Whatever interrupted us (an exception, not a kill), settle the rest from the disk.
            for e in journaled[len(outcomes) :]:
                st, msg = resolve_interrupted(root, e)
                outcomes.append((e, st, msg))
            try:
                store.journal_finish(outcomes)
            except StoreFullError as ex:  # renames the store cannot record are put back: not made
                left = _put_back(root, outcomes)
                full = ex
        if full is not None:
            report.renamed.extend((e.src, e.dst) for e in left)
            _not_done(report, [e for e in entries[start:] if e not in left], full)
            return True
        for e, st, msg in outcomes:
            if st == DONE:
                report.renamed.append((e.src, e.dst))
            elif st == CANCELLED:
                report.skipped.append((e.src, msg or "not renamed"))
            else:
                report.failed.append((e.src, msg or st))
                if st == LOST:
                    report.gone.append(e.src)
        if progress is not None:
            progress(Progress(min(start + chunk, total), total, message=f"renamed {len(report.renamed)}"))
    return False


def relabel(
    store: Store,
    changes: Iterable[Change | tuple[str, str]],
    *,
    state: str | None = ReviewState.FIXED,
    description: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    verify: Iterable[str] = (),
) -> RelabelReport:
    """Rename files to carry new labels, as one undo step, crash-safely.

    Args:
        store: The dataset's open store (its folder is the dataset).
        changes: ``Change`` objects or ``(rel, label)`` pairs.
        state: Review state the renamed files get (``fixed``); ``None`` keeps their state.
        description: Text of the undo step.
        chunk: Renames per journal transaction.
        progress: Called after each chunk.
        should_stop: Polled between chunks; what remains is reported as skipped.
        verify: Files to mark verified in the same undo step (their label is right as it is).

    Returns:
        The report; the files that vanished or changed behind the app's back are in
        ``failed`` and the store forgets their review state. A path that is not a plain
        image file inside the dataset folder (``..``, absolute, through a link, in
        ``.plate-review``) is refused and reported; nothing is touched for it.

        Renames the store has no room to record (a full disk) are not made (a rename already made
        is put back): they are in ``failed``, and ``messages`` says why once; those of earlier
        chunks stay made and recorded.

    Raises:
        core.store.StoreError: another process kept the folder busy too long.
        core.store.StoreFullError: the store has no room to begin the step (nothing was done).
    """
    with store.mutating():
        return _relabel(store, changes, state, description, chunk, progress, should_stop, verify)


def decide(store: Store, states: dict[str, str], description: str | None = None) -> RelabelReport:
    """Record review decisions without renames (verified, unreadable, ...) as one undo step.

    Like a rename, the step survives a restart: ``undo`` puts the old states back. Files that
    no longer exist, or paths outside the dataset, are reported in ``failed``.
    """
    with store.mutating():
        report = RelabelReport()
        sources = store.state_sources()
        decisions = []
        for rel, new in states.items():
            why = rel_problem(rel) or disk_problem(store.folder, rel, must_exist=True)
            if why:
                report.failed.append((rel, why if why == "file not found" else f"refused: {why}"))
                if why == "file not found":
                    report.gone.append(rel)
                continue
            old_state, old_source = sources.get(rel, (ReviewState.UNREVIEWED, None))
            if old_state != new:
                decisions.append((rel, str(old_state), old_source, str(new), HUMAN))
        if not decisions:
            return report
        step = store.begin_step(description or f"mark {len(decisions)} file(s) {next(iter(states.values()))}")
        try:
            report.restated = store.add_state_items(step, decisions)
            report.step = step
        finally:
            _end_step(store, step)
        return report


def _check_change(root, rel: str, label: str) -> tuple[str, str | None, str | None]:
    """The normalised label, why the file may not be touched (``None``: it may; a missing file is
    left for the plan to report), and why the label is invalid (``None``: it is a plate)."""
    why = rel_problem(rel) or disk_problem(root, rel)
    label = plates.normalize_label(label)
    return label, why if why and why != "file not found" else None, plates.label_error(label)


def _relabel(store, changes, state, description, chunk, progress, should_stop, verify=()) -> RelabelReport:
    root = store.folder
    report = RelabelReport()
    sources = store.state_sources()
    reserved: set[str] = set()
    seen: set[str] = set()
    plan: list[JournalEntry] = []
    forget: list[str] = []
    state_only: dict[str, str] = {}
    for ch in changes:
        ch = ch if isinstance(ch, Change) else Change(*ch)
        rel = ch.rel
        label, refused, err = _check_change(root, rel, ch.label)
        if refused:
            report.failed.append((rel, f"refused: {refused}; nothing touched"))
            continue
        if err:
            report.failed.append((rel, f"invalid label: {err}"))
            continue
        if rel in seen:
            report.failed.append((rel, "listed more than once; only the first change was applied"))
            continue
        seen.add(rel)
        try:
            st = os.lstat(root / rel)
        except FileNotFoundError:
            report.failed.append((rel, "file not found (deleted or moved outside Plate Review?)"))
            report.gone.append(rel)
            forget.append(rel)
            continue
        except OSError as ex:
            report.failed.append((rel, f"cannot read: {ex.strerror or ex}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            report.failed.append((rel, "not a regular file"))
            continue
        if ch.expected is not None and (st.st_size, st.st_mtime_ns) != tuple(ch.expected):
            report.failed.append((rel, "file changed on disk since it was loaded; not renamed, please check it again"))
            report.gone.append(rel)
            forget.append(rel)
            continue
        old_state, old_source = sources.get(rel, (None, None))
        dst = target_name(root, rel, label, reserved)
        if dst is None:
            report.skipped.append((rel, f"already labelled {label}"))
            if state is not None and old_state != state:
                state_only[rel] = state
            continue
        new_state, new_source = (state, HUMAN) if state is not None else (old_state, old_source)
        plan.append(
            JournalEntry("do", rel, dst, 0, len(plan), st.st_ino, st.st_size, st.st_mtime_ns,
                         old_state, old_source, new_state, new_source)
        )  # fmt: skip
    if forget:
        store.forget(forget, predictions=False)
    for rel in verify:
        why = rel_problem(rel) or disk_problem(root, rel, must_exist=True)
        if why:
            report.failed.append((rel, why if why == "file not found" else f"refused: {why}; nothing touched"))
            if why == "file not found":
                report.gone.append(rel)
        elif rel not in seen:
            state_only[rel] = ReviewState.VERIFIED
    decisions = []
    for rel, new in state_only.items():
        old_state, old_source = sources.get(rel, (ReviewState.UNREVIEWED, None))
        if old_state != new:
            decisions.append((rel, str(old_state), old_source, str(new), HUMAN))
    if not plan and not decisions:
        return report
    step = store.begin_step(description or f"relabel {len(plan)} file(s)")
    report.step = step
    plan = [JournalEntry(**{**e.__dict__, "step": step}) for e in plan]
    try:
        if decisions:  # decisions without a rename: items of the same undo step
            report.restated = store.add_state_items(step, decisions, first_seq=len(plan))
        if plan:
            _execute(store, plan, report, chunk, progress, should_stop)
    finally:
        _end_step(store, step)
    return report


def _revert(store: Store, steps: int, kind: str, progress, should_stop, chunk: int,
            only: int | None = None) -> RelabelReport:  # fmt: skip
    with store.mutating():
        return _revert_locked(store, steps, kind, progress, should_stop, chunk, only)


def _revert_locked(store: Store, steps: int, kind: str, progress, should_stop, chunk: int,
                   only: int | None) -> RelabelReport:  # fmt: skip
    root = store.folder
    report = RelabelReport()
    for _ in range(max(1, steps)):
        step = store.undo_target() if kind == "undo" else store.redo_target()
        if step is None:
            report.messages.append(f"nothing to {kind}")
            break
        if only is not None and step != only:
            info = store.step_info(step)
            report.messages.append(
                f"not undone: the last change to this folder is step {step} ({info.description if info else '?'}), "
                "made by another Plate Review process; undo it there, or close and reopen the folder to take "
                "over its history" if kind == "undo" else
                f"not redone: step {step} is not the one this window undid"
            )  # fmt: skip
            break
        report.step = step
        items = store.step_items(step)
        reserved: set[str] = set()
        entries: list[JournalEntry] = []
        for seq, a, b, applied, old_state, old_source, new_state, new_source in (
            reversed(items) if kind == "undo" else items
        ):
            if applied != (1 if kind == "undo" else 0) or a == b:  # a == b: a decision, no rename (below)
                continue
            src, want = (b, a) if kind == "undo" else (a, b)
            why = pair_problem(a, b) or disk_problem(root, src) or disk_problem(root, want)
            if why:
                report.failed.append((src, f"{kind} of step {step}: refused: {why}; nothing touched"))
                continue
            try:
                st = os.lstat(root / src)
            except OSError:
                st = None
            dst = _free_variant(root, want, reserved) if st is not None else want
            state, source = (old_state, old_source) if kind == "undo" else (new_state, new_source)
            entries.append(
                JournalEntry(kind, src, dst, step, seq, st.st_ino if st else None, st.st_size if st else None,
                             st.st_mtime_ns if st else None, None, None, state, source)
            )  # fmt: skip
        report.restated += store.revert_state_items(step, kind)
        if not entries:
            _end_step(store, step)
            if not report.restated:  # nothing left to do in this step (settled after an interruption): say so
                report.messages.append(f"step {step}: nothing left to {kind}")
            continue
        try:
            full = _execute(store, entries, report, chunk, progress, should_stop)
        finally:
            _end_step(store, step)
        if full or (should_stop is not None and should_stop()):
            break
    return report


def undo(
    store: Store,
    steps: int = 1,
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    only: int | None = None,
) -> RelabelReport:
    """Undo the last ``steps`` relabel actions: files get their previous names and review states back.

    When a previous name has been taken meanwhile, the file gets a collision-suffixed
    variant of it (nothing is overwritten). Survives restarts: the history is in the store.
    ``only``: undo only if the latest step is this one (a window undoes its own steps, not
    another process's); otherwise nothing is done and a message says whose step it is.
    """
    return _revert(store, steps, "undo", progress, should_stop, chunk, only)


def redo(
    store: Store,
    steps: int = 1,
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    only: int | None = None,
) -> RelabelReport:
    """Re-apply the last ``steps`` undone actions (a new relabel discards the redo stack).

    ``only``: redo only if the next step to redo is this one.
    """
    return _revert(store, steps, "redo", progress, should_stop, chunk, only)


# ------------------------------------------------------------------ CSV corrections


@dataclass(frozen=True)
class CsvRow:
    """One correction read from a CSV file (``line`` is its line number in the file)."""

    line: int
    file: str
    label: str


def _cell(rec: list[str], i: int) -> str:
    """Cell ``i`` of a CSV row: unescaped when written escaped by the app (a leading quote), else stripped."""
    raw = rec[i] if i < len(rec) else ""
    return unescape_cell(raw) if raw.startswith("'") else raw.strip()


def read_corrections(path: str | os.PathLike) -> list[CsvRow]:
    """Read a corrections CSV with header ``file,label`` (UTF-8, BOM tolerated).

    Cells the app escaped against spreadsheet formulas (``core.results_csv.escape_cell``) are
    read back as the names they stand for, so a predict CSV can be edited and fed back.

    Raises:
        ValueError: The file has no ``file`` and ``label`` columns, or is not UTF-8 text (the
            message names the line: a spreadsheet's "CSV (GBK)" or UTF-16 export, say).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise ValueError(
            f'{path}: not UTF-8 text ({"UTF-16" if utf16 else f"line {line}"}); save it as "CSV UTF-8" and try again'
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    cols = [h.strip().lower() for h in header or []]
    if "file" not in cols or "label" not in cols:
        raise ValueError(f"{path}: the first line must be the header 'file,label'")
    fi, li = cols.index("file"), cols.index("label")
    rows = []
    for rec in reader:
        if not any(c.strip() for c in rec):
            continue
        rows.append(CsvRow(reader.line_num, _cell(rec, fi), _cell(rec, li)))
    return rows


def relabel_from_csv(
    store: Store,
    rows: Sequence[CsvRow],
    *,
    description: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RelabelReport:
    """Apply CSV corrections as one undo step; idempotent, so a rerun completes a killed batch.

    Rows whose file already carries the label, or was already renamed to it (found through
    the store's history, or under the plain new name), are skipped. Messages start with
    ``line N:`` (the CSV line).
    """
    root = store.folder
    report = RelabelReport()
    current = {orig: cur for cur, orig in store.origins().items()}
    line_of: dict[str, int] = {}
    changes: list[Change] = []
    for row in rows:
        rel = row.file.replace("\\", "/").removeprefix("./")
        label, refused, err = _check_change(root, rel, row.label)
        if refused:
            report.failed.append((rel, f"line {row.line}: {rel}: refused: {refused}; nothing touched"))
            continue
        if err:
            report.failed.append((rel, f"line {row.line}: {rel}: invalid label {row.label!r}: {err}"))
            continue
        if rel in line_of:
            report.failed.append((rel, f"line {row.line}: {rel}: already listed on line {line_of[rel]}; ignored"))
            continue
        line_of[rel] = row.line
        if not rel or not os.path.lexists(root / rel):
            cur = current.get(rel)
            if cur and os.path.lexists(root / cur):
                cur_label = plates.parse_name(_split(cur)[1]).label
                if cur_label == label:
                    report.skipped.append((rel, f"line {row.line}: {rel}: already renamed to {cur}"))
                else:
                    report.failed.append(
                        (rel, f"line {row.line}: {rel}: was renamed to {cur} (label {cur_label}) since; not changed")
                    )
                continue
            if rel:
                prefix, name = _split(rel)
                plain = prefix + plates.build_name(plates.parse_name(name), label)
                if os.path.lexists(root / plain):
                    report.skipped.append((rel, f"line {row.line}: {rel}: already renamed to {plain}"))
                    continue
            report.failed.append((rel, f"line {row.line}: {rel}: file not found"))
            continue
        changes.append(Change(rel, label))
    sub = relabel(
        store,
        changes,
        description=description or f"relabel {len(changes)} file(s) from CSV",
        chunk=chunk,
        progress=progress,
        should_stop=should_stop,
    )

    def tag(rel: str, msg: str) -> str:
        return f"line {line_of[rel]}: {msg if msg.startswith(rel) else f'{rel}: {msg}'}" if rel in line_of else msg

    report.step = sub.step
    report.renamed = sub.renamed
    report.skipped += [(r, tag(r, m)) for r, m in sub.skipped]
    report.failed += [(r, tag(r, m)) for r, m in sub.failed]
    return report
