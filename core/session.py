"""One open dataset folder: store, prediction cache, review states, renames.

The GUI and the ``plate-review`` commands reach a dataset through :class:`ReviewSession`, which
delegates to ``core.store`` (SQLite cache, states, journal) and ``core.relabel``
(crash-safe journaled renames, undo/redo persisted). A rename is always
``core.relabel.relabel``.

Review-state changes that are not renames (verify, mark unreadable) are not undo steps
in the store, so the session keeps them on its own undo stack, interleaved with markers
for the store's rename steps; an empty stack falls back to the store's persisted history
(undo after a restart).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import plates
from . import relabel as _relabel
from . import store as _store
from .dataset import Sample
from .progress import Progress
from .records import PredictionResult
from .review_state import STORED_STATES, ReviewState

log = logging.getLogger(__name__)


class SessionError(Exception):
    """An action could not be done; the message says why (shown to the user, not a crash)."""


@dataclass
class EditOutcome:
    """What one edit/undo/redo changed.

    Attributes:
        renamed: ``(old rel, new rel)`` of each renamed file.
        states: ``{rel (current): state}`` for samples whose review state changed.
        missing: Files found missing (or changed behind the app's back).
        messages: Notes for the status bar (failures name their file).
        failed: Some of what was asked could not be done (``messages`` says what).
    """

    renamed: list[tuple[str, str]] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    failed: bool = False


class ReviewSession:
    """One open dataset folder.

    Args:
        folder: The dataset folder.
        use_store: Open the SQLite store (``False``: in-memory states, renames unavailable).
        lock_wait_s: How long an edit waits while another process changes the folder before it
            fails with ``core.store.StoreError`` (default: ``core.store.LOCK_TIMEOUT_S``).

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
    """

    def __init__(self, folder: str | os.PathLike, use_store: bool = True, lock_wait_s: float | None = None):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        self.store = _store.Store.open(self.folder) if use_store else None
        if self.store is not None and lock_wait_s is not None:
            self.store.lock_wait_s = lock_wait_s  # how long an edit waits for another process's
        self.notices: list[str] = []
        self.cache_problem: str | None = None
        """Why the latest :meth:`predict` could not cache (some of) its predictions (a full disk), or ``None``."""
        self._uncached: dict[str, tuple[int, int]] = {}  # rel -> identity read, for predictions not cached
        if self.store is not None:
            if self.store.notice:
                self.notices.append(self.store.notice)
            self.notices.extend(self.store.messages)
        self._states: dict[str, str] = {}
        # ("step", id): a step this session made in the store (renames and/or decisions); without a
        # store: ("state", rel, old, new) | ("states", [(rel, old, new)]) | ("batch", [(rel, old, new)], None)
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the store (idempotent)."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def can_rename(self) -> bool:
        return self.store is not None

    # ------------------------------------------------------------- scanning

    def scan(self) -> list[tuple[str, int, int]]:
        """``(rel, size, mtime_ns)`` of every image file (``core.store.FileStat`` tuples), sorted by rel."""
        return _store.scan_files(self.folder)

    def load(self, model_hash: str, files: list[_store.FileStat] | None = None) -> tuple[list, list[Sample]]:
        """Every sample with its cached prediction where still valid, and the samples left to predict.

        Args:
            model_hash: Identity of the reading (``Predictor.model_hash``, :func:`core.predict.reading_identity`); "" = no cache.
            files: From :meth:`scan` (scanned here when ``None``).

        Returns:
            ``(records, todo)``: one record per file in scan order (a cached prediction,
            or a record with only the label: not predicted yet), and the samples without a valid prediction.
        """
        files = self.scan() if files is None else files
        cached = self.cached_predictions(model_hash, files)
        records, todo = [], []
        for f in files:
            rec = cached.get(f.rel)
            if rec is None:
                rec = self._pending(f, todo)
            records.append(rec)
        return records, todo

    def _pending(self, f: _store.FileStat, todo: list[Sample]) -> PredictionResult:
        """The record of a file without a valid prediction (label only); its sample is appended to ``todo``.

        An entry the scan found unreadable keeps its reason (``Sample.error``): it is never read.
        """
        rel = f.rel
        parsed = plates.parse_name(rel.rsplit("/", 1)[-1])
        todo.append(Sample(str(self.folder / rel), rel, parsed, f.error))
        return PredictionResult(rel, parsed.label, parsed.error)

    def cached(self, model_hash: str) -> list:
        """The cached predictions of ``model_hash`` as last stored, by rel, without looking at the disk.

        What to show before the folder is scanned (a scan of 200,000 files takes about a
        second); files added, removed or changed since are found by :meth:`reconcile`.
        Empty without a store or a model.
        """
        if self.store is None or not model_hash:
            return []
        return self.store.cached_rows(model_hash)

    def reconcile(
        self, model_hash: str, records: list, files: list[_store.FileStat]
    ) -> tuple[list[str], list, list[Sample]]:
        """Check the records of :meth:`cached` against a scan (what :meth:`load` gives, as a difference).

        Cached predictions of files that no longer exist are dropped from the store.

        Args:
            model_hash: The model the records were cached for.
            records: From :meth:`cached`.
            files: From :meth:`scan`.

        Returns:
            ``(stale, pending, todo)``: rels of records whose file is gone or changed (not to
            be shown), a record with only the label per file without a valid prediction
            (new or changed, scan order), and their samples, to predict.
        """
        valid, stale = _store.split_cached(records, files)
        pending: list = []
        todo: list[Sample] = []
        for f in files:
            if f.rel not in valid:
                pending.append(self._pending(f, todo))
        if stale and self.store is not None:
            on_disk = {f[0] for f in files}
            gone = [rel for rel in stale if rel not in on_disk]
            if gone:
                self.store.forget_predictions(model_hash, gone)
        return stale, pending, todo

    def predict(
        self,
        samples: list[Sample],
        predictor,
        files: list[_store.FileStat] | None = None,
        batch_size: int = 128,
        workers: int | None = None,
        progress: Callable[[Progress], None] | None = None,
        on_batch: Callable[[list], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        save_every_s: float = 2.0,
    ) -> list:
        """Predict ``samples`` and cache the results as they come (a cancel keeps what is done).

        A store that cannot be written (a full disk) does not stop the reading: the predictions are
        returned all the same, and :attr:`cache_problem` says why some were not cached.

        Args:
            samples: Usually the ``todo`` of :meth:`load`.
            predictor: A loaded :class:`core.predict.Predictor`.
            files: ``(rel, size, mtime_ns)`` identities (from :meth:`scan`) the cache is keyed by.
            batch_size, workers, progress, on_batch, should_stop: As :func:`core.predict.predict_samples`.
            save_every_s: Write the cache at least this often while predicting.
        """
        from .predict import predict_samples  # torch is imported only when predicting

        idents = {f[0]: (f[1], f[2]) for f in files} if files is not None else None
        pending: list = []
        last_save = time.monotonic()
        self.cache_problem = None

        def save(results: list) -> None:
            try:
                self.save_predictions(predictor.model_hash, results, idents)
            except _store.StoreFullError as e:  # the reading goes on; these are read again next time
                log.info("predictions not cached: %s", e)
                self.cache_problem = str(e)
                if idents is not None:  # what was read, for known_identity
                    self._uncached.update((r.rel, idents[r.rel]) for r in results if r.rel in idents)
            else:
                if self._uncached:  # cached now: the store knows what was read
                    for r in results:
                        self._uncached.pop(r.rel, None)

        def batch_done(batch: list) -> None:
            nonlocal last_save
            pending.extend(batch)
            if len(pending) >= 2048 or time.monotonic() - last_save > save_every_s:
                save(list(pending))
                pending.clear()
                last_save = time.monotonic()
            if on_batch:
                on_batch(batch)

        try:
            return predict_samples(
                samples, predictor, batch_size=batch_size, workers=workers, progress=progress,
                on_batch=batch_done, should_stop=should_stop,
            )  # fmt: skip
        finally:
            save(pending)

    # ---------------------------------------------------------- predictions

    def known_identity(self, rel: str) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of ``rel`` when it was last read (the content the window shows), or ``None``:
        from the store, or from this session's reading where the store had no room to cache it."""
        if rel in self._uncached:
            return self._uncached[rel]
        return self.store.known_identity(rel) if self.store is not None else None

    def cached_predictions(self, model_hash: str, files: list[_store.FileStat]) -> dict:
        """``{rel: record}`` of cached predictions still valid for the files (empty without store)."""
        if self.store is None or not model_hash:
            return {}
        return self.store.cached_predictions(model_hash, files)

    def save_predictions(self, model_hash: str, results: list, files: dict[str, tuple[int, int]] | None) -> None:
        """Cache new predictions and record automatic states (unreadable, invalid) for them."""
        if self.store is None or not results:
            return
        self.store.put_predictions(model_hash, results, files)
        auto = {
            r.rel: ReviewState.UNREADABLE if r.error else ReviewState.INVALID
            for r in results
            if r.error or r.label_error
        }
        if auto:
            self.store.set_states(auto, source=_store.MODEL)

    # ---------------------------------------------------------- near duplicates

    @staticmethod
    def duplicate_groups(records) -> list:
        """Crops that are (nearly) the same picture, from the records' perceptual hashes.

        Returns:
            ``core.duplicates.DuplicateGroup`` per group of 2+ crops (labels as the records
            carry them); a group whose labels differ holds a label error for certain.
        """
        from .duplicates import near_duplicate_groups

        return near_duplicate_groups((r.rel, getattr(r, "image_hash", None), r.label) for r in records)

    def cached_duplicate_groups(self, model_hash: str) -> list:
        """:meth:`duplicate_groups` of the predictions cached for ``model_hash`` (read in one query;
        after a run every file's prediction is cached). Empty without a store."""
        if self.store is None:
            return []
        from .duplicates import near_duplicate_groups

        return near_duplicate_groups(self.store.image_hashes(model_hash))

    # ---------------------------------------------------------- cross-validation

    def save_crossval(self, results: dict, info: dict) -> None:
        """Keep k-fold out-of-sample predictions ``{rel: record}`` so they survive a restart."""
        if self.store is not None:
            self.store.put_crossval(results.values(), info)

    def crossval(self, files: list[_store.FileStat] | None = None) -> dict:
        """The stored cross-validated predictions still valid for the files (scanned when ``None``)."""
        if self.store is None:
            return {}
        return self.store.crossval(self.scan() if files is None else files)

    def crossval_info(self) -> dict | None:
        """What the stored cross-validated scores came from, or ``None``."""
        return self.store.crossval_info() if self.store is not None else None

    # --------------------------------------------------------------- states

    def states(self) -> dict[str, str]:
        """``{rel: state}`` of every sample not unreviewed."""
        if self.store is not None:
            return self.store.states()
        return dict(self._states)

    def get_state(self, rel: str) -> str:
        if self.store is not None:
            return self.store.get_state(rel)
        return self._states.get(rel, ReviewState.UNREVIEWED)

    def _write_state(self, rel: str, state: str) -> None:
        self._write_states({rel: state})

    def _write_states(self, states: dict[str, str]) -> None:
        if self.store is not None:
            self.store.set_states(states)
            return
        for rel, state in states.items():
            if state == ReviewState.UNREVIEWED:
                self._states.pop(rel, None)
            else:
                self._states[rel] = state

    def set_state(self, rel: str, state: str) -> EditOutcome:
        """Record a human review decision: an undo step in the store (undoable after a restart)."""
        if state not in STORED_STATES:
            raise ValueError(f"unknown review state {state!r}")
        if self.store is not None:
            return self._decide([rel], state)
        if not (self.folder / rel).exists():
            return EditOutcome(missing=[rel], messages=[f"{rel}: file not found (deleted or moved?)"])
        old = self.get_state(rel)
        self._write_state(rel, state)
        self._undo.append(("state", rel, old, state))
        self._redo.clear()
        return EditOutcome(states={rel: state})

    def set_states(self, rels: list[str], state: str) -> EditOutcome:
        """One review decision for many samples (a selection): one undo entry.

        Files that no longer exist are reported and left out.
        """
        if state not in STORED_STATES:
            raise ValueError(f"unknown review state {state!r}")
        if self.store is not None:
            return self._decide(rels, state)
        out = EditOutcome()
        changes = self._state_changes(rels, state, out)
        if changes:
            self._write_states({rel: new for rel, _old, new in changes})
            self._undo.append(("states", changes))
            self._redo.clear()
            out.states.update({rel: new for rel, _old, new in changes})
        return out

    def _decide(self, rels: list[str], state: str) -> EditOutcome:
        rep = _relabel.decide(self.store, dict.fromkeys(rels, state),
                              description=f"{rels[0]}: {state}" if len(rels) == 1 else f"{len(rels)} files: {state}")  # fmt: skip
        if rep.step is not None:
            self._undo.append(("step", rep.step))
            self._redo.clear()
        return self._outcome(rep)

    def _state_changes(self, rels: list[str], state: str, out: EditOutcome) -> list[tuple[str, str, str]]:
        changes = []
        for rel in rels:
            if not (self.folder / rel).exists():
                out.missing.append(rel)
                out.messages.append(f"{rel}: file not found (deleted or moved?)")
                continue
            changes.append((rel, self.get_state(rel), state))
        return changes

    def accept_predictions(self, items: list[tuple[str, str, str]]) -> EditOutcome:
        """Accept the model's reading for many samples at once, as one undo step.

        Args:
            items: ``(rel, label, prediction)`` per sample. A sample whose label already is its
                prediction is marked verified; the others are renamed to carry the prediction
                (state fixed). Samples without a valid prediction are reported and left out.

        Raises:
            SessionError: renames are needed and unavailable.
        """
        out = EditOutcome()
        same, renames = [], []
        for rel, label, pred in items:
            if not pred or plates.label_error(pred):
                out.messages.append(f"{rel}: no valid prediction to accept")
            elif pred == label:
                same.append(rel)
            else:
                renames.append((rel, pred))
        if renames and not self.can_rename:
            raise SessionError("renaming needs the dataset store (core.store / core.relabel), which is unavailable")
        if self.store is not None:  # renames and decisions: one undo step in the store
            changes_ = [_relabel.Change(rel, pred, self.known_identity(rel)) for rel, pred in renames]
            rep = _relabel.relabel(self.store, changes_, description=f"accept {len(items)} predictions", verify=same)
            sub = self._outcome(rep)
            out.renamed, out.missing = sub.renamed, sub.missing
            out.states.update(sub.states)
            out.messages += sub.messages
            if rep.step is not None:
                self._undo.append(("step", rep.step))
                self._redo.clear()
            return out
        changes = self._state_changes(same, ReviewState.VERIFIED, out)
        if changes:
            self._write_states({rel: new for rel, _old, new in changes})
            out.states.update({rel: new for rel, _old, new in changes})
        step = None
        if renames:
            changes_ = [_relabel.Change(rel, pred, self.known_identity(rel)) for rel, pred in renames]
            rep = _relabel.relabel(self.store, changes_, description=f"accept {len(renames)} predictions")
            sub = self._outcome(rep)
            out.renamed += sub.renamed
            out.states.update(sub.states)
            out.missing += sub.missing
            out.messages += sub.messages
            step = rep.step
        if changes or step is not None:
            self._undo.append(("batch", changes, step))
            self._redo.clear()
        return out

    # -------------------------------------------------------------- renames

    def relabel(self, rel: str, label: str) -> EditOutcome:
        """Give one file a new label (renamed through the journal; state ``fixed``).

        Raises:
            SessionError: renames are unavailable or the label is invalid.
        """
        label = plates.normalize_label(label)
        err = plates.label_error(label)
        if err:
            raise SessionError(err)
        if not self.can_rename:
            raise SessionError("renaming needs the dataset store (core.store / core.relabel), which is unavailable")
        expected = self.known_identity(rel)  # what the window shows was read from this content
        rep = _relabel.relabel(self.store, [_relabel.Change(rel, label, expected)], description=f"{rel} -> {label}")
        out = self._outcome(rep)
        if rep.step is not None:  # a rename, or (same label) the decision alone
            self._undo.append(("step", rep.step))
            self._redo.clear()
        return out

    def _outcome(self, rep) -> EditOutcome:
        out = EditOutcome()
        for old, new in rep.renamed:
            out.renamed.append((old, new))
            out.states[new] = self.get_state(new)
        for rel, _why in rep.skipped:
            out.states[rel] = self.get_state(rel)
        for rel in rep.restated:
            out.states[rel] = self.get_state(rel)
        out.missing.extend(rep.gone)
        out.failed = bool(rep.failed)
        for rel, why in rep.failed:
            out.messages.append(f"{rel}: {why}")
        out.messages.extend(rep.messages)
        return out

    # ------------------------------------------------------------ undo/redo

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or (self.store is not None and self.store.undo_target() is not None)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) or (self.store is not None and self.store.redo_target() is not None)

    def undo(self) -> EditOutcome:
        """Undo the latest action (a state change or a rename step).

        A rename step is undone only if it is still the folder's latest: when another process
        renamed files since, nothing is done and the message says whose step that is.
        """
        return self._revert("undo")

    def redo(self) -> EditOutcome:
        """Redo the latest undone action."""
        return self._revert("redo")

    def _revert(self, kind: str) -> EditOutcome:
        undo = kind == "undo"
        stack, other = (self._undo, self._redo) if undo else (self._redo, self._undo)
        from_stack = bool(stack)
        entry = stack.pop() if stack else ("step", None)  # after a restart: the store's history
        if entry[0] == "state":
            _, rel, old, new = entry
            self._write_state(rel, old if undo else new)
            other.append(entry)
            return EditOutcome(states={rel: old if undo else new})
        step = entry[1] if entry[0] == "step" else entry[2] if entry[0] == "batch" else None
        out = EditOutcome()
        if entry[0] == "step" or step is not None:
            if not self.can_rename:
                return EditOutcome(messages=[f"nothing to {kind}"])
            fn = _relabel.undo if undo else _relabel.redo
            rep = fn(self.store, only=step)
            if rep.step is None:  # refused (another process's step) or nothing to do: keep the entry
                if from_stack:
                    stack.append(entry)
                return self._outcome(rep)
            out = self._outcome(rep)
            step = rep.step
        if entry[0] in ("states", "batch"):
            changes = entry[1]
            states = {rel: (old if undo else new) for rel, old, new in changes}
            self._write_states(states)
            out.states.update(states)
        other.append(("step", step) if entry[0] == "step" else entry)
        return out
