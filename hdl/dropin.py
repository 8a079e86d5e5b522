"""Drop-in packaging of a generated block: FuseSoC core, filelist and an AXI4-Stream SystemVerilog wrapper.

Everything here is derived from the one port description :func:`wavecore.hdl.registry.describe_ports` writes into
the JSON sidecar (``ports.<port>.fields`` with name/offset/width, ``ports.<port>.verilog`` with Amaranth's names),
so the wrapper, the testbench's packing (:class:`AxisPort`) and the documentation cannot disagree.

Wrapper naming (``<toplevel>_axis``, written by ``wavecore generate ... --wrapper sv``):

* clock and reset: ``aclk`` and the active-low ``aresetn`` (AXI's convention; Amaranth's ``clk``/``rst``
  are synchronous active-high, so ``rst = ~aresetn``).
* a stream port ``<port>`` into the block becomes ``s_axis_<port>_tdata/tvalid/tready``, one out of the block
  ``m_axis_<port>_tdata/tvalid/tready``. Top-level payload fields named ``last`` become ``tlast``;
  ``switch`` and ``transpose`` become ``tuser`` bits (bit ``i`` is the ``i``-th of them in payload order).
  Every other field goes into ``tdata`` in payload order from bit 0, and ``tdata`` is zero-padded to whole
  bytes (AXI4-Stream's data width is a number of bytes; padding bits are ignored on input and 0 on output).
  A stream without a ``last`` field has no ``tlast`` port (every beat is a transfer of its own).
* an AXI4 interface port (the DMA's ``axi``) becomes ``m_axi_<signal>`` (``m_axi_<port>_<signal>`` if it is not
  called ``axi``): ``m_axi_awaddr``, ``m_axi_rdata``, ...
* plain signals keep their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FLAG_FIELDS", "AxisPort", "axis_ports", "axis_wrapper", "filelist", "fusesoc_core", "wrapper_name"]

#: Payload fields that travel as AXI4-Stream side-band signals instead of ``tdata``.
FLAG_FIELDS = {"last": "tlast", "switch": "tuser", "transpose": "tuser"}


def wrapper_name(toplevel: str) -> str:
    """The module (and file stem) of the AXI4-Stream wrapper of ``toplevel``."""
    return f"{toplevel}_axis"


@dataclass(frozen=True)
class AxisPort:
    """How one stream port of a block maps onto AXI4-Stream signals.

    Built from the port's entry in the JSON sidecar with :meth:`from_description`. ``data`` lists
    ``(payload_offset, width, tdata_offset)`` of every field that goes into ``tdata``; ``user`` the payload
    offsets of the ``tuser`` bits (bit ``i`` of ``tuser`` is ``user[i]``); ``last`` the payload offset of the
    ``tlast`` field or ``None``.
    """

    port: str
    direction: str  # "in": s_axis (the block consumes it), "out": m_axis
    payload_bits: int
    verilog: Mapping[str, str]
    data: tuple[tuple[int, int, int], ...]
    user: tuple[int, ...]
    user_names: tuple[str, ...]
    last: int | None

    @classmethod
    def from_description(cls, port: str, description: Mapping) -> AxisPort:
        if description.get("kind") != "stream":
            raise ValueError(f"port {port} is not a stream (kind {description.get('kind')!r})")
        data, user, user_names, last, tdata_offset = [], [], [], None, 0
        for field in sorted(description["fields"], key=lambda field: field["offset"]):
            flag = FLAG_FIELDS.get(field["name"]) if field["width"] == 1 else None
            if flag == "tlast":
                last = field["offset"]
            elif flag == "tuser":
                user.append(field["offset"])
                user_names.append(field["name"])
            else:
                data.append((field["offset"], field["width"], tdata_offset))
                tdata_offset += field["width"]
        return cls(port=port, direction=description["direction"], payload_bits=description["payload_bits"],
                   verilog=dict(description["verilog"]), data=tuple(data), user=tuple(user),
                   user_names=tuple(user_names), last=last)

    @property
    def prefix(self) -> str:
        """``s_axis_<port>`` or ``m_axis_<port>``: ``cocotbext.axi.AxiStreamBus.from_prefix(dut, prefix)``."""
        return f"{'s' if self.direction == 'in' else 'm'}_axis_{self._identifier}"

    @property
    def _identifier(self) -> str:
        """The port name as one Verilog identifier piece (an array element ``read_data__0`` is ``read_data_0``)."""
        return self.port.replace("__", "_")

    @property
    def data_bits(self) -> int:
        return sum(width for _, width, _ in self.data)

    @property
    def tdata_width(self) -> int:
        """``tdata``'s width: the data bits rounded up to whole bytes (at least one)."""
        return max(8, -(-self.data_bits // 8) * 8)

    def to_axis(self, payload: int) -> tuple[int, int, int]:
        """The Amaranth payload ``payload`` as ``(tdata, tlast, tuser)``."""
        tdata = 0
        for offset, width, tdata_offset in self.data:
            tdata |= ((payload >> offset) & ((1 << width) - 1)) << tdata_offset
        tuser = sum(((payload >> offset) & 1) << bit for bit, offset in enumerate(self.user))
        tlast = (payload >> self.last) & 1 if self.last is not None else 0
        return tdata, tlast, tuser

    def from_axis(self, tdata: int, tlast: int = 0, tuser: int = 0) -> int:
        """The Amaranth payload carried by ``(tdata, tlast, tuser)`` (padding bits of ``tdata`` ignored)."""
        payload = 0
        for offset, width, tdata_offset in self.data:
            payload |= ((tdata >> tdata_offset) & ((1 << width) - 1)) << offset
        for bit, offset in enumerate(self.user):
            payload |= ((tuser >> bit) & 1) << offset
        if self.last is not None:
            payload |= (tlast & 1) << self.last
        return payload

    def _declarations(self) -> list[str]:
        inward = self.direction == "in"
        source, sink = ("input ", "output") if inward else ("output", "input ")
        lines = [f"{source} logic [{self.tdata_width - 1}:0] {self.prefix}_tdata",
                 f"{source} logic {self.prefix}_tvalid",
                 f"{sink} logic {self.prefix}_tready"]
        if self.last is not None:
            lines.append(f"{source} logic {self.prefix}_tlast")
        if self.user:
            lines.append(f"{source} logic [{len(self.user) - 1}:0] {self.prefix}_tuser")
        return lines

    def _runs(self) -> list[tuple[int, int, int]]:
        """:attr:`data` with neighbours that are contiguous in both the payload and ``tdata`` merged."""
        runs: list[tuple[int, int, int]] = []
        for offset, width, tdata_offset in self.data:
            if runs and runs[-1][0] + runs[-1][1] == offset and runs[-1][2] + runs[-1][1] == tdata_offset:
                runs[-1] = (runs[-1][0], runs[-1][1] + width, runs[-1][2])
            else:
                runs.append((offset, width, tdata_offset))
        return runs

    def _payload_expression(self) -> str:
        """The payload as a concatenation of the AXI signals (most significant piece first)."""
        pieces = {offset: f"{self.prefix}_tdata[{tdata_offset + width - 1}:{tdata_offset}]"
                  for offset, width, tdata_offset in self._runs()}
        pieces.update({offset: f"{self.prefix}_tuser[{bit}]" for bit, offset in enumerate(self.user)})
        if self.last is not None:
            pieces[self.last] = f"{self.prefix}_tlast"
        return "{" + ", ".join(pieces[offset] for offset in sorted(pieces, reverse=True)) + "}"

    def _assignments(self) -> list[str]:
        payload = f"{self._identifier}_payload"
        lines = [f"logic [{self.payload_bits - 1}:0] {payload};"]
        if self.direction == "in":
            lines.append(f"assign {payload} = {self._payload_expression()};")
            return lines
        pad = self.tdata_width - self.data_bits
        data = [f"{payload}[{offset + width - 1}:{offset}]" for offset, width, _ in reversed(self._runs())]
        if pad:
            data.insert(0, f"{pad}'b0")
        lines.append(f"assign {self.prefix}_tdata = {{{', '.join(data)}}};")
        if self.last is not None:
            lines.append(f"assign {self.prefix}_tlast = {payload}[{self.last}];")
        if self.user:
            bits = ", ".join(f"{payload}[{offset}]" for offset in reversed(self.user))
            lines.append(f"assign {self.prefix}_tuser = {{{bits}}};")
        return lines

    def _connections(self) -> list[str]:
        valid, ready = self.verilog.get("valid"), self.verilog.get("ready")
        lines = [f".{self.verilog['payload']}({self._identifier}_payload)"]
        if valid is not None:
            lines.append(f".{valid}({self.prefix}_tvalid)")
        if ready is not None:
            lines.append(f".{ready}({self.prefix}_tready)")
        return lines


def axis_ports(record: Mapping) -> dict[str, AxisPort]:
    """Every stream port of a generated block (its JSON record) as an :class:`AxisPort`, by port name."""
    return {name: AxisPort.from_description(name, port) for name, port in record["ports"].items()
            if port["kind"] == "stream"}


def _range(bits: int) -> str:
    return f" [{bits - 1}:0]" if bits > 1 else ""


def _axi_name(port: str, signal: str, direction: str) -> str:
    side = "m" if direction == "out" else "s"
    return f"{side}_axi_{signal}" if port == "axi" else f"{side}_axi_{port}_{signal}"


def axis_wrapper(record: Mapping) -> str:
    """SystemVerilog text of the AXI4-Stream wrapper ``<toplevel>_axis`` around the block of ``record``.

    ``record`` is the JSON sidecar :func:`wavecore.hdl.registry.generate_files` writes. Stream ports tie
    ``tvalid``/``tready`` straight to the block's ``valid``/``ready``, so the wrapper adds no latency and no
    logic beyond wiring; ``aresetn`` is inverted into the block's synchronous reset.
    """
    toplevel = record["toplevel"]
    streams = axis_ports(record)
    declarations = ["input  logic aclk", "input  logic aresetn"]
    body, connections = [], [".clk(aclk)", ".rst(~aresetn)"]
    for name, port in record["ports"].items():
        if name in streams:
            declarations += streams[name]._declarations()
            body += streams[name]._assignments()
            connections += streams[name]._connections()
        elif port["kind"] == "signal":
            kind = "input " if port["direction"] == "in" else "output"
            declarations.append(f"{kind} logic{_range(port['bits'])} {name}")
            connections.append(f".{port['verilog']}({name})")
        else:  # an interface: the DMA's AXI4 manager port
            for signal, member in port["signals"].items():
                kind = "input " if member["direction"] == "in" else "output"
                wire = _axi_name(name, signal, port["direction"])
                declarations.append(f"{kind} logic{_range(member['bits'])} {wire}")
                connections.append(f".{member['verilog']}({wire})")
    lines = [
        f"// AXI4-Stream wrapper of {toplevel} (wavecore block {record['block']}); generated from "
        f"{toplevel}.json by wavecore generate, do not edit.",
        "// Streams: s_axis_* into the block, m_axis_* out of it; tdata holds the payload's data fields from bit 0,",
        "// tlast the 'last' flag, tuser the 'switch'/'transpose' flags. aresetn is active low and synchronous.",
        f"module {wrapper_name(toplevel)} (",
        ",\n".join(f"  {declaration}" for declaration in declarations),
        ");",
        *(f"  {line}" for line in body),
        f"  {toplevel} core (",
        ",\n".join(f"    {connection}" for connection in connections),
        "  );",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


def _lint_options() -> list[str]:
    """Verilator options switching off the warnings Amaranth's Verilog raises by design (the list and the reasons
    are :data:`wavecore.verif.runner.VERILATOR_WARNINGS`, which the simulation builds use too)."""
    from wavecore.verif.runner import VERILATOR_WARNINGS

    return [f"-Wno-{warning}" for warning in VERILATOR_WARNINGS]


def fusesoc_core(record: Mapping, *, wrapper: str | None = None, version: str = "0.1.0") -> str:
    """FuseSoC CAPI2 text for the generated files of ``record``.

    The core is named ``wavecore:generated:<toplevel>:<version>``. Targets: ``default`` (the sources, toplevel
    the wrapper when there is one), ``lint`` (Verilator ``--lint-only`` with the warnings Amaranth's Verilog
    raises by design switched off) and ``sim`` (Icarus elaboration).
    """
    toplevel = record["toplevel"]
    top = wrapper or toplevel
    filesets = ["rtl", "wrapper"] if wrapper else ["rtl"]
    lines = [
        "CAPI=2:",
        f"name: wavecore:generated:{toplevel}:{version}",
        f"description: wavecore {record['block']} block ({toplevel}), generated by wavecore generate",
        "",
        "filesets:",
        "  rtl:",
        "    files:",
        f"      - {record['verilog']}",
        "    file_type: verilogSource",
    ]
    if wrapper:
        lines += ["  wrapper:", "    files:", f"      - {wrapper}.sv", "    file_type: systemVerilogSource"]
    options = ", ".join(_lint_options())
    lines += [
        "",
        "targets:",
        "  default: &default",
        f"    filesets: [{', '.join(filesets)}]",
        f"    toplevel: {top}",
        "  lint:",
        "    <<: *default",
        "    default_tool: verilator",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        f"        verilator_options: [{options}]",
        "  sim:",
        "    <<: *default",
        "    default_tool: icarus",
        "    tools:",
        "      icarus:",
        "        iverilog_options: [-g2012]",
        "",
    ]
    return "\n".join(lines)


def filelist(record: Mapping, *, wrapper: str | None = None) -> str:
    """A plain filelist, one source per line in compile order, names relative to the list's directory
    (``verilator -F <top>.f`` resolves them there; other tools read it from that directory)."""
    return "\n".join([record["verilog"], *([f"{wrapper}.sv"] if wrapper else []), ""])
