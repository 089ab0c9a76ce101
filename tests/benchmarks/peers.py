"""Speed against peers: symgrad's compiled NumPy next to hand-written NumPy, JAX, PyTorch, autograd
and PyTensor, on the same workloads, every peer at the same thread count.

Run with ``python tests/benchmarks/peers.py [--threads 1|all|both] [--quick]
[--only NAME[,NAME...]] [--markdown FILE]`` (see README.md in this folder; ``--peers`` and
``--repeats`` narrow a run down). A peer that is not installed is left out with a note; a
``symgrad numba`` column appears once symgrad.api.BACKENDS has "numba".

Threads: each setting (one thread, all cores; ``both`` by default) runs in a process of its own,
started with its thread settings in the environment, since libraries read them once, at import:
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS and
VECLIB_MAXIMUM_THREADS, PyTorch's ``set_num_threads``, and for one thread XLA_FLAGS
(``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``). XLA's CPU client does
not obey those flags alone (jax-ml/jax#1539, #29499), so the one-thread process is also confined
to one CPU, the idlest when it starts (``os.sched_setaffinity``, inherited by every thread of every
library alike). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from that environment, so
OpenBLAS runs the kernel it picks for this processor. Each table starts with every thread pool
threadpoolctl sees (library, version, kernel, threads) and a check that each library obeys: a
128x784x500 product timed in each, as a ratio to the CPU time of NumPy's on one thread
(threadpoolctl-limited), with the CPU seconds it used per second; on one thread, a library more
than 1.5 times faster than that, or keeping more than 1.2 cores busy, is flagged.

Each workload is one function yielding ``Case`` rows: a hand-written NumPy reference (the ratio
base), the expected results, and one setup per implementation. Every implementation is written
once, generically, over a small math namespace (``ns.sum``, ``ns.tanh``...), and each framework's
``Adapter`` turns it into a gradient, HVP, Hessian or n-th derivative function the way that
framework is normally used (``jax.jit`` of ``jax.grad``, ``torch.autograd.grad``, ...).

Method: every implementation is set up and called once (warm-up, under a time limit: 120 s, 30 s
with --quick), its result checked against the expected one (scale-relative error,
max |got - want| / max |want|, tolerance 1e-8; any disagreement or exception fails the run); then
``repeats`` rounds, each timing every implementation once in turn (round robin, starting point
rotated each round), each timing a loop of enough calls to last ``min_sample`` seconds; the
figure is the median per call. JAX results are waited for (``block_until_ready``).

The MLP is the model of memory.py, with its data and its hand-written backprop as the reference;
its loss is written here once over ``ns`` like every other workload, symgrad included, rather
than taken from memory.build (which compiles for one backend only). The tanh, iterated-map and
chain references come from graph_economy.py. The sparse Bratu Jacobian's reference is
sparse_bratu.py's hand-written CSR assembly; JAX and PyTorch, which have no sparse Jacobian,
compute it compressed (a vmap of jvp over the seeds of symgrad's colouring, then a gather of the
nonzeros). The Gaussians' and the attention block's hand-written references are checked against
SciPy and central differences by tests/test_peers_references.py.
"""

import argparse
import contextlib
import datetime
import gc
import importlib
import importlib.metadata
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Callable

import numpy as np
import scipy
import scipy.linalg
import scipy.sparse
from numpy.lib.stride_tricks import sliding_window_view
from numpy.polynomial import Polynomial
from scipy.optimize import rosen_der, rosen_hess_prod
from scipy.special import softmax

import _common  # first: puts the checkout on sys.path
from graph_economy import (NODES_PER_CHAIN_STEP, chain_reference, iterated_map_reference,
                           tanh_derivative_reference)
from memory import hand_backprop, problem as mlp_problem, DECAY, SIZES, BATCH

import symgrad as sg
import symgrad.api

SEED = 0
RTOL = 1e-8
CHAIN_NODES = 10_000
TANH_POINTS = 1_000_000
MAP_POINTS = 100_000
MAP_STEPS = (10, 20, 40, 80)
TANH_ORDERS = range(1, 7)


# -- generic workloads: f(ns, *args), ns being one framework's math namespace ----------------

def rosenbrock(ns, x):
    d = x[1:] - x[:-1] ** 2
    return ns.sum(100.0 * d ** 2 + (1.0 - x[:-1]) ** 2)


def mlp_loss(ns, X, Y, W1, b1, W2, b2, W3, b3):
    """memory.py's loss: MLP 784-500-400-10, ReLU, mean log-softmax cross-entropy, L2 on weights."""
    logits = ns.relu(ns.relu(X @ W1 + b1) @ W2 + b2) @ W3 + b3
    return (-ns.mean(ns.sum(Y * ns.log_softmax(logits, axis=1), axis=1))
            + DECAY * (ns.sum(W1 ** 2) + ns.sum(W2 ** 2) + ns.sum(W3 ** 2)))


def tanh(ns, x):
    return ns.tanh(x)


def logsumexp_quadratic(A, ns, x):
    return ns.logsumexp(ns.const(A) @ x) + 0.5 * ns.sum(x * x)


def grid_energy(ns, u):
    """The 2-D Bratu energy on a grid (tests/benchmarks/dense_hessian.py: its Hessian cold)."""
    dx = u[1:, :] - u[:-1, :]
    dy = u[:, 1:] - u[:, :-1]
    return 0.5 * ns.sum(dx * dx) + 0.5 * ns.sum(dy * dy) - ns.sum(ns.exp(u))


def scalar_max(ns, x, y, z):
    return (x + y) * ns.maximum(y, z)


def scalar_mul(ns, x, y, z):
    return (x + y) * z


def iterated_map(steps, ns, x):
    for _ in range(steps):
        x = ns.sin(x) * x + x ** 2
    return ns.sum(x)


def conv_layer(ns, X, W, b):
    """A 3x3 convolution layer (zero padding 1), ReLU, half the sum of squares."""
    return 0.5 * ns.sum(ns.relu(ns.conv(X, W, b, padding=1)) ** 2)


def gp_negative_log_likelihood(distances, y, ns, theta):
    """A Gaussian process's negative log marginal likelihood, RBF kernel plus noise, of the log
    length-scale, log signal variance and log noise variance ``theta``: the Cholesky factor L of
    K, then |L⁻¹ y|² / 2 + Σ log diag L + n/2 log 2π (one triangular solve, no inverse)."""
    n = y.shape[0]
    kernel = ns.exp(theta[1]) * ns.exp(ns.const(-0.5 * distances) * ns.exp(-2.0 * theta[0]))
    factor = ns.cholesky(kernel + ns.exp(theta[2]) * ns.const(np.eye(n)))
    whitened = ns.solve_triangular(factor, ns.const(y), lower=True)
    return (0.5 * ns.sum(whitened * whitened) + ns.sum(ns.log(ns.diagonal(factor)))
            + 0.5 * n * np.log(2.0 * np.pi))


def chain(steps, ns, y):
    for _ in range(steps):
        y = ns.sin(y) * 0.5 + y
    return ns.sum(y)


def rnn_unrolled(steps, ns, X, Y, Wx, Wh, b, Wy, h0):
    """A char-RNN's mean cross-entropy over ``steps`` one-hot characters (tanh cell), unrolled
    with Python's operators: the sizes of the char-RNN of tests/test_loops.py."""
    h, total = h0, 0.0
    for t in range(steps):
        h = ns.tanh(X[t] @ Wx + h @ Wh + b)
        total = total - ns.sum(Y[t] * ns.log_softmax(h @ Wy, axis=1))
    return total / steps


def bratu_residual(n, lam, ns, u):
    """The 2-D Bratu residual -Δu - λ e^u of the flattened n x n grid ``u``, zero on the
    boundary, five-point Laplacian (tests/test_sparse.py's bratu, written over ``ns``)."""
    grid = u.reshape(n, n)
    padded = ns.pad(grid, 1)
    h2 = (1.0 / (n + 1)) ** 2
    laplacian = (4 * grid - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2]
                 - padded[1:-1, 2:]) / h2
    return (laplacian - lam * ns.exp(grid)).reshape(-1)


def gaussians_negative_log_likelihood(X, ns, A, mu):
    """The negative log likelihood of the points ``X`` (N, d) under each of k Gaussians of mean
    ``mu[j]`` and full covariance ``A[j] A[j]ᵀ + I``, summed over the k: a batched slogdet and a
    batched solve, as a Gaussian mixture's M step or a multivariate normal's fit writes it."""
    (points, dimension), components = X.shape, mu.shape[0]
    covariance = A @ ns.swapaxes(A, -1, -2) + ns.const(np.eye(dimension))
    centred = ns.const(X.T) - mu[:, :, None]                                # (k, d, N)
    logdet = ns.slogdet(covariance)[1]
    return (0.5 * points * ns.sum(logdet) + 0.5 * ns.sum(centred * ns.solve(covariance, centred))
            + 0.5 * components * points * dimension * np.log(2.0 * np.pi))


