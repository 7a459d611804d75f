// The one gated linear recurrence that GLA, GSA and HGRN are built on (SPEC §2–§4).
//
//   S_t = decay_t(S_{t-1}) + k_tᵀ v_t          S: [K, V] per (sequence, head)
//   o_t = scale · q_t S_t                      (the current token is included, SPEC §8.5)
//
// with a log-space gate g_t acting on one axis of S:
//   GateAxis::key    S[k][v] ← e^{g[k]} S[k][v]   (GLA; GSA pass 2, where the key axis is the slots)
//   GateAxis::value  S[k][v] ← e^{g[v]} S[k][v]   (GSA pass 1, slots on the value axis; HGRN)
//
// The forms over one (sequence, head) slice, all agreeing to rounding:
//   recurrent_head    token by token, the state tile held in registers (the reference);
//   fused_chunk_head  chunks of 2 tokens, the state tile held in registers, never stored;
//   chunk_head        matrix products over chunks of C rows (ops/recurrence/chunk.hpp, its
//                     phases shared with the backward);
//   step_head         one token on a state in memory (decode).
// The op drivers (gla, gsa, hgrn) share one work distribution: ops/recurrence/driver.hpp.
//
// No exponent is ever positive. Every decay factor is a product of per-token factors
// a_τ = e^{g_τ} ≤ 1 over a span of tokens (prefix products within a chunk for e^{G_t}, suffix
// products for e^{G_r − G_j}, products from a sub-chunk's first row for e^{ρ − G_j}), so no
// factor exceeds 1, underflow goes to 0 as it should, and no cumulative sum of gates is
// differenced: with gates of −1e4 a difference of cumulative sums loses every digit, a product
// of factors loses at most one ulp per factor.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/portable.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"

namespace linattn::detail {

enum class GateAxis { key, value };

// How a gate tensor holds the decay (SPEC §8.1): fla's ops take log-space gates g (decay e^g);
// matmulfreellm's HGRN takes the decay f ∈ (0, 1) itself. Carried explicitly with every gate.
enum class GateSpace { log, linear };

// One (sequence, head): rows [0, len) of row-major matrices with the given row strides.
// Element types may differ (GSA feeds its float softmax probabilities as q of pass 2).
template <class Q, class KT, class VT, class GT, class O>
struct HeadSlice {
  const Q* q = nullptr;   // [len, K]
  const KT* k = nullptr;  // [len, K]
  const VT* v = nullptr;  // [len, V]
  const GT* g = nullptr;  // [len, K] (key gate) or [len, V] (value gate); null: no decay
  O* o = nullptr;         // [len, V]
  index_t q_rs = 0, k_rs = 0, v_rs = 0, g_rs = 0, o_rs = 0;
  index_t len = 0, K = 0, V = 0;
  GateSpace gate_space = GateSpace::log;
};

}  // namespace linattn::detail

