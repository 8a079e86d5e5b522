"""Forward and backward of every layer, as plain NumPy functions on NCHW (or NF) arrays.

The functions are vectorised (im2col with ``sliding_window_view`` plus ``np.matmul``; Python loops run
only over kernel offsets, never over pixels or samples) and keep the dtype of their inputs (float32 or
float64). Convolutions and linear layers compute **each sample with its own GEMM** (``np.matmul`` over a
leading batch axis), so a sample's output does not depend on how many samples share the call: this is
what makes mini-batch serialisation bit-identical to the layer-by-layer run with GroupNorm.
Reductions across samples (weight gradients, BatchNorm statistics) are the only results whose rounding
depends on the batch split.

Signatures are stable; the planner's row-block executor calls the forward functions on row slices.
The BN/GN fission-and-fusion formulas (after Jung et al., arXiv 1807.01702: statistics on the producer's write,
affine+ReLU on the consumer's read, ``dx = k1*dy + k2*x + k3``) are the ``fused_norm_*`` functions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "NormMoments",
    "add_backward",
    "add_forward",
    "avgpool_backward",
    "avgpool_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "batchnorm_running_update",
    "col2im",
    "concat_backward",
    "concat_forward",
    "conv2d_as_gemm",
    "conv2d_backward",
    "conv2d_forward",
    "conv_output_size",
    "flatten_backward",
    "flatten_forward",
    "fused_norm_affine_constants",
    "fused_norm_backward_constants",
    "fused_norm_backward_reductions",
    "fused_norm_input_gradient",
    "fused_norm_read",
    "global_avgpool_backward",
    "global_avgpool_forward",
    "groupnorm_backward",
    "groupnorm_forward",
    "im2col",
    "linear_backward",
    "linear_forward",
    "maxpool_backward",
    "maxpool_forward",
    "relu_backward",
    "relu_forward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    return (int(value[0]), int(value[1]))


def conv_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (PyTorch's rule, including ``ceil_mode``)."""
    span = size + 2 * padding - kernel
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:  # PyTorch: the last window must start inside the input
            out -= 1
        return out
    return span // stride + 1


# ---------------------------------------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------------------------------------
def _windows(x, kernel, stride, padding, fill=0.0, out_size=None):
    """View ``(N, C, Ho, Wo, kh, kw)`` of the padded input (no copy beyond the padding)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    if out_size is None:
        out_size = (conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))
    ho, wo = out_size
    # Rows/columns needed by the last window (ceil mode may need more than the symmetric padding).
    need_h, need_w = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    extra_h, extra_w = max(0, need_h - h - 2 * ph), max(0, need_w - w - 2 * pw)
    if ph or pw or extra_h or extra_w:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)), constant_values=fill)
    view = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return view[:, :, : need_h - kh + 1 : sh, : need_w - kw + 1 : sw]


def im2col(x, kernel, stride=1, padding=0) -> np.ndarray:
    """Lower ``x`` (N, C, H, W) to columns (N, C*kh*kw, Ho*Wo); row index = (c, i, j) row-major."""
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    windows = _windows(x, kernel, stride, padding)
    n, c, ho, wo, kh, kw = windows.shape
    return np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, ho * wo)


def col2im(cols, x_shape, kernel, stride=1, padding=0, out_size=None) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add (N, C*kh*kw, Ho*Wo) columns back to (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n, c, h, w = x_shape
    if out_size is None:
        out_size = (conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))
    ho, wo = out_size
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    height = max(h + 2 * ph, (ho - 1) * sh + kh)
    width = max(w + 2 * pw, (wo - 1) * sw + kw)
    padded = np.zeros((n, c, height, width), dtype=cols.dtype)
    for i in range(kh):  # loops over kernel offsets only
        for j in range(kw):
            padded[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] += cols[:, :, i, j]
    return padded[:, :, ph : ph + h, pw : pw + w]


# ---------------------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------------------
def conv2d_forward(x, weight, bias=None, *, stride=1, padding=0, groups=1, cols=None):
    """2-D convolution (cross-correlation, as PyTorch).

    ``x`` (N, Cin, H, W), ``weight`` (Cout, Cin/groups, kh, kw), ``bias`` (Cout,) or ``None``.
    Returns (N, Cout, Ho, Wo). ``cols`` may pass a precomputed :func:`im2col` of ``x``.
    """
    n = x.shape[0]
    c_out, c_in_group, kh, kw = weight.shape
    if cols is None:
        cols = im2col(x, (kh, kw), stride, padding)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    ho = conv_output_size(x.shape[2], kh, sh, ph)
    wo = conv_output_size(x.shape[3], kw, sw, pw)
    k_group = c_in_group * kh * kw
    if groups == 1:
        y = np.matmul(weight.reshape(c_out, k_group), cols)  # one GEMM per sample
    else:
        w_groups = weight.reshape(groups, c_out // groups, k_group)
        y = np.matmul(w_groups, cols.reshape(n, groups, k_group, ho * wo))
    y = y.reshape(n, c_out, ho, wo)
    if bias is not None:
        y = y + bias.reshape(1, c_out, 1, 1)
    return y


def conv2d_backward(dy, x, weight, *, stride=1, padding=0, groups=1, bias=True, cols=None):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dweight, dbias)`` (``dbias`` None without bias)."""
    n, c_in, h, w = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    ho, wo = dy.shape[2], dy.shape[3]
    if cols is None:
        cols = im2col(x, (kh, kw), stride, padding)
    k_group = c_in_group * kh * kw
    cout_group = c_out // groups
    dy_groups = dy.reshape(n, groups, cout_group, ho * wo)
    w_groups = weight.reshape(groups, cout_group, k_group)
    # Data gradient: per-sample GEMM W^T dY, then col2im.
    dcols = np.matmul(w_groups.transpose(0, 2, 1), dy_groups)
    dx = col2im(dcols.reshape(n, c_in * kh * kw, ho * wo), x.shape, (kh, kw), stride, padding, (ho, wo))
    # Weight gradient: dY (Cout x N*P) times cols^T (N*P x K); the reduction spans the samples.
    cols_groups = cols.reshape(n, groups, k_group, ho * wo)
    dy_matrix = dy_groups.transpose(1, 2, 0, 3).reshape(groups, cout_group, n * ho * wo)
    cols_matrix = cols_groups.transpose(1, 0, 3, 2).reshape(groups, n * ho * wo, k_group)
    dweight = np.matmul(dy_matrix, cols_matrix).reshape(weight.shape)
    dbias = dy.sum(axis=(0, 2, 3)) if bias else None
    return dx, dweight, dbias


