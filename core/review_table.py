"""The review table: a folder's rows as numpy columns, with their order, filters and counts.

The GUI's table is a thin Qt model over this (no Qt here). It keeps the core records as
they came (record index ``k``) and, per record, the columns that order, filter and count
the review (flags, CER, confidence, label score, state code, cross-validated score), built
in one pass at load and updated per edit. A :class:`Row` is only made when something reads
it (painted rows, the inspector, edits), so opening 200,000 cached results builds no
per-row Python objects.

Two orders are kept: ``order`` (every record, sorted by the current sort key) and ``view``
(the records that pass the filters, in that order): the rows a window shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import compress
from operator import attrgetter, eq

import numpy as np

from .gc_pause import gc_paused
from .label_score import LIKELY_ERROR_THRESHOLD, label_score, review_keys
from .records import relabelled
from .review_state import HUMAN_STATES, ReviewState

#: What the table can be sorted by. ``label_score`` ascending is the review order.
SORT_KEYS = ("file", "label", "prediction", "label_score", "cer", "confidence", "state", "cv", "second")
#: Other readings a row can carry besides its own: out-of-sample (k-fold) and a second reader's.
READINGS = ("cv", "second")
#: Quick filters, each keeping the rows that are...
QUICK_FILTERS = {
    "likely": "likely label errors (label score at or below the threshold)",
    "duplicates": "near duplicates of a crop with another label",
    "mismatches": "read otherwise than labelled, unreadable or invalid",
    "unreviewed": "not reviewed yet",
    "invalid": "labelled with an invalid plate",
    "unreadable": "unreadable images",
}
#: The order of states in the State column (ascending).
_STATE_RANK = {
    ReviewState.MISSING: 0,
    ReviewState.UNREADABLE: 1,
    ReviewState.INVALID: 2,
    ReviewState.UNREVIEWED: 3,
    ReviewState.FIXED: 4,
    ReviewState.VERIFIED: 5,
}


@dataclass(frozen=True)
class Narrowing:
    """Filters on the rows' values, beside the text and the quick filters (``None``: any)."""

    province: str | None = None
    """The label's first character (the province)."""
    position: int | None = None
    """0-based: the reading differs from the label at this character."""
    confusion: tuple[str, str] | None = None
    """(label's character, reading's character): the reading has the second where the label has the first."""
    score_min: float | None = None
    """The lowest label score shown (the score that orders the review)."""
    score_max: float | None = None
    """The highest label score shown."""
    conf_min: float | None = None
    """The lowest confidence shown (the model's probability of its whole reading)."""
    conf_max: float | None = None
    """The highest confidence shown."""
    state: str | None = None
    """The state as shown (``ReviewState`` value; missing, unreadable and invalid included)."""

    @property
    def active(self) -> bool:
        return self != Narrowing()


def shown_state(state: str, error, label_error, missing: bool) -> str:
    """The state a row shows: missing, unreadable and invalid override *unreviewed*."""
    if missing:
        return ReviewState.MISSING
    if state == ReviewState.UNREVIEWED and error:
        return ReviewState.UNREADABLE
    if state == ReviewState.UNREVIEWED and label_error:
        return ReviewState.INVALID
    return state


class Row:
    """One sample of the table: its prediction (if any) and its review state."""

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
        self.k = -1  # record index in the table (set by ReviewTable)

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

    @property
    def zoomed(self) -> bool:
        """The prediction shown is of the crop zoomed in (the label score: its reads averaged, core.records)."""
        return bool(getattr(self._rec, "zoomed", False))

    @property
    def negative(self) -> bool:
        """The prediction is of the crop's negative (a light plate with dark characters, core.records)."""
        return bool(getattr(self._rec, "negative", False))

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
            self._hay = _haystack(self.rel, self.label, self.prediction)
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
    def mismatch(self) -> bool:
        return self.error is not None or self.label_error is not None or (bool(self.prediction) and not self.correct)

    @property
    def display_state(self) -> str:
        return shown_state(self.state, self.error, self.label_error, self.missing)


def _narrowed(label: str, pred: str, nw: Narrowing) -> bool:
    """Whether a row with this label and reading passes the narrowing's character filters."""
    if nw.province is not None and label[:1] != nw.province:
        return False
    if nw.position is not None:
        i = nw.position
        if (
            not pred
            or (i < len(label) and i < len(pred) and label[i] == pred[i])
            or (i >= len(label) and i >= len(pred))
        ):
            return False
    if nw.confusion is not None:
        a, b = nw.confusion
        if not pred or len(pred) != len(label) or not any(x == a and y == b for x, y in zip(label, pred)):
            return False
    return True


