// Runner for kind "op.bitlinear" (tests/data/GOLDEN-README.md, BitLinear section).
//
// Golden tensors: x [N, in] f32, weight [out, in] f32, norm_weight [in] f32; expected x_norm [N, in],
// act_codes [N, in] i8, act_scale [N], weight_codes [out, in] i8, weight_scale [1] (= 1/γ,
// upstream's convention), y [N, out]. RMSNorm eps from metadata "eps" (the fused path's 1e-6 when
// absent).
// Forms: "integer" (2-bit packed weights, the integer kernel), "packed1.6" (base-3 packing, the
// same kernel family), "float" (dequantised weights, Eigen). Codes must match exactly: their
// checks report the number of mismatching codes as both max_abs and max_rel (so one mismatch
// fails any tolerance below 1); the other tensors report rel err against the tolerance.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "linattn/nn/bitlinear.hpp"

namespace conformance {

namespace bitlinear_detail {

using linattn::Array;
using linattn::Shape;

template <class A, class B>
Error mismatches(const A& actual, const std::vector<B>& expected) {
  if (static_cast<std::size_t>(actual.numel()) != expected.size())
    throw std::logic_error("bitlinear runner: code tensors differ in size");
  double n = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) n += actual.data()[i] != static_cast<std::int64_t>(expected[i]);
  return {n, n};
}

inline bool run(const Case& c) {
  const auto& f = c.file;
  const auto x = f.read_array<float, 2>("x");  // [N, in]
  const index_t N = x.size(0), in = x.size(1);
  const auto weight = f.read_array<float, 2>("weight", {-1, in});
  const index_t out = weight.size(0);
  const auto norm_weight = f.read_array<float, 1>("norm_weight", {in});
  const std::vector<double> want_xn = read_expected(f, "x_norm", {N, in});
  const std::vector<double> want_scale = read_expected(f, "act_scale", {N});
  const std::vector<double> want_wscale = read_expected(f, "weight_scale", {1});
  const std::vector<double> want_y = read_expected(f, "y", {N, out});
  const auto act_codes = f.read_array<std::int8_t, 2>("act_codes", {N, in});
  const auto weight_codes = f.read_array<std::int8_t, 2>("weight_codes", {out, in});
  const std::vector<std::int8_t>& want_act = act_codes.vector();
  const std::vector<std::int8_t>& want_w = weight_codes.vector();

  linattn::nn::BitLinearOptions opt;
  opt.eps = static_cast<float>(metadata_number(f, "eps").value_or(linattn::ternary::kFusedBitLinearEps));

  bool ok = true;
  for (const char* form : {"integer", "packed1.6", "float"}) {
    const std::string name(form);
    opt.packing = name == "packed1.6" ? linattn::ternary::Packing::base3 : linattn::ternary::Packing::bits2;
    const linattn::nn::BitLinear layer(weight.cview(), norm_weight.vector(), opt);
    Array<float, 2> y(Shape<2>{N, out});
    linattn::nn::BitLinearTrace t;
    if (name == "float")
      layer.forward_reference(x.cview(), y.view(), &t);
    else
      layer.forward(x.cview(), y.view(), &t);
    const std::vector<double> wscale{1.0 / static_cast<double>(layer.weight().gamma())};
    ok &= report(c, form,
                 {{"x_norm", compare(t.x_norm.vector(), want_xn)},
                  {"act_codes_mismatches", mismatches(t.act_codes, want_act)},
                  {"act_scale", compare(t.act_scale, want_scale)},
                  {"weight_codes_mismatches", mismatches(layer.weight().to_codes(), want_w)},
                  {"weight_scale", compare(wscale, want_wscale)},
                  {"y", compare(y.vector(), want_y)}});
  }
  return ok;
}

}  // namespace bitlinear_detail

inline bool run_bitlinear(const Case& c) { return bitlinear_detail::run(c); }

}  // namespace conformance
