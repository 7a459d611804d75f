// The SIMD ternary kernels, written once over an ISA traits type (kernels_avx2.hpp,
// kernels_avx512.hpp), the way Eigen's packet_traits decouple a kernel from the instruction set.
//
// Decoding. A step reads one chunk of 64 packed bytes of a row (P·64 weights, P = 4 or 5 a byte)
// and decodes it into P "slot" vectors of 64 bytes: slot k, lane j holds the weight of column
// P·(64q + j) + k. Activations are permuted once per token into the same slot-major order, so
// the kernel never shuffles bytes across lanes: a dot product does not care about the order of
// its terms as long as both sides use the same one.
//
// Signed trick. x86 multiplies unsigned by signed bytes (vpdpbusd, vpmaddubsw), so weights are
// decoded to d = t + 1 ∈ {0, 1, 2} (unsigned) and activations stay signed int8 (−128 allowed):
//   Σ_c d_c·x_c = Σ_c t_c·x_c + Σ_c x_c   ⇒   acc = Σ d·x − Σ x,
// one subtraction per output of a per-token sum; padding weights (t = 0 past the last column)
// meet activations set to 0, so they add nothing. No per-row correction is stored.
//
// Tiles. Decode (N = 1): R rows at a time, decoded in registers, one accumulator per (row, slot)
// where the ISA's dot product is a long-latency chain (vpdpbusd). Many tokens: a panel of RT rows
// is decoded once into an L1-resident buffer, then an RT×TT register tile (rows × tokens) runs
// over it, so the decode cost is shared by all tokens.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "linattn/core/tensor.hpp"
#include "linattn/ops/ternary/kernels_scalar.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::ternary::detail {

inline constexpr index_t kChunkBytes = 64;  // packed bytes one decode step reads
// Software prefetch distance of the decode path. Measured (Zen 5, 1 thread, cold weights, us per
// 2-bit GEMV at 2048×5632 / 5632×2048 / 32000×1024): none 170/196/-, 4 KiB 120/102/283,
// 8 KiB 99/76/285, 12 KiB 92/76/208, 16 KiB 91/74/222, 24 KiB 90/80/237.
inline constexpr index_t kPrefetchBytes = 12 << 10;

// Number of 64-byte chunks of a row and the length of a token in slot-major order.
inline index_t chunks_per_row(const PackedWeights& w) { return (w.row_bytes() + kChunkBytes - 1) / kChunkBytes; }
inline index_t slot_major_stride(const PackedWeights& w) {
  return chunks_per_row(w) * weights_per_byte(w.packing()) * kChunkBytes;
}

// One token in column order (cols codes) → slot-major (stride bytes, zero past the last column);
// returns Σ x. out[(q·P + k)·64 + j] = x[P·(64q + j) + k]. P is a template parameter so that
// GCC vectorises the strided gather of full chunks (vpermt2b; 0.3 us for 5632 codes, against
// 1.5 us for a runtime stride).
template <int P>
inline std::int32_t to_slot_major(const std::int8_t* x, index_t cols, index_t stride, std::int8_t* out) {
  std::int32_t sum = 0;
  for (index_t c = 0; c < cols; ++c) sum += x[c];
  const index_t chunks = stride / (P * kChunkBytes);
  for (index_t q = 0; q < chunks; ++q) {
    const index_t base = q * P * kChunkBytes;
    std::int8_t* o = out + base;
    if (base + P * kChunkBytes <= cols) {  // full chunk: no bounds checks
      const std::int8_t* in = x + base;
      for (int k = 0; k < P; ++k)
        for (index_t j = 0; j < kChunkBytes; ++j) o[k * kChunkBytes + j] = in[P * j + k];
    } else {
      for (int k = 0; k < P; ++k)
        for (index_t j = 0; j < kChunkBytes; ++j) {
          const index_t c = base + P * j + k;
          o[k * kChunkBytes + j] = c < cols ? x[c] : std::int8_t{0};
        }
    }
  }
  return sum;
}

inline std::int32_t to_slot_major(const std::int8_t* x, index_t cols, Packing p, index_t stride, std::int8_t* out) {
  return p == Packing::bits2 ? to_slot_major<4>(x, cols, stride, out) : to_slot_major<5>(x, cols, stride, out);
}

