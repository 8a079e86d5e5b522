"""The DRAM memory map of a compiled training step, and how tensors are laid out in it.

A region is a named, 64-byte-aligned byte range holding one tensor in NCHW order (parameters in their
PyTorch shape), little-endian two's complement elements of the region's *space*: ``scratchpad`` elements
are operand-width (1 byte for up to 8 bits, 2 for up to 16), ``accumulator`` elements accumulator-width
(4 bytes up to 32 bits, else 8); ``bytes`` regions (the program) are plain bytes. ``kind`` says what the
region holds: ``program``, ``input``, ``labels``,
``parameter``, ``velocity``, ``activation``, ``gradient`` (a partial activation gradient written by one
consumer group), ``weight_grad`` (the raw weight-gradient accumulator), ``loss``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ALIGNMENT", "MemoryMap", "Region", "element_bytes"]

ALIGNMENT = 64


def element_bytes(width: int) -> int:
    """Bytes an element of ``width`` bits occupies in DRAM: the next of 1, 2, 4, 8."""
    for size in (1, 2, 4, 8):
        if width <= 8 * size:
            return size
    raise ValueError(f"width must be at most 64 bits, not {width}")


@dataclass(frozen=True)
class Region:
    name: str
    kind: str
    offset: int
    shape: tuple
    space: str
    element_bytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def size(self) -> int:
        return self.elements * self.element_bytes

    @property
    def stop(self) -> int:
        return self.offset + self.size


class MemoryMap:
    """Regions in allocation order; :meth:`write`/:meth:`read` convert tensors to and from the image."""

    def __init__(self, *, operand_bytes: int, accumulator_bytes: int):
        self.operand_bytes = operand_bytes
        self.accumulator_bytes = accumulator_bytes
        self.regions: dict[str, Region] = {}
        self.size = 0

    def add(self, name: str, kind: str, shape, space: str = "scratchpad") -> Region:
        if name in self.regions:
            raise ValueError(f"region {name!r} is already in the memory map")
        size = {"scratchpad": self.operand_bytes, "accumulator": self.accumulator_bytes, "bytes": 1}[space]
        region = Region(name, kind, self.size, tuple(int(e) for e in shape), space, size)
        self.regions[name] = region
        self.size = -(-region.stop // ALIGNMENT) * ALIGNMENT
        return region

    def __getitem__(self, name: str) -> Region:
        return self.regions[name]

    def __contains__(self, name: str) -> bool:
        return name in self.regions

    def image(self) -> bytearray:
        return bytearray(self.size)

    @staticmethod
    def encode(values, element_size: int, what: str = "value") -> bytes:
        values = np.asarray(values, dtype=np.int64).ravel()
        low, high = -(1 << (8 * element_size - 1)), (1 << (8 * element_size - 1)) - 1
        if values.size and (values.min() < low or values.max() > high):
            bad = values[(values < low) | (values > high)][0]
            raise ValueError(f"{what}: {bad} does not fit a {element_size}-byte element")
        return values.astype(f"<i{element_size}").tobytes()

    @staticmethod
    def decode(data: bytes, element_size: int) -> np.ndarray:
        return np.frombuffer(bytes(data), dtype=f"<i{element_size}").astype(np.int64)

    def write(self, image: bytearray, name: str, values) -> None:
        region = self.regions[name]
        values = np.asarray(values)
        if values.size != region.elements:
            raise ValueError(f"region {name!r} holds {region.elements} elements, not {values.size}")
        image[region.offset : region.stop] = self.encode(values, region.element_bytes, name)

    def read(self, image, name: str) -> np.ndarray:
        region = self.regions[name]
        return self.decode(image[region.offset : region.stop], region.element_bytes).reshape(region.shape)

    def to_json(self) -> str:
        document = {
            "size": self.size,
            "alignment": ALIGNMENT,
            "operand_bytes": self.operand_bytes,
            "accumulator_bytes": self.accumulator_bytes,
            "regions": [dict(asdict(region), shape=list(region.shape), bytes=region.size)
                        for region in self.regions.values()],
        }
        return json.dumps(document, indent=1)
