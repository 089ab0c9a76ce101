"""NumPy's functions on expressions: ``symgrad.numpy`` (and ``symgrad.numpy.linalg``) mirrors
NumPy's names and signatures, and Expr's array protocols call the same functions, so that
``np.exp(x)``, ``np.sum(x, axis=0)`` and ``A @ x`` with an ndarray ``A`` build nodes.

Derived from the op table: a public function (ops.PUBLIC) named as NumPy names it is that NumPy
function, its arguments bound to NumPy's own signature; RENAMED holds the few whose symgrad name
or signature differs. Imports ops and errors only (``numpy`` below is NumPy itself).

>>> import numpy as np
>>> import symgrad as sg
>>> x = sg.var("x", shape=(3,))
>>> np.sum(np.exp(x), axis=0, keepdims=True)
Expr(sum(exp(x), keepdims=True), shape=(1,))
"""

import functools
import inspect
import sys
import types

import numpy as np

from . import ops
from .errors import ArgumentError, SymgradError
from .ops.core import NUMPY_PROTOCOL, PUBLIC, Expr

# this module's own names are no NumPy names (tests/test_numpy_protocol.py checks it): a global
# called "squeeze" would stand for NumPy's squeeze without passing through the table below


def unsupported(qualified):
    """The error for a NumPy function symgrad lacks, ``qualified`` as ``numpy.fft.fft``."""
    return SymgradError(f"{qualified} is not supported by symgrad")


# -- NumPy's functions whose symgrad counterpart has another name or signature -------------------


def _operator(op_name):
    """An op that is a NumPy ufunc of the same name but no public function (add, less...)."""
    def build(*operands):
        return ops.apply(op_name, *operands)
    build.__name__ = op_name
    return build


def _clip(a, a_min=None, a_max=None, *, min=None, max=None):     # noqa: A002 (NumPy's names)
    # NumPy lets one bound be None, and names them min and max since NumPy 2.1
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    if a_min is None and a_max is None:
        raise ArgumentError("numpy.clip: give a_min, a_max or both")
    result = a if a_min is None else ops.maximum(a, a_min)
    return result if a_max is None else ops.minimum(result, a_max)


def _squeeze(a, axis=None):
    if axis is None:
        axis = tuple(position for position, dim in enumerate(a.shape) if dim == 1)
    return ops.squeeze(a, axis) if axis != () else a


def _ravel(a):
    return ops.reshape(a, (-1,))


def _swapaxes(a, axis1, axis2):
    first, second = (ops.normalize_axes((axis,), a.ndim)[0] + a.ndim for axis in (axis1, axis2))
    axes = list(range(a.ndim))
    axes[first], axes[second] = axes[second], axes[first]
    return ops.transpose(a, tuple(axes))


def _real(val):
    # symgrad's values are real (float dtypes only): a real array is its own real part and its
    # own conjugate, and its imaginary part is zero
    return val


def _imag(val):
    return ops.zeros_like(val)


def _angle(z, deg=False):
    # NumPy's angle of a real array: arctan2(0, z), 0 or pi (at -0.0 too), derivative 0 (nan at
    # 0, as arctan2's, and as JAX's)
    turned = PUBLIC["arctan2"].function(ops.zeros_like(z), z)
    return turned * (180.0 / np.pi) if deg else turned


def _at_least(name):
    """NumPy's atleast_Nd: one array for one argument, a list for several."""
    function = PUBLIC[name].function

    def each(*arys):
        made = [function(ary) for ary in arys]
        return made[0] if len(made) == 1 else made
    each.__name__ = name
    return each


def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


