#!/usr/bin/env bash
# The demo command: builds linattn-generate and runs the language models of include/linattn/models.
#   1. the tiny upstream GLA, GSA and MatMul-free checkpoints of tests/data (greedy decoding,
#      which reproduces the tokens flash-linear-attention / matmulfreellm generated);
#   2. a MatMul-free LM in the released 370M configuration (random weights written by
#      linattn-make-checkpoint: 1.5 GB of float32 under build/demo, made once), ternarised and
#      packed at load, prefill + decode on 2 threads with tokens/s and peak memory.
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage() {
  printf '\n==== %s ====\n' "$*"
}

stage "Dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh

stage "Configure (release preset)"
cmake --preset release

stage "Build linattn-generate and linattn-make-checkpoint"
cmake --build --preset release --target linattn-generate linattn-make-checkpoint -j"${JOBS:-2}"

GEN=build/release/examples/generate/linattn-generate
MAKE=build/release/examples/make_checkpoint/linattn-make-checkpoint

stage "Upstream tiny models: greedy continuation of each golden prompt"
run() {
  echo "\$ ${GEN#build/release/examples/generate/} $*"
  "$GEN" "$@"
}
run --model tests/data/model_gla --ids 116,159,77,221,96,182,92,35 --max-new-tokens 16
echo "  (flash-linear-attention generated 165,246,11,88,78,36,100,99,91,85,153,27,253,245,77,245)"
run --model tests/data/model_gsa --ids 187,156,49,234,212,132,227,166 --max-new-tokens 16
echo "  (flash-linear-attention generated 81,81,81,81,255,255,255,255,255,255,255,255,255,255,232,232)"
run --model tests/data/model_hgrn_bit --ids 48,75,78,216,131,3,92,83 --max-new-tokens 16
echo "  (matmulfreellm generated 230,21,14,224,16,121,183,203,90,45,21,228,16,50,145,84)"

stage "MatMul-free LM, 370M configuration (random weights), 2 threads"
CKPT=build/demo/mmfree-370m
if [[ ! -f "$CKPT/config.json" ]]; then
  "$MAKE" --preset mmfree-370m "$CKPT"
fi
run --model "$CKPT" --ids "$(seq -s, 1 64)" --max-new-tokens 32 --threads 2 --temperature 0.8 --top-k 40 --seed 1
