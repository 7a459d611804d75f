// linattn-gla-demo: gated linear attention on a default-size problem, in all three forms.
//
//   linattn-gla-demo [--T 4096] [--H 4] [--K 128] [--V 128] [--threads 0] [--chunk 64]
//
// Runs the recurrent and chunk-parallel forms on the same random inputs (gates drawn like the
// GLA layer's, logsigmoid(N(0,1))/16), then a chunk prefill of the first half followed by
// token-by-token decode steps for the second half, and prints how closely they agree and how
// fast each is.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "linattn/linattn.hpp"

using linattn::Array;
using linattn::index_t;
using linattn::TensorView;

namespace {

double rel_err(const float* a, const float* b, index_t n) {
  double num = 0, den = 0;
  for (index_t i = 0; i < n; ++i) {
    num = std::max(num, double(std::abs(a[i] - b[i])));
    den = std::max(den, double(std::abs(b[i])));
  }
  return den > 0 ? num / den : num;
}

template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  index_t T = 4096, H = 4, K = 128, V = 128, chunk = 64;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atol(argv[++i]);
    };
    if (a == "--T") T = next();
    else if (a == "--H") H = next();
    else if (a == "--K") K = next();
    else if (a == "--V") V = next();
    else if (a == "--threads") threads = static_cast<int>(next());
    else if (a == "--chunk") chunk = next();
    else {
      std::fprintf(stderr, "usage: %s [--T N] [--H N] [--K N] [--V N] [--threads N] [--chunk N]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (T < 2 || H < 1 || K < 1 || V < 1 || chunk < 1) {
    std::fprintf(stderr, "sizes must be positive (T >= 2)\n");
    return 2;
  }

  // q, k, gk [1, T, H, K]; v, o [1, T, H, V]
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 1.f);
  Array<float, 4> q({1, T, H, K}), k({1, T, H, K}), gk({1, T, H, K}), v({1, T, H, V});
  for (auto* a : {&q, &k, &v})
    for (auto& x : a->vector()) x = normal(rng);
  for (auto& x : gk.vector()) x = -std::log1p(std::exp(-normal(rng))) / 16.f;  // logsigmoid / 16

  linattn::gla::Options opt;
  opt.chunk_size = chunk;
  opt.threads.count = threads;
  Array<float, 4> o_rec({1, T, H, V}), o_chunk({1, T, H, V}), o_mixed({1, T, H, V});
  linattn::gla::State<float> s_rec, s_chunk;

  const double t_rec = seconds([&] {
    linattn::gla::recurrent<float>(q.view(), k.view(), v.view(), gk.view(), o_rec.view(), nullptr, &s_rec, opt);
  });
  const double t_chunk = seconds([&] {
    linattn::gla::chunk<float>(q.view(), k.view(), v.view(), gk.view(), o_chunk.view(), nullptr, &s_chunk, opt);
  });

  // Prefill the first half with the chunk form, then decode the rest one token at a time.
  const index_t half = T / 2;
  auto rows = [&](auto& a, index_t t0, index_t n) {
    using V4 = TensorView<std::remove_reference_t<decltype(*a.data())>, 4>;
    return V4(a.view().ptr(0, t0), {1, n, H, a.size(3)}, a.view().strides());
  };
  linattn::gla::State<float> state;
  linattn::gla::chunk<float>(rows(std::as_const(q), 0, half), rows(std::as_const(k), 0, half),
                             rows(std::as_const(v), 0, half), rows(std::as_const(gk), 0, half),
                             rows(o_mixed, 0, half), nullptr, &state, opt);
  linattn::gla::StepOptions step_opt;
  step_opt.threads.count = threads;
  const double t_step = seconds([&] {
    for (index_t t = half; t < T; ++t) {
      auto row = [&](const Array<float, 4>& a) { return TensorView<const float, 3>(a.view().ptr(0, t), {1, H, a.size(3)}); };
      linattn::gla::step<float>(row(q), row(k), row(v), row(gk), TensorView<float, 3>(o_mixed.view().ptr(0, t), {1, H, V}),
                                state, step_opt);
    }
  });

  const double flops = 4.0 * double(K) * double(V) * double(T) * double(H);
  std::printf("GLA  B=1 T=%ld H=%ld K=%ld V=%ld  chunk=%ld  threads=%d (of %d)\n", long(T), long(H), long(K), long(V),
              long(chunk), threads > 0 ? threads : linattn::max_threads(), linattn::max_threads());
  std::printf("  recurrent      %8.2f ms  %10.0f tokens/s  %6.1f GFLOP/s\n", t_rec * 1e3, T / t_rec, flops / t_rec / 1e9);
  std::printf("  chunk          %8.2f ms  %10.0f tokens/s  %6.1f GFLOP/s\n", t_chunk * 1e3, T / t_chunk,
              flops / t_chunk / 1e9);
  std::printf("  step (decode)  %8.2f us/token  %7.0f tokens/s\n", t_step / double(T - half) * 1e6,
              double(T - half) / t_step);
  const double e_chunk = rel_err(o_chunk.data(), o_rec.data(), o_rec.numel());
  const double e_state = rel_err(s_chunk.data(), s_rec.data(), s_rec.view().numel());
  const double e_mixed = rel_err(o_mixed.data(), o_rec.data(), o_rec.numel());
  const double e_mixed_state = rel_err(state.data(), s_rec.data(), s_rec.view().numel());
  std::printf("agreement (max|a-b| / max|b| against the recurrent form):\n");
  std::printf("  chunk outputs %.2e, final state %.2e\n", e_chunk, e_state);
  std::printf("  chunk prefill + %ld steps: outputs %.2e, final state %.2e\n", long(T - half), e_mixed, e_mixed_state);
  const bool ok = e_chunk < 1e-4 && e_state < 1e-4 && e_mixed < 1e-4 && e_mixed_state < 1e-4;
  std::printf("%s\n", ok ? "OK: all forms agree" : "MISMATCH");
  return ok ? 0 : 1;
}
