// RMSNorm / quantise unit: the BitLinear input rules of linattn::fixed (mmf_integer.hpp).
//
//   element in (one a cycle, no back-pressure; mode_code selects the pass):
//     u = sat32(round_shift(v*a, 12)),  t_k = u*b_k  (k = 0..2: up to three projections that
//     share the pre-norm, as i, f, g do)
//   stats pass:  ss += u^2,  M_k = max(M_k, |t_k|)                  (cleared by `clear`)
//   scalar job:  r = isqrt(ss) (40 steps), then m_k = floor(mant_k * M_k * 2^16 / r) for k = 0, 1
//                (48 steps, bit-serial restoring division; m < 2^48 because |u_j| <= r)
//   code pass:   code_k = sign(t_k) * floor((254|t_k| + M_k) / 2M_k), a 7-stage restoring
//                divider pipeline (the quotient is <= 127), one element a cycle
//
// The stats pass runs while the matrix unit works (the elementwise unit feeds it), so only the
// scalar job and the code pass sit between two matrix phases.
module norm_quant #(
  parameter int IW = 16  // element index width
) (
  input  logic                clk,
  input  logic                rst_n,
  input  logic                clear,
  input  logic                in_valid,
  input  logic                in_code,     // 1: code pass, 0: stats pass
  input  logic [IW-1:0]       in_idx,
  input  logic signed [31:0]  in_v,
  input  logic signed [16:0]  in_a,
  input  logic signed [16:0]  in_b [3],
  output logic                busy,        // an element is in flight or the scalar job runs
  input  logic                sc_start,
  input  logic [15:0]         sc_mant [2],
  output logic [47:0]         sc_m [2],
  output logic                code_valid,
  output logic [IW-1:0]       code_idx,
  output logic [7:0]          code [3]
);
  // ---- front: u, t (3 stages) ---------------------------------------------------------------
  logic               f1_v, f2_v, f3_v;
  logic               f1_c, f2_c, f3_c;
  logic [IW-1:0]      f1_i, f2_i, f3_i;
  logic signed [47:0] f1_p;
  logic signed [16:0] f1_b [3], f2_b [3];
  logic signed [31:0] f2_u;
  logic signed [47:0] f3_t [3];
  logic [63:0]        f3_sq;

  function automatic logic signed [31:0] norm_product(input logic signed [47:0] p);
    logic signed [80:0] r;
    r = mmf_pkg::round_shift({{33{p[47]}}, p}, 7'd12);
    norm_product = mmf_pkg::sat32(r);
  endfunction

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      f1_v <= 1'b0;
      f2_v <= 1'b0;
      f3_v <= 1'b0;
    end else begin
      f1_v <= in_valid;
      f2_v <= f1_v;
      f3_v <= f2_v;
    end
    f1_c <= in_code;
    f1_i <= in_idx;
    f1_p <= 48'(in_v) * 48'(in_a);
    f1_b <= in_b;
    f2_c <= f1_c;
    f2_i <= f1_i;
    f2_u <= norm_product(f1_p);
    f2_b <= f1_b;
    f3_c <= f2_c;
    f3_i <= f2_i;
    for (int k = 0; k < 3; k++) f3_t[k] <= 48'(f2_u) * 48'(f2_b[k]);
    f3_sq <= 64'(f2_u) * 64'(f2_u);
  end

  function automatic logic [47:0] abs48(input logic signed [47:0] v);
    abs48 = v[47] ? 48'(-v) : 48'(v);
  endfunction

  // ---- stats --------------------------------------------------------------------------------
  logic [79:0] ss_q;
  logic [47:0] max_q [3];
  always_ff @(posedge clk) begin
    if (!rst_n || clear) begin
      ss_q <= '0;
      for (int k = 0; k < 3; k++) max_q[k] <= '0;
    end else if (f3_v && !f3_c) begin
      ss_q <= ss_q + {16'd0, f3_sq};
      for (int k = 0; k < 3; k++)
        if (abs48(f3_t[k]) > max_q[k]) max_q[k] <= abs48(f3_t[k]);
    end
  end

  // ---- scalar job: isqrt, then two divisions ------------------------------------------------
  typedef enum logic [1:0] { SC_IDLE, SC_SQRT, SC_DIV } sc_state_t;
  sc_state_t   sc_q;
  logic [5:0]  sc_n;
  logic [79:0] sq_rem, sq_bit;
  logic [79:0] sq_root;    // holds root * 2^(steps left) during the job; < 2^40 at the end
  logic [79:0] dv_num [2];
  logic [40:0] dv_rem [2];
  logic [47:0] dv_quo [2];

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sc_q <= SC_IDLE;
    end else begin
      case (sc_q)
        SC_IDLE: if (sc_start) begin
          sc_q <= SC_SQRT;
          sc_n <= 6'd39;
          sq_rem <= ss_q;
          sq_bit <= 80'd1 << 78;
          sq_root <= '0;
          for (int k = 0; k < 2; k++) dv_num[k] <= (80'(sc_mant[k]) * 80'(max_q[k])) << 16;
        end
        SC_SQRT: begin
          // digit-by-digit square root, one result bit a step (linattn::fixed::isqrt)
          if (sq_rem >= sq_root + sq_bit) begin
            sq_rem <= sq_rem - (sq_root + sq_bit);
            sq_root <= (sq_root >> 1) + sq_bit;
          end else begin
            sq_root <= sq_root >> 1;
          end
          sq_bit <= sq_bit >> 2;
          if (sc_n == 6'd0) begin
            sc_q <= SC_DIV;
            sc_n <= 6'd47;
            for (int k = 0; k < 2; k++) begin
              dv_rem[k] <= {9'd0, dv_num[k][79:48]};
              dv_quo[k] <= '0;
            end
          end else sc_n <= sc_n - 6'd1;
        end
        SC_DIV: begin
          for (int k = 0; k < 2; k++) begin
            // restoring step: shift in the next dividend bit, subtract the divisor if it fits
            if ({dv_rem[k][39:0], dv_num[k][{1'b0, sc_n}]} >= sq_root[40:0]) begin
              dv_rem[k] <= {dv_rem[k][39:0], dv_num[k][{1'b0, sc_n}]} - sq_root[40:0];
              dv_quo[k][sc_n] <= 1'b1;
            end else begin
              dv_rem[k] <= {dv_rem[k][39:0], dv_num[k][{1'b0, sc_n}]};
            end
          end
          if (sc_n == 6'd0) sc_q <= SC_IDLE;
          else sc_n <= sc_n - 6'd1;
        end
        default: sc_q <= SC_IDLE;
      endcase
    end
  end
  // m = 0 when r = 0 (an all-zero vector: every code and every output is 0)
  assign sc_m[0] = (sq_root == '0) ? '0 : dv_quo[0];
  assign sc_m[1] = (sq_root == '0) ? '0 : dv_quo[1];

  // ---- code pass: 7-stage restoring divider per projection ----------------------------------
  localparam int NS = 7;
  logic            dq_v [NS+1];
  logic [IW-1:0]   dq_i [NS+1];
  logic            dq_s [NS+1][3];
  logic [55:0]     dq_r [NS+1][3];   // remainder: 254|t| + M < 2^55
  logic [55:0]     dq_d [NS+1][3];   // divisor 2M
  logic [6:0]      dq_q [NS+1][3];

  always_comb begin
    dq_v[0] = f3_v && f3_c;
    dq_i[0] = f3_i;
    for (int k = 0; k < 3; k++) begin
      dq_s[0][k] = f3_t[k][47];
      dq_r[0][k] = 56'd254 * {8'd0, abs48(f3_t[k])} + {8'd0, max_q[k]};
      dq_d[0][k] = {7'd0, max_q[k], 1'b0};
      dq_q[0][k] = '0;
    end
  end

  genvar s;
  generate
    for (s = 0; s < NS; s++) begin : g_div
      localparam int SH = NS - 1 - s;  // quotient bit decided by this stage
      always_ff @(posedge clk) begin
        if (!rst_n) dq_v[s+1] <= 1'b0;
        else dq_v[s+1] <= dq_v[s];
        dq_i[s+1] <= dq_i[s];
        for (int k = 0; k < 3; k++) begin
          dq_s[s+1][k] <= dq_s[s][k];
          dq_d[s+1][k] <= dq_d[s][k];
          if (dq_r[s][k] >= (dq_d[s][k] << SH)) begin
            dq_r[s+1][k] <= dq_r[s][k] - (dq_d[s][k] << SH);
            dq_q[s+1][k] <= dq_q[s][k] | 7'(1 << SH);
          end else begin
            dq_r[s+1][k] <= dq_r[s][k];
            dq_q[s+1][k] <= dq_q[s][k];
          end
        end
      end
    end
  endgenerate

  assign code_valid = dq_v[NS];
  assign code_idx = dq_i[NS];
  always_comb begin
    for (int k = 0; k < 3; k++) begin
      // M = 0: the divisor is 0, every step "fits" and q = 127; the rule says code 0
      if (dq_d[NS][k] == '0) code[k] = 8'd0;
      else code[k] = dq_s[NS][k] ? 8'(-{1'b0, dq_q[NS][k]}) : {1'b0, dq_q[NS][k]};
    end
  end

  logic div_busy;
  always_comb begin
    div_busy = 1'b0;
    for (int i = 1; i <= NS; i++) div_busy = div_busy | dq_v[i];
  end
  assign busy = in_valid || f1_v || f2_v || f3_v || div_busy || sc_q != SC_IDLE;
endmodule
