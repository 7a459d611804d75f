#!/usr/bin/env bash
# The test command: builds linattn and runs its whole test suite as an optimised Release build
# with g++ (with the examples' golden checks, the Verilator hw tests and the packaging tests:
# find_package and add_subdirectory consumers), then with clang: the library's tests under
# AddressSanitizer + UndefinedBehaviorSanitizer together with a short run of each libFuzzer
# harness (asan preset), and the threaded tests under ThreadSanitizer (tsan preset). Exits
# non-zero on any failure; prints how long each stage took.
#
#   bash scripts/test.sh                 # every preset
#   PRESETS="asan tsan" bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${JOBS:-2}
PRESETS=${PRESETS:-release asan tsan}

stage() {
  printf '\n==== %s ====\n' "$*"
}

times=()
timed() {  # timed LABEL COMMAND...: runs it and records its wall time
  local label=$1 start=$SECONDS
  shift
  "$@"
  times+=("$(printf '%-22s %4d s' "$label" $((SECONDS - start)))")
}

stage "Dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh

for preset in $PRESETS; do
  stage "[$preset] configure"
  timed "[$preset] configure" cmake --preset "$preset"
  stage "[$preset] build"
  timed "[$preset] build" cmake --build --preset "$preset" -j"$JOBS"
  stage "[$preset] test"
  timed "[$preset] test" ctest --preset "$preset"
done

stage "All tests passed ($PRESETS)"
printf '%s\n' "${times[@]}"
