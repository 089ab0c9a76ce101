"""Gradient, Hessian-vector product and Hessian of the Rosenbrock function, checked against SciPy.

Run with ``python examples/hessian_and_hvp.py`` (needs SciPy: ``pip install -e ".[dev]"``).

The n-dimensional Rosenbrock function is written once, with slicing, on a tensor variable ``x`` of
shape (50,):

    f(x) = sum(100 * (x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)

symgrad derives ``grad f`` (shape (50,)), ``hvp(f, x, v)`` (the Hessian times a direction ``v``,
computed as the gradient of <grad f, v> without ever forming the Hessian) and the full Hessian
(shape (50, 50)). The script prints the compiled sources, the largest absolute differences from
scipy.optimize.rosen / rosen_der / rosen_hess_prod / rosen_hess at a random point, and then runs
scipy.optimize.minimize(method="Newton-CG") driven by the compiled gradient and hvp.

``build_rosenbrock(n)`` is importable by the tests.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess, rosen_hess_prod

try:
    import symgrad as sg
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import symgrad as sg

N = 50


def build_rosenbrock(n=N):
    """Compile Rosenbrock in the current default graph.

    Returns ``(value_and_grad, hvp, hessian)``: ``value_and_grad(x) -> (f, grad)``,
    ``hvp(x, v) -> H v`` and ``hessian(x) -> H``.
    """
    x = sg.var("x", shape=(n,))
    v = sg.var("v", shape=(n,))
    f = sg.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    gradient = sg.grad(f, x)         # shape (n,)
    hv = sg.hvp(f, x, v)             # shape (n,): d/dx <grad f, v>, v held constant
    hessian = sg.hessian(f, x)       # shape (n, n)

    value_and_grad = sg.compile([f, gradient], inputs=[x])
    hvp_fn = sg.compile(hv, inputs=[x, v])
    hessian_fn = sg.compile(hessian, inputs=[x])
    return value_and_grad, hvp_fn, hessian_fn


def compare_with_scipy(value_and_grad, hvp_fn, hessian_fn, n=N, seed=0):
    """Max abs differences from SciPy's closed forms at a random point and direction."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-2.0, 2.0, n)
    v0 = rng.standard_normal(n)
    value, gradient = value_and_grad(x0)
    return {
        "value": float(abs(value - rosen(x0))),
        "gradient": float(np.max(np.abs(gradient - rosen_der(x0)))),
        "hvp": float(np.max(np.abs(hvp_fn(x0, v0) - rosen_hess_prod(x0, v0)))),
        "hessian": float(np.max(np.abs(hessian_fn(x0) - rosen_hess(x0)))),
        # scale of the compared numbers, to read the differences as relative errors
        "scale": float(np.max(np.abs(rosen_hess(x0)))),
    }


def newton_cg(value_and_grad, hvp_fn, n=N):
    """Minimise from the classic start (-1.2, 1, -1.2, 1, ...) with Newton-CG."""
    x0 = np.tile([-1.2, 1.0], n // 2 + 1)[:n]
    return minimize(lambda z: value_and_grad(z), x0, jac=True,   # fun returns (f, grad)
                    hessp=lambda z, p: hvp_fn(z, p), method="Newton-CG",
                    options={"xtol": 1e-10, "maxiter": 1000})


def main():
    value_and_grad, hvp_fn, hessian_fn = build_rosenbrock()
    print("# value and gradient")
    print(value_and_grad.source)
    print("# Hessian-vector product (no Hessian is formed)")
    print(hvp_fn.source)

    differences = compare_with_scipy(value_and_grad, hvp_fn, hessian_fn)
    print(f"max abs difference from scipy.optimize at a random point in [-2, 2]^{N} "
          f"(Hessian entries up to {differences['scale']:.0f}):")
    for name in ("value", "gradient", "hvp", "hessian"):
        print(f"  {name:<8} {differences[name]:.3e}")
    assert max(differences[k] for k in ("value", "gradient", "hvp", "hessian")) < 1e-8

    result = newton_cg(value_and_grad, hvp_fn)
    error = float(np.max(np.abs(result.x - 1.0)))
    print(f"Newton-CG: success={result.success}, iterations={result.nit}, "
          f"f={result.fun:.3e}, max |x - 1| = {error:.3e}")
    assert result.success and error < 1e-6


if __name__ == "__main__":
    main()
