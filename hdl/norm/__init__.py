"""BatchNorm/GroupNorm datapaths, in the integer arithmetic of ``golden.numerics.NormArithmetic``:
statistics on write (:mod:`.stats`), the per-channel scalar unit (:mod:`.scalar`), affine + ReLU on read
(:mod:`.affine`), backward reductions (:mod:`.backward`), gamma weighting (:mod:`.weighting`) and the input
gradient (:mod:`.dx`); shared ports and pipelines in :mod:`.common`."""
