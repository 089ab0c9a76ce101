"""NumPy's functions on expressions (symgrad.numpy, Expr's array protocols) and Expr as an ndarray
(attributes, methods, functional updates ``e.at[idx]``)."""

import contextlib
import importlib

import numpy
import numpy as np
import pytest

import symgrad as sg
import symgrad.numpy as snp
from symgrad.ops.core import PUBLIC, public
import finite_differences

EPS = 1e-6


def central_gradient(f, args, position):
    """d f(*args) / d args[position] by central differences."""
    def along(x):
        moved = list(args)
        moved[position] = x
        return f(*moved)
    return finite_differences.central_gradient(along, np.asarray(args[position], dtype=float),
                                               step=EPS)


def check_program(program, variables, values, constants=()):
    """``program(*variables, *constants)`` written in plain NumPy: built on expressions,
    differentiated and compiled, it gives what it gives on arrays, and its gradient matches
    central differences of the array version."""
    f = program(*variables, *constants)
    assert isinstance(f, sg.Expr) and f.shape == ()
    fn = sg.compile([f, *sg.grad(f, list(variables))], inputs=list(variables))
    value, *grads = fn(*values)

    def on_arrays(*arrays):
        return program(*arrays, *constants)
    np.testing.assert_allclose(value, on_arrays(*values), rtol=1e-12)
    for position, grad in enumerate(grads):
        np.testing.assert_allclose(grad, central_gradient(on_arrays, values, position),
                                   rtol=1e-6, atol=1e-8)


# -- plain NumPy programs --------------------------------------------------------------------------


def logistic_loss(w, b, X, y):
    z = np.dot(X, w) + b
    p = 1.0 / (1.0 + np.exp(-z))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) + 0.01 * np.sum(w ** 2)


def softmax_cross_entropy(W, b, X, Y):
    """Over one-hot labels ``Y``, written as NumPy code does it (max-shifted log-sum-exp)."""
    logits = np.tanh(X @ W) + b
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.sum(np.where(Y > 0.5, log_p, 0.0)) / X.shape[0]


def mixed_shapes(u, v, A):
    """ndarray @ expr, np.concatenate, np.maximum, np.transpose, a ufunc's reduce and outer."""
    h = np.maximum(A @ u, 0.1 * (A @ u))
    both = np.concatenate([h, v], axis=0)
    outer = np.multiply.outer(both, v)
    return np.add.reduce(np.transpose(outer) ** 2, axis=None) + np.sqrt(np.sum(np.abs(both)))


def test_a_logistic_loss_written_with_numpy_functions():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), (rng.random(8) > 0.5).astype(float)
    w, b = sg.var("w", shape=(3,)), sg.var("b")
    check_program(logistic_loss, [w, b], [rng.normal(size=3), 0.3], (X, y))


def test_a_softmax_cross_entropy_written_with_numpy_functions():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 4))
    Y = np.eye(3)[rng.integers(0, 3, size=5)]
    W, b = sg.var("W", shape=(4, 3)), sg.var("b", shape=(3,))
    check_program(softmax_cross_entropy, [W, b], [rng.normal(size=(4, 3)), rng.normal(size=3)],
                  (X, Y))


def test_mixed_numpy_calls_on_expressions_and_arrays():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(3, 2))
    u, v = sg.var("u", shape=(2,)), sg.var("v", shape=(2,))
    check_program(mixed_shapes, [u, v], [rng.normal(size=2), rng.normal(size=2)], (A,))


# -- each supported form builds a node ---------------------------------------------------------------