def _haystack(rel: str, label: str, prediction: str | None) -> str:
    return f"{rel}\t{label}\t{prediction or ''}".casefold()


_STATE_NAMES0 = tuple(ReviewState)  # state codes 0..5, in the enum's order
_S_UNREVIEWED, _S_VERIFIED, _S_FIXED, _S_UNREADABLE, _S_INVALID, _S_MISSING = range(6)
_COLS = {"err": np.bool_, "lerr": np.bool_, "pred": np.bool_, "correct": np.bool_, "cer": np.float64,
         "conf": np.float64, "state": np.int16, "missing": np.bool_, "score": np.float64,
         "cv": np.float64, "second": np.float64}  # fmt: skip
_SCORE_OF = attrgetter("label_score")
_ATTRS = tuple(map(attrgetter, ("rel", "label", "label_error", "prediction", "confidence", "cer", "error",
                                "label_score")))  # fmt: skip


def _perm_from_keys(keys: tuple[np.ndarray, ...], descending: bool) -> np.ndarray:
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
        # Strings cannot be negated: sort the reversed keys, then reverse (ties keep their order).
        return (len(k) - 1 - np.argsort(k[::-1], kind="stable"))[::-1]
    return np.argsort(k, kind="stable")


class _RowsView(Sequence):
    """``table.rows``: every row in sort order (filters ignored), each :class:`Row` made on first access."""

    __slots__ = ("_t",)

    def __init__(self, table: ReviewTable):
        self._t = table

    def __len__(self) -> int:
        return len(self._t.order)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._t.row_k(k) for k in self._t.order[i].tolist()]
        return self._t.row_k(int(self._t.order[i]))

    def __iter__(self):
        row = self._t.row_k
        for k in self._t.order.tolist():
            yield row(k)


