// AVX2 ISA traits for kernels_simd.hpp (compiled when the compiler targets AVX2). A 64-byte
// chunk is a pair of 256-bit registers.
//
// Dot product: vpmaddubsw (d unsigned × x signed, adjacent pairs to int16: |·| ≤ 2·2·128 = 512, so
// the sum of the two halves' results cannot saturate) then vpmaddwd by 1 to int32. The add into
// the accumulator has a one-cycle latency, so one accumulator per row suffices.
// 2-bit decode: a shift, four ANDs and four vpshufb from one 16-entry table that maps both field
// positions of a nibble (v & 0x03 ∈ {0,1,3}, v & 0x0C ∈ {0,4,12}) to d = t + 1.
// Base-3 decode: no byte-table permute in AVX2, so the trits come from arithmetic on 16-bit
// lanes: q = mulhi(v, 21846) = ⌊v/3⌋ exactly for v < 256, trit = v − 3q; vpackuswb of the
// unpacklo/unpackhi halves restores the byte order.
#pragma once

#include "linattn/core/portable.hpp"  // LINATTN_PORTABLE

#if !defined(LINATTN_PORTABLE) && defined(__AVX2__)
#define LINATTN_TERNARY_HAVE_AVX2 1

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "linattn/ops/ternary/kernels_simd.hpp"
#include "linattn/ops/ternary/packing.hpp"

namespace linattn::ternary::detail::avx2 {

struct Isa {
  struct Bytes {
    __m256i lo, hi;
  };
  using Acc = __m256i;  // 8 × int32
  static constexpr bool kAccPerSlot = false;
  template <Packing P>
  static constexpr int kGemvRows = 2;
  // Many tokens: 2 rows × 4 tokens = 8 accumulators; with 4 weight and 2 activation registers
  // that fits the 16 ymm registers of an AVX2-only CPU.
  static constexpr int kGemmRows = 2;
  static constexpr int kGemmTokens = 4;

  static Bytes load(const void* p) {
    const auto* b = static_cast<const __m256i*>(p);
    return {_mm256_loadu_si256(b), _mm256_loadu_si256(b + 1)};
  }
  static Bytes load_aligned(const void* p) {
    const auto* b = static_cast<const __m256i*>(p);
    return {_mm256_load_si256(b), _mm256_load_si256(b + 1)};
  }
  static Bytes load_partial(const void* p, int n) {  // first n < 64 bytes, zeros after
    alignas(32) std::uint8_t buf[64] = {};
    std::memcpy(buf, p, static_cast<std::size_t>(n));
    return load_aligned(buf);
  }
  static void store_aligned(void* p, Bytes v) {
    auto* b = static_cast<__m256i*>(p);
    _mm256_store_si256(b, v.lo);
    _mm256_store_si256(b + 1, v.hi);
  }
  static Acc zero() { return _mm256_setzero_si256(); }
  static Acc dot(Acc acc, Bytes d, Bytes x) {
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(d.lo, x.lo), _mm256_maddubs_epi16(d.hi, x.hi));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static Acc add(Acc a, Acc b) { return _mm256_add_epi32(a, b); }
  static Acc shift_right(Acc a, int) { return a; }
  static constexpr int slot_shift(int) { return 0; }  // the decode path's slots are plain d
  static void hsum4(Acc a, Acc b, Acc c, Acc d, std::int32_t* out) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), s);
  }

  // 2-bit fields → d = t + 1: 00 → 1, 01 → 2, 11 → 0 (indices 2 and 8, the reserved 10, never occur).
  struct Fields {
    __m256i lut = _mm256_broadcastsi128_si256(_mm_setr_epi8(1, 2, 1, 0, 2, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1));
    __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C);
    void half(__m256i v, __m256i* d0, __m256i* d1, __m256i* d2, __m256i* d3) const {
      const __m256i hi = _mm256_srli_epi16(v, 4);
      *d0 = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m03));
      *d1 = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m0c));
      *d2 = _mm256_shuffle_epi8(lut, _mm256_and_si256(hi, m03));
      *d3 = _mm256_shuffle_epi8(lut, _mm256_and_si256(hi, m0c));
    }
  };

  template <Packing P>
  struct Decoder {
    static_assert(P == Packing::bits2 || P == Packing::base3, "avx2: no decoder for this packing");
  };
};

// The AVX2 decoders expand a whole panel up front: state() runs the packing's panel() into
// kSlots vectors, slot(k) hands out the k-th.
template <class Decoder, int kSlots>
struct PanelDecoder {
  struct State {
    Isa::Bytes d[kSlots];
  };
  State state(Isa::Bytes v) const {
    State s;
    static_cast<const Decoder*>(this)->panel(v, s.d);
    return s;
  }
  Isa::Bytes slot(const State& s, int k) const { return s.d[k]; }
};

template <>
struct Isa::Decoder<Packing::bits2> : PanelDecoder<Isa::Decoder<Packing::bits2>, 4> {
  Fields fields;
  void panel(Bytes v, Bytes* d) const {
    fields.half(v.lo, &d[0].lo, &d[1].lo, &d[2].lo, &d[3].lo);
    fields.half(v.hi, &d[0].hi, &d[1].hi, &d[2].hi, &d[3].hi);
  }
};

template <>
struct Isa::Decoder<Packing::base3> : PanelDecoder<Isa::Decoder<Packing::base3>, 5> {
  __m256i third = _mm256_set1_epi16(21846), three = _mm256_set1_epi16(3);
  // 32 bytes → 5 vectors of d = trit + 1 (the base-3 digits themselves).
  void half(__m256i v, __m256i (&d)[5]) const {
    const __m256i z = _mm256_setzero_si256();
    __m256i a = _mm256_unpacklo_epi8(v, z);  // 16-bit lanes: bytes 0-7 | 16-23
    __m256i b = _mm256_unpackhi_epi8(v, z);  // bytes 8-15 | 24-31
    for (int i = 0; i < 4; ++i) {
      const __m256i qa = _mm256_mulhi_epu16(a, third), qb = _mm256_mulhi_epu16(b, third);
      d[i] = _mm256_packus_epi16(_mm256_sub_epi16(a, _mm256_mullo_epi16(qa, three)),
                                 _mm256_sub_epi16(b, _mm256_mullo_epi16(qb, three)));
      a = qa;
      b = qb;
    }
    d[4] = _mm256_packus_epi16(a, b);
  }
  void panel(Bytes v, Bytes* d) const {
    __m256i lo[5], hi[5];
    half(v.lo, lo);
    half(v.hi, hi);
    for (int i = 0; i < 5; ++i) d[i] = {lo[i], hi[i]};
  }
};

}  // namespace linattn::ternary::detail::avx2

#endif
