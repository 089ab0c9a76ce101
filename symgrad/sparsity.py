"""Sparse Jacobians and Hessians: the structural pattern of a derivative read off the graph, the
colourings that compress it, and the compressed pass whose nonzeros make a SciPy CSR matrix.

A node's pattern is a boolean matrix (its entries by the variable's entries), propagated in
evaluation order by each op's record (Op.sparsity); an op that only moves entries is run, in its
own NumPy form, on the positions of its operand's entries. Imports graph, ops, differentiate and
codegen (whose plan evaluates an op); api exposes it.
"""

import heapq
import math

import numpy as np

from .codegen.plan import Plan
from .differentiate import _as_list, _check_policy, _vjp, grad
from .errors import InternalError, ShapeError, SymgradError
from .graph import Graph
from .ops import OPS, Expr, apply, const, static_shape, stop_gradient, zeros_like

# A greedy colouring in Python visits each vertex's neighbours; the smallest-last and
# incidence-degree orders also push each adjacency entry on a heap (about 3 s a million entries
# on the shared machine): they are tried up to a tenth of this many entries.
ORDERINGS_LIMIT = 300_000
# The star colouring visits the neighbours of neighbours of neighbours: it is tried up to this
# many such visits (a distance-2 colouring, always tried, is also a star colouring).
STAR_COLORING_LIMIT = 3_000_000


def _scipy_sparse():
    # imported when a pattern is first asked for: import symgrad does not pay for SciPy
    import scipy.sparse
    return scipy.sparse


# -- the pattern -----------------------------------------------------------------------------------


def sparsity(y, x):
    """The structural nonzero pattern of the Jacobian ``dy/dx`` of 1-D ``y`` and ``x``, read off
    the graph: a SciPy CSR array of dtype bool, shape ``(y.size, x.size)``. It holds every
    entry that can be nonzero: exact for element-wise ops, indexing, reshapes, reductions and
    products with constants; where the structure depends on values (``where``, ``maximum``)
    both branches count, and an op with no rule counts as dense.

    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(4,))
    >>> sg.sparsity(x[1:] * x[:-1], x).toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    y, x = _vectors(y, x, "sparsity")
    return _pattern(y, x)


def _vectors(y, x, what):
    if not isinstance(y, Expr) or not isinstance(x, Expr):
        raise SymgradError(f"{what} takes expressions built with symgrad (sg.var, sg.parse, ...)")
    _as_list(x)
    for e, role in ((y, "output"), (x, "variable")):
        if e.ndim != 1 or not static_shape(e.shape):
            raise ShapeError(f"{what}: the {role} must be 1-D with a known length, got shape "
                             f"{e.shape}; reshape it, e.g. e.reshape(-1)")
    if y.graph is not x.graph:
        raise SymgradError("cannot combine expressions from two different graphs")
    return y, x


def _reached_operands(op, data, known):
    """The positions of the node's differentiable operands that depend on x (those in ``known``,
    the patterns or Jacobians found so far)."""
    return [p for p, operand in enumerate(data["inputs"])
            if p not in op.nondifferentiable and operand in known]


def _evaluation_order(y):
    """The nodes ``y`` is computed from, in evaluation order, and how many of them read each one
    (once per reader), so that a node's pattern or nonzeros can be dropped after its last reader."""
    nodes = y.graph._node
    order = y.graph.ancestors_in_order([y.node])
    readers = {}
    for node in order:
        for operand in set(nodes[node]["inputs"]):
            readers[operand] = readers.get(operand, 0) + 1
    return order, readers


def _pattern(y, x):
    """The pattern of dy/dx (CSR, bool, sorted indices), one op at a time in evaluation order;
    a node's pattern is dropped once its last reader has been visited."""
    sparse = _scipy_sparse()
    graph, nodes = y.graph, y.graph._node
    order, readers = _evaluation_order(y)
    patterns = {x.node: sparse.identity(x.size, dtype=bool, format="csr")}
    for node in order:
        data = nodes[node]
        if node != x.node and data["inputs"] and data["dtype"] not in ("int64", "bool"):
            op = OPS[data["op"]]
            positions = _reached_operands(op, data, patterns)
            if positions:
                if not static_shape(data["shape"]):
                    raise ShapeError(f"sparsity: op {data['op']!r} gives shape {data['shape']}, "
                                     f"whose length is known only at the call")
                pattern = _propagated(graph, node, data, op, positions, patterns, x.size)
                if pattern.nnz:
                    patterns[node] = pattern
        for operand in set(data["inputs"]):
            readers[operand] -= 1
            if not readers[operand] and operand != y.node:
                patterns.pop(operand, None)
    result = patterns.get(y.node)
    if result is None:
        return sparse.csr_array((y.size, x.size), dtype=bool)
    result = sparse.csr_array(result, dtype=bool)
    result.sort_indices()
    return result


