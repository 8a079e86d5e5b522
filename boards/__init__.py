"""FPGA targets and flows: single-chip builds with reports, QoR harness, Occam multi-FPGA pipelines.

See ``docs/fpga.md``.
"""