// The kernels, named after the path and target they are compiled for (core/portable.hpp).
namespace linattn::detail::inline LINATTN_RECURRENCE_ISA {

template <class Acc>
using RowMatrix = Eigen::Matrix<Acc, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Acc>
using RowMap = Eigen::Map<RowMatrix<Acc>>;

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

// Dot product with one partial sum per vector lane: a single running sum is a serial chain of
// scalar adds (the compiler may not reorder float additions), 8x slower at n = 128.
template <class Acc>
inline Acc dot(const Acc* __restrict a, const Acc* __restrict b, index_t n) {
  constexpr index_t L = 64 / sizeof(Acc);
  Acc part[L] = {};
  index_t i = 0;
  for (; i + L <= n; i += L)
#pragma GCC unroll 16
    for (index_t l = 0; l < L; ++l) part[l] += a[i + l] * b[i + l];
  for (; i < n; ++i) part[i % L] += a[i] * b[i];
  for (index_t w = L / 2; w > 0; w /= 2)
    for (index_t l = 0; l < w; ++l) part[l] += part[l + w];
  return part[0];
}

// Copies `rows` rows of width n (row stride rs) into a dense [rows, ld] buffer of Acc,
// padding columns [n, ld) with `pad`.
template <class Acc, class T>
void load_rows(Acc* dst, index_t ld, const T* src, index_t rs, index_t rows, index_t n, Acc pad) {
  for (index_t r = 0; r < rows; ++r) {
    const T* s = src + r * rs;
    Acc* d = dst + r * ld;
    for (index_t i = 0; i < n; ++i) d[i] = static_cast<Acc>(s[i]);
    for (index_t i = n; i < ld; ++i) d[i] = pad;
  }
}

// The decay a for `rows` rows: e^{g} (log space) or g itself (linear space); with no gate, 1.
template <class Acc, class GT>
void load_decay(Acc* dst, index_t ld, const GT* g, index_t rs, index_t rows, index_t n,
                GateSpace space = GateSpace::log) {
  if (g == nullptr) {
    std::fill(dst, dst + rows * ld, Acc(1));
    return;
  }
  if (space == GateSpace::linear) {
    load_rows(dst, ld, g, rs, rows, n, Acc(1));
    return;
  }
  load_rows(dst, ld, g, rs, rows, n, Acc(0));
  exp_inplace(dst, rows * ld);  // padding: e^0 = 1
}

// ---------------------------------------------------------------------------------------
// The elementwise case: K = 1 with the gate on the value axis is HGRN (SPEC §4),
//   S[v] = a[v] S[v] + k x[v],   o[v] = scale · q S[v]   (q, k scalars per token; HGRN: 1).
// The tiled kernels would pad K = 1 to a whole key tile; these run it directly.
// ---------------------------------------------------------------------------------------
template <class Slice, class Acc>
void elementwise_recurrent(const Slice& x, Acc* __restrict S, Acc scale, std::vector<Acc>& a) {
  using OutT = std::remove_pointer_t<decltype(x.o)>;
  const index_t V = x.V;
  a.resize(static_cast<std::size_t>(V));
  for (index_t t = 0; t < x.len; ++t) {
    load_decay(a.data(), V, x.g ? x.g + t * x.g_rs : x.g, 0, 1, V, x.gate_space);
    const Acc kt = static_cast<Acc>(x.k[t * x.k_rs]);
    const Acc qt = static_cast<Acc>(x.q[t * x.q_rs]) * scale;
    const auto* xv = x.v + t * x.v_rs;
    OutT* ov = x.o + t * x.o_rs;
    for (index_t j = 0; j < V; ++j) {
      S[j] = a[j] * S[j] + kt * static_cast<Acc>(xv[j]);
      ov[j] = static_cast<OutT>(qt * S[j]);
    }
  }
}

// Chunk form of the elementwise case, the two phases of SPEC §4 per chunk of C rows:
// phase 1 scans the chunk from a zero state (ô_t) while accumulating P_t = Π a over the chunk;
// phase 2 adds the carried state: o_t = scale·q_t (ô_t + P_t ⊙ S_in), S_out = ô_r + P_r ⊙ S_in.
// Phase 1 does not depend on earlier chunks, which is what lets a GPU run chunks in parallel;
// here the work items (sequences × column blocks) are the parallel axis.
template <class Slice, class Acc>
void elementwise_chunk(const Slice& x, Acc* __restrict S, Acc scale, index_t chunk, std::vector<Acc>& buf) {
  using OutT = std::remove_pointer_t<decltype(x.o)>;
  const index_t V = x.V;
  chunk = std::min(chunk, std::max<index_t>(x.len, 1));  // the same chunks; buffers for the rows there are
  buf.resize(static_cast<std::size_t>(2 * chunk * V + 2 * V));
  Acc* local = buf.data();         // [C, V] ô
  Acc* prefix = local + chunk * V;  // [C, V] P
  Acc* a = prefix + chunk * V;      // [V]
  Acc* run = a + V;                 // [V]
  for (index_t s0 = 0; s0 < x.len; s0 += chunk) {
    const index_t L = std::min(chunk, x.len - s0);
    std::fill(run, run + V, Acc(0));
    for (index_t t = 0; t < L; ++t) {  // phase 1
      load_decay(a, V, x.g ? x.g + (s0 + t) * x.g_rs : x.g, 0, 1, V, x.gate_space);
      const Acc kt = static_cast<Acc>(x.k[(s0 + t) * x.k_rs]);
      const auto* xv = x.v + (s0 + t) * x.v_rs;
      Acc* P = prefix + t * V;
      const Acc* P_prev = t ? prefix + (t - 1) * V : nullptr;
      for (index_t j = 0; j < V; ++j) {
        run[j] = a[j] * run[j] + kt * static_cast<Acc>(xv[j]);
        P[j] = P_prev ? P_prev[j] * a[j] : a[j];
      }
      std::copy(run, run + V, local + t * V);
    }
    for (index_t t = 0; t < L; ++t) {  // phase 2
      const Acc qt = static_cast<Acc>(x.q[(s0 + t) * x.q_rs]) * scale;
      OutT* ov = x.o + (s0 + t) * x.o_rs;
      for (index_t j = 0; j < V; ++j) ov[j] = static_cast<OutT>(qt * (local[t * V + j] + prefix[t * V + j] * S[j]));
    }
    for (index_t j = 0; j < V; ++j) S[j] = local[(L - 1) * V + j] + prefix[(L - 1) * V + j] * S[j];
  }
}

// ---------------------------------------------------------------------------------------
// Recurrent form.
//
// The state is cut into tiles of kKeyTile rows × kValueTile columns small enough to live in
// vector registers (8 × 32 floats = 16 zmm registers on AVX-512), and each tile is carried
// through a block of tokens before the next tile is touched, so the inner loop is 3 FMA-class
// operations per state element per token with operands broadcast from L1 and no state traffic
// at all. Outputs of the key tiles are summed in a small per-block buffer.
// ---------------------------------------------------------------------------------------

template <class Acc>
struct RecurrentTiles {
  // Measured on Zen 5 (AVX-512), fp32, T = 8192, H = 4, one thread, GFLOP/s at K=V=128 / 64:
  // 8 rows × 2 vectors 96 / 70; 4 × 4: 78 / 56; 6 × 4: 77 / 55; 12 × 2: 77 / 53; 16 × 1: 54 / 50.
  static constexpr index_t kKeyTile = 8;
  static constexpr index_t kValueTile = 2 * 64 / static_cast<index_t>(sizeof(Acc));
  // Tokens per block: the block's q, k, a, v and partial outputs (~100 KB at K=V=128, fp32)
  // stay in L2 while every tile sweeps them.
  static constexpr index_t kTimeBlock = 64;
};

template <class Acc>
struct RecurrentWorkspace {
  // Per block of TB = kTimeBlock tokens, widths padded to whole tiles (Kp, Vp).
  std::vector<Acc> state;  // [Kp, Vp] zero-padded copy of the state (when K, V are not whole tiles)
  std::vector<Acc> q, k;   // [TB, Kp] scale·q, k
  std::vector<Acc> v, o;   // [TB, Vp] values, outputs summed over the key tiles
  std::vector<Acc> a;      // [TB, Kp or Vp] decays of the gated axis (the K = 1 path: [V])
};

#if defined(LINATTN_RECURRENCE_VECTOR)
// A 512-bit vector of Acc (GCC/Clang vector extension; the compiler lowers it to whatever
// the target has, down to scalar code), in two spellings: Vec512 for values (registers and local
// arrays, naturally aligned) and Vec512Mem for memory, whose aligned(sizeof(Acc)) permits
// unaligned loads and stores — every access to a state, q/k/v or output row goes through a
// Vec512Mem pointer. Member typedefs, not attributes on an alias template: clang 14 drops those
// where the alias is used with a dependent argument and then requires 64-byte alignment (UBSan:
// misaligned load; vmovaps on unaligned rows), and it takes arrays of the reduced-alignment
// type as aligned too.
template <class Acc>
struct Vec512Type {
  typedef Acc value __attribute__((vector_size(64)));
  typedef Acc memory __attribute__((vector_size(64), aligned(sizeof(Acc))));
};
template <class Acc>
using Vec512 = typename Vec512Type<Acc>::value;
template <class Acc>
using Vec512Mem = typename Vec512Type<Acc>::memory;
#endif

#if defined(LINATTN_RECURRENCE_VECTOR)
// A state tile of KB rows × NV vectors, moved between memory (leading dimension ld) and registers.
// The casts name Vec512Mem<Acc>: the tiles are not 64-byte aligned.
template <class Acc, class Vec, std::size_t KB, std::size_t NV>
inline void load_state_tile(Vec (&s)[KB][NV], const Acc* tile, index_t ld) {
  constexpr index_t W = 64 / sizeof(Acc);
#pragma GCC unroll 8
  for (std::size_t i = 0; i < KB; ++i)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) s[i][j] = *reinterpret_cast<const Vec512Mem<Acc>*>(tile + index_t(i) * ld + index_t(j) * W);
}
template <class Acc, class Vec, std::size_t KB, std::size_t NV>
inline void store_state_tile(const Vec (&s)[KB][NV], Acc* tile, index_t ld) {
  constexpr index_t W = 64 / sizeof(Acc);
#pragma GCC unroll 8
  for (std::size_t i = 0; i < KB; ++i)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) *reinterpret_cast<Vec512Mem<Acc>*>(tile + index_t(i) * ld + index_t(j) * W) = s[i][j];
}
#endif

