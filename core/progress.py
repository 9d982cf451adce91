"""The progress record every long core operation reports through its callback (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    """Progress of a long operation (prediction, renames, export).

    Attributes:
        done: Items finished.
        total: Items in all.
        images_per_s: Throughput so far (0 when not meaningful).
        eta_s: Estimated seconds left (0 when unknown).
        message: What is being done, for a status line.
    """

    done: int
    total: int
    images_per_s: float = 0.0
    eta_s: float = 0.0
    message: str = ""
