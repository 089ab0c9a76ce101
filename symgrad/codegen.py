"""Graph -> plain NumPy source: one statement per needed node, in evaluation order.

Owns which node gets which generated name (inputs keep theirs, intermediates are t0, t1...,
gradients d_out_d_x: symgrad.naming makes the names) and the namespace the source is compiled in.
Imports ops, naming and errors.
"""

import itertools
import linecache
import math
import numbers
import os
import re
import string
import weakref

import numpy as np

from . import naming
from .errors import InternalError, ShapeError, SymgradError
from .naming import SCALAR_NAMES, Namer
from .ops import OPS, literal, static_shape
from .ops.core import CODEGEN_FOLD_LIMIT
from .ops.shape import index_grad_target, least_lengths

# Intermediate arrays of at least this many float64 entries (128 KiB, glibc's default threshold
# for serving an allocation from fresh mmap'd pages) live in a workspace the compiled function
# keeps between calls. A fresh large array costs a page fault per 4 KiB page touched, and glibc
# hands such memory back to the system as soon as a few of them are freed together: on a large
# Rosenbrock HVP the page faults took most of a call (tests/benchmarks/README.md).
WORKSPACE_MIN = 1 << 14
# A sum of a large array and a term computed from inputs alone (a weight decay's 2 c W added to
# W's gradient) of at least this many entries (1 MiB of float64, a core's L2 cache here) is made
# in blocks of rows of about BLOCK_ENTRIES entries: each block of the term is made and added
# while it is in cache, where NumPy would write the whole term to memory and read it back
# (its gain on the MLP: tests/benchmarks/README.md).
BLOCKED_SUM_MIN = 1 << 17
BLOCK_ENTRIES = 1 << 15
# Up to this many outputs, the statements of those needing fewer nodes come first
# (_outputs_by_reach).
REACH_ORDER_LIMIT = 16
# How Python's float arithmetic and the math module refuse what NumPy answers with inf or nan
# (1/0, log(0), exp(1000), sqrt(-1)): the fast path then hands the call to the NumPy code.
SCALAR_REFUSALS = (ArithmeticError, ValueError)
_FORMATTER = string.Formatter()
_counter = itertools.count()


def _scalar_type(dtype):
    """``np.float64``-style source for a node's dtype, checked because it is written verbatim."""
    if dtype == "bool":
        return "np.bool_"
    try:
        valid = naming.is_identifier(dtype) and np.dtype(dtype).name == dtype
    except TypeError:
        valid = False
    if not valid:
        raise SymgradError(f"dtype {dtype!r} cannot be written into generated source")
    return f"np.{dtype}"


class _LazyLiterals(dict):
    """Attribute values turned into source only when a template names them."""

    def __init__(self, attrs):
        super().__init__()
        self.attrs = attrs

    def __missing__(self, key):
        return literal(self.attrs[key])


def _plain(value):
    """An attribute value as a plain bool, int, float, str, None or tuple of them, so that an
    emitter formatting it into source cannot run a subclass's own __format__ or __repr__."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        # emitters may format a string attribute (a dimension name, a rule key) straight into
        # source: only a name can pass, never an expression or a statement
        return naming.checked_identifier(str(value), "attribute value")
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    raise SymgradError(f"attribute value {value!r} cannot be written into generated source")


class EmitContext:
    """What an op's emitter sees: operand source, attributes, shapes and naming services."""

    def __init__(self, generator, node, args):
        data = generator.graph.nodes[node]
        self.args = args
        self.attrs = {key: _plain(value) for key, value in data["attrs"].items()}
        self.shape = data["shape"]
        self.shapes = [generator.graph.nodes[i]["shape"] for i in data["inputs"]]
        self.dtypes = [generator.operand_dtype(i) for i in data["inputs"]]
        self.dtype = data["dtype"]
        self.out = generator.names[node]
        self.in_place = generator.in_place     # whether a view can be updated in place
        self._generator = generator

    def dim(self, name):
        """Source for the run-time length of dimension ``name``."""
        return self._generator.dim(name)

    def temp(self, suffix):
        return self._generator.namer.claim(naming.suffixed(self.out, suffix))


def _fresh(op_name):
    """Whether the op's result is a new array (not a view, not a caller's or a constant's memory):
    only these may be written to in place or released early (Emission.view)."""
    return not OPS[op_name].emit.view


def _fills_any_buffer(op_name):
    """Whether the op, a fresh array, can write its result into any array of its shape: its
    numpy_into writes every entry of out, whatever was there before (Emission.into_positions)."""
    emit = OPS[op_name].emit
    return emit.numpy_into is not None and emit.into_positions in (None, ()) and not emit.view


def _statements(emitter, ctx, attrs):
    """The statements assigning ``ctx.out`` from an op's template (formatted with the operands
    and ``attrs``) or emitter (called with ``ctx``)."""
    emitted = (_FORMATTER.vformat(emitter, ctx.args, attrs) if isinstance(emitter, str)
               else emitter(ctx))
    return [f"{ctx.out} = {emitted}"] if isinstance(emitted, str) else emitted


