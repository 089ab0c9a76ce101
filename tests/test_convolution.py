"""Convolution and pooling (symgrad.ops.convolution, symgrad.scipy.signal): values against NumPy,
SciPy and a per-pixel loop written here (PyTorch's conv2d where it is installed), every mode and
boundary; second derivatives through a small convolutional network; the tie convention of max
pooling; the backends; formulas. The op table (tests/test_ops.py, CONVOLUTION_MORE) checks each
primitive's vjp, jvp, hvp and Hessian against central differences."""

import itertools

import numpy as np
import pytest
import scipy.signal

import symgrad as sg
import symgrad.scipy.signal as sg_signal
from finite_differences import central_gradient

MODES = ("full", "same", "valid")


def compiled(build, *arrays):
    """build(*variables) compiled and called on ``arrays``, in a graph of its own."""
    with sg.use_graph():
        variables = [sg.var(name, shape=a.shape) for name, a in zip("abcdefgh", arrays)]
        return sg.compile(build(*variables), inputs=variables)(*arrays)


def loop_conv(x, w, stride, padding, dilation, groups):
    """torch.nn.functional.conv2d's definition, pixel by pixel."""
    x = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    n, _, height, width = x.shape
    out_channels, per_group, kh, kw = w.shape
    rows = (height - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    columns = (width - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, out_channels, rows, columns))
    for b, o, i, j in itertools.product(range(n), range(out_channels), range(rows),
                                        range(columns)):
        group = o // (out_channels // groups)
        for c, p, q in itertools.product(range(per_group), range(kh), range(kw)):
            out[b, o, i, j] += (x[b, group * per_group + c, i * stride[0] + p * dilation[0],
                                  j * stride[1] + q * dilation[1]] * w[o, c, p, q])
    return out


CONV2D = [  # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 3, 7, 6), (4, 3, 3, 2), (1, 1), (0, 0), (1, 1), 1),
    ((1, 4, 9, 8), (6, 2, 3, 3), (2, 1), (1, 2), (1, 2), 2),
    ((3, 2, 5, 5), (2, 1, 2, 2), (2, 2), (1, 1), (2, 1), 2),
    ((1, 3, 6, 6), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1), 3),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", CONV2D)
def test_conv_is_pytorchs_conv2d_pixel_by_pixel(x_shape, w_shape, stride, padding, dilation,
                                                 groups):
    rng = np.random.default_rng(0)
    x, w, bias = (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
                  rng.standard_normal(w_shape[0]))
    got = compiled(lambda a, b, c: sg.conv(a, b, c, stride=stride, padding=padding,
                                           dilation=dilation, groups=groups), x, w, bias)
    want = loop_conv(x, w, stride, padding, dilation, groups) + bias[:, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", CONV2D)
def test_conv_matches_torch_where_installed(x_shape, w_shape, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                                      padding=padding, dilation=dilation, groups=groups).numpy()
    got = compiled(lambda a, b: sg.conv(a, b, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups), x, w)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_padding_same_keeps_the_size_and_puts_the_odd_zero_after():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 1, 6)), rng.standard_normal((1, 1, 4))
    got = compiled(lambda a, b: sg.conv(a, b, padding="same"), x, w)
    # PyTorch's 'same': a total of 3 zeros, 1 before and 2 after
    want = compiled(lambda a, b: sg.conv(a, b, padding=((1, 2),)), x, w)
    assert got.shape == (1, 1, 6)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got[0, 0], np.correlate(np.pad(x[0, 0], (1, 2)), w[0, 0]),
                               rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lengths", [(6, 3), (3, 6), (5, 5), (4, 1), (1, 4), (2, 5)])
def test_numpys_convolve_and_correlate_in_every_mode(lengths, mode):
    rng = np.random.default_rng(sum(lengths))
    a, v = (rng.standard_normal(n) for n in lengths)
    for name in ("convolve", "correlate"):
        function = getattr(np, name)
        got = compiled(lambda x, y: function(x, y, mode), a, v)
        np.testing.assert_allclose(got, function(a, v, mode), rtol=1e-12, atol=1e-12,
                                   err_msg=name)


SIGNAL_SHAPES = [((4, 5), (2, 3)), ((2, 3), (4, 5)), ((3, 3), (3, 3)), ((5, 4), (1, 1)),
                 ((6,), (3,)), ((3,), (6,)), ((3, 4, 3), (2, 2, 2))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", SIGNAL_SHAPES)
def test_scipys_convolve_and_correlate_in_every_mode(shapes, mode):
    rng = np.random.default_rng(len(shapes[0]) + shapes[0][0])
    in1, in2 = (rng.standard_normal(s) for s in shapes)
    for name in ("convolve", "correlate"):
        want = getattr(scipy.signal, name)(in1, in2, mode)
        got = compiled(lambda x, y: getattr(sg_signal, name)(x, y, mode, method="direct"),
                       in1, in2)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", [((4, 5), (2, 3)), ((5, 4), (3, 2)), ((3, 3), (4, 4)),
                                    ((4, 4), (1, 1))])
