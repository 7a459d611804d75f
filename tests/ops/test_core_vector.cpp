// The recurrence core's default build (vector-extension tiles) for test_portable.cpp.
#include "ops/core_paths.hpp"

namespace core_paths {
Results<float> vector_path_f(const Case& c) { return run<float>(c); }
Results<double> vector_path_d(const Case& c) { return run<double>(c); }
}  // namespace core_paths