def attention_loss(tokens, targets, mask, ns, E, Wq, Wk, Wv, Wo):
    """An embedding gather and one causal softmax-attention head over it (einsum), then the mean
    cross-entropy of each position's next token through ``Wo``, the targets gathered too."""
    x = ns.take(E, tokens, axis=0)                                         # (B, T, D)
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    scores = ns.einsum("btd,bsd->bts", q, k) * (1.0 / np.sqrt(E.shape[1])) + ns.const(mask)
    attended = ns.einsum("bts,bsd->btd", ns.softmax(scores, axis=-1), v)
    logp = ns.log_softmax(attended @ Wo, axis=-1)
    return -ns.mean(ns.take_along_axis(logp, targets[..., None], axis=-1))


# -- hand-written NumPy references: what a careful person writes -------------------------------

def rnn_loss(ns, X, Y, Wx, Wh, b, Wy, h0):
    """The char-RNN of issue 21: a tanh cell over one-hot characters, the mean cross-entropy of
    its next-character predictions, its loop the framework's own (sg.scan, jax.lax.scan)."""
    def step(h, xy):
        x, y = xy
        h = ns.tanh(x @ Wx + h @ Wh + b)
        return h, -ns.sum(y * ns.log_softmax(h @ Wy, axis=-1))
    _, losses = ns.scan(step, h0, (X, Y))
    return ns.sum(losses) / X.shape[0]


def hand_rosen_grad(x):
    xm = x[:-1]
    d = x[1:] - xm * xm
    g = np.empty_like(x)
    g[0] = 0.0
    np.multiply(d, 200.0, out=g[1:])
    d *= xm
    d *= -400.0
    d += 2.0 * xm
    d -= 2.0
    g[:-1] += d
    return g


def hand_rosen_hvp(x, p):
    xm = x[:-1]
    diagonal = np.full_like(x, 200.0)
    diagonal[0] = 0.0
    diagonal[:-1] += 1200.0 * xm * xm
    diagonal[:-1] -= 400.0 * x[1:]
    diagonal[:-1] += 2.0
    off = -400.0 * xm
    hp = diagonal
    hp *= p
    hp[:-1] += off * p[1:]
    hp[1:] += off * p[:-1]
    return hp


def tanh_derivative_coefficients(n):
    """d^n tanh / dx^n = t^odd * Q(t^2), t = tanh(x): (coefficients of Q, low first; odd)."""
    p = Polynomial([0.0, 1.0])
    for _ in range(n):
        p = Polynomial([1.0, 0.0, -1.0]) * p.deriv()
    odd = n % 2 == 0
    return p.coef[int(odd)::2].copy(), odd


def hand_tanh_derivative(x, q, odd):
    t = np.tanh(x)
    s = np.square(t)
    acc = s * q[-1]
    acc += q[-2]
    for c in q[-3::-1]:
        acc *= s
        acc += c
    if odd:
        acc *= t
    return acc


def hand_hessian(x, A):
    z = A @ x
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    Ap = A.T @ p
    H = (A.T * p) @ A
    H -= np.outer(Ap, Ap)
    H.flat[::H.shape[0] + 1] += 1.0
    return H


def grid_laplacian(n):
    """The Hessian of the grid energy's quadratic part, dense, of an n x n grid flattened."""
    differences = np.diff(np.eye(n), axis=0)
    second = differences.T @ differences
    return np.kron(second, np.eye(n)) + np.kron(np.eye(n), second)


def hand_grid_hessian(u, laplacian):
    H = laplacian.copy()
    H.flat[::H.shape[0] + 1] -= np.exp(u).ravel()
    return H.reshape(u.shape * 2)


def hand_scalar_max(x, y, z):
    s = x + y
    return (y, y + s, 0.0) if y > z else (z, z, s)


def hand_scalar_mul(x, y, z):
    return z, z, x + y


def hand_iterated_map(x, steps):
    """Forward pass storing x_k and sin(x_k), then the reverse sweep."""
    xs, sines = [], []
    for k in range(steps):
        s = np.sin(x)
        xs.append(x)
        sines.append(s)
        if k < steps - 1:       # x_K itself is not needed for the gradient
            x = s * x
            x += np.square(xs[-1])
    g = np.ones_like(x)
    for x, s in zip(reversed(xs), reversed(sines)):
        d = np.cos(x)
        d *= x
        d += s
        d += x
        d += x
        g *= d
    return g


def hand_conv_layer(X, W, b):
    """conv_layer's value and gradients in X, W and b, as a careful hand writes them: the
    windows of the padded input as a strided view, one tensordot each way, and the input's
    gradient added back one kernel offset at a time."""
    kh, kw = W.shape[2:]
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))       # (n, c, h, w, kh, kw)
    Y = np.tensordot(windows, W, axes=((1, 4, 5), (1, 2, 3)))           # (n, h, w, o)
    Y += b
    np.maximum(Y, 0.0, out=Y)       # relu; the derivative of Y**2 / 2 through it is Y itself
    value = 0.5 * np.vdot(Y, Y)
    dW = np.tensordot(Y, windows, axes=((0, 1, 2), (0, 2, 3)))          # (o, c, kh, kw)
    db = Y.sum(axis=(0, 1, 2))
    columns = np.tensordot(Y, W, axes=((3,), (0,)))                     # (n, h, w, c, kh, kw)
    dpadded = np.zeros_like(padded)
    height, width = X.shape[2:]
    for i in range(kh):
        for j in range(kw):
            dpadded[:, :, i:i + height, j:j + width] += columns[..., i, j].transpose(0, 3, 1, 2)
    return value, dpadded[:, :, 1:-1, 1:-1], dW, db


def hand_gp(distances, y, theta):
    """The GP's value and gradient as a careful hand writes them (Rasmussen and Williams, 5.9):
    with alpha = K⁻¹ y and W = K⁻¹ - alpha alphaᵀ, d/dθ = tr(W dK/dθ) / 2, K⁻¹ from the Cholesky
    factor by cho_solve."""
    n = y.shape[0]
    length2, signal, noise = np.exp(2.0 * theta[0]), np.exp(theta[1]), np.exp(theta[2])
    rbf = signal * np.exp(-0.5 * distances / length2)
    K = rbf + noise * np.eye(n)
    factor = scipy.linalg.cho_factor(K, lower=True)
    alpha = scipy.linalg.cho_solve(factor, y)
    value = 0.5 * (y @ alpha) + np.sum(np.log(np.diag(factor[0]))) + 0.5 * n * np.log(2 * np.pi)
    W = scipy.linalg.cho_solve(factor, np.eye(n))
    W -= np.outer(alpha, alpha)
    gradient = 0.5 * np.array([np.vdot(W, rbf * distances / length2), np.vdot(W, rbf),
                               noise * np.trace(W)])
    return value, gradient


def hand_rnn(X, Y, Wx, Wh, b, Wy, h0):
    """The char-RNN's loss and gradients by backpropagation through time, written by hand."""
    steps = X.shape[0]
    hs = np.empty((steps + 1, *h0.shape))
    hs[0] = h0
    logp = np.empty(Y.shape)
    for t in range(steps):
        hs[t + 1] = np.tanh(X[t] @ Wx + hs[t] @ Wh + b)
        logits = hs[t + 1] @ Wy
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logp[t] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -np.sum(Y * logp) / steps
    gWx, gWh, gb, gWy = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b), np.zeros_like(Wy)
    gh = np.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        glogits = (np.exp(logp[t]) * Y[t].sum(axis=-1, keepdims=True) - Y[t]) / steps
        gWy += hs[t + 1].T @ glogits
        gpre = (gh + glogits @ Wy.T) * (1.0 - hs[t + 1] ** 2)
        gWx += X[t].T @ gpre
        gWh += hs[t].T @ gpre
        gb += gpre.sum(axis=0)
        gh = gpre @ Wh.T
    return loss, gWx, gWh, gb, gWy, gh


def conv_layer_reference(X, W, b):
    """conv_layer's value and gradients, offset by offset (no windows): the check."""
    kh, kw = W.shape[2:]
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    height, width = X.shape[2:]
    Y = np.zeros((X.shape[0], W.shape[0], height, width)) + b[:, None, None]
    for i in range(kh):
        for j in range(kw):
            Y += np.einsum("nchw,oc->nohw", padded[:, :, i:i + height, j:j + width], W[:, :, i, j])
    Y = np.maximum(Y, 0.0)
    dW, dpadded = np.zeros_like(W), np.zeros_like(padded)
    for i in range(kh):
        for j in range(kw):
            dW[:, :, i, j] = np.einsum("nohw,nchw->oc", Y, padded[:, :, i:i + height, j:j + width])
            dpadded[:, :, i:i + height, j:j + width] += np.einsum("nohw,oc->nchw", Y, W[:, :, i, j])
    return 0.5 * np.sum(Y * Y), dpadded[:, :, 1:-1, 1:-1], dW, Y.sum(axis=(0, 2, 3))