namespace simd {

// Decode: rows r .. r+R-1, token 0. Isa::Decoder<P>: state(chunk) once per row and chunk, then
// slot(state, k) = the d-values of slot k, possibly scaled by 2^Isa::slot_shift(k), right before
// they are used (one decoded slot per row live at a time).
template <class Isa, Packing P, int R, class Out>
inline void gemv_tile(const typename Isa::template Decoder<P>& dec, const PackedWeights& w, const ActivationsView& x,
                      index_t r, const Out& out) {
  using Bytes = typename Isa::Bytes;
  using Acc = typename Isa::Acc;
  constexpr int S = weights_per_byte(P);
  constexpr int A = Isa::kAccPerSlot ? S : 1;
  static_assert(R >= 1 && R <= 4, "gemv_tile: 1 to 4 rows (one hsum4)");
  static_assert(Isa::kAccPerSlot || Isa::slot_shift(0) + Isa::slot_shift(1) + Isa::slot_shift(3) == 0,
                "gemv_tile: scaled slots need one accumulator per slot");
  const index_t row_bytes = w.row_bytes();
  const index_t full = row_bytes / kChunkBytes;
  const int tail = static_cast<int>(row_bytes % kChunkBytes);
  const std::uint8_t* wr[R];
  for (int i = 0; i < R; ++i) wr[i] = w.row(r + i);
  Acc acc[R][A];
  for (int i = 0; i < R; ++i)
    for (int a = 0; a < A; ++a) acc[i][a] = Isa::zero();

  // The R rows are one contiguous byte range; the next tiles follow it. Prefetch that range
  // linearly, kPrefetchBytes ahead, R lines per step (the pace at which this tile consumes its
  // own): rows of a few hundred bytes are streams too short for the hardware prefetcher to train.
  const auto pf_base = reinterpret_cast<std::uintptr_t>(wr[0]) + kPrefetchBytes;
  const std::int8_t* xq = x.codes;
  for (index_t q = 0; q <= full; ++q, xq += S * kChunkBytes) {
    if (q == full && !tail) break;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
      __builtin_prefetch(reinterpret_cast<const void*>(pf_base + static_cast<std::uintptr_t>((q * R + i) * kChunkBytes)));
    typename Isa::template Decoder<P>::State st[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
      st[i] = dec.state(q < full ? Isa::load(wr[i] + q * kChunkBytes) : Isa::load_partial(wr[i] + q * kChunkBytes, tail));
#pragma GCC unroll 8
    for (int k = 0; k < S; ++k) {
      const Bytes xk = Isa::load(xq + k * kChunkBytes);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][k % A] = Isa::dot(acc[i][k % A], dec.slot(st[i], k), xk);
    }
  }
  Acc rowsum[4];
  for (int i = 0; i < 4; ++i) {
    rowsum[i] = Isa::zero();
    if (i < R)
      for (int a = 0; a < A; ++a) rowsum[i] = Isa::add(rowsum[i], Isa::shift_right(acc[i][a], Isa::slot_shift(a)));
  }
  std::int32_t s[4];
  Isa::hsum4(rowsum[0], rowsum[1], rowsum[2], rowsum[3], s);
  for (int i = 0; i < R; ++i) out(0, r + i, s[i] - x.sums[0]);
}

// Many tokens: RT rows (decoded in `panel`, [RT, L] bytes of d) × T tokens, over L slot-major lanes.
// pf/pf_bytes: packed bytes to prefetch over the tile's steps (the next panel's rows), or none.
template <class Isa, int T>
inline void gemm_tile(const std::uint8_t* panel, index_t L, const std::int8_t* x, index_t stride,
                      std::int32_t (&s)[Isa::kGemmRows][Isa::kGemmTokens], std::uintptr_t pf, index_t pf_bytes) {
  using Bytes = typename Isa::Bytes;
  using Acc = typename Isa::Acc;
  constexpr int RT = Isa::kGemmRows;
  Acc acc[RT][T];
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < T; ++j) acc[i][j] = Isa::zero();
  for (index_t q = 0; q < L; q += kChunkBytes) {
    if (pf_bytes) __builtin_prefetch(reinterpret_cast<const void*>(pf + static_cast<std::uintptr_t>(q * pf_bytes / L)));
    Bytes wv[RT];
#pragma GCC unroll 8
    for (int i = 0; i < RT; ++i) wv[i] = Isa::load_aligned(panel + i * L + q);
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
      const Bytes xv = Isa::load_aligned(x + j * stride + q);
#pragma GCC unroll 8
      for (int i = 0; i < RT; ++i) acc[i][j] = Isa::dot(acc[i][j], wv[i], xv);
    }
  }
  // Constant indices only: a conditional acc[i][j] makes GCC keep the accumulators in memory
  // (measured: twice the time of the whole tile).
  static_assert(RT == 2 || RT == 4, "gemm_tile: the row tile must be 2 or 4");
  for (int j = 0; j < T; ++j) {
    std::int32_t col[4];
    if constexpr (RT == 4)
      Isa::hsum4(acc[0][j], acc[1][j], acc[2][j], acc[3][j], col);
    else
      Isa::hsum4(acc[0][j], acc[1][j], Isa::zero(), Isa::zero(), col);
    for (int i = 0; i < RT; ++i) s[i][j] = col[i];
  }
}

