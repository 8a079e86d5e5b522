"""wavecore: an RTL generator and hardware verification framework for CNN training accelerators.

One import package. The repository's top-level folders are its parts (mapped in ``pyproject.toml``):

* :mod:`wavecore.golden` (``golden/``): the NumPy reference model, numerics, network zoo and the planner;
* :mod:`wavecore.hdl` (``hdl/``): the Amaranth generators, by subsystem;
* :mod:`wavecore.verif` (``verif/``): the cocotb harness, drivers, monitors and shipped testbenches;
* :mod:`wavecore.boards` (``boards/``): FPGA targets, flows, reports and Occam pipelines;
* :mod:`wavecore.configs` (``configs/``): the shipped accelerator, network and pipeline YAML files;
* this folder (``scripts/``): the package itself, the ``wavecore`` command line (:mod:`wavecore.cli`,
  one module per command in :mod:`wavecore.commands`) and small shared utilities
  (:mod:`wavecore.files`, :mod:`wavecore.paths`).
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("wavecore")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