class ReviewTable:
    """The rows of a review, their sort order, the filters and the counts.

    Attributes:
        sort_key: One of :data:`SORT_KEYS`.
        descending: Whether the sort is descending.
        text: The text filter (case-folded; "" for none).
        quick: The quick filters on (names of :data:`QUICK_FILTERS`).
        order: Record indexes ``k`` of every row, in sort order.
        view: Record indexes of the rows that pass the filters, in sort order.
        needs_resort: Rows were added or changed since the last sort (they sit where they were).
    """

    def __init__(self) -> None:
        self.sort_key = "label_score"
        self.descending = False
        self.text = ""
        self.quick: frozenset[str] = frozenset()
        self.narrowing = Narrowing()
        self._state_names: list[str] = list(_STATE_NAMES0)
        self._state_code: dict[str, int] = {s: i for i, s in enumerate(_STATE_NAMES0)}
        self._src: dict[str, dict] = {name: {} for name in READINGS}  # the latest other readings, {rel: record}
        self._dup_groups: list[list[str]] = []  # near-duplicate crops (rels), from the last run
        self.rows = _RowsView(self)
        self._reset()

    def _reset(self) -> None:
        self._recs: list = []  # core records by k
        self._objs: list[Row | None] = []  # Row by k, made on first use
        self._n = 0
        self._a = {name: np.zeros(0, dt) for name, dt in _COLS.items()}  # columns by k (capacity-sized)
        self._rel: list[str] = []
        self._label: list[str] = []
        self._pred: list[str] = []
        self._hay: list[str] | None = None  # case-folded filter haystack by k, built on first text filter
        self._k_of: dict[str, int] | None = None  # rel -> k, built on first lookup
        self._skeys: dict[str, np.ndarray] = {}  # string sort keys by k, built on first sort by the column
        self._rec: dict[str, dict[int, object]] = {name: {} for name in READINGS}  # other readings by k
        self._shown = np.ones(0, np.bool_)  # filter result by k
        self.order = np.zeros(0, np.int64)
        self.view = self.order
        self._version = 0  # counts changes to the rows' values: a sort of unchanged rows is a no-op
        self._sorted_as: tuple | None = None  # (key, descending, version) of the last sort
        self._opos: np.ndarray | None = None  # k -> position in order
        self._vpos: np.ndarray | None = None  # k -> position in view (-1: hidden)
        self.needs_resort = False

    # ------------------------------------------------------------ columns

    def __len__(self) -> int:
        """The number of rows (filters ignored)."""
        return self._n

    def _col(self, name: str) -> np.ndarray:
        return self._a[name][: self._n]

    def _code(self, state: str) -> int:
        c = self._state_code.get(state)
        if c is None:
            c = self._state_code[state] = len(self._state_names)
            self._state_names.append(state)
        return c

    def _append(self, recs: list, states: dict[str, str]) -> None:
        """Add records (and their columns) at the end of the record order; not to the sort order."""
        m = len(recs)
        if not m:
            return
        self._version += 1
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
        a["second"][start:end] = np.nan
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
            self._hay.extend(map(_haystack, rel, label, pred))
        if self._k_of is not None:
            self._k_of.update(zip(rel, range(start, end)))
        self._skeys = {}
        self._n = end
        for name, src in self._src.items():
            if src:
                for k in range(start, end):
                    res = src.get(self._rel[k])
                    if res is not None:
                        self._set_reading(name, k, res)

    def row_k(self, k: int) -> Row:
        """The row of record ``k``."""
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
        self._version += 1
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
        for key, arr in list(self._skeys.items()):
            v = r.rel if key == "file" else r.label if key == "label" else r.prediction
            if len(v) <= arr.dtype.itemsize // 4:
                arr[k] = v
            else:
                del self._skeys[key]

    def _haystack(self) -> list[str]:
        if self._hay is None:
            self._hay = list(map(_haystack, self._rel, self._label, self._pred))
        return self._hay

    def k_of(self, rel: str) -> int | None:
        """The record index of the sample ``rel``, or ``None``."""
        if self._k_of is None:
            self._k_of = dict(zip(self._rel, range(self._n)))
        return self._k_of.get(rel)

    def _order_pos(self) -> np.ndarray:
        if self._opos is None:
            pos = np.empty(self._n, np.int64)
            pos[self.order] = np.arange(len(self.order))
            self._opos = pos
        return self._opos

    def view_pos(self) -> np.ndarray:
        """By k: the row's position in :attr:`view`, -1 where the filters hide it."""
        if self._vpos is None:
            pos = np.full(self._n, -1, np.int64)
            pos[self.view] = np.arange(len(self.view))
            self._vpos = pos
        return self._vpos

    def _set_view(self) -> None:
        self.view = self.order if not self.filtering else self.order[self._shown[self.order]]
        self._vpos = None

    def _display_codes(self, ks=slice(None)) -> np.ndarray:
        """State codes as shown (:func:`shown_state`, over the columns), by k."""
        st = self._col("state")[ks].copy()
        unrev = st == _S_UNREVIEWED
        st[unrev & self._col("lerr")[ks]] = _S_INVALID
        st[unrev & self._col("err")[ks]] = _S_UNREADABLE
        st[self._col("missing")[ks]] = _S_MISSING
        return st

    def _effective_score(self, ks=slice(None)) -> np.ndarray:
        """The label score that orders the review, by k: the cross-validated one where there is one, else
        the reader's combined with a second reader's (core.label_score.combined_score: the larger)."""
        cv = self._col("cv")[ks]
        own = np.fmax(self._col("score")[ks], self._col("second")[ks])  # fmax: NaN where neither has one
        return np.where(np.isnan(cv), own, cv)

    def keys(self, key: str, ks=slice(None)) -> tuple[np.ndarray, ...]:
        """Sort keys of ``key`` (one of :data:`SORT_KEYS`) by k, ascending in its ascending order.

        ``ks`` (an index array) limits the keys to those records.
        """
        c = self._col
        missing = c("missing")[ks]
        if key in ("label_score", "cer"):
            # core.label_score.review_keys, missing files first; "cer" ascending is the reverse of the
            # review order by CER, so that descending (the CER column's first click) gives that order.
            by = "score" if key == "label_score" else "cer"
            group, *rest = review_keys(
                c("err")[ks], c("lerr")[ks], self._effective_score(ks), c("cer")[ks], c("conf")[ks], by
            )
            group = np.where(missing, -1, group).astype(np.int8)
            return (group, *rest) if by == "score" else tuple(-x for x in (group, *rest))
        if key == "cv":
            return np.nan_to_num(c("cv")[ks], nan=2.0), -c("cer")[ks]
        if key == "confidence":
            return (np.where(c("err")[ks], -1.0, c("conf")[ks]),)
        if key == "state":
            rank = np.array([_STATE_RANK.get(s, 9) for s in self._state_names], np.int8)
            return (rank[self._display_codes(ks)],)
        if key == "second":
            return (np.array([getattr(self._rec["second"].get(k), "prediction", "") or "" for k in
                              (range(self._n) if isinstance(ks, slice) else np.asarray(ks).tolist())]),)  # fmt: skip
        if key not in ("file", "label", "prediction"):
            raise ValueError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
        arr = self._skeys.get(key)
        if arr is None:
            src = self._label if key == "label" else self._pred if key == "prediction" else self._rel
            arr = self._skeys[key] = np.array(src) if src else np.zeros(0, "<U1")
        return (arr[ks],)

    def _set_reading(self, name: str, k: int, res) -> None:
        self._rec[name][k] = res
        score = getattr(res, "label_score", None)
        self._a[name][k] = np.nan if score is None else score

    # ------------------------------------------------------------ reading

    def row_of(self, rel: str) -> int | None:
        """The position of ``rel`` in :attr:`order` (every row), or ``None``."""
        k = self.k_of(rel)
        return None if k is None else int(self._order_pos()[k])

    def view_row_of(self, rel: str) -> int | None:
        """The position of ``rel`` among the rows shown, or ``None`` (unknown or filtered out)."""
        k = self.k_of(rel)
        if k is None:
            return None
        p = int(self.view_pos()[k])
        return None if p < 0 else p

    def view_row(self, i: int) -> Row | None:
        """The ``i``-th row shown, or ``None``."""
        return self.row_k(int(self.view[i])) if 0 <= i < len(self.view) else None

    def shown_rows(self) -> list[Row]:
        """The rows that pass the filters, in order."""
        return [self.row_k(k) for k in self.view.tolist()]

    def score_shown(self, k: int) -> float | None:
        """The label score that orders record ``k`` (as :meth:`_effective_score`)."""
        s = float(self._effective_score(np.array([k]))[0])
        return None if s != s else s

    def reading_k(self, name: str, k: int):
        """Record ``k``'s other reading ``name`` (one of :data:`READINGS`), or ``None``."""
        return self._rec[name].get(k)

    def reading_of(self, name: str, rel: str):
        """The other reading ``name`` (one of :data:`READINGS`) the sample ``rel`` has now, or ``None``."""
        k = self.k_of(rel)
        return None if k is None else self._rec[name].get(k)

    @property
    def has_second(self) -> bool:
        """Whether a second reader's readings are shown."""
        return bool(self._src["second"])

    def _dup_ks(self) -> list[list[int]]:
        return [[k for k in map(self.k_of, g) if k is not None] for g in self._dup_groups]

    @property
    def has_duplicates(self) -> bool:
        return bool(self._dup_groups)

    def conflict_mask(self) -> np.ndarray:
        """By k: the crop is (nearly) the same picture as another crop with a different label."""
        mask = np.zeros(self._n, np.bool_)
        for ks in self._dup_ks():
            if len({self._label[k] for k in ks}) > 1:
                mask[ks] = True
        return mask

    def duplicates_of(self, rel: str) -> list[Row]:
        """The other rows that show (nearly) the same picture as ``rel`` (any labels)."""
        k0 = self.k_of(rel)
        if k0 is None:
            return []
        for ks in self._dup_ks():
            if k0 in ks:
                return [self.row_k(k) for k in ks if k != k0]
        return []

    def in_conflict(self, rel: str) -> bool:
        """Whether ``rel`` has a near duplicate with another label."""
        k = self.k_of(rel)
        label = None if k is None else self._label[k]
        return any(r.label != label for r in self.duplicates_of(rel))

    # ------------------------------------------------------------ filters and counts

    @property
    def filtering(self) -> bool:
        """Whether a text or quick filter is on."""
        return bool(self.text or self.quick or self.narrowing.active)

    def filter_mask(
        self, text: str | None = None, quick: Iterable[str] | None = None, ks=None, narrowing: Narrowing | None = None
    ) -> np.ndarray:
        """Which records (by k, or those of the index array ``ks``) pass a text filter, quick filters and a
        :class:`Narrowing`. ``text`` (case-folded), ``quick`` and ``narrowing`` default to the table's own.
        """
        text = self.text if text is None else text
        q = set(self.quick if quick is None else quick)
        nw = self.narrowing if narrowing is None else narrowing
        sel = slice(None) if ks is None else np.asarray(ks, np.int64)
        c = lambda name: self._col(name)[sel]  # noqa: E731
        n = self._n if ks is None else len(sel)
        mask = np.ones(n, np.bool_)
        err, lerr = c("err"), c("lerr")
        if "mismatches" in q:
            mask &= err | lerr | (c("pred") & ~c("correct"))
        if "unreviewed" in q:
            mask &= c("state") == _S_UNREVIEWED
        if "invalid" in q:
            mask &= lerr
        if "unreadable" in q:
            mask &= err
        if "likely" in q:
            mask &= self._effective_score(sel) <= LIKELY_ERROR_THRESHOLD  # nan: False
        if "duplicates" in q:
            mask &= self.conflict_mask()[sel]
        if nw.score_min is not None or nw.score_max is not None:
            score = self._effective_score(sel)
            mask &= ~np.isnan(score)
            if nw.score_min is not None:
                mask &= score >= nw.score_min
            if nw.score_max is not None:
                mask &= score <= nw.score_max
        if nw.conf_min is not None or nw.conf_max is not None:
            conf = np.where(c("pred"), c("conf"), np.nan)  # rows without a reading have no confidence
            mask &= ~np.isnan(conf)
            if nw.conf_min is not None:
                mask &= conf >= nw.conf_min
            if nw.conf_max is not None:
                mask &= conf <= nw.conf_max
        if nw.state is not None:
            code = self._state_code.get(nw.state)
            mask &= self._display_codes(sel) == code if code is not None else False
        if nw.province is not None or nw.position is not None or nw.confusion is not None:
            idx = np.flatnonzero(mask)
            kk = idx if ks is None else sel[idx]
            labels, preds = self._label, self._pred
            hit = np.fromiter((_narrowed(labels[k], preds[k], nw) for k in kk.tolist()), np.bool_, len(idx))
            mask[idx[~hit]] = False
        if text:
            hay = self._haystack()
            idx = np.flatnonzero(mask)
            kk = idx if ks is None else sel[idx]
            hit = np.fromiter((text in hay[k] for k in kk.tolist()), np.bool_, len(idx))
            mask[idx[~hit]] = False
        return mask

    def set_filter(self, text: str, quick: Iterable[str], narrowing: Narrowing | None = None) -> None:
        """Set the text filter (matched case-folded, stripped), the quick filters on and the narrowing
        (``None``: keep the current one); the view follows."""
        quick = frozenset(quick)
        unknown = quick - set(QUICK_FILTERS)
        if unknown:
            raise ValueError(f"unknown quick filter {sorted(unknown)[0]!r}; expected one of {', '.join(QUICK_FILTERS)}")
        self.text, self.quick = text.strip().casefold(), quick
        if narrowing is not None:
            self.narrowing = narrowing
        self._shown = self.filter_mask() if self.filtering else np.ones(self._n, np.bool_)
        self._set_view()

    def visibility_change(self, k: int) -> tuple[str, int] | None:
        """After record ``k`` changed: ``("hide", view row)``, ``("show", view row to insert at)`` or ``None``.

        Nothing changes until :meth:`apply_visibility` (a Qt model announces the change in between).
        """
        now = not self.filtering or bool(self.filter_mask(ks=[k])[0])
        was = bool(self._shown[k])
        if now == was:
            return None
        if was:
            return "hide", int(self.view_pos()[k])
        opos = self._order_pos()
        return "show", int(np.searchsorted(opos[self.view], opos[k]))

    def apply_visibility(self, k: int) -> None:
        """Apply :meth:`visibility_change` of record ``k``."""
        change = self.visibility_change(k)
        if change is None:
            return
        what, p = change
        self._shown[k] = what == "show"
        self.view = np.insert(self.view, p, k) if what == "show" else np.delete(self.view, p)
        self._vpos = None

    def stats(self, shown_only: bool = True) -> dict:
        """Counts over the rows shown (or every row): n, predicted, accuracy, mean CER, reviewed, problems."""
        mask = self._shown if shown_only and self.filtering else None
        c = self._col
        err, lerr, pred, correct, cer, state = c("err"), c("lerr"), c("pred"), c("correct"), c("cer"), c("state")
        likely = self._effective_score() <= LIKELY_ERROR_THRESHOLD
        conflicts = self.conflict_mask()
        n = self._n
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
        human = np.isin(state, [self._state_code[s] for s in HUMAN_STATES])
        return {
            "n": n,
            "predicted": npred,
            "accuracy": ncorrect / npred if npred else None,
            "cer": cer_sum / npred if npred else None,
            "reviewed": int(np.count_nonzero(human)),
            "unreadable": int(np.count_nonzero(err)),
            "invalid": int(np.count_nonzero(~err & lerr)),
            "likely_errors": int(np.count_nonzero(likely)),
            "duplicate_conflicts": int(np.count_nonzero(conflicts)),
        }

    # ------------------------------------------------------------ order

    def sort(self, key: str | None = None, descending: bool | None = None) -> None:
        """Sort by ``key`` (default: the current one), stably: ties keep their current order."""
        if key is not None:
            if key not in SORT_KEYS:
                raise ValueError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
            self.sort_key = key
        if descending is not None:
            self.descending = descending
        done = (self.sort_key, self.descending, self._version)
        if done == self._sorted_as and not self.needs_resort:
            self._set_view()
            return  # already in this order (a view asks twice: the header's indicator, then the sort)
        if len(self.order):
            keys = self.keys(self.sort_key, self.order)
            self.order = self.order[_perm_from_keys(keys, self.descending)]
        self._sorted_as = done
        self._opos = None
        self.needs_resort = False
        self._set_view()

    # ------------------------------------------------------------ content

    def set_records(self, records: Iterable, states: dict[str, str], predicted_only: bool = False) -> list:
        """Replace every row and sort by the current key (the filters stay).

        Args:
            records: Core records (``PredictionResult``, cached predictions, placeholders).
            states: ``{rel: review state}`` (absent: unreviewed).
            predicted_only: Keep only records with a prediction or an error.

        Returns:
            The records left out (``predicted_only``), else ``[]``.
        """
        recs = records if isinstance(records, list) else list(records)
        left_out: list = []
        self._reset()
        self._append(recs, states)
        if predicted_only and self._n:
            keep = self._col("pred") | self._col("err")
            if not keep.all():
                left_out = list(compress(recs, ~keep))
                self._reset()
                self._append(list(compress(recs, keep)), states)
        self.order = np.arange(self._n, dtype=np.int64)
        self._shown = self.filter_mask() if self.filtering else np.ones(self._n, np.bool_)
        self.sort()
        return left_out

    def add(self, results: list, states: dict[str, str] | None = None) -> tuple[list[int], int]:
        """Fill in predictions of existing rows; rows not in the table yet are appended (order and view).

        ``states`` gives the review state of appended rows (``{rel: state}``). The rows stay
        where they are until the next :meth:`sort` (:attr:`needs_resort`); filters are not
        re-applied to the changed rows (see :meth:`visibility_change`).

        Returns:
            The record indexes of the changed rows, and the number of rows appended to the view.
        """
        new, changed = [], []
        for r in results:
            k = self.k_of(r.rel)
            if k is None:
                new.append(r)
            else:
                self.row_k(k).set_prediction(r)
                self._sync(k)
                changed.append(k)
        shown_new = 0
        if new:
            start = self._n
            self._append(new, states or {})
            ks = np.arange(start, self._n, dtype=np.int64)
            passes = self.filter_mask(ks=ks) if self.filtering else np.ones(len(ks), np.bool_)
            self._shown = np.concatenate([self._shown, passes])
            self.order = np.concatenate([self.order, ks])
            self._opos = None
            shown_new = int(np.count_nonzero(passes))
            if self.filtering:
                self.view = np.concatenate([self.view, ks[passes]])
            else:
                self.view = self.order
            self._vpos = None
        if changed or new:
            self.needs_resort = True
        return changed, shown_new

    def remove(self, rels: Iterable[str]) -> int:
        """Take the rows of these samples out (unknown rels are ignored); returns how many.

        The records are compacted, so counts and filters never see them again; the others
        keep their order.
        """
        ks = [k for k in map(self.k_of, rels) if k is not None]
        if not ks:
            return 0
        self._version += 1
        keep = np.ones(self._n, np.bool_)
        keep[ks] = False
        new_k = np.cumsum(keep) - 1  # old k -> new k, where kept
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
        self._skeys = {key: arr[keep] for key, arr in self._skeys.items()}
        self._rec = {name: {int(new_k[k]): res for k, res in rec.items() if keep[k]} for name, rec in self._rec.items()}
        self._k_of = None
        self._n = n
        self._shown = self._shown[keep]
        self.order = new_k[self.order[keep[self.order]]]
        self._opos = None
        self._set_view()
        return len(ks)

    def rename(self, old: str, new: str) -> int | None:
        """The file ``old`` is now ``new``: its label (and what follows from it) changes; returns its k."""
        k = self.k_of(old)
        if k is None:
            return None
        self.row_k(k).rename(new)
        self._sync(k)
        for name in READINGS:  # the other readings' scores follow the new label, as the row's own does
            res = self._src[name].pop(old, None)
            if res is None:
                continue
            if getattr(res, "probs", None):  # a reading with no per-character probabilities keeps its score
                res = replace(res.to_record() if hasattr(res, "to_record") else res, rel=new, **relabelled(res, new))
            self._src[name][new] = res
            self._set_reading(name, k, res)
        return k

    def set_state(self, rel: str, state: str) -> int | None:
        """Set the review state of ``rel``; returns its k."""
        k = self.k_of(rel)
        if k is not None:
            self.row_k(k).state = state
            self._sync(k)
        return k

    def mark_missing(self, rel: str) -> int | None:
        """The file of ``rel`` is gone; returns its k when that changed its row."""
        k = self.k_of(rel)
        if k is None or self._a["missing"][k]:
            return None
        self.row_k(k).missing = True
        self._sync(k)
        return k

    def set_crossval(self, results: dict) -> None:
        """Out-of-sample (k-fold) predictions, ``{rel: PredictionResult}``: the CV score column.

        They order the review where present (:meth:`score_shown`), so the *likely* filter
        depends on them: re-filter if it is on.
        """
        self.set_readings("cv", results)

    def set_second(self, results: dict) -> None:
        """A second reader's predictions, ``{rel: record}`` (``{}``: none): the second reading column,
        and the label score becomes the two readers' combined one. Re-filter if *likely* is on."""
        self.set_readings("second", results)
        self.needs_resort = True

    def add_second(self, results: dict) -> None:
        """More of the second reader's predictions (as they come in)."""
        self._version += 1
        self._src["second"].update(results)
        for rel, res in results.items():
            k = self.k_of(rel)
            if k is not None:
                self._set_reading("second", k, res)
        self.needs_resort = True

    def set_readings(self, name: str, results: dict) -> None:
        """Replace the other reading ``name`` (one of :data:`READINGS`) of every row: ``{rel: record}``."""
        self._version += 1
        self._src[name] = dict(results)
        self._a[name][:] = np.nan
        with gc_paused():
            ks = list(map(self.k_of, self._src[name]))
            vals = list(self._src[name].values())
            if None in ks:  # results for files not in the table
                keep = [k is not None for k in ks]
                ks, vals = list(compress(ks, keep)), list(compress(vals, keep))
            self._rec[name] = dict(zip(ks, vals))
            if ks:
                self._a[name][np.array(ks, np.int64)] = np.array(list(map(_SCORE_OF, vals)), np.float64)  # None: nan

    def set_duplicates(self, groups: Iterable) -> bool:
        """Near-duplicate groups (``core.duplicates.DuplicateGroup``): membership by picture; whether a
        group is a conflict (labels differ) is judged on the labels the rows carry now.

        Returns:
            Whether anything changed (no groups before or after: nothing to repaint).
        """
        new = [list(g.rels) for g in groups]
        if not new and not self._dup_groups:
            return False
        self._dup_groups = new
        return True

    def refilter(self) -> None:
        """Apply the filters again to every row (after a change that may move many rows in or out)."""
        self.set_filter(self.text, self.quick)

    def confusions(self, shown_only: bool = False) -> dict[tuple[str, str], int]:
        """How often the reading has one character where the label has another, over the rows read with
        a plate of the label's length (``{(label's, reading's): count}``; substitutions only)."""
        ks = self.view if shown_only else range(self._n)
        lerr, err = self._col("lerr"), self._col("err")
        out: dict[tuple[str, str], int] = {}
        labels, preds = self._label, self._pred
        for k in ks.tolist() if isinstance(ks, np.ndarray) else ks:
            lb, p = labels[k], preds[k]
            if p and not lerr[k] and not err[k] and len(lb) == len(p) and lb != p:
                for a, b in zip(lb, p):
                    if a != b:
                        out[(a, b)] = out.get((a, b), 0) + 1
        return out
