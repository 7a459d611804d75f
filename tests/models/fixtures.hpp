// Shared by the model tests: a scratch directory per test, checkpoints from the checkpoint maker,
// and full-sequence logits from the library's models.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "make_checkpoint/checkpoint_maker.hpp"
#include "models/any_model.hpp"

namespace model_tests {

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
using linattn::TensorView;

// A fresh directory, removed with everything in it at the end of the scope.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("linattn-test-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

inline std::vector<std::int64_t> token_ids(index_t n, index_t vocab, std::uint64_t seed = 1) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& id : ids) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<std::int64_t>((s >> 33) % static_cast<std::uint64_t>(vocab));
  }
  return ids;
}

// logits [T, vocab] of one sequence from a fresh cache.
template <class Model>
Array<float, 2> full_logits(const Model& m, const std::vector<std::int64_t>& ids, linattn::nn::RunOptions run = {}) {
  Array<float, 2> out(Shape<2>{static_cast<index_t>(ids.size()), m.vocab_size()});
  auto cache = m.new_cache();
  m.forward(std::span<const std::int64_t>(ids), cache, out.view(), run);
  return out;
}

inline double max_abs_diff(const float* a, const float* b, index_t n) {
  double d = 0;
  for (index_t i = 0; i < n; ++i) d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
  return d;
}

}  // namespace model_tests