def hand_gaussians(X, A, mu):
    """gaussians_negative_log_likelihood's value and gradients in A and mu by hand: with
    P = Σ⁻¹ and Z = P (X - mu), dL/dΣ = G = (N P - Z Zᵀ) / 2, so dL/dA = 2 G A (G symmetric) and
    dL/dmu = -Σ_n Z."""
    (points, dimension), components = X.shape, mu.shape[0]
    covariance = A @ np.swapaxes(A, -1, -2)
    covariance += np.eye(dimension)
    logdet = np.linalg.slogdet(covariance)[1]
    precision = np.linalg.inv(covariance)
    centred = X.T - mu[:, :, None]
    whitened = precision @ centred
    value = (0.5 * points * logdet.sum() + 0.5 * np.vdot(centred, whitened)
             + 0.5 * components * points * dimension * np.log(2.0 * np.pi))
    G = precision
    G *= 0.5 * points
    G -= 0.5 * (whitened @ np.swapaxes(whitened, -1, -2))
    return value, 2.0 * (G @ A), -whitened.sum(axis=-1)


def hand_attention(tokens, targets, mask, E, Wq, Wk, Wv, Wo):
    """attention_loss's value and gradients in E, Wq, Wk, Wv and Wo by backpropagation written
    by hand: batched matmuls where the workload has einsum, the embedding's gradient added at the
    tokens with np.add.at."""
    batch, steps = tokens.shape
    scale = 1.0 / np.sqrt(E.shape[1])
    x = E[tokens]
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    scores = q @ np.swapaxes(k, 1, 2)
    scores *= scale
    scores += mask
    weights = softmax(scores, axis=-1)
    attended = weights @ v
    logits = attended @ Wo
    logits -= logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    rows = np.arange(batch)[:, None], np.arange(steps)[None, :], targets
    count = batch * steps
    value = -np.sum(np.log(probabilities[rows])) / count
    glogits = probabilities
    glogits[rows] -= 1.0
    glogits /= count
    gWo = attended.reshape(count, -1).T @ glogits.reshape(count, -1)
    gattended = glogits @ Wo.T
    gweights = gattended @ np.swapaxes(v, 1, 2)
    gv = np.swapaxes(weights, 1, 2) @ gattended
    gweights -= np.sum(gweights * weights, axis=-1, keepdims=True)
    gscores = gweights
    gscores *= weights
    gscores *= scale
    gq = gscores @ k
    gk = np.swapaxes(gscores, 1, 2) @ q
    flat_x = x.reshape(count, -1)
    gWq, gWk, gWv = (flat_x.T @ g.reshape(count, -1) for g in (gq, gk, gv))
    gx = gq @ Wq.T + gk @ Wk.T + gv @ Wv.T
    gE = np.zeros_like(E)
    np.add.at(gE, tokens.ravel(), gx.reshape(count, -1))
    return value, gE, gWq, gWk, gWv, gWo


# -- adapters: one per framework ---------------------------------------------------------------

class Adapter:
    """How one framework differentiates a generic f(ns, *args).

    Each method returns a zero-argument ``run`` computing the derivative at the given (NumPy)
    arguments, which it converts once, outside ``run``. ``compiles`` says whether a cold start
    (build, differentiate, compile, first call) means anything for the framework.
    """
    label = version = note = ""
    compiles = False

    def grad(self, f, args, wrt, value=False):
        raise NotImplementedError

    def hvp(self, f, x, v):
        raise NotImplementedError

    def hessian(self, f, x):
        raise NotImplementedError

    def derivative(self, f, x, n):
        """Elementwise n-th derivative of an elementwise f."""
        raise NotImplementedError

    def sparse_jacobian(self, f, x, colouring):
        """The Jacobian of f at x as a SciPy CSR array of ``colouring``'s pattern, computed as
        this framework computes a sparse Jacobian (a ColumnColouring's seeds, where it has no
        sparse Jacobian of its own)."""
        raise NotImplementedError

    def numpy(self, result):
        """The results of ``run`` as a flat tuple of NumPy arrays."""
        if isinstance(result, (tuple, list)):
            return tuple(a for r in result for a in self.numpy(r))
        if scipy.sparse.issparse(result):       # compared in one canonical CSR form
            canonical = scipy.sparse.csr_array(result, copy=True)
            canonical.sum_duplicates()
            return canonical.data, canonical.indices, canonical.indptr
        return (np.asarray(result, dtype=np.float64),)

    def gemm(self, a, b):
        """A ``run`` of the product ``a @ b`` as this framework computes it; None when it is
        NumPy's own (the obedience check times NumPy once)."""
        return None


class Symgrad(Adapter):
    compiles = True

    def __init__(self, backend="numpy"):
        self.backend = backend
        self.label = "symgrad" if backend == "numpy" else f"symgrad {backend}"
        self.version = sg.__version__

    def _compiled(self, build, args):
        with sg.use_graph():
            variables = [sg.var(f"a{i}", shape=np.shape(a)) for i, a in enumerate(args)]
            fn = sg.compile(list(build(*variables)), inputs=variables, backend=self.backend)
        return partial(fn, *args)       # called as the hand-written functions are

    def grad(self, f, args, wrt, value=False):
        def build(*variables):
            y = f(sg, *variables)
            gradients = sg.grad(y, [variables[i] for i in wrt])
            return [y, *gradients] if value else gradients
        return self._compiled(build, args)

    def hvp(self, f, x, v):
        return self._compiled(lambda x, v: [sg.hvp(f(sg, x), x, v)], (x, v))

    def hessian(self, f, x):
        return self._compiled(lambda x: [sg.hessian(f(sg, x), x)], (x,))

    def derivative(self, f, x, n):
        def build(x):
            d = f(sg, x)
            for _ in range(n):
                d = sg.grad(sg.sum(d), x)
            return [d]
        return self._compiled(build, (x,))

    def sparse_jacobian(self, f, x, colouring):
        # its own method (direct emission or a colouring of its own), as sg.jacobian chooses
        return self._compiled(lambda x: [sg.jacobian(f(sg, x), x, sparse=True)], (x,))


class Jax(Adapter):
    compiles = True

    def __init__(self, jax, threads):
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp
        import jax.scipy.linalg  # noqa: F401 (binds jax.scipy.linalg for the GP's ns)
        jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp = jax, jnp
        self.label, self.version = "JAX", jax.__version__
        self.note = f"jit, x64, devices {', '.join(map(str, jax.devices()))}"
        self.ns = SimpleNamespace(
            sum=jnp.sum, mean=jnp.mean, tanh=jnp.tanh, sin=jnp.sin, maximum=jnp.maximum,
            relu=jax.nn.relu, logsumexp=logsumexp, log_softmax=jax.nn.log_softmax,
            const=jnp.asarray, conv=self._conv, exp=jnp.exp, log=jnp.log,
            cholesky=jnp.linalg.cholesky, diagonal=jnp.diagonal,
            solve_triangular=jax.scipy.linalg.solve_triangular, scan=jax.lax.scan,
            pad=jnp.pad, swapaxes=jnp.swapaxes, slogdet=jnp.linalg.slogdet,
            solve=jnp.linalg.solve, take=jnp.take, einsum=jnp.einsum,
            take_along_axis=jnp.take_along_axis, softmax=jax.nn.softmax)

    def _conv(self, X, W, b, padding):
        out = self.jax.lax.conv_general_dilated(X, W, (1, 1), [(padding, padding)] * 2)
        return out + b[:, None, None]

    def _run(self, fn, args):
        native = [self.jnp.asarray(a) for a in args]
        return lambda: self.jax.block_until_ready(fn(*native))

    def gemm(self, a, b):
        return self._run(self.jax.jit(self.jnp.matmul), (a, b))

    def grad(self, f, args, wrt, value=False):
        differentiate = self.jax.value_and_grad if value else self.jax.grad
        return self._run(self.jax.jit(differentiate(partial(f, self.ns), argnums=tuple(wrt))),
                         args)

    def hvp(self, f, x, v):
        g = self.jax.grad(partial(f, self.ns))
        return self._run(self.jax.jit(lambda x, v: self.jax.jvp(g, (x,), (v,))[1]), (x, v))

    def hessian(self, f, x):
        return self._run(self.jax.jit(self.jax.hessian(partial(f, self.ns))), (x,))

    def derivative(self, f, x, n):
        d = partial(f, self.ns)
        for _ in range(n):
            d = self.jax.grad(d)
        return self._run(self.jax.jit(self.jax.vmap(d)), (x,))

    def sparse_jacobian(self, f, x, colouring):
        f = partial(f, self.ns)

        def nonzeros(x, seeds, colour_of, rows):
            compressed = self.jax.vmap(lambda seed: self.jax.jvp(f, (x,), (seed,))[1])(seeds)
            return compressed[colour_of, rows]
        native = [self.jnp.asarray(a) for a in (x, colouring.seeds, colouring.colour_of,
                                                colouring.rows)]
        fn = self.jax.jit(nonzeros)
        return lambda: colouring.csr(np.asarray(fn(*native)))


