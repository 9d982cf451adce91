"""The per-dataset store: prediction cache, review states, rename journal and undo history.

One SQLite database (stdlib ``sqlite3``, WAL mode) per dataset folder, by default
``<dataset>/.plate-review/store.sqlite``. When the dataset folder is read-only the
store lives under ``platformdirs.user_data_dir("plate-review")/datasets/<hash of the
absolute dataset path>/`` and :attr:`Store.notice` says so (once, for the CLI/GUI to show).

Tables:

* ``predictions`` -- the prediction cache, keyed by reader identity (``Predictor.model_hash``)
  and file identity (relative path, size, mtime_ns). Probabilities are float64 blobs.
* ``states`` -- the review state of each sample (no row = unreviewed), with who set it
  (``human`` or ``model``) so a model re-run never overrides a human decision.
* ``journal`` -- every rename, written (committed) as ``pending`` before the file is
  touched and marked ``done``/``cancelled``/``failed``/``lost`` after. Entries left
  ``pending`` by a killed process are reconciled from the disk by :meth:`Store.open`.
* ``steps`` / ``step_items`` -- the undo/redo history: one step per relabel action,
  one item per renamed file (``a_rel`` = name before, ``b_rel`` = name after).

The file operations themselves live in :mod:`core.relabel`; this module never imports
torch or Qt, so it is cheap to import from the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from .dataset import STORE_DIRNAME, walk_images
from .errors import PlateReviewError
from .files import NO_ROOM, free_bytes, probe_folder, room_left
from .gc_pause import gc_paused
from .label_score import label_score
from .records import PredictionResult, relabelled
from .review_state import STORED_STATES, ReviewState
from .safepaths import disk_problem, pair_problem

_OWNER_CHARS = frozenset("0123456789abcdef")
#: How long a second process waits for another one's relabel/undo/redo on the same folder.
LOCK_TIMEOUT_S = 30.0


class StoreError(PlateReviewError):
    """The dataset's store cannot be used; the message names it and the way out."""


class StoreFullError(StoreError):
    """The store could not be written: the disk that holds it is full. What was being written was
    not written (its transaction was rolled back); everything written before is intact."""


#: Below this many free bytes on the store's disk, a store that SQLite cannot open or write is
#: taken for a full disk, not a damaged store (SQLite reports some writes to a full disk, such as
#: its shared-memory file's, as I/O errors).
LOW_SPACE_BYTES = 1 << 20


def _no_room(db: Path, e: sqlite3.Error) -> bool:
    """Whether ``e``, raised by the store ``db``, comes from a full disk: SQLite says so, or it is an
    I/O or cannot-open error while the disk has less than :data:`LOW_SPACE_BYTES` free."""
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+; the messages otherwise
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(e):
        return True
    io_error = (code is not None and code & 0xFF in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)) or any(
        m in str(e) for m in ("disk I/O error", "unable to open database file")
    )
    free = free_bytes(db.parent) if io_error else None
    return free is not None and free < LOW_SPACE_BYTES


def _full_message(db: Path, doing: str) -> str:
    """``DB: cannot DOING: the disk is full (N free on its disk). ...``: what happened and the way out."""
    free = free_bytes(db.parent)
    why = "the disk is full" if free is None or free < LOW_SPACE_BYTES else "the store cannot grow (a size limit?)"
    return (f"{db}: cannot {doing}: {why}{room_left(db.parent)}. Nothing in the store was lost or changed: "
            "free some space and try again.")  # fmt: skip


STORE_FILENAME = "store.sqlite"
#: The model key under which cross-validated (out-of-fold) predictions are kept in ``predictions``:
#: they follow renames and are checked against the files like any cached prediction.
CROSSVAL_MODEL = "crossval"
SCHEMA_VERSION = 1

HUMAN = "human"
MODEL = "model"

# Journal statuses.
PENDING = "pending"  # journaled, the file may or may not have been renamed yet
DONE = "done"  # the file has its new name
CANCELLED = "cancelled"  # never performed: the file kept its old name
FAILED = "failed"  # the file operation raised (message says why); old name kept
LOST = "lost"  # the file vanished behind the app's back

_OWNER_LOCKS: dict[str, Any] = {}  # owner token -> open, locked file object (this process)

try:  # POSIX
    import fcntl

    def _try_lock(f) -> bool:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(f) -> bool:
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False


class FileStat(NamedTuple):
    """The identity of a file for the prediction cache (``error``: why it must not be read, see
    ``core.dataset.walk_images``; then size is -1)."""

    rel: str
    size: int
    mtime_ns: int
    error: str | None = None


#: The prediction record the cache stores (one record type for the whole app).
PredictionRecord = PredictionResult

_FIELDS = tuple(f for f in PredictionResult.__dataclass_fields__)


class CachedPrediction(tuple):
    """A prediction read back from the cache: the attributes of :class:`PredictionRecord`.

    A tuple of the raw database row (``rel, size, mtime_ns, label, label_error,
    prediction, probs blob, runner_up, runner_up_probs blob, confidence, cer, correct,
    error, label_probs blob, label_score, image_hash, zoomed, negative``), made without a Python ``__init__``; the
    probability lists are decoded from their blobs each time they are read (7 floats,
    ~1 us), which only the inspector does, for one sample at a time.
    """

    __slots__ = ()

    @classmethod
    def _make(cls, row: tuple) -> CachedPrediction:
        return tuple.__new__(cls, row)

    rel = property(itemgetter(0), doc="Path relative to the dataset folder.")
    size = property(itemgetter(1), doc="File size when predicted.")
    mtime_ns = property(itemgetter(2), doc="File mtime (ns) when predicted.")
    label = property(itemgetter(3))
    label_error = property(itemgetter(4))
    prediction = property(itemgetter(5))
    runner_up = property(itemgetter(7))
    confidence = property(itemgetter(9))
    cer = property(itemgetter(10))
    error = property(itemgetter(12))
    label_score = property(itemgetter(14), doc="How likely the label is right (core.label_score), or None.")
    image_hash = property(itemgetter(15), doc="Perceptual hash of the crop (core.duplicates), or None.")
    zoomed = property(lambda self: bool(self[16]), doc="The reading shown is of the crop zoomed in (core.records).")
    negative = property(lambda self: bool(self[17]), doc="The reading is of the crop's negative (core.records).")
    # A row is one reader's reading: a second opinion is added to records after they are read back
    # (core.label_score.with_second_opinion), never stored in the row.
    second_prediction = property(lambda self: "", doc="Always '': the row keeps no second opinion.")
    second_label_score = property(lambda self: None, doc="Always None: the row keeps no second opinion.")

    @property
    def label_probs(self) -> list[float]:
        return _blob_to_floats(self[13])

    @property
    def suspect(self) -> int | None:
        """Position of the label's most suspicious character, or ``None``."""
        return label_score(self.label_probs or None)[1]

    @property
    def probs(self) -> list[float]:
        return _blob_to_floats(self[6])

    @property
    def runner_up_probs(self) -> list[float]:
        return _blob_to_floats(self[8])

    @property
    def correct(self) -> bool | None:
        c = self[11]
        return None if c is None else bool(c)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def to_record(self) -> PredictionResult:
        """A mutable :class:`core.records.PredictionResult` copy."""
        return PredictionResult(**self.as_dict())

    def __repr__(self) -> str:
        return f"CachedPrediction(rel={self.rel!r}, label={self.label!r}, prediction={self.prediction!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (CachedPrediction, PredictionResult)):
            return self.as_dict() == other.as_dict()
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]  # equality is by field values


