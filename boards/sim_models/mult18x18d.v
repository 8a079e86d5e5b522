// Simulation model of the Lattice ECP5 sysDSP primitive MULT18X18D (18x18 multiplier).
//
// Written from Lattice FPGA-TN-02205, "ECP5 and ECP5-5G sysDSP Usage Guide" (MULT18X18D: ports, attributes,
// register stages), because Yosys ships only a blackbox of this cell (share/lattice/cells_bb_ecp5.v). Ports
// and parameter defaults are those of that blackbox, so a Yosys netlist binds to this model unchanged.
//
// Modelled fully:
//   * P[35:0] = A * B, each operand sign-extended when SIGNEDA / SIGNEDB is 1, zero-extended otherwise;
//     SIGNEDP = SIGNEDA | SIGNEDB (the product is signed when either operand is).
//   * Register stages REG_INPUTA (A, SIGNEDA), REG_INPUTB (B, SIGNEDB), REG_INPUTC (C), REG_PIPELINE (after
//     the multiplier) and REG_OUTPUT (P, SIGNEDP), each "NONE" (combinational) or clocked by CLK0..CLK3 on
//     the rising edge, enabled by its *_CE (CE0..CE3) and cleared by its *_RST (RST0..RST3).
//   * RESETMODE "SYNC" (the reset acts at the clock edge, whatever the clock enable) or "ASYNC" (the reset
//     clears the register at once and holds it clear while high).
//   * ROA / ROB / ROC: A, B and C after their input registers.
//   Registers start at zero (the state after configuration).
// Refused (a $fatal at time 0 naming the parameter, or at the first cycle that uses the input):
//   MULT_BYPASS "ENABLED", CAS_MATCH_REG "TRUE", HIGHSPEED_CLK other than "NONE", CLKn_DIV other than
//   "ENABLED", SOURCEB_MODE other than "B_SHIFT", any register clock / CE / RST name outside the lists above,
//   and SOURCEA / SOURCEB = 1 (the cascade / shift inputs SRIA, SRIB; SROA and SROB are driven 0).
// Not modelled: the global set/reset (GSR is accepted with either value; no GSR cell is simulated).