def conv2d_as_gemm(x, weight, *, stride=1, padding=0, groups=1):
    """The forward convolution as the GEMMs the systolic array runs: ``Y_g = A_g @ B_g``.

    Returns ``(a, b, out_shape)``: ``a`` is (groups, Cout/groups, K) with K = Cin/groups*kh*kw ordered
    (c, i, j); ``b`` is (groups, K, N*Ho*Wo) with columns ordered (n, ho, wo); ``out_shape`` is
    (N, Cout, Ho, Wo). ``Y[n, g*Cout_g + o, ho, wo] = (a[g] @ b[g])[o, n*Ho*Wo + ho*Wo + wo]``.
    Works for any dtype, including the int64 operands of the integer mode.
    """
    n, c_in, h, w = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    k_group = c_in_group * kh * kw
    cols = im2col(x, (kh, kw), stride, padding).reshape(n, groups, k_group, ho * wo)
    b = np.ascontiguousarray(cols.transpose(1, 2, 0, 3)).reshape(groups, k_group, n * ho * wo)
    a = weight.reshape(groups, c_out // groups, k_group)
    return a, b, (n, c_out, ho, wo)


# ---------------------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------------------
def linear_forward(x, weight, bias=None):
    """``x`` (N, F) @ ``weight``.T (F, O) + ``bias``; one GEMM per sample (batch-split invariant)."""
    y = np.matmul(x[:, None, :], weight.T)[:, 0, :]
    if bias is not None:
        y = y + bias
    return y


def linear_backward(dy, x, weight, *, bias=True):
    """Returns ``(dx, dweight, dbias)``."""
    dx = np.matmul(dy[:, None, :], weight)[:, 0, :]
    dweight = dy.T @ x
    dbias = dy.sum(axis=0) if bias else None
    return dx, dweight, dbias


# ---------------------------------------------------------------------------------------------------------
# Normalisation (textbook form)
# ---------------------------------------------------------------------------------------------------------
def batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """Training-mode BatchNorm2d with batch statistics. Returns ``(y, mean, var)`` (biased var)."""
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    rstd = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean[None, :, None, None]) * rstd[None, :, None, None]
    y = x_hat * gamma[None, :, None, None] + beta[None, :, None, None]
    return y, mean, var


