// Runner for kind "op.hgrn" (tests/data/GOLDEN-README.md, HGRN section).
//
// Golden tensors: x, g [B, T, D] f32 (g: LOG forget gate)   h0 [N, D] f32 (optional: zeros)
//   cu_seqlens [N + 1] i64 (optional; B = 1)   expected  o [B, T, D] f64   ht [N, D] f64
// Forms: recurrent and chunk with log gates; recurrent with the linear gate f = e^g (the
// matmulfreellm convention, SPEC §4: mmf(f) == fla(log f)); step token by token.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "linattn/ops/hgrn.hpp"

namespace conformance {

inline bool run_hgrn(const Case& c) {
  using linattn::Array;
  using linattn::Shape;
  using linattn::TensorView;
  const auto& f = c.file;
  const auto x = f.read_array<float, 3>("x");
  const index_t B = x.size(0), T = x.size(1), D = x.size(2);
  const auto g = f.read_array<float, 3>("g", {B, T, D});
  std::vector<std::int64_t> cu;
  if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
  const index_t N = cu.empty() ? B : static_cast<index_t>(cu.size()) - 1;
  linattn::hgrn::State<float> h0 = linattn::hgrn::zero_state<float>(N, D);
  if (f.contains("h0")) h0 = linattn::hgrn::state_from_rows<float>(f.read_array<float, 2>("h0", {N, D}).cview());
  const std::vector<double> want_o = read_expected(f, "o", {B, T, D});
  const std::vector<double> want_ht = read_expected(f, "ht", {N, D});
  Array<float, 3> decay(Shape<3>{B, T, D});  // f = e^g for the linear-gate form
  for (index_t i = 0; i < g.numel(); ++i) decay.data()[i] = std::exp(g.data()[i]);

  linattn::hgrn::Options opt;
  opt.cu_seqlens = cu;
  const auto checks = [&](const Array<float, 3>& o, const linattn::hgrn::State<float>& ht) {
    return std::vector<Check>{{"o", compare(o.vector(), want_o)}, {"ht", compare(std::vector<float>(ht.data(), ht.data() + ht.numel()), want_ht)}};
  };
  bool ok = true;
  for (const std::string form : {"recurrent", "chunk", "recurrent_linear_gate"}) {
    Array<float, 3> o(Shape<3>{B, T, D});
    linattn::hgrn::State<float> ht;
    if (form == "chunk")
      linattn::hgrn::chunk<float>(x.cview(), linattn::hgrn::log_gates<float>(g.cview()), o.view(), &h0, &ht, opt);
    else if (form == "recurrent")
      linattn::hgrn::recurrent<float>(x.cview(), linattn::hgrn::log_gates<float>(g.cview()), o.view(), &h0, &ht, opt);
    else
      linattn::hgrn::recurrent<float>(x.cview(), linattn::hgrn::linear_gates<float>(decay.cview()), o.view(), &h0, &ht,
                                      opt);
    ok &= report(c, form, checks(o, ht));
  }
  // Step: each sequence alone from its own row of h0.
  Array<float, 3> o(Shape<3>{B, T, D});
  linattn::hgrn::State<float> final_state = linattn::hgrn::zero_state<float>(N, D);
  for (index_t n = 0; n < N; ++n) {
    const index_t b = cu.empty() ? n : 0;
    const index_t t0 = cu.empty() ? 0 : cu[static_cast<std::size_t>(n)];
    const index_t t1 = cu.empty() ? T : cu[static_cast<std::size_t>(n) + 1];
    linattn::hgrn::State<float> st = linattn::hgrn::zero_state<float>(1, D);
    std::copy(h0.data() + n * D, h0.data() + (n + 1) * D, st.data());
    for (index_t t = t0; t < t1; ++t) {
      const TensorView<const float, 2> xt(x.cview().ptr(b, t), {1, D}), gt(g.cview().ptr(b, t), {1, D});
      linattn::hgrn::step<float>(xt, linattn::hgrn::log_gates<float>(gt), TensorView<float, 2>(o.view().ptr(b, t), {1, D}),
                                 st);
    }
    std::copy(st.data(), st.data() + D, final_state.data() + n * D);
  }
  ok &= report(c, "step", checks(o, final_state));
  return ok;
}

}  // namespace conformance
