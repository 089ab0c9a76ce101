"""The float32 contract, end to end: a graph of float32 variables computes in float32 on every
backend (NumPy with and without the optimiser, Numba, the array API on NumPy, array-api-strict
and Dask), its values, gradients and Hessian-vector products alike; every output has the dtype
the graph gives it, and the values are the float64 computation's within float32 rounding.

The programs are every case of tests/test_ops.py (so a new op is covered here too) plus a few
composites that create arrays and numbers of their own (masks, zeros under slices, seeds).
"""

import numpy as np
import pytest

import symgrad as sg
from symgrad import api
from test_ops import CASES, NAMES, array_api_refuses, build, concrete, sample

compat = pytest.importorskip("array_api_compat")
xs = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

RTOL = 2e-4         # float32 rounding, grown through a few ops and a second derivative


def _strict(a):
    return xs.asarray(a)


def _chunked(a):
    return da.from_array(a, chunks=tuple(max(1, (d + 1) // 2) for d in a.shape))


# backend name -> (compile keywords, the arguments' conversion into the library)
BACKENDS = {
    "numpy": ({}, None),
    "numpy-unoptimized": ({"optimize": False}, None),
    "array_api-numpy": ({"backend": "array_api"}, None),
    "array_api-strict": ({"backend": "array_api"}, _strict),
    "array_api-dask": ({"backend": "array_api"}, _chunked),
}
if "numba" in api.BACKENDS:
    BACKENDS["numba"] = ({"backend": "numba"}, None)


STRICT_DTYPES = {xs.float32: np.dtype("float32"), xs.float64: np.dtype("float64"),
                 xs.bool: np.dtype("bool"), xs.int64: np.dtype("int64")}


def _as_numpy(result):
    """(result as NumPy, the dtype it has in its own library, as NumPy's)."""
    if isinstance(result, da.Array):
        (result,) = dask.compute(result)
    if compat.is_array_api_strict_namespace(compat.array_namespace(result)):
        return np.asarray(result), STRICT_DTYPES[result.dtype]
    result = np.asarray(result) if not isinstance(result, np.generic) else result
    return result, result.dtype


def _program(build_outputs, shapes, dtype):
    """(inputs, outputs) of ``build_outputs`` on variables of ``shapes`` and ``dtype``, in a graph
    of its own."""
    with sg.use_graph():
        inputs = [sg.var(name, shape=shape, dtype=dtype) for name, shape in zip(NAMES, shapes)]
        return build_outputs(*inputs)


def _with_derivatives(case):
    """The case's value, and where a gradient flows, the gradient and the Hessian-vector
    product of <value, u> with respect to every differentiable operand (u and the directions
    are further inputs, after the case's)."""
    def build_outputs(*inputs):
        inputs, out = list(inputs), case.build(*inputs)
        if out.dtype == "bool" or not case.differentiable:
            return inputs, [out]
        dtype = inputs[0].dtype
        u = sg.var("u", shape=out.shape, dtype=dtype)
        wrts = [inputs[i] for i in case.differentiable]
        directions = [sg.var(f"v{i}", shape=w.shape, dtype=dtype) for i, w in enumerate(wrts)]
        inputs += [u, *directions]
        f = sg.sum(out * u)
        return inputs, [out, *sg.grad(f, wrts), *sg.hvp(f, wrts, directions)]
    return build_outputs


class Program:
    """Outputs built on variables of ``shapes`` (and further ones the build makes), with the
    arguments to call them at."""

    def __init__(self, label, build_outputs, shapes, arrays, array_api=True, dask=True):
        self.label, self.build_outputs, self.shapes = label, build_outputs, shapes
        self.array_api = array_api      # False: the array-API backend refuses it (SciPy's)
        self.dask = dask                # False: it refuses Dask's arrays (a factorisation)
        self.arrays = [np.asarray(a, dtype=np.float32) for a in arrays]

    def compiled(self, dtype, **keywords):
        inputs, outputs = _program(self.build_outputs, self.shapes, dtype)
        return sg.compile(outputs, inputs=inputs, **keywords), outputs, inputs


def _case_program(case):
    arrays, rng = sample(case)
    with sg.use_graph():
        _, out = build(case)
    extra = []
    if out.dtype != "bool" and case.differentiable:
        extra = [rng.standard_normal(concrete(out.shape))]
        extra += [rng.standard_normal(arrays[i].shape) for i in case.differentiable]
    return Program(case.id, _with_derivatives(case), case.shapes, arrays + extra,
                   array_api=not array_api_refuses(case))


def _first_and_second(f):
    """A scalar function of one vector x -> [f, grad, hvp along the variable v]."""
    def build_outputs(x):
        v = sg.var("v", shape=x.shape, dtype=x.dtype)
        value = f(x)
        return [x, v], [value, sg.grad(value, x), sg.hvp(value, x, v, disconnected="zero")]
    return build_outputs


_X = np.array([0.5, -1.25, 2.0, -0.75, 1.5])
_V = np.array([1.0, -0.5, 0.25, 2.0, -1.0])

# composites whose derivatives create arrays and numbers of their own: masks of where and of
# max, zeros under a slice, seeds of sums and means, Python numbers meeting float32 values
COMPOSITES = [
    Program("where-mask", _first_and_second(lambda x: sg.sum(sg.where(x > 0, x, 2 * x))),
            [(5,)], [_X, _V]),
    Program("neighbour-products", _first_and_second(lambda x: sg.sum(x[1:] * x[:-1])),
            [(5,)], [_X, _V]),
    Program("constant-bases", _first_and_second(
        lambda x: sg.sum(sg.const(2.0) ** x + sg.const(0.0) ** sg.exp(x))), [(5,)], [_X, _V]),
    Program("times-one", _first_and_second(lambda x: sg.sum(x * 1.0) + sg.sum(1.0 * x ** 2)),
            [(5,)], [_X, _V]),
    Program("python-numbers", _first_and_second(
        lambda x: sg.sum(3.0 - x / 2.0 + 0.1 * x ** 3.0 + 2.0 ** sg.tanh(x))), [(5,)], [_X, _V]),
    Program("relu-max-mean", _first_and_second(
        lambda x: sg.max(sg.relu(x)) + sg.mean(abs(x)) + sg.logsumexp(x)), [(5,)], [_X, _V]),
    Program("clip-minimum", _first_and_second(
        lambda x: sg.sum(sg.clip(x, -1.0, 1.0) * sg.minimum(x, 0.3))), [(5,)], [_X, _V]),
    Program("rosenbrock", _first_and_second(
        lambda x: sg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)),
        [(5,)], [_X, _V]),
    Program("named-dimension", _first_and_second(
        lambda x: sg.sum(sg.softmax(x) * x) + sg.mean(x * 3.0) + sg.max(x[::-1])), [("n",)], [_X, _V]),
    Program("scalar", lambda x: ([x], [x * 1.0, 2.0 * x, x ** 2, sg.grad(sg.sin(x) * 3.0, x),
                                  sg.grad(sg.grad(x ** 3.0, x), x)]), [()], [np.float32(0.7)]),
    # a dense Hessian in a matrix: the identity op is its seed, made in float32 in parts
    Program("grid-hessian", lambda u: ([u], [sg.hessian(
        sg.sum((u[1:] - u[:-1]) ** 2) - 1.5 * sg.sum(sg.exp(u) * u[::-1]), u)]),
        [(3, 4)], [np.arange(12.0).reshape(3, 4) / 12.0]),
]

PROGRAMS = [_case_program(case) for case in CASES] + COMPOSITES


def dtype_mismatches(program, backend):
    """The outputs of ``program`` compiled for ``backend`` whose computed dtype is not the one
    its graph gives it, or whose graph gives a float64 to a float32 computation: a list of
    (output position, graph dtype, computed dtype)."""
    skip_refused(program, backend)
    keywords, convert = BACKENDS[backend]
    fn, outputs, _ = program.compiled("float32", **keywords)
    arrays = program.arrays if convert is None else [convert(a) for a in program.arrays]
    with np.errstate(all="ignore"):
        results = fn(*arrays)
    results = results if isinstance(results, tuple) else (results,)
    mismatches = []
    for position, (output, result) in enumerate(zip(outputs, results)):
        _, dtype = _as_numpy(result)
        if output.dtype not in ("float32", "bool", "int64") or dtype != np.dtype(output.dtype):
            mismatches.append((position, output.dtype, str(dtype)))
    return mismatches


def skip_refused(program, backend):
    if backend.startswith("array_api") and not program.array_api:
        pytest.skip("the array-API backend refuses SciPy's functions (tests/test_array_api.py)")
    if backend == "array_api-dask" and "np.linalg." in program.compiled("float64")[0].source:
        pytest.skip("Dask's linalg solves single matrices only: refused (tests/test_array_api.py)")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.label for p in PROGRAMS])
