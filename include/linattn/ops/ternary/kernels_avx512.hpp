// AVX-512 ISA traits for kernels_simd.hpp: compiled when the compiler targets AVX-512 F + BW +
// VNNI + VBMI (Ice Lake, Zen 4 and later). CPUs with AVX-512 but without VNNI or VBMI (Skylake-X,
// Cascade Lake) take the AVX2 path, so that every branch compiled here is one the tests run.
//
// 2-bit decode (N = 1): one vpaddb and one vpternlog turn a chunk into the "D form" (every 2-bit
// field holds d = t + 1 in place), then an AND per slot; slot k is left scaled by 4^k, which
// vpdpbusd takes as it is (≤ 128 fits a u8) and the row's end undoes with a shift. 6 simple
// instructions + 4 vpdpbusd per 256 weights, no shuffles (a vpshufb-table decode, 9 + 4, ran
// at 67 us against 45 us for 2048×5632 with the weights in L3).
// Base-3 decode: the fifth digit from two unsigned compares, the first four from a 128-entry
// table (vpermi2b) straight into the D form: 11 instructions + 5 vpdpbusd per 320 weights.
// The many-token path stores plain d-values (shift + AND per slot) in its panel.
#pragma once

#include "linattn/core/portable.hpp"  // LINATTN_PORTABLE

#if !defined(LINATTN_PORTABLE) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
#define LINATTN_TERNARY_HAVE_AVX512 1

#include <immintrin.h>

#include <array>
#include <cstdint>

#include "linattn/ops/ternary/kernels_simd.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::ternary::detail::avx512 {

// Base-3 byte v = l + 81·h (h the fifth trit's digit) → its first four trits as d = t + 1 in the
// 2-bit fields of a byte (the "D" form below); a function of l < 81 only, 128 entries (81 used).
constexpr auto make_base3_table() {
  std::array<std::uint8_t, 128> t{};
  for (int l = 0; l < 81; ++l) {
    unsigned b = 0;
    for (int i = 0; i < 4; ++i) b |= static_cast<unsigned>(kBase3Decode[static_cast<std::size_t>(l)][static_cast<std::size_t>(i)] + 1) << (2 * i);
    t[static_cast<std::size_t>(l)] = static_cast<std::uint8_t>(b);
  }
  return t;
}
alignas(64) inline constexpr auto kBase3Table = make_base3_table();

struct Isa {
  using Bytes = __m512i;  // 64 bytes
  using Acc = __m512i;    // 16 × int32
  static constexpr bool kAccPerSlot = true;  // vpdpbusd accumulates in place: latency-bound chains otherwise
  // Decode tiles, rows × slots accumulators: 4 × 4 for 2-bit, 3 × 5 for base-3. Measured (Zen 5,
  // 256×4096 in L2, us per GEMV, R = 1/2/3/4): 2-bit 5.1/4.1/3.6/3.4, base-3 6.1/5.3/5.1/5.4.
  template <Packing P>
  static constexpr int kGemvRows = P == Packing::bits2 ? 4 : 3;
  // Many tokens: 4 rows × 4 tokens = 16 accumulators, 8 loads per 16 vpdpbusd. Measured (Zen 5,
  // 1 thread, 128 tokens, 5632×2048 / 2048×5632, GMAC/s): 4×4 342-353 / 339-349, 4×6 339-345 /
  // 326-330, 6×4 269 / 271, 8×3 262-265, 8×2 271-274 / 209-211 (wider panels leave L1); the
  // vpdpbusd peak on registers is 458 (bench BM_Int8DotPeak).
  static constexpr int kGemmRows = 4;
  static constexpr int kGemmTokens = 4;

