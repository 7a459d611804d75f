// The recurrent state of a gated linear recurrence: one K×V matrix per (sequence, head).
#pragma once

#include <stdexcept>
#include <string>

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/tensor.hpp"

namespace linattn {

// A value type: copying it snapshots the state, assigning restores it. Prefill (chunk or
// recurrent form) and decode (step) read and write the same type, so a prefill followed by
// steps is the same computation as one full pass.
//
// Layout [N, H, K, V], K-major (S[k][v]), as fla's ops keep it; fla's GLA *layer* caches the
// transpose [N, H, V, K] (state_v_first, SPEC §8.4): convert with from_v_first / to_v_first.
template <class T>
class RecurrentState {
 public:
  using value_type = acc_t<T>;  // states are kept in at least float (SPEC §1)

  RecurrentState() = default;
  RecurrentState(index_t sequences, index_t heads, index_t key_dim, index_t value_dim)
      : data_(Shape<4>{sequences, heads, key_dim, value_dim}) {
    if (sequences < 0 || heads < 0 || key_dim < 0 || value_dim < 0)
      throw std::invalid_argument("linattn::RecurrentState: negative dimension in " +
                                  shape_string(data_.shape()));
  }
  // Copies a K-major [N, H, K, V] tensor.
  static RecurrentState from_tensor(TensorView<const value_type, 4> t) {
    RecurrentState s(t.size(0), t.size(1), t.size(2), t.size(3));
    for (index_t n = 0; n < t.size(0); ++n)
      for (index_t h = 0; h < t.size(1); ++h)
        for (index_t k = 0; k < t.size(2); ++k)
          for (index_t v = 0; v < t.size(3); ++v) s.data_(n, h, k, v) = t(n, h, k, v);
    return s;
  }
  // Copies a V-major [N, H, V, K] tensor (fla GLA layer cache).
  static RecurrentState from_v_first(TensorView<const value_type, 4> t) {
    RecurrentState s(t.size(0), t.size(1), t.size(3), t.size(2));
    for (index_t n = 0; n < t.size(0); ++n)
      for (index_t h = 0; h < t.size(1); ++h)
        for (index_t v = 0; v < t.size(2); ++v)
          for (index_t k = 0; k < t.size(3); ++k) s.data_(n, h, k, v) = t(n, h, v, k);
    return s;
  }
  Array<value_type, 4> to_v_first() const {
    Array<value_type, 4> out(Shape<4>{sequences(), heads(), value_dim(), key_dim()});
    for (index_t n = 0; n < sequences(); ++n)
      for (index_t h = 0; h < heads(); ++h)
        for (index_t k = 0; k < key_dim(); ++k)
          for (index_t v = 0; v < value_dim(); ++v) out(n, h, v, k) = data_(n, h, k, v);
    return out;
  }

  index_t sequences() const { return data_.size(0); }
  index_t heads() const { return data_.size(1); }
  index_t key_dim() const { return data_.size(2); }
  index_t value_dim() const { return data_.size(3); }
  const Shape<4>& shape() const { return data_.shape(); }
  index_t numel() const { return data_.numel(); }

  TensorView<value_type, 4> view() { return data_.view(); }
  TensorView<const value_type, 4> view() const { return data_.view(); }
  value_type* head(index_t n, index_t h) { return data_.view().ptr(n, h); }
  const value_type* head(index_t n, index_t h) const { return data_.view().ptr(n, h); }
  value_type* data() { return data_.data(); }
  const value_type* data() const { return data_.data(); }

  bool operator==(const RecurrentState&) const = default;

 private:
  Array<value_type, 4> data_;
};

namespace detail {
template <class T>
void check_state(std::string_view where, std::string_view name, const RecurrentState<T>& s,
                 const Shape<4>& expected) {
  if (s.shape() != expected)
    fail(where, std::string(name) + " has shape " + shape_string(s.shape()) + ", expected " +
                    shape_string(expected));
}
}  // namespace detail

}  // namespace linattn
