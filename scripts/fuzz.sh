#!/usr/bin/env bash
# Runs the libFuzzer harnesses of tests/fuzz for a long time (ctest runs each for a few seconds
# only): the safetensors reader, the checkpoint loader (single file and sharded), the tokenizer
# wrapper and linattn-generate's command-line parser, under AddressSanitizer + UBSan. Uses the
# asan preset's build (build/asan), configuring and building the harnesses first.
#
#   bash scripts/fuzz.sh                        # 300 s per harness
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh      # longer
#   FUZZ_RUNS=3000000 bash scripts/fuzz.sh      # a number of executions per harness instead
#   HARNESSES="safetensors checkpoint" bash scripts/fuzz.sh
#   FUZZ_JOBS=4 bash scripts/fuzz.sh            # parallel fuzzing processes per harness (-fork)
#
# New inputs accumulate in build/asan/tests/fuzz/work/<harness>/ (reused by later runs, and by
# ctest's short runs); a crash, sanitizer report, leak, timeout (-timeout, 20 s) or memory blow-up
# (-rss_limit_mb, 2 GB) stops that harness and leaves its input in
# build/asan/tests/fuzz/artifacts/<harness>/ (reproduce: build/asan/tests/fuzz/linattn-fuzz-<harness> FILE).
# Prints the executions of each harness and the total; exits 1 if any harness found something.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
FUZZ_RUNS=${FUZZ_RUNS:-}
FUZZ_JOBS=${FUZZ_JOBS:-1}
BUILD=build/asan
DIR=$BUILD/tests/fuzz

if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake --preset asan
fi
all=(safetensors checkpoint shards generate_options tokenizer)
targets=(linattn_fuzz_corpus)
for h in "${all[@]}"; do
  if cmake --build "$BUILD" --target help | grep -q "linattn-fuzz-$h:"; then targets+=("linattn-fuzz-$h"); fi
done
cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}"

read -r -a harnesses <<< "${HARNESSES:-${all[*]}}"
max_len() {
  case $1 in
    tokenizer) echo 16384 ;;
    generate_options) echo 1024 ;;
    *) echo 65536 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
limit=(-max_total_time="$FUZZ_SECONDS")
if [[ -n $FUZZ_RUNS ]]; then limit=(-runs="$FUZZ_RUNS"); fi
fork=()
if [[ $FUZZ_JOBS -gt 1 ]]; then fork=(-fork="$FUZZ_JOBS" -ignore_crashes=0); fi

total=0
failed=()
report=()
for h in "${harnesses[@]}"; do
  exe=$DIR/linattn-fuzz-$h
  if [[ ! -x $exe ]]; then
    echo "fuzz.sh: no $exe (the tokenizer harness needs SentencePiece); skipped" >&2
    continue
  fi
  mkdir -p "$DIR/work/$h" "$DIR/artifacts/$h"
  log=$DIR/artifacts/$h/fuzz.log
  printf '\n==== %s ====\n' "$h"
  status=0
  "$exe" "${limit[@]}" "${fork[@]}" -max_len="$(max_len "$h")" -timeout=20 -rss_limit_mb=2048 \
    -dict=tests/fuzz/fuzz.dict -print_final_stats=1 -artifact_prefix="$DIR/artifacts/$h/" \
    "$DIR/work/$h" "$DIR/corpus/$h" > "$log" 2>&1 || status=$?
  tail -n 3 "$log"
  # Executions: libFuzzer's final statistic, or (fork mode) its last status line "#N ...".
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [[ -z $execs ]]; then execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true); fi
  execs=${execs:-0}
  total=$((total + execs))
  if [[ $status -ne 0 ]]; then
    failed+=("$h")
    report+=("$(printf '%-18s %12d executions  FAILED (exit %d; see %s)' "$h" "$execs" "$status" "$log")")
  else
    report+=("$(printf '%-18s %12d executions  ok' "$h" "$execs")")
  fi
done

printf '\n==== executions ====\n'
printf '%s\n' "${report[@]}"
printf '%-18s %12d executions\n' total "$total"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs under $DIR/artifacts/)" >&2
  exit 1
fi
