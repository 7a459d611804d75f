// linattn-bench: every benchmark of the project in one Google Benchmark binary.
//
//   linattn-bench                                     all benchmarks, console table
//   linattn-bench --benchmark_filter='BM_GLA_Step'    a subset (regex)
//   linattn-bench --benchmark_format=json             JSON on stdout (native Google Benchmark)
//   linattn-bench --benchmark_out=run.json            JSON to a file as well as the console table
//   python3 bench/summarize.py run.json               the ratios the project tracks
//
// Defaults added unless given on the command line: --benchmark_min_time=0.2 (seconds per run),
// --benchmark_repetitions=3 and --benchmark_display_aggregates_only=true (the console shows
// mean/median/stddev/cv; the JSON file keeps every repetition and the aggregates).
// The context header carries linattn's thread count, whether OpenMP is on, and
// OMP_WAIT_POLICY (2-thread timings on a busy machine depend on it heavily).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "linattn/core/threading.hpp"

namespace {

bool has_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a.substr(0, flag.size()) == flag && (a.size() == flag.size() || a[flag.size()] == '='))
      return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = "--benchmark_min_time=0.2";
  std::string repetitions = "--benchmark_repetitions=3";
  std::string aggregates = "--benchmark_display_aggregates_only=true";
  if (!has_flag(argc, argv, "--benchmark_min_time")) args.push_back(min_time.data());
  if (!has_flag(argc, argv, "--benchmark_repetitions")) args.push_back(repetitions.data());
  if (!has_flag(argc, argv, "--benchmark_display_aggregates_only") &&
      !has_flag(argc, argv, "--benchmark_report_aggregates_only"))
    args.push_back(aggregates.data());
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);

  benchmark::AddCustomContext("linattn_max_threads", std::to_string(linattn::max_threads()));
#if defined(_OPENMP)
  benchmark::AddCustomContext("linattn_openmp", "on");
#else
  benchmark::AddCustomContext("linattn_openmp", "off");
#endif
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  benchmark::AddCustomContext("OMP_WAIT_POLICY", wait_policy ? wait_policy : "(unset)");

  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
