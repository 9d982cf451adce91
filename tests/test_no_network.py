"""The app must not reach the network on its own (offline machines, privacy)."""

import os
import subprocess
import sys

from ._util import REPO

PROBE = """
import urllib.request
calls = []
def refuse(self, url, *a, **k):
    calls.append(getattr(url, "full_url", url))
    raise OSError("network refused by the test")
urllib.request.OpenerDirector.open = refuse
import core.data, core.train, core.predict
print("calls", calls)
"""


def test_importing_the_core_makes_no_network_request():
    # albumentations checks PyPI for updates on import unless NO_ALBUMENTATIONS_UPDATE is set.
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "calls []" in out.stdout, out.stdout + out.stderr
