"""Op records, the OPS table, and Expr, the handle through which Python operators build nodes.

The op families (shape, elementwise, reduce, linalg) register themselves here with `defop`;
ops.methods gives Expr the methods that build their ops. Imports only graph and errors: core is
first in ops' import order (see ops/__init__).
"""

import functools
import hashlib
import inspect
import keyword
import math
import numbers
import os
import re
import sys
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ShapeError, SymgradError
from ..graph import check_name, default_graph  # noqa: F401 (check_name is re-exported)


_SCALAR_FORM = object()     # defop's default loop form: the op's Python-float form


@dataclass(frozen=True)
class Emission:
    """What only code generation reads of an op: its other forms, and what codegen may assume
    of its result. The defaults describe an op that has nothing but its NumPy form.

    scalar:     the op on Python floats (``math`` functions, conditional expressions), a template
                or emitter like ``Op.numpy``, for the fast path of all-scalar graphs; None when
                the op has none. It must give NumPy's answer, or raise ArithmeticError/ValueError
                where NumPy would answer inf or nan (the call then goes to the NumPy code).
    loop:       the op's body in a fused Numba loop (codegen.numba): a template or emitter like
                ``scalar``, which it is unless a function of the kernel module is better; None
                keeps the op out of loops (NumPy's SIMD ufuncs beat the C library's scalar
                functions a loop calls: tests/benchmarks/README.md).
    numpy_into: the NumPy emission writing into an existing array ``{out}`` of the result's shape
                (a ufunc's ``out=``), for codegen to reuse an operand's buffer that dies there;
                a template, or an emitter of statements reading ``ctx.into``; None when the op
                cannot write in place.
    into_positions: the operands whose buffer numpy_into may take (None: any of them; an empty
                tuple: none, though numpy_into may still fill a buffer of codegen's own).
                With None or (), numpy_into writes every entry of out; otherwise it builds
                on the content of the operand whose buffer it takes.
    augmented:  the operator of the augmented assignment that updates the first operand's array
                in place (``t1 *= -2.0``), or None.
    scalar_identities: (operand position, literal) pairs that leave the other operand of a
                Python-float op unchanged, bit for bit: x * 1.0, x - 0.0 (not x + 0.0, which
                turns -0.0 into 0.0). The fast path names the other operand instead.
    ordered:    for an op that is one of its operands, or a number, once the order of its two
                operands (or the sign of its one operand) is known: max, min, relu, abs, sign and
                the unit step. Its (result when the first operand is the greater, or positive;
                result when it is the smaller, or negative), each an operand position, a float,
                or None where it is neither. An op whose results are both numbers is a step
                (the derivative of max, abs, relu): the scalar fast path splits into these two
                cases at the first one, as a hand would write ``if y > z:``, and in each case
                every ordered op the split decides simplifies, and the arithmetic after it
                (codegen.scalar.generate_scalar); zero and nan take the general code. None for every
                other op.
    numpy_mask: for an op whose values are 0 and 1 almost everywhere (the unit step), an emitter
                of statements giving ``ctx.out`` as a boolean mask standing for those values,
                with the exact floating value where an entry is neither; codegen uses it when
                every reader multiplies the value by a floating array, for which True and False
                are 1.0 and 0.0. None for every other op.
    reduces_masks: whether the op converts a boolean operand to floats as it reduces it
                (``dtype=``, reduce.emit_reduction), so codegen need not.
    view:       whether the result may share memory with an operand, or be a caller's or a
                constant's: only other results may be written to in place or released early.
                True for a user's op (api.defop), whose emission symgrad cannot vouch for.
    foldable:   whether codegen may compute the op at compile time when every operand is a
                constant; False for a user's op, which may have effects.
    fresh:      whether the result is a new object at every call though it holds an operand's
                array (a sparse matrix around its nonzeros, which are read-only when constant):
                an output returned as it is, where a view is copied.
    users:      whether the emission is a user's own source (api.defop). symgrad's emissions
                write indexing through the emission context and use names the array-API
                namespace offers (tests/test_array_api.py holds every op to that); a user's is
                checked where the array-API backend carries it (codegen.array_api).
    """

    scalar: str | Callable | None = None
    loop: str | Callable | None = None
    numpy_into: str | Callable | None = None
    into_positions: tuple | None = None
    augmented: str | None = None
    scalar_identities: tuple = ()
    ordered: tuple | None = None
    numpy_mask: Callable | None = None
    reduces_masks: bool = False
    view: bool = False
    foldable: bool = True
    users: bool = False
    fresh: bool = False

    @property
    def step(self):
        """Whether the op is a step: constant on each side of zero (see ``ordered``)."""
        return self.ordered is not None and all(isinstance(r, float) for r in self.ordered)