M = np.arange(6.0).reshape(2, 3) / 7 - 0.3
FORMS = {
    "exp": lambda x: np.exp(x),
    "tanh": lambda x: np.tanh(x),
    "sqrt-of-abs": lambda x: np.sqrt(np.absolute(x)),
    "sum-axis-keepdims": lambda x: np.sum(x, axis=0, keepdims=True),
    "sum-positional-axis": lambda x: np.sum(x, 1),
    "mean": lambda x: np.mean(x, axis=-1),
    "max": lambda x: np.max(x, axis=1),
    "amin": lambda x: np.amin(x),
    "dot-array-left": lambda x: np.dot(M.T, x),
    "matmul-ufunc": lambda x: np.matmul(x, M.T),
    "array-at-expression": lambda x: M.T @ x,
    "where": lambda x: np.where(x > 0.0, x, 2.0 * x),
    "concatenate": lambda x: np.concatenate([x, M], axis=1),
    "maximum": lambda x: np.maximum(x, 0.0),
    "clip-positional": lambda x: np.clip(x, -0.1, 0.2),
    "clip-one-bound": lambda x: np.clip(x, None, 0.2),
    "clip-keywords": lambda x: np.clip(x, min=-0.1, max=0.2),
    "add-reduce": lambda x: np.add.reduce(x),
    "maximum-reduce-axis": lambda x: np.maximum.reduce(x, axis=1),
    "multiply-outer": lambda x: np.multiply.outer(x, x[0]),
    "subtract-divide-power": lambda x: np.power(np.divide(np.subtract(1.0, x), 3.0), 2),
    "negative-positive": lambda x: np.positive(np.negative(x)),
    "transpose": lambda x: np.transpose(x),
    "swapaxes": lambda x: np.swapaxes(x, 0, -1),
    "reshape": lambda x: np.reshape(x, (3, 2)),
    "ravel": lambda x: np.ravel(x),
    "squeeze": lambda x: np.squeeze(x[:1]),
    "expand_dims": lambda x: np.expand_dims(x, 1),
    "array-plus-expression": lambda x: np.ones(3) + x,
    "numpy-scalar-times": lambda x: np.float64(2.0) * x,
    "array-compared": lambda x: np.where(np.ones(3) * 0.1 < x, x, 0.0),
    "less-ufunc": lambda x: np.where(np.less(x, 0.1), 1.0, x),
    "copy": lambda x: np.copy(x) * 2.0,
}


@pytest.mark.parametrize("label", sorted(FORMS))
def test_a_numpy_function_on_an_expression_builds_what_it_computes_on_arrays(label):
    form = FORMS[label]
    value = np.random.default_rng(3).normal(size=(2, 3))
    x = sg.var("x", shape=(2, 3))
    built = form(x)
    assert isinstance(built, sg.Expr)
    np.testing.assert_allclose(sg.compile(built, inputs=[x])(value), form(value), rtol=1e-13)


def test_shape_ndim_and_size_of_an_expression():
    x = sg.var("x", shape=(2, 3))
    assert (np.shape(x), np.ndim(x), np.size(x), np.size(x, 1)) == ((2, 3), 2, 6, 3)


def test_numpy_scalars_and_arrays_meet_expressions_as_before():
    x32 = sg.var("x32", shape=(3,), dtype="float32")
    # through __array_ufunc__ now, NumPy's scalar stays weak, as with x32.__rmul__
    assert (np.float64(2.0) * x32).dtype == x32.__rmul__(np.float64(2.0)).dtype == np.float32
    assert (x32 * np.ones(3)).dtype == (np.ones(3) * x32).dtype == np.float64
    assert isinstance(np.ones(3) <= x32, sg.Expr) and (np.ones(3) <= x32).dtype == bool


def test_stack_is_numpys_once_symgrad_has_it():
    a, b = sg.var("a", shape=(2,)), sg.var("b", shape=(2,))
    if "stack" not in PUBLIC:
        with pytest.raises(sg.SymgradError, match="numpy.stack is not supported by symgrad"):
            np.stack([a, b])
        return
    stacked = np.stack([a, b], axis=1)
    values = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    np.testing.assert_array_equal(sg.compile(stacked, inputs=[a, b])(*values),
                                  np.stack(values, axis=1))


# -- derived from the op table ---------------------------------------------------------------------