def _propagated(graph, node, data, op, positions, patterns, columns):
    """The pattern of ``node``: the union over its operands of (which operand entries each of
    its entries depends on) times (the operand's pattern)."""
    sparse = _scipy_sparse()
    out_shape = data["shape"]
    out_size = math.prod(out_shape)
    operand_shapes = [graph._node[i]["shape"] for i in data["inputs"]]
    rule = op.sparsity
    if rule == "elementwise":
        local = {p: _broadcast_map(operand_shapes[p], out_shape) for p in positions}
    elif rule == "moves":
        local = _moved(graph, data, positions)
    elif rule == "adds":
        local = _added(graph, data, positions)
    elif callable(rule):
        values = [graph._node[i].get("value") if graph._node[i]["op"] == "const" else None
                  for i in data["inputs"]]
        found = rule(operand_shapes, out_shape, values, **data["attrs"])
        local = {p: found[p] for p in positions}
    else:
        local = {p: "dense" for p in positions}
    total = None
    for p in positions:
        pattern = patterns[data["inputs"][p]]
        dependence = local[p]
        if dependence is None:
            continue
        if isinstance(dependence, str):
            term = _dense_rows(pattern, out_size, columns)
        elif isinstance(dependence, np.ndarray):      # entry k of the result is operand entry map[k]
            if dependence.shape == (pattern.shape[0],) and np.array_equal(
                    dependence, np.arange(pattern.shape[0])):
                term = pattern
            else:
                taken = np.flatnonzero(dependence >= 0)
                selection = sparse.csr_array(
                    (np.ones(taken.size, dtype=bool), (taken, dependence[taken])),
                    shape=(out_size, pattern.shape[0]))
                term = selection @ pattern
        else:
            rows, cols = dependence
            selection = sparse.csr_array((np.ones(len(rows), dtype=bool), (rows, cols)),
                                         shape=(out_size, pattern.shape[0]))
            term = selection @ pattern
        total = term if total is None else total + term
    if total is None:
        return sparse.csr_array((out_size, columns), dtype=bool)
    return sparse.csr_array(total, dtype=bool)


def _dense_rows(pattern, rows, columns):
    """Every one of ``rows`` entries depending on every column any entry of ``pattern`` has."""
    sparse = _scipy_sparse()
    used = np.unique(pattern.indices)
    return sparse.csr_array((np.ones(rows * used.size, dtype=bool), np.tile(used, rows),
                             np.arange(rows + 1) * used.size), shape=(rows, columns))


def _broadcast_map(shape, out_shape):
    """Entry k of a broadcast result reads entry map[k] of an operand of ``shape``."""
    size = math.prod(shape)
    if tuple(shape) == tuple(out_shape):
        return np.arange(size)
    return np.broadcast_to(np.arange(size).reshape(shape), out_shape).ravel()


def _moved(graph, data, positions):
    """{operand position: map} for an op that moves entries: the op run in its own NumPy form on
    the positions (1, 2, ...) of one operand's entries, the others differentiable operands zero,
    gives map[k], the operand entry result entry k holds (-1 for a constant). Operands no
    gradient flows through lend their value when constant, their shape when floating; an
    unknown integer or boolean one (an index, a mask) decides which entries move where, and the
    op is then taken as dense."""
    operands = [graph._node[i] for i in data["inputs"]]
    op = OPS[data["op"]]
    fixed = {}
    for p, operand in enumerate(operands):
        if p in op.nondifferentiable:
            if operand["op"] == "const":
                fixed[p] = operand["value"]
            elif operand["dtype"] in ("float64", "float32"):
                fixed[p] = np.zeros(operand["shape"], dtype=operand["dtype"])
            else:
                return {q: "dense" for q in positions}
    maps = {}
    for p in positions:
        shape = operands[p]["shape"]
        values = [fixed[q] if q in fixed else
                  np.arange(1.0, math.prod(shape) + 1.0).reshape(shape) if q == p else
                  np.zeros(o["shape"]) for q, o in enumerate(operands)]
        moved = _evaluate(data, values)
        if moved is None:
            maps[p] = "dense"
            continue
        codes = moved.ravel()
        if not np.array_equal(codes, np.round(codes)) or codes.min(initial=0) < 0 \
                or codes.max(initial=0) > math.prod(shape):
            maps[p] = "dense"       # not a pure move after all: never miss an entry
        else:
            maps[p] = codes.astype(np.int64) - 1
    return maps


