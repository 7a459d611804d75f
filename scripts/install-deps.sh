#!/usr/bin/env bash
# Installs the Debian packages linattn's build, tests, benchmarks and examples need.
# Idempotent: checks with dpkg-query first and does nothing (quietly) when all are present.
set -euo pipefail

packages=(
  cmake
  ninja-build
  g++
  # clang builds: the asan preset (ASan + UBSan, libFuzzer harnesses) and the tsan preset
  # (ThreadSanitizer; libomp-dev brings libomp and Archer, its TSan annotations). The sanitizer
  # and libFuzzer runtimes are in libclang-rt-dev; llvm gives llvm-symbolizer for their reports.
  clang
  libomp-dev
  libclang-rt-dev
  llvm
  libeigen3-dev
  catch2
  libbenchmark-dev
  nlohmann-json3-dev
  libsentencepiece-dev
  # examples/python (the release preset builds it, its pytest suite runs in ctest): Debian's
  # interpreter and headers, pybind11, numpy; torch and pytest for the tests, sentencepiece for
  # the models' text; setuptools, pip and
  # venv for the README's `pip install ./examples/python`. python3-torch brings a BLAS via
  # alternatives; libopenblas0-pthread makes torch's CPU matrix products not the generic BLAS.
  python3-dev
  python3-pybind11
  python3-numpy
  python3-pytest
  python3-sentencepiece
  python3-matplotlib
  python3-torch
  libopenblas0-pthread
  python3-setuptools
  python3-pip
  python3-venv
  # examples/hw: Verilator simulation, Yosys and nextpnr-ice40 synthesis gates (~450 MB)
  verilator
  yosys
  nextpnr-ice40
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: missing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: not root and no sudo; install them with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
