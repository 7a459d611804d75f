// Consumer (a), translation unit 1 of 2: builds against the installed headers.
#include <linattn/core/check.hpp>
#include <linattn/core/tensor.hpp>
#include <linattn/core/threading.hpp>
#include <linattn/linattn.hpp>
#include <linattn/models/any.hpp>  // the installed model loaders (linattn::models)

#include <atomic>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <variant>
#include <vector>

// Defined in second.cpp.
float sum_in_second_tu(linattn::TensorView<const float, 2> v);
linattn::index_t count_in_second_tu(linattn::index_t n);

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main(int argc, char** argv) {
  linattn::Array<float, 2> a({3, 4});
  for (linattn::index_t i = 0; i < 3; ++i)
    for (linattn::index_t j = 0; j < 4; ++j) a(i, j) = static_cast<float>(i * 4 + j);

  linattn::TensorView<float, 2> v = a.view();
  linattn::TensorView<const float, 2> cv = v;  // view of T -> view of const T
  expect(cv.numel() == 12 && cv.is_contiguous(), "contiguous 3x4 view");

  // The same buffer seen transposed through strides.
  linattn::TensorView<const float, 2> t(a.data(), {4, 3}, {1, 4});
  expect(!t.is_contiguous() && t(1, 2) == a(2, 1), "strided (transposed) view");

  float local = 0.0f;
  for (linattn::index_t i = 0; i < 3; ++i)
    for (linattn::index_t j = 0; j < 4; ++j) local += cv(i, j);
  expect(local == 66.0f, "sum in this translation unit");
  expect(sum_in_second_tu(cv) == 66.0f, "sum in the other translation unit");

  linattn::detail::check_shape("consumer", "a", cv, {3, -1});
  bool threw = false;
  try {
    linattn::detail::check_shape("consumer", "a", cv, {4, 4});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  expect(threw, "check_shape throws on a mismatch");

  std::atomic<linattn::index_t> hits{0};
  linattn::detail::parallel_for(100, linattn::Threads{2}, [&](linattn::index_t) { ++hits; });
  expect(hits.load() == 100, "parallel_for in this translation unit");
  expect(count_in_second_tu(57) == 57, "parallel_for in the other translation unit");

  // A model folder (the ctest passes tests/data/model_gla): loaded and run through the installed
  // linattn/models headers, as a user's program would.
  if (argc > 1) {
    const linattn::io::Checkpoint ckpt(argv[1]);
    const linattn::models::AnyModel model = linattn::models::load_model(ckpt);
    const std::vector<std::int64_t> ids = {1, 2, 3};
    bool finite = true;
    std::visit(
        [&](const auto& m) {
          auto cache = m.new_cache();
          linattn::Array<float, 2> logits({3, m.vocab_size()});
          m.forward(ids, cache, logits.view());
          for (linattn::index_t i = 0; i < logits.numel(); ++i) finite = finite && std::isfinite(logits.data()[i]);
        },
        model);
    expect(finite, "the installed loader's model gives finite logits");
  }

  if (failures != 0) return 1;
  std::printf("linattn consumer (find_package): ok, max_threads=%d\n", linattn::max_threads());
  return 0;
}
