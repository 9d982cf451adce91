"""The results table: a list model over the review rows, a filter proxy, delegates, the view.

Sorting is done by the source model over precomputed numeric/str keys (``SORT_ROLE``
gives the same keys per cell), because a proxy comparing 200,000 rows through Python
``data()`` calls takes seconds; the proxy only filters (``filterAcceptsRow``) and
forwards ``sort()`` to the source. Filter results are numpy masks over the source's
columns; the proxy judges a single row in Python only when that row changed (see
``ResultsProxy``). Default order: the review order of ``core.label_score.review_key``
(Label score column ascending: missing files, unreadable, invalid labels, then label
score ascending, the cross-validated score where there is one).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import attrgetter, eq

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFontMetrics, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QStyle, QStyledItemDelegate, QTableView

from core.gc_pause import gc_paused
from core.label_score import LIKELY_ERROR_THRESHOLD, label_score, review_keys_arrays
from core.records import relabelled
from core.review_state import HUMAN_STATES, ReviewState

from . import style
from .fonts import plate_font

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2

COL_IMAGE, COL_FILE, COL_LABEL, COL_PRED, COL_SCORE, COL_CER, COL_CONF, COL_STATE, COL_CV = range(9)
HEADERS = ["Image", "File", "Label", "Prediction", "Label score", "CER", "Confidence", "State", "CV score"]
SCORE_TIP = ("Label score: the probability the model gives to the label's weakest character. "
             f"Low = the label is likely wrong (at or below {LIKELY_ERROR_THRESHOLD}: counted as a likely label "
             "error). Sorted ascending, this is the review order.")  # fmt: skip
THUMB_SIZE = QSize(112, 28)
_STATE_ORDER = {
    ReviewState.MISSING: 0,
    ReviewState.UNREADABLE: 1,
    ReviewState.INVALID: 2,
    ReviewState.UNREVIEWED: 3,
    ReviewState.FIXED: 4,
    ReviewState.VERIFIED: 5,
}
_STATE_TEXT = {ReviewState.UNREVIEWED: "", ReviewState.VERIFIED: "✓ verified", ReviewState.FIXED: "✎ fixed", ReviewState.UNREADABLE: "⚠ unreadable",
               ReviewState.INVALID: "⚠ invalid", ReviewState.MISSING: "✕ missing"}  # fmt: skip


_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, SORT_ROLE, ROW_ROLE, Qt.ItemDataRole.DecorationRole,
                    Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                    Qt.ItemDataRole.ToolTipRole})  # fmt: skip


class Row:
    """One sample in the table: its prediction (if any) and its review state."""

    __slots__ = ("rel", "label", "label_error", "prediction", "_rec", "confidence", "cer", "correct", "error",
                 "label_score", "_label_probs", "state", "missing", "_hay", "k")  # fmt: skip

    def __init__(self, rec, state: str = ReviewState.UNREVIEWED):
        self.rel: str = rec.rel
        self.label: str = rec.label
        self.label_error: str | None = rec.label_error
        self.state = state
        self.missing = False
        self.prediction: str = rec.prediction or ""
        self._rec = rec  # probs / runner-up are read from it only when inspected (decoded lazily)
        self.confidence: float = rec.confidence or 0.0
        self.cer: float | None = rec.cer
        self.correct: bool | None = rec.correct
        self.error: str | None = rec.error
        self.label_score: float | None = rec.label_score
        self._label_probs: list[float] | None = None  # None: the record's (decoded when read)
        self._hay: str | None = None
        self.k = -1  # record index in the model (set by ResultsModel)

    @property
    def label_probs(self) -> list[float]:
        """The model's probability of each of the label's characters (empty when there is no score)."""
        return self._rec.label_probs if self._label_probs is None else self._label_probs

    @property
    def suspect(self) -> int | None:
        """Position of the label's most suspicious character (the weakest), or ``None``."""
        return label_score(self.label_probs or None)[1]

    @property
    def probs(self) -> list[float]:
        return self._rec.probs

    @property
    def runner_up(self) -> str:
        return self._rec.runner_up

    @property
    def runner_up_probs(self) -> list[float]:
        return self._rec.runner_up_probs

    def set_prediction(self, rec) -> None:
        self.prediction = rec.prediction or ""
        self._rec = rec
        self.confidence = rec.confidence or 0.0
        self.cer = rec.cer
        self.correct = rec.correct
        self.error = rec.error
        self.label_score = rec.label_score
        self._label_probs = None
        self._hay = None

    @property
    def haystack(self) -> str:
        """What the text filter searches: file name, label and prediction, case-folded."""
        if self._hay is None:
            self._hay = f"{self.rel}\t{self.label}\t{self.prediction}".casefold()
        return self._hay

    def rename(self, rel: str) -> None:
        """The file now has another name: take its label from it; CER and label score follow."""
        self.rel = rel
        self._hay = None
        new = relabelled(self, rel)
        self.label, self.label_error = new["label"], new["label_error"]
        if self.prediction:
            self.cer, self.correct = new["cer"], new["correct"]
            self.label_score, self._label_probs = new["label_score"], new["label_probs"]
        self.missing = False

    @property
    def predicted(self) -> bool:
        return bool(self.prediction) or self.error is not None

    @property
    def mismatch(self) -> bool:
        return self.error is not None or self.label_error is not None or (bool(self.prediction) and not self.correct)

    @property
    def display_state(self) -> str:
        if self.missing:
            return ReviewState.MISSING
        if self.state == ReviewState.UNREVIEWED and self.error:
            return ReviewState.UNREADABLE
        if self.state == ReviewState.UNREVIEWED and self.label_error:
            return ReviewState.INVALID
        return self.state

    def cer_key(self) -> tuple:
        """Ascending key of the CER column (descending: ``core.label_score.review_key(by="cer")``)."""
        group = 3 if self.missing else 2 if self.error else 1 if self.label_error else 0
        return (group, -1.0 if self.cer is None else self.cer, -self.confidence)


_STATE_NAMES0 = tuple(ReviewState)  # state codes 0..5, in the enum's order
_S_UNREVIEWED, _S_VERIFIED, _S_FIXED, _S_UNREADABLE, _S_INVALID, _S_MISSING = range(6)
_COLS = {"err": np.bool_, "lerr": np.bool_, "pred": np.bool_, "correct": np.bool_, "cer": np.float64,
         "conf": np.float64, "state": np.int16, "missing": np.bool_, "score": np.float64,
         "cv": np.float64}  # fmt: skip