`timescale 1ns / 1ps

module MULT18X18D(
    A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15, B14, B13, B12,
    B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5,
    C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2,
    RST1, RST0, SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5,
    SRIA4, SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9,
    SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0, SROA17, SROA16, SROA15, SROA14, SROA13, SROA12,
    SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0, SROB17, SROB16, SROB15,
    SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0,
    ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1,
    ROA0, ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2,
    ROB1, ROB0, ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3,
    ROC2, ROC1, ROC0, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
    P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0, SIGNEDP
);
    input A17;
    input A16;
    input A15;
    input A14;
    input A13;
    input A12;
    input A11;
    input A10;
    input A9;
    input A8;
    input A7;
    input A6;
    input A5;
    input A4;
    input A3;
    input A2;
    input A1;
    input A0;
    input B17;
    input B16;
    input B15;
    input B14;
    input B13;
    input B12;
    input B11;
    input B10;
    input B9;
    input B8;
    input B7;
    input B6;
    input B5;
    input B4;
    input B3;
    input B2;
    input B1;
    input B0;
    input C17;
    input C16;
    input C15;
    input C14;
    input C13;
    input C12;
    input C11;
    input C10;
    input C9;
    input C8;
    input C7;
    input C6;
    input C5;
    input C4;
    input C3;
    input C2;
    input C1;
    input C0;
    input SIGNEDA;
    input SIGNEDB;
    input SOURCEA;
    input SOURCEB;
    input CLK3;
    input CLK2;
    input CLK1;
    input CLK0;
    input CE3;
    input CE2;
    input CE1;
    input CE0;
    input RST3;
    input RST2;
    input RST1;
    input RST0;
    input SRIA17;
    input SRIA16;
    input SRIA15;
    input SRIA14;
    input SRIA13;
    input SRIA12;
    input SRIA11;
    input SRIA10;
    input SRIA9;
    input SRIA8;
    input SRIA7;
    input SRIA6;
    input SRIA5;
    input SRIA4;
    input SRIA3;
    input SRIA2;
    input SRIA1;
    input SRIA0;
    input SRIB17;
    input SRIB16;
    input SRIB15;
    input SRIB14;
    input SRIB13;
    input SRIB12;
    input SRIB11;
    input SRIB10;
    input SRIB9;
    input SRIB8;
    input SRIB7;
    input SRIB6;
    input SRIB5;
    input SRIB4;
    input SRIB3;
    input SRIB2;
    input SRIB1;
    input SRIB0;
    output SROA17;
    output SROA16;
    output SROA15;
    output SROA14;
    output SROA13;
    output SROA12;
    output SROA11;
    output SROA10;
    output SROA9;
    output SROA8;
    output SROA7;
    output SROA6;
    output SROA5;
    output SROA4;
    output SROA3;
    output SROA2;
    output SROA1;
    output SROA0;
    output SROB17;
    output SROB16;
    output SROB15;
    output SROB14;
    output SROB13;
    output SROB12;
    output SROB11;
    output SROB10;
    output SROB9;
    output SROB8;
    output SROB7;
    output SROB6;
    output SROB5;
    output SROB4;
    output SROB3;
    output SROB2;
    output SROB1;
    output SROB0;
    output ROA17;
    output ROA16;
    output ROA15;
    output ROA14;
    output ROA13;
    output ROA12;
    output ROA11;
    output ROA10;
    output ROA9;
    output ROA8;
    output ROA7;
    output ROA6;
    output ROA5;
    output ROA4;
    output ROA3;
    output ROA2;
    output ROA1;
    output ROA0;
    output ROB17;
    output ROB16;
    output ROB15;
    output ROB14;
    output ROB13;
    output ROB12;
    output ROB11;
    output ROB10;
    output ROB9;
    output ROB8;
    output ROB7;
    output ROB6;
    output ROB5;
    output ROB4;
    output ROB3;
    output ROB2;
    output ROB1;
    output ROB0;
    output ROC17;
    output ROC16;
    output ROC15;
    output ROC14;
    output ROC13;
    output ROC12;
    output ROC11;
    output ROC10;
    output ROC9;
    output ROC8;
    output ROC7;
    output ROC6;
    output ROC5;
    output ROC4;
    output ROC3;
    output ROC2;
    output ROC1;
    output ROC0;
    output P35;
    output P34;
    output P33;
    output P32;
    output P31;
    output P30;
    output P29;
    output P28;
    output P27;
    output P26;
    output P25;
    output P24;
    output P23;
    output P22;
    output P21;
    output P20;
    output P19;
    output P18;
    output P17;
    output P16;
    output P15;
    output P14;
    output P13;
    output P12;
    output P11;
    output P10;
    output P9;
    output P8;
    output P7;
    output P6;
    output P5;
    output P4;
    output P3;
    output P2;
    output P1;
    output P0;
    output SIGNEDP;

    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    wire [17:0] c = {C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0};
    wire [3:0] clocks = {CLK3, CLK2, CLK1, CLK0};
    wire [3:0] enables = {CE3, CE2, CE1, CE0};
    wire [3:0] resets = {RST3, RST2, RST1, RST0};

    // The option checks: every parameter value this model does not implement stops the simulation.
    initial begin
        if (MULT_BYPASS != "DISABLED") $fatal(1, "MULT18X18D model: MULT_BYPASS=%0s is not modelled", MULT_BYPASS);
        if (CAS_MATCH_REG != "FALSE") $fatal(1, "MULT18X18D model: CAS_MATCH_REG=%0s is not modelled", CAS_MATCH_REG);
        if (HIGHSPEED_CLK != "NONE") $fatal(1, "MULT18X18D model: HIGHSPEED_CLK=%0s is not modelled", HIGHSPEED_CLK);
        if (SOURCEB_MODE != "B_SHIFT") $fatal(1, "MULT18X18D model: SOURCEB_MODE=%0s is not modelled", SOURCEB_MODE);
        if (CLK0_DIV != "ENABLED" || CLK1_DIV != "ENABLED" || CLK2_DIV != "ENABLED" || CLK3_DIV != "ENABLED")
            $fatal(1, "MULT18X18D model: CLKn_DIV other than ENABLED is not modelled");
        if (RESETMODE != "SYNC" && RESETMODE != "ASYNC")
            $fatal(1, "MULT18X18D model: RESETMODE must be SYNC or ASYNC, not %0s", RESETMODE);
        if (GSR != "ENABLED" && GSR != "DISABLED") $fatal(1, "MULT18X18D model: GSR must be ENABLED or DISABLED");
    end

    always @(posedge CLK0 or posedge CLK1 or posedge CLK2 or posedge CLK3)
        if (SOURCEA === 1'b1 || SOURCEB === 1'b1)
            $fatal(1, "MULT18X18D model: SOURCEA/SOURCEB = 1 (shift/cascade input) is not modelled");

    wire signed_a_q, signed_b_q;
    wire [17:0] a_q, b_q, c_q;
    MULT18X18D_stage #(.WIDTH(19), .CLK(REG_INPUTA_CLK), .CE(REG_INPUTA_CE), .RST(REG_INPUTA_RST),
                       .RESETMODE(RESETMODE), .NAME("REG_INPUTA"))
        input_a (.clocks(clocks), .enables(enables), .resets(resets), .d({SIGNEDA, a}), .q({signed_a_q, a_q}));
    MULT18X18D_stage #(.WIDTH(19), .CLK(REG_INPUTB_CLK), .CE(REG_INPUTB_CE), .RST(REG_INPUTB_RST),
                       .RESETMODE(RESETMODE), .NAME("REG_INPUTB"))
        input_b (.clocks(clocks), .enables(enables), .resets(resets), .d({SIGNEDB, b}), .q({signed_b_q, b_q}));
    MULT18X18D_stage #(.WIDTH(18), .CLK(REG_INPUTC_CLK), .CE(REG_INPUTC_CE), .RST(REG_INPUTC_RST),
                       .RESETMODE(RESETMODE), .NAME("REG_INPUTC"))
        input_c (.clocks(clocks), .enables(enables), .resets(resets), .d(c), .q(c_q));

    wire [35:0] a_wide = {{18{signed_a_q & a_q[17]}}, a_q};
    wire [35:0] b_wide = {{18{signed_b_q & b_q[17]}}, b_q};
    wire [36:0] product = {signed_a_q | signed_b_q, a_wide * b_wide};  // 36 low bits of the product

    wire [36:0] pipelined, registered;
    MULT18X18D_stage #(.WIDTH(37), .CLK(REG_PIPELINE_CLK), .CE(REG_PIPELINE_CE), .RST(REG_PIPELINE_RST),
                       .RESETMODE(RESETMODE), .NAME("REG_PIPELINE"))
        pipeline (.clocks(clocks), .enables(enables), .resets(resets), .d(product), .q(pipelined));
    MULT18X18D_stage #(.WIDTH(37), .CLK(REG_OUTPUT_CLK), .CE(REG_OUTPUT_CE), .RST(REG_OUTPUT_RST),
                       .RESETMODE(RESETMODE), .NAME("REG_OUTPUT"))
        output_stage (.clocks(clocks), .enables(enables), .resets(resets), .d(pipelined), .q(registered));

    assign {SIGNEDP, {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0}} = registered;
    assign {{ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0}} = a_q;
    assign {{ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0}} = b_q;
    assign {{ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0}} = c_q;
    assign {{SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0}} = 18'b0;
    assign {{SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0}} = 18'b0;
endmodule

// One optional register stage of MULT18X18D: combinational when CLK is "NONE", otherwise a rising-edge
// register on clocks[n] with enable enables[m] and reset resets[k] ("CLKn", "CEm", "RSTk").
module MULT18X18D_stage #(
    parameter WIDTH = 1,
    parameter CLK = "NONE",
    parameter CE = "CE0",
    parameter RST = "RST0",
    parameter RESETMODE = "SYNC",
    parameter NAME = ""
) (
    input [3:0] clocks,
    input [3:0] enables,
    input [3:0] resets,
    input [WIDTH-1:0] d,
    output [WIDTH-1:0] q
);
    localparam integer CLOCK = CLK == "CLK0" ? 0 : CLK == "CLK1" ? 1 : CLK == "CLK2" ? 2 : CLK == "CLK3" ? 3 : -1;
    localparam integer ENABLE = CE == "CE0" ? 0 : CE == "CE1" ? 1 : CE == "CE2" ? 2 : CE == "CE3" ? 3 : -1;
    localparam integer RESET = RST == "RST0" ? 0 : RST == "RST1" ? 1 : RST == "RST2" ? 2 : RST == "RST3" ? 3 : -1;

    initial begin
        if (CLK != "NONE" && CLOCK < 0) $fatal(1, "MULT18X18D model: %0s_CLK=%0s is not NONE or CLK0..CLK3", NAME, CLK);
        if (ENABLE < 0) $fatal(1, "MULT18X18D model: %0s_CE=%0s is not CE0..CE3", NAME, CE);
        if (RESET < 0) $fatal(1, "MULT18X18D model: %0s_RST=%0s is not RST0..RST3", NAME, RST);
    end

    generate
        if (CLK == "NONE") begin : combinational
            assign q = d;
        end else begin : registered
            wire clock = clocks[CLOCK < 0 ? 0 : CLOCK];
            wire enable = enables[ENABLE < 0 ? 0 : ENABLE];
            wire reset = resets[RESET < 0 ? 0 : RESET];
            reg [WIDTH-1:0] state = {WIDTH{1'b0}};
            if (RESETMODE == "ASYNC") begin : asynchronous
                always @(posedge clock or posedge reset)
                    if (reset) state <= {WIDTH{1'b0}};
                    else if (enable) state <= d;
            end else begin : synchronous
                always @(posedge clock)
                    if (reset) state <= {WIDTH{1'b0}};
                    else if (enable) state <= d;
            end
            assign q = state;
        end
    endgenerate
endmodule