// The [K, V] state copied into a zero-padded [Kp, Vp] buffer for the tiled kernels, and back.
// Padded rows and columns meet zero q, k and v, so they stay zero.
template <class Acc>
void pad_state(const Acc* S, index_t K, index_t V, index_t Kp, index_t Vp, std::vector<Acc>& padded) {
  padded.assign(static_cast<std::size_t>(Kp * Vp), Acc(0));
  for (index_t i = 0; i < K; ++i) std::copy(S + i * V, S + (i + 1) * V, padded.data() + i * Vp);
}
template <class Acc>
void unpad_state(const std::vector<Acc>& padded, index_t K, index_t V, index_t Vp, Acc* S) {
  for (index_t i = 0; i < K; ++i) std::copy(padded.data() + i * Vp, padded.data() + i * Vp + V, S + i * V);
}

template <GateAxis axis, class Acc>
inline void recurrent_tile(Acc* __restrict state_tile, index_t state_ld, const Acc* __restrict q,
                           const Acc* __restrict k, const Acc* __restrict a, index_t kld,
                           const Acc* __restrict v, const Acc* __restrict av, Acc* __restrict o,
                           index_t vld, index_t steps) {
  constexpr index_t KB = RecurrentTiles<Acc>::kKeyTile;
#if defined(LINATTN_RECURRENCE_VECTOR)
  using Vec = Vec512<Acc>;
  constexpr index_t W = 64 / sizeof(Acc);
  constexpr index_t NV = RecurrentTiles<Acc>::kValueTile / W;  // vectors per tile row
  static_assert(NV * W == RecurrentTiles<Acc>::kValueTile);
  Vec s[KB][NV];
  load_state_tile(s, state_tile, state_ld);

  for (index_t t = 0; t < steps; ++t) {
    const Acc* qt = q + t * kld;
    const Acc* kt = k + t * kld;
    Vec vt[NV], decay_v[NV], acc0[NV], acc1[NV];
#pragma GCC unroll 4
    for (index_t j = 0; j < NV; ++j) {
      vt[j] = *reinterpret_cast<const Vec512Mem<Acc>*>(v + t * vld + j * W);
      if constexpr (axis == GateAxis::value) decay_v[j] = *reinterpret_cast<const Vec512Mem<Acc>*>(av + t * vld + j * W);
      acc0[j] = Vec{} ;
      acc1[j] = Vec{};
    }
    // Two accumulators per column vector halve the dependent FMA chain for the output.
#pragma GCC unroll 8
    for (index_t i = 0; i < KB; ++i) {
#pragma GCC unroll 4
      for (index_t j = 0; j < NV; ++j) {
        if constexpr (axis == GateAxis::key) {
          s[i][j] = s[i][j] * a[t * kld + i] + kt[i] * vt[j];
        } else {
          s[i][j] = s[i][j] * decay_v[j] + kt[i] * vt[j];
        }
        if (i % 2 == 0)
          acc0[j] += qt[i] * s[i][j];
        else
          acc1[j] += qt[i] * s[i][j];
      }
    }
#pragma GCC unroll 4
    for (index_t j = 0; j < NV; ++j) {
      Vec512Mem<Acc>* ot = reinterpret_cast<Vec512Mem<Acc>*>(o + t * vld + j * W);
      *ot += acc0[j] + acc1[j];
    }
  }

  store_state_tile(s, state_tile, state_ld);
#else
  constexpr index_t VB = RecurrentTiles<Acc>::kValueTile;
  for (index_t t = 0; t < steps; ++t) {
    for (index_t i = 0; i < KB; ++i) {
      Acc* row = state_tile + i * state_ld;
      for (index_t j = 0; j < VB; ++j) {
        const Acc decay = axis == GateAxis::key ? a[t * kld + i] : av[t * vld + j];
        row[j] = row[j] * decay + k[t * kld + i] * v[t * vld + j];
        o[t * vld + j] += q[t * kld + i] * row[j];
      }
    }
  }
#endif
}

