"""Plate Review: ``python main.py [FOLDER] [--model CHECKPOINT]`` opens the review app."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from gui.app import run

    sys.exit(run(sys.argv[1:]))
