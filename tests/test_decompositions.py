"""The decompositions (symgrad/ops/decompositions.py): eigh, eigvalsh, svd, svdvals, qr, expm and
the matrix norms of singular values. Values against NumPy and SciPy on every backend, batched;
derivatives against closed forms from the literature and SciPy's Fréchet derivative; the
symmetric convention of eigh's gradient; the conditions (repeated eigenvalues, full matrices).
The table-driven checks against central differences are in tests/test_ops.py
(DECOMPOSITIONS_MORE)."""

import numpy as np
import pytest
import scipy.linalg

import symgrad as sg
import symgrad.scipy.linalg

xs = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")

RNG = np.random.default_rng(19)
A_BATCH = RNG.standard_normal((2, 4, 3))
S_BATCH = RNG.standard_normal((2, 3, 3))


def factors(A, S):
    """Every public decomposition of the variables A (tall) and S (square)."""
    return [*sg.svd(A, full_matrices=False), *sg.qr(A), *sg.qr(sg.swapaxes(A, -1, -2)),
            *sg.eigh(S), *sg.eigh(S, UPLO="U"), sg.eigvalsh(S), sg.svdvals(A),
            sg.norm(S, 2, axis=(-2, -1)), sg.norm(A, -2, axis=(-1, -2)),
            sg.norm(S, "nuc", axis=(-2, -1))]


def numpy_factors(a, s):
    return [*np.linalg.svd(a, full_matrices=False), *np.linalg.qr(a),
            *np.linalg.qr(np.swapaxes(a, -1, -2)), *np.linalg.eigh(s),
            *np.linalg.eigh(s, UPLO="U"), np.linalg.eigvalsh(s), np.linalg.svdvals(a),
            np.linalg.norm(s, 2, axis=(-2, -1)), np.linalg.norm(a, -2, axis=(-1, -2)),
            np.linalg.norm(s, "nuc", axis=(-2, -1))]


