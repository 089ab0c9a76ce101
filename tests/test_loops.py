"""sg.scan and sg.fori_loop (symgrad/ops/loops.py, symgrad/codegen/loops.py): loops kept as one
node, checked against the same loop unrolled in the graph, against central differences and
closed forms; the graph's size does not depend on the number of steps."""

import pickle

import numpy as np
import pytest

import symgrad as sg


def unrolled_scan(step, init, xs=None, length=None, reverse=False):
    """The loop scan stands for, written out step by step (the reference)."""
    if xs is not None:
        leaves = xs if isinstance(xs, tuple) else (xs,)
        length = leaves[0].shape[0]
    carry, ys = init, []
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        x = None if xs is None else (tuple(a[t] for a in xs) if isinstance(xs, tuple) else xs[t])
        carry, y = step(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or ys[0] is None:
        return carry, None
    if isinstance(ys[0], tuple):
        return carry, tuple(sg.stack([y[k] for y in ys]) for k in range(len(ys[0])))
    return carry, sg.stack(ys)


def flat(value):
    if value is None:
        return []
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flat(item)]
    return [value]


# -- the char-RNN of issue 21: tanh cell, batch 8, hidden 32, vocabulary 32 -----------------------

BATCH, HIDDEN, VOCABULARY = 8, 32, 32


def char_rnn(steps, looped):
    """The mean cross-entropy of a tanh RNN over ``steps`` one-hot characters, and its gradient
    in the weights and the initial state, as a scan (``looped``) or unrolled."""
    X = sg.var("X", shape=(steps, BATCH, VOCABULARY))
    Y = sg.var("Y", shape=(steps, BATCH, VOCABULARY))
    Wx = sg.var("Wx", shape=(VOCABULARY, HIDDEN))
    Wh = sg.var("Wh", shape=(HIDDEN, HIDDEN))
    b = sg.var("b", shape=(HIDDEN,))
    Wy = sg.var("Wy", shape=(HIDDEN, VOCABULARY))
    h0 = sg.var("h0", shape=(BATCH, HIDDEN))

    def step(h, xy):
        x, y = xy
        h = sg.tanh(x @ Wx + h @ Wh + b)
        return h, -sg.sum(y * sg.log_softmax(h @ Wy, axis=-1))

    _, losses = (sg.scan if looped else unrolled_scan)(step, h0, (X, Y))
    loss = sg.sum(losses) / steps
    params = [Wx, Wh, b, Wy, h0]
    return loss, sg.grad(loss, params), [X, Y, *params]


def rnn_data(steps, seed=0):
    rng = np.random.default_rng(seed)
    one_hot = np.eye(VOCABULARY)
    return [one_hot[rng.integers(0, VOCABULARY, (steps, BATCH))],
            one_hot[rng.integers(0, VOCABULARY, (steps, BATCH))],
            rng.normal(0, 0.3, (VOCABULARY, HIDDEN)), rng.normal(0, 0.1, (HIDDEN, HIDDEN)),
            rng.normal(0, 0.1, HIDDEN), rng.normal(0, 0.3, (HIDDEN, VOCABULARY)),
            rng.normal(0, 0.1, (BATCH, HIDDEN))]


def test_the_graph_does_not_grow_with_the_number_of_steps():
    sizes = []
    for steps in (10, 50, 200, 1000):
        with sg.use_graph() as graph:
            char_rnn(steps, looped=True)
            sizes.append(len(graph))
    assert len(set(sizes)) == 1, sizes


@pytest.mark.parametrize("steps", [10, 50, 200, 1000])
def test_char_rnn_against_the_unrolled_graph_and_differences(steps):
    with sg.use_graph():
        loss, grads, inputs = char_rnn(steps, looped=True)
        looped = sg.compile([loss, *grads], inputs=inputs)
    with sg.use_graph():
        loss, grads, inputs = char_rnn(steps, looped=False)
        unrolled = sg.compile([loss, *grads], inputs=inputs)
    data = rnn_data(steps)
    got, expected = looped(*data), unrolled(*data)
    # the same arithmetic, but sums of per-step gradients in another order
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # central differences along random directions of the parameters
    rng = np.random.default_rng(steps)
    for _ in range(3):
        directions = [rng.standard_normal(p.shape) for p in data[2:]]
        norm = np.sqrt(sum(np.vdot(d, d) for d in directions))
        directions = [d / norm for d in directions]
        eps = 1e-5
        plus = looped(*data[:2], *[p + eps * d for p, d in zip(data[2:], directions)])[0]
        minus = looped(*data[:2], *[p - eps * d for p, d in zip(data[2:], directions)])[0]
        along = sum(np.vdot(g, d) for g, d in zip(got[1:], directions))
        np.testing.assert_allclose((plus - minus) / (2 * eps), along, rtol=1e-6, atol=1e-9)


