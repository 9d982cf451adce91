"""core.decode: the one decoding (grammar, then best characters) for the app, training and the recipe."""

from __future__ import annotations

import numpy as np
import torch

from core.decode import apply_grammar, decode, top2
from core.plates import OTHERS, PROVINCES


def _outputs(seed: int = 0, n: int = 16):
    rng = np.random.default_rng(seed)
    first = rng.random((n, 1, len(PROVINCES))).astype(np.float32)
    tail = rng.random((n, 6, len(OTHERS))).astype(np.float32)
    tail[:, 0, OTHERS.index("8")] = 50.0  # the best raw score at position 2 is a digit
    return first, tail


def test_position_two_is_always_a_letter_and_the_three_paths_agree():
    first, tail = _outputs()
    plates = decode(first, tail, PROVINCES, OTHERS)
    assert all(p[1].isalpha() for p in plates)
    probs_f = torch.from_numpy(first).softmax(-1).numpy()
    probs_t = apply_grammar(torch.from_numpy(tail).softmax(-1).numpy(), OTHERS)
    assert np.allclose(probs_t[:, 0].sum(-1), 1.0, atol=1e-5) and (probs_t[:, 0, OTHERS.index("8")] == 0).all()
    # logits (training), probabilities (the app) and torch tensors give the same plates
    assert decode(probs_f, probs_t, PROVINCES, OTHERS) == plates
    assert decode(torch.from_numpy(first), torch.from_numpy(tail), PROVINCES, OTHERS) == plates
    assert [t[0] for t in top2(probs_f, probs_t, PROVINCES, OTHERS)] == plates


def test_training_validation_and_the_app_use_the_one_decoder():
    import core.predict as predict_mod
    import core.train as train_mod
    from core import decode as decode_mod

    assert train_mod.decode is decode_mod.decode  # best-checkpoint selection decodes as users see
    assert predict_mod.top2 is decode_mod.top2 and predict_mod.apply_grammar is decode_mod.apply_grammar