class SourceGenerator:
    """Emits one Python function computing ``outputs`` from ``inputs`` (variable nodes)."""

    def __init__(self, graph, outputs, inputs, function_name="f", scalar=False, known_order=None):
        self.graph = graph
        self.scalar = scalar        # emit each op's Python-float form (Emission.scalar)
        # scalar only, in one case of generate_scalar's: (a, b) -> 1 when a > b, -1 when a < b;
        # (a, None) -> the sign of a. Every ordered op (Emission.ordered) they decide simplifies.
        self.known_order = dict(known_order or {})
        self.outputs = list(outputs)
        self.inputs = list(inputs)
        # a dunder would rebind the namespace's own entries (def __builtins__ ...)
        if naming.is_reserved_function_name(function_name):
            raise SymgradError(f"function name {function_name!r} is reserved")
        self.function_name = naming.checked_identifier(function_name, "function name")
        self.order = graph.ancestors_in_order(_outputs_by_reach(graph, self.outputs),
                                              visit_last=self._an_array_of_inputs_alone)
        input_set = set(self.inputs)
        for node in self.order:
            data = graph.nodes[node]
            if data["op"] == "var" and node not in input_set:
                raise SymgradError(f"the outputs depend on variable {data['attrs']['name']!r}, "
                                   f"which is not among the inputs")
        var_names = [graph.nodes[n]["attrs"]["name"] for n in self.inputs]
        self.namer = Namer(taken=[function_name, *(SCALAR_NAMES if scalar else ())])
        self.names = {}
        for node, name in zip(self.inputs, var_names):
            self.names[node] = self.namer.claim(name)
        self.input_names = {self.names[node] for node in self.inputs}
        self.float64_only = all(graph.nodes[n]["dtype"] == "float64" for n in self.inputs)
        self.namespace = {"np": np, "float": float, "__builtins__": {}}
        if scalar:
            self.namespace["math"] = math       # for constants folded in a case
        self._dims = {}
        self._constants = 0
        self.statements = {}
        self.folded = {}            # node -> its value, computed here from constant operands
        self.workspace = not scalar     # large intermediates in kept buffers (off when tracing)
        self.slot_shapes = []       # workspace slot -> its array's shape
        self.slot_of = {}           # node -> the workspace slot holding its value
        self._free_slots = {}       # shape -> slots no live value holds
        self._scatter = {}          # value -> the index_grad whose slice it is written into
        self._scattered = set()     # index_grad nodes whose arrays exist already
        self.augment = not scalar   # write `a *= b` for an operand dying there (off when tracing)
        self.in_place = True        # arrays can be updated through views (not in the array API)
        self.boolean_masks = True   # a step read by products may be a mask (Emission.numpy_mask)
        self.tracing = False        # source(trace=True): every value kept for the caller
        self._handed_on = set()     # nodes whose name and array a later node took over
        self._masks = set()         # nodes given as boolean masks (Emission.numpy_mask)
        self._block_names = None    # the variables of the loops over blocks (_sum_in_blocks)

    def _an_array_of_inputs_alone(self, node):
        """Whether ``node`` is an array computed from inputs and constants alone. Such a value
        is computed just before its first reader, after the reader's other operands: computed
        ahead of them, it would be held while they are made and have left the cache when read
        (a weight decay's 2 c W, made before the whole backward pass its gradient waits for). A
        number costs nothing to hold and keeps its place."""
        nodes = self.graph.nodes
        data = nodes[node]
        return data["shape"] != () and data["op"] not in ("var", "const") and all(
            nodes[i]["op"] in ("var", "const") for i in data["inputs"])

    def dim(self, name):
        if name not in self._dims:
            for node in self.inputs:
                shape = self.graph.nodes[node]["shape"]
                if name in shape:
                    self._dims[name] = (self.namer.claim(naming.dimension(name)),
                                        f"np.shape({self.names[node]})[{shape.index(name)}]")
                    break
            else:
                raise SymgradError(f"dimension {name!r} is not the length of any input's axis")
        return self._dims[name][0]

    def operand_dtype(self, node):
        """The dtype of ``node``'s value as the emitted code holds it (the graph's)."""
        return self.graph.nodes[node]["dtype"]

    def _operand(self, node):
        """Source for a node used as an operand: its name, or a literal for scalar constants."""
        if node in self.names:
            return self.names[node]
        data = self.graph.nodes[node]
        value = self.folded[node] if node in self.folded else data["value"]
        if value.shape == () and value.dtype != bool:
            text = literal(float(value))
            # parenthesised when negative, -0.0 included, so that "x ** {1}" stays one power
            return f"({text})" if text.startswith("-") else text
        if value.shape == ():
            return repr(bool(value))
        name = self._namespace_constant(value)
        self.names[node] = name
        return name

    def _comment(self, data):
        source = data.get("grad_of")
        if not data["derivative"] or source is None:
            return ""
        if isinstance(source, str):         # the optimiser keeps only the op of a pruned node
            label = source
        elif source in self.names:
            label = self.names[source]
        else:
            label = self.graph.nodes[source]["op"]
        # a newline in an op name would end the comment and start a statement
        return f"  # grad of {label}" if naming.is_identifier(label) else ""

    def steps(self):
        """What the body computes, in order: here one step per node; a backend that fuses
        nodes (symgrad.fuse) returns some of them grouped."""
        return self.order

    def _step_operands(self, step):
        return self.graph.nodes[step]["inputs"]

    def body(self):
        """One statement per step; an array operand is released (``del``) right after its last
        use, and a sum whose left operand dies there accumulates into that operand's buffer."""
        steps = self.steps()
        readers = {}            # operand -> the steps reading it, once per reading
        for step in steps:
            for operand in self._step_operands(step):
                readers.setdefault(operand, []).append(step)
        self._masks = self._mask_values(steps, readers)
        steps = self._masks_after_their_operands(steps)
        last_use = {}
        for k, step in enumerate(steps):
            for operand in self._step_operands(step):
                last_use[operand] = k
        for node in self.outputs:
            last_use[node] = len(steps)
        for node in reversed(self.order):
            # an array lives as long as any view of it: writing into it or releasing it earlier
            # would change (or keep alive) what the view shows
            data = self.graph.nodes[node]
            if not _fresh(data["op"]):          # views, aliases, and ops symgrad cannot vouch for
                for base in data["inputs"]:
                    last_use[base] = max(last_use.get(base, -1), last_use.get(node, -1))
        owned = set()           # nodes whose value is a fresh array no one else holds
        dying = {}              # statement index -> names of owned arrays last used there
        lines = []
        self._scatter = self._scatter_targets(steps, readers) if self.workspace else {}
        blocked = self._blocked_sums(steps, readers)    # sum -> its term made in blocks
        terms = set(blocked.values())
        for k, step in enumerate(steps):
            made = []
            if step in terms:
                pass                # made with the sum reading it
            elif step in blocked:
                made = self._sum_in_blocks(step, blocked[step], k, owned, last_use, lines)
            elif isinstance(step, int):
                made = self._node_statements(step, k, owned, last_use, lines)
            else:
                made = self.step_statements(step, lines)
            for node in made:
                owned.add(node)
                dying.setdefault(last_use.get(node, k), []).append(node)
            released = [n for n in dying.pop(k, ()) if n not in self._handed_on]
            if released and not self.tracing:
                lines.append(f"del {', '.join(sorted(self.names[n] for n in released))}")
                for node in released:
                    if node in self.slot_of:    # free for a later value of its shape
                        slot = self.slot_of.pop(node)
                        self._free_slots.setdefault(self.slot_shapes[slot], []).append(slot)
        return lines

    def _blocked_sums(self, steps, readers):
        """{sum: term} for the sums made in blocks of rows (BLOCKED_SUM_MIN): a float64 sum or
        difference, not written into a slice, of an array of its shape computed here (not one
        broadcast) and a term that is an element-wise op (Emission.scalar) on inputs of the sum's
        shape and numbers, read only there.
        Off where there is no workspace (a trace, the fast path) or no update through a view."""
        if not self.workspace or not self.in_place or not self.float64_only:
            return {}
        nodes = self.graph.nodes
        steps_here = {step for step in steps if isinstance(step, int)}
        blocked = {}
        for step in steps_here:
            data = nodes[step]
            if data["op"] not in ("add", "subtract") or step in self._scatter \
                    or data["dtype"] != "float64" or not static_shape(data["shape"]) \
                    or math.prod(data["shape"]) < BLOCKED_SUM_MIN:
                continue
            first, second = data["inputs"]
            # first - term, or either order of a sum (exactly commutative in floating point)
            for term, other in ((second, first), (first, second))[:2 if data["op"] == "add" else 1]:
                if term != other and term in steps_here and len(readers[term]) == 1 \
                        and term not in self.outputs and nodes[other]["op"] not in ("var", "const") \
                        and nodes[other]["shape"] == data["shape"] \
                        and nodes[other]["dtype"] == "float64" \
                        and self._elementwise_on_inputs(term, data["shape"]):
                    blocked[step] = term
                    break
        return blocked

    def _elementwise_on_inputs(self, node, shape):
        """Whether ``node`` is a float64 element-wise op (one with a Python-float form, writing
        every entry of an out= array) of ``shape`` on inputs of that shape and numbers, at least
        one of them an input (ops on constants alone are computed at compile time)."""
        nodes = self.graph.nodes
        data = nodes[node]
        emit = OPS[data["op"]].emit
        if emit.scalar is None or emit.numpy_into is None or emit.into_positions not in (None, ()) \
                or data["shape"] != shape or data["dtype"] != "float64":
            return False
        operands = [nodes[i] for i in data["inputs"]]
        return all(o["op"] in ("var", "const") and o["shape"] in ((), shape) for o in operands) \
            and any(o["op"] == "var" and o["shape"] == shape for o in operands)

    def _sum_in_blocks(self, node, term, k, owned, last_use, lines):
        """Emit ``node`` = other + term (or other - term) as a loop over blocks of rows, each
        block of the term made into a workspace block and added at once: into the other
        operand's array when it dies here (which then becomes the sum's), else into a new
        array. Returns the fresh arrays."""
        nodes = self.graph.nodes
        data = nodes[node]
        other = next(i for i in data["inputs"] if i != term)
        shape = tuple(data["shape"])
        row = math.prod(shape[1:])
        per_block = max(1, BLOCK_ENTRIES // row)
        block_shape = (min(per_block, shape[0]), *shape[1:])
        blocks = tuple((slice(start, min(start + per_block, shape[0])),
                        slice(0, min(per_block, shape[0] - start)))
                       for start in range(0, shape[0], per_block))
        slot = self._slot_of_shape(block_shape)
        if self._block_names is None:     # the loops' variables, one pair for every loop
            self._block_names = tuple(self.namer.claim(name) for name in naming.BLOCK_LOOP)
        rows, block = self._block_names
        args = [f"{self._operand(i)}[{rows}]" if nodes[i]["shape"] == shape else self._operand(i)
                for i in nodes[term]["inputs"]]
        self.names[term] = self.new_name(term)
        ctx = EmitContext(self, term, args)
        attrs = _LazyLiterals(nodes[term]["attrs"])
        ctx.into = attrs["out"] = f"_sg_ws[{slot}][{block}]"
        made = _statements(OPS[nodes[term]["op"]].emit.numpy_into, ctx, attrs)
        comment = self._comment(data)
        taken = (other in owned and last_use.get(other) == k
                 and (other not in self.slot_of or node not in self.outputs))
        self.names[node] = self.new_name(node)
        if taken:
            if other in self.slot_of:
                self.slot_of[node] = self.slot_of.pop(other)
            update = (f"{self.names[other]}[{rows}] {'+' if data['op'] == 'add' else '-'}= "
                      f"{self.names[term]}")
        else:       # a value held elsewhere, or computed at compile time (a constant's name)
            lines.append(f"{self.names[node]} = np.empty({shape!r}){comment}")
            update = (f"np.{data['op']}({self._operand(other)}[{rows}], {self.names[term]}, "
                      f"out={self.names[node]}[{rows}])")
        lines.append(f"for {rows}, {block} in {self._namespace_constant(blocks)}:"
                     f"  # in blocks of rows, each made and added while in cache")
        lines.extend(f"    {statement}{self._comment(nodes[term])}" for statement in made)
        lines.append(f"    {update}{comment}")
        self.statements[term], self.statements[node] = made, [update]
        if taken:
            self.statements[node].append(f"{self.names[node]} = {self.names[other]}")
            lines.append(self.statements[node][-1] + comment)
        self._free_slots.setdefault(block_shape, []).append(slot)
        return (node, term)

    def _record(self, node, statements, lines):
        """Keep ``node``'s statements (for the table and pictures) and emit them, each with the
        node's comment."""
        self.statements[node] = statements
        comment = self._comment(self.graph.nodes[node])
        lines.extend(statement + comment for statement in statements)

    def _slot_of_shape(self, shape):
        """A workspace slot for an array of ``shape``: a free one, or a new one."""
        free = self._free_slots.get(tuple(shape))
        if free:
            return free.pop()
        self.slot_shapes.append(tuple(shape))
        return len(self.slot_shapes) - 1

    def _namespace_constant(self, value):
        """The name of ``value`` put in the function's namespace."""
        name = self.namer.claim(naming.constant(self._constants))
        self._constants += 1
        self.namespace[name] = value
        return name

    def _mask_values(self, steps, readers):
        """The values given as boolean masks (Emission.numpy_mask): not outputs, not scalars, each
        read only by products of its own with a floating array. Not in a trace, which shows every
        value as the graph has it, and only when every input is float64: with float32 ones a
        number meeting a float32 array keeps float32 at run time, where the graph may say
        float64, so a product's dtype could change with the mask."""
        if not self.boolean_masks or self.scalar or self.tracing or not self.float64_only:
            return set()
        nodes = self.graph.nodes
        masks = set()
        for step in steps:
            if not isinstance(step, int) or step in self.outputs or nodes[step]["shape"] == () \
                    or OPS[nodes[step]["op"]].emit.numpy_mask is None:
                continue
            if all(self._multiplies_a_float(reader, step) for reader in readers.get(step, ())):
                masks.add(step)
        return masks

    def _masks_after_their_operands(self, steps):
        """``steps`` with each mask moved to just after the step computing its operand. A mask
        costs a byte an entry to keep, and its operand is then free for its other readers: the
        last of them can take its buffer (a ReLU's pre-activation becomes its activation, in
        place) or release it, where otherwise the operand would live until the backward pass
        reads it. An operand computed inside a group of steps (symgrad.fuse) keeps its mask
        where it was."""
        nodes = self.graph.nodes
        position = {step: k for k, step in enumerate(steps) if isinstance(step, int)}
        following = {}      # step -> the masks moved right after it
        for step in steps:
            if step in self._masks and nodes[step]["inputs"][0] in position:
                following.setdefault(nodes[step]["inputs"][0], []).append(step)
        if not following:
            return steps
        moved = {mask for masks in following.values() for mask in masks}
        reordered = []
        for step in steps:
            if step not in moved:
                reordered.append(step)
                reordered.extend(following.get(step, ()))
        return reordered

    def _multiplies_a_float(self, step, mask):
        """Whether ``step`` is a float64 product of ``mask`` with another float64 value, not a
        mask itself (two masks multiply as booleans; a float32 constant would make the product
        float32)."""
        nodes = self.graph.nodes
        if not isinstance(step, int) or nodes[step]["op"] != "multiply" \
                or nodes[step]["dtype"] != "float64":
            return False
        other = [operand for operand in nodes[step]["inputs"] if operand != mask]
        return (len(other) == 1 and OPS[nodes[other[0]]["op"]].emit.numpy_mask is None
                and self.operand_dtype(other[0]) == "float64")

    def _scatter_targets(self, steps, readers):
        """{value: index_grad node} where the op computing a cotangent can write it straight into
        the slice of the zeros its only reader, an index_grad of static shape, starts from: one
        pass instead of an array and a copy (slicing's gradient, as a careful hand writes it)."""
        targets = {}
        for step in steps:
            if not isinstance(step, int) or self.graph.nodes[step]["op"] != "index_grad":
                continue
            value = self.graph.nodes[step]["inputs"][0]
            data = self.graph.nodes[value]
            if (readers.get(value) == [step] and value not in self.outputs
                    and _fills_any_buffer(data["op"]) and data["shape"] != ()
                    and self.float64_only and data["dtype"] == "float64"
                    and static_shape(self.graph.nodes[step]["shape"])
                    and not self._constant_operands(data)):
                targets[value] = step
        return targets

    def workspace_slot(self, node):
        """Source of a kept buffer for ``node``'s value, or None: a float64 intermediate (not an
        output, which the caller keeps) of a static shape with at least WORKSPACE_MIN entries."""
        data = self.graph.nodes[node]
        shape = data["shape"]
        if self._reads_a_transpose(data):
            # NumPy lays the result out as the transposed operand is (K order), which the
            # matrix product reading it next takes faster than a C-ordered buffer ((A.T * p) @ A)
            return None
        if not self.workspace or not shape or node in self.outputs or data["dtype"] != "float64" \
                or not self.float64_only or not static_shape(shape) \
                or math.prod(shape) < WORKSPACE_MIN:
            return None
        slot = self._slot_of_shape(shape)
        self.slot_of[node] = slot
        return f"_sg_ws[{slot}]"

    def _reads_a_transpose(self, data):
        """Whether an operand is a transposition, or a folded view of a constant in another
        order than C's (c.T)."""
        for operand in data["inputs"]:
            value = self.folded.get(operand)
            if self.graph.nodes[operand]["op"] == "transpose" or value is not None \
                    and value.ndim >= 2 and not value.flags.c_contiguous:
                return True
        return False

    def step_statements(self, step, lines):
        """Emit a step that is not a single node (see ``steps``) into ``lines``; returns the
        nodes it leaves as fresh arrays."""
        raise InternalError(f"unknown step {step!r}")

    def _node_statements(self, node, k, owned, last_use, lines):
        """Emit ``node``'s statements into ``lines``; returns [node] when they leave it a fresh
        array that this function owns."""
        data = self.graph.nodes[node]
        if data["op"] in ("var", "const"):
            return ()
        args = self._typed_numbers(data, self._floated(data, [self._operand(i)
                                                              for i in data["inputs"]]))
        emitter = OPS[data["op"]].emit.scalar if self.scalar else OPS[data["op"]].numpy
        if emitter == "{0}" and (args[0].isidentifier() or self.scalar):
            # an identity at run time (stop_gradient): no statement, just another name
            self.names[node] = args[0]
            return ()
        if emitter == "{0}":
            # an identity of an inlined literal: give it a NumPy type, as ops expect arrays
            emitter = f"{_scalar_type(data['dtype'])}({{0}})"
        if self.known_order and self._decided(node, data, args):
            return ()
        # on floats, in every case of generate_scalar alike (so that their code agrees up to the
        # step): x * 1.0 is x, exactly, and an op of constants is a constant
        alias = self._identity(data, args) if self.scalar else None
        if alias is not None:
            self.names[node] = alias
            return ()
        if node not in self.outputs and self._constant_operands(data):
            value = self._evaluate(node, data, emitter, args)
            if value is not None:
                self.folded[node] = value
                return ()
        if node in self._scattered:         # its value was written into its buffer already
            self.statements[node] = []
            return (node,)
        if node in self._scatter:
            self.names[node] = self.new_name(node)
            return self._into_the_slice(node, EmitContext(self, node, args),
                                        _LazyLiterals(data["attrs"]), lines)
        if node in self._masks:
            self.names[node] = self.new_name(node)
            mask = OPS[data["op"]].emit.numpy_mask
            self._record(node, mask(EmitContext(self, node, args)), lines)
            return (node,)
        reused = self._reusable_buffer(node, k, owned, last_use)
        if reused is not None and self._update_in_place(node, data, args, reused, lines):
            return (node,)
        buffer = None if reused is None else self.names[reused]
        self.names[node] = self.new_name(node)
        ctx = EmitContext(self, node, args)
        attrs = _LazyLiterals(data["attrs"])
        if buffer is None and _fills_any_buffer(data["op"]):
            buffer = self.workspace_slot(node)
        if buffer is not None:
            ctx.into = attrs["out"] = buffer
            emitter = OPS[data["op"]].emit.numpy_into
        self._record(node, _statements(emitter, ctx, attrs), lines)
        if self.scalar:
            return ()               # floats: nothing to release, nothing to reuse
        if data["shape"] != () and (_fresh(data["op"]) or buffer is not None):
            return (node,)
        return ()

    def _floated(self, data, args):
        """``args`` with its boolean operands made floating when the node is floating and none of
        its operands is: NumPy adds and multiplies two masks as booleans (True + True is True),
        refuses to subtract or negate them and takes sin of a mask in float16. On Python floats
        every boolean operand is made a float: True * True is the int 1 (a square's template
        repeats its operand). Masks (Op.nondifferentiable: where's condition) stay; a reduction
        of a mask converts as it adds (Emission.reduces_masks)."""
        if data["dtype"] == "bool" or OPS[data["op"]].emit.reduces_masks:
            return args
        masks = OPS[data["op"]].nondifferentiable
        booleans = [k for k in range(len(args)) if k not in masks
                    and self.operand_dtype(data["inputs"][k]) == "bool"]
        if not booleans or not self.scalar and len(booleans) < len(args) - len(masks):
            return args
        floating = "float" if self.scalar else _scalar_type(data["dtype"])
        return [f"{floating}({a})" if k in booleans else a for k, a in enumerate(args)]

    def _typed_numbers(self, data, args):
        """``args`` with its numbers written as NumPy scalars of the node's dtype where, as
        Python numbers, they would not give it: NumPy promotes a Python number to the dtype of
        the arrays it meets (NEP 50) and to float64 alone, so ``np.where(c, 1.0, 0.0)`` of a
        float32 node is written ``np.where(c, np.float32(1.0), np.float32(0.0))``. Operands that
        have no say in the dtype (masks, shape donors) count as in ops.promoted_dtypes."""
        dtype = data["dtype"]
        if self.scalar or dtype not in ("float32", "float64"):
            return args
        excluded = OPS[data["op"]].nondifferentiable
        numbers, arrays = [], []
        for k, operand in enumerate(data["inputs"]):
            if k in excluded:
                continue
            if operand in self.names:
                if self.operand_dtype(operand) != "bool":
                    arrays.append(self.operand_dtype(operand))
            elif self.graph.nodes[operand]["dtype"] != "bool":
                numbers.append(k)
        if not numbers or (np.result_type(*arrays).name if arrays else "float64") == dtype:
            return args
        return [f"{_scalar_type(dtype)}({a})" if k in numbers else a for k, a in enumerate(args)]

    def _decided(self, node, data, args):
        """In a case of generate_scalar: whether ``node`` is an ordered op (Emission.ordered) whose
        operands' order the case knows, now named as the operand it is or folded to its
        number."""
        ordered = OPS[data["op"]].emit.ordered
        if ordered is None:
            return False
        operands = data["inputs"]
        pair = (operands[0], operands[1] if len(operands) == 2 else None)
        sign = self.known_order.get(pair)
        if sign is None and pair[1] is not None:
            sign = -self.known_order.get(pair[::-1], 0) or None
        result = None if sign is None else ordered[0 if sign > 0 else 1]
        if result is None:
            return False
        operand = None if isinstance(result, float) else operands[result]
        if operand is None:
            self.folded[node] = np.float64(result)
        elif args[result].isidentifier():
            self.names[node] = args[result]
        elif operand in self.folded or self.graph.nodes[operand]["op"] == "const":
            self.folded[node] = (self.folded[operand] if operand in self.folded
                                 else self.graph.nodes[operand]["value"])    # a literal
        else:
            return False            # an expression (a mask made a float): the op stays
        return True

    @staticmethod
    def _identity(data, args):
        """The operand a scalar op returns unchanged, bit for bit, when it is a name; else None
        (Emission.scalar_identities)."""
        for position, neutral in OPS[data["op"]].emit.scalar_identities:
            kept = args[1 - position]
            if args[position] == neutral and kept.isidentifier():
                return kept
        return None

    def _update_in_place(self, node, data, args, operand, lines):
        """Emit ``node`` as an augmented assignment to the array of its dying operand
        ``operand`` (``t1 *= -2.0``), which then carries on under that name, as a careful hand
        writes it: the same arithmetic as ``np.multiply(t1, -2.0, out=t1)``, and cheaper than a
        ufunc's out= keyword (tests/benchmarks/README.md). Returns whether it did. Not for an
        output (it keeps its readable name) or a value with a readable name, nor when tracing
        (every value keeps its name)."""
        symbol = OPS[data["op"]].emit.augmented
        if symbol is None or not self.augment or node in self.outputs \
                or self.graph.readable_name(node):
            return False
        # found by node, not by name: an alias (stop_gradient's operand) reads under the same
        # name, and the node handed on must be the one whose array this is
        position = data["inputs"].index(operand)
        if position == 0:
            other = args[1]
        elif data["op"] in ("add", "multiply"):     # commutative: exactly, in floating point
            other = args[0]
        else:
            return False
        buffer = self.names[operand]
        self.names[node] = buffer
        self._handed_on.add(operand)    # its name and array live on as node's
        self.statements[node] = [f"{buffer} {symbol}= {other}"]
        lines.append(self.statements[node][0] + self._comment(data))
        return True

    def _scatter_view(self, node, lines):
        """Emit the array of ``node``'s index_grad reader (which then emits nothing when its
        turn comes) and return the source of the slice ``node``'s value is to be written into."""
        reader = self._scatter[node]
        self.names[reader] = self.new_name(reader)
        # its shape is static: the array reads neither operand (the second may not exist yet)
        reader_args = [self.names[node], "None"]
        start, index = index_grad_target(EmitContext(self, reader, reader_args))
        comment = self._comment(self.graph.nodes[reader])
        lines.extend(statement + comment for statement in start)
        self._scattered.add(reader)
        return f"{self.names[reader]}[{index}]"

    def _into_the_slice(self, node, ctx, attrs, lines):
        """Emit ``node`` straight into the slice of its index_grad reader's zeros."""
        ctx.into = attrs["out"] = self._scatter_view(node, lines)
        emitter = OPS[self.graph.nodes[node]["op"]].emit.numpy_into
        self._record(node, _statements(emitter, ctx, attrs), lines)
        return (node,)      # a view of the reader's array: released after its one use

    def new_name(self, node):
        name = self.graph.readable_name(node)
        return self.namer.claim(name) if name else self.namer.temp()

    def _constant_operands(self, data):
        """Whether ``data``'s node can be computed now: a built-in op on constants only, with a
        result of at most CODEGEN_FOLD_LIMIT entries."""
        if not OPS[data["op"]].emit.foldable or not data["inputs"]:
            return False
        if not static_shape(data["shape"]) or math.prod(data["shape"]) > CODEGEN_FOLD_LIMIT:
            return False
        return all(i in self.folded or self.graph.nodes[i]["op"] == "const"
                   for i in data["inputs"])

    def _evaluate(self, node, data, emitter, args):
        """The node's value, computed once by its own emission, or None when that fails (the
        statement is then emitted and fails, or warns, at run time as it would have)."""
        self.names[node] = "_sg_folded"
        try:
            statements = _statements(emitter, EmitContext(self, node, args),
                                     _LazyLiterals(data["attrs"]))
            source = "def _sg_fold():\n" + "".join(f"    {s}\n" for s in statements) \
                + "    return _sg_folded\n"
            # asarray: a view of a constant (c.T, c[1:]) stays a view, which neither doubles
            # the constant's memory nor loses the layout NumPy and BLAS read it in
            # ((A.T * p) @ A is faster with A.T a view: tests/benchmarks/README.md)
            with np.errstate(all="ignore"):
                value = np.asarray(build_function(source, dict(self.namespace), "_sg_fold")(),
                                   dtype=data["dtype"])
        except Exception:           # noqa: BLE001 (whatever it is, the run-time code shows it)
            return None
        finally:
            del self.names[node]
        if value.shape != tuple(data["shape"]):
            return None
        value.setflags(write=False)
        return value

    def _reusable_buffer(self, node, k, owned, last_use):
        """The operand whose array can take the result in place (Emission.numpy_into): a
        fresh array of the result's shape and dtype that dies at this very statement. Saves an
        allocation, and for large arrays the page faults of touching new memory. A workspace
        buffer passes on its slot, but never to an output: the caller keeps what it is given."""
        data = self.graph.nodes[node]
        if OPS[data["op"]].emit.numpy_into is None or data["shape"] == () or not self.float64_only \
                or self.scalar or self.tracing:
            # with float32 inputs a Python-number constant keeps float32 at run time, so the
            # buffer's dtype there is not the one the graph records
            return None
        positions = OPS[data["op"]].emit.into_positions
        for position, operand in enumerate(data["inputs"]):
            if positions is not None and position not in positions:
                continue
            operand_data = self.graph.nodes[operand]
            if (operand in owned and last_use.get(operand) == k and operand not in self._masks
                    and operand_data["shape"] == data["shape"]
                    and operand_data["dtype"] == data["dtype"]):
                if operand in self.slot_of:
                    if node in self.outputs:
                        continue
                    self.slot_of[node] = self.slot_of.pop(operand)
                return operand
        return None

    def _returned(self, node):
        """An output as a fresh array: never a view of an argument or of a constant, never the
        read-only result of a broadcast."""
        data = self.graph.nodes[node]
        if self.scalar:
            return self._operand(node)      # a float is immutable: never a copy
        if not _fresh(data["op"]) or self.names.get(node) in self.input_names \
                or self.names.get(node) in self.namespace:
            if data["shape"] == ():
                return f"{_scalar_type(data['dtype'])}({self._operand(node)})"
            return f"np.array({self._operand(node)})"
        return self._operand(node)

    def source(self, trace=False):
        """The function's source; with ``trace`` it returns a dict of every named value instead."""
        if trace:
            # every value stays as computed and named: no workspace, no buffer taken over, no
            # update in place, no del
            self.workspace = False
            self.augment = False
            self.tracing = True
        body = self.body()
        returned = []
        for k, node in enumerate(self.outputs):
            value = self._returned(node)
            # the same node asked for twice comes back as two arrays, not one array twice
            if node in self.outputs[:k] and not value.startswith("np."):
                value = f"np.array({value})" if self.graph.nodes[node]["shape"] != () else value
            returned.append(value)
        if trace:
            named = [n for n in self.order if n in self.names]
            returned = ["{" + ", ".join(f"{self.names[n]!r}: {self.names[n]}" for n in named) + "}"]
        params = ", ".join(self.names[n] for n in self.inputs)
        lines = [f"def {self.function_name}({params}):"]
        lines += [f"    {name} = {expression}" for name, expression in self._dims.values()]
        if self.slot_shapes:
            # a call takes a workspace from the function's pool (or makes one) and gives it back
            # on the way out; concurrent calls each hold their own
            lines.append("    _sg_ws = _sg_take()")
            self.namespace.update(_workspace_pool(self.slot_shapes))
        lines += [f"    {line}" for line in body]
        if self.slot_shapes:
            lines.append("    _sg_give(_sg_ws)")
        lines.append(f"    return {', '.join(returned)}" + ("," if len(returned) == 1 else ""))
        return "\n".join(lines) + "\n"


def _outputs_by_reach(graph, outputs):
    """The outputs in the order their statements are emitted: values in the caller's order, then
    derivatives, those needing fewer nodes first (stable). The forward pass is then done before
    any cotangent exists, and a reverse-mode gradient comes out in backpropagation's order, each
    parameter's gradient as soon as the cotangent it reads is complete: for [loss, dW1, dW2, dW3],
    dW3, dW2, then dW1, so that each layer's cotangent dies before the next one is made.
    Counting reaches walks each derivative's ancestors: past REACH_ORDER_LIMIT outputs the
    caller's order stands, and the cost stays linear in the graph."""
    if len(outputs) < 2 or len(outputs) > REACH_ORDER_LIMIT:
        return outputs
    nodes = graph.nodes
    key = {node: (1, len(graph.ancestors_in_order([node]))) if nodes[node]["derivative"]
           else (0, 0) for node in set(outputs)}
    return sorted(outputs, key=key.__getitem__)


def _workspace_pool(shapes):
    """The namespace entries of a function's workspace pool: ``_sg_take()`` pops a list of
    arrays of ``shapes`` (allocated when the pool is empty), ``_sg_give`` returns it. list.pop
    and list.append are atomic, so threads never share a workspace."""
    pool = []

    def take():
        try:
            return pool.pop()
        except IndexError:
            return [np.empty(shape) for shape in shapes]
    return {"_sg_take": take, "_sg_give": pool.append}


def scalar_ready(graph, outputs, inputs, function_name):
    """Whether the fast path applies: every needed node a float64 (or, inside, boolean) scalar
    with a Python-float form, every input and output a float64 scalar, and a function name that
    does not hide a name the entry uses."""
    if not inputs or function_name in SCALAR_NAMES:
        return False
    if any(graph.nodes[node]["dtype"] != "float64" for node in outputs):
        return False            # a comparison's result stays a NumPy bool
    for node in inputs:
        data = graph.nodes[node]
        if data["shape"] != () or data["dtype"] != "float64":
            return False
    for node in graph.ancestors_in_order(outputs):
        data = graph.nodes[node]
        if data["shape"] != () or data["dtype"] not in ("float64", "bool"):
            return False
        if data["op"] not in ("var", "const") and OPS[data["op"]].emit.scalar is None:
            return False
    return True


def generate_scalar(graph, outputs, inputs, function_name, single):
    """The entry of an all-scalar graph: Python floats go through ``math`` code, inline; any other
    argument, or a value ``math`` refuses, goes to ``_sg_general`` (the checked NumPy function).

    The first step (Emission.ordered: the derivative of max, abs or relu) splits the code into
    cases, as a hand would write ``if y > z:``; then assignments nothing reads are dropped and a
    temporary read once is written where it is read (_tidy).

    Returns (source, namespace), or (None, None) when scalar_ready says no.
    """
    if not scalar_ready(graph, outputs, inputs, function_name):
        return None, None
    generator = SourceGenerator(graph, outputs, inputs, function_name, scalar=True)
    body = _scalar_statements(generator, outputs, single)
    params = [generator.names[n] for n in inputs]
    step = next((node for node in generator.order if OPS[graph.nodes[node]["op"]].emit.step),
                None)
    split = None if step is None else _split_at_step(graph, outputs, inputs, function_name,
                                                     single, generator, body, step, params)
    if split is None:
        body = _tidy([], [body], [])
    else:
        prefix, conditions, cases = split
        body = _tidy(prefix, cases, conditions)
    floats = " and ".join(f"type({p}) is _sg_float" for p in params)
    lines = [_entry_def(function_name, params),
             f"    if {floats} and not _sg_extra and not _sg_unexpected:",
             "        try:"]
    lines += [f"            {line}" for line in body]
    lines += ["        except _sg_refusals:",
              "            pass    # math refuses where NumPy answers inf or nan: NumPy answers",
              _entry_way_out(params)]
    namespace = dict(generator.namespace, math=math, _sg_refusals=SCALAR_REFUSALS,
                     **_ENTRY_NAMESPACE)
    return "\n".join(lines) + "\n", namespace


def _split_at_step(graph, outputs, inputs, function_name, single, generator, body, step, params):
    """The cases ``body`` splits into at ``step``: (the statements every case shares, the
    conditions of the positive and negative cases, [positive, negative, general statements]),
    or None when there is no split. The general statements serve zero and nan.

    The step's operand decides the case; when it is a difference ``a - b`` the condition
    compares ``a`` with ``b`` (a - b > 0 exactly when a > b, in IEEE arithmetic with its gradual
    underflow, nan and infinities included), so that max(a, b) and min(a, b) are decided too,
    and often the case needs nothing computed before it."""
    operand = graph.nodes[step]["inputs"][0]
    operand_source = generator._operand(operand)
    if not operand_source.isidentifier():
        return None         # a constant: the step was folded
    pairs, compared = [(operand, None)], (operand_source, "0.0")
    data = graph.nodes[operand]
    if data["op"] == "subtract":
        pairs.append(tuple(data["inputs"]))
        compared = tuple(generator._operand(i) for i in data["inputs"])
    positive, negative = [_scalar_statements(
        SourceGenerator(graph, outputs, inputs, function_name, scalar=True,
                        known_order={pair: sign for pair in pairs}),
        outputs, single) for sign in (1, -1)]
    shared = len(os.path.commonprefix([body, positive, negative]))
    if shared == min(len(body), len(positive), len(negative)):
        return None         # the cases simplify nothing
    assigned = {line.split(" = ", 1)[0] for line in body[:shared]}
    if not all(source in params or source in assigned or not source.isidentifier()
               for source in compared):
        return None         # the cases would start before the operands exist: no split
    left, right = compared
    return (body[:shared], [f"if {left} > {right}:", f"if {left} < {right}:"],
            [positive[shared:], negative[shared:], body[shared:]])


def _scalar_statements(generator, outputs, single):
    """The fast path's statements, its return included."""
    body = generator.body()
    returned = ", ".join(generator._returned(node) for node in outputs)
    return body + [f"return {returned}" + ("" if single or len(outputs) > 1 else ",")]


# the longest statement (comment included) inlining makes: a chain of one-read temporaries stays
# readable, and far below Python's 200 nested parentheses
INLINE_WIDTH = 100
# a name read in a statement of the fast path (not an attribute, not a number's exponent)
_READ = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_ASSIGNMENT = re.compile(r"([A-Za-z_]\w*) = ([^#]*?)(  #.*)?$")


def _tidy(prefix, cases, conditions):
    """The fast path's statements: ``prefix``, then each case under its condition (the last
    case, the general one, unconditioned). Every case ends in a return.

    Each statement of a fast path is one assignment of a pure expression to a name of its own,
    so an assignment nothing reads is dropped, and one read once is written into the statement
    that reads it, as a hand would write ``return z, z, x + y`` (a name stored and loaded less,
    which counts on the fast path: tests/benchmarks/README.md). The prefix's names are read by
    the conditions and the cases too, which take nothing inlined.
    """
    cases = [_inline_once_read(case, {}) for case in cases]
    read_later = {}
    for line in conditions + [line for case in cases for line in case]:
        for name in _READ.findall(line.split("#", 1)[0]):
            read_later[name] = read_later.get(name, 0) + 2   # 2: never inlined there
    lines = _inline_once_read(prefix, read_later)
    for condition, case in zip(conditions, cases):
        lines += [condition] + [f"    {line}" for line in case]
    return lines + cases[len(conditions)]


def _inline_once_read(lines, read_later):
    """Straight-line ``lines`` without the assignments nothing reads, and with each name read
    once (here, not in ``read_later``: name -> reads after these lines) written where it is
    read. One pass from the end, so linear in the size of the code."""
    reads = dict(read_later)
    reader = {}                 # name -> index in ``kept`` of the statement reading it
    kept = []                   # the statements, last first
    for line in reversed(lines):
        match = _ASSIGNMENT.match(line)
        if match is not None:
            name, expression = match.group(1), match.group(2)
            count = reads.get(name, 0)
            if count == 0:
                continue        # nothing reads it
            if count == 1 and name in reader \
                    and len(kept[reader[name]]) + len(expression) <= INLINE_WIDTH:
                index = reader.pop(name)
                kept[index] = _substituted(kept[index], name, expression)
                for read in _READ.findall(expression):
                    reads[read] = reads.get(read, 0) + 1
                    reader[read] = index
                continue
        kept.append(line)
        for read in _READ.findall(line.split("#", 1)[0] if match is None else match.group(2)):
            reads[read] = reads.get(read, 0) + 1
            reader[read] = len(kept) - 1
    return kept[::-1]


def _substituted(line, name, expression):
    """``line`` with its one read of ``name`` replaced by ``expression``, parenthesised unless it
    is atomic or the read is a whole right-hand side, tuple item or call argument."""
    match = _ASSIGNMENT.match(line)
    if match is None:           # a return: no comment
        target, code, comment = "", line, ""
    else:                       # only the right-hand side reads
        target, code, comment = f"{match.group(1)} = ", match.group(2), match.group(3) or ""
    read = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", code)
    before, after = code[:read.start()].rstrip(), code[read.end():].lstrip()
    whole = (before in ("", "return") or before.endswith((",", "("))) \
        and (after == "" or after.startswith((",", ")")))
    if not (whole or _atomic(expression)):
        expression = f"({expression})"
    return target + code[:read.start()] + expression + code[read.end():] + comment


def _atomic(expression):
    """Whether ``expression`` binds tighter than any operator: a name, a number, a call or one
    parenthesised whole (``(a if c else b)``, not ``(a) + (b)``)."""
    rest = re.sub(r"^[\w.]+", "", expression)
    if not rest:
        return True
    if not rest.startswith("(") or not rest.endswith(")"):
        return False
    depth = 0
    for k, character in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and k < len(rest) - 1:
            return False
    return True


def _entry_def(function_name, params):
    """An entry's def line. Its parameters are positional-only: a keyword lands in
    _sg_unexpected, and the general path binds it (and names the argument when the call is
    wrong) as it binds every other call."""
    signature = [f"{p}=_sg_missing" for p in params] + (["/"] if params else []) \
        + ["*_sg_extra", "**_sg_unexpected"]
    return f"def {function_name}({', '.join(signature)}):"


def _entry_way_out(params):
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
    needs = {}
    for node in graph.ancestors_in_order(outputs):
        data = graph.nodes[node]
        if data["op"] not in INDEXING_OPS:
            continue
        shapes = [graph.nodes[operand]["shape"] for operand in data["inputs"]]
        for dim, (least, index) in least_lengths(data["op"], shapes, data["attrs"]).items():
            if least > needs.get(dim, (0, None))[0]:
                needs[dim] = (least, index)
    return needs


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
_ENTRY_NAMESPACE = {"type": type, "_sg_float": float, "__builtins__": {}}


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
    if function_name in SCALAR_NAMES or any(graph.nodes[node]["dtype"] not in ("float64", "float32")
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
    lines = [_entry_def(function_name, params), *conversions,
             "    if (" + "\n            and ".join(checks) + "):",
             f"        return {call}",
             _entry_way_out(params)]
    namespace = dict(_ENTRY_NAMESPACE, _sg_ndarray=np.ndarray, _sg_float64=np.dtype("float64"),
                     _sg_float32=np.dtype("float32"), _sg_float64_scalar=np.float64)
    return "\n".join(lines) + "\n", namespace


def generate(graph, outputs, inputs, function_name="f"):
    """Source of a function returning a tuple of ``outputs``, and the namespace it needs.

    >>> import symgrad as sg
    >>> x = sg.var("x")
    >>> src, _ = generate(x.graph, [sg.sin(x).node], [x.node])
    >>> print(src, end="")
    def f(x):
        t0 = np.sin(x)
        return t0,
    """
    generator = SourceGenerator(graph, outputs, inputs, function_name)
    return generator.source(), generator.namespace


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

