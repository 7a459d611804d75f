// nn::BitLinear: upstream golden cases (codes exact, the rest within 1e-4) for both packings and
// the float path, integer path vs float path, the eps default, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "linattn/io/safetensors.hpp"
#include "linattn/nn/bitlinear.hpp"

namespace fs = std::filesystem;
using linattn::Array;
using linattn::index_t;
using linattn::Shape;
namespace ternary = linattn::ternary;
using linattn::nn::BitLinear;
using linattn::nn::BitLinearOptions;
using linattn::nn::BitLinearTrace;
using Catch::Matchers::Contains;

namespace {

template <class A>
double rel(const A& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::abs(double(got[i]) - want[i]));
    den = std::max(den, std::abs(want[i]));
  }
  return num / den;
}

}  // namespace

TEST_CASE("BitLinear golden cases: codes exact, x_norm/act_scale/weight_scale/y within 1e-4", "[ternary][golden]") {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(LINATTN_TEST_DATA_DIR))
    if (e.path().filename().string().rfind("bitlinear_", 0) == 0) files.push_back(e.path());
  REQUIRE(files.size() >= 4);
  for (const auto& path : files) {
    const linattn::io::SafeTensorsFile f(path);
    const auto x = f.read_array<float, 2>("x");
    const auto weight = f.read_array<float, 2>("weight");
    const auto norm_weight = f.read<float>("norm_weight");
    const index_t N = x.size(0), out = weight.size(0);
    const auto want_codes = f.read<std::int8_t>("act_codes");
    const auto want_wcodes = f.read<std::int8_t>("weight_codes");
    BitLinearOptions opt;
    opt.eps = std::stof(f.metadata_value("eps").value());
    for (const auto p : {ternary::Packing::bits2, ternary::Packing::base3}) {
      opt.packing = p;
      const BitLinear layer(weight.cview(), norm_weight, opt);
      for (const bool reference : {false, true}) {
        CAPTURE(path.filename().string(), ternary::packing_name(p), reference);
        Array<float, 2> y(Shape<2>{N, out});
        BitLinearTrace t;
        if (reference)
          layer.forward_reference(x.cview(), y.view(), &t);
        else
          layer.forward(x.cview(), y.view(), &t);
        CHECK(t.act_codes.vector() == want_codes);
        CHECK(layer.weight().to_codes().vector() == want_wcodes);
        CHECK(rel(t.x_norm.vector(), f.read<double>("x_norm")) <= 1e-4);
        CHECK(rel(t.act_scale, f.read<double>("act_scale")) <= 1e-4);
        CHECK(rel(std::vector<double>{1.0 / layer.weight().gamma()}, f.read<double>("weight_scale")) <= 1e-4);
        CHECK(rel(y.vector(), f.read<double>("y")) <= 1e-4);
      }
    }
  }
}

TEST_CASE("BitLinear: integer path against float path, trace or not", "[ternary]") {
  std::mt19937_64 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const index_t N = 5, in = 333, out = 77;
  Array<float, 2> w(Shape<2>{out, in}), x(Shape<2>{N, in});
  std::vector<float> nw(in);
  for (auto& v : w.vector()) v = 0.05f * normal(rng);
  for (auto& v : x.vector()) v = normal(rng);
  for (auto& v : nw) v = 1.0f + 0.1f * normal(rng);
  const BitLinear layer(w.cview(), nw);
  CHECK(layer.options().eps == ternary::kFusedBitLinearEps);  // the fused path's eps by default
  CHECK(layer.in_features() == in);
  CHECK(layer.out_features() == out);
  Array<float, 2> yi(Shape<2>{N, out}), yt(Shape<2>{N, out}), yr(Shape<2>{N, out});
  layer.forward(x.cview(), yi.view());
  BitLinearTrace trace;
  layer.forward(x.cview(), yt.view(), &trace);
  layer.forward_reference(x.cview(), yr.view());
  CHECK(yi == yt);  // the traced path is the same computation
  CHECK(layer.forward(x.cview()) == yi);
  double num = 0, den = 0;
  for (index_t i = 0; i < yi.numel(); ++i) {
    num = std::max(num, std::abs(double(yi.data()[i]) - yr.data()[i]));
    den = std::max(den, std::abs(double(yr.data()[i])));
  }
  CHECK(num / den < 1e-5);
  // A layer from already packed weights (and a different eps) is a different computation.
  BitLinearOptions o8;
  o8.eps = ternary::kUnfusedBitLinearEps;
  const BitLinear from_packed(layer.weight(), nw, o8);
  CHECK(from_packed.weight() == layer.weight());
  for (auto& v : x.vector()) v *= 1e-4f;  // small activations: eps shows
  Array<float, 2> a(Shape<2>{N, out}), b(Shape<2>{N, out});
  layer.forward(x.cview(), a.view());
  from_packed.forward(x.cview(), b.view());
  CHECK(a != b);
}

TEST_CASE("BitLinear rejects bad shapes and eps", "[ternary]") {
  const Array<float, 2> w(Shape<2>{4, 6});
  const std::vector<float> nw(5);
  CHECK_THROWS_WITH(BitLinear(w.cview(), nw), Contains("norm_weight has 5 elements"));
  const std::vector<float> nw6(6, 1.0f);
  BitLinearOptions bad;
  bad.eps = -1.0f;
  CHECK_THROWS_WITH(BitLinear(w.cview(), nw6, bad), Contains("eps must be finite"));
  const BitLinear layer(w.cview(), nw6);
  Array<float, 2> x(Shape<2>{2, 5}), y(Shape<2>{2, 4});
  CHECK_THROWS_WITH(layer.forward(x.cview(), y.view()), Contains("x has shape [2, 5], expected [*, 6]"));
  Array<float, 2> x6(Shape<2>{2, 6}), y3(Shape<2>{2, 3});
  CHECK_THROWS_WITH(layer.forward_reference(x6.cview(), y3.view()), Contains("y has shape [2, 3], expected [2, 4]"));
  CHECK_THROWS_WITH(BitLinear().forward(x6.cview(), y.view()), Contains("empty"));
}