class Torch(Adapter):
    def __init__(self, torch, threads):
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        self.torch = torch
        self.label, self.version = "PyTorch", torch.__version__
        self.note = (f"eager, {torch.get_num_threads()} intra-op / "
                     f"{torch.get_num_interop_threads()} inter-op threads")
        self.ns = SimpleNamespace(
            sum=lambda a, axis=None: a.sum() if axis is None else a.sum(dim=axis),
            mean=torch.mean, tanh=torch.tanh, sin=torch.sin, maximum=torch.maximum,
            relu=torch.relu, logsumexp=lambda a: torch.logsumexp(a.reshape(-1), dim=0),
            log_softmax=lambda a, axis: torch.log_softmax(a, dim=axis), const=torch.from_numpy,
            conv=torch.nn.functional.conv2d, exp=torch.exp, log=torch.log,
            cholesky=torch.linalg.cholesky, diagonal=torch.diagonal,
            solve_triangular=lambda a, b, lower: torch.linalg.solve_triangular(
                a, b[:, None], upper=not lower)[:, 0],
            pad=lambda a, width: torch.nn.functional.pad(a, (width,) * (2 * a.ndim)),
            swapaxes=torch.swapaxes, slogdet=torch.linalg.slogdet, solve=torch.linalg.solve,
            take=lambda a, indices, axis: a[(slice(None),) * axis + (torch.from_numpy(indices),)],
            einsum=torch.einsum, softmax=lambda a, axis: torch.softmax(a, dim=axis),
            take_along_axis=lambda a, indices, axis: torch.take_along_dim(
                a, torch.from_numpy(indices), dim=axis))

    def _tensors(self, args, wrt=()):
        return [self.torch.from_numpy(np.asarray(a, dtype=np.float64)).requires_grad_(i in wrt)
                for i, a in enumerate(args)]

    def grad(self, f, args, wrt, value=False):
        tensors = self._tensors(args, wrt)
        leaves = [tensors[i] for i in wrt]

        def run():
            y = f(self.ns, *tensors)
            gradients = self.torch.autograd.grad(y, leaves)
            return (y.detach(), *gradients) if value else gradients
        return run

    def hvp(self, f, x, v):
        x, v = self._tensors((x, v), wrt=(0,))

        def run():
            (g,) = self.torch.autograd.grad(f(self.ns, x), x, create_graph=True)
            return self.torch.autograd.grad(g, x, grad_outputs=v)
        return run

    def hessian(self, f, x):
        (x,) = self._tensors((x,))
        hessian = self.torch.func.hessian(partial(f, self.ns))
        return lambda: hessian(x)

    def derivative(self, f, x, n):
        (x,) = self._tensors((x,), wrt=(0,))

        def run():
            d = f(self.ns, x)
            for k in range(n):
                (d,) = self.torch.autograd.grad(d.sum(), x, create_graph=k < n - 1)
            return d
        return run

    def sparse_jacobian(self, f, x, colouring):
        func = self.torch.func
        f = partial(f, self.ns)
        x, seeds = self._tensors((x, colouring.seeds))
        colour_of, rows = (self.torch.from_numpy(a) for a in (colouring.colour_of,
                                                              colouring.rows))
        compressed = func.vmap(lambda seed: func.jvp(f, (x,), (seed,))[1])
        return lambda: colouring.csr(compressed(seeds)[colour_of, rows].numpy())

    def gemm(self, a, b):
        a, b = self._tensors((a, b))
        return lambda: self.torch.mm(a, b)

    def numpy(self, result):
        if isinstance(result, self.torch.Tensor):
            return (result.detach().numpy(),)
        return super().numpy(result)


def take_along_axis_by_indexing(anp, a, indices, axis):
    """np.take_along_axis as integer-array indexing, for autograd, whose take_along_axis has no
    gradient in the array and whose indexing has."""
    index = list(np.ogrid[tuple(slice(n) for n in indices.shape)])
    index[axis] = indices
    return a[tuple(index)]


class Autograd(Adapter):
    def __init__(self, autograd, threads):
        import autograd.numpy as anp
        from autograd.scipy.special import logsumexp
        self.autograd = autograd
        self.label, self.version = "autograd", importlib.metadata.version("autograd")
        self.ns = SimpleNamespace(
            sum=anp.sum, mean=anp.mean, tanh=anp.tanh, sin=anp.sin, maximum=anp.maximum,
            relu=lambda a: anp.maximum(a, 0.0), logsumexp=logsumexp,
            log_softmax=lambda a, axis: a - logsumexp(a, axis=axis, keepdims=True),
            const=lambda a: a, exp=anp.exp, swapaxes=anp.swapaxes, slogdet=anp.linalg.slogdet,
            solve=anp.linalg.solve, einsum=anp.einsum,
            take=lambda a, indices, axis: a[(slice(None),) * axis + (indices,)],    # as above
            take_along_axis=partial(take_along_axis_by_indexing, anp),
            softmax=lambda a, axis: anp.exp(a - logsumexp(a, axis=axis, keepdims=True)))

    def grad(self, f, args, wrt, value=False):
        differentiate = self.autograd.value_and_grad if value else self.autograd.grad
        fn = differentiate(partial(f, self.ns), argnum=tuple(wrt))
        return lambda: fn(*args)

    def hvp(self, f, x, v):
        fn = self.autograd.hessian_vector_product(partial(f, self.ns))
        return lambda: fn(x, v)

    def hessian(self, f, x):
        fn = self.autograd.hessian(partial(f, self.ns))
        return lambda: fn(x)

    def derivative(self, f, x, n):
        d = partial(f, self.ns)
        for _ in range(n):
            d = self.autograd.elementwise_grad(d)
        return lambda: d(x)


class PyTensor(Adapter):
    compiles = True

    def __init__(self, pytensor, threads):
        import pytensor.gradient
        import pytensor.tensor as pt
        from pytensor.tensor.special import log_softmax, softmax
        # PyTensor's gradient and rewrites recurse about once per level of the graph
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
        self.pytensor, self.pt = pytensor, pt
        self.label, self.version = "PyTensor", pytensor.__version__
        config = pytensor.config
        self.note = f"mode {config.mode}, linker {config.linker}, cxx {config.cxx or 'none'}"
        self.ns = SimpleNamespace(
            sum=pt.sum, mean=pt.mean, tanh=pt.tanh, sin=pt.sin, maximum=pt.maximum,
            relu=lambda a: pt.maximum(a, 0.0), logsumexp=pt.logsumexp, log_softmax=log_softmax,
            const=pt.constant, exp=pt.exp, swapaxes=pt.swapaxes, slogdet=pt.linalg.slogdet,
            solve=lambda a, b: pt.linalg.solve(a, b, b_ndim=2), take=pt.take, einsum=pt.einsum,
            take_along_axis=pt.take_along_axis, softmax=softmax)

    def _function(self, build, args):
        variables = [self.pt.tensor(f"a{i}", dtype="float64", shape=np.shape(a))
                     for i, a in enumerate(args)]
        fn = self.pytensor.function(variables, list(build(*variables)))
        return lambda: fn(*args)

    def gemm(self, a, b):
        return self._function(lambda a, b: [a @ b], (a, b))

    def grad(self, f, args, wrt, value=False):
        def build(*variables):
            y = f(self.ns, *variables)
            gradients = self.pytensor.grad(y, [variables[i] for i in wrt])
            return [y, *gradients] if value else gradients
        return self._function(build, args)

    def hvp(self, f, x, v):
        hvp = self.pytensor.gradient.hessian_vector_product
        return self._function(lambda x, v: [hvp(f(self.ns, x), x, v)], (x, v))

    def hessian(self, f, x):
        # pytensor.gradient.hessian loops with scan; the vectorized Jacobian of the gradient is
        # what a careful user writes
        def build(x):
            g = self.pytensor.grad(f(self.ns, x), x)
            return [self.pytensor.gradient.jacobian(g, x, vectorize=True)]
        return self._function(build, (x,))

    def derivative(self, f, x, n):
        def build(x):
            d = f(self.ns, x)
            for _ in range(n):
                d = self.pytensor.grad(self.pt.sum(d), x)
            return [d]
        return self._function(build, (x,))


PEERS = (("jax", Jax), ("torch", Torch), ("autograd", Autograd), ("pytensor", PyTensor))


def adapters(wanted=None, threads=1):
    """(available adapters, symgrad first; notes on the peers left out); ``threads``: the
    process's thread setting, for the peers that are told it in code rather than read it."""
    found = [Symgrad(backend) for backend in ("numpy", "numba") if backend in symgrad.api.BACKENDS]
    missing = []
    for module, adapter in PEERS:
        if wanted is not None and module not in wanted:
            missing.append(f"{module}: not asked for (--peers)")
            continue
        try:
            found.append(adapter(importlib.import_module(module), threads))
        except ImportError as error:
            missing.append(f"{module}: not installed ({error})")
    return found, missing


# -- cases -------------------------------------------------------------------------------------

