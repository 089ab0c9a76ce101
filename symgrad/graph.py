"""The IR: one networkx DiGraph of expression nodes, appended to and never rewritten in place.

Owns node storage, hash-consing, the name -> variable table, topological walks and rollback.
Stores each node's op as a string and never imports ops (see STYLE.md, section 1).
"""

import contextlib
import contextvars
import gc
import threading
import weakref

import networkx as nx

from .errors import ShapeError, SymgradError
from .naming import check_name, derivative_name

# one shared tuple per operand position instead of one per edge (most edges have one position)
_POSITIONS = tuple((position,) for position in range(8))

# A constant of at least this many bytes, and every node built on one, is released by a graph
# that releases (the default graph, use_graph's) once no expression refers to it: a loop that
# rebuilds its loss with each minibatch as a constant then holds one minibatch, not all of them.
RELEASED_CONSTANT_BYTES = 1024


class _Pin:
    """What every Expr on a released node holds, holding in turn its operands' pins: the node is
    in use while its pin lives, and Python's reference counts say when it dies."""

    __slots__ = ("operands", "__weakref__")

    def __init__(self, operands):
        self.operands = operands


class _PinRef(weakref.ref):
    """The graph's weak reference to a node's pin; its death queues the node for release."""

    __slots__ = ("node", "queue")

    def __new__(cls, pin, node, queue):
        return super().__new__(cls, pin, _queue_release)

    def __init__(self, pin, node, queue):
        super().__init__(pin, _queue_release)
        self.node, self.queue = node, queue


def _queue_release(ref):
    # runs wherever the last Expr died, perhaps inside another thread's build: only note it
    # (list.append is atomic); the graph releases at its next safe point
    ref.queue.append(ref.node)


