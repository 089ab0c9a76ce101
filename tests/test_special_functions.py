"""issue 19's special functions (symgrad.scipy.special): values against SciPy and first to third
derivatives against mpmath at 80 digits, where the float formulas are most likely to fail (large
arguments, near the poles of digamma, the tails of ndtr and log_ndtr, the ends of erfinv's
domain); orders given as arrays; the refused derivatives; float32 results."""

import mpmath
import numpy as np
import pytest
import scipy.special

import symgrad as sg
import symgrad.scipy.special as special
from finite_differences import central_gradient



def _ncdf(x):
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


def _log_ncdf(x):
    # log1p(-Φ(-x)) on the right, where Φ(x) rounds to 1 even at 80 digits
    return mpmath.log(_ncdf(x)) if x < 0 else mpmath.log1p(-_ncdf(-x))


def _squares_lost(order, point):
    """The relative accuracy derivatives of order 2 and up keep where each order subtracts two
    nearly equal terms of size |x| (log_ndtr's left tail: m' = -m (x + m) with m about -x;
    erfcx' = 2 x erfcx(x) - 2/√π for large x), as in JAX's rules."""
    return 1e-12 if order < 2 else 1e-12 * (1.0 + point * point) ** (order - 1)


def _scaled_bessel_lost(order, point):
    """ive' = (ive(v-1) + ive(v+1)) / 2 - sign(x) ive(v): the terms agree to about 1/|x|."""
    return 1e-12 if order == 0 else 1e-13 * (1.0 + abs(point)) ** order


def _near_poles(order, point):
    """SciPy's digamma and zeta near a pole of the gamma family keep about 11 digits."""
    return 1e-10


def _student_cdf(t, df=4.5):
    """Student's t distribution function through the regularized incomplete beta function."""
    tail = mpmath.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True) / 2
    return tail if t < 0 else 1 - tail


# name -> (symgrad function, mpmath function, points[, relative tolerance(order, point)])
REFERENCES = {
    "gammaln": (special.gammaln, lambda x: mpmath.log(abs(mpmath.gamma(x))),
                [1e-8, 0.5, 3.7, 1e4, 1e8, -0.5, -2.999999], _near_poles),
    "digamma": (special.digamma, mpmath.digamma, [1e-6, 0.7, 40.0, 1e7, -1.0 + 1e-6, -1.0 - 1e-6,
                                                  -2.5], _near_poles),
    "polygamma-2": (lambda x: special.polygamma(2, x), lambda x: mpmath.polygamma(2, x),
                    [0.01, 1.5, 1e3, -0.5]),
    "gamma": (special.gamma, mpmath.gamma, [1e-5, 0.5, 20.0, 150.0, -1.5, -3.01]),
    "rgamma": (special.rgamma, mpmath.rgamma, [0.2, 5.0, 100.0, -0.5, -4.2]),
    "erfinv": (special.erfinv, mpmath.erfinv, [-0.999999, -0.3, 1e-10, 0.9, 1 - 1e-12]),
    "erfcinv": (special.erfcinv, lambda x: mpmath.erfinv(1 - x), [1e-10, 1e-6, 0.5, 1.999]),
    "erfcx": (special.erfcx, lambda x: mpmath.exp(x * x) * mpmath.erfc(x), [-5.0, 0.0, 3.0, 30.0],
              _squares_lost),
    "ndtr": (special.ndtr, _ncdf, [-37.0, -8.0, 0.0, 5.0, 8.0]),
    "ndtri": (special.ndtri, lambda p: mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1),
              [1e-20, 0.025, 0.5, 0.999]),
    "log_ndtr": (special.log_ndtr, _log_ncdf, [-40.0, -20.0, -1.0, 0.0, 3.0, 8.0],
                 _squares_lost),
    "i0": (special.i0, lambda x: mpmath.besseli(0, x), [-3.0, 0.0, 1e-3, 20.0, 700.0]),
    "i1": (special.i1, lambda x: mpmath.besseli(1, x), [-3.0, 0.0, 0.5, 20.0, 700.0]),
    "i0e": (special.i0e, lambda x: mpmath.besseli(0, x) * mpmath.exp(-abs(x)),
            [-3.0, 0.5, 20.0, 1e4], _scaled_bessel_lost),
    "i1e": (special.i1e, lambda x: mpmath.besseli(1, x) * mpmath.exp(-abs(x)),
            [-3.0, 0.5, 20.0, 1e4], _scaled_bessel_lost),
    "iv": (lambda x: special.iv(2.5, x), lambda x: mpmath.besseli(2.5, x), [0.1, 3.0, 50.0]),
    "ive": (lambda x: special.ive(0.5, x), lambda x: mpmath.besseli(0.5, x) * mpmath.exp(-x),
            [0.1, 3.0, 500.0], _scaled_bessel_lost),
    "j0": (special.j0, lambda x: mpmath.besselj(0, x), [0.0, 2.4048, 30.0, 1e3]),
    "j1": (special.j1, lambda x: mpmath.besselj(1, x), [-2.0, 0.0, 3.8317, 1e3]),
    "jn": (lambda x: special.jn(3, x), lambda x: mpmath.besselj(3, x), [-4.0, 0.5, 60.0]),
    "jv": (lambda x: special.jv(1.5, x), lambda x: mpmath.besselj(1.5, x), [0.5, 7.0, 60.0]),
    "y0": (special.y0, lambda x: mpmath.bessely(0, x), [1e-3, 0.8936, 30.0]),
    "y1": (special.y1, lambda x: mpmath.bessely(1, x), [0.01, 2.197, 30.0]),
    "yn": (lambda x: special.yn(2, x), lambda x: mpmath.bessely(2, x), [0.2, 3.384, 30.0]),
    "gammainc": (lambda x: special.gammainc(3.5, x),
                 lambda x: mpmath.gammainc(3.5, 0, x, regularized=True), [1e-3, 2.0, 40.0]),
    "gammaincc": (lambda x: special.gammaincc(0.5, x),
                  lambda x: mpmath.gammainc(0.5, x, mpmath.inf, regularized=True),
                  [1e-6, 2.0, 400.0]),
    "betainc": (lambda x: special.betainc(0.5, 4.0, x),
                lambda x: mpmath.betainc(0.5, 4.0, 0, x, regularized=True), [1e-6, 0.3, 0.99]),
    "stdtr": (lambda x: special.stdtr(4.5, x), _student_cdf, [-30.0, -1.0, 0.0, 2.0]),
}


