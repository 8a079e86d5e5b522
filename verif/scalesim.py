"""SCALE-Sim 3.0.0 GEMM cycle counts, run in a private virtual environment.

``scalesim==3.0.0`` needs ``numpy<2.4`` (with NumPy 2.4.6 ``double_buffered_scratchpad_mem.py:307`` raises
``TypeError: only 0-dimensional arrays can be converted to Python scalars``; 2.3.5 works), while the project's venv
has NumPy 2.4. So SCALE-Sim runs in its own venv, ``build/scalesim-venv``, created on first use with
``python3 -m venv`` and pip, and is driven through a subprocess. Results are cached in
``build/scalesim-cache.json``; a file lock makes concurrent test processes (and the systolic-array benchmark, which
reuses this module) share the venv and cache safely.

Conventions (read from SCALE-Sim's ``topology_utils.load_arrays_gemm`` and ``calc_spatio_temporal_params`` and
checked with probe runs): a user GEMM
``C[M, N] = A[M, K] @ B[K, N]`` is written as the topology row ``name, M, N, K,``; the
configuration uses 8 MiB SRAMs and ``InterfaceBandwidth = CALC`` so there are no stall cycles, and the
count returned is SCALE-Sim's per-layer compute "total cycles" (not the column with DRAM prefetch).

:func:`scalesim_reports` runs SCALE-Sim's own command line on a topology CSV and ``.cfg`` in the same venv and
returns its ``COMPUTE_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv`` rows (the SCALE-Sim interop cross-check of
``wavecore plan --csv``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from wavecore.files import write_atomic
from wavecore.paths import build_root

__all__ = ["DATAFLOWS", "SCALESIM_REQUIREMENTS", "scalesim_gemm_cycles", "scalesim_python", "scalesim_reports"]

DATAFLOWS = ("os", "ws")
SCALESIM_REQUIREMENTS = ("scalesim==3.0.0", "numpy<2.4")

_BUILD = build_root()
_VENV = _BUILD / "scalesim-venv"
_CACHE = _BUILD / "scalesim-cache.json"
_LOCK = _BUILD / "scalesim.lock"

_CONFIG = """[general]
run_name = wavecore

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 8192
FilterSramSzkB = 8192
OfmapSramSzkB = 8192
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = 10
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""

# Runs inside the SCALE-Sim venv: reads {"rows","cols","dataflow","gemms"} on stdin, prints cycles as JSON.
_DRIVER = r"""
import contextlib, io, json, os, sys, tempfile
from scalesim.scale_sim import scalesim
job = json.load(sys.stdin)
with tempfile.TemporaryDirectory() as work:
    cfg = os.path.join(work, "wavecore.cfg")
    with open(cfg, "w") as f:
        f.write(job["config"])
    topo = os.path.join(work, "gemms.csv")
    with open(topo, "w") as f:
        f.write("Layer, M, N, K,\n")
        for i, (m, k, n) in enumerate(job["gemms"]):
            f.write(f"g{i}, {m}, {n}, {k},\n")
    layout = os.path.join(work, "layout.csv")
    with open(layout, "w") as f:
        f.write("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, "
                "Filter Height Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, "
                "Num Filter Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, "
                "Channel Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, "
                "Channel Interline Order,\n")
    sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                   input_type_gemm=True)
    with contextlib.redirect_stdout(io.StringIO()):
        sim.run_scale(top_path=work)
    cycles = [int(layer.get_compute_report_items()[1]) for layer in sim.runner.single_layer_sim_object_list]
print(json.dumps(cycles))
"""


def scalesim_python() -> Path:
    """Return the SCALE-Sim venv's interpreter, creating the venv on first use (needs PyPI access)."""
    python = _VENV / "bin" / "python"
    _BUILD.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_LOCK) + ".venv"):
        probe = [str(python), "-c", "import scalesim.scale_sim, numpy"]
        if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
            return python
        subprocess.run([sys.executable, "-m", "venv", str(_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *SCALESIM_REQUIREMENTS],
            check=True,
            capture_output=True,
        )
    return python


def _validate(gemms, rows, cols, dataflow):
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    checked = []
    for gemm in gemms:
        if len(gemm) != 3 or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in gemm):
            raise ValueError(f"each GEMM must be (M, K, N) with positive integers, not {gemm!r}")
        checked.append(tuple(int(d) for d in gemm))
    return checked


