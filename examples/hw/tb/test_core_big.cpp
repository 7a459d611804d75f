// mmf_core with one 370M-size layer (d = 1024, I = 2816, 64 lanes) against the library's integer
// reference: tokens carrying the MLGRU state under three random-reset seeds, cycle and traffic
// targets. 16 tokens by default (HW_BIG_TOKENS), about 12 s.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "Vcore_big.h"
#include "layer_check.hpp"

TEST_CASE("hw core big: d=1024 layer under 3 random-reset seeds", "[hw]") {
  const hw::CoreConfig cfg{64, 1024, 2816, 1};
  const hw::CycleModel model{64, 1024, 2816};
  const char* env = std::getenv("HW_BIG_TOKENS");
  const int tokens = env ? std::atoi(env) : 16;
  for (const std::uint32_t seed : {101u, 202u, 303u}) {
    const auto r = hw::run_and_check<Vcore_big>(cfg, tokens, seed);
    r.print("hw.big.run", seed);
    CHECK(r.words_checked == static_cast<long long>(tokens) * (2 * 1024 + 2816));
    CHECK(r.mismatches == 0);
    for (const auto c : r.layer_cycles) {
      INFO("layer cycles " << c << ", analytic " << model.layer() << ", matrix-only " << model.matrix());
      CHECK(std::fabs(static_cast<double>(c) / static_cast<double>(model.layer()) - 1.0) <= 0.05);
      CHECK(static_cast<double>(c) <= 1.15 * static_cast<double>(model.matrix()));
    }
    for (const auto b : r.token_bytes) CHECK(b == r.packed_bytes_per_token);
    if (seed == 101u)
      std::printf("hw.big: cycles/layer %llu (analytic %lld, matrix-only %lld, ratio %.3f), weight bytes/token %llu\n",
                  static_cast<unsigned long long>(r.layer_cycles[0]), model.layer(), model.matrix(),
                  static_cast<double>(r.layer_cycles[0]) / static_cast<double>(model.matrix()),
                  static_cast<unsigned long long>(r.token_bytes[0]));
  }
}
