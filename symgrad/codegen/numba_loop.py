"""Whole loops as Numba kernels (the fusing backend, ``backend="numba"``): the loop of a scan whose
body Numba's nopython mode can run, every step of it, is written as one function (a kernel)
holding the ``for`` loop: it reads the scanned arrays, fills the stacked results it allocates
and returns the final carries. The function calls it once instead of running the body's NumPy
statements step after step, each a Python-level call on a small array.

Whether a body can be a kernel is decided here, when the source is written, from its ops: those
in NOPYTHON (element-wise ops with a loop form or a Python-float form Numba compiles, sums and
extremes over axes, log_softmax and softmax, matmul of vectors and matrices, inner, transpose,
basic indexing and its gradients, expand_dims, squeeze, concatenate, broadcast_to) on float64
values (booleans inside), with every axis of a known length or a named dimension. Any other
body stays the Python loop of codegen.loops.

Every value is written as a person writes a Numba kernel: an array of its own (``np.empty``,
filled by explicit loops, or ``np.dot``, which calls BLAS), a float for a number, ``.T`` for a
transpose. The results differ from the NumPy backend's by rounding only: sums add in another
order, ``math.exp`` and the loops' tanh are not NumPy's SIMD functions, and the loops may fuse
a multiply and an add (the kernels' ``fastmath={'contract'}``); tests/test_numba_loops.py holds
them to 1e-12 relative.
Imports ops, naming and errors, and codegen's emission, plan and loops.
"""

import math
from dataclasses import dataclass

from .. import naming
from ..errors import SymgradError
from ..naming import Namer
from ..ops import OPS
from ..ops.shape import _NEWAXIS
from .emission import LazyLiterals, emitted, plain, statements
from .loops import loop_key, loops_of
from .plan import Plan

# element-wise ops without a loop form whose Python-float form (math functions, conditional
# expressions) Numba compiles; the fused loops keep them NumPy calls for NumPy's SIMD speed on
# long arrays, which a loop's small arrays do not have
SCALAR_FORMS = frozenset({"exp", "expm1", "log", "log1p", "tan", "sigmoid", "softplus",
                          "logaddexp"})
# the ops a kernel writes otherwise, each by its own method of _LoopWriter
OTHER_OPS = ("sum", "mean", "max", "min", "log_softmax", "softmax", "matmul", "inner",
             "transpose", "getitem", "index_grad", "index_add", "expand_dims", "squeeze",
             "concatenate", "broadcast_to", "broadcast_to_like", "axis_size")
# a nest holds at most this many nodes, as a fused loop (codegen.numba's GROUP_LIMIT): LLVM's
# time grows faster than a loop's body, and deciding whether a value is read in its nest only
# looks this far ahead
NEST_LIMIT = 200
# reductions over axes, which join the nest computing their operand
REDUCTIONS = ("sum", "max", "min")
# the names of a kernel module's own (codegen.numba.KERNEL_HEADER), which no local may take
MODULE_NAMES = ("math", "np", "ir", "njit", "prange", "types", "intrinsic", "PARALLEL",
                "_sg_power_of_two", "_sg_tanh", "get_num_threads")


def elementwise_form(op_name):
    """The Python-float form an element-wise op is written in inside a kernel, or None."""
    emit = OPS[op_name].emit
    if emit.loop is not None:
        return emit.loop
    return emit.scalar if op_name in SCALAR_FORMS else None


class _KernelContext:
    """What an op's Python-float emitter sees inside a kernel (the EmitContext it expects)."""

    def __init__(self, data, args, out):
        self.args = args
        self.attrs = {key: plain(value) for key, value in data["attrs"].items()}
        self.shape = ()
        self.shapes = [() for _ in args]
        self.out = out

    def dim(self, name):
        raise SymgradError("a fused element-wise op cannot ask for a dimension's length")

    def temp(self, suffix):
        return naming.suffixed(self.out, suffix)


class _Nest:
    """Element-wise nodes of one shape computed by one loop nest: the arrays it fills (their
    allocations) and the statements of one pass."""

    def __init__(self, shape):
        self.shape = shape
        self.members = set()
        self.partial = set()        # reductions accumulating in it: complete when it ends
        self.allocations = []
        self.body = []


