// The portable ternary kernel: acc[t][r] = Σ_c W_q[r][c] · x[t][c] = Σ_{W=+1} x − Σ_{W=−1} x.
// Always compiled and always tested; the SIMD paths must equal it bit for bit.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "linattn/core/tensor.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::ternary::detail {

// int8 activation codes of N tokens as a kernel reads them: token t starts at codes + t·stride.
// The scalar kernel reads them in column order; the SIMD kernels in the slot-major order of
// kernels_simd.hpp, where `sums` (Σ_c x[t][c]) is also needed.
struct ActivationsView {
  const std::int8_t* codes = nullptr;
  index_t tokens = 0;
  index_t stride = 0;
  const std::int32_t* sums = nullptr;
};

namespace scalar {

// 2-bit byte → its 4 codes.
constexpr auto make_2bit_decode() {
  std::array<std::array<std::int8_t, 4>, 256> t{};
  for (unsigned b = 0; b < 256; ++b)
    for (unsigned k = 0; k < 4; ++k) t[b][k] = decode_2bit((b >> (2 * k)) & 0b11u);
  return t;
}
inline constexpr auto k2BitDecode = make_2bit_decode();

// Row r's codes into codes[0, cols) (the buffer holds row_bytes·P codes: the padding is decoded too).
inline void decode_row(const PackedWeights& w, index_t r, std::int8_t* codes) {
  const std::uint8_t* in = w.row(r);
  if (w.packing() == Packing::bits2) {
    for (index_t j = 0; j < w.row_bytes(); ++j)
      for (int k = 0; k < 4; ++k) codes[4 * j + k] = k2BitDecode[in[j]][static_cast<std::size_t>(k)];
  } else {
    for (index_t j = 0; j < w.row_bytes(); ++j)
      for (int i = 0; i < 5; ++i) codes[5 * j + i] = kBase3Decode[in[j]][static_cast<std::size_t>(i)];
  }
}

// out(t, r, acc) for every token t and row r in [r0, r1); x in column order.
template <class Out>
void matmul_rows(const PackedWeights& w, const ActivationsView& x, index_t r0, index_t r1, const Out& out) {
  const index_t cols = w.cols();
  std::vector<std::int8_t> codes(static_cast<std::size_t>(w.row_bytes() * weights_per_byte(w.packing())));
  for (index_t r = r0; r < r1; ++r) {
    decode_row(w, r, codes.data());
    for (index_t t = 0; t < x.tokens; ++t) {
      const std::int8_t* xt = x.codes + t * x.stride;
      std::int32_t acc = 0;
      for (index_t c = 0; c < cols; ++c) acc += static_cast<std::int32_t>(codes[static_cast<std::size_t>(c)]) * xt[c];
      out(t, r, acc);
    }
  }
}

}  // namespace scalar
}  // namespace linattn::ternary::detail
