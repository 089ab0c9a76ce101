"""The public names of ../shared/API.md: var, const, parse, the transformations and compile.

Imports everything to its left (graph, ops, parse, differentiate, codegen); cli imports only this.
"""

import inspect
import keyword
import math
import numbers
import os
import types
from typing import Protocol, runtime_checkable
from collections.abc import Mapping
from functools import partial

import numpy as np

from .array_api import ArrayAPIEntry, array_api_available, checked_source
from .codegen import (LIBRARIES, build_function, check_least_lengths, generate, generate_entry,
                      generate_scalar, least_dimension_lengths, real_argument)
from .fuse import (BackgroundCompile, compiles_in_background, generate_fused, load_kernels,
                   numba_available)
from .optimize import optimize as run_optimizer
from . import differentiate
from .differentiate import grad, hvp, jvp, vjp  # noqa: F401 (public names)
from .errors import ParseError, ShapeError, SymgradError  # noqa: F401
from .graph import Graph, collector_paused, default_graph, use_graph  # noqa: F401
from .naming import RESERVED
from .ops import Expr, check_name, check_shape, graph_of
from .parse import from_sympy, parse, to_sympy  # noqa: F401
from .ops.core import DISPLAY
from .ops.elementwise import factored_form
from .render import (boxes, describe, dot_source, format_value, picture, table,  # noqa: F401
                     write_picture)
from .viewer import write_page
from .sparsity import draw_sparsity, sparse_hessian, sparse_jacobian, sparsity  # noqa: F401

__version__ = "0.1.0"
DTYPES = ("float64", "float32", "int64", "bool")


def var(name, shape=(), dtype="float64", graph=None):
    """The variable called ``name``; the same name always denotes the same variable.

    ``shape`` entries are ints or dimension names such as ``"n"``, bound at call time.

    >>> import symgrad as sg
    >>> sg.var("W", shape=(4, 3)).shape
    (4, 3)
    """
    check_name(name)
    try:
        dtype = str(np.dtype(dtype)) if dtype is not None else "float64"
    except TypeError:
        dtype = repr(dtype)
    if dtype not in DTYPES:
        raise SymgradError(f"variable dtype must be one of {DTYPES}, got {dtype}")
    try:
        shape = check_shape(shape)
    except ShapeError as error:
        raise ShapeError(f"variable {name!r}: {error}") from None
    graph = default_graph() if graph is None else graph
    if not isinstance(graph, Graph):
        raise SymgradError(f"var: graph must be a symgrad Graph, got {type(graph).__name__}")
    return Expr(graph, graph.variable(name, shape, dtype))


def check_arguments(specs, values, least=None):
    """Arrays for ``values`` checked against ``specs`` ((name, shape, dtype) per input): count of
    axes, fixed lengths, one length per named dimension across all the arguments, and for each
    the ``least`` length its indices need (codegen.least_dimension_lengths)."""
    arrays = []
    bound = {}
    for value, (name, shape, dtype) in zip(values, specs):
        try:
            array = np.asarray(real_argument(name, value, dtype), dtype=dtype)
        except (TypeError, ValueError, OverflowError) as error:     # 10**400 overflows
            raise SymgradError(f"argument {name!r}: cannot convert to {dtype} ({error})") from None
        if array.ndim != len(shape):
            raise ShapeError(f"argument {name!r} must have shape {shape}, got {array.shape}")
        for axis, (want, got) in enumerate(zip(shape, array.shape)):
            if isinstance(want, str):
                first = bound.setdefault(want, (got, name))
                if first[0] != got:
                    raise ShapeError(f"argument {name!r}: dimension {want!r} is {got} on axis "
                                     f"{axis}, but {first[0]} in argument {first[1]!r}")
            elif want != got:
                raise ShapeError(f"argument {name!r} must have shape {shape}, got {array.shape}")
        arrays.append(array)
    check_least_lengths(bound, least or {})
    return arrays


@runtime_checkable
class CompiledFunction(Protocol):
    """What ``compile`` returns: a plain Python function, the generated entry itself, carrying
    these attributes (``isinstance(fn, sg.CompiledFunction)`` checks for them).

    No object stands between the caller and the entry: calling an instance's ``__call__``
    costs more than calling a function, a visible share of a tiny scalar gradient's time
    (tests/benchmarks/README.md). The entry checks its arguments (count, shapes, named
    dimensions) before the emitted code runs.
    """

    source: str                 # the emitted body
    input_names: list           # the parameters, in order
    rewrites: list              # the optimiser's and the stability rewrites, as text
    scalar_source: str | None   # the Python-float fast path of an all-scalar graph, if any
    entry_source: str | None    # the generated argument checks in front of the body, if any
    kernel_source: str          # backend="numba": the module of fused loops ``source`` calls
    colors: tuple               # per output, the colours of a sparse one's compressed pass, or None

    def __call__(self, *args, **kwargs): ...


