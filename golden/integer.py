"""The hardware-exact integer training mode, layer by layer (rules: ``docs/golden.md``, "Integer mode").

Every tensor is an int64 array holding ``mac.in_width``-bit signed values on a power-of-two grid
(:class:`golden.numerics.IntegerTraining`). GEMMs (conv forward, backward-data, backward-weight; linear)
run through :meth:`golden.numerics.MacArithmetic.matmul` (exact products, accumulation in ``acc_width`` with
the overflow rule after every addition, ``k`` ascending) and are requantized with
:func:`golden.numerics.requantize`. Reductions that span samples are exact integers, or a GEMM whose
accumulator is carried from one sub-batch to the next in ascending sample order, so every schedule gives
the same bits as the baseline.
"""

from __future__ import annotations

import math

import numpy as np

from golden import layers as L
from golden.numerics import IntegerTraining, NormArithmetic, SgdArithmetic, requantize

__all__ = ["ExactKernels", "IntegerKernels", "conv2d_forward_int"]


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def conv2d_forward_int(numerics: IntegerTraining, x_q, w_q, bias_q=None, *, stride=1, padding=0, groups=1):
    """Integer conv forward: im2col GEMM with ``MacArithmetic`` then requantize by ``weight_frac``.

    ``x_q`` is Q.activation_frac, ``w_q`` and ``bias_q`` Q.weight_frac; the bias enters the accumulator
    as its starting value (shifted to the product grid). Returns Q.activation_frac.
    """
    a, b, out_shape = L.conv2d_as_gemm(x_q, w_q, stride=stride, padding=padding, groups=groups)
    n, c_out, ho, wo = out_shape
    per_group = c_out // groups
    outputs = []
    for g in range(groups):
        start = None
        if bias_q is not None:
            start = np.repeat(
                (bias_q[g * per_group : (g + 1) * per_group].astype(np.int64) << numerics.activation_frac)[
                    :, None
                ],
                b.shape[2],
                axis=1,
            )
        outputs.append(numerics.mac.matmul(a[g], b[g], start))
    acc = np.stack(outputs).reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)
    return requantize(acc, numerics.weight_frac, numerics.operand, numerics.rounding)


class ExactKernels:
    """Kernels that never round, so the float and the integer modes share them: max-pool selects."""

    def maxpool_forward(self, layer, x):
        p = layer.params
        return L.maxpool_forward(
            x, kernel=p["kernel"], stride=p["stride"], padding=p["padding"], ceil_mode=p["ceil_mode"]
        )

    def maxpool_backward(self, layer, dy, x):
        p = layer.params
        return L.maxpool_backward(
            dy, x, kernel=p["kernel"], stride=p["stride"], padding=p["padding"], ceil_mode=p["ceil_mode"]
        )


