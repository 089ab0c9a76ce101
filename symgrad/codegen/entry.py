"""The entries of compiled functions: the checks their arguments pass before the generated body
runs, and the compiling of generated source.
Imports ops, naming and errors.
"""

import itertools
import linecache
import numbers
import weakref

import numpy as np

from ..errors import ShapeError, SymgradError
from ..naming import SCALAR_NAMES, Namer
from ..ops import literal, static_shape
from ..ops.shape import least_lengths

_counter = itertools.count()


def entry_def(function_name, params):
    """An entry's def line. Its parameters are positional-only: a keyword lands in
    _sg_unexpected, and the general path binds it (and names the argument when the call is
    wrong) as it binds every other call. The first, ``_sg_self``, is the assembly the entry is
    bound to (api.Assembly: what a compiled function pickles as)."""
    signature = ["_sg_self", *[f"{p}=_sg_missing" for p in params], "/",
                 "*_sg_extra", "**_sg_unexpected"]
    return f"def {function_name}({', '.join(signature)}):"


def entry_way_out(params):
    """An entry's last line: the call as given, to the converting, argument-naming path."""
    given = ", ".join(params) + ("," if params else "")
    return f"    return _sg_general(({given}), _sg_extra, _sg_unexpected)"


def real_argument(name, value, dtype):
    """``value``, or the NumPy array it reads as, after refusing what NumPy would turn into
    numbers without a word: None into nan, "1.5" into 1.5, complex numbers by dropping their
    imaginary parts, an object array by guessing. Python and NumPy numbers, nested lists of them
    (Python ints past int64 too) and real arrays of any library pass."""
    dtype_of = getattr(value, "dtype", None)
    read = not isinstance(dtype_of, np.dtype)       # a number, a list, None...: NumPy reads it
    if read:
        value = np.asarray(value)
        dtype_of = value.dtype
    kind = dtype_of.kind
    if kind in "biuf":
        target = np.dtype(dtype)
        if target.kind in "biu" and not np.can_cast(dtype_of, target, "same_kind"):
            # NumPy's 'same_kind' casting: an integer input refuses floats (1.5 would truncate),
            # a boolean one refuses numbers; a floating input takes any real number
            raise SymgradError(f"argument {name!r}: cannot convert {dtype_of} to {target} "
                               f"(an integer or boolean input takes values of its own kind)")
        return value
    if kind == "O" and read:
        strangers = [item for item in value.ravel() if not isinstance(item, numbers.Real)]
        if not strangers:
            return value
        stranger = strangers[0]
        what = "None" if stranger is None else f"a value of type {type(stranger).__name__}"
        raise SymgradError(f"argument {name!r}: cannot convert to {dtype} ({what} is not a "
                           f"real number)")
    what = {"c": "complex numbers", "U": "text", "S": "bytes"}.get(kind, f"an array of dtype "
                                                                          f"{dtype_of}")
    raise SymgradError(f"argument {name!r}: cannot convert to {dtype} ({what}, not real numbers)")


INDEXING_OPS = frozenset({"getitem", "index_grad", "index_add"})


def least_dimension_lengths(graph, outputs):
    """{named dimension: (least length, an index needing it)} over the nodes computing
    ``outputs``: ``x[5]`` with ``x`` of shape ("n",) needs n >= 6, which only a call can tell."""
    nodes = graph._node         # networkx's own dict: its NodeView is a call per lookup
    needs = {}
    if not any(_least_lengths(nodes, node) for node in _indexing_ancestors(nodes, outputs)):
        return needs        # no index needs a length: the order of the walk cannot matter
    for node in graph.ancestors_in_order(outputs):
        if nodes[node]["op"] not in INDEXING_OPS:
            continue
        for dim, (least, index) in _least_lengths(nodes, node).items():
            if least > needs.get(dim, (0, None))[0]:
                needs[dim] = (least, index)
    return needs


def _indexing_ancestors(nodes, roots):
    """The indexing nodes (INDEXING_OPS) among ``roots`` and their ancestors, in no particular
    order: a walk that keeps no order is cheaper than Graph.ancestors_in_order."""
    seen = set(roots)
    stack, found = list(seen), []
    while stack:
        node = stack.pop()
        data = nodes[node]
        if data["op"] in INDEXING_OPS:
            found.append(node)
        for operand in data["inputs"]:
            if operand not in seen:
                seen.add(operand)
                stack.append(operand)
    return found