@dataclass
class Case:
    """One row: the hand-written reference (None: no ratio, times shown in seconds), the expected
    results, and per implementation a ``setup() -> run`` (or a string: why it is skipped)."""
    workload: str
    name: str
    hand: Callable | None
    want: tuple
    setups: dict
    floor: float = 0.0      # errors are relative to max(max |want|, floor)


@dataclass
class Config:
    adapters: list
    quick: bool
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(SEED))

    def setups(self, method, *args, skip=()):
        """{label: setup} calling ``adapter.method(*args)``; ``skip``: labels left out."""
        return {a.label: ("skipped (--quick)" if a.label in skip else
                          partial(getattr(a, method), *args))
                for a in self.adapters}


def rosenbrock_cases(cfg):
    for n in (1_000,) if cfg.quick else (1_000, 100_000):
        x, v = cfg.rng.uniform(-2.0, 2.0, n), cfg.rng.standard_normal(n)
        yield Case("rosenbrock", f"Rosenbrock gradient, n={n:,}", partial(hand_rosen_grad, x),
                   (rosen_der(x),), cfg.setups("grad", rosenbrock, (x,), (0,)))
        yield Case("rosenbrock", f"Rosenbrock HVP, n={n:,}", partial(hand_rosen_hvp, x, v),
                   (rosen_hess_prod(x, v),), cfg.setups("hvp", rosenbrock, x, v))


def mlp_cases(cfg):
    args = mlp_problem()
    order = ("X", "Y", "W1", "b1", "W2", "b2", "W3", "b3")
    values = tuple(args[name] for name in order)
    yield Case("mlp", f"MLP {'-'.join(map(str, SIZES))} loss+gradient, batch {BATCH}",
               partial(hand_backprop, **args), hand_backprop(**args),
               cfg.setups("grad", mlp_loss, values, range(2, 8), True))


RNN_STEPS = 50
RNN_BATCH, RNN_HIDDEN, RNN_VOCABULARY = 8, 32, 32


def rnn_unrolled_cases(cfg):
    one_hot = np.eye(RNN_VOCABULARY)
    shape = (RNN_STEPS, RNN_BATCH)
    args = (one_hot[cfg.rng.integers(0, RNN_VOCABULARY, shape)],
            one_hot[cfg.rng.integers(0, RNN_VOCABULARY, shape)],
            cfg.rng.normal(0.0, 0.3, (RNN_VOCABULARY, RNN_HIDDEN)),
            cfg.rng.normal(0.0, 0.1, (RNN_HIDDEN, RNN_HIDDEN)),
            cfg.rng.normal(0.0, 0.1, RNN_HIDDEN),
            cfg.rng.normal(0.0, 0.3, (RNN_HIDDEN, RNN_VOCABULARY)),
            cfg.rng.normal(0.0, 0.1, (RNN_BATCH, RNN_HIDDEN)))
    yield Case("rnn_unrolled", f"char-RNN unrolled T={RNN_STEPS}, batch {RNN_BATCH}, hidden "
               f"{RNN_HIDDEN}, loss+gradient", partial(hand_rnn, *args), hand_rnn(*args),
               cfg.setups("grad", partial(rnn_unrolled, RNN_STEPS), args, range(2, 7), True))


def tanh_cases(cfg):
    x = cfg.rng.uniform(-2.0, 2.0, TANH_POINTS)
    for n in TANH_ORDERS:
        q, odd = tanh_derivative_coefficients(n)
        slow = ("autograd",) if cfg.quick and n >= 5 else ()
        yield Case("tanh", f"tanh derivative order {n}, {TANH_POINTS:,} points",
                   partial(hand_tanh_derivative, x, q, odd), (tanh_derivative_reference(x, n),),
                   cfg.setups("derivative", tanh, x, n, skip=slow))


def hessian_cases(cfg):
    m, n = 200, 100
    A = cfg.rng.standard_normal((m, n)) / np.sqrt(n)
    x = cfg.rng.standard_normal(n)
    p = softmax(A @ x)
    want = A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(n)
    yield Case("hessian", f"dense Hessian {n}x{n}, logsumexp(Ax) + x·x/2",
               partial(hand_hessian, x, A), (want,),
               cfg.setups("hessian", partial(logsumexp_quadratic, A), x))
    side = 30
    u = 0.1 * cfg.rng.standard_normal((side, side))
    laplacian = grid_laplacian(side)
    want = (laplacian - np.diag(np.exp(u).ravel())).reshape(u.shape * 2)
    setups = cfg.setups("hessian", grid_energy, u)
    if "PyTensor" in setups:    # its jacobian of a matrix raises StopIteration
        setups["PyTensor"] = "no Jacobian of a matrix"
    yield Case("hessian", f"dense Hessian of a {side}x{side}-grid energy (Bratu)",
               partial(hand_grid_hessian, u, laplacian), (want,), setups)


def scalar_cases(cfg):
    at = (-2.0, 5.0, -4.0)
    for name, f, hand, want in (("(x + y) * max(y, z)", scalar_max, hand_scalar_max, (5, 8, 0)),
                                ("(x + y) * z", scalar_mul, hand_scalar_mul, (-4, -4, 3))):
        yield Case("scalar", f"scalar gradient {name}", partial(hand, *at),
                   tuple(np.float64(w) for w in want), cfg.setups("grad", f, at, (0, 1, 2)))


def map_cases(cfg):
    # entries in (-0.5, 0.5) stay finite (the map's other fixed point, 0.511, repels); they fall
    # to 0 quickly, so beyond K ~ 20 most gradient entries underflow to 0.
    # Where the fused loop's time goes at K = 80, one thread (CPU time, 2026-12-07): 62 of its
    # 66 ms are the C library's sin and cos (the loop with them replaced by a product: 4 ms);
    # XLA calls a scalar sin at float64 too (its results are NumPy's to the bit), and JAX's
    # time is the same 67 ms. Tried and dropped: glibc's sincos for a sine and cosine of one
    # argument (68 ms: the loop is no longer vectorised), a branch returning x (and 1.0) for
    # |x| < 2^-26 (no faster; K = 80 compiles in 37 s, not 3), fdlibm's polynomials inlined
    # (vectorised, slower, K = 20 compiles in 27 s). Intel's SVML needs an llvmlite built with
    # its patch, which 0.47 is not (numba -s: SVML state False whatever icc_rt). What does pay:
    # glibc's libmvec (_ZGVeN8v_sin), 67 -> 43 ms, up to 2.9 ulp for sin near pi/2, reached
    # only through LLVM's process-wide -vector-library=LIBMVEC-X86 option (every Numba function
    # of the process then calls it, and their cached code needs libmvec loaded).
    x = cfg.rng.uniform(-0.5, 0.5, MAP_POINTS)
    for steps in MAP_STEPS:
        yield Case("map", f"iterated map K={steps}, {MAP_POINTS:,} points",
                   partial(hand_iterated_map, x, steps), (iterated_map_reference(x, steps)[1],),
                   {label: (lambda setup=setup: with_kernels_compiled(setup()))
                    if callable(setup) else setup
                    for label, setup in cfg.setups("grad", partial(iterated_map, steps), (x,),
                                                   (0,)).items()})


CONV_PEERS = ("symgrad", "symgrad numba", "JAX", "PyTorch")    # those with a conv in ns


def conv_cases(cfg):
    X = cfg.rng.standard_normal((64, 16, 32, 32))
    W = cfg.rng.standard_normal((32, 16, 3, 3)) / 12.0
    b = cfg.rng.standard_normal(32) * 0.1
    args = (X, W, b)
    setups = {a.label: partial(a.grad, conv_layer, args, (0, 1, 2), True)
              if a.label in CONV_PEERS else "n/a (no convolution here)" for a in cfg.adapters}
    yield Case("conv", "conv layer 16->32 3x3, 64x32x32, loss+gradients",
               partial(hand_conv_layer, *args), conv_layer_reference(*args), setups)


GP_PEERS = ("symgrad", "symgrad numba", "JAX", "PyTorch")    # those with cholesky in ns


def gp_cases(cfg):
    n = 200 if cfg.quick else 400
    points = cfg.rng.uniform(-3.0, 3.0, (n, 2))
    distances = np.sum((points[:, None, :] - points[None, :, :]) ** 2, axis=-1)
    y = np.sin(points[:, 0]) * np.cos(points[:, 1]) + 0.1 * cfg.rng.standard_normal(n)
    theta = np.log([0.8, 1.2, 0.05])
    f = partial(gp_negative_log_likelihood, distances, y)
    setups = {a.label: partial(a.grad, f, (theta,), (0,), True)
              if a.label in GP_PEERS else "n/a (no cholesky here)" for a in cfg.adapters}
    yield Case("gp", f"GP negative log likelihood, RBF, n={n}, value+gradient",
               partial(hand_gp, distances, y, theta), hand_gp(distances, y, theta), setups)


RNN_PEERS = ("symgrad", "symgrad numba", "JAX")    # those with a scan in ns
RNN_BATCH, RNN_HIDDEN, RNN_VOCABULARY = 8, 32, 32


