"""The arithmetic the hardware implements, defined once.

Every generator in ``hdl/`` takes its widths and overflow rules from the objects here, and the golden
model uses the same objects to compute what the hardware must produce, so the two cannot drift apart
(``DESIGN.md``, "numerics").

Integer rules
-------------
* Operands are two's-complement (``signed=True``) or unsigned integers of ``width`` bits.
* Products are exact (a ``2 * width``-bit product never overflows).
* Accumulation is in a register of ``acc_width`` bits. Each product is added in the order the
  hardware adds it (index ``k`` ascending for a dot product); after every addition the register either
  wraps modulo ``2**acc_width`` (``overflow="wrap"``) or clamps to its range (``overflow="saturate"``).
  With ``wrap`` the order does not matter; with ``saturate`` it does, and :meth:`MacArithmetic.matmul`
  follows the hardware order.
* Requantization (:func:`requantize`) divides by a power of two ``2**shift`` with a named rounding mode
  and saturates to the output format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "IntFormat",
    "MacArithmetic",
    "requantize",
]

OVERFLOW_MODES = ("wrap", "saturate")
ROUNDING_MODES = ("floor", "half_up", "half_even", "half_away_from_zero")

# Widths above this cannot be held exactly in int64 after a few additions; we refuse them rather than
# silently switching to slow object arrays.
_MAX_WIDTH = 62


def _check_positive_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be an integer {allowed}, not {value}")
    return value


@dataclass(frozen=True)
class IntFormat:
    """A fixed-width integer format.

    Parameters
    ----------
    width : int
        Number of bits, 1 to 62.
    signed : bool
        Two's complement when true, unsigned otherwise.
    """

    width: int
    signed: bool = True

    def __post_init__(self) -> None:
        _check_positive_int("width", self.width, 1, _MAX_WIDTH)
        if not isinstance(self.signed, bool):
            raise TypeError(f"signed must be a bool, not {self.signed!r}")

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def contains(self, values) -> bool:
        """True when every value is representable."""
        values = np.asarray(values)
        return bool(values.size == 0 or (values.min() >= self.min and values.max() <= self.max))

    def check(self, values, name: str = "value") -> np.ndarray:
        """Return ``values`` as int64, raising ``ValueError`` when one is out of range."""
        array = np.asarray(values)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, not {array.dtype}")
        if not self.contains(array):
            raise ValueError(
                f"{name} has values outside the {self.describe()} range [{self.min}, {self.max}]"
            )
        return array.astype(np.int64)

    def wrap(self, values) -> np.ndarray:
        """Reduce modulo ``2**width`` into the format's range (what a register of this width keeps)."""
        array = np.asarray(values, dtype=np.int64)
        mask = (1 << self.width) - 1
        wrapped = array & mask
        if self.signed:
            wrapped = np.where(wrapped > self.max, wrapped - (1 << self.width), wrapped)
        return wrapped.astype(np.int64)

    def saturate(self, values) -> np.ndarray:
        """Clamp into the format's range."""
        return np.clip(np.asarray(values, dtype=np.int64), self.min, self.max).astype(np.int64)

    def to_unsigned(self, values) -> np.ndarray:
        """The bit pattern of each value as a non-negative integer (how it sits on a bus)."""
        return np.asarray(values, dtype=np.int64) & ((1 << self.width) - 1)

    def from_unsigned(self, bits) -> np.ndarray:
        """Inverse of :meth:`to_unsigned`."""
        return self.wrap(np.asarray(bits, dtype=np.int64))

    def random(self, rng: np.random.Generator, shape, extreme_fraction: float = 0.1) -> np.ndarray:
        """Uniform random values with a fraction forced to the extremes (min, max, 0, -1)."""
        values = rng.integers(self.min, self.max, size=shape, endpoint=True, dtype=np.int64)
        if extreme_fraction > 0:
            extremes = np.array(sorted({self.min, self.max, 0, -1 if self.signed else 1}), dtype=np.int64)
            pick = rng.random(size=shape) < extreme_fraction
            values = np.where(pick, rng.choice(extremes, size=shape), values)
        return values

    def describe(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.width}"


