"""backend="array_api" (symgrad.array_api): the NumPy backend's values and gradients, on
array-api-strict (the standard and nothing more) and on Dask arrays (lazy, chunked), for every op
of sg.OPS, the worked examples of the README and random graphs; its argument checks."""

import ast

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import rosen_der, rosen_hess_prod

import symgrad as sg
from symgrad import api
from symgrad.array_api import ELEMENTWISE, NAMES, ArrayNamespace
from symgrad.codegen.array_api import ArrayAPISyntax, names_read, numpy_only_syntax
from symgrad.codegen.emission import NUMPY_SYNTAX
from test_ops import (CASES, CASES_BY_OP, DIMS, LEAVES, RESULTS_ONLY, USER_RULES,
                      array_api_refuses, build,
                      op_cases, sample, sympy_checked, test_first_and_second_derivatives_match_sympy)
from test_properties import drawn_gradients_against_numpy
from test_reliability import run_together

compat = pytest.importorskip("array_api_compat")
xs = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

RTOL = 1e-12


def strict(a):
    return xs.asarray(np.asarray(a, dtype=np.float64))


def chunked(a):
    """A Dask array of about two chunks along every axis."""
    a = np.asarray(a, dtype=np.float64)
    return da.from_array(a, chunks=tuple(max(1, (d + 1) // 2) for d in a.shape))


LIBRARIES = {"strict": strict, "dask": chunked}


def computed(results, library):
    """NumPy arrays of the results of one call, checking that they are the library's arrays (and
    for Dask that nothing was computed yet)."""
    results = results if isinstance(results, tuple) else (results,)
    if library == "dask":
        assert all(isinstance(r, da.Array) for r in results), "Dask results are lazy"
        results = dask.compute(*results)
    else:
        assert all(compat.is_array_api_strict_namespace(compat.array_namespace(r))
                   for r in results)
    return [np.asarray(r) for r in results]


def assert_same(got, want, rtol=RTOL):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        scale = 1.0 + (np.abs(w).max() if w.size and w.dtype != bool else 0.0)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True)


def both(outputs, inputs):
    return [sg.compile(outputs, inputs=inputs, backend=b) for b in ("numpy", "array_api")]


def check(outputs, inputs, args, library, rtol=RTOL):
    """The array-API function on ``library``'s arrays gives the NumPy function's answers;
    returns them (as NumPy arrays)."""
    numpy_fn, array_fn = both(outputs, inputs)
    want = numpy_fn(*args)
    want = want if isinstance(want, tuple) else (want,)
    got = computed(array_fn(*(LIBRARIES[library](a) for a in args)), library)
    assert_same(got, want, rtol)
    return got


libraries = pytest.mark.parametrize("library", sorted(LIBRARIES))


# -- worked examples ---------------------------------------------------------------------------------


@libraries
def test_textbook_scalar_gradients(library):
    with sg.use_graph():
        x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
        functions = [(x + y) * sg.maximum(y, z), sg.sin(x) * sg.exp(y), x ** 3 * y,
                     sg.log(x * x + 1.0) / (1.0 + y ** 2), sg.tanh(x * z) + sg.sigmoid(y),
                     sg.softplus(z) * sg.sqrt(x * x + 1.0), sg.abs(x - y) + sg.relu(z),
                     sg.leaky_relu(x) * sg.expm1(y) + sg.log1p(z * z)]
        for f in functions:
            outputs = [f, *sg.grad(f, [x, y, z], disconnected="zero"),
                       *sg.hessian(f, [x, y, z], disconnected="zero")[0]]
            check(outputs, [x, y, z], [0.7, -1.3, 2.1], library)


@libraries
def test_rosenbrock_gradient_and_hvp_match_scipy(library):
    with sg.use_graph():
        x, v = sg.var("x", shape=(12,)), sg.var("v", shape=(12,))
        f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        point = np.random.default_rng(1).uniform(-2.0, 2.0, 12)
        direction = np.random.default_rng(2).standard_normal(12)
        _, gradient, product = check([f, sg.grad(f, x), sg.hvp(f, x, v)], [x, v],
                                     [point, direction], library)
    np.testing.assert_allclose(gradient, rosen_der(point), rtol=1e-12)
    np.testing.assert_allclose(product, rosen_hess_prod(point, direction), rtol=1e-12)


@libraries
def test_mlp_loss_and_gradients_with_a_batch_dimension(library):
    rng = np.random.default_rng(3)
    with sg.use_graph():
        X, Y = sg.var("X", shape=("n", 6)), sg.var("Y", shape=("n", 3))
        W1, b1 = sg.var("W1", shape=(6, 5)), sg.var("b1", shape=(5,))
        W2, b2 = sg.var("W2", shape=(5, 3)), sg.var("b2", shape=(3,))
        hidden = sg.relu(X @ W1 + b1)
        loss = -sg.mean(sg.sum(Y * sg.log_softmax(hidden @ W2 + b2, axis=-1), axis=-1))
        params = [W1, b1, W2, b2]
        outputs = [loss, *sg.grad(loss, params)]
        for n in (1, 10):
            labels = np.eye(3)[rng.integers(0, 3, n)]
            args = [rng.standard_normal(p.shape) for p in params]
            check(outputs, [*params, X, Y], [*args, rng.standard_normal((n, 6)), labels], library)


@libraries
def test_softmax_and_logsumexp(library):
    rng = np.random.default_rng(4)
    with sg.use_graph():
        Z, w, z = sg.var("Z", shape=(4, 5)), sg.var("w", shape=(4,)), sg.var("z", shape=(4,))
        f = sg.sum(sg.logsumexp(Z, axis=1) * w) + sg.sum(sg.softmax(Z, axis=0) * Z)
        outputs = [sg.softmax(Z, axis=-1), sg.logsumexp(Z, axis=0), sg.logsumexp(Z, keepdims=True),
                   f, *sg.grad(f, [Z, w]), sg.jacobian(sg.softmax(z), z)]
        _, *_, jacobian = check(outputs, [Z, w, z], [rng.standard_normal((4, 5)) * 3.0,
                                                    rng.standard_normal(4), np.arange(4.0)],
                                library)
    p = np.exp(np.arange(4.0)) / np.exp(np.arange(4.0)).sum()
    np.testing.assert_allclose(jacobian, np.diag(p) - np.outer(p, p), atol=1e-15)


@libraries
def test_tanh_higher_derivatives(library):
    with sg.use_graph():
        x = sg.var("x", shape=(7,))
        derivatives = [sg.tanh(x)]
        for _ in range(4):
            derivatives.append(sg.grad(sg.sum(derivatives[-1]), x))
        at = np.linspace(-2.0, 2.0, 7)
        t, d1, d2, *_ = check(derivatives, [x], [at], library)
    np.testing.assert_allclose(d1, 1.0 - t ** 2, rtol=1e-12)
    np.testing.assert_allclose(d2, -2.0 * t * (1.0 - t ** 2), rtol=1e-12, atol=1e-15)


@libraries
def test_hessian_of_logsumexp_of_a_linear_map(library):
    A = np.random.default_rng(5).standard_normal((4, 3))
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        f = sg.logsumexp(sg.const(A) @ x)       # a constant: a parameter, on the arguments' side
        at = np.array([0.3, -0.2, 0.5])
        fn = sg.compile(sg.hessian(f, x), inputs=[x], backend="array_api")
        assert "c0" in fn.source.splitlines()[0]
        (hessian,) = computed(fn(LIBRARIES[library](at)), library)
        check(sg.hessian(f, x), [x], [at], library)
    p = np.exp(A @ at) / np.exp(A @ at).sum()
    np.testing.assert_allclose(hessian, A.T @ (np.diag(p) - np.outer(p, p)) @ A, rtol=1e-12)


@libraries
def test_slicing_concatenate_reshape_transpose_where_clip_maximum_abs(library):
    rng = np.random.default_rng(6)
    with sg.use_graph():
        x, y = sg.var("x", shape=(4, 3)), sg.var("y", shape=(4, 3))
        T = sg.var("T", shape=(2, 3, 4))
        joined = sg.concatenate([x, y * 2.0], axis=1)
        f = (sg.sum(x[1:, ::2] ** 2) + sg.sum(sg.sin(sg.reshape(joined, (6, 4)).T) * joined)
             + sg.sum(sg.where(x > y, x * y, sg.clip(x, -0.5, 0.5)) * sg.maximum(x, y))
             + sg.sum(sg.abs(x - 0.3 * y) * y[::-1, 0:1]) + sg.sum(sg.tanh(T.T) * T.T)
             + sg.sum(sg.transpose(T, (2, 0, 1))[:, 0] * x[:, None, 1])
             + sg.sum(sg.max(T, axis=1, keepdims=True) * sg.min(T, axis=(0, 2))[:, None]))
        inputs = [x, y, T]
        args = [rng.standard_normal((4, 3)), rng.standard_normal((4, 3)),
                rng.standard_normal((2, 3, 4))]
        check([f, *sg.grad(f, inputs), T.T, x[::-1]], inputs, args, library)
        v = [sg.var(f"v_{e.name}", shape=e.shape) for e in inputs]
        check(sg.hvp(f, inputs, v), inputs + v, args + [a[::-1] for a in args], library)


# -- every op ----------------------------------------------------------------------------------------


def test_every_op_has_a_case():
    missing = set(sg.OPS) - LEAVES - set(USER_RULES) - set(RESULTS_ONLY) - set(CASES_BY_OP)
    assert not missing, f"ops of sg.OPS with no case in tests/test_ops.py: {sorted(missing)}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_every_op_and_its_vjp_on_both_libraries(case):
    arrays, rng = sample(case)
    with sg.use_graph():
        inputs, out = build(case)
        u = sg.var("u", shape=out.shape)
        wrts = [inputs[i] for i in case.differentiable]
        outputs = [out, *sg.vjp(out, wrts, u)] if wrts and out.dtype != "bool" else [out]
        concrete = tuple(DIMS.get(d, d) for d in out.shape)
        args = [*arrays, rng.standard_normal(concrete)]
        refused = array_api_refuses(case)
        if refused:         # SciPy's special functions, strided windows: refused when compiled
            with pytest.raises(sg.SymgradError, match=f"no counterpart for .*"
                                                      f"op '({'|'.join(refused)})'"):
                sg.compile(outputs, inputs=[*inputs, u], backend="array_api")
            return
        numpy_fn, array_fn = both(outputs, [*inputs, u])
    # every name the emitted code reads from np, in either backend's form, is in the namespace
    assert names_read(array_fn.source) <= NAMES
    assert not numpy_only_syntax(array_fn.source), array_fn.source
    # the array API backend gives steps as floats, never as NumPy's masks (Emission.numpy_mask)
    assert names_read(numpy_fn.source) - {"count_nonzero"} <= NAMES, \
        "a NumPy emission the array API backend lacks"
    want = numpy_fn(*args)
    for library, convert in LIBRARIES.items():
        if library == "dask" and "linalg" in names_read(array_fn.source):
            # Dask's linalg solves single matrices in square chunks: refused by name
            with pytest.raises(sg.SymgradError, match="offers no linalg"):
                array_fn(*map(convert, args))
            continue
        assert_same(computed(array_fn(*map(convert, args)), library), want)


def test_custom_gradient_and_stop_gradient():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        clipped = sg.custom_gradient(x, [x], lambda g, out, x: [sg.clip(g, -1.0, 1.0)])
        f = sg.sum(5.0 * clipped * sg.stop_gradient(x))
        got = check([f, sg.grad(f, x)], [x], [np.array([0.1, -2.0, 3.0])], "strict")
    np.testing.assert_allclose(got[1], [0.5, -1.0, 1.0])


def test_an_emission_without_a_counterpart_is_refused_at_compile_time():
    # the standard has no spacing (the distance to the next float)
    spacing = sg.defop("spacing_example", 1, lambda shapes: shapes[0], "np.spacing({0})",
                       vjp=lambda g, out, x: [None])
    try:
        x = sg.var("x", shape=(2,))
        with pytest.raises(sg.SymgradError, match=r"np\.spacing"):
            sg.compile(spacing(x), backend="array_api")
    finally:
        del sg.OPS["spacing_example"]


def test_every_elementwise_name_is_a_numpy_ufunc_and_a_function_of_the_standard():
    for numpy_name, standard_name in ELEMENTWISE.items():
        assert isinstance(getattr(np, numpy_name), np.ufunc), numpy_name
        assert callable(getattr(xs, standard_name)), standard_name
    assert set(ELEMENTWISE) <= NAMES


def test_numbers_meeting_a_standard_function_take_the_arrays_dtype():
    np_ = ArrayNamespace(compat.array_namespace(xs.asarray(1.0)), None)
    values = np.array([3.0, -4.0], dtype=np.float32)
    x32 = xs.asarray(values)
    for got, want in [(np_.hypot(x32, 4.0), np.hypot(values, 4.0)),
                      (np_.hypot(4.0, x32), np.hypot(4.0, values)),
                      (np_.arctan2(x32, 1.0), np.arctan2(values, 1.0)),
                      (np_.cosh(x32), np.cosh(values))]:
        assert got.dtype == xs.float32
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert np_.sinh(0.5).dtype == xs.float64


def test_a_new_op_on_a_standard_function_needs_no_edit_of_the_namespace():
    """An op defined in one record whose NumPy form calls a function of the standard no other op
    uses, under NumPy's name for it (np.conjugate, the standard's conj), compiles and runs on this
    backend; test_ops' derived tables check it, against SymPy through its SymPy form."""
    from symgrad.ops.core import defop
    defop("conjugate_example", 1, lambda shapes: shapes[0], "np.conjugate({0})",
          lambda g, out, x: [g], scalar="{0}.conjugate()", public="conjugate_example",
          sympy="conjugate")
    try:
        x = sg.var("x", shape=("n",))
        f = sg.sum(sg.conjugate_example(x) * sg.sin(x))
        value = np.linspace(-2.0, 2.0, 7)
        got = check([f, sg.grad(f, x)], [x], [value], "strict")
        np.testing.assert_allclose(got[1], np.sin(value) + value * np.cos(value), rtol=1e-12)
        new = [case for case in op_cases() if case.op == "conjugate_example"]
        assert [case.label for case in new] == ["matrix", "batch"]
        for case in new:
            with sg.use_graph():
                test_every_op_and_its_vjp_on_both_libraries(case)
        assert "conjugate_example" in sympy_checked()
        with sg.use_graph():
            test_first_and_second_derivatives_match_sympy("conjugate_example")
            assert sg.from_sympy(sympy.conjugate(sympy.Symbol("y"))).op == "conjugate_example"
    finally:
        del sg.OPS["conjugate_example"]
        sg.PUBLIC.pop("conjugate_example", None)
    assert "conjugate_example" not in sympy_checked()


# -- random graphs -------------------------------------------------------------------------------------

settings.register_profile("array_api", max_examples=30, deadline=None, derandomize=True)


@settings(settings.get_profile("array_api"))
@given(st.data())
def test_random_graphs_give_the_numpy_backends_values_and_gradients(data):
    case = drawn_gradients_against_numpy(data, "array_api")
    if case is None:
        return          # compared where the values are ordinary numbers
    array_fn, args, want = case
    for library, convert in LIBRARIES.items():
        assert_same(computed(array_fn(*map(convert, args)), library), want, rtol=1e-9)


# -- arguments -----------------------------------------------------------------------------------------


def vector_function():
    x, W = sg.var("x", shape=("n",)), sg.var("W", shape=(2, "n"))
    return sg.compile(sg.grad(sg.sum(sg.tanh(W @ x)), [x, W]), inputs=[x, W], backend="array_api")


def test_a_wrong_shape_or_dimension_names_the_argument():
    fn = vector_function()
    with pytest.raises(sg.ShapeError, match="argument 'W' must have shape"):
        fn(strict(np.ones(3)), strict(np.ones((3, 3))))
    with pytest.raises(sg.ShapeError, match="argument 'W': dimension 'n' is 4"):
        fn(strict(np.ones(3)), strict(np.ones((2, 4))))
    with pytest.raises(sg.ShapeError, match="argument 'x' must have shape"):
        fn(chunked(np.ones((3, 1))), chunked(np.ones((2, 3))))
    with pytest.raises(sg.SymgradError, match="missing argument"):
        fn(strict(np.ones(3)))


def test_arrays_of_two_libraries_are_refused():
    fn = vector_function()
    with pytest.raises(sg.SymgradError, match="different libraries.*'x' is array_api_strict.*"
                                              "'W' is dask"):
        fn(strict(np.ones(3)), chunked(np.ones((2, 3))))
    with pytest.raises(sg.SymgradError, match="'W' is numpy"):
        fn(strict(np.ones(3)), np.ones((2, 3)))


def test_dask_arrays_of_unknown_length_are_refused_with_the_remedy():
    fn = vector_function()
    x = chunked(np.arange(-2.0, 4.0))
    unknown = x[x > 0.0]
    with pytest.raises(sg.ShapeError, match=r"argument 'x'.*compute_chunk_sizes"):
        fn(unknown, chunked(np.ones((2, 3))))
    got = computed(fn(unknown.compute_chunk_sizes(), chunked(np.ones((2, 3)))), "dask")
    assert got[0].shape == (3,)


def test_numbers_and_other_dtypes_are_converted_into_the_arguments_library():
    with sg.use_graph():
        x, v = sg.var("x"), sg.var("v", shape=(3,))
        fn = sg.compile([x * v, sg.grad(sg.sum(x * v), x)], inputs=[x, v], backend="array_api")
        got = computed(fn(2.0, xs.asarray([1, 2, 3])), "strict")       # int64 -> float64
        assert_same(got, [np.array([2.0, 4.0, 6.0]), np.array(6.0)])
        got = fn(2.0, [1.0, 2.0, 3.0])          # no array at all: NumPy's namespace
        assert isinstance(got[0], np.ndarray) and got[1] == 6.0


def test_float32_stays_float32():
    with sg.use_graph():
        x = sg.var("x", shape=(4,), dtype="float32")
        f = sg.sum(sg.sin(x) * x + sg.relu(x))
        numpy_fn, array_fn = both([f, sg.grad(f, x)], [x])
    at = np.linspace(-1.0, 1.0, 4, dtype=np.float32)
    got = computed(array_fn(xs.asarray(at)), "strict")
    assert [g.dtype for g in got] == [np.float32, np.float32]
    assert_same(got, numpy_fn(at), rtol=1e-6)


def test_without_array_api_compat_the_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(api, "BACKENDS", ("numpy",))
    with pytest.raises(sg.SymgradError, match=r"pip install -e '\.\[array-api\]' in a clone"):
        sg.compile(sg.var("x") * 2.0, backend="array_api")


def test_threads_on_different_libraries_share_one_function():
    fn = vector_function()
    rng = np.random.default_rng(8)
    points = [(rng.standard_normal(5), rng.standard_normal((2, 5))) for _ in range(4)]
    want = [sg.compile(sg.grad(sg.sum(sg.tanh(sg.var("W", shape=(2, "n")) @ sg.var("x", shape=(
        "n",)))), [sg.var("x", shape=("n",)), sg.var("W", shape=(2, "n"))]),
        inputs=[sg.var("x", shape=("n",)), sg.var("W", shape=(2, "n"))])(*p) for p in points]

    def work(k):
        library = sorted(LIBRARIES)[k % 2]
        for _ in range(3):
            result = computed(fn(*map(LIBRARIES[library], points[k])), library)
        return result

    # run_together re-raises the first error a thread met
    for got, expected in zip(run_together(work, len(points)), want):
        assert_same(got, expected)


# -- the source ----------------------------------------------------------------------------------------


def test_the_source_reads_the_namespace_it_is_given_and_nothing_in_place():
    with sg.use_graph():
        x = sg.var("x", shape=(200, 100))       # large enough for the NumPy backend's workspace
        f = sg.sum(sg.exp(x[1:] * 2.0) * x[:-1])
        fn = sg.compile([f, sg.grad(f, x)], inputs=[x], backend="array_api")
        numpy_source = sg.compile([f, sg.grad(f, x)], inputs=[x]).source
    assert "_sg_ws" in numpy_source or "out=" in numpy_source or "*=" in numpy_source
    lines = fn.source.splitlines()
    assert lines[0] == "def f(np, x):"
    assert lines[1].lstrip().startswith("# np: the arguments' array namespace")
    for text in ("out=", "_sg_ws", "+=", "*=", "-=", "/="):
        assert text not in fn.source
    assert "np.set_at(" in fn.source and "[1:, ...]" in fn.source
    assert fn._function.__globals__["__builtins__"] == {}


FULL, NEWAXIS = ("slice", None, None, None), ("newaxis",)


def test_the_array_api_syntax_writes_what_the_standard_has():
    syntax = ArrayAPISyntax()
    assert syntax.item("x", (FULL, NEWAXIS)) == "x[:, None, ...]"
    assert syntax.item("x", (Ellipsis, 0)) == "x[..., 0]"
    assert syntax.item("x", ()) == "x[...]"
    assert syntax.transpose("t0") == "np.transpose(t0)"
    assert syntax.reshape("np.eye(np.size(x))", "np.shape(x) * 2") \
        == "np.reshape(np.eye(np.size(x)), np.shape(x) * 2)"
    plus = syntax.assign_item("t3", (FULL, ("slice", 1, None, None)), "g", "+")
    assert plus == "t3 = np.set_at(t3, np.s_[:, 1:, ...], t3[:, 1:, ...] + g)"
    assert syntax.add_at("t3", (FULL, ("slice", 1, None, None)), "g", None) == [plus]
    assert syntax.item("x", (("slice", None, None, -1), 0)) == "np.get_at(x, np.s_[::-1, 0, ...])"
    assert syntax.assign_item("t4", (("slice", None, None, -1),), "g") \
        == "t4 = np.set_at(t4, np.s_[::-1, ...], g)"
    # NumPy's own, for comparison: what each of these stands for
    assert NUMPY_SYNTAX.item("x", (FULL, NEWAXIS)) == "x[:, None]"
    assert NUMPY_SYNTAX.transpose("t0") == "t0.T"
    assert NUMPY_SYNTAX.assign_item("t4", (("slice", None, None, -1),), "g") == "t4[::-1] = g"
    assert NUMPY_SYNTAX.add_at("t3", (0, 1), "g", None) == ["t3[0, 1] += g"]


def test_emitters_index_transpose_and_reshape_through_the_renderers_syntax():
    with sg.use_graph():
        x, v = sg.var("x", shape=(4, 3)), sg.var("v", shape=("n",))
        f = sg.sum(sg.sin(x[1:]) * x[:-1]) + sg.sum(x[::-1, 0] * x.T[0]) \
            + sg.sum(x[:, None] * 2.0)
        outputs = [f, sg.grad(f, x), sg.jacobian(v * 2.0, v), v.reshape(1, "n")]
        inputs = [x, v]
        array_source = sg.compile(outputs, inputs=inputs, backend="array_api").source
        numpy_source = sg.compile(outputs, inputs=inputs).source
    for line in ("= x[1:, ...]", "= x[:, None, ...]", "= np.get_at(x, np.s_[::-1, 0, ...])",
                 "= np.transpose(x)", "np.reshape(np.eye(np.size(", "dim_n = np.shape(v)[0]",
                 "np.reshape(v, (1, dim_n))",
                 ", np.s_[::-1, 0, ...], ", ", np.s_[1:, :, ...], d_out_d_x[1:, :, ...] + t"):
        assert line in array_source, line
    assert not numpy_only_syntax(array_source), array_source
    # the same emitters in NumPy's syntax: a part updated in place through a name of its own
    for line in ("= x[1:]", "= x[:, None]", "= x[::-1, 0]", "= x.T", ").reshape(np.shape(",
                 "d_out_d_x_part = t21[1:, :]", "d_out_d_x_part += t22"):
        assert line in numpy_source, line
    assert numpy_only_syntax(numpy_source)


def test_assignments_with_new_axes_and_negative_steps():
    np_ = ArrayNamespace(compat.array_namespace(xs.asarray(1.0)), None)
    for index, value in [((0, slice(None, None, -1)), np.arange(3.0)),
                         ((slice(None, None, -2), None, 1), np.arange(2.0)[:, None]),
                         ((None, slice(3, 0, -1)), np.arange(9.0).reshape(1, 3, 3)),
                         ((slice(1, None), slice(None, None, -1)), np.arange(3.0)),
                         ((None, slice(None, None, -1), 0), 7.0)]:
        want = np.zeros((4, 3))
        want[index] = value
        got = np_.set_at(xs.zeros((4, 3), dtype=xs.float64), index,
                         value if np.ndim(value) == 0 else xs.asarray(value))
        np.testing.assert_array_equal(np.asarray(got), want)
        if None not in index:
            np.testing.assert_array_equal(np.asarray(np_.get_at(xs.asarray(want), index)),
                                          want[index])


def test_the_namespace_follows_numpy_where_the_standard_differs():
    np_ = ArrayNamespace(compat.array_namespace(xs.asarray(1.0)), None)
    values = np.array([-1.0, 0.0, 2.0, np.nan])
    for at_zero in (0.5, 0.25):
        np.testing.assert_array_equal(np.asarray(np_.heaviside(xs.asarray(values), at_zero)),
                                      np.heaviside(values, at_zero))
    matrix = xs.asarray(np.arange(6.0).reshape(1, 2, 3, 1))
    assert np_.squeeze(matrix).shape == (2, 3)
    assert np_.squeeze(matrix, axis=-1).shape == (1, 2, 3)
    assert np_.expand_dims(xs.asarray(np.ones(3)), (0, -1)).shape == (1, 3, 1)
    assert np_.broadcast_shapes((3, 1), (4,)) == (3, 4)
    assert np_.add.reduce(matrix, axis=None).shape == ()
    assert float(np_.maximum.reduce(matrix, axis=(1, 2))[0, 0]) == 5.0


# -- the other libraries array-api-compat knows, where they are installed -------------------------------


def test_jax_where_installed():
    jax = pytest.importorskip("jax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)       # float64, as the NumPy backend computes
    try:
        import jax.numpy as jnp
        with sg.use_graph():
            x, v = sg.var("x", shape=(6,)), sg.var("v", shape=(6,))
            f = sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
            numpy_fn, array_fn = both([f, sg.grad(f, x), sg.hvp(f, x, v)], [x, v])
        args = [np.linspace(-1.0, 1.5, 6), np.arange(6.0)]
        got = jax.jit(array_fn)(*map(jnp.asarray, args))    # immutable arrays, traced
        assert_same([np.asarray(g) for g in got], numpy_fn(*args))
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_pytorch_where_installed():
    torch = pytest.importorskip("torch")
    with sg.use_graph():
        X, w = sg.var("X", shape=("n", 3)), sg.var("w", shape=(3,))
        # a negative step: PyTorch slices forwards only, the namespace flips
        f = sg.mean(sg.log_softmax(X * w, axis=-1)) + sg.sum(sg.relu(X[:, ::-2] @ w[1:]))
        numpy_fn, array_fn = both([f, *sg.grad(f, [X, w])], [X, w])
    args = [np.random.default_rng(9).standard_normal((5, 3)), np.array([0.5, -1.0, 2.0])]
    got = array_fn(*(torch.asarray(a) for a in args))
    assert all(isinstance(g, torch.Tensor) for g in got)
    assert_same([g.numpy() for g in got], numpy_fn(*args))


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_float32_zero_gradient_is_made_in_float32(library):
    # zeros_like of a float32 operand is np.zeros(..., dtype=np.float32), where np.float32 is
    # the namespace's scalar maker (it raised TypeError in the library's zeros)
    x = sg.var("x", shape=(3,), dtype="float32")
    outputs = [sg.grad(sg.sum(sg.stop_gradient(x) * 2.0), x, disconnected="zero"),
               sg.hvp(sg.sum(x * 3.0), x, x)]
    got = check(outputs, [x], [np.array([1.0, -2.0, 0.0], np.float32)], library)
    for gradient in got:
        assert gradient.dtype == np.float32
        np.testing.assert_array_equal(gradient, np.zeros(3, np.float32))


def test_a_users_op_in_numpys_own_syntax_is_refused_on_the_array_api():
    # symgrad's emitters write indexing through the context's syntax; a user's template is text,
    # and a short index or .T there would run unchecked on a library that has neither
    x = sg.var("x", shape=(3, 2))
    flip = sg.defop("transposed_example", 1, lambda shapes: shapes[0][::-1], "{0}.T",
                    vjp=lambda g, out, x: [sg.transpose(g)])
    try:
        y = flip(x)
        assert np.array_equal(sg.compile(y, inputs=[x])(np.ones((3, 2))), np.ones((2, 3)))
        with pytest.raises(sg.SymgradError,
                           match=r"op 'transposed_example' writes 'x\.T' in NumPy's own syntax"):
            sg.compile(y, inputs=[x], backend="array_api")
        through_context = sg.defop("transposed_example_2", 1, lambda shapes: shapes[0][::-1],
                                   lambda ctx: ctx.transpose(ctx.args[0]),
                                   vjp=lambda g, out, x: [sg.transpose(g)])
        fn = sg.compile(through_context(x), inputs=[x], backend="array_api")
        assert np.array_equal(np.asarray(fn(xs.asarray(np.ones((3, 2))))), np.ones((2, 3)))
    finally:
        sg.OPS.pop("transposed_example", None)
        sg.OPS.pop("transposed_example_2", None)


def test_a_floating_copy_of_a_mask_is_released_with_the_mask():
    # the standard has no promotion between kinds, so a mask in arithmetic gets a floating copy;
    # the copy is read only where the mask is, and dies with it
    x, y = sg.var("x_masked", shape=(4,)), sg.var("y_masked", shape=(4,))
    m = x > 0.0
    fn = sg.compile(sg.sum(sg.exp(m * y) * (m * x)), inputs=[x, y], backend="array_api")
    copy = next(line.split(" = ")[0].strip() for line in fn.source.splitlines()
                if "= np.float64(" in line)
    released = [line for line in fn.source.splitlines() if line.strip().startswith("del ")
                and copy in line.split()]
    assert released, fn.source
    at_x, at_y = np.array([1.0, -2.0, 0.5, 0.0]), np.array([0.3, 0.1, -0.2, 2.0])
    want = np.sum(np.exp((at_x > 0) * at_y) * ((at_x > 0) * at_x))
    assert float(np.asarray(fn(strict(at_x), strict(at_y)))) == pytest.approx(want, rel=1e-15)
