"""Keep freed memory in the process for reuse instead of handing it back to the kernel.

Training allocates and frees the same large buffers at every step: a batch of 64 crops is
11 MB of float32, the activations tens of MB, and a synthetic plate's drawing planes a few
hundred kB each. glibc's malloc serves blocks above its mmap threshold (128 kB to 32 MB,
adjusted on the fly) with fresh ``mmap`` pages and unmaps them on ``free``, and trims the
heap top beyond 2x that, so every step pays a page fault per 4 kB touched. On the 2-core
development VM a fault costs ~2 us. With the thresholds below (``bench/bench_malloc.py``,
docs/BENCHMARKS.md): a synthetic plate renders in 0.79 ms instead of 0.91 ms, the Train
panel fine-tunes ``lstm-fast`` at 1.10x and the recipe's pretrain stream runs at 1.15x
the images/s.

:func:`retain_freed_memory` raises both thresholds, so such blocks come from the heap and
are reused. The cost is that up to ``trim`` bytes of freed memory stay with the process.
It is the in-process equivalent of ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``,
and does nothing where the C library is not glibc (macOS, Windows, musl) or when the
environment sets ``PLATE_REVIEW_MALLOC_DEFAULTS=1`` (glibc's own behaviour, e.g. to
compare: ``bench/bench_malloc.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
OPT_OUT = "PLATE_REVIEW_MALLOC_DEFAULTS"
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20

_applied = False


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError on musl)
        return libc
    except (OSError, AttributeError):
        return None


def retain_freed_memory(mmap: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Serve blocks below ``mmap`` bytes from the heap and keep up to ``trim`` bytes freed.

    Process-wide and inherited by forked children (DataLoader workers call it again, for
    the other start methods). Returns True if glibc accepted both settings; False where
    it is not glibc or :data:`OPT_OUT` is set.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap))) and bool(libc.mallopt(_M_TRIM_THRESHOLD, int(trim)))
    return _applied
