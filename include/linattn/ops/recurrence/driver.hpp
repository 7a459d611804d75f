// How the ops' forwards split their work: one driver for GLA, GSA and HGRN.
//
// Sequences are a batch [B, T, ...] or packed variable-length sequences (cu_seqlens, B = 1).
// A work item is one sequence and a contiguous range of heads (and, where the op allows, of
// value columns: head_ranges); for_each_block walks its sequence in blocks of rows and, inside
// each block, every head of its range.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "linattn/core/check.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"

namespace linattn::detail {

// Work distribution. A work item is one sequence and a contiguous range of heads; it walks
// the sequence in blocks of rows and, inside each block, every head of its range. Rows of
// all heads of a token are adjacent in the time-first layout, so a block is read as one
// contiguous stretch of memory: walking one head over the whole sequence instead reads 512-B
// pieces 2 KiB apart, which the hardware prefetchers follow poorly (measured: the recurrent
// form at K = V = 128 runs 19% faster on contiguous rows). Heads are split across items only
// as far as needed to give every thread work.
struct HeadRange {
  index_t sequence, first, last;  // heads [first, last)
  index_t v0, v1;                 // value columns [v0, v1) of the state
};

// With fewer (sequence, head) pairs than threads, a key-gated recurrence (GLA) also splits its
// value columns: every column of S and o evolves on its own (o[:, j] = q·S[:, j]; the key gate
// scales rows), so blocks of columns are independent items with the same arithmetic per column.
// So does the element-wise recurrence (HGRN: K = 1, one decay per column). Blocks stay at least
// kMinValueBlock wide (whole AVX-512 tiles; narrower ones lose more to recomputing the chunk's
// scores than they gain). Not for GSA, whose pass 1 gates the value axis of a full state
// (its softmax joins the columns), and only where the per-column arithmetic does not depend on
// the block's width: the recurrent and fused chunk kernels, not the chunk kernel, whose Eigen
// products over a narrower block round differently (1e-7 relative), which would make its
// results depend on the thread count.
inline constexpr index_t kMinValueBlock = 64;

inline std::vector<HeadRange> head_ranges(index_t sequences, index_t heads, index_t V, int threads, bool split_values) {
  const index_t pairs = sequences * heads;
  const index_t head_splits = std::clamp<index_t>((threads + sequences - 1) / std::max<index_t>(sequences, 1), 1, heads);
  const index_t per = (heads + head_splits - 1) / head_splits;
  const index_t value_splits =
      split_values ? std::clamp<index_t>((threads + pairs - 1) / std::max<index_t>(pairs, 1), 1,
                                         std::max<index_t>(1, V / kMinValueBlock))
                   : 1;
  const index_t width = value_splits == 1 ? V : ((V + value_splits - 1) / value_splits + 15) / 16 * 16;
  std::vector<HeadRange> items;
  for (index_t n = 0; n < sequences; ++n)
    for (index_t h = 0; h < heads; h += per)
      for (index_t v = 0; v < V; v += width) items.push_back({n, h, std::min(heads, h + per), v, std::min(V, v + width)});
  return items;
}

// ---------------------------------------------------------------------------------------
// Sequences: a batch [B, T, ...] or packed variable-length sequences (cu_seqlens, B = 1).
// ---------------------------------------------------------------------------------------
struct SequenceSpan {
  index_t batch;  // index into B
  index_t begin;  // first row in T
  index_t end;    // one past the last row
};

inline std::vector<SequenceSpan> sequence_spans(std::string_view where, index_t B, index_t T,
                                                std::span<const std::int64_t> cu_seqlens) {
  std::vector<SequenceSpan> spans;
  if (cu_seqlens.empty()) {
    for (index_t b = 0; b < B; ++b) spans.push_back({b, 0, T});
    return spans;
  }
  auto show = [&] {
    std::string s = "[";
    for (std::size_t i = 0; i < cu_seqlens.size() && i < 16; ++i) s += (i ? ", " : "") + std::to_string(cu_seqlens[i]);
    return s + (cu_seqlens.size() > 16 ? ", ...]" : "]");
  };
  if (B != 1) fail(where, "cu_seqlens needs packed inputs with B = 1, got B = " + std::to_string(B));
  if (cu_seqlens.size() < 2) fail(where, "cu_seqlens needs at least 2 entries, got " + show());
  if (cu_seqlens.front() != 0) fail(where, "cu_seqlens must start at 0, got " + show());
  if (cu_seqlens.back() != T)
    fail(where, "cu_seqlens must end at T = " + std::to_string(T) + ", got " + show());
  for (std::size_t n = 0; n + 1 < cu_seqlens.size(); ++n) {
    if (cu_seqlens[n + 1] < cu_seqlens[n])
      fail(where, "cu_seqlens must be non-decreasing, got " + show());
    spans.push_back({0, cu_seqlens[n], cu_seqlens[n + 1]});
  }
  return spans;
}

// The forward driver. For each work item: `begin(range, span)` returns the item's context (its
// heads' states, loaded from the initial state, and its workspaces); `run(context, range, span,
// head, t0, rows)` advances one head over rows [t0, t0 + rows) of the sequence; `finish(context,
// range, span)` stores the final states. Items run in parallel; each is computed the same way
// whatever the thread count, except that value columns are split only when split_values is set
// (ops whose per-column arithmetic does not depend on the block's width; see kMinValueBlock).
template <class Begin, class Run, class Finish>
void for_each_block(const std::vector<SequenceSpan>& spans, index_t heads, index_t V, index_t block, Threads threads,
                    bool split_values, Begin&& begin, Run&& run, Finish&& finish) {
  const int n_threads = clamp_threads(threads);
  const auto items = head_ranges(static_cast<index_t>(spans.size()), heads, V, n_threads, split_values);
  parallel_for(static_cast<index_t>(items.size()), Threads{n_threads}, [&](index_t i) {
    const HeadRange& range = items[static_cast<std::size_t>(i)];
    const SequenceSpan& sp = spans[static_cast<std::size_t>(range.sequence)];
    auto context = begin(range, sp);
    for (index_t t0 = sp.begin; t0 < sp.end; t0 += block)
      for (index_t h = range.first; h < range.last; ++h) run(context, range, sp, h, t0, std::min(block, sp.end - t0));
    finish(context, range, sp);
  });
}

}  // namespace linattn::detail