def _added(graph, data, positions):
    """{operand position: (result entries, operand entries)} for an op that adds each entry of
    an operand into one entry of the result (a scatter, whose derivative rule is a move): the
    rule, handed the positions (1, 2, ...) of the result's entries as its cotangent, moves them
    back, so that evaluated it names the result entry each operand entry is added into. As for
    _moved, an unknown integer or boolean operand (an index) makes the op dense."""
    op = OPS[data["op"]]
    scratch = Graph()
    operands = []
    for operand in (graph._node[i] for i in data["inputs"]):
        if operand["op"] == "const":
            value = np.asarray(operand["value"])
        elif operand["dtype"] in ("float64", "float32"):
            value = np.zeros(operand["shape"], dtype=operand["dtype"])
        else:
            return {p: "dense" for p in positions}
        operands.append(const(value, scratch, dtype=value.dtype))
    out = apply(data["op"], *operands, **data["attrs"])
    size = math.prod(data["shape"])
    cotangent = const(np.arange(1.0, size + 1.0).reshape(data["shape"]), scratch)
    pulled = op.vjp(cotangent, out, *operands, **data["attrs"])
    found = {}
    for p in positions:
        moved = pulled[p]
        if moved is None:
            found[p] = None
            continue
        if moved.op == "const":
            codes = moved.data["value"]
        elif all(scratch._node[i]["op"] == "const" for i in moved.data["inputs"]):
            codes = _evaluate(moved.data, [scratch._node[i]["value"]
                                           for i in moved.data["inputs"]])
        else:
            codes = None
        if codes is None:
            found[p] = "dense"
            continue
        codes = np.asarray(codes, dtype=np.float64).ravel()
        if codes.size != math.prod(graph._node[data["inputs"][p]]["shape"]) or not np.array_equal(
                codes, np.round(codes)) or codes.min(initial=1) < 1 or codes.max(initial=1) > size:
            found[p] = "dense"      # not one place per entry after all: never miss an entry
        else:
            found[p] = (codes.astype(np.int64) - 1, np.arange(codes.size, dtype=np.int64))
    return found


def _evaluate(data, values):
    """The op of node ``data`` applied to constant ``values`` by the emission compiled code runs
    (codegen's folding), in float64; None when that fails."""
    scratch = Graph()
    operands = [const(np.asarray(v), scratch, dtype=np.asarray(v).dtype) for v in values]
    node = scratch.add(data["op"], [o.node for o in operands], data["attrs"], data["shape"],
                       "float64")
    plan = Plan(scratch, [o.node for o in operands], [])
    return plan._evaluate(node, scratch._node[node])


# -- direct emission of the nonzeros ---------------------------------------------------------------

# Linear ops whose local Jacobian is constant when every operand but the one a gradient flows
# through is constant: their weights are read by running the op on probes.
LINEAR_OPS = frozenset({"sum", "mean", "cumsum", "matmul", "inner", "einsum"})


class _Abandoned(Exception):
    """Direct emission does not serve here: an op it has no rule for. The nodes it built are
    removed (Graph.atomic) and the compressed pass is built instead."""


class _Nonzeros:
    """A node's Jacobian with respect to the variable: its pattern as sorted flat keys (row *
    columns + column), and the values of those nonzeros, a NumPy array when they are constants
    (folded now), else a 1-D Expr of the same length."""

    __slots__ = ("keys", "rows", "columns", "values", "starts", "lengths")

    def __init__(self, keys, values, size, columns):
        self.keys, self.values = keys, values
        self.rows, self.columns = np.divmod(keys, columns)
        self.lengths = np.bincount(self.rows, minlength=size)
        self.starts = np.cumsum(self.lengths) - self.lengths


class _Emitter:
    """Builds the nonzeros' values as expressions of the graph, folding constants, and counts
    the entries the compiled code will compute (``cost``)."""

    def __init__(self, graph):
        self.graph, self.cost = graph, 0

    def take(self, values, index):
        if isinstance(values, np.ndarray):
            return values[index]
        if index.size == values.shape[0] and np.array_equal(index, np.arange(index.size)):
            return values
        self.cost += index.size
        return values[index]

    def times(self, values, factor):
        """``values * factor``: either a NumPy array or an Expr."""
        if isinstance(factor, np.ndarray) and isinstance(values, np.ndarray):
            return values * factor
        if isinstance(values, np.ndarray):
            values, factor = factor, values
        if isinstance(factor, np.ndarray):
            if factor.size and np.all(factor == factor.flat[0]):
                if factor.flat[0] == 1.0:
                    return values
                factor = float(factor.flat[0])
            else:
                factor = const(factor, self.graph, dtype=values.dtype)
        self.cost += values.shape[0]
        return values * factor

    def combine(self, size, parts, dtype):
        """The sum of ``parts``, (positions, values) pairs, as one vector of ``size``: the
        constant parts added now, the others added into it at their positions."""
        base = None
        symbolic = []
        for positions, values in parts:
            if isinstance(values, np.ndarray):
                if base is None:
                    base = np.zeros(size, dtype=dtype)
                np.add.at(base, positions, values)
            else:
                whole = positions.size == size and np.array_equal(positions, np.arange(size))
                symbolic.append((not whole, positions, values))
        if not symbolic:
            return np.zeros(size, dtype=dtype) if base is None else base
        symbolic.sort(key=lambda part: part[0])     # whole vectors first: the others add into them
        total = base
        for partial, positions, values in symbolic:
            self.cost += values.shape[0]
            if partial:
                if total is None:
                    total = np.zeros(size, dtype=dtype)
                if isinstance(total, np.ndarray):
                    total = const(total, self.graph, dtype=values.dtype)
                    self.cost += size
                total = apply("put_add", total, values,
                              const(positions, self.graph, dtype="int64"))
            elif total is None:
                total = values
            elif isinstance(total, np.ndarray) and not total.any():
                total = values
            else:
                total = values + (const(total, self.graph, dtype=values.dtype)
                                  if isinstance(total, np.ndarray) else total)
        return total


