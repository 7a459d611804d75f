// Runners for the gradient kinds grad.gla, grad.gla_varlen, grad.gsa, grad.hgrn and
// grad.bitlinear (shared/golden/grad/README: L = Σ o⊙do + Σ S_T⊙dS_T, float64 expectations).
//
// Forms: "recurrent_backward" and "chunk_backward" (chunks of 64 rows, or the file's
// "chunk_size" metadata; for GLA from the chunk states gla::chunk_train kept) in float32 (the file's float32 tolerance), and the same with "_f64" in
// float64 (the file's float64 tolerance, 1e-10 when it states none); the fused chunk form's
// backward is the chunk form's. BitLinear's straight-through backward in float32. One line per
// form lists every gradient's error.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "linattn/nn/bitlinear_train.hpp"
#include "linattn/ops/gla.hpp"
#include "linattn/ops/gsa.hpp"
#include "linattn/ops/hgrn.hpp"

namespace conformance {

namespace detail {

// The float64 tolerance of a gradient file: metadata tolerance {"float64": x}, else 1e-10.
inline double float64_tolerance(const linattn::io::SafeTensorsFile& f) {
  if (const auto t = f.metadata_json("tolerance"); t && t->is_object())
    for (const char* key : {"float64", "f64", "fp64"})
      if (t->contains(key))
        if (const auto v = number_from_json((*t)[key]); v && *v > 0 && *v < 1) return *v;
  return 1e-10;
}

template <class A>
std::vector<double> as_double(const A* p, index_t n) {
  return std::vector<double>(p, p + n);
}

template <class T, std::size_t R>
Check check_tensor(const linattn::io::SafeTensorsFile& f, const char* name, const linattn::Array<T, R>& got) {
  const std::vector<index_t> shape(got.shape().begin(), got.shape().end());
  return {name, compare(got.vector(), read_expected(f, name, shape))};
}

enum class Form { recurrent, chunk };

// Rows per chunk of the chunk form: the file's "chunk_size" metadata, else fla's 64.
inline index_t chunk_size(const linattn::io::SafeTensorsFile& f) {
  const auto c = metadata_number(f, "chunk_size");
  return c && *c >= 1 && *c <= 4096 && *c == std::floor(*c) ? static_cast<index_t>(*c) : 64;
}

// Both forms in both precisions: checks(form, float{}) returns the checks of one.
template <class Checks>
bool report_forms(const Case& c, Checks&& checks) {
  const Case c64{c.file, c.name, float64_tolerance(c.file)};
  bool ok = true;
  for (const Form form : {Form::recurrent, Form::chunk}) {
    const std::string name = form == Form::recurrent ? "recurrent_backward" : "chunk_backward";
    ok &= report(c, name, checks(form, float{}));
    ok &= report(c64, name + "_f64", checks(form, double{}));
  }
  return ok;
}

template <class T>
std::vector<Check> gla_grad_checks(const linattn::io::SafeTensorsFile& f, Form form) {
  using linattn::Array;
  const auto q = f.read_array<T, 4>("q");
  const index_t B = q.size(0), T_ = q.size(1), H = q.size(2), K = q.size(3);
  const auto k = f.read_array<T, 4>("k", {B, T_, H, K}), gk = f.read_array<T, 4>("gk", {B, T_, H, K});
  const auto v = f.read_array<T, 4>("v", {B, T_, H, -1});
  const index_t V = v.size(3);
  const auto dout = f.read_array<T, 4>("do", {B, T_, H, V});
  std::vector<std::int64_t> cu;
  if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
  const index_t N = cu.empty() ? B : static_cast<index_t>(cu.size()) - 1;
  using S = linattn::gla::State<T>;
  std::optional<S> h0, dht;
  if (f.contains("h0")) h0 = S::from_tensor(f.read_array<typename S::value_type, 4>("h0", {N, H, K, V}).view());
  if (f.contains("dht")) dht = S::from_tensor(f.read_array<typename S::value_type, 4>("dht", {N, H, K, V}).view());
  linattn::gla::Options opt;
  opt.cu_seqlens = cu;
  if (const auto s = metadata_number(f, "scale"); s && std::abs(*s * std::sqrt(double(K)) - 1.0) > 1e-3) opt.scale = *s;
  Array<T, 4> dq(q.shape()), dk(q.shape()), dv(v.shape()), dgk(q.shape());
  S dh0;
  opt.chunk_size = chunk_size(f);
  const linattn::gla::Gradients<T> grads{dq.view(), dk.view(), dv.view(), dgk.view(), &dh0};
  if (form == Form::recurrent) {
    linattn::gla::recurrent_backward<T>(q.cview(), k.cview(), v.cview(), gk.cview(), dout.cview(), h0 ? &*h0 : nullptr,
                                        dht ? &*dht : nullptr, grads, opt);
  } else {  // the training path: the chunk states kept by the forward
    linattn::gla::ChunkStates<T> saved;
    Array<T, 4> o(v.shape());
    linattn::gla::chunk_train<T>(q.cview(), k.cview(), v.cview(), gk.cview(), o.view(), h0 ? &*h0 : nullptr, nullptr,
                                 saved, opt);
    linattn::gla::chunk_backward<T>(q.cview(), k.cview(), v.cview(), gk.cview(), dout.cview(), h0 ? &*h0 : nullptr,
                                    dht ? &*dht : nullptr, grads, opt, &saved);
  }
  std::vector<Check> out{check_tensor(f, "dq", dq), check_tensor(f, "dk", dk), check_tensor(f, "dv", dv),
                         check_tensor(f, "dgk", dgk)};
  out.push_back({"dh0", compare(std::vector<double>(dh0.data(), dh0.data() + dh0.numel()),
                                read_expected(f, "dh0", {N, H, K, V}))});
  return out;
}

template <class T>
std::vector<Check> gsa_grad_checks(const linattn::io::SafeTensorsFile& f, Form form) {
  using linattn::Array;
  const auto q = f.read_array<T, 4>("q");
  const index_t B = q.size(0), T_ = q.size(1), HQ = q.size(2), K = q.size(3);
  const auto k = f.read_array<T, 4>("k", {B, T_, -1, K});
  const index_t H = k.size(2);
  const auto v = f.read_array<T, 4>("v", {B, T_, H, -1}), s = f.read_array<T, 4>("s", {B, T_, H, -1});
  const index_t V = v.size(3), M = s.size(3);
  const bool has_gate = f.contains("g");
  Array<T, 4> g;
  if (has_gate) g = f.read_array<T, 4>("g", {B, T_, H, M});
  const auto dout = f.read_array<T, 4>("do", {B, T_, HQ, V});
  std::vector<std::int64_t> cu;
  if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
  const index_t N = cu.empty() ? B : static_cast<index_t>(cu.size()) - 1;
  using R = linattn::RecurrentState<T>;
  using Acc = typename R::value_type;
  linattn::gsa::State<T> h0(N, H, K, M, V), dht(N, H, K, M, V);
  const bool has_h0 = f.contains("hk0") || f.contains("hv0"), has_dht = f.contains("dhkt") || f.contains("dhvt");
  if (f.contains("hk0")) h0.hk = R::from_tensor(f.read_array<Acc, 4>("hk0", {N, H, K, M}).view());
  if (f.contains("hv0")) h0.hv = R::from_tensor(f.read_array<Acc, 4>("hv0", {N, H, M, V}).view());
  if (f.contains("dhkt")) dht.hk = R::from_tensor(f.read_array<Acc, 4>("dhkt", {N, H, K, M}).view());
  if (f.contains("dhvt")) dht.hv = R::from_tensor(f.read_array<Acc, 4>("dhvt", {N, H, M, V}).view());
  linattn::gsa::Options opt;
  opt.cu_seqlens = cu;
  opt.scale = metadata_number(f, "scale").value_or(1.0 / std::sqrt(double(K)));
  if (std::abs(*opt.scale * std::sqrt(double(K)) - 1.0) < 1e-3) opt.scale.reset();  // K^-1/2, rounded in the text
  Array<T, 4> dq(q.shape()), dk(k.shape()), dv(v.shape()), ds(s.shape()), dg(s.shape());
  linattn::gsa::State<T> dh0;
  opt.chunk_size = chunk_size(f);
  (form == Form::recurrent ? linattn::gsa::recurrent_backward<T> : linattn::gsa::chunk_backward<T>)(
      q.cview(), k.cview(), v.cview(), s.cview(), has_gate ? g.cview() : linattn::TensorView<const T, 4>(),
      dout.cview(), has_h0 ? &h0 : nullptr, has_dht ? &dht : nullptr,
      {dq.view(), dk.view(), dv.view(), ds.view(), dg.view(), &dh0}, opt);
  std::vector<Check> out{check_tensor(f, "dq", dq), check_tensor(f, "dk", dk), check_tensor(f, "dv", dv),
                         check_tensor(f, "ds", ds)};
  if (has_gate) out.push_back(check_tensor(f, "dg", dg));
  out.push_back({"dhk0", compare(std::vector<double>(dh0.hk.data(), dh0.hk.data() + dh0.hk.numel()),
                                 read_expected(f, "dhk0", {N, H, K, M}))});
  out.push_back({"dhv0", compare(std::vector<double>(dh0.hv.data(), dh0.hv.data() + dh0.hv.numel()),
                                 read_expected(f, "dhv0", {N, H, M, V}))});
  return out;
}

template <class T>
std::vector<Check> hgrn_grad_checks(const linattn::io::SafeTensorsFile& f, Form form) {
  using linattn::Array;
  using linattn::Shape;
  const auto x = f.read_array<T, 3>("x");
  const index_t B = x.size(0), T_ = x.size(1), D = x.size(2);
  const auto g = f.read_array<T, 3>("g", {B, T_, D}), dout = f.read_array<T, 3>("do", {B, T_, D});
  std::vector<std::int64_t> cu;
  if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
  const index_t N = cu.empty() ? B : static_cast<index_t>(cu.size()) - 1;
  using S = linattn::hgrn::State<T>;
  std::optional<S> h0, dht;
  const auto rows = [&](const char* name) {
    return linattn::hgrn::state_from_rows<T>(f.read_array<linattn::acc_t<T>, 2>(name, {N, D}).cview());
  };
  if (f.contains("h0")) h0 = rows("h0");
  if (f.contains("dht")) dht = rows("dht");
  linattn::hgrn::Options opt;
  opt.cu_seqlens = cu;
  Array<T, 3> dx(x.shape()), dg(x.shape());
  S dh0;
  opt.chunk_size = chunk_size(f);
  const auto gates = linattn::hgrn::log_gates<T>(g.cview());
  const linattn::hgrn::Gradients<T> grads{dx.view(), dg.view(), &dh0};
  if (form == Form::recurrent)
    linattn::hgrn::recurrent_backward<T>(x.cview(), gates, dout.cview(), h0 ? &*h0 : nullptr, dht ? &*dht : nullptr, grads, opt);
  else
    linattn::hgrn::chunk_backward<T>(x.cview(), gates, dout.cview(), h0 ? &*h0 : nullptr, dht ? &*dht : nullptr, grads, opt);
  return {check_tensor(f, "dx", dx), check_tensor(f, "dg", dg),
          {"dh0", compare(std::vector<linattn::acc_t<T>>(dh0.data(), dh0.data() + dh0.numel()), read_expected(f, "dh0", {N, D}))}};
}

}  // namespace detail

inline bool run_grad_gla(const Case& c) {
  return detail::report_forms(c, [&](detail::Form form, auto precision) {
    return detail::gla_grad_checks<decltype(precision)>(c.file, form);
  });
}

inline bool run_grad_gsa(const Case& c) {
  return detail::report_forms(c, [&](detail::Form form, auto precision) {
    return detail::gsa_grad_checks<decltype(precision)>(c.file, form);
  });
}

inline bool run_grad_hgrn(const Case& c) {
  return detail::report_forms(c, [&](detail::Form form, auto precision) {
    return detail::hgrn_grad_checks<decltype(precision)>(c.file, form);
  });
}

// Straight-through BitLinear: eps from metadata "eps" (the fused 1e-6 when absent); the
// activation rounding from "formula" (half away from zero unless it says "half to even").
inline bool run_grad_bitlinear(const Case& c) {
  using linattn::Array;
  using linattn::Shape;
  const auto& f = c.file;
  const auto x = f.read_array<float, 2>("x");
  const auto W = f.read_array<float, 2>("W", {-1, x.size(1)});
  const auto dy = f.read_array<float, 2>("dy", {x.size(0), W.size(0)});
  linattn::nn::TrainableBitLinearOptions opt;
  opt.eps = static_cast<float>(metadata_number(f, "eps").value_or(linattn::ternary::kFusedBitLinearEps));
  const std::string formula = detail::lower(f.metadata_value("formula").value_or(""));
  const auto act = formula.find("activations");
  const std::string act_text = act == std::string::npos ? "" : formula.substr(act, formula.find("weights") - act);
  if (act_text.find("half to even") != std::string::npos)
    opt.activation_rounding = linattn::ternary::Rounding::half_to_even;
  const linattn::nn::TrainableBitLinear layer(W, f.read_array<float, 1>("norm_w", {W.size(1)}).vector(), opt);
  Array<float, 2> y(Shape<2>{x.size(0), W.size(0)});
  linattn::nn::BitLinearSaved saved;
  layer.forward(x.cview(), y.view(), &saved);
  linattn::nn::BitLinearGradients g;
  layer.backward(saved, dy.cview(), g);
  std::vector<Check> checks;
  if (f.contains("y")) checks.push_back(detail::check_tensor(f, "y", y));
  checks.push_back(detail::check_tensor(f, "dx", g.dx));
  checks.push_back({"dW", compare(g.dweight.vector(), read_expected(f, "dW", {W.size(0), W.size(1)}))});
  checks.push_back({"dnorm_w", compare(g.dnorm_weight, read_expected(f, "dnorm_w", {W.size(1)}))});
  return report(c, "straight_through_backward", checks);
}

}  // namespace conformance
