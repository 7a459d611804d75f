#!/usr/bin/env bash
# Whole-model benchmarks: makes random-weight checkpoints of the MatMul-free LM 370M, GLA 340M and
# GSA 340M configurations (linattn-make-checkpoint, float32), runs linattn-bench-models on them
# (2 threads), measures peak resident memory of linattn-generate per model in its own process, and
# prints the ratios the full-models issue asks for.
#
#   bash bench/models.sh [OUT_DIR]        # default /tmp/linattn-models; ~4.5 GB of checkpoints
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/linattn-models}
BIN=build/release

cmake --preset release >/dev/null
cmake --build --preset release --target linattn-make-checkpoint linattn-generate linattn-bench-models -j"${JOBS:-2}"

mkdir -p "$OUT/checkpoints"
for preset in mmfree-370m gla-340m gsa-340m; do
  if [[ ! -f "$OUT/checkpoints/$preset/config.json" ]]; then
    "$BIN/examples/make_checkpoint/linattn-make-checkpoint" --preset "$preset" "$OUT/checkpoints/$preset"
  fi
done

LINATTN_BENCH_MODELS="$OUT/checkpoints" "$BIN/bench/linattn-bench-models" \
  --benchmark_out="$OUT/models.json" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

# Peak RSS: one process per model, a 16-token prompt and 16 new tokens on 2 threads.
IDS=$(seq -s, 1 16)
: > "$OUT/rss.txt"
for run in "mmfree-370m" "mmfree-370m --reference" "gla-340m" "gsa-340m"; do
  set -- $run
  line=$("$BIN/examples/generate/linattn-generate" --model "$OUT/checkpoints/$1" --ids "$IDS" --max-new-tokens 16 \
           --threads 2 "${@:2}" 2>&1 >/dev/null | grep 'peak RSS')
  echo "$run: $line" | tee -a "$OUT/rss.txt"
done

python3 bench/summarize_models.py "$OUT/models.json" "$OUT/rss.txt"
