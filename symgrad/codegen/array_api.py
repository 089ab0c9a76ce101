"""The array-API renderer (``sg.compile(..., backend="array_api")``): the NumPy renderer's source,
with ``np`` and the constants parameters of the function, for symgrad.array_api to call with the
arguments' own array namespace.

What is switched off, and why. Each op keeps its one NumPy emission (ops/*); the differences are
all here. The plan takes no memory decision but releasing dead arrays: no ``out=`` buffers (no
ufuncs with ``out`` in the standard), no workspace or writes into a slice (kept NumPy buffers), no
``a *= b`` (JAX arrays are immutable, Dask's are graphs). What the standard lacks of NumPy's
syntax is rewritten statement by statement (``_Portable``, on the syntax tree):

- ``x[1:, 0]`` indexes every axis: ``x[1:, 0, ...]`` (NumPy fills the rest in; the standard
  leaves a short index unspecified);
- ``x.T`` of any rank is ``np.transpose(x)``, ``a.reshape(s)`` is ``np.reshape(a, s)``;
- item assignment ``t[i] = g`` (``+=`` too) is ``t = np.set_at(t, np.s_[i], g)``: in place where
  the library allows it, ``t.at[i].set(g)`` on JAX. ``t`` is always an array the function just
  made (np.zeros, np.empty, np.array), never an argument's;
- a slice with a negative step, ``x[::-1]``, is ``np.get_at(x, np.s_[::-1, ...])``: PyTorch has
  none, so the shim slices forwards and flips.

Compile-time constant folding stays (it runs on NumPy, before any argument is seen).
Imports naming and errors, and codegen's memory, numpy and plan.
"""

import ast

import numpy as np

from .. import naming
from ..errors import InternalError
from .memory import release_dead_arrays
from .numpy import NumpyRenderer, planned


def _name(identifier, context=None):
    return ast.Name(id=identifier, ctx=context or ast.Load())


def _np(attribute):
    return ast.Attribute(value=_name("np"), attr=attribute, ctx=ast.Load())


class _Portable(ast.NodeTransformer):
    """Rewrites one NumPy statement into what the array API standard specifies (module
    docstring); ``changed`` says whether it did."""

    changed = False

    def visit_Subscript(self, node):
        self.generic_visit(node)
        if not isinstance(node.value, ast.Name):
            return node             # np.shape(x)[0]: a tuple's item, not an array's
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if not any(isinstance(i, ast.Constant) and i.value is Ellipsis for i in items):
            node.slice = ast.Tuple(elts=[*items, ast.Constant(Ellipsis)], ctx=ast.Load())
            self.changed = True
        if isinstance(node.ctx, ast.Load) and any(
                isinstance(i, ast.Slice) and isinstance(i.step, ast.UnaryOp) for i in items):
            self.changed = True     # a negative step
            index = ast.Subscript(value=_np("s_"), slice=node.slice, ctx=ast.Load())
            return ast.Call(func=_np("get_at"), args=[node.value, index], keywords=[])
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr == "T":
            self.changed = True
            return ast.Call(func=_np("transpose"), args=[node.value], keywords=[])
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr == "reshape" \
                and not (isinstance(function.value, ast.Name) and function.value.id == "np"):
            self.changed = True
            return ast.Call(func=_np("reshape"), args=[function.value, *node.args],
                            keywords=node.keywords)
        return node

    def _set_at(self, target, value):
        self.changed = True
        array = target.value.id
        index = ast.Subscript(value=_np("s_"), slice=target.slice, ctx=ast.Load())
        call = ast.Call(func=_np("set_at"), args=[_name(array), index, value], keywords=[])
        return ast.Assign(targets=[_name(array, ast.Store())], value=call, lineno=0)

    def visit_Assign(self, node):
        self.generic_visit(node)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
            return self._set_at(node.targets[0], node.value)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if isinstance(node.target, ast.Subscript):
            target = node.target
            current = self.visit_Subscript(ast.Subscript(value=_name(target.value.id),
                                                         slice=target.slice, ctx=ast.Load()))
            return self._set_at(target, ast.BinOp(left=current, op=node.op, right=node.value))
        return node


def portable(statement):
    """One emitted NumPy statement (with its comment, if any) as the array API wants it.

    >>> portable("t1[1:] = g  # grad of getitem")
    't1 = np.set_at(t1, np.s_[1:, ...], g)  # grad of getitem'
    >>> portable("t2 = np.sin(x)")
    't2 = np.sin(x)'
    """
    code, mark, comment = statement.partition("  # ")
    tree = ast.parse(code)
    rewriter = _Portable()
    tree = rewriter.visit(tree)
    if not rewriter.changed:
        return statement
    return ast.unparse(ast.fix_missing_locations(tree)) + mark + comment


def names_read(source):
    """Every ``np.<name>`` the source reads."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "np"}


class ArrayAPIRenderer(NumpyRenderer):
    """The NumPy renderer, arrays never updated through views, every statement made portable,
    and ``np`` and the constants parameters of the function."""

    in_place = False        # no update through a view: an immutable or lazy array has none

    def __init__(self, plan, function_name="f"):
        super().__init__(plan, function_name)
        self._as_float = {}         # boolean node -> the name of its floating copy
        self._float_dtype = {}      # the name of a floating copy -> its dtype
        self.constants = []

    def render_step(self, step, lines):
        """A boolean array in arithmetic (``(x > 0) * y``) is made floating first: NumPy promotes
        it, the standard has no promotion between kinds (array-api-strict refuses it)."""
        data = self.graph.nodes[step.node]
        swapped = {}
        if data["dtype"] != "bool":
            for position, operand in enumerate(data["inputs"]):
                name = self.names.get(operand)
                if self.graph.nodes[operand]["dtype"] != "bool" or name is None \
                        or (data["op"] == "where" and position == 0):
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

    def body(self):
        return [portable(line) for line in super().body()]

    def source(self, trace=False):
        if trace:
            raise InternalError("the array-API backend does not trace")
        text = super().source()
        params = ", ".join(self.names[n] for n in self.plan.inputs)
        header = f"def {self.function_name}({params}):\n"
        if not text.startswith(header):
            raise InternalError("unexpected source header")
        self.constants = [(name, value) for name, value in self.namespace.items()
                          if isinstance(value, np.ndarray)]
        for name, _ in self.constants:
            del self.namespace[name]
        del self.namespace["np"]
        params = ", ".join(["np", *(self.names[n] for n in self.plan.inputs),
                            *(name for name, _ in self.constants)])
        note = "    # np: the arguments' array namespace (symgrad.array_api.ArrayNamespace)"
        if self.constants:
            note += "; the constants are on its device"
        return f"def {self.function_name}({params}):\n{note}\n" + text[len(header):]


def generate_array_api(graph, outputs, inputs, function_name):
    """(source, namespace, constants) of the array-API function: its parameters are ``np``, the
    inputs, then the constants' names; ``constants`` lists (name, NumPy value) in that order.

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
    renderer = ArrayAPIRenderer(planned(graph, outputs, inputs, passes=(release_dead_arrays,)),
                                function_name)
    source = renderer.source()
    return source, renderer.namespace, renderer.constants
