// tmv_unit (16 lanes) on its own: BitLinear matrix-vector products against the library's integer
// kernel (linattn::ternary::matmul), with random output back-pressure, and the corners
// HW-NOTES §3.1 lists: saturation (all -1 x -128), all-zero weights, the reserved code 10, a single
// non-zero lane.
#include <catch2/catch.hpp>

#include <verilated.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "Vtmv16.h"
#include "linattn/ops/ternary.hpp"

namespace {
constexpr int kLanes = 16;

struct Bench {
  std::unique_ptr<VerilatedContext> ctx = std::make_unique<VerilatedContext>();
  std::unique_ptr<Vtmv16> top;
  std::mt19937 rng;
  explicit Bench(std::uint32_t seed) : rng(seed) {
    ctx->randReset(2);
    ctx->randSeed(static_cast<int>(seed));
    top = std::make_unique<Vtmv16>(ctx.get());
    top->rst_n = 0;
    top->in_valid = 0;
    top->out_ready = 1;
    for (int i = 0; i < 3; ++i) tick();
    top->rst_n = 1;
  }
  void tick() {
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->eval();
  }
  // Streams rows of raw 2-bit fields (row-major, `cols` a row) against codes x; returns one acc
  // a row. out_ready drops on ~30 % of the cycles when `pressure`.
  std::vector<std::int32_t> run(const std::vector<std::uint8_t>& fields, const std::vector<std::int8_t>& x, int rows,
                                int cols, bool pressure) {
    std::vector<std::int32_t> out;
    const int beats = cols / kLanes;
    int row = 0, beat = 0;
    std::bernoulli_distribution stall(0.3);
    while (static_cast<int>(out.size()) < rows) {
      top->in_valid = row < rows;
      std::uint32_t w = 0;
      std::uint64_t xl = 0, xh = 0;
      for (int k = 0; k < kLanes && row < rows; ++k) {
        const int c = beat * kLanes + k;
        w |= static_cast<std::uint32_t>(fields[static_cast<std::size_t>(row * cols + c)]) << (2 * k);
        const std::uint64_t b = static_cast<std::uint8_t>(x[static_cast<std::size_t>(c)]);
        if (k < 8) xl |= b << (8 * k); else xh |= b << (8 * (k - 8));
      }
      top->in_w = w;
      top->in_x[0] = static_cast<std::uint32_t>(xl);
      top->in_x[1] = static_cast<std::uint32_t>(xl >> 32);
      top->in_x[2] = static_cast<std::uint32_t>(xh);
      top->in_x[3] = static_cast<std::uint32_t>(xh >> 32);
      top->in_last = beat == beats - 1;
      top->out_ready = pressure ? !stall(rng) : 1;
      top->eval();
      const bool fire = top->in_valid && top->in_ready;
      if (top->out_valid && top->out_ready) out.push_back(static_cast<std::int32_t>(top->out_acc));
      tick();
      if (fire && ++beat == beats) {
        beat = 0;
        ++row;
      }
    }
    return out;
  }
};

std::vector<std::int32_t> reference(const std::vector<std::int8_t>& codes, const std::vector<std::int8_t>& x, int rows,
                                    int cols) {
  const linattn::ternary::PackedWeights w(linattn::TensorView<const std::int8_t, 2>(codes.data(), {rows, cols}), 1.0f);
  std::vector<std::int32_t> acc(static_cast<std::size_t>(rows));
  linattn::ternary::matmul(w, linattn::TensorView<const std::int8_t, 2>(x.data(), {1, cols}),
                           linattn::TensorView<std::int32_t, 2>(acc.data(), {1, rows}));
  return acc;
}

std::uint8_t field(int t) { return t == 0 ? 0 : (t > 0 ? 1 : 3); }
}  // namespace

TEST_CASE("hw tmv: random BitLinear mat-vecs equal the library kernel under back-pressure", "[hw]") {
  for (const std::uint32_t seed : {1u, 2u, 3u}) {
    Bench b(seed);
    const int rows = 200, cols = 1024;
    std::uniform_int_distribution<int> t(-1, 1), xv(-128, 127);
    std::vector<std::int8_t> codes(static_cast<std::size_t>(rows * cols)), x(static_cast<std::size_t>(cols));
    std::vector<std::uint8_t> fields(codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i) fields[i] = field(codes[i] = static_cast<std::int8_t>(t(b.rng)));
    for (auto& v : x) v = static_cast<std::int8_t>(xv(b.rng));
    const auto got = b.run(fields, x, rows, cols, /*pressure=*/seed != 1);
    const auto want = reference(codes, x, rows, cols);
    int mismatches = 0;
    for (int r = 0; r < rows; ++r) mismatches += got[static_cast<std::size_t>(r)] != want[static_cast<std::size_t>(r)];
    INFO("seed " << seed);
    CHECK(mismatches == 0);
    CHECK_FALSE(b.top->err_reserved);
  }
}

TEST_CASE("hw tmv: corners", "[hw]") {
  Bench b(9);
  const int cols = 1024;
  // all -1 weights x -128: the largest sum, +128 * 1024
  std::vector<std::int8_t> x(cols, -128), codes(cols, -1);
  std::vector<std::uint8_t> f(cols, 3);
  CHECK(b.run(f, x, 1, cols, false)[0] == reference(codes, x, 1, cols)[0]);
  CHECK(b.run(f, x, 1, cols, false)[0] == 128 * cols);
  // all-zero weights
  std::fill(f.begin(), f.end(), 0);
  CHECK(b.run(f, x, 1, cols, false)[0] == 0);
  // a single non-zero lane
  f[37] = 1;
  x[37] = 99;
  CHECK(b.run(f, x, 1, cols, false)[0] == 99);
  CHECK_FALSE(b.top->err_reserved);
  // reserved code 10 counts as 0 and raises the sticky flag
  f[38] = 2;
  CHECK(b.run(f, x, 1, cols, false)[0] == 99);
  CHECK(b.top->err_reserved);
}
