"""The hand-written references of tests/benchmarks/peers.py's linear-algebra, attention and
sparse workloads are the figures every peer is checked against: here they are held to
independent references themselves (SciPy's densities, central differences of the forward
written in plain NumPy, the dense Jacobian by central differences)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.special
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import peers  # noqa: E402
from finite_differences import central_gradient  # noqa: E402

# the generic workloads over NumPy itself: the forward passes the differences are taken of
NUMPY = SimpleNamespace(
    sum=np.sum, mean=np.mean, exp=np.exp, const=np.asarray, swapaxes=np.swapaxes,
    slogdet=np.linalg.slogdet, solve=np.linalg.solve, take=np.take, einsum=np.einsum,
    take_along_axis=np.take_along_axis, softmax=scipy.special.softmax,
    log_softmax=scipy.special.log_softmax, pad=np.pad)


def test_the_gaussians_value_is_scipys_and_its_gradients_the_differences():
    rng = np.random.default_rng(1)
    X, A, mu = peers.gaussians_problem(rng, components=3, dimension=4, points=7)
    value, gA, gmu = peers.hand_gaussians(X, A, mu)
    covariances = A @ np.swapaxes(A, -1, -2) + np.eye(4)
    want = -sum(scipy.stats.multivariate_normal(m, c).logpdf(X).sum()
                for m, c in zip(mu, covariances))
    assert value == pytest.approx(want, rel=1e-12)
    forward = peers.gaussians_negative_log_likelihood
    assert forward(X, NUMPY, A, mu) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(gA, central_gradient(lambda a: forward(X, NUMPY, a, mu), A),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gmu, central_gradient(lambda m: forward(X, NUMPY, A, m), mu),
                               rtol=1e-6, atol=1e-6)


def test_the_attention_gradients_are_the_differences_of_its_forward():
    rng = np.random.default_rng(2)
    fixed, weights = peers.attention_problem(rng, batch=2, steps=5, width=3, vocabulary=6)
    got = peers.hand_attention(*fixed, *weights)
    forward = peers.attention_loss
    assert got[0] == pytest.approx(forward(*fixed, NUMPY, *weights), rel=1e-12)
    assert len(got) == 1 + len(weights)
    for k, gradient in enumerate(got[1:]):
        def loss(w, k=k):
            return forward(*fixed, NUMPY, *weights[:k], w, *weights[k + 1:])
        np.testing.assert_allclose(gradient, central_gradient(loss, weights[k]),
                                   rtol=1e-6, atol=1e-8)
    # the embedding rows of tokens that occur more than once collect every occurrence
    assert len(np.unique(fixed[0])) < fixed[0].size


def test_the_hand_written_bratu_assembly_is_the_residuals_jacobian():
    import sparse_bratu
    n, lam = 4, sparse_bratu.LAMBDA
    at = np.random.default_rng(3).uniform(0.0, 1.0, n * n)
    assembled = sparse_bratu.hand_written(n)(at)
    residual = peers.bratu_residual
    dense = np.stack([central_gradient(lambda u, i=i: residual(n, lam, NUMPY, u)[i], at)
                      for i in range(n * n)])
    np.testing.assert_allclose(assembled.toarray(), dense, rtol=1e-6, atol=1e-4)
    # the colouring's compressed product recovers every nonzero: no two columns of a colour
    # share a row (the pattern without the zeros scipy's kron stores in the blocks of so small
    # a grid; at the benchmark's sizes it stores none)
    assembled.eliminate_zeros()
    assert assembled.nnz == 5 * n * n - 4 * n
    colouring = peers.ColumnColouring.of(assembled)
    compressed = colouring.seeds @ dense.T
    np.testing.assert_allclose(colouring.csr(compressed[colouring.colour_of, colouring.rows])
                               .toarray(), dense, rtol=1e-12, atol=0)
    assert colouring.seeds.shape[0] == 5        # the five-point stencil's optimum


@pytest.mark.parametrize("workload", ["sparse", "gaussians", "attention"])
def test_symgrads_results_on_the_rows_are_their_references(workload):
    cfg = peers.Config([peers.Symgrad()], quick=True)
    for case in peers.WORKLOADS[workload](cfg):
        got = peers.Adapter().numpy(case.setups["symgrad"]()())
        assert len(got) == len(case.want)
        assert max(peers.disagreement(g, w) for g, w in zip(got, case.want)) <= peers.RTOL


@pytest.mark.parametrize("module, adapter", [("jax", "Jax"), ("torch", "Torch")])
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")    # PyTorch's import's own
def test_a_peers_compressed_jacobian_is_the_assembled_one(module, adapter):
    import sparse_bratu
    peer = getattr(peers, adapter)(pytest.importorskip(module), 1)
    side = 6
    at = np.random.default_rng(4).uniform(0.0, 1.0, side * side)
    assembled = sparse_bratu.hand_written(side)(at)
    colouring = peers.ColumnColouring.of(assembled)
    got = peer.sparse_jacobian(peers.partial(peers.bratu_residual, side, sparse_bratu.LAMBDA),
                               at, colouring)()
    assert got.format == "csr" and (got.indices == assembled.indices).all()
    np.testing.assert_allclose(got.toarray(), assembled.toarray(), rtol=1e-13, atol=0)
