"""The WaveCore training core's contract: instruction set, program builder, DRAM memory map, compiler and
instruction-level simulator (``docs/core.md``)."""