def _rows_joined(name):
    """NumPy's joining function ``name``, which takes an array as the sequence of its entries
    along the first axis (np.vstack(e) stacks e's rows); symgrad's (and a formula's) takes a
    list only."""
    function = PUBLIC[name].function
    signature = inspect.signature(function)
    sequence = next(iter(signature.parameters))

    @functools.wraps(function)
    def join(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if isinstance(bound.arguments[sequence], Expr):
            bound.arguments[sequence] = list(bound.arguments[sequence])
        return function(*bound.args, **bound.kwargs)
    return join


# NumPy name -> symgrad function, or the name of a public function when only the name differs
RENAMED = {
    **{name: _operator(name) for name in (
        "add", "subtract", "multiply", "divide", "power", "negative", "less", "less_equal",
        "greater", "greater_equal", "equal", "not_equal")},
    "true_divide": _operator("divide"),
    "positive": lambda x: x,
    "absolute": "abs",
    "amax": "max",
    "amin": "min",
    "clip": _clip,
    "squeeze": _squeeze,
    "expand_dims": lambda a, axis: ops.expand_dims(a, axis),
    "ravel": _ravel,
    "swapaxes": _swapaxes,
    "copy": lambda a: a,               # expressions are immutable: a copy is the expression
    "shape": lambda a: a.shape,
    "ndim": lambda a: a.ndim,
    "size": _size,
    "var": ops.variance,        # sg.var is the variable constructor: variance is this op's name
    "degrees": "rad2deg",
    "radians": "deg2rad",
    **{name: _real for name in ("real", "real_if_close", "conjugate", "conj")},
    "imag": _imag,
    **{name: _at_least(name) for name in ("atleast_1d", "atleast_2d", "atleast_3d")},
    "angle": _angle,
    **{name: _rows_joined(name) for name in ("concatenate", "stack", "vstack", "hstack",
                                              "dstack", "column_stack")},
}

# np.linalg's functions that mean the same as the public function of their name (np.linalg.outer,
# .diagonal, .trace and .cross do not: they follow the array API's axes)
LINALG = ("norm", "det", "slogdet", "inv", "pinv", "solve", "lstsq", "cholesky", "qr", "svd",
          "eigh", "eigvalsh", "matrix_power", "multi_dot", "matmul", "svdvals")

# ufunc methods that are a reduction or a scan: (ufunc name, method) -> public function
UFUNC_METHODS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
                 ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
                 ("add", "accumulate"): "cumsum", ("multiply", "accumulate"): "cumprod"}

# a ufunc's keywords, at the values that ask for nothing beyond the plain call
_UFUNC_DEFAULTS = {"where": True, "casting": "same_kind", "order": "K", "dtype": None,
                   "subok": True, "signature": None}


def _target(name, namespace):
    """The symgrad function for NumPy's ``name`` in ``namespace`` ("numpy" or "numpy.linalg"),
    or None."""
    if namespace == "numpy.linalg":
        entry = PUBLIC.get(name) if name in LINALG else None
        return None if entry is None else entry.function
    renamed = RENAMED.get(name)
    if callable(renamed):
        return renamed
    entry = PUBLIC.get(renamed or name)
    return None if entry is None else entry.function


# -- binding NumPy's arguments to symgrad's parameters ---------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _is_default(value, parameter):
    """Whether ``value`` is what NumPy's ``parameter`` means when it is not given."""
    default = parameter.default
    if value is default or value is None or value is np._NoValue:
        return True
    return isinstance(value, (str, bool)) and isinstance(default, (str, bool)) and value == default


def _argument_names(theirs, ours):
    """NumPy's parameter name -> symgrad's: the same name, else the parameter at the same
    position when neither name is in the other signature (NumPy's ``a`` is symgrad's ``x``,
    clip's ``a_min`` its ``lower``)."""
    their_names = {p.name for p in theirs}
    our_names = [p.name for p in ours if p.kind in _POSITIONAL or p.kind == p.KEYWORD_ONLY]
    names = {}
    for position, parameter in enumerate(theirs):
        if parameter.name in our_names:
            names[parameter.name] = parameter.name
        elif (parameter.kind in _POSITIONAL and position < len(ours)
              and ours[position].kind in _POSITIONAL and ours[position].name not in their_names):
            names[parameter.name] = ours[position].name
    return names