@dataclass(frozen=True)
class Op:
    """Everything symgrad knows about one primitive, in one place.

    shape:      (input shapes, **attrs) -> output shape; raises ShapeError
    numpy:      a template such as "np.sin({0})" (operands by position, attrs by name), or a
                function of an emission context returning an expression or a list of statements;
                such a function indexes, transposes and reshapes through the context
                (``ctx.item``...: codegen.emission.EmitContext), for each backend's own syntax
    vjp:        (g, out, *inputs, **attrs) -> one Expr or None per input. ``g`` may carry leading
                batch axes in front of ``out.shape`` (that is how Jacobians stay one graph), so a
                rule addresses axes from the right. In place of an Expr, an
                UndefinedGradientError refuses a gradient through that input (a shape parameter
                whose derivative symgrad lacks); it is raised only where one is asked for.
    dtype:      (input dtypes, **attrs) -> output dtype
    nondifferentiable: operand positions that no gradient flows into (masks, shape donors)
    emit:       what only code generation reads (Emission)
    sympy:      the op on scalar operands in SymPy, for parse.to_sympy and the tests against
                sympy.diff: the name of a SymPy function that is the op ("sin"; from_sympy then
                reads that function back as the op), or a function (sympy, *operands, **attrs)
                -> SymPy expression, handed the sympy module so that ops need not import it;
                None when SymPy has no counterpart
    sparsity:   which entries of each operand each entry of the result depends on, for the
                structural pattern of a Jacobian (symgrad.sparsity): "elementwise" (entry i of
                each broadcast operand), "moves" (the op only moves entries, or fills in
                constants, and the operands it takes no gradient through lend their shape or are
                constant index arrays: the pattern is found by running the op's own NumPy form on
                the entries' positions), "adds" (the op adds each entry of an operand into one
                entry of the result, a scatter whose derivative rule is a move: the rule, run on
                the result's positions, says where), or a function (operand shapes, result
                shape, operand values (None where not constant), **attrs) -> per operand None
                (no dependence), "dense", or a pair of int arrays (result entries, operand
                entries), flat indices. None: every result entry depends on every operand
                entry, which never misses one. defop gives the ops whose shape rule is
                same_shape or broadcast_shape "elementwise".
    """

    name: str
    arity: int | None
    shape: Callable
    numpy: str | Callable
    vjp: Callable | None
    dtype: Callable
    nondifferentiable: tuple = field(default=())
    emit: Emission = field(default=Emission())
    sympy: str | Callable | None = None
    sparsity: str | Callable | None = None


OPS: dict[str, Op] = {}


@dataclass(frozen=True)
class Public:
    """A function of the public API that builds an op (or a composite of ops): exported as
    ``sg.<name>`` and called in formulas as ``<name>(...)`` with the function's parameters, of
    which the ``static`` ones take literals (axes, shapes) and the others expressions. ``op`` is
    the op it applies, for one made by defop's ``public``. ``optional`` names the operands
    that have a default (logsumexp's weights ``b``), which a formula may leave out;
    ``variadic`` the parameter that gathers the remaining positional arguments (einsum's
    ``*operands``), after which every parameter is keyword-only."""
    function: Callable
    parameters: tuple
    static: tuple = ()
    op: str | None = None
    optional: tuple = ()
    variadic: str | None = None


# Public name -> Public. The parser's grammar admits exactly these functions (and max and min,
# which it reads as maximum and minimum with two operands), and symgrad exports them.
PUBLIC: dict[str, Public] = {}


def public(name, static=()):
    """Decorator: make ``function`` the public function ``name`` (see Public).

    >>> @public("twice_example")
    ... def twice(x):
    ...     return x + x
    >>> PUBLIC.pop("twice_example").parameters
    ('x',)
    """
    def register(function):
        if name in PUBLIC:
            raise SymgradError(f"public function {name!r} is already defined")
        signature = inspect.signature(function).parameters
        optional = tuple(p for p, spec in signature.items()
                         if p not in static and spec.default is not inspect.Parameter.empty)
        variadic = next((p for p, spec in signature.items()
                         if spec.kind is inspect.Parameter.VAR_POSITIONAL), None)
        PUBLIC[name] = Public(function, tuple(signature), tuple(static), optional=optional,
                              variadic=variadic)
        return function
    return register


