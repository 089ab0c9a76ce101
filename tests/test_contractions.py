"""einsum and the contractions built on it (ops.linalg): a single-head attention block written
with einsum, differentiated and compiled on every backend against the same function on arrays
and central differences; the contraction order the emitted code follows; derivatives of a
contraction to third order against closed forms; NumPy's semantics where symgrad's names could
mislead (dot against matmul, inner against the vdot op); and the errors.

Each op's values and first and second derivatives are checked by tests/test_ops.py
(CONTRACTIONS_MORE).
"""

import types

import numpy as np
import pytest

import symgrad as sg
from symgrad.ops import apply

EPS = 1e-6


def _numpy_softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# The same attention block runs on arrays (NumPy) and on expressions (symgrad): its functions
# come from a namespace, NumPy's own or symgrad's, with NumPy's names and signatures.
NUMPY = types.SimpleNamespace(einsum=np.einsum, softmax=_numpy_softmax, sum=np.sum, tanh=np.tanh)
SYMGRAD = types.SimpleNamespace(einsum=sg.einsum, softmax=sg.softmax, sum=sg.sum, tanh=sg.tanh)


def attention_loss(xp, x, wq, wk, wv, target):
    """A single-head attention block over a batch of sequences x (b, t, d), and a squared
    error against target (b, t, e): written once, as one would in NumPy."""
    q = xp.einsum("btd,de->bte", x, wq)
    k = xp.einsum("btd,de->bte", x, wk)
    v = xp.einsum("btd,de->bte", x, wv)
    scores = xp.einsum("bqe,bke->bqk", q, k) / np.sqrt(wq.shape[-1])
    weights = xp.softmax(scores, axis=-1)
    out = xp.einsum("bqk,bke->bqe", weights, v)
    return xp.sum((xp.tanh(out) - target) ** 2)


SHAPES = {"x": (2, 4, 3), "wq": (3, 5), "wk": (3, 5), "wv": (3, 5), "target": (2, 4, 5)}


def _attention_point(seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) * 0.7 for name, shape in SHAPES.items()}


def _central_gradient(f, point, name):
    gradient = np.zeros(point[name].shape)
    for index in np.ndindex(gradient.shape):
        plus = {k: v.copy() for k, v in point.items()}
        minus = {k: v.copy() for k, v in point.items()}
        plus[name][index] += EPS
        minus[name][index] -= EPS
        gradient[index] = (f(**plus) - f(**minus)) / (2 * EPS)
    return gradient


def _backends():
    return [b for b in ("numpy", "numba", "array_api") if b in sg.api.BACKENDS]


@pytest.mark.parametrize("backend", _backends())
def test_attention_block_written_with_einsum_matches_numpy_and_differences(backend):
    point = _attention_point()
    wrt = ["x", "wq", "wk", "wv"]
    with sg.use_graph():
        variables = {name: sg.var(name, shape=shape) for name, shape in SHAPES.items()}
        loss = attention_loss(SYMGRAD, **variables)
        inputs = list(variables.values())
        fn = sg.compile([loss, *sg.grad(loss, [variables[n] for n in wrt])], inputs=inputs,
                        backend=backend)
        value, *gradients = fn(*point.values())
    on_arrays = lambda **arrays: attention_loss(NUMPY, **arrays)     # noqa: E731
    np.testing.assert_allclose(float(value), on_arrays(**point), rtol=1e-12)
    for name, gradient in zip(wrt, gradients):
        np.testing.assert_allclose(np.asarray(gradient), _central_gradient(on_arrays, point, name),
                                   rtol=1e-6, atol=1e-7, err_msg=name)


