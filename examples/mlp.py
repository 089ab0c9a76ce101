"""A two-layer perceptron (784 -> 500 -> 10) trained by plain gradient descent on synthetic data.

Run with ``python examples/mlp.py``. It builds the model symbolically, compiles the loss together
with its gradients into one NumPy function (whose source it prints: no framework, just ``np.`` calls
and ``@``), then takes a few gradient-descent steps on random data and prints the loss at each step.

``build_mlp()`` is importable (tests/test_mlp.py checks its gradients against hand-written backprop).
"""

import sys
from pathlib import Path

import numpy as np

try:
    import symgrad as sg
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import symgrad as sg

N_IN, N_HIDDEN, N_OUT = 784, 500, 10
WEIGHT_DECAY = 1e-4


def build_mlp():
    """The model of the issue, in the current default graph.

    Returns ``(loss, params, step)``: the scalar loss expression, the dict of variables
    ``{"X", "Y", "W1", "b1", "W2", "b2"}`` and the compiled function
    ``step(X, Y, W1, b1, W2, b2) -> (loss, dW1, db1, dW2, db2)``. The batch size ``"n"`` is a
    symbolic dimension, bound when ``step`` is called.
    """
    X = sg.var("X", shape=("n", 784)); Y = sg.var("Y", shape=("n", 10))
    W1 = sg.var("W1", shape=(784, 500)); b1 = sg.var("b1", shape=(500,))
    W2 = sg.var("W2", shape=(500, 10)); b2 = sg.var("b2", shape=(10,))
    logits = sg.relu(X @ W1 + b1) @ W2 + b2
    # mean cross-entropy of one-hot labels Y, plus an L2 penalty on the weight matrices
    loss = -sg.mean(sg.sum(Y * sg.log_softmax(logits, axis=1), axis=1)) + 1e-4 * (sg.sum(W1**2) + sg.sum(W2**2))
    # One compiled function returns the loss and the four gradients (symbol to symbol: the
    # gradients are expressions appended to the loss's graph, compiled with it, sharing its nodes).
    step = sg.compile([loss, *sg.grad(loss, [W1, b1, W2, b2])], inputs=[X, Y, W1, b1, W2, b2])
    params = {"X": X, "Y": Y, "W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return loss, params, step


def init_weights(rng):
    """He-initialised weights, zero biases (float64)."""
    return {
        "W1": rng.standard_normal((N_IN, N_HIDDEN)) * np.sqrt(2.0 / N_IN),
        "b1": np.zeros(N_HIDDEN),
        "W2": rng.standard_normal((N_HIDDEN, N_OUT)) * np.sqrt(2.0 / N_HIDDEN),
        "b2": np.zeros(N_OUT),
    }


def synthetic_data(rng, n):
    """Random inputs labelled by a random linear "teacher": a learnable 10-class problem."""
    X = rng.standard_normal((n, N_IN))
    teacher = rng.standard_normal((N_IN, N_OUT))
    Y = np.eye(N_OUT)[np.argmax(X @ teacher, axis=1)]   # one-hot rows
    return X, Y


def train(step, steps=15, n=128, learning_rate=0.05, seed=0):
    """Full-batch gradient descent; returns the list of losses, one per step."""
    rng = np.random.default_rng(seed)
    weights = init_weights(rng)
    X, Y = synthetic_data(rng, n)
    losses = []
    for i in range(steps):
        loss, dW1, db1, dW2, db2 = step(X, Y, **weights)
        losses.append(float(loss))
        print(f"step {i:2d}  loss {float(loss):.6f}")
        for name, gradient in zip(("W1", "b1", "W2", "b2"), (dW1, db1, dW2, db2)):
            weights[name] = weights[name] - learning_rate * gradient
    return losses


def main():
    _, _, step = build_mlp()
    print(step.source)
    losses = train(step)
    print(f"loss: first {losses[0]:.6f}, last {losses[-1]:.6f}, "
          f"decreased {'yes' if losses[-1] < losses[0] else 'NO'}")
    assert losses[-1] < losses[0]


if __name__ == "__main__":
    main()