def _mpmath_derivative(function, point, order):
    """The order-th derivative at ``point`` by mpmath's differences at 80 digits, with steps
    relative to the point (near 0 or 1, an absolute step would leave the domain)."""
    with mpmath.workdps(80):
        at = mpmath.mpf(point)
        step = mpmath.mpf("1e-20") * (abs(at) if point != 0.0 else 1)
        return float(mpmath.diff(function, at, order, h=step))


def _derivatives(function, order):
    """[f, f', ..., f^(order)] of one scalar variable, compiled."""
    x = sg.var("x")
    outputs = [function(x)]
    for _ in range(order):
        outputs.append(sg.grad(outputs[-1], x))
    return sg.compile(outputs, inputs=[x])


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_values_and_three_derivatives_against_mpmath(name):
    function, reference, points, *lost = REFERENCES[name]
    tolerance = lost[0] if lost else lambda order, point: 1e-12
    with sg.use_graph():
        fn = _derivatives(function, 3)
    for point in points:
        got = fn(point)
        wants = [_mpmath_derivative(reference, point, order) for order in range(4)]
        for order, (value, want) in enumerate(zip(got, wants)):
            assert np.isfinite(value), (name, point, order, value)
            # near a zero of the function (the Bessel functions'), relative to the derivatives
            scale = max(abs(w) for w in wants)
            assert value == pytest.approx(want, rel=tolerance(order, point), abs=1e-14 * scale), \
                (name, point, order, value, want)


def test_log_ndtr_is_finite_and_accurate_in_the_far_left_tail():
    """log Φ(-40) is about -804.6, and its derivative about 40.02: pdf / cdf would be 0 / 0, and
    exp(-x²/2 - log Φ(x)) would lose x² * 1e-16 of accuracy. The second derivative -m (x + m), m
    the first, keeps about 1e-16 x² of relative accuracy, as in JAX."""
    x = sg.var("x")
    f = special.log_ndtr(x)
    first = sg.grad(f, x)
    fn = sg.compile([f, first, sg.grad(first, x)], inputs=[x])
    for point in (-40.0, -1e3, -1e5, -1e8):
        value, slope, curvature = fn(point)
        with mpmath.workdps(50):
            at = mpmath.mpf(point)
            mills = mpmath.npdf(at) / _ncdf(at)
            want = [float(mpmath.log(_ncdf(at))), float(mills), float(-mills * (at + mills))]
        assert value == pytest.approx(want[0], rel=1e-14)
        assert slope == pytest.approx(want[1], rel=1e-14)
        if abs(point) <= 1e3:
            assert curvature == pytest.approx(want[2], rel=1e-9)
    # the right tail: log Φ(30) = log1p(-Φ(-30)) is about -4.9e-198, its derivative φ(30) / Φ(30)
    value, slope, _ = fn(30.0)
    with mpmath.workdps(50):
        assert value == pytest.approx(float(-_ncdf(mpmath.mpf(-30.0))), rel=1e-14)
        assert slope == pytest.approx(float(mpmath.npdf(30.0)), rel=1e-14)