def batchnorm_running_update(running_mean, running_var, mean, var, count, momentum=0.1):
    """PyTorch's update: ``r = (1 - m) r + m s`` with the **unbiased** batch variance."""
    unbiased = var * (count / max(count - 1, 1))
    return (
        (1 - momentum) * running_mean + momentum * mean,
        (1 - momentum) * running_var + momentum * unbiased,
    )


def batchnorm_backward(dy, x, gamma, *, eps=1e-5):
    """Returns ``(dx, dgamma, dbeta)``, statistics recomputed from the stashed input ``x``."""
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    rstd = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean[None, :, None, None]) * rstd[None, :, None, None]
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * x_hat).sum(axis=(0, 2, 3))
    scale = (gamma * rstd / count)[None, :, None, None]
    dx = scale * (count * dy - dbeta[None, :, None, None] - x_hat * dgamma[None, :, None, None])
    return dx, dgamma, dbeta


def _group_view(x, groups):
    n, c = x.shape[:2]
    return x.reshape(n, groups, -1)


def groupnorm_forward(x, gamma, beta, *, groups, eps=1e-5):
    """GroupNorm: statistics per (sample, group) over (C/groups, H, W). Returns ``y``."""
    xr = _group_view(x, groups)
    mean = xr.mean(axis=2, keepdims=True)
    var = xr.var(axis=2, keepdims=True)
    x_hat = ((xr - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return x_hat * gamma[None, :, None, None] + beta[None, :, None, None]


def groupnorm_backward(dy, x, gamma, *, groups, eps=1e-5):
    """Returns ``(dx, dgamma, dbeta)``; dx is per sample, dgamma/dbeta sum over samples."""
    xr = _group_view(x, groups)
    mean = xr.mean(axis=2, keepdims=True)
    var = xr.var(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    x_hat = (xr - mean) * rstd
    dgamma = (dy * x_hat.reshape(x.shape)).sum(axis=(0, 2, 3))
    dbeta = dy.sum(axis=(0, 2, 3))
    dx_hat = _group_view(dy * gamma[None, :, None, None], groups)
    dx = rstd * (
        dx_hat - dx_hat.mean(axis=2, keepdims=True) - x_hat * (dx_hat * x_hat).mean(axis=2, keepdims=True)
    )
    return dx.reshape(x.shape), dgamma, dbeta


# ---------------------------------------------------------------------------------------------------------
# Normalisation, fission-and-fusion form (Jung et al., arXiv 1807.01702; GN applies it per sample)
# ---------------------------------------------------------------------------------------------------------
class NormMoments:
    """Per-channel (BN) or per-(sample, group) (GN) statistics accumulated on the producer's write.

    Chunks (sub-batches or tiles, in any order) are merged with Chan's (count, mean, M2) update, which
    stays accurate where the one-pass E[x^2] - E[x]^2 cancels catastrophically (|mean| >> std).
    """

    def __init__(self, kind: str, groups: int | None = None):
        self.kind = kind
        self.groups = groups
        self.count = 0
        self.mean = None
        self.m2 = None
        self._per_sample: list = []

    def write(self, x) -> None:
        """Accumulate a produced chunk ``x`` (n, C, H, W)."""
        if self.kind == "groupnorm":
            # GN statistics belong to each sample: keep them per sample (no cross-sample merge).
            xr = _group_view(x, self.groups)
            mean = xr.mean(axis=2)
            self._per_sample.append((mean, ((xr - mean[..., None]) ** 2).sum(axis=2), xr.shape[2]))
            return
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(axis=(0, 2, 3))
        m2 = ((x - mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / total)
        self.count = total

    def finish(self):
        """``(mean, var)``: per channel (BN) or (N, groups) arrays (GN), biased variance."""
        if self.kind == "groupnorm":
            mean = np.concatenate([m for m, _, _ in self._per_sample])
            var = np.concatenate([m2 / size for _, m2, size in self._per_sample])
            return mean, var
        return self.mean, self.m2 / self.count


def _expand(values, x, kind, groups):
    """Broadcast per-channel (BN) or per-(n, group) (GN) values to x's (n, C, H, W)."""
    if kind == "batchnorm":
        return values[None, :, None, None]
    n, c = x.shape[:2]
    return np.repeat(values, c // groups, axis=1)[:, :, None, None]


def fused_norm_affine_constants(mean, var, gamma, beta, *, kind, groups=None, eps=1e-5):
    """Per-channel (BN) or per-(sample, channel) (GN) ``a, c`` with ``norm(x) = a*x + c``."""
    rstd = 1.0 / np.sqrt(var + eps)
    if kind == "batchnorm":
        a = gamma * rstd
        return a, beta - a * mean
    per_channel = gamma.shape[0] // groups
    rstd_c = np.repeat(rstd, per_channel, axis=1)
    mean_c = np.repeat(mean, per_channel, axis=1)
    a = gamma[None, :] * rstd_c
    return a, beta[None, :] - a * mean_c


def fused_norm_read(x, a, c, *, relu=True, max_value=None):
    """Affine (+ReLU/ReLU6) applied on the consumer's read: ``z = clip(a*x + c)``."""
    if a.ndim == 1:
        a, c = a[None, :, None, None], c[None, :, None, None]
    else:
        a, c = a[:, :, None, None], c[:, :, None, None]
    y = a * x + c
    if relu:
        y = np.maximum(y, 0) if max_value is None else np.clip(y, 0, max_value)
    return y


def fused_norm_backward_reductions(
    dz, x, a, c, mean, *, relu=True, max_value=None, kind="batchnorm", groups=None
):
    """On the backward-data write: ReLU mask recomputed from ``a*x + c``; returns ``(dy, r1, r2)``.

    ``r1 = sum dy`` and ``r2 = sum dy*(x - mean)`` per channel over (n, H, W) for BN, per (n, channel) over
    (H, W) for GN (merged into groups by :func:`fused_norm_backward_constants`). ``mean`` is the forward
    statistic (known before the backward pass), so centring costs one subtraction on the write path; it
    avoids the cancellation of the raw ``sum dy*x - mean*sum dy``, which loses
    ~1e-11 relative when dgamma is small against ``mean * sum dy``.
    """
    if relu:
        pre = fused_norm_read(x, a, c, relu=False)
        mask = pre > 0 if max_value is None else (pre > 0) & (pre < max_value)
        dy = dz * mask
    else:
        dy = dz
    axes = (0, 2, 3) if kind == "batchnorm" else (2, 3)
    centred = x - _expand(mean, x, kind, groups)
    return dy, dy.sum(axis=axes), (dy * centred).sum(axis=axes)


def fused_norm_backward_constants(r1, r2, mean, var, gamma, *, count, kind, groups=None, eps=1e-5):
    """``k1, k2, k3`` with ``dx = k1*dy + k2*x + k3`` and the parameter gradients ``dgamma, dbeta``.

    ``r2`` is the centred reduction ``sum dy*(x - mean)``. BN: ``count`` = N*H*W, all per channel. GN:
    ``r1, r2`` are per (n, channel), ``mean, var`` per (n, group), ``count`` = C/groups*H*W; k1 is per
    (n, channel), k2 and k3 per (n, group) expanded to channels; dgamma/dbeta sum over the samples given.
    """
    rstd = 1.0 / np.sqrt(var + eps)
    if kind == "batchnorm":
        dbeta = r1
        dgamma = rstd * r2
        k1 = gamma * rstd
        k2 = -gamma * rstd**3 * r2 / count
        k3 = -gamma * rstd * r1 / count - k2 * mean
        return k1, k2, k3, dgamma, dbeta
    n, channels = r1.shape
    per_channel = channels // groups
    rstd_c = np.repeat(rstd, per_channel, axis=1)
    dbeta = r1.sum(axis=0)
    dgamma = (rstd_c * r2).sum(axis=0)
    g_r1 = (gamma[None, :] * r1).reshape(n, groups, per_channel).sum(axis=2)  # sum of dxh/rstd per group
    g_r2 = (gamma[None, :] * r2).reshape(n, groups, per_channel).sum(axis=2)
    k2 = -(rstd**3) * g_r2 / count
    k3 = -rstd * g_r1 / count - k2 * mean
    k1 = gamma[None, :] * rstd_c
    return k1, np.repeat(k2, per_channel, axis=1), np.repeat(k3, per_channel, axis=1), dgamma, dbeta


def fused_norm_input_gradient(dy, x, k1, k2, k3):
    """On the producer's backward read: ``dx = k1*dy + k2*x + k3`` (per channel or per (n, channel))."""
    if k1.ndim == 1:
        k1, k2, k3 = (k[None, :, None, None] for k in (k1, k2, k3))
    else:
        k1, k2, k3 = (k[:, :, None, None] for k in (k1, k2, k3))
    return k1 * dy + k2 * x + k3


# ---------------------------------------------------------------------------------------------------------
# Element-wise, pooling, shape
# ---------------------------------------------------------------------------------------------------------
def relu_forward(x, max_value=None):
    """ReLU, or ReLU6-style clipping when ``max_value`` is given."""
    return np.maximum(x, 0) if max_value is None else np.clip(x, 0, max_value)


def relu_backward(dy, x, max_value=None):
    """Gradient passes where ``0 < x`` (and ``x < max_value``), as PyTorch's relu/hardtanh."""
    mask = x > 0 if max_value is None else (x > 0) & (x < max_value)
    return dy * mask


def _lowest(dtype):
    """Padding value that never wins a max: -inf for floats, the most negative integer otherwise."""
    return -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min


def maxpool_forward(x, *, kernel, stride=None, padding=0, ceil_mode=False):
    """Max pooling; padding is -inf (never chosen), ``ceil_mode`` as PyTorch."""
    kernel = _pair(kernel)
    stride = kernel if stride is None else _pair(stride)
    padding = _pair(padding)
    out_size = tuple(
        conv_output_size(s, k, st, p, ceil_mode) for s, k, st, p in zip(x.shape[2:], kernel, stride, padding)
    )
    windows = _windows(x, kernel, stride, padding, fill=_lowest(x.dtype), out_size=out_size)
    return windows.max(axis=(4, 5))


def maxpool_backward(dy, x, *, kernel, stride=None, padding=0, ceil_mode=False):
    """Routes each output gradient to the first maximum of its window (PyTorch's tie rule)."""
    kernel = _pair(kernel)
    stride = kernel if stride is None else _pair(stride)
    padding = _pair(padding)
    out_size = dy.shape[2:]
    windows = _windows(x, kernel, stride, padding, fill=_lowest(x.dtype), out_size=out_size)
    n, c, ho, wo, kh, kw = windows.shape
    argmax = windows.reshape(n, c, ho, wo, kh * kw).argmax(axis=4)
    routed = (argmax[..., None] == np.arange(kh * kw)) * dy[..., None]  # (n, c, ho, wo, kh*kw)
    cols = routed.reshape(n, c, ho, wo, kh, kw).transpose(0, 1, 4, 5, 2, 3)
    return col2im(cols.astype(dy.dtype, copy=False), x.shape, kernel, stride, padding, out_size)


def avgpool_forward(x, *, kernel, stride=None, padding=0):
    """Average pooling; zero padding counts in the divisor (PyTorch's ``count_include_pad=True``)."""
    kernel = _pair(kernel)
    stride = kernel if stride is None else _pair(stride)
    windows = _windows(x, kernel, stride, _pair(padding))
    return windows.sum(axis=(4, 5)) / np.asarray(kernel[0] * kernel[1], dtype=x.dtype)


def avgpool_backward(dy, x, *, kernel, stride=None, padding=0):
    kernel = _pair(kernel)
    stride = kernel if stride is None else _pair(stride)
    n, c, ho, wo = dy.shape
    share = dy / np.asarray(kernel[0] * kernel[1], dtype=dy.dtype)
    cols = np.broadcast_to(share[:, :, None, None], (n, c, *kernel, ho, wo))
    return col2im(cols, x.shape, kernel, stride, padding, (ho, wo))


def global_avgpool_forward(x):
    """Mean over H, W; output (N, C, 1, 1)."""
    return x.mean(axis=(2, 3), keepdims=True)


def global_avgpool_backward(dy, x):
    return np.broadcast_to(dy / np.asarray(x.shape[2] * x.shape[3], dtype=dy.dtype), x.shape).copy()


def add_forward(*inputs):
    """Element-wise sum, added left to right."""
    total = inputs[0]
    for other in inputs[1:]:
        total = total + other
    return total


def add_backward(dy, count):
    return [dy] * count


def concat_forward(*inputs):
    """Channel concatenation (axis 1), in operand order."""
    return np.concatenate(inputs, axis=1)


def concat_backward(dy, channels):
    """Split ``dy`` back into the operands' channel counts."""
    return np.split(dy, np.cumsum(channels)[:-1], axis=1)


def flatten_forward(x):
    return x.reshape(x.shape[0], -1)


def flatten_backward(dy, x_shape):
    return dy.reshape(x_shape)


def softmax_cross_entropy(logits, labels):
    """Per-sample softmax cross-entropy losses (N,) and the softmax probabilities (N, K)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    losses = np.log(total[:, 0]) - shifted[np.arange(len(labels)), labels]
    return losses, exp / total


def softmax_cross_entropy_backward(probabilities, labels, batch):
    """Gradient of the **mean** loss over a mini-batch of ``batch`` samples (a sub-batch passes the
    whole mini-batch size, so each sample's gradient is the same as in the full-batch run)."""
    grad = probabilities.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return grad / np.asarray(batch, dtype=grad.dtype)
