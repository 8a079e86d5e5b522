"""Planners and analytical schedule models.

* :mod:`wavecore.golden.plan.mbs`: layer-by-layer baseline, MBS greedy and optimal (DP) grouping;
* :mod:`wavecore.golden.plan.bnff`: BN/GN fission-fusion pass counts and savings;
* :mod:`wavecore.golden.plan.occam`: Occam closures, chain/DAG DP, brute force, STAP,
  :func:`~wavecore.golden.plan.occam.partition`;
* :mod:`wavecore.golden.plan.lrcnn`: LR-CNN 2PS/OverL row cuts, activation-memory estimates, row-block executor;
* :mod:`wavecore.golden.plan.caterpillar`: CATERPILLAR cost kit (MACs, weight accesses, memory fit, energy, area);
* :mod:`wavecore.golden.plan.report`: the ``wavecore plan`` table, JSON and ``report.md``;
* :mod:`wavecore.golden.plan.scalesim_io`: SCALE-Sim topology/``.cfg`` input and reports in its columns.

The traffic and cycle models live in :mod:`golden.plan.traffic` and :mod:`golden.plan.cycles`. Conventions and JSON
field names: ``docs/planner.md``.
"""