# -- an ODE integrator: RK4 over 1,000 steps of Lotka-Volterra ---------------------------------


def lotka_volterra(state, theta):
    prey, predator = state[0], state[1]
    return sg.stack([theta[0] * prey - theta[1] * prey * predator,
                     theta[3] * prey * predator - theta[2] * predator])


def rk4_final_loss(steps, dt=0.01):
    theta = sg.var("theta", shape=(4,))
    z0 = sg.var("z0", shape=(2,))

    def step(z, _):
        k1 = lotka_volterra(z, theta)
        k2 = lotka_volterra(z + 0.5 * dt * k1, theta)
        k3 = lotka_volterra(z + 0.5 * dt * k2, theta)
        k4 = lotka_volterra(z + dt * k3, theta)
        return z + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

    final, _ = sg.scan(step, z0, length=steps)
    return sg.sum((final - np.array([1.0, 0.5])) ** 2), theta, z0


THETA = np.array([1.1, 0.4, 0.4, 0.1])
Z0 = np.array([10.0, 5.0])


def central(f, x, eps=1e-6):
    return np.array([(f(x + e) - f(x - e)) / (2 * eps) for e in np.eye(x.size) * eps])


def test_rk4_gradient_and_hvp_against_differences():
    sizes = []
    for steps in (10, 1000):
        with sg.use_graph() as graph:
            loss, theta, z0 = rk4_final_loss(steps)
            g_theta, g_z0 = sg.grad(loss, [theta, z0])
            v_theta, v_z0 = sg.var("v_theta", shape=(4,)), sg.var("v_z0", shape=(2,))
            h_theta, h_z0 = sg.hvp(loss, [theta, z0], [v_theta, v_z0])
            fn = sg.compile([loss, g_theta, g_z0, h_theta, h_z0],
                            inputs=[theta, z0, v_theta, v_z0])
            sizes.append(len(graph))
    assert sizes[0] == sizes[1]     # 1,000 steps, a first and a second derivative
    v = [np.array([0.3, -0.2, 0.5, 0.1]), np.array([0.7, -0.4])]
    value, gt, gz, ht, hz = fn(THETA, Z0, *v)
    np.testing.assert_allclose(gt, central(lambda t: fn(t, Z0, *v)[0], THETA), rtol=1e-5)
    np.testing.assert_allclose(gz, central(lambda z: fn(THETA, z, *v)[0], Z0), rtol=1e-5)
    eps = 1e-5
    plus = fn(THETA + eps * v[0], Z0 + eps * v[1], *v)
    minus = fn(THETA - eps * v[0], Z0 - eps * v[1], *v)
    np.testing.assert_allclose(ht, (plus[1] - minus[1]) / (2 * eps), rtol=1e-5)
    np.testing.assert_allclose(hz, (plus[2] - minus[2]) / (2 * eps), rtol=1e-5)


# -- values against the unrolled loop --------------------------------------------------------------