class NumpyFunction:
    """NumPy's function ``qualified`` (``numpy.sum``) on expressions: its arguments, bound to
    NumPy's signature, are handed to the symgrad function ``target`` under symgrad's names;
    an argument symgrad has no parameter for is refused unless it is NumPy's default."""

    def __init__(self, qualified, numpy_function, target):
        self.qualified = qualified
        self.numpy_function = numpy_function
        self.target = target
        self.__name__ = self.__qualname__ = qualified.rpartition(".")[2]
        self.__doc__ = f"{qualified} on expressions: symgrad's {getattr(target, '__name__', '')}."
        self.ufunc = isinstance(numpy_function, np.ufunc)
        self.target_signature = None if self.ufunc else _signature(target)
        self.signature = None if self.ufunc else _signature(numpy_function)
        if self.signature is not None and self.target_signature is not None:
            self.names = _argument_names(list(self.signature.parameters.values()),
                                         list(self.target_signature.parameters.values()))
            # symgrad's keyword-only parameters NumPy lacks (compress's length=) pass as given
            self.own_keywords = {name for name, p in self.target_signature.parameters.items()
                                 if p.kind == p.KEYWORD_ONLY
                                 and name not in self.signature.parameters}

    def __repr__(self):
        return f"<symgrad's {self.qualified}>"

    def __call__(self, *args, **kwargs):
        if self.ufunc:
            return self.call_ufunc(args, kwargs)
        if self.signature is None or self.target_signature is None:
            return self.target(*args, **kwargs)
        own = {key: kwargs.pop(key) for key in list(kwargs) if key in self.own_keywords}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ArgumentError(f"{self.qualified}: {error}") from None
        positional, keywords = [], dict(own)
        for name, value in bound.arguments.items():
            parameter = self.signature.parameters[name]
            if parameter.kind == parameter.VAR_POSITIONAL:
                positional.extend(value)
            elif parameter.kind == parameter.VAR_KEYWORD:
                for key, item in value.items():
                    if item is not None:
                        raise self.refused(key)
            elif name in self.names:
                keywords[self.names[name]] = value
            elif not _is_default(value, parameter):
                raise self.refused(name)
        try:
            self.target_signature.bind(*positional, **keywords)
        except TypeError as error:
            raise ArgumentError(f"{self.qualified}: {error}") from None
        return self.target(*positional, **keywords)

    def call_ufunc(self, inputs, kwargs):
        if len(inputs) != self.numpy_function.nin:
            raise ArgumentError(f"{self.qualified} takes {self.numpy_function.nin} operands, "
                                f"got {len(inputs)}")
        for key, value in kwargs.items():
            if key == "out":
                if any(item is not None for item in (value if isinstance(value, tuple)
                                                      else (value,))):
                    raise SymgradError(f"{self.qualified}: out= is not supported by symgrad "
                                       f"(expressions are immutable: use the result)")
            elif key not in _UFUNC_DEFAULTS or not _is_default(value, _default(key)):
                raise self.refused(key)
        return self.target(*inputs)

    def refused(self, argument):
        return SymgradError(f"{self.qualified}: the argument {argument}= is not supported by "
                            f"symgrad")


def _signature(function):
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _default(key):
    return inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=_UFUNC_DEFAULTS[key])


# -- the namespaces ---------------------------------------------------------------------------------