def test_float32_programs_compute_in_float32(program, backend):
    assert dtype_mismatches(program, backend) == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.label for p in PROGRAMS])
def test_float32_values_are_the_float64_values_rounded(program, backend):
    skip_refused(program, backend)
    keywords, convert = BACKENDS[backend]
    fn, _, _ = program.compiled("float32", **keywords)
    reference, _, _ = program.compiled("float64")
    arrays = program.arrays if convert is None else [convert(a) for a in program.arrays]
    with np.errstate(all="ignore"):
        got = fn(*arrays)
        want = reference(*(a.astype(np.float64) for a in program.arrays))
    got, want = (r if isinstance(r, tuple) else (r,) for r in (got, want))
    for position, (g, w) in enumerate(zip(got, want)):
        g, _ = _as_numpy(g)
        w = np.asarray(w)
        scale = 1.0 + (np.abs(w).max() if w.size and w.dtype != bool else 0.0)
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * scale,
                                   err_msg=f"output {position}")


def test_every_op_and_backend_is_covered():
    assert {case.op for case in CASES} >= set(sg.OPS) - {"var", "const", "custom_gradient",
                                                          "csr_matrix", "identity"}
    assert "grid-hessian" in {program.label for program in COMPOSITES}   # covers identity
    assert set(BACKENDS) >= {"numpy", "numpy-unoptimized", "array_api-numpy", "array_api-strict",
                             "array_api-dask"}