@dataclass(frozen=True)
class MacArithmetic:
    """Multiply-accumulate arithmetic of a processing element.

    Parameters
    ----------
    in_width : int
        Operand width in bits (2 to 18).
    acc_width : int
        Accumulator width in bits, at least ``2 * in_width`` (so one product always fits) and at most 62.
    signed : bool
        Operands and accumulator are two's complement when true.
    overflow : str
        ``"wrap"`` (modulo ``2**acc_width``) or ``"saturate"``, applied after every addition.
    """

    in_width: int = 8
    acc_width: int = 32
    signed: bool = True
    overflow: str = "wrap"

    def __post_init__(self) -> None:
        _check_positive_int("in_width", self.in_width, 2, 18)
        _check_positive_int("acc_width", self.acc_width, 1, _MAX_WIDTH)
        if self.acc_width < 2 * self.in_width:
            raise ValueError(
                f"acc_width must be at least 2 * in_width = {2 * self.in_width}, not {self.acc_width}"
            )
        if not isinstance(self.signed, bool):
            raise TypeError(f"signed must be a bool, not {self.signed!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_MODES)}, not {self.overflow!r}")

    @property
    def operand(self) -> IntFormat:
        return IntFormat(self.in_width, self.signed)

    @property
    def accumulator(self) -> IntFormat:
        return IntFormat(self.acc_width, self.signed)

    @property
    def product_width(self) -> int:
        return 2 * self.in_width

    def add(self, accumulator, addend) -> np.ndarray:
        """One accumulator update: ``accumulator + addend`` followed by the overflow rule."""
        total = np.asarray(accumulator, dtype=np.int64) + np.asarray(addend, dtype=np.int64)
        return self.accumulator.wrap(total) if self.overflow == "wrap" else self.accumulator.saturate(total)

    def matmul(self, a, b, c=None) -> np.ndarray:
        """``c + a @ b`` exactly as the hardware computes it.

        ``a`` is ``M x K``, ``b`` is ``K x N``, ``c`` (``M x N``, default zeros) is the accumulator's
        starting value. Products are added in ascending ``k``.
        """
        a = self.operand.check(a, "a")
        b = self.operand.check(b, "b")
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul needs M x K and K x N operands, got {a.shape} and {b.shape}")
        m, n = a.shape[0], b.shape[1]
        c = np.zeros((m, n), dtype=np.int64) if c is None else self.accumulator.check(c, "c")
        if c.shape != (m, n):
            raise ValueError(f"c must be {m} x {n}, not {c.shape}")
        if self.overflow == "wrap" and self._int64_exact(a.shape[1]):
            # Wrapping is modular, so the order of additions does not matter.
            return self.accumulator.wrap(c + a @ b)
        for k in range(a.shape[1]):
            c = self.add(c, np.outer(a[:, k], b[k, :]))
        return c

    def _int64_exact(self, terms: int) -> bool:
        largest_product = max(abs(self.operand.min), self.operand.max) ** 2
        largest_start = max(abs(self.accumulator.min), self.accumulator.max)
        return largest_start + terms * largest_product < (1 << 62)


def requantize(values, shift: int, out: IntFormat, rounding: str = "half_even") -> np.ndarray:
    """Divide by ``2**shift`` with the named rounding, then saturate to ``out``.

    Rounding modes (``shift > 0``): ``floor`` is an arithmetic right shift; ``half_up`` adds
    ``2**(shift-1)`` then shifts (ties towards +infinity); ``half_even`` rounds ties to the even result;
    ``half_away_from_zero`` rounds ties away from zero. ``shift`` may be zero or negative (a left shift,
    exact before saturation).
    """
    if not isinstance(shift, int | np.integer) or isinstance(shift, bool):
        raise TypeError(f"shift must be an integer, not {shift!r}")
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
    values = np.asarray(values, dtype=np.int64)
    if shift <= 0:
        return out.saturate(values << -shift)
    floor = values >> shift
    remainder = values - (floor << shift)
    half = 1 << (shift - 1)
    if rounding == "floor":
        result = floor
    elif rounding == "half_up":
        result = floor + (remainder >= half)
    elif rounding == "half_even":
        result = floor + ((remainder > half) | ((remainder == half) & (floor & 1 == 1)))
    else:  # half_away_from_zero
        tie_up = (remainder > half) | ((remainder == half) & (values >= 0))
        result = floor + tie_up
    return out.saturate(result)
