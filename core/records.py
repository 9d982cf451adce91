"""The one prediction record of the app: a model's reading of one file, against its label.

Made by :mod:`core.predict`, cached by :mod:`core.store` (which reads rows back as
:class:`core.store.CachedPrediction`, the same attributes decoded lazily), shown by the GUI
and written by :mod:`core.results_csv`. Torch-free, so the store and the CLI import it cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import plates
from .label_score import label_char_probs_from_top2, label_score
from .metrics import cer as char_error_rate


@dataclass(slots=True)
class PredictionResult:
    """The model's reading of one file, compared with the label in its name.

    A record with only ``rel``, ``label`` and ``label_error`` set is a file not predicted yet.

    Attributes:
        rel: Path relative to the dataset folder ('/' separators).
        label: Label read from the file name ("" when none).
        label_error: Why the label is invalid, or ``None``.
        prediction: Predicted plate ("" when the image is unreadable or not predicted yet).
        probs: Probability of each predicted character (7 values).
        runner_up: Second-best character at each position.
        runner_up_probs: Probability of each runner-up.
        confidence: Product of ``probs``: the model's probability of the whole plate.
        cer: Character error rate of ``prediction`` against ``label`` (``None`` if unreadable or no label).
        correct: Exact match (``None`` if unreadable).
        error: Why the image could not be read, or ``None``.
        label_probs: The model's probability of each of the *label's* characters (empty when
            the label is invalid or the file unreadable).
        label_score: How likely the label is right (:func:`core.label_score.label_score`),
            ``None`` when there is no score.
        image_hash: The crop's 64-bit perceptual hash (:func:`core.duplicates.image_hash`,
            signed), for near-duplicate detection; ``None`` when not taken.
        zoomed: The reading shown (``prediction``, ``probs``, runner-up) is of the crop zoomed in,
            not of the crop as framed. ``label_probs`` and ``label_score`` come from the label read
            (:func:`core.models.read_crops`): the crop's reads averaged, as framed and zoomed,
            wherever it was read zoomed, whichever read is shown.
        negative: The reading (shown and label read) is of the crop's negative: a light plate with dark
            characters (single-row yellow) read as white on blue, where that was surer
            (:func:`core.models.read_crops`).
        second_prediction: A second reader's reading (a second opinion), or "".
        second_label_score: The second reader's label score, or ``None``; when set,
            ``label_score`` is the two readers' combined score
            (:func:`core.label_score.with_second_opinion`).
    """

    rel: str
    label: str
    label_error: str | None = None
    prediction: str = ""
    probs: list[float] = field(default_factory=list)
    runner_up: str = ""
    runner_up_probs: list[float] = field(default_factory=list)
    confidence: float = 0.0
    cer: float | None = None
    correct: bool | None = None
    error: str | None = None
    label_probs: list[float] = field(default_factory=list)
    label_score: float | None = None
    image_hash: int | None = None
    zoomed: bool = False
    negative: bool = False
    second_prediction: str = ""
    second_label_score: float | None = None

    @property
    def unreadable(self) -> bool:
        return self.error is not None

    @property
    def suspect(self) -> int | None:
        """Position (0-based) of the label's most suspicious character, or ``None``."""
        return label_score(self.label_probs or None)[1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    as_dict = to_dict


def relabelled(rec: Any, rel: str) -> dict[str, Any]:
    """The label-dependent fields of a prediction record once its file is named ``rel``.

    The reading stays (renaming keeps the pixels); label, CER, exact match and label score
    follow the new name. The label's character probabilities come from the record's two
    best characters per position (:func:`core.label_score.label_char_probs_from_top2`) of the read it
    shows; the label read, which scored the label when the crop was read, is not kept (the two
    differ only where the crop was read zoomed, :func:`core.models.read_crops`).

    Returns:
        ``{label, label_error, cer, correct, label_probs, label_score}``.
    """
    parsed = plates.parse_name(rel.rsplit("/", 1)[-1])
    label, pred = parsed.label, rec.prediction
    lp = None
    if pred and not parsed.error:
        lp = label_char_probs_from_top2(label, pred, rec.probs, rec.runner_up, rec.runner_up_probs)
    return {
        "label": label,
        "label_error": parsed.error,
        "cer": char_error_rate(pred, label) if pred and label else None,
        "correct": (pred == label) if pred else None,
        "label_probs": lp or [],
        "label_score": label_score(lp)[0],
    }
