// GLA against the upstream golden cases (tests/data/gla_*.safetensors, copied from
// shared/golden/ops; format and tolerance in tests/data/GOLDEN-README.md): float32 inputs,
// float64 expected outputs of fla's naive recurrence, rel err <= 1e-4 for every form.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "linattn/io/safetensors.hpp"
#include "linattn/ops/gla.hpp"
#include "support/reference.hpp"

namespace fs = std::filesystem;
using linattn::Array;
using linattn::index_t;
using linattn::TensorView;

namespace {

std::vector<fs::path> golden_files(const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(LINATTN_TEST_DATA_DIR))
    if (e.path().filename().string().rfind(prefix, 0) == 0 && e.path().extension() == ".safetensors")
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("GLA golden cases: recurrent, chunk, fused chunk and step within 1e-4", "[gla][golden]") {
  const auto files = golden_files("gla_");
  REQUIRE(files.size() >= 6);
  for (const auto& path : files) {
    CAPTURE(path.filename().string());
    const linattn::io::SafeTensorsFile f(path);
    const auto q = f.read_array<float, 4>("q"), k = f.read_array<float, 4>("k"), v = f.read_array<float, 4>("v"),
               g = f.read_array<float, 4>("gk");
    const auto o_ref = f.read_array<double, 4>("o");
    const auto ht_ref = f.read_array<double, 4>("ht");
    const auto h0 = linattn::gla::State<float>::from_tensor(f.read_array<float, 4>("h0").view());
    std::vector<std::int64_t> cu;
    if (f.contains("cu_seqlens")) cu = f.read<std::int64_t>("cu_seqlens");
    const index_t B = q.size(0), T_ = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);

    linattn::gla::Options opt;
    opt.cu_seqlens = cu;
    for (index_t C : {16, 64}) {
      opt.chunk_size = C;
      Array<float, 4> o({B, T_, H, V});
      linattn::gla::State<float> ht;
      linattn::gla::chunk<float>(q.view(), k.view(), v.view(), g.view(), o.view(), &h0, &ht, opt);
      CHECK(ref::rel_err(o.data(), o_ref.data(), o_ref.numel()) <= 1e-4);
      CHECK(ref::rel_err(ht.data(), ht_ref.data(), ht_ref.numel()) <= 1e-4);
    }
    for (bool fused : {false, true}) {
      Array<float, 4> o({B, T_, H, V});
      linattn::gla::State<float> ht;
      if (fused)
        linattn::gla::fused_chunk<float>(q.view(), k.view(), v.view(), g.view(), o.view(), &h0, &ht, opt);
      else
        linattn::gla::recurrent<float>(q.view(), k.view(), v.view(), g.view(), o.view(), &h0, &ht, opt);
      CHECK(ref::rel_err(o.data(), o_ref.data(), o_ref.numel()) <= 1e-4);
      CHECK(ref::rel_err(ht.data(), ht_ref.data(), ht_ref.numel()) <= 1e-4);
    }

    // Step by step, one sequence at a time (varlen: rows cu[n]..cu[n+1] of the packed batch).
    const index_t N = cu.empty() ? B : index_t(cu.size()) - 1;
    Array<float, 4> os({B, T_, H, V});
    for (index_t n = 0; n < N; ++n) {
      const index_t b = cu.empty() ? n : 0, t0 = cu.empty() ? 0 : cu[n], t1 = cu.empty() ? T_ : cu[n + 1];
      linattn::gla::State<float> s(1, H, K, V);
      std::copy(h0.head(n, 0), h0.head(n, 0) + H * K * V, s.data());
      for (index_t t = t0; t < t1; ++t) {
        auto row = [&](const Array<float, 4>& a) { return TensorView<const float, 3>(a.view().ptr(b, t), {1, H, a.size(3)}); };
        linattn::gla::step<float>(row(q), row(k), row(v), row(g),
                                  TensorView<float, 3>(os.view().ptr(b, t), {1, H, V}), s);
      }
      CHECK(ref::rel_err(s.data(), ht_ref.view().ptr(n), H * K * V) <= 1e-4);
    }
    CHECK(ref::rel_err(os.data(), o_ref.data(), o_ref.numel()) <= 1e-4);
  }
}