def test_attention_block_hessian_vector_product_matches_differences_of_the_gradient():
    point = _attention_point(1)
    direction = np.random.default_rng(2).standard_normal(SHAPES["wq"])
    with sg.use_graph():
        variables = {name: sg.var(name, shape=shape) for name, shape in SHAPES.items()}
        loss = attention_loss(SYMGRAD, **variables)
        v = sg.var("v", shape=SHAPES["wq"])
        inputs = list(variables.values())
        gradient = sg.compile(sg.grad(loss, variables["x"]), inputs=inputs)
        product = sg.compile(sg.hvp(loss, [variables["x"], variables["wq"]],
                                    [sg.const(np.zeros(SHAPES["x"])), v]), inputs=[*inputs, v])
    got_x, got_wq = product(*point.values(), direction)
    plus = {**point, "wq": point["wq"] + EPS * direction}
    minus = {**point, "wq": point["wq"] - EPS * direction}
    expected = (gradient(*plus.values()) - gradient(*minus.values())) / (2 * EPS)
    np.testing.assert_allclose(got_x, expected, rtol=1e-6, atol=1e-7)


# -- the emitted contraction ---------------------------------------------------------------------------


def test_a_batched_attention_score_is_one_matrix_product():
    with sg.use_graph():
        q, k = sg.var("q", shape=("b", 5, 8)), sg.var("k", shape=("b", 7, 8))
        source = sg.compile(sg.einsum("bqd,bkd->bqk", q, k), inputs=[q, k]).source
    assert "q @ np.transpose(k, (0, 2, 1))" in source
    assert "einsum" not in source


@pytest.mark.parametrize("shapes, first", [
    (((50, 40), (40, 30), (30, 2)), "b @ c"),       # the narrow end first: 40*30*2 + 50*40*2
    (((2, 30), (30, 40), (40, 50)), "a @ b"),
])
def test_a_chain_is_contracted_in_the_cheap_order(shapes, first):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    with sg.use_graph():
        a, b, c = (sg.var(name, shape=s) for name, s in zip("abc", shapes))
        fn = sg.compile(sg.einsum("ij,jk,kl->il", a, b, c), inputs=[a, b, c])
    assert f"= {first}\n" in fn.source, fn.source
    assert "einsum" not in fn.source
    np.testing.assert_allclose(fn(*arrays), arrays[0] @ arrays[1] @ arrays[2], rtol=1e-12)


def test_a_pair_that_is_no_matrix_product_calls_np_einsum():
    with sg.use_graph():
        a, b = sg.var("a", shape=(3, 3, 2)), sg.var("b", shape=(2, 4))
        source = sg.compile(sg.einsum("iij,jk->ik", a, b), inputs=[a, b]).source
    assert "np.einsum('iij,jk->ik', a, b)" in source


@pytest.mark.parametrize("backend", _backends())
def test_einsum_with_diagonals_ellipsis_and_summed_letters_on_every_backend(backend):
    rng = np.random.default_rng(3)
    a, b, c = rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    with sg.use_graph():
        x, y, z = sg.var("x", shape=(2, 3, 3)), sg.var("y", shape=(3, 4)), sg.var("z", shape=(4,))
        outputs = [sg.einsum("...ii->...i", x), sg.einsum("nij,jk,k->n", x, y, z),
                   sg.einsum("ij->", y), sg.einsum("nii", x)]
        fn = sg.compile([*outputs, *sg.grad(sg.sum(outputs[1] ** 2), [x, y, z])],
                        inputs=[x, y, z], backend=backend)
    got = [np.asarray(r) for r in fn(a, b, c)]
    for result, expected in zip(got, [np.einsum("...ii->...i", a), np.einsum("nij,jk,k->n", a, b, c),
                                      np.einsum("ij->", b), np.einsum("nii", a)]):
        np.testing.assert_allclose(result, expected, rtol=1e-12)
    r = np.einsum("nij,jk,k->n", a, b, c)
    np.testing.assert_allclose(got[4], np.broadcast_to(2 * np.einsum("n,jk,k->nj", r, b, c)[:, None],
                                                       a.shape), rtol=1e-12)
    np.testing.assert_allclose(got[5], 2 * np.einsum("n,nij,k->jk", r, a, c), rtol=1e-12)
    np.testing.assert_allclose(got[6], 2 * np.einsum("n,nij,jk->k", r, a, b), rtol=1e-12)


