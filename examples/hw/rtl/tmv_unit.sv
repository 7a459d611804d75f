// Ternary matrix-vector unit: LANES int8 x 2-bit ternary products a cycle, no multipliers.
//
//   beat in  (ready/valid): LANES weights (2 bits each, lane k in bits [2k+1:2k]: 00 = 0,
//            01 = +1, 11 = -1, 10 reserved -> 0 and sticky err_reserved), LANES int8 codes
//            (lane k in bits [8k+7:8k]), last = final beat of a row
//   row out  (ready/valid): the int32 dot product of the row
//
// Pipeline: registered select (x, -x or 0), a balanced adder tree with a register after every
// second level (and after the last), then the row accumulator. A lone stall signal freezes all
// stages while a finished row waits on out_ready, so in_ready = advance (HW-NOTES §6.5: a
// serial `sum += ...` loop synthesised to a ripple chain at 15 MHz; this tree reached 129 MHz).
// MUTANT = 1 negates with ~x instead of -x: the mutation the tests must catch.
module tmv_unit #(
  parameter int LANES = 16,
  parameter int MUTANT = 0
) (
  input  logic                   clk,
  input  logic                   rst_n,
  input  logic                   in_valid,
  output logic                   in_ready,
  input  logic [2*LANES-1:0]     in_w,
  input  logic [8*LANES-1:0]     in_x,
  input  logic                   in_last,
  output logic                   out_valid,
  input  logic                   out_ready,
  output logic signed [31:0]     out_acc,
  output logic                   err_reserved
);
  localparam int L = $clog2(LANES);
  localparam int SW = 9 + L;             // |sum| <= 128 * LANES
  localparam int NREG = (L + 1) / 2;     // registered tree levels: 2, 4, ..., and L
  localparam int DEPTH = 1 + NREG;       // select stage + tree registers

  logic adv;
  assign adv = !out_valid || out_ready;
  assign in_ready = adv;

  // ---- stage 0: ternary select --------------------------------------------------------------
  logic signed [SW-1:0] sel_q [LANES];
  genvar k;
  generate
    for (k = 0; k < LANES; k++) begin : g_sel
      logic [1:0] w;
      logic signed [7:0] x;
      logic signed [SW-1:0] xe, neg;
      assign w = in_w[2*k +: 2];
      assign x = in_x[8*k +: 8];
      assign xe = {{(SW-8){x[7]}}, x};
      if (MUTANT != 0) begin : g_mut
        assign neg = ~xe;
      end else begin : g_ok
        assign neg = -xe;
      end
      always_ff @(posedge clk) begin
        if (adv) sel_q[k] <= (w == 2'b01) ? xe : ((w == 2'b11) ? neg : '0);
      end
    end
  endgenerate

  always_ff @(posedge clk) begin
    if (!rst_n) err_reserved <= 1'b0;
    else begin
      for (int j = 0; j < LANES; j++)
        if (adv && in_valid && in_w[2*j +: 2] == 2'b10) err_reserved <= 1'b1;
    end
  end

  // ---- adder tree: level l has LANES >> l nodes; registered when l is even or l == L --------
  genvar l, n;
  generate
    for (l = 1; l <= L; l++) begin : g_lvl
      localparam int N = LANES >> l;
      localparam bit REG = (l % 2 == 0) || (l == L);
      logic signed [SW-1:0] s [N];
      logic signed [SW-1:0] o [N];
      for (n = 0; n < N; n++) begin : g_node
        if (l == 1) begin : g_first
          assign s[n] = sel_q[2*n] + sel_q[2*n+1];
        end else begin : g_next
          assign s[n] = g_lvl[l-1].o[2*n] + g_lvl[l-1].o[2*n+1];
        end
        if (REG) begin : g_reg
          always_ff @(posedge clk) if (adv) o[n] <= s[n];
        end else begin : g_wire
          assign o[n] = s[n];
        end
      end
    end
  endgenerate

  logic signed [SW-1:0] tree_out;
  assign tree_out = g_lvl[L].o[0];

  // valid / last travel alongside the data
  logic [DEPTH-1:0] v_q, last_q;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v_q <= '0;
      last_q <= '0;
    end else if (adv) begin
      v_q <= {v_q[DEPTH-2:0], in_valid};
      last_q <= {last_q[DEPTH-2:0], in_last};
    end
  end

  // ---- row accumulator --------------------------------------------------------------------
  logic signed [31:0] acc_q, sum;
  assign sum = acc_q + {{(32-SW){tree_out[SW-1]}}, tree_out};
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      acc_q <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (adv && v_q[DEPTH-1]) begin
        if (last_q[DEPTH-1]) begin
          out_acc <= sum;
          out_valid <= 1'b1;
          acc_q <= '0;
        end else begin
          acc_q <= sum;
        end
      end
    end
  end
endmodule