_SCORE_OF = attrgetter("label_score")
_ATTRS = tuple(map(attrgetter, ("rel", "label", "label_error", "prediction", "confidence", "cer", "error",
                                "label_score")))  # fmt: skip


def score_text(s: float | None) -> str:
    """A label score as the table shows it (three decimals; the smallest ones as '<0.001')."""
    if s is None:
        return ""
    return "<0.001" if s < 0.0005 else f"{s:.3f}"


def _perm_from_keys(keys: tuple[np.ndarray, ...], col: int, descending: bool) -> np.ndarray:
    """Stable permutation ordering the rows the keys describe (the first key is the primary one).

    Several keys are numeric and ascending in the column's ascending order; descending
    reverses every key (ties stay in their current order).
    """
    if len(keys) > 1:
        return np.lexsort(tuple(-k if descending else k for k in keys)[::-1])
    (k,) = keys
    if descending:
        if k.dtype.kind in "fiu":
            return np.argsort(-k.astype(np.float64), kind="stable")
        return np.argsort(k, kind="stable")[::-1]
    return np.argsort(k, kind="stable")


def _sort_key(row: Row, col: int):
    if col == COL_CER:
        return row.cer_key()
    if col == COL_SCORE:
        return (3 if row.missing else 0 if row.error else 1 if row.label_error else 2,
                2.0 if row.label_score is None else row.label_score)  # fmt: skip
    if col == COL_CONF:
        return -1.0 if row.error else row.confidence
    if col == COL_LABEL:
        return row.label
    if col == COL_PRED:
        return row.prediction
    if col == COL_STATE:
        return _STATE_ORDER.get(row.display_state, 9)
    return row.rel


class _RowsView(Sequence):
    """``model.rows``: the rows in display order, each :class:`Row` made on first access."""

    __slots__ = ("_m",)

    def __init__(self, model: ResultsModel):
        self._m = model

    def __len__(self) -> int:
        return len(self._m._order)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._m._row(k) for k in self._m._order[i].tolist()]
        return self._m._row(int(self._m._order[i]))

    def __iter__(self):
        row = self._m._row
        for k in self._m._order.tolist():
            yield row(k)