  static Bytes load(const void* p) { return _mm512_loadu_si512(p); }
  static Bytes load_aligned(const void* p) { return _mm512_load_si512(p); }
  static Bytes load_partial(const void* p, int n) {  // first n < 64 bytes, zeros after
    return _mm512_maskz_loadu_epi8((__mmask64{1} << n) - 1, p);
  }
  static void store_aligned(void* p, Bytes v) { _mm512_store_si512(p, v); }
  static Acc zero() { return _mm512_setzero_si512(); }
  // acc += Σ over groups of 4 bytes of d (unsigned) · x (signed).
  static Acc dot(Acc acc, Bytes d, Bytes x) {
#if defined(__GNUC__) && !defined(__clang__)
    // GCC 12 allocates the tied accumulator of the vpdpbusd builtin badly: a register copy in and
    // out of every call, and spills beyond 10 accumulators (measured, 2048×5632 2-bit GEMV with
    // the weights in L3: 62 us with the builtin, 54 us with this). "v" for x as well: a memory
    // operand would reload x once per row of the tile.
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(d), "v"(x));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, d, x);
#endif
  }
  static Acc add(Acc a, Acc b) { return _mm512_add_epi32(a, b); }
  // out[0..3] = horizontal sums of a, b, c, d: one transpose-and-add tree for the four.
  static void hsum4(Acc a, Acc b, Acc c, Acc d, std::int32_t* out) {
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));  // [a b c d] × 4 lanes
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0x4E));
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0xB1));
    _mm512_mask_storeu_epi32(out, 0x000F, s);
  }

  // Slot k of the decode (N = 1) path carries d·4^k: the D form keeps each field in place and
  // vpdpbusd multiplies the masked byte (≤ 2·64 = 128, still a u8) as it is; the per-slot sums
  // are shifted back (exactly: every term is a multiple of 4^k) when a row is finished.
  static Acc shift_right(Acc a, int n) { return _mm512_srai_epi32(a, static_cast<unsigned>(n)); }
  static constexpr int slot_shift(int k) { return k < 4 ? 2 * k : 0; }

  // D form of 2-bit codes: every field f = (b1 b0) → d = t + 1 in place, d0 = ~b0, d1 = b0 & ~b1
  // (00 → 01, 01 → 10, 11 → 00): one vpternlog of v, v << 1 and the even-bit mask.
  static __m512i d_form(__m512i v, __m512i even_bits) {
    return _mm512_ternarylogic_epi32(v, _mm512_add_epi8(v, v), even_bits, 0x0E);
  }
  struct Fields {  // D form → 4 slots
    __m512i f0 = _mm512_set1_epi8(0x03), f1 = _mm512_set1_epi8(0x0C), f2 = _mm512_set1_epi8(0x30),
            f3 = _mm512_set1_epi8(static_cast<char>(0xC0));
    __m512i scaled_slot(__m512i D, int k) const {  // d·4^k
      return _mm512_and_si512(D, k == 0 ? f0 : (k == 1 ? f1 : (k == 2 ? f2 : f3)));
    }
    void plain(__m512i D, __m512i* d) const {  // d
      d[0] = _mm512_and_si512(D, f0);
      d[1] = _mm512_and_si512(_mm512_srli_epi16(D, 2), f0);
      d[2] = _mm512_and_si512(_mm512_srli_epi16(D, 4), f0);
      d[3] = _mm512_and_si512(_mm512_srli_epi16(D, 6), f0);
    }
  };

  template <Packing P>
  struct Decoder {
    static_assert(P == Packing::bits2 || P == Packing::base3, "avx512: no decoder for this packing");
  };
};

// Decode (N = 1) path: state(v) once per chunk, then slot(state, k) right before slot k's
// vpdpbusd (scaled, see slot_shift), so only one decoded slot per row is live at a time.
// panel(v, d): the plain d-values the many-token path stores.
template <>
struct Isa::Decoder<Packing::bits2> {
  Fields fields;
  __m512i even_bits = _mm512_set1_epi8(0x55);
  using State = __m512i;
  State state(__m512i v) const { return d_form(v, even_bits); }
  __m512i slot(const State& D, int k) const { return fields.scaled_slot(D, k); }
  void panel(__m512i v, __m512i* d) const { fields.plain(d_form(v, even_bits), d); }
};

// Base-3: h = [v >= 81] + [v >= 162] (two unsigned compares) is the fifth digit; l = v − 81·h
// (two masked subtracts) indexes a 128-entry table (one vpermi2b) that gives the first four in
// the D form. Measured (Zen 5, 2048×5632 GEMV, weights in L3): 64 us against 66 us for a
// 256-entry table on v (two vpermi2b and a blend on bit 7), with fewer shuffles.
template <>
struct Isa::Decoder<Packing::base3> {
  Fields fields;
  __m512i lo = _mm512_load_si512(kBase3Table.data()), hi = _mm512_load_si512(kBase3Table.data() + 64);
  __m512i c81 = _mm512_set1_epi8(81), c162 = _mm512_set1_epi8(static_cast<char>(162)), one = _mm512_set1_epi8(1);
  struct State {
    __m512i D, d4;
  };
  State state(__m512i v) const {
    const __mmask64 ge81 = _mm512_cmpge_epu8_mask(v, c81), ge162 = _mm512_cmpge_epu8_mask(v, c162);
    __m512i l = _mm512_mask_sub_epi8(v, ge81, v, c81);
    l = _mm512_mask_sub_epi8(l, ge162, l, c81);
    const __m512i h = _mm512_maskz_mov_epi8(ge81, one);
    return {_mm512_permutex2var_epi8(lo, l, hi), _mm512_mask_add_epi8(h, ge162, h, one)};
  }
  __m512i slot(const State& s, int k) const { return k < 4 ? fields.scaled_slot(s.D, k) : s.d4; }
  void panel(__m512i v, __m512i* d) const {
    const State s = state(v);
    fields.plain(s.D, d);
    d[4] = s.d4;
  }
};

}  // namespace linattn::ternary::detail::avx512

#endif