_OPERAND_NAMES = ("x", "y", "z")


def _builder(op_name, public_name, arity):
    """The public function of an op that takes its operands as they are, by position or as
    x, y, z."""
    if arity is None or not 1 <= arity <= len(_OPERAND_NAMES):
        raise SymgradError(f"op {op_name!r} takes {arity} operands: give it a public function of "
                           f"its own (@public) instead of defop's public=")
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for n in _OPERAND_NAMES[:arity]])

    def build(*args, **kwargs):
        return apply(op_name, *signature.bind(*args, **kwargs).args)
    build.__signature__ = signature
    build.__name__ = build.__qualname__ = public_name
    build.__doc__ = f"The op {op_name}, differentiable."
    return build

# Constant folding: a result whose operands are all constants is computed ahead of time, while
# expressions are built (element-wise ops: the node becomes a constant of the graph) or when a
# function is compiled (any built-in op: codegen.plan), up to this many entries. Past it the
# statement stays in the code, where it costs a call what it would cost to make the constant.
FOLD_LIMIT = 1_000_000

# How an Expr shows itself in Jupyter: "svg", "png", "latex" -> a function of the Expr returning
# the picture or text, or None. The layers that draw (render, through api) register them here:
# ops cannot import them.
DISPLAY = {}


def _displayed(expr, kind):
    show = DISPLAY.get(kind)
    return show(expr) if show is not None else None


# NumPy's functions on expressions: symgrad.numpy, a layer above ops, registers here the bodies of
# Expr's array protocols ("array_function", "array_ufunc") and "function", its function of a
# NumPy name (which Expr's methods such as .prod call), as the drawing layers register DISPLAY
NUMPY_PROTOCOL = {}


def numpy_protocol(part):
    entry = NUMPY_PROTOCOL.get(part)
    if entry is None:
        raise SymgradError("NumPy's functions on expressions need symgrad.numpy: import symgrad")
    return entry


_NUMPY_DTYPES = {}     # a node's dtype string -> numpy.dtype: Expr.dtype is read in hot loops


_FLOAT_DTYPES = {}     # input dtypes -> result: a handful of combinations, asked for at every node


def float_dtype(dtypes, **attrs):
    """The floating dtype arithmetic on ``dtypes`` produces (booleans count as float64)."""
    key = tuple(dtypes)
    result = _FLOAT_DTYPES.get(key)
    if result is None:
        floats = [d for d in key if d != "bool"]
        promoted = np.result_type(*floats) if floats else np.dtype(np.float64)
        result = str(promoted) if np.issubdtype(promoted, np.floating) else "float64"
        _FLOAT_DTYPES[key] = result
    return result


def is_number(expr):
    """Whether ``expr`` is a floating constant of shape (): generated code writes it as a Python
    number, which NumPy's promotion treats as weak (NEP 50): ``x32 * 2.0`` is float32."""
    data = expr.data
    return data["op"] == "const" and data["shape"] == () and data["dtype"] != "bool"


def promoted_dtypes(exprs, excluded=()):
    """The operands' dtypes as the result's dtype rule is to see them: a number (is_number) takes
    the dtype the other floating operands promote to, as in NumPy, where there are any; among
    numbers alone, a float64 one (a Python number) takes a float32 one's dtype (codegen writes
    that one np.float32(...)). Operands at the ``excluded`` positions (masks, shape donors)
    have no say."""
    dtypes = [e.graph._node[e.node]["dtype"] for e in exprs]
    if dtypes and dtypes.count(dtypes[0]) == len(dtypes):
        return dtypes       # a number meets only its own dtype (the common case: all float64)
    floating = [(e, d) for k, (e, d) in enumerate(zip(exprs, dtypes))
                if k not in excluded and d != "bool"]
    strong = [d for e, d in floating if not is_number(e)] \
        or [d for _, d in floating if d != "float64"]
    if not strong:
        return dtypes
    promoted = float_dtype(strong)
    return [promoted if k not in excluded and is_number(e) else d
            for k, (e, d) in enumerate(zip(exprs, dtypes))]


def bool_dtype(dtypes, **attrs):
    return "bool"


def same_dtype(dtypes, **attrs):
    return dtypes[0]