class ResultsModel(QAbstractTableModel):
    """The review rows, in the current sort order.

    The model keeps the core records as they came (record index ``k``), numpy columns
    per record (flags, CER, confidence, state code, CV CER) built in one pass at load
    and updated per edit, and ``_order`` (display row -> ``k``). A :class:`Row` is only
    made when something reads it (painted rows, the inspector, edits), so opening
    200,000 cached results builds no per-row Python objects; sorting, filtering and
    counts work on the columns.

    Args:
        thumbnails: A ``ThumbnailCache`` for the image column, or ``None`` (no images).
    """

    sig_changed = Signal()
    """Rows were added or changed (counts need refreshing)."""
    sig_thumbnail = Signal()
    """A thumbnail arrived: the views repaint their visible image cells."""

    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.sort_column = COL_SCORE
        self.sort_order = Qt.SortOrder.AscendingOrder
        self._proxy_ref = None  # weakref to the ResultsProxy over this model (set by the proxy)
        self._last_perm: np.ndarray | None = None
        self._state_names: list[str] = list(_STATE_NAMES0)
        self._state_code: dict[str, int] = {s: i for i, s in enumerate(_STATE_NAMES0)}
        self._cv_src: dict = {}  # the latest cross-validation results, {rel: PredictionResult}
        self._dup_groups: list[list[str]] = []  # near-duplicate crops (rels), from the last run
        self._plate_font = plate_font(11)
        self._placeholder: QPixmap | None = None
        self._reset_data()
        self.rows = _RowsView(self)
        if thumbnails is not None:
            thumbnails.sig_ready.connect(self._on_thumbnails_ready)
            thumbnails.sig_missing.connect(self._on_thumbnails_missing)

    def _reset_data(self) -> None:
        self._recs: list = []  # core records by k
        self._objs: list[Row | None] = []  # Row by k, made on first use
        self._n = 0
        self._a = {name: np.zeros(0, dt) for name, dt in _COLS.items()}  # columns by k (capacity-sized)
        self._rel: list[str] = []
        self._label: list[str] = []
        self._pred: list[str] = []
        self._hay: list[str] | None = None  # case-folded filter haystack by k, built on first text filter
        self._k_of: dict[str, int] | None = None  # rel -> k, built on first lookup
        self._skeys: dict[int, np.ndarray] = {}  # string sort keys by k, built on first sort by the column
        self._cv_rec: dict[int, object] = {}  # k -> cross-validation result
        self._order = np.zeros(0, np.int64)  # display row -> k
        self._pos_cache: np.ndarray | None = None  # k -> display row
        self.needs_resort = False
        # Set by a sort with a filter on (ResultsProxy.sort): the order is sorted among the rows the
        # proxy shows and among the others, each kept at their positions; not one sorted order.
        self.sorted_within_filter = False

    # ------------------------------------------------------------ columns

    def _col(self, name: str) -> np.ndarray:
        return self._a[name][: self._n]

    def _code(self, state: str) -> int:
        c = self._state_code.get(state)
        if c is None:
            c = self._state_code[state] = len(self._state_names)
            self._state_names.append(state)
        return c

    def _append(self, recs: list, states: dict[str, str]) -> None:
        """Add records (and their columns) at the end of the record order; not to the display order."""
        m = len(recs)
        if not m:
            return
        with gc_paused():  # one C-level pass per attribute (~3x cheaper than a tuple per record)
            rel, label, lerr, pred, conf, cer, err, score = (list(map(get, recs)) for get in _ATTRS)
        start, end = self._n, self._n + m
        cap = len(self._a["cer"])
        if end > cap:
            cap = max(end, cap + cap // 2)
            for name, arr in self._a.items():
                grown = np.zeros(cap, arr.dtype)
                grown[:start] = arr[:start]
                self._a[name] = grown
        a = self._a
        a["err"][start:end] = np.fromiter(map(bool, err), np.bool_, m)
        a["lerr"][start:end] = np.fromiter(map(bool, lerr), np.bool_, m)
        a["pred"][start:end] = np.fromiter(map(bool, pred), np.bool_, m)
        a["correct"][start:end] = np.fromiter(map(eq, pred, label), np.bool_, m)  # as PredictionResult.correct
        a["cer"][start:end] = np.nan_to_num(np.array(cer, np.float64), nan=-1.0)
        a["conf"][start:end] = np.nan_to_num(np.array(conf, np.float64), nan=0.0)
        a["score"][start:end] = np.array(score, np.float64)  # None: nan
        a["missing"][start:end] = False
        a["cv"][start:end] = np.nan
        if states:
            for s in set(states.values()):
                self._code(s)
            codes, get = self._state_code, states.get
            a["state"][start:end] = np.fromiter((codes[get(r, ReviewState.UNREVIEWED)] for r in rel), np.int16, m)
        else:
            a["state"][start:end] = _S_UNREVIEWED
        self._recs.extend(recs)
        self._objs.extend([None] * m)
        self._rel.extend(rel)
        self._label.extend(label)
        self._pred.extend(pred if None not in pred else [p or "" for p in pred])
        if self._hay is not None:
            self._hay.extend(f"{r}\t{lb}\t{p or ''}".casefold() for r, lb, p in zip(rel, label, pred))
        if self._k_of is not None:
            self._k_of.update(zip(rel, range(start, end)))
        self._skeys = {}
        self._n = end
        if self._cv_src:
            get = self._cv_src.get
            for k in range(start, end):
                res = get(self._rel[k])
                if res is not None:
                    self._set_cv(k, res)

    def _row(self, k: int) -> Row:
        row = self._objs[k]
        if row is None:
            row = self._objs[k] = Row(self._recs[k], self._state_names[self._a["state"][k]])
            row.k = k
            row.missing = bool(self._a["missing"][k])
        return row

    def _sync(self, k: int) -> None:
        """Copy row ``k``'s (edited) values into the columns."""
        r = self._objs[k]
        if r is None:
            return
        a = self._a
        a["err"][k] = bool(r.error)
        a["lerr"][k] = bool(r.label_error)
        a["pred"][k] = bool(r.prediction)
        a["correct"][k] = bool(r.correct)
        a["cer"][k] = -1.0 if r.cer is None else r.cer
        a["conf"][k] = r.confidence or 0.0
        a["score"][k] = np.nan if r.label_score is None else r.label_score
        a["state"][k] = self._code(r.state)
        a["missing"][k] = r.missing
        if self._rel[k] != r.rel:
            if self._k_of is not None:
                if self._k_of.get(self._rel[k]) == k:
                    del self._k_of[self._rel[k]]
                self._k_of[r.rel] = k
            self._rel[k] = r.rel
        self._label[k] = r.label
        self._pred[k] = r.prediction
        if self._hay is not None:
            self._hay[k] = r.haystack
        for col, arr in list(self._skeys.items()):
            v = r.rel if col == COL_FILE else r.label if col == COL_LABEL else r.prediction
            if len(v) <= arr.dtype.itemsize // 4:
                arr[k] = v
            else:
                del self._skeys[col]

    def _haystack(self) -> list[str]:
        if self._hay is None:
            self._hay = [f"{r}\t{lb}\t{p}".casefold() for r, lb, p in zip(self._rel, self._label, self._pred)]
        return self._hay

    def _kindex(self) -> dict[str, int]:
        if self._k_of is None:
            self._k_of = dict(zip(self._rel, range(self._n)))
        return self._k_of

    def _pos(self) -> np.ndarray:
        if self._pos_cache is None:
            pos = np.empty(self._n, np.int64)
            pos[self._order] = np.arange(len(self._order))
            self._pos_cache = pos
        return self._pos_cache

    def _display_codes(self) -> np.ndarray:
        """State code as shown (missing, unreadable, invalid override unreviewed), by k."""
        st = self._col("state").copy()
        unrev = st == _S_UNREVIEWED
        st[unrev & self._col("lerr")] = _S_INVALID
        st[unrev & self._col("err")] = _S_UNREADABLE
        st[self._col("missing")] = _S_MISSING
        return st

    def _group(self) -> np.ndarray:
        """0 ok, 1 invalid label, 2 unreadable, 3 missing (worst-first primary key), by k."""
        g = np.where(self._col("lerr"), 1, 0).astype(np.int8)
        g[self._col("err")] = 2
        g[self._col("missing")] = 3
        return g

    def _effective_score(self) -> np.ndarray:
        """The label score that orders the review, by k: the cross-validated one where there is one."""
        cv = self._col("cv")
        return np.where(np.isnan(cv), self._col("score"), cv)

    def _keys(self, col: int) -> tuple[np.ndarray, ...]:
        """Sort keys of column ``col`` by k, ascending in the column's ascending order."""
        if col == COL_SCORE:  # core.label_score.review_key, with missing files first
            group, score, neg_cer = review_keys_arrays(
                self._col("err"), self._col("lerr"), self._effective_score(), self._col("cer")
            )
            return np.where(self._col("missing"), -1, group).astype(np.int8), score, neg_cer
        if col == COL_CER:
            return self._group(), self._col("cer"), -self._col("conf")
        if col == COL_CV:
            return np.nan_to_num(self._col("cv"), nan=2.0), -self._col("cer")
        if col == COL_CONF:
            return (np.where(self._col("err"), -1.0, self._col("conf")),)
        if col == COL_STATE:
            rank = np.array([_STATE_ORDER.get(s, 9) for s in self._state_names], np.int8)
            return (rank[self._display_codes()],)
        k = self._skeys.get(col)
        if k is None:
            src = self._label if col == COL_LABEL else self._pred if col == COL_PRED else self._rel
            k = self._skeys[col] = np.array(src) if src else np.zeros(0, "<U1")
        return (k,)

    def _set_cv(self, k: int, res) -> None:
        self._cv_rec[k] = res
        score = getattr(res, "label_score", None)
        self._a["cv"][k] = np.nan if score is None else score

    # ------------------------------------------------------------ Qt API

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[section]
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_CV:
                return ("Cross-validated label score: from a model that never trained on the sample (k-fold "
                        "fine-tuning, Train panel). Where present, it orders the review.")  # fmt: skip
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_SCORE:
                return SCORE_TIP
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if role not in _ROLES or not index.isValid():
            return None
        k = int(self._order[index.row()])
        row = self._row(k)
        col = index.column()
        if col == COL_CV:
            cv = self._a["cv"][k]
            if role == Qt.ItemDataRole.DisplayRole:
                return score_text(None if cv != cv else float(cv))
            if role == SORT_ROLE:
                return 2.0 if cv != cv else float(cv)
            if role == Qt.ItemDataRole.ForegroundRole:
                return style.BAD if cv == cv and cv <= LIKELY_ERROR_THRESHOLD else None
            if role == Qt.ItemDataRole.ToolTipRole:
                res = self._cv_rec.get(k)
                if res is None:
                    return None
                if getattr(res, "error", None):
                    return f"CV: unreadable ({res.error})"
                return (f"CV prediction: {res.prediction or '—'}  (CER {res.cer if res.cer is not None else 0:.2f}, "
                        f"confidence {(res.confidence or 0.0):.1%})")  # fmt: skip
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if role == ROW_ROLE:
                return row
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_FILE:
                return row.rel
            if col == COL_LABEL:
                return row.label or "—"
            if col == COL_PRED:
                return row.prediction or ("unreadable" if row.error else "")
            if col == COL_SCORE:
                return score_text(self._score_shown(k))
            if col == COL_CER:
                return "" if row.cer is None else f"{row.cer:.2f}"
            if col == COL_CONF:
                return f"{row.confidence:.1%}" if row.prediction else ""
            if col == COL_STATE:
                text = _STATE_TEXT.get(row.display_state, row.display_state)
                if self._dup_groups and row.display_state == ReviewState.UNREVIEWED and self.in_conflict(row.rel):
                    return "⚠ duplicate"
                return text
            return None
        if role == SORT_ROLE:
            if col == COL_SCORE:
                s = self._score_shown(k)
                return 2.0 if s is None else s
            return _sort_key(row, col) if col != COL_CER else row.cer_key()[1]
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DecorationRole and col == COL_IMAGE and self.thumbnails is not None:
            pm = self.thumbnails.get(row.rel)
            return pm if pm is not None else self._placeholder_pixmap()
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_LABEL and row.label_error:
                return style.WARN
            if col == COL_STATE:
                return style.STATE_COLORS.get(row.display_state)
            if col == COL_FILE and row.missing:
                return style.BAD
            if col == COL_PRED and row.error:
                return style.BAD
            if col == COL_SCORE:
                s = self._score_shown(k)
                return style.BAD if s is not None and s <= LIKELY_ERROR_THRESHOLD else None
            return None
        if role == Qt.ItemDataRole.FontRole and col in (COL_LABEL, COL_PRED):
            return self._plate_font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_SCORE, COL_CER, COL_CONF):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.missing:
                return f"{row.rel}: file not found (deleted or moved outside Plate Review)"
            if row.error:
                return f"Unreadable image: {row.error}"
            if col == COL_LABEL and row.label_error:
                return f"Invalid label: {row.label_error}"
            if col == COL_SCORE:
                return self._score_tip(k, row)
            if col == COL_IMAGE and self.thumbnails is not None:
                return self.thumbnails.failure(row.rel)
        return None

    def _score_shown(self, k: int) -> float | None:
        """The label score that orders row ``k`` (cross-validated where there is one)."""
        cv = self._a["cv"][k]
        if cv == cv:
            return float(cv)
        s = self._a["score"][k]
        return None if s != s else float(s)

    def _score_tip(self, k: int, row: Row) -> str | None:
        s = self._score_shown(k)
        if s is None:
            return None
        cv = self._cv_rec.get(k) if self._a["cv"][k] == self._a["cv"][k] else None
        src = "cross-validated (a model that never saw this crop)" if cv is not None else "this model"
        pos = cv.suspect if cv is not None else row.suspect
        where = f"; weakest: character {pos + 1} '{row.label[pos]}'" if pos is not None and pos < len(row.label) else ""
        return f"Label score {s:.4f} from {src}{where}. " + SCORE_TIP

    def _placeholder_pixmap(self) -> QPixmap:
        if self._placeholder is None:
            pm = QPixmap(THUMB_SIZE)
            pm.fill(QColor("#eef0f3"))
            self._placeholder = pm
        return self._placeholder

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Re-order the rows by a column (stable; keeps selection through persistent indexes).

        When a :class:`ResultsProxy` sits on this model the proxy drives the re-order
        (so that it need not re-filter every row); otherwise the rows are permuted inside
        a layout change.
        """
        proxy = self._proxy_ref() if self._proxy_ref is not None else None
        if proxy is not None and proxy.sourceModel() is self:
            proxy.sort(column, order)
        else:
            self.sort_permutation(column, order)
            self.apply_permutation(self._last_perm, layout=True)

    def sort_permutation(self, column: int, order) -> np.ndarray | None:
        """Record the sort column/order and return the permutation (numpy) that applies it.

        ``perm[i]`` is the current display row that goes to position ``i``; ties keep
        their current order (the keys are taken in display order).
        """
        self.sort_column, self.sort_order = column, order
        self._last_perm = None
        if len(self._order):
            keys = tuple(k[self._order] for k in self._keys(column))
            self._last_perm = _perm_from_keys(keys, column, order == Qt.SortOrder.DescendingOrder)
        return self._last_perm

    def apply_permutation(
        self, perm: np.ndarray | None, layout: bool = True, within_filter: bool = False
    ) -> np.ndarray | None:
        """Put row ``perm[i]`` at position ``i``; returns ``new position`` per old row.

        ``layout=True`` signals a layout change (observers re-map everything, persistent
        indexes follow their rows); ``layout=False`` reports it as a change of every row's
        data (``dataChanged``), for a proxy that re-maps its own persistent indexes and
        knows no row's filter result changed. ``within_filter``: the permutation sorts
        only within the rows a proxy shows and within the others (:attr:`sorted_within_filter`).
        """
        if perm is None or not len(perm):
            return None
        self.sorted_within_filter = within_filter
        n = len(perm)
        new_pos = np.empty(n, np.int64)
        new_pos[perm] = np.arange(n)
        if layout:
            self.layoutAboutToBeChanged.emit()
        old_persistent = self.persistentIndexList()
        self._order = self._order[perm]
        self._pos_cache = None
        self.needs_resort = False
        if old_persistent:
            self.changePersistentIndexList(
                old_persistent, [self.index(int(new_pos[i.row()]), i.column()) for i in old_persistent]
            )
        if layout:
            self.layoutChanged.emit()
        else:
            self.dataChanged.emit(self.index(0, 0), self.index(n - 1, len(HEADERS) - 1))
        return new_pos

    def resort(self) -> None:
        """Apply the current sort order again (after rows were added or changed)."""
        self.sort(self.sort_column, self.sort_order)

    # ------------------------------------------------------------ content

    def set_records(self, records: Iterable, states: dict[str, str], predicted_only: bool = False) -> list:
        """Replace every row (at open) and sort by the current column.

        Args:
            records: Core records (``PredictionResult``, cached predictions, placeholders).
            states: ``{rel: review state}`` (absent: unreviewed).
            predicted_only: Keep only records with a prediction or an error.

        Returns:
            The records left out (``predicted_only``), else ``[]``.
        """
        recs = records if isinstance(records, list) else list(records)
        left_out: list = []
        self.beginResetModel()
        self._reset_data()
        self._append(recs, states)
        if predicted_only and self._n:
            keep = self._col("pred") | self._col("err")
            if not keep.all():
                left_out = list(compress(recs, ~keep))
                self._reset_data()
                self._append(list(compress(recs, keep)), states)
        self._order = np.arange(self._n, dtype=np.int64)
        if self._n:
            desc = self.sort_order == Qt.SortOrder.DescendingOrder
            self._order = _perm_from_keys(self._keys(self.sort_column), self.sort_column, desc).astype(np.int64)
        self.endResetModel()
        self.sig_changed.emit()
        return left_out

    def clear(self) -> None:
        self.set_records([], {})

    def add_predictions(self, results: list, states: dict[str, str] | None = None) -> None:
        """Fill in predictions of existing rows; rows not in the table yet are appended.

        ``states`` gives the review state of appended rows (``{rel: state}``).
        """
        new = []
        changed = []
        index = self._kindex()
        for r in results:
            k = index.get(r.rel)
            if k is None:
                new.append(r)
            else:
                self._row(k).set_prediction(r)
                self._sync(k)
                changed.append(k)
        if changed:
            pos = self._pos()[changed]
            self.dataChanged.emit(self.index(int(pos.min()), 0), self.index(int(pos.max()), len(HEADERS) - 1))
        if new:
            first, start = len(self._order), self._n
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._append(new, states or {})
            self._order = np.concatenate([self._order, np.arange(start, self._n, dtype=np.int64)])
            self._pos_cache = None
            self.endInsertRows()
        if changed or new:
            self.needs_resort = True
        self.sig_changed.emit()

    def remove(self, rels: Iterable[str]) -> int:
        """Take the rows of these samples out (files gone or changed on disk); unknown rels are ignored.

        One layout change whatever the number of rows (observers re-map once; persistent
        indexes of the rows left follow them, those of removed rows become invalid). The
        records are compacted, so counts and filters never see them again.

        Returns:
            The number of rows removed.
        """
        index = self._kindex()
        ks = [k for k in map(index.get, rels) if k is not None]
        if not ks:
            return 0
        keep = np.ones(self._n, np.bool_)
        keep[ks] = False
        new_k = np.cumsum(keep) - 1  # old k -> new k, where kept
        shown = keep[self._order]  # by display row
        new_pos = np.cumsum(shown) - 1
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        n = int(np.count_nonzero(keep))
        for arr in self._a.values():
            arr[:n] = arr[: self._n][keep]
        alive = np.flatnonzero(keep).tolist()
        for name in ("_recs", "_objs", "_rel", "_label", "_pred") + (("_hay",) if self._hay is not None else ()):
            old = getattr(self, name)
            setattr(self, name, [old[k] for k in alive])
        for k, row in enumerate(self._objs):
            if row is not None:
                row.k = k
        self._skeys = {col: arr[keep] for col, arr in self._skeys.items()}
        self._cv_rec = {int(new_k[k]): res for k, res in self._cv_rec.items() if keep[k]}
        self._k_of = None
        self._n = n
        self._order = new_k[self._order[shown]]
        self._pos_cache = None
        if persistent:
            self.changePersistentIndexList(persistent, [
                self.index(int(new_pos[i.row()]), i.column()) if shown[i.row()] else QModelIndex()
                for i in persistent
            ])  # fmt: skip
        self.layoutChanged.emit()
        self.sig_changed.emit()
        return len(ks)

    def set_crossval(self, results: dict) -> None:
        """Show out-of-sample (k-fold) predictions: ``{rel: PredictionResult}`` -> the CV CER column."""
        self._cv_src = dict(results)
        self._a["cv"][:] = np.nan
        with gc_paused():
            ks = list(map(self._kindex().get, self._cv_src))
            vals = list(self._cv_src.values())
            if None in ks:  # results for files not in the table
                keep = [k is not None for k in ks]
                ks, vals = list(compress(ks, keep)), list(compress(vals, keep))
            self._cv_rec = dict(zip(ks, vals))
            if ks:
                self._a["cv"][np.array(ks, np.int64)] = np.array(list(map(_SCORE_OF, vals)), np.float64)  # None: nan
        if len(self._order):
            # Not a filter input: keep a dynamic proxy from re-filtering every row (a Python call each).
            proxy = self._proxy_ref() if self._proxy_ref is not None else None
            dynamic = proxy is not None and proxy.dynamicSortFilter()
            if dynamic:
                proxy.setDynamicSortFilter(False)
            try:
                self.dataChanged.emit(self.index(0, COL_SCORE), self.index(len(self._order) - 1, COL_CV))
            finally:
                if dynamic:
                    proxy.setDynamicSortFilter(True)
        self.sig_changed.emit()

    def set_duplicates(self, groups: Iterable) -> None:
        """Near-duplicate groups (``core.duplicates.DuplicateGroup``): membership by picture; whether a
        group is a conflict (labels differ) is judged on the labels the rows carry now."""
        new = [list(g.rels) for g in groups]
        if not new and not self._dup_groups:
            return  # nothing to show or to clear: no repaint of 200,000 rows
        self._dup_groups = new
        self.sig_changed.emit()
        if len(self._order):
            self.dataChanged.emit(self.index(0, COL_STATE), self.index(len(self._order) - 1, COL_STATE))

    def _dup_ks(self) -> list[list[int]]:
        index = self._kindex()
        return [[k for k in map(index.get, g) if k is not None] for g in self._dup_groups]

    def conflict_mask(self) -> np.ndarray:
        """By k: the crop is (nearly) the same picture as another crop with a different label."""
        mask = np.zeros(self._n, np.bool_)
        for ks in self._dup_ks():
            if len({self._label[k] for k in ks}) > 1:
                mask[ks] = True
        return mask

    def duplicates_of(self, rel: str) -> list[Row]:
        """The other rows that show (nearly) the same picture as ``rel`` (any labels)."""
        k0 = self._kindex().get(rel)
        if k0 is None:
            return []
        for ks in self._dup_ks():
            if k0 in ks:
                return [self._row(k) for k in ks if k != k0]
        return []

    def in_conflict(self, rel: str) -> bool:
        """Whether ``rel`` has a near duplicate with another label."""
        row_label = self._label[self._kindex()[rel]] if rel in self._kindex() else None
        return any(r.label != row_label for r in self.duplicates_of(rel))

    def crossval_of(self, rel: str):
        """The cross-validation result of the sample ``rel`` now has, or ``None``."""
        k = self._kindex().get(rel)
        return None if k is None else self._cv_rec.get(k)

    def row_of(self, rel: str) -> int | None:
        k = self._kindex().get(rel)
        return None if k is None else int(self._pos()[k])

    def row_changed(self, i: int) -> None:
        self._sync(int(self._order[i]))
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(HEADERS) - 1))
        self.sig_changed.emit()

    def apply_rename(self, old: str, new: str) -> int | None:
        index = self._kindex()
        k = index.get(old)
        if k is None:
            return None
        if self.thumbnails is not None:
            self.thumbnails.forget(old)
        self._row(k).rename(new)
        self._sync(k)
        if old in self._cv_src:
            self._cv_src[new] = self._cv_src.pop(old)
        i = int(self._pos()[k])
        self.row_changed(i)
        return i

    def set_state(self, rel: str, state: str) -> int | None:
        i = self.row_of(rel)
        if i is not None:
            self.rows[i].state = state
            self.row_changed(i)
        return i

    def mark_missing(self, rel: str) -> int | None:
        i = self.row_of(rel)
        if i is not None and not self.rows[i].missing:
            self.rows[i].missing = True
            self.row_changed(i)
        return i

    def filter_mask(self, text: str, quick: Iterable[str]) -> np.ndarray:
        """Which records (by k) pass a text filter (case-folded) and quick filters."""
        n = self._n
        mask = np.ones(n, np.bool_)
        q = set(quick)
        err, lerr = self._col("err"), self._col("lerr")
        if "mismatches" in q:
            mask &= err | lerr | (self._col("pred") & ~self._col("correct"))
        if "unreviewed" in q:
            mask &= self._col("state") == _S_UNREVIEWED
        if "invalid" in q:
            mask &= lerr
        if "unreadable" in q:
            mask &= err
        if "likely" in q:
            mask &= self._effective_score() <= LIKELY_ERROR_THRESHOLD  # nan: False
        if "duplicates" in q:
            mask &= self.conflict_mask()
        if text:
            hay = self._haystack()
            idx = np.flatnonzero(mask)
            hit = np.fromiter((text in hay[k] for k in idx.tolist()), np.bool_, len(idx))
            mask[idx[~hit]] = False
        return mask

    def stats(self, mask: np.ndarray | None = None) -> dict:
        """:func:`stats` over the rows (or the records where ``mask``, by k), with numpy."""
        err, lerr, pred = self._col("err"), self._col("lerr"), self._col("pred")
        correct, cer, state = self._col("correct"), self._col("cer"), self._col("state")
        likely = self._effective_score() <= LIKELY_ERROR_THRESHOLD
        conflicts = self.conflict_mask()
        n = len(self._order)
        if mask is not None:
            err, lerr, pred, correct, cer, state, likely, conflicts = (
                x[mask] for x in (err, lerr, pred, correct, cer, state, likely, conflicts)
            )
            n = int(np.count_nonzero(mask))
        ok = ~err & ~lerr
        scored = ok & pred
        npred = int(np.count_nonzero(scored))
        ncorrect = int(np.count_nonzero(scored & correct))
        cer_sum = float(np.clip(cer[scored], 0.0, None).sum())
        return {
            "n": n,
            "predicted": npred,
            "accuracy": ncorrect / npred if npred else None,
            "cer": cer_sum / npred if npred else None,
            "reviewed": int(np.count_nonzero((state == _S_VERIFIED) | (state == _S_FIXED))),
            "unreadable": int(np.count_nonzero(err)),
            "invalid": int(np.count_nonzero(~err & lerr)),
            "likely_errors": int(np.count_nonzero(likely)),
            "duplicate_conflicts": int(np.count_nonzero(conflicts)),
        }

    def _on_thumbnails_ready(self, rel: str) -> None:
        self.sig_thumbnail.emit()

    def _on_thumbnails_missing(self, rel: str) -> None:
        self.mark_missing(rel)


_LAZY = object()  # ResultsProxy._bulk: a re-map of every row is under way, results not computed yet


def _within(perm: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """``perm`` changed so that shown rows stay at the positions of shown rows, hidden at hidden ones.

    Each group keeps its order from ``perm``; ``shown`` is by current row.
    """
    out = np.empty_like(perm)
    moving_shown = shown[perm]
    out[shown] = perm[moving_shown]
    out[~shown] = perm[~moving_shown]
    return out


class ResultsProxy(QSortFilterProxyModel):
    """Filters rows by text and quick filters; sorting is forwarded to the source model.

    ``QSortFilterProxyModel`` calls ``filterAcceptsRow`` (Python, ~1-3 us a call in
    PySide6) for every source row whenever it re-maps them all: on a filter change and on
    a layout change or reset of the source. During those re-maps the results come from
    one numpy pass over the source's columns (:meth:`ResultsModel.filter_mask`), computed
    on the first call; only a single changed row is judged by :meth:`accepts`. Sorting
    avoids re-maps altogether (see :meth:`sort`).
    """

    QUICK_FILTERS = ("likely", "duplicates", "mismatches", "unreviewed", "invalid", "unreadable")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._text = ""
        self._quick: set[str] = set()
        self._bulk: list[bool] | object | None = None  # filter results by source row during a re-map of all rows
        self.setDynamicSortFilter(True)

    def setSourceModel(self, model) -> None:  # noqa: N802
        super().setSourceModel(model)
        if isinstance(model, ResultsModel):
            model._proxy_ref = weakref.ref(self)
            # Connected after QSortFilterProxyModel's own handlers, so these run after its re-map started.
            model.layoutAboutToBeChanged.connect(self._begin_remap)
            model.layoutChanged.connect(self._end_remap)
            model.modelAboutToBeReset.connect(self._begin_remap)
            model.modelReset.connect(self._end_remap)

    def _begin_remap(self, *_args) -> None:
        self._bulk = _LAZY

    def _end_remap(self, *_args) -> None:
        self.rowCount()  # builds the mapping now if Qt left it for later, while the results are at hand
        self._bulk = None

    @contextlib.contextmanager
    def _remapping(self):
        self._begin_remap()
        try:
            yield
        finally:
            self._end_remap()

    @property
    def filtering(self) -> bool:
        """Whether a text or quick filter is on."""
        return bool(self._text or self._quick)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by having the source model permute its rows (numpy), never by ``lessThan``.

        The proxy re-maps every source row (one Python ``filterAcceptsRow`` call each)
        whenever the source signals a layout change; a sort needs none. The source
        permutes its rows so that the rows shown stay at the source positions they had
        (with a filter on, sorted among those positions; the hidden rows among the others)
        and reports it as a data change with dynamic filtering paused; the proxy's mapping
        stays valid, and the proxy moves its own persistent indexes (selection, current row)
        inside its own layout change. The source's order is one sorted order again at the
        next filter change (:meth:`_set_filter`).
        """
        src = self.sourceModel()
        if not isinstance(src, ResultsModel):
            if src is not None:
                src.sort(column, order)
            return
        perm = src.sort_permutation(column, order)
        if perm is None:
            return
        within = self.filtering
        shown = src.filter_mask(self._text, self._quick)[src._order] if within else None  # by source row
        if within:
            perm = _within(perm, shown)
        self.setDynamicSortFilter(False)
        try:
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            old = [(p.row(), p.column()) for p in persistent]
            new_pos = src.apply_permutation(perm, layout=False, within_filter=within)
            if persistent:
                moved = new_pos  # proxy row -> new proxy row; without a filter proxy rows are source rows
                if shown is not None:  # proxy row i is the i-th shown source row, before and after
                    at = np.flatnonzero(shown)
                    rank = np.empty(len(shown), np.int64)
                    rank[at] = np.arange(len(at))
                    moved = rank[new_pos[at]]
                self.changePersistentIndexList(persistent, [self.index(int(moved[r]), c) for r, c in old])
            self.layoutChanged.emit()
        finally:
            self.setDynamicSortFilter(True)

    def set_text(self, text: str) -> None:
        text = text.strip().casefold()
        if text != self._text:
            self._set_filter(text, self._quick)

    def set_quick(self, name: str, on: bool) -> None:
        if name not in self.QUICK_FILTERS:
            raise ValueError(name)
        if (name in self._quick) != on:
            self._set_filter(self._text, self._quick | {name} if on else self._quick - {name})

    @property
    def quick(self) -> frozenset[str]:
        return frozenset(self._quick)

    def _set_filter(self, text: str, quick: set[str]) -> None:
        """Change the filters; one re-map of every row (two after a sort with a filter on, see below)."""
        src = self.sourceModel()
        if not isinstance(src, ResultsModel):
            self._text, self._quick = text, quick
            self.invalidateFilter()
            return
        if src.sorted_within_filter:
            # The rows about to show must come in sort order: the source goes back to one sorted
            # order in a layout change. If no row shown now gets hidden, that change applies the
            # new filter too (every persistent index stays valid); otherwise it runs under the
            # filter still on, and the filter change follows.
            resort = src.sort_permutation(src.sort_column, src.sort_order)
            hides = bool(np.any(src.filter_mask(self._text, self._quick) & ~src.filter_mask(text, quick)))
            if not hides:
                self._text, self._quick = text, quick
            src.apply_permutation(resort, layout=True)
            if not hides:
                return
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
        self._text, self._quick = text, quick
        with self._remapping():
            if hasattr(self, "endFilterChange"):
                self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
            else:  # Qt < 6.10
                self.invalidateFilter()

    def accepts(self, row: Row) -> bool:
        """Whether ``row`` passes the current filters (also used for counts)."""
        q = self._quick
        if q:
            if "mismatches" in q and not row.mismatch:
                return False
            if "unreviewed" in q and row.state != ReviewState.UNREVIEWED:
                return False
            if "invalid" in q and not row.label_error:
                return False
            if "unreadable" in q and not row.error:
                return False
            if "duplicates" in q:
                src = self.sourceModel()
                if not isinstance(src, ResultsModel) or not src.in_conflict(row.rel):
                    return False
            if "likely" in q:
                src = self.sourceModel()
                score = src._score_shown(row.k) if isinstance(src, ResultsModel) else row.label_score
                if score is None or score > LIKELY_ERROR_THRESHOLD:
                    return False
        return not self._text or self._text in row.haystack

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        if not self._text and not self._quick:
            return True
        bulk = self._bulk
        if bulk is None:  # one row changed (dynamic filtering)
            return self.accepts(self.sourceModel().rows[source_row])
        if bulk is _LAZY:  # the first call of a re-map of every row: all results at once
            src = self.sourceModel()
            bulk = self._bulk = src.filter_mask(self._text, self._quick)[src._order].tolist()
        return bulk[source_row]

    def shown_rows(self) -> list[Row]:
        """The rows that pass the filters (source order)."""
        rows = self.sourceModel().rows
        if not self._text and not self._quick:
            return list(rows)
        return [r for r in rows if self.accepts(r)]

    def stats(self) -> dict:
        """Counts over the rows shown (numpy over the source's columns)."""
        src = self.sourceModel()
        if not isinstance(src, ResultsModel):
            return stats(self.shown_rows())
        return src.stats(src.filter_mask(self._text, self._quick) if self.filtering else None)

    def row_at(self, proxy_row: int) -> Row | None:
        if 0 <= proxy_row < self.rowCount():
            src = self.mapToSource(self.index(proxy_row, 0))
            return self.sourceModel().rows[src.row()]
        return None

    def proxy_row_of(self, rel: str) -> int | None:
        i = self.sourceModel().row_of(rel)
        if i is None:
            return None
        p = self.mapFromSource(self.sourceModel().index(i, 0))
        return p.row() if p.isValid() else None