def rnn_problem(rng, steps):
    one_hot = np.eye(RNN_VOCABULARY)
    return (one_hot[rng.integers(0, RNN_VOCABULARY, (steps, RNN_BATCH))],
            one_hot[rng.integers(0, RNN_VOCABULARY, (steps, RNN_BATCH))],
            rng.normal(0, 0.3, (RNN_VOCABULARY, RNN_HIDDEN)),
            rng.normal(0, 0.1, (RNN_HIDDEN, RNN_HIDDEN)), rng.normal(0, 0.1, RNN_HIDDEN),
            rng.normal(0, 0.3, (RNN_HIDDEN, RNN_VOCABULARY)),
            rng.normal(0, 0.1, (RNN_BATCH, RNN_HIDDEN)))


def rnn_cold_start(adapter, args):
    """A run that builds, differentiates and compiles the char-RNN, then calls it once."""
    return lambda: adapter.grad(rnn_loss, args, range(2, 7), True)()


def rnn_steady(adapter, args):
    """The char-RNN's run once the numba backend's kernels are compiled."""
    return with_kernels_compiled(adapter.grad(rnn_loss, args, range(2, 7), True))


def with_kernels_compiled(run):
    """``run`` once the numba backend's kernels of its function are compiled (in the background,
    from the first call on: fn.wait_compiled)."""
    wait_compiled = getattr(getattr(run, "func", None), "wait_compiled", None)
    if wait_compiled is not None:
        run()
        wait_compiled()
    return run


class FreshProcessColdStart:
    """The numba backend's cold start of the char-RNN in a new process with empty kernel caches
    (in this one the warm row compiled the kernels): a call returns the first result, ``timed``
    the new process's seconds from building to that result (imports excluded, as here)."""

    def __init__(self, args):
        self.args = args

    def __call__(self):
        return self.run()[0]

    def timed(self):
        return self.run()[1]

    def run(self):
        with tempfile.TemporaryDirectory(prefix="symgrad-cold-") as cache:
            np.savez(os.path.join(cache, "args.npz"), *self.args)
            environment = dict(os.environ, SYMGRAD_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache)
            done = subprocess.run([sys.executable, __file__, "--rnn-cold-child", cache],
                                  env=environment, capture_output=True, text=True, check=True)
            with np.load(os.path.join(cache, "result.npz")) as saved:
                result = tuple(saved[f"arr_{k}"] for k in range(len(saved.files)))
        return result, float(done.stdout.split()[-1])


def rnn_cold_child(directory):
    """FreshProcessColdStart's new process: the numba backend's cold start at the arguments
    saved in ``directory``, its result saved there and its seconds printed."""
    with np.load(os.path.join(directory, "args.npz")) as saved:
        args = tuple(saved[f"arr_{k}"] for k in range(len(saved.files)))
    start = time.perf_counter()
    result = Symgrad("numba").grad(rnn_loss, args, range(2, 7), True)()
    seconds = time.perf_counter() - start
    np.savez(os.path.join(directory, "result.npz"), *Adapter().numpy(result))
    print(seconds)


def rnn_scan_cases(cfg):
    for steps in (50, 200):
        args = rnn_problem(cfg.rng, steps)
        setups = {a.label: partial(rnn_steady, a, args)
                  if a.label in RNN_PEERS else "n/a (no scan here)" for a in cfg.adapters}
        name = f"char-RNN T={steps}, batch {RNN_BATCH}, hidden {RNN_HIDDEN}, loss+gradient"
        yield Case("rnn_scan", name, partial(hand_rnn, *args), hand_rnn(*args), setups)
        cold = {a.label: partial(rnn_cold_start, a, args)
                if a.label in RNN_PEERS else "n/a (no scan here)" for a in cfg.adapters}
        if "symgrad numba" in cold:
            cold["symgrad numba"] = partial(FreshProcessColdStart, args)
        yield Case("rnn_scan", f"char-RNN T={steps}: cold start, build to first call (s)", None,
                   hand_rnn(*args), cold)


SPARSE_PEERS = ("symgrad", "symgrad numba", "JAX", "PyTorch")     # those with forward mode
SPARSE_SIDES = (100, 300)


@dataclass
class ColumnColouring:
    """A Jacobian's pattern (CSR, indices sorted) and a colouring of its columns in which no two
    columns of a colour share a row (symgrad's, the fewest it finds): the seeds of the compressed
    product, one row per colour, each nonzero's colour and row, and the CSR array of given
    nonzeros. A peer without sparse Jacobians computes ``seeds @ J.T`` (jvp's of the seeds) and
    gathers the nonzeros from it: the compressed method a careful user writes."""
    pattern: object
    colours: np.ndarray

    @classmethod
    def of(cls, matrix):
        from symgrad.sparsity import _fewest_colors
        pattern = scipy.sparse.csr_array(matrix, dtype=bool, copy=True)
        pattern.sort_indices()
        least = np.diff(pattern.indptr).max(initial=0)   # a row's columns all conflict
        return cls(pattern, _fewest_colors((pattern.T @ pattern).astype(bool), least))

    @property
    def seeds(self):
        seeds = np.zeros((self.colours.max(initial=-1) + 1, self.colours.size))
        seeds[self.colours, np.arange(self.colours.size)] = 1.0
        return seeds

    @property
    def colour_of(self):
        return self.colours[self.pattern.indices]

    @property
    def rows(self):
        return np.repeat(np.arange(self.pattern.shape[0]), np.diff(self.pattern.indptr))

    def csr(self, data):
        """The CSR array of nonzeros ``data``; its index arrays copied, as the hand-written
        assembly's and symgrad's are, so no two results share them."""
        return scipy.sparse.csr_array((data, self.pattern.indices.copy(),
                                       self.pattern.indptr.copy()), shape=self.pattern.shape)


def sparse_cases(cfg):
    from sparse_bratu import LAMBDA, hand_written     # its Laplacian assembled by hand
    for side in SPARSE_SIDES[:1] if cfg.quick else SPARSE_SIDES:
        u = cfg.rng.uniform(0.0, 1.0, side * side)
        assemble = hand_written(side)
        colouring = ColumnColouring.of(assemble(u))
        f = partial(bratu_residual, side, LAMBDA)
        setups = {a.label: partial(a.sparse_jacobian, f, u, colouring)
                  if a.label in SPARSE_PEERS else "n/a (no forward mode here)"
                  for a in cfg.adapters}
        yield Case("sparse", f"Bratu residual's sparse Jacobian, {side * side:,} unknowns, CSR "
                   f"(JAX, PyTorch: vmap of jvp on {colouring.seeds.shape[0]} colour seeds, "
                   "gather)", partial(assemble, u), Adapter().numpy(assemble(u)), setups)


GAUSSIANS_SIZES = dict(components=8, dimension=64, points=1_000)


def gaussians_problem(rng, components, dimension, points):
    """(X, A, mu): points, the covariances' factors (near the identity) and the means."""
    X = rng.standard_normal((points, dimension))
    A = np.eye(dimension) + rng.standard_normal((components, dimension, dimension)) \
        / (2.0 * np.sqrt(dimension))
    return X, A, 0.3 * rng.standard_normal((components, dimension))


def gaussians_cases(cfg):
    X, A, mu = gaussians_problem(cfg.rng, **GAUSSIANS_SIZES)
    f = partial(gaussians_negative_log_likelihood, X)
    # PyTensor compiles for longer than --quick allows
    setups = cfg.setups("grad", f, (A, mu), (0, 1), True, skip=("PyTensor",) * cfg.quick)
    sizes = GAUSSIANS_SIZES
    yield Case("gaussians", f"{sizes['components']} Gaussians, full covariance "
               f"{sizes['dimension']}x{sizes['dimension']} (slogdet, solve), {sizes['points']:,} "
               "points, value+gradient", partial(hand_gaussians, X, A, mu),
               hand_gaussians(X, A, mu), setups)


ATTENTION_SIZES = dict(batch=16, steps=64, width=64, vocabulary=256)


def attention_problem(rng, batch, steps, width, vocabulary):
    """((tokens, targets, causal mask), (E, Wq, Wk, Wv, Wo)): the targets the next tokens, the
    mask -1e9 above the diagonal (finite, so no peer meets inf - inf)."""
    sequence = rng.integers(0, vocabulary, (batch, steps + 1))
    mask = np.triu(np.full((steps, steps), -1e9), k=1)
    weights = (rng.standard_normal((vocabulary, width)),
               *(rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(3)),
               rng.standard_normal((width, vocabulary)) / np.sqrt(width))
    return (sequence[:, :-1], sequence[:, 1:], mask), weights


def attention_cases(cfg):
    fixed, weights = attention_problem(cfg.rng, **ATTENTION_SIZES)
    f = partial(attention_loss, *fixed)
    setups = cfg.setups("grad", f, weights, range(5), True, skip=("PyTensor",) * cfg.quick)
    sizes = ATTENTION_SIZES
    yield Case("attention", f"embedding gather + causal attention (einsum), batch "
               f"{sizes['batch']}, T={sizes['steps']}, width {sizes['width']}, vocabulary "
               f"{sizes['vocabulary']}, loss+gradients", partial(hand_attention, *fixed, *weights),
               hand_attention(*fixed, *weights), setups)