def test_scipys_convolve2d_and_correlate2d_in_every_mode_and_boundary(shapes, mode, boundary):
    rng = np.random.default_rng(shapes[1][0])
    in1, in2 = (rng.standard_normal(s) for s in shapes)
    for name in ("convolve2d", "correlate2d"):
        try:
            want = getattr(scipy.signal, name)(in1, in2, mode, boundary, fillvalue=0.5)
        except ValueError:
            with pytest.raises(sg.SymgradError):
                compiled(lambda x, y: getattr(sg_signal, name)(x, y, mode, boundary, 0.5),
                         in1, in2)
            continue
        got = compiled(lambda x, y: getattr(sg_signal, name)(x, y, mode, boundary, 0.5),
                       in1, in2)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def test_scipy_refuses_what_scipy_refuses():
    with sg.use_graph():
        a, b = sg.var("a", shape=(3, 5)), sg.var("b", shape=(5, 3))
        nodes = a.graph.number_of_nodes()
        with pytest.raises(sg.ShapeError, match="at least as large as the other"):
            sg_signal.convolve(a, b, "valid")
        with pytest.raises(sg.ArgumentError, match="boundary must be one of"):
            sg_signal.convolve2d(a, b, boundary="reflect")
        with pytest.raises(sg.ArgumentError, match="method must be one of"):
            sg_signal.correlate(a, b, method="fast")
        with pytest.raises(sg.ArgumentError, match="mode must be one of"):
            sg_signal.correlate2d(a, b, mode="middle")
        assert a.graph.number_of_nodes() == nodes


def test_np_convolve_dispatches_through_the_protocol_and_parses():
    with sg.use_graph():
        a, v = sg.var("a", shape=(6,)), sg.var("v", shape=(3,))
        assert np.convolve(a, v, "same").shape == (6,)
        assert np.correlate(a, v).shape == (4,)
        parsed = sg.parse("sum(convolve(a, v)) + sum(conv(x, w, padding=1))",
                          shapes={"a": (6,), "v": (3,), "x": (2, 1, 5), "w": (3, 1, 3)})
        fn = sg.compile(parsed, inputs=list(parsed.variables.values()))
    rng = np.random.default_rng(4)
    values = {"a": rng.standard_normal(6), "v": rng.standard_normal(3),
              "w": rng.standard_normal((3, 1, 3)), "x": rng.standard_normal((2, 1, 5))}
    want = np.sum(np.convolve(values["a"], values["v"])) + np.sum(
        loop_conv(values["x"][..., None], values["w"][..., None], (1, 1), (1, 0), (1, 1), 1))
    np.testing.assert_allclose(fn(**values), want, rtol=1e-12)


# -- pooling -------------------------------------------------------------------------------------


def test_max_pool_tie_splits_the_gradient_evenly_as_max_does():
    window = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    with sg.use_graph():
        x = sg.var("x", shape=(1, 1, 2, 2))
        pooled, whole = sg.max_pool(x, 2), sg.max(x, axis=(2, 3))
        fn = sg.compile([sg.grad(sg.sum(pooled), x), sg.grad(sg.sum(whole), x)], inputs=[x])
    by_pool, by_max = fn(window)
    np.testing.assert_array_equal(by_pool, [[[[0.0, 0.5], [0.5, 0.0]]]])
    np.testing.assert_array_equal(by_pool, by_max)


def test_overlapping_windows_each_send_their_gradient_to_their_maximum():
    row = np.array([[[0.0, 5.0, 1.0, 2.0, 4.0]]])
    with sg.use_graph():
        x = sg.var("x", shape=(1, 1, 5))
        pooled = sg.max_pool(x, (3,), stride=(1,))
        value, gradient = sg.compile([pooled, sg.grad(sg.sum(pooled), x)], inputs=[x])(row)
    np.testing.assert_array_equal(value, [[[5.0, 5.0, 4.0]]])
    np.testing.assert_array_equal(gradient, [[[0.0, 2.0, 0.0, 0.0, 1.0]]])


def test_pooling_padding_and_stride_follow_pytorch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 6))
    got_max, got_mean = compiled(lambda a: [sg.max_pool(a, 3, stride=2, padding=1),
                                            sg.avg_pool(a, 3, stride=2, padding=1)], x)
    padded_max = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    padded_mean = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert got_max.shape == got_mean.shape == (2, 3, 3, 3)
    for i, j in itertools.product(range(3), range(3)):
        window = (Ellipsis, slice(2 * i, 2 * i + 3), slice(2 * j, 2 * j + 3))
        np.testing.assert_array_equal(got_max[..., i, j], padded_max[window].max(axis=(-2, -1)))
        # the zeros of the padding count, as PyTorch's count_include_pad=True
        np.testing.assert_allclose(got_mean[..., i, j], padded_mean[window].mean(axis=(-2, -1)),
                                   rtol=1e-12)


