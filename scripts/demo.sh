#!/usr/bin/env bash
# The demo command: builds the main example (a GLA model demo) in the release preset and runs it.
#
#   bash scripts/demo.sh [arguments for linattn-gla-demo]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage() {
  printf '\n==== %s ====\n' "$*"
}

stage "Dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh

stage "Configure (release preset)"
cmake --preset release

stage "Build linattn-gla-demo"
cmake --build --preset release --target linattn-gla-demo -j"${JOBS:-2}"

stage "Run linattn-gla-demo"
exec build/release/examples/gla_demo/linattn-gla-demo "$@"
