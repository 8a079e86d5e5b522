"""Pack and unpack vectors of fixed-width integers into the flat bit-vectors that sit on a bus.

Element ``i`` occupies bits ``[i*width, (i+1)*width)``: the layout of Amaranth's
``data.ArrayLayout(shape, count)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["pack", "unpack"]


def pack(values: Iterable[int], width: int) -> int:
    """Concatenate ``values`` (signed or unsigned) as ``width``-bit fields, element 0 lowest."""
    mask = (1 << width) - 1
    word = 0
    for index, value in enumerate(values):
        word |= (int(value) & mask) << (index * width)
    return word


def unpack(word: int, width: int, count: int, signed: bool) -> np.ndarray:
    """Split ``word`` into ``count`` fields of ``width`` bits (element 0 lowest)."""
    mask = (1 << width) - 1
    word = int(word)
    fields = [(word >> (index * width)) & mask for index in range(count)]
    if signed:
        fields = [field - (1 << width) if field >> (width - 1) else field for field in fields]
    return np.array(fields, dtype=np.int64)