@contextlib.contextmanager
def temporary_public(name, function):
    """``function`` as the public function ``name`` while the block runs (unless symgrad has
    one already: then that one)."""
    if name in PUBLIC:
        yield PUBLIC[name].function
        return
    public(name)(function)
    try:
        yield function
    finally:
        PUBLIC.pop(name)


def test_a_public_function_named_as_numpy_names_it_is_numpys_function_without_more_code():
    x = sg.var("x", shape=(3,))
    if "spacing" not in PUBLIC:
        with pytest.raises(sg.SymgradError, match="numpy.spacing is not supported by symgrad"):
            np.spacing(x)
    with temporary_public("spacing", lambda x: x * 0.0 + 1e-16) as spacing:
        assert np.spacing(x).node == snp.spacing(x).node == spacing(x).node
    with temporary_public("nansum", lambda x, axis=None, keepdims=False: sg.sum(x, axis,
                                                                                keepdims)):
        assert np.nansum(x, axis=0, keepdims=True).shape == (1,)
        assert np.nansum(x, 0, None, None, True).shape == (1,)      # NumPy's positional order
        with pytest.raises(sg.SymgradError, match="numpy.nansum: the argument dtype="):
            np.nansum(x, dtype=np.float32)
    if "nansum" not in PUBLIC:
        with pytest.raises(sg.SymgradError, match="numpy.nansum is not supported by symgrad"):
            snp.nansum(x)


def test_an_ndarray_method_lights_up_with_the_public_function_of_its_name():
    x = sg.var("x", shape=(2, 3))

    def cumsum(x, axis=None):
        return sg.concatenate([x[..., :1], x[..., :1] + x[..., 1:2], sg.sum(x, -1, True)], -1)
    with temporary_public("cumsum", cumsum) as cumsum:
        assert x.cumsum(axis=-1).node == np.cumsum(x, -1).node == cumsum(x, axis=-1).node
        assert np.add.accumulate(x, axis=-1).node == cumsum(x, axis=-1).node
    for method, name in [("prod", "prod"), ("var", "var"), ("std", "std"), ("argmax", "argmax"),
                         ("argmin", "argmin")]:
        if name not in PUBLIC and name not in snp.RENAMED:     # np.var is symgrad's variance
            with pytest.raises(sg.SymgradError, match=f"^numpy.{name} is not supported by "
                                                      f"symgrad$"):
                getattr(x, method)(axis=0)


# -- errors --------------------------------------------------------------------------------------------

MISSING = {
    "numpy.fft.fft": lambda x: np.fft.fft(x),
    "numpy.linalg.eig": lambda x: np.linalg.eig(x),
    "numpy.unique": lambda x: np.unique(x),
    "numpy.histogram": lambda x: np.histogram(x),
    "numpy.fft.ifft": lambda x: np.fft.ifft(x),
    "numpy.add.at": lambda x: np.add.at(x, 0, 1.0),
    "numpy.add.reduceat": lambda x: np.add.reduceat(x, [0]),
    "numpy.fft": lambda x: snp.fft,
    "numpy.linalg.eig ": lambda x: snp.linalg.eig,
    "numpy.unique ": lambda x: snp.unique(x),
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_a_numpy_function_symgrad_lacks_raises_one_line_naming_it(name):
    if name.strip().rpartition(".")[2] in PUBLIC:
        pytest.skip(f"{name} is supported now")
    x = sg.var("x", shape=(3, 3))
    nodes = len(x.graph)
    with pytest.raises(sg.SymgradError) as raised:
        MISSING[name](x)
    assert str(raised.value) == f"{name.strip()} is not supported by symgrad"
    assert len(x.graph) == nodes


@pytest.mark.parametrize("call, argument", [
    (lambda x: np.exp(x, out=np.empty(3)), "out="),
    (lambda x: np.exp(x, where=x > 0), "where="),
    (lambda x: np.sum(x, dtype=np.float32), "dtype="),
    (lambda x: np.sum(x, out=np.empty(())), "out="),
    (lambda x: np.ravel(x, order="F"), "order="),
    (lambda x: np.mean(x, where=np.ones(3, dtype=bool)), "where="),
])
def test_an_argument_symgrad_lacks_is_refused_by_name(call, argument):
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.SymgradError, match=argument):
        call(x)


