"""Every layer of wavecore.golden.layers against PyTorch CPU autograd (forward, input and parameter gradients).

Tolerances. float64: max |golden - torch| <= 1e-10 * max |torch| per tensor (both are exact to ~1e-15;
the margin covers cancellation in BN backward). float32: the golden float32 result is compared with the
float64 result of PyTorch on the same (float32-representable) inputs. For GEMM-based outputs the bound
is the classical dot-product error bound |fl(a.b) - a.b| <= gamma_K * |a|.|b| (Higham, Thm 3.5) with
gamma_K = K*u / (1 - K*u), u = 2**-24, K the reduction length, evaluated element-wise with |a|.|b| from
the same op applied to |inputs|; plus one rounding of the output. For the normalisations and pools
(a few roundings of O(1)-conditioned operations) we allow 64*u relative to max |reference|.
"""

from __future__ import annotations

import numpy as np
import pytest

from wavecore.golden import layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch
U32 = 2.0**-24


def _t(array, grad=True):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def _close64(golden, reference):
    reference = np.asarray(reference)
    scale = max(np.abs(reference).max(), 1e-300)
    assert golden.shape == reference.shape
    assert np.abs(golden - reference).max() <= 1e-10 * scale


def _gamma(k):
    return k * U32 / (1 - k * U32)


CONV_CASES = [
    # (n, c_in, h, w, c_out, kernel, stride, padding, groups, bias)
    (2, 3, 9, 9, 4, (3, 3), (1, 1), (1, 1), 1, True),
    (2, 4, 10, 7, 6, (3, 2), (2, 1), (0, 1), 2, False),
    (3, 6, 8, 8, 6, (3, 3), (2, 2), (1, 1), 6, False),  # depthwise
    (1, 8, 7, 7, 16, (1, 1), (1, 1), (0, 0), 1, True),
    (2, 2, 11, 11, 4, (7, 7), (2, 2), (3, 3), 1, False),
    (2, 4, 5, 5, 8, (2, 2), (3, 3), (0, 0), 4, True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"k{c[5]}s{c[6]}p{c[7]}g{c[8]}b{int(c[9])}")
def test_conv2d_matches_torch_float64(case):
    n, c_in, h, w, c_out, kernel, stride, padding, groups, bias = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, h, w))
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal(c_out) if bias else None
    y = L.conv2d_forward(x, weight, b, stride=stride, padding=padding, groups=groups)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = L.conv2d_backward(dy, x, weight, stride=stride, padding=padding, groups=groups, bias=bias)
    xt, wt = _t(x), _t(weight)
    bt = _t(b) if bias else None
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding, groups=groups)
    (yt * torch.tensor(dy)).sum().backward()
    _close64(y, yt.detach().numpy())
    _close64(dx, xt.grad.numpy())
    _close64(dw, wt.grad.numpy())
    if bias:
        _close64(db, bt.grad.numpy())
    else:
        assert db is None


@pytest.mark.parametrize("case", CONV_CASES[:3], ids=["dense", "grouped", "depthwise"])
def test_conv2d_float32_within_dot_product_bound(case):
    n, c_in, h, w, c_out, kernel, stride, padding, groups, _ = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(np.float32)
    dy = rng.standard_normal(
        (n, c_out, *L.conv2d_forward(x, weight, stride=stride, padding=padding, groups=groups).shape[2:])
    ).astype(np.float32)
    y = L.conv2d_forward(x, weight, stride=stride, padding=padding, groups=groups)
    dx, dw, _ = L.conv2d_backward(dy, x, weight, stride=stride, padding=padding, groups=groups, bias=False)
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    xt, wt = _t(x.astype(np.float64)), _t(weight.astype(np.float64))
    yt = F.conv2d(xt, wt, stride=stride, padding=padding, groups=groups)
    (yt * torch.tensor(dy.astype(np.float64))).sum().backward()
    # Magnitude bounds |a|.|b| from the same ops on absolute values.
    ax, aw, ady = (torch.tensor(np.abs(v).astype(np.float64)) for v in (x, weight, dy))
    y_mag = F.conv2d(ax, aw, stride=stride, padding=padding, groups=groups).numpy()
    dx_mag = torch.nn.grad.conv2d_input(
        ax.shape, aw, ady, stride=stride, padding=padding, groups=groups
    ).numpy()
    dw_mag = torch.nn.grad.conv2d_weight(
        ax, aw.shape, ady, stride=stride, padding=padding, groups=groups
    ).numpy()
    k_forward = weight[0].size
    k_data = (c_out // groups) * kernel[0] * kernel[1]
    k_weight = n * dy.shape[2] * dy.shape[3]
    assert np.all(np.abs(y - yt.detach().numpy()) <= _gamma(k_forward) * y_mag + U32 * np.abs(y) + 1e-30)
    assert np.all(np.abs(dx - xt.grad.numpy()) <= _gamma(k_data) * dx_mag + U32 * np.abs(dx) + 1e-30)
    assert np.all(np.abs(dw - wt.grad.numpy()) <= _gamma(k_weight) * dw_mag + U32 * np.abs(dw) + 1e-30)


def test_conv2d_as_gemm_reconstructs_the_convolution():
    rng = np.random.default_rng(3)
    x = rng.integers(-8, 8, (2, 4, 6, 5))
    weight = rng.integers(-8, 8, (6, 2, 3, 3))
    a, b, out_shape = L.conv2d_as_gemm(x, weight, stride=(2, 1), padding=(1, 0), groups=2)
    n, c_out, ho, wo = out_shape
    gemm = np.concatenate([a[g] @ b[g] for g in range(2)])  # (Cout, N*Ho*Wo)
    y = gemm.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)
    reference = F.conv2d(
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(weight, dtype=torch.float64),
        stride=(2, 1),
        padding=(1, 0),
        groups=2,
    ).numpy()
    assert np.array_equal(y, reference.astype(np.int64))


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = L.im2col(x, (3, 2), (2, 1), (1, 1))
    other = rng.standard_normal(cols.shape)
    back = L.col2im(other, x.shape, (3, 2), (2, 1), (1, 1))
    assert abs(np.sum(cols * other) - np.sum(x * back)) <= 1e-12 * np.sum(np.abs(cols * other))


