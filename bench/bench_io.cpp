// Opening a safetensors file whose header has many tensors: the header is parsed in one
// streaming pass (io/safetensors.hpp), so the cost should grow linearly with the header.
//   BM_SafetensorsHeader/keys:N   N one-byte tensors; counters: header MB/s and µs per key.
// A hostile 100 MB header (~1.7M keys) must be rejected or parsed in under a second per MB.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "linattn/io/safetensors.hpp"

namespace {

void BM_SafetensorsHeader(benchmark::State& state) {
  const auto keys = state.range(0);
  std::string json = "{";
  for (std::int64_t i = 0; i < keys; ++i)
    json += (i ? ",\"model.layers." : "\"model.layers.") + std::to_string(i) + ".weight\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[" +
            std::to_string(i) + "," + std::to_string(i + 1) + "]}";
  json += "}";
  const auto path = std::filesystem::temp_directory_path() /
                    ("linattn_bench_header_" + std::to_string(::getpid()) + ".safetensors");
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const std::uint64_t n = json.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << json << std::string(static_cast<std::size_t>(keys), '\0');
  }
  for (auto _ : state) {
    linattn::io::SafeTensorsFile file(path);
    benchmark::DoNotOptimize(file.size());
  }
  std::filesystem::remove(path);
  state.counters["header_MB"] = static_cast<double>(json.size()) / 1e6;
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(json.size()) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["keys"] = static_cast<double>(keys);
}
BENCHMARK(BM_SafetensorsHeader)->ArgName("keys")->Arg(20'000)->Arg(160'000)->Arg(1'100'000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
