"""What passes between an op's emission (ops/*: Emission) and a renderer: the context an emitter
sees, the syntax a renderer writes indexing in, attribute values made safe to write into
source, and the statements a template or an emitter gives.
Imports ops, naming and errors.
"""

import functools
import numbers
import string

import numpy as np

from .. import naming
from ..errors import SymgradError
from ..ops import OPS, literal
from ..ops.shape import SelectedCount, index_source

_FORMATTER = string.Formatter()


class SciPySpecial:
    """``scipy.special``, imported when generated code first reads one of its functions: an op
    of ops.special asks for it through its context (EmitContext.library), which binds it in the
    function's namespace as ``special``, beside ``np``; importing SciPy costs a fifth of a
    second that a program without special functions never pays. Each function read is kept as
    an attribute, so later reads are plain ones."""

    def __getattr__(self, attribute):
        if attribute.startswith("_"):       # a protocol probed (copy, pickle): not SciPy's
            raise AttributeError(attribute)
        import scipy.special
        function = getattr(scipy.special, attribute)
        setattr(self, attribute, function)
        return function


class SciPyLinalg:
    """``scipy.linalg``, imported when generated code first reads one of its functions (the
    triangular solves of ops.matrix, expm), as SciPySpecial imports scipy.special; bound as
    ``linalg``."""

    def __getattr__(self, attribute):
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        import scipy.linalg
        function = getattr(scipy.linalg, attribute)
        setattr(self, attribute, function)
        return function


class SciPySparse:
    """``scipy.sparse``, imported when generated code first builds a sparse matrix (a sparse
    Jacobian's or Hessian's, ops.sparse), as SciPySpecial imports scipy.special; bound as
    ``sparse``."""

    def __getattr__(self, attribute):
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        import scipy.sparse
        function = getattr(scipy.sparse, attribute)
        setattr(self, attribute, function)
        return function


# The libraries an emission may ask for by name (EmitContext.library), besides np, which every
# function has; naming.RESERVED keeps variables off their names
LIBRARIES = {"special": SciPySpecial(), "linalg": SciPyLinalg(),
             "stride_tricks": np.lib.stride_tricks, "_sg_compress": SelectedCount(),
             "sparse": SciPySparse()}
# what each library offers, for the backends that have no counterpart to say what they lack
LIBRARY_CONTENTS = {"special": "SciPy's functions", "linalg": "SciPy's linear algebra",
                    "stride_tricks": "NumPy's strided views",
                    "_sg_compress": "selections whose length depends on the data",
                    "sparse": "SciPy's sparse matrices"}


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

    def __init__(self, attrs):      # (empty: dict.__new__ made it so)
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


class NumpySyntax:
    """How NumPy source reads and writes parts of arrays, transposes and reshapes them: what an
    emitter asks of its EmitContext, written as a person writes NumPy. A renderer whose arrays
    take another syntax gives its own (codegen.array_api). An index is a tuple of
    ops.shape.normalize_index's items (or Ellipsis), written as it is: the emitter trims what
    it wants trimmed."""

    def item(self, array, index):
        return f"{array}[{index_source(index)}]"

    def assign_item(self, array, index, value, operator=None):
        return f"{array}[{index_source(index)}] {operator or ''}= {value}"

    def add_at(self, array, index, value, temp):
        """Statements adding ``value`` into ``array``'s part at ``index``. A part of several
        entries is a view, updated through a name of its own (``temp``'s): ``array[index] +=
        value`` would also store the part back into itself, a copy for nothing
        (tests/benchmarks/README.md). A part of one entry (every item an int) is no view: it
        is stored."""
        if all(isinstance(item, int) for item in index):
            return [self.assign_item(array, index, value, "+")]
        part = temp("part")
        return [f"{part} = {self.item(array, index)}", f"{part} += {value}", f"del {part}"]

    def gather(self, array, parts):
        """Source reading ``array`` at an index with integer arrays, given as the source of each
        item (every axis's), by NumPy's rules for advanced indexing."""
        return f"{array}[{', '.join(parts)}]"

    def scatter_add(self, array, parts, value):
        """Statements adding ``value`` into ``array`` at an index with integer arrays (as for
        gather), repeated indices adding up."""
        return [f"np.add.at({array}, np.s_[{', '.join(parts)}], {value})"]

    def transpose(self, array):
        """``array`` with its axes reversed."""
        return f"{array}.T"

    def reshape(self, array, shape):
        """``array`` (any expression) reshaped to ``shape`` (source of a tuple)."""
        return f"{array}.reshape({shape})"


NUMPY_SYNTAX = NumpySyntax()


