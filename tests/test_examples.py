"""Every script in examples/ runs as `python examples/NAME.py`, exits 0 and prints the right numbers."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"



def run_example(name):
    """Run one example in a fresh interpreter, as a user would; return its standard output."""
    env = dict(os.environ)
    # find the package of this checkout even when symgrad is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # the timeout only stops a hung example: the CNN trains for about a minute on a quiet machine
    # and several times that on a loaded one, which is no failure
    completed = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, (f"{name} exited with {completed.returncode}\n"
                                       f"--- stdout ---\n{completed.stdout[-3000:]}\n"
                                       f"--- stderr ---\n{completed.stderr[-3000:]}")
    return completed.stdout


def load_example(name):
    """Import examples/NAME.py as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == ["cnn_digits.py", "hessian_and_hvp.py", "ipopt_bratu.py", "mlp.py",
                       "mnist_idx.py", "textbook_gradients.py"]


def test_textbook_gradients():
    out = run_example("textbook_gradients.py")
    # (x + y) * z at (-2, 5, -4), with operators and with sg.parse
    assert "operators: f = -12, (df/dx, df/dy, df/dz) = (-4, -4, 3)" in out
    assert "parsed:    f = -12, (df/dx, df/dy, df/dz) = (-4, -4, 3)" in out
    # (x + y) * max(y, z)
    assert "operators: f = 15, (df/dx, df/dy, df/dz) = (5, 8, 0)" in out
    assert "parsed:    f = 15, (df/dx, df/dy, df/dz) = (5, 8, 0)" in out
    assert out.count("is the same node: True") == 2
    # the graph tables (with values) and the emitted sources are printed
    assert out.count("(* marks the outputs") == 2
    assert "np.maximum(y, z)" in out and "np.sign(t3) * 0.5 + 0.5" in out
    assert re.search(r"^d_out_d_y \*\s+grad\s+add\s+\(\)\s+8\s", out, re.M)
    assert out.count("def f(") == 3
    # tanh derivatives of order 0..3 at 0.5 against their closed forms
    th = np.tanh(0.5)
    exact = [th, 1 - th**2, -2 * th * (1 - th**2), -2 * (1 - th**2) * (1 - 3 * th**2)]
    printed = [float(v) for v in re.findall(r"^order \d of tanh at t=0.5: (\S+)", out, re.M)]
    np.testing.assert_allclose(printed, exact, rtol=1e-11)
    # third derivative of x**5 at 2
    assert re.search(r"d\^3/dx\^3 x\*\*5 = .* = 60\*x\*\*2; at x=2: 240$", out, re.M)


def test_mlp_example_trains():
    out = run_example("mlp.py")
    # the compiled step is printed: plain NumPy with the signature
    assert "def f(X, Y, W1, b1, W2, b2):" in out
    assert "np." in out and " @ " in out
    losses = [float(v) for v in re.findall(r"^step\s+\d+\s+loss (\S+)$", out, re.M)]
    assert len(losses) >= 5
    assert all(np.isfinite(losses))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses   # decreases at every step
    assert losses[-1] < 0.5 * losses[0]
    assert "decreased yes" in out


def test_hessian_and_hvp_example():
    out = run_example("hessian_and_hvp.py")
    differences = dict(re.findall(r"^  (value|gradient|hvp|hessian)\s+(\S+)$", out, re.M))
    assert sorted(differences) == ["gradient", "hessian", "hvp", "value"]
    assert all(float(d) < 1e-8 for d in differences.values()), differences
    match = re.search(r"Newton-CG: success=(\w+), .* max \|x - 1\| = (\S+)$", out, re.M)
    assert match and match[1] == "True" and float(match[2]) < 1e-6


def test_rosenbrock_matches_scipy_in_process():
    example = load_example("hessian_and_hvp.py")
    value_and_grad, hvp_fn, hessian_fn = example.build_rosenbrock(example.N)
    differences = example.compare_with_scipy(value_and_grad, hvp_fn, hessian_fn)
    scale = differences.pop("scale")
    assert all(d <= 1e-12 * scale for d in differences.values()), differences