def scalesim_gemm_cycles(gemms, rows: int, cols: int, dataflow: str) -> list[int]:
    """SCALE-Sim's total cycles for each GEMM ``(M, K, N)`` on a ``rows`` x ``cols`` array.

    Parameters
    ----------
    gemms : list of (M, K, N)
        ``C[M, N] = A[M, K] @ B[K, N]``.
    rows, cols : int
        Array height (SCALE-Sim ``ArrayHeight``) and width (``ArrayWidth``).
    dataflow : {"os", "ws"}
        Output- or weight-stationary.

    Returns
    -------
    list of int
        One count per GEMM, in order. Cached by (rows, cols, dataflow, GEMM) in ``build/scalesim-cache.json``.
    """
    gemms = _validate(gemms, rows, cols, dataflow)
    key = lambda gemm: f"{rows}x{cols}:{dataflow}:{gemm[0]},{gemm[1]},{gemm[2]}"  # noqa: E731
    _BUILD.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_LOCK)):
        cache = json.loads(_CACHE.read_text()) if _CACHE.exists() else {}
        missing = sorted({gemm for gemm in gemms if key(gemm) not in cache})
        if missing:
            python = scalesim_python()
            job = {"config": _CONFIG.format(rows=rows, cols=cols, dataflow=dataflow), "gemms": missing}
            result = subprocess.run(
                [str(python), "-c", _DRIVER],
                input=json.dumps(job),
                text=True,
                capture_output=True,
                cwd=_BUILD,
            )
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"SCALE-Sim failed: {tail[0]}")
            for gemm, cycles in zip(missing, json.loads(result.stdout.strip().splitlines()[-1])):
                cache[key(gemm)] = cycles
            write_atomic(_CACHE, json.dumps(cache, indent=0, sort_keys=True))
        return [cache[key(gemm)] for gemm in gemms]


# Runs SCALE-Sim's own command line (``python -m scalesim.scale``) on a topology and .cfg, then prints its
# COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv as {"compute": [...], "access": [...]} rows keyed by header.
_REPORT_DRIVER = r"""
import csv, glob, json, os, subprocess, sys, tempfile
job = json.load(sys.stdin)
with tempfile.TemporaryDirectory() as work:
    layout = os.path.join(work, "layout.csv")
    with open(layout, "w") as f:
        f.write("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, "
                "Filter Height Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, "
                "Num Filter Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, "
                "Channel Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, "
                "Channel Interline Order,\n")
    command = [sys.executable, "-m", "scalesim.scale", "-c", job["config"], "-t", job["topology"], "-l", layout,
               "-p", work, "-i", job["input_type"], "-s", "N"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit((done.stderr or done.stdout).strip().splitlines()[-1])
    result = {}
    for key, name in (("compute", "COMPUTE_REPORT.csv"), ("access", "DETAILED_ACCESS_REPORT.csv")):
        (path,) = glob.glob(os.path.join(work, "*", name))
        with open(path) as f:
            rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
        header = [cell for cell in rows[0] if cell]
        result[key] = [dict(zip(header, (float(cell) for cell in row if cell))) for row in rows[1:] if row]
print(json.dumps(result))
"""


def scalesim_reports(topology, config, *, gemm: bool = False) -> dict:
    """Run SCALE-Sim 3.0.0's command line on a topology CSV and ``.cfg``; return its per-layer reports.

    Returns ``{"compute": rows, "access": rows}``: the rows of ``COMPUTE_REPORT.csv`` and
    ``DETAILED_ACCESS_REPORT.csv``, each a dict from SCALE-Sim's column name to its value (floats). ``gemm``
    selects the ``Layer, M, N, K,`` topology form (SCALE-Sim's ``-i gemm``). Not cached: SCALE-Sim simulates
    every cycle, so keep topologies small.
    """
    job = {"topology": str(Path(topology).resolve()), "config": str(Path(config).resolve()),
           "input_type": "gemm" if gemm else "conv"}
    _BUILD.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(scalesim_python()), "-c", _REPORT_DRIVER], input=json.dumps(job), text=True, capture_output=True,
        cwd=_BUILD,
    )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"SCALE-Sim failed: {tail[0]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
