// wavecore_dram_model: simulation-only AXI4 subordinate over a large memory, for fast system simulation.
//
// Hand-written Verilog (not Amaranth) because it needs what Amaranth cannot express: $value$plusargs for the
// seed and the backdoor file names, and $readmemh/$writememh for the backdoor. It is plain Verilog-2005 plus
// those system tasks and runs unchanged on Icarus Verilog and Verilator. Python wraps it as
// wavecore.hdl.core.dram_model.DramModel (an Amaranth Instance) and loads/dumps it through
// wavecore.verif.host.BackdoorMemory, so Python does nothing per cycle while a design runs.
//
// AXI4 (ARM IHI 0022): AW/W/B/AR/R with IDs; FIXED and INCR (1-256 beats) bursts; narrow transfers
// (AxSIZE below the bus width: the address steps by 2**AxSIZE, reads return the whole bus word, writes obey
// WSTRB). Up to OUTSTANDING read and OUTSTANDING write bursts are accepted; reads and writes are each served
// in order of acceptance (legal for any mix of IDs). A beat outside SIZE_BYTES is answered DECERR and a WRAP
// or reserved burst SLVERR (reads return 0, writes are dropped; the DMA and the core only issue INCR).
// WREADY waits for the burst's AW (the AXI rules allow a subordinate to). A WLAST that disagrees with AWLEN
// stops the simulation with $fatal (a manager bug).
// An INCR burst that crosses a 4 KiB boundary (ARM IHI 0022 A3.4.1) stops the simulation with $fatal naming
// the channel, address and length: the manager is wrong, and no memory model should quietly serve it.
//
// Randomness (reproducible: the same seed and the same manager behaviour give the same cycle-by-cycle
// trace): six xorshift32 generators, seeded from the seed, advance every cycle. Each cycle AWREADY, WREADY
// and ARREADY are withheld, and a pending R beat or B response is delayed, with probability STALL/256
// each; every accepted burst draws a latency uniformly from LATENCY_MIN..LATENCY_MAX cycles (first R beat
// no earlier than 1 + latency cycles after its AR handshake, B no earlier than 1 + latency cycles after the
// last W beat). Latencies of outstanding bursts overlap, as in a pipelined DRAM controller.
//
// Plusargs (each overrides the parameter of the same meaning):
//   +dram_seed=N  +dram_stall=N (0..255)  +dram_latency_min=N  +dram_latency_max=N
//   +dram_init=FILE  $readmemh image loaded at time 0 (for a simulation without any Python)
//   +dram_load=FILE  $readmemh image loaded at every backdoor_load pulse
//   +dram_dump=FILE  $writememh target of every backdoor_dump pulse
// Backdoor file format: $readmemh text, one bus word per line in hex (byte 0 of a word in its bits 7:0),
// "@hex" lines setting the word address, so a sparse image only lists the words it sets. A dump writes the
// words from backdoor_first to backdoor_last (byte addresses, inclusive; rounded to whole words).
// Memory starts all zero; backdoor_load overwrites only the words the file lists.
`timescale 1ns/1ps
module wavecore_dram_model #(
    parameter ADDRESS_WIDTH = 32,
    parameter DATA_WIDTH = 64,
    parameter ID_WIDTH = 4,
    parameter SIZE_BYTES = 1048576,
    parameter OUTSTANDING = 16,
    parameter SEED = 1,
    parameter STALL = 0,
    parameter LATENCY_MIN = 0,
    parameter LATENCY_MAX = 0
) (
    input clk,
    input rst,
    input [ID_WIDTH-1:0] s_axi_awid,
    input [ADDRESS_WIDTH-1:0] s_axi_awaddr,
    input [7:0] s_axi_awlen,
    input [2:0] s_axi_awsize,
    input [1:0] s_axi_awburst,
    input s_axi_awvalid,
    output reg s_axi_awready,
    input [DATA_WIDTH-1:0] s_axi_wdata,
    input [DATA_WIDTH/8-1:0] s_axi_wstrb,
    input s_axi_wlast,
    input s_axi_wvalid,
    output reg s_axi_wready,
    output reg [ID_WIDTH-1:0] s_axi_bid,
    output reg [1:0] s_axi_bresp,
    output reg s_axi_bvalid,
    input s_axi_bready,
    input [ID_WIDTH-1:0] s_axi_arid,
    input [ADDRESS_WIDTH-1:0] s_axi_araddr,
    input [7:0] s_axi_arlen,
    input [2:0] s_axi_arsize,
    input [1:0] s_axi_arburst,
    input s_axi_arvalid,
    output reg s_axi_arready,
    output reg [ID_WIDTH-1:0] s_axi_rid,
    output reg [DATA_WIDTH-1:0] s_axi_rdata,
    output reg [1:0] s_axi_rresp,
    output reg s_axi_rlast,
    output reg s_axi_rvalid,
    input s_axi_rready,
    input backdoor_load,
    input backdoor_dump,
    input [ADDRESS_WIDTH-1:0] backdoor_first,
    input [ADDRESS_WIDTH-1:0] backdoor_last
);
    localparam BYTES = DATA_WIDTH / 8;
    localparam WORD_SHIFT = $clog2(BYTES);
    localparam WORDS = SIZE_BYTES / BYTES;
    localparam [1:0] FIXED = 2'd0, INCR = 2'd1, OKAY = 2'd0, SLVERR = 2'd2, DECERR = 2'd3;

    reg [DATA_WIDTH-1:0] memory [0:WORDS-1];

    // Run-time settings (parameters, overridden by plusargs).
    integer seed, stall, latency_min, latency_max;
    reg [8*1024-1:0] init_file, load_file, dump_file;
    reg have_load, have_dump;

    // Accepted bursts: read queue, write-address queue, B queue (ring buffers).
    reg [ADDRESS_WIDTH-1:0] ar_address [0:OUTSTANDING-1];
    reg [7:0] ar_length [0:OUTSTANDING-1];
    reg [2:0] ar_size [0:OUTSTANDING-1];
    reg [1:0] ar_burst [0:OUTSTANDING-1];
    reg [ID_WIDTH-1:0] ar_id [0:OUTSTANDING-1];
    reg [63:0] ar_time [0:OUTSTANDING-1];
    reg [ADDRESS_WIDTH-1:0] aw_address [0:OUTSTANDING-1];
    reg [7:0] aw_length [0:OUTSTANDING-1];
    reg [2:0] aw_size [0:OUTSTANDING-1];
    reg [1:0] aw_burst [0:OUTSTANDING-1];
    reg [ID_WIDTH-1:0] aw_id [0:OUTSTANDING-1];
    reg [ID_WIDTH-1:0] b_id [0:OUTSTANDING-1];
    reg [1:0] b_resp [0:OUTSTANDING-1];
    reg [63:0] b_time [0:OUTSTANDING-1];
    integer ar_head, ar_tail, ar_count, aw_head, aw_tail, aw_count, b_head, b_tail, b_count;

    // Beat state of the burst at the head of the read and of the write queue.
    reg r_loaded, w_loaded;
    reg [ADDRESS_WIDTH-1:0] r_address, w_address;
    integer r_left, w_left;
    reg [1:0] w_resp;

    reg [63:0] cycle;
    reg [31:0] random_ar, random_r, random_aw, random_w, random_b, random_latency;
    reg next_rvalid, next_bvalid;
    integer lane, index;

    function [31:0] xorshift;
        input [31:0] state;
        reg [31:0] value;
        begin
            value = state ^ (state << 13);
            value = value ^ (value >> 17);
            xorshift = value ^ (value << 5);
        end
    endfunction

    function [31:0] seeded;  // a nonzero start state per generator
        input [31:0] base;
        input [31:0] stream;
        reg [31:0] value;
        begin
            value = xorshift(xorshift(base * 32'h9E3779B1 + stream * 32'h85EBCA77 + 32'h1234567));
            seeded = (value == 0) ? 32'h1 : value;
        end
    endfunction

    function stalled;  // true with probability stall/256
        input [31:0] state;
        begin
            stalled = ({24'd0, state[15:8]} < stall);
        end
    endfunction

    function [ADDRESS_WIDTH-1:0] next_address;  // the next beat's address of a FIXED or INCR burst
        input [ADDRESS_WIDTH-1:0] address;
        input [2:0] size;
        input [1:0] burst;
        begin
            if (burst == FIXED) next_address = address;
            else next_address = ((address >> size) << size) + (1 << size);
        end
    endfunction

    function [1:0] beat_response;
        input [ADDRESS_WIDTH-1:0] address;
        input [1:0] burst;
        begin
            if (burst != FIXED && burst != INCR) beat_response = SLVERR;
            else if (({32'd0, address} >> WORD_SHIFT) >= WORDS) beat_response = DECERR;
            else beat_response = OKAY;
        end
    endfunction

    function crosses_page;  // an INCR burst whose (size-aligned) start plus its bytes passes a 4 KiB boundary
        input [ADDRESS_WIDTH-1:0] address;
        input [7:0] length;
        input [2:0] size;
        input [1:0] burst;
        reg [31:0] start, bytes;
        begin
            start = {20'd0, address[11:0]} & ~((32'd1 << size) - 1);
            bytes = ({24'd0, length} + 1) << size;
            crosses_page = (burst == INCR) && (start + bytes > 4096);
        end
    endfunction

    function [63:0] draw_latency;
        input [31:0] state;
        begin
            if (latency_max > latency_min)
                draw_latency = latency_min + ({32'd0, state} % (latency_max - latency_min + 1));
            else
                draw_latency = latency_min;
        end
    endfunction

    initial begin
        seed = SEED;
        stall = STALL;
        latency_min = LATENCY_MIN;
        latency_max = LATENCY_MAX;
        if ($value$plusargs("dram_seed=%d", seed)) begin end
        if ($value$plusargs("dram_stall=%d", stall)) begin end
        if ($value$plusargs("dram_latency_min=%d", latency_min)) begin end
        if ($value$plusargs("dram_latency_max=%d", latency_max)) begin end
        if (latency_max < latency_min) latency_max = latency_min;
        have_load = $value$plusargs("dram_load=%s", load_file);
        have_dump = $value$plusargs("dram_dump=%s", dump_file);
        for (index = 0; index < WORDS; index = index + 1) memory[index] = {DATA_WIDTH{1'b0}};
        if ($value$plusargs("dram_init=%s", init_file)) $readmemh(init_file, memory);
    end

    always @(posedge clk) begin
        if (rst) begin
            ar_head = 0; ar_tail = 0; ar_count = 0;
            aw_head = 0; aw_tail = 0; aw_count = 0;
            b_head = 0; b_tail = 0; b_count = 0;
            r_loaded = 0; w_loaded = 0; r_left = 0; w_left = 0; w_resp = OKAY;
            cycle = 0;
            random_ar = seeded(seed, 1); random_r = seeded(seed, 2); random_aw = seeded(seed, 3);
            random_w = seeded(seed, 4); random_b = seeded(seed, 5); random_latency = seeded(seed, 6);
            s_axi_awready <= 1'b0; s_axi_wready <= 1'b0; s_axi_arready <= 1'b0;
            s_axi_rvalid <= 1'b0; s_axi_rlast <= 1'b0; s_axi_rdata <= {DATA_WIDTH{1'b0}};
            s_axi_rresp <= OKAY; s_axi_rid <= {ID_WIDTH{1'b0}};
            s_axi_bvalid <= 1'b0; s_axi_bresp <= OKAY; s_axi_bid <= {ID_WIDTH{1'b0}};
        end else begin
            cycle = cycle + 1;
            // ---- read address ----
            if (s_axi_arvalid && s_axi_arready) begin
                if (crosses_page(s_axi_araddr, s_axi_arlen, s_axi_arsize, s_axi_arburst))
                    $fatal(1, "wavecore_dram_model: AR burst at 0x%0h of %0d beats crosses a 4 KiB boundary",
                           s_axi_araddr, s_axi_arlen + 1);
                ar_address[ar_tail] = s_axi_araddr;
                ar_length[ar_tail] = s_axi_arlen;
                ar_size[ar_tail] = s_axi_arsize;
                ar_burst[ar_tail] = s_axi_arburst;
                ar_id[ar_tail] = s_axi_arid;
                ar_time[ar_tail] = cycle + draw_latency(random_latency);
                random_latency = xorshift(random_latency);
                ar_tail = (ar_tail + 1) % OUTSTANDING;
                ar_count = ar_count + 1;
            end
            // ---- read data ----
            next_rvalid = s_axi_rvalid;
            if (s_axi_rvalid && s_axi_rready) begin
                next_rvalid = 1'b0;
                r_left = r_left - 1;
                if (r_left == 0) begin
                    r_loaded = 0;
                    ar_head = (ar_head + 1) % OUTSTANDING;
                    ar_count = ar_count - 1;
                end else begin
                    r_address = next_address(r_address, ar_size[ar_head], ar_burst[ar_head]);
                end
            end
            if (!next_rvalid && ar_count > 0 && ar_time[ar_head] <= cycle && !stalled(random_r)) begin
                if (!r_loaded) begin
                    r_loaded = 1;
                    r_address = ar_address[ar_head];
                    r_left = ar_length[ar_head] + 1;
                end
                next_rvalid = 1'b1;
                s_axi_rid <= ar_id[ar_head];
                s_axi_rlast <= (r_left == 1);
                s_axi_rresp <= beat_response(r_address, ar_burst[ar_head]);
                if (beat_response(r_address, ar_burst[ar_head]) == OKAY)
                    s_axi_rdata <= memory[r_address >> WORD_SHIFT];
                else
                    s_axi_rdata <= {DATA_WIDTH{1'b0}};
            end
            s_axi_rvalid <= next_rvalid;
            // ---- write address ----
            if (s_axi_awvalid && s_axi_awready) begin
                if (crosses_page(s_axi_awaddr, s_axi_awlen, s_axi_awsize, s_axi_awburst))
                    $fatal(1, "wavecore_dram_model: AW burst at 0x%0h of %0d beats crosses a 4 KiB boundary",
                           s_axi_awaddr, s_axi_awlen + 1);
                aw_address[aw_tail] = s_axi_awaddr;
                aw_length[aw_tail] = s_axi_awlen;
                aw_size[aw_tail] = s_axi_awsize;
                aw_burst[aw_tail] = s_axi_awburst;
                aw_id[aw_tail] = s_axi_awid;
                aw_tail = (aw_tail + 1) % OUTSTANDING;
                aw_count = aw_count + 1;
            end
            // ---- write data ----
            if (s_axi_wvalid && s_axi_wready) begin
                if (!w_loaded) begin
                    w_loaded = 1;
                    w_address = aw_address[aw_head];
                    w_left = aw_length[aw_head] + 1;
                    w_resp = OKAY;
                end
                if (beat_response(w_address, aw_burst[aw_head]) == OKAY) begin
                    for (lane = 0; lane < BYTES; lane = lane + 1)
                        if (s_axi_wstrb[lane])
                            memory[w_address >> WORD_SHIFT][8*lane +: 8] = s_axi_wdata[8*lane +: 8];
                end else if (w_resp == OKAY) begin
                    w_resp = beat_response(w_address, aw_burst[aw_head]);
                end
                if (s_axi_wlast != (w_left == 1))
                    $fatal(1, "wavecore_dram_model: WLAST=%0d with %0d beats left in the burst", s_axi_wlast, w_left);
                w_left = w_left - 1;
                if (w_left == 0) begin
                    b_id[b_tail] = aw_id[aw_head];
                    b_resp[b_tail] = w_resp;
                    b_time[b_tail] = cycle + draw_latency(random_latency);
                    random_latency = xorshift(random_latency);
                    b_tail = (b_tail + 1) % OUTSTANDING;
                    b_count = b_count + 1;
                    w_loaded = 0;
                    aw_head = (aw_head + 1) % OUTSTANDING;
                    aw_count = aw_count - 1;
                end else begin
                    w_address = next_address(w_address, aw_size[aw_head], aw_burst[aw_head]);
                end
            end
            // ---- write response ----
            next_bvalid = s_axi_bvalid;
            if (s_axi_bvalid && s_axi_bready) begin
                next_bvalid = 1'b0;
                b_head = (b_head + 1) % OUTSTANDING;
                b_count = b_count - 1;
            end
            if (!next_bvalid && b_count > 0 && b_time[b_head] <= cycle && !stalled(random_b)) begin
                next_bvalid = 1'b1;
                s_axi_bid <= b_id[b_head];
                s_axi_bresp <= b_resp[b_head];
            end
            s_axi_bvalid <= next_bvalid;
            // ---- readiness for the next cycle ----
            s_axi_arready <= (ar_count < OUTSTANDING) && !stalled(random_ar);
            s_axi_awready <= (aw_count < OUTSTANDING) && !stalled(random_aw);
            s_axi_wready <= (aw_count > 0) && (b_count < OUTSTANDING) && !stalled(random_w);
            random_ar = xorshift(random_ar); random_r = xorshift(random_r); random_aw = xorshift(random_aw);
            random_w = xorshift(random_w); random_b = xorshift(random_b);
            // ---- backdoor ----
            if (backdoor_load) begin
                if (!have_load) $fatal(1, "wavecore_dram_model: backdoor_load without +dram_load=FILE");
                $readmemh(load_file, memory);
            end
            if (backdoor_dump) begin
                if (!have_dump) $fatal(1, "wavecore_dram_model: backdoor_dump without +dram_dump=FILE");
                $writememh(dump_file, memory, backdoor_first >> WORD_SHIFT, backdoor_last >> WORD_SHIFT);
            end
        end
    end
endmodule
