"""Issue 18's element-wise functions beyond what tests/test_ops.py's table checks per op: their
Python-float forms against NumPy at the edges (signed zeros, infinities, nan), the fused Numba
loops, the functions that are an existing op (square, exp2, deg2rad...), the ``%`` operator, and
the documented conventions (nan in fmax, the derivatives of the remainders, the zero derivative
of rounding, stable derivatives near the ends of a domain)."""

import math

import numpy as np
import pytest

import symgrad as sg
from test_codegen import assert_fast_path_is_numpy, same_numbers

# signed zeros, ties with the other operand (0.5), the domain and overflow edges, non-finite values
EDGES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -2.5, 2.0, 0.999, 1e-300, 30.0, -30.0, 710.0,
         -710.0, 1e308, -1e308, np.inf, -np.inf, np.nan]

# every new op with a Python-float form, on scalars x and y
SCALAR_BUILDERS = {
    **{name: (lambda f: lambda x, y: f(x))(getattr(sg, name))
       for name in ["sinh", "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
                    "log2", "log10", "floor", "ceil", "trunc", "round"]},
    **{name: getattr(sg, name)
       for name in ["arctan2", "hypot", "logaddexp", "logaddexp2", "fmax", "fmin", "fmod",
                    "remainder"]},
    "round-decimals": lambda x, y: sg.round(x, decimals=2),
    "round-negative-decimals": lambda x, y: sg.round(x, decimals=-1),
}


@pytest.mark.parametrize("name", sorted(SCALAR_BUILDERS))
def test_the_python_float_forms_give_numpys_answers(name):
    x, y = sg.var("x"), sg.var("y")
    f = SCALAR_BUILDERS[name](x, y)
    fn = sg.compile([f, *sg.grad(f, [x, y], disconnected="zero")], inputs=[x, y])
    assert fn.scalar_source is not None, "this graph should have a fast path"
    assert_fast_path_is_numpy(fn, [(a, b) for a in EDGES for b in (0.5, a, -2.0, 3.0)], name)


def test_a_python_float_form_of_rounding_keeps_numpys_signed_zero():
    x = sg.var("x")
    for op in (sg.floor, sg.ceil, sg.trunc, sg.round):
        fn = sg.compile(op(x), inputs=[x])
        for value in (-0.0, -0.25, 0.25, -0.75):
            got = fn(value)
            assert type(got) is float
            assert same_numbers(got, getattr(np, op.__name__ if op is not sg.round else "round")(
                value)), (op, value)