def _direct(y, x):
    """The nonzeros of dy/dx by forward accumulation of sparse Jacobians with fixed patterns:
    (y's _Nonzeros, the _Emitter that counted the entries the compiled code computes, the
    total size of the nodes between x and y). Raises _Abandoned at an op it has no rule for."""
    graph, nodes = y.graph, y.graph._node
    order, readers = _evaluation_order(y)
    columns = x.size
    emitter = _Emitter(graph)
    jacobians = {x.node: _Nonzeros(np.arange(columns, dtype=np.int64) * (columns + 1),
                                   np.ones(columns, dtype=x.dtype), columns, columns)}
    level = nodes[y.node]["order"] + 1
    path_size = 0
    for node in order:
        data = nodes[node]
        if node != x.node and data["inputs"] and data["dtype"] not in ("int64", "bool"):
            op = OPS[data["op"]]
            positions = _reached_operands(op, data, jacobians)
            if positions and op.vjp is None:
                raise _Abandoned(data["op"])    # the compressed pass says it has no rule
            if positions:
                if not static_shape(data["shape"]):
                    raise ShapeError(f"sparsity: op {data['op']!r} gives shape "
                                     f"{data['shape']}, whose length is known only at the call")
                with graph.deriving(level, grad_of=node):
                    found = _node_jacobian(graph, node, data, op, positions, jacobians,
                                           emitter, columns)
                if found.keys.size:
                    jacobians[node] = found
                    path_size += math.prod(data["shape"])
        for operand in set(data["inputs"]):
            readers[operand] -= 1
            if not readers[operand] and operand != y.node:
                jacobians.pop(operand, None)
    found = jacobians.get(y.node)
    if found is None:
        raise _Abandoned("no nonzero")
    return found, emitter, path_size


def _node_jacobian(graph, node, data, op, positions, jacobians, emitter, columns):
    """The _Nonzeros of ``node``: one term per operand, (how its entries take the operand's
    entries, as a constant matrix) times (the operand's Jacobian) times (the op's partial
    derivative at each entry, for an element-wise op), the terms summed on their patterns'
    union."""
    out_size = math.prod(data["shape"])
    rule = op.sparsity
    local = {}
    if rule == "elementwise":
        for p in positions:
            shape = graph._node[data["inputs"][p]]["shape"]
            local[p] = (_selection(_broadcast_map(shape, data["shape"])),
                        _elementwise_partial(graph, node, data, op, p))
    elif rule == "moves":
        for p, moved in _moved(graph, data, positions).items():
            if isinstance(moved, str):
                raise _Abandoned(data["op"])
            local[p] = (_selection(moved), None)
    elif data["op"] in LINEAR_OPS and len(positions) == 1 and all(
            graph._node[i]["op"] == "const" for q, i in enumerate(data["inputs"])
            if q != positions[0]):
        local[positions[0]] = (_linear_weights(graph, data, positions[0]), None)
    else:
        raise _Abandoned(data["op"])
    terms = []
    for p in positions:
        (rows, entries, weights), partial = local[p]
        operand = jacobians[data["inputs"][p]]
        lengths = operand.lengths[entries]
        total = int(lengths.sum())
        offsets = np.cumsum(lengths) - lengths
        taken = np.repeat(operand.starts[entries] - offsets, lengths) + np.arange(total)
        result_rows = np.repeat(rows, lengths)
        keys = result_rows * columns + operand.columns[taken]
        values = emitter.take(operand.values, taken)
        if weights is not None:
            values = emitter.times(values, np.repeat(weights, lengths))
        if partial is not None:
            values = emitter.times(values, partial if isinstance(partial, np.ndarray) and
                                   partial.size == 1 else emitter.take(partial, result_rows))
        terms.append((keys, values))
    keys = _sorted_unique(np.concatenate([k for k, _ in terms]))
    values = emitter.combine(keys.size, [(np.searchsorted(keys, k), v) for k, v in terms],
                             data["dtype"])
    return _Nonzeros(keys, values, out_size, columns)


def _sorted_unique(keys):
    """The distinct ``keys``, sorted (by a sort: np.unique's hashing is slower on these)."""
    if keys.size and np.all(keys[1:] > keys[:-1]):
        return keys
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _selection(moved):
    """(result entries, operand entries, weights None) of a map: entry k of the result is
    operand entry map[k], none where map[k] is -1."""
    rows = np.flatnonzero(moved >= 0)
    return rows, moved[rows], None