class _Binding:
    """The general way into a compiled body: binds positional and keyword arguments to the
    inputs by name, checks and converts them (``check``), and returns the body's results (one
    array for a single output). Generated entries hand it every call they do not take
    themselves, so it is also the one place that names the argument at fault."""

    def __init__(self, body, input_names, single, check):
        self.body = body
        self.single = single
        self.check = check
        self.input_names = list(input_names)
        self._positions = {name: i for i, name in enumerate(self.input_names)}

    def bind(self, args, kwargs):
        count = len(self.input_names)
        if len(args) > count:
            raise SymgradError(f"expected at most {count} arguments "
                               f"({', '.join(self.input_names)}), got {len(args)}")
        values = list(args) + [None] * (count - len(args))
        given = [True] * len(args) + [False] * (count - len(args))
        for name, value in kwargs.items():
            position = self._positions.get(name)
            if position is None:
                raise SymgradError(f"unexpected argument {name!r}; the inputs are "
                                   f"{', '.join(self.input_names)}")
            if given[position]:
                raise SymgradError(f"argument {name!r} given twice")
            values[position], given[position] = value, True
        missing = [n for n, g in zip(self.input_names, given) if not g]
        if missing:
            raise SymgradError(f"missing argument(s): {', '.join(missing)}")
        return values

    def __call__(self, /, *args, **kwargs):     # '/': an input may be called self
        results = self.body(*self.check(self.bind(args, kwargs)))
        return results[0] if self.single else results

    def general(self, values, extra, unexpected):
        """A generated entry's way out: the arguments it was given (missing ones are a suffix
        of ``values``), bound, checked and run."""
        given = tuple(v for v in values if v is not _MISSING) + extra
        return self(*given, **unexpected)


class Assembly:
    """How a compiled function is put together from what ``compile`` generated: the sources, the
    namespaces they run in and the checks of the arguments (``parts``). ``compile`` assembles
    one; a pickle carries it, and loading the pickle assembles it again in that process from the
    same sources, without optimising or generating anything anew (Numba's kernels come back
    from the cache by the hash of their source).

    The function is the generated entry bound to its assembly (``fn.__self__``), so that it
    pickles: a plain function pickles as a reference to a module's attribute, and a bound method
    as its object and name. Calling a bound method costs a nanosecond more than calling the
    function; an object's ``__call__`` cost 33 (tests/benchmarks/README.md)."""

    __slots__ = ("_sg_parts", "function")

    def __init__(self, parts):
        self._sg_parts = parts = _resolved(parts)
        array_api = parts["backend"] == "array_api"
        body = fused = build_function(parts["source"], dict(parts["namespace"]), parts["name"])
        background = None
        if parts.get("fallback_source") is not None:
            plain = build_function(parts["fallback_source"], dict(parts["fallback_namespace"]),
                                   parts["name"])
            body = background = BackgroundCompile(fused, plain, parts["kernel_source"])
        if array_api:       # the arguments stay arrays of their own library
            body = ArrayAPIEntry(body, parts["specs"], parts["constants"],
                                 parts["output_dtypes"], parts["least"])
            check = tuple
        else:
            check = partial(check_arguments, parts["specs"], least=parts["least"])
        binding = _Binding(body, parts["input_names"], parts["single"], check)
        entry = _entry(binding, parts["name"], parts["entry_source"], parts["entry_namespace"])
        entry.source = parts["source"]
        entry.input_names = binding.input_names
        entry.rewrites = parts["rewrites"]
        entry.scalar_source = parts["entry_source"] if parts["scalar"] else None
        entry.entry_source = parts["entry_source"]
        entry.kernel_source = parts["kernel_source"]
        entry.colors = parts.get("colors")
        entry._function = fused if not array_api else body._body  # for tests
        entry._sg_background = background       # for tests
        entry.wait_compiled = _ready if background is None else background.wait
        # what help() and Jupyter show: the inputs by name, not the entry's own parameters
        # (inspect drops the first, the assembly a bound method is called with)
        by_name = inspect.Parameter.POSITIONAL_OR_KEYWORD
        entry.__signature__ = inspect.Signature(
            [inspect.Parameter(name, by_name) for name in ("_sg_self", *binding.input_names)])
        entry.__doc__ = (f"Compiled by symgrad from {parts['outputs']} output(s); returns "
                         f"{'one array' if parts['single'] else 'a tuple'}. The emitted code: "
                         f".source")
        self.function = types.MethodType(entry, self)

    def __getattr__(self, name):
        # a bound method pickles as getattr(its object, its name): give the function back
        if name == "_sg_parts":         # not set yet: a copy being made without __init__
            raise AttributeError(name)
        if name == self._sg_parts["name"]:
            return self.function
        raise AttributeError(name)

    def __reduce__(self):
        return (Assembly, (_portable(self._sg_parts),))

    def __repr__(self):
        return f"<symgrad compiled function {self._sg_parts['name']!r}>"