def test_the_fused_loops_compute_what_numpy_computes():
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x, y = sg.var("x", shape=(300,)), sg.var("y", shape=(300,))
    inner = sg.tanh(x) * 0.9                 # in (-0.9, 0.9): arcsin, arctanh's domain
    terms = [sg.sinh(x), sg.cosh(x), sg.arcsin(inner), sg.arccos(inner), sg.arctan(x),
             sg.arcsinh(x), sg.arccosh(y * y + 1.5), sg.arctanh(inner), sg.log2(y * y + 0.5),
             sg.log10(y * y + 0.5), sg.arctan2(x, y), sg.hypot(x, y), sg.fmax(x, y),
             sg.fmin(x, y), sg.fmod(x, y), x % y, sg.floor(x) * y, sg.ceil(x) * y,
             sg.trunc(x) * y, sg.round(x) * y, sg.logaddexp(x, y), sg.logaddexp2(x, y),
             sg.cbrt(x)]
    f = sg.sum(sum(terms[1:], terms[0]))
    outputs = [f, *sg.grad(f, [x, y])]
    fused = sg.compile(outputs, inputs=[x, y], backend="numba")
    plain = sg.compile(outputs, inputs=[x, y])
    for name in ("math.asinh", "math.hypot", "math.atan2", "%"):
        assert name in fused.kernel_source, name
    a, b = rng.standard_normal(300) * 2.0, rng.uniform(0.5, 2.0, 300) * rng.choice([-1, 1], 300)
    for got, want in zip(fused(a, b), plain(a, b)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# -- functions that are an existing op: NumPy's answer, bit for bit, and the derivative ---------------

COMPOSITES = {
    "square": (sg.square, np.square, lambda a: 2.0 * a),
    "reciprocal": (sg.reciprocal, np.reciprocal, lambda a: -1.0 / a ** 2),
    "fabs": (sg.fabs, np.fabs, np.sign),
    "exp2": (sg.exp2, np.exp2, lambda a: np.exp2(a) * np.log(2.0)),
    "deg2rad": (sg.deg2rad, np.deg2rad, lambda a: np.full_like(a, np.pi / 180.0)),
    "rad2deg": (sg.rad2deg, np.rad2deg, lambda a: np.full_like(a, 180.0 / np.pi)),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_functions_made_of_an_existing_op(name):
    build, reference, derivative = COMPOSITES[name]
    a = np.array([-2.5, -0.3, 0.7, 1.9, 30.0])
    x = sg.var("x", shape=(5,))
    value, gradient = sg.compile([build(x), sg.grad(sg.sum(build(x)), x)], inputs=[x])(a)
    exact = name != "exp2"          # 2.0 ** x is NumPy's power, within an ulp of np.exp2
    np.testing.assert_allclose(value, reference(a), rtol=0 if exact else 1e-15)
    np.testing.assert_allclose(gradient, derivative(a), rtol=1e-15)
    assert sg.parse(f"{name}(x)", shapes={"x": (5,)}).shape == (5,)


def test_mod_and_the_percent_operator_are_numpys_remainder():
    x, y = sg.var("x", shape=(4,)), sg.var("y", shape=(4,))
    a, b = np.array([5.5, -5.5, 5.5, -0.0]), np.array([2.0, 2.0, -2.0, 3.0])
    fn = sg.compile([x % y, sg.mod(x, y), 7.0 % y, x % 2.0], inputs=[x, y])
    for got, want in zip(fn(a, b), [np.mod(a, b), np.mod(a, b), np.mod(7.0, b), np.mod(a, 2.0)]):
        assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
    assert (x % y).op == (7.0 % y).op == "remainder"


# -- conventions ---------------------------------------------------------------------------------------


def test_the_remainders_derivatives_are_jaxs():
    """d(a mod b)/da = 1, d/db = -floor(a / b); for fmod, -trunc(a / b)."""
    a, b = np.array([5.5, -5.5, 7.25, -7.25]), np.array([2.0, 2.0, -3.0, -3.0])
    x, y = sg.var("x", shape=(4,)), sg.var("y", shape=(4,))
    for build, quotient in [(sg.remainder, np.floor), (sg.fmod, np.trunc)]:
        f = sg.sum(build(x, y))
        dx, dy = sg.compile(sg.grad(f, [x, y]), inputs=[x, y])(a, b)
        np.testing.assert_array_equal(dx, np.ones(4))
        np.testing.assert_array_equal(dy, -quotient(a / b))


@pytest.mark.parametrize("build", [sg.floor, sg.ceil, sg.trunc, sg.round,
                                   lambda x: sg.round(x, decimals=2)])
def test_rounding_has_zero_derivative_to_every_order(build):
    x = sg.var("x", shape=(3,))
    first = sg.grad(sg.sum(build(x) * x), x)
    second = sg.grad(sg.sum(first * x), x)
    a = np.array([-1.3, 0.2, 2.7])
    got_first, got_second = sg.compile([first, second], inputs=[x])(a)
    np.testing.assert_array_equal(got_first, build_numpy(build, a))
    np.testing.assert_array_equal(got_second, build_numpy(build, a))


def build_numpy(build, a):
    with sg.use_graph():
        v = sg.var("v", shape=a.shape)
        return sg.compile(build(v), inputs=[v])(a)


@pytest.mark.parametrize("build", [sg.fmax, sg.fmin], ids=["fmax", "fmin"])
def test_fmax_and_fmin_give_the_whole_gradient_to_the_number_facing_a_nan(build):
    x, y = sg.var("x", shape=(4,)), sg.var("y", shape=(4,))
    a = np.array([np.nan, 1.0, np.nan, 2.0])
    b = np.array([1.0, np.nan, np.nan, 2.0])
    value, dx, dy = sg.compile([build(x, y), *sg.grad(sg.sum(build(x, y)), [x, y])],
                               inputs=[x, y])(a, b)
    np.testing.assert_array_equal(value, getattr(np, build.__name__)(a, b))
    np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, 0.5])     # a tie splits evenly
    np.testing.assert_array_equal(dy, [1.0, 0.0, 0.0, 0.5])