def _elementwise_partial(graph, node, data, op, p):
    """The partial derivative of each entry of an element-wise op's result with respect to the
    operand entry it reads, flat: a NumPy array (a constant, of one entry when uniform), or an
    Expr; from the op's own derivative rule, handed a cotangent of one."""
    inputs = [Expr(graph, i) for i in data["inputs"]]
    out = Expr(graph, node)
    if tuple(inputs[p].shape) != tuple(data["shape"]):
        # the rule would sum the result's entries over the axes the operand is broadcast along
        inputs[p] = apply("broadcast_to", inputs[p], shape=data["shape"])
        out = apply(data["op"], *inputs, **data["attrs"])
    # a cotangent of ones with the result's axes, each of length 1: rules read its number of
    # axes, and g * f' is then f' with no product
    ones = const(np.ones((1,) * len(data["shape"])), graph, dtype=data["dtype"])
    partial = op.vjp(ones, out, *inputs, **data["attrs"])[p]
    if partial is None:
        return np.zeros(1, dtype=data["dtype"])
    if isinstance(partial, Exception):
        raise partial
    value = partial.data.get("value") if partial.op == "const" else None
    if value is not None:
        if value.size == 1:
            return value.reshape(1).astype(data["dtype"])
        return np.broadcast_to(value, data["shape"]).ravel()
    if tuple(partial.shape) != tuple(data["shape"]):
        partial = apply("broadcast_to", partial, shape=data["shape"])
    return partial.reshape(-1)


def _linear_weights(graph, data, p):
    """(result entries, operand entries, weights) of a linear op's constant local Jacobian:
    its structure from the op's sparsity rule, its values from the op run on one probe per
    colour of a colouring of that structure's columns."""
    sparse = _scipy_sparse()
    operands = [graph._node[i] for i in data["inputs"]]
    shapes = [o["shape"] for o in operands]
    values = [o.get("value") if o["op"] == "const" else None for o in operands]
    dependence = OPS[data["op"]].sparsity(shapes, data["shape"], values, **data["attrs"])[p]
    out_size, size = math.prod(data["shape"]), math.prod(shapes[p])
    if dependence is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    if isinstance(dependence, str):
        rows, entries = np.divmod(np.arange(out_size * size, dtype=np.int64), size)
    else:
        rows, entries = (np.asarray(d, dtype=np.int64) for d in dependence)
    structure = sparse.csr_array((np.ones(rows.size, dtype=bool), (rows, entries)),
                                 shape=(out_size, size))
    colors = _greedy((structure.T @ structure).astype(bool).tocsr(), range(size))
    weights = np.zeros(rows.size)
    for color in range(int(colors.max(initial=-1)) + 1):
        probe = (colors == color).astype(np.float64).reshape(shapes[p])
        arguments = [probe if q == p else values[q] for q in range(len(operands))]
        result = _evaluate(data, arguments)
        if result is None:
            raise _Abandoned(data["op"])
        chosen = colors[entries] == color
        weights[chosen] = np.asarray(result, dtype=np.float64).ravel()[rows[chosen]]
    return rows, entries, weights


# -- colourings ------------------------------------------------------------------------------------


def _greedy(adjacency, order):
    """Greedy colouring of the graph of ``adjacency`` (CSR, symmetric) visiting ``order``: each
    vertex takes the least colour none of its neighbours has."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    colors = [n] * n                # n: not coloured yet, a colour no vertex takes
    marked = [-1] * (n + 1)         # marked[c] == v: a neighbour of v has colour c
    for v in order:
        for w in indices[indptr[v]:indptr[v + 1]]:
            marked[colors[w]] = v
        color = 0
        while marked[color] == v:
            color += 1
        colors[v] = color
    return np.array(colors, dtype=np.int64)


def _fewest_colors(adjacency, least=0):
    """The colouring with the fewest colours among greedy ones in several vertex orders:
    saturation degree (DSATUR), natural, largest degree first, and up to ORDERINGS_LIMIT
    adjacency entries smallest degree last and incidence degree, whose heaps cost more per
    entry. The first to take ``least`` colours, a lower bound the caller knows (the nonzeros of
    a row, all of whose columns conflict), is taken: no order does better."""
    adjacency = adjacency.tocsr()
    adjacency.setdiag(False)
    adjacency.eliminate_zeros()
    n = adjacency.shape[0]
    degrees = np.diff(adjacency.indptr)
    orders = [lambda: _saturation_coloring(adjacency), lambda: _greedy(adjacency, range(n))]
    if degrees.min(initial=0) != degrees.max(initial=0):
        orders.append(lambda: _greedy(adjacency, np.argsort(-degrees, kind="stable").tolist()))
    if adjacency.nnz <= ORDERINGS_LIMIT // 10:
        orders.append(lambda: _greedy(adjacency, _smallest_last(adjacency)))
        orders.append(lambda: _greedy(adjacency, _incidence_degree(adjacency)))
    best = None
    for order in orders:
        colors = order()
        if best is None or colors.max(initial=-1) < best.max(initial=-1):
            best = colors
        if best.max(initial=-1) + 1 <= least:
            break
    return best


def _smallest_last(adjacency):
    """Matula and Beck's order: a vertex of least degree among those left goes last, then the
    same for the rest (a heap with stale entries skipped)."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    degree = np.diff(adjacency.indptr).tolist()
    heap = [(degree[v], v) for v in range(n)]
    heapq.heapify(heap)
    removed = [False] * n
    order = []
    while heap:
        d, v = heapq.heappop(heap)
        if removed[v] or d != degree[v]:
            continue
        removed[v] = True
        order.append(v)
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not removed[w]:
                degree[w] -= 1
                heapq.heappush(heap, (degree[w], w))
    order.reverse()
    return order


