"""Pack and unpack Python values into the bit patterns of Amaranth ``lib.data`` layouts.

``pack(layout, value)``: ``value`` is an int for a plain shape, a dict for a ``StructLayout`` (missing
fields are 0), a sequence for an ``ArrayLayout``; nested freely. ``unpack`` is the inverse and returns
signed ints for signed shapes. Testbenches use these so payload layouts are defined once, in the
component.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack"]


def pack(layout, value) -> int:
    if isinstance(layout, data.ArrayLayout):
        element_width = Shape.cast(layout.elem_shape).width
        return sum(
            pack(layout.elem_shape, item) << (index * element_width) for index, item in enumerate(value)
        )
    if isinstance(layout, data.Layout):
        unknown = set(value) - {name for name, _ in layout}
        if unknown:
            raise ValueError(f"layout has no field {sorted(unknown)[0]!r}")
        return sum(pack(field.shape, value[name]) << field.offset for name, field in layout if name in value)
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)


def unpack(layout, bits: int):
    bits = int(bits)
    if isinstance(layout, data.ArrayLayout):
        element_width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (index * element_width)) for index in range(layout.length)]
    if isinstance(layout, data.Layout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    shape = Shape.cast(layout)
    value = bits & ((1 << shape.width) - 1)
    if shape.signed and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value
