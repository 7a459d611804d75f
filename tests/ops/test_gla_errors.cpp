// GLA: bad input throws std::invalid_argument naming the tensor and both shapes.
#include <catch2/catch.hpp>

#include "support/gla_case.hpp"

using namespace testing_gla;
using Catch::Matchers::Contains;
using linattn::Array;
using linattn::TensorView;

TEST_CASE("GLA rejects mismatched shapes with a message naming the tensor", "[gla][errors]") {
  const auto p = make_problem<float>(1, 8, 2, 16, 8, 0.0, 1);
  Array<float, 4> o({1, 8, 2, 8}), bad_k({1, 8, 2, 15}), bad_v({1, 7, 2, 8}), bad_o({1, 8, 2, 9});
  using linattn::gla::chunk;
  using linattn::gla::recurrent;
  REQUIRE_THROWS_WITH(chunk<float>(p.q.view(), bad_k.view(), p.v.view(), p.g.view(), o.view()),
                      Contains("k has shape [1, 8, 2, 15], expected [1, 8, 2, 16]"));
  REQUIRE_THROWS_WITH(recurrent<float>(p.q.view(), p.k.view(), bad_v.view(), p.g.view(), o.view()),
                      Contains("v has shape [1, 7, 2, 8]"));
  REQUIRE_THROWS_WITH(recurrent<float>(p.q.view(), p.k.view(), p.v.view(), bad_k.view(), o.view()),
                      Contains("gk has shape"));
  REQUIRE_THROWS_WITH(chunk<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), bad_o.view()),
                      Contains("o has shape [1, 8, 2, 9], expected [1, 8, 2, 8]"));
  REQUIRE_THROWS_AS(chunk<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), bad_o.view()),
                    std::invalid_argument);
  linattn::gla::Options zero_chunk;
  zero_chunk.chunk_size = 0;
  REQUIRE_THROWS_WITH(chunk<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), o.view(), nullptr, nullptr, zero_chunk),
                      Contains("chunk_size must be >= 1"));
}

TEST_CASE("GLA rejects a wrong state shape", "[gla][errors]") {
  const auto p = make_problem<float>(2, 8, 2, 16, 8, 0.0, 1);
  Array<float, 4> o({2, 8, 2, 8});
  linattn::gla::State<float> wrong(2, 2, 8, 16);
  REQUIRE_THROWS_WITH(linattn::gla::chunk<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), o.view(), &wrong),
                      Contains("initial_state has shape [2, 2, 8, 16], expected [2, 2, 16, 8]"));
  Array<float, 3> q1({2, 2, 16}), v1({2, 2, 8}), o1({2, 2, 8});
  REQUIRE_THROWS_WITH(linattn::gla::step<float>(q1.view(), q1.view(), v1.view(), q1.view(), o1.view(), wrong),
                      Contains("state has shape [2, 2, 8, 16], expected [2, 2, 16, 8]"));
  Array<float, 3> bad_v1({2, 3, 8});
  REQUIRE_THROWS_WITH(linattn::gla::step<float>(q1.view(), q1.view(), bad_v1.view(), q1.view(), o1.view(), wrong),
                      Contains("v has shape [2, 3, 8]"));
}

TEST_CASE("GLA rejects malformed cu_seqlens", "[gla][errors][varlen]") {
  const auto p = make_problem<float>(1, 10, 1, 8, 8, 0.0, 1, 2);
  Array<float, 4> o({1, 10, 1, 8});
  auto run = [&](std::vector<std::int64_t> cu) {
    linattn::gla::Options opt;
    opt.cu_seqlens = cu;
    linattn::gla::chunk<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), o.view(), nullptr, nullptr, opt);
  };
  REQUIRE_THROWS_WITH(run({0, 6, 4, 10}), Contains("non-decreasing"));
  REQUIRE_THROWS_WITH(run({0, 4, 9}), Contains("must end at T = 10"));
  REQUIRE_THROWS_WITH(run({1, 4, 10}), Contains("must start at 0"));
  REQUIRE_THROWS_WITH(run({0}), Contains("at least 2 entries"));
  REQUIRE_NOTHROW(run({0, 4, 10}));
  // B != 1 with cu_seqlens
  const auto p2 = make_problem<float>(2, 5, 1, 8, 8, 0.0, 1);
  Array<float, 4> o2({2, 5, 1, 8});
  linattn::gla::Options opt;
  const std::vector<std::int64_t> cu = {0, 5};
  opt.cu_seqlens = cu;
  REQUIRE_THROWS_WITH(linattn::gla::recurrent<float>(p2.q.view(), p2.k.view(), p2.v.view(), p2.g.view(), o2.view(), nullptr, nullptr, opt),
                      Contains("B = 1, got B = 2"));
  // initial state must have one entry per sequence
  linattn::gla::State<float> h0(3, 1, 8, 8);
  linattn::gla::Options opt2;
  const std::vector<std::int64_t> cu2 = {0, 4, 10};
  opt2.cu_seqlens = cu2;
  REQUIRE_THROWS_WITH(linattn::gla::recurrent<float>(p.q.view(), p.k.view(), p.v.view(), p.g.view(), o.view(), &h0, nullptr, opt2),
                      Contains("initial_state has shape [3, 1, 8, 8], expected [2, 1, 8, 8]"));
}

TEST_CASE("GLA rejects a non-contiguous last dimension", "[gla][errors]") {
  const auto p = make_problem<float>(1, 4, 1, 8, 8, 0.0, 1);
  Array<float, 4> o({1, 4, 1, 8});
  TensorView<const float, 4> strided(p.q.data(), {1, 4, 1, 4}, {32, 8, 8, 2});
  TensorView<const float, 4> kk(p.k.data(), {1, 4, 1, 4}, {32, 8, 8, 1});
  REQUIRE_THROWS_WITH(linattn::gla::recurrent<float>(strided, kk, p.v.view(), kk, o.view()),
                      Contains("q must have a contiguous last dimension"));
}