class Graph(nx.DiGraph):
    """An expression DAG whose node keys are integers in creation order.

    Node data: ``op`` (str), ``inputs`` (tuple of node keys, in operand order; a DiGraph cannot hold
    the two edges of ``x * x``), ``attrs`` (dict), ``shape`` (tuple of ints and dimension names),
    ``dtype`` (str), ``order`` (0 for forward nodes, k for nodes appended by a k-th differentiation
    or built on them), ``derivative`` (whether differentiation built it) and ``grad_of`` (the
    forward node whose derivative rule built it).
    Edge data: ``positions``, the operand indices at which the source feeds the target.

    Because a node's inputs always exist before it, ascending keys are a topological order.

    >>> g = Graph()
    >>> x = g.variable("x", ())
    >>> g.add("sin", (x,), {}, (), "float64") == g.add("sin", (x,), {}, (), "float64")
    True

    ``Graph(release=True)`` (the default graph and ``use_graph()``'s are such graphs) releases
    each constant of at least RELEASED_CONSTANT_BYTES, with every node built on it, once no
    expression refers to any of them: a training loop that rebuilds its loss with each minibatch
    as a constant stays bounded. A plain ``Graph()`` keeps every node it is given.
    """

    def __init__(self, incoming_graph_data=None, release=False, **attr):
        super().__init__(incoming_graph_data, **attr)
        self.release = release
        self._pins = {}         # released node -> _PinRef to its pin (None until an Expr asks)
        self._released = []     # nodes whose pin died, to look at at the next safe point
        self._derivatives_of = {}   # released node -> the derivative nodes saying grad_of it
        self._cons = {}
        self._variables = {}
        self._next_key = 0
        self.lock = threading.RLock()
        self._order = 0
        self._grad_of = None
        self.name_hints = {}
        self.rewrites = {}      # node -> [the Applied build rules that made it]: how it came to be
        self._atomic_depth = 0
        self._undo = []         # (node, its count of rewrite records before) inside atomic blocks

    # -- pickling ---------------------------------------------------------------------------------

    def __getstate__(self):
        """Everything but the lock, which a pickle cannot hold (the copy gets its own), and the
        bookkeeping of atomic blocks, which exists only inside one."""
        with self.lock:
            state = dict(self.__dict__)
        del state["lock"]
        state["_atomic_depth"], state["_undo"] = 0, []
        # weak references do not pickle: the copy keeps every node it is given
        state["_pins"], state["_released"], state["_derivatives_of"] = {}, [], {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.RLock()
        for name, empty in (("release", False), ("_pins", {}), ("_released", []),
                            ("_derivatives_of", {})):
            self.__dict__.setdefault(name, empty)       # pickled before graphs released nodes

    # -- building ---------------------------------------------------------------------------------

    def add(self, op, inputs, attrs, shape, dtype, value=None):
        """Return the node for ``op(*inputs, **attrs)``, creating it only if it does not exist."""
        inputs = tuple(inputs)
        key = (op, inputs, tuple(sorted(attrs.items())) if attrs else ())
        with self.lock:
            node = self._cons.get(key)
            if node is not None:
                return node
            node = self._next_key
            while node in self._node:       # a networkx copy holds nodes but no cons table
                node += 1
            self._next_key = node + 1
            # outside differentiation a node is of the highest order among its operands: the
            # sum of a first derivative is first-order, and its gradient second-order (constants
            # are shared by all orders: a 2.0 first built in a derivative says nothing). It is
            # still not a derivative node: rewrites that hold only in derivatives (0 * inf is
            # 0 there) must not touch what the user built.
            nodes = self._node
            order = self._order
            if not order:
                for operand in inputs:
                    operand_data = nodes[operand]
                    if operand_data["order"] > order and operand_data["op"] != "const":
                        order = operand_data["order"]
            # networkx's own storage, written as add_node and add_edge would write it: this runs
            # once per node built, and the two calls cost more than the rest of building one
            data = {"op": op, "inputs": inputs, "attrs": dict(attrs) if attrs else {},
                    "shape": tuple(shape), "dtype": dtype, "order": order,
                    "derivative": self._order > 0, "grad_of": self._grad_of, "key": key}
            if value is not None:
                data["value"] = value
            nodes[node] = data
            successors = self._succ
            successors[node] = {}
            incoming = self._pred[node] = {}
            for position, operand in enumerate(inputs):
                edge = incoming.get(operand)
                if edge is not None:
                    edge["positions"] += (position,)
                else:
                    edge = {"positions": _POSITIONS[position] if position < len(_POSITIONS)
                            else (position,)}
                    successors[operand][node] = edge
                    incoming[operand] = edge
            nx._clear_cache(self)
            self._cons[key] = node
            if self.release:
                pins = self._pins
                if op == "const" and value is not None and value.nbytes >= RELEASED_CONSTANT_BYTES \
                        or pins and any(operand in pins for operand in inputs):
                    pins[node] = None
                if self._grad_of in pins:
                    self._derivatives_of.setdefault(self._grad_of, []).append(node)
            return node

    def pin(self, node):
        """The pin an Expr on released ``node`` holds, made anew (with its operands') if it died."""
        ref = self._pins[node]
        pin = None if ref is None else ref()
        if pin is not None:
            return pin
        with self.lock:
            pins = self._pins
            # operands first, each pinned once: only released ancestors whose pin died are walked.
            # Each pin takes its operands' pins as it is made (a live one could die meanwhile).
            stack, made = [node], {}
            while stack:
                top = stack[-1]
                if top in made:
                    stack.pop()
                    continue
                operands, waiting = [], []
                for operand in self._node[top]["inputs"]:
                    if operand in pins:
                        pin = made.get(operand)
                        if pin is None and pins[operand] is not None:
                            pin = pins[operand]()
                        if pin is None:
                            waiting.append(operand)
                        else:
                            operands.append(pin)
                if waiting:
                    stack.extend(waiting)
                    continue
                stack.pop()
                made[top] = _Pin(tuple(operands))
                pins[top] = _PinRef(made[top], top, self._released)
            return made[node]

    def release_unused(self):
        """Remove the released nodes no expression refers to any more, directly or through the
        nodes built on them. Runs by itself when a build ends (outside every atomic block)."""
        with self.lock:
            pins, queue = self._pins, self._released
            doomed = set()
            stack = []
            while queue:
                node = queue.pop()
                ref = pins.get(node)
                if node not in doomed and ref is not None and ref() is None:
                    stack.append(node)
            # whatever is built on an unpinned node has no live pin either (a pin holds its
            # operands'), so it goes too; then each operand left with no reader and no pin
            while stack:
                node = stack.pop()
                if node in doomed:
                    continue
                doomed.add(node)
                stack.extend(self._succ[node])
            stack = list(doomed)
            while stack:
                for operand in self._node[stack.pop()]["inputs"]:
                    ref = pins.get(operand, False)
                    if ref is not False and operand not in doomed \
                            and (ref is None or ref() is None) \
                            and all(reader in doomed for reader in self._succ[operand]):
                        doomed.add(operand)
                        stack.append(operand)
            if any(pins[node] is not None and pins[node]() is not None for node in doomed):
                return      # never reached while every pin holds its operands'; never free a live node
            for node in doomed:
                # a derivative node that outlives the node whose rule built it keeps its op's
                # name, as the optimiser's copies do, for the comment in the emitted code
                for derivative in self._derivatives_of.pop(node, ()):
                    if derivative not in doomed and derivative in self._node:
                        self._node[derivative]["grad_of"] = self._node[node]["op"]
            for node in doomed:
                self._cons.pop(self._node[node]["key"], None)
                self.name_hints.pop(node, None)
                self.rewrites.pop(node, None)
                pins.pop(node, None)
            self.remove_nodes_from(doomed)

    def find(self, op, inputs, attrs):
        """The node ``add`` would return for these, if it exists already; else None."""
        return self._cons.get((op, tuple(inputs), tuple(sorted(attrs.items()))))

    def variable(self, name, shape, dtype="float64"):
        """The node of variable ``name``; the same name always means the same variable."""
        check_name(name)
        shape = tuple(shape)
        with self.lock:
            node = self._variables.get(name)
            if node is not None:
                data = self.nodes[node]
                if data["shape"] != shape or data["dtype"] != dtype:
                    raise ShapeError(
                        f"variable {name!r} already exists with shape {data['shape']} and dtype "
                        f"{data['dtype']}; it cannot be redeclared with shape {shape} and dtype "
                        f"{dtype}. To start afresh (a notebook cell run again with new data), "
                        f"build in a graph of its own: with sg.use_graph(): ...")
                return node
            node = self.add("var", (), {"name": name}, shape, dtype)
            self._variables[name] = node
            return node

    @property
    def building_derivatives(self):
        """True inside ``deriving``: the nodes being added belong to a derivative."""
        return self._order > 0

    @property
    def next_key(self):
        """The key the next new node will get: nodes at or above it were added after this call."""
        return self._next_key

    @property
    def variables(self):
        """Name -> node of every variable in the graph."""
        return dict(self._variables)

    def note_rewrites(self, node, records):
        """Add ``records`` to how ``node`` came to be (once each). ``node`` may be older than the
        atomic block noting them: if the block fails, they are taken back with its nodes."""
        with self.lock:
            existing = self.rewrites.get(node, [])
            new = [r for r in dict.fromkeys(records) if r not in existing]
            if not new:
                return
            if self._atomic_depth:
                self._undo.append((node, len(existing)))
            self.rewrites[node] = existing + new

    def atomic(self):
        """Hold the graph's lock; if the block raises, remove every node it added (and every
        rewrite record it noted)."""
        return _Atomic(self)

    def atomically(self, function, /, *args, **kwargs):
        """``function(*args, **kwargs)`` inside ``atomic()``: the same block without a context
        manager's object and two calls, for apply, through which every node is built."""
        with self.lock:
            mark, undo_mark = self._next_key, len(self._undo)
            self._atomic_depth += 1
            failed = True
            try:
                result = function(*args, **kwargs)
                failed = False
            finally:
                self._leave_atomic(mark, undo_mark, failed)
            return result

    def _leave_atomic(self, mark, undo_mark, failed):
        try:
            if failed:
                self._rollback(mark, undo_mark)
        finally:
            self._atomic_depth -= 1
            if not self._atomic_depth:
                self._undo.clear()
                # the build is over: no node key is held outside an Expr any more
                if not failed and self._released:
                    self.release_unused()

    def deriving(self, order, grad_of=None):
        """Stamp nodes created inside the block as derivative nodes of ``order``."""
        return _Deriving(self, order, grad_of)

    def _rollback(self, mark, undo_mark):
        for node, count in reversed(self._undo[undo_mark:]):
            if count:
                self.rewrites[node] = self.rewrites[node][:count]
            else:
                del self.rewrites[node]
        del self._undo[undo_mark:]
        doomed = [node for node in range(mark, self._next_key) if node in self]
        for node in doomed:
            data = self.nodes[node]
            self._cons.pop(data["key"], None)
            if data["op"] == "var":
                self._variables.pop(data["attrs"]["name"], None)
            self.name_hints.pop(node, None)
            self.rewrites.pop(node, None)
            self._pins.pop(node, None)
            self._derivatives_of.pop(node, None)
        # keys are not handed out again: an Expr that escaped the failed block must not come to
        # denote some later node
        self.remove_nodes_from(doomed)

    def discard(self, doomed):
        """Remove the nodes ``doomed`` (none of which a kept node reads), as a failed block's
        rollback would: a loop's body, traced in this graph, moves to a graph of its own.
        Their keys are not handed out again."""
        doomed = set(doomed)
        with self.lock:
            self._undo = [(node, count) for node, count in self._undo if node not in doomed]
            for node in doomed:
                data = self.nodes[node]
                if self._cons.get(data["key"]) == node:
                    del self._cons[data["key"]]
                if data["op"] == "var" and self._variables.get(data["attrs"]["name"]) == node:
                    del self._variables[data["attrs"]["name"]]
                self.name_hints.pop(node, None)
                self.rewrites.pop(node, None)
                # no pin of theirs may queue them for release once they are gone
                self._pins.pop(node, None)
                self._derivatives_of.pop(node, None)
            self.remove_nodes_from(doomed)

    def readable_name(self, node):
        """The name a derivative result suggests for itself: ``d_out_d_x`` for a gradient,
        ``d2_out_d_x_d_y`` for a second derivative, ``hvp_out_x``; None for other nodes. The chain
        of variables is read back through the hints of the nodes it was differentiated from."""
        hint = self.name_hints.get(node)
        if hint is None or isinstance(hint, str):
            return hint
        kind, of, *wrt = hint
        wrt_chain = list(wrt)
        seen = set()
        # a gradient can be a node of its own function (d/dy of sin(x) * exp(y)): stop at a repeat
        # ... or at a node no longer in the graph (released: no expression refers to it)
        while kind != "hvp" and of not in seen and of in self._node:
            seen.add(of)
            if self.nodes[of]["op"] == "sum" and self.name_hints.get(
                    self.nodes[of]["inputs"][0], ("",))[0] in ("grad", "jacobian"):
                # grad(sum(d1), x): the next derivative of an element-wise first derivative
                of = self.nodes[of]["inputs"][0]
            if self.name_hints.get(of, ("",))[0] not in ("grad", "jacobian"):
                break
            _, of, *inner = self.name_hints[of]
            wrt_chain = inner + wrt_chain
        return derivative_name(kind, self._variable_name(of),
                               [self._variable_name(w) for w in wrt_chain])

    def _variable_name(self, node):
        data = self._node.get(node)
        return data["attrs"]["name"] if data is not None and data["op"] == "var" else None

    # -- walking ----------------------------------------------------------------------------------

    def ancestors_in_order(self, roots, visit_last=None):
        """The roots and everything they depend on, each after its inputs (iterative DFS, a
        node's operands in their order, except that those ``visit_last(operand)`` holds for
        come after the others: they are computed just before the node reading them)."""
        nodes = self._node
        seen = set()
        order = []

        def operands(node):
            inputs = nodes[node]["inputs"]
            if visit_last is None or len(inputs) < 2:
                return iter(inputs)
            last = [operand for operand in inputs if visit_last(operand)]
            if not last or len(last) == len(inputs):
                return iter(inputs)     # the order stands: most nodes, no sort made
            # what a stable sort on visit_last gives: the others, then these, each in order
            return iter([operand for operand in inputs if not visit_last(operand)] + last)

        for root in roots:
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, operands(root))]
            while stack:
                node, pending = stack[-1]
                for operand in pending:
                    if operand not in seen:
                        seen.add(operand)
                        stack.append((operand, operands(operand)))
                        break
                else:
                    stack.pop()
                    order.append(node)
        return order