def _ready(timeout=None):
    """Wait until this function's calls run its compiled Numba kernels; True when they do.

    A function of the Numba backend with the kernel of a whole loop (sg.scan) runs the NumPy
    backend's program for its first calls while a thread compiles the kernels for the types of
    the first call's arguments, and the kernels once they are ready. ``wait_compiled`` returns
    True then, False when ``timeout`` seconds pass first or no call has started the compile,
    and raises SymgradError when compiling failed (the function keeps running NumPy). Any other
    function is ready at once.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> fn = sg.compile(x * x, [x])
    >>> fn(3.0), fn.wait_compiled()
    (9.0, True)
    """
    return True


class _Reference:
    """A module, a library binding or a Numba kernel in a pickled namespace, by name: none of
    them pickles, and each is found again where the function is assembled."""

    __slots__ = ("kind", "name")

    def __init__(self, kind, name):
        self.kind, self.name = kind, name

    def __reduce__(self):
        return (_Reference, (self.kind, self.name))


# the modules generated code reads besides LIBRARIES': what a pickled namespace may name
_MODULES = {"numpy": np, "math": math}


def _portable(parts):
    """``parts`` with what a pickle cannot hold replaced by references."""
    kernels = load_kernels(parts["kernel_source"]) if parts["kernel_source"] else None
    libraries = {id(library): name for name, library in LIBRARIES.items()}

    def portable(name, value):
        if id(value) in libraries:          # some are modules (NumPy's stride_tricks)
            return _Reference("library", libraries[id(value)])
        if isinstance(value, types.ModuleType):
            if _MODULES.get(value.__name__) is not value:
                raise SymgradError(f"cannot pickle a compiled function reading module "
                                   f"{value.__name__!r}")
            return _Reference("module", value.__name__)
        if kernels is not None and kernels.get(name) is value:
            return _Reference("kernel", name)
        return value

    copy = dict(parts)
    for key in ("namespace", "entry_namespace", "fallback_namespace"):
        if copy.get(key) is not None:
            copy[key] = {name: portable(name, value) for name, value in copy[key].items()}
    return copy


def _resolved(parts):
    """``parts`` with the references _portable made replaced by what they name here."""
    kernels = []

    def resolved(value):
        if not isinstance(value, _Reference):
            return value
        if value.kind == "module":
            return _MODULES[value.name]
        if value.kind == "library":
            return LIBRARIES[value.name]
        if not kernels:
            kernels.append(load_kernels(parts["kernel_source"]))
        return kernels[0][value.name]

    for key in ("namespace", "entry_namespace", "fallback_namespace"):
        namespace = parts.get(key)
        if namespace is not None and any(isinstance(v, _Reference) for v in namespace.values()):
            parts = dict(parts, **{key: {n: resolved(v) for n, v in namespace.items()}})
    return parts


def _entry(binding, name, entry_source, namespace):
    """The function ``compile`` returns, before it is bound to its assembly: the generated entry
    (codegen.generate_entry or generate_scalar) when there is one, else a function handing every
    call to ``binding``."""
    if entry_source is None:
        def entry(_sg_self, /, *args, **kwargs):
            return binding(*args, **kwargs)
        entry.__name__ = entry.__qualname__ = name
        return entry
    namespace = dict(namespace, _sg_missing=_MISSING, _sg_general=binding.general,
                     _sg_body=binding.body)
    return build_function(entry_source, namespace, name)


# a parameter the caller left out of a scalar entry call
_MISSING = type("Missing", (), {"__repr__": lambda self: "<missing>"})()