def _incidence_degree(adjacency):
    """The incidence-degree order: next, a vertex with the most neighbours already ordered
    (Coleman and Moré), the first one on ties."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    count = [0] * n
    heap = [(0, v) for v in range(n)]
    placed = [False] * n
    order = []
    while heap:
        c, v = heapq.heappop(heap)
        if placed[v] or -c != count[v]:
            continue
        placed[v] = True
        order.append(v)
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not placed[w]:
                count[w] += 1
                heapq.heappush(heap, (-count[w], w))
    return order


def _saturation_coloring(adjacency):
    """Brélaz's DSATUR: next, an uncoloured vertex whose neighbours have the most distinct
    colours, given the least colour they lack. The vertices wait in one list per saturation:
    at saturation 0 the largest degree first, then in each list the vertex whose saturation
    rose last, next to the ones just coloured. A rise costs a list append where a heap of
    (saturation, degree) cost a heap push, so the colouring is linear in the adjacency
    entries."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    n = adjacency.shape[0]
    colors = [-1] * n
    # bit c: a neighbour has colour c; every bit once coloured, so that no colour adds to it
    seen = [0] * n
    saturation = [0] * n
    # popped from the end: the largest degree, the first vertex among equals
    degree = np.diff(adjacency.indptr)
    buckets = [np.lexsort((-np.arange(n), degree)).tolist()]
    top = 0
    for _ in range(n):
        while True:
            while not buckets[top]:
                top -= 1
            v = buckets[top].pop()
            if seen[v] != -1 and saturation[v] == top:
                break               # else a stale entry: v rose to a later bucket
        mask = seen[v]
        color = (~mask & (mask + 1)).bit_length() - 1
        colors[v] = color
        seen[v] = -1
        bit = 1 << color
        for w in indices[indptr[v]:indptr[v + 1]]:
            if not seen[w] & bit:
                seen[w] |= bit
                rise = saturation[w] = saturation[w] + 1
                if rise == len(buckets):
                    buckets.append([])
                buckets[rise].append(w)
                if rise > top:
                    top = rise
    return np.array(colors, dtype=np.int64)


def _star_coloring(adjacency):
    """A star colouring (Gebremedhin, Manne and Pothen 2005, algorithm 4.1): proper, and every
    path on four vertices has three colours, so each off-diagonal entry of a symmetric matrix is
    alone of its colour in its row or in its column."""
    indptr, indices = adjacency.indptr.tolist(), adjacency.indices.tolist()
    colors = [-1] * adjacency.shape[0]
    for v in range(adjacency.shape[0]):
        forbidden = set()
        for w in indices[indptr[v]:indptr[v + 1]]:
            color_w = colors[w]
            if color_w >= 0:
                forbidden.add(color_w)
            for x in indices[indptr[w]:indptr[w + 1]]:
                color_x = colors[x]
                if x == v or color_x < 0:
                    continue
                if color_w < 0:
                    forbidden.add(color_x)
                elif any(colors[y] == color_w for y in indices[indptr[x]:indptr[x + 1]]
                         if y != w):
                    forbidden.add(color_x)
        color = 0
        while color in forbidden:
            color += 1
        colors[v] = color
    return np.array(colors, dtype=np.int64)


def _unique_in_row(pattern, colors):
    """For each nonzero (i, j) of ``pattern`` (CSR order): whether j is the only column of its
    colour in row i, so that row i of the compressed matrix holds it alone."""
    count = colors.max(initial=-1) + 1
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    keys = rows * count + colors[pattern.indices]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse] == 1


def _symmetric_recovery(pattern, colors):
    """(row, colour) of the compressed product H S where each nonzero (i, j) of the symmetric
    ``pattern`` is read: row i at j's colour where j is alone of its colour in row i, else row
    j at i's colour; None when a nonzero is neither (the colouring does not serve)."""
    alone = _unique_in_row(pattern, colors)
    positions = _scipy_sparse().csr_array(
        (np.arange(pattern.nnz, dtype=np.int64), pattern.indices, pattern.indptr),
        shape=pattern.shape).T.tocsr()
    positions.sort_indices()
    mirror = positions.data         # the position of (j, i) for each (i, j), the same pattern
    if not np.all(alone | alone[mirror]):
        return None
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    read_rows = np.where(alone, rows, pattern.indices)
    read_colors = np.where(alone, colors[pattern.indices], colors[rows])
    return read_rows, read_colors


# -- sparse Jacobians and Hessians -----------------------------------------------------------------


METHODS = (None, "direct", "compressed")