def test_derivatives_stay_accurate_near_the_ends_of_the_domain():
    x = sg.var("x", shape=(3,))
    near_one = np.array([1.0 - 1e-12, -1.0 + 1e-12, 0.5])
    d_arcsin, d_arctanh = sg.compile([sg.grad(sg.sum(sg.arcsin(x)), x),
                                      sg.grad(sg.sum(sg.arctanh(x)), x)], inputs=[x])(near_one)
    exact = [1.0 / math.sqrt((1.0 - v) * (1.0 + v)) for v in near_one]
    np.testing.assert_allclose(d_arcsin, exact, rtol=1e-15)
    np.testing.assert_allclose(d_arctanh, [1.0 / ((1.0 - v) * (1.0 + v)) for v in near_one],
                               rtol=1e-15)
    huge = np.array([1e200, -1e300, 3.0])
    d_arcsinh, d_arctan2 = sg.compile([sg.grad(sg.sum(sg.arcsinh(x)), x),
                                       sg.grad(sg.sum(sg.arctan2(x, 1e200)), x)],
                                      inputs=[x])(huge)
    np.testing.assert_allclose(d_arcsinh, [1e-200, 1e-300, 1.0 / math.sqrt(10.0)], rtol=1e-15)
    assert np.all(np.isfinite(d_arctan2)) and d_arctan2[0] == pytest.approx(0.5e-200, rel=1e-15)


def test_logaddexp_and_its_derivatives_do_not_overflow():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    a, b = np.array([1000.0, -1000.0, 0.0]), np.array([999.0, -1000.0, 800.0])
    for build, numpy_function, base in [(sg.logaddexp, np.logaddexp, math.e),
                                        (sg.logaddexp2, np.logaddexp2, 2.0)]:
        f = sg.sum(build(x, y))
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value, dx, dy = sg.compile([build(x, y), *sg.grad(f, [x, y])], inputs=[x, y])(a, b)
        np.testing.assert_allclose(value, numpy_function(a, b), rtol=1e-15)
        with np.errstate(over="ignore"):
            weight = 1.0 / (1.0 + base ** (b - a))
        # base 2: sigmoid((x - y) ln 2), whose argument's rounding is ~1e-16 of 800 ln 2
        np.testing.assert_allclose(dx, weight, rtol=1e-14 if base == math.e else 1e-13)
        np.testing.assert_allclose(dx + dy, 1.0, rtol=1e-15)


# -- special functions (SciPy's semantics) ----------------------------------------------------------

SPECIAL_SCALARS = {
    "erf": lambda x, y: sg.erf(x), "erfc": lambda x, y: sg.erfc(x),
    "logit": lambda x, y: sg.logit(x), "xlogy": sg.xlogy, "xlogy-swapped": lambda x, y: sg.xlogy(y, x),
}


@pytest.mark.parametrize("name", sorted(SPECIAL_SCALARS))
def test_the_python_float_forms_of_special_functions_give_scipys_answers(name):
    x, y = sg.var("x"), sg.var("y")
    f = SPECIAL_SCALARS[name](x, y)
    fn = sg.compile([f, *sg.grad(f, [x, y], disconnected="zero")], inputs=[x, y])
    assert fn.scalar_source is not None and "math." in fn.scalar_source
    # libm's erf and SciPy's (Cephes) may differ in the last bit
    assert_fast_path_is_numpy(fn, [(a, b) for a in EDGES + [0.25, 0.3, 0.5000001, 0.65, 0.75]
                                   for b in (0.5, a, 0.0, -2.0, 3.0)], name)