def test_an_expression_is_no_array_and_is_immutable():
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.SymgradError, match="compile"):
        np.asarray(x)
    with pytest.raises(sg.SymgradError, match=r"immutable.*\.at"):
        x[0] = 1.0
    array = np.zeros(3)
    with pytest.raises(sg.SymgradError, match="out="):
        array += x
    np.testing.assert_array_equal(array, 0.0)


def test_wrong_arguments_to_a_numpy_function_raise_symgrads_error():
    # NumPy's dispatcher accepts the one-argument form (the indices where x > 0); symgrad's not
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.ArgumentError, match="numpy.where"):
        np.where(x > 0)


# -- the module symgrad.numpy --------------------------------------------------------------------------


def test_symgrad_numpy_mirrors_numpys_names_and_signatures():
    x = sg.var("x", shape=(4,))
    value = np.array([-1.0, 0.25, 0.5, 2.0])
    clipped = snp.clip(x, a_min=0, a_max=1)
    np.testing.assert_array_equal(sg.compile(clipped, inputs=[x])(value), np.clip(value, 0, 1))
    assert snp.exp(x).node == sg.exp(x).node and snp.sum(x, 0).node == sg.sum(x, 0).node
    assert snp.exp is snp.exp and snp.exp.__name__ == "exp"
    assert {"exp", "sum", "dot", "where", "clip", "add", "absolute"} <= set(dir(snp))


def test_symgrad_numpy_linalg_is_importable_and_refuses_what_it_lacks():
    linalg = importlib.import_module("symgrad.numpy.linalg")
    assert linalg is snp.linalg
    a, b = sg.var("a", shape=(2, 2)), sg.var("b", shape=(2, 2))
    assert linalg.matmul(a, b).node == (a @ b).node
    with pytest.raises(sg.SymgradError, match="^numpy.linalg.eig is not supported by symgrad$"):
        linalg.eig(a)
    with pytest.raises(AttributeError):
        linalg.not_a_numpy_function


def test_symgrad_numpys_own_names_shadow_no_numpy_name():
    module = importlib.import_module("symgrad.numpy")
    own = {name for name in vars(module) if not name.startswith("_")}
    assert own & set(dir(numpy)) == {"linalg"}
    assert sg.ops.core.np is numpy and module.np is numpy


# -- Expr like an ndarray ----------------------------------------------------------------------------


def test_dtype_is_a_numpy_dtype_and_the_graph_keeps_its_name():
    x32 = sg.var("x32", shape=(3,), dtype="float32")
    y = sg.exp(x32) * 2.0
    assert isinstance(y.dtype, np.dtype) and y.dtype == np.float32 and y.dtype == "float32"
    assert all(isinstance(data["dtype"], str) for _, data in y.graph.nodes(data=True))
    assert (x32 > 0).dtype == np.bool_
    assert sg.compile(y, inputs=[x32])(np.ones(3, dtype=np.float32)).dtype == np.float32


def test_size_is_the_number_of_entries_and_unknown_for_a_named_dimension():
    assert sg.var("m", shape=(2, 3)).size == 6 and sg.var("s").size == 1
    with pytest.raises(sg.ShapeError, match="named"):
        sg.var("batch", shape=("n", 3)).size