def _method(method):
    if method not in METHODS:
        raise SymgradError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                           f"{method!r}")


def sparse_jacobian(y, x, disconnected="raise", method=None):
    """``dy/dx`` as an expression whose compiled value is a SciPy CSR array of shape
    ``(y.size, x.size)``, by one of two methods chosen now (``method=None``), whichever
    computes fewer entries per call, or the one ``method`` names:

    "direct": each node's Jacobian is carried forward with its pattern fixed now and its
    nonzeros as expressions (_direct), so the compiled code computes only the nonzeros.
    "compressed": a colouring of the pattern's columns (one forward pass of ``J S``) or of its
    rows (one reverse pass of ``W^T J``), whichever has fewer colours; the compiled function
    computes the compressed product in one batched pass and gathers the nonzeros from it."""
    y, x = _vectors(y, x, "jacobian")
    _check_policy(disconnected)
    _method(method)
    graph = y.graph
    with graph.atomic():
        pattern = _pattern(y, x)
        # a compressed pass takes at least as many colours as a row (columns) or a column
        # (rows) has nonzeros
        least = min(np.diff(pattern.indptr).max(initial=0),
                    np.bincount(pattern.indices, minlength=x.size).max(initial=0))
        direct = _direct_csr(y, x, pattern, least, method)
        if direct is not None:
            return direct
        column_colors = _fewest_colors((pattern.T @ pattern).astype(bool),
                                       np.diff(pattern.indptr).max(initial=0))
        symmetric = pattern.shape[0] == pattern.shape[1] and (pattern != pattern.T).nnz == 0
        # a symmetric pattern's rows conflict as its columns do
        row_colors = column_colors if symmetric else _fewest_colors(
            (pattern @ pattern.T).astype(bool),
            np.bincount(pattern.indices, minlength=x.size).max(initial=0))
        rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        if column_colors.max(initial=-1) < row_colors.max(initial=-1):
            colors, method = column_colors, "columns"
            count = int(colors.max(initial=-1)) + 1
            seeds = _seeds(colors, count, x.dtype)
            placeholder = zeros_like(y)
            pulled = _vjp(y, [x], placeholder, disconnected)[0]
            compressed = _vjp(pulled, [placeholder], stop_gradient(const(seeds, graph)),
                              "zero")[0]
            flat = colors[pattern.indices] * y.size + rows
        else:
            colors, method = row_colors, "rows"
            count = int(colors.max(initial=-1)) + 1
            compressed = _vjp(y, [x], const(_seeds(colors, count, y.dtype), graph),
                              disconnected)[0]
            flat = colors[rows] * x.size + pattern.indices
        return _csr(compressed, flat, pattern, count, method)


def sparse_hessian(f, x, disconnected="raise", method=None):
    """The Hessian of scalar ``f`` as an expression whose compiled value is a SciPy CSR array
    with the gradient's pattern, symmetrised, by one of two methods chosen now as for
    sparse_jacobian: "direct", the gradient's Jacobian by direct emission; "compressed", a
    symmetric colouring, a star colouring or a distance-2 one, whichever has fewer colours,
    found now, and the compiled function computes ``S^T H`` in one batched reverse pass over
    the gradient and reads each nonzero where it is alone of its colour, in its row or in its
    column."""
    if not isinstance(f, Expr) or f.shape != ():
        raise ShapeError(f"hessian needs a scalar output, got "
                         f"{f.shape if isinstance(f, Expr) else type(f).__name__}")
    _check_policy(disconnected)
    _method(method)
    graph = f.graph
    with graph.atomic():
        gradient = grad(f, x, disconnected)
        gradient, x = _vectors(gradient, x, "hessian")
        pattern = _pattern(gradient, x)
        pattern = (pattern + pattern.T).tocsr()
        pattern.sort_indices()
        # a symmetric colouring takes at least the nonzeros of a row, less one, over two, plus one
        least = (np.diff(pattern.indptr).max(initial=0) + 2) // 2
        direct = _direct_csr(gradient, x, pattern, least, method)
        if direct is not None:
            return direct
        adjacency = pattern.copy()
        adjacency.setdiag(False)
        adjacency.eliminate_zeros()
        choices = [(_fewest_colors((pattern @ pattern).astype(bool),
                                   np.diff(pattern.indptr).max(initial=0)), "distance2")]
        degrees = np.diff(adjacency.indptr)
        if int(np.sum(degrees.astype(np.int64) ** 3)) <= STAR_COLORING_LIMIT:
            choices.insert(0, (_star_coloring(adjacency), "star"))
        for colors, method in sorted(choices, key=lambda c: c[0].max(initial=-1)):
            recovery = _symmetric_recovery(pattern, colors)
            if recovery is not None:
                break
        else:
            raise SymgradError("hessian: no colouring recovers the Hessian (a bug in symgrad)")
        count = int(colors.max(initial=-1)) + 1
        compressed = _vjp(gradient, [x], const(_seeds(colors, count, x.dtype), graph),
                          "zero")[0]
        read_rows, read_colors = recovery
        return _csr(compressed, read_colors * x.size + read_rows, pattern, count, method)