def cold_start(adapter, f, args):
    """A run that builds, differentiates and compiles f, then calls it once."""
    return lambda: adapter.grad(f, args, (0,), value=True)()


def compile_cases(cfg):
    steps = CHAIN_NODES // NODES_PER_CHAIN_STEP
    y = cfg.rng.uniform(-0.5, 0.5, 4)
    with sg.use_graph() as graph:
        y0 = sg.var("y", shape=y.shape)
        f = chain(steps, sg, y0)
        sg.grad(f, y0)
        nodes = graph.number_of_nodes()
    f = partial(chain, steps)
    setups = {}
    for a in cfg.adapters:
        if not a.compiles:
            setups[a.label] = "n/a (no compile step)"
        elif cfg.quick and a.label == "PyTensor":
            setups[a.label] = "skipped (--quick)"
        elif a.label == "PyTensor":
            # its rewriter runs past the time limit on this chain (tests/benchmarks/README.md),
            # and the alarm that stops it landed in JAX's garbage-collection callback, after
            # which a two-thread run hung; a one-thread run that met it crashed at its end
            setups[a.label] = "> 120 s (not run: see README)"
        else:
            setups[a.label] = partial(cold_start, a, f, (y,))
    # the chain settles on +-pi, where each link halves the gradient: after ~1,100 links the
    # gradient underflows (to 0, a subnormal or, flushed, the smallest normal), so errors are
    # taken relative to max(|want|, 1)
    yield Case("compile", f"cold start, {nodes:,}-node gradient (s)", None,
               chain_reference(y, steps), setups, floor=1.0)


WORKLOADS = {"rosenbrock": rosenbrock_cases, "mlp": mlp_cases, "tanh": tanh_cases,
             "hessian": hessian_cases, "scalar": scalar_cases, "map": map_cases,
             "compile": compile_cases, "conv": conv_cases, "gp": gp_cases,
             "rnn_scan": rnn_scan_cases, "rnn_unrolled": rnn_unrolled_cases,
             "sparse": sparse_cases, "gaussians": gaussians_cases, "attention": attention_cases}


# -- measuring ---------------------------------------------------------------------------------

class TimeLimit(BaseException):
    """Not an Exception: PyTensor's rewriter logs and skips rewrites that raise Exceptions."""


@contextmanager
def time_limit(seconds):
    """Raise TimeLimit in the main thread after ``seconds`` (at the next Python instruction),
    and again every second should something catch it."""
    def expire(signum, frame):
        raise TimeLimit
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def disagreement(got, want, floor=0.0):
    """max |got - want| / max(max |want|, floor): scale-relative, robust to entries near 0."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return np.inf
    scale = max(float(np.max(np.abs(want), initial=0.0)), floor, np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def sample(run, number):
    """Seconds per call of ``number`` calls of ``run``, garbage collection off (as timeit), or
    as ``run.timed`` measures them where it has it (FreshProcessColdStart).

    Each call's results are kept until the next call returns, as a loop using them keeps them
    (``grads = step(params)``). Dropped at once, they leave the top of glibc's heap free at the end
    of every call, which glibc returns to the system and the next call faults back in, page by
    page, a cost of NumPy code in a loop that drops its results, not of NumPy code in a training
    loop (the MLP's figures: README.md in this folder)."""
    if hasattr(run, "timed"):
        return sum(run.timed() for _ in range(number)) / number
    gc.disable()
    try:
        start = time.perf_counter()
        result = None
        for _ in range(number):
            result = run()      # noqa: F841 (held until the next call has returned)
        return (time.perf_counter() - start) / number
    finally:
        gc.enable()


@dataclass
class Row:
    case: Case
    seconds: dict = field(default_factory=dict)     # label -> median seconds per call
    cpu_seconds: dict = field(default_factory=dict)     # label -> median CPU seconds per call
    errors: dict = field(default_factory=dict)      # label -> relative error vs want
    cells: dict = field(default_factory=dict)       # label -> text instead of a time
    failures: list = field(default_factory=list)


def measure(case, adapters, opts):
    """Warm up and check every implementation, then time them round robin."""
    row = Row(case)
    runs = {}
    implementations = ([("hand-written", lambda: case.hand, Adapter())] if case.hand else [])
    implementations += [(a.label, case.setups[a.label], a) for a in adapters]
    for label, setup, adapter in implementations:
        if isinstance(setup, str):
            row.cells[label] = setup
            continue
        try:
            with time_limit(opts.limit):
                start = time.perf_counter()
                run = setup()
                result = run()
                first = time.perf_counter() - start
        except TimeLimit:
            row.cells[label] = f"> {opts.limit:g} s"
            continue
        except Exception as error:          # a broken implementation must not hide the others
            row.cells[label] = "error"
            row.failures.append(f"{case.name}: {label} raised {type(error).__name__}: {error}")
            continue
        got = adapter.numpy(result)
        if len(got) != len(case.want):
            row.failures.append(f"{case.name}: {label} returned {len(got)} results, "
                                f"expected {len(case.want)}")
            row.cells[label] = "error"
            continue
        row.errors[label] = max(disagreement(g, w, case.floor) for g, w in zip(got, case.want))
        if not row.errors[label] <= RTOL:
            row.failures.append(f"{case.name}: {label} disagrees with the reference "
                                f"(max relative error {row.errors[label]:.1e} > {RTOL:g})")
        runs[label] = run
        row.seconds[label] = []
        print(f"    {label:<16} first call {first:8.3f} s, error {row.errors[label]:.1e}",
              file=sys.stderr, flush=True)
    if case.hand is None:
        # cold starts: each run builds everything again; first calls were the warm-up
        numbers = {label: 1 for label in runs}
    else:
        numbers = {label: max(1, round(opts.min_sample / max(sample(run, 1), 1e-9)))
                   for label, run in runs.items()}
    labels = list(runs)
    for r in range(opts.repeats):
        gc.collect()
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            cpu = time.process_time()
            row.seconds[label].append(sample(runs[label], numbers[label]))
            row.cpu_seconds.setdefault(label, []).append((time.process_time() - cpu)
                                                         / numbers[label])
    row.seconds = {label: statistics.median(s) for label, s in row.seconds.items()}
    row.cpu_seconds = {label: statistics.median(s) for label, s in row.cpu_seconds.items()}
    return row


# -- threads -----------------------------------------------------------------------------------

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
# the variables this machine may set to pin OpenBLAS to an older kernel (see the env notes)
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
GEMM_SHAPE = (128, 784, 500)        # the MLP's first layer
DISOBEYING = 1.5    # this much faster than one core's NumPy product: more than one core at work
BUSY_CORES = 1.2    # CPU seconds per second above one core's, measurement noise allowed


def idlest_cpu(cpus, seconds=0.5):
    """The CPU of ``cpus`` idle longest over the next ``seconds`` (/proc/stat): pinned to a busy
    one, a one-thread run would wait for it while another core sits idle."""
    def idle_ticks():
        with open("/proc/stat") as stat:
            fields = [line.split() for line in stat if line.startswith("cpu")]
        return {int(f[0][3:]): int(f[4]) + int(f[5]) for f in fields if f[0] != "cpu"}
    try:
        before = idle_ticks()
        time.sleep(seconds)
        after = idle_ticks()
    except (OSError, ValueError, IndexError):
        return min(cpus)
    return max(sorted(cpus), key=lambda cpu: after.get(cpu, 0) - before.get(cpu, 0))


def thread_environment(threads):
    """This process's environment with every library told ``threads``, and OpenBLAS left to pick
    its own kernel."""
    environment = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
    environment.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    if threads == 1:
        environment["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"),
                                                          ONE_THREAD_XLA_FLAGS)))
    return environment


def run_thread_settings(settings, argv):
    """Run this script once per thread count in ``settings``, each in a process of its own with
    its environment and CPUs set before it starts; True when every run passed."""
    cpus = os.sched_getaffinity(0)
    passed = True
    for threads in settings:
        allowed = {idlest_cpu(cpus)} if threads == 1 else cpus
        print(f"\n## {threads} thread{'s' if threads > 1 else ''}\n", flush=True)
        # faulthandler: a crash in a native library says where it happened
        done = subprocess.run([sys.executable, "-X", "faulthandler", os.path.abspath(__file__),
                               *argv, "--in-process", str(threads)],
                              env=thread_environment(threads),
                              preexec_fn=partial(os.sched_setaffinity, 0, allowed))
        if done.returncode != 0:
            print(f"FAILED: the run on {threads} thread(s) exited with status {done.returncode}",
                  flush=True)
            passed = False
    return passed