def test_xlogy_is_scipys_at_zero_and_its_derivatives_are_jaxs():
    import scipy.special
    x, y = sg.var("x", shape=(5,)), sg.var("y", shape=(5,))
    a = np.array([0.0, 0.0, 0.0, 2.0, 0.0])
    b = np.array([0.0, 3.0, np.nan, 0.5, -1.0])
    f = sg.sum(sg.xlogy(x, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        value, dx, dy = sg.compile([sg.xlogy(x, y), *sg.grad(f, [x, y])], inputs=[x, y])(a, b)
        np.testing.assert_array_equal(value, scipy.special.xlogy(a, b))
        # d/dx = log y, d/dy = x / y, as jax.scipy.special.xlogy's rule
        np.testing.assert_array_equal(dx, np.log(b))
        np.testing.assert_array_equal(dy, a / b)


def test_scipy_special_mirrors_scipys_names():
    from symgrad.scipy import special
    import scipy.special
    x = sg.var("x", shape=(4,))
    a = np.array([0.1, 0.4, 0.6, 0.9])
    names = ["erf", "erfc", "expit", "logit"]
    fn = sg.compile([getattr(special, name)(x) for name in names] + [special.xlogy(x, x)],
                    inputs=[x])
    for got, name in zip(fn(a), names):
        np.testing.assert_allclose(got, getattr(scipy.special, name)(a), rtol=1e-15)
    np.testing.assert_allclose(fn(a)[-1], scipy.special.xlogy(a, a), rtol=1e-15)
    assert special.expit(x).op == "sigmoid" and sg.expit is special.expit
    assert sg.parse("erf(x) + xlogy(x, x) + expit(x)", shapes={"x": (4,)}).shape == (4,)


def test_the_array_api_backend_refuses_scipys_functions_by_name():
    pytest.importorskip("array_api_compat")
    x = sg.var("x", shape=(3,))
    with pytest.raises(sg.SymgradError, match=r"no counterpart for SciPy's functions \(special\), "
                                              r"which op 'erfc' uses; use backend 'numpy'"):
        sg.compile(sg.gelu(x), inputs=[x], backend="array_api")
    # the tanh form is made of standard functions
    fn = sg.compile(sg.gelu(x, approximate="tanh"), inputs=[x], backend="array_api")
    assert "special" not in fn.source


def test_a_variable_named_special_is_renamed_in_the_source():
    special = sg.var("special", shape=(3,))
    fn = sg.compile(sg.erf(special) * special, inputs=[special])
    a = np.array([0.5, -1.0, 2.0])
    import scipy.special
    np.testing.assert_allclose(fn(a), scipy.special.erf(a) * a, rtol=1e-15)
    assert fn(special=a) is not None


def test_the_fused_loops_of_special_functions():
    pytest.importorskip("numba")
    x, y = sg.var("x", shape=(300,)), sg.var("y", shape=(300,))
    p = sg.sigmoid(x)
    f = sg.sum(sg.erf(x) * y + sg.erfc(y) + sg.logit(p * 0.98 + 0.01) + sg.xlogy(x, y * y))
    outputs = [f, *sg.grad(f, [x, y])]
    fused = sg.compile(outputs, inputs=[x, y], backend="numba")
    assert "math.erf(" in fused.kernel_source and "math.erfc(" in fused.kernel_source
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(300), rng.uniform(0.5, 2.0, 300)
    for got, want in zip(fused(a, b), sg.compile(outputs, inputs=[x, y])(a, b)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# -- activations and nan_to_num: values against references, derivatives against differences --------

def _erf(a):
    import scipy.special
    return scipy.special.erf(a)


SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)
ACTIVATIONS = {
    "gelu": (sg.gelu, lambda a: 0.5 * a * (1.0 + _erf(a / np.sqrt(2.0)))),
    "gelu-tanh": (lambda x: sg.gelu(x, approximate="tanh"),
                  lambda a: 0.5 * a * (1.0 + np.tanh(np.sqrt(2.0 / np.pi)
                                                      * (a + 0.044715 * a ** 3)))),
    "silu": (sg.silu, lambda a: a / (1.0 + np.exp(-a))),
    "elu": (lambda x: sg.elu(x, alpha=0.7), lambda a: np.where(a > 0, a, 0.7 * np.expm1(a))),
    "elu-default": (sg.elu, lambda a: np.where(a > 0, a, np.expm1(a))),
    "selu": (sg.selu, lambda a: SELU[1] * np.where(a > 0, a, SELU[0] * np.expm1(a))),
    "softsign": (sg.softsign, lambda a: a / (1.0 + np.abs(a))),
    "nan_to_num": (lambda x: sg.nan_to_num(x, nan=1.0, posinf=2.0) * x,
                   lambda a: np.nan_to_num(a, nan=1.0, posinf=2.0) * a),
}


def _differences(function, a, eps=1e-6):
    return np.array([(function(a + e) - function(a - e)).sum() / (2 * eps)
                     for e in np.eye(a.size) * eps])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_values_and_first_and_second_derivatives(name):
    build, reference = ACTIVATIONS[name]
    a = np.array([-3.1, -1.2, -0.4, 0.3, 0.9, 2.5])
    x = sg.var("x", shape=(6,))
    gradient = sg.grad(sg.sum(build(x)), x)
    second = sg.grad(sg.sum(gradient), x)       # the diagonal of the Hessian, summed by rows
    value, got_gradient, got_second = sg.compile([build(x), gradient, second], inputs=[x])(a)
    np.testing.assert_allclose(value, reference(a), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got_gradient, _differences(reference, a), rtol=1e-7, atol=1e-8)
    first_of = sg.compile(gradient, inputs=[x])
    np.testing.assert_allclose(got_second, _differences(first_of, a), rtol=1e-6, atol=1e-7)


def test_activation_conventions_at_zero_and_in_the_tails():
    x = sg.var("x", shape=(4,))
    a = np.array([0.0, -800.0, 800.0, -40.0])
    for build in (sg.elu, sg.selu, sg.silu, sg.gelu, sg.softsign):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value, gradient = sg.compile([build(x), sg.grad(sg.sum(build(x)), x)],
                                         inputs=[x])(a)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), build
    # elu's derivative at 0 is the left one, alpha, as PyTorch's and JAX's
    d_elu = sg.compile(sg.grad(sg.sum(sg.elu(x, alpha=0.5)), x), inputs=[x])(a)
    assert d_elu[0] == 0.5
    # the exact gelu keeps its relative accuracy far into the negative tail
    value = sg.compile(sg.gelu(x), inputs=[x])(np.array([-10.0, -20.0, -30.0, 1.0]))
    expected = [-7.619853024160526e-23, -5.507248237212468e-88, -1.472014178144456e-196]  # mpmath
    np.testing.assert_allclose(value[:3], expected, rtol=1e-13)


def test_nan_to_num_defaults_and_its_gradient():
    x = sg.var("x", shape=(5,))
    a = np.array([np.nan, np.inf, -np.inf, 1.5, -2.0])
    value, gradient = sg.compile([sg.nan_to_num(x), sg.grad(sg.sum(sg.nan_to_num(x)), x)],
                                 inputs=[x])(a)
    np.testing.assert_array_equal(value, np.nan_to_num(a))
    np.testing.assert_array_equal(gradient, [0.0, 0.0, 0.0, 1.0, 1.0])
    x32 = sg.var("x32", shape=(2,), dtype="float32")
    got = sg.compile(sg.nan_to_num(x32), inputs=[x32])(np.array([np.inf, -np.inf], np.float32))
    np.testing.assert_array_equal(got, np.nan_to_num(np.array([np.inf, -np.inf], np.float32)))
    with pytest.raises(sg.ArgumentError, match="nan_to_num: posinf"):
        sg.nan_to_num(x, posinf="big")
    with pytest.raises(sg.ArgumentError, match="gelu: approximate"):
        sg.gelu(x, approximate=True)


def test_nan_to_num_of_a_list_is_its_constant():
    got = sg.compile(sg.nan_to_num([np.nan, 1.0, np.inf]) + sg.var("x"), inputs=[sg.var("x")])(0.0)
    np.testing.assert_array_equal(got, np.nan_to_num([np.nan, 1.0, np.inf]))
