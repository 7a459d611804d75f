#!/usr/bin/env bash
# Thread sweep (the many-cores issue): kernels and the three model families at 1, 2, 4, … up to
# every core, then decode under load (one busy process per core, started and stopped here),
# with the bounds (1 GiB streaming read, Eigen GEMM) measured in the same run at each thread count.
# Prints one markdown table per part (bench/summarize_scaling.py) and keeps the JSON.
#
#   bash bench/scaling.sh [OUT_DIR]            # default /tmp/linattn-scaling
#
# Environment: THREADS (default "1,2,4,…,nproc"); PRESETS, the models with prefill and decode
# (default "mmfree-370m gla-340m gsa-340m" plus the three tiny golden models of tests/data);
# DECODE_ONLY, presets measured at decode only (default none; the issue's device run adds
# "mmfree-1.3b mmfree-2.7b"); PROMPT (prefill length, default 2048); BIN (a build tree with
# linattn-bench, linattn-bench-models and linattn-make-checkpoint; default: the release preset,
# built here); PARTS (default "kernels models decode load").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/linattn-scaling}
cores=$(nproc)
if [[ -z "${THREADS:-}" ]]; then
  THREADS=1
  for ((t = 2; t < cores; t *= 2)); do THREADS+=",$t"; done
  ((cores > 1)) && THREADS+=",$cores"
fi
PRESETS=${PRESETS:-"mmfree-370m gla-340m gsa-340m"}
DECODE_ONLY=${DECODE_ONLY:-}
PROMPT=${PROMPT:-2048}
PARTS=${PARTS:-"kernels models decode load"}
if [[ -z "${BIN:-}" ]]; then
  BIN=build/release
  cmake --preset release >/dev/null
  cmake --build --preset release --target linattn-make-checkpoint linattn-bench linattn-bench-models -j"${JOBS:-2}"
fi
mkdir -p "$OUT/checkpoints" "$OUT/full" "$OUT/decode" "$OUT/load"
echo "scaling: threads $THREADS on $cores cores; results in $OUT"

make_ckpt() {  # preset → $OUT/checkpoints/preset (bf16 for the large MatMul-free ones: half the disk)
  local dtype=f32
  [[ $1 == mmfree-1.3b || $1 == mmfree-2.7b ]] && dtype=bf16
  [[ -f "$OUT/checkpoints/$1/config.json" ]] ||
    "$BIN/examples/make_checkpoint/linattn-make-checkpoint" --preset "$1" --dtype "$dtype" "$OUT/checkpoints/$1" >/dev/null
}
link_models() {  # folder, presets… : a models folder for linattn-bench-models
  local dir=$1
  shift
  rm -rf "$dir" && mkdir -p "$dir"
  for p in "$@"; do
    make_ckpt "$p"
    ln -s "$OUT/checkpoints/$p" "$dir/$p"
  done
}

models_bench() {  # json, folder, extra env…
  local json=$1 dir=$2
  shift 2
  env LINATTN_BENCH_MODELS="$dir" LINATTN_BENCH_DENSE=0 LINATTN_BENCH_PROMPT="$PROMPT" "$@" \
    "$BIN/bench/linattn-bench-models" --benchmark_out="$json" --benchmark_repetitions=1 \
    --benchmark_format=console
}

if [[ " $PARTS " == *" kernels "* ]]; then
  LINATTN_BENCH_THREADS=$THREADS "$BIN/bench/linattn-bench" --benchmark_filter='^BM_Scaling/' \
    --benchmark_repetitions=1 --benchmark_min_time=0.3 --benchmark_out="$OUT/kernels.json"
fi

if [[ " $PARTS " == *" models "* ]]; then
  link_models "$OUT/full" $PRESETS
  for m in gla gsa hgrn_bit; do ln -s "$PWD/tests/data/model_$m" "$OUT/full/tiny-$m"; done
  models_bench "$OUT/models.json" "$OUT/full" LINATTN_BENCH_THREADS="$THREADS"
fi

if [[ " $PARTS " == *" decode "* && -n "$DECODE_ONLY" ]]; then
  link_models "$OUT/decode" $DECODE_ONLY
  models_bench "$OUT/models_decode.json" "$OUT/decode" LINATTN_BENCH_THREADS="$THREADS" LINATTN_BENCH_PREFILL=0
fi

if [[ " $PARTS " == *" load "* ]]; then
  # Under load: one busy loop per core beside decode on every core (the default thread count).
  link_models "$OUT/load" mmfree-370m
  for m in gla gsa hgrn_bit; do ln -s "$PWD/tests/data/model_$m" "$OUT/load/tiny-$m"; done
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
  for ((i = 0; i < cores; ++i)); do
    (while :; do :; done) &
    pids+=($!)
  done
  models_bench "$OUT/load.json" "$OUT/load" LINATTN_BENCH_THREADS="$cores" LINATTN_BENCH_PREFILL=0
  kill "${pids[@]}" 2>/dev/null || true
  pids=()
fi

python3 bench/summarize_scaling.py "$OUT"
