"""The arithmetic the hardware implements, defined once.

Every generator in ``hdl/`` takes its widths and overflow rules from the objects here, and the golden
model uses the same objects to compute what the hardware must produce, so the two cannot drift apart.

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
    "check_int",
    "FLOAT_MODES",
    "INTEGER_PRESETS",
    "IntegerTraining",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "IntFormat",
    "MacArithmetic",
    "NormArithmetic",
    "divide_round",
    "isqrt_floor_ratio",
    "requantize",
    "resolve_numerics",
]

OVERFLOW_MODES = ("wrap", "saturate")
ROUNDING_MODES = ("floor", "half_up", "half_even", "half_away_from_zero")

# Widths above this cannot be held exactly in int64 after a few additions; we refuse them rather than
# silently switching to slow object arrays.
_MAX_WIDTH = 62


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) in ``[minimum, maximum]``, else raise (one line).

    The one parameter validator of the project: ``hdl/`` constructors use it too, so every "must be an
    integer" message has the same wording (tests assert it verbatim).
    """
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
        check_int("width", self.width, 1, _MAX_WIDTH)
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
        check_int("in_width", self.in_width, 2, 18)
        check_int("acc_width", self.acc_width, 1, _MAX_WIDTH)
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


# ==========================================================================================================
# Training numerics selector of the golden model: float modes and the hardware-exact integer mode.
# The integer rules are written once here and documented in docs/golden.md ("Integer mode"); the kernels
# that apply them to each layer are in golden/integer.py.
# ==========================================================================================================
FLOAT_MODES = ("float64", "float32")


@dataclass(frozen=True)
class IntegerTraining:
    """Hardware-exact integer training mode.

    Every tensor is a signed ``width``-bit integer with a fixed power-of-two scale: real value =
    ``q * 2**-frac``. Activations use ``activation_frac``, weights (and biases' operand grid)
    ``weight_frac``, activation gradients ``grad_frac`` and weight gradients ``weight_grad_frac``.

    Parameters
    ----------
    mac : MacArithmetic
        Operand width, accumulator width, overflow rule of the MAC array (products exact, accumulation in
        ``acc_width`` with wrap/saturate per addition, ``k`` ascending).
    activation_frac, weight_frac, grad_frac, weight_grad_frac : int
        Fractional bits of each tensor class (the power-of-two scales).
    rounding : str
        Rounding of every requantization (:data:`ROUNDING_MODES`); results saturate to the operand format.
    scalar_frac : int
        Fractional bits of the per-channel constants of the normalisation unit (``a, c, k1, k2, k3``).
    reciprocal_frac : int
        Fractional bits of the reciprocal used by average pools whose window is not a power of two.
    """

    mac: MacArithmetic = MacArithmetic(in_width=16, acc_width=48, signed=True, overflow="saturate")
    activation_frac: int = 8
    weight_frac: int = 12
    grad_frac: int = 12
    weight_grad_frac: int = 12
    rounding: str = "half_even"
    scalar_frac: int = 12
    reciprocal_frac: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.mac, MacArithmetic):
            raise TypeError(f"mac must be a MacArithmetic, not {self.mac!r}")
        if not self.mac.signed:
            raise ValueError("mac must be signed for training (gradients are signed)")
        for name in ("activation_frac", "weight_frac", "grad_frac", "weight_grad_frac", "scalar_frac",
                     "reciprocal_frac"):
            check_int(name, getattr(self, name), 0, 30)
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")

    @property
    def operand(self) -> IntFormat:
        return self.mac.operand

    def quantize(self, values, frac: int) -> np.ndarray:
        """Real values to the operand grid ``2**-frac``: round half to even, then saturate."""
        scaled = np.rint(np.asarray(values, dtype=np.float64) * float(2**frac))
        return self.operand.saturate(np.clip(scaled, -(2.0**62), 2.0**62).astype(np.int64))

    def dequantize(self, values, frac: int) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * 2.0**-frac

    def describe(self) -> str:
        return (f"int{self.mac.in_width} (acc {self.mac.acc_width}, {self.mac.overflow}), "
                f"Q.{self.activation_frac} "
                f"act, Q.{self.weight_frac} weight, Q.{self.grad_frac} grad, {self.rounding}")