// x: one (sequence, head); S: [K, V] state, read as the initial state and overwritten with
// the final one.
template <GateAxis axis, class Slice, class Acc>
void recurrent_head(const Slice& x, Acc* S, Acc scale, RecurrentWorkspace<Acc>& ws) {
  if constexpr (axis == GateAxis::value) {
    if (x.K == 1) return elementwise_recurrent(x, S, scale, ws.a);
  }
  using Tiles = RecurrentTiles<Acc>;
  constexpr index_t KB = Tiles::kKeyTile, VB = Tiles::kValueTile, TB = Tiles::kTimeBlock;
  const index_t K = x.K, V = x.V;
  const index_t Kp = round_up(K, KB), Vp = round_up(V, VB);
  // The tiled kernels work on the caller's state in place when the tiles fit it exactly;
  // otherwise on a zero-padded copy.
  const bool padded = Kp != K || Vp != V;
  if (padded) pad_state(S, K, V, Kp, Vp, ws.state);
  Acc* state = padded ? ws.state.data() : S;
  // Tile strides are skewed by one cache line so that the tiles read and written in one
  // sweep do not sit at the same offset modulo 4 KiB (store-to-load false dependencies).
  ws.q.resize(static_cast<std::size_t>(TB * Kp));
  ws.k.resize(static_cast<std::size_t>(TB * Kp));
  ws.v.resize(static_cast<std::size_t>(TB * Vp));
  ws.o.resize(static_cast<std::size_t>(TB * Vp));
  ws.a.resize(static_cast<std::size_t>(TB * (axis == GateAxis::key ? Kp : Vp)));
  using OutT = std::remove_pointer_t<decltype(x.o)>;

  for (index_t t0 = 0; t0 < x.len; t0 += TB) {
    const index_t tb = std::min(TB, x.len - t0);
    load_rows(ws.q.data(), Kp, x.q + t0 * x.q_rs, x.q_rs, tb, K, Acc(0));
    for (index_t i = 0; i < tb * Kp; ++i) ws.q[i] *= scale;
    load_rows(ws.k.data(), Kp, x.k + t0 * x.k_rs, x.k_rs, tb, K, Acc(0));
    load_rows(ws.v.data(), Vp, x.v + t0 * x.v_rs, x.v_rs, tb, V, Acc(0));
    const index_t gld = axis == GateAxis::key ? Kp : Vp;
    load_decay(ws.a.data(), gld, x.g ? x.g + t0 * x.g_rs : x.g, x.g_rs, tb, axis == GateAxis::key ? K : V,
               x.gate_space);
    std::fill(ws.o.begin(), ws.o.begin() + tb * Vp, Acc(0));
    for (index_t vt = 0; vt < Vp; vt += VB)
      for (index_t kt = 0; kt < Kp; kt += KB)
        recurrent_tile<axis>(state + kt * Vp + vt, Vp, ws.q.data() + kt, ws.k.data() + kt,
                             ws.a.data() + kt, Kp, ws.v.data() + vt, ws.a.data() + vt, ws.o.data() + vt, Vp, tb);
    for (index_t t = 0; t < tb; ++t) {
      OutT* orow = x.o + (t0 + t) * x.o_rs;
      const Acc* src = ws.o.data() + t * Vp;
      for (index_t j = 0; j < V; ++j) orow[j] = static_cast<OutT>(src[j]);
    }
  }
  if (padded) unpad_state(ws.state, K, V, Vp, S);
}

