// Runners for kind "op.gla" and "op.gla_varlen" (tests/data/GOLDEN-README.md, GLA section).
//
// Golden tensors (time-first, as fla):
//   q, k, gk [B, T, H, K] f32    v [B, T, H, V] f32    h0 [N, H, K, V] f32 (optional: zeros)
//   cu_seqlens [N + 1] i64 (varlen only; B = 1)      N = B without cu_seqlens
//   expected  o [B, T, H, V] f64    ht [N, H, K, V] f64
// Every extent comes from the tensors' shapes. Each form runs in float32 from h0 and is compared
// with o and ht:
//   recurrent  gla::recurrent over the whole batch
//   chunk      gla::chunk, default chunk size (64)
//   fused_chunk gla::fused_chunk (state in registers, chunks of 2)
//   step       gla::step token by token from h0; op.gla steps all B sequences together
//              (strided [B, H, *] views of time t), op.gla_varlen steps each packed sequence
//              on its own one-sequence state started from its h0 slice.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.hpp"
#include "linattn/ops/gla.hpp"

namespace conformance {

namespace gla_detail {

using linattn::Array;
using linattn::Shape;
using linattn::TensorView;
using State = linattn::gla::State<float>;

struct Inputs {
  Array<float, 4> q, k, v, gk;       // [B, T, H, K|V]
  std::vector<std::int64_t> cu;      // [N + 1], empty unless varlen
  State h0;                          // [N, H, K, V]
  index_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0;
  std::optional<double> scale;       // nullopt: the library default K^-1/2
};

inline Inputs load(const Case& c, bool varlen) {
  const auto& f = c.file;
  Inputs in;
  in.q = f.read_array<float, 4>("q");  // [B, T, H, K]
  in.B = in.q.size(0);
  in.T = in.q.size(1);
  in.H = in.q.size(2);
  in.K = in.q.size(3);
  in.k = f.read_array<float, 4>("k", {in.B, in.T, in.H, in.K});
  in.gk = f.read_array<float, 4>("gk", {in.B, in.T, in.H, in.K});
  in.v = f.read_array<float, 4>("v", {in.B, in.T, in.H, -1});  // [B, T, H, V]
  in.V = in.v.size(3);

  in.N = in.B;
  if (varlen) {
    const auto& info = f.info("cu_seqlens");
    if (info.rank() != 1) throw linattn::io::FormatError("cu_seqlens has shape " + shape_text(info.shape) + ", expected [N + 1]");
    in.cu = f.read<std::int64_t>("cu_seqlens");
    // The library validates cu_seqlens for recurrent/chunk; the step loop below walks it itself.
    bool ok = in.B == 1 && in.cu.size() >= 2 && in.cu.front() == 0 && in.cu.back() == in.T;
    for (std::size_t i = 0; ok && i + 1 < in.cu.size(); ++i) ok = in.cu[i] <= in.cu[i + 1];
    if (!ok) {
      std::string s;
      for (std::size_t i = 0; i < in.cu.size() && i < 16; ++i) s += (i ? ", " : "") + std::to_string(in.cu[i]);
      throw linattn::io::FormatError("cu_seqlens [" + s + (in.cu.size() > 16 ? ", ...]" : "]") +
                                     " is not a non-decreasing 0..T=" + std::to_string(in.T) +
                                     " partition of B=" + std::to_string(in.B) + " (must be 1) packed inputs");
    }
    in.N = static_cast<index_t>(in.cu.size()) - 1;
  }

  if (f.contains("h0")) {
    const auto h0 = f.read_array<float, 4>("h0", {in.N, in.H, in.K, in.V});
    in.h0 = State::from_tensor(h0.cview());
  } else {
    in.h0 = State(in.N, in.H, in.K, in.V);
  }
  in.scale = metadata_number(f, "scale");
  return in;
}

inline std::vector<float> flat(const State& s) {
  return {s.data(), s.data() + s.view().numel()};
}

// gla::step over every token, from h0. Returns o [B, T, H, V] and the final state [N, H, K, V].
inline std::pair<Array<float, 4>, State> run_steps(const Inputs& in) {
  const index_t B = in.B, T = in.T, H = in.H, K = in.K, V = in.V;
  Array<float, 4> o(Shape<4>{B, T, H, V});
  linattn::gla::StepOptions opt;
  opt.scale = in.scale;
  // [rows, H, D] view of token t of `rows` consecutive batch entries starting at b.
  const auto token = [&](auto* base, index_t b, index_t t, index_t rows, index_t D) {
    using E = std::remove_pointer_t<decltype(base)>;
    return TensorView<E, 3>(base + (b * T + t) * H * D, Shape<3>{rows, H, D}, Shape<3>{T * H * D, D, 1});
  };

  if (in.cu.empty()) {  // all B sequences advance together: state [B, H, K, V]
    State s = in.h0;
    for (index_t t = 0; t < T; ++t)
      linattn::gla::step<float>(token(in.q.data(), 0, t, B, K), token(in.k.data(), 0, t, B, K),
                                token(in.v.data(), 0, t, B, V), token(in.gk.data(), 0, t, B, K),
                                token(o.data(), 0, t, B, V), s, opt);
    return {std::move(o), std::move(s)};
  }

  State final_state(in.N, H, K, V);
  for (index_t n = 0; n < in.N; ++n) {  // each packed sequence alone: state [1, H, K, V]
    State s = State::from_tensor(TensorView<const float, 4>(in.h0.head(n, 0), Shape<4>{1, H, K, V}));
    for (index_t t = in.cu[static_cast<std::size_t>(n)]; t < in.cu[static_cast<std::size_t>(n) + 1]; ++t)
      linattn::gla::step<float>(token(in.q.data(), 0, t, 1, K), token(in.k.data(), 0, t, 1, K),
                                token(in.v.data(), 0, t, 1, V), token(in.gk.data(), 0, t, 1, K),
                                token(o.data(), 0, t, 1, V), s, opt);
    std::copy(s.data(), s.data() + H * K * V, final_state.head(n, 0));
  }
  return {std::move(o), std::move(final_state)};
}

inline bool run(const Case& c, bool varlen) {
  const Inputs in = load(c, varlen);
  const auto& f = c.file;
  const std::vector<double> want_o = read_expected(f, "o", {in.B, in.T, in.H, in.V});
  const std::vector<double> want_ht = read_expected(f, "ht", {in.N, in.H, in.K, in.V});

  linattn::gla::Options opt;
  opt.scale = in.scale;
  opt.cu_seqlens = in.cu;

  const auto checks = [&](const Array<float, 4>& o, const State& ht) {
    return std::vector<Check>{{"o", compare(o.vector(), want_o)}, {"ht", compare(flat(ht), want_ht)}};
  };

  bool ok = true;
  {
    Array<float, 4> o(Shape<4>{in.B, in.T, in.H, in.V});
    State ht;
    linattn::gla::recurrent<float>(in.q.cview(), in.k.cview(), in.v.cview(), in.gk.cview(), o.view(), &in.h0, &ht,
                                   opt);
    ok &= report(c, "recurrent", checks(o, ht));
  }
  {
    Array<float, 4> o(Shape<4>{in.B, in.T, in.H, in.V});
    State ht;
    linattn::gla::chunk<float>(in.q.cview(), in.k.cview(), in.v.cview(), in.gk.cview(), o.view(), &in.h0, &ht, opt);
    ok &= report(c, "chunk", checks(o, ht));
  }
  {
    Array<float, 4> o(Shape<4>{in.B, in.T, in.H, in.V});
    State ht;
    linattn::gla::fused_chunk<float>(in.q.cview(), in.k.cview(), in.v.cview(), in.gk.cview(), o.view(), &in.h0, &ht,
                                     opt);
    ok &= report(c, "fused_chunk", checks(o, ht));
  }
  {
    const auto [o, ht] = run_steps(in);
    ok &= report(c, "step", checks(o, ht));
  }
  return ok;
}

}  // namespace gla_detail

inline bool run_gla(const Case& c) { return gla_detail::run(c, /*varlen=*/false); }
inline bool run_gla_varlen(const Case& c) { return gla_detail::run(c, /*varlen=*/true); }

}  // namespace conformance