#: Named integer modes for the CLI and tests: 16-bit operands with a 48-bit saturating accumulator, and
#: 8-bit operands with a 32-bit saturating accumulator.
INTEGER_PRESETS = {
    "int16": IntegerTraining(),
    "int8": IntegerTraining(mac=MacArithmetic(in_width=8, acc_width=32, signed=True, overflow="saturate"),
                            activation_frac=4, weight_frac=6, grad_frac=7, weight_grad_frac=7),
}


def resolve_numerics(numerics):
    """``"float64"``/``"float32"``/numpy float dtype -> ``np.dtype``; an IntegerTraining passes through."""
    if isinstance(numerics, IntegerTraining):
        return numerics
    if isinstance(numerics, str) and numerics in FLOAT_MODES:
        return np.dtype(numerics)
    if isinstance(numerics, str) and numerics in INTEGER_PRESETS:
        return INTEGER_PRESETS[numerics]
    if isinstance(numerics, np.dtype | type) and np.dtype(numerics) in (np.float64, np.float32):
        return np.dtype(numerics)
    names = ", ".join((*FLOAT_MODES, *INTEGER_PRESETS))
    raise ValueError(f"numerics must be one of {names} or an IntegerTraining, not {numerics!r}")


# --- Normalization datapath arithmetic ---
# The exact integer arithmetic of the BN/GN fission-fusion units (Jung et al., "Restructuring Batch
# Normalization to Accelerate CNN Training", arXiv 1807.01702; the paper's body was not available, so the
# backward split below is derived from the BN/GN gradient and checked numerically): statistics on write,
# affine+ReLU on read, backward reductions, the two-stream dx unit and the per-channel scalar unit with
# its fixed-point reciprocal square root. hdl/norm*.py take every width from NormArithmetic and the RTL
# is checked bit for bit against these functions.
#
# Grids (real value = q * 2**-frac): activations x, z on Q.activation_frac; gradients dz, dy, dx on
# Q.grad_frac; gamma, beta on Q.param_frac; dgamma on Q.(param_grad_frac + scalar_frac) (the accumulator
# grid of golden/integer.py), dbeta = r1 on Q.grad_frac.
#
# Forward, per statistic set (BN: channel over N*H*W; GN: sample and group over (C/G)*H*W), count M:
#   S1 = sum x, S2 = sum x*x                                    (exact; widths from max_count)
#   D  = (M*S2 - S1**2) * 2**eps_frac + eps_q * M**2            (exact; M*S2 - S1**2 >= 0 always)
#   K  = M * 2**(activation_frac + eps_frac/2 + reciprocal_frac)
#   rstd = isqrt(K**2 // D) = floor(K / sqrt(D))                (= floor(2**reciprocal_frac / sqrt(var+eps)))
#   A  = round(gamma * rstd / 2**(param_frac + reciprocal_frac - scalar_frac))        -> coefficient
#   C  = round((beta * 2**(activation_frac + scalar_frac - param_frac) * M - A * S1) / M) -> bias
#   y  = requantize(A*x + C, scalar_frac, activation, rounding); z = max(y, 0); mask = y > 0
# Backward (dz from the next layer's backward-data GEMM, x re-read):
#   dy = dz * mask; r1 = sum dy, r2 = sum dy*x per channel (GN: per sample and channel)
#   W1 = sum_{c in set} gamma_c * r1_c, W2 = sum gamma_c * r2_c   (BN: the set is one channel)
#   K1 = A
#   K2 = round(-rstd**3 * (M*W2 - S1*W1) / (M**2 * 2**(3*reciprocal_frac + param_frac
#                                                        + 2*activation_frac - scalar_frac)))   -> coefficient
#   K3 = round(-(rstd*W1 + K2*S1*2**s) / (M * 2**s)),  s = reciprocal_frac + param_frac - scalar_frac -> bias
#   dx = requantize(K1*dy + K2*x + K3, scalar_frac, gradient, rounding)
#   dgamma_c = round(rstd * (M*r2_c - S1*r1_c) * 2**(param_grad_frac + scalar_frac)
#                    / (M * 2**(reciprocal_frac + grad_frac + activation_frac)))  (GN: per sample, then summed)
#   dbeta_c = r1_c (GN: summed over samples)
# "round" is round half away from zero (divide_round); every result saturates to its format.
# ==========================================================================================================

