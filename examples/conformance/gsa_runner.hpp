// Runner for kind "op.gsa" (tests/data/GOLDEN-README.md, GSA section).
//
// Golden tensors (time-first, as fla):
//   q [B, T, HQ, K]   k [B, T, H, K]   v [B, T, H, V]   s [B, T, H, M]   g [B, T, H, M] (optional:
//   absent = the softmax-over-time fallback)   hk0 [N, H, K, M], hv0 [N, H, M, V] (optional: zeros)
//   cu_seqlens [N + 1] i64 (optional; B = 1)
//   expected  o [B, T, HQ, V]   hkt [N, H, K, M]   hvt [N, H, M, V]
// Forms: recurrent, chunk and fused_chunk over the whole input; step token by token, one sequence at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "linattn/ops/gsa.hpp"

namespace conformance {

namespace gsa_detail {

using linattn::Array;
using linattn::Shape;
using linattn::TensorView;
using State = linattn::gsa::State<float>;

inline bool run(const Case& c) {
  const auto& f = c.file;
  const auto q = f.read_array<float, 4>("q");  // [B, T, HQ, K]
  const index_t B = q.size(0), T = q.size(1), HQ = q.size(2), K = q.size(3);
  const auto k = f.read_array<float, 4>("k", {B, T, -1, K});
  const index_t H = k.size(2);
  const auto v = f.read_array<float, 4>("v", {B, T, H, -1});
  const auto s = f.read_array<float, 4>("s", {B, T, H, -1});
  const index_t V = v.size(3), M = s.size(3);
  const Array<float, 4> g = f.contains("g") ? f.read_array<float, 4>("g", {B, T, H, M}) : Array<float, 4>();
  std::vector<std::int64_t> cu;
  if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
  const index_t N = cu.empty() ? B : static_cast<index_t>(cu.size()) - 1;

  State h0(N, H, K, M, V);
  if (f.contains("hk0")) {
    const auto hk0 = f.read_array<float, 4>("hk0", {N, H, K, M});
    std::copy(hk0.data(), hk0.data() + hk0.numel(), h0.hk.data());
  }
  if (f.contains("hv0")) {
    const auto hv0 = f.read_array<float, 4>("hv0", {N, H, M, V});
    std::copy(hv0.data(), hv0.data() + hv0.numel(), h0.hv.data());
  }
  const std::vector<double> want_o = read_expected(f, "o", {B, T, HQ, V});
  const std::vector<double> want_hk = read_expected(f, "hkt", {N, H, K, M});
  const std::vector<double> want_hv = read_expected(f, "hvt", {N, H, M, V});

  linattn::gsa::Options opt;
  opt.scale = metadata_number(f, "scale");
  opt.cu_seqlens = cu;
  const TensorView<const float, 4> gv = g.numel() ? g.cview() : TensorView<const float, 4>();
  const auto checks = [&](const Array<float, 4>& o, const State& st) {
    return std::vector<Check>{{"o", compare(o.vector(), want_o)},
                              {"hkt", compare(std::vector<float>(st.hk.data(), st.hk.data() + st.hk.view().numel()), want_hk)},
                              {"hvt", compare(std::vector<float>(st.hv.data(), st.hv.data() + st.hv.view().numel()), want_hv)}};
  };

  bool ok = true;
  for (const std::string form : {"recurrent", "chunk", "fused_chunk"}) {
    Array<float, 4> o(Shape<4>{B, T, HQ, V});
    State ht;
    if (form == "chunk")
      linattn::gsa::chunk<float>(q.cview(), k.cview(), v.cview(), s.cview(), gv, o.view(), &h0, &ht, opt);
    else if (form == "fused_chunk")
      linattn::gsa::fused_chunk<float>(q.cview(), k.cview(), v.cview(), s.cview(), gv, o.view(), &h0, &ht, opt);
    else
      linattn::gsa::recurrent<float>(q.cview(), k.cview(), v.cview(), s.cview(), gv, o.view(), &h0, &ht, opt);
    ok &= report(c, form, checks(o, ht));
  }

  // Step: each sequence alone from its own slice of h0.
  Array<float, 4> o(Shape<4>{B, T, HQ, V});
  State final_state(N, H, K, M, V);
  linattn::gsa::StepOptions sopt;
  sopt.scale = opt.scale;
  for (index_t n = 0; n < N; ++n) {
    const index_t b = cu.empty() ? n : 0;
    const index_t t0 = cu.empty() ? 0 : cu[static_cast<std::size_t>(n)];
    const index_t t1 = cu.empty() ? T : cu[static_cast<std::size_t>(n) + 1];
    State st(1, H, K, M, V);
    std::copy(h0.hk.head(n, 0), h0.hk.head(n, 0) + H * K * M, st.hk.data());
    std::copy(h0.hv.head(n, 0), h0.hv.head(n, 0) + H * M * V, st.hv.data());
    for (index_t t = t0; t < t1; ++t) {
      const auto row = [&](const Array<float, 4>& a) {
        return a.numel() ? TensorView<const float, 3>(a.cview().ptr(b, t), {1, a.size(2), a.size(3)})
                         : TensorView<const float, 3>();
      };
      linattn::gsa::step<float>(row(q), row(k), row(v), row(s), row(g),
                                TensorView<float, 3>(o.view().ptr(b, t), {1, HQ, V}), st, sopt);
    }
    std::copy(st.hk.data(), st.hk.data() + H * K * M, final_state.hk.head(n, 0));
    std::copy(st.hv.data(), st.hv.data() + H * M * V, final_state.hv.head(n, 0));
  }
  ok &= report(c, "step", checks(o, final_state));
  return ok;
}

}  // namespace gsa_detail

inline bool run_gsa(const Case& c) { return gsa_detail::run(c); }

}  // namespace conformance
