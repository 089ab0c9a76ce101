"""The emitted-source corpus: every benchmark workload, every example script and 200 random
graphs from the property generator, compiled on every backend, written out as text.

A refactoring of code generation that means to change nothing (issue 17) is checked by emitting
the corpus before and after and comparing the two folders byte for byte:

    python tests/emitted_corpus.py /tmp/before      # on the old checkout
    python tests/emitted_corpus.py /tmp/after       # on the new one
    diff -r /tmp/before /tmp/after

Each file holds one program: for each backend (NumPy optimised and not, Numba, array API) the
function's source, its generated argument entry, the scalar fast path and the Numba kernel
module, where there is one. Nothing is run: the sources are what compiling emits. The last line
printed is a digest of the whole corpus.
"""

import hashlib
import os
import runpy
import sys
from functools import partial

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "benchmarks"), HERE, os.path.dirname(HERE)]

import symgrad as sg  # noqa: E402
from symgrad import api  # noqa: E402

BACKENDS = [("numpy", {}), ("numpy-plain", {"optimize": False}), ("numba", {"backend": "numba"}),
            ("array_api", {"backend": "array_api"})]
RANDOM_GRAPHS = 200
COMPILE = api.compile       # the examples' runs replace sg.compile with a recorder


def emitted(outputs, inputs):
    """The sources of ``outputs`` compiled on every backend, as one text."""
    parts = []
    for label, options in BACKENDS:
        try:
            fn = COMPILE(outputs, inputs=inputs, **options)
        except sg.SymgradError as error:            # a backend that refuses the program
            parts.append(f"## {label}: refused: {error}\n")
            continue
        for field in ("source", "entry_source", "scalar_source", "kernel_source"):
            text = getattr(fn, field, None)
            if text:
                parts.append(f"## {label} {field}\n{text}\n")
    parts.append(f"## table\n{sg.show_graph(outputs, inputs)}\n")
    at = traced_values(inputs)
    if at is not None:      # the table with values runs the traced source
        parts.append(f"## table with values\n{sg.show_graph(outputs, inputs, at=at)}\n")
    return "".join(parts)


def traced_values(inputs, limit=10_000):
    """Deterministic values for ``inputs`` (None when a shape is named or the arrays large)."""
    values = {}
    for variable in inputs or ():
        shape = variable.shape
        if not all(isinstance(d, int) for d in shape) or np.prod(shape) > limit:
            return None
        count = int(np.prod(shape))
        values[variable.name] = (0.3 + 0.7 * np.sin(np.arange(count) + 1.0)).reshape(shape) \
            .astype(variable.dtype)
    return values if inputs else None


# -- the benchmark workloads (tests/benchmarks/peers.py, graph_economy.py) --------------------------

def benchmark_programs():
    import peers
    rng = np.random.default_rng(peers.SEED)

    def gradient(f, shapes, value=False):
        variables = [sg.var(f"a{i}", shape=shape) for i, shape in enumerate(shapes)]
        y = f(sg, *variables)
        gradients = sg.grad(y, variables)
        return ([y] if value else []) + gradients, variables

    def hvp(n):
        x, v = sg.var("x", shape=(n,)), sg.var("v", shape=(n,))
        return [sg.hvp(peers.rosenbrock(sg, x), x, v)], [x, v]

    def tanh_derivative(order):
        x = sg.var("x", shape=(peers.TANH_POINTS,))
        d = sg.tanh(x)
        for _ in range(order):
            d = sg.grad(sg.sum(d), x)
        return [d], [x]

    def hessian():
        A = rng.standard_normal((200, 100)) / 10.0
        x = sg.var("x", shape=(100,))
        return [sg.hessian(peers.logsumexp_quadratic(A, sg, x), x)], [x]

    def mlp():
        sizes, batch = peers.SIZES, peers.BATCH
        shapes = [(batch, sizes[0]), (batch, sizes[-1])]
        for a, b in zip(sizes, sizes[1:]):
            shapes += [(a, b), (b,)]
        variables = [sg.var(f"a{i}", shape=s) for i, s in enumerate(shapes)]
        y = peers.mlp_loss(sg, *variables)
        return [y, *sg.grad(y, variables[2:])], variables

    programs = {}
    for n in (1_000, 100_000):
        programs[f"rosenbrock gradient {n}"] = partial(gradient, peers.rosenbrock, [(n,)])
        programs[f"rosenbrock hvp {n}"] = partial(hvp, n)
    programs["mlp"] = mlp
    for order in range(1, 9):
        programs[f"tanh order {order}"] = partial(tanh_derivative, order)
    programs["dense hessian"] = hessian
    programs["scalar max"] = partial(gradient, peers.scalar_max, [(), (), ()], True)
    programs["scalar mul"] = partial(gradient, peers.scalar_mul, [(), (), ()], True)
    for steps in peers.MAP_STEPS:
        programs[f"map {steps}"] = partial(gradient, partial(peers.iterated_map, steps),
                                           [(peers.MAP_POINTS,)])
    programs["chain"] = partial(gradient, partial(peers.chain, peers.CHAIN_NODES // 9), [(4,)],
                                True)
    return programs


# -- the examples: each script run with compile recording what it compiles ----------------------

def example_texts():
    texts = {}
    examples = os.path.join(os.path.dirname(HERE), "examples")
    original = COMPILE
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".py") or name == "mnist_idx.py":    # a loader, not an example
            continue
        recorded = []

        def recording(outputs, inputs=None, *args, **kwargs):
            fn = original(outputs, inputs, *args, **kwargs)
            recorded.append(emitted(outputs, inputs))
            return fn

        sg.compile = api.compile = recording
        try:
            with sg.use_graph():
                runpy.run_path(os.path.join(examples, name), run_name="__main__")
        finally:
            sg.compile = api.compile = original
        texts[f"example {name}"] = "".join(recorded)
    return texts


# -- random graphs of the property generator (tests/test_properties.py) ---------------------------

def random_graph_texts():
    from hypothesis import given, settings, strategies as st, HealthCheck
    import test_properties

    texts = {}

    @settings(max_examples=RANDOM_GRAPHS, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data):
        if len(texts) >= RANDOM_GRAPHS:
            return
        # written out as test_properties.program_with_gradient draws it: Hypothesis derives a
        # derandomized run's seed from this function's code, which so fixes the corpus
        with sg.use_graph():
            drawer = test_properties.GraphDrawer(data.draw)
            drawer.build(data.draw(st.integers(1, 8)))
            sinks = drawer.sinks()
            inputs = [drawer.variables[name] for name in sorted(drawer.variables)]
            total = sum(sg.sum(e) for e in sinks)
            outputs = sinks + sg.grad(total, inputs, disconnected="zero")
            texts[f"random graph {len(texts):03d}"] = emitted(outputs, inputs)

    draw()
    return texts


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    folder = argv[0]
    os.makedirs(folder, exist_ok=True)
    texts = {}
    for name, build in benchmark_programs().items():
        with sg.use_graph():
            texts[name] = emitted(*build())
    texts.update(example_texts())
    texts.update(random_graph_texts())
    digest = hashlib.sha256()
    for name in sorted(texts):
        path = os.path.join(folder, name.replace(" ", "_") + ".txt")
        with open(path, "w", encoding="utf-8") as file:
            file.write(texts[name])
        digest.update(name.encode() + b"\0" + texts[name].encode())
    print(f"{len(texts)} programs written to {folder}")
    print(f"corpus digest {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