def divide_round(numerator, denominator):
    """``numerator / denominator`` rounded half away from zero (Python ints or int arrays; denominator > 0).

    The scalar unit's only division: a restoring divider on magnitudes, sign applied after.
    """
    numerator = np.asarray(numerator, dtype=object)
    denominator = np.asarray(denominator, dtype=object)
    if np.any(denominator <= 0):
        raise ValueError("divide_round needs a positive denominator")
    magnitude = np.asarray((2 * np.abs(numerator) + denominator) // (2 * denominator), dtype=object)
    sign = np.asarray(np.where(np.asarray(numerator < 0, dtype=bool), -1, 1), dtype=object)
    result = np.asarray(magnitude * sign, dtype=object)  # object arithmetic: no int64 overflow
    return result if result.shape else result.item()


def isqrt_floor_ratio(numerator, denominator):
    """``floor(sqrt(numerator / denominator))`` exactly (= ``isqrt(numerator // denominator)``)."""
    import math

    numerator = np.asarray(numerator, dtype=object)
    denominator = np.asarray(denominator, dtype=object)
    flat = [math.isqrt(int(n) // int(d)) for n, d in zip(numerator.ravel(), np.broadcast_to(
        denominator, numerator.shape).ravel())]
    result = np.array(flat, dtype=object).reshape(numerator.shape)
    return result if result.shape else result.item()


def _saturate_object(values, fmt: IntFormat):
    values = np.asarray(values, dtype=object)
    low = np.asarray(values < fmt.min, dtype=bool)
    high = np.asarray(values > fmt.max, dtype=bool)
    result = np.asarray(np.where(low, np.asarray(fmt.min, dtype=object),
                                 np.where(high, np.asarray(fmt.max, dtype=object), values)), dtype=object)
    return result if result.shape else result.item()