def sympy_operand(sympy, x, *rest, **attrs):
    """The SymPy form (Op.sympy) of an op whose value on scalar operands is its first operand: a
    reduction or a reshaping of a scalar."""
    return x


def defop(name, arity, shape, numpy, vjp=None, dtype=float_dtype, simplify=(),
          nondifferentiable=(), public=None, sympy=None, loop=_SCALAR_FORM, sparsity=None,
          **emission):
    """Register a primitive; see Op for the meaning of each field. ``simplify`` is the op's local
    simplifications, one rule or a tuple of them, registered with register_build_rule.
    ``public`` names the op's public function (PUBLIC), which takes its operands and applies
    the op; an op whose public function takes more than that is given one with @public. The
    other keywords are the fields of its Emission; ``loop`` defaults to the ``scalar`` form."""
    if name in OPS:
        raise SymgradError(f"op {name!r} is already defined")
    if public is not None and public in PUBLIC:
        raise SymgradError(f"public function {public!r} is already defined")
    if loop is _SCALAR_FORM:
        loop = emission.get("scalar")
    if sparsity is None and shape in (same_shape, broadcast_shape) and not emission.get("users"):
        sparsity = "elementwise"
    op = Op(name, arity, shape, numpy, vjp, dtype, tuple(nondifferentiable),
            Emission(loop=loop, **emission), sympy, sparsity)
    builder = None if public is None else _builder(name, public, arity)
    OPS[name] = op
    if builder is not None:
        PUBLIC[public] = Public(builder, tuple(inspect.signature(builder).parameters), op=name)
    for rule in simplify if isinstance(simplify, tuple) else (simplify,):
        register_build_rule(name, rule)
    return OPS[name]


# -- build-time rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """One rewrite that fired, at build time or in an optimiser pass: its name, and the
    expression it replaced (as text). ``compile`` gathers them into one log, ``fn.rewrites``."""
    rule: str
    where: str

    def __str__(self):
        return f"{self.rule}: {self.where}"


# The stages of build-time rules, in the order apply offers a new node to them: the local
# simplifications first (constant folding, neutral elements), then the stability rewrites, so that
# log(1.0) is folded before any stability rule looks at it. Within a stage, rules run in the order
# they were registered; which module registers first cannot change a stage's place.
BUILD_STAGES = ("simplify", "stability")
_RULES_BY_STAGE: dict[str, dict[str, list]] = {}    # op -> stage -> rules
BUILD_RULES: dict[str, tuple] = {}                  # op -> its rules in the order apply runs them


def register_build_rule(op_name, rule, stage="simplify"):
    """Have ``apply`` offer every new ``op_name`` node to ``rule(inputs, **attrs)`` before building
    it; the first rule of the op to return an Expr (an existing node equal to the result, or a
    stabler form built from other ops) replaces the node. ``op_name`` need not be defined yet.
    Returns ``rule``.

    >>> rule = register_build_rule("tanh", lambda inputs: None)
    >>> unregister_build_rule("tanh", rule)
    """
    if stage not in BUILD_STAGES:
        raise SymgradError(f"build stage {stage!r} is not one of {', '.join(BUILD_STAGES)}")
    _RULES_BY_STAGE.setdefault(op_name, {}).setdefault(stage, []).append(rule)
    _index_build_rules(op_name)
    return rule


def unregister_build_rule(op_name, rule):
    """Take back a rule register_build_rule registered for ``op_name``."""
    stages = _RULES_BY_STAGE.get(op_name, {})
    for rules in stages.values():
        if rule in rules:
            rules.remove(rule)
            _index_build_rules(op_name)
            return
    raise SymgradError(f"no such build rule for {op_name!r}: {rule!r}")


def build_rule(op_name, stage="simplify"):
    """Decorator form of register_build_rule."""
    def register(rule):
        return register_build_rule(op_name, rule, stage)
    return register


def _index_build_rules(op_name):
    stages = _RULES_BY_STAGE.get(op_name, {})
    rules = tuple(rule for stage in BUILD_STAGES for rule in stages.get(stage, ()))
    if rules:
        BUILD_RULES[op_name] = rules
    else:
        BUILD_RULES.pop(op_name, None)


# -- shapes -----------------------------------------------------------------------------------------


def broadcast_shapes(*shapes):
    """NumPy broadcasting over shapes whose entries are ints or dimension names.

    >>> broadcast_shapes(("n", 1), (3,))
    ('n', 3)
    """
    if len(shapes) == 2:
        # the common cases, answered as the loop below answers them: equal shapes, or a
        # number's () against an array's shape (elementwise ops and their rules, every node)
        first, second = shapes
        if type(first) is tuple and (not second or first == second):
            return first
        if type(second) is tuple and not first:
            return second
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(-ndim, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis and s[axis] != 1}
        if len(dims) > 1:
            raise ShapeError(f"shapes {' and '.join(map(str, shapes))} do not broadcast "
                             f"(axis {axis}: {' vs '.join(map(str, sorted(dims, key=str)))})")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def same_shape(shapes, **attrs):
    return shapes[0]


def broadcast_shape(shapes, **attrs):
    return broadcast_shapes(*shapes)


def normalize_axes(axis, ndim):
    """Axes as a sorted tuple of negative ints (counted from the right, so that a rule stays
    right when its operand carries leading batch axes); None means all axes."""
    if axis is None:
        return tuple(range(-ndim, 0))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    normalized = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise ShapeError(f"axis must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for {ndim} dimensions")
        normalized.append(int(a) - ndim if a >= 0 else int(a))
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"repeated axis in {axis!r}")
    return tuple(sorted(normalized))


def check_shape(shape):
    """A user shape as a tuple of non-negative ints and identifier dimension names."""
    if isinstance(shape, (numbers.Integral, str)):
        shape = (shape,)
    result = []
    for dim in shape:
        if isinstance(dim, str):
            if not dim.isidentifier() or not dim.isascii():
                raise ShapeError(f"dimension name {dim!r} must be an ASCII identifier")
        elif isinstance(dim, numbers.Integral) and not isinstance(dim, bool) and dim >= 0:
            dim = int(dim)
            if dim > np.iinfo(np.intp).max:
                raise ShapeError(f"dimension {dim} is longer than any NumPy array can be")
        else:
            raise ShapeError(f"dimension {dim!r} must be a non-negative int or a name")
        result.append(dim)
    return tuple(result)


# -- literals for generated source -------------------------------------------------------------------


def literal(value):
    """Python source for a value: numbers, tuples, slices, ..., None and bools. A negative number
    is written bare (``-1``); where it stands as an operand, codegen parenthesises it."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "-np.inf"
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, slice):
        return f"slice({literal(value.start)}, {literal(value.stop)}, {literal(value.step)})"
    if value is Ellipsis:
        return "..."
    raise SymgradError(f"cannot write {type(value).__name__} {value!r} into generated source")