// ---------------------------------------------------------------------------------------
// Fused chunk form: upstream's non-materialised FlashLinearAttention variant (SPEC §2,
// "fused_chunk"): each (key tile, value tile) of the state stays on chip (here: in vector
// registers) while the chunks are walked in order, and no intermediate state is stored.
// Chunks are kGroup = 2 tokens. For a chunk starting after state S_prev, with a_τ = e^{g_τ}:
//   key gate:   P_t = Π_{t0≤τ≤t} a_τ, R_j = Π_{j<τ≤t1} a_τ (both ≤ 1: no positive exponent)
//               o_t   = (scale·q_t ⊙ P_t) S_prev + Σ_{j≤t} c_tj v_j,
//               c_tj  = scale · Σ_k q_t[k] k_j[k] Π_{j<τ≤t} a_τ[k]
//               S_new = diag(P_t1) S_prev + Σ_j (k_j ⊙ R_j)ᵀ v_j
//   value gate: o_t   = ((scale·q_t) S_prev) ⊙ P_t + Σ_{j≤t} c_tj (v_j ⊙ Π_{j<τ≤t} a_τ),  c_tj = scale·q_t·k_j
//               S_new = S_prev diag(P_t1) + Σ_j k_jᵀ (v_j ⊙ R_j)
// The state tile then costs 2 + 1/G FMA-class operations per element and token (G output
// FMAs, one decay multiply and G rank-1 FMAs per chunk of G), against 3 for the recurrent
// form; the scalar intra-chunk coefficients c_tj are O(G·K) per token.
// ---------------------------------------------------------------------------------------

template <class Acc>
struct FusedTiles {
  // Measured (Zen 5, fp32, T = 8192, H = 4, 1 thread), GFLOP/s at K=V=128 / 64, for
  // (chunk G, key rows, value vectors): (2, 8, 2) 99 / 62; (4, 8, 1) 85 / 53; (4, 4, 2) 72 / 48;
  // (2, 4, 2) 69 / 48; (2, 16, 1) 65 / 47; (8, 4, 1) 44 / 34. Larger G runs out of the 32 vector
  // registers (state, G rows of v, G accumulators and the broadcast q, k of each row).
  static constexpr index_t kGroup = 2;
  static constexpr index_t kKeyTile = 8;
  static constexpr index_t kValueTile = 2 * 64 / static_cast<index_t>(sizeof(Acc));
  static constexpr index_t kTimeBlock = 64;  // tokens per sweep over the state tiles
  static_assert(kTimeBlock % kGroup == 0);
};

template <class Acc>
struct FusedWorkspace {
  // Per block of kTimeBlock tokens (rows), padded widths Kp, Vp; Dp = padded gated width.
  std::vector<Acc> state;        // [Kp, Vp]
  std::vector<Acc> q, k;         // [TB, Kp]  key gate: q ⊙ P and k ⊙ R
  std::vector<Acc> v, v_state;   // [TB, Vp]  v, and (value gate) v ⊙ R for the state update
  std::vector<Acc> a;            // [TB, Dp]  e^{g}
  std::vector<Acc> group_decay;  // [TB / G, Dp]  Π over the chunk
  std::vector<Acc> out_decay;    // [TB, Vp]  value gate: P_t for the output
  std::vector<Acc> coef;         // [TB, G]   c_tj
  std::vector<Acc> o;            // [TB, Vp]
  std::vector<Acc> run;          // [max(Kp, Vp)]
};