# -- second derivatives through a network ----------------------------------------------------------


def test_hessian_vector_products_through_a_small_conv_net():
    """conv (stride 2, groups 2, bias) -> tanh -> average pool -> conv (dilation 2, 'same')
    -> softplus -> max pool -> sum of squares: the Hessian-vector product in every parameter
    against central differences of the gradient."""
    rng = np.random.default_rng(6)
    shapes = {"W1": (4, 1, 3, 3), "b1": (4,), "W2": (2, 4, 2, 2)}
    data = rng.standard_normal((3, 2, 9, 9))
    with sg.use_graph():
        X = sg.var("X", shape=("n", 2, 9, 9))
        params = [sg.var(name, shape=shape) for name, shape in shapes.items()]
        W1, b1, W2 = params
        h = sg.tanh(sg.conv(X, W1, b1, stride=2, groups=2))                 # (n, 4, 4, 4)
        h = sg.avg_pool(h, 2, stride=1)                                     # (n, 4, 3, 3)
        h = sg.softplus(sg.conv(h, W2, dilation=2, padding=((1, 1), (1, 1))))  # (n, 2, 3, 3)
        f = sg.sum(sg.max_pool(h, 2, stride=1) ** 2)
        directions = [sg.var(f"v_{p.name}", shape=p.shape) for p in params]
        gradient = sg.compile(sg.grad(f, params), inputs=[X, *params])
        hvp = sg.compile(sg.hvp(f, params, directions), inputs=[X, *params, *directions])
    values = [rng.standard_normal(s) * 0.5 for s in shapes.values()]
    along = [rng.standard_normal(s) for s in shapes.values()]
    step = 1e-5
    plus = gradient(data, *(v + step * d for v, d in zip(values, along)))
    minus = gradient(data, *(v - step * d for v, d in zip(values, along)))
    for got, p, m in zip(hvp(data, *values, *along), plus, minus):
        np.testing.assert_allclose(got, (p - m) / (2 * step), rtol=1e-6, atol=1e-7)


def test_gradient_of_np_convolve_in_both_operands():
    rng = np.random.default_rng(7)
    a, v = rng.standard_normal(7), rng.standard_normal(4)
    weights = rng.standard_normal(7)
    with sg.use_graph():
        x, y = sg.var("x", shape=(7,)), sg.var("y", shape=(4,))
        f = sg.sum(np.convolve(x, y, "same") * weights)
        got = sg.compile(sg.grad(f, [x, y]), inputs=[x, y])(a, v)
    want = [central_gradient(lambda z: np.sum(np.convolve(z, v, "same") * weights), a),
            central_gradient(lambda z: np.sum(np.convolve(a, z, "same") * weights), v)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-9)


# -- backends ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b in ("numba",) if b in sg.api.BACKENDS])
def test_the_fusing_backend_keeps_convolutions_as_numpy_statements(backend):
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 12, 12)), rng.standard_normal((4, 3, 3, 3))
    with sg.use_graph():
        X, W = sg.var("X", shape=("n", 3, 12, 12)), sg.var("W", shape=(4, 3, 3, 3))
        f = sg.sum(sg.max_pool(sg.relu(sg.conv(X, W, padding=1)), 2) ** 2)
        outputs = [f, sg.grad(f, W), sg.grad(f, X)]
        fused = sg.compile(outputs, inputs=[X, W], backend=backend)
        plain = sg.compile(outputs, inputs=[X, W])
    assert "sliding_window_view" in fused.source
    for got, want in zip(fused(x, w), plain(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_array_api_backend_refuses_naming_the_op():
    pytest.importorskip("array_api_compat")
    with sg.use_graph():
        x, w = sg.var("x", shape=(2, 1, 5)), sg.var("w", shape=(1, 1, 2))
        for output, op in [(sg.conv(x, w), "conv"), (sg.max_pool(x, 2), "windows")]:
            with pytest.raises(sg.SymgradError, match=f"no counterpart for NumPy's strided "
                                                      f"views .* op {op!r}"):
                sg.compile(output, inputs=[x, w], backend="array_api")


def test_the_emitted_convolution_is_one_window_view_and_one_tensordot():
    with sg.use_graph():
        x, w = sg.var("x", shape=("n", 3, 8, 8)), sg.var("w", shape=(4, 3, 3, 3))
        source = sg.compile(sg.conv(x, w), inputs=[x, w]).source
    assert source.count("sliding_window_view(x, (3, 3), axis=(-2, -1))") == 1
    assert source.count("np.tensordot(") == 1 and "for " not in source