class IntegerKernels(ExactKernels):
    """Integer versions of the kernels :class:`golden.train._Step` calls."""

    integer = True
    carries_accumulator = True

    def __init__(self, numerics: IntegerTraining):
        self.n = numerics
        self.mac = numerics.mac
        self.fmt = numerics.operand
        fa, fw, fg, fwg = (
            numerics.activation_frac,
            numerics.weight_frac,
            numerics.grad_frac,
            numerics.weight_grad_frac,
        )
        self.fa, self.fw, self.fg, self.fwg, self.sf = fa, fw, fg, fwg, numerics.scalar_frac
        # Accumulator grid of each gradient kind, as a shift down to Q.weight_grad_frac.
        self.grad_shift = {
            "gemm_weight": fg + fa - fwg,
            "gemm_bias": fg - fwg,
            "norm_weight": self.sf,
            "norm_bias": fg - fwg,
        }
        self._grad_kind: dict[tuple[str, str], str] = {}
        self._norms: dict[int, NormArithmetic] = {}
        self.loss_unit = numerics.loss_arithmetic if numerics.loss == "integer" else None
        self._sgd_units: dict = {}

    def _requantize(self, values, shift):
        return requantize(values, int(shift), self.fmt, self.n.rounding)

    # -- inputs and parameters -----------------------------------------------------------------------------
    def cast(self, array):
        array = np.asarray(array)
        if array.dtype.kind == "f":
            return self.n.quantize(array, self.fa)
        return self.fmt.check(array, "input")

    def prepare_params(self, params):
        prepared = {}
        for name, entry in params.items():
            prepared[name] = {}
            for key, value in entry.items():
                value = np.asarray(value)
                prepared[name][key] = (
                    self.n.quantize(value, self.fw)
                    if value.dtype.kind == "f"
                    else self.fmt.check(value, f"{name}.{key}")
                )
        return prepared

    # -- GEMM layers ---------------------------------------------------------------------------------------
    def conv_forward(self, layer, x, weight, bias):
        p = layer.params
        return conv2d_forward_int(
            self.n, x, weight, bias, stride=p["stride"], padding=p["padding"], groups=p["groups"]
        )

    def conv_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        p = layer.params
        groups = p["groups"]
        n, c_in, h, w = x.shape
        c_out, c_in_group, kh, kw = weight.shape
        ho, wo = dy.shape[2], dy.shape[3]
        per_group = c_out // groups
        k_group = c_in_group * kh * kw
        # dY as (groups, Cout/g, N*P), columns ordered (n, p) like conv2d_as_gemm's B.
        dy_matrix = (
            dy.reshape(n, groups, per_group, ho * wo)
            .transpose(1, 2, 0, 3)
            .reshape(groups, per_group, n * ho * wo)
        )
        a, b, _ = L.conv2d_as_gemm(x, weight, stride=p["stride"], padding=p["padding"], groups=groups)
        dx = None
        if need_dx:
            # Backward-data GEMM W^T dY per group, col2im sums exactly, one requantization.
            dcols = np.stack([self.mac.matmul(a[g].T, dy_matrix[g]) for g in range(groups)])
            dcols = (
                dcols.reshape(groups, k_group, n, ho * wo)
                .transpose(2, 0, 1, 3)
                .reshape(n, c_in * kh * kw, ho * wo)
            )
            dx_acc = L.col2im(dcols, x.shape, (kh, kw), p["stride"], p["padding"], (ho, wo))
            dx = self._requantize(dx_acc, self.fw)
        # Backward-weight GEMM dY B^T, accumulator carried across sub-batches (ascending samples).
        dw = []
        for g in range(groups):
            start = None if acc_weight is None else acc_weight.reshape(groups, per_group, k_group)[g]
            dw.append(self.mac.matmul(dy_matrix[g], b[g].T, start))
        self._grad_kind[(layer.name, "weight")] = "gemm_weight"
        dbias = None
        if p["bias"]:
            dbias = dy.sum(axis=(0, 2, 3))
            self._grad_kind[(layer.name, "bias")] = "gemm_bias"
        return dx, np.stack(dw).reshape(weight.shape), dbias

    def linear_forward(self, layer, x, weight, bias):
        start = None
        if bias is not None:
            start = np.repeat((bias.astype(np.int64) << self.fa)[None, :], x.shape[0], axis=0)
        acc = self.mac.matmul(x, weight.T, start)
        return self._requantize(acc, self.fw)

    def linear_backward(self, layer, dy, x, weight, need_dx, acc_weight=None):
        dx = self._requantize(self.mac.matmul(dy, weight), self.fw)
        dw = self.mac.matmul(dy.T, x, acc_weight)
        self._grad_kind[(layer.name, "weight")] = "gemm_weight"
        dbias = None
        if layer.params["bias"]:
            dbias = dy.sum(axis=0)
            self._grad_kind[(layer.name, "bias")] = "gemm_bias"
        return dx, dw, dbias

    # -- element-wise and pooling --------------------------------------------------------------------------
    def _relu_limit(self, max_value):
        return None if max_value is None else self.fmt.saturate(int(round(max_value * 2**self.fa)))

    def relu_forward(self, layer, x):
        limit = self._relu_limit(layer.params["max_value"])
        return np.maximum(x, 0) if limit is None else np.clip(x, 0, limit)

    def relu_backward(self, layer, dy, x):
        limit = self._relu_limit(layer.params["max_value"])
        mask = x > 0 if limit is None else (x > 0) & (x < limit)
        return dy * mask

    def _divide(self, values, count):
        """Exact sum divided by ``count``: a shift for powers of two, else times round(2^R/count) >> R."""
        if _is_power_of_two(count):
            return self._requantize(values, int(math.log2(count)))
        reciprocal = round(2**self.n.reciprocal_frac / count)
        return self._requantize(values * reciprocal, self.n.reciprocal_frac)

    def avgpool_forward(self, layer, x):
        p = layer.params
        kh, kw = p["kernel"]
        windows = L._windows(x, p["kernel"], p["stride"], p["padding"])
        return self._divide(windows.sum(axis=(4, 5)), kh * kw)

    def avgpool_backward(self, layer, dy, x_shape):
        p = layer.params
        kh, kw = p["kernel"]
        share = self._divide(dy, kh * kw)
        n, c, ho, wo = dy.shape
        cols = np.broadcast_to(share[:, :, None, None], (n, c, kh, kw, ho, wo))
        return self.fmt.saturate(L.col2im(cols, x_shape, p["kernel"], p["stride"], p["padding"], (ho, wo)))

    def global_avgpool_forward(self, layer, x):
        return self._divide(x.sum(axis=(2, 3), keepdims=True), x.shape[2] * x.shape[3])

    def global_avgpool_backward(self, layer, dy, x_shape):
        return np.broadcast_to(self._divide(dy, x_shape[2] * x_shape[3]), x_shape).copy()

    def add_forward(self, layer, inputs):
        return self.fmt.saturate(sum(inputs[1:], inputs[0]))

    # -- loss: numerics.LossArithmetic on chip (default) or float64 on the host (IntegerTraining.loss) ----------
    def loss_forward(self, logits, labels):
        """``(per-sample losses, what the backward needs)``: on chip the losses are int64 on Q.loss_frac and
        the backward re-reads the logits (the unit recomputes the exponentials); on the host float64 losses
        and probabilities."""
        if self.loss_unit is not None:
            return self.loss_unit.cross_entropy(logits, labels)[0], logits
        return L.softmax_cross_entropy(self.n.dequantize(logits, self.fa), labels)

    def loss_backward(self, saved, labels, batch):
        if self.loss_unit is not None:
            return self.loss_unit.cross_entropy_gradient(saved, labels, batch=batch)
        return self.n.quantize(L.softmax_cross_entropy_backward(saved, labels, batch), self.fg)

    def loss_value(self, losses):
        """``(mean loss as a float, the mean on Q.loss_frac or None, per-sample losses as floats)``."""
        if self.loss_unit is None:
            return float(losses.mean()), None, losses
        mean = self.loss_unit.mean_loss(losses)
        scale = 2.0**-self.loss_unit.loss_frac
        return mean * scale, mean, losses * scale

    def accumulate(self, total, part):
        return part if total is None else total + part  # exact int64 (reductions sized not to overflow)

    # -- normalisation: golden.numerics.NormArithmetic (the BN/GN datapath units), always in the fission
    # form, so fusion on or off gives the same bits -------------------------------------------------------
    def _norm(self, count: int) -> NormArithmetic:
        """The norm units' arithmetic on this mode's grids, sized for ``count`` elements per statistic."""
        if count not in self._norms:
            self._norms[count] = NormArithmetic.from_training(self.n, max_count=count)
        return self._norms[count]

    @staticmethod
    def _count(layer, x):
        if layer.op == "batchnorm":
            return x.shape[0] * x.shape[2] * x.shape[3]
        return x.shape[1] // layer.params["groups"] * x.shape[2] * x.shape[3]

    def moments(self, layer, x):
        """Exact sums (S1, S2, count): BN per channel over (N, H, W), GN per (sample, group)."""
        count = self._count(layer, x)
        arithmetic = self._norm(count)
        if layer.op == "batchnorm":
            s1, s2 = arithmetic.statistics(x, (0, 2, 3))
        else:
            s1, s2 = arithmetic.statistics(x.reshape(x.shape[0], layer.params["groups"], -1), (2,))
        return s1, s2, count

    def fused_constants(self, layer, moments, gamma, beta):
        s1, s2, count = moments
        arithmetic = self._norm(count)
        eps_q = arithmetic.eps_fixed(layer.params["eps"])
        if layer.op == "batchnorm":
            constants = arithmetic.forward_constants(s1, s2, count, gamma, beta, eps_q)
        else:
            per_group = gamma.shape[0] // layer.params["groups"]
            constants = arithmetic.forward_constants(
                np.repeat(s1, per_group, axis=1),
                np.repeat(s2, per_group, axis=1),
                count,
                np.asarray(gamma)[None, :],
                np.asarray(beta)[None, :],
                eps_q,
            )
        # Real-valued mean and biased variance, only for BN's running statistics.
        mean = np.asarray(s1, dtype=np.float64) / count
        var = np.maximum(np.asarray(s2, dtype=np.float64) / count - mean * mean, 0.0)
        return {
            "s1": np.asarray(s1, dtype=object),
            "rstd": np.asarray(constants["rstd"], dtype=object),
            "a": np.asarray(constants["a"]).astype(np.int64),
            "c": np.asarray(constants["c"]).astype(np.int64),
            "mean": mean * 2.0**-self.fa,
            "var": var * 2.0 ** (-2 * self.fa),
        }

    def fused_read(self, x, constants, relu, max_value):
        a, c = constants["a"], constants["c"]
        if a.ndim == 1:
            a, c = a[None, :, None, None], c[None, :, None, None]
        else:
            a, c = a[:, :, None, None], c[:, :, None, None]
        y = self._requantize(a * x + c, self.sf)  # = NormArithmetic.affine
        if relu:
            limit = self._relu_limit(max_value)
            y = np.maximum(y, 0) if limit is None else np.clip(y, 0, limit)
        return y

    def fused_relu_mask_backward(self, dz, x, constants, max_value):
        pre = self.fused_read(x, constants, relu=False, max_value=None)
        limit = self._relu_limit(max_value)
        mask = pre > 0 if limit is None else (pre > 0) & (pre < limit)
        return dz * mask

    def fused_backward(self, layer, dy, x, constants, gamma):
        """dx, dgamma (grid 2**-(weight_grad_frac + scalar_frac)) and dbeta (grid 2**-grad_frac) from the
        gradient at the norm output ``dy`` (already masked by a following ReLU, if any)."""
        count = self._count(layer, x)
        arithmetic = self._norm(count)
        gamma_object = np.asarray(gamma, dtype=object)
        if layer.op == "batchnorm":
            r1 = dy.sum(axis=(0, 2, 3))
            r2 = (dy * x).sum(axis=(0, 2, 3))
            backward = arithmetic.backward_constants(
                constants["s1"],
                count,
                constants["rstd"],
                constants["a"],
                gamma_object * r1.astype(object),
                gamma_object * r2.astype(object),
            )
            k1, k2, k3 = (
                np.asarray(backward[k]).astype(np.int64)[None, :, None, None] for k in ("k1", "k2", "k3")
            )
            dgamma = np.asarray(arithmetic.dgamma(constants["s1"], count, constants["rstd"], r1, r2)).astype(
                np.int64
            )
            dbeta = r1
        else:
            n, channels = x.shape[:2]
            groups = layer.params["groups"]
            per_group = channels // groups
            r1 = dy.sum(axis=(2, 3))  # (n, channels)
            r2 = (dy * x).sum(axis=(2, 3))
            w1 = (gamma_object[None, :] * r1.astype(object)).reshape(n, groups, per_group).sum(axis=2)
            w2 = (gamma_object[None, :] * r2.astype(object)).reshape(n, groups, per_group).sum(axis=2)
            rstd_group = constants["rstd"].reshape(n, groups, per_group)[:, :, 0]
            backward = arithmetic.backward_constants(
                constants["s1"], count, rstd_group, constants["a"][:, ::per_group], w1, w2
            )
            k1 = constants["a"][:, :, None, None]
            k2, k3 = (
                np.repeat(np.asarray(backward[k]), per_group, axis=1).astype(np.int64)[:, :, None, None]
                for k in ("k2", "k3")
            )
            s1_channel = np.repeat(constants["s1"], per_group, axis=1)
            dgamma = (
                np.asarray(arithmetic.dgamma(s1_channel, count, constants["rstd"], r1, r2))
                .astype(np.int64)
                .sum(axis=0)
            )  # per-sample terms rounded, then summed exactly
            dbeta = r1.sum(axis=0)
        dx = arithmetic.dx(dy, x, k1, k2, k3)
        self._grad_kind[(layer.name, "weight")] = "norm_weight"
        self._grad_kind[(layer.name, "bias")] = "norm_bias"
        return dx, dgamma, dbeta

    def batchnorm_forward(self, layer, x, gamma, beta):
        constants = self.fused_constants(layer, self.moments(layer, x), gamma, beta)
        return self.fused_read(x, constants, False, None), constants["mean"], constants["var"]

    def groupnorm_forward(self, layer, x, gamma, beta):
        return self.fused_read(
            x, self.fused_constants(layer, self.moments(layer, x), gamma, beta), False, None
        )

    def batchnorm_backward(self, layer, dy, x, gamma):
        constants = self.fused_constants(layer, self.moments(layer, x), gamma, np.zeros_like(gamma))
        return self.fused_backward(layer, dy, x, constants, gamma)

    groupnorm_backward = batchnorm_backward

    # -- end of step -----------------------------------------------------------------------------------------
    def finish_grads(self, grads):
        """Accumulators -> Q.weight_grad_frac operands (one requantization per tensor)."""
        finished = {}
        for name, entry in grads.items():
            finished[name] = {
                key: self._requantize(value, self.grad_shift[self._grad_kind[(name, key)]])
                for key, value in entry.items()
            }
        return finished

    def sgd_unit(self, optimizer) -> SgdArithmetic:
        """The on-chip SGD unit for ``optimizer``'s (float) hyper-parameters on this mode's grids."""
        if optimizer not in self._sgd_units:
            self._sgd_units[optimizer] = self.n.sgd_arithmetic(
                lr=optimizer.lr, momentum=optimizer.momentum, weight_decay=optimizer.weight_decay
            )
        return self._sgd_units[optimizer]

    def sgd(self, optimizer, param, grad, velocity):
        """On chip (default): :meth:`SgdArithmetic.update` with the velocity carried between steps (zero
        before the first). On the host: float64 PyTorch SGD on the dequantized values, weights requantized
        to Q.weight_frac and the velocity kept on the Q.weight_grad_frac grid."""
        if self.n.sgd == "integer":
            unit = self.sgd_unit(optimizer)
            return unit.update(param, np.zeros_like(param) if velocity is None else velocity, grad)
        param_real = param * 2.0**-self.fw
        grad_real = grad * 2.0**-self.fwg
        velocity_real = None if velocity is None else velocity * 2.0**-self.fwg
        new_param, new_velocity = optimizer.update(param_real, grad_real, velocity_real)
        velocity_q = None if new_velocity is None else self.n.quantize(new_velocity, self.fwg)
        return self.n.quantize(new_param, self.fw), velocity_q
