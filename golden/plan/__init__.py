"""Planners and analytical schedule models (issue 4).

* :mod:`golden.plan.mbs`: layer-by-layer baseline, MBS greedy and optimal (DP) grouping;
* :mod:`golden.plan.bnff`: BN/GN fission-fusion pass counts and savings;
* :mod:`golden.plan.occam`: Occam closures, chain/DAG DP, brute force, STAP,
  :func:`~golden.plan.occam.partition`;
* :mod:`golden.plan.lrcnn`: LR-CNN 2PS/OverL row cuts, activation-memory estimates, row-block executor;
* :mod:`golden.plan.caterpillar`: CATERPILLAR cost kit (MACs, weight accesses, memory fit, energy, area);
* :mod:`golden.plan.report`: the ``wavecore plan`` table, JSON and ``report.md``.

The traffic and cycle models live in :mod:`golden.traffic` and :mod:`golden.cycles`. Conventions and JSON
field names: ``docs/planner.md``.
"""
