// linattn._core: the library's recurrence ops on numpy arrays, forward and backward, for the
// Python package (linattn/ops.py gives them fla's signatures and torch autograd); the models
// are bound in models.cpp.
//
// Arrays are taken as they are: any dtype-matching float32 / float64 array of the right rank,
// with any strides whose last dimension is contiguous (the kernels' one requirement); nothing is
// copied on the way in except the recurrent states (small, [N, H, K, V]). Outputs are new
// C-contiguous arrays. The GIL is released while a kernel runs. The library's
// std::invalid_argument becomes ValueError with its message (pybind11's translation).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "linattn/ops/gla.hpp"
#include "linattn/ops/gsa.hpp"
#include "linattn/ops/hgrn.hpp"
#include "linattn/nn/bitlinear_train.hpp"

namespace py = pybind11;

namespace {

using linattn::Form;
using linattn::index_t;
using linattn::Shape;
using linattn::TensorView;

Form parse_form(const std::string& name) {
  if (name == "recurrent") return Form::recurrent;
  if (name == "chunk") return Form::chunk;
  if (name == "fused_chunk") return Form::fused_chunk;
  throw std::invalid_argument("linattn: form '" + name + "' is not one of recurrent, chunk, fused_chunk");
}

// A view of a numpy array of element type T and rank R; strides in elements.
template <class T, std::size_t R>
TensorView<const T, R> view_of(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw std::invalid_argument(std::string("linattn: ") + name + " has dtype " + std::string(py::str(a.dtype())) +
                                ", expected " + std::string(py::str(py::dtype::of<T>())) + " like the first input");
  if (a.ndim() != static_cast<py::ssize_t>(R))
    throw std::invalid_argument(std::string("linattn: ") + name + " has " + std::to_string(a.ndim()) +
                                " dimensions, expected " + std::to_string(R));
  Shape<R> shape{}, strides{};
  for (std::size_t d = 0; d < R; ++d) {
    shape[d] = static_cast<index_t>(a.shape(static_cast<py::ssize_t>(d)));
    const auto bytes = a.strides(static_cast<py::ssize_t>(d));
    if (bytes % static_cast<py::ssize_t>(sizeof(T)) != 0)
      throw std::invalid_argument(std::string("linattn: ") + name + " has a stride not a multiple of its element size");
    strides[d] = static_cast<index_t>(bytes / static_cast<py::ssize_t>(sizeof(T)));
  }
  return TensorView<const T, R>(static_cast<const T*>(a.data()), shape, strides);
}

template <class T, std::size_t R>
py::array_t<T> new_array(const Shape<R>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

template <class T, std::size_t R>
TensorView<T, R> view_of(py::array_t<T>& a) {
  Shape<R> shape{};
  for (std::size_t d = 0; d < R; ++d) shape[d] = static_cast<index_t>(a.shape(static_cast<py::ssize_t>(d)));
  return TensorView<T, R>(a.mutable_data(), shape);
}

// A RecurrentState copied from a [d0, d1, d2, d3] array (or from [N, D] for HGRN: rank 2).
template <class T>
linattn::RecurrentState<T> state_of(const py::array& a, const char* name) {
  if (a.ndim() == 2) return linattn::hgrn::state_from_rows<T>(view_of<T, 2>(a, name));
  return linattn::RecurrentState<T>::from_tensor(view_of<T, 4>(a, name));
}

// A state's values as an array of `shape` (HGRN's [N, D], the others' [N, H, K, V]).
template <class T>
py::array_t<T> array_of(const linattn::RecurrentState<T>& s, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  std::copy_n(s.data(), s.numel(), out.mutable_data());
  return out;
}

std::vector<std::int64_t> offsets_of(const std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>>& cu) {
  if (!cu) return {};
  if (cu->ndim() != 1) throw std::invalid_argument("linattn: cu_seqlens must be one-dimensional [N + 1]");
  return std::vector<std::int64_t>(cu->data(), cu->data() + cu->size());
}

using Offsets = std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>>;

// An op's options from the binding's arguments; `offsets` (from offsets_of) must outlive them.
template <class Options>
Options options_of(const std::vector<std::int64_t>& offsets, int threads, index_t chunk_size = 0,
                   std::optional<double> scale = std::nullopt) {
  Options opt;
  if constexpr (requires { opt.scale; }) opt.scale = scale;
  if (chunk_size > 0) opt.chunk_size = chunk_size;
  opt.cu_seqlens = offsets;
  opt.threads = linattn::Threads{threads};
  return opt;
}

// ---- GLA ---------------------------------------------------------------------------------------

template <class T>
py::tuple gla_forward(Form form, const py::array& q, const py::array& k, const py::array& v, const py::array& g,
                      std::optional<double> scale, const std::optional<py::array>& h0, bool final_state,
                      const Offsets& cu, index_t chunk_size, int threads) {
  const auto qv = view_of<T, 4>(q, "q"), kv = view_of<T, 4>(k, "k"), vv = view_of<T, 4>(v, "v"), gv = view_of<T, 4>(g, "g");
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::gla::Options>(offsets, threads, chunk_size, scale);
  auto o = new_array<T>(Shape<4>{qv.size(0), qv.size(1), qv.size(2), vv.size(3)});
  std::optional<linattn::gla::State<T>> initial;
  if (h0) initial = state_of<T>(*h0, "initial_state");
  linattn::gla::State<T> ht;
  {
    py::gil_scoped_release release;
    linattn::gla::detail::forward<T>(form, qv, kv, vv, gv, view_of<T, 4>(o), initial ? &*initial : nullptr,
                                     final_state ? &ht : nullptr, opt);
  }
  py::object state = py::none();
  if (final_state)
    state = array_of(ht, {ht.sequences(), ht.heads(), ht.key_dim(), ht.value_dim()});
  return py::make_tuple(o, state);
}

template <class T>
py::tuple gla_backward(Form form, const py::array& q, const py::array& k, const py::array& v, const py::array& g,
                       const py::array& dout, std::optional<double> scale, const std::optional<py::array>& h0,
                       const std::optional<py::array>& dht, const Offsets& cu, index_t chunk_size, int threads) {
  const auto qv = view_of<T, 4>(q, "q"), kv = view_of<T, 4>(k, "k"), vv = view_of<T, 4>(v, "v"), gv = view_of<T, 4>(g, "g");
  const auto dov = view_of<T, 4>(dout, "do");
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::gla::Options>(offsets, threads, chunk_size, scale);
  auto dq = new_array<T>(qv.shape()), dk = new_array<T>(kv.shape()), dv = new_array<T>(vv.shape()),
       dg = new_array<T>(gv.shape());
  std::optional<linattn::gla::State<T>> initial, dfinal;
  if (h0) initial = state_of<T>(*h0, "initial_state");
  if (dht) dfinal = state_of<T>(*dht, "dht");
  linattn::gla::State<T> dh0;
  const linattn::gla::Gradients<T> grads{view_of<T, 4>(dq), view_of<T, 4>(dk), view_of<T, 4>(dv), view_of<T, 4>(dg),
                                         h0 ? &dh0 : nullptr};
  {
    py::gil_scoped_release release;
    // The fused chunk form's gradients are the chunk form's (the same function).
    linattn::gla::detail::backward<T>(form == Form::recurrent ? Form::recurrent : Form::chunk, qv, kv, vv, gv, dov,
                                      initial ? &*initial : nullptr, dfinal ? &*dfinal : nullptr, grads, opt);
  }
  py::object dstate = py::none();
  if (h0) dstate = array_of(dh0, {dh0.sequences(), dh0.heads(), dh0.key_dim(), dh0.value_dim()});
  return py::make_tuple(dq, dk, dv, dg, dstate);
}

// One decode token; `state` [N, H, K, V] (the caller's array) is updated in place.
template <class T>
py::array_t<T> gla_step(const py::array& q, const py::array& k, const py::array& v, const py::array& g,
                        py::array& state, std::optional<double> scale, int threads) {
  const auto qv = view_of<T, 3>(q, "q"), kv = view_of<T, 3>(k, "k"), vv = view_of<T, 3>(v, "v"), gv = view_of<T, 3>(g, "g");
  if (!state.writeable()) throw std::invalid_argument("linattn: state is read-only; the step updates it in place");
  const auto sv = view_of<T, 4>(state, "state");
  const TensorView<T, 4> s(static_cast<T*>(state.mutable_data()), sv.shape(), sv.strides());
  auto o = new_array<T>(Shape<3>{qv.size(0), qv.size(1), vv.size(2)});
  linattn::gla::StepOptions opt;
  opt.scale = scale;
  opt.threads = linattn::Threads{threads};
  py::gil_scoped_release release;
  linattn::gla::step<T>(qv, kv, vv, gv, view_of<T, 3>(o), s, opt);
  return o;
}

// ---- GSA ---------------------------------------------------------------------------------------

template <class T>
std::optional<linattn::gsa::State<T>> gsa_state_of(const std::optional<py::array>& hk, const std::optional<py::array>& hv,
                                                   const char* what) {
  if (!hk && !hv) return std::nullopt;
  if (!hk || !hv) throw std::invalid_argument(std::string("linattn: ") + what + ": give both hk and hv, or neither");
  const auto k = view_of<T, 4>(*hk, "hk"), v = view_of<T, 4>(*hv, "hv");
  linattn::gsa::State<T> s(k.size(0), k.size(1), k.size(2), k.size(3), v.size(3));
  s.hk = linattn::RecurrentState<T>::from_tensor(k);
  s.hv = linattn::RecurrentState<T>::from_tensor(v);
  return s;
}

// GSA's forget gate [B, T, H, M], or an empty view without one: the library then builds s and g
// from the slot logits' softmax over time (SPEC §3, ABC), as fla's g=None means to.
template <class T>
TensorView<const T, 4> gate_of(const std::optional<py::array>& g) {
  return g ? view_of<T, 4>(*g, "g") : TensorView<const T, 4>{};
}

template <class T>
py::tuple gsa_states(const linattn::gsa::State<T>& s) {
  return py::make_tuple(array_of(s.hk, {s.hk.sequences(), s.hk.heads(), s.hk.key_dim(), s.hk.value_dim()}),
                        array_of(s.hv, {s.hv.sequences(), s.hv.heads(), s.hv.key_dim(), s.hv.value_dim()}));
}

template <class T>
py::tuple gsa_forward(Form form, const py::array& q, const py::array& k, const py::array& v, const py::array& s,
                      const std::optional<py::array>& g, std::optional<double> scale, const std::optional<py::array>& hk0,
                      const std::optional<py::array>& hv0, bool final_state, const Offsets& cu, index_t chunk_size,
                      int threads) {
  const auto qv = view_of<T, 4>(q, "q"), kv = view_of<T, 4>(k, "k"), vv = view_of<T, 4>(v, "v");
  const auto sv = view_of<T, 4>(s, "s"), gv = gate_of<T>(g);
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::gsa::Options>(offsets, threads, chunk_size, scale);
  auto o = new_array<T>(Shape<4>{qv.size(0), qv.size(1), qv.size(2), vv.size(3)});
  const auto initial = gsa_state_of<T>(hk0, hv0, "initial_state");
  linattn::gsa::State<T> ht;
  {
    py::gil_scoped_release release;
    linattn::gsa::detail::forward<T>(form, qv, kv, vv, sv, gv, view_of<T, 4>(o), initial ? &*initial : nullptr,
                                     final_state ? &ht : nullptr, opt);
  }
  return py::make_tuple(o, final_state ? py::object(gsa_states(ht)) : py::object(py::none()));
}

template <class T>
py::tuple gsa_backward(Form form, const py::array& q, const py::array& k, const py::array& v, const py::array& s,
                       const std::optional<py::array>& g, const py::array& dout, std::optional<double> scale,
                       const std::optional<py::array>& hk0, const std::optional<py::array>& hv0,
                       const std::optional<py::array>& dhk, const std::optional<py::array>& dhv, const Offsets& cu,
                       index_t chunk_size, int threads) {
  const auto qv = view_of<T, 4>(q, "q"), kv = view_of<T, 4>(k, "k"), vv = view_of<T, 4>(v, "v");
  const auto sv = view_of<T, 4>(s, "s"), gv = gate_of<T>(g), dov = view_of<T, 4>(dout, "do");
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::gsa::Options>(offsets, threads, chunk_size, scale);
  auto dq = new_array<T>(qv.shape()), dk = new_array<T>(kv.shape()), dv = new_array<T>(vv.shape()),
       ds = new_array<T>(sv.shape());
  py::array_t<T> dg;  // [B, T, H, M], or none without g
  if (g) dg = new_array<T>(gv.shape());
  const auto initial = gsa_state_of<T>(hk0, hv0, "initial_state");
  const auto dfinal = gsa_state_of<T>(dhk, dhv, "dht");
  linattn::gsa::State<T> dh0;
  const linattn::gsa::Gradients<T> grads{view_of<T, 4>(dq), view_of<T, 4>(dk), view_of<T, 4>(dv),
                                         view_of<T, 4>(ds), g ? view_of<T, 4>(dg) : TensorView<T, 4>{},
                                         initial ? &dh0 : nullptr};
  {
    py::gil_scoped_release release;
    linattn::gsa::detail::backward<T>(form == Form::recurrent ? Form::recurrent : Form::chunk, qv, kv, vv, sv, gv, dov,
                                      initial ? &*initial : nullptr, dfinal ? &*dfinal : nullptr, grads, opt);
  }
  return py::make_tuple(dq, dk, dv, ds, g ? py::object(dg) : py::object(py::none()),
                        initial ? py::object(gsa_states(dh0)) : py::object(py::none()));
}

// ---- HGRN --------------------------------------------------------------------------------------

template <class T>
py::tuple hgrn_forward(Form form, const py::array& x, const py::array& g, const std::optional<py::array>& h0,
                       bool final_state, const Offsets& cu, index_t chunk_size, int threads) {
  const auto xv = view_of<T, 3>(x, "x"), gv = view_of<T, 3>(g, "g");
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::hgrn::Options>(offsets, threads, chunk_size);
  auto o = new_array<T>(xv.shape());
  std::optional<linattn::hgrn::State<T>> initial;
  if (h0) initial = state_of<T>(*h0, "initial_state");
  linattn::hgrn::State<T> ht;
  if (form == Form::fused_chunk) throw std::invalid_argument("linattn: HGRN has no fused_chunk form (recurrent or chunk)");
  {
    py::gil_scoped_release release;
    const auto gates = linattn::hgrn::log_gates<T>(gv);
    if (form == Form::recurrent)
      linattn::hgrn::recurrent<T>(xv, gates, view_of<T, 3>(o), initial ? &*initial : nullptr, final_state ? &ht : nullptr, opt);
    else
      linattn::hgrn::chunk<T>(xv, gates, view_of<T, 3>(o), initial ? &*initial : nullptr, final_state ? &ht : nullptr, opt);
  }
  py::object state = py::none();
  if (final_state) state = array_of(ht, {ht.sequences(), ht.value_dim()});
  return py::make_tuple(o, state);
}

template <class T>
py::tuple hgrn_backward(Form /*either: one sweep*/, const py::array& x, const py::array& g, const py::array& dout,
                        const std::optional<py::array>& h0, const std::optional<py::array>& dht, const Offsets& cu,
                        int threads) {
  const auto xv = view_of<T, 3>(x, "x"), gv = view_of<T, 3>(g, "g"), dov = view_of<T, 3>(dout, "do");
  const auto offsets = offsets_of(cu);
  const auto opt = options_of<linattn::hgrn::Options>(offsets, threads);
  auto dx = new_array<T>(xv.shape()), dg = new_array<T>(gv.shape());
  std::optional<linattn::hgrn::State<T>> initial, dfinal;
  if (h0) initial = state_of<T>(*h0, "initial_state");
  if (dht) dfinal = state_of<T>(*dht, "dht");
  linattn::hgrn::State<T> dh0;
  const linattn::hgrn::Gradients<T> grads{view_of<T, 3>(dx), view_of<T, 3>(dg), h0 ? &dh0 : nullptr};
  {
    py::gil_scoped_release release;
    // K = 1: the chunk form's backward is the same sweep as the recurrent one (ops/hgrn.hpp).
    linattn::hgrn::recurrent_backward<T>(xv, linattn::hgrn::log_gates<T>(gv), dov, initial ? &*initial : nullptr,
                                         dfinal ? &*dfinal : nullptr, grads, opt);
  }
  py::object dstate = py::none();
  if (h0) dstate = array_of(dh0, {dh0.sequences(), dh0.value_dim()});
  return py::make_tuple(dx, dg, dstate);
}

// ---- BitLinear ----------------------------------------------------------------------------------

// A forward's layer (the latent weight as given, its norm weight) and what its backward needs
// (nn::BitLinearSaved: the ternary codes, γ, the normalised and quantised activations), held by
// the autograd context between the two calls.
struct BitLinearContext {
  linattn::nn::TrainableBitLinear layer;
  linattn::nn::BitLinearSaved saved;
};

// A contiguous copy of a [rows, cols] view (TrainableBitLinear owns its latent weight).
linattn::Array<float, 2> array_copy(TensorView<const float, 2> v) {
  linattn::Array<float, 2> a(v.shape());
  for (index_t r = 0; r < v.size(0); ++r) std::copy_n(v.ptr(r), v.size(1), a.data() + r * v.size(1));
  return a;
}

linattn::ternary::Rounding rounding_of(const std::string& name) {
  if (name == "half_to_even") return linattn::ternary::Rounding::half_to_even;
  if (name == "half_away_from_zero") return linattn::ternary::Rounding::half_away_from_zero;
  throw std::invalid_argument("linattn: rounding '" + name + "' is not one of half_to_even, half_away_from_zero");
}

// x [N, in] → y [N, out] with weight [out, in] (latent float), norm_weight [in] or none (ones).
py::tuple bitlinear_forward(const py::array& x, const py::array& weight, const std::optional<py::array>& norm_weight,
                            double eps, const std::string& activation_rounding, bool keep) {
  const auto xv = view_of<float, 2>(x, "x"), wv = view_of<float, 2>(weight, "weight");
  const index_t in = wv.size(1);
  std::vector<float> norm(static_cast<std::size_t>(in), 1.0f);  // [in]
  if (norm_weight) {
    const auto nv = view_of<float, 1>(*norm_weight, "norm_weight");
    if (nv.size(0) != in)
      throw std::invalid_argument("linattn.ops.bitlinear: norm_weight has " + std::to_string(nv.size(0)) +
                                  " elements, the weight's in_features are " + std::to_string(in));
    for (index_t j = 0; j < in; ++j) norm[static_cast<std::size_t>(j)] = nv(j);
  }
  linattn::nn::TrainableBitLinearOptions opt;
  opt.eps = static_cast<float>(eps);
  opt.activation_rounding = rounding_of(activation_rounding);
  auto ctx = std::make_unique<BitLinearContext>(
      BitLinearContext{linattn::nn::TrainableBitLinear(array_copy(wv), std::move(norm), opt), {}});
  if (xv.size(1) != in)
    throw std::invalid_argument("linattn.ops.bitlinear: x has " + std::to_string(xv.size(1)) +
                                " features, the weight [out, in] takes " + std::to_string(in));
  auto y = new_array<float>(Shape<2>{xv.size(0), wv.size(0)});
  {
    py::gil_scoped_release release;
    ctx->layer.forward(xv, view_of<float, 2>(y), keep ? &ctx->saved : nullptr);
  }
  return py::make_tuple(y, keep ? py::cast(std::move(ctx)) : py::object(py::none()));
}

py::tuple bitlinear_backward(const BitLinearContext& ctx, const py::array& dy) {
  const auto dyv = view_of<float, 2>(dy, "dy");
  linattn::nn::BitLinearGradients g;
  {
    py::gil_scoped_release release;
    ctx.layer.backward(ctx.saved, dyv, g);
  }
  auto dx = new_array<float>(g.dx.shape()), dw = new_array<float>(g.dweight.shape());
  std::copy_n(g.dx.data(), g.dx.numel(), dx.mutable_data());
  std::copy_n(g.dweight.data(), g.dweight.numel(), dw.mutable_data());
  py::array_t<float> dn(static_cast<py::ssize_t>(g.dnorm_weight.size()));
  std::copy(g.dnorm_weight.begin(), g.dnorm_weight.end(), dn.mutable_data());
  return py::make_tuple(dx, dw, dn);
}

// float32 or float64, by the first input's dtype.
template <class F32, class F64>
auto by_dtype(const py::array& first, F32&& f32, F64&& f64) {
  if (first.dtype().is(py::dtype::of<float>())) return f32();
  if (first.dtype().is(py::dtype::of<double>())) return f64();
  throw std::invalid_argument("linattn: inputs must be float32 or float64, got " + std::string(py::str(first.dtype())));
}

}  // namespace

void bind_models(py::module_& m);  // models.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "linattn's recurrence ops (GLA, GSA, HGRN) on numpy arrays, forward and backward";
  m.def("hardware_threads", &linattn::hardware_threads, "cores this process may run on");
  bind_models(m);

