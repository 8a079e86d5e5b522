// Simulation model of the Lattice ECP5 block RAM primitive DP16KD (true dual-port 16 Kbit EBR).
//
// Written from Lattice FPGA-TN-02204, "ECP5 and ECP5-5G Memory Usage Guide" (DP16KD: ports, attributes, the
// write modes and the x1..x18 configurations), because the DP16KD in Yosys's share/lattice/cells_sim_ecp5.v is
// a (* blackbox *) declaration without behaviour, whose outputs float in simulation. Ports and parameters
// are those of that declaration, so a Yosys netlist binds to this model unchanged; the semantics agree with
// what Yosys's mapping assumes (share/lattice/brams_16kd.txt: per-port clock enable, read-during-write per
// WRITEMODE, reset to zero, read output zero at start).
//
// Modelled, per port A and B:
//   * DATA_WIDTH 1, 2, 4, 9 or 18; word address AD[13:0], AD[13:1], AD[13:2], AD[13:3], AD[13:4]. In x18 mode
//     AD0 and AD1 are the write enables of the bytes DI[8:0] and DI[17:9]. The 18432 bits are 1024 18-bit
//     words; a x9 word is one 9-bit byte of them (low byte first); x1/x2/x4 words use the 16 data bits of
//     each 18-bit word (bits 8 and 17, the ninth bits, are left out), lowest bits first.
//   * At a clock edge (CLKxMUX "CLKx": rising, "INV": falling) with CE high and CS[2:0] equal to CSDECODE:
//     a write when WE is high (WRITEMODE "NORMAL": DO keeps its value, "WRITETHROUGH": DO shows the new
//     word, "READBEFOREWRITE": DO shows the old word), a read otherwise.
//   * REGMODE "NOREG" (DO is the read latch) or "OUTREG" (one more register, enabled by OCE).
//   * RST clears the read latch and the output register: RESETMODE "SYNC" at the clock edge whatever CE, or
//     "ASYNC" at once, for as long as it is high. A port in reset does not write (Yosys's "block_wr"). Every control input may be inverted or tied through its MUX
//     parameter ("INV", "0", "1").
//   * INITVAL_00..3F: 16 words of 18 bits per value, one every 20 bits (the layout of Yosys's brams_map_16kd.v).
// Refused ($fatal at time 0): other widths, REGMODE or WRITEMODE values, INIT_DATA other than "STATIC", and any
// data or address pin MUX other than the pin itself. Not modelled: GSR, ASYNC_RESET_RELEASE timing, and
// collisions of writes from both ports to the same word in one cycle (the later always block wins).

