// Consumer (a), translation unit 2 of 2: includes the same headers as main.cpp (in another
// order) and instantiates the same templates, so the linker sees every inline definition twice.
#include <linattn/core/threading.hpp>
#include <linattn/core/tensor.hpp>
#include <linattn/core/check.hpp>
#include <linattn/models/any.hpp>
#include <linattn/linattn.hpp>

#include <atomic>

float sum_in_second_tu(linattn::TensorView<const float, 2> v) {
  linattn::detail::check_shape("second_tu", "v", v, {-1, -1});
  linattn::Array<float, 2> copy(v.shape());
  float s = 0.0f;
  for (linattn::index_t i = 0; i < v.size(0); ++i)
    for (linattn::index_t j = 0; j < v.size(1); ++j) {
      copy(i, j) = v(i, j);
      s += copy(i, j);
    }
  return s;
}

linattn::index_t count_in_second_tu(linattn::index_t n) {
  std::atomic<linattn::index_t> hits{0};
  linattn::detail::parallel_for(n, linattn::Threads{}, [&](linattn::index_t) { ++hits; });
  return hits.load();
}
