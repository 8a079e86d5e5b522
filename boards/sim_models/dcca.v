// Simulation model of the Lattice ECP5 primary clock buffer DCCA (dynamic clock control).
//
// Written from Lattice TN1263, "ECP5 and ECP5-5G sysCLOCK PLL/DLL Design and Usage Guide" (DCCA: CLKI enters
// the primary clock network as CLKO while CE is high; CLKO is held low while CE is low), because Yosys ships
// only a blackbox of this cell (share/lattice/cells_bb_ecp5.v). Ports are those of that blackbox.
//
// The board top of `wavecore synth` (wavecore.boards.bist.add_board_clock) drives the power-on reset through a
// DCCA with CE tied high, so in the gate-level simulation CLKO follows CLKI. The glitch-free gating of the real
// cell (CE sampled on the falling clock edge) is not modelled: a CE that is not constant 1 stops the
// simulation with $fatal at its first change.

`timescale 1ns / 1ps

module DCCA(CLKI, CE, CLKO);
    input CLKI;
    input CE;
    output CLKO;

    assign CLKO = CLKI & CE;

    always @(CE)
        if (CE !== 1'b1 && $time > 0)
            $fatal(1, "DCCA: CE must stay 1 (clock gating is not modelled), it became %b", CE);
endmodule