class Namespace(types.ModuleType):
    """A module mirroring NumPy's ``namespace`` ("numpy" or "numpy.linalg"): each name symgrad
    supports is a NumpyFunction, built on first use from the op table as it is then (ops
    registered later are picked up); a NumPy name symgrad lacks raises SymgradError."""

    def __init__(self, name, numpy_module, qualified):
        super().__init__(name, f"NumPy's {qualified} on symgrad expressions.")
        self._numpy_module = numpy_module
        self._qualified = qualified
        self._functions = {}       # name -> (the public function it was built on, NumpyFunction)

    def function(self, name):
        """The NumpyFunction of ``name``, or raise SymgradError naming it."""
        target = _target(name, self._qualified)
        numpy_function = getattr(self._numpy_module, name, None)
        if target is None or not callable(numpy_function):
            raise unsupported(f"{self._qualified}.{name}")
        built = self._functions.get(name)
        if built is None or built[0] is not target:
            built = self._functions[name] = (
                target, NumpyFunction(f"{self._qualified}.{name}", numpy_function, target))
        return built[1]

    def names(self):
        """The NumPy names this namespace supports now."""
        candidates = list(LINALG) if self._qualified == "numpy.linalg" else [*PUBLIC, *RENAMED]
        return sorted({name for name in candidates
                       if _target(name, self._qualified) is not None
                       and callable(getattr(self._numpy_module, name, None))})

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if not hasattr(self._numpy_module, name):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r} (nor has "
                                 f"{self._qualified})")
        return self.function(name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.names()))


def _qualified_name(function):
    module = getattr(function, "__module__", None) or "numpy"
    return f"{module}.{getattr(function, '__name__', function)}"


def _namespace_of(function):
    """symgrad's namespace and the name in it for the NumPy function ``function``, or None."""
    name = getattr(function, "__name__", None)
    in_linalg = getattr(function, "__module__", None) == "numpy.linalg"
    for namespace in (linalg, _this) if in_linalg else (_this,):
        if name is not None and getattr(namespace._numpy_module, name, None) is function:
            return namespace, name
    return None


def array_function(function, types, args, kwargs):
    """Expr.__array_function__: NumPy's ``function`` called with an expression among its
    arguments."""
    if not all(issubclass(kind, (Expr, np.ndarray)) for kind in types):
        return NotImplemented         # another library's arrays: let it (or NumPy) answer
    found = _namespace_of(function)
    if found is None:
        raise unsupported(_qualified_name(function))
    namespace, name = found
    return namespace.function(name)(*args, **kwargs)


def array_ufunc(ufunc, method, inputs, kwargs):
    """Expr.__array_ufunc__: ``ufunc.method(*inputs, **kwargs)`` with an expression among the
    inputs (``ndarray + expr`` and ``np.float64(2.0) * expr`` come this way too)."""
    if method == "__call__":
        return _this.function(ufunc.__name__)(*inputs, **kwargs)
    qualified = f"numpy.{ufunc.__name__}.{method}"
    if method == "outer" and ufunc.nin == 2 and len(inputs) == 2 and not kwargs:
        # a[..., None, ..., None] op b: every entry of a against every entry of b
        a, b = inputs
        index = (Ellipsis,) + (None,) * (b.ndim if isinstance(b, Expr) else np.ndim(b))
        expanded = ops.getitem(a, index) if isinstance(a, Expr) else np.asarray(a)[index]
        return _this.function(ufunc.__name__)(expanded, b)
    name = UFUNC_METHODS.get((ufunc.__name__, method))
    if name is None:
        raise unsupported(qualified)
    if len(inputs) != 1:
        raise ArgumentError(f"{qualified} takes one operand, got {len(inputs)}")
    if kwargs.get("out", ()) in (None, (None,)):
        del kwargs["out"]
    # reduce and accumulate go along axis 0 unless told otherwise; np.sum and np.cumsum do not
    axis = kwargs.pop("axis", 0)
    return _this.function(name)(inputs[0], axis, **kwargs)


def numpy_function(name):
    """symgrad.numpy's function ``name`` (what Expr's methods such as ``.prod`` call)."""
    return _this.function(name)


_this = Namespace(__name__, np, "numpy")
linalg = Namespace(__name__ + ".linalg", np.linalg, "numpy.linalg")
_this.linalg = linalg
sys.modules[linalg.__name__] = linalg           # import symgrad.numpy.linalg works

NUMPY_PROTOCOL.update(array_function=array_function, array_ufunc=array_ufunc,
                      function=numpy_function)


def __getattr__(name):
    # symgrad.numpy.exp and the like: module attributes made on first use from the op table
    return _this.__getattr__(name)


def __dir__():
    return sorted(set(globals()) | set(_this.names()))
