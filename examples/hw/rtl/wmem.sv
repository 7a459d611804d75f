// Weight memory model: the off-chip weight store (DDR/HBM in a real system) as a streaming
// port. A job streams `count` words from `base`; each word is one beat of the matrix unit,
// LANES 2-bit codes = LANES/4 bytes, and every accepted word adds LANES/4 to `bytes`, so a
// token's traffic can be compared with the packed weight size. stall_en drops valid on about a
// quarter of the cycles (a 16-bit LFSR) to exercise back-pressure.
module wmem #(
  parameter int WW = 32,      // word bits = 2 * LANES
  parameter int DEPTH = 1024,
  parameter int AW = 10
) (
  input  logic          clk,
  input  logic          rst_n,
  input  logic          wr_en,
  input  logic [AW-1:0] wr_addr,
  input  logic [WW-1:0] wr_data,
  input  logic          start,
  input  logic [AW-1:0] base,
  input  logic [AW-1:0] count,
  input  logic          stall_en,
  output logic          out_valid,
  input  logic          out_ready,
  output logic [WW-1:0] out_data,
  output logic [63:0]   bytes
);
  localparam int BPW = WW / 8;
  localparam logic [63:0] BYTES_PER_WORD = 64'(BPW);
  logic [WW-1:0] mem [DEPTH];
  logic [AW-1:0] ptr_q, left_q;
  logic [15:0]   lfsr_q;
  logic          stall;

  assign stall = stall_en && lfsr_q[1:0] == 2'b00;

  always_ff @(posedge clk) begin
    if (wr_en) mem[int'(wr_addr)] <= wr_data;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      out_valid <= 1'b0;
      left_q <= '0;
      bytes <= '0;
      lfsr_q <= 16'hACE1;
    end else begin
      lfsr_q <= {1'b0, lfsr_q[15:1]} ^ (lfsr_q[0] ? 16'hB400 : 16'h0000);
      if (out_valid && out_ready) bytes <= bytes + BYTES_PER_WORD;
      if (start) begin
        ptr_q <= base;
        left_q <= count;
        out_valid <= 1'b0;
      end else if (!out_valid || out_ready) begin
        if (left_q != '0 && !stall) begin
          out_data <= mem[int'(ptr_q)];
          out_valid <= 1'b1;
          ptr_q <= ptr_q + 1'b1;
          left_q <= left_q - 1'b1;
        end else begin
          out_valid <= 1'b0;
        end
      end
    end
  end
endmodule