template <GateAxis axis, class Acc>
inline void fused_tile(Acc* __restrict state_tile, index_t state_ld, const Acc* __restrict q,
                       const Acc* __restrict k, index_t kld, const Acc* __restrict group_decay, index_t dld,
                       const Acc* __restrict v, index_t vld, Acc* __restrict o, index_t groups) {
  constexpr index_t G = FusedTiles<Acc>::kGroup;
  constexpr index_t KB = FusedTiles<Acc>::kKeyTile;
#if defined(LINATTN_RECURRENCE_VECTOR)
  using Vec = Vec512<Acc>;
  constexpr index_t W = 64 / sizeof(Acc);
  constexpr index_t NV = FusedTiles<Acc>::kValueTile / W;
  Vec s[KB][NV];
  load_state_tile(s, state_tile, state_ld);

  for (index_t grp = 0; grp < groups; ++grp) {
    const index_t t0 = grp * G;
    Vec vv[G][NV], acc[G][NV], dv[NV];
#pragma GCC unroll 4
    for (index_t t = 0; t < G; ++t)
#pragma GCC unroll 4
      for (index_t j = 0; j < NV; ++j) {
        vv[t][j] = *reinterpret_cast<const Vec512Mem<Acc>*>(v + (t0 + t) * vld + j * W);
        acc[t][j] = Vec{};
      }
    if constexpr (axis == GateAxis::value)
#pragma GCC unroll 4
      for (index_t j = 0; j < NV; ++j) dv[j] = *reinterpret_cast<const Vec512Mem<Acc>*>(group_decay + grp * dld + j * W);
#pragma GCC unroll 8
    for (index_t i = 0; i < KB; ++i) {
#pragma GCC unroll 4
      for (index_t j = 0; j < NV; ++j) {
#pragma GCC unroll 4
        for (index_t t = 0; t < G; ++t) acc[t][j] += q[(t0 + t) * kld + i] * s[i][j];
        Vec x;
        if constexpr (axis == GateAxis::key)
          x = s[i][j] * group_decay[grp * dld + i];
        else
          x = s[i][j] * dv[j];
#pragma GCC unroll 4
        for (index_t t = 0; t < G; ++t) x += k[(t0 + t) * kld + i] * vv[t][j];
        s[i][j] = x;
      }
    }
#pragma GCC unroll 4
    for (index_t t = 0; t < G; ++t)
#pragma GCC unroll 4
      for (index_t j = 0; j < NV; ++j) *reinterpret_cast<Vec512Mem<Acc>*>(o + (t0 + t) * vld + j * W) += acc[t][j];
  }
  store_state_tile(s, state_tile, state_ld);
#else
  constexpr index_t VB = FusedTiles<Acc>::kValueTile;
  for (index_t grp = 0; grp < groups; ++grp) {
    const index_t t0 = grp * G;
    for (index_t i = 0; i < KB; ++i) {
      Acc* row = state_tile + i * state_ld;
      for (index_t j = 0; j < VB; ++j) {
        for (index_t t = 0; t < G; ++t) o[(t0 + t) * vld + j] += q[(t0 + t) * kld + i] * row[j];
        Acc x = row[j] * (axis == GateAxis::key ? group_decay[grp * dld + i] : group_decay[grp * dld + j]);
        for (index_t t = 0; t < G; ++t) x += k[(t0 + t) * kld + i] * v[(t0 + t) * vld + j];
        row[j] = x;
      }
    }
  }
#endif
}

