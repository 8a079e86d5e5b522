"""Streaming engines of Occam pipeline stages (pixels in raster order over ``lib.stream``): line-buffer
windows (:mod:`.window`), convolution (:mod:`.conv`), max/avg pooling (:mod:`.pool`), global average pooling
(:mod:`.global_pool`), residual add (:mod:`.add`), ReLU (:mod:`.relu`), concatenation (:mod:`.concat`), fork
and join (:mod:`.fork`, :mod:`.join`); the links between FPGAs (:mod:`.link`), STAP replication
(:mod:`.stap`) and the pipeline stage that wires a partition's engines together (:mod:`.pipeline_stage`)."""
