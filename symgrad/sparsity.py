"""Sparse Jacobians and Hessians: the structural pattern of a derivative read off the graph, the
colourings that compress it, and the compressed pass whose nonzeros make a SciPy CSR matrix.

A node's pattern is a boolean matrix (its entries by the variable's entries), propagated in
evaluation order by each op's record (Op.sparsity); an op that only moves entries is run, in its
own NumPy form, on the positions of its operand's entries. Imports graph, ops, differentiate and
codegen (whose plan evaluates an op); api exposes it.
"""

import math

import networkx as nx
import numpy as np

from .codegen.plan import Plan
from .differentiate import _as_list, _check_policy, _vjp, grad
from .errors import ShapeError, SymgradError
from .graph import Graph
from .ops import OPS, Expr, apply, const, static_shape, stop_gradient, zeros_like

# A greedy colouring in Python visits each vertex's neighbours: up to this many adjacency
# entries, networkx's smallest-last ordering is tried besides the natural and largest-first ones,
# which symgrad runs over the arrays itself (networkx's graph costs more than they do)
NETWORKX_COLORING_LIMIT = 50_000
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


def _pattern(y, x):
    """The pattern of dy/dx (CSR, bool, sorted indices), one op at a time in evaluation order;
    a node's pattern is dropped once its last reader has been visited."""
    sparse = _scipy_sparse()
    graph, nodes = y.graph, y.graph._node
    order = graph.ancestors_in_order([y.node])
    readers = {}
    for node in order:
        for operand in set(nodes[node]["inputs"]):
            readers[operand] = readers.get(operand, 0) + 1
    patterns = {x.node: sparse.identity(x.size, dtype=bool, format="csr")}
    for node in order:
        data = nodes[node]
        if node != x.node and data["inputs"] and data["dtype"] not in ("int64", "bool"):
            op = OPS[data["op"]]
            positions = [p for p, operand in enumerate(data["inputs"])
                         if p not in op.nondifferentiable and operand in patterns]
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


def _evaluate(data, values):
    """The op of node ``data`` applied to constant ``values`` by the emission compiled code runs
    (codegen's folding), in float64; None when that fails."""
    scratch = Graph()
    operands = [const(np.asarray(v), scratch, dtype=np.asarray(v).dtype) for v in values]
    node = scratch.add(data["op"], [o.node for o in operands], data["attrs"], data["shape"],
                       "float64")
    plan = Plan(scratch, [o.node for o in operands], [])
    return plan._evaluate(node, scratch._node[node])


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


def _fewest_colors(adjacency):
    """The colouring with the fewest colours among greedy ones in several orders: natural,
    largest degree first, and networkx's smallest-last on small graphs."""
    adjacency = adjacency.tocsr()
    adjacency.setdiag(False)
    adjacency.eliminate_zeros()
    n = adjacency.shape[0]
    degrees = np.diff(adjacency.indptr)
    candidates = [_greedy(adjacency, range(n))]
    if degrees.min(initial=0) != degrees.max(initial=0):
        candidates.append(_greedy(adjacency, np.argsort(-degrees, kind="stable").tolist()))
    if adjacency.nnz <= NETWORKX_COLORING_LIMIT:
        network = nx.from_scipy_sparse_array(adjacency)
        found = nx.coloring.greedy_color(network, strategy="smallest_last")
        candidates.append(np.array([found[v] for v in range(n)], dtype=np.int64))
    return min(candidates, key=lambda colors: colors.max(initial=-1))


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


def sparse_jacobian(y, x, disconnected="raise"):
    """``dy/dx`` as an expression whose compiled value is a SciPy CSR array of shape
    ``(y.size, x.size)``: the pattern and a colouring of its columns (one forward pass of
    ``J S``) or of its rows (one reverse pass of ``W^T J``), whichever has fewer colours, are
    found now, and the compiled function computes the compressed product in one batched pass
    and gathers the nonzeros from it."""
    y, x = _vectors(y, x, "jacobian")
    _check_policy(disconnected)
    graph = y.graph
    with graph.atomic():
        pattern = _pattern(y, x)
        column_colors = _fewest_colors((pattern.T @ pattern).astype(bool))
        symmetric = pattern.shape[0] == pattern.shape[1] and (pattern != pattern.T).nnz == 0
        # a symmetric pattern's rows conflict as its columns do
        row_colors = column_colors if symmetric else _fewest_colors(
            (pattern @ pattern.T).astype(bool))
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


def sparse_hessian(f, x, disconnected="raise"):
    """The Hessian of scalar ``f`` as an expression whose compiled value is a SciPy CSR array:
    its pattern (symmetrised) and a symmetric colouring, a star colouring or a distance-2 one,
    whichever has fewer colours, are found now; the compiled function computes ``S^T H`` in one
    batched reverse pass over the gradient and reads each nonzero where it is alone of its
    colour, in its row or in its column."""
    if not isinstance(f, Expr) or f.shape != ():
        raise ShapeError(f"hessian needs a scalar output, got "
                         f"{f.shape if isinstance(f, Expr) else type(f).__name__}")
    _check_policy(disconnected)
    graph = f.graph
    with graph.atomic():
        gradient = grad(f, x, disconnected)
        gradient, x = _vectors(gradient, x, "hessian")
        pattern = _pattern(gradient, x)
        pattern = (pattern + pattern.T).tocsr()
        pattern.sort_indices()
        adjacency = pattern.copy()
        adjacency.setdiag(False)
        adjacency.eliminate_zeros()
        choices = [(_fewest_colors((pattern @ pattern).astype(bool)), "distance2")]
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
            title += f", {attrs['colors']} colours ({attrs['method']})"
    figure, axes = plt.subplots(figsize=(5, 5))
    try:
        axes.spy(pattern, markersize=max(0.5, min(6.0, 300.0 / max(pattern.shape))))
        axes.set_title(title, fontsize=10)
        figure.savefig(path, bbox_inches="tight")
    finally:
        plt.close(figure)