class EmitContext:
    """What an op's emitter sees: operand source, attributes, shapes and naming services, and
    the renderer's syntax for indexing, transposing and reshaping (``item`` and below): an
    emitter writing those through the context is portable to every backend. ``names`` is the
    renderer's: it says how a dimension's length and a helper's name are had."""

    def __init__(self, names, nodes, node, args, out, operand_dtypes, syntax=NUMPY_SYNTAX):
        data = nodes[node]
        self.args = args
        attrs = data["attrs"]
        self.attrs = {key: plain(value) for key, value in attrs.items()} if attrs else {}
        self.shape = data["shape"]
        self._nodes, self._inputs = nodes, data["inputs"]
        self.dtypes = operand_dtypes
        self.dtype = data["dtype"]
        self.op = data["op"]
        self.out = out
        self._names = names
        self._syntax = syntax

    @functools.cached_property
    def shapes(self):
        """The operands' shapes (looked up when an emitter asks: a template never does)."""
        return [self._nodes[i]["shape"] for i in self._inputs]

    def dim(self, name):
        """Source for the run-time length of dimension ``name``."""
        return self._names.dim(name)

    def temp(self, suffix):
        return self._names.claim(naming.suffixed(self.out, suffix))

    def library(self, name):
        """The name under which the generated code reads library ``name`` of LIBRARIES
        (``special``: scipy.special), which the renderer binds for it, or refuses (the
        array-API backend has no SciPy) naming this op."""
        return self._names.library(name, self.op)

    def item(self, array, index):
        """Source reading ``array``'s part at ``index`` (normalize_index's items)."""
        return self._syntax.item(array, index)

    def assign_item(self, array, index, value, operator=None):
        """The statement storing ``value`` into ``array``'s part at ``index``; with an
        ``operator`` ("+"), the part combined with ``value``. ``array`` is one the emission
        made (np.zeros, np.empty, np.array), never an argument's."""
        return self._syntax.assign_item(array, index, value, operator)

    def add_at(self, array, index, value):
        """Statements adding ``value`` into ``array``'s part at ``index`` (an array the emission
        made or was given to write into, as for assign_item)."""
        return self._syntax.add_at(array, index, value, self.temp)

    def gather(self, array, parts):
        """Source reading ``array`` at an index with integer arrays (each item's source)."""
        return self._syntax.gather(array, parts)

    def scatter_add(self, array, parts, value):
        """Statements adding ``value`` into ``array`` (one the emission made) at an index with
        integer arrays, repeated indices adding up."""
        return self._syntax.scatter_add(array, parts, value)

    def transpose(self, array):
        """Source of ``array`` with its axes reversed."""
        return self._syntax.transpose(array)

    def reshape(self, array, shape):
        """Source of ``array`` (any expression) reshaped to ``shape`` (source of a tuple)."""
        return self._syntax.reshape(array, shape)


def emitted(emitter, ctx, attrs):
    """An op's emission: its template formatted with the operands and ``attrs``, or what its
    emitter, called with ``ctx``, gives (an expression, or a list of statements)."""
    if not isinstance(emitter, str):
        return emitter(ctx)
    # str.format with the attributes the template names, as string.Formatter.vformat would
    # look them up in ``attrs``: the same text, at a tenth of the pure-Python formatter's cost
    fields = _named_fields(emitter)
    if not fields:
        return emitter.format(*ctx.args)
    return emitter.format(*ctx.args, **{name: attrs[name] for name in fields})


@functools.lru_cache(maxsize=None)
def _named_fields(template):
    """The attribute names a template's fields read ({axis}, {out}; not {0})."""
    names = []
    for _, field, _, _ in _FORMATTER.parse(template):
        if field is None:
            continue
        name = field.split(".", 1)[0].split("[", 1)[0]
        if name and not name.isdigit() and name not in names:
            names.append(name)
    return tuple(names)


def statements(emitter, ctx, attrs):
    """The statements assigning ``ctx.out`` from an op's emission (``emitted``)."""
    expression = emitted(emitter, ctx, attrs)
    return [f"{ctx.out} = {expression}"] if isinstance(expression, str) else expression


def statements_into(op_name, ctx, attrs, buffer):
    """The statements of the op's emission writing into the existing array ``buffer``
    (Emission.numpy_into), which the emitter reads as ``ctx.into`` or the template as {out}."""
    ctx.into = attrs["out"] = buffer
    return statements(OPS[op_name].emit.numpy_into, ctx, attrs)


def binds_tightest(template):
    """Whether a template's expression is one call (``np.tanh({0})``), or its first operand with
    attributes and items after it (``{0}.T``, ``{0}[1:]``): as an operand of another expression
    it needs no parentheses. Read from the op's template, never from emitted source."""
    if template.startswith("{0}"):
        rest = template[3:]
        if not rest:
            return False        # an identity's operand, whatever its form
    else:
        head = len(template) - len(template.lstrip("abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.0123456789"))
        if head == 0 or template[head:head + 1] != "(" or template[0].isdigit():
            return False
        rest = template[head:]
    depth = 0
    for character in rest:
        if character in "([":
            depth += 1
        elif character in ")]":
            depth -= 1
        elif depth == 0 and not (character.isalnum() or character in "._"):
            return False        # an operator, a space or a quote outside every bracket
        if depth < 0:
            return False
    return depth == 0


def whole_argument(template, slot):
    """Whether operand ``slot`` of a template is a whole argument of a call (``np.tanh({0})``,
    ``np.add({0}, {1}, out={out})``), where an expression needs no parentheses."""
    field = "{" + str(slot) + "}"
    start = template.find(field)
    if start < 0:
        return False
    before, after = template[:start].rstrip(" "), template[start + len(field):].lstrip(" ")
    return before.endswith(("(", ",")) and after.startswith((")", ","))


def numpy_emitter(op_name, dtype):
    """The op's NumPy emission; an identity (stop_gradient) of an inlined number gives it a
    NumPy type, as ops expect arrays."""
    emitter = OPS[op_name].numpy
    return f"{scalar_type(dtype)}({{0}})" if emitter == "{0}" else emitter


def number_source(value):
    """Source of a number written as an operand: parenthesised when negative, -0.0 included, so
    that "x ** {1}" stays one power."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    text = literal(value)
    return f"({text})" if text.startswith("-") else text


def fills_any_buffer(op_name):
    """Whether the op, a fresh array, can write its result into any array of its shape: its
    numpy_into writes every entry of out, whatever was there before (Emission.into_positions)."""
    emit = OPS[op_name].emit
    return emit.numpy_into is not None and emit.into_positions in (None, ()) and not emit.view