# "numba" (symgrad.fuse) when Numba is installed: pip install -e ".[numba]"; "array_api"
# (symgrad.array_api) when array-api-compat is: pip install -e ".[array-api]"
BACKENDS = ("numpy",) + (("numba",) if numba_available() else ()) \
    + (("array_api",) if array_api_available() else ())
EXTRAS = {"numba": ("Numba", "numba"), "array_api": ("array-api-compat", "array-api")}


def compile(outputs, inputs=None, name="f", backend="numpy", optimize=True, explain=False):
    """Compile ``outputs`` (one Expr or a list) into a Python function of ``inputs``.

    ``inputs`` defaults to every free variable of the outputs in sorted order. A single output
    returns one array, a list returns a tuple. ``optimize=False`` emits the graph as built;
    ``explain=True`` prints every rewrite (also kept in ``fn.rewrites``).

    A graph of float64 scalars also gets a fast path (``fn.scalar_source``): called with Python
    floats, it runs as plain float and ``math`` code and returns floats; any other arguments, and
    values where ``math`` raises while NumPy answers inf or nan, go through the NumPy function.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> fn = sg.compile([x * x, sg.grad(x * x, x)], inputs=[x])
    >>> fn(3.0)
    (9.0, 6.0)
    >>> fn(np.float64(3.0))
    (np.float64(9.0), np.float64(6.0))
    """
    if backend in EXTRAS and backend not in BACKENDS:
        package, extra = EXTRAS[backend]
        raise SymgradError(f"backend {backend!r} needs {package}, which is not installed: "
                           f"pip install -e '.[{extra}]' in a clone of symgrad")
    if backend not in BACKENDS:
        raise SymgradError(f"backend {backend!r} is not available; available: "
                           f"{', '.join(BACKENDS)}")
    # symgrad's own names (_sg_...) and Python's (__...__) are refused: the function is found
    # by its name on its assembly when it is unpickled
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() \
            or keyword.iskeyword(name) or name in RESERVED or name.startswith(("_sg_", "__")):
        raise SymgradError(f"function name {name!r} must be an identifier other than "
                           f"{', '.join(sorted(RESERVED))}, not starting with _sg_ or __")
    single, outputs, inputs = _checked(outputs, inputs, "compile")
    graph = graph_of(*outputs, *inputs)
    colors = tuple(o.data["attrs"]["colors"] if o.op == "csr_matrix" else None for o in outputs)
    output_nodes, input_nodes = [o.node for o in outputs], [e.node for e in inputs]
    with graph.lock, collector_paused():
        log = construction_rewrites(graph, output_nodes)
        if optimize:
            optimized = run_optimizer(graph, output_nodes, input_nodes, log=log)
            graph, output_nodes, input_nodes = (optimized.graph, optimized.outputs,
                                                optimized.inputs)
        rewrites = [str(applied) for applied in log]
        kernel_source = ""
        fallback_source = fallback_namespace = None
        least = least_dimension_lengths(graph, output_nodes)
        if backend == "array_api":
            source, namespace, constants = checked_source(graph, output_nodes, input_nodes, name)
            specs = [(graph.nodes[n]["attrs"]["name"], graph.nodes[n]["shape"],
                      graph.nodes[n]["dtype"]) for n in input_nodes]
        elif backend == "numba":
            source, namespace, kernel_source = generate_fused(graph, output_nodes, input_nodes,
                                                              name)
            if compiles_in_background(kernel_source):   # the first calls' program
                fallback_source, fallback_namespace = generate(graph, output_nodes,
                                                               input_nodes, name)
        else:
            source, namespace = generate(graph, output_nodes, input_nodes, name)
        if backend == "array_api":      # no fast paths: they would make NumPy of the arguments
            entry_source = entry_namespace = scalar = None
        else:
            entry_source, entry_namespace = generate_scalar(graph, output_nodes, input_nodes,
                                                            name, single)
            scalar = entry_source is not None
            if not scalar:
                entry_source, entry_namespace = generate_entry(graph, input_nodes, name, single,
                                                               least)
    parts = dict(name=name, backend=backend, single=single, outputs=len(outputs),
                 input_names=[e.name for e in inputs], rewrites=rewrites, source=source,
                 namespace=dict(namespace), kernel_source=kernel_source, least=least,
                 entry_source=entry_source, scalar=scalar, colors=colors,
                 entry_namespace=None if entry_namespace is None else dict(entry_namespace),
                 fallback_source=fallback_source,
                 fallback_namespace=(None if fallback_namespace is None
                                     else dict(fallback_namespace)))
    if backend == "array_api":
        output_dtypes = [graph.nodes[n]["dtype"] for n in output_nodes]
        parts.update(specs=specs, constants=constants, output_dtypes=output_dtypes)
    else:
        parts.update(specs=[(e.name, e.shape, np.dtype(e.dtype)) for e in inputs])
    compiled = Assembly(parts).function
    if explain:
        print(explain_text(rewrites))
    return compiled