def stats(rows: list[Row]) -> dict:
    """Counts for the rows shown: n, predicted, accuracy, mean CER, reviewed."""
    npred = correct = reviewed = unreadable = invalid = 0
    cer_sum = 0.0
    for r in rows:
        if r.error:
            unreadable += 1
        elif r.label_error:
            invalid += 1
        elif r.prediction:
            npred += 1
            cer_sum += r.cer or 0.0
            if r.correct:
                correct += 1
        if r.state in HUMAN_STATES:
            reviewed += 1
    return {
        "n": len(rows),
        "predicted": npred,
        "accuracy": correct / npred if npred else None,
        "cer": cer_sum / npred if npred else None,
        "reviewed": reviewed,
        "unreadable": unreadable,
        "invalid": invalid,
        "likely_errors": sum(r.label_score is not None and r.label_score <= LIKELY_ERROR_THRESHOLD for r in rows),
        "duplicate_conflicts": 0,  # known to the model only (ResultsModel.conflict_mask)
    }


class PredictionDelegate(QStyledItemDelegate):
    """Paints the prediction with the characters that differ from the label highlighted."""

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        row: Row = index.data(ROW_ROLE)
        if row is None or not row.prediction:
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        option.text = ""
        style_ = option.widget.style() if option.widget else None
        if style_ is not None:
            style_.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        painter.save()
        font = index.data(Qt.ItemDataRole.FontRole) or option.font
        painter.setFont(font)
        fm = QFontMetrics(font)
        rect = option.rect.adjusted(6, 0, -4, 0)
        x = rect.left()
        label = row.label
        h = fm.height()
        y = rect.top() + (rect.height() - h) // 2
        for i, ch in enumerate(row.prediction):
            w = fm.horizontalAdvance(ch)
            bad = i >= len(label) or label[i] != ch
            if bad:
                painter.fillRect(QRect(x - 1, y, w + 2, h), style.BAD_BG)
                painter.setPen(QPen(style.BAD))
            else:
                painter.setPen(QPen(QColor(style.TEXT)))
            painter.drawText(QRect(x, y, w, h), Qt.AlignmentFlag.AlignCenter, ch)
            x += w + 1
        painter.restore()