// x: one (sequence, head); S: [K, V] state, read as the initial state and overwritten with
// the final one.
template <GateAxis axis, class Slice, class Acc>
void fused_chunk_head(const Slice& x, Acc* S, Acc scale, FusedWorkspace<Acc>& ws) {
  using Tiles = FusedTiles<Acc>;
  constexpr index_t G = Tiles::kGroup, KB = Tiles::kKeyTile, VB = Tiles::kValueTile, TB = Tiles::kTimeBlock;
  constexpr bool key = axis == GateAxis::key;
  const index_t K = x.K, V = x.V;
  const index_t Kp = round_up(K, KB), Vp = round_up(V, VB);
  const index_t Dn = key ? K : V, Dp = key ? Kp : Vp;  // the gated dimension
  // The tiled kernels work on the caller's state in place when the tiles fit it exactly;
  // otherwise on a zero-padded copy.
  const bool padded = Kp != K || Vp != V;
  if (padded) pad_state(S, K, V, Kp, Vp, ws.state);
  Acc* state = padded ? ws.state.data() : S;
  auto size = [](std::vector<Acc>& b, index_t n) { b.resize(static_cast<std::size_t>(n)); return b.data(); };
  Acc* q = size(ws.q, TB * Kp);
  Acc* k = size(ws.k, TB * Kp);
  Acc* v = size(ws.v, TB * Vp);
  Acc* v_state = key ? v : size(ws.v_state, TB * Vp);
  Acc* a = size(ws.a, TB * Dp);
  Acc* group_decay = size(ws.group_decay, TB / G * Dp);
  Acc* out_decay = key ? nullptr : size(ws.out_decay, TB * Vp);
  Acc* coef = size(ws.coef, TB * G);
  Acc* o = size(ws.o, TB * Vp);
  Acc* run = size(ws.run, std::max(Kp, Vp));
  using OutT = std::remove_pointer_t<decltype(x.o)>;

  for (index_t t0 = 0; t0 < x.len; t0 += TB) {
    const index_t tb = std::min(TB, x.len - t0);
    const index_t tg = round_up(tb, G);  // rows past tb: q = k = v = 0, a = 1, so they change nothing
    load_rows(q, Kp, x.q + t0 * x.q_rs, x.q_rs, tb, K, Acc(0));
    load_rows(k, Kp, x.k + t0 * x.k_rs, x.k_rs, tb, K, Acc(0));
    load_rows(v, Vp, x.v + t0 * x.v_rs, x.v_rs, tb, V, Acc(0));
    load_decay(a, Dp, x.g ? x.g + t0 * x.g_rs : x.g, x.g_rs, tb, Dn, x.gate_space);
    std::fill(q + tb * Kp, q + tg * Kp, Acc(0));
    std::fill(k + tb * Kp, k + tg * Kp, Acc(0));
    std::fill(v + tb * Vp, v + tg * Vp, Acc(0));
    std::fill(a + tb * Dp, a + tg * Dp, Acc(1));
    for (index_t i = 0; i < tg * Kp; ++i) q[i] *= scale;

    for (index_t g0 = 0; g0 < tg; g0 += G) {
      // c_tj for j ≤ t in this chunk, from the undecayed q and k.
      for (index_t j = g0; j < g0 + G; ++j) {
        if constexpr (key) {
          std::copy(k + j * Kp, k + (j + 1) * Kp, run);  // k_j ⊙ Π_{j<τ≤t} a_τ
          for (index_t t = j; t < g0 + G; ++t) {
            if (t > j)
              for (index_t d = 0; d < Kp; ++d) run[d] *= a[t * Kp + d];
            coef[t * G + (j - g0)] = dot(q + t * Kp, run, Kp);
          }
        } else {
          for (index_t t = j; t < g0 + G; ++t) coef[t * G + (j - g0)] = dot(q + t * Kp, k + j * Kp, Kp);
        }
        for (index_t t = g0; t < j; ++t) coef[t * G + (j - g0)] = Acc(0);
      }
      // Prefix P_t (into q, or kept for the output), the whole-chunk product, and the
      // suffix R_j = Π_{j<τ≤t1} a_τ (into k, or into the state's copy of v).
      Acc* P = group_decay + (g0 / G) * Dp;
      std::copy(a + g0 * Dp, a + (g0 + 1) * Dp, P);
      for (index_t t = g0; t < g0 + G; ++t) {
        if (t > g0)
          for (index_t d = 0; d < Dp; ++d) P[d] *= a[t * Dp + d];
        if constexpr (key)
          for (index_t d = 0; d < Kp; ++d) q[t * Kp + d] *= P[d];
        else
          std::copy(P, P + Vp, out_decay + t * Vp);
      }
      std::fill(run, run + Dp, Acc(1));
      for (index_t j = g0 + G - 1; j >= g0; --j) {
        if constexpr (key) {
          for (index_t d = 0; d < Kp; ++d) k[j * Kp + d] *= run[d];
        } else {
          for (index_t d = 0; d < Vp; ++d) v_state[j * Vp + d] = v[j * Vp + d] * run[d];
        }
        for (index_t d = 0; d < Dp; ++d) run[d] *= a[j * Dp + d];
      }
    }

    std::fill(o, o + tg * Vp, Acc(0));
    for (index_t vt = 0; vt < Vp; vt += VB)
      for (index_t kt = 0; kt < Kp; kt += KB)
        fused_tile<axis>(state + kt * Vp + vt, Vp, q + kt, k + kt, Kp, group_decay + (key ? kt : vt), Dp,
                         v_state + vt, Vp, o + vt, tg / G);

    for (index_t g0 = 0; g0 < tg; g0 += G) {
      if constexpr (!key)
        for (index_t t = g0; t < g0 + G; ++t)
          for (index_t e = 0; e < Vp; ++e) o[t * Vp + e] *= out_decay[t * Vp + e];
      for (index_t j = g0; j < g0 + G; ++j) {
        std::copy(v + j * Vp, v + (j + 1) * Vp, run);  // value gate: v_j ⊙ Π_{j<τ≤t} a_τ
        for (index_t t = j; t < g0 + G; ++t) {
          if constexpr (!key)
            if (t > j)
              for (index_t e = 0; e < Vp; ++e) run[e] *= a[t * Vp + e];
          const Acc c = coef[t * G + (j - g0)];
          for (index_t e = 0; e < Vp; ++e) o[t * Vp + e] += c * run[e];
        }
      }
    }
    for (index_t t = 0; t < tb; ++t) {
      OutT* orow = x.o + (t0 + t) * x.o_rs;
      for (index_t e = 0; e < V; ++e) orow[e] = static_cast<OutT>(o[t * Vp + e]);
    }
  }
  if (padded) unpad_state(ws.state, K, V, Vp, S);
}

// Step form: one token on a state in memory, which it reads and writes exactly once.
// Column tiles of NV vectors, all K rows per tile, one row after the other: the output
// accumulators and v of a tile stay in registers and each state vector is loaded, updated
// (decay, rank-1 add) and stored once.
// ---------------------------------------------------------------------------------------
// Widest tile: 8 512-bit vectors, a whole row of a V = 128 fp32 state, so the state streams in
// row order and each broadcast of a[i], k[i], q[i] serves 8 vectors. Narrower tiles (4, 2, 1
// vectors) take the columns left. Measured (Zen 5, fp32, B = 1, H = 4, K = V = 128, one thread,
// a read+write pass over the 256 KiB state 2.25 us): 8 vectors one row at a time 2.78 us; 4
// vectors one row at a time 3.30 us; 4 vectors two rows at a time (two accumulator sets) 3.60
// us; software prefetch 4 or 8 rows ahead 2.86-2.89 us (the hardware prefetcher follows rows).
inline constexpr index_t kStepVectors = 8;

