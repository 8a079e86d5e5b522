"""Simulator x case parameters for cocotb tests within the default-run time budget.

Every case runs on Icarus; the first case also runs on Verilator in the default run, the others on
Verilator only in the long tier (``@pytest.mark.slow``), so each block is still checked on both simulators
by default without paying a Verilator build per configuration.
"""

import pytest

from wavecore.verif.runner import simulator_params


def simulator_cases(cases, *, verilator_default=1):
    """``pytest.param(simulator, *case)`` for every simulator and case (see the module docstring)."""
    params = []
    for index, case in enumerate(cases):
        for simulator in simulator_params():
            name = simulator.values[0]
            marks = list(simulator.marks)
            if name == "verilator" and index >= verilator_default:
                marks.append(pytest.mark.slow)
            params.append(pytest.param(name, *case, marks=marks, id="-".join([name, *map(str, case)])))
    return params