def test_linear_matches_torch():
    rng = np.random.default_rng(5)
    x, weight, bias = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    y = L.linear_forward(x, weight, bias)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = L.linear_backward(dy, x, weight)
    xt, wt, bt = _t(x), _t(weight), _t(bias)
    yt = F.linear(xt, wt, bt)
    (yt * torch.tensor(dy)).sum().backward()
    for golden, reference in [(y, yt.detach()), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        _close64(golden, reference.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_training_matches_torch_including_running_statistics(dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4, 5, 3, 3)) * 2 + 0.7).astype(dtype)
    gamma, beta = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    y, mean, var = L.batchnorm_forward(x, gamma, beta, eps=1e-5)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dgamma, dbeta = L.batchnorm_backward(dy, x, gamma, eps=1e-5)
    running_mean, running_var = np.full(5, 0.3), np.full(5, 1.7)
    new_mean, new_var = L.batchnorm_running_update(
        running_mean, running_var, mean.astype(np.float64), var.astype(np.float64), 4 * 9, 0.1
    )
    xt, gt, bt = _t(x.astype(np.float64)), _t(gamma.astype(np.float64)), _t(beta.astype(np.float64))
    rm, rv = torch.tensor(running_mean), torch.tensor(running_var)
    yt = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.1, eps=1e-5)
    (yt * torch.tensor(dy.astype(np.float64))).sum().backward()
    pairs = [
        (y, yt.detach()),
        (dx, xt.grad),
        (dgamma, gt.grad),
        (dbeta, bt.grad),
        (new_mean, rm),
        (new_var, rv),
    ]
    for golden, reference in pairs:
        reference = reference.numpy()
        if dtype == np.float64:
            _close64(golden, reference)
        else:
            assert golden.dtype == (np.float64 if golden is new_mean or golden is new_var else np.float32)
            assert np.abs(golden - reference).max() <= 64 * U32 * np.abs(reference).max()


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groupnorm_matches_torch(groups):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 4, 5)) * 3 - 1
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    y = L.groupnorm_forward(x, gamma, beta, groups=groups, eps=1e-5)
    dy = rng.standard_normal(y.shape)
    dx, dgamma, dbeta = L.groupnorm_backward(dy, x, gamma, groups=groups, eps=1e-5)
    xt, gt, bt = _t(x), _t(gamma), _t(beta)
    yt = F.group_norm(xt, groups, gt, bt, eps=1e-5)
    (yt * torch.tensor(dy)).sum().backward()
    for golden, reference in [(y, yt.detach()), (dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)]:
        _close64(golden, reference.numpy())


@pytest.mark.parametrize("max_value", [None, 6.0])
def test_relu_and_relu6_match_torch(max_value):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 4)) * 5
    x[0, 0, 0, :2] = [0.0, 6.0]  # the boundaries: torch passes no gradient at either
    dy = rng.standard_normal(x.shape)
    xt = _t(x)
    yt = F.relu(xt) if max_value is None else F.hardtanh(xt, 0.0, max_value)
    (yt * torch.tensor(dy)).sum().backward()
    assert np.array_equal(L.relu_forward(x, max_value), yt.detach().numpy())
    assert np.array_equal(L.relu_backward(dy, x, max_value), xt.grad.numpy())


