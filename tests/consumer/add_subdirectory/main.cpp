// Consumer (b): builds against the source tree brought in with add_subdirectory().
#include <linattn/core/tensor.hpp>
#include <linattn/core/threading.hpp>
#if __has_include(<linattn/linattn.hpp>)
#include <linattn/linattn.hpp>
#endif

#include <atomic>
#include <cstdio>

int main() {
  linattn::Array<double, 3> a({2, 3, 4});
  linattn::TensorView<double, 3> v = a.view();
  std::atomic<int> rows{0};
  linattn::detail::parallel_for(v.size(0), linattn::Threads{}, [&](linattn::index_t b) {
    for (linattn::index_t i = 0; i < v.size(1); ++i)
      for (linattn::index_t j = 0; j < v.size(2); ++j) v(b, i, j) = static_cast<double>(b + i + j);
    ++rows;
  });
  const bool ok = rows.load() == 2 && a(1, 2, 3) == 6.0 && *v.ptr(1) == 1.0 && a.numel() == 24;
  if (!ok) {
    std::fprintf(stderr, "linattn consumer (add_subdirectory): FAILED\n");
    return 1;
  }
  std::printf("linattn consumer (add_subdirectory): ok\n");
  return 0;
}
