"""The memory system: the banked ping-pong scratchpad (:mod:`.scratchpad`), the AXI4 DMA (:mod:`.dma`), the
operand feeders of the three training GEMMs (:mod:`.feeder` im2col with affine+ReLU on read and input
dilation, :mod:`.weight_feeder` forward and transposed weights, :mod:`.position_feeder` backward-weight
orientation) sharing :mod:`.bank_reader`, and the result writer with accumulate and requantize
(:mod:`.writer`)."""