@dataclass
class WholeLoop:
    """A loop written as one kernel: the source of its function's parameters and body (the
    statements after the ``def`` line), and its call's pieces: the argument expressions, in the
    parameters' order, and what it returns, final carries then stacked results, each as (the
    name it suggests, the scan nodes it is the value of, whether it is a number: a Python float,
    which the function makes a NumPy float)."""
    params: list
    source: str
    arguments: list
    results: list


def whole_loop(renderer, node):
    """The WholeLoop of scan node ``node`` (with every result of its loop the plan reads) when
    Numba can run its body, else None. Nothing of the renderer changes either way but the
    namespace's constants and dimensions its arguments read."""
    plan = renderer.plan
    data = plan.nodes[node]
    attrs = data["attrs"]
    if attrs.get("checkpoint"):
        return None         # a checkpointed loop recomputes segments: the Python loop's business
    body = attrs["body"]
    finals, stacked = {}, {}
    for member in loops_of(renderer)[loop_key(data)]:
        kind, which = plan.nodes[member]["attrs"]["output"]
        (finals if kind == "final" else stacked).setdefault(which, []).append(member)
    carries = body.needed_carries(finals, stacked)
    outputs = [body.carry_out[j] for j in carries] + list(stacked)
    inner_inputs = [body.carries[j] for j in carries] + list(body.xs) + list(body.closed)
    inner = Plan(body.graph, list(dict.fromkeys(outputs)), inner_inputs)
    writer = _LoopWriter(inner)
    if not writer.writes_all(outputs):
        return None
    return writer.finish(renderer, data, body, carries, finals, stacked)


