"""What passes between an op's emission (ops/*: Emission) and a renderer: the context an emitter
sees, attribute values made safe to write into source, and the statements a template or an
emitter gives.
Imports ops, naming and errors.
"""

import numbers
import string

import numpy as np

from .. import naming
from ..errors import SymgradError
from ..ops import OPS, literal

_FORMATTER = string.Formatter()


def scalar_type(dtype):
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


class LazyLiterals(dict):
    """Attribute values turned into source only when a template names them."""

    def __init__(self, attrs):
        super().__init__()
        self.attrs = attrs

    def __missing__(self, key):
        return literal(self.attrs[key])


def plain(value):
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
        return tuple(plain(v) for v in value)
    raise SymgradError(f"attribute value {value!r} cannot be written into generated source")


class EmitContext:
    """What an op's emitter sees: operand source, attributes, shapes and naming services.
    ``names`` is the renderer's: it says how a dimension's length and a helper's name are had."""

    def __init__(self, names, graph, node, args, out, operand_dtypes, in_place=True):
        data = graph.nodes[node]
        self.args = args
        self.attrs = {key: plain(value) for key, value in data["attrs"].items()}
        self.shape = data["shape"]
        self.shapes = [graph.nodes[i]["shape"] for i in data["inputs"]]
        self.dtypes = operand_dtypes
        self.dtype = data["dtype"]
        self.out = out
        self.in_place = in_place    # whether a view can be updated in place
        self._names = names

    def dim(self, name):
        """Source for the run-time length of dimension ``name``."""
        return self._names.dim(name)

    def temp(self, suffix):
        return self._names.claim(naming.suffixed(self.out, suffix))


def statements(emitter, ctx, attrs):
    """The statements assigning ``ctx.out`` from an op's template (formatted with the operands
    and ``attrs``) or emitter (called with ``ctx``)."""
    emitted = (_FORMATTER.vformat(emitter, ctx.args, attrs) if isinstance(emitter, str)
               else emitter(ctx))
    return [f"{ctx.out} = {emitted}"] if isinstance(emitted, str) else emitted


def fills_any_buffer(op_name):
    """Whether the op, a fresh array, can write its result into any array of its shape: its
    numpy_into writes every entry of out, whatever was there before (Emission.into_positions)."""
    emit = OPS[op_name].emit
    return emit.numpy_into is not None and emit.into_positions in (None, ()) and not emit.view