# -- derivatives to any order -------------------------------------------------------------------------


def test_the_trace_of_a_cube_differentiates_to_third_order():
    """tr(A^3): gradient 3 (A^2)^T, Hessian along V 3 (AV + VA)^T, third derivative along V, W
    3 (VW + WV)^T, a constant."""
    rng = np.random.default_rng(4)
    a, v, w = (rng.standard_normal((3, 3)) for _ in range(3))
    with sg.use_graph():
        A, V, W = (sg.var(n, shape=(3, 3)) for n in "AVW")
        f = sg.einsum("ij,jk,ki", A, A, A)
        gradient = sg.grad(f, A)
        along_v = sg.sum(gradient * V)
        hessian_v = sg.grad(along_v, A)
        third = sg.grad(sg.sum(hessian_v * W), A)
        fn = sg.compile([f, gradient, hessian_v, third], inputs=[A, V, W])
    value, g, h, t = fn(a, v, w)
    np.testing.assert_allclose(value, np.trace(a @ a @ a), rtol=1e-12)
    np.testing.assert_allclose(g, 3 * (a @ a).T, rtol=1e-12)
    np.testing.assert_allclose(h, 3 * (a @ v + v @ a).T, rtol=1e-12)
    np.testing.assert_allclose(t, 3 * (v @ w + w @ v).T, rtol=1e-12)


def test_a_diagonal_and_a_trace_spread_their_cotangent_on_the_diagonal():
    with sg.use_graph():
        A = sg.var("A", shape=("n", "n"))
        u = sg.var("u", shape=("n",))
        fn = sg.compile([sg.vjp(sg.einsum("ii->i", A), A, u), sg.grad(sg.einsum("ii", A), A)],
                        inputs=[A, u])
    spread, eye = fn(np.ones((4, 4)), np.arange(4.0))
    np.testing.assert_array_equal(spread, np.diag(np.arange(4.0)))
    np.testing.assert_array_equal(eye, np.eye(4))


# -- NumPy's semantics ---------------------------------------------------------------------------------


def test_dot_and_matmul_follow_their_own_rules_for_stacks():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    with sg.use_graph():
        x, y = sg.var("x", shape=a.shape), sg.var("y", shape=b.shape)
        assert sg.dot(x, y).shape == np.dot(a, b).shape == (2, 3, 2, 5)
        assert (x @ y).shape == np.matmul(a, b).shape == (2, 3, 5)
        got_dot, got_matmul = sg.compile([sg.dot(x, y), x @ y], inputs=[x, y])(a, b)
    np.testing.assert_allclose(got_dot, np.dot(a, b), rtol=1e-12)
    np.testing.assert_allclose(got_matmul, a @ b, rtol=1e-12)


def test_public_inner_is_numpys_and_the_vdot_op_is_unchanged():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    with sg.use_graph():
        x, y = sg.var("x", shape=(2, 3)), sg.var("y", shape=(4, 3))
        numpys = sg.inner(x, y)
        vdot = apply("inner", x, x)
        assert numpys.shape == (2, 4) and vdot.shape == ()
        got, full = sg.compile([numpys, vdot], inputs=[x, y])(a, b)
    np.testing.assert_allclose(got, np.inner(a, b), rtol=1e-12)
    np.testing.assert_allclose(full, np.vdot(a, a), rtol=1e-12)


def test_implicit_output_is_in_ascii_order_and_sublists_are_accepted():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((2, 3))
    with sg.use_graph():
        x = sg.var("x", shape=(2, 3))
        implicit = sg.einsum("bA", x)
        interleaved = sg.einsum(x, [1, 0])
        assert implicit.shape == np.einsum("bA", a).shape == (3, 2)
        got = sg.compile([implicit, interleaved], inputs=[x])(a)
    np.testing.assert_array_equal(got[0], np.einsum("bA", a))
    np.testing.assert_array_equal(got[1], np.einsum(a, [1, 0]))