class _LoopWriter:
    """Writes one loop's kernel: the body's statements (one step), then the function around
    them. ``names`` maps each body node to its local; ``fresh`` holds the nodes whose value is
    an array the step made, which a carry may take as it is."""

    def __init__(self, plan):
        self.plan = plan
        self.nodes = plan.nodes
        self.namer = Namer(taken=MODULE_NAMES)
        self.steps_name = self.namer.claim(naming.STEPS)
        self.step_name = self.namer.claim(naming.STEP)
        self.names = {}
        self.fresh = set()
        self.dims = {}              # an axis's length (an int, or a name) -> its parameter
        self.constants = {}         # body node -> the parameter of its array
        self.placeholders = {}      # body placeholder -> its parameter
        self.lines = []             # the statements of one step
        self.nest = None            # the nest open (_Nest), element-wise nodes joining it
        self.scalars = set()        # nodes of a nest that are a number of each of its passes
        self.position = {node: k for k, node in enumerate(plan.order)}
        self._indices = []          # the loops' index variables, i0, i1, ...

    # -- what the kernel reads ------------------------------------------------------------------

    def dim(self, length):
        """The source of an axis's length: a parameter, named for a named dimension, else
        numbered (the call passes the length: one kernel for the body at every size); a
        length 1, which broadcasting reads, is written."""
        if length == 1:
            return "1"
        if length not in self.dims:
            self.dims[length] = self.namer.claim(
                naming.axis_length(len(self.dims)) if isinstance(length, int)
                else naming.dimension(length))
        return self.dims[length]

    def shape_source(self, shape):
        dims = [self.dim(d) for d in shape]
        return dims[0] if len(dims) == 1 else f"({', '.join(dims)})"

    def indices(self, count):
        while len(self._indices) < count:
            self._indices.append(self.namer.claim(naming.loop_index(len(self._indices))))
        return self._indices[:count]

    def operand(self, node):
        """The local (or literal) holding a body node's value."""
        if node in self.names:
            return self.names[node]
        if self.plan.is_literal(node):
            return self.plan.literal(node)
        name = self.names[node] = self.namer.claim(naming.CONSTANT)
        self.constants[node] = name
        return name

    def entry(self, node, shape, at):
        """Source of ``node``'s entry at position ``at`` (one index source per axis of
        ``shape``, which ``node`` broadcasts to)."""
        own = self.nodes[node]["shape"]
        name = self.operand(node)
        if own == () or node in self.scalars:
            return name
        offset = len(shape) - len(own)
        items = ["0" if d == 1 and shape[offset + k] != 1 else at[offset + k]
                 for k, d in enumerate(own)]
        return f"{name}[{', '.join(items)}]"

    @staticmethod
    def broadcasts(own, shape):
        if len(own) > len(shape):
            return False
        offset = len(shape) - len(own)
        return all(d == 1 or d == shape[offset + k] for k, d in enumerate(own))

    def loops(self, shape, body, at=None):
        """``body`` (statements) inside one loop per axis of ``shape``, over index variables
        ``at`` (the first ones by default)."""
        at = at or self.indices(len(shape))
        lines = []
        for depth, (index, length) in enumerate(zip(at, shape)):
            lines.append("    " * depth + f"for {index} in range({self.dim(length)}):")
        return lines + ["    " * len(shape) + line for line in body]

    def new_array(self, node):
        """The local of ``node``'s value, an array the step makes (np.empty, np.dot)."""
        name = self.local(node)
        self.fresh.add(node)
        return name

    def local(self, node):
        name = self.plan.graph.readable_name(node)
        name = self.names[node] = self.namer.claim(name) if name else self.namer.temp()
        return name

    def empty(self, node, filler="np.empty"):
        """The statement allocating ``node``'s array: empty, or full of ``filler``."""
        data = self.nodes[node]
        kind = ", np.bool_" if data["dtype"] == "bool" else ""
        value = "" if filler == "np.empty" else f", {filler}"
        call = "np.empty" if filler == "np.empty" else "np.full"
        return f"{self.names[node]} = {call}({self.shape_source(data['shape'])}{value}{kind})"

    # -- the step ----------------------------------------------------------------------------------

    def writes_all(self, outputs):
        """Write every step of the body's plan; False (the writer then discarded) at the first
        value Numba cannot compute as written here."""
        for node in self.plan.order:
            step = self.plan.step_of[node]
            data = self.nodes[node]
            if data["dtype"] not in ("float64", "bool"):
                return False
            if not all(isinstance(d, int) or naming.is_identifier(str(d))
                       for d in data["shape"]):
                return False
            if step.kind == "input":
                if data["dtype"] != "float64":
                    return False
                self.placeholders[node] = self.names[node] = \
                    self.namer.claim(data["attrs"]["name"])
            elif step.kind == "constant":
                if self.plan.value(node).dtype != "float64" and not self.plan.is_literal(node):
                    return False
            elif step.kind == "alias":
                self.names[node] = self.operand(step.alias_of)
                if step.alias_of in self.fresh:
                    self.fresh.add(node)
            elif not self.write(node, data):
                return False
        self.close_nest()
        return all(self.nodes[n]["dtype"] == "float64" for n in outputs)

    def write(self, node, data):
        op = data["op"]
        if elementwise_form(op) is not None:
            return self.elementwise(node, data, elementwise_form(op))
        if op not in OTHER_OPS:
            return False
        if not self._writes_nothing(node) and op not in REDUCTIONS:
            self.close_nest()
        return getattr(self, f"write_{op}")(node, data)

    def elementwise(self, node, data, form):
        """An element-wise node: a number, or an entry a pass of the nest of its shape computes
        (a nest holds the element-wise nodes of one shape written one after another: one loop
        computes them all, and a value read only inside it is a number of each pass, never an
        array)."""
        shape = data["shape"]
        if not all(self.broadcasts(self.nodes[i]["shape"], shape) for i in data["inputs"]):
            return False
        if shape == ():
            args = [self.entry(i, shape, ()) for i in data["inputs"]]
            self.close_nest()
            ctx = _KernelContext(data, args, self.local(node))
            self.lines.extend(statements(form, ctx, LazyLiterals(data["attrs"])))
            return True
        nest = self.nest
        if nest is None or nest.shape != shape or len(nest.members) >= NEST_LIMIT \
                or nest.partial.intersection(data["inputs"]):
            self.close_nest()
            self.nest = _Nest(shape)
        at = self.indices(len(shape))
        args = [self.entry(i, shape, at) for i in data["inputs"]]
        nest = self.nest
        nest.members.add(node)
        if self.read_in_nest_only(node):
            value = self.local(node)
            self.scalars.add(node)
            target = value
        else:
            value = self.new_array(node)
            nest.allocations.append(self.empty(node))
            target = f"{value}[{', '.join(at)}]"
        ctx = _KernelContext(data, args, self.namer.claim(naming.suffixed(value, naming.ENTRY)))
        expression = emitted(form, ctx, LazyLiterals(data["attrs"]))
        if isinstance(expression, str):
            nest.body.append(f"{target} = {expression}")
        else:
            nest.body.extend([*expression, f"{target} = {ctx.out}"])
        return True

    def read_in_nest_only(self, node):
        """Whether every reader of ``node`` joins its nest: element-wise steps of its shape and
        reductions of its members right after it (steps writing nothing in between, and no
        member reading such a reduction), and ``node`` no result of the step."""
        if node in self.plan.output_set:
            return False
        shape = self.nodes[node]["shape"]
        readers = {step.node for step in self.plan.readers.get(node, ())}
        members, partial = self.nest.members | {node}, set(self.nest.partial)
        for later in self.plan.order[self.position[node] + 1:]:
            if not readers:
                return True
            step = self.plan.step_of[later]
            if step.kind != "compute" or self._writes_nothing(later):
                if later in readers:
                    return False    # an alias or a transpose names the array
                continue
            data = self.nodes[later]
            if data["op"] in REDUCTIONS and data["inputs"][0] in members:
                partial.add(later)
            elif elementwise_form(data["op"]) is None or data["shape"] != shape \
                    or partial.intersection(data["inputs"]):
                return False
            else:
                members.add(later)
            if len(members) > NEST_LIMIT:
                return False        # the reader opens the next nest
            readers.discard(later)
        return not readers

    def _writes_nothing(self, node):
        data = self.nodes[node]
        return data["op"] == "transpose"

    def close_nest(self):
        """Write the open nest's allocations and loop."""
        nest, self.nest = self.nest, None
        if nest is not None:
            self.lines.extend(nest.allocations)
            self.lines.extend(self.loops(nest.shape, nest.body))

    def _reduced(self, data):
        """(operand, its shape, the reduced axes (non-negative), whether kept) of a reduction
        over axes of a float64 operand, or None."""
        operand = data["inputs"][0]
        own = self.nodes[operand]["shape"]
        if self.nodes[operand]["dtype"] != "float64" or not own:
            return None
        axes = sorted({a % len(own) for a in data["attrs"]["axis"]})
        return operand, own, axes, data["attrs"].get("keepdims", True)

    def _reduction(self, node, data, start, update):
        """A reduction over axes: the result starts at ``start`` everywhere and takes each entry
        ``value`` of its part of the operand by ``update(target, value)`` (statements)."""
        reduced = self._reduced(data)
        if reduced is None:
            return False
        operand, own, axes, keepdims = reduced
        at = self.indices(len(own))
        value = self.entry(operand, own, at)
        nest = self.nest
        # a reduction of a value of the open nest takes each entry as the nest makes it; the
        # result is complete when the nest ends, so no later member may read it
        joins = nest is not None and operand in nest.members
        if not joins:
            self.close_nest()
        if data["shape"] == ():
            name = self.local(node)
            start_line, target = f"{name} = {start}", name
        else:
            name = self.new_array(node)
            kept = [("0" if keepdims else None) if k in axes else index
                    for k, index in enumerate(at)]
            start_line = self.empty(node, start)
            target = f"{name}[{', '.join(k for k in kept if k is not None)}]"
        if joins:
            nest.allocations.append(start_line)
            nest.body.extend(update(target, value))
            nest.partial.add(node)
        else:
            self.lines.append(start_line)
            self.lines.extend(self.loops(own, update(target, value)))
        return True

    def write_sum(self, node, data):
        return self._reduction(node, data, "0.0", lambda target, value: [f"{target} += {value}"])

    def write_mean(self, node, data):
        """The sum over the axes divided by their count, as NumPy's mean (ops.reduce)."""
        if not self.write_sum(node, data):
            return False
        own = self.nodes[data["inputs"][0]]["shape"]
        lengths = [own[a % len(own)] for a in data["attrs"]["axis"]]
        count = (repr(float(math.prod(lengths))) if all(isinstance(d, int) for d in lengths)
                 else f"float({' * '.join(self.dim(d) for d in lengths)})")   # as _emit_mean
        name = self.names[node]
        if data["shape"] == ():
            self.lines.append(f"{name} /= {count}")
        else:
            at = self.indices(len(data["shape"]))
            self.lines.extend(self.loops(data["shape"], [f"{name}[{', '.join(at)}] /= {count}"]))
        return True

    def write_axis_size(self, node, data):
        own = self.nodes[data["inputs"][0]]["shape"]
        lengths = [self.dim(own[a % len(own)]) for a in data["attrs"]["axis"]]
        self.lines.append(f"{self.local(node)} = float({' * '.join(lengths) or '1'})")
        return True

    def _extreme(self, node, data, start, beyond):
        # a nan reached stays: nothing is beyond it, and it is not itself
        entry = self.namer.claim(naming.ENTRY)
        return self._reduction(node, data, start, lambda target, value: [
            f"{entry} = {value}", f"if {entry} {beyond} {target} or {entry} != {entry}:",
            f"    {target} = {entry}"])

    def write_max(self, node, data):
        return self._extreme(node, data, "-np.inf", ">")

    def write_min(self, node, data):
        return self._extreme(node, data, "np.inf", "<")

    def _normalised(self, node, data, log):
        """log_softmax (``log``) or softmax along axes: per slice of the other axes, its
        maximum, then the entries shifted by it and their exponentials' sum, then the result,
        as the NumPy emission computes them (codegen of ops.reduce)."""
        operand = data["inputs"][0]
        shape = data["shape"]
        if self.nodes[operand]["dtype"] != "float64" or self.nodes[operand]["shape"] != shape:
            return False
        axes = sorted({a % len(shape) for a in data["attrs"]["axis"]})
        at = self.indices(len(shape))
        outer = [k for k in range(len(shape)) if k not in axes]
        name = self.new_array(node)
        target = f"{name}[{', '.join(at)}]"
        value = self.entry(operand, shape, at)
        peak, total = (self.namer.claim(naming.suffixed(name, part)) for part in ("max", "sum"))
        entry = self.namer.claim(naming.suffixed(name, naming.ENTRY))

        def along(statements):
            return self.loops([shape[k] for k in axes], statements, [at[k] for k in axes])
        if log:
            fill = [f"{target} = {value} - {peak}", f"{total} += math.exp({target})"]
            finish = [f"{total} = math.log({total})", *along([f"{target} -= {total}"])]
        else:
            fill = [f"{target} = math.exp({value} - {peak})", f"{total} += {target}"]
            finish = along([f"{target} /= {total}"])
        per_slice = [f"{peak} = -np.inf",
                     *along([f"{entry} = {value}",
                             f"if {entry} > {peak} or {entry} != {entry}:",
                             f"    {peak} = {entry}"]),
                     f"{total} = 0.0", *along(fill), *finish]
        self.lines.append(self.empty(node))
        self.lines.extend(self.loops([shape[k] for k in outer], per_slice, [at[k] for k in outer]))
        return True

    def write_log_softmax(self, node, data):
        return self._normalised(node, data, log=True)

    def write_softmax(self, node, data):
        return self._normalised(node, data, log=False)

    def write_matmul(self, node, data):
        a, b = data["inputs"]
        if not all(1 <= len(self.nodes[i]["shape"]) <= 2 and self.nodes[i]["dtype"] == "float64"
                   for i in (a, b)):
            return False
        # np.dot calls BLAS on C- and F-ordered operands alike (a transpose is F-ordered)
        product = f"np.dot({self.operand(a)}, {self.operand(b)})"
        if data["shape"] == ():
            self.lines.append(f"{self.local(node)} = {product}")
        else:
            self.lines.append(f"{self.new_array(node)} = {product}")
        return True

    def write_inner(self, node, data):
        a, b = data["inputs"]
        shape = self.nodes[a]["shape"]
        if any(self.nodes[i]["dtype"] != "float64" for i in (a, b)):
            return False
        at = self.indices(len(shape))
        name = self.local(node)
        self.lines.append(f"{name} = 0.0")
        self.lines.extend(self.loops(shape, [
            f"{name} += {self.entry(a, shape, at)} * {self.entry(b, shape, at)}"]))
        return True

    def write_transpose(self, node, data):
        operand = data["inputs"][0]
        ndim = len(self.nodes[operand]["shape"])
        if ndim > 2 or tuple(data["attrs"]["axes"]) != tuple(reversed(range(ndim))):
            return False
        self.names[node] = f"{self.operand(operand)}.T" if ndim == 2 else self.operand(operand)
        return True

    # -- moving entries: an entry of the result is one of an operand -----------------------------

    def _copy(self, node, data, source, position):
        """``node``, of its own shape, with the entry at each position ``at`` read from
        ``source`` at ``position(at)`` (index sources, one per axis of ``source``)."""
        shape = data["shape"]
        at = self.indices(len(shape))
        read = self.operand(source)
        if self.nodes[source]["shape"] != ():
            read = f"{read}[{', '.join(position(at))}]"
        if shape == ():
            self.lines.append(f"{self.local(node)} = {read}")
            return True
        name = self.new_array(node)
        self.lines.append(self.empty(node))
        self.lines.extend(self.loops(shape, [f"{name}[{', '.join(at)}] = {read}"]))
        return True

    def _indexed(self, index, shape, at):
        """The position in an array of ``shape`` of the entry at ``at`` of its part ``index``
        (a basic index: ints, slices, new axes), or None where an item is none of these or
        its position needs a length unknown here."""
        at, position = list(at), []
        dims = iter(shape)
        for item in index:
            if item == _NEWAXIS:
                at.pop(0)
                continue
            dim = next(dims)
            if isinstance(item, int):
                if isinstance(dim, int):
                    position.append(str(item % dim))
                elif item >= 0:
                    position.append(str(item))
                else:
                    position.append(f"{self.dim(dim)} - {-item}")
                continue
            if not (isinstance(item, tuple) and item[0] == "slice"):
                return None
            index_source = at.pop(0)
            if isinstance(dim, int):
                start, _, step = slice(*item[1:]).indices(dim)
            elif item[3] == -1 and item[1] is None and item[2] is None:
                position.append(f"{self.dim(dim)} - 1 - {index_source}")
                continue
            elif item[1:] in ((None, None, None), (None, None, 1)):
                start, step = 0, 1
            else:
                return None
            scaled = index_source if step == 1 else f"{step} * {index_source}"
            position.append(scaled if start == 0 else f"{start} + {scaled}")
        return position

    def write_getitem(self, node, data):
        source = data["inputs"][0]
        own = self.nodes[source]["shape"]
        index = data["attrs"]["index"]
        if self._indexed(index, own, self.indices(len(data["shape"]))) is None:
            return False
        return self._copy(node, data, source, lambda at: self._indexed(index, own, at))

    def _scatter(self, node, data, base, update, index, keep):
        """``base`` (None: zeros) with ``update`` added into its part ``index`` after ``keep``
        leading axes."""
        shape = data["shape"]
        part = self.nodes[update]["shape"]
        at = self.indices(len(part))
        position = self._indexed(index, shape[keep:], at[keep:])
        if position is None:
            return False
        name = self.new_array(node)
        if base is None:
            self.lines.append(self.empty(node, "0.0"))
        else:
            self.lines.append(f"{name} = {self.operand(base)}.copy()")
        target = f"{name}[{', '.join([*at[:keep], *position])}]"
        self.lines.extend(self.loops(part, [f"{target} += {self.entry(update, part, at)}"]))
        return True

    def write_index_grad(self, node, data):
        g, _ = data["inputs"]
        return self._scatter(node, data, None, g, data["attrs"]["index"], data["attrs"]["keep"])

    def write_index_add(self, node, data):
        base, g = data["inputs"]
        if self.nodes[base]["shape"] != data["shape"]:
            return False
        return self._scatter(node, data, base, g, data["attrs"]["index"], data["attrs"]["keep"])

    def write_expand_dims(self, node, data):
        ndim = len(data["shape"])
        added = {a % ndim for a in data["attrs"]["axis"]}
        return self._copy(node, data, data["inputs"][0],
                          lambda at: [index for k, index in enumerate(at) if k not in added])

    def write_squeeze(self, node, data):
        source = data["inputs"][0]
        ndim = len(self.nodes[source]["shape"])
        removed = {a % ndim for a in data["attrs"]["axis"]}

        def position(at):
            rest = iter(at)
            return ["0" if k in removed else next(rest) for k in range(ndim)]
        return self._copy(node, data, source, position)

    def write_broadcast_to(self, node, data):
        source = data["inputs"][0]
        shape = data["shape"]
        if not self.broadcasts(self.nodes[source]["shape"], shape):
            return False
        at = self.indices(len(shape))
        name = self.new_array(node)
        self.lines.append(self.empty(node))
        self.lines.extend(self.loops(shape, [f"{name}[{', '.join(at)}] = "
                                             f"{self.entry(source, shape, at)}"]))
        return True

    def write_broadcast_to_like(self, node, data):
        return self.write_broadcast_to(node, data)

    def write_concatenate(self, node, data):
        shape = data["shape"]
        axis = data["attrs"]["axis"] % len(shape)
        parts = data["inputs"]
        if not all(isinstance(self.nodes[p]["shape"][axis], int) for p in parts):
            return False
        name = self.new_array(node)
        self.lines.append(self.empty(node))
        offset = 0
        for part in parts:
            own = self.nodes[part]["shape"]
            at = self.indices(len(own))
            target = [f"{offset} + {index}" if k == axis and offset else index
                      for k, index in enumerate(at)]
            self.lines.extend(self.loops(own, [f"{name}[{', '.join(target)}] = "
                                               f"{self.entry(part, own, at)}"]))
            offset += own[axis]
        return True

    # -- the function ------------------------------------------------------------------------------

    def finish(self, renderer, data, body, carries, finals, stacked):
        """The WholeLoop: the kernel's parameters and body around the step written, and the
        call's arguments (the renderer's names of the loop's operands)."""
        attrs = data["attrs"]
        inputs = data["inputs"]
        count_carries, count_xs = len(body.carries), len(body.xs)
        length = attrs["length"]
        params = [self.steps_name]
        arguments = [str(length) if isinstance(length, int) else renderer.dim(length)]

        def argument(outer, local):
            params.append(local)
            source = renderer.operand(outer)
            arguments.append(f"float({source})" if renderer.plan.nodes[outer]["shape"] == ()
                             else f"np.ascontiguousarray({source})")

        start, carry_locals = [], []
        for j in carries:
            placeholder = body.carries[j]
            if placeholder not in self.names:       # a carry the step does not read
                self.names[placeholder] = self.namer.claim(body.data(placeholder)["attrs"]["name"])
            local = self.names[placeholder]
            initial = self.namer.claim(naming.suffixed(local, naming.START))
            argument(inputs[j], initial)
            # a copy: the carry's array then has the type of the arrays the steps make
            copy = "" if body.data(placeholder)["shape"] == () else ".copy()"
            start.append(f"{local} = {initial}{copy}")
            carry_locals.append(local)
        slices = []
        for k, placeholder in enumerate(body.xs):
            if placeholder in self.placeholders:
                scanned = self.namer.claim(naming.suffixed(self.names[placeholder], naming.SCANNED))
                argument(inputs[count_carries + k], scanned)
                slices.append(f"{self.names[placeholder]} = {scanned}[{self.step_name}]")
        for k, placeholder in enumerate(body.closed):
            if placeholder in self.placeholders:
                argument(inputs[count_carries + count_xs + k], self.names[placeholder])
        stacks, puts = [], []
        for value in stacked:
            name = self.namer.claim(naming.STACKED)
            stacks.append(name)
            dims = "".join(f", {self.dim(d)}" for d in body.data(value)["shape"])
            start.append(f"{name} = np.empty(({self.steps_name}{dims}{',' if not dims else ''}))")
            puts.append(f"{name}[{self.step_name}] = {self.operand(value)}")
        for constant, local in self.constants.items():
            params.append(local)
            value = renderer.namespace_constant(self.plan.value(constant))
            arguments.append(f"np.ascontiguousarray({value})")
        for dim, local in self.dims.items():
            params.append(local)
            arguments.append(str(dim) if isinstance(dim, int) else renderer.dim(dim))
        update = []
        if carries:
            # a carry takes a new array of the step as it is, anything else (a placeholder, a
            # transpose) copied: its type stays the one of its start
            new = [self.operand(out) if out in self.fresh or body.data(out)["shape"] == ()
                   else f"{self.operand(out)}.copy()"
                   for out in (body.carry_out[j] for j in carries)]
            if new != carry_locals:
                update.append(f"{', '.join(carry_locals)} = {', '.join(new)}")
        backwards = attrs["reverse"]
        span = f"{self.steps_name} - 1, -1, -1" if backwards else self.steps_name
        comment = (f"# the whole loop of a scan (body {body.digest[:12]}): "
                   f"{len(carries)} carries, {len(stacked)} stacked results"
                   + (", last step first" if backwards else ""))
        step_lines = [*slices, *self.lines, *puts, *update] or ["pass"]
        lines = [comment, *start, f"for {self.step_name} in range({span}):",
                 *(f"    {line}" for line in step_lines),
                 f"return {', '.join([*carry_locals, *stacks])},"]
        results = [(naming.CARRY, finals.get(j, []), body.data(body.carries[j])["shape"] == ())
                   for j in carries]
        results += [(naming.STACKED, stacked[value], False) for value in stacked]
        return WholeLoop(params, "".join(f"    {line}\n" for line in lines), arguments, results)


__all__ = ["MODULE_NAMES", "OTHER_OPS", "SCALAR_FORMS", "WholeLoop", "elementwise_form",
           "whole_loop"]
