"""The array-API renderer (``sg.compile(..., backend="array_api")``): the NumPy renderer with the
array API's syntax, and ``np`` and the constants parameters of the function, for
symgrad.array_api to call with the arguments' own array namespace.

What is switched off, and why. Each op keeps its one NumPy emission (ops/*); the differences are
all here. The plan takes no memory decision but releasing dead arrays: no ``out=`` buffers (no
ufuncs with ``out`` in the standard), no workspace or writes into a slice (kept NumPy buffers), no
``a *= b`` (JAX arrays are immutable, Dask's are graphs). Where NumPy's syntax goes further than
the standard, emitters write through their EmitContext (``ctx.item``, ``ctx.assign_item``,
``ctx.add_at``, ``ctx.transpose``, ``ctx.reshape``), and ArrayAPISyntax writes what the standard
specifies:

- ``x[1:, 0]`` indexes every axis: ``x[1:, 0, ...]`` (NumPy fills the rest in; the standard
  leaves a short index unspecified);
- ``x.T`` of any rank is ``np.transpose(x)``, ``a.reshape(s)`` is ``np.reshape(a, s)``;
- item assignment ``t[i] = g`` (``+=`` too, and an update of a part, which NumPy makes through
  a view) is ``t = np.set_at(t, np.s_[i], g)``: in place where the library allows it,
  ``t.at[i].set(g)`` on JAX. ``t`` is always an array the function just made (np.zeros,
  np.empty, np.array), never an argument's;
- a slice with a negative step, ``x[::-1]``, is ``np.get_at(x, np.s_[::-1, ...])``: PyTorch has
  none, so the shim slices forwards and flips.

A template (``"np.sin({0})"``) is NumPy source as written: one that indexes should be an emitter
using the context instead. Compile-time constant folding stays (it runs on NumPy, before any
argument is seen).
Imports naming, errors and ops, and codegen's emission, memory and numpy.
"""

import ast

import numpy as np

from .. import naming
from ..errors import SymgradError
from ..ops import OPS
from ..ops.shape import index_source
from . import loops
from .emission import LIBRARY_CONTENTS, NumpySyntax
from .memory import release_dead_arrays
from .numpy import NumpyRenderer, planned


class ArrayAPISyntax(NumpySyntax):
    """What the array API standard specifies where NumPy's syntax goes further (module
    docstring): every axis indexed, parts stored with ``np.set_at`` and read with a negative
    step through ``np.get_at``, ``np.transpose`` and ``np.reshape`` functions."""

    @staticmethod
    def _every_axis(index):
        # NumPy fills the axes an index leaves out; the standard leaves a short index unspecified
        return index_source(index if Ellipsis in index else (*index, Ellipsis))

    def item(self, array, index):
        if any(item[0] == "slice" and item[3] is not None and item[3] < 0
               for item in index if isinstance(item, tuple)):
            # PyTorch has no negative step: the shim slices forwards and flips
            return f"np.get_at({array}, np.s_[{self._every_axis(index)}])"
        return f"{array}[{self._every_axis(index)}]"

    def assign_item(self, array, index, value, operator=None):
        # in place where the library allows it, t.at[i].set(g) on JAX
        if operator is not None:
            value = f"{self.item(array, index)} {operator} {value}"
        return f"{array} = np.set_at({array}, np.s_[{self._every_axis(index)}], {value})"

    def add_at(self, array, index, value, temp):
        # no view to update: an immutable or lazy array has none
        return [self.assign_item(array, index, value, "+")]

    def gather(self, array, parts):
        # the standard indexes by integer arrays only when every item is one: np.gather lays
        # each slice out as one (symgrad.array_api.ArrayNamespace.gather)
        return f"np.gather({array}, np.s_[{', '.join(parts)}])"

    def scatter_add(self, array, parts, value):
        # the standard has no scatter: the namespace's, by library
        return [f"{array} = np.scatter_add({array}, np.s_[{', '.join(parts)}], {value})"]

    def transpose(self, array):
        return f"np.transpose({array})"

    def reshape(self, array, shape):
        return f"np.reshape({array}, {shape})"


