// Elementwise unit: turns the matrix unit's row results into the next vector, one element at a
// time, with the rules of linattn::fixed::IntegerLayer::step (include/linattn/fixed/mmf_integer.hpp).
//
//   EW_ATTN  rows f_j, i_j, g_j:  f = requant(f), i = requant(i), fs = sigmoid(f),
//            fl = lb + (1 - lb) fs, h = fl h + silu(i)(1 - fl), z = g * silu(h) >> 8
//   EW_O     row o_j:              x_j = sat32(x_j + requant(o))
//   EW_GATE  rows gate_j, up_j:    z = silu(requant(gate)) * requant(up) >> 16
//   EW_DOWN  row down_j:           x_j = sat32(x_j + requant(down))
//
// A small state machine with at most two 32x48-bit products a step: an element takes 2 to 8
// cycles, well inside the d/M >= 4 cycles a row takes in the configurations built here, so
// results stream out while the matrix unit works (acc_ready throttles it otherwise).
module ew_unit #(
  parameter int IW = 16
) (
  input  logic                clk,
  input  logic                rst_n,
  input  logic                start,
  input  mmf_pkg::ew_mode_t   mode,
  input  logic [IW-1:0]       n_elems,
  input  logic [47:0]         m0,
  input  logic [6:0]          s0,
  input  logic [47:0]         m1,
  input  logic [6:0]          s1,
  output logic                busy,
  input  logic                acc_valid,
  output logic                acc_ready,
  input  logic signed [31:0]  acc,
  output logic [IW-1:0]       idx,       // element being worked on (for the reads below)
  input  logic signed [31:0]  x_j,
  input  logic signed [31:0]  h_j,
  input  logic signed [16:0]  lb_j,
  output logic                h_we,
  output logic [IW-1:0]       h_widx,
  output logic signed [31:0]  h_wdata,
  output logic                res_valid,
  output logic [IW-1:0]       res_idx,
  output logic signed [31:0]  res_val
);
  typedef enum logic [3:0] { S_IDLE, S_COLLECT, S_REQ, S_A2, S_A3, S_A4, S_A5, S_A6, S_A7, S_ADD, S_G2, S_G3 } st_t;
  st_t                st_q;
  mmf_pkg::ew_mode_t  mode_q;
  logic [IW-1:0]      n_q, j_q;
  logic [1:0]         slot_q;
  logic signed [31:0] a0_q, a1_q, a2_q;   // collected row results
  logic signed [31:0] r0_q, r1_q;         // requantised (Q16)
  logic signed [31:0] p_q, q_q;           // intermediates
  logic signed [80:0] hf_q;

  localparam logic signed [31:0] ONE15 = 32'sd32768;

  function automatic logic signed [80:0] ext(input logic signed [31:0] v);
    ext = {{49{v[31]}}, v};
  endfunction

  logic [1:0] last_slot;
  always_comb begin
    case (mode_q)
      mmf_pkg::EW_ATTN: last_slot = 2'd2;
      mmf_pkg::EW_GATE: last_slot = 2'd1;
      default:          last_slot = 2'd0;
    endcase
  end

  assign busy = start || st_q != S_IDLE;
  assign acc_ready = st_q == S_COLLECT;
  assign idx = j_q;

  // fl = lb + round_shift((1 - lb) * fs, 15): the forget gate with its lower bound (Q15)
  /* verilator lint_off UNUSEDSIGNAL */
  logic signed [80:0] t81;  // < 2^15: only the low bits are used
  /* verilator lint_on UNUSEDSIGNAL */
  logic signed [31:0] fl;
  always_comb begin
    t81 = mmf_pkg::round_shift(ext(ONE15 - 32'(lb_j)) * ext(p_q), 7'd15);
    fl = 32'(lb_j) + t81[31:0];
  end

  always_ff @(posedge clk) begin
    h_we <= 1'b0;
    res_valid <= 1'b0;
    if (!rst_n) begin
      st_q <= S_IDLE;
      h_we <= 1'b0;
      res_valid <= 1'b0;
    end else begin
      case (st_q)
        S_IDLE: if (start) begin
          st_q <= S_COLLECT;
          mode_q <= mode;
          n_q <= n_elems;
          j_q <= '0;
          slot_q <= '0;
        end
        S_COLLECT: if (acc_valid) begin
          case (slot_q)
            2'd0: a0_q <= acc;
            2'd1: a1_q <= acc;
            default: a2_q <= acc;
          endcase
          if (slot_q == last_slot) begin
            slot_q <= '0;
            st_q <= S_REQ;
          end else slot_q <= slot_q + 2'd1;
        end
        S_REQ: begin
          r0_q <= mmf_pkg::requant(a0_q, m0, s0);
          r1_q <= mmf_pkg::requant(a1_q, m1, s1);
          case (mode_q)
            mmf_pkg::EW_ATTN: st_q <= S_A2;
            mmf_pkg::EW_GATE: st_q <= S_G2;
            default:          st_q <= S_ADD;
          endcase
        end
        // ---- MLGRU ----
        S_A2: begin
          p_q <= mmf_pkg::sigmoid_q15(r0_q);  // fs
          q_q <= mmf_pkg::silu_q16(r1_q);     // silu(i)
          st_q <= S_A3;
        end
        S_A3: begin
          p_q <= fl;                          // forget gate with its lower bound, Q15
          st_q <= S_A4;
        end
        S_A4: begin
          q_q <= mmf_pkg::sat32(mmf_pkg::round_shift(ext(q_q) * ext(ONE15 - p_q), 7'd15));  // ii
          hf_q <= mmf_pkg::round_shift(ext(p_q) * ext(h_j), 7'd15);
          st_q <= S_A5;
        end
        S_A5: begin
          h_wdata <= mmf_pkg::sat32(hf_q + ext(q_q));
          h_we <= 1'b1;
          h_widx <= j_q;
          p_q <= mmf_pkg::sat32(hf_q + ext(q_q));
          st_q <= S_A6;
        end
        S_A6: begin
          p_q <= mmf_pkg::silu_q16(p_q);
          st_q <= S_A7;
        end
        S_A7: begin
          res_val <= mmf_pkg::sat32(mmf_pkg::round_shift(ext(a2_q) * ext(p_q), 7'd8));
          res_valid <= 1'b1;
          st_q <= S_COLLECT;
        end
        // ---- residual add (O, DOWN) ----
        S_ADD: begin
          res_val <= mmf_pkg::sat32(ext(x_j) + ext(r0_q));
          res_valid <= 1'b1;
          st_q <= S_COLLECT;
        end
        // ---- GLU ----
        S_G2: begin
          p_q <= mmf_pkg::silu_q16(r0_q);
          st_q <= S_G3;
        end
        S_G3: begin
          res_val <= mmf_pkg::sat32(mmf_pkg::round_shift(ext(p_q) * ext(r1_q), 7'd16));
          res_valid <= 1'b1;
          st_q <= S_COLLECT;
        end
        default: st_q <= S_IDLE;
      endcase
      // every path that emits a result moves on to the next element
      if ((st_q == S_A7 || st_q == S_ADD || st_q == S_G3)) begin
        res_idx <= j_q;
        if (j_q + 1'b1 == n_q) st_q <= S_IDLE;
        j_q <= j_q + 1'b1;
      end
    end
  end
endmodule