  m.def(
      "gla_forward",
      [](const std::string& form, const py::array& q, const py::array& k, const py::array& v, const py::array& g,
         std::optional<double> scale, std::optional<py::array> h0, bool final_state, Offsets cu, index_t chunk_size,
         int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            q, [&] { return gla_forward<float>(f, q, k, v, g, scale, h0, final_state, cu, chunk_size, threads); },
            [&] { return gla_forward<double>(f, q, k, v, g, scale, h0, final_state, cu, chunk_size, threads); });
      },
      py::arg("form"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("g"), py::arg("scale"), py::arg("initial_state"),
      py::arg("output_final_state"), py::arg("cu_seqlens"), py::arg("chunk_size"), py::arg("threads"));
  m.def(
      "gla_backward",
      [](const std::string& form, const py::array& q, const py::array& k, const py::array& v, const py::array& g,
         const py::array& dout, std::optional<double> scale, std::optional<py::array> h0, std::optional<py::array> dht,
         Offsets cu, index_t chunk_size, int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            q, [&] { return gla_backward<float>(f, q, k, v, g, dout, scale, h0, dht, cu, chunk_size, threads); },
            [&] { return gla_backward<double>(f, q, k, v, g, dout, scale, h0, dht, cu, chunk_size, threads); });
      },
      py::arg("form"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("g"), py::arg("do"), py::arg("scale"),
      py::arg("initial_state"), py::arg("dht"), py::arg("cu_seqlens"), py::arg("chunk_size"), py::arg("threads"));