def test_a_number_takes_the_dtype_of_the_arrays_it_meets():
    # NEP 50: a Python number (a 0-d constant, written as one) is weak, an array is not; the
    # graph says what NumPy computes
    x = sg.var("x", shape=(3,), dtype="float32")
    c = sg.var("c", shape=(3,))
    y = sg.var("y", dtype="float32")
    cases = [(sg.grad(y / sg.exp(sg.const(0.5)), y), "float32"),   # the float32 seed over a number
             (x * 1.5, "float32"), (x * sg.const(np.float64(1.5)), "float32"),
             (x * sg.const(np.full(1, 1.5)), "float64"), (x * c, "float64"),
             (sg.where(x > 0.0, 1.5, 0.5), "float64"), (sg.where(c > 0.0, x, 0.5), "float32"),
             (sg.where(x > 0.0, sg.const(np.float32(1.5)), 0.5), "float32")]
    at = [np.array([1.0, -2.0, 0.5], np.float32), np.ones(3), np.float32(2.0)]
    for optimize in (True, False):
        got = sg.compile([e for e, _ in cases], inputs=[x, c, y], optimize=optimize)(*at)
        for (e, dtype), value in zip(cases, got):
            assert e.dtype == dtype and value.dtype == dtype, (str(e), optimize)
