// Shared by the model tests: scratch directories (support/temp_dir.hpp), checkpoints from the checkpoint maker,
// and full-sequence logits from the library's models.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "make_checkpoint/checkpoint_maker.hpp"
#include "support/temp_dir.hpp"
#include "linattn/models/any.hpp"

namespace model_tests {

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
using linattn::TensorView;

using linattn::test::TempDir;

// Writes the tiny model of `family` (the golden models' sizes) with `seed`, changed by `tweak`.
inline linattn::examples::CheckpointSpec write_tiny_checkpoint(
    linattn::examples::Family family, std::uint64_t seed,
    const std::function<void(linattn::examples::CheckpointSpec&)>& tweak, const std::filesystem::path& dir) {
  auto spec = linattn::examples::tiny_spec(family);
  spec.seed = seed;
  tweak(spec);
  linattn::examples::write_checkpoint(spec, dir);
  return spec;
}

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