def thread_lines(threads):
    """This process's thread setting, and what threadpoolctl finds loaded."""
    cpus = sorted(os.sched_getaffinity(0))
    lines = [f"threads: {threads}, on CPU{'s' if len(cpus) > 1 else ''} "
             f"{', '.join(map(str, cpus))} of {os.cpu_count()}; "
             + ", ".join(f"{v}={os.environ.get(v, 'unset')}"
                         for v in (*THREAD_VARIABLES, "XLA_FLAGS", *KERNEL_VARIABLES))]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return lines + ["thread pools: threadpoolctl not installed (pip install threadpoolctl)"]
    for pool in threadpool_info():
        lines.append(f"thread pool: {pool['internal_api']} {pool.get('version') or ''} "
                     f"({pool['user_api']}, {os.path.basename(pool['filepath'])}), kernel "
                     f"{pool.get('architecture', 'n/a')}, {pool['num_threads']} threads, "
                     f"{pool.get('threading_layer', 'n/a')}")
    if "numba" in sys.modules:
        import numba
        lines.append(f"Numba {numba.__version__}: {numba.get_num_threads()} threads")
    return lines


def timed_with_cpu(run, seconds=0.05, repeats=7):
    """(median seconds per call, median CPU seconds of this process per call)."""
    run()
    number = max(1, round(seconds / max(sample(run, 1), 1e-9)))
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        sample(run, number)
        cpus.append((time.process_time() - cpu) / number)
        walls.append((time.perf_counter() - wall) / number)
    return statistics.median(walls), statistics.median(cpus)


def gemm_check(found, threads):
    """(lines, names of libraries that do not obey): a 128x784x500 product in each library, its
    time as a ratio to the CPU time of NumPy's on one thread (limited with threadpoolctl), and the
    CPU seconds it used per second. CPU time, not elapsed time, is one core's work: on a shared
    machine a process gets part of a core, which slows its clock time, never its CPU time."""
    rng = np.random.default_rng(SEED)
    m, k, n = GEMM_SHAPE
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    try:
        from threadpoolctl import threadpool_limits
        one_thread = threadpool_limits(limits=1, user_api="blas")
    except ImportError:     # then the base is NumPy at this process's setting
        one_thread = contextlib.nullcontext()
    with one_thread:
        _, one_core = timed_with_cpu(lambda: a @ b)
    runs = [("NumPy", lambda: a @ b)]
    runs += [(adapter.label, adapter.gemm(a, b)) for adapter in found]
    lines = [f"GEMM {m}x{k}x{n}: NumPy on one thread {duration(one_core)} of CPU (the base); "
             "each library's time as a ratio to it, and the CPU seconds it used per second"]
    disobeying = []
    for label, run in runs:
        if run is None:
            continue
        seconds, cpu = timed_with_cpu(run)
        load = cpu / seconds
        flag = ""
        if threads == 1 and (one_core / seconds > DISOBEYING or load > BUSY_CORES):
            flag = " <- faster than one core allows: not on one thread"
            disobeying.append(label)
        lines.append(f"  {label}: {ratio(seconds / one_core)} ({duration(seconds)}), "
                     f"CPU {load:.2f}{flag}")
    return lines, disobeying


def load_average():
    return "load average {:.2f}, {:.2f}, {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


# -- reporting ---------------------------------------------------------------------------------

def duration(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def ratio(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def results_table(rows, labels, measure="seconds"):
    """The table of ``measure``: each row's ``seconds`` (elapsed) or ``cpu_seconds``."""
    header = ["workload", *labels, "hand-written NumPy", "max rel. error"]
    lines = []
    for row in rows:
        seconds = getattr(row, measure)
        hand = seconds.get("hand-written")
        cells = [row.case.name]
        for label in labels:
            if label in row.cells:
                cells.append(row.cells[label])
            elif hand is None:
                cells.append(f"{seconds[label]:.2f} s")
            else:
                cells.append(ratio(seconds[label] / hand))
        cells.append(duration(hand) if hand is not None else "—")
        errors = row.errors.values()
        cells.append(f"{max(errors):.0e}" if errors else "—")
        lines.append(cells)
    return header, lines


def markdown(header, lines):
    out = ["| " + " | ".join(header) + " |",
           "| --- |" + " ---: |" * (len(header) - 1)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in lines]
    return "\n".join(out)


def checkout():
    """The checkout's commit, marked "+ changes" when symgrad/ differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=_common.ROOT, capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    return commit + (" + changes" if git("status", "--porcelain", "symgrad") else "")


def machine_lines(found, missing):
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"machine: {model}, {os.cpu_count()} cores online, "
             f"{platform.system()} {platform.release()}",
             f"Python {platform.python_version()}, NumPy {np.__version__}, "
             f"SciPy {scipy.__version__}; symgrad {sg.__version__} at {checkout()}, "
             f"backends {', '.join(symgrad.api.BACKENDS)}"]
    lines += [f"{a.label} {a.version}" + (f" ({a.note})" if a.note else "")
              for a in found if not isinstance(a, Symgrad)]
    lines += [f"left out: {note}" for note in missing]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, n=1e5 Rosenbrock and the slowest peers' worst cases "
                             "skipped")
    parser.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                        help=f"workloads to run, among {', '.join(WORKLOADS)}")
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="also write the table (with the machine lines) to FILE")
    parser.add_argument("--peers", default=None, metavar="NAME[,NAME...]",
                        help=f"peers to run, among {', '.join(m for m, _ in PEERS)} (default all)")
    parser.add_argument("--repeats", type=int, default=None, help="timing rounds (7; --quick 3)")
    parser.add_argument("--threads", default="both", choices=("1", "all", "both"),
                        help="one thread, all cores, or both in turn (default), each run in a "
                             "process of its own")
    parser.add_argument("--in-process", type=int, default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.repeats = opts.repeats or (3 if opts.quick else 7)
    opts.min_sample = 0.02 if opts.quick else 0.1     # seconds of calls per timing
    opts.limit = 30.0 if opts.quick else 120.0        # seconds allowed for setup + first call
    names = list(WORKLOADS) if opts.only is None else opts.only.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose among "
                     f"{', '.join(WORKLOADS)}")

    if opts.in_process is None:
        cores = len(os.sched_getaffinity(0))
        settings = {"1": [1], "all": [cores], "both": sorted({1, cores})}[opts.threads]
        if opts.markdown:
            open(opts.markdown, "w").close()
        argv = sys.argv[1:] if argv is None else list(argv)
        if not run_thread_settings(settings, argv):
            raise SystemExit(1)
        return
    threads = opts.in_process

    started = time.perf_counter()
    found, missing = adapters(None if opts.peers is None else opts.peers.split(","), threads)
    header_lines = machine_lines(found, missing) + thread_lines(threads)[:1]
    header_lines.append(f"{datetime.date.today()}; {opts.repeats} rounds, medians; "
                        f"{'--quick' if opts.quick else 'full run'}; at the start "
                        + load_average())
    print("\n".join(header_lines), flush=True)
    gemm_lines, disobeying = gemm_check(found, threads)
    pool_lines = thread_lines(threads)[1:]
    print("\n".join(gemm_lines + pool_lines), flush=True)
    cfg = Config(found, opts.quick)
    rows = []
    for name in names:
        for case in WORKLOADS[name](cfg):
            print(f"  {case.name}", file=sys.stderr, flush=True)
            rows.append(measure(case, found, opts))

    labels = [a.label for a in found]
    header, lines = results_table(rows, labels)
    # pools loaded since the start (Numba's threading layer, PyTorch's OpenMP...)
    pool_lines += [line for line in thread_lines(threads)[1:] if line not in pool_lines]
    pool_lines.append(f"at the end: {load_average()}")
    print("\n".join(pool_lines))
    print("\nmedian time per call relative to hand-written NumPy (lower is faster); "
          "cold start rows in seconds\n")
    print(markdown(header, lines), flush=True)
    tables = markdown(header, lines)
    if threads == 1:
        # one core's work whatever share of it the process got: on a loaded machine the elapsed
        # time also counts the waits, which favour a process of more threads (the scheduler
        # shares a core between threads, not processes)
        cpu_table = markdown(*results_table(rows, labels, "cpu_seconds"))
        print("\nCPU time per call relative to hand-written NumPy's\n")
        print(cpu_table, flush=True)
        tables += "\n\nCPU time per call, relative to hand-written NumPy's:\n\n" + cpu_table
    failures = [f for row in rows for f in row.failures]
    elapsed = time.perf_counter() - started
    print(f"\nwhole run: {elapsed:.0f} s")
    if disobeying:
        print(f"WARNING: on {threads} thread, {', '.join(disobeying)} computed the product more "
              f"than {DISOBEYING}x faster than NumPy on one core")
    if opts.markdown:
        with open(opts.markdown, "a") as out:
            out.write(f"**{threads} thread{'s' if threads > 1 else ''}**\n\n"
                      + "  \n".join(header_lines + gemm_lines + pool_lines) + "\n\n"
                      + tables + "\n\n")
    if failures:
        print("\n".join(f"FAILED: {f}" for f in failures))
        raise SystemExit(1)
    print(f"all results agree with their references (tolerance {RTOL:g} relative)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rnn-cold-child"]:
        rnn_cold_child(sys.argv[2])
    else:
        main()