def test_the_next_function_of_the_family_is_the_derivative():
    x = sg.var("x")
    assert sg.grad(special.gammaln(x), x).op == "digamma"
    assert sg.grad(special.digamma(x), x).op == "polygamma"
    assert sg.grad(sg.grad(special.digamma(x), x), x).data["attrs"]["n"] == 2
    assert sg.grad(special.i0(x), x).op == "i1"
    assert special.psi(x).node == special.digamma(x).node
    assert special.jn(2, x).node == special.jv(2.0, x).node
    assert special.polygamma(0, x).node == special.digamma(x).node


def test_an_array_of_polygamma_orders_selects_an_order_per_entry():
    orders = np.array([[0, 1, 3], [2, 2, 0]])
    a = np.array([0.7, 2.5, 9.0])
    x = sg.var("x", shape=(3,))
    f = special.polygamma(orders, x)
    fn = sg.compile([f, sg.grad(sg.sum(f), x)], inputs=[x])
    value, gradient = fn(a)
    np.testing.assert_allclose(value, scipy.special.polygamma(orders, a), rtol=1e-14)
    np.testing.assert_allclose(gradient, scipy.special.polygamma(orders + 1, a).sum(axis=0),
                               rtol=1e-14)


def test_incomplete_gamma_with_an_array_of_shapes_and_its_refused_derivative():
    shapes = np.array([0.5, 1.0, 3.0, 7.5])
    a = np.array([0.3, 1.0, 2.5, 9.0])
    x = sg.var("x", shape=(4,))
    f = sg.sum(special.gammainc(shapes, x) * special.gammaincc(shapes[::-1], x))
    fn = sg.compile([f, sg.grad(f, x)], inputs=[x])
    value, gradient = fn(a)

    def reference(p):
        return np.sum(scipy.special.gammainc(shapes, p) * scipy.special.gammaincc(shapes[::-1], p))
    assert value == pytest.approx(reference(a), rel=1e-14)
    np.testing.assert_allclose(gradient, central_gradient(reference, a), rtol=1e-6, atol=1e-10)
    k = sg.var("k", shape=(4,))
    with pytest.raises(sg.UndefinedGradientError, match=r"gammainc: no derivative with respect "
                                                        r"to a"):
        sg.grad(sg.sum(special.gammainc(k, x)), k)
    # with respect to x alone, a variable shape parameter is no obstacle
    g = sg.compile(sg.grad(sg.sum(special.gammainc(k, x)), x), inputs=[k, x])(shapes, a)
    np.testing.assert_allclose(g, np.exp((shapes - 1) * np.log(a) - a
                                         - scipy.special.gammaln(shapes)), rtol=1e-13)


def test_multigammaln_against_scipy():
    a = np.array([[4.2, 5.0], [3.1, 7.7]])
    A = sg.var("A", shape=(2, 2))
    f = sg.sum(special.multigammaln(A, 3))
    value, gradient = sg.compile([f, sg.grad(f, A)], inputs=[A])(a)
    assert value == pytest.approx(np.sum(scipy.special.multigammaln(a, 3)), rel=1e-14)
    np.testing.assert_allclose(gradient, sum(scipy.special.digamma(a - j / 2) for j in range(3)),
                               rtol=1e-14)


def test_gammasgn_has_a_zero_derivative():
    x = sg.var("x", shape=(3,))
    f = sg.sum(special.gammasgn(x) * x)
    value, gradient = sg.compile([f, sg.grad(f, x)], inputs=[x])(np.array([-0.5, -1.5, 2.0]))
    assert value == pytest.approx(0.5 - 1.5 + 2.0)     # Γ(-0.5) < 0 < Γ(-1.5)
    np.testing.assert_array_equal(gradient, [-1.0, 1.0, 1.0])


def test_numpys_i0_and_formulas_reach_the_special_functions():
    x = sg.var("x", shape=(3,))
    assert np.i0(x).op == "i0"
    f = sg.parse("sum(gammaln(x) + polygamma(2, x) + jv(1.5, x) + gammainc(2.0, x))",
                 shapes={"x": (3,)})
    a = np.array([0.5, 1.5, 4.0])
    got = sg.compile(f, inputs=[f.variables["x"]])(a)
    want = np.sum(scipy.special.gammaln(a) + scipy.special.polygamma(2, a)
                  + scipy.special.jv(1.5, a) + scipy.special.gammainc(2.0, a))
    assert got == pytest.approx(want, rel=1e-14)


def test_a_python_number_next_to_float32_keeps_float32():
    """SciPy's binary ufuncs pick their float64 loop for a Python number and a float32 array;
    xlogy answered float64 where its graph says float32."""
    x = sg.var("x", shape=(3,), dtype="float32")
    outputs = [special.xlogy(1.5, x), special.gammainc(2.5, x), special.xlog1py(x, 0.5),
               special.betainc(2.0, 3.0, x * 0.5)]
    got = sg.compile(outputs, inputs=[x])(np.array([0.5, 1.0, 1.5], dtype=np.float32))
    assert [r.dtype for r in got] == [np.float32] * 4
    assert all(o.dtype == np.float32 for o in outputs)