  m.def(
      "gla_step",
      [](const py::array& q, const py::array& k, const py::array& v, const py::array& g, py::array state,
         std::optional<double> scale, int threads) {
        return by_dtype(
            q, [&] { return py::object(gla_step<float>(q, k, v, g, state, scale, threads)); },
            [&] { return py::object(gla_step<double>(q, k, v, g, state, scale, threads)); });
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("g"), py::arg("state"), py::arg("scale"), py::arg("threads"));
  m.def(
      "gsa_forward",
      [](const std::string& form, const py::array& q, const py::array& k, const py::array& v, const py::array& s,
         const std::optional<py::array>& g, std::optional<double> scale, std::optional<py::array> hk0,
         std::optional<py::array> hv0, bool final_state, Offsets cu, index_t chunk_size, int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            q, [&] { return gsa_forward<float>(f, q, k, v, s, g, scale, hk0, hv0, final_state, cu, chunk_size, threads); },
            [&] { return gsa_forward<double>(f, q, k, v, s, g, scale, hk0, hv0, final_state, cu, chunk_size, threads); });
      },
      py::arg("form"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("s"), py::arg("g"), py::arg("scale"),
      py::arg("hk0"), py::arg("hv0"), py::arg("output_final_state"), py::arg("cu_seqlens"), py::arg("chunk_size"),
      py::arg("threads"));
  m.def(
      "gsa_backward",
      [](const std::string& form, const py::array& q, const py::array& k, const py::array& v, const py::array& s,
         const std::optional<py::array>& g, const py::array& dout, std::optional<double> scale, std::optional<py::array> hk0,
         std::optional<py::array> hv0, std::optional<py::array> dhk, std::optional<py::array> dhv, Offsets cu,
         index_t chunk_size, int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            q,
            [&] { return gsa_backward<float>(f, q, k, v, s, g, dout, scale, hk0, hv0, dhk, dhv, cu, chunk_size, threads); },
            [&] { return gsa_backward<double>(f, q, k, v, s, g, dout, scale, hk0, hv0, dhk, dhv, cu, chunk_size, threads); });
      },
      py::arg("form"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("s"), py::arg("g"), py::arg("do"),
      py::arg("scale"), py::arg("hk0"), py::arg("hv0"), py::arg("dhk"), py::arg("dhv"), py::arg("cu_seqlens"),
      py::arg("chunk_size"), py::arg("threads"));

  m.def(
      "hgrn_forward",
      [](const std::string& form, const py::array& x, const py::array& g, std::optional<py::array> h0, bool final_state,
         Offsets cu, index_t chunk_size, int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            x, [&] { return hgrn_forward<float>(f, x, g, h0, final_state, cu, chunk_size, threads); },
            [&] { return hgrn_forward<double>(f, x, g, h0, final_state, cu, chunk_size, threads); });
      },
      py::arg("form"), py::arg("x"), py::arg("g"), py::arg("initial_state"), py::arg("output_final_state"),
      py::arg("cu_seqlens"), py::arg("chunk_size"), py::arg("threads"));
  m.def(
      "hgrn_backward",
      [](const std::string& form, const py::array& x, const py::array& g, const py::array& dout,
         std::optional<py::array> h0, std::optional<py::array> dht, Offsets cu, int threads) {
        const Form f = parse_form(form);
        return by_dtype(
            x, [&] { return hgrn_backward<float>(f, x, g, dout, h0, dht, cu, threads); },
            [&] { return hgrn_backward<double>(f, x, g, dout, h0, dht, cu, threads); });
      },
      py::arg("form"), py::arg("x"), py::arg("g"), py::arg("do"), py::arg("initial_state"), py::arg("dht"),
      py::arg("cu_seqlens"), py::arg("threads"));

  py::class_<BitLinearContext>(m, "BitLinearContext", "what a BitLinear forward keeps for its backward");
  m.def("bitlinear_forward", &bitlinear_forward, py::arg("x"), py::arg("weight"), py::arg("norm_weight"),
        py::arg("eps"), py::arg("activation_rounding"), py::arg("keep"));
  m.def("bitlinear_backward", &bitlinear_backward, py::arg("ctx"), py::arg("dy"));
}