def test_rosenbrock_through_matrix_products_matches_scipy():
    """Rosenbrock again, its shifts written as products with constant selection matrices instead of
    slices, so that the rules of matmul (not of indexing) carry the second derivatives."""
    from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

    import symgrad as sg

    n = 50
    x, v = sg.var("x", shape=(n,)), sg.var("v", shape=(n,))
    head = sg.const(np.eye(n)[:-1]) @ x      # x[:-1]
    tail = sg.const(np.eye(n)[1:]) @ x       # x[1:]
    f = sg.sum(100 * (tail - head ** 2) ** 2 + (1 - head) ** 2)
    value_and_grad = sg.compile([f, sg.grad(f, x)], inputs=[x])
    hvp_fn = sg.compile(sg.hvp(f, x, v), inputs=[x, v])
    hessian_fn = sg.compile(sg.hessian(f, x), inputs=[x])

    rng = np.random.default_rng(1)
    x0, v0 = rng.uniform(-2, 2, n), rng.standard_normal(n)
    value, gradient = value_and_grad(x0)
    np.testing.assert_allclose(value, rosen(x0), rtol=1e-13)
    np.testing.assert_allclose(gradient, rosen_der(x0), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(hvp_fn(x0, v0), rosen_hess_prod(x0, v0), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(hessian_fn(x0), rosen_hess(x0), rtol=1e-12, atol=1e-10)


def test_cnn_digits_trains_to_97_percent():
    out = run_example("cnn_digits.py")
    accuracies = [float(a) for a in re.findall(r"^epoch\s+\d+\s+loss \S+\s+test accuracy (\S+)$",
                                               out, re.M)]
    assert len(accuracies) == 12
    final = re.search(r"^test accuracy (\S+) after 12 epochs", out, re.M)
    assert final and float(final[1]) == accuracies[-1] >= 0.97, out
    # the README quotes this run's accuracy, rounded as it writes it
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    quoted = re.findall(r"`examples/cnn_digits\.py` trains one on scikit-learn's digits to "
                        r"([\d.]+) %", readme)
    assert len(quoted) == 1, quoted
    decimals = len(quoted[0].partition(".")[2])
    assert f"{100 * accuracies[-1]:.{decimals}f}" == quoted[0], (accuracies[-1], quoted)


def test_cnn_digits_gradients_of_every_layer_match_central_differences():
    """Each of the six parameters (two convolutions' filters and biases, the dense layer's),
    at the initial point on eight images: the gradient's projections on random directions and
    a few of its entries against central differences of the compiled loss."""
    example = load_example("cnn_digits.py")
    images, _, labels, _ = example.load_data()
    images, targets = images[:8], np.eye(10)[labels[:8]]
    loss_and_gradients, _, parameters = example.build_cnn()
    rng = np.random.default_rng(3)
    values = example.init_parameters(rng)
    values = [v + 0.1 * rng.standard_normal(v.shape) for v in values]    # biases not all zero
    _, *gradients = loss_and_gradients(images, targets, *values)
    step = 1e-6

    def loss_along(k, direction):
        plus, minus = list(values), list(values)
        plus[k], minus[k] = values[k] + step * direction, values[k] - step * direction
        return (loss_and_gradients(images, targets, *plus)[0]
                - loss_and_gradients(images, targets, *minus)[0]) / (2 * step)

    for k, (parameter, gradient) in enumerate(zip(parameters, gradients)):
        assert gradient.shape == values[k].shape, parameter.name
        # unit directions: a step of 1e-6 in the parameters' space meets no kink of a ReLU or
        # a pooling window but with negligible probability
        directions = [d / np.linalg.norm(d) for d in
                      (rng.standard_normal(values[k].shape) for _ in range(3))]
        for index in rng.choice(values[k].size, size=4, replace=False):
            unit = np.zeros(values[k].size)
            unit[index] = 1.0
            directions.append(unit.reshape(values[k].shape))
        for direction in directions:
            np.testing.assert_allclose(np.vdot(gradient, direction), loss_along(k, direction),
                                       rtol=1e-5, atol=1e-8, err_msg=parameter.name)


def test_ipopt_example_hands_ipopt_the_hand_assembled_jacobian_and_hessian():
    # without IPOPT: the matrices the example gives it, at the known solution, against the
    # Jacobian [A - lam diag(exp u), -I] and the Lagrangian's Hessian, block diagonal
    # (I - lam diag(p exp u), alpha I + beta A), assembled with SciPy; IPOPT's lower triangle
    import scipy.sparse
    example = load_example("ipopt_bratu.py")
    n = 10
    u, f, p, target = example.known_solution(n)
    problem = example.BratuControl(n, target)
    x = np.concatenate([u, f])
    A = example.laplacian(n)
    eye = scipy.sparse.identity(n * n)
    jacobian = scipy.sparse.hstack([A - example.LAM * scipy.sparse.diags_array(np.exp(u)), -eye])
    hessian = scipy.sparse.block_diag([eye - example.LAM * scipy.sparse.diags_array(p * np.exp(u)),
                                       example.ALPHA * eye + example.BETA * A])
    rows, columns = problem.jacobianstructure()
    mine = scipy.sparse.coo_array((problem.jacobian(x), (rows, columns)), shape=jacobian.shape)
    np.testing.assert_allclose(mine.toarray(), jacobian.toarray(), rtol=1e-12, atol=1e-9)
    rows, columns = problem.hessianstructure()
    assert np.all(rows >= columns)
    mine = scipy.sparse.coo_array((problem.hessian(x, p, 1.0), (rows, columns)),
                                  shape=hessian.shape).toarray()
    np.testing.assert_allclose(mine, np.tril(hessian.toarray()), rtol=1e-12, atol=1e-9)
    # the optimality conditions hold at the known solution: the example's problem is right
    _, gradient = problem.value_and_gradient(x)
    np.testing.assert_allclose(gradient + jacobian.T @ p, 0.0, atol=1e-9)
    np.testing.assert_allclose(problem.constraints(x), 0.0, atol=1e-9)
    assert np.linalg.eigvalsh(hessian.toarray()).min() > 0


def test_ipopt_example_finds_the_known_solution():
    pytest.importorskip("cyipopt")
    out = run_example("ipopt_bratu.py")
    assert "IPOPT status 0:" in out
    assert "n = 40: 3200 unknowns, 1600 constraints; Jacobian 9440 nonzeros" in out
    differences = [float(v) for v in re.findall(r"largest difference .*: (\S+) \(relative\)", out)]
    assert len(differences) == 2 and max(differences) < 1e-8


def test_ipopt_example_without_cyipopt_builds_the_problem_and_says_so():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    hidden = ("import runpy, sys; sys.modules['cyipopt'] = None; "
              "runpy.run_path('examples/ipopt_bratu.py', run_name='__main__')")
    completed = subprocess.run([sys.executable, "-c", hidden], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "n = 40: 3200 unknowns, 1600 constraints" in completed.stdout
    assert "IPOPT not run: this example needs cyipopt" in completed.stdout
