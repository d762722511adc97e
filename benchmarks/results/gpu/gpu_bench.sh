#!/bin/bash
# It ran from a `git archive` of the commit measured (jaxopt_lab/ and benchmarks/ beside it, a
# COMMIT file with the hash), sent to the GPU machine; kept here as the record of what ran.
# The GPU benchmarks in one go, each under its own time limit, results packed after each step.
# Usage: bash gpu_bench.sh OUT [DEVICE] [QUICK]   (QUICK=1: tiny sizes, for a check on the CPU)
cd "$(dirname "$0")" || exit 1
OUTDIR=$1; DEV=${2:-gpu}; QUICK=${3:-0}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD GIT_CEILING_DIRECTORIES=$(dirname "$PWD")
# every process preallocates this share of the GPU: parent and child processes must fit together
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3
PY=${PY:-python3}
W=$(mktemp -d); DEADLINE=${DEADLINE:-515}
if [ "$QUICK" = 1 ]; then
  Q=(--quick); SEEDS=(--seeds 1); ENG=(--quick --repeats 1)
else
  Q=(--runs 3); SEEDS=(--seeds 100); ENG=(--repeats 3)
fi
pack() { tar czf "$OUTDIR/results.tgz" -C "$W" . ; }
step() {  # step CAP_SECONDS command...: runs it under min(CAP, time left before the deadline)
  local cap=$1; shift
  local left=$((DEADLINE - SECONDS)); local t=$((cap < left ? cap : left))
  if [ "$t" -lt 20 ]; then echo "=== skipped (only ${left} s left): $*"; return; fi
  echo "=== $(date +%T) at ${SECONDS} s: $* (limit ${t} s)"
  local start=$SECONDS
  timeout -k 5 "$t" "$@"
  echo "=== rc=$? after $((SECONDS - start)) s"
  pack
}
{
  echo "commit $(cat COMMIT)"
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c "import sys, jax, jaxlib, numpy, optax, scipy, matplotlib
print(sys.version); print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy',
numpy.__version__, 'optax', optax.__version__, 'scipy', scipy.__version__); print(jax.devices())
try:
    import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())
except ImportError: print('no torch')"
  nproc; grep -m1 'model name' /proc/cpuinfo
  step 130 $PY benchmarks/run.py --device "$DEV" --sections contenders "${Q[@]}" \
    --paired-rounds 10 --out "$W/gpu"
  step 100 $PY benchmarks/engine.py --sections engine sweep "${ENG[@]}" --out "$W/engine"
  step 80 $PY benchmarks/seeds.py "${SEEDS[@]}" --repeats 1 --out "$W/seeds"
  rm -f "$W"/seeds/compare_seeds/*.json; pack
  step 45 $PY benchmarks/run.py --device "$DEV" --sections sweep "${Q[@]}" --out "$W/gpu_sweep"
  step 90 $PY benchmarks/run.py --device "$DEV" --sections scaling "${Q[@]}" --out "$W/gpu_scaling"
  step 110 $PY benchmarks/run.py --device "$DEV" --sections float64 "${Q[@]}" \
    --paired-rounds 10 --out "$W/gpu_float64"
  echo "=== done at ${SECONDS} s"
} 2>&1 | tee "$OUTDIR/log.txt"