@dataclass(frozen=True)
class NormArithmetic:
    """Integer arithmetic of the BN/GN datapath units (formulas in the section comment above).

    Parameters
    ----------
    activation, gradient : IntFormat
        Formats of x/z and of dz/dy/dx.
    activation_frac, grad_frac, param_frac, param_grad_frac : int
        Fractional bits of activations, activation gradients, gamma/beta, and dgamma.
    scalar_frac : int
        Fractional bits of the stream coefficients A, K1 (and K2's grid offset, see K2).
    reciprocal_frac : int
        Fractional bits of ``rstd``.
    eps_frac : int
        Extra (even) fractional bits of epsilon below the activation grid squared.
    max_count : int
        Largest element count of one statistic (BN: N*H*W, GN: C/G*H*W); sizes the accumulators so they
        never overflow.
    coefficient_width, bias_width, rstd_width : int
        Saturating formats of A/K1/K2, C/K3 and rstd (unsigned).
    rounding : str
        Rounding of the stream requantizations (y and dx), one of :data:`ROUNDING_MODES`.
    """

    activation: IntFormat = IntFormat(16)
    gradient: IntFormat = IntFormat(16)
    activation_frac: int = 8
    grad_frac: int = 12
    param_frac: int = 12
    param_grad_frac: int = 12
    scalar_frac: int = 12
    reciprocal_frac: int = 16
    eps_frac: int = 8
    max_count: int = 1 << 16
    coefficient_width: int = 32
    bias_width: int = 48
    rstd_width: int = 32
    rounding: str = "half_even"

    def __post_init__(self) -> None:
        for name in ("activation", "gradient"):
            if not isinstance(getattr(self, name), IntFormat) or not getattr(self, name).signed:
                raise TypeError(f"{name} must be a signed IntFormat, not {getattr(self, name)!r}")
        for name in ("activation_frac", "grad_frac", "param_frac", "param_grad_frac", "scalar_frac",
                     "reciprocal_frac", "eps_frac"):
            check_int(name, getattr(self, name), 0, 30)
        if self.eps_frac % 2:
            raise ValueError(f"eps_frac must be even, not {self.eps_frac}")
        check_int("max_count", self.max_count, 1, 1 << 30)
        check_int("coefficient_width", self.coefficient_width, 2, 48)
        check_int("bias_width", self.bias_width, 2, 56)
        check_int("rstd_width", self.rstd_width, 2, 48)
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")
        if self.param_frac + self.reciprocal_frac < self.scalar_frac:
            raise ValueError("param_frac + reciprocal_frac must be at least scalar_frac")
        if self.activation_frac + self.scalar_frac < self.param_frac:
            raise ValueError("activation_frac + scalar_frac must be at least param_frac")

    @classmethod
    def from_training(cls, training: IntegerTraining, *, max_count: int, **overrides) -> NormArithmetic:
        """The normalisation arithmetic matching an :class:`IntegerTraining` mode's grids and rounding."""
        fields = {
            "activation": training.operand, "gradient": training.operand,
            "activation_frac": training.activation_frac, "grad_frac": training.grad_frac,
            "param_frac": training.weight_frac, "param_grad_frac": training.weight_grad_frac,
            "scalar_frac": training.scalar_frac, "rounding": training.rounding, "max_count": max_count,
        }
        fields.update(overrides)
        return cls(**fields)

    # -- formats (the generators' widths) ---------------------------------------------------------------
    @property
    def sum_format(self) -> IntFormat:
        """S1 = sum x: never overflows for ``max_count`` terms."""
        return IntFormat((self.max_count * (1 << (self.activation.width - 1))).bit_length() + 1, True)

    @property
    def sumsq_format(self) -> IntFormat:
        """S2 = sum x*x (unsigned)."""
        return IntFormat((self.max_count * (1 << (2 * self.activation.width - 2))).bit_length(), False)

    @property
    def grad_sum_format(self) -> IntFormat:
        """r1 = sum dy."""
        return IntFormat((self.max_count * (1 << (self.gradient.width - 1))).bit_length() + 1, True)

    @property
    def grad_product_sum_format(self) -> IntFormat:
        """r2 = sum dy*x."""
        largest = (1 << (self.gradient.width - 1)) * (1 << (self.activation.width - 1))
        return IntFormat((self.max_count * largest).bit_length() + 1, True)

    def weighted_width(self, param_width: int) -> int:
        """Signed width of W1 = sum gamma_c * r1_c and W2 = sum gamma_c * r2_c over a statistic set's channels.

        Every element of a statistic set lies in exactly one channel, so the |dy*x| (and |dy|) terms of all
        the set's r2_c (r1_c) add up to at most ``max_count`` times the largest product; times |gamma| <=
        ``2**(param_width - 1)``. W2's bound is the larger, and the scalar unit takes both in one width. A
        plain int, not an :class:`IntFormat`: it may exceed the 62 bits an int64 array holds.
        """
        largest = ((1 << (self.gradient.width - 1)) * (1 << (self.activation.width - 1))
                   << (check_int("param_width", param_width, 2, 32) - 1))
        return (self.max_count * largest).bit_length() + 1

    @property
    def coefficient(self) -> IntFormat:
        return IntFormat(self.coefficient_width, True)

    @property
    def bias(self) -> IntFormat:
        return IntFormat(self.bias_width, True)

    @property
    def rstd_format(self) -> IntFormat:
        return IntFormat(self.rstd_width, False)

    @property
    def affine_width(self) -> int:
        """Bits of ``A*x + C`` before requantization (exact)."""
        return max(self.coefficient_width + self.activation.width, self.bias_width) + 1

    @property
    def dx_width(self) -> int:
        """Bits of ``K1*dy + K2*x + K3`` before requantization (exact)."""
        return max(self.coefficient_width + max(self.gradient.width, self.activation.width),
                   self.bias_width) + 2

    def eps_fixed(self, eps: float) -> int:
        """Epsilon (real, in squared activation units) on the grid ``2**-(2*activation_frac + eps_frac)``."""
        return int(round(eps * 2.0 ** (2 * self.activation_frac + self.eps_frac)))

    # -- statistics on write (BN: axes (0, 2, 3) of NCHW; GN: per sample and group) ----------------------
    def statistics(self, x, axes) -> tuple[np.ndarray, np.ndarray]:
        """Exact (S1, S2) over ``axes``; checks they fit :attr:`sum_format` / :attr:`sumsq_format`."""
        x = self.activation.check(x, "x")
        s1 = x.sum(axis=axes)
        s2 = (x * x).sum(axis=axes)
        self.sum_format.check(s1, "S1")
        self.sumsq_format.check(s2, "S2")
        return s1, s2

    # -- per-channel scalar unit ------------------------------------------------------------------------
    def rstd(self, s1, s2, count: int, eps_q: int):
        """``floor(2**reciprocal_frac / sqrt(var + eps))`` from the exact sums, saturated to rstd_format."""
        if not 1 <= count <= self.max_count:
            raise ValueError(f"count must be between 1 and max_count {self.max_count}, not {count}")
        s1 = np.asarray(s1, dtype=object)
        s2 = np.asarray(s2, dtype=object)
        centred = count * s2 - s1 * s1
        if np.any(centred < 0):
            raise ValueError("M*S2 - S1**2 is negative: S1/S2 are not sums of one set of integers")
        denominator = centred * (1 << self.eps_frac) + eps_q * count * count
        if np.any(denominator <= 0):
            raise ValueError("eps_q must be positive when a variance can be zero")
        k = count << (self.activation_frac + self.eps_frac // 2 + self.reciprocal_frac)
        return _saturate_object(isqrt_floor_ratio(np.full(np.shape(denominator), k * k, dtype=object), denominator),
                                self.rstd_format)

    def forward_constants(self, s1, s2, count: int, gamma, beta, eps_q: int) -> dict:
        """(rstd, A, C) per statistic set; ``gamma``/``beta`` (Q.param_frac) broadcast against s1."""
        rstd = self.rstd(s1, s2, count, eps_q)
        gamma = np.asarray(gamma, dtype=object)
        beta = np.asarray(beta, dtype=object)
        s1 = np.asarray(s1, dtype=object)
        a = _saturate_object(divide_round(gamma * rstd, 1 << (self.param_frac + self.reciprocal_frac
                                                              - self.scalar_frac)), self.coefficient)
        shifted_beta = beta * (1 << (self.activation_frac + self.scalar_frac - self.param_frac))
        c = _saturate_object(divide_round(shifted_beta * count - a * s1, count), self.bias)
        return {"rstd": rstd, "a": a, "c": c}

    # -- affine + ReLU on read ----------------------------------------------------------------------------
    def affine(self, x, a, c) -> np.ndarray:
        """y = requantize(A*x + C, scalar_frac) before the ReLU (broadcasting a, c against x)."""
        x = self.activation.check(x, "x")
        a = np.asarray(a, dtype=np.int64)
        c = np.asarray(c, dtype=np.int64)
        return requantize(a * x + c, self.scalar_frac, self.activation, self.rounding)

    def affine_relu(self, x, a, c) -> np.ndarray:
        """z = max(y, 0): what the feeder hands the array; padding zeros are inserted after this."""
        return np.maximum(self.affine(x, a, c), 0)

    # -- backward reductions on the backward-data drain -----------------------------------------------------
    def relu_mask(self, x, a, c) -> np.ndarray:
        """The ReLU mask recomputed from x: ``y > 0`` (a y of exactly 0 passes no gradient)."""
        return self.affine(x, a, c) > 0

    def backward_reductions(self, dz, x, a, c, axes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dy = dz*mask, r1 = sum dy, r2 = sum dy*x over ``axes``."""
        dz = self.gradient.check(dz, "dz")
        dy = np.where(self.relu_mask(x, a, c), dz, 0)
        r1 = dy.sum(axis=axes)
        r2 = (dy * np.asarray(x, dtype=np.int64)).sum(axis=axes)
        self.grad_sum_format.check(r1, "r1")
        self.grad_product_sum_format.check(r2, "r2")
        return dy, r1, r2

    def weighted_reductions(self, gamma, r1, r2, param_width: int) -> tuple[np.ndarray, np.ndarray]:
        """(W1, W2) = (sum gamma*r1, sum gamma*r2) over the last axis (a statistic set's channels), exact.

        ``gamma`` (``param_width`` bits) broadcasts against ``r1``/``r2``: BN passes channels as sets of one
        (shape (C, 1)), GN (N, G, C/G) sums with gamma of shape (G, C/G). Checks the results fit
        :meth:`weighted_width`.
        """
        gamma = IntFormat(check_int("param_width", param_width, 2, 32)).check(gamma, "gamma").astype(object)
        w1 = (gamma * self.grad_sum_format.check(r1, "r1").astype(object)).sum(axis=-1)
        w2 = (gamma * self.grad_product_sum_format.check(r2, "r2").astype(object)).sum(axis=-1)
        bound = 1 << (self.weighted_width(param_width) - 1)
        for name, values in (("W1", w1), ("W2", w2)):
            if np.any(np.asarray(values < -bound, dtype=bool) | np.asarray(values >= bound, dtype=bool)):
                raise ValueError(f"{name} does not fit int{self.weighted_width(param_width)}: "
                                 "a set has more than max_count elements")
        return w1, w2

    def backward_constants(self, s1, count: int, rstd, a, w1, w2) -> dict:
        """(K1, K2, K3) per statistic set from the weighted reductions W1, W2 (see the section comment)."""
        s1 = np.asarray(s1, dtype=object)
        rstd = np.asarray(rstd, dtype=object)
        w1 = np.asarray(w1, dtype=object)
        w2 = np.asarray(w2, dtype=object)
        exponent = 3 * self.reciprocal_frac + self.param_frac + 2 * self.activation_frac - self.scalar_frac
        k2 = _saturate_object(divide_round(-(rstd ** 3) * (count * w2 - s1 * w1), count * count << exponent),
                              self.coefficient)
        shift = self.reciprocal_frac + self.param_frac - self.scalar_frac
        k3 = _saturate_object(divide_round(-(rstd * w1 + k2 * s1 * (1 << shift)), count << shift), self.bias)
        return {"k1": a, "k2": k2, "k3": k3}

    def dgamma(self, s1, count: int, rstd, r1, r2):
        """Per-channel gamma gradient of one statistic set (Q.(param_grad_frac + scalar_frac))."""
        numerator = (np.asarray(rstd, dtype=object) * (count * np.asarray(r2, dtype=object)
                                                       - np.asarray(s1, dtype=object) * np.asarray(r1, dtype=object)))
        up = self.param_grad_frac + self.scalar_frac
        down = self.reciprocal_frac + self.grad_frac + self.activation_frac
        return divide_round(numerator * (1 << max(up - down, 0)), count << max(down - up, 0))

    # -- the two-stream dx unit ---------------------------------------------------------------------------
    def dx(self, dy, x, k1, k2, k3) -> np.ndarray:
        """dx = requantize(K1*dy + K2*x + K3, scalar_frac, gradient)."""
        dy = self.gradient.check(dy, "dy")
        x = self.activation.check(x, "x")
        total = (np.asarray(k1, dtype=np.int64) * dy + np.asarray(k2, dtype=np.int64) * x
                 + np.asarray(k3, dtype=np.int64))
        return requantize(total, self.scalar_frac, self.gradient, self.rounding)

    # -- whole layers (reference compositions used by tests and the integration bench) ----------------------
    def batchnorm_forward(self, x, gamma, beta, eps_q: int) -> dict:
        """BN over NCHW ``x`` with per-channel gamma/beta: sums, constants, z and y."""
        s1, s2 = self.statistics(x, (0, 2, 3))
        count = x.shape[0] * x.shape[2] * x.shape[3]
        constants = self.forward_constants(s1, s2, count, gamma, beta, eps_q)
        a = constants["a"].astype(np.int64)[None, :, None, None]
        c = constants["c"].astype(np.int64)[None, :, None, None]
        return {"s1": s1, "s2": s2, "count": count, **constants, "z": self.affine_relu(x, a, c),
                "y": self.affine(x, a, c)}

    def groupnorm_forward(self, x, gamma, beta, groups: int, eps_q: int) -> dict:
        """GN over NCHW ``x``: statistics per (sample, group); constants per (sample, channel)."""
        n, channels, h, w = x.shape
        if channels % groups:
            raise ValueError(f"groups must divide the channels {channels}, not {groups}")
        per_group = channels // groups
        s1, s2 = self.statistics(np.asarray(x).reshape(n, groups, per_group, h, w), (2, 3, 4))
        count = per_group * h * w
        s1_c = np.repeat(s1, per_group, axis=1)
        s2_c = np.repeat(s2, per_group, axis=1)
        constants = self.forward_constants(s1_c, s2_c, count, np.asarray(gamma)[None, :],
                                           np.asarray(beta)[None, :], eps_q)
        a = constants["a"].astype(np.int64)[:, :, None, None]
        c = constants["c"].astype(np.int64)[:, :, None, None]
        return {"s1": s1, "s2": s2, "count": count, **constants, "z": self.affine_relu(x, a, c),
                "y": self.affine(x, a, c)}

    def batchnorm_backward(self, dz, x, gamma, forward: dict) -> dict:
        """BN-ReLU backward from dz (gradient at the ReLU output) and the forward's constants."""
        a = forward["a"].astype(np.int64)[None, :, None, None]
        c = forward["c"].astype(np.int64)[None, :, None, None]
        dy, r1, r2 = self.backward_reductions(dz, x, a, c, (0, 2, 3))
        gamma = np.asarray(gamma, dtype=object)
        constants = self.backward_constants(forward["s1"], forward["count"], forward["rstd"], forward["a"],
                                            gamma * r1.astype(object), gamma * r2.astype(object))
        k = [constants[name].astype(np.int64)[None, :, None, None] for name in ("k1", "k2", "k3")]
        return {"dy": dy, "r1": r1, "r2": r2, **constants, "dx": self.dx(dy, x, *k),
                "dgamma": self.dgamma(forward["s1"], forward["count"], forward["rstd"], r1, r2),
                "dbeta": r1}

    def groupnorm_backward(self, dz, x, gamma, groups: int, forward: dict) -> dict:
        """GN-ReLU backward: per-sample channel reductions, combined per group with gamma."""
        n, channels, h, w = x.shape
        per_group = channels // groups
        a = forward["a"].astype(np.int64)[:, :, None, None]
        c = forward["c"].astype(np.int64)[:, :, None, None]
        dy, r1, r2 = self.backward_reductions(dz, x, a, c, (2, 3))       # (n, channels)
        gamma = np.asarray(gamma, dtype=object)[None, :]
        w1 = (gamma * r1.astype(object)).reshape(n, groups, per_group).sum(axis=2)
        w2 = (gamma * r2.astype(object)).reshape(n, groups, per_group).sum(axis=2)
        rstd_group = forward["rstd"].reshape(n, groups, per_group)[:, :, 0]
        a_channel = forward["a"]
        constants = self.backward_constants(forward["s1"], forward["count"], rstd_group, a_channel[:, ::per_group],
                                            w1, w2)
        k2 = np.repeat(constants["k2"], per_group, axis=1).astype(np.int64)[:, :, None, None]
        k3 = np.repeat(constants["k3"], per_group, axis=1).astype(np.int64)[:, :, None, None]
        dx = self.dx(dy, x, a, k2, k3)
        s1_c = np.repeat(forward["s1"], per_group, axis=1)
        dgamma = self.dgamma(s1_c, forward["count"], forward["rstd"], r1, r2).sum(axis=0)
        return {"dy": dy, "r1": r1, "r2": r2, "k2": constants["k2"], "k3": constants["k3"], "dx": dx,
                "dgamma": dgamma, "dbeta": r1.sum(axis=0)}