// Columns [j0, j1) one element at a time: the portable build, and the vector build's last
// columns (fewer than a vector).
template <GateAxis axis, class Acc>
inline void step_columns_scalar(Acc* __restrict S, index_t K, index_t V, index_t j0, index_t j1,
                                const Acc* __restrict a, const Acc* __restrict k, const Acc* __restrict q,
                                const Acc* __restrict v, Acc* __restrict out) {
  for (index_t j = j0; j < j1; ++j) out[j] = Acc(0);
  for (index_t i = 0; i < K; ++i) {
    Acc* row = S + i * V;
    for (index_t j = j0; j < j1; ++j) {
      const Acc decay = axis == GateAxis::key ? a[i] : a[j];
      row[j] = decay * row[j] + k[i] * v[j];
      out[j] += q[i] * row[j];
    }
  }
}

#if defined(LINATTN_RECURRENCE_VECTOR)
// Columns [j0, j0 + NV·W), W = 64 / sizeof(Acc) lanes a vector.
template <GateAxis axis, index_t NV, class Acc>
inline void step_columns(Acc* __restrict S, index_t K, index_t V, index_t j0, const Acc* __restrict a,
                         const Acc* __restrict k, const Acc* __restrict q, const Acc* __restrict v,
                         Acc* __restrict out) {
  constexpr index_t W = 64 / sizeof(Acc);
  using Vec = Vec512<Acc>;
  Vec vv[NV], d[NV], acc[NV];
#pragma GCC unroll 8
  for (index_t c = 0; c < NV; ++c) {
    vv[c] = *reinterpret_cast<const Vec512Mem<Acc>*>(v + j0 + c * W);
    if constexpr (axis == GateAxis::value) d[c] = *reinterpret_cast<const Vec512Mem<Acc>*>(a + j0 + c * W);
    acc[c] = Vec{};
  }
  for (index_t i = 0; i < K; ++i) {
    Vec512Mem<Acc>* row = reinterpret_cast<Vec512Mem<Acc>*>(S + i * V + j0);
#pragma GCC unroll 8
    for (index_t c = 0; c < NV; ++c) {
      const Vec x = row[c] * (axis == GateAxis::key ? Vec{} + a[i] : d[c]) + k[i] * vv[c];
      row[c] = x;
      acc[c] += q[i] * x;
    }
  }
#pragma GCC unroll 8
  for (index_t c = 0; c < NV; ++c) *reinterpret_cast<Vec512Mem<Acc>*>(out + j0 + c * W) = acc[c];
}
#endif

// All V columns: tiles of 8, 4, 2, 1 vectors, then the scalar columns.
template <GateAxis axis, class Acc>
inline void step_all_columns(Acc* __restrict S, index_t K, index_t V, const Acc* __restrict a,
                             const Acc* __restrict k, const Acc* __restrict q, const Acc* __restrict v,
                             Acc* __restrict out) {
  index_t j0 = 0;
#if defined(LINATTN_RECURRENCE_VECTOR)
  constexpr index_t W = 64 / sizeof(Acc);
  for (; j0 + kStepVectors * W <= V; j0 += kStepVectors * W)
    step_columns<axis, kStepVectors>(S, K, V, j0, a, k, q, v, out);
  if (j0 + 4 * W <= V) step_columns<axis, 4>(S, K, V, j0, a, k, q, v, out), j0 += 4 * W;
  if (j0 + 2 * W <= V) step_columns<axis, 2>(S, K, V, j0, a, k, q, v, out), j0 += 2 * W;
  if (j0 + W <= V) step_columns<axis, 1>(S, K, V, j0, a, k, q, v, out), j0 += W;
#endif
  step_columns_scalar<axis>(S, K, V, j0, V, a, k, q, v, out);
}

template <GateAxis axis, class Acc, class Q, class KT, class VT, class GT, class O>
void step_head(const Q* q, const KT* k, const VT* v, const GT* g, O* o, Acc* S, index_t K, index_t V,
               Acc scale, std::vector<Acc>& scratch, GateSpace space = GateSpace::log) {
  const index_t Dn = axis == GateAxis::key ? K : V;  // the gated dimension
  scratch.resize(static_cast<std::size_t>(Dn + 2 * K + 2 * V));
  Acc* a = scratch.data();
  Acc* qs = a + Dn;
  Acc* ks = qs + K;
  Acc* vs = ks + K;
  Acc* acc = vs + V;
  load_decay(a, Dn, g, Dn, 1, Dn, space);
  for (index_t i = 0; i < K; ++i) qs[i] = static_cast<Acc>(q[i]) * scale;
  for (index_t i = 0; i < K; ++i) ks[i] = static_cast<Acc>(k[i]);
  for (index_t j = 0; j < V; ++j) vs[j] = static_cast<Acc>(v[j]);
  step_all_columns<axis>(S, K, V, a, ks, qs, vs, acc);
  for (index_t j = 0; j < V; ++j) o[j] = static_cast<O>(acc[j]);
}

}  // namespace linattn::detail::inline LINATTN_RECURRENCE_ISA