def names_read(source):
    """Every ``np.<name>`` the source reads: of a user's op's statements (Emission.users), whose
    emission is the user's free source, so only its text says which names it reads. Read,
    never rewritten; from the syntax tree, not the characters, so that a comment or a string
    naming np.<name> does not count."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "np"}


class ArrayAPIRenderer(NumpyRenderer):
    """The NumPy renderer with the array API's syntax (ArrayAPISyntax), and ``np`` and the
    constants parameters of the function."""

    syntax = ArrayAPISyntax()
    body_passes = (release_dead_arrays,)        # a loop's body, as the function: no writes
    loop_slice = staticmethod(loops.array_api_slice)
    loop_stack_start = staticmethod(loops.list_stack_start)
    loop_stack_put = staticmethod(loops.list_stack_put)
    loop_stack_end = staticmethod(loops.list_stack_end)

    def __init__(self, plan, function_name="f"):
        super().__init__(plan, function_name)
        self._as_float = {}         # boolean node -> the name of its floating copy
        self._float_dtype = {}      # the name of a floating copy -> its dtype
        self.constants = []

    def render_step(self, step, lines):
        """A boolean array in arithmetic (``(x > 0) * y``) is made floating first: NumPy promotes
        it, the standard has no promotion between kinds (array-api-strict refuses it)."""
        data = self.plan.nodes[step.node]
        swapped = {}
        if data["dtype"] != "bool":
            for position, operand in enumerate(data["inputs"]):
                name = self.names.get(operand)
                if self.plan.nodes[operand]["dtype"] != "bool" or name is None \
                        or (data["op"] == "where" and position == 0) or data["op"] == "astype":
                    continue
                if operand not in self._as_float:
                    self._as_float[operand] = self.namer.claim(naming.suffixed(name, data["dtype"]))
                    self._float_dtype[self._as_float[operand]] = data["dtype"]
                    lines.append(f"{self._as_float[operand]} = np.{data['dtype']}({name})")
                swapped[operand] = name
                self.names[operand] = self._as_float[operand]
        try:
            return super().render_step(step, lines)
        finally:
            self.names.update(swapped)

    def operand_dtype(self, node):
        """A boolean operand made floating (``render_step``) is that float to its op."""
        return self._float_dtype.get(self.names.get(node)) or super().operand_dtype(node)

    def released_names(self, step):
        """A floating copy of a boolean array dies with it: it is read only where the boolean
        array is."""
        released = super().released_names(step)
        return released + [self._as_float[node] for node in step.released
                           if node in self._as_float]

    def parameters(self):
        """``np``, the inputs, then the constants (NumPy arrays, converted to the arguments'
        library once per library and device by symgrad.array_api), all named by now."""
        self.constants = [(name, value) for name, value in self.namespace.items()
                          if isinstance(value, np.ndarray)]
        for name, _ in self.constants:
            del self.namespace[name]
        del self.namespace["np"]
        return ["np", *super().parameters(), *(name for name, _ in self.constants)]

    def library(self, name, op_name):
        """Refused: the standard has no special functions, and SciPy's would make the
        arguments' arrays NumPy's (or fail on them); nor has it strided views of an array."""
        raise SymgradError(f"backend 'array_api' has no counterpart for "
                           f"{LIBRARY_CONTENTS[name]} ({name}), which op {op_name!r} uses; "
                           f"use backend 'numpy'")

    def preamble(self):
        note = "# np: the arguments' array namespace (symgrad.array_api.ArrayNamespace)"
        return [note + ("; the constants are on its device" if self.constants else "")]


def generate_array_api(graph, outputs, inputs, function_name, offered=None):
    """(source, namespace, constants) of the array-API function: its parameters are ``np``, the
    inputs, then the constants' names; ``constants`` lists (name, NumPy value) in that order.
    A user's op (Emission.users) whose statements read a NumPy name not ``offered`` (the
    namespace's names, when given) or write NumPy's own syntax is refused.

    >>> import symgrad as sg
    >>> x = sg.var("x", shape=(3,))
    >>> src, _, _ = generate_array_api(x.graph, [sg.sin(x[1:]).node], [x.node], "f")
    >>> print(src, end="")
    def f(np, x):
        # np: the arguments' array namespace (symgrad.array_api.ArrayNamespace)
        t0 = x[1:, ...]
        t1 = np.sin(t0)
        return t1,
    """
    plan = planned(graph, outputs, inputs, passes=(release_dead_arrays,), reorder=False)
    renderer = ArrayAPIRenderer(plan, function_name)
    source = renderer.source()
    for step in plan.steps:
        if step.kind == "compute" and OPS[plan.nodes[step.node]["op"]].emit.users:
            _check_users_statements(plan.nodes[step.node]["op"], step.statements, offered)
    return source, renderer.namespace, renderer.constants


def _check_users_statements(op_name, statements, offered):
    """Refuse the statements of a user's op that the array API cannot run."""
    for body in statements.values():
        source = "\n".join(body)
        missing = sorted(names_read(source) - offered) if offered is not None else []
        if missing:
            raise SymgradError(f"backend 'array_api' has no counterpart for "
                               f"{', '.join('np.' + m for m in missing)}, which op "
                               f"{op_name!r} uses; use backend 'numpy'")
        written = numpy_only_syntax(source)
        if written:
            raise SymgradError(f"backend 'array_api': op {op_name!r} writes {written[0]!r} in "
                               f"NumPy's own syntax, which the array API standard lacks (an "
                               f"emitter writes it through ctx.item, ctx.transpose or "
                               f"ctx.reshape); use backend 'numpy'")


def numpy_only_syntax(source):
    """The pieces of ``source`` written in NumPy's syntax where the standard has none (the module
    docstring): a short index of a named array, an index with a negative step, ``.T``,
    ``.reshape`` and item assignment. symgrad's own ops write none (their emitters go through
    the context's syntax); a user's op (sg.defop) may, and is then refused. A check that reads a
    user's source, like names_read: nothing is rewritten."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id != "np":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if not any(isinstance(i, ast.Constant) and i.value is Ellipsis for i in items) \
                    or any(isinstance(i, ast.Slice) and isinstance(i.step, ast.UnaryOp)
                           for i in items):
                found.append(node)
        elif isinstance(node, ast.Attribute) and node.attr in ("T", "reshape") \
                and not (isinstance(node.value, ast.Name) and node.value.id == "np"):
            found.append(node)
        elif isinstance(node, (ast.Assign, ast.AugAssign)) and any(
                isinstance(target, ast.Subscript)
                for target in getattr(node, "targets", [getattr(node, "target", None)])):
            found.append(node)
    return [ast.get_source_segment(source, node) for node in found]