class ReviewTable(QTableView):
    """The results view; review keys act on the current row when it has focus.

    J / Down: next, K / Up: previous, Enter: accept prediction, Space: verify label,
    E / F2: edit label, X: mark unreadable. With several rows selected, Enter and Space act
    on all of them (one undo step).
    """

    sig_accept = Signal()
    """Enter: relabel the current sample with its prediction."""
    sig_verify = Signal()
    """Space: keep the label, mark verified."""
    sig_edit = Signal()
    """E or F2: type a label."""
    sig_unreadable = Signal()
    """X: mark the crop unreadable (no valid plate can be read)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # Shift/Ctrl+click and Shift+arrows select many rows for the batch actions (Enter, Space).
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setSortingEnabled(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setIconSize(THUMB_SIZE)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(THUMB_SIZE.height() + 8)
        self.setItemDelegateForColumn(COL_PRED, PredictionDelegate(self))
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(True)
        hh.setSortIndicator(COL_SCORE, Qt.SortOrder.AscendingOrder)

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {COL_IMAGE: THUMB_SIZE.width() + 12, COL_FILE: 190, COL_LABEL: 96, COL_PRED: 100, COL_SCORE: 100, COL_CER: 52,
                  COL_CONF: 84, COL_STATE: 96, COL_CV: 84}  # fmt: skip
        for col, w in widths.items():
            self.setColumnWidth(col, w)
        hh.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        hh.setStretchLastSection(False)

    def selected_proxy_rows(self) -> list[int]:
        """The selected rows (proxy numbering), top to bottom."""
        sm = self.selectionModel()
        return sorted({i.row() for i in sm.selectedRows()}) if sm is not None else []

    def current_proxy_row(self) -> int:
        idx = self.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_proxy_row(self, row: int) -> None:
        """Make ``row`` (proxy numbering, clamped) current and selected, and scroll to it."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return
        row = max(0, min(row, model.rowCount() - 1))
        idx = model.index(row, COL_FILE)
        self.setCurrentIndex(idx)
        self.selectRow(row)
        self.scrollTo(idx)
        self._anchor = QPersistentModelIndex(idx)

    def _extend_selection(self, delta: int) -> None:
        """Shift+Down/Up: select from the anchor (the row last made current alone) to the moved current row."""
        model = self.model()
        cur = self.current_proxy_row()
        if model is None or cur < 0:
            return
        new = max(0, min(cur + delta, model.rowCount() - 1))
        anchor = getattr(self, "_anchor", None)
        a = anchor.row() if anchor is not None and anchor.isValid() else cur
        sm = self.selectionModel()
        flags = QItemSelectionModel.SelectionFlag
        sm.setCurrentIndex(model.index(new, COL_FILE), flags.NoUpdate)
        sel = QItemSelection(model.index(min(a, new), 0), model.index(max(a, new), model.columnCount() - 1))
        sm.select(sel, flags.ClearAndSelect | flags.Rows)
        self.scrollTo(model.index(new, COL_FILE))

    def mousePressEvent(self, event) -> None:  # noqa: N802
        super().mousePressEvent(event)
        if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = QPersistentModelIndex(self.currentIndex())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods == Qt.KeyboardModifier.ShiftModifier and key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self._extend_selection(1 if key == Qt.Key.Key_Down else -1)
            return
        if mods == Qt.KeyboardModifier.NoModifier:
            if key == Qt.Key.Key_J:
                self.select_proxy_row(self.current_proxy_row() + 1)
                return
            if key == Qt.Key.Key_K:
                self.select_proxy_row(max(0, self.current_proxy_row() - 1))
                return
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.sig_accept.emit()
                return
            if key == Qt.Key.Key_Space:
                self.sig_verify.emit()
                return
            if key in (Qt.Key.Key_E, Qt.Key.Key_F2):
                self.sig_edit.emit()
                return
            if key == Qt.Key.Key_X:
                self.sig_unreadable.emit()
                return
        super().keyPressEvent(event)
        if not mods & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = QPersistentModelIndex(self.currentIndex())

    def keyboardSearch(self, search: str) -> None:  # noqa: N802
        """Disabled: letters are review keys, not type-ahead search."""


__all__ = [
    "COL_CER",
    "COL_CV",
    "COL_SCORE",
    "HEADERS",
    "ResultsModel",
    "ResultsProxy",
    "ReviewTable",
    "Row",
    "SORT_ROLE",
    "stats",
]
