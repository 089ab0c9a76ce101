"""The MLP of examples/mlp.py: symgrad's gradients against backprop written by hand in NumPy."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mlp.py"
DECAY = 1e-4
RTOL = 1e-9


def load_example():
    spec = importlib.util.spec_from_file_location("example_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def step():
    """The compiled step(X, Y, W1, b1, W2, b2) -> (loss, dW1, db1, dW2, db2), built in the test's
    fresh graph (see conftest.py)."""
    _, _, step = load_example().build_mlp()
    return step


def random_problem(n, seed):
    """float64 weights of the right scale (so the ReLUs are mixed on and off) and a one-hot batch."""
    rng = np.random.default_rng(seed)
    weights = {
        "W1": rng.standard_normal((784, 500)) * np.sqrt(2.0 / 784),
        "b1": rng.standard_normal(500) * 0.1,
        "W2": rng.standard_normal((500, 10)) * np.sqrt(2.0 / 500),
        "b2": rng.standard_normal(10) * 0.1,
    }
    X = rng.standard_normal((n, 784))
    Y = np.eye(10)[rng.integers(0, 10, n)]
    return X, Y, weights


def hand_backprop(X, Y, W1, b1, W2, b2):
    """Forward and backward passes written out by hand. Returns (loss, dW1, db1, dW2, db2)."""
    n = X.shape[0]
    # forward
    h_pre = X @ W1 + b1
    h = np.maximum(h_pre, 0.0)
    logits = h @ W2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)           # stable log-softmax
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.mean(np.sum(Y * log_softmax, axis=1)) + DECAY * (np.sum(W1**2) + np.sum(W2**2))
    # backward: mean cross-entropy of one-hot rows -> (softmax - Y) / n
    d_logits = (np.exp(log_softmax) - Y) / n
    dW2 = h.T @ d_logits + 2 * DECAY * W2
    db2 = d_logits.sum(axis=0)
    d_h = d_logits @ W2.T
    d_h_pre = d_h * (h_pre > 0)                                     # ReLU mask
    dW1 = X.T @ d_h_pre + 2 * DECAY * W1
    db1 = d_h_pre.sum(axis=0)
    return loss, dW1, db1, dW2, db2


def relative_error(got, want):
    """max |got - want| / max |want|: relative to the array's scale, robust to entries near 0."""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def check_against_hand_backprop(step, n, seed):
    X, Y, weights = random_problem(n, seed)
    got = step(X, Y, **weights)
    want = hand_backprop(X, Y, **weights)
    assert len(got) == 5
    names = ["loss", "dW1", "db1", "dW2", "db2"]
    errors = {}
    for name, g, w in zip(names, got, want):
        g = np.asarray(g)
        assert g.shape == np.shape(w), name
        assert g.dtype == np.float64, name
        errors[name] = relative_error(g, w)
    assert max(errors.values()) <= RTOL, errors
    # element-wise too, with an absolute floor far below every gradient's scale
    for name, g, w in zip(names, got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=1e-12 * np.max(np.abs(w)), err_msg=name)
    return errors


def test_hand_backprop_is_itself_right():
    """Guard the reference: central differences of the hand-written loss on a few weights."""
    X, Y, weights = random_problem(4, seed=3)
    _, dW1, db1, dW2, db2 = hand_backprop(X, Y, **weights)
    analytic = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
    rng = np.random.default_rng(4)
    for name in ("W1", "b1", "W2", "b2"):
        for _ in range(3):
            index = tuple(rng.integers(0, s) for s in weights[name].shape)
            eps = 1e-6
            plus = {k: v.copy() for k, v in weights.items()}
            minus = {k: v.copy() for k, v in weights.items()}
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric = (hand_backprop(X, Y, **plus)[0] - hand_backprop(X, Y, **minus)[0]) / (2 * eps)
            assert numeric == pytest.approx(analytic[name][index], rel=1e-5, abs=1e-8)


def test_gradients_match_hand_backprop(step):
    check_against_hand_backprop(step, n=16, seed=0)


def test_symbolic_batch_size_is_bound_at_call_time(step):
    # the same compiled function, called with batches of other sizes
    check_against_hand_backprop(step, n=16, seed=1)
    check_against_hand_backprop(step, n=5, seed=2)
    check_against_hand_backprop(step, n=1, seed=5)


def test_mismatched_batch_sizes_are_rejected(step):
    import symgrad as sg

    X, Y, weights = random_problem(8, seed=0)
    with pytest.raises(sg.SymgradError, match="'Y'"):
        step(X, Y[:5], **weights)


def test_step_source_is_plain_numpy(step):
    source = step.source
    assert source.startswith("def f(X, Y, W1, b1, W2, b2):")
    assert "np." in source
    assert "@" in source
    assert "eval" not in source and "exec" not in source
    assert "import" not in source     # no framework: only the np namespace it is given
