// AVX-512 ISA traits for kernels_simd.hpp: compiled when the compiler targets AVX-512 F + BW +
// VNNI + VBMI (Ice Lake, Zen 4 and later). CPUs with AVX-512 but without VNNI or VBMI (Skylake-X,
// Cascade Lake) take the AVX2 path, so that every branch compiled here is one the tests run.
//
// 2-bit decode: per 64-byte chunk one shift, four ANDs and four vpshufb from a 16-entry table
// that maps both field positions of a nibble (v & 0x03 ∈ {0,1,3}, v & 0x0C ∈ {0,4,12}) to
// d = t + 1: 13 instructions per 256 weights with the four vpdpbusd.
// Base-3 decode: two 256-byte tables, each looked up with two vpermi2b (7-bit index, 128
// entries) and a blend on bit 7: base-3 byte → the 2-bit bytes of its first four trits (then
// the 2-bit decode) and → d of its fifth trit: 16 instructions + 5 vpdpbusd per 320 weights.
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
#define LINATTN_TERNARY_HAVE_AVX512 1

#include <immintrin.h>

#include <array>
#include <cstdint>

#include "linattn/ops/ternary/kernels_simd.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::ternary::detail::avx512 {

// Base-3 byte → (2-bit fields of trits 0..3) and → d of trit 4; bytes >= 243 never occur.
constexpr auto make_base3_tables() {
  std::array<std::array<std::uint8_t, 256>, 2> t{};
  for (int v = 0; v < kBase3Values; ++v) {
    const auto& trits = kBase3Decode[static_cast<std::size_t>(v)];
    unsigned b = 0;
    for (int i = 0; i < 4; ++i) b |= static_cast<unsigned>(encode_2bit(trits[static_cast<std::size_t>(i)])) << (2 * i);
    t[0][static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(b);
    t[1][static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(trits[4] + 1);
  }
  return t;
}
alignas(64) inline constexpr auto kBase3Tables = make_base3_tables();

struct Isa {
  using Bytes = __m512i;  // 64 bytes
  using Acc = __m512i;    // 16 × int32
  static constexpr bool kAccPerSlot = true;  // vpdpbusd accumulates in place: latency-bound chains otherwise
  // Decode tiles: 4 rows × 4 slots = 16 accumulators for 2-bit; 2 × 5 = 10 for base-3, whose 8
  // table registers leave less room.
  template <Packing P>
  static constexpr int kGemvRows = P == Packing::bits2 ? 4 : 2;
  // Many tokens: 4 rows × 4 tokens = 16 accumulators, 8 loads per 16 vpdpbusd.
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
  static Acc dot(Acc acc, Bytes d, Bytes x) { return _mm512_dpbusd_epi32(acc, d, x); }
  static Acc add(Acc a, Acc b) { return _mm512_add_epi32(a, b); }
  // out[0..3] = horizontal sums of a, b, c, d. Stays in 512-bit registers: GCC 12's 512→256
  // casts and extracts trip -Wuninitialized in users' builds (GCC PR 105593).
  static void hsum4(Acc a, Acc b, Acc c, Acc d, std::int32_t* out) {
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));  // [a b c d] × 4 lanes
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0x4E));
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0xB1));
    _mm512_mask_storeu_epi32(out, 0x000F, s);
  }

  // 2-bit fields → d = t + 1 (00 → 1, 01 → 2, 11 → 0); indices 0..3 for the low field of a
  // nibble, 0, 4, 8, 12 for the high one (2 and 8 are the reserved code: never stored).
  static __m512i lut_2bit() {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 2, 1, 0, 2, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1));
  }
  struct Fields {
    __m512i lut = lut_2bit(), m03 = _mm512_set1_epi8(0x03), m0c = _mm512_set1_epi8(0x0C);
    void operator()(__m512i v, __m512i* d) const {
      const __m512i hi = _mm512_srli_epi16(v, 4);
      d[0] = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m03));
      d[1] = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m0c));
      d[2] = _mm512_shuffle_epi8(lut, _mm512_and_si512(hi, m03));
      d[3] = _mm512_shuffle_epi8(lut, _mm512_and_si512(hi, m0c));
    }
  };

  template <Packing P>
  struct Decoder {
    static_assert(P == Packing::bits2 || P == Packing::base3, "avx512: no decoder for this packing");
  };
};

template <>
struct Isa::Decoder<Packing::bits2> {
  Fields fields;
  void operator()(__m512i v, __m512i* d) const { fields(v, d); }
};

template <>
struct Isa::Decoder<Packing::base3> {
  Fields fields;
  __m512i t0 = load_table(0, 0), t1 = load_table(0, 1), t2 = load_table(0, 2), t3 = load_table(0, 3);
  __m512i f0 = load_table(1, 0), f1 = load_table(1, 1), f2 = load_table(1, 2), f3 = load_table(1, 3);
  static __m512i load_table(int which, int quarter) {
    return _mm512_load_si512(kBase3Tables[static_cast<std::size_t>(which)].data() + 64 * quarter);
  }
  void operator()(__m512i v, __m512i* d) const {
    const __mmask64 high = _mm512_movepi8_mask(v);  // v >= 128: the upper half of each table
    const __m512i codes = _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(t0, v, t1),
                                                 _mm512_permutex2var_epi8(t2, v, t3));
    d[4] = _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(f0, v, f1), _mm512_permutex2var_epi8(f2, v, f3));
    fields(codes, d);
  }
};

}  // namespace linattn::ternary::detail::avx512

#endif