def compare(build, inputs, data, **compile_options):
    with sg.use_graph():
        variables = [sg.var(name, shape=shape) for name, shape in inputs]
        looped = build(sg.scan, *variables)
        fn = sg.compile(looped, inputs=variables, **compile_options)
    with sg.use_graph():
        variables = [sg.var(name, shape=shape) for name, shape in inputs]
        reference = sg.compile(build(unrolled_scan, *variables), inputs=variables)
    got, expected = fn(*data), reference(*data)
    for a, b in zip(got if isinstance(got, tuple) else [got],
                    expected if isinstance(expected, tuple) else [expected]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    return fn


def tuples_of_carries(scan, a, b, w):
    def step(carry, x):
        u, (v, s) = carry
        x1, x2 = x
        u = sg.tanh(u * x1 + w @ v)
        v = v * 0.9 + x2 * s
        return (u, (v, s + sg.sum(u))), (u * s, sg.sum(v))
    final, ys = scan(step, (a[0], (b[0], 0.5 * sg.sum(w))), (a, b))
    return [*flat(final), *flat(ys)]


def test_tuples_of_carries_xs_and_ys():
    rng = np.random.default_rng(1)
    inputs = [("a", (5, 3)), ("b", (5, 3)), ("w", (3, 3))]
    compare(tuples_of_carries, inputs, [rng.standard_normal(s) for _, s in inputs])


def test_reverse_and_gradients_of_each_result():
    def build(scan, xs, c):
        final, ys = scan(lambda h, x: (sg.sin(h) * x + c, h * x), c * 1.0, xs, reverse=True)
        total = sg.sum(final ** 2) + sg.sum(ys * ys)
        return [final, ys, *sg.grad(total, [xs, c])]
    rng = np.random.default_rng(2)
    inputs = [("xs", (6, 4)), ("c", (4,))]
    compare(build, inputs, [rng.standard_normal(s) for _, s in inputs])


def test_a_step_without_xs_or_ys():
    def build(scan, c):
        final, ys = scan(lambda h, _: (sg.cos(h) + 0.1 * h, None), c, length=7)
        assert ys is None
        return [final, sg.grad(sg.sum(final), c)]
    compare(build, [("c", (3,))], [np.array([0.1, 0.5, -2.0])])


def test_zero_steps_give_the_initial_carry_and_an_empty_stack():
    x = sg.var("x", shape=(2,))
    final, ys = sg.scan(lambda c, _: (c * 2.0, c), x, length=0)
    fn = sg.compile([final, ys, sg.grad(sg.sum(final), x)], inputs=[x])
    value = np.array([1.0, 2.0])
    got_final, got_ys, gradient = fn(value)
    np.testing.assert_array_equal(got_final, value)
    assert got_final is not value
    assert got_ys.shape == (0, 2)
    np.testing.assert_array_equal(gradient, [1.0, 1.0])


def test_the_number_of_steps_may_be_a_named_dimension():
    xs = sg.var("xs", shape=("T", 3))
    w = sg.var("w", shape=(3,))
    final, ys = sg.scan(lambda c, x: (c * x + w, sg.sum(c)), w, xs)
    fn = sg.compile([final, ys, sg.grad(sg.sum(ys), w)], inputs=[xs, w])
    rng = np.random.default_rng(3)
    for steps in (1, 4):
        data = [rng.standard_normal((steps, 3)), rng.standard_normal(3)]
        carry, expected_ys = data[1], []
        for x in data[0]:
            expected_ys.append(carry.sum())
            carry = carry * x + data[1]
        got = fn(*data)
        np.testing.assert_allclose(got[0], carry)
        np.testing.assert_allclose(got[1], expected_ys)
        gradient = central(lambda v: fn(data[0], v)[1].sum(), data[1])
        np.testing.assert_allclose(got[2], gradient, rtol=1e-6)


def test_fori_loop():
    x = sg.var("x")
    fn = sg.compile([sg.fori_loop(2, 6, lambda i, v: v * x + i, x),
                     sg.grad(sg.fori_loop(2, 6, lambda i, v: v * x + i, x), x)], inputs=[x])
    value, gradient = fn(1.5)
    expected = lambda x: (((x * x + 2) * x + 3) * x + 4) * x + 5
    assert value == pytest.approx(expected(1.5))
    assert gradient == pytest.approx((expected(1.5 + 1e-6) - expected(1.5 - 1e-6)) / 2e-6)


# -- higher orders --------------------------------------------------------------------------------


def test_second_and_third_derivatives_of_a_scalar_loop():
    # c_{t+1} = c_t * x + 1 from c_0 = x, three steps: a polynomial in x
    x = sg.var("x")
    final, _ = sg.scan(lambda c, _: (c * x + 1.0, None), x, length=3)
    first = sg.grad(final, x)
    second = sg.grad(first, x)
    third = sg.grad(second, x)
    fn = sg.compile([final, first, second, third], inputs=[x])
    # x^4 + x^2 + x + 1
    assert fn(0.7) == pytest.approx((0.7 ** 4 + 0.7 ** 2 + 0.7 + 1, 4 * 0.7 ** 3 + 2 * 0.7 + 1,
                                     12 * 0.7 ** 2 + 2, 24 * 0.7))


def test_jacobian_hessian_and_jvp_against_the_unrolled_graph():
    def build(scan, xs, w):
        final, ys = scan(lambda h, x: (sg.tanh(h * w + x), sg.sin(h) * x), w * 0.5, xs)
        loss = sg.sum(ys ** 2) + sg.sum(final)
        return [sg.jacobian(ys, w), sg.jacobian(final, xs), sg.hessian(loss, w),
                sg.hessian(loss, xs), sg.jvp(ys, w, np.array([0.2, -0.3, 0.5]))]
    rng = np.random.default_rng(4)
    inputs = [("xs", (4, 3)), ("w", (3,))]
    compare(build, inputs, [rng.standard_normal(s) for _, s in inputs])


# -- errors: a failed call leaves the graph as it was ----------------------------------------------


def graph_state(graph):
    return sorted(graph.nodes), dict(graph.variables)


@pytest.mark.parametrize("step, message", [
    (lambda c, x: (c[:2], x),
     r"carry \(h\) enters the step with shape \(3,\).*leaves it with shape \(2,\)"),
    (lambda c, x: (c.astype("float32"), x), r"carry \(h\) .* dtype float64 .* dtype float32"),
    (lambda c, x: ((c, c), x), r"another structure"),
])
def test_a_carry_that_changes_is_refused_naming_it(step, message):
    with sg.use_graph() as graph:
        h, xs = sg.var("h", shape=(3,)), sg.var("xs", shape=(4, 3))
        before = graph_state(graph)
        with pytest.raises(sg.ShapeError, match=message):
            sg.scan(step, h, xs)
        assert graph_state(graph) == before


def test_a_carry_in_a_tuple_is_named_by_its_place():
    with sg.use_graph():
        a, b = sg.var("a", shape=(3,)), sg.var("b", shape=(2,))
        with pytest.raises(sg.ShapeError, match=r"carry\[1\] \(b\) enters"):
            sg.scan(lambda c, _: ((c[0], c[1][:1]), None), (a, b), length=2)
        with pytest.raises(sg.ShapeError, match=r"carry\[1\] \(b\) enters"):
            sg.scan(lambda c, _: ((c[0], sg.sum(c[1])), None), (a, b), length=2)


def test_length_disagreeing_with_xs_is_refused():
    with sg.use_graph() as graph:
        xs, ys = sg.var("xs", shape=(4, 3)), sg.var("ys", shape=(5, 3))
        first = xs[0]
        before = graph_state(graph)
        with pytest.raises(sg.ShapeError, match="length 5 disagrees with xs"):
            sg.scan(lambda c, x: (c + x, None), first, xs, length=5)
        with pytest.raises(sg.ShapeError, match="disagree in length"):
            sg.scan(lambda c, x: (c + x[0], None), first, (xs, ys))
        with pytest.raises(sg.ShapeError, match="needs xs to scan over or a length"):
            sg.scan(lambda c, x: (c, None), first)
        assert graph_state(graph) == before


def test_a_step_that_raises_leaves_the_graph_as_it_was():
    with sg.use_graph() as graph:
        h = sg.var("h", shape=(3,))
        before = graph_state(graph)

        def step(c, _):
            sg.exp(c) * 2.0
            raise RuntimeError("the user's own")
        with pytest.raises(RuntimeError):
            sg.scan(step, h, length=3)
        assert graph_state(graph) == before


# -- the emitted code ----------------------------------------------------------------------------


def test_numpy_code_is_a_loop_with_the_stacked_results_allocated_first():
    with sg.use_graph():
        loss, grads, inputs = char_rnn(20, looped=True)
        fn = sg.compile([loss, *grads], inputs=inputs)
    source = fn.source
    assert source.count("for step") == 2        # the forward loop and the reverse one
    assert "np.empty((20, 8, 32), np.float64)" in source
    # W.T is computed once, outside the loops, not at each step of the reverse one
    transposes = [line for line in source.splitlines() if "Wh.T" in line]
    assert transposes and all(line.startswith("    t") for line in transposes), transposes


def test_the_same_loop_built_twice_is_one_node():
    x = sg.var("x", shape=(3,))
    first = sg.scan(lambda c, _: (sg.sin(c), None), x, length=4)[0]
    second = sg.scan(lambda c, _: (sg.sin(c), None), x, length=4)[0]
    assert first.node == second.node


def test_pickled_loops_compile_in_the_copy():
    x = sg.var("x", shape=(3,))
    final, ys = sg.scan(lambda c, _: (sg.sin(c) * 2.0, c), x, length=4)
    copy_final, copy_ys = pickle.loads(pickle.dumps([final, ys]))
    fn = sg.compile([copy_final, sg.grad(sg.sum(copy_ys), copy_final.variables["x"])])
    value = np.array([0.1, 0.2, 0.3])
    expected = sg.compile([final, sg.grad(sg.sum(ys), x)], inputs=[x])(value)
    for a, b in zip(pickle.loads(pickle.dumps(fn))(value), expected):
        np.testing.assert_allclose(a, b)


# -- the other backends ----------------------------------------------------------------------------


def test_array_api_and_numba_backends_agree_with_numpy():
    with sg.use_graph():
        loss, grads, inputs = char_rnn(6, looped=True)
        functions = {backend: sg.compile([loss, *grads], inputs=inputs, backend=backend)
                     for backend in ("numpy", "array_api", "numba")}
    data = rnn_data(6)
    expected = functions["numpy"](*data)
    for backend in ("array_api", "numba"):
        for a, b in zip(functions[backend](*data), expected):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-14)


