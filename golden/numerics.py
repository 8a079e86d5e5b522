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

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "check_int",
    "FLOAT_MODES",
    "INTEGER_PRESETS",
    "IntegerTraining",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "SgdArithmetic",
    "UNIT_PLACES",
    "IntFormat",
    "LossArithmetic",
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
    return out.saturate(_round_shift(np.asarray(values, dtype=np.int64), shift, rounding))


def _round_shift(values: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """:func:`requantize` without the saturation, on int64 or Python-int (``object``) arrays alike."""
    if shift <= 0:
        return values << -shift
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
    return result


# ==========================================================================================================
# Training numerics selector (golden model, issue 3): float modes and the hardware-exact integer mode.
# The integer rules are written once here and documented in docs/golden.md ("Integer mode"); the kernels
# that apply them to each layer are in golden/integer.py.
# ==========================================================================================================
FLOAT_MODES = ("float64", "float32")
#: Where the integer mode computes the loss and the SGD update: on chip (exact integer units) or on the host.
UNIT_PLACES = ("integer", "host")


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
    loss : str
        ``"integer"`` (default): the softmax cross-entropy loss and its gradient on chip,
        :class:`LossArithmetic` (:attr:`loss_arithmetic`); ``"host"``: float64 on the dequantized logits,
        the gradient quantized to Q.grad_frac.
    sgd : str
        ``"integer"`` (default): the SGD update on chip, :class:`SgdArithmetic` (:meth:`sgd_arithmetic`);
        ``"host"``: float64 PyTorch SGD of the dequantized values, re-quantized.
    """

    mac: MacArithmetic = MacArithmetic(in_width=16, acc_width=48, signed=True, overflow="saturate")
    activation_frac: int = 8
    weight_frac: int = 12
    grad_frac: int = 12
    weight_grad_frac: int = 12
    rounding: str = "half_even"
    scalar_frac: int = 12
    reciprocal_frac: int = 16
    loss: str = "integer"
    sgd: str = "integer"

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
        for name in ("loss", "sgd"):
            if getattr(self, name) not in UNIT_PLACES:
                raise ValueError(f"{name} must be one of {', '.join(UNIT_PLACES)}, not {getattr(self, name)!r}")

    @property
    def operand(self) -> IntFormat:
        return self.mac.operand

    @property
    def loss_arithmetic(self) -> LossArithmetic:
        """The on-chip loss unit on this mode's grids (logits Q.activation_frac, gradient Q.grad_frac)."""
        return LossArithmetic.from_training(self)

    def sgd_arithmetic(self, *, lr: float, momentum: float, weight_decay: float) -> SgdArithmetic:
        """The on-chip SGD unit on this mode's grids for the given (float) hyper-parameters."""
        return SgdArithmetic.from_training(self, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def quantize(self, values, frac: int) -> np.ndarray:
        """Real values to the operand grid ``2**-frac``: round half to even, then saturate."""
        scaled = np.rint(np.asarray(values, dtype=np.float64) * float(2**frac))
        return self.operand.saturate(np.clip(scaled, -(2.0**62), 2.0**62).astype(np.int64))

    def dequantize(self, values, frac: int) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * 2.0**-frac

    def describe(self) -> str:
        return (f"int{self.mac.in_width} (acc {self.mac.acc_width}, {self.mac.overflow}), "
                f"Q.{self.activation_frac} "
                f"act, Q.{self.weight_frac} weight, Q.{self.grad_frac} grad, {self.rounding}, "
                f"loss {self.loss}, sgd {self.sgd}")


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
# Issue 5 (memory system and normalization datapaths). The exact integer arithmetic of the BN/GN
# fission-fusion units of research/mbs_bn.md §2.3 and §6 (implications 6-10): statistics on write,
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


# ==========================================================================================================
# On-chip loss and SGD arithmetic
# Issue 11 (the training core's contract). The softmax cross-entropy loss unit and the SGD update unit of
# the core, so a whole training step runs DRAM to DRAM without the host. Both use only integer adds,
# multiplies, shifts, comparators, read-only tables and one divider (the scalar unit's divide_round); the
# golden integer mode (golden/integer.py) uses them by default, hdl/ will take its widths and tables from
# here, and docs/golden.md ("On-chip loss and SGD") states the formulas and error bounds.
#
# Loss unit, per row of logits z (signed, Q.logit_frac), label y, mini-batch N, classes C:
#   m   = max_j z_j                                   comparator tree
#   d_j = m - z_j >= 0                                unsigned, logits.width bits
#   e_j = 0 if d_j >= exp_cutoff, else the product of K tables indexed by table_bits-bit chunks of d_j:
#         T_i[c] = round(exp(-c * 2**(i*table_bits) / 2**logit_frac) * 2**exp_frac)   (T_i[0] = 2**exp_frac)
#         e = T_0[c_0]; e = (e * T_i[c_i] + 2**(exp_frac-1)) >> exp_frac for i = 1..K-1   (round half up)
#         so e_j ~ exp(z_j - m) on Q.exp_frac and the maximum's e is exactly 2**exp_frac
#   S   = sum_j e_j                                   exact, sum_width bits, S >= 2**exp_frac
#   r   = divide_round(2**R, S * N)                   the one divide per row, R = reciprocal_frac
#   g_j = round((e_j - [j == y] * S) * r / 2**(R - grad_frac))   rounding mode, saturated to the gradient
#   loss: k = floor(log2 S) (leading one), u = S / 2**k - 1 in [0, 1), i = top table_bits bits of u,
#         ln S/2**exp_frac = (k - exp_frac) * L[2**table_bits] + L[i] + (L[i+1] - L[i]) * rest  (linear
#         interpolation, rounded half up), L[i] = round(ln(1 + i / 2**table_bits) * 2**(loss_frac + 4))
#         per-sample loss = round((ln S + d_y) / 2**4) on Q.loss_frac, saturated to loss_width bits
#         mean loss = divide_round(sum of the per-sample losses (exact), N)
# Error against float64 on the same integer logits (derivation in docs/golden.md):
#   |g - 2**grad_frac * (softmax - onehot) / N| <= 1/2 + (C+1) * K * 2**(grad_frac - exp_frac) / N
#                                                 + C * 2**(exp_frac + grad_frac - R - 1)       LSB
#
# SGD unit, elementwise on a flat slice (weights w Q.weight_frac, gradient g Q.grad_frac, velocity v
# Q.velocity_frac; constants M, WD, LR unsigned constant_width bits on Q.constant_frac):
#   F = max(velocity_frac, weight_frac, grad_frac),  G = max(velocity_frac, weight_frac)
#   v' = sat_v(round((M*v << (F - vf)) + (WD*w << (F - wf)) + (g << (cf + F - gf)), cf + F - vf))
#   w' = sat_w(round((w << (cf + G - wf)) - (LR*v' << (G - vf)), cf + G - wf))
# every sum exact in its accumulator (widths checked <= 62 bits at construction), one rounding each.
# ==========================================================================================================

#: Guard bits of the loss unit's logarithm below the loss grid.
_LOG_GUARD = 4


@dataclass(frozen=True)
class LossArithmetic:
    """Integer softmax cross-entropy: per-sample losses, their mean and ``dlogits = (softmax - onehot) / N``.

    Shape-agnostic over rows: ``logits`` is ``(rows, classes)`` (a sub-batch of the mini-batch is fine: every
    row's result depends only on that row and the mini-batch size ``batch``). Formulas in the section comment.

    Parameters
    ----------
    logits, gradient : IntFormat
        Signed formats of the logits and of ``dlogits``.
    logit_frac, grad_frac : int
        Fractional bits of the logits and of ``dlogits``.
    exp_frac : int
        Fractional bits of the exponentials ``e_j`` (``exp_frac + 1``-bit unsigned values).
    table_bits : int
        Index bits of every table (exponent chunks and logarithm).
    loss_frac, loss_width : int
        Grid and signed width of the per-sample and mean loss.
    max_classes, max_batch : int
        Largest class count and mini-batch size; size the sum, the divider and the reciprocal.
    rounding : str
        Rounding of ``dlogits`` and of the loss (:data:`ROUNDING_MODES`); the exponent products and the
        interpolation round half up (add half, shift), the divider half away from zero.
    """

    logits: IntFormat = IntFormat(16)
    logit_frac: int = 8
    gradient: IntFormat = IntFormat(16)
    grad_frac: int = 12
    exp_frac: int = 20
    table_bits: int = 8
    loss_frac: int = 16
    loss_width: int = 32
    max_classes: int = 1024
    max_batch: int = 1 << 16
    rounding: str = "half_even"

    def __post_init__(self) -> None:
        for name in ("logits", "gradient"):
            if not isinstance(getattr(self, name), IntFormat) or not getattr(self, name).signed:
                raise TypeError(f"{name} must be a signed IntFormat, not {getattr(self, name)!r}")
        for name in ("logit_frac", "grad_frac", "loss_frac"):
            check_int(name, getattr(self, name), 0, 30)
        check_int("exp_frac", self.exp_frac, 2, 30)
        check_int("table_bits", self.table_bits, 1, 12)
        check_int("loss_width", self.loss_width, 2, _MAX_WIDTH)
        check_int("max_classes", self.max_classes, 1, 1 << 16)
        check_int("max_batch", self.max_batch, 1, 1 << 30)
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")
        if self.exp_frac < self.table_bits:
            raise ValueError(f"exp_frac must be at least table_bits ({self.table_bits}), not {self.exp_frac}")
        if self.loss_frac + _LOG_GUARD < self.logit_frac:
            raise ValueError(f"loss_frac must be at least logit_frac - {_LOG_GUARD} "
                             f"({self.logit_frac - _LOG_GUARD}), not {self.loss_frac}")

    @classmethod
    def from_training(cls, training: IntegerTraining, **overrides) -> LossArithmetic:
        """The loss unit on an :class:`IntegerTraining` mode's grids: logits on the activation grid, dlogits
        on the gradient grid, ``exp_frac = grad_frac + 8`` (so the exponent tables add at most ~0.1 LSB, at
        least ``table_bits``), the loss on Q.16 (or finer, for logits finer than Q.20)."""
        fields = {"logits": training.operand, "logit_frac": training.activation_frac,
                  "gradient": training.operand, "grad_frac": training.grad_frac,
                  "exp_frac": min(max(training.grad_frac + 8, overrides.get("table_bits", 8)), 30),
                  "loss_frac": max(16, training.activation_frac - _LOG_GUARD), "rounding": training.rounding}
        fields.update(overrides)
        return cls(**fields)

    # -- widths and tables (the generator's parameters) -----------------------------------------------------
    @property
    def difference_width(self) -> int:
        """Unsigned bits of ``d = max - z``."""
        return self.logits.width

    @property
    def exp_cutoff(self) -> int:
        """Smallest ``d`` whose exponential is below half a unit of Q.exp_frac: ``e = 0`` from here on."""
        return math.ceil((self.exp_frac + 1) * math.log(2) * 2**self.logit_frac)

    @property
    def exp_chunks(self) -> int:
        """Number K of exponent tables (chunks of ``table_bits`` bits of ``d < exp_cutoff``)."""
        return max(1, -(-(self.exp_cutoff - 1).bit_length() // self.table_bits))

    @cached_property
    def exp_tables(self) -> tuple[tuple[int, ...], ...]:
        """``T_i[c] = round(exp(-c * 2**(i * table_bits - logit_frac)) * 2**exp_frac)``, K tables of
        ``2**table_bits`` unsigned ``exp_frac + 1``-bit entries (float64 ``math.exp``; round half to even)."""
        return tuple(
            tuple(round(math.exp(-(c << (i * self.table_bits)) / 2**self.logit_frac) * 2**self.exp_frac)
                  for c in range(1 << self.table_bits))
            for i in range(self.exp_chunks))

    @property
    def log_frac(self) -> int:
        """Fractional bits of the logarithm table and of ``ln S`` (``loss_frac`` + 4 guard bits)."""
        return self.loss_frac + _LOG_GUARD

    @cached_property
    def log_table(self) -> tuple[int, ...]:
        """``L[i] = round(ln(1 + i / 2**table_bits) * 2**log_frac)`` for ``i = 0 .. 2**table_bits`` (the last
        entry is ``ln 2``)."""
        size = 1 << self.table_bits
        return tuple(round(math.log1p(i / size) * 2**self.log_frac) for i in range(size + 1))

    @property
    def sum_width(self) -> int:
        """Unsigned bits of ``S = sum e_j`` for ``max_classes`` classes."""
        return (self.max_classes << self.exp_frac).bit_length()

    @property
    def reciprocal_frac(self) -> int:
        """``R``: the reciprocal's rounding adds at most 1/32 LSB to ``dlogits``."""
        return self.exp_frac + self.grad_frac + (self.max_classes - 1).bit_length() + 4

    @property
    def divisor_width(self) -> int:
        """Unsigned bits of the divider's denominator ``S * N``."""
        return ((self.max_classes << self.exp_frac) * self.max_batch).bit_length()

    @property
    def reciprocal_width(self) -> int:
        """Unsigned bits of ``r = divide_round(2**R, S * N)`` (largest for S = 2**exp_frac, N = 1)."""
        return self.reciprocal_frac - self.exp_frac + 1

    @property
    def product_width(self) -> int:
        """Signed bits of ``(e_j - [j == y] * S) * r`` before the final rounding."""
        return self.sum_width + 1 + self.reciprocal_width

    @property
    def loss_format(self) -> IntFormat:
        return IntFormat(self.loss_width, True)

    # -- the unit ---------------------------------------------------------------------------------------------
    def _check(self, logits, labels, batch):
        z = self.logits.check(logits, "logits")
        if z.ndim != 2 or not 1 <= z.shape[1] <= self.max_classes or z.shape[0] < 1:
            raise ValueError(f"logits must be a (rows, classes) matrix with 1 to max_classes "
                             f"{self.max_classes} classes, not shape {z.shape}")
        labels = np.asarray(labels)
        if labels.shape != (z.shape[0],) or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be {z.shape[0]} integers, not shape {labels.shape} of {labels.dtype}")
        if labels.min() < 0 or labels.max() >= z.shape[1]:
            raise ValueError(f"labels must be between 0 and {z.shape[1] - 1}, not {labels.min()}..{labels.max()}")
        batch = z.shape[0] if batch is None else batch
        check_int("batch", batch, z.shape[0], self.max_batch)
        return z, labels.astype(np.int64), batch

    def exponentials(self, logits) -> tuple[np.ndarray, np.ndarray]:
        """``(d, e)``: the max-subtracted differences and their exponentials on Q.exp_frac (int64)."""
        z = self.logits.check(logits, "logits")
        d = z.max(axis=-1, keepdims=True) - z
        mask = (1 << self.table_bits) - 1
        tables = [np.asarray(table, dtype=np.int64) for table in self.exp_tables]
        e = tables[0][d & mask]
        for index in range(1, len(tables)):
            chunk = (d >> (index * self.table_bits)) & mask
            e = (e * tables[index][chunk] + (1 << (self.exp_frac - 1))) >> self.exp_frac
        return d, np.where(d >= self.exp_cutoff, 0, e)

    def _log(self, total: int) -> int:
        """``ln(total / 2**exp_frac)`` on Q.log_frac: leading one, table, linear interpolation (half up)."""
        k = total.bit_length() - 1
        shift = k - self.table_bits  # >= 0: total >= 2**exp_frac >= 2**table_bits
        mantissa = total - (1 << k)
        index = mantissa >> shift
        rest = mantissa - (index << shift)
        table = self.log_table
        step = table[index + 1] - table[index]
        interpolated = (step * rest + (1 << shift >> 1)) >> shift
        return (k - self.exp_frac) * table[-1] + table[index] + interpolated

    def cross_entropy(self, logits, labels, *, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(losses, dlogits)``: per-sample losses (int64, Q.loss_frac) and ``dlogits`` (int64,
        Q.grad_frac, the gradient of the mean loss over a mini-batch of ``batch`` samples, default the
        number of rows), from one pass over the logits as the unit computes them."""
        z, labels, batch = self._check(logits, labels, batch)
        rows = np.arange(z.shape[0])
        d, e = self.exponentials(z)
        totals = e.sum(axis=1)
        reciprocal = np.asarray(divide_round(np.full(len(totals), 1 << self.reciprocal_frac, dtype=object),
                                             totals.astype(object) * batch), dtype=object)
        numerator = e.astype(object)
        numerator[rows, labels] -= totals.astype(object)
        product = numerator * reciprocal[:, None]
        dlogits = _saturate_object(_round_shift(product, self.reciprocal_frac - self.grad_frac, self.rounding),
                                   self.gradient)
        logs = np.array([self._log(int(total)) for total in totals], dtype=object)
        shifted = logs + (d[rows, labels].astype(object) << (self.log_frac - self.logit_frac))
        losses = _saturate_object(_round_shift(shifted, _LOG_GUARD, self.rounding), self.loss_format)
        return np.asarray(losses).astype(np.int64), np.asarray(dlogits).astype(np.int64)

    def cross_entropy_gradient(self, logits, labels, *, batch: int | None = None) -> np.ndarray:
        """``dlogits = (softmax(z) - onehot) / batch`` on Q.grad_frac (int64, shape of ``logits``)."""
        return self.cross_entropy(logits, labels, batch=batch)[1]

    def mean_loss(self, losses, batch: int | None = None) -> int:
        """``divide_round(exact sum of the per-sample losses, batch)`` on Q.loss_frac, saturated (an int).
        ``batch`` defaults to the number of losses."""
        losses = self.loss_format.check(losses, "losses").ravel()
        batch = len(losses) if batch is None else check_int("batch", batch, 1, self.max_batch)
        return int(_saturate_object(divide_round(int(losses.sum()), batch), self.loss_format))

    def cross_entropy_loss(self, logits, labels) -> int:
        """The mean softmax cross-entropy over the rows on Q.loss_frac (an int, as the core writes it)."""
        return self.mean_loss(self.cross_entropy(logits, labels)[0])

    # -- the stated error bounds (docs/golden.md) ---------------------------------------------------------------
    def gradient_error_bound(self, classes: int, batch: int) -> float:
        """Largest ``|dlogits - 2**grad_frac * (softmax - onehot) / batch|`` in LSB, for float64 softmax
        of the same integer logits (the reference clipped to the gradient format)."""
        return (0.5 + (classes + 1) * self.exp_chunks * 2.0 ** (self.grad_frac - self.exp_frac) / batch
                + classes * 2.0 ** (self.exp_frac + self.grad_frac - self.reciprocal_frac - 1))

    def loss_error_bound(self, classes: int) -> float:
        """Largest error (real units) of a per-sample loss against float64 (also of the mean, plus half
        an LSB of Q.loss_frac), unless it saturates."""
        table_units = 0.5 * (classes - 1).bit_length() + 2  # ln 2 times (k - exp_frac), L[i], step, rounding
        return (2.0 ** -self.loss_frac * (0.5 + table_units / 2**_LOG_GUARD)
                + 2.0 ** -(2 * self.table_bits + 3)  # linear interpolation of ln(1 + u), |f''| <= 1
                + classes * self.exp_chunks * 2.0 ** -self.exp_frac)  # relative error of S


@dataclass(frozen=True)
class SgdArithmetic:
    """SGD with momentum and weight decay on the integer grids (PyTorch's rule, dampening 0, no Nesterov):
    ``v = momentum * v + g + weight_decay * w``, ``w = w - lr * v`` (formulas in the section comment).

    Elementwise and shape-agnostic: any array shape (a flat slice of the parameter memory is typical).
    A zero velocity on the first step gives PyTorch's ``v = g + weight_decay * w``.

    Parameters
    ----------
    weight, gradient, velocity : IntFormat
        Signed formats of the weights, the weight gradients and the velocity.
    weight_frac, grad_frac, velocity_frac : int
        Their fractional bits.
    lr, momentum, weight_decay : int
        The constants on Q.constant_frac, unsigned ``constant_width`` bits (:meth:`quantize_constant`
        makes them from floats).
    constant_frac, constant_width : int
        Grid and unsigned width of the constants.
    rounding : str
        Rounding of ``v'`` and ``w'`` (:data:`ROUNDING_MODES`); both then saturate.
    """

    weight: IntFormat = IntFormat(16)
    weight_frac: int = 12
    gradient: IntFormat = IntFormat(16)
    grad_frac: int = 12
    velocity: IntFormat = IntFormat(16)
    velocity_frac: int = 12
    lr: int = 0
    momentum: int = 0
    weight_decay: int = 0
    constant_frac: int = 20
    constant_width: int = 24
    rounding: str = "half_even"

    def __post_init__(self) -> None:
        for name in ("weight", "gradient", "velocity"):
            if not isinstance(getattr(self, name), IntFormat) or not getattr(self, name).signed:
                raise TypeError(f"{name} must be a signed IntFormat, not {getattr(self, name)!r}")
        for name in ("weight_frac", "grad_frac", "velocity_frac", "constant_frac"):
            check_int(name, getattr(self, name), 0, 30)
        check_int("constant_width", self.constant_width, 1, 32)
        for name in ("lr", "momentum", "weight_decay"):
            check_int(name, getattr(self, name), 0, (1 << self.constant_width) - 1)
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")
        for name, width in (("velocity", self.velocity_accumulator_width),
                            ("weight", self.weight_accumulator_width)):
            if width > _MAX_WIDTH:
                raise ValueError(f"the {name} accumulator needs {width} bits, more than {_MAX_WIDTH}: "
                                 "narrow the formats or the fractional bits")

    @staticmethod
    def quantize_constant(name: str, value: float, *, constant_frac: int = 20, constant_width: int = 24) -> int:
        """``round_half_even(value * 2**constant_frac)``; refuses values that do not fit the unsigned
        ``constant_width`` bits and nonzero values that round to zero."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        fixed = round(value * 2**constant_frac)
        largest = ((1 << constant_width) - 1) / 2**constant_frac
        if fixed >= 1 << constant_width:
            raise ValueError(f"{name} must be at most {largest:g} (unsigned {constant_width}-bit "
                             f"Q.{constant_frac}), not {value!r}")
        if value > 0 and fixed == 0:
            raise ValueError(f"{name} must be at least {2.0 ** -(constant_frac + 1):g} (it rounds to 0 on "
                             f"Q.{constant_frac}), not {value!r}")
        return fixed

    @classmethod
    def from_float(cls, *, lr: float, momentum: float, weight_decay: float, **fields) -> SgdArithmetic:
        """The unit with ``lr``, ``momentum``, ``weight_decay`` quantized by :meth:`quantize_constant`."""
        grid = {key: fields.get(key, cls.__dataclass_fields__[key].default)
                for key in ("constant_frac", "constant_width")}
        constants = {name: cls.quantize_constant(name, value, **grid)
                     for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay))}
        return cls(**constants, **fields)

    @classmethod
    def from_training(cls, training: IntegerTraining, *, lr: float, momentum: float, weight_decay: float,
                      **overrides) -> SgdArithmetic:
        """On an :class:`IntegerTraining` mode's grids: weights Q.weight_frac, gradients and velocity
        Q.weight_grad_frac, all in the operand format (the velocity is stored like a weight gradient)."""
        fields = {"weight": training.operand, "weight_frac": training.weight_frac,
                  "gradient": training.operand, "grad_frac": training.weight_grad_frac,
                  "velocity": training.operand, "velocity_frac": training.weight_grad_frac,
                  "rounding": training.rounding}
        fields.update(overrides)
        return cls.from_float(lr=lr, momentum=momentum, weight_decay=weight_decay, **fields)

    # -- widths ---------------------------------------------------------------------------------------------
    @property
    def _velocity_grid(self) -> int:
        return max(self.velocity_frac, self.weight_frac, self.grad_frac)

    @property
    def _weight_grid(self) -> int:
        return max(self.velocity_frac, self.weight_frac)

    @property
    def velocity_accumulator_width(self) -> int:
        """Signed bits of ``M*v + WD*w + g`` on Q.(constant_frac + max(vf, wf, gf)) (never overflows)."""
        constant = (1 << self.constant_width) - 1
        grid = self._velocity_grid
        largest = (constant * (1 << (self.velocity.width - 1)) << (grid - self.velocity_frac)) \
            + (constant * (1 << (self.weight.width - 1)) << (grid - self.weight_frac)) \
            + ((1 << (self.gradient.width - 1)) << (self.constant_frac + grid - self.grad_frac))
        return largest.bit_length() + 1

    @property
    def weight_accumulator_width(self) -> int:
        """Signed bits of ``w - LR*v'`` on Q.(constant_frac + max(vf, wf)) (never overflows)."""
        constant = (1 << self.constant_width) - 1
        grid = self._weight_grid
        largest = ((1 << (self.weight.width - 1)) << (self.constant_frac + grid - self.weight_frac)) \
            + (constant * (1 << (self.velocity.width - 1)) << (grid - self.velocity_frac))
        return largest.bit_length() + 1

    def real(self, name: str) -> float:
        """A constant's real value (``lr``, ``momentum`` or ``weight_decay``)."""
        return getattr(self, name) * 2.0 ** -self.constant_frac

    # -- the unit ---------------------------------------------------------------------------------------------
    def update(self, weights, velocity, gradient) -> tuple[np.ndarray, np.ndarray]:
        """``(weights', velocity')`` (int64, the shape of ``weights``) from one SGD step."""
        w = self.weight.check(weights, "weights")
        v = self.velocity.check(velocity, "velocity")
        g = self.gradient.check(gradient, "gradient")
        if not w.shape == v.shape == g.shape:
            raise ValueError(f"weights, velocity and gradient must have one shape, not {w.shape}, {v.shape}, "
                             f"{g.shape}")
        grid = self._velocity_grid
        total = ((self.momentum * v) << (grid - self.velocity_frac)) \
            + ((self.weight_decay * w) << (grid - self.weight_frac)) \
            + (g << (self.constant_frac + grid - self.grad_frac))
        new_velocity = requantize(total, self.constant_frac + grid - self.velocity_frac, self.velocity,
                                  self.rounding)
        grid = self._weight_grid
        total = (w << (self.constant_frac + grid - self.weight_frac)) \
            - ((self.lr * new_velocity) << (grid - self.velocity_frac))
        new_weights = requantize(total, self.constant_frac + grid - self.weight_frac, self.weight, self.rounding)
        return new_weights, new_velocity