@pytest.mark.parametrize(
    "kernel,stride,padding,ceil_mode,size",
    [
        (3, 2, 1, False, 9),
        (2, 2, 0, False, 8),
        (3, 2, 0, True, 10),
        (3, 1, 1, True, 5),
        (2, 2, 0, True, 7),
        # the last ceil-mode window would start exactly at size + padding: PyTorch drops it
        (2, 2, 1, True, 5),
        (1, 2, 0, True, 4),
    ],
)
def test_maxpool_matches_torch(kernel, stride, padding, ceil_mode, size):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, size, size))
    y = L.maxpool_forward(x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    dy = rng.standard_normal(y.shape)
    dx = L.maxpool_backward(dy, x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    xt = _t(x)
    yt = F.max_pool2d(xt, kernel, stride, padding, ceil_mode=ceil_mode)
    (yt * torch.tensor(dy)).sum().backward()
    assert np.array_equal(y, yt.detach().numpy())
    _close64(dx, xt.grad.numpy())


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_avgpool_matches_torch(kernel, stride, padding):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 8, 8))
    y = L.avgpool_forward(x, kernel=kernel, stride=stride, padding=padding)
    dy = rng.standard_normal(y.shape)
    dx = L.avgpool_backward(dy, x, kernel=kernel, stride=stride, padding=padding)
    xt = _t(x)
    yt = F.avg_pool2d(xt, kernel, stride, padding, count_include_pad=True)
    (yt * torch.tensor(dy)).sum().backward()
    _close64(y, yt.detach().numpy())
    _close64(dx, xt.grad.numpy())


def test_global_avgpool_concat_add_flatten_match_torch():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    at, bt = _t(a), _t(b)
    cat = torch.cat([at, bt], 1)
    summed = cat[:, :3] + at
    pooled = summed.mean(dim=(2, 3), keepdim=True)
    flat = torch.flatten(pooled, 1)
    dy = rng.standard_normal((2, 3))
    (flat * torch.tensor(dy)).sum().backward()
    g_cat = L.concat_forward(a, b)
    g_sum = L.add_forward(g_cat[:, :3], a)
    g_pool = L.global_avgpool_forward(g_sum)
    g_flat = L.flatten_forward(g_pool)
    _close64(g_flat, flat.detach().numpy())
    d_pool = L.flatten_backward(dy, g_pool.shape)
    d_sum = L.global_avgpool_backward(d_pool, g_sum)
    d_first, d_a = L.add_backward(d_sum, 2)
    d_cat = np.concatenate([d_first, np.zeros_like(b)], axis=1)
    da_cat, db = L.concat_backward(d_cat, [3, 5])
    _close64(da_cat + d_a, at.grad.numpy())
    _close64(db, bt.grad.numpy())


def test_softmax_cross_entropy_matches_torch():
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((6, 10)) * 4
    labels = rng.integers(0, 10, 6)
    losses, probabilities = L.softmax_cross_entropy(logits, labels)
    dlogits = L.softmax_cross_entropy_backward(probabilities, labels, 6)
    lt = _t(logits)
    loss = F.cross_entropy(lt, torch.tensor(labels))
    loss.backward()
    assert abs(losses.mean() - loss.item()) <= 1e-12 * abs(loss.item())
    _close64(dlogits, lt.grad.numpy())


@pytest.mark.parametrize("kind,groups", [("batchnorm", None), ("groupnorm", 2)])
def test_fused_norm_equals_textbook_norm(kind, groups):
    """BN fission-fusion (Jung et al., arXiv 1807.01702): stats on write (chunked Chan merge), affine on read,
    dx = k1*dy + k2*x + k3."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 4, 5, 5)) * 2 + 0.5
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    dz = rng.standard_normal(x.shape)
    moments = L.NormMoments(kind, groups)
    for start in range(0, 6, 2):  # the producer writes three sub-batches
        moments.write(x[start : start + 2])
    mean, var = moments.finish()
    a, c = L.fused_norm_affine_constants(mean, var, gamma, beta, kind=kind, groups=groups, eps=1e-5)
    z = L.fused_norm_read(x, a, c, relu=True)
    if kind == "batchnorm":
        y, *_ = L.batchnorm_forward(x, gamma, beta, eps=1e-5)
    else:
        y = L.groupnorm_forward(x, gamma, beta, groups=groups, eps=1e-5)
    assert np.abs(z - np.maximum(y, 0)).max() <= 1e-12 * np.abs(y).max()
    dy, r1, r2 = L.fused_norm_backward_reductions(dz, x, a, c, mean, relu=True, kind=kind, groups=groups)
    count = 6 * 25 if kind == "batchnorm" else 2 * 25
    k1, k2, k3, dgamma, dbeta = L.fused_norm_backward_constants(
        r1, r2, mean, var, gamma, count=count, kind=kind, groups=groups, eps=1e-5
    )
    dx = L.fused_norm_input_gradient(dy, x, k1, k2, k3)
    dy_reference = L.relu_backward(dz, y)
    if kind == "batchnorm":
        reference = L.batchnorm_backward(dy_reference, x, gamma, eps=1e-5)
    else:
        reference = L.groupnorm_backward(dy_reference, x, gamma, groups=groups, eps=1e-5)
    for golden, expected in zip((dx, dgamma, dbeta), reference):
        assert np.abs(golden - expected).max() <= 1e-12 * np.abs(expected).max()
