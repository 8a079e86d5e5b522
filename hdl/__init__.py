"""Amaranth generators of the accelerator, one subpackage per subsystem.

* :mod:`wavecore.hdl.array`: the processing element, the systolic array (output- and weight-stationary)
  and its multipliers (generic, ECP5 DSP, iCE40 DSP/LUT);
* :mod:`wavecore.hdl.memory`: the banked scratchpad, the AXI4 DMA, the operand feeders (im2col, weights,
  positions) with their bank reader, and the result writer;
* :mod:`wavecore.hdl.norm`: the BatchNorm/GroupNorm datapath units and their common parts;
* :mod:`wavecore.hdl.stream`: the streaming engines of Occam pipeline stages, stage links, STAP and the
  pipeline stage itself;
* :mod:`wavecore.hdl.registry`: every generatable block by name, with its parameters (``wavecore generate``).

Ports, latency and throughput of every block: ``docs/hardware.md``.
"""
