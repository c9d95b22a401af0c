#!/usr/bin/env bash
# GPU readiness check, one script (prepared on CPU; run it on a CUDA machine from anywhere):
#   1. the CUDA-marked tests (no host sync in the SeaRNN search, bf16/fp16 training, 2-GPU = 1-GPU);
#   2. the SeaRNN speed benchmark on OCR, and on translation when the benchmark has that mode:
#      MLE vs SeaRNN ratios, fp32 vs bf16 (--precision), the dynamic vs the static-shape search engine
#      (--static-shapes on adds the static engine's rows);
#   3. with 2 GPUs or more, a 2-GPU torchrun smoke run (searnn train --nproc 2 --device cuda).
# Every step has its own time limit; the whole script stays under 8 minutes. Figures are printed and, when
# the OUT environment variable names a directory, also written to $OUT/gpu_check.txt.
# Usage: bash benchmarks/gpu_check.sh     (PYTHON=/path/to/python to choose the interpreter)
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
REPORT=/dev/null
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && REPORT="$OUT/gpu_check.txt" && : > "$REPORT"
fi
FAILED=0
START=$(date +%s)

say() { echo "$*" | tee -a "$REPORT"; }

step() {  # step NAME SECONDS COMMAND...: run with a time limit, copy the output to the report
    local name=$1 limit=$2
    shift 2
    say ""
    say "== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$REPORT"
    local rc=${PIPESTATUS[0]}
    say "== $name: exit status $rc ($(( $(date +%s) - START ))s since start)"
    [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
}

if ! TORCH=$("$PYTHON" -c "import torch; print(torch.__version__)" 2>/dev/null); then
    say "gpu_check: $PYTHON cannot import torch (set PYTHON=/path/to/venv/bin/python, or run make install)"
    exit 1
fi
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
say "gpu_check: $(date -u +%FT%TZ), $GPUS CUDA device(s), torch $TORCH, python $PYTHON"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$REPORT"
if [ "$GPUS" -eq 0 ]; then
    say "no CUDA device: nothing to check"
    exit 1
fi

step "CUDA tests" 130 "$PYTHON" -m pytest -q -m cuda tests/test_gpu.py -p no:cacheprovider

BENCH=benchmarks/bench_searnn_speed.py
HELP=$("$PYTHON" "$BENCH" --help 2>/dev/null)
MODES="ocr"
MODE_FLAG=""
for candidate in --task --mode; do  # the option that picks translation (being added to the benchmark)
    if echo "$HELP" | grep -q -- "$candidate" && echo "$HELP" | grep -q "translation"; then
        MODES="ocr translation"
        MODE_FLAG=$candidate
        break
    fi
done
STATIC=()  # both search engines (dynamic and static shapes), when the benchmark can time both
echo "$HELP" | grep -q -- "--static-shapes" && STATIC=(--static-shapes on)
for mode in $MODES; do
    extra=("${STATIC[@]}")
    [ -z "$MODE_FLAG" ] || extra+=("$MODE_FLAG" "$mode")
    for precision in fp32 bf16; do
        step "speed $mode $precision" 50 "$PYTHON" "$BENCH" --device cuda --batches 10 --precision "$precision" "${extra[@]}"
    done
done

if [ "$GPUS" -ge 2 ]; then
    RUN_DIR=$(mktemp -d)/ddp_smoke
    step "2-GPU torchrun smoke" 100 "$PYTHON" -m searnn.cli train --nproc 2 --device cuda --task ocr \
        --objective searnn --limit-train 512 --limit-valid 64 --epochs 1 --batch-size 64 --no-progress \
        --checkpoint-minutes 0 --precision bf16 --run-dir "$RUN_DIR"
else
    say ""
    say "== 2-GPU torchrun smoke: skipped (1 GPU)"
fi

say ""
say "gpu_check: $FAILED step(s) failed, $(( $(date +%s) - START ))s in all"
[ "$FAILED" -eq 0 ]
