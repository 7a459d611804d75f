// Packed ternary weights: byte layouts, pack → unpack round trips for both packings, memory per
// weight, and malformed input (wrong lengths, non-ternary codes, bad γ, reserved or invalid codes).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "linattn/ops/ternary.hpp"

using linattn::Array;
using linattn::index_t;
using linattn::Shape;
namespace ternary = linattn::ternary;
using ternary::Packing;
using Catch::Matchers::Contains;

namespace {

Array<std::int8_t, 2> random_codes(index_t rows, index_t cols, std::mt19937_64& rng) {
  Array<std::int8_t, 2> c(Shape<2>{rows, cols});
  for (auto& v : c.vector()) v = static_cast<std::int8_t>(static_cast<int>(rng() % 3) - 1);
  return c;
}

}  // namespace

TEST_CASE("byte layouts: 2-bit fields 00/01/11, base-3 digits (t+1)·3^i", "[ternary]") {
  const Array<std::int8_t, 2> codes(Shape<2>{1, 5}, {1, -1, 0, 1, -1});
  const ternary::PackedWeights two(codes.cview(), 1.0f, Packing::bits2);
  REQUIRE(two.bytes() == 2);
  CHECK(two.data()[0] == 0b01'00'11'01);  // weights 3,2,1,0 = +1, 0, −1, +1 (weight k in bits 2k+1:2k)
  CHECK(two.data()[1] == 0b00'00'00'11);  // weight 4 = −1, padding 00
  const ternary::PackedWeights three(codes.cview(), 1.0f, Packing::base3);
  REQUIRE(three.bytes() == 1);
  CHECK(three.data()[0] == 2 + 0 * 3 + 1 * 9 + 2 * 27 + 0 * 81);
  // The 243-entry table decodes every byte to distinct trits, and re-encodes to itself.
  std::set<std::array<std::int8_t, 5>> seen(ternary::detail::kBase3Decode.begin(), ternary::detail::kBase3Decode.end());
  CHECK(seen.size() == 243);
  CHECK(ternary::detail::kBase3Decode[ternary::detail::kBase3Zero] == std::array<std::int8_t, 5>{0, 0, 0, 0, 0});
}

TEST_CASE("pack → unpack round trip for both packings, any row length", "[ternary]") {
  std::mt19937_64 rng(1);
  for (const index_t cols : {1, 2, 3, 4, 5, 6, 63, 64, 65, 255, 256, 257, 1000}) {
    for (const index_t rows : {1, 3, 17}) {
      const auto codes = random_codes(rows, cols, rng);
      for (const Packing p : {Packing::bits2, Packing::base3}) {
        CAPTURE(cols, rows, ternary::packing_name(p));
        const ternary::PackedWeights w(codes.cview(), 0.25f, p);
        REQUIRE(w.rows() == rows);
        REQUIRE(w.cols() == cols);
        REQUIRE(w.packing() == p);
        REQUIRE(w.to_codes() == codes);
        std::vector<std::int8_t> row(static_cast<std::size_t>(cols));
        w.unpack_row(rows - 1, row);
        REQUIRE(std::equal(row.begin(), row.end(), codes.data() + (rows - 1) * cols));
        const auto other = w.repacked(p == Packing::bits2 ? Packing::base3 : Packing::bits2);
        REQUIRE(other.to_codes() == codes);
        REQUIRE(other.gamma() == 0.25f);
        // External bytes in the documented layout give back the same object.
        REQUIRE(ternary::PackedWeights::from_packed(rows, cols, 0.25f, p, w.data()) == w);
      }
    }
  }
}

TEST_CASE("packed sizes: 2-bit = fp32/16, base-3 <= fp32/19.5 at the model shapes", "[ternary]") {
  // 370M and 1.3B shapes (in = 1024, 2048, 2816, 5632; SPEC §7); 8 rows each.
  for (const index_t cols : {1024, 2048, 2816, 5632}) {
    const Array<std::int8_t, 2> codes(Shape<2>{8, cols});
    const ternary::PackedWeights two(codes.cview(), 1.0f, Packing::bits2);
    const ternary::PackedWeights three(codes.cview(), 1.0f, Packing::base3);
    const double fp32 = 4.0 * 8 * static_cast<double>(cols);
    CAPTURE(cols);
    CHECK(two.bytes() == static_cast<std::size_t>(8 * cols / 4));
    CHECK(fp32 / static_cast<double>(two.bytes()) == 16.0);
    CHECK(three.bytes() == static_cast<std::size_t>(8 * ((cols + 4) / 5)));
    CHECK(fp32 / static_cast<double>(three.bytes()) >= 19.5);
  }
}

TEST_CASE("malformed inputs throw std::invalid_argument naming the problem", "[ternary]") {
  Array<std::int8_t, 2> codes(Shape<2>{2, 3});
  codes(1, 2) = 2;
  CHECK_THROWS_WITH(ternary::PackedWeights(codes.cview(), 1.0f), Contains("code 2 at (1, 2) is not ternary"));
  codes(1, 2) = -2;
  CHECK_THROWS_AS(ternary::PackedWeights(codes.cview(), 1.0f, Packing::base3), std::invalid_argument);
  codes(1, 2) = 1;
  for (const float g : {0.0f, -1.0f, NAN, INFINITY})
    CHECK_THROWS_WITH(ternary::PackedWeights(codes.cview(), g), Contains("gamma must be finite and > 0"));
  const Array<std::int8_t, 2> empty(Shape<2>{0, 3});
  CHECK_THROWS_WITH(ternary::PackedWeights(empty.cview(), 1.0f), Contains("at least one row"));

  const ternary::PackedWeights w(codes.cview(), 1.0f);
  std::vector<std::int8_t> row(2);
  CHECK_THROWS_WITH(w.unpack_row(0, row), Contains("out has 2 elements, expected 3"));
  row.resize(3);
  CHECK_THROWS_WITH(w.unpack_row(2, row), Contains("row 2 out of range"));

  // External bytes: length, reserved 2-bit code 10, base-3 bytes >= 243, non-zero padding.
  std::vector<std::uint8_t> bytes(w.data().begin(), w.data().end());
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 3, 1.0f, Packing::bits2, {bytes.data(), 1}),
                    Contains("1 bytes given"));
  bytes[1] = 0b00'10'00'00;  // row 1, column 2 = reserved 10
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 3, 1.0f, Packing::bits2, bytes),
                    Contains("reserved 2-bit code 0b10 at row 1, column 2"));
  bytes[1] = 0b01'00'00'00;  // row 1, column 3: padding must be 00
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 3, 1.0f, Packing::bits2, bytes),
                    Contains("non-zero padding weight"));
  std::vector<std::uint8_t> b3{ternary::detail::kBase3Zero, 243};
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 5, 1.0f, Packing::base3, b3),
                    Contains("byte 243 >= 243 is not a base-3 code at row 1"));
  b3 = {ternary::detail::kBase3Zero, 0};  // five −1 trits: the last two are padding for cols = 3
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 3, 1.0f, Packing::base3, b3), Contains("padding"));
  CHECK_NOTHROW(ternary::PackedWeights::from_packed(2, 5, 1.0f, Packing::base3, b3));
  CHECK_THROWS_WITH(ternary::PackedWeights::from_packed(2, 5, 0.0f, Packing::base3, b3), Contains("gamma"));
}
