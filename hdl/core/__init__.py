"""The WaveCore training core's integration surface: register map, AXI4-Lite register block, DRAM model."""
