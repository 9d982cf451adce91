"""The progress record every long core operation reports through its callback, and its cancel flag (torch-free)."""

from __future__ import annotations

import threading
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


class StopFlag:
    """A thread-safe cancel flag: pass ``flag`` (callable) as ``should_stop``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()