# -- expressions ---------------------------------------------------------------------------------------


class Expr:
    """A handle on one node of a Graph. Operators build new nodes in the same graph.

    >>> from symgrad import var
    >>> x = var("x")
    >>> (x * x).shape
    ()
    """

    __slots__ = ("graph", "node", "_pin")
    __hash__ = None                 # == builds a comparison node, like NumPy's

    def __init__(self, graph, node):
        self.graph = graph
        self.node = node
        if node in graph._pins:     # a node the graph releases when no Expr holds it
            self._pin = graph.pin(node)

    def __reduce__(self):
        # made again through __init__: the copy's graph decides what to pin
        return Expr, (self.graph, self.node)

    @property
    def data(self):
        # the node's dict read straight from networkx's storage: every rule and simplification
        # reads it many times per node built, and the NodeView lookup would triple the cost
        return self.graph._node[self.node]

    @property
    def op(self):
        # read straight from the node's dict, not through .data: rules ask for it a million
        # times in the optimisation of a 10k-op gradient
        return self.graph._node[self.node]["op"]

    @property
    def attrs(self):
        return dict(self.data["attrs"])

    @property
    def inputs(self):
        return [Expr(self.graph, n) for n in self.data["inputs"]]

    @property
    def shape(self):
        return self.graph._node[self.node]["shape"]

    @property
    def ndim(self):
        return len(self.data["shape"])

    @property
    def dtype(self):
        """The result's numpy.dtype (the graph's node keeps its name, ``data["dtype"]``)."""
        name = self.data["dtype"]
        dtype = _NUMPY_DTYPES.get(name)
        if dtype is None:
            dtype = _NUMPY_DTYPES[name] = np.dtype(name)
        return dtype

    @property
    def size(self):
        """The number of entries, an int; a shape with a named dimension has no size until a
        call binds it, and asking for it raises ShapeError."""
        if not static_shape(self.shape):
            raise ShapeError(f"the size of shape {self.shape} is unknown until a call binds "
                             f"its named dimensions")
        return math.prod(self.shape)

    @property
    def is_derivative(self):
        return self.data["derivative"]

    @property
    def name(self):
        """The variable's name, for a variable; None otherwise."""
        return self.data["attrs"]["name"] if self.op == "var" else None

    @property
    def variables(self):
        """Name -> variable of the free variables of this expression, in sorted order."""
        found = {}
        for node in self.graph.ancestors_in_order([self.node]):
            data = self.graph.nodes[node]
            if data["op"] == "var":
                found[data["attrs"]["name"]] = Expr(self.graph, node)
        return dict(sorted(found.items()))

    # Jupyter's rich display: a picture of the graph behind the expression, and LaTeX for a
    # scalar one (the frontend picks the richest it shows)
    def _repr_svg_(self):
        return _displayed(self, "svg")

    def _repr_png_(self):
        return _displayed(self, "png")

    def _repr_latex_(self):
        return _displayed(self, "latex")

    def __bool__(self):
        raise SymgradError("the truth value of a symbolic expression is unknown until it is "
                           "evaluated; use sg.where for a condition")

    def __len__(self):
        if not self.shape or not isinstance(self.shape[0], int):
            raise SymgradError(f"len() of an expression of shape {self.shape}")
        return self.shape[0]

    def __iter__(self):
        # as an ndarray, along the first axis (np.vstack(e) iterates over e's rows); its length
        # must be known now, and a 0-d expression has none
        if not self.shape or not isinstance(self.shape[0], int):
            raise SymgradError(f"an expression of shape {self.shape} is not iterable: only one "
                               f"with a first axis of known length is")
        return (self[i] for i in range(self.shape[0]))

    def __setitem__(self, index, value):
        raise SymgradError("expressions are immutable: e.at[index].set(value) (or .add(value)) "
                           "returns an updated copy")

    # NumPy's functions build nodes when an argument is an expression: np.exp(x), A @ x with an
    # ndarray A, np.sum(x, axis=0) (symgrad.numpy holds the bodies)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return numpy_protocol("array_ufunc")(ufunc, method, inputs, kwargs)

    def __array_function__(self, function, types, args, kwargs):
        return numpy_protocol("array_function")(function, types, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        raise SymgradError("a symbolic expression has no values until it is evaluated: compile "
                           "it (sg.compile) and call the function instead of converting it "
                           "to an array")

    # arithmetic
    def __add__(self, other): return apply("add", self, other)
    def __radd__(self, other): return apply("add", other, self)
    def __sub__(self, other): return apply("subtract", self, other)
    def __rsub__(self, other): return apply("subtract", other, self)
    def __mul__(self, other): return apply("multiply", self, other)
    def __rmul__(self, other): return apply("multiply", other, self)
    def __truediv__(self, other): return apply("divide", self, other)
    def __rtruediv__(self, other): return apply("divide", other, self)
    def __pow__(self, other): return apply("power", self, other)
    def __rpow__(self, other): return apply("power", other, self)
    def __mod__(self, other): return apply("remainder", self, other)
    def __rmod__(self, other): return apply("remainder", other, self)
    def __matmul__(self, other): return apply("matmul", self, other)
    def __rmatmul__(self, other): return apply("matmul", other, self)
    def __neg__(self): return apply("negative", self)
    def __pos__(self): return self
    def __abs__(self): return apply("absolute", self)

    # comparisons: boolean nodes through which no gradient flows
    def __lt__(self, other): return apply("less", self, other)
    def __le__(self, other): return apply("less_equal", self, other)
    def __gt__(self, other): return apply("greater", self, other)
    def __ge__(self, other): return apply("greater_equal", self, other)
    def __eq__(self, other): return apply("equal", self, other)
    def __ne__(self, other): return apply("not_equal", self, other)

    @property
    def T(self):
        return apply("transpose", self, axes=tuple(range(self.ndim - 1, -1, -1)))

    # indexing, reshape, transpose and the reductions build ops of the families that import this
    # module, and repr and str print through ops.printing: ops.methods attaches them all


def graph_of(*operands):
    """The one graph the Expr operands live in (the default graph when there are none)."""
    return _graph_and_lifting(operands)[0]


def _graph_and_lifting(operands):
    """(graph_of(*operands), whether any operand is a number to be lifted into a constant), in
    one pass: apply runs it for every node built."""
    graph, lifted = None, False
    for operand in operands:
        if isinstance(operand, Expr):
            if graph is None:
                graph = operand.graph
            elif operand.graph is not graph:
                raise SymgradError("cannot combine expressions from two different graphs")
        else:
            lifted = True
    return (default_graph() if graph is None else graph), lifted


def const(value, graph=None, dtype=None):
    """A constant node holding ``value`` (a number or an array; kept read-only).

    >>> const(2.0).shape
    ()
    """
    graph = default_graph() if graph is None else graph
    try:
        array = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as error:         # ragged lists, unknown dtypes
        raise SymgradError(f"cannot make a constant from {type(value).__name__} {value!r}: "
                           f"{error}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise SymgradError(f"cannot make a constant from {type(value).__name__} {value!r}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise SymgradError("complex constants are not supported")
    if array.dtype != bool and not np.issubdtype(array.dtype, np.floating) and not (
            dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)):
        # numbers in arithmetic are floats; an integer constant (an index array) is asked for
        array = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64)
    array.setflags(write=False)
    node = graph.add("const", (), _const_attrs(array), array.shape, str(array.dtype), value=array)
    return Expr(graph, node)


