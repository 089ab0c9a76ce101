"""Derivatives at kinks and ties, against the values PyTorch, JAX and TensorFlow give (issue 20,
item 3). The libraries are not dependencies: their values are written down here, each from the
library's own rule (PyTorch's derivatives.yaml and its backward kernels, JAX's jvp rules in
jax/_src/lax and jax/_src/nn, TensorFlow's registered gradients). symgrad follows what PyTorch and
JAX agree on; where they disagree it names the one it follows, and the README says so."""

import numpy as np
import pytest

import symgrad as sg
import symgrad.numpy as snp

ALPHA = 0.01
SELU_SCALE_ALPHA = 1.0507009873554804934 * 1.6732632423543772848

# (name, function of one scalar, point, {library: derivative there}, the one symgrad follows)
KINKS = [
    ("relu at 0", sg.relu, 0.0, {"pytorch": 0.0, "jax": 0.0, "tensorflow": 0.0}, "all"),
    ("leaky_relu at 0", lambda x: sg.leaky_relu(x, alpha=ALPHA), 0.0,
     {"pytorch": ALPHA, "jax": 1.0, "tensorflow": ALPHA}, "pytorch"),
    ("elu at 0 (alpha 1)", sg.elu, 0.0, {"pytorch": 1.0, "jax": 1.0, "tensorflow": 1.0}, "all"),
    ("elu at 0 (alpha 0.5)", lambda x: sg.elu(x, alpha=0.5), 0.0,
     {"pytorch": 0.5, "jax": 0.5, "tensorflow": 0.5}, "all"),
    ("selu at 0", sg.selu, 0.0,
     {"pytorch": SELU_SCALE_ALPHA, "jax": SELU_SCALE_ALPHA, "tensorflow": SELU_SCALE_ALPHA}, "all"),
    ("abs at 0", abs, 0.0, {"pytorch": 0.0, "jax": 1.0, "tensorflow": 0.0}, "pytorch"),
    ("sign at 0", sg.sign, 0.0, {"pytorch": 0.0, "jax": 0.0, "tensorflow": 0.0}, "all"),
    ("maximum(x, 1) at 1", lambda x: sg.maximum(x, 1.0), 1.0,
     {"pytorch": 0.5, "jax": 0.5, "tensorflow": 1.0}, "pytorch"),
    ("minimum(x, 1) at 1", lambda x: sg.minimum(x, 1.0), 1.0,
     {"pytorch": 0.5, "jax": 0.5, "tensorflow": 1.0}, "pytorch"),
    ("floor at 2", snp.floor, 2.0, {"pytorch": 0.0, "jax": 0.0, "tensorflow": 0.0}, "all"),
    ("round at 0.5", snp.round, 0.5, {"pytorch": 0.0, "jax": 0.0, "tensorflow": 0.0}, "all"),
    ("sqrt at 0", sg.sqrt, 0.0, {"pytorch": np.inf, "jax": np.inf, "tensorflow": np.inf}, "all"),
]


@pytest.mark.parametrize("name, function, point, values, followed", KINKS,
                         ids=[k[0] for k in KINKS])
def test_a_kink_has_the_derivative_the_libraries_give(name, function, point, values, followed):
    x = sg.var("x")
    with np.errstate(divide="ignore"):
        got = sg.compile(sg.grad(function(x), x), inputs=[x])(point)
    want = values["pytorch"] if followed in ("all", "pytorch") else values[followed]
    if followed == "all":
        assert len(set(values.values())) == 1, f"{name}: the libraries disagree, name one"
    assert got == want
    # the NumPy path agrees with the Python-float fast path
    with np.errstate(divide="ignore"):
        assert sg.compile(sg.grad(function(x), x), inputs=[x])(np.float64(point)) == want


def test_ties_of_a_maximum_reduction_share_the_gradient_as_pytorch_and_jax_do():
    # torch.amax and jnp.max: evenly among the tied maxima ([0, 1/2, 1/2] here)
    v = sg.var("v", shape=(3,))
    np.testing.assert_array_equal(sg.compile(sg.grad(sg.max(v), v))(np.array([1.0, 3.0, 3.0])),
                                  [0.0, 0.5, 0.5])


def test_relu_zero_gradient_holds_on_arrays_with_exact_zeros():
    # image data with exact zeros: a bias gradient must match the libraries, entry for entry
    X, b = sg.var("X", shape=(4, 3)), sg.var("b", shape=(3,))
    pixels = np.array([[0.0, 1.0, -1.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [-0.0, 1.0, 0.0]])
    gradient = sg.compile(sg.grad(sg.sum(sg.relu(X + b)), b), inputs=[X, b])(pixels, np.zeros(3))
    np.testing.assert_array_equal(gradient, (pixels > 0).sum(axis=0))
