// Token-generation core of the MatMul-free LM: one HGRNBit layer (MLGRU + GLU) for one token per
// command, bit-exact with linattn::fixed::IntegerLayer::step. See examples/hw/README.md for the
// block diagram and the phase schedule.
//
// Host side (all ready/valid; the host port and commands are accepted while the core is idle):
//   cfg_*   writes weights, parameters, requantisation constants, the residual x, states h
//   cmd_*   runs layer cmd_layer on the residual x held in the core; done pulses at the end
//   rd_*    reads x (rd_sel 0), layer rd_layer's state h (1) or the last z (2), combinationally
//
// Phases of a layer (controller below); "stream" = one element a cycle through norm_quant:
//   STATS0  stream x: sum of squares and max|t| for i, f, g     SCALAR0  isqrt, m_f, m_i
//   CODES0  stream x: int8 codes for f, i, g                    MV_ATTN  3d rows (f, i, g interleaved)
//   SCALAR1 m_o     CODES1 z -> codes                           MV_O     d rows, x += o
//   SCALAR2 m_gate  CODES2 x -> codes                           MV_GATE  2I rows (gate, up interleaved)
//   SCALAR3 m_down  CODES3 z -> codes                           MV_DOWN  d rows of I, x += down
// The statistics of the next BitLinear's input accumulate while a matrix phase runs (the
// elementwise unit feeds norm_quant), so only SCALAR and CODES separate two matrix phases.
module mmf_core #(
  parameter int LANES = 16,
  parameter int D = 256,
  parameter int INTER = 768,
  parameter int LAYERS = 1,
  parameter int MUTANT = 0,
  parameter int DW = (2 * LANES > 32) ? 2 * LANES : 32,   // host port width
  parameter int IW = $clog2(INTER) + 1                    // element index width
) (
  input  logic                 clk,
  input  logic                 rst_n,
  input  logic                 cfg_valid,
  output logic                 cfg_ready,
  input  logic [2:0]           cfg_sel,
  input  logic [31:0]          cfg_addr,
  input  logic [DW-1:0]        cfg_data,
  input  logic                 cmd_valid,
  output logic                 cmd_ready,
  input  logic [7:0]           cmd_layer,
  output logic                 done,
  output logic                 busy,
  input  logic [1:0]           rd_sel,
  input  logic [7:0]           rd_layer,
  input  logic [IW-1:0]        rd_addr,
  output logic signed [31:0]   rd_data,
  input  logic                 wstall,
  output logic [63:0]          wbytes,
  output logic [31:0]          layer_cycles,
  output logic                 err_reserved
);
  import mmf_pkg::*;
  localparam cfg_t CFG = make_cfg(LANES, D, INTER, LAYERS);
  localparam int LB = $clog2(LANES);
  localparam int BD = D / LANES, BI = INTER / LANES;           // beats of a row
  localparam int WPL = (4 * D * D + 3 * D * INTER) / LANES;    // weight words of a layer
  localparam int WDEPTH = LAYERS * WPL;
  localparam int AW = $clog2(WDEPTH) + 1;
  localparam int NV = 10;                                      // parameter vectors a layer
  localparam int RW = $clog2(3 * INTER) + 1;                   // row counter

  // ---- storage --------------------------------------------------------------------------
  logic signed [31:0]    xbuf [D];
  logic signed [31:0]    zbuf [INTER];
  logic signed [31:0]    hmem [LAYERS * D];
  logic signed [16:0]    pmem [LAYERS * NV * INTER];
  logic [15:0]           rq_mant [256 * 8];   // [layer][k], k < 8
  logic [6:0]            rq_shift [256 * 8];
  logic [8*LANES-1:0]    cbuf [3][BI];

  // ---- host port ------------------------------------------------------------------------
  logic cfg_fire;
  assign cfg_ready = !busy;
  assign cfg_fire = cfg_valid && cfg_ready;
  logic [7:0]  cfg_layer;
  logic [3:0]  cfg_vec;
  logic [19:0] cfg_j;
  assign cfg_layer = cfg_addr[31:24];
  assign cfg_vec = cfg_addr[23:20];
  assign cfg_j = cfg_addr[19:0];

  always_ff @(posedge clk) begin
    if (cfg_fire) begin
      case (cfg_sel)
        SEL_PARAM: pmem[(32'(cfg_layer) * NV + 32'(cfg_vec)) * INTER + 32'(cfg_j)] <= cfg_data[16:0];
        SEL_RQ: begin
          rq_mant[{cfg_layer, 3'(cfg_j)}] <= cfg_data[15:0];
          rq_shift[{cfg_layer, 3'(cfg_j)}] <= cfg_data[22:16];
        end
        default: ;
      endcase
    end
  end

  // ---- units ------------------------------------------------------------------------------
  phase_t phase_q;
  logic [7:0] layer_q;

  // weight memory
  logic          wm_start, wm_valid, wm_ready;
  logic [AW-1:0] wm_base, wm_count;
  logic [2*LANES-1:0] wm_data;
  wmem #(.WW(2 * LANES), .DEPTH(WDEPTH), .AW(AW)) u_wmem (
    .clk, .rst_n,
    .wr_en(cfg_fire && cfg_sel == SEL_WEIGHT), .wr_addr(cfg_addr[AW-1:0]), .wr_data(cfg_data[2*LANES-1:0]),
    .start(wm_start), .base(wm_base), .count(wm_count), .stall_en(wstall),
    .out_valid(wm_valid), .out_ready(wm_ready), .out_data(wm_data), .bytes(wbytes));

  // matrix unit
  logic [8*LANES-1:0] mv_x;
  logic               mv_last, mv_out_valid, mv_out_ready;
  logic signed [31:0] mv_acc;
  logic               mv_feed;   // a matrix phase is feeding beats
  tmv_unit #(.LANES(LANES), .MUTANT(MUTANT)) u_tmv (
    .clk, .rst_n,
    .in_valid(wm_valid && mv_feed), .in_ready(wm_ready), .in_w(wm_data), .in_x(mv_x), .in_last(mv_last),
    .out_valid(mv_out_valid), .out_ready(mv_out_ready), .out_acc(mv_acc), .err_reserved(err_reserved));

  // norm / quantise unit
  logic               nq_clear, nq_valid, nq_code, nq_busy, nq_sc_start, nq_code_valid;
  logic [IW-1:0]      nq_idx, nq_code_idx;
  logic signed [31:0] nq_v;
  logic signed [16:0] nq_a, nq_b [3];
  logic [15:0]        nq_mant [2];
  logic [47:0]        nq_m [2];
  logic [7:0]         nq_codes [3];
  norm_quant #(.IW(IW)) u_nq (
    .clk, .rst_n, .clear(nq_clear), .in_valid(nq_valid), .in_code(nq_code), .in_idx(nq_idx), .in_v(nq_v),
    .in_a(nq_a), .in_b(nq_b), .busy(nq_busy), .sc_start(nq_sc_start), .sc_mant(nq_mant), .sc_m(nq_m),
    .code_valid(nq_code_valid), .code_idx(nq_code_idx), .code(nq_codes));

  // elementwise unit
  logic               ew_start, ew_busy, ew_h_we, ew_res_valid;
  ew_mode_t           ew_mode;
  logic [IW-1:0]      ew_n, ew_idx, ew_h_widx, ew_res_idx;
  logic [47:0]        ew_m1;
  logic [6:0]         ew_s0, ew_s1;
  logic signed [31:0] ew_h_wdata, ew_res_val;
  logic signed [16:0] ew_lb;
  ew_unit #(.IW(IW)) u_ew (
    .clk, .rst_n, .start(ew_start), .mode(ew_mode), .n_elems(ew_n), .m0(nq_m[0]), .s0(ew_s0), .m1(ew_m1),
    .s1(ew_s1), .busy(ew_busy), .acc_valid(mv_out_valid), .acc_ready(mv_out_ready), .acc(mv_acc),
    .idx(ew_idx), .x_j(xbuf[ew_idx[$clog2(D)-1:0]]), .h_j(hmem[32'(layer_q) * D + 32'(ew_idx)]), .lb_j(ew_lb),
    .h_we(ew_h_we), .h_widx(ew_h_widx), .h_wdata(ew_h_wdata), .res_valid(ew_res_valid), .res_idx(ew_res_idx),
    .res_val(ew_res_val));

  // ---- parameter reads ------------------------------------------------------------------
  function automatic logic signed [16:0] prm(input logic [7:0] layer, input int vec, input logic [IW-1:0] j);
    if (vec == V_ONE) prm = 17'sd4096;           // "no pre-norm": a = 1.0 in Q12
    else if (vec >= NV) prm = 17'sd0;
    else prm = pmem[(32'(layer) * NV + 32'(vec)) * INTER + 32'(j)];
  endfunction
  assign ew_lb = prm(layer_q, V_LB, ew_idx);

  // ---- controller -----------------------------------------------------------------------
  logic [IW-1:0] sj_q;       // streamed element
  logic          stream_q;   // streaming (STATS0, CODESx)
  logic          sc_issued_q;
  logic [RW-1:0] row_q;      // matrix phase: row and beat of the next beat fed
  logic [IW-1:0] beat_q;
  logic [1:0]    rsel_q;     // code buffer of the row (MV_ATTN: f, i, g)
  logic [31:0]   cyc_q;

  logic [IW-1:0] n_stream;   // elements of the vector streamed in this phase
  logic [RW-1:0] n_rows;
  logic [IW-1:0] n_beats;
  int            va, vb0, vb1, vb2;   // parameter vectors norm_quant reads in this phase
  logic          src_z;               // stream from z (else x)
  always_comb begin
    n_stream = IW'(D);
    n_rows = RW'(D);
    n_beats = IW'(BD);
    va = V_ONE;
    vb0 = 15;
    vb1 = 15;
    vb2 = 15;
    src_z = 1'b0;
    case (phase_q)
      PH_STATS0, PH_CODES0: begin va = V_ATTN_NORM; vb0 = V_F_NORM; vb1 = V_I_NORM; vb2 = V_G_NORM_IN; end
      PH_MV_ATTN, PH_CODES1: begin va = V_G_NORM; vb0 = V_O_NORM; src_z = 1'b1; end
      PH_MV_O, PH_CODES2: begin va = V_MLP_NORM; vb0 = V_GATE_NORM; end
      PH_MV_GATE, PH_CODES3: begin va = V_ONE; vb0 = V_DOWN_NORM; src_z = 1'b1; end
      default: ;
    endcase
    case (phase_q)
      PH_CODES3: n_stream = IW'(INTER);
      default: ;
    endcase
    case (phase_q)
      PH_MV_ATTN: n_rows = RW'(3 * D);
      PH_MV_GATE: n_rows = RW'(2 * INTER);
      PH_MV_DOWN: n_beats = IW'(BI);
      default: ;
    endcase
  end

  // norm_quant input: the streamer, or the elementwise results during a matrix phase
  logic in_mv;
  assign in_mv = phase_q == PH_MV_ATTN || phase_q == PH_MV_O || phase_q == PH_MV_GATE || phase_q == PH_MV_DOWN;
  always_comb begin
    if (in_mv) begin
      nq_valid = ew_res_valid && phase_q != PH_MV_DOWN;
      nq_idx = ew_res_idx;
      nq_v = ew_res_val;
    end else begin
      nq_valid = stream_q;
      nq_idx = sj_q;
      nq_v = src_z ? zbuf[int'(sj_q)] : xbuf[int'(sj_q)];
    end
    nq_code = phase_q == PH_CODES0 || phase_q == PH_CODES1 || phase_q == PH_CODES2 || phase_q == PH_CODES3;
    nq_a = prm(layer_q, va, nq_idx);
    nq_b[0] = prm(layer_q, vb0, nq_idx);
    nq_b[1] = prm(layer_q, vb1, nq_idx);
    nq_b[2] = prm(layer_q, vb2, nq_idx);
  end

  // requantisation constants of the scalar job and of the elementwise unit
  logic [10:0] rq_base;
  assign rq_base = {layer_q, 3'd0};
  always_comb begin
    nq_mant[0] = rq_mant[rq_base + 11'(RQ_F)];
    nq_mant[1] = rq_mant[rq_base + 11'(RQ_I)];
    ew_mode = EW_ATTN;
    ew_n = IW'(D);
    ew_s0 = rq_shift[rq_base + 11'(RQ_F)];
    ew_s1 = rq_shift[rq_base + 11'(RQ_I)];
    ew_m1 = nq_m[1];
    case (phase_q)
      PH_SCALAR1, PH_CODES1, PH_MV_O: begin
        nq_mant[0] = rq_mant[rq_base + 11'(RQ_O)];
        ew_mode = EW_O;
        ew_s0 = rq_shift[rq_base + 11'(RQ_O)];
      end
      PH_SCALAR2, PH_CODES2, PH_MV_GATE: begin
        nq_mant[0] = rq_mant[rq_base + 11'(RQ_GATE)];
        ew_mode = EW_GATE;
        ew_n = IW'(INTER);
        ew_s0 = rq_shift[rq_base + 11'(RQ_GATE)];
        ew_s1 = rq_shift[rq_base + 11'(RQ_GATE)];
        ew_m1 = nq_m[0];
      end
      PH_SCALAR3, PH_CODES3, PH_MV_DOWN: begin
        nq_mant[0] = rq_mant[rq_base + 11'(RQ_DOWN)];
        ew_mode = EW_DOWN;
        ew_s0 = rq_shift[rq_base + 11'(RQ_DOWN)];
      end
      default: ;
    endcase
  end

  // matrix feed: activation word of the current beat
  assign mv_feed = in_mv && row_q != n_rows;
  assign mv_x = cbuf[rsel_q][int'(beat_q)];
  assign mv_last = beat_q == n_beats - 1'b1;
  logic beat_fire;
  assign beat_fire = wm_valid && wm_ready && mv_feed;

  // phase transitions
  logic stream_done;
  assign stream_done = !stream_q && !nq_busy;
  assign cmd_ready = phase_q == PH_IDLE;
  assign busy = phase_q != PH_IDLE;

  function automatic logic [AW-1:0] words(input int rows, input int beats);
    words = AW'(rows * beats);
  endfunction

  always_comb begin
    nq_clear = 1'b0;
    nq_sc_start = 1'b0;
    wm_start = 1'b0;
    ew_start = 1'b0;
    wm_base = AW'(32'(layer_q) * WPL);
    wm_count = '0;
    case (phase_q)
      PH_SCALAR0, PH_SCALAR1, PH_SCALAR2, PH_SCALAR3: nq_sc_start = !sc_issued_q;
      default: ;
    endcase
    // entering a matrix phase: start the weight stream and the elementwise unit, clear the stats
    if (stream_done && (phase_q == PH_CODES0 || phase_q == PH_CODES1 || phase_q == PH_CODES2 ||
                        phase_q == PH_CODES3)) begin
      wm_start = 1'b1;
      ew_start = 1'b1;
      nq_clear = 1'b1;
      case (phase_q)
        PH_CODES0: wm_count = words(3 * D, BD);
        PH_CODES1: begin wm_base = wm_base + words(3 * D, BD); wm_count = words(D, BD); end
        PH_CODES2: begin wm_base = wm_base + words(4 * D, BD); wm_count = words(2 * INTER, BD); end
        default: begin wm_base = wm_base + words(4 * D, BD) + words(2 * INTER, BD); wm_count = words(D, BI); end
      endcase
    end
    if (phase_q == PH_IDLE && cmd_valid) nq_clear = 1'b1;
  end

  always_ff @(posedge clk) begin
    done <= 1'b0;
    if (!rst_n) begin
      phase_q <= PH_IDLE;
      stream_q <= 1'b0;
      sc_issued_q <= 1'b0;
      layer_cycles <= '0;
      done <= 1'b0;
    end else begin
      cyc_q <= cyc_q + 1;
      // streamer
      if (stream_q) begin
        if (sj_q == n_stream - 1'b1) stream_q <= 1'b0;
        sj_q <= sj_q + 1'b1;
      end
      // matrix feed counters
      if (beat_fire) begin
        if (mv_last) begin
          beat_q <= '0;
          row_q <= row_q + 1'b1;
          rsel_q <= (phase_q == PH_MV_ATTN && rsel_q != 2'd2) ? rsel_q + 2'd1 : 2'd0;
        end else beat_q <= beat_q + 1'b1;
      end
      case (phase_q)
        PH_IDLE: if (cmd_valid) begin
          layer_q <= cmd_layer;
          cyc_q <= 32'd1;
          phase_q <= PH_STATS0;
          stream_q <= 1'b1;
          sj_q <= '0;
        end
        PH_STATS0, PH_CODES0, PH_CODES1, PH_CODES2, PH_CODES3: if (stream_done) begin
          phase_q <= phase_t'(phase_q + 1'b1);
          sc_issued_q <= 1'b0;
          row_q <= '0;
          beat_q <= '0;
          rsel_q <= '0;
        end
        PH_SCALAR0, PH_SCALAR1, PH_SCALAR2, PH_SCALAR3: begin
          sc_issued_q <= 1'b1;
          if (sc_issued_q && !nq_busy) begin
            phase_q <= phase_t'(phase_q + 1'b1);
            stream_q <= 1'b1;
            sj_q <= '0;
          end
        end
        PH_MV_ATTN, PH_MV_O, PH_MV_GATE: if (!ew_busy && !nq_busy) begin
          phase_q <= phase_t'(phase_q + 1'b1);
          sc_issued_q <= 1'b0;
        end
        PH_MV_DOWN: if (!ew_busy) begin
          phase_q <= PH_IDLE;
          done <= 1'b1;
          layer_cycles <= cyc_q;
        end
        default: phase_q <= PH_IDLE;
      endcase
    end
  end

  // ---- buffer writes ----------------------------------------------------------------------
  always_ff @(posedge clk) begin
    if (cfg_fire && cfg_sel == SEL_X) xbuf[cfg_j[$clog2(D)-1:0]] <= cfg_data[31:0];
    if (cfg_fire && cfg_sel == SEL_H) hmem[32'(cfg_layer) * D + 32'(cfg_j)] <= cfg_data[31:0];
    if (ew_h_we) hmem[32'(layer_q) * D + 32'(ew_h_widx)] <= ew_h_wdata;
    if (ew_res_valid) begin
      if (phase_q == PH_MV_ATTN || phase_q == PH_MV_GATE) zbuf[int'(ew_res_idx)] <= ew_res_val;
      else xbuf[ew_res_idx[$clog2(D)-1:0]] <= ew_res_val;
    end
    if (nq_code_valid)
      for (int k = 0; k < 3; k++)
        if (k == 0 || phase_q == PH_CODES0)
          cbuf[k][int'(nq_code_idx[IW-1:LB])][8*nq_code_idx[LB-1:0] +: 8] <= nq_codes[k];
  end

  // ---- host reads ---------------------------------------------------------------------------
  always_comb begin
    case (rd_sel)
      2'd1: rd_data = hmem[32'(rd_layer) * D + 32'(rd_addr)];
      2'd2: rd_data = zbuf[int'(rd_addr)];
      default: rd_data = xbuf[int'(rd_addr)];
    endcase
  end

  // the configuration struct is the single source of the sizes above
  initial begin
    if (CFG.d % CFG.lanes != 0 || CFG.inter % CFG.lanes != 0 || CFG.inter < CFG.d || CFG.lanes < 4)
      $error("mmf_core: d and inter must be multiples of lanes, inter >= d, lanes >= 4");
  end
endmodule