`timescale 1ns / 1ps

module DP16KD(
    DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1,
    DIA0, ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0, CEA, OCEA, CLKA,
    WEA, RSTA, CSA2, CSA1, CSA0, DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
    DOA5, DOA4, DOA3, DOA2, DOA1, DOA0, DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
    DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
    ADB2, ADB1, ADB0, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOB17, DOB16, DOB15, DOB14, DOB13, DOB12,
    DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0;
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0;
    input CEA, OCEA, CLKA, WEA, RSTA;
    input CSA2, CSA1, CSA0;
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0;
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0;
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0;
    input CEB, OCEB, CLKB, WEB, RSTB;
    input CSB2, CSB1, CSB0;
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0;

    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter WID = 0;
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;
    parameter DIA0MUX = "DIA0";
    parameter DIA1MUX = "DIA1";
    parameter DIA2MUX = "DIA2";
    parameter DIA3MUX = "DIA3";
    parameter DIA4MUX = "DIA4";
    parameter DIA5MUX = "DIA5";
    parameter DIA6MUX = "DIA6";
    parameter DIA7MUX = "DIA7";
    parameter DIA8MUX = "DIA8";
    parameter DIA9MUX = "DIA9";
    parameter DIA10MUX = "DIA10";
    parameter DIA11MUX = "DIA11";
    parameter DIA12MUX = "DIA12";
    parameter DIA13MUX = "DIA13";
    parameter DIA14MUX = "DIA14";
    parameter DIA15MUX = "DIA15";
    parameter DIA16MUX = "DIA16";
    parameter DIA17MUX = "DIA17";
    parameter ADA0MUX = "ADA0";
    parameter ADA1MUX = "ADA1";
    parameter ADA2MUX = "ADA2";
    parameter ADA3MUX = "ADA3";
    parameter ADA4MUX = "ADA4";
    parameter ADA5MUX = "ADA5";
    parameter ADA6MUX = "ADA6";
    parameter ADA7MUX = "ADA7";
    parameter ADA8MUX = "ADA8";
    parameter ADA9MUX = "ADA9";
    parameter ADA10MUX = "ADA10";
    parameter ADA11MUX = "ADA11";
    parameter ADA12MUX = "ADA12";
    parameter ADA13MUX = "ADA13";
    parameter DOA0MUX = "DOA0";
    parameter DOA1MUX = "DOA1";
    parameter DOA2MUX = "DOA2";
    parameter DOA3MUX = "DOA3";
    parameter DOA4MUX = "DOA4";
    parameter DOA5MUX = "DOA5";
    parameter DOA6MUX = "DOA6";
    parameter DOA7MUX = "DOA7";
    parameter DOA8MUX = "DOA8";
    parameter DOA9MUX = "DOA9";
    parameter DOA10MUX = "DOA10";
    parameter DOA11MUX = "DOA11";
    parameter DOA12MUX = "DOA12";
    parameter DOA13MUX = "DOA13";
    parameter DOA14MUX = "DOA14";
    parameter DOA15MUX = "DOA15";
    parameter DOA16MUX = "DOA16";
    parameter DOA17MUX = "DOA17";
    parameter DIB0MUX = "DIB0";
    parameter DIB1MUX = "DIB1";
    parameter DIB2MUX = "DIB2";
    parameter DIB3MUX = "DIB3";
    parameter DIB4MUX = "DIB4";
    parameter DIB5MUX = "DIB5";
    parameter DIB6MUX = "DIB6";
    parameter DIB7MUX = "DIB7";
    parameter DIB8MUX = "DIB8";
    parameter DIB9MUX = "DIB9";
    parameter DIB10MUX = "DIB10";
    parameter DIB11MUX = "DIB11";
    parameter DIB12MUX = "DIB12";
    parameter DIB13MUX = "DIB13";
    parameter DIB14MUX = "DIB14";
    parameter DIB15MUX = "DIB15";
    parameter DIB16MUX = "DIB16";
    parameter DIB17MUX = "DIB17";
    parameter ADB0MUX = "ADB0";
    parameter ADB1MUX = "ADB1";
    parameter ADB2MUX = "ADB2";
    parameter ADB3MUX = "ADB3";
    parameter ADB4MUX = "ADB4";
    parameter ADB5MUX = "ADB5";
    parameter ADB6MUX = "ADB6";
    parameter ADB7MUX = "ADB7";
    parameter ADB8MUX = "ADB8";
    parameter ADB9MUX = "ADB9";
    parameter ADB10MUX = "ADB10";
    parameter ADB11MUX = "ADB11";
    parameter ADB12MUX = "ADB12";
    parameter ADB13MUX = "ADB13";
    parameter DOB0MUX = "DOB0";
    parameter DOB1MUX = "DOB1";
    parameter DOB2MUX = "DOB2";
    parameter DOB3MUX = "DOB3";
    parameter DOB4MUX = "DOB4";
    parameter DOB5MUX = "DOB5";
    parameter DOB6MUX = "DOB6";
    parameter DOB7MUX = "DOB7";
    parameter DOB8MUX = "DOB8";
    parameter DOB9MUX = "DOB9";
    parameter DOB10MUX = "DOB10";
    parameter DOB11MUX = "DOB11";
    parameter DOB12MUX = "DOB12";
    parameter DOB13MUX = "DOB13";
    parameter DOB14MUX = "DOB14";
    parameter DOB15MUX = "DOB15";
    parameter DOB16MUX = "DOB16";
    parameter DOB17MUX = "DOB17";
    parameter CEAMUX = "CEA";
    parameter OCEAMUX = "OCEA";
    parameter CLKAMUX = "CLKA";
    parameter WEAMUX = "WEA";
    parameter RSTAMUX = "RSTA";
    parameter CEBMUX = "CEB";
    parameter OCEBMUX = "OCEB";
    parameter CLKBMUX = "CLKB";
    parameter WEBMUX = "WEB";
    parameter RSTBMUX = "RSTB";
    parameter CSA2MUX = "CSA2";
    parameter CSA1MUX = "CSA1";
    parameter CSA0MUX = "CSA0";
    parameter CSB2MUX = "CSB2";
    parameter CSB1MUX = "CSB1";
    parameter CSB0MUX = "CSB0";

    initial begin
        if (INIT_DATA != "STATIC") $fatal(1, "DP16KD model: INIT_DATA=%0s is not modelled", INIT_DATA);
        if (RESETMODE != "SYNC" && RESETMODE != "ASYNC")
            $fatal(1, "DP16KD model: RESETMODE must be SYNC or ASYNC, not %0s", RESETMODE);
        if (DIA0MUX != "DIA0") $fatal(1, "DP16KD model: DIA0MUX=%0s is not modelled", DIA0MUX);
        if (DIA1MUX != "DIA1") $fatal(1, "DP16KD model: DIA1MUX=%0s is not modelled", DIA1MUX);
        if (DIA2MUX != "DIA2") $fatal(1, "DP16KD model: DIA2MUX=%0s is not modelled", DIA2MUX);
        if (DIA3MUX != "DIA3") $fatal(1, "DP16KD model: DIA3MUX=%0s is not modelled", DIA3MUX);
        if (DIA4MUX != "DIA4") $fatal(1, "DP16KD model: DIA4MUX=%0s is not modelled", DIA4MUX);
        if (DIA5MUX != "DIA5") $fatal(1, "DP16KD model: DIA5MUX=%0s is not modelled", DIA5MUX);
        if (DIA6MUX != "DIA6") $fatal(1, "DP16KD model: DIA6MUX=%0s is not modelled", DIA6MUX);
        if (DIA7MUX != "DIA7") $fatal(1, "DP16KD model: DIA7MUX=%0s is not modelled", DIA7MUX);
        if (DIA8MUX != "DIA8") $fatal(1, "DP16KD model: DIA8MUX=%0s is not modelled", DIA8MUX);
        if (DIA9MUX != "DIA9") $fatal(1, "DP16KD model: DIA9MUX=%0s is not modelled", DIA9MUX);
        if (DIA10MUX != "DIA10") $fatal(1, "DP16KD model: DIA10MUX=%0s is not modelled", DIA10MUX);
        if (DIA11MUX != "DIA11") $fatal(1, "DP16KD model: DIA11MUX=%0s is not modelled", DIA11MUX);
        if (DIA12MUX != "DIA12") $fatal(1, "DP16KD model: DIA12MUX=%0s is not modelled", DIA12MUX);
        if (DIA13MUX != "DIA13") $fatal(1, "DP16KD model: DIA13MUX=%0s is not modelled", DIA13MUX);
        if (DIA14MUX != "DIA14") $fatal(1, "DP16KD model: DIA14MUX=%0s is not modelled", DIA14MUX);
        if (DIA15MUX != "DIA15") $fatal(1, "DP16KD model: DIA15MUX=%0s is not modelled", DIA15MUX);
        if (DIA16MUX != "DIA16") $fatal(1, "DP16KD model: DIA16MUX=%0s is not modelled", DIA16MUX);
        if (DIA17MUX != "DIA17") $fatal(1, "DP16KD model: DIA17MUX=%0s is not modelled", DIA17MUX);
        if (ADA0MUX != "ADA0") $fatal(1, "DP16KD model: ADA0MUX=%0s is not modelled", ADA0MUX);
        if (ADA1MUX != "ADA1") $fatal(1, "DP16KD model: ADA1MUX=%0s is not modelled", ADA1MUX);
        if (ADA2MUX != "ADA2") $fatal(1, "DP16KD model: ADA2MUX=%0s is not modelled", ADA2MUX);
        if (ADA3MUX != "ADA3") $fatal(1, "DP16KD model: ADA3MUX=%0s is not modelled", ADA3MUX);
        if (ADA4MUX != "ADA4") $fatal(1, "DP16KD model: ADA4MUX=%0s is not modelled", ADA4MUX);
        if (ADA5MUX != "ADA5") $fatal(1, "DP16KD model: ADA5MUX=%0s is not modelled", ADA5MUX);
        if (ADA6MUX != "ADA6") $fatal(1, "DP16KD model: ADA6MUX=%0s is not modelled", ADA6MUX);
        if (ADA7MUX != "ADA7") $fatal(1, "DP16KD model: ADA7MUX=%0s is not modelled", ADA7MUX);
        if (ADA8MUX != "ADA8") $fatal(1, "DP16KD model: ADA8MUX=%0s is not modelled", ADA8MUX);
        if (ADA9MUX != "ADA9") $fatal(1, "DP16KD model: ADA9MUX=%0s is not modelled", ADA9MUX);
        if (ADA10MUX != "ADA10") $fatal(1, "DP16KD model: ADA10MUX=%0s is not modelled", ADA10MUX);
        if (ADA11MUX != "ADA11") $fatal(1, "DP16KD model: ADA11MUX=%0s is not modelled", ADA11MUX);
        if (ADA12MUX != "ADA12") $fatal(1, "DP16KD model: ADA12MUX=%0s is not modelled", ADA12MUX);
        if (ADA13MUX != "ADA13") $fatal(1, "DP16KD model: ADA13MUX=%0s is not modelled", ADA13MUX);
        if (DOA0MUX != "DOA0") $fatal(1, "DP16KD model: DOA0MUX=%0s is not modelled", DOA0MUX);
        if (DOA1MUX != "DOA1") $fatal(1, "DP16KD model: DOA1MUX=%0s is not modelled", DOA1MUX);
        if (DOA2MUX != "DOA2") $fatal(1, "DP16KD model: DOA2MUX=%0s is not modelled", DOA2MUX);
        if (DOA3MUX != "DOA3") $fatal(1, "DP16KD model: DOA3MUX=%0s is not modelled", DOA3MUX);
        if (DOA4MUX != "DOA4") $fatal(1, "DP16KD model: DOA4MUX=%0s is not modelled", DOA4MUX);
        if (DOA5MUX != "DOA5") $fatal(1, "DP16KD model: DOA5MUX=%0s is not modelled", DOA5MUX);
        if (DOA6MUX != "DOA6") $fatal(1, "DP16KD model: DOA6MUX=%0s is not modelled", DOA6MUX);
        if (DOA7MUX != "DOA7") $fatal(1, "DP16KD model: DOA7MUX=%0s is not modelled", DOA7MUX);
        if (DOA8MUX != "DOA8") $fatal(1, "DP16KD model: DOA8MUX=%0s is not modelled", DOA8MUX);
        if (DOA9MUX != "DOA9") $fatal(1, "DP16KD model: DOA9MUX=%0s is not modelled", DOA9MUX);
        if (DOA10MUX != "DOA10") $fatal(1, "DP16KD model: DOA10MUX=%0s is not modelled", DOA10MUX);
        if (DOA11MUX != "DOA11") $fatal(1, "DP16KD model: DOA11MUX=%0s is not modelled", DOA11MUX);
        if (DOA12MUX != "DOA12") $fatal(1, "DP16KD model: DOA12MUX=%0s is not modelled", DOA12MUX);
        if (DOA13MUX != "DOA13") $fatal(1, "DP16KD model: DOA13MUX=%0s is not modelled", DOA13MUX);
        if (DOA14MUX != "DOA14") $fatal(1, "DP16KD model: DOA14MUX=%0s is not modelled", DOA14MUX);
        if (DOA15MUX != "DOA15") $fatal(1, "DP16KD model: DOA15MUX=%0s is not modelled", DOA15MUX);
        if (DOA16MUX != "DOA16") $fatal(1, "DP16KD model: DOA16MUX=%0s is not modelled", DOA16MUX);
        if (DOA17MUX != "DOA17") $fatal(1, "DP16KD model: DOA17MUX=%0s is not modelled", DOA17MUX);
        if (DIB0MUX != "DIB0") $fatal(1, "DP16KD model: DIB0MUX=%0s is not modelled", DIB0MUX);
        if (DIB1MUX != "DIB1") $fatal(1, "DP16KD model: DIB1MUX=%0s is not modelled", DIB1MUX);
        if (DIB2MUX != "DIB2") $fatal(1, "DP16KD model: DIB2MUX=%0s is not modelled", DIB2MUX);
        if (DIB3MUX != "DIB3") $fatal(1, "DP16KD model: DIB3MUX=%0s is not modelled", DIB3MUX);
        if (DIB4MUX != "DIB4") $fatal(1, "DP16KD model: DIB4MUX=%0s is not modelled", DIB4MUX);
        if (DIB5MUX != "DIB5") $fatal(1, "DP16KD model: DIB5MUX=%0s is not modelled", DIB5MUX);
        if (DIB6MUX != "DIB6") $fatal(1, "DP16KD model: DIB6MUX=%0s is not modelled", DIB6MUX);
        if (DIB7MUX != "DIB7") $fatal(1, "DP16KD model: DIB7MUX=%0s is not modelled", DIB7MUX);
        if (DIB8MUX != "DIB8") $fatal(1, "DP16KD model: DIB8MUX=%0s is not modelled", DIB8MUX);
        if (DIB9MUX != "DIB9") $fatal(1, "DP16KD model: DIB9MUX=%0s is not modelled", DIB9MUX);
        if (DIB10MUX != "DIB10") $fatal(1, "DP16KD model: DIB10MUX=%0s is not modelled", DIB10MUX);
        if (DIB11MUX != "DIB11") $fatal(1, "DP16KD model: DIB11MUX=%0s is not modelled", DIB11MUX);
        if (DIB12MUX != "DIB12") $fatal(1, "DP16KD model: DIB12MUX=%0s is not modelled", DIB12MUX);
        if (DIB13MUX != "DIB13") $fatal(1, "DP16KD model: DIB13MUX=%0s is not modelled", DIB13MUX);
        if (DIB14MUX != "DIB14") $fatal(1, "DP16KD model: DIB14MUX=%0s is not modelled", DIB14MUX);
        if (DIB15MUX != "DIB15") $fatal(1, "DP16KD model: DIB15MUX=%0s is not modelled", DIB15MUX);
        if (DIB16MUX != "DIB16") $fatal(1, "DP16KD model: DIB16MUX=%0s is not modelled", DIB16MUX);
        if (DIB17MUX != "DIB17") $fatal(1, "DP16KD model: DIB17MUX=%0s is not modelled", DIB17MUX);
        if (ADB0MUX != "ADB0") $fatal(1, "DP16KD model: ADB0MUX=%0s is not modelled", ADB0MUX);
        if (ADB1MUX != "ADB1") $fatal(1, "DP16KD model: ADB1MUX=%0s is not modelled", ADB1MUX);
        if (ADB2MUX != "ADB2") $fatal(1, "DP16KD model: ADB2MUX=%0s is not modelled", ADB2MUX);
        if (ADB3MUX != "ADB3") $fatal(1, "DP16KD model: ADB3MUX=%0s is not modelled", ADB3MUX);
        if (ADB4MUX != "ADB4") $fatal(1, "DP16KD model: ADB4MUX=%0s is not modelled", ADB4MUX);
        if (ADB5MUX != "ADB5") $fatal(1, "DP16KD model: ADB5MUX=%0s is not modelled", ADB5MUX);
        if (ADB6MUX != "ADB6") $fatal(1, "DP16KD model: ADB6MUX=%0s is not modelled", ADB6MUX);
        if (ADB7MUX != "ADB7") $fatal(1, "DP16KD model: ADB7MUX=%0s is not modelled", ADB7MUX);
        if (ADB8MUX != "ADB8") $fatal(1, "DP16KD model: ADB8MUX=%0s is not modelled", ADB8MUX);
        if (ADB9MUX != "ADB9") $fatal(1, "DP16KD model: ADB9MUX=%0s is not modelled", ADB9MUX);
        if (ADB10MUX != "ADB10") $fatal(1, "DP16KD model: ADB10MUX=%0s is not modelled", ADB10MUX);
        if (ADB11MUX != "ADB11") $fatal(1, "DP16KD model: ADB11MUX=%0s is not modelled", ADB11MUX);
        if (ADB12MUX != "ADB12") $fatal(1, "DP16KD model: ADB12MUX=%0s is not modelled", ADB12MUX);
        if (ADB13MUX != "ADB13") $fatal(1, "DP16KD model: ADB13MUX=%0s is not modelled", ADB13MUX);
        if (DOB0MUX != "DOB0") $fatal(1, "DP16KD model: DOB0MUX=%0s is not modelled", DOB0MUX);
        if (DOB1MUX != "DOB1") $fatal(1, "DP16KD model: DOB1MUX=%0s is not modelled", DOB1MUX);
        if (DOB2MUX != "DOB2") $fatal(1, "DP16KD model: DOB2MUX=%0s is not modelled", DOB2MUX);
        if (DOB3MUX != "DOB3") $fatal(1, "DP16KD model: DOB3MUX=%0s is not modelled", DOB3MUX);
        if (DOB4MUX != "DOB4") $fatal(1, "DP16KD model: DOB4MUX=%0s is not modelled", DOB4MUX);
        if (DOB5MUX != "DOB5") $fatal(1, "DP16KD model: DOB5MUX=%0s is not modelled", DOB5MUX);
        if (DOB6MUX != "DOB6") $fatal(1, "DP16KD model: DOB6MUX=%0s is not modelled", DOB6MUX);
        if (DOB7MUX != "DOB7") $fatal(1, "DP16KD model: DOB7MUX=%0s is not modelled", DOB7MUX);
        if (DOB8MUX != "DOB8") $fatal(1, "DP16KD model: DOB8MUX=%0s is not modelled", DOB8MUX);
        if (DOB9MUX != "DOB9") $fatal(1, "DP16KD model: DOB9MUX=%0s is not modelled", DOB9MUX);
        if (DOB10MUX != "DOB10") $fatal(1, "DP16KD model: DOB10MUX=%0s is not modelled", DOB10MUX);
        if (DOB11MUX != "DOB11") $fatal(1, "DP16KD model: DOB11MUX=%0s is not modelled", DOB11MUX);
        if (DOB12MUX != "DOB12") $fatal(1, "DP16KD model: DOB12MUX=%0s is not modelled", DOB12MUX);
        if (DOB13MUX != "DOB13") $fatal(1, "DP16KD model: DOB13MUX=%0s is not modelled", DOB13MUX);
        if (DOB14MUX != "DOB14") $fatal(1, "DP16KD model: DOB14MUX=%0s is not modelled", DOB14MUX);
        if (DOB15MUX != "DOB15") $fatal(1, "DP16KD model: DOB15MUX=%0s is not modelled", DOB15MUX);
        if (DOB16MUX != "DOB16") $fatal(1, "DP16KD model: DOB16MUX=%0s is not modelled", DOB16MUX);
        if (DOB17MUX != "DOB17") $fatal(1, "DP16KD model: DOB17MUX=%0s is not modelled", DOB17MUX);
        if (CEAMUX != "CEA" && CEAMUX != "INV" && CEAMUX != "0" && CEAMUX != "1") $fatal(1, "DP16KD model: CEAMUX=%0s is not CEA, INV, 0 or 1", CEAMUX);
        if (OCEAMUX != "OCEA" && OCEAMUX != "INV" && OCEAMUX != "0" && OCEAMUX != "1") $fatal(1, "DP16KD model: OCEAMUX=%0s is not OCEA, INV, 0 or 1", OCEAMUX);
        if (CLKAMUX != "CLKA" && CLKAMUX != "INV" && CLKAMUX != "0" && CLKAMUX != "1") $fatal(1, "DP16KD model: CLKAMUX=%0s is not CLKA, INV, 0 or 1", CLKAMUX);
        if (WEAMUX != "WEA" && WEAMUX != "INV" && WEAMUX != "0" && WEAMUX != "1") $fatal(1, "DP16KD model: WEAMUX=%0s is not WEA, INV, 0 or 1", WEAMUX);
        if (RSTAMUX != "RSTA" && RSTAMUX != "INV" && RSTAMUX != "0" && RSTAMUX != "1") $fatal(1, "DP16KD model: RSTAMUX=%0s is not RSTA, INV, 0 or 1", RSTAMUX);
        if (CEBMUX != "CEB" && CEBMUX != "INV" && CEBMUX != "0" && CEBMUX != "1") $fatal(1, "DP16KD model: CEBMUX=%0s is not CEB, INV, 0 or 1", CEBMUX);
        if (OCEBMUX != "OCEB" && OCEBMUX != "INV" && OCEBMUX != "0" && OCEBMUX != "1") $fatal(1, "DP16KD model: OCEBMUX=%0s is not OCEB, INV, 0 or 1", OCEBMUX);
        if (CLKBMUX != "CLKB" && CLKBMUX != "INV" && CLKBMUX != "0" && CLKBMUX != "1") $fatal(1, "DP16KD model: CLKBMUX=%0s is not CLKB, INV, 0 or 1", CLKBMUX);
        if (WEBMUX != "WEB" && WEBMUX != "INV" && WEBMUX != "0" && WEBMUX != "1") $fatal(1, "DP16KD model: WEBMUX=%0s is not WEB, INV, 0 or 1", WEBMUX);
        if (RSTBMUX != "RSTB" && RSTBMUX != "INV" && RSTBMUX != "0" && RSTBMUX != "1") $fatal(1, "DP16KD model: RSTBMUX=%0s is not RSTB, INV, 0 or 1", RSTBMUX);
        if (CSA2MUX != "CSA2" && CSA2MUX != "INV" && CSA2MUX != "0" && CSA2MUX != "1") $fatal(1, "DP16KD model: CSA2MUX=%0s is not CSA2, INV, 0 or 1", CSA2MUX);
        if (CSA1MUX != "CSA1" && CSA1MUX != "INV" && CSA1MUX != "0" && CSA1MUX != "1") $fatal(1, "DP16KD model: CSA1MUX=%0s is not CSA1, INV, 0 or 1", CSA1MUX);
        if (CSA0MUX != "CSA0" && CSA0MUX != "INV" && CSA0MUX != "0" && CSA0MUX != "1") $fatal(1, "DP16KD model: CSA0MUX=%0s is not CSA0, INV, 0 or 1", CSA0MUX);
        if (CSB2MUX != "CSB2" && CSB2MUX != "INV" && CSB2MUX != "0" && CSB2MUX != "1") $fatal(1, "DP16KD model: CSB2MUX=%0s is not CSB2, INV, 0 or 1", CSB2MUX);
        if (CSB1MUX != "CSB1" && CSB1MUX != "INV" && CSB1MUX != "0" && CSB1MUX != "1") $fatal(1, "DP16KD model: CSB1MUX=%0s is not CSB1, INV, 0 or 1", CSB1MUX);
        if (CSB0MUX != "CSB0" && CSB0MUX != "INV" && CSB0MUX != "0" && CSB0MUX != "1") $fatal(1, "DP16KD model: CSB0MUX=%0s is not CSB0, INV, 0 or 1", CSB0MUX);
    end

    wire cea = CEAMUX == "INV" ? ~CEA : CEAMUX == "1" ? 1'b1 : CEAMUX == "0" ? 1'b0 : CEA;
    wire ocea = OCEAMUX == "INV" ? ~OCEA : OCEAMUX == "1" ? 1'b1 : OCEAMUX == "0" ? 1'b0 : OCEA;
    wire clka = CLKAMUX == "INV" ? ~CLKA : CLKAMUX == "1" ? 1'b1 : CLKAMUX == "0" ? 1'b0 : CLKA;
    wire wea = WEAMUX == "INV" ? ~WEA : WEAMUX == "1" ? 1'b1 : WEAMUX == "0" ? 1'b0 : WEA;
    wire rsta = RSTAMUX == "INV" ? ~RSTA : RSTAMUX == "1" ? 1'b1 : RSTAMUX == "0" ? 1'b0 : RSTA;
    wire ceb = CEBMUX == "INV" ? ~CEB : CEBMUX == "1" ? 1'b1 : CEBMUX == "0" ? 1'b0 : CEB;
    wire oceb = OCEBMUX == "INV" ? ~OCEB : OCEBMUX == "1" ? 1'b1 : OCEBMUX == "0" ? 1'b0 : OCEB;
    wire clkb = CLKBMUX == "INV" ? ~CLKB : CLKBMUX == "1" ? 1'b1 : CLKBMUX == "0" ? 1'b0 : CLKB;
    wire web = WEBMUX == "INV" ? ~WEB : WEBMUX == "1" ? 1'b1 : WEBMUX == "0" ? 1'b0 : WEB;
    wire rstb = RSTBMUX == "INV" ? ~RSTB : RSTBMUX == "1" ? 1'b1 : RSTBMUX == "0" ? 1'b0 : RSTB;
    wire csa2 = CSA2MUX == "INV" ? ~CSA2 : CSA2MUX == "1" ? 1'b1 : CSA2MUX == "0" ? 1'b0 : CSA2;
    wire csa1 = CSA1MUX == "INV" ? ~CSA1 : CSA1MUX == "1" ? 1'b1 : CSA1MUX == "0" ? 1'b0 : CSA1;
    wire csa0 = CSA0MUX == "INV" ? ~CSA0 : CSA0MUX == "1" ? 1'b1 : CSA0MUX == "0" ? 1'b0 : CSA0;
    wire csb2 = CSB2MUX == "INV" ? ~CSB2 : CSB2MUX == "1" ? 1'b1 : CSB2MUX == "0" ? 1'b0 : CSB2;
    wire csb1 = CSB1MUX == "INV" ? ~CSB1 : CSB1MUX == "1" ? 1'b1 : CSB1MUX == "0" ? 1'b0 : CSB1;
    wire csb0 = CSB0MUX == "INV" ? ~CSB0 : CSB0MUX == "1" ? 1'b1 : CSB0MUX == "0" ? 1'b0 : CSB0;

    // the array, 1024 x 18 bits, loaded from INITVAL_00..3F
    reg [17:0] memory [0:1023];
    localparam [20479:0] INITIAL = {INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38, INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30, INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28, INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20, INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18, INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10, INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08, INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};
    integer word;
    initial for (word = 0; word < 1024; word = word + 1) memory[word] = INITIAL[word * 20 +: 18];

    wire [17:0] doa, dob;
    DP16KD_port #(.WIDTH(DATA_WIDTH_A), .REGMODE(REGMODE_A), .WRITEMODE(WRITEMODE_A), .RESETMODE(RESETMODE),
                  .CSDECODE(CSDECODE_A), .INVERT_CLOCK(CLKAMUX == "INV"), .NAME("A"))
        port_a (.clock(CLKA), .enable(cea), .output_enable(ocea), .write_enable(wea), .reset(rsta),
                .select({csa2, csa1, csa0}), .address({ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0}), .data_in({DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0}), .data_out(doa));
    DP16KD_port #(.WIDTH(DATA_WIDTH_B), .REGMODE(REGMODE_B), .WRITEMODE(WRITEMODE_B), .RESETMODE(RESETMODE),
                  .CSDECODE(CSDECODE_B), .INVERT_CLOCK(CLKBMUX == "INV"), .NAME("B"))
        port_b (.clock(CLKB), .enable(ceb), .output_enable(oceb), .write_enable(web), .reset(rstb),
                .select({csb2, csb1, csb0}), .address({ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0}), .data_in({DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0}), .data_out(dob));
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule

// One port of DP16KD; it reads and writes the parent's `memory` by hierarchical reference.
module DP16KD_port #(
    parameter WIDTH = 18,
    parameter REGMODE = "NOREG",
    parameter WRITEMODE = "NORMAL",
    parameter RESETMODE = "SYNC",
    parameter CSDECODE = "0b000",
    parameter INVERT_CLOCK = 0,
    parameter NAME = ""
) (
    input clock,
    input enable,
    input output_enable,
    input write_enable,
    input reset,
    input [2:0] select,
    input [13:0] address,
    input [17:0] data_in,
    output [17:0] data_out
);
    localparam integer SHIFT = WIDTH == 18 ? 4 : WIDTH == 9 ? 3 : WIDTH == 4 ? 2 : WIDTH == 2 ? 1 : 0;
    localparam [39:0] DECODE_TEXT = CSDECODE;
    localparam [2:0] DECODE = {DECODE_TEXT[23:16] == "1", DECODE_TEXT[15:8] == "1", DECODE_TEXT[7:0] == "1"};

    initial begin
        if (WIDTH != 18 && WIDTH != 9 && WIDTH != 4 && WIDTH != 2 && WIDTH != 1)
            $fatal(1, "DP16KD model: DATA_WIDTH_%0s=%0d is not 1, 2, 4, 9 or 18", NAME, WIDTH);
        if (REGMODE != "NOREG" && REGMODE != "OUTREG")
            $fatal(1, "DP16KD model: REGMODE_%0s=%0s is not NOREG or OUTREG", NAME, REGMODE);
        if (WRITEMODE != "NORMAL" && WRITEMODE != "WRITETHROUGH" && WRITEMODE != "READBEFOREWRITE")
            $fatal(1, "DP16KD model: WRITEMODE_%0s=%0s is not NORMAL, WRITETHROUGH or READBEFOREWRITE",
                   NAME, WRITEMODE);
        if (DECODE_TEXT[39:24] != "0b" || (DECODE_TEXT[23:16] != "0" && DECODE_TEXT[23:16] != "1")
                || (DECODE_TEXT[15:8] != "0" && DECODE_TEXT[15:8] != "1") || (DECODE_TEXT[7:0] != "0" && DECODE_TEXT[7:0] != "1"))
            $fatal(1, "DP16KD model: CSDECODE_%0s=%0s is not 0b followed by three 0/1 digits", NAME, CSDECODE);
    end

    wire edge_clock = clock ^ INVERT_CLOCK[0];

    // the word at `address` of the current width, read from and merged into the 18-bit row it lives in
    function [17:0] extract(input [17:0] row_bits, input [13:0] address);
        integer bit_index, first;
        begin
            extract = 18'b0;
            if (WIDTH == 18) extract = row_bits;
            else if (WIDTH == 9) extract = address[3] ? row_bits[17:9] : row_bits[8:0];
            else begin
                first = (address[3:0] >> SHIFT) * WIDTH;  // first data bit (0..15) of the word in the row
                for (bit_index = 0; bit_index < WIDTH; bit_index = bit_index + 1)
                    extract[bit_index] = row_bits[(first + bit_index) < 8 ? first + bit_index : first + bit_index + 1];
            end
        end
    endfunction

    function [17:0] merge(input [17:0] row_bits, input [13:0] address, input [17:0] data);
        integer bit_index, first;
        begin
            merge = row_bits;
            if (WIDTH == 18) begin
                if (address[0]) merge[8:0] = data[8:0];
                if (address[1]) merge[17:9] = data[17:9];
            end else if (WIDTH == 9) begin
                if (address[3]) merge[17:9] = data[8:0];
                else merge[8:0] = data[8:0];
            end else begin
                first = (address[3:0] >> SHIFT) * WIDTH;
                for (bit_index = 0; bit_index < WIDTH; bit_index = bit_index + 1)
                    merge[(first + bit_index) < 8 ? first + bit_index : first + bit_index + 1] = data[bit_index];
            end
        end
    endfunction

    // x18: row = AD[13:4]; x9: AD[13:4] with AD3 picking the byte; narrower: AD[13:4] with AD[3:SHIFT] the word
    wire [9:0] word_row = address[13:4];
    reg [17:0] latch = 18'b0;
    reg [17:0] register = 18'b0;
    wire selected = select == DECODE;

    generate
        if (RESETMODE == "ASYNC") begin : asynchronous
            always @(posedge edge_clock or posedge reset)
                if (reset) latch <= 18'b0;
                else access;
            always @(posedge edge_clock or posedge reset)
                if (reset) register <= 18'b0;
                else if (output_enable) register <= latch;
        end else begin : synchronous
            always @(posedge edge_clock)
                if (reset) latch <= 18'b0;
                else access;
            always @(posedge edge_clock)
                if (reset) register <= 18'b0;
                else if (output_enable) register <= latch;
        end
    endgenerate

    task access;
        reg [17:0] old_row;
        begin
            if (enable && selected) begin
                old_row = DP16KD.memory[word_row];
                if (write_enable) begin
                    DP16KD.memory[word_row] = merge(old_row, address, data_in);
                    if (WRITEMODE == "WRITETHROUGH") latch <= extract(merge(old_row, address, data_in), address);
                    else if (WRITEMODE == "READBEFOREWRITE") latch <= extract(old_row, address);
                end else
                    latch <= extract(old_row, address);
            end
        end
    endtask

    assign data_out = REGMODE == "OUTREG" ? register : latch;
endmodule
