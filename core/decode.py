"""The one way the app turns a reader's outputs into plates: the plate grammar, then the best
characters (torch-free, NumPy).

Used by the app's reader (:class:`core.predict.Predictor`), by validation while training (the
best checkpoint is selected with it) and by the default model's recipe for its figures, so a
figure and what the app shows come from the same decoding.

The grammar: the city code (position 2) is always a letter, so digits are masked there and
that position's probabilities renormalised. Scores may be probabilities or logits for
:func:`decode`; :func:`apply_grammar` and :func:`top2` take probabilities.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import plates


@lru_cache(maxsize=8)
def letter_mask(others: str) -> np.ndarray:
    """Which characters of the ``others`` alphabet may stand at position 2 (letters)."""
    return np.array([c in plates.LETTERS for c in others])


def apply_grammar(tail: np.ndarray, others: str) -> np.ndarray:
    """The tail head's probabilities ``(B, 6, len(others))`` with position 2 restricted to letters (a copy)."""
    tail = np.array(tail, copy=True)
    t1 = tail[:, 0, :] * letter_mask(others)
    tail[:, 0, :] = t1 / np.maximum(t1.sum(-1, keepdims=True), 1e-30)  # renormalised even when tiny
    return tail


def decode(first, tail, provinces: str, others: str) -> list[str]:
    """The best plate per sample, grammar applied.

    Args:
        first: Province scores ``(B, 1, len(provinces))`` (probabilities or logits; a torch
            tensor is accepted).
        tail: Scores of the other six positions ``(B, 6, len(others))``.
        provinces, others: The model's alphabets.
    """
    first, tail = _numpy(first), _numpy(tail)
    f = first[:, 0].argmax(-1)
    t = tail.argmax(-1)
    mask = letter_mask(others)
    t[:, 0] = np.flatnonzero(mask)[tail[:, 0][:, mask].argmax(-1)]
    return [provinces[a] + "".join(others[j] for j in row) for a, row in zip(f.tolist(), t.tolist())]


def top2(
    first: np.ndarray, tail: np.ndarray, provinces: str, others: str
) -> list[tuple[str, list[float], str, list[float]]]:
    """Best and second-best character per position with their probabilities.

    ``tail`` must come from :func:`apply_grammar`. Returns ``(prediction, probs, runner_up,
    runner_up_probs)`` per sample.
    """
    f_idx, f_p = _top2(first)
    t_idx, t_p = _top2(tail)
    out = []
    for b in range(len(first)):
        pred = provinces[f_idx[b, 0, 0]] + "".join(others[j] for j in t_idx[b, :, 0])
        runner = provinces[f_idx[b, 0, 1]] + "".join(others[j] for j in t_idx[b, :, 1])
        probs = [float(f_p[b, 0, 0])] + t_p[b, :, 0].tolist()
        rprobs = [float(f_p[b, 0, 1])] + t_p[b, :, 1].tolist()
        out.append((pred, probs, runner, rprobs))
    return out


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the two largest entries along the last axis."""
    idx = np.argsort(-p, axis=-1)[..., :2]
    return idx, np.take_along_axis(p, idx, -1)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)
