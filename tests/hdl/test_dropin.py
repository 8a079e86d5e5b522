"""hdl/dropin.py: the FuseSoC core, the filelist and the AXI4-Stream wrapper `wavecore generate` writes.

FuseSoC (the pinned version of the test extra) lints generated cores with Verilator from a local cores root,
offline; the systolic array's wrapper runs random GEMMs on Icarus and Verilator through cocotbext-axi's
AxiStreamSource/AxiStreamSink (``wavecore.verif.tb_systolic`` with ``wavecore.verif.axis.AxisPorts``), checked
against ``reference_gemm``.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from wavecore.hdl.dropin import AxisPort, axis_ports
from wavecore.hdl.registry import generate_files
from wavecore.verif.runner import build, simulator_params

SYSTOLIC_OS = {"block": "systolic", "rows": 3, "cols": 4, "in_width": 8, "acc_width": 20}
SYSTOLIC_WS = {"block": "systolic", "rows": 3, "cols": 2, "in_width": 6, "acc_width": 16,
               "dataflow": "weight_stationary", "overflow": "saturate"}


def _generate(config, directory, **options):
    files = generate_files(config, directory, wrapper="sv", **options)
    return files, json.loads(files[1].read_text())


def _ports(text: str) -> dict[str, tuple[str, int]]:
    """``name -> (direction, bits)`` of the module header of ``text``."""
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+logic\s*(?:\[(\d+):0\])?\s*(\w+)", text, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


def test_generate_writes_core_filelist_and_wrapper_beside_verilog_and_json(tmp_path):
    files, record = _generate(SYSTOLIC_OS, tmp_path, toplevel="gemm")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "gemm.core", "gemm.f", "gemm.json", "gemm.v", "gemm_axis.sv"]
    assert [path.name for path in files] == ["gemm.v", "gemm.json"]
    assert files.core.name == "gemm.core" and files.wrapper.name == "gemm_axis.sv"
    assert files.filelist.read_text().splitlines() == ["gemm.v", "gemm_axis.sv"]
    core_text = files.core.read_text()
    assert core_text.startswith("CAPI=2:\n")
    core = yaml.safe_load(core_text)
    assert core["name"] == "wavecore:generated:gemm:0.1.0"
    assert core["filesets"]["rtl"] == {"files": ["gemm.v"], "file_type": "verilogSource"}
    assert core["filesets"]["wrapper"] == {"files": ["gemm_axis.sv"], "file_type": "systemVerilogSource"}
    assert core["targets"]["lint"]["toplevel"] == "gemm_axis"
    assert core["targets"]["lint"]["tools"]["verilator"]["mode"] == "lint-only"
    # Without a wrapper: no .sv, the core's toplevel is the block itself.
    plain = generate_files(SYSTOLIC_OS, tmp_path / "plain")
    assert plain.wrapper is None and plain.filelist.read_text() == "systolic.v\n"
    assert yaml.safe_load(plain.core.read_text())["targets"]["default"]["toplevel"] == "systolic"


def test_wrapper_ports_follow_axi4_stream_names_and_widths(tmp_path):
    files, _ = _generate(SYSTOLIC_OS, tmp_path)
    ports = _ports(files.wrapper.read_text())
    # a: 3 x int8 + last -> 24-bit tdata + tlast; b: 4 x int8 -> 32 bits; c: 4 x 20-bit accumulators = 80 bits.
    assert ports == {
        "aclk": ("input", 1), "aresetn": ("input", 1),
        "s_axis_a_tdata": ("input", 24), "s_axis_a_tvalid": ("input", 1), "s_axis_a_tready": ("output", 1),
        "s_axis_a_tlast": ("input", 1),
        "s_axis_b_tdata": ("input", 32), "s_axis_b_tvalid": ("input", 1), "s_axis_b_tready": ("output", 1),
        "m_axis_c_tdata": ("output", 80), "m_axis_c_tvalid": ("output", 1), "m_axis_c_tready": ("input", 1),
    }
    files, _ = _generate(SYSTOLIC_WS, tmp_path / "ws")
    ports = _ports(files.wrapper.read_text())
    # WS: a carries 3 x 6 bits (18 -> 24 with byte padding) and switch in tuser; w: 3 lanes (max(rows, cols))
    # x 6 bits + transpose in tuser; psum and c: 2 x 16 bits.
    assert ports["s_axis_a_tdata"] == ("input", 24) and ports["s_axis_a_tuser"] == ("input", 1)
    assert ports["s_axis_w_tdata"] == ("input", 24) and ports["s_axis_w_tuser"] == ("input", 1)
    assert ports["s_axis_psum_tdata"] == ("input", 32) and ports["m_axis_c_tdata"] == ("output", 32)
    assert not any(name.endswith("tlast") for name in ports)


def test_dma_wrapper_names_its_axi_manager_port_m_axi(tmp_path):
    from amaranth import Shape
    from amaranth.lib import wiring

    from wavecore.hdl.memory.dma import axi4_signature

    files, _ = _generate({"block": "dma", "address_width": 40, "data_width": 128}, tmp_path)
    ports = _ports(files.wrapper.read_text())
    signature = axi4_signature(address_width=40, data_width=128)
    expected = {f"m_axi_{name}": ("output" if member.flow == wiring.Out else "input", Shape.cast(member.shape).width)
                for name, member in signature.members.items()}
    assert {name: port for name, port in ports.items() if name.startswith("m_axi_")} == expected
    assert ports["m_axi_awaddr"] == ("output", 40) and ports["m_axi_rdata"] == ("input", 128)
    assert ports["s_axis_read_command_tdata"][0] == "input" and ports["m_axis_read_data_tdata"][0] == "output"
    assert ports["bytes_read"] == ("output", 48) and ports["clear_counters"] == ("input", 1)


def test_axis_port_packing_places_flags_in_tlast_and_tuser(tmp_path):
    _, record = _generate(SYSTOLIC_OS, tmp_path)
    a = axis_ports(record)["a"]
    assert (a.prefix, a.tdata_width, a.last, a.user) == ("s_axis_a", 24, 24, ())
    # lanes 0x11, 0x22, 0x33 with last: payload bit 24 -> tlast, lanes unchanged in tdata.
    assert a.to_axis(0x1332211) == (0x332211, 1, 0)
    _, record = _generate(SYSTOLIC_WS, tmp_path / "ws")
    ports = axis_ports(record)
    assert ports["a"].user == (18,) and ports["a"].user_names == ("switch",) and ports["a"].last is None
    assert ports["a"].to_axis((1 << 18) | 0x2_0001) == (0x2_0001, 0, 1)
    # A flag in the middle of the payload (as the im2col feeder's 'last' between pad and channel).
    middle = AxisPort.from_description("x", {
        "kind": "stream", "direction": "out", "payload_bits": 12, "verilog": {"payload": "x__payload"},
        "fields": [{"name": "data", "offset": 0, "width": 4}, {"name": "last", "offset": 4, "width": 1},
                   {"name": "channel", "offset": 5, "width": 7}]})
    assert middle.to_axis(0b1010101_1_0110) == (0b1010101_0110, 1, 0)
    assert middle.tdata_width == 16
    random = np.random.default_rng(5)
    for port in [*ports.values(), middle]:
        for payload in random.integers(0, 1 << port.payload_bits, 50, dtype=np.uint64).tolist():
            assert port.from_axis(*port.to_axis(int(payload))) == payload


def _fusesoc(directory, target_core: str, tmp_path, target: str = "lint") -> subprocess.CompletedProcess:
    # An empty configuration file and private XDG directories: nothing is read from or written to $HOME, and no
    # library is fetched (the local cores root is the only library).
    config = tmp_path / "fusesoc.conf"
    config.write_text("")
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
                       XDG_DATA_HOME=str(tmp_path / "xdg"))
    command = [sys.executable, "-m", "fusesoc.main", "--config", str(config), "--cores-root", str(directory),
               "run", "--build-root", str(tmp_path / "fusesoc-build"), "--target", target, target_core]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.parametrize("config", [SYSTOLIC_WS, {"block": "dma"}, {"block": "feeder", "lanes": 4, "banks": 4}],
                         ids=["systolic", "dma", "feeder"])
def test_fusesoc_lints_a_generated_core_with_verilator(config, tmp_path):
    _generate(config, tmp_path / "cores")
    result = _fusesoc(tmp_path / "cores", f"wavecore:generated:{config['block']}", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lint-only" in (tmp_path / "fusesoc-build").joinpath(
        f"wavecore_generated_{config['block']}_0.1.0", "lint-verilator", "Makefile").read_text()


def test_fusesoc_sim_target_compiles_and_runs_the_core_on_icarus(tmp_path):
    _generate(SYSTOLIC_OS, tmp_path / "cores")
    result = _fusesoc(tmp_path / "cores", "wavecore:generated:systolic", tmp_path, target="sim")
    assert result.returncode == 0, result.stdout + result.stderr
    work = tmp_path / "fusesoc-build" / "wavecore_generated_systolic_0.1.0" / "sim-icarus"
    assert "iverilog" in (work / "Makefile").read_text() and (work / "icarus.log").exists()


def test_fusesoc_lint_fails_on_a_broken_wrapper(tmp_path):
    files, _ = _generate(SYSTOLIC_OS, tmp_path / "cores")
    text = files.wrapper.read_text().replace("assign a_payload =", "assign a_payload = undeclared_signal |")
    files.wrapper.write_text(text)
    result = _fusesoc(tmp_path / "cores", "wavecore:generated:systolic", tmp_path)
    assert result.returncode != 0
    assert "undeclared_signal" in result.stdout + result.stderr


@pytest.mark.parametrize("simulator", simulator_params())
@pytest.mark.parametrize("config", [SYSTOLIC_OS, SYSTOLIC_WS], ids=["os", "ws"])
def test_axis_wrapper_computes_the_golden_gemm_through_cocotbext_axi(config, simulator, tmp_path):
    files, record = _generate(config, tmp_path)
    design = build(files.wrapper.read_text(), toplevel="systolic_axis", simulator=simulator,
                   extra_sources=[files[0]])
    rows, cols = record["parameters"]["rows"], record["parameters"]["cols"]
    shapes = [[1, 1, 1], [2 * rows + 1, 5, cols + 1], [rows, 2 * rows + 3, 2 * cols]]
    testcases = ["random_gemms", "result_latency_matches_docstring"]
    design.run("wavecore.verif.tb_systolic", testcase=testcases,
               params={"config": record["parameters"], "axis": record, "shapes": shapes, "idle": 0.3,
                       "backpressure": 0.4, "latency": record["timing"]["result_latency"]})
