// mmf_core, small configuration (d = 256, I = 768, 16 lanes, 2 layers), against the library's
// integer reference: one layer for one token, 16 tokens through 2 layers carrying the MLGRU
// state under three random-reset seeds, weight-stream stalls, cycle and traffic targets, and the
// mutation self-test (the same design with -x replaced by ~x must fail the same checker).
#include <catch2/catch.hpp>

#include "Vcore_mut.h"
#include "Vcore_small.h"
#include "layer_check.hpp"

namespace {
const hw::CoreConfig kSmall{16, 256, 768, 2};
const hw::CycleModel kModel{16, 256, 768};

void check_targets(const hw::RunResult& r) {
  for (const auto c : r.layer_cycles) {
    INFO("layer cycles " << c << ", analytic " << kModel.layer() << ", matrix-only " << kModel.matrix());
    CHECK(std::fabs(static_cast<double>(c) / static_cast<double>(kModel.layer()) - 1.0) <= 0.05);
    CHECK(static_cast<double>(c) <= 1.15 * static_cast<double>(kModel.matrix()));
  }
  for (const auto b : r.token_bytes) CHECK(b == r.packed_bytes_per_token);
  CHECK_FALSE(r.err_reserved);
}
}  // namespace

TEST_CASE("hw core small: one layer for one token", "[hw]") {
  hw::CoreConfig one = kSmall;
  one.layers = 1;
  const auto r = hw::run_and_check<Vcore_small>(one, 1, 1);
  r.print("hw.small.layer", 1);
  CHECK(r.words_checked == 2 * 256 + 768);  // x, h and the GLU product z
  CHECK(r.mismatches == 0);
  std::printf("hw.small: cycles/layer %llu (analytic %lld, matrix-only %lld, ratio %.3f), weight bytes/token %llu\n",
              static_cast<unsigned long long>(r.layer_cycles[0]), kModel.layer(), kModel.matrix(),
              static_cast<double>(r.layer_cycles[0]) / static_cast<double>(kModel.matrix()),
              static_cast<unsigned long long>(r.token_bytes[0]));
  check_targets(r);
}

TEST_CASE("hw core small: 16 tokens x 2 layers carrying the state under 3 random-reset seeds", "[hw]") {
  for (const std::uint32_t seed : {11u, 22u, 33u}) {
    const auto r = hw::run_and_check<Vcore_small>(kSmall, 16, seed);
    r.print("hw.small.run16", seed);
    CHECK(r.words_checked == 16 * 2 * (2 * 256 + 768));
    CHECK(r.mismatches == 0);
    check_targets(r);
  }
}

TEST_CASE("hw core small: weight-stream stalls (back-pressure) keep the results exact", "[hw]") {
  hw::CoreConfig one = kSmall;
  one.layers = 1;
  const auto r = hw::run_and_check<Vcore_small>(one, 3, 5, /*stall=*/true);
  r.print("hw.small.stall", 5);
  CHECK(r.mismatches == 0);
  for (const auto b : r.token_bytes) CHECK(b == r.packed_bytes_per_token);
  // about a quarter of the weight beats are bubbles, so the layer takes longer
  for (const auto c : r.layer_cycles) CHECK(static_cast<double>(c) > 1.2 * static_cast<double>(kModel.matrix()));
}

TEST_CASE("hw core small: mutation self-test - the checker fails on a broken design", "[hw]") {
  hw::CoreConfig one = kSmall;
  one.layers = 1;
  const auto r = hw::run_and_check<Vcore_mut>(one, 1, 1);
  r.print("hw.small.mutant (expected to fail)", 1);
  CHECK(r.mismatches > 0);
}