def test_ndarray_methods_of_existing_ops():
    x, v = sg.var("x", shape=(2, 1, 3)), sg.var("v", shape=(3,))
    value, vector = np.random.default_rng(4).normal(size=(2, 1, 3)), np.array([1.0, -2.0, 0.5])
    built = {
        "squeeze": (x.squeeze(), value.squeeze()),
        "squeeze-axis": (x.squeeze(axis=1), value.squeeze(axis=1)),
        "ravel": (x.ravel(), value.ravel()),
        "flatten": (x.flatten(), value.flatten()),
        "swapaxes": (x.swapaxes(0, 2), value.swapaxes(0, 2)),
        "dot": (x.squeeze().dot(v), value.squeeze().dot(vector)),
        "clip": (x.clip(-0.5, 0.5), value.clip(-0.5, 0.5)),
        "clip-max": (x.clip(max=0.5), value.clip(max=0.5)),
        "astype": (x.astype(np.float64), value.astype(np.float64)),
    }
    for label, (expr, expected) in built.items():
        np.testing.assert_array_equal(sg.compile(expr, inputs=[x, v])(value, vector), expected,
                                      err_msg=label)
    assert x.astype("float64") is x
    # casts between symgrad's dtypes are an op (tests/test_sinc_cast_mask.py); others refused
    with pytest.raises(sg.SymgradError, match="complex128"):
        x.astype("complex128")


# -- functional updates ------------------------------------------------------------------------------


def updated(base, value, index, how):
    result = np.array(base, dtype=float)
    if how == "set":
        result[index] = value
    else:
        result[index] += value
    return result


@pytest.mark.parametrize("how", ["set", "add"])
@pytest.mark.parametrize("index, value_shape", [
    ((1,), (3,)), ((slice(1, 3), 0), (2,)), ((Ellipsis, 2), ()), ((slice(None, None, -2),), (1, 3)),
])
def test_at_set_and_add_are_differentiable_in_both_operands(how, index, value_shape):
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(4, 3))
    x, v = sg.var("x", shape=(4, 3)), sg.var("v", shape=value_shape)
    new = getattr(x.at[index], how)(v)
    f = sg.sum(np.sin(new) * weights)

    def on_arrays(a, b):
        return np.sum(np.sin(updated(a, b, index, how)) * weights)
    values = [rng.normal(size=(4, 3)), rng.normal(size=value_shape)]
    fn = sg.compile([new, f, *sg.grad(f, [x, v])], inputs=[x, v])
    array, value, grad_x, grad_v = fn(*values)
    np.testing.assert_array_equal(array, updated(*values, index, how))
    np.testing.assert_allclose(value, on_arrays(*values), rtol=1e-13)
    np.testing.assert_allclose(grad_x, central_gradient(on_arrays, values, 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad_v, central_gradient(on_arrays, values, 1), rtol=1e-6, atol=1e-9)
    hessian = sg.compile(sg.hessian(f, v), inputs=[x, v])(*values)      # nests: a second order
    assert np.all(np.isfinite(hessian))


def test_at_set_writes_the_value_exactly_and_works_on_a_named_dimension():
    # 1e17 + (1.0 - 1e17) would be 0.0: the value is selected, not added
    big = np.full((3, 2), 1e17)
    for shape in [("n", 2), (3, 2)]:
        with sg.use_graph():
            x = sg.var("x", shape=shape)
            new = x.at[0].set(1.0)
            np.testing.assert_array_equal(sg.compile(new, inputs=[x])(big),
                                          [[1.0, 1.0], [1e17, 1e17], [1e17, 1e17]])
            grad = sg.compile(sg.grad(sg.sum(new * new), x), inputs=[x])(big)
            np.testing.assert_array_equal(grad, [[0.0, 0.0], [2e17, 2e17], [2e17, 2e17]])
    np.testing.assert_array_equal(x.at[-1, 1].get().shape, ())


def test_a_failed_update_leaves_the_graph_unchanged():
    x, v = sg.var("x", shape=(4, 3)), sg.var("v", shape=(2, 3))
    nodes = len(x.graph)
    with pytest.raises(sg.ShapeError, match="at.set"):
        x.at[0].set(v)
    with pytest.raises(sg.ShapeError, match="at.add"):
        x.at[0].add(np.ones(4))
    with pytest.raises(sg.SymgradError, match="unsupported index"):
        x.at[[0, 1]].set(1.0)
    assert len(x.graph) == nodes