def _const_attrs(array):
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    # the bytes alone do not identify an array: eye(3) and eye(3)[..., None] share them
    return {"digest": digest, "dtype": str(array.dtype), "shape": array.shape}


def existing_const(value, graph):
    """The constant node holding ``value`` (an array) if ``graph`` has one already, else None:
    a rewrite can then use it without storing another copy."""
    node = graph.find("const", (), _const_attrs(value))
    return None if node is None else Expr(graph, node)


def lift(value, graph, float_hint="float64"):
    """An Expr for an operand: Exprs pass through, numbers and arrays become constants.

    A Python number takes the float dtype of the expression it meets (``x32 * 2.0`` stays float32).
    """
    if isinstance(value, Expr):
        if value.graph is not graph:
            raise SymgradError("cannot combine expressions from two different graphs")
        return value
    number_type = type(value)
    if (number_type is float or number_type is int) and value == value:
        return _number_const(value, graph, float_hint)
    if isinstance(value, (bool, np.bool_)):
        return const(bool(value), graph)
    if isinstance(value, numbers.Real) and not isinstance(value, np.generic):
        return const(value, graph, dtype=float_hint)
    if isinstance(value, (np.ndarray, np.generic, list, tuple, numbers.Number)):
        return const(value, graph)
    raise SymgradError(f"cannot use {type(value).__name__} {value!r} in an expression")


