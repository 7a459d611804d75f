// Analytic cycle model of one layer on mmf_core (rtl/mmf_core.sv), written from the RTL's
// structure, not fitted to the simulation; the tests check the two agree within ±5 %.
#pragma once

#include <cstdint>

namespace hw {

struct CycleModel {
  long long lanes, d, inter;

  // Matrix-only cycles: every ternary weight once, `lanes` a cycle: (4d² + 3dI) / M.
  long long matrix() const { return (4 * d * d + 3 * d * inter) / lanes; }

  // Fixed latencies of the units (rtl/*.sv):
  static constexpr long long kFront = 3;       // norm_quant u, t stages
  static constexpr long long kDivider = 7;     // norm_quant code divider stages
  static constexpr long long kScalar = 1 + 40 + 48 + 1;  // issue, isqrt steps, division steps, hand-over
  long long tree_latency() const {             // tmv_unit: select + registered tree levels + output
    int L = 0;
    while ((1LL << L) < lanes) ++L;
    return 1 + (L + 1) / 2 + 1;
  }
  static constexpr long long kWmem = 1;        // weight memory output register
  // elementwise work after the last row result of a phase (ew_unit states)
  static constexpr long long kEwAttn = 9, kEwO = 3, kEwGate = 4, kEwDown = 3;

  long long stream(long long n, bool codes) const { return n + kFront + (codes ? kDivider : 0) + 1; }
  long long mv(long long rows, long long beats, long long ew_tail, bool stats) const {
    return rows * beats + kWmem + tree_latency() + ew_tail + (stats ? kFront : 0) + 1;
  }

  // One layer: STATS0, 4 × (SCALAR, CODES, MV).
  long long layer() const {
    const long long bd = d / lanes, bi = inter / lanes;
    return stream(d, false) + 4 * kScalar + stream(d, true) + stream(d, true) + stream(d, true) +
           stream(inter, true) + mv(3 * d, bd, kEwAttn, true) + mv(d, bd, kEwO, true) +
           mv(2 * inter, bd, kEwGate, true) + mv(d, bi, kEwDown, false);
  }
};

}  // namespace hw
