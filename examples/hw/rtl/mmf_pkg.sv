// Configuration and shared definitions of the MatMul-free LM core (examples/hw/README.md).
package mmf_pkg;
  // The one configuration struct every unit of the core takes.
  typedef struct packed {
    int unsigned lanes;   // M: ternary MACs a cycle (power of two, >= 4)
    int unsigned d;       // hidden size (multiple of lanes)
    int unsigned inter;   // GLU intermediate size I (multiple of lanes, >= d)
    int unsigned layers;  // layers whose weights and states the core holds
  } cfg_t;

  function automatic cfg_t make_cfg(input int lanes, input int d, input int inter, input int layers);
    make_cfg.lanes = lanes;
    make_cfg.d = d;
    make_cfg.inter = inter;
    make_cfg.layers = layers;
  endfunction

  // Phases of one layer (the controller's states that do work).
  typedef enum logic [3:0] {
    PH_IDLE, PH_STATS0, PH_SCALAR0, PH_CODES0, PH_MV_ATTN, PH_SCALAR1, PH_CODES1, PH_MV_O, PH_SCALAR2,
    PH_CODES2, PH_MV_GATE, PH_SCALAR3, PH_CODES3, PH_MV_DOWN, PH_DONE
  } phase_t;

  // Elementwise unit modes.
  typedef enum logic [1:0] { EW_ATTN, EW_O, EW_GATE, EW_DOWN } ew_mode_t;

  // Host write port targets (cfg_sel).
  localparam logic [2:0] SEL_WEIGHT = 3'd0;  // addr = word index, data = LANES 2-bit codes
  localparam logic [2:0] SEL_PARAM = 3'd1;   // addr = (layer*16 + vec)*inter + j, data[16:0]
  localparam logic [2:0] SEL_RQ = 3'd2;      // addr = layer*8 + k, data = {shift[6:0], mantissa[15:0]}
  localparam logic [2:0] SEL_X = 3'd3;       // addr = j, data[31:0]: residual stream
  localparam logic [2:0] SEL_H = 3'd4;       // addr = layer*d + j, data[31:0]: MLGRU state

  // Parameter vectors of a layer (SEL_PARAM vec): Q12 norm weights, Q15 lower bound.
  localparam int V_ATTN_NORM = 0, V_F_NORM = 1, V_I_NORM = 2, V_G_NORM_IN = 3, V_G_NORM = 4, V_O_NORM = 5,
                 V_MLP_NORM = 6, V_GATE_NORM = 7, V_DOWN_NORM = 8, V_LB = 9, V_ONE = 15;
  // Requantisation constants of a layer (SEL_RQ k).
  localparam int RQ_F = 0, RQ_I = 1, RQ_O = 2, RQ_GATE = 3, RQ_DOWN = 4;

  // round_shift and sat32 of linattn::fixed (include/linattn/fixed/arith.hpp), 81-bit products.
  function automatic logic signed [31:0] sat32(input logic signed [80:0] v);
    if (v > 81'sh0_7FFF_FFFF) sat32 = 32'sh7FFF_FFFF;
    else if (v < -81'sh0_8000_0000) sat32 = 32'sh8000_0000;
    else sat32 = v[31:0];
  endfunction

  function automatic logic signed [80:0] round_shift(input logic signed [80:0] v, input logic [6:0] s);
    logic signed [80:0] one;
    one = 81'sd1;
    if (s == 7'd0) round_shift = v;
    else round_shift = (v + (one <<< (s - 7'd1))) >>> s;
  endfunction

  // y = sat32(round_shift(acc * m, s)): the BitLinear dequantisation.
  function automatic logic signed [31:0] requant(input logic signed [31:0] acc, input logic [47:0] m,
                                                 input logic [6:0] s);
    logic signed [80:0] p;
    p = {{49{acc[31]}}, acc} * {33'd0, m};
    requant = sat32(round_shift(p, s));
  endfunction

  `include "sigmoid_knots.svh"

  // sigmoid_q15 of linattn::fixed: PWL, knots every 1/8 on [-8, 8].
  function automatic logic signed [31:0] sigmoid_q15(input logic signed [31:0] x);
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [31:0] off;  // in [0, 2^20): bits 31..21 are zero
    /* verilator lint_on UNUSEDSIGNAL */
    logic signed [31:0] y0, y1;
    logic [7:0] k;
    logic signed [80:0] p;
    if (x >= 32'sd524288) sigmoid_q15 = 32'sd32768;
    else if (x < -32'sd524288) sigmoid_q15 = 32'sd0;
    else begin
      off = x + 32'sd524288;
      k = off[20:13];
      y0 = {16'd0, SIGMOID_KNOTS[k]};
      y1 = {16'd0, SIGMOID_KNOTS[k + 8'd1]};
      // the knots increase, so y1 - y0 >= 0 and the product is below 2^29
      p = {{49{1'b0}}, y1 - y0} * {{68{1'b0}}, off[12:0]};
      p = round_shift(p, 7'd13);
      sigmoid_q15 = y0 + p[31:0];
    end
  endfunction

  function automatic logic signed [31:0] silu_q16(input logic signed [31:0] x);
    logic signed [80:0] p;
    p = {{49{x[31]}}, x} * {49'd0, sigmoid_q15(x)};
    silu_q16 = sat32(round_shift(p, 7'd15));
  endfunction
endpackage