// Rows of a panel decoded into d-values: panel[i·L + (q·P + k)·64 + j].
template <class Isa, Packing P>
inline void decode_panel(const typename Isa::template Decoder<P>& dec, const PackedWeights& w, index_t r, int R,
                         std::uint8_t* panel, index_t L) {
  using Bytes = typename Isa::Bytes;
  constexpr int S = weights_per_byte(P);
  const index_t full = w.row_bytes() / kChunkBytes;
  const int tail = static_cast<int>(w.row_bytes() % kChunkBytes);
  for (int i = 0; i < R; ++i) {
    const std::uint8_t* wr = w.row(r + i);
    std::uint8_t* o = panel + i * L;
    Bytes d[S];
    for (index_t q = 0; q < full; ++q, o += S * kChunkBytes) {
      dec.panel(Isa::load(wr + q * kChunkBytes), d);
      for (int k = 0; k < S; ++k) Isa::store_aligned(o + k * kChunkBytes, d[k]);
    }
    if (tail) {
      dec.panel(Isa::load_partial(wr + full * kChunkBytes, tail), d);
      for (int k = 0; k < S; ++k) Isa::store_aligned(o + k * kChunkBytes, d[k]);
    }
  }
}

// Tokens per block of the many-token path: the slot-major activations of a block stay within
// about half of a 1 MiB L2 while every row panel of the thread's range streams over them.
inline constexpr index_t kTokenBlockBytes = index_t(512) << 10;

// out(t, r, acc) for every token and row r in [r0, r1); x slot-major.
template <class Isa, Packing P, class Out>
void matmul_rows(const PackedWeights& w, const ActivationsView& x, index_t r0, index_t r1, const Out& out) {
  const typename Isa::template Decoder<P> dec;
  if (x.tokens == 1) {
    constexpr int R = Isa::template kGemvRows<P>;
    index_t r = r0;
    for (; r + R <= r1; r += R) gemv_tile<Isa, P, R>(dec, w, x, r, out);
    for (; r < r1; ++r) gemv_tile<Isa, P, 1>(dec, w, x, r, out);
    return;
  }
  constexpr int RT = Isa::kGemmRows, TT = Isa::kGemmTokens;
  const index_t L = x.stride;
  AlignedVector<std::uint8_t> panel(static_cast<std::size_t>(RT * L), 0);  // [RT, L]
  const index_t block = std::max<index_t>(TT, kTokenBlockBytes / L / TT * TT);
  for (index_t t0 = 0; t0 < x.tokens; t0 += block) {
    const index_t t1 = std::min(x.tokens, t0 + block);
    for (index_t r = r0; r < r1; r += RT) {
      const int R = static_cast<int>(std::min<index_t>(RT, r1 - r));
      decode_panel<Isa, P>(dec, w, r, R, panel.data(), L);
      // While the first token group runs, prefetch the next panel's packed rows: they are read
      // once per token block, from memory when the weights are cold.
      const auto next = reinterpret_cast<std::uintptr_t>(w.row(r)) + static_cast<std::uintptr_t>(RT * w.row_bytes());
      for (index_t t = t0; t < t1; t += TT) {
        std::int32_t s[RT][TT];
        const std::int8_t* xt = x.codes + t * x.stride;
        const int T = static_cast<int>(std::min<index_t>(TT, t1 - t));
        const index_t pf_bytes = t == t0 ? RT * w.row_bytes() : 0;
        switch (T) {
          case 1: gemm_tile<Isa, 1>(panel.data(), L, xt, x.stride, s, next, pf_bytes); break;
          case 2: gemm_tile<Isa, 2>(panel.data(), L, xt, x.stride, s, next, pf_bytes); break;
          case 3: gemm_tile<Isa, 3>(panel.data(), L, xt, x.stride, s, next, pf_bytes); break;
          default: gemm_tile<Isa, TT>(panel.data(), L, xt, x.stride, s, next, pf_bytes); break;
        }
        for (int j = 0; j < T; ++j)
          for (int i = 0; i < R; ++i) out(t + j, r + i, s[i][j] - x.sums[t + j]);
      }
    }
  }
}

}  // namespace simd
}  // namespace linattn::ternary::detail
