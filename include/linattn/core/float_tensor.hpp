// Float data of one tensor, row-major, shared and cheap to copy: the weight type of the nn/
// layers and what io::Checkpoint hands out (a view into a mapped file, or a converted copy).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "linattn/core/tensor.hpp"

namespace linattn {

// Float data of one tensor, row-major: a view into a mapped file or into a converted copy,
// kept alive by `owner`. Copies share the data (a tied lm_head and the embeddings are one).
struct FloatTensor {
  std::vector<index_t> shape;
  std::shared_ptr<const void> owner;  // the mapped file, or the converted std::vector<float>
  const float* data = nullptr;

  static FloatTensor own(std::vector<index_t> shape, std::vector<float> values) {
    auto v = std::make_shared<const std::vector<float>>(std::move(values));
    FloatTensor t;
    t.shape = std::move(shape);
    t.data = v->data();
    t.owner = std::move(v);
    return t;
  }

  index_t numel() const {
    index_t n = 1;
    for (index_t s : shape) n *= s;
    return n;
  }
  index_t size(std::size_t d) const { return shape.at(d); }
  std::span<const float> span() const { return {data, static_cast<std::size_t>(numel())}; }
  TensorView<const float, 2> matrix() const { return {data, Shape<2>{shape.at(0), shape.at(1)}}; }
  std::vector<float> to_vector() const { return {data, data + numel()}; }
};

}  // namespace linattn
