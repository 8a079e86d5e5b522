"""Design-space sweeps: a grid or list of accelerator and workload parameters, each point a task on Dask.

* :mod:`wavecore.sweep.spec`: the sweep file (parameters, grid/points, evaluators, report settings), point ids;
* :mod:`wavecore.sweep.evaluators`: the planner, RTL (Verilator) and synthesis evaluators;
* :mod:`wavecore.sweep.table`: the resumable CSV result table;
* :mod:`wavecore.sweep.engine`: the Dask engine (:func:`run_sweep`);
* :mod:`wavecore.sweep.report`: Pareto-optimal points, plots, ``report.md``.

``wavecore sweep FILE -o DIR`` is :func:`load_sweep` then :func:`run_sweep`; the format and examples are in
``docs/sweeps.md``.
"""

from wavecore.sweep.engine import SweepResult, run_sweep
from wavecore.sweep.evaluators import EVALUATORS, Evaluator, PointFailed
from wavecore.sweep.report import pareto_optimal
from wavecore.sweep.spec import PARAMETERS, Point, SweepError, SweepSpec, load_sweep, parse_sweep

__all__ = [
    "EVALUATORS",
    "PARAMETERS",
    "Evaluator",
    "Point",
    "PointFailed",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "load_sweep",
    "parse_sweep",
    "pareto_optimal",
    "run_sweep",
]