def jacobian(y, wrt, disconnected="raise", sparse=False):
    """The Jacobian, shape ``y.shape + wrt.shape`` (symgrad.differentiate.jacobian). With
    ``sparse=True``, for 1-D ``y`` and a 1-D variable ``wrt``: an expression whose compiled
    value is a SciPy CSR array of shape ``(y.size, wrt.size)`` with the structural pattern
    (sg.sparsity) found now, once: its nonzeros computed directly (``fn.colors`` 0), or in one
    compressed pass over a colouring of the pattern, whichever computes fewer entries.

    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(5,))
    >>> fn = sg.compile(sg.jacobian(sg.sin(x[1:]) * x[:-1], x, sparse=True), [x])
    >>> J = fn(np.zeros(5))
    >>> J.format, J.shape, J.nnz, fn.colors
    ('csr', (4, 5), 8, (0,))
    """
    if sparse:
        return sparse_jacobian(y, wrt, disconnected)
    return differentiate.jacobian(y, wrt, disconnected)


def hessian(f, wrt, disconnected="raise", sparse=False):
    """Second derivatives of scalar ``f`` (symgrad.differentiate.hessian). With ``sparse=True``,
    for a 1-D variable ``wrt``: an expression whose compiled value is a SciPy CSR array of shape
    ``(wrt.size, wrt.size)``: the gradient's sparse Jacobian by direct emission, or one
    compressed pass over a symmetric (star) colouring of its pattern, whichever is cheaper.

    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(2,))
    >>> sg.compile(sg.hessian(x[0] ** 2 * x[1], x), [x])(np.array([1.0, 3.0]))
    array([[6., 2.],
           [2., 0.]])
    >>> H = sg.compile(sg.hessian(sg.sum(x ** 3), x, sparse=True), [x])(np.array([1.0, 2.0]))
    >>> H.format, H.nnz, H.toarray().tolist()
    ('csr', 2, [[6.0, 0.0], [0.0, 12.0]])
    """
    if sparse:
        return sparse_hessian(f, wrt, disconnected)
    return differentiate.hessian(f, wrt, disconnected)


def construction_rewrites(graph, outputs):
    """The rewrite log as the outputs' expressions left it: the build rules that made their
    nodes (once each), to which the optimiser's passes append theirs."""
    found = []
    if not graph.rewrites:
        return found            # no walk over the outputs' ancestors for nothing
    for node in graph.ancestors_in_order(outputs):
        for applied in graph.rewrites.get(node, []):
            if applied not in found:
                found.append(applied)
    return found


def explain_text(rewrites):
    """The report ``explain=True`` prints: one line per rewrite, which pattern and where."""
    if not rewrites:
        return "symgrad: no rewrites applied"
    return "\n".join([f"symgrad: {len(rewrites)} rewrite(s) applied"]
                     + [f"  {line}" for line in rewrites])


def _free_variables(outputs):
    """Every free variable of the outputs, sorted by name (the default inputs)."""
    free = {}
    for output in outputs:
        free.update(output.variables)
    return [free[name] for name in sorted(free)]


def _checked(outputs, inputs, what):
    """(whether one output was given alone, the outputs, the inputs) after checking them: a list
    of expressions, and variables without repeats (every free variable by default)."""
    single = isinstance(outputs, Expr)
    if single:
        outputs = [outputs]
    elif isinstance(outputs, (list, tuple)):
        outputs = list(outputs)
    if isinstance(outputs, list) and outputs and all(
            isinstance(o, (list, tuple)) and all(isinstance(e, Expr) for e in o) for o in outputs):
        # sg.hessian with a list wrt gives its blocks as a list of rows
        raise SymgradError(f"{what} takes a flat list of expressions, got a list of "
                           f"{len(outputs)} lists (sg.hessian's blocks?): flatten it, e.g. "
                           f"[block for row in H for block in row]")
    if not outputs or not isinstance(outputs, list) \
            or not all(isinstance(o, Expr) for o in outputs):
        shown = repr(outputs)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        raise SymgradError(f"{what} needs an expression or a non-empty list of expressions, "
                           f"got {shown}")
    if inputs is None:
        inputs = _free_variables(outputs)
    elif isinstance(inputs, Expr):
        inputs = [inputs]
    elif isinstance(inputs, (list, tuple)):
        inputs = list(inputs)
    else:
        raise SymgradError(f"{what}: inputs must be a list of variables, got {inputs!r}")
    for e in inputs:
        if not isinstance(e, Expr) or e.op != "var":
            raise SymgradError(f"{what}: inputs must be variables, got {e!r}")
    names = [e.name for e in inputs]
    if len(set(names)) != len(names):
        raise SymgradError(f"{what}: an input is listed twice: {names}")
    return single, outputs, inputs