def _least_lengths(nodes, node):
    """ops.shape.least_lengths of indexing node ``node``: {dimension: (least length, index)}."""
    data = nodes[node]
    shapes = [nodes[operand]["shape"] for operand in data["inputs"]]
    return least_lengths(data["op"], shapes, data["attrs"])


def check_least_lengths(bound, least):
    """Refuse arguments binding a named dimension shorter than an index into it needs; ``bound``
    maps each dimension to (its length, the first argument giving it)."""
    for dim, (length, index) in least.items():
        got, name = bound.get(dim, (length, None))
        if got < length:
            raise ShapeError(f"argument {name!r}: dimension {dim!r} is {got}, but the formula "
                             f"takes index {index} of it, which needs a length of at least "
                             f"{length}")


# what both entries' checks need besides the caller-supplied _sg_body/_sg_general/_sg_missing
ENTRY_NAMESPACE = {"type": type, "_sg_float": float, "__builtins__": {}}


# the inputs' dtypes whose arrays the entry checks itself (np.dtype(name) is NumPy's one instance)
ENTRY_DTYPES = ("float64", "float32", "int64", "bool")


def generate_entry(graph, inputs, function_name, single, least=None):
    """The entry of a NumPy function: arguments that already are what the body expects (arrays of
    the declared dtype and shape, NumPy floats for float64 scalars, Python floats made NumPy
    floats so that 1/0 is inf as in NumPy) go straight to ``_sg_body``, checked by a few attribute
    comparisons; anything else goes to ``_sg_general``, which converts, checks and names the
    argument at fault.

    Returns (source, namespace), or (None, None) for an input dtype the checks cannot name or a
    function name the entry itself uses; the namespace lacks ``_sg_body``, ``_sg_general`` and
    ``_sg_missing``, which the caller supplies. ``least`` is least_dimension_lengths'.
    """
    if function_name in SCALAR_NAMES or any(graph.nodes[node]["dtype"] not in ENTRY_DTYPES
                                            for node in inputs):
        return None, None
    namer = Namer(taken=[function_name, *SCALAR_NAMES])
    params = [namer.claim(graph.nodes[node]["attrs"]["name"]) for node in inputs]
    checks = []
    conversions = []
    bound = {}              # dimension name -> the source of its length in the first argument
    for param, node in zip(params, inputs):
        shape, dtype = graph.nodes[node]["shape"], graph.nodes[node]["dtype"]
        if shape == () and dtype == "float64":
            conversions.append(f"    if type({param}) is _sg_float:\n"
                               f"        {param} = _sg_float64_scalar({param})")
            checks.append(f"type({param}) is _sg_float64_scalar")
            continue
        checks.append(f"type({param}) is _sg_ndarray and {param}.dtype is _sg_{dtype}")
        if static_shape(shape):
            checks.append(f"{param}.shape == {literal(tuple(shape))}")
            continue
        checks.append(f"{param}.ndim == {len(shape)}")
        for axis, dim in enumerate(shape):
            length = f"{param}.shape[{axis}]"
            if isinstance(dim, int):
                checks.append(f"{length} == {dim}")
            elif dim in bound:
                checks.append(f"{length} == {bound[dim]}")
            else:
                bound[dim] = length
    checks += [f"{bound[dim]} >= {length}" for dim, (length, _) in (least or {}).items()
               if dim in bound]
    checks += ["not _sg_extra", "not _sg_unexpected"]
    arguments = ", ".join(params)
    call = f"_sg_body({arguments})" + ("[0]" if single else "")
    lines = [entry_def(function_name, params), *conversions,
             "    if (" + "\n            and ".join(checks) + "):",
             f"        return {call}",
             entry_way_out(params)]
    namespace = dict(ENTRY_NAMESPACE, _sg_ndarray=np.ndarray, _sg_float64_scalar=np.float64,
                     **{f"_sg_{dtype}": np.dtype(dtype) for dtype in ENTRY_DTYPES})
    return "\n".join(lines) + "\n", namespace


def build_function(source, namespace, function_name="f"):
    """Compile generated ``source`` in ``namespace`` (NumPy and nothing else from outside).

    Tracebacks show the source's lines while the function lives: its text stays in linecache
    until the function is collected (the namespace holds every other function it defines).
    """
    filename = f"<symgrad-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(compile(source, filename, "exec"), namespace)
        function = namespace[function_name]
        weakref.finalize(function, linecache.cache.pop, filename, None)
    except BaseException:
        linecache.cache.pop(filename, None)
        raise
    return function