class _Atomic:
    """Graph.atomic as a plain context manager: it wraps every node built, so it is kept cheaper
    than a generator-based one."""

    __slots__ = ("graph", "mark", "undo_mark")

    def __init__(self, graph):
        self.graph = graph

    def __enter__(self):
        graph = self.graph
        graph.lock.acquire()
        self.mark, self.undo_mark = graph._next_key, len(graph._undo)
        graph._atomic_depth += 1

    def __exit__(self, kind, error, traceback):
        graph = self.graph
        try:
            graph._leave_atomic(self.mark, self.undo_mark, kind is not None)
        finally:
            graph.lock.release()
        return False


class _Deriving:
    __slots__ = ("graph", "stamp", "saved")

    def __init__(self, graph, order, grad_of):
        self.graph, self.stamp = graph, (order, grad_of)

    def __enter__(self):
        graph = self.graph
        graph.lock.acquire()
        self.saved = graph._order, graph._grad_of
        graph._order, graph._grad_of = self.stamp

    def __exit__(self, kind, error, traceback):
        graph = self.graph
        graph._order, graph._grad_of = self.saved
        graph.lock.release()
        return False


@contextlib.contextmanager
def collector_paused():
    """Python's cycle collector paused while a derivative is built or a function compiled, and
    restored after unless the caller had it off. Both allocate containers by the hundred
    thousand that live on, and each full collection they trigger walks every object alive, the
    user's graph included: on the 100k-op chain of tests/benchmarks/compile_time.py a third of
    sg.grad's time and most of code generation's. Cycles made meanwhile are collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_DEFAULT_GRAPH = Graph(release=True)
_CURRENT_GRAPH = contextvars.ContextVar("symgrad_current_graph", default=None)


def default_graph():
    """The graph new variables and constants go into: the innermost ``use_graph``, else a global one.

    >>> import symgrad as sg
    >>> with sg.use_graph() as graph:
    ...     sg.default_graph() is graph and sg.var("x").graph is graph
    True
    """
    graph = _CURRENT_GRAPH.get()
    return _DEFAULT_GRAPH if graph is None else graph


@contextlib.contextmanager
def use_graph(graph=None):
    """Build into ``graph`` (a new one by default, which releases nodes no expression refers to,
    as the default graph does) inside the block.

    >>> with use_graph() as g:
    ...     default_graph() is g
    True
    """
    graph = Graph(release=True) if graph is None else graph
    if not isinstance(graph, Graph):
        raise SymgradError(f"use_graph takes a symgrad Graph (or nothing), got "
                           f"{type(graph).__name__}")
    token = _CURRENT_GRAPH.set(graph)
    try:
        yield graph
    finally:
        _CURRENT_GRAPH.reset(token)