def _outputs_and_inputs(outputs, inputs, what):
    _, outputs, inputs = _checked(outputs, inputs, what)
    graph = graph_of(*outputs, *inputs)
    return graph, [o.node for o in outputs], [i.node for i in inputs]


def _rows(outputs, inputs, at, what="show_graph", labels=None):
    graph, output_nodes, input_nodes = _outputs_and_inputs(outputs, inputs, what)
    if labels is not None and (isinstance(labels, str) or len(labels) != len(output_nodes)
                               or not all(isinstance(label, str) for label in labels)):
        raise SymgradError(f"{what}: labels must be one string per output "
                           f"({len(output_nodes)}), got {labels!r}")
    values = None
    if at is not None and not isinstance(at, Mapping):
        raise SymgradError(f"{what}: at maps input names to values, got {at!r}")
    if at is not None:
        names = [graph.nodes[n]["attrs"]["name"] for n in input_nodes]
        missing = [n for n in names if n not in at]
        if missing:
            raise SymgradError(f"no value given for {', '.join(missing)}")
        specs = [(n, graph.nodes[i]["shape"], np.dtype(graph.nodes[i]["dtype"]))
                 for n, i in zip(names, input_nodes)]
        values = dict(zip(names, check_arguments(specs, [at[n] for n in names],
                                                 least_dimension_lengths(graph, output_nodes))))
    with graph.lock:
        rows, _ = describe(graph, output_nodes, input_nodes, values)
    for row in rows:        # what each output is, as the caller calls it: (position, "d/dx")
        row["labels"] = [(k, label) for k, (node, label)
                         in enumerate(zip(output_nodes, labels or ())) if node == row["node"]]
    return graph, rows


def show_graph(outputs, inputs=None, at=None, labels=None):
    """The graph behind ``outputs`` as an aligned table, one node per line in evaluation order,
    derivative nodes marked; with ``at`` (input name -> value) every node's value is shown, with
    ``labels`` (one string per output, such as "d/dx") what each output is.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> print(sg.show_graph(sg.grad(x * x, x)).splitlines()[0].split())
    ['name', 'kind', 'op', 'shape', 'code']
    """
    _, rows = _rows(outputs, inputs, at, "show_graph", labels)
    return table(rows, show_values=at is not None)


def to_dot(outputs, inputs=None, at=None, labels=None):
    """Graphviz DOT source of the graph behind ``outputs`` (derivative nodes drawn dashed).

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.to_dot(sg.grad(sg.sin(x), x)).startswith("digraph")
    True
    """
    graph, rows = _rows(outputs, inputs, at, "to_dot", labels)
    return dot_source(boxes(graph, rows, bodies=True))


def draw(outputs, path, inputs=None, at=None, labels=None):
    """Write a picture of the graph behind ``outputs``: .svg, .png or .pdf, through Graphviz when
    it is installed (and the graph not too large for it), else drawn by symgrad (SVG) or
    matplotlib (PNG, PDF); or .html, one self-contained page to explore it (pan, zoom, fold,
    search, details on hover), for graphs too large to read in a picture. ``at`` adds every
    node's value, ``labels`` (one string per output, such as "d/dx") what each output is.
    Returns the number of nodes drawn.

    >>> import os, tempfile
    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> f = sg.sin(x) * x
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "graph.svg")
    ...     drawn = sg.draw([f, sg.grad(f, x)], path, labels=["value", "d/dx"])
    ...     open(path).read().lstrip().startswith("<")
    True
    """
    try:
        path = os.fspath(path)
    except TypeError:
        path = None
    if not isinstance(path, str):
        raise SymgradError("draw needs a file path ending in .svg, .png, .pdf or .html")
    graph, rows = _rows(outputs, inputs, at, "draw", labels)
    if path.lower().endswith(".html"):
        write_page(graph, rows, path)
    else:
        write_picture(graph, rows, path)
    return len(rows)