def _direct_csr(y, x, pattern, least_colors, method):
    """The csr_matrix node of dy/dx with ``pattern`` (which holds the pattern direct emission
    finds) by direct emission, or None where the compressed pass is to be built: the method
    is "compressed", direct emission has no rule for an op on the way, or (method None) it
    would compute more entries per call than a compressed pass of ``least_colors`` colours
    over the nodes between x and y, each a product and a sum per colour and entry."""
    if method == "compressed" or not pattern.nnz:
        return None
    graph = y.graph
    try:
        with graph.atomic():
            found, emitter, path_size = _direct(y, x)
            keys = (np.repeat(np.arange(pattern.shape[0], dtype=np.int64),
                              np.diff(pattern.indptr)) * x.size + pattern.indices)
            values = found.values
            if not np.array_equal(found.keys, keys):
                positions = np.searchsorted(keys, found.keys)
                if np.any(positions >= keys.size) or np.any(keys[positions] != found.keys):
                    raise InternalError("direct emission found a nonzero outside the pattern")
                values = emitter.combine(keys.size, [(positions, values)], y.dtype)
            if method is None and emitter.cost > 2 * least_colors * path_size:
                raise _Abandoned("cost")
            if isinstance(values, np.ndarray):
                values = const(values, graph, dtype=y.dtype)
            return apply("csr_matrix", values, const(pattern.indices, graph, dtype="int64"),
                         const(pattern.indptr, graph, dtype="int64"), shape=pattern.shape,
                         colors=0, method="direct")
    except _Abandoned as reason:
        if method == "direct":
            raise SymgradError(f"direct emission of the sparse derivative has no rule for op "
                               f"{reason.args[0]!r}; method='compressed' computes it") from None
        return None


def _seeds(colors, count, dtype):
    """The (colours, entries) matrix whose row k is 1 at the entries of colour k."""
    seeds = np.zeros((count, colors.size), dtype=dtype)
    seeds[colors, np.arange(colors.size)] = 1.0
    return seeds


def _csr(compressed, flat, pattern, count, method):
    """The csr_matrix node whose nonzeros are ``compressed``'s flat entries ``flat``."""
    graph = compressed.graph
    if pattern.nnz:
        data = compressed.reshape(-1)[flat.astype(np.int64)]
    else:
        data = const(np.zeros(0, dtype=compressed.dtype), graph)
    return apply("csr_matrix", data, const(pattern.indices, graph, dtype="int64"),
                 const(pattern.indptr, graph, dtype="int64"), shape=pattern.shape,
                 colors=count, method=method)


def pattern_of(matrix):
    """The pattern a sparse result (sg.jacobian or sg.hessian with sparse=True) computes, as a
    boolean CSR array; a SciPy sparse matrix or a NumPy array's nonzeros pass through."""
    sparse = _scipy_sparse()
    if isinstance(matrix, Expr):
        if matrix.op != "csr_matrix":
            raise SymgradError(f"a {matrix.op} expression is not a sparse result: give "
                               f"sg.jacobian(..., sparse=True) or sg.sparsity(y, x)")
        _, indices, indptr = (operand.data.get("value") for operand in matrix.inputs)
        return sparse.csr_array((np.ones(indices.size, dtype=bool), indices, indptr),
                                shape=matrix.shape)
    return sparse.csr_array(matrix, dtype=bool)


def draw_sparsity(matrix, path, title=None):
    """Draw the nonzero pattern of ``matrix`` (a sparse result of sg.jacobian or sg.hessian, a
    pattern of sg.sparsity, any SciPy sparse matrix or NumPy array) as a spy plot to ``path``
    (.png, .svg or .pdf: matplotlib, ``pip install -e ".[pictures]"``); the title says its
    shape, its nonzeros and, for a sparse result, its colours.

    >>> import os, tempfile
    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(6,))
    >>> J = sg.jacobian(x[1:] * x[:-1], x, sparse=True)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sg.draw_sparsity(J, os.path.join(folder, "spy.png"))
    ...     os.listdir(folder)
    ['spy.png']
    """
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymgradError("draw_sparsity needs matplotlib: pip install -e "
                           "'.[pictures]' in a clone of symgrad") from None
    pattern = pattern_of(matrix)
    if title is None:
        title = f"{pattern.shape[0]} x {pattern.shape[1]}, {pattern.nnz:,} nonzeros"
        if isinstance(matrix, Expr):
            attrs = matrix.data["attrs"]
            title += (", nonzeros computed directly" if attrs["method"] == "direct" else
                      f", {attrs['colors']} colours ({attrs['method']})")
    figure, axes = plt.subplots(figsize=(5, 5))
    try:
        axes.spy(pattern, markersize=max(0.5, min(6.0, 300.0 / max(pattern.shape))))
        axes.set_title(title, fontsize=10)
        figure.savefig(path, bbox_inches="tight")
    finally:
        plt.close(figure)
