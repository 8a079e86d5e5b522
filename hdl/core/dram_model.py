"""Simulation-only DRAM: an AXI4 subordinate over a large memory, loaded and dumped through a backdoor.

:class:`DramModel` is an Amaranth component that instantiates the hand-written Verilog module
``wavecore_dram_model`` (``wavecore_dram_model.v``, shipped beside this file). The model is Verilog because it
needs ``$value$plusargs`` and ``$readmemh``/``$writememh``, which Amaranth cannot express; its header comment
states the protocol, the random latency/stall model and the backdoor file format. Any simulation that
elaborates a :class:`DramModel` must compile :func:`verilog_source` too (``extra_sources=[verilog_source()]``
for :func:`wavecore.verif.runner.build`). It is not synthesizable.

With the DRAM on the HDL side, a cocotb test of a whole system only writes the image file, pulses
``backdoor_load``, starts the design, waits for its ``done`` with a cycle limit and pulses ``backdoor_dump``:
Python does nothing per cycle (:class:`wavecore.verif.host.BackdoorMemory` does those steps).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wavecore.golden.numerics import check_int
from wavecore.hdl.memory.dma import axi4_signature

__all__ = ["MODULE_NAME", "DramModel", "connect_backdoor", "plusargs", "system_members", "verilog_source"]

MODULE_NAME = "wavecore_dram_model"

_AXI_FIELDS = (
    "awid", "awaddr", "awlen", "awsize", "awburst", "awvalid", "awready", "wdata", "wstrb", "wlast", "wvalid",
    "wready", "bid", "bresp", "bvalid", "bready", "arid", "araddr", "arlen", "arsize", "arburst", "arvalid",
    "arready", "rid", "rdata", "rresp", "rlast", "rvalid", "rready",
)


def verilog_source() -> Path:
    """Path of ``wavecore_dram_model.v`` (package data of ``wavecore.hdl.core``)."""
    return Path(str(resources.files("wavecore.hdl.core") / f"{MODULE_NAME}.v"))


def plusargs(*, seed: int | None = None, stall: int | None = None, latency_min: int | None = None,
             latency_max: int | None = None, init: str | None = None, load: str | None = None,
             dump: str | None = None) -> list[str]:
    """The simulator plusargs that override the model's parameters and name its backdoor files.

    ``stall`` is the per-cycle, per-channel stall probability in 256ths (0 to 255); latencies in cycles.
    """
    args = []
    for name, value in (("seed", seed), ("stall", stall), ("latency_min", latency_min),
                        ("latency_max", latency_max)):
        if value is not None:
            check_int(name, value, 0, 255 if name == "stall" else (1 << 31) - 1)
            args.append(f"+dram_{name}={value}")
    if latency_min is not None and latency_max is not None and latency_max < latency_min:
        raise ValueError(f"latency_max must be at least latency_min ({latency_min}), not {latency_max}")
    for name, value in (("init", init), ("load", load), ("dump", dump)):
        if value is not None:
            if not value or any(character.isspace() for character in str(value)):
                raise ValueError(f"{name} must be a file name without spaces, not {value!r}")
            args.append(f"+dram_{name}={value}")
    return args


class DramModel(wiring.Component):
    """AXI4 subordinate DRAM model for simulation (see the module docstring and the Verilog header).

    Parameters
    ----------
    address_width, data_width, id_width : int
        AXI widths (address 12 to 64 bits; data a power of two from 8 to 1024; ID 1 to 16).
    size_bytes : int
        Memory size, a multiple of the bus word, at most ``2**address_width``; beats above it get DECERR.
    outstanding : int
        Read and write bursts the model accepts before withholding ARREADY/AWREADY (1 to 256).
    seed, stall, latency_min, latency_max : int
        Defaults of the random model (overridden at run time by :func:`plusargs`): stall probability per
        channel and cycle in 256ths, per-burst latency range in cycles.

    Attributes
    ----------
    s_axi : In(axi4_signature(...))
        The subordinate port (the DMA's ``axi`` connects here).
    backdoor_load, backdoor_dump : In(1)
        One-cycle pulses: reload the ``+dram_load`` file; write words ``backdoor_first..backdoor_last``
        (byte addresses, inclusive) to the ``+dram_dump`` file. Both act at the rising edge they are high at.
    backdoor_first, backdoor_last : In(address_width)
    """

    def __init__(self, *, address_width: int = 32, data_width: int = 64, id_width: int = 1,
                 size_bytes: int = 1 << 20, outstanding: int = 16, seed: int = 1, stall: int = 0,
                 latency_min: int = 0, latency_max: int = 0):
        self.address_width = check_int("address_width", address_width, 12, 64)
        self.data_width = check_int("data_width", data_width, 8, 1024)
        if data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two between 8 and 1024, not {data_width}")
        self.id_width = check_int("id_width", id_width, 1, 16)
        self.size_bytes = check_int("size_bytes", size_bytes, data_width // 8, 1 << address_width)
        if size_bytes % (data_width // 8):
            raise ValueError(f"size_bytes must be a multiple of the bus word ({data_width // 8} bytes), "
                             f"not {size_bytes}")
        self.outstanding = check_int("outstanding", outstanding, 1, 256)
        self.seed = check_int("seed", seed, 0, (1 << 31) - 1)
        self.stall = check_int("stall", stall, 0, 255)
        self.latency_min = check_int("latency_min", latency_min, 0, (1 << 31) - 1)
        self.latency_max = check_int("latency_max", latency_max, latency_min, (1 << 31) - 1)
        super().__init__(
            {
                "s_axi": In(axi4_signature(address_width=address_width, data_width=data_width, id_width=id_width)),
                "backdoor_load": In(1),
                "backdoor_dump": In(1),
                "backdoor_first": In(address_width),
                "backdoor_last": In(address_width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        ports = {}
        for name in _AXI_FIELDS:
            member = self.s_axi.signature.members[name]
            prefix = "i" if member.flow == wiring.In else "o"  # flows as seen from this (subordinate) side
            ports[f"{prefix}_s_axi_{name}"] = getattr(self.s_axi, name)
        m.submodules.memory = Instance(
            MODULE_NAME,
            p_ADDRESS_WIDTH=self.address_width,
            p_DATA_WIDTH=self.data_width,
            p_ID_WIDTH=self.id_width,
            p_SIZE_BYTES=self.size_bytes,
            p_OUTSTANDING=self.outstanding,
            p_SEED=self.seed,
            p_STALL=self.stall,
            p_LATENCY_MIN=self.latency_min,
            p_LATENCY_MAX=self.latency_max,
            i_clk=ClockSignal(),
            i_rst=ResetSignal(),
            i_backdoor_load=self.backdoor_load,
            i_backdoor_dump=self.backdoor_dump,
            i_backdoor_first=self.backdoor_first,
            i_backdoor_last=self.backdoor_last,
            **ports,
        )
        return m


def system_members(register_address_width: int) -> dict:
    """The ports of a simulated system top around this model: the host's register port ``s_axil``, ``irq`` and
    the model's backdoor strobes passed through (what :func:`wavecore.verif.host.simulated_host` drives)."""
    from wavecore.hdl.core.register_block import axi4_lite_signature

    return {
        "s_axil": In(axi4_lite_signature(address_width=register_address_width)),
        "irq": Out(1),
        "backdoor_load": In(1),
        "backdoor_dump": In(1),
        "backdoor_first": In(32),
        "backdoor_last": In(32),
    }


def connect_backdoor(m, system, dram: DramModel) -> None:
    """Pass a system top's backdoor ports (:func:`system_members`) through to ``dram``."""
    m.d.comb += [getattr(dram, name).eq(getattr(system, name))
                 for name in ("backdoor_load", "backdoor_dump", "backdoor_first", "backdoor_last")]