def test_array_api_loops_on_immutable_arrays():
    xp = pytest.importorskip("array_api_strict")
    xs, w = sg.var("xs", shape=(5, 3)), sg.var("w", shape=(3,))
    final, ys = sg.scan(lambda c, x: (sg.tanh(c * w + x), c * x), w, xs, reverse=True)
    outputs = [final, ys, sg.grad(sg.sum(ys) + sg.sum(final), w)]
    api = sg.compile(outputs, inputs=[xs, w], backend="array_api")
    reference = sg.compile(outputs, inputs=[xs, w])
    rng = np.random.default_rng(5)
    data = [rng.standard_normal((5, 3)), rng.standard_normal(3)]
    for a, b in zip(api(*[xp.asarray(d) for d in data]), reference(*data)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-13)
    empty = sg.scan(lambda c, x: (c + x, c * x), w, xs[:0])[1]
    got = sg.compile(empty, inputs=[xs, w], backend="array_api")(*[xp.asarray(d) for d in data])
    assert tuple(got.shape) == (0, 3)


# -- the optimiser inside loops --------------------------------------------------------------------


def test_explain_names_what_was_hoisted_and_the_optimiser_keeps_the_numbers():
    with sg.use_graph():
        loss, grads, inputs = char_rnn(7, looped=True)
        optimized = sg.compile([loss, grads[1]], inputs=inputs)
        plain = sg.compile([loss, grads[1]], inputs=inputs, optimize=False)
    assert "hoist_loop_invariant: transpose(Wh) computed once, outside the loop" \
        in optimized.rewrites
    data = rnn_data(7)
    for a, b in zip(optimized(*data), plain(*data)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    # only Wh's gradient is read: the other accumulators (all but it and the state's
    # cotangent) and what only they read are dropped
    assert any(r.startswith("drop_unread_loop_results: scan: 3 of 5 carries")
               for r in optimized.rewrites), optimized.rewrites
    assert "Wx.T" in plain.source and "Wx.T" not in optimized.source


def test_a_loop_built_in_a_loop():
    # c_{t+1} = sum over an inner loop of three steps: nested bodies, differentiated twice
    x = sg.var("x")
    w = sg.var("w", shape=(3,))

    def outer(c, _):
        inner, ys = sg.scan(lambda d, v: (d * v + c, d), c, w)
        return sg.sin(inner) + sg.sum(ys), None
    final, _ = sg.scan(outer, x, length=2)
    first = sg.grad(final, [x, w])
    second = sg.grad(first[0], x)
    fn = sg.compile([final, *first, second], inputs=[x, w])

    def reference(x, w):
        c = x
        for _ in range(2):
            d, total = c, 0.0
            for v in w:
                total += d
                d = d * v + c
            c = np.sin(d) + total
        return c
    value = np.array([0.3, -0.5, 0.8])
    got = fn(0.4, value)
    assert got[0] == pytest.approx(reference(0.4, value))
    assert got[1] == pytest.approx((reference(0.4 + 1e-6, value) - reference(0.4 - 1e-6, value))
                                   / 2e-6, rel=1e-6)
    np.testing.assert_allclose(got[2], central(lambda v: reference(0.4, v), value), rtol=1e-6)
    eps = 1e-4
    assert got[3] == pytest.approx((fn(0.4 + eps, value)[1] - fn(0.4 - eps, value)[1])
                                   / (2 * eps), rel=1e-6)


# -- random loops against the unrolled loop (Hypothesis) -------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from test_properties import GraphDrawer  # noqa: E402


def replay(graph, output, bound):
    """``output`` of ``graph`` built again in the current graph, its variables ``bound`` (name
    -> Expr) and its constants copied."""
    built = {}
    for node in graph.ancestors_in_order([output]):
        data = graph.nodes[node]
        if data["op"] == "var":
            built[node] = bound[data["attrs"]["name"]]
        elif data["op"] == "const":
            built[node] = sg.const(data["value"])
        else:
            built[node] = sg.ops.apply(data["op"], *[built[i] for i in data["inputs"]],
                                       **data["attrs"])
    return built[output]


def draw_random_loop(data):
    """A random loop: a body drawn by the property tests' generator from the carry, the slice
    and weights, 1 to 5 steps. (the arguments, a function building the loop's value, final
    carry, stacked results and gradients with a scan function: (outputs, inputs))."""
    shapes = [(), (3,), (2, 3)]
    carry_shape = data.draw(st.sampled_from(shapes), label="carry")
    slice_shape = data.draw(st.sampled_from(shapes), label="slice")
    with sg.use_graph() as drawn:
        drawer = GraphDrawer(data.draw)
        drawer.pool += [drawer.variable(carry_shape), drawer.variable(slice_shape)]
        y = drawer.build(data.draw(st.integers(1, 6), label="ops"))
    names = list(drawer.variables)
    specs = {name: drawer.variables[name].shape for name in names}
    steps = data.draw(st.integers(1, 5), label="steps")
    batch = data.draw(st.integers(1, 3), label="batch")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    def concrete(shape):
        return tuple(batch if d == "b" else d for d in shape)
    values = [rng.uniform(-1.0, 1.0, concrete(specs[names[0]])),
              rng.uniform(-1.0, 1.0, (steps, *concrete(specs[names[1]])))] + \
        [rng.uniform(-1.0, 1.0, concrete(specs[n])) for n in names[2:]]

    def build(scan):
        init = sg.var("init", shape=specs[names[0]])
        xs = sg.var("xs", shape=(steps, *specs[names[1]]))
        weights = {n: sg.var(n, shape=specs[n]) for n in names[2:]}

        def step(c, x):
            out = replay(drawn, y.node, {names[0]: c, names[1]: x, **weights})
            return 0.5 * c + 0.5 * sg.tanh(sg.sum(out)), sg.tanh(out)
        final, ys = scan(step, init, xs)
        f = sg.sum(final) + 0.5 * sg.sum(ys)
        inputs = [init, xs, *weights.values()]
        grads = sg.grad(f, inputs, disconnected="zero")
        return [f, final, ys, *grads], inputs
    return values, build


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_loops_match_the_unrolled_loop(data):
    """Random loops (draw_random_loop): values and gradients against the loop written out."""
    values, build = draw_random_loop(data)
    results = []
    for scan in (sg.scan, unrolled_scan):
        with sg.use_graph():
            outputs, inputs = build(scan)
            results.append(sg.compile(outputs, inputs=inputs)(*values))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
