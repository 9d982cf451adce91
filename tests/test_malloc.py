"""core.malloc: large freed blocks stay in the heap for reuse (glibc), unless opted out."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from ._util import REPO

# In a child process: the setting is process-wide and cannot be undone.
PROBE = """
import ctypes
from core.malloc import retain_freed_memory

libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mmapped_while_held(n):
    p = libc.malloc(n)
    held = libc.mallinfo2().hblkhd
    libc.free(p)
    return held

n = 48 << 20  # above glibc's largest automatic mmap threshold (32 MiB): mmapped by default
before = mmapped_while_held(n) >= n
applied = retain_freed_memory()
after = mmapped_while_held(n) >= n
print(before, applied, after)
"""


def _probe(env_extra: dict[str, str]) -> list[str]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def _has_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")


def test_large_blocks_come_from_the_heap_once_retained():
    assert _probe({}) == ["True", "True", "False"]


def test_opt_out_keeps_glibc_defaults():
    assert _probe({"PLATE_REVIEW_MALLOC_DEFAULTS": "1"}) == ["True", "False", "True"]
