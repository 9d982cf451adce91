"""The review state of a sample: the one definition (the store keeps its value, the GUI shows it).

A sample with no state recorded is unreviewed. ``verified`` and ``fixed`` are a person's
decisions (a model re-run never replaces them); ``unreadable`` and ``invalid`` are set by
a prediction run (or by a person, for a crop with no plate); ``missing`` is never stored:
the window shows it for a file that vanished behind the app's back.
"""

from __future__ import annotations

from enum import Enum


class ReviewState(str, Enum):
    """A sample's review state; its value is the text stored in the store (``str`` subclass)."""

    UNREVIEWED = "unreviewed"
    VERIFIED = "verified"
    FIXED = "fixed"
    UNREADABLE = "unreadable"
    INVALID = "invalid"
    MISSING = "missing"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: The states a store keeps (``missing`` is the window's, never stored).
STORED_STATES = tuple(s for s in ReviewState if s is not ReviewState.MISSING)
#: States that record a human decision; a model re-run never replaces them.
HUMAN_STATES = frozenset({ReviewState.VERIFIED, ReviewState.FIXED})
#: States whose samples never train (fine-tuning, cross-validation).
NEVER_TRAIN_STATES = frozenset({ReviewState.UNREADABLE, ReviewState.INVALID})
