// The recurrence core's forms over one (sequence, head) slice, run on a case and returned, for
// tests/ops/test_portable.cpp: it is compiled into two translation units of one test binary,
// test_core_vector.cpp (the default build: vector-extension tiles) and test_portable.cpp
// (LINATTN_PORTABLE: plain C++ loops), each exporting its own entry point. The kernels they call
// live in different inline namespaces (core/portable.hpp), so each entry point runs its own path;
// everything here has internal linkage so that the linker cannot merge the two copies either.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "linattn/ops/gated_recurrence.hpp"
#include "linattn/ops/recurrence/chunk.hpp"

namespace core_paths {

using linattn::index_t;

struct Case {
  bool key_axis = true;       // GateAxis::key (GLA) or ::value (GSA pass 1, HGRN)
  bool linear_gate = false;   // value axis with K = 1 only (HGRN's decay f itself)
  index_t len = 0, K = 0, V = 0;
  index_t chunk = 16;         // chunk form
  index_t misalign = 0;       // every base pointer offset by this many elements from 64-byte alignment
  index_t pad = 0;            // extra elements per row: row strides K + pad, V + pad
  std::uint32_t seed = 1;
};

// Each form's outputs [len, V] and final state [K, V], in the order recurrent, fused_chunk,
// chunk, step (the decode step token by token).
template <class Acc>
struct Results {
  std::vector<std::vector<Acc>> o, S;
  std::vector<double> ref_o, ref_S;  // the recurrence written plainly, in long double
  std::string isa;                   // the inline namespace these ran in
  const void* kernel = nullptr;      // the address of one of its kernels (merged copies would share it)
};

// Results<float> and Results<double> of one case through each path.
Results<float> vector_path_f(const Case& c);
Results<double> vector_path_d(const Case& c);
Results<float> portable_path_f(const Case& c);
Results<double> portable_path_d(const Case& c);

namespace {

#define CORE_PATHS_STR2(x) #x
#define CORE_PATHS_STR(x) CORE_PATHS_STR2(x)

// A buffer of n elements whose first element sits `misalign` elements past a 64-byte boundary.
template <class T>
struct Buffer {
  std::vector<T> storage;
  T* p = nullptr;
  Buffer(index_t n, index_t misalign) : storage(static_cast<std::size_t>(n + misalign + 64), T(0)) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
    const auto skip = static_cast<index_t>(((64 - addr % 64) % 64) / sizeof(T));
    p = storage.data() + skip + misalign;
  }
};

template <class Acc>
Results<Acc> run(const Case& c) {
  using linattn::detail::GateAxis;
  using linattn::detail::GateSpace;
  const index_t K = c.K, V = c.V, L = c.len;
  const index_t krs = K + c.pad, vrs = V + c.pad;
  const index_t G = c.key_axis ? K : V, grs = G + c.pad;
  Buffer<Acc> q(L * krs, c.misalign), k(L * krs, c.misalign), v(L * vrs, c.misalign), g(L * grs, c.misalign);
  std::mt19937 rng(c.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (index_t t = 0; t < L; ++t) {
    for (index_t i = 0; i < K; ++i) q.p[t * krs + i] = Acc(normal(rng)), k.p[t * krs + i] = Acc(normal(rng));
    for (index_t j = 0; j < V; ++j) v.p[t * vrs + j] = Acc(normal(rng));
    for (index_t i = 0; i < G; ++i) {
      // Mostly mild decays, some hard resets (e^-1e4 = 0) and some exact 1s (g = 0).
      const double u = unit(rng);
      const double log_gate = u < 0.05 ? -1e4 : u < 0.1 ? 0.0 : std::log(0.5 + 0.5 * unit(rng)) / 4;
      g.p[t * grs + i] = Acc(c.linear_gate ? std::exp(log_gate) : log_gate);
    }
  }
  const Acc scale = Acc(1) / std::sqrt(Acc(K));
  std::vector<Acc> h0(static_cast<std::size_t>(K * V));
  for (auto& x : h0) x = Acc(normal(rng));

  Results<Acc> r;
  r.isa = CORE_PATHS_STR(LINATTN_RECURRENCE_ISA);
  r.kernel = reinterpret_cast<const void*>(&linattn::detail::step_all_columns<GateAxis::key, Acc>);

  // S_t = decay_t(S_{t-1}) + k_tᵀ v_t, o_t = scale · q_t S_t.
  std::vector<long double> S(h0.begin(), h0.end());
  r.ref_o.assign(static_cast<std::size_t>(L * V), 0.0);
  for (index_t t = 0; t < L; ++t) {
    for (index_t i = 0; i < K; ++i)
      for (index_t j = 0; j < V; ++j) {
        const long double gate = g.p[t * grs + (c.key_axis ? i : j)];
        const long double decay = c.linear_gate ? gate : std::exp(gate);
        S[i * V + j] = decay * S[i * V + j] + (long double)k.p[t * krs + i] * v.p[t * vrs + j];
      }
    for (index_t j = 0; j < V; ++j) {
      long double acc = 0;
      for (index_t i = 0; i < K; ++i) acc += (long double)q.p[t * krs + i] * S[i * V + j];
      r.ref_o[t * V + j] = static_cast<double>(acc * scale);
    }
  }
  r.ref_S.assign(S.begin(), S.end());
  const auto slice = [&](Acc* o) {
    linattn::detail::HeadSlice<Acc, Acc, Acc, Acc, Acc> x;
    x.q = q.p, x.k = k.p, x.v = v.p, x.g = g.p, x.o = o;
    x.q_rs = krs, x.k_rs = krs, x.v_rs = vrs, x.g_rs = grs, x.o_rs = vrs;
    x.len = L, x.K = K, x.V = V;
    x.gate_space = c.linear_gate ? GateSpace::linear : GateSpace::log;
    return x;
  };
  const auto form = [&](auto&& body) {
    Buffer<Acc> o(L * vrs, c.misalign);
    Buffer<Acc> S(K * V, c.misalign);
    std::copy(h0.begin(), h0.end(), S.p);
    body(slice(o.p), S.p);
    std::vector<Acc> out(static_cast<std::size_t>(L * V));
    for (index_t t = 0; t < L; ++t) std::copy_n(o.p + t * vrs, V, out.data() + t * V);
    r.o.push_back(std::move(out));
    r.S.emplace_back(S.p, S.p + K * V);
  };
  const auto both_axes = [&](auto&& fn) {
    if (c.key_axis)
      fn(std::integral_constant<GateAxis, GateAxis::key>{});
    else
      fn(std::integral_constant<GateAxis, GateAxis::value>{});
  };
  both_axes([&](auto axis) {
    form([&](const auto& x, Acc* S) {
      linattn::detail::RecurrentWorkspace<Acc> ws;
      linattn::detail::recurrent_head<axis()>(x, S, scale, ws);
    });
    form([&](const auto& x, Acc* S) {
      linattn::detail::FusedWorkspace<Acc> ws;
      linattn::detail::fused_chunk_head<axis()>(x, S, scale, ws);
    });
    form([&](const auto& x, Acc* S) {
      linattn::detail::ChunkWorkspace<Acc> ws;
      linattn::detail::chunk_head<axis()>(x, S, scale, c.chunk, ws);
    });
    form([&](const auto& x, Acc* S) {
      std::vector<Acc> scratch;
      for (index_t t = 0; t < L; ++t)
        linattn::detail::step_head<axis()>(x.q + t * krs, x.k + t * krs, x.v + t * vrs, x.g + t * grs, x.o + t * vrs, S,
                                           K, V, scale, scratch, x.gate_space);
    });
  });
  return r;
}

}  // namespace
}  // namespace core_paths