# a scalar expression of more nodes than this shows no LaTeX: SymPy prints a tree, and the tree of
# a derivative's DAG grows exponentially with its depth
LATEX_NODES = 60


def _display_picture(image_format):
    def show(expr):
        graph, rows = _rows([expr], None, None, "display")
        try:
            return picture(graph, rows, image_format)
        except SymgradError:
            return None         # a .png needs matplotlib or Graphviz: the SVG shows instead
    return show


def _display_latex(expr):
    if expr.shape != () or len(expr.graph.ancestors_in_order([expr.node])) > LATEX_NODES:
        return None
    import sympy
    try:
        return f"${sympy.latex(to_sympy(expr))}$"
    except SymgradError:
        return None             # an op SymPy does not have


DISPLAY.update(svg=_display_picture("svg"), png=_display_picture("png"), latex=_display_latex)


def defop(name, arity, shape, numpy, vjp, dtype=None, nondifferentiable=(), sympy=None):
    """Register a new primitive and return the function that builds it.

    ``shape(input_shapes, **attrs)`` gives the output shape; ``numpy`` is an emission template
    (operands ``{0}, {1}...``, attributes by name) or a function of the emission context; ``vjp(g,
    out, *inputs, **attrs)`` returns one Expr or None per input, built from existing ops, so that
    the new op can be differentiated to any order. ``g`` may carry leading batch axes (Jacobians
    use them): address the op's own axes from the right. ``sympy`` is the op in SymPy, for
    ``to_sympy`` and ``from_sympy``: the name of a SymPy function that is the op ("sinh"), or a
    function ``(sympy, *operands, **attrs)`` building it.

    >>> import symgrad as sg
    >>> cube = sg.defop("cube_example", 1, lambda shapes: shapes[0], "{0} ** 3",
    ...                 vjp=lambda g, out, x: [g * 3.0 * x ** 2])
    >>> x = sg.var("x")
    >>> sg.compile([cube(x), sg.grad(cube(x), x), sg.grad(sg.grad(cube(x), x), x)])(2.0)
    (np.float64(8.0), np.float64(12.0), np.float64(12.0))
    >>> del sg.OPS["cube_example"]
    """
    from .ops import OPS, apply
    from .ops import defop as register
    from .ops.core import float_dtype
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise SymgradError(f"op name {name!r} must be an ASCII identifier")
    if name in OPS:
        raise SymgradError(f"op {name!r} already exists")
    if not callable(shape) or not callable(vjp) or not (isinstance(numpy, str) or callable(numpy)):
        raise SymgradError("defop needs a shape function, a NumPy template (or emitter) and a vjp")
    # symgrad cannot vouch for a user's emission: its result may be an operand's memory, and
    # running it may have effects, so codegen neither reuses its array nor folds it
    if sympy is not None and not (callable(sympy) or isinstance(sympy, str)
                                  and sympy.isidentifier()):
        raise SymgradError(f"defop: sympy must be a SymPy function's name or a function, "
                           f"got {sympy!r}")
    register(name, arity, shape, numpy, vjp, dtype=dtype or float_dtype,
             nondifferentiable=tuple(nondifferentiable), sympy=sympy, view=True, foldable=False,
             users=True)

    def build(*operands, **attrs):
        return apply(name, *operands, **attrs)
    build.__name__ = name
    return build