@pytest.mark.parametrize("backend", ["numpy", "numba", "array_api"])
def test_values_are_numpys_on_every_backend(backend):
    with sg.use_graph():
        A, S = sg.var("A", shape=("b", 4, 3)), sg.var("S", shape=("b", 3, 3))
        fn = sg.compile(factors(A, S), inputs=[A, S], backend=backend)
    args = (A_BATCH, S_BATCH) if backend != "array_api" else (xs.asarray(A_BATCH),
                                                             xs.asarray(S_BATCH))
    for position, (got, want) in enumerate(zip(fn(*args), numpy_factors(A_BATCH, S_BATCH))):
        got = np.asarray(got)
        if backend == "array_api" and position == 10:
            # eigh(UPLO="U") there factors the triangle mirrored, which LAPACK may sign otherwise
            got, want = np.abs(got), np.abs(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_expm_is_scipys_and_its_derivative_the_frechet_derivative():
    a = 0.5 * RNG.standard_normal((2, 3, 3))
    direction = RNG.standard_normal((2, 3, 3))
    weights = RNG.standard_normal((2, 3, 3))
    with sg.use_graph():
        A, E = sg.var("A", shape=(2, 3, 3)), sg.var("E", shape=(2, 3, 3))
        f = sg.sum(sg.scipy.linalg.expm(A) * weights)
        value, gradient, tangent = sg.compile(
            [sg.scipy.linalg.expm(A), sg.grad(f, A), sg.jvp(sg.scipy.linalg.expm(A), A, E)],
            inputs=[A, E])(a, direction)
    np.testing.assert_allclose(value, scipy.linalg.expm(a), rtol=1e-13)
    for k in range(2):
        frechet = scipy.linalg.expm_frechet(a[k], direction[k], compute_expm=False)
        np.testing.assert_allclose(tangent[k], frechet, rtol=1e-12, atol=1e-13)
        # <∇f, E> = <weights, L(A, E)>
        np.testing.assert_allclose(np.sum(gradient[k] * direction[k]),
                                   np.sum(weights[k] * frechet), rtol=1e-12)


def test_expm_is_refused_by_the_array_api_backend_naming_it():
    with sg.use_graph():
        A = sg.var("A", shape=(3, 3))
        with pytest.raises(sg.SymgradError, match="op 'expm'"):
            sg.compile(sg.expm(A), inputs=[A], backend="array_api")


def test_dask_is_refused_naming_the_op():
    with sg.use_graph():
        A = sg.var("A", shape=(3, 3))
        fn = sg.compile(sg.svdvals(A), inputs=[A], backend="array_api")
    with pytest.raises(sg.SymgradError, match="no linalg.svdvals .* op 'svdvals'"):
        fn(da.from_array(np.eye(3), chunks=2))


# -- eigh: the symmetric convention and repeated eigenvalues -----------------------------------------


def symmetric_matrix(eigenvalues, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return (q * eigenvalues) @ q.T


def test_eighs_gradient_is_the_symmetric_one_of_jax_and_pytorch():
    """The gradient of the largest eigenvalue is v vᵀ (symmetric), for either triangle read;
    the derivative along one triangle alone is then its pairing with that gradient, which a
    central difference of NumPy's eigh (that reads the triangle) confirms."""
    a = symmetric_matrix([1.0, 2.5, 4.0])
    for uplo in ("L", "U"):
        with sg.use_graph():
            A = sg.var("A", shape=(3, 3))
            gradient = sg.compile(sg.grad(sg.eigvalsh(A, UPLO=uplo)[-1], A), inputs=[A])(a)
        top = np.linalg.eigh(a)[1][:, -1]
        np.testing.assert_allclose(gradient, np.outer(top, top), rtol=1e-12, atol=1e-14)
        assert np.array_equal(gradient, gradient.T)
        triangle = np.tril(np.ones((3, 3))) if uplo == "L" else np.triu(np.ones((3, 3)))
        step = 1e-6 * RNG.standard_normal((3, 3)) * triangle
        difference = (np.linalg.eigvalsh(a + step, UPLO=uplo)[-1]
                      - np.linalg.eigvalsh(a - step, UPLO=uplo)[-1]) / 2
        symmetric_step = step + np.tril(step, -1).T if uplo == "L" else step + np.triu(step, 1).T
        np.testing.assert_allclose(np.sum(gradient * symmetric_step), difference, rtol=1e-6)


def test_eigenvalue_gradients_are_exact_at_repeated_eigenvalues():
    """The eigenvalues' derivative exists everywhere: V diag(w̄) Vᵀ, exactly, at the identity
    too (the eigenvectors' terms meet a zero cotangent, which is never divided)."""
    with sg.use_graph():
        A = sg.var("A", shape=(3, 3))
        f = sg.sum(sg.eigvalsh(A) ** 2)         # ‖A‖_F² for symmetric A: gradient 2A
        fn = sg.compile(sg.grad(f, A), inputs=[A])
    for a in (np.eye(3), np.diag([2.0, 2.0, -1.0]), symmetric_matrix([1.0, 1.0, 3.0])):
        np.testing.assert_allclose(fn(a), 2 * a, atol=1e-12)


SPECTRAL_WEIGHTS = symmetric_matrix([1.0, -2.0, 0.5], seed=4)
SPECTRAL_DIRECTION = symmetric_matrix([0.3, -1.0, 2.0], seed=5)


def spectral_gradient(a):
    """The gradient of <C, V exp(w) Vᵀ> through eigh, and the derivative along a direction
    that SciPy's Fréchet derivative of expm gives (an independent reference)."""
    with sg.use_graph():
        A = sg.var("A", shape=(3, 3))
        w, v = sg.eigh(A)
        f = sg.sum(((v * sg.exp(w)[None, :]) @ v.T) * SPECTRAL_WEIGHTS)
        gradient = sg.compile(sg.grad(f, A), inputs=[A])(a)
    frechet = scipy.linalg.expm_frechet(a, SPECTRAL_DIRECTION, compute_expm=False)
    return np.sum(gradient * SPECTRAL_DIRECTION), np.sum(SPECTRAL_WEIGHTS * frechet)


def test_eigenvector_gradients_near_a_tie_are_right_and_at_a_tie_not_finite():
    """Near a repeated eigenvalue the rule divides small by small and stays right; at an exact
    tie it cannot give the derivative: inf or nan, as JAX, and NumPy warns, never a wrong
    finite number (a zero there would be the wrong derivative of this smooth function)."""
    got, expected = spectral_gradient(symmetric_matrix([0.5, 0.5 + 1e-5, 1.5], seed=3))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.warns(RuntimeWarning, match="divide"), np.errstate(invalid="ignore"):
        got, _ = spectral_gradient(np.diag([0.5, 0.5, 1.5]))
    assert not np.isfinite(got)


# -- svd and the norms: closed forms ------------------------------------------------------------------


def test_norm_gradients_are_their_closed_forms():
    """∇‖A‖_* = U Vh, ∇‖A‖_2 = u₁ v₁ᵀ and ∇‖A‖_-2 = u_k v_kᵀ (distinct singular values)."""
    a = RNG.standard_normal((5, 3))
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    with sg.use_graph():
        A = sg.var("A", shape=(5, 3))
        got = sg.compile([sg.grad(np.linalg.norm(A, order), A) for order in ("nuc", 2, -2)],
                         inputs=[A])(a)
    for gradient, expected in zip(got, [u @ vh, np.outer(u[:, 0], vh[0]),
                                        np.outer(u[:, -1], vh[-1])]):
        np.testing.assert_allclose(gradient, expected, rtol=1e-10, atol=1e-12)


def test_singular_value_gradients_are_finite_for_a_rank_deficient_rectangular_matrix():
    a = np.outer(np.arange(1.0, 5.0), [1.0, -1.0, 2.0])          # rank 1: two zero values
    with sg.use_graph():
        A = sg.var("A", shape=(4, 3))
        gradient = sg.compile(sg.grad(sg.sum(sg.svdvals(A) ** 2), A), inputs=[A])(a)
    np.testing.assert_allclose(gradient, 2 * a, atol=1e-12)        # ∇‖A‖_F² = 2A


def test_full_matrices_is_the_thin_svd_for_square_matrices_and_refused_otherwise():
    with sg.use_graph():
        S, A = sg.var("S", shape=(3, 3)), sg.var("A", shape=(4, 3))
        assert [e.node for e in sg.svd(S)] == [e.node for e in sg.svd(S, full_matrices=False)]
        nodes = len(A.graph)
        with pytest.raises(sg.ArgumentError, match="full_matrices=False"):
            np.linalg.svd(A)
        assert len(A.graph) == nodes
        assert np.linalg.svd(A, compute_uv=False).shape == (3,)


def test_numpys_functions_return_tuples_of_expressions_with_numpys_names():
    with sg.use_graph():
        S = sg.var("S", shape=(3, 3))
        result = np.linalg.eigh(S)
        assert isinstance(result, tuple) and result.eigenvalues.shape == (3,)
        assert np.linalg.svd(S).Vh.shape == (3, 3)
        assert np.linalg.qr(S).R.shape == (3, 3)
        assert sg.numpy.linalg.svdvals(S).shape == (3,)


def test_qr_of_a_wide_matrix_differentiates_through_its_square_part():
    a = RNG.standard_normal((2, 4))
    with sg.use_graph():
        A = sg.var("A", shape=(2, 4))
        q, r = sg.qr(A)
        f = sg.sum(q @ r * A)                   # A itself: sum(A²), gradient 2A
        value, gradient = sg.compile([q @ r, sg.grad(f, A)], inputs=[A])(a)
    np.testing.assert_allclose(value, a, atol=1e-13)
    np.testing.assert_allclose(gradient, 2 * a, atol=1e-12)
