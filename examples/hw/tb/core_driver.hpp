// Host side of the Verilated mmf_core: loads a layer's parameters (from the library's
// linattn::fixed::IntegerLayer, the golden model), writes x and h, runs layers, reads back.
// Templated on the Verilated class, since each configuration is its own model (HW-NOTES §3.8).
#pragma once

#include <verilated.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "linattn/fixed/mmf_integer.hpp"

namespace hw {

// Host port targets and parameter vector ids: the same numbers as rtl/mmf_pkg.sv.
enum Sel : std::uint32_t { kSelWeight = 0, kSelParam = 1, kSelRq = 2, kSelX = 3, kSelH = 4 };
enum Vec : std::uint32_t {
  kAttnNorm = 0, kFNorm = 1, kINorm = 2, kGNormIn = 3, kGNorm = 4, kONorm = 5, kMlpNorm = 6, kGateNorm = 7,
  kDownNorm = 8, kLowerBound = 9
};
enum Rq : std::uint32_t { kRqF = 0, kRqI = 1, kRqO = 2, kRqGate = 3, kRqDown = 4 };

struct CoreConfig {
  int lanes, d, inter, layers;
  long long words_per_layer() const {
    return (4LL * d * d + 3LL * d * inter) / lanes;
  }
};

// The packed bytes of one layer in the order the controller streams them (rtl/mmf_core.sv):
// rows f_j, i_j, g_j interleaved; o; gate_j, up_j interleaved; down. Every row is the library's
// 2-bit packing (lane k of a byte in bits [2k+1:2k]), so the stream is a permutation of rows of
// the packed matrices and its size is exactly their packed size.
inline std::vector<std::uint8_t> weight_stream(const linattn::fixed::IntegerLayerParams& p) {
  std::vector<std::uint8_t> s;
  auto row = [&](const linattn::ternary::PackedWeights& w, linattn::index_t r) {
    s.insert(s.end(), w.row(r), w.row(r) + w.row_bytes());
  };
  for (linattn::index_t j = 0; j < p.d; ++j) {
    row(p.w_f, j);
    row(p.w_i, j);
    row(p.w_g, j);
  }
  for (linattn::index_t j = 0; j < p.d; ++j) row(p.w_o, j);
  for (linattn::index_t j = 0; j < p.inter; ++j) {
    row(p.w_gate, j);
    row(p.w_gate, p.inter + j);
  }
  for (linattn::index_t j = 0; j < p.d; ++j) row(p.w_down, j);
  return s;
}

inline std::size_t packed_bytes(const linattn::fixed::IntegerLayerParams& p) {
  return p.w_i.bytes() + p.w_f.bytes() + p.w_g.bytes() + p.w_o.bytes() + p.w_gate.bytes() + p.w_down.bytes();
}

template <class V>
class Core {
 public:
  // seed: Verilator's random reset seed (all state that the RTL does not reset starts random).
  Core(const CoreConfig& cfg, std::uint32_t seed) : cfg_(cfg), ctx_(std::make_unique<VerilatedContext>()) {
    ctx_->randReset(2);  // randomise, before the model is constructed (HW-NOTES §6.7)
    ctx_->randSeed(static_cast<int>(seed));
    top_ = std::make_unique<V>(ctx_.get());
    top_->clk = 0;
    top_->rst_n = 0;
    top_->cfg_valid = 0;
    top_->cmd_valid = 0;
    top_->wstall = 0;
    for (int i = 0; i < 4; ++i) tick();
    top_->rst_n = 1;
    tick();
  }
  ~Core() { top_->final(); }

  V& top() { return *top_; }
  std::uint64_t cycles() const { return cycles_; }

  void tick() {
    top_->clk = 1;
    top_->eval();
    top_->clk = 0;
    top_->eval();
    ++cycles_;
  }

  void write(std::uint32_t sel, std::uint32_t addr, const std::uint32_t* words, int nwords) {
    top_->cfg_valid = 1;
    top_->cfg_sel = sel;
    top_->cfg_addr = addr;
    if constexpr (std::is_integral_v<std::remove_reference_t<decltype(top_->cfg_data)>>) {
      top_->cfg_data = words[0];
      (void)nwords;
    } else {
      for (int i = 0; i < nwords; ++i) top_->cfg_data[i] = words[i];
    }
    top_->eval();
    if (!top_->cfg_ready) throw std::runtime_error("hw: host write while the core is busy");
    tick();
    top_->cfg_valid = 0;
  }
  void write32(std::uint32_t sel, std::uint32_t addr, std::uint32_t v) { write(sel, addr, &v, 1); }