def check_grad(f, at, wrt=None, step=1e-6):
    """Compare the symbolic gradient of scalar ``f`` with central differences at ``at`` (input name
    -> value). Returns {variable name: worst relative error over its entries}, where the relative
    error of one entry is ``|symbolic - numeric| / max(|symbolic|, |numeric|, 1e-8)``.

    ``wrt``: the variable (or list of variables) to check the gradient of. By default every
    floating variable of ``f``, data inputs included (each entry costs two evaluations of f):
    pass the parameters alone, ``wrt=[W, b]``, to leave the data out. ``step``: the central
    difference's step.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.check_grad(sg.sin(x) * x, {"x": 0.7})["x"] < 1e-8
    True
    """
    # everything is checked before the gradient is built, so that a mistake adds nothing
    if not isinstance(f, Expr):
        raise SymgradError(f"check_grad needs an expression, got {f!r}")
    if f.shape != ():
        raise ShapeError(f"check_grad needs a scalar function, got shape {f.shape}")
    if not isinstance(at, Mapping):
        raise SymgradError(f"check_grad: at maps variable names to values, got {at!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not step > 0 \
            or not math.isfinite(step):
        raise SymgradError(f"check_grad: step must be a positive number, got {step!r}")
    inputs = list(f.variables.values())
    names = [v.name for v in inputs]
    floating = [v for v in inputs if v.dtype in ("float64", "float32")]    # ints: no gradient
    wrt = floating if wrt is None else [wrt] if isinstance(wrt, Expr) else list(wrt) \
        if isinstance(wrt, (list, tuple)) else [wrt]
    for w in wrt:
        if not isinstance(w, Expr) or w.op != "var" or w.name not in names:
            raise SymgradError(f"check_grad: wrt must be variables of the function "
                               f"({', '.join(names)}), got {w!r}")
    missing = [n for n in names if n not in at]
    if missing:
        raise SymgradError(f"check_grad: no value given for {', '.join(missing)}")
    specs = [(v.name, v.shape, np.dtype(v.dtype)) for v in inputs]
    checked = check_arguments(specs, [at[n] for n in names])
    # integer and boolean inputs keep their dtype: they are not differentiated
    point = {n: np.array(a, dtype=np.float64 if a.dtype.kind == "f" else a.dtype)
             for n, a in zip(names, checked)}
    with f.graph.atomic():
        value = compile(f, inputs=inputs)
        gradient = compile(grad(f, wrt, disconnected="zero"), inputs=inputs)
    symbolic = gradient(**point)
    symbolic = symbolic if isinstance(symbolic, tuple) else (symbolic,)
    report = {}
    for w, analytic in zip(wrt, symbolic):
        base = point[w.name]
        numeric = np.zeros(base.shape)
        for index in np.ndindex(base.shape):
            shifted = dict(point)
            for sign in (1.0, -1.0):
                moved = base.copy()
                moved[index] += sign * step
                shifted[w.name] = moved
                numeric[index] += sign * value(**shifted) / (2.0 * step)
        analytic = np.asarray(analytic)
        scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-8)
        report[w.name] = float(np.max(np.abs(analytic - numeric) / scale)) if numeric.size else 0.0
    return report


def _nodes_by_order(graph, outputs):
    counts = {}
    for node in graph.ancestors_in_order(outputs):
        data = graph.nodes[node]
        if data["op"] not in ("var", "const"):
            counts[data["order"]] = counts.get(data["order"], 0) + _operations(data)
    return counts


def _operations(data):
    """1 for a node, the operations of its written product for a polynomial node of exact
    coefficients (one node standing for them, optimize.compaction)."""
    if data["op"] != "polynomial":
        return 1
    attrs = data["attrs"]
    return max(factored_form(attrs["coefficients"], attrs["denominator"]).cost, 1)


def graph_stats(outputs, inputs=None):
    """Operation nodes per derivative order (0 is the forward pass) as built and after
    optimisation: {order: (built, optimised)}.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> sg.graph_stats([sg.tanh(x), sg.grad(sg.tanh(x), x)])
    {0: (1, 1), 1: (2, 2)}
    """
    graph, output_nodes, input_nodes = _outputs_and_inputs(outputs, inputs, "graph_stats")
    with graph.lock:
        built = _nodes_by_order(graph, output_nodes)
        optimized = run_optimizer(graph, output_nodes, input_nodes)
    after = _nodes_by_order(optimized.graph, optimized.outputs)
    return {order: (built.get(order, 0), after.get(order, 0))
            for order in sorted(set(built) | set(after))}


def stats_text(stats):
    """The --stats table: nodes per order before and after optimisation, and each order's size
    relative to the optimised forward pass."""
    forward = max(stats.get(0, (0, 0))[1], 1)
    lines = ["order  part        built  optimised  vs forward"]
    for order, (built, after) in stats.items():
        part = "forward" if order == 0 else "derivative"
        lines.append(f"{order:>5}  {part:<10}  {built:>5}  {after:>9}  {after / forward:>9.2f}x")
    total_built = sum(b for b, _ in stats.values())
    total_after = sum(a for _, a in stats.values())
    lines.append(f"{'all':>5}  {'':<10}  {total_built:>5}  {total_after:>9}  "
                 f"{total_after / forward:>9.2f}x")
    return "\n".join(lines)
