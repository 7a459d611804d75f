#!/usr/bin/env bash
# The test command: builds linattn and runs its whole test suite as an optimised Release build
# (with the examples' golden checks, the Verilator hw tests and the packaging tests:
# find_package and add_subdirectory consumers), then the library's tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
#
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${JOBS:-2}

stage() {
  printf '\n==== %s ====\n' "$*"
}

stage "Dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh

for preset in release asan; do
  stage "[$preset] configure"
  cmake --preset "$preset"
  stage "[$preset] build"
  cmake --build --preset "$preset" -j"$JOBS"
  stage "[$preset] test"
  ctest --preset "$preset"
done

stage "All tests passed (release and asan)"