@dataclass(frozen=True)
class StepInfo:
    """One entry of the undo history."""

    id: int
    description: str
    created: float
    status: str  # applied | undone | partial | discarded | pending
    items: int


@dataclass(frozen=True)
class JournalEntry:
    """A rename to journal before doing it (see :mod:`core.relabel`)."""

    kind: str  # do | undo | redo
    src: str
    dst: str
    step: int
    seq: int
    ino: int | None = None
    size: int | None = None
    mtime_ns: int | None = None
    old_state: str | None = None
    old_source: str | None = None
    new_state: str | None = None
    new_source: str | None = None
    id: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions(
    model TEXT NOT NULL, rel TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    label TEXT, label_error TEXT, prediction TEXT, probs BLOB, runner_up TEXT, runner_up_probs BLOB,
    confidence REAL, cer REAL, correct INTEGER, error TEXT, updated REAL, label_probs BLOB, label_score REAL, image_hash INTEGER,
    zoomed INTEGER, negative INTEGER, PRIMARY KEY(model, rel)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_rel ON predictions(rel);
CREATE TABLE IF NOT EXISTS states(
    rel TEXT PRIMARY KEY, state TEXT NOT NULL, source TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, updated REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps(
    id INTEGER PRIMARY KEY, description TEXT, created REAL, status TEXT NOT NULL, owner TEXT);
CREATE TABLE IF NOT EXISTS step_items(
    step INTEGER NOT NULL, seq INTEGER NOT NULL, a_rel TEXT NOT NULL, b_rel TEXT NOT NULL,
    applied INTEGER NOT NULL, old_state TEXT, old_source TEXT, new_state TEXT, new_source TEXT,
    PRIMARY KEY(step, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, step INTEGER, seq INTEGER,
    src TEXT NOT NULL, dst TEXT NOT NULL, ino INTEGER, size INTEGER, mtime_ns INTEGER,
    old_state TEXT, old_source TEXT, new_state TEXT, new_source TEXT,
    status TEXT NOT NULL, message TEXT, owner TEXT, created REAL, finished REAL);
CREATE INDEX IF NOT EXISTS journal_pending ON journal(status) WHERE status = 'pending';
"""

_PRED_COLS = (
    "rel, size, mtime_ns, label, label_error, prediction, probs, runner_up, runner_up_probs, "
    "confidence, cer, correct, error, label_probs, label_score, image_hash, zoomed, negative"
)


def _floats_to_blob(values: list[float] | None) -> bytes:
    if values is None or len(values) == 0:  # may be a numpy array: no truth test
        return b""
    return struct.pack(f"<{len(values)}d", *(float(v) for v in values))


_STRUCTS: dict[int, struct.Struct] = {}


def _blob_to_floats(blob: bytes | None) -> list[float]:
    # A cached struct.Struct is ~2x faster than array.frombytes for 7 values (200k rows per reopen).
    if not blob:
        return []
    st = _STRUCTS.get(len(blob))
    if st is None:
        st = _STRUCTS[len(blob)] = struct.Struct(f"<{len(blob) // 8}d")
    return list(st.unpack(blob))


def _field(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


def scan_files(folder: str | os.PathLike, recursive: bool = True) -> list[FileStat]:
    """The image files of a dataset folder with their identity, sorted by relative path.

    The same walk as ``core.dataset.scan_folder`` (:func:`core.dataset.walk_images`), without
    parsing names and with ``stat``: the fast path for cache lookups. An entry that must not be
    read (a link out of the folder, a name that is not UTF-8...) is listed with size -1 and
    its reason in ``error``.

    Raises:
        NotADirectoryError: ``folder`` does not exist or is not a folder.
    """
    out: list[FileStat] = []
    make = FileStat._make
    with gc_paused():  # 200k new tuples would trigger many full collections over a large heap
        for rel, _path, _name, error, entry in walk_images(folder, recursive):
            if error is None:
                try:
                    st = entry.stat()
                except OSError:  # vanished between listing and stat
                    continue
                out.append(make((rel, st.st_size, st.st_mtime_ns, None)))
            else:
                out.append(make((rel, -1, 0, error)))
        out.sort()
    return out


def split_cached(
    records: Iterable[CachedPrediction], files: Iterable[tuple[str, int, int]]
) -> tuple[dict[str, CachedPrediction], list[str]]:
    """Check cached predictions against the files on disk (the one place the cache key is compared).

    Args:
        records: From :meth:`Store.cached_rows`.
        files: ``(rel, size, mtime_ns)`` of the current files, e.g. :func:`scan_files`.

    Returns:
        ``({rel: record}, stale)``: the records whose file still has the identity they were
        cached for, and the rels of the others (file gone, or its size/mtime changed).
    """
    get = {f[0]: f for f in files}.get
    valid: dict[str, CachedPrediction] = {}
    stale: list[str] = []
    with gc_paused():
        for r in records:
            f = get(r[0])
            if f is not None and f[1] == r[1] and f[2] == r[2]:
                valid[r[0]] = r
            else:
                stale.append(r[0])
    return valid, stale


def _set_aside(path: Path, why: str) -> str:
    """Rename ``path`` (a file, folder or link of the store) aside; returns the notice for the user."""
    aside = path.with_name(f"{path.name}.quarantined-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    os.rename(path, aside)  # a rename within the folder: a link is moved, never followed
    return f"{path}: {why}; set aside as {aside.name} and a new store started (your images are untouched)"


def _check_store_dir(d: Path) -> list[str]:
    """Set aside what a stranger's dataset could plant in its store folder: links instead of files.

    ``.plate-review`` itself, the database and its WAL/SHM files and the ``owners`` folder must
    be what they claim (no symbolic link that would make the store write elsewhere).
    """
    notices = []
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return notices
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return [_set_aside(d, "the store folder is a link or not a folder")]
    for name, want_dir in ((STORE_FILENAME, False), (STORE_FILENAME + "-wal", False),
                           (STORE_FILENAME + "-shm", False), ("owners", True)):  # fmt: skip
        p = d / name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode) != want_dir:
            notices.append(_set_aside(p, "a link or the wrong kind of file where the store expects its own"))
    return notices


def repair_store(folder: str | os.PathLike) -> list[str]:
    """Set the store of ``folder`` aside (database, WAL and SHM files renamed, kept for inspection).

    The next :meth:`Store.open` starts a new one. Returns a line per file set aside.
    """
    d, _notice = store_location(Path(folder).resolve())
    lines = []
    for name in (STORE_FILENAME, STORE_FILENAME + "-wal", STORE_FILENAME + "-shm"):
        p = d / name
        if os.path.lexists(p):
            lines.append(_set_aside(p, "set aside by repair"))
    return lines


def _dataset_writable(folder: Path) -> bool:
    """Whether the store can live inside the dataset (tries to create ``.plate-review``).

    A separate function so tests can simulate a read-only dataset (root ignores chmod).
    """
    try:
        probe_folder(folder / STORE_DIRNAME)
        return True
    except OSError as e:
        return e.errno in NO_ROOM  # a full disk is not a read-only one: the store stays in the dataset


def _user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("plate-review", appauthor=False))


def store_location(folder: str | os.PathLike) -> tuple[Path, str | None]:
    """Where the store of ``folder`` lives, and a notice when it is not inside the dataset.

    Returns:
        ``(directory, notice)``; ``notice`` is ``None`` for the default location.
    """
    root = Path(folder).resolve()
    notices = _check_store_dir(root / STORE_DIRNAME) if os.access(root, os.W_OK) else []
    if _dataset_writable(root):
        return root / STORE_DIRNAME, "\n".join(notices) or None
    key = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:16]
    d = _user_data_dir() / "datasets" / f"{root.name[:40]}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    notice = f"{root} is read-only: the review store is kept in {d}"
    return d, notice


class Store:
    """The SQLite store of one dataset folder. Open with :meth:`Store.open`; thread-safe.

    Attributes:
        folder: The dataset folder (absolute).
        path: The database file.
        notice: A message to show once when the store is not inside the dataset, else ``None``.
        messages: What reconciling interrupted renames found (one line each, naming the file).
    """

    def __init__(self, folder: Path, db_path: Path, notice: str | None = None):
        self.folder = folder
        self.path = db_path
        self.notice = notice
        self.messages: list[str] = []
        self.owner = uuid.uuid4().hex
        self._lock = threading.RLock()
        self._mutating = 0
        #: How long a change waits for another process's (:meth:`mutating`): a batch tool can wait,
        #: a window should say at once that the folder is busy.
        self.lock_wait_s = LOCK_TIMEOUT_S
        self.conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed 'pending' journal entry must survive a power cut before the rename.
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        self._migrate()
        self.conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?), ('dataset', ?)",
            (str(SCHEMA_VERSION), str(folder)),
        )
        self._hold_owner_lock()

    def _migrate(self) -> None:
        """Bring a store written by an earlier version up to this schema (idempotent).

        Stores from before label scores get the two columns, filled from each row's two best
        characters per position (:func:`core.records.relabelled`), so no prediction is redone;
        their rows have no image hash (no near-duplicate check) until predicted again, and read as not
        zoomed or as negatives (stores of those readings have another model key: their rows are read again).
        """
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(predictions)")}
        if "image_hash" not in cols:  # rows cached before hashes: none until predicted again
            with self._tx() as c:
                c.execute("ALTER TABLE predictions ADD COLUMN image_hash INTEGER")
        if "zoomed" not in cols:  # rows cached before zoomed reads: read as framed
            with self._tx() as c:
                c.execute("ALTER TABLE predictions ADD COLUMN zoomed INTEGER")
        if "negative" not in cols:  # rows cached before negatives: read as they are
            with self._tx() as c:
                c.execute("ALTER TABLE predictions ADD COLUMN negative INTEGER")
        if "label_score" in cols:
            return
        with self._tx() as c:
            c.execute("ALTER TABLE predictions ADD COLUMN label_probs BLOB")
            c.execute("ALTER TABLE predictions ADD COLUMN label_score REAL")
            rows = c.execute("SELECT model, rel, prediction, probs, runner_up, runner_up_probs FROM predictions "
                             "WHERE prediction != ''").fetchall()  # fmt: skip
            updates = []
            for model, rel, pred, probs, runner, rprobs in rows:
                new = relabelled(
                    PredictionResult(
                        rel,
                        "",
                        prediction=pred,
                        probs=_blob_to_floats(probs),
                        runner_up=runner or "",
                        runner_up_probs=_blob_to_floats(rprobs),
                    ),
                    rel,
                )
                updates.append((_floats_to_blob(new["label_probs"]), new["label_score"], model, rel))
            c.executemany(
                "UPDATE predictions SET label_probs = ?, label_score = ? WHERE model = ? AND rel = ?", updates
            )

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, folder: str | os.PathLike, reconcile: bool = True) -> Store:
        """Open (creating if needed) the store of a dataset folder and reconcile interrupted renames.

        Args:
            folder: The dataset folder.
            reconcile: Finish renames a killed process left pending (default).

        A store that names paths outside the dataset (in its journal or undo history: a
        crafted or damaged store) is set aside, never replayed, and a new one started;
        :attr:`notice` says so. An empty (0-byte) store is set aside the same way.

        Raises:
            NotADirectoryError: ``folder`` is not a folder.
            StoreError: the database is damaged (the message gives the way out:
                ``plate-review repair FOLDER``).
        """
        root = Path(folder).resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        d, notice = store_location(root)
        db = d / STORE_FILENAME
        notices = [notice] if notice else []
        if db.exists() and db.stat().st_size == 0 and not Path(f"{db}-wal").exists():
            notices.append(_set_aside(db, "the store was empty (0 bytes: cut short by a crash or a full disk?); "
                                          "its undo history is lost"))  # fmt: skip
        try:
            store = cls(root, db, "\n".join(notices) or None)
            problem = store.forged()
        except sqlite3.DatabaseError as e:
            if _no_room(db, e):  # not damaged: nothing to repair, nothing to set aside
                raise StoreFullError(_full_message(db, "open the store")) from None
            raise StoreError(
                f"{db}: the store is damaged ({e}). Run `plate-review repair {root}` to set it aside and start a "
                "new one: your images are untouched, the undo history and review states are lost."
            ) from None
        if problem:
            store.close()
            notices.append(_set_aside(db, f"the store names a path it must not ({problem}): never replayed"))
            for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
                if extra.exists():
                    _set_aside(extra, "belongs to the store set aside")
            store = cls(root, db, "\n".join(notices))
        if reconcile:
            store.reconcile()
        return store

    def forged(self) -> str | None:
        """The first entry of the journal or undo history that names a path outside the dataset
        (or a forged owner), or ``None`` when every entry is one this app could have written."""
        with self._lock:
            for src, dst, owner in self.conn.execute("SELECT src, dst, owner FROM journal WHERE status = 'pending'"):
                why = pair_problem(src, dst)
                if why:
                    return f"journal: {why}"
                if owner is not None and not _owner_token_ok(owner):
                    return f"journal: owner {owner!r} is not a token of this app"
            for step, a, b in self.conn.execute("SELECT step, a_rel, b_rel FROM step_items"):
                why = pair_problem(a, b)
                if why:
                    return f"undo step {step}: {why}"
        return None

    def close(self) -> None:
        """Checkpoint and close the database; release this instance's owner lock."""
        with self._lock:
            if self.conn is None:
                return
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
            f = _OWNER_LOCKS.pop(self.owner, None)
            if f is not None:
                f.close()
                with contextlib.suppress(OSError):
                    os.unlink(f.name)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hold_owner_lock(self) -> None:
        # A lock file per open instance: reconcile() leaves alone entries of an owner whose
        # lock is still held (another live process), and takes over those of a dead one.
        d = self.path.parent / "owners"
        d.mkdir(exist_ok=True)
        f = open(d / f"{self.owner}.lock", "a+b")  # noqa: SIM115 - held until close()
        _try_lock(f)
        _OWNER_LOCKS[self.owner] = f

    def _owner_alive(self, owner: str | None) -> bool:
        if not owner or not _owner_token_ok(owner):
            return False
        if owner in _OWNER_LOCKS:
            return True
        p = self.path.parent / "owners" / f"{owner}.lock"
        if not p.exists():
            return False
        with open(p, "a+b") as f:
            if not _try_lock(f):
                return True
        with contextlib.suppress(OSError):
            p.unlink()
        return False

    @contextlib.contextmanager
    def mutating(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the folder's change lock: relabels, undos and redos of all processes run one at a time.

        Re-entrant within this instance. A second process waits up to ``timeout_s`` (default:
        :attr:`lock_wait_s`, which is :data:`LOCK_TIMEOUT_S` unless set).

        Raises:
            StoreError: another process held the lock for longer than ``timeout_s``.
        """
        if self._mutating:
            self._mutating += 1
            try:
                yield
            finally:
                self._mutating -= 1
            return
        f = open(self.path.parent / "changes.lock", "a+b")  # noqa: SIM115 - closed below
        try:
            deadline = time.monotonic() + (self.lock_wait_s if timeout_s is None else timeout_s)
            while not _try_lock(f):
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.folder}: another Plate Review process is renaming files in this folder; "
                        "try again when it is done"
                    )
                time.sleep(0.05)
            self._mutating = 1
            try:
                yield
            finally:
                self._mutating = 0
        finally:
            f.close()  # releases the lock

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Raises:
            StoreFullError: the disk is full (the transaction is rolled back; the store stays usable).
        """
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if self.conn.in_transaction:  # a COMMIT that failed leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                if _no_room(self.path, e):
                    raise StoreFullError(_full_message(self.path, "write the store")) from e
                raise

    # --------------------------------------------------------- prediction cache

    def cached_predictions(self, model_hash: str, files: Iterable[tuple[str, int, int]]) -> dict[str, CachedPrediction]:
        """Cached predictions of ``model_hash`` for the files whose identity is unchanged.

        One query over the model's rows, matched in memory (no per-file SELECT). The
        records are :class:`CachedPrediction` (the attributes of :class:`PredictionRecord`):
        built straight from the database row, their probability blobs decoded only when
        read, so a 200,000-file reopen builds no float lists.

        Args:
            model_hash: The reader identity (``Predictor.model_hash``).
            files: ``(rel, size, mtime_ns)`` of the current files, e.g. :func:`scan_files`.

        Returns:
            ``{rel: record}`` for the files that need no new inference.
        """
        return split_cached(self.cached_rows(model_hash), files)[0]

    def cached_rows(self, model_hash: str) -> list[CachedPrediction]:
        """Every cached prediction of ``model_hash`` as stored, sorted by rel; nothing checked against the disk.

        What the app shows before the folder is scanned (the rows of the last session);
        :func:`split_cached` then tells which are still valid. One query, one tuple per row.
        """
        with self._lock, gc_paused():
            cur = self.conn.execute(f"SELECT {_PRED_COLS} FROM predictions WHERE model = ? ORDER BY rel", (model_hash,))
            return list(map(CachedPrediction._make, cur))

    def forget_predictions(self, model_hash: str, rels: Iterable[str]) -> None:
        """Drop cached predictions of ``model_hash`` for files that are gone (review states are kept)."""
        with self._tx() as c:
            c.executemany("DELETE FROM predictions WHERE model = ? AND rel = ?", ((model_hash, r) for r in rels))

    def put_predictions(
        self,
        model_hash: str,
        records: Iterable[Any],
        files: Mapping[str, tuple[int, int]] | None = None,
    ) -> int:
        """Cache predictions (one transaction). Never touches review states or file names.

        Args:
            model_hash: The reader identity (``Predictor.model_hash``).
            records: ``PredictionResult``-like objects or dicts (fields of :class:`PredictionRecord`).
            files: ``{rel: (size, mtime_ns)}`` captured before inference; files missing here
                are stat'ed now (a file that vanished is not cached).

        Returns:
            The number of records stored.
        """
        now = time.time()
        rows = []
        for rec in records:
            if is_dataclass(rec) and not isinstance(rec, type):
                rec = asdict(rec)
            rel = _field(rec, "rel")
            if not _storable(rel):  # a name that is not UTF-8: shown, never cached
                continue
            ident = files.get(rel) if files else None
            if ident is None:
                try:
                    st = os.stat(self.folder / rel)
                except OSError:
                    continue
                ident = (st.st_size, st.st_mtime_ns)
            correct = _field(rec, "correct")
            rows.append((
                model_hash, rel, ident[0], ident[1], _field(rec, "label", ""), _field(rec, "label_error"),
                _field(rec, "prediction", ""), _floats_to_blob(_field(rec, "probs")), _field(rec, "runner_up", ""),
                _floats_to_blob(_field(rec, "runner_up_probs")), _field(rec, "confidence"), _field(rec, "cer"),
                None if correct is None else int(bool(correct)), _field(rec, "error"), now,
                _floats_to_blob(_field(rec, "label_probs")), _field(rec, "label_score"), _field(rec, "image_hash"),
                int(bool(_field(rec, "zoomed"))), int(bool(_field(rec, "negative"))),
            ))  # fmt: skip
        with self._tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO predictions(model, rel, size, mtime_ns, label, label_error, prediction, "
                "probs, runner_up, runner_up_probs, confidence, cer, correct, error, updated, label_probs, "
                "label_score, image_hash, zoomed, negative) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        return len(rows)

    def put_crossval(self, results: Iterable[Any], info: Mapping[str, Any]) -> int:
        """Keep the latest cross-validated scores, replacing earlier ones (one transaction each).

        Args:
            results: Out-of-fold prediction records (``core.finetune.CrossValResult.results`` values).
            info: What made them (folds, base model, time), returned by :meth:`crossval_info`.

        Returns:
            The number of records stored.
        """
        import json

        with self._tx() as c:
            c.execute("DELETE FROM predictions WHERE model = ?", (CROSSVAL_MODEL,))
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('crossval', ?)", (json.dumps(dict(info)),))
        return self.put_predictions(CROSSVAL_MODEL, results)

    def crossval(self, files: Iterable[tuple[str, int, int]]) -> dict[str, CachedPrediction]:
        """The stored cross-validated predictions still valid for the files (``{rel: record}``)."""
        with self._lock:
            none = self.conn.execute("SELECT 1 FROM predictions WHERE model = ? LIMIT 1", (CROSSVAL_MODEL,)).fetchone()
        return {} if none is None else self.cached_predictions(CROSSVAL_MODEL, files)

    def image_hashes(self, model_hash: str) -> list[tuple[str, int, str]]:
        """``(rel, image hash, label)`` of every cached prediction of ``model_hash`` that has a hash
        (one query: what near-duplicate grouping needs, without building a record per file)."""
        with self._lock:
            return self.conn.execute(
                "SELECT rel, image_hash, label FROM predictions WHERE model = ? AND image_hash IS NOT NULL",
                (model_hash,),
            ).fetchall()

    def crossval_info(self) -> dict[str, Any] | None:
        """What the stored cross-validated scores came from (see :meth:`put_crossval`), or ``None``."""
        import json

        with self._lock:
            r = self.conn.execute("SELECT value FROM meta WHERE key = 'crossval'").fetchone()
        try:
            info = json.loads(r[0]) if r else None
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def known_identity(self, rel: str) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of ``rel`` when it was last predicted (the content the app showed), or ``None``."""
        with self._lock:
            r = self.conn.execute(
                "SELECT size, mtime_ns FROM predictions WHERE rel = ? ORDER BY updated DESC LIMIT 1", (rel,)
            ).fetchone()
        return (int(r[0]), int(r[1])) if r else None

    def prediction_models(self) -> list[str]:
        """Model hashes that have cached predictions."""
        with self._lock:
            return [r[0] for r in self.conn.execute("SELECT DISTINCT model FROM predictions")]

    # ------------------------------------------------------------ review states

    def get_state(self, rel: str) -> str:
        """The review state of one sample (``unreviewed`` when never set)."""
        with self._lock:
            r = self.conn.execute("SELECT state FROM states WHERE rel = ?", (rel,)).fetchone()
        return r[0] if r else ReviewState.UNREVIEWED

    def states(self) -> dict[str, str]:
        """``{rel: state}`` for every sample that is not unreviewed."""
        with self._lock:
            return dict(self.conn.execute("SELECT rel, state FROM states"))

    def state_sources(self) -> dict[str, tuple[str, str]]:
        """``{rel: (state, source)}`` with ``source`` ``"human"`` or ``"model"``."""
        with self._lock:
            return {r[0]: (r[1], r[2]) for r in self.conn.execute("SELECT rel, state, source FROM states")}

    def set_state(self, rel: str, state: str, source: str = HUMAN) -> None:
        """Set the review state of one sample (not an undo step; labels are undone via renames)."""
        self.set_states({rel: state}, source)

    def set_states(self, states: Mapping[str, str], source: str = HUMAN) -> int:
        """Set many review states in one transaction.

        With ``source="model"`` (automatic states such as unreadable/invalid found by a
        prediction run) samples carrying a human decision (verified, fixed) are left alone.

        Returns:
            The number of samples changed.
        """
        for s in states.values():
            if s not in STORED_STATES:
                raise ValueError(f"unknown review state {s!r}; expected one of {', '.join(STORED_STATES)}")
        now = time.time()
        n = 0
        with self._tx() as c:
            human = {}
            if source != HUMAN:
                human = {r[0] for r in c.execute("SELECT rel FROM states WHERE source = 'human'")}
            for rel, s in states.items():
                if rel in human or not _storable(rel):
                    continue
                if s == ReviewState.UNREVIEWED:
                    c.execute("DELETE FROM states WHERE rel = ?", (rel,))
                else:
                    size, mtime = self._identity(rel)
                    c.execute(
                        "INSERT OR REPLACE INTO states(rel, state, source, size, mtime_ns, updated) VALUES(?,?,?,?,?,?)",
                        (rel, s, source, size, mtime, now),
                    )
                n += 1
        return n

    def _identity(self, rel: str) -> tuple[int | None, int | None]:
        try:
            st = os.stat(self.folder / rel)
            return st.st_size, st.st_mtime_ns
        except OSError:
            return None, None

    def sync_states(self, files: Iterable[tuple[str, int, int]] | None = None) -> list[str]:
        """Make the review states follow the disk; report what changed behind the app's back.

        A sample whose file vanished loses its state; one whose content changed (size or
        mtime differ from when the decision was taken) goes back to unreviewed.

        Args:
            files: ``(rel, size, mtime_ns)`` of the current files; scanned when ``None``.

        Returns:
            One message per affected file, naming it.
        """
        current = {f[0]: (f[1], f[2]) for f in (scan_files(self.folder) if files is None else files)}
        msgs: list[str] = []
        gone: list[tuple[str]] = []
        with self._tx() as c:
            for rel, state, size, mtime in c.execute("SELECT rel, state, size, mtime_ns FROM states").fetchall():
                ident = current.get(rel)
                if ident is None:
                    msgs.append(f"{rel}: file no longer exists (deleted or moved outside Plate Review); "
                                f"its review state ({state}) was dropped")  # fmt: skip
                    gone.append((rel,))
                elif size is not None and (size, mtime) != ident:
                    msgs.append(f"{rel}: file changed on disk since it was marked {state}; back to unreviewed")
                    gone.append((rel,))
            c.executemany("DELETE FROM states WHERE rel = ?", gone)
        return msgs

    def forget(self, rels: Iterable[str], predictions: bool = True) -> None:
        """Drop the review state (and cached predictions) of files that are gone or changed."""
        rows = [(r,) for r in rels]
        with self._tx() as c:
            c.executemany("DELETE FROM states WHERE rel = ?", rows)
            if predictions:
                c.executemany("DELETE FROM predictions WHERE rel = ?", rows)

    # ---------------------------------------------------------- undo history

    def begin_step(self, description: str) -> int:
        """Start an undo step; a new action discards the redo stack. Returns the step id."""
        with self._tx() as c:
            c.execute("UPDATE steps SET status = 'discarded' WHERE status = 'undone'")
            # Never reuse an id: a step deleted after a failure may still have journal rows or items.
            new_id = 1 + max(
                c.execute(f"SELECT COALESCE(MAX({col}), 0) FROM {table}").fetchone()[0]
                for table, col in (("steps", "id"), ("journal", "step"), ("step_items", "step"))
            )
            last = c.execute("SELECT value FROM meta WHERE key = 'last_step'").fetchone()
            new_id = max(new_id, int(last[0]) + 1 if last and str(last[0]).isdigit() else 0)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('last_step', ?)", (str(new_id),))
            c.execute(
                "INSERT INTO steps(id, description, created, status, owner) VALUES(?, ?, ?, 'pending', ?)",
                (new_id, description, time.time(), self.owner),
            )
            return new_id

    def add_state_items(
        self, step: int, changes: Iterable[tuple[str, str, str, str, str]], first_seq: int = 0
    ) -> list[str]:
        """Record review decisions (no rename) in an undo step and apply them, in one transaction.

        A decision is an item whose two names are the same file (``a_rel == b_rel``): undo puts
        back the old state, redo the new one (see :meth:`revert_state_items`), so "Label is right"
        and "Unreadable" survive a restart in the undo history like renames.

        Args:
            step: From :meth:`begin_step`.
            changes: ``(rel, old_state, old_source, new_state, new_source)`` per file.
            first_seq: The first item number to use (after the step's renames, which are numbered
                ``0..n-1`` before they are done).

        Returns:
            The rels whose state was recorded.
        """
        now = time.time()
        done = []
        with self._tx() as c:
            seq = max(first_seq, c.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM step_items WHERE step = ?",
                                           (step,)).fetchone()[0])  # fmt: skip
            for rel, old_state, old_source, new_state, new_source in changes:
                if not _storable(rel):
                    continue
                c.execute(
                    "INSERT INTO step_items(step, seq, a_rel, b_rel, applied, old_state, old_source, new_state, "
                    "new_source) VALUES(?,?,?,?,1,?,?,?,?)",
                    (step, seq, rel, rel, old_state, old_source, new_state, new_source),
                )
                self._write_state_row(c, rel, new_state, new_source, now)
                seq += 1
                done.append(rel)
        return done

    def revert_state_items(self, step: int, kind: str) -> list[str]:
        """Undo (``kind="undo"``) or redo the decisions of a step (its ``a_rel == b_rel`` items), in one
        transaction. Returns the rels whose state changed."""
        now = time.time()
        undo = kind == "undo"
        changed = []
        with self._tx() as c:
            rows = c.execute(
                "SELECT seq, a_rel, old_state, old_source, new_state, new_source FROM step_items "
                "WHERE step = ? AND a_rel = b_rel AND applied = ?",
                (step, 1 if undo else 0),
            ).fetchall()
            for seq, rel, old_state, old_source, new_state, new_source in rows:
                state, source = (old_state, old_source) if undo else (new_state, new_source)
                self._write_state_row(c, rel, state, source, now)
                c.execute("UPDATE step_items SET applied = ? WHERE step = ? AND seq = ?", (0 if undo else 1, step, seq))
                changed.append(rel)
        return changed

    def _write_state_row(self, c: sqlite3.Connection, rel: str, state: str | None, source: str | None,
                         now: float) -> None:  # fmt: skip
        if not state or state == ReviewState.UNREVIEWED:
            c.execute("DELETE FROM states WHERE rel = ?", (rel,))
            return
        size, mtime = self._identity(rel)
        c.execute(
            "INSERT OR REPLACE INTO states(rel, state, source, size, mtime_ns, updated) VALUES(?,?,?,?,?,?)",
            (rel, str(state), source or HUMAN, size, mtime, now),
        )

    def end_step(self, step: int) -> str | None:
        """Settle a step's status from its items; an empty step is removed. Returns the status."""
        with self._tx() as c:
            return self._settle_step(c, step)

    @staticmethod
    def _settle_step(c: sqlite3.Connection, step: int) -> str | None:
        total, applied = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(applied), 0) FROM step_items WHERE step = ?", (step,)
        ).fetchone()
        pending = c.execute("SELECT COUNT(*) FROM journal WHERE step = ? AND status = 'pending'", (step,)).fetchone()[0]
        if pending:  # renames not settled yet (a failed commit): the next reconcile settles the step
            return "pending"
        if total == 0:
            c.execute("DELETE FROM steps WHERE id = ?", (step,))
            return None
        status = "applied" if applied == total else "undone" if applied == 0 else "partial"
        c.execute("UPDATE steps SET status = ?, owner = NULL WHERE id = ?", (status, step))
        return status

    def step_info(self, step: int) -> StepInfo | None:
        """One step of the undo history, or ``None``."""
        return next((h for h in self.history() if h.id == step), None)

    def history(self) -> list[StepInfo]:
        """The undo history, oldest first (discarded steps excluded)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT s.id, s.description, s.created, s.status, COUNT(i.seq) FROM steps s "
                "LEFT JOIN step_items i ON i.step = s.id WHERE s.status != 'discarded' GROUP BY s.id ORDER BY s.id"
            ).fetchall()
        return [StepInfo(*r) for r in rows]

    def undo_target(self) -> int | None:
        """The step the next undo reverts (the latest applied or partly applied one)."""
        with self._lock:
            r = self.conn.execute("SELECT MAX(id) FROM steps WHERE status IN ('applied', 'partial')").fetchone()
        return r[0]

    def redo_target(self) -> int | None:
        """The step the next redo re-applies (the earliest undone one)."""
        with self._lock:
            r = self.conn.execute("SELECT MIN(id) FROM steps WHERE status IN ('undone', 'partial')").fetchone()
            if r[0] is None:
                return None
            # A partial step that is also the latest applied one is for undo to finish, not redo.
            last_applied = self.conn.execute("SELECT MAX(id) FROM steps WHERE status = 'applied'").fetchone()[0]
            if last_applied is not None and r[0] < last_applied:
                return None
        return r[0]

    def step_items(self, step: int) -> list[tuple[int, str, str, int, str | None, str | None, str | None, str | None]]:
        """``(seq, a_rel, b_rel, applied, old_state, old_source, new_state, new_source)`` of a step."""
        with self._lock:
            return self.conn.execute(
                "SELECT seq, a_rel, b_rel, applied, old_state, old_source, new_state, new_source "
                "FROM step_items WHERE step = ? ORDER BY seq",
                (step,),
            ).fetchall()

    def origins(self) -> dict[str, str]:
        """``{current rel: original rel}`` for every file the app renamed (applied items only)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT i.a_rel, i.b_rel FROM step_items i JOIN steps s ON s.id = i.step "
                "WHERE i.applied = 1 AND s.status != 'discarded' ORDER BY i.step, i.seq"
            ).fetchall()
        back: dict[str, str] = {}
        for a, b in rows:
            back[b] = back.pop(a, a)
        return {cur: orig for cur, orig in back.items() if cur != orig}

    # ------------------------------------------------------------------ journal

    def journal_pending(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        """Write renames as ``pending`` and commit, before any file is touched.

        Returns:
            The entries with their journal ids set.
        """
        now = time.time()
        with self._tx() as c:
            base = c.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]
            out = [_replace_id(e, base + i + 1) for i, e in enumerate(entries)]
            c.executemany(
                "INSERT INTO journal(id, kind, step, seq, src, dst, ino, size, mtime_ns, old_state, old_source, "
                "new_state, new_source, status, owner, created) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?)",
                [
                    (e.id, e.kind, e.step, e.seq, e.src, e.dst, e.ino, e.size, e.mtime_ns, e.old_state,
                     e.old_source, e.new_state, e.new_source, self.owner, now)
                    for e in out
                ],
            )  # fmt: skip
        return out

    def journal_finish(self, outcomes: list[tuple[JournalEntry, str, str | None]]) -> None:
        """Record what happened to journaled renames, and make the store follow (one transaction).

        For each ``(entry, status, message)``: ``done`` moves review state and cached
        predictions to the new name and updates the undo history; ``lost`` forgets the file;
        ``cancelled``/``failed`` leave everything under the old name.
        """
        now = time.time()
        with self._tx() as c:
            for e, status, message in outcomes:
                c.execute(
                    "UPDATE journal SET status = ?, message = ?, finished = ? WHERE id = ?",
                    (status, message, now, e.id),
                )
                if status == DONE:
                    self._apply_done(c, e, now)
                elif status == LOST:
                    c.execute("DELETE FROM states WHERE rel = ?", (e.src,))
                    c.execute("DELETE FROM predictions WHERE rel = ?", (e.src,))
                    if e.kind != "do":  # the file is gone: nothing left to undo/redo for it
                        c.execute("DELETE FROM step_items WHERE step = ? AND seq = ?", (e.step, e.seq))

    def _apply_done(self, c: sqlite3.Connection, e: JournalEntry, now: float) -> None:
        c.execute("DELETE FROM states WHERE rel = ?", (e.src,))
        if e.new_state and e.new_state != ReviewState.UNREVIEWED:
            c.execute(
                "INSERT OR REPLACE INTO states(rel, state, source, size, mtime_ns, updated) VALUES(?,?,?,?,?,?)",
                (e.dst, e.new_state, e.new_source or HUMAN, e.size, e.mtime_ns, now),
            )
        else:
            c.execute("DELETE FROM states WHERE rel = ?", (e.dst,))
        # Renaming keeps size and mtime, so cached predictions stay valid under the new name.
        c.execute("DELETE FROM predictions WHERE rel = ?", (e.dst,))
        rows = c.execute("SELECT model, prediction, probs, runner_up, runner_up_probs FROM predictions WHERE rel = ?",
                         (e.src,)).fetchall()  # fmt: skip
        for model, pred, probs, runner, rprobs in rows:
            new = relabelled(
                PredictionResult(
                    e.src,
                    "",
                    prediction=pred or "",
                    probs=_blob_to_floats(probs),
                    runner_up=runner or "",
                    runner_up_probs=_blob_to_floats(rprobs),
                ),
                e.dst,
            )
            c.execute(
                "UPDATE predictions SET rel = ?, label = ?, label_error = ?, cer = ?, correct = ?, label_probs = ?, "
                "label_score = ? WHERE model = ? AND rel = ?",
                (e.dst, new["label"], new["label_error"], new["cer"],
                 None if new["correct"] is None else int(new["correct"]), _floats_to_blob(new["label_probs"]),
                 new["label_score"], model, e.src),
            )  # fmt: skip
        if e.kind == "do":
            c.execute(
                "INSERT OR REPLACE INTO step_items(step, seq, a_rel, b_rel, applied, old_state, old_source, "
                "new_state, new_source) VALUES(?,?,?,?,1,?,?,?,?)",
                (e.step, e.seq, e.src, e.dst, e.old_state, e.old_source, e.new_state, e.new_source),
            )
        elif e.kind == "undo":  # dst may differ from a_rel when the old name was taken meanwhile
            c.execute("UPDATE step_items SET applied = 0, a_rel = ? WHERE step = ? AND seq = ?", (e.dst, e.step, e.seq))
        else:
            c.execute("UPDATE step_items SET applied = 1, b_rel = ? WHERE step = ? AND seq = ?", (e.dst, e.step, e.seq))

    def pending_count(self) -> int:
        """Journal entries still pending (0 after a clean run or a reconcile)."""
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM journal WHERE status = 'pending'").fetchone()[0]

    def reconcile(self, progress: Callable[[Any], None] | None = None) -> list[str]:
        """Settle renames left pending by a killed or crashed process, from what is on disk.

        Each file ends with exactly its old or its new name: a rename interrupted between
        link and unlink is completed; one that never started is cancelled; a file found
        under neither name is reported and forgotten. Entries of another live process
        (its owner lock is held) are left alone.

        Returns:
            Messages naming the files that needed attention (also appended to :attr:`messages`).
        """
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, kind, src, dst, step, seq, ino, size, mtime_ns, old_state, old_source, new_state, "
                "new_source, owner FROM journal WHERE status = 'pending' ORDER BY id"
            ).fetchall()
            alive: dict[str | None, bool] = {}
            outcomes: list[tuple[JournalEntry, str, str | None]] = []
            msgs: list[str] = []
            for r in rows:
                owner = r[13]
                if owner not in alive:
                    alive[owner] = self._owner_alive(owner)
                if alive[owner]:
                    continue
                e = JournalEntry(
                    kind=r[1], src=r[2], dst=r[3], step=r[4], seq=r[5], ino=r[6], size=r[7], mtime_ns=r[8],
                    old_state=r[9], old_source=r[10], new_state=r[11], new_source=r[12], id=r[0],
                )  # fmt: skip
                status, msg = resolve_interrupted(self.folder, e)
                outcomes.append((e, status, msg))
                if msg:
                    msgs.append(msg)
            if outcomes:
                self.journal_finish(outcomes)
                for step in {e.step for e, _, _ in outcomes if e.step}:  # an undo/redo cut short: re-settle
                    self.end_step(step)
            steps = self.conn.execute("SELECT id, owner FROM steps WHERE status = 'pending'").fetchall()
            for step, owner in steps:
                if owner not in alive:
                    alive[owner] = self._owner_alive(owner)
                if not alive[owner]:
                    self.end_step(step)
            if outcomes:
                n_done = sum(1 for _, s, _ in outcomes if s == DONE)
                msgs.insert(0, f"recovered {len(outcomes)} interrupted rename(s): {n_done} completed, "
                               f"{len(outcomes) - n_done} kept their old name")  # fmt: skip
            self.messages.extend(msgs)
            return msgs


def _storable(rel: str) -> bool:
    """Whether SQLite can keep ``rel`` (a name that is not UTF-8 holds surrogates it cannot encode)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _owner_token_ok(owner: object) -> bool:
    """An owner token this app writes: 32 lower-case hex digits (it becomes a lock file name)."""
    return isinstance(owner, str) and len(owner) == 32 and set(owner) <= _OWNER_CHARS


def _replace_id(e: JournalEntry, new_id: int) -> JournalEntry:
    d = asdict(e)
    d["id"] = new_id
    return JournalEntry(**d)


def resolve_interrupted(root: Path, e: JournalEntry) -> tuple[str, str | None]:
    """Decide, from the disk, what became of a pending rename; finish a half-done one.

    Returns:
        ``(status, message)`` with status ``done``, ``cancelled`` or ``lost``.
    """
    why = pair_problem(e.src, e.dst) or disk_problem(root, e.src) or disk_problem(root, e.dst)
    if why:  # never touch what a forged or stale entry names (Store.open sets forged stores aside)
        return FAILED, f"{e.src}: interrupted rename not settled: {why}; nothing touched"
    src, dst = root / e.src, root / e.dst
    s_ok, d_ok = os.path.lexists(src), os.path.lexists(dst)
    if s_ok and d_ok:
        try:
            same = os.path.samefile(src, dst)
        except OSError:
            same = False
        if same:  # killed between link and unlink: finish it
            os.unlink(src)
            return DONE, None
        return CANCELLED, None
    if s_ok:
        return CANCELLED, None
    if d_ok:
        if e.ino is None or os.stat(dst).st_ino == e.ino:
            return DONE, None
        return LOST, f"{e.src}: file vanished during an interrupted rename ({e.dst} is another file)"
    return LOST, f"{e.src}: file vanished during an interrupted rename (deleted or moved outside Plate Review)"
