// Synthesis-only wrapper of tmv_unit for place and route on an iCE40 (nextpnr has no
// out-of-context mode and the package has ~200 pins; HW-NOTES §6.10): weights and codes enter
// through two serial shift registers, the row result leaves as its parity. The shift registers
// add 10 LCs a lane to the placed design; the unit's own figures come from synthesising
// tmv_unit alone.
module tmv_wrap #(
  parameter int LANES = 64
) (
  input  logic clk,
  input  logic rst_n,
  input  logic sin_w,
  input  logic sin_x,
  input  logic in_valid,
  input  logic in_last,
  input  logic out_ready,
  output logic in_ready,
  output logic out_valid,
  output logic out_parity,
  output logic err_reserved
);
  logic [2*LANES-1:0] w_q;
  logic [8*LANES-1:0] x_q;
  logic               v_q, l_q, r_q;
  logic signed [31:0] acc;
  always_ff @(posedge clk) begin
    w_q <= {w_q[2*LANES-2:0], sin_w};
    x_q <= {x_q[8*LANES-2:0], sin_x};
    v_q <= in_valid;
    l_q <= in_last;
    r_q <= out_ready;
    out_parity <= ^acc;
  end
  tmv_unit #(.LANES(LANES)) u_tmv (
    .clk, .rst_n, .in_valid(v_q), .in_ready, .in_w(w_q), .in_x(x_q), .in_last(l_q), .out_valid,
    .out_ready(r_q), .out_acc(acc), .err_reserved);
endmodule