def test_numbers_and_arrays_are_operands_too():
    with sg.use_graph():
        x = sg.var("x", shape=(3,))
        fn = sg.compile(sg.einsum("i,ij->j", x, np.eye(3)[:, :2]), inputs=[x])
    np.testing.assert_array_equal(fn(np.array([1.0, 2.0, 3.0])), [1.0, 2.0])


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda a, b: sg.einsum("ij,jk->ik", a, b), "subscript 'j' has lengths 4 and 5"),
    (lambda a, b: sg.einsum("ij,jk->iq", a, b), "output subscript 'q' names no operand"),
    (lambda a, b: sg.einsum("ijk", a), "operand 0 has 2 dimensions"),
    (lambda a, b: sg.einsum("ij->ii", a), "repeat a letter"),
    (lambda a, b: sg.einsum("ij,jk", a), "name 2 operands, 1 given"),
    (lambda a, b: sg.einsum("i1", a), "'1' is not a letter"),
    (lambda a, b: sg.einsum("...i,...i->i", sg.var("c", shape=(2, 3)), sg.var("d", shape=(2, 3))),
     "no '...'"),
    (lambda a, b: sg.tensordot(a, b, 1), "contracted axes differ in length: 4 vs 5"),
    (lambda a, b: sg.cross(a[:, :2], a[:, :2]), "cross takes 3-vectors"),
    (lambda a, b: sg.kron(sg.var("m", shape=("n",)), sg.var("p", shape=(2,))),
     "lengths n and 2 cannot be named"),
])
def test_a_bad_contraction_is_refused_and_leaves_the_graph_unchanged(build, message):
    with sg.use_graph() as graph:
        a, b = sg.var("a", shape=(3, 4)), sg.var("b", shape=(5, 2))
        sg.var("c", shape=(2, 3)), sg.var("d", shape=(2, 3))
        sg.var("m", shape=("n",)), sg.var("p", shape=(2,))
        a[:, :2]
        before = graph.number_of_nodes()
        with pytest.raises(sg.ShapeError, match=message):
            build(a, b)
        assert graph.number_of_nodes() == before


def test_numpys_optimize_argument_is_accepted():
    with sg.use_graph():
        a, b = sg.var("a", shape=(2, 3)), sg.var("b", shape=(3, 4))
        assert sg.einsum("ij,jk->ik", a, b, optimize=True).node \
            == sg.einsum("ij,jk->ik", a, b).node


def test_an_einsum_that_only_permutes_is_a_view_that_codegen_never_writes_into():
    # np.einsum("ji->ij", u) is a view of u: updating it in place (abs's derivative times it)
    # wrote into the caller's cotangent, and the vjp came back with the signs of another call
    rng = np.random.default_rng(0)
    with sg.use_graph():
        x = sg.var("x0", shape=(2, 3))
        for subscripts in ("ij->ji", "ii->i"):
            operand = x if subscripts == "ij->ji" else sg.var("S", shape=(3, 3))
            y = sg.einsum(subscripts, abs(operand))
            u = sg.var(f"u{len(subscripts)}", shape=y.shape)
            fn = sg.compile([sg.jacobian(y, operand), sg.vjp(y, operand, u)],
                            inputs=[operand, u])
            at, cotangent = rng.normal(size=operand.shape), rng.normal(size=y.shape)
            kept = cotangent.copy()
            jacobian, vjp = fn(at, cotangent)
            np.testing.assert_array_equal(cotangent, kept)      # the argument is untouched
            np.testing.assert_allclose(
                vjp.ravel(), kept.ravel() @ jacobian.reshape(kept.size, at.size), rtol=1e-12)