# graph -> {(Python number, float dtype, negative zero): (its constant's node, that node's data
# dict)}: the numbers operators lift (x * 0.5, 1.0 - out ** 2), found again without hashing an
# array. An entry counts only while that very data dict is the node's, so one outliving its node
# (rolled back, released) is never used. Kept off the graph, which it is no part of: a failed
# call leaves the graph's attributes exactly as they were.
_NUMBER_NODES = weakref.WeakKeyDictionary()


def _number_const(value, graph, float_hint):
    """const(value, graph, dtype=float_hint) for a Python int or float (not nan), remembered per
    graph: rules lift the same few numbers at every node they build, and a constant's digest
    costs more than the node that uses it. Numbers equal as Python compares them (2 and 2.0)
    are the same constant; 0.0 and -0.0 are not."""
    key = (value, float_hint, value == 0 and math.copysign(1.0, value) < 0)
    known = _NUMBER_NODES.get(graph)
    if known is None:
        known = _NUMBER_NODES.setdefault(graph, {})
    entry = known.get(key)
    if entry is not None and graph._node.get(entry[0]) is entry[1]:
        return Expr(graph, entry[0])
    expr = const(value, graph, dtype=float_hint)
    known[key] = (expr.node, graph._node[expr.node])
    return expr


def constant_value(expr):
    """The value of a constant node, else None."""
    data = expr.graph._node[expr.node]
    return data.get("value") if data["op"] == "const" else None


def static_length(x, axis, what):
    """The length of ``x`` along ``axis``, which ``what`` (an op building on it, or a rule)
    needs as a number: a named dimension's is known only at the call."""
    length = x.shape[axis]
    if not isinstance(length, int):
        raise ShapeError(f"cannot {what} along the named dimension {length!r}: give it a number "
                         f"(a named dimension's length is known only at the call)")
    return length