  void load_layer(int l, const linattn::fixed::IntegerLayerParams& p) {
    if (p.d != cfg_.d || p.inter != cfg_.inter) throw std::invalid_argument("hw: layer shape differs from the core's");
    const auto s = weight_stream(p);
    const std::size_t bpw = static_cast<std::size_t>(cfg_.lanes / 4);
    if (s.size() != static_cast<std::size_t>(cfg_.words_per_layer()) * bpw)
      throw std::logic_error("hw: weight stream size");
    std::vector<std::uint32_t> w((bpw + 3) / 4);
    for (std::size_t i = 0; i < s.size() / bpw; ++i) {
      std::fill(w.begin(), w.end(), 0u);
      std::memcpy(w.data(), s.data() + i * bpw, bpw);  // little-endian bytes (HW-NOTES §6.9)
      write(kSelWeight, static_cast<std::uint32_t>(l * cfg_.words_per_layer() + static_cast<long long>(i)), w.data(),
            static_cast<int>(w.size()));
    }
    auto vec = [&](Vec v, const auto& values) {
      for (std::size_t j = 0; j < values.size(); ++j)
        write32(kSelParam, (std::uint32_t(l) << 24) | (std::uint32_t(v) << 20) | std::uint32_t(j),
                static_cast<std::uint32_t>(static_cast<std::int32_t>(values[j])) & 0x1FFFFu);
    };
    vec(kAttnNorm, p.attn_norm);
    vec(kFNorm, p.f_norm);
    vec(kINorm, p.i_norm);
    vec(kGNormIn, p.g_proj_norm);
    vec(kGNorm, p.g_norm);
    vec(kONorm, p.o_norm);
    vec(kMlpNorm, p.mlp_norm);
    vec(kGateNorm, p.gate_norm);
    vec(kDownNorm, p.down_norm);
    vec(kLowerBound, p.lower_bound);
    auto rq = [&](Rq k, const linattn::fixed::Requant& q) {
      write32(kSelRq, (std::uint32_t(l) << 24) | std::uint32_t(k), (std::uint32_t(q.shift) << 16) | q.mantissa);
    };
    rq(kRqF, p.rq_f);
    rq(kRqI, p.rq_i);
    rq(kRqO, p.rq_o);
    rq(kRqGate, p.rq_gate);
    rq(kRqDown, p.rq_down);
  }

  void write_x(const std::vector<std::int32_t>& x) {
    for (std::size_t j = 0; j < x.size(); ++j) write32(kSelX, static_cast<std::uint32_t>(j), static_cast<std::uint32_t>(x[j]));
  }
  void write_h(int l, const std::vector<std::int32_t>& h) {
    for (std::size_t j = 0; j < h.size(); ++j)
      write32(kSelH, (std::uint32_t(l) << 24) | std::uint32_t(j), static_cast<std::uint32_t>(h[j]));
  }
  // which: 0 x, 1 h of layer l, 2 the last z (the GLU product, `inter` elements)
  std::vector<std::int32_t> read(int which, int l) {
    const int n = which == 2 ? cfg_.inter : cfg_.d;
    std::vector<std::int32_t> v(static_cast<std::size_t>(n));
    top_->rd_sel = static_cast<std::uint8_t>(which);
    top_->rd_layer = static_cast<std::uint8_t>(l);
    for (int j = 0; j < n; ++j) {
      top_->rd_addr = static_cast<std::uint32_t>(j);
      top_->eval();
      v[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(top_->rd_data);
    }
    return v;
  }
  std::vector<std::int32_t> read_x() { return read(0, 0); }
  std::vector<std::int32_t> read_h(int l) { return read(1, l); }
  std::vector<std::int32_t> read_z() { return read(2, 0); }

  // Runs layer l on the x held in the core; returns the core's own cycle count of the layer.
  std::uint64_t run_layer(int l, std::uint64_t timeout = 50'000'000) {
    top_->cmd_valid = 1;
    top_->cmd_layer = static_cast<std::uint8_t>(l);
    top_->eval();
    if (!top_->cmd_ready) throw std::runtime_error("hw: command while the core is busy");
    tick();
    top_->cmd_valid = 0;
    for (std::uint64_t n = 0; n < timeout; ++n) {
      if (top_->done) return top_->layer_cycles;
      tick();
    }
    throw std::runtime_error("hw: layer " + std::to_string(l) + " did not finish");
  }

 private:
  CoreConfig cfg_;
  std::unique_ptr<VerilatedContext> ctx_;
  std::unique_ptr<V> top_;
  std::uint64_t cycles_ = 0;
};

}  // namespace hw