def static_shape(shape):
    """Whether every dimension of ``shape`` is a number (none is a name bound at call time)."""
    return all(isinstance(d, int) for d in shape)


def is_scalar_constant(expr, number):
    """Whether ``expr`` is a constant holding the single value ``number`` (any all-ones shape)."""
    data = expr.graph._node[expr.node]      # constant_value, inlined: asked of most operands
    if data["op"] != "const":
        return False
    value = data.get("value")
    return value is not None and value.size == 1 and value.reshape(()) == number


def apply(name, *operands, **attrs):
    """Build ``name(*operands, **attrs)`` in the operands' graph, checking shapes first so that a
    failure adds nothing."""
    op = OPS[name]
    if op.arity is not None and len(operands) != op.arity:
        raise SymgradError(f"{name} takes {op.arity} operands, got {len(operands)}")
    graph, lifted = _graph_and_lifting(operands)
    # atomically, under the lock: a failure leaves no lifted constant behind, and the
    # derivative-only rewrites see only the derivatives this thread is building
    try:
        return graph.atomically(_build, graph, name, op, operands, lifted, attrs)
    except ShapeError as error:
        raise located(error, name, operands) from None


def _build(graph, name, op, operands, lifted, attrs):
    """apply's work inside its atomic block."""
    exprs = list(operands)
    if lifted:                  # lift passes Exprs through
        hint = next((o.data["dtype"] for o in operands
                     if isinstance(o, Expr) and o.data["dtype"] in ("float64", "float32")),
                    "float64")
        exprs = [lift(o, graph, hint) for o in operands]
    nodes = graph._node
    shape = op.shape([nodes[e.node]["shape"] for e in exprs], **attrs)
    for rule in BUILD_RULES.get(name, ()):
        simpler = rule(exprs, **attrs)
        if simpler is not None:
            return simpler
    dtype = op.dtype(promoted_dtypes(exprs, op.nondifferentiable), **attrs)
    return Expr(graph, graph.add(name, [e.node for e in exprs], attrs, shape, dtype))


# -- shape errors that say which op, on what, and where ------------------------------------------------

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# parse ties its errors to a column of the formula, which says more than the line that parsed it
_LOCATES_ITSELF = os.path.join(_PACKAGE, "parse.py")


def call_site():
    """``file:line in function`` of the innermost caller outside the symgrad package, or None
    inside a parse. Only called on the error path: walking frames costs nothing on success."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == _LOCATES_ITSELF:
            return None
        if not filename.startswith(_PACKAGE + os.sep):
            return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return None


def _shape_of(operand):
    if isinstance(operand, Expr):
        return operand.shape
    try:
        return np.shape(operand)
    except ValueError:                  # a ragged list: it has no shape to show
        return "?"


def located(error, name, operands):
    """``error`` restated as op ``name``'s: the op the user called comes first, then the reason,
    the shapes of ``operands`` and the caller's line. An op built inside another (clip builds
    maximum) is restated again by the outer one, so the message names what the user called."""
    return ShapeError(error.reason, op=name, shapes=[_shape_of(o) for o in operands], where=call_site())


def op_function(name, operands=1):
    """Decorate the public function of op ``name`` that checks its arguments before ``apply`` or
    builds several nodes: a ShapeError from it reads like apply's (op, operand shapes, caller's
    line) and a failure adds no node. ``operands`` counts the leading arguments that are operands,
    or is "list" when the first argument is a list of them (concatenate)."""
    def decorate(function):
        names = list(inspect.signature(function).parameters)[:1 if operands == "list" else operands]

        @functools.wraps(function)
        def build(*args, **kwargs):
            # the operands whether passed by position or, as parse passes them, by name
            given = [args[i] if i < len(args) else kwargs.get(name)
                     for i, name in enumerate(names)]
            if operands == "list":
                given = list(given[0]) if isinstance(given[0], (list, tuple)) else []
            graph = graph_of(*given)
            try:
                return graph.atomically(function, *args, **kwargs)
            except ShapeError as error:
                raise located(error, name, given) from None
        return build
    return decorate


# Leaves: a variable is bound to an argument and a constant to a literal or a namespace entry by
# codegen, so neither has an emission template or a rule.
defop("var", 0, lambda shapes, name: (), None, None, dtype=same_dtype, view=True, foldable=False)
defop("const", 0, lambda shapes, digest, dtype, shape: shape, None, None, dtype=same_dtype,
      view=True, foldable=False)
