"""The array-API backend (``sg.compile(..., backend="array_api")``): the NumPy backend's source,
run on the arguments' own array library (NumPy, CuPy, Dask, JAX, PyTorch, array-api-strict)
through array-api-compat, so that data on a GPU or spread over a Dask cluster stays there.

How ``np`` is bound. The body is the default backend's source with ``np`` made its first
parameter instead of a global: each call, the entry (``ArrayAPIEntry``) asks array-api-compat for
the arguments' namespace and passes an ``ArrayNamespace`` built on it, which offers NumPy's
names on it: every element-wise function of the standard by its NumPy name (``ELEMENTWISE``, so a
new op emitting ``np.sinh`` needs no edit here), and the other names the emitters use
(``np.add.reduce`` is ``xp.sum``, ``np.concatenate`` ``xp.concat``, ``np.zeros`` allocates on the
arguments' device...). Nothing is rebound in a shared namespace,
so concurrent calls on different libraries cannot see each other's; the source keeps no builtins.
Constants (NumPy arrays) become parameters too, converted once per library and device.

The source is the array-API renderer's (symgrad.codegen.array_api), which says what it switches
off and rewrites, and why.

Imports codegen, ops and errors; array_api_compat only when this backend is asked for.
"""

import importlib.util
import math
import numbers

import numpy as np

from . import codegen
from .codegen import check_least_lengths, real_argument
from .errors import ShapeError, SymgradError


def array_api_available():
    return importlib.util.find_spec("array_api_compat") is not None


def _is_number(value):
    """A Python number or a NumPy scalar: a value, not an array of some library."""
    return isinstance(value, (numbers.Number, np.generic))


class _IndexExpression:
    """``np.s_[1:, 0, ...]`` is the tuple ``(slice(1, None), 0, Ellipsis)``: an index as a value
    (the generated code has no builtins, so no ``slice``)."""

    def __getitem__(self, index):
        return index


class _Reducible:
    """A binary function with NumPy's ``.reduce`` (``np.add.reduce(x, axis=..., keepdims=...)``)."""

    def __init__(self, function, reduction, full=None, accumulation=None):
        self._function = function
        self._reduction = reduction
        self._full = full
        self._accumulation = accumulation

    def __call__(self, x, y):
        return self._function(x, y)

    def reduce(self, x, axis=0, keepdims=False, initial=None):
        if initial is not None:
            # the standard's max has no initial and, as NumPy's, refuses an empty axis
            axes = range(x.ndim) if axis is None else \
                [a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))]
            if any(x.shape[a] == 0 for a in axes):
                shape = [1 if a in axes else d for a, d in enumerate(x.shape)
                         if keepdims or a not in axes]
                return self._full(tuple(shape), initial, x.dtype)
        return self._reduction(x, axis=axis, keepdims=keepdims)

    def accumulate(self, x, axis=0, dtype=None):
        """The running sum or product (``np.add.accumulate``), a mask's counted in ``dtype``."""
        if dtype is not None:
            x = dtype(x)        # the namespace's np.float64: a copy in that dtype
        return self._accumulation(x, axis=axis)


# The array API standard's element-wise functions that are NumPy ufuncs of the same name (not
# clip, round, real and imag, whose NumPy namesakes take other arguments), and NumPy's names for
# those it names otherwise. Emitted code may call any of them by its NumPy name.
STANDARD_ELEMENTWISE = (
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bitwise_and",
    "bitwise_invert", "bitwise_left_shift", "bitwise_or", "bitwise_right_shift", "bitwise_xor",
    "ceil", "conj", "copysign", "cos", "cosh", "divide", "equal", "exp", "expm1", "floor",
    "floor_divide", "greater", "greater_equal", "hypot", "isfinite", "isinf", "isnan", "less",
    "less_equal", "log", "log1p", "log2", "log10", "logaddexp", "logical_and", "logical_not",
    "logical_or", "logical_xor", "maximum", "minimum", "multiply", "negative", "nextafter",
    "not_equal", "positive", "pow", "reciprocal", "remainder", "sign", "signbit", "sin", "sinh",
    "square", "sqrt", "subtract", "tan", "tanh", "trunc")
RENAMED = {
    "absolute": "abs", "arccos": "acos", "arccosh": "acosh", "arcsin": "asin", "arcsinh": "asinh",
    "arctan": "atan", "arctan2": "atan2", "arctanh": "atanh", "conjugate": "conj",
    "invert": "bitwise_invert", "left_shift": "bitwise_left_shift", "mod": "remainder",
    "power": "pow", "right_shift": "bitwise_right_shift", "true_divide": "divide"}
# NumPy name -> the standard's
ELEMENTWISE = {**{name: name for name in STANDARD_ELEMENTWISE}, **RENAMED}


class _Linalg:
    """The ``np.linalg`` functions emissions call (the decompositions' and ops.matrix's), with
    NumPy's arguments, on the linalg extension of the array API standard; a library without it
    is refused naming the function, and so is Dask, whose linalg takes single matrices cut in
    square chunks, not stacks."""

    def __init__(self, xp):
        # Dask's linalg factors only unbatched matrices in one chunk along one axis: it is
        # refused as a namespace without the extension is
        self._linalg = None if _compat().is_dask_namespace(xp) else getattr(xp, "linalg", None)
        self._xp = xp

    def _function(self, name):
        function = getattr(self._linalg, name, None)
        if function is None:
            raise SymgradError(f"backend 'array_api': the array namespace "
                               f"{getattr(self._xp, '__name__', self._xp)} offers no "
                               f"linalg.{name} for stacks of chunked matrices (the standard's "
                               f"linalg extension), which op {name!r} uses; use backend "
                               f"'numpy'")
        return function

    def __getattr__(self, name):
        # what NumPy and the standard spell alike: inv, solve, cholesky, det, slogdet, pinv
        if name.startswith("_"):
            raise AttributeError(name)
        return self._function(name)

    def _mirrored(self, x, UPLO):
        """The symmetric matrix of x's ``UPLO`` triangle: the standard's eigh reads a symmetric
        matrix without saying which triangle, NumPy's the one it is told."""
        xp = self._xp
        triangle = xp.tril(x) if UPLO == "L" else xp.triu(x)
        strict = xp.tril(x, k=-1) if UPLO == "L" else xp.triu(x, k=1)
        return triangle + xp.matrix_transpose(strict)

    def eigh(self, x, UPLO="L"):
        return tuple(self._function("eigh")(self._mirrored(x, UPLO)))

    def eigvalsh(self, x, UPLO="L"):
        return self._function("eigvalsh")(self._mirrored(x, UPLO))

    def svd(self, x, full_matrices=True, compute_uv=True):
        if not compute_uv:
            return self._function("svdvals")(x)
        return tuple(self._function("svd")(x, full_matrices=full_matrices))

    def qr(self, x, mode="reduced"):
        return tuple(self._function("qr")(x, mode=mode))

    def inv(self, x):
        return self._function("inv")(x)


class ArrayNamespace:
    """The NumPy names the emitted code uses, on one array namespace ``xp`` and one device: every
    element-wise function of ELEMENTWISE the namespace has, and methods for the others.

    A Python number meeting an array in a function becomes a 0-d array of that array's floating
    dtype (``np.maximum(x, 0.0)``), as NumPy and the standard's operators treat it; arrays are
    always made on ``device``.
    """

    def __init__(self, xp, device):
        self.xp = xp
        self.device = device
        self._immutable = _compat().is_jax_namespace(xp)
        for numpy_name, standard_name in ELEMENTWISE.items():
            function = getattr(xp, standard_name, None)
            if function is not None:
                setattr(self, numpy_name, self._elementwise(function))
        self.add = _Reducible(self._elementwise(xp.add), xp.sum,
                              accumulation=getattr(xp, "cumulative_sum", None))
        self.multiply = _Reducible(self._elementwise(xp.multiply), xp.prod,
                                   accumulation=getattr(xp, "cumulative_prod", None))
        self.maximum = _Reducible(self._elementwise(xp.maximum), xp.max, self._full)
        self.minimum = _Reducible(self._elementwise(xp.minimum), xp.min, self._full)
        self.float64 = self._scalar_type(xp.float64)
        self.float32 = self._scalar_type(xp.float32)
        self.bool_ = self._scalar_type(xp.bool)
        self.int64 = self._scalar_type(xp.int64)     # an argmax of every axis, as an output

    nan = math.nan
    inf = math.inf
    s_ = _IndexExpression()

    # -- Python numbers as arrays -------------------------------------------------------------------

    def _number(self, value, like=None):
        """``value`` as a 0-d array: a bool array for a bool; a NumPy float keeps its dtype (the
        NumPy namespace reduces a float32 array to a np.float32); a Python number takes
        ``like``'s dtype when that is a floating array's or a np.float32, float64 otherwise."""
        if isinstance(value, (bool, np.bool_)):
            return self.xp.asarray(bool(value), dtype=self.xp.bool, device=self.device)
        dtype = self.xp.float64
        if isinstance(value, np.float32) or (isinstance(like, np.float32)
                                             and not isinstance(value, np.generic)):
            # a NumPy float32 scalar (a reduction of every axis, on NumPy) is a float32 array
            dtype = self.xp.float32
        elif like is not None and not _is_number(like) \
                and self.xp.isdtype(like.dtype, "real floating"):
            dtype = like.dtype
        return self.xp.asarray(float(value), dtype=dtype, device=self.device)

    def _full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=dtype, device=self.device)

    def _elementwise(self, function):
        """``function`` taking numbers too: each becomes a 0-d array (``_number``) like the first
        other operand, as converted already when it comes earlier (``f(x, 2.0)`` and
        ``f(2.0, x)`` both take x's floating dtype)."""
        def call(*operands):
            if not any(_is_number(x) for x in operands):
                return function(*operands)
            converted = list(operands)
            for position, x in enumerate(converted):
                if _is_number(x):
                    like = next((y for other, y in enumerate(converted) if other != position),
                                None)
                    converted[position] = self._number(x, like)
            return function(*converted)
        return call

    def _scalar_type(self, dtype):
        def call(value):
            if not _is_number(value) and value.dtype != dtype:
                # a cast between kinds (astype's op), which asarray may refuse
                return self.xp.astype(value, dtype)
            return self.xp.asarray(value, dtype=dtype, device=self.device, copy=True)
        return call

    # -- NumPy functions without a namesake in the standard ----------------------------------------

    def where(self, condition, x, y):
        if _is_number(condition):
            condition = self._number(bool(condition))
        if _is_number(x):
            x = self._number(x, y)
        if _is_number(y):
            y = self._number(y, x)
        return self.xp.where(condition, x, y)

    def heaviside(self, x, at_zero):
        """NumPy's step: 0 below zero, 1 above, ``at_zero`` at zero, nan at nan."""
        return self.where(x > 0.0, 1.0, self.where(x < 0.0, 0.0, self.where(x == 0.0, at_zero, x)))

    # NumPy's element-wise functions the standard lacks, from the standard's own (as NumPy
    # computes them where that is exact: fmod from the remainder of magnitudes, which has no
    # correction to round; logaddexp2 as npy_logaddexp2)
    def _arrays(self, *operands):
        return self._elementwise(lambda *arrays: arrays)(*operands)

    def fmax(self, x, y):
        """The maximum ignoring a nan operand."""
        x, y = self._arrays(x, y)
        xp = self.xp
        return xp.where(xp.isnan(y), x, xp.where(xp.isnan(x), y, xp.maximum(x, y)))

    def fmin(self, x, y):
        """The minimum ignoring a nan operand."""
        x, y = self._arrays(x, y)
        xp = self.xp
        return xp.where(xp.isnan(y), x, xp.where(xp.isnan(x), y, xp.minimum(x, y)))

    def fmod(self, x, y):
        """C's fmod: the remainder of truncated division, with the dividend's sign."""
        x, y = self._arrays(x, y)
        return self.xp.copysign(self.xp.remainder(self.xp.abs(x), self.xp.abs(y)), x)

    def logaddexp2(self, x, y):
        """log2(2**x + 2**y) without overflow."""
        x, y = self._arrays(x, y)
        xp = self.xp
        larger = xp.maximum(x, y)
        tail = xp.log1p(xp.pow(self._number(2.0, x), -xp.abs(x - y))) * 1.4426950408889634
        return xp.where(x == y, x + 1.0, larger + tail)

    def cbrt(self, x):
        """The real cube root."""
        return self.xp.sign(x) * self.xp.pow(self.xp.abs(x), 1.0 / 3.0)

    def sinc(self, x):
        """NumPy's normalized sinc, as NumPy computes it: sin(y) / y with y = pi x, 1e-20 for 0."""
        y = self.where(x == 0.0, 1.0e-20, x) * math.pi
        return self.xp.sin(y) / y

    def rint(self, x):
        return self.xp.round(x)

    def round(self, x, decimals=0):
        """NumPy's round: rint(x * 10**d) / 10**d, or rint(x / 10**-d) * 10**-d."""
        scale = 10.0 ** abs(decimals)
        if decimals >= 0:
            return self.xp.round(x * scale) / scale
        return self.xp.round(x / scale) * scale

    def mean(self, x, axis=None, keepdims=False):
        return self.xp.mean(x, axis=axis, keepdims=keepdims)

    def var(self, x, axis=None, ddof=0, keepdims=False):
        return self.xp.var(x, axis=axis, correction=ddof, keepdims=keepdims)

    def std(self, x, axis=None, ddof=0, keepdims=False):
        return self.xp.std(x, axis=axis, correction=ddof, keepdims=keepdims)

    def sort(self, x, axis=-1):
        return self.xp.sort(x, axis=axis)

    def argsort(self, x, axis=-1, kind=None):
        # the standard's default is the stable order, which is symgrad's (ops.order)
        return self.xp.argsort(x, axis=axis, stable=True)

    def argmax(self, x, axis=None, keepdims=False):
        return self.xp.argmax(x, axis=axis, keepdims=keepdims)

    def argmin(self, x, axis=None, keepdims=False):
        return self.xp.argmin(x, axis=axis, keepdims=keepdims)

    def vdot(self, x, y):
        return self.xp.sum(x * y)

    def einsum(self, subscripts, *operands):
        """NumPy's einsum on explicit subscripts (the form emitted code writes): the library's
        own where it has one (NumPy, Dask, PyTorch, JAX), else composed from the standard's
        functions: each operand's diagonals taken with an identity matrix, the operands
        broadcast against each other over every letter, multiplied, and the letters the output
        lacks summed. The emitted code calls it only for a pair that is no matrix product
        (ops.linalg) or for one operand, so that the broadcast product stays that of two."""
        own = getattr(self.xp, "einsum", None)
        if own is not None:
            return own(subscripts, *operands)
        inputs, output = subscripts.split("->")
        letters = list(dict.fromkeys(inputs.replace(",", "")))
        product = None
        for labels, x in zip(inputs.split(","), operands):
            x, labels = self._diagonals(x, labels)
            order = sorted(range(len(labels)), key=lambda axis: letters.index(labels[axis]))
            x = self.xp.permute_dims(x, tuple(order))
            placed = {labels[axis]: x.shape[k] for k, axis in enumerate(order)}
            x = self.reshape(x, tuple(placed.get(letter, 1) for letter in letters))
            product = x if product is None else product * x
        summed = tuple(k for k, letter in enumerate(letters) if letter not in output)
        if summed:
            product = self.xp.sum(product, axis=summed)
        kept = [letter for letter in letters if letter in output]
        return self.xp.permute_dims(product, tuple(kept.index(letter) for letter in output))

    def _diagonals(self, x, labels):
        """``x`` (axes ``labels``) with each repeated letter's axes reduced to their diagonal."""
        while len(set(labels)) != len(labels):
            letter = next(c for c in labels if labels.count(c) > 1)
            first = labels.index(letter)
            second = labels.index(letter, first + 1)
            n = x.shape[first]
            eye = self.xp.eye(n, dtype=x.dtype, device=self.device)
            x = self.xp.sum(x * self.reshape(eye, tuple(
                n if axis in (first, second) else 1 for axis in range(x.ndim))), axis=second)
            labels = labels[:second] + labels[second + 1:]
        return x, labels

    def shape(self, x):
        return () if _is_number(x) else tuple(x.shape)

    def size(self, x):
        return math.prod(self.shape(x))

    def broadcast_shapes(self, *shapes):
        ndim = max(len(s) for s in shapes)
        padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
        return tuple(max(dims) if 0 not in dims else 0 for dims in zip(*padded))

    def broadcast_to(self, x, shape):
        return self.xp.broadcast_to(self._number(x) if _is_number(x) else x, tuple(shape))

    def reshape(self, x, shape):
        try:
            return self.xp.reshape(x, tuple(shape))
        except NotImplementedError:
            # Dask reshapes only by merging or splitting axes (not (4, 6) -> (6, 4) in chunks of
            # (2, 3)): one merge into a vector, then one split
            return self.xp.reshape(self.xp.reshape(x, (-1,)), tuple(shape))

    def transpose(self, x, axes=None):
        axes = tuple(range(x.ndim - 1, -1, -1)) if axes is None else tuple(axes)
        return self.xp.permute_dims(x, axes)

    def squeeze(self, x, axis=None):
        if axis is None:
            axis = tuple(a for a, d in enumerate(x.shape) if d == 1)
        axis = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        return self.xp.squeeze(x, axis=tuple(a % x.ndim for a in axis)) if axis else x

    def expand_dims(self, x, axis):
        if _is_number(x):
            x = self._number(x)
        axis = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        ndim = x.ndim + len(axis)
        positions = {a % ndim for a in axis}
        dims = iter(x.shape)
        return self.xp.reshape(x, tuple(1 if a in positions else next(dims) for a in range(ndim)))

    def concatenate(self, arrays, axis=0):
        return self.xp.concat(list(arrays), axis=axis)

    @property
    def linalg(self):
        """np.linalg's functions (the decompositions, the solves, inverses and determinants) on
        the standard's linalg extension."""
        return _Linalg(self.xp)

    def roll(self, x, shift, axis=None):
        return self.xp.roll(x, shift, axis=axis)

    def stack(self, arrays, axis=0):
        return self.xp.stack(list(arrays), axis=axis)

    def zeros(self, shape, dtype=None):
        return self.xp.zeros(tuple(shape), dtype=self._dtype(dtype), device=self.device)

    def empty(self, shape, dtype=None):
        return self.xp.empty(tuple(shape), dtype=self._dtype(dtype), device=self.device)

    def _dtype(self, dtype):
        """The library's dtype for a ``dtype=`` of the emitted code: ``np.float32`` there is this
        namespace's float32, a function making scalars (``np.float32(2.5)``); None is float64."""
        if dtype is None or dtype is self.float64:
            return self.xp.float64
        return self.xp.float32 if dtype is self.float32 else dtype

    def eye(self, n, dtype=None):
        return self.xp.eye(n, dtype=self._dtype(dtype), device=self.device)

    def array(self, x):
        """A copy, as ``np.array``: what the function returns is never an argument's memory."""
        if _is_number(x):
            return self._number(x)
        return self.xp.asarray(x, copy=True)

    def get_at(self, x, index):
        """``x[index]`` for an index with a negative step (PyTorch has none): the slice with the
        positive step, then reversed."""
        index, _, reversed_axes, _ = self._positive_steps(x, index, keep_new_axes=True)
        selected = x[index]
        return self.xp.flip(selected, axis=tuple(reversed_axes)) if reversed_axes else selected

    def set_at(self, x, index, value):
        """``x`` with ``x[index] = value``: in place, or a new array where arrays are immutable."""
        index = index if isinstance(index, tuple) else (index,)
        if any(item is None or isinstance(item, slice) and (item.step or 1) < 0
               for item in index):
            index, new_axes, reversed_axes, offset = self._positive_steps(x, index)
            if not _is_number(value):
                # the axes of value that the index's None stood for (the standard has no new
                # axis in an assignment) go, those its negative steps stood for are reversed
                offset -= value.ndim        # value may lack leading axes of the selection
                flipped = tuple(a - offset for a in reversed_axes if a >= offset)
                if flipped:
                    value = self.xp.flip(value, axis=flipped)
                squeezed = tuple(a - offset for a in new_axes if a >= offset)
                if squeezed:
                    value = self.xp.squeeze(value, axis=squeezed)
        if self._immutable:
            return x.at[index].set(value)
        x[index] = value
        return x

    def arange(self, n):
        return self.xp.arange(n, device=self.device)

    def moveaxis(self, x, source, destination):
        return self.xp.moveaxis(x, source, destination)

    def gather(self, x, index):
        """``x[index]`` for an index with integer arrays, by NumPy's rules for advanced
        indexing (symgrad's emission gives an item for every axis): the entries at the flat
        positions the index selects, through the standard's ``take`` of a 1-D index, which
        every library has (Dask has no indexing by arrays of several axes)."""
        if _compat().is_numpy_namespace(self.xp):
            return x[index]
        positions, shape = self._flat_positions(x.shape, index)
        return self.xp.reshape(self.xp.take(self.xp.reshape(x, (-1,)), positions, axis=0), shape)

    def scatter_add(self, x, index, value):
        """``x`` with ``value`` added at an index with integer arrays (as gather's), repeated
        indices adding up: the library's own scatter where it has one, otherwise a product
        with the one-hot matrix of the positions (the standard has no scatter), whose cost
        grows with both sizes."""
        compat = _compat()
        xp = self.xp
        if compat.is_numpy_namespace(xp):
            np.add.at(x, index, value)
            return x
        if self._immutable:
            return x.at[self._integer_arrays(x.shape, index)].add(value)
        if compat.is_torch_namespace(xp):
            arrays = self._integer_arrays(x.shape, index)
            shape = np.broadcast_shapes(*(tuple(a.shape) for a in arrays))
            return x.index_put_(tuple(xp.broadcast_to(a, shape) for a in arrays),
                                xp.broadcast_to(value, shape), accumulate=True)
        positions, shape = self._flat_positions(x.shape, index)
        size = math.prod(x.shape)
        one_hot = xp.astype(positions[:, None] == self.arange(size)[None, :], x.dtype)
        values = xp.reshape(xp.broadcast_to(xp.asarray(value, dtype=x.dtype), shape), (1, -1))
        return x + xp.reshape(xp.matmul(values, one_hot), x.shape)

    def _flat_positions(self, shape, index):
        """(the positions in the flattened array that ``index`` selects, 1-D; the shape of
        the selection)."""
        xp = self.xp
        arrays = self._integer_arrays(shape, index)
        flat = arrays[0]
        for axis in range(1, len(arrays)):
            flat = flat * shape[axis] + arrays[axis]
        selection = np.broadcast_shapes(*(tuple(a.shape) for a in arrays))
        return xp.reshape(xp.broadcast_to(flat, selection), (-1,)), selection

    def _integer_arrays(self, shape, index):
        """``index`` (an item per axis) as integer arrays on every axis, which the standard
        specifies: the advanced items (arrays and ints, negative ones wrapped) broadcast to one
        block of axes, in their place when adjacent and first otherwise, each slice the range
        of positions it selects on its own axis."""
        xp = self.xp
        index = index if isinstance(index, tuple) else (index,)
        advanced = [p for p, item in enumerate(index) if not isinstance(item, slice)]
        arrays = {p: xp.asarray(index[p], device=self.device) for p in advanced}
        # shapes are tuples of ints: NumPy's rule serves every library (Dask's has none)
        block = np.broadcast_shapes(*(tuple(a.shape) for a in arrays.values()))
        adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
        slices = [p for p in range(len(index)) if p not in arrays]
        if adjacent:
            before = [p for p in slices if p < advanced[0]]
            layout = [*before, "block", *(p for p in slices if p > advanced[0])]
        else:
            layout = ["block", *slices]
        ndim = len(layout) - 1 + len(block)
        start = layout.index("block")
        result = []
        for p in range(len(index)):
            if p in arrays:
                array = arrays[p]
                array = xp.where(array < 0, array + shape[p], array)
                laid = (1,) * (start + len(block) - array.ndim) + tuple(array.shape)
            else:
                array = self.arange(shape[p])[index[p]]
                axis = layout.index(p)
                axis += len(block) - 1 if axis > start else 0
                laid = (1,) * axis + (array.shape[0],)
            result.append(xp.reshape(array, laid + (1,) * (ndim - len(laid))))
        return tuple(result)

    def _positive_steps(self, x, index, keep_new_axes=False):
        """(the index with positive steps only, and without None unless ``keep_new_axes``; the
        axes of the selection that were None; those it reverses; its number of axes)."""
        index = index if isinstance(index, tuple) else (index,)
        kept, new_axes, reversed_axes = [], [], []
        axis = result_axis = 0          # the axis of x, and of the selection, an item addresses
        for position, item in enumerate(index):
            if item is Ellipsis:
                kept.extend(index[position:])
                break
            if item is None:
                new_axes.append(result_axis)
                result_axis += 1
                if keep_new_axes:
                    kept.append(item)
                continue
            if isinstance(item, slice):
                if (item.step or 1) < 0:
                    steps = range(*item.indices(x.shape[axis]))
                    item = slice(steps[-1], steps[0] + 1, -steps.step) if steps else slice(0, 0)
                    reversed_axes.append(result_axis)
                result_axis += 1
            kept.append(item)
            axis += 1
        else:
            kept.append(Ellipsis)       # the standard wants every axis indexed
        return tuple(kept), new_axes, reversed_axes, result_axis + x.ndim - axis


# every name emitted code may read from ``np`` (tests/test_array_api.py holds every op to it)
NAMES = frozenset(
    {name for name in vars(ArrayNamespace) if not name.startswith("_")}
    | set(ELEMENTWISE) | {"float64", "float32", "bool_", "int64"})


def checked_source(graph, outputs, inputs, function_name):
    """(source, namespace, constants) of the array-API function (codegen.array_api), a user's op
    refused when it reads a NumPy name this namespace has no counterpart for."""
    return codegen.generate_array_api(graph, outputs, inputs, function_name, offered=NAMES)


# -- calls -----------------------------------------------------------------------------------------


def _compat():
    try:
        import array_api_compat
    except ImportError:
        raise SymgradError("backend 'array_api' needs array-api-compat: "
                           "pip install -e '.[array-api]' in a clone of symgrad") from None
    return array_api_compat


def _library(xp):
    return getattr(xp, "__name__", repr(xp)).replace("array_api_compat.", "")


class ArrayAPIEntry:
    """Calls the generated body with the arguments' namespace: checks the arguments (count is
    api's; here shapes, named dimensions, one library, one device), converts Python numbers and
    other dtypes, and passes the constants converted to the library and device."""

    def __init__(self, body, specs, constants, output_dtypes, least=None):
        self._body = body
        self._specs = list(specs)           # (name, shape, dtype name) per input
        # the namespace's scalar maker per output, by its name there (NumPy's bool is bool_)
        self._scalar_types = ["bool_" if dtype == "bool" else dtype for dtype in output_dtypes]
        self._least = least or {}           # codegen.least_dimension_lengths
        self._constants = [value for _, value in constants]
        self._prepared = {}                 # (namespace, device) -> (ArrayNamespace, constants)
        self._compat = _compat()

    def __call__(self, *values):
        xp, device = self._namespace(values)
        arrays = self._checked(xp, device, values)
        namespace, constants = self._prepare(xp, device)
        results = self._body(namespace, *arrays, *constants)
        if any(_is_number(r) for r in results):
            # a Python float (a length, axis_size) or a NumPy scalar (NumPy's namespace reduces
            # to one): an array of the library, of the output's dtype
            results = tuple(getattr(namespace, scalar)(r) if _is_number(r) else r
                            for r, scalar in zip(results, self._scalar_types))
        return results

    def _namespace(self, values):
        compat = self._compat
        arrays = [(name, v) for (name, _, _), v in zip(self._specs, values)
                  if not _is_number(v) and compat.is_array_api_obj(v)]
        if not arrays:
            return compat.array_namespace(np.empty(0)), "cpu"
        try:
            xp = compat.array_namespace(*(v for _, v in arrays))
        except TypeError:
            libraries = ", ".join(f"{name!r} is {_library(compat.array_namespace(v))}"
                                  for name, v in arrays)
            raise SymgradError(f"the arguments are arrays of different libraries ({libraries}): "
                               f"convert them to one (xp.asarray)") from None
        device = compat.device(arrays[0][1])
        for name, value in arrays[1:]:
            if compat.device(value) != device:
                raise SymgradError(f"argument {name!r} is on device {compat.device(value)}, "
                                   f"argument {arrays[0][0]!r} on {device}")
        return xp, device

    def _checked(self, xp, device, values):
        compat = self._compat
        checked = []
        bound = {}
        for value, (name, shape, dtype) in zip(values, self._specs):
            want = getattr(xp, dtype)
            try:
                # another library's array (PyTorch's, with dtypes of its own) is real already,
                # and reading it with NumPy would copy it off its device
                if not compat.is_array_api_obj(value) or isinstance(getattr(value, "dtype", None),
                                                                    np.dtype):
                    real_argument(name, value, dtype)
                if _is_number(value) or not compat.is_array_api_obj(value):
                    array = xp.asarray(value, dtype=want, device=device)
                else:
                    array = value if value.dtype == want else xp.astype(value, want)
            except (TypeError, ValueError, OverflowError) as error:     # 10**400 overflows
                raise SymgradError(f"argument {name!r}: cannot convert to {dtype} "
                                   f"({error})") from None
            got = tuple(array.shape)
            unknown = [axis for axis, d in enumerate(got) if not isinstance(d, numbers.Integral)]
            if unknown:
                raise ShapeError(f"argument {name!r} has shape {got}, unknown on axis "
                                 f"{unknown[0]}: compute the lengths first (with Dask, "
                                 f"{name}.compute_chunk_sizes())")
            if len(got) != len(shape):
                raise ShapeError(f"argument {name!r} must have shape {shape}, got {got}")
            for axis, (want_dim, got_dim) in enumerate(zip(shape, got)):
                if isinstance(want_dim, str):
                    first = bound.setdefault(want_dim, (got_dim, name))
                    if first[0] != got_dim:
                        raise ShapeError(f"argument {name!r}: dimension {want_dim!r} is {got_dim} "
                                         f"on axis {axis}, but {first[0]} in argument "
                                         f"{first[1]!r}")
                elif want_dim != got_dim:
                    raise ShapeError(f"argument {name!r} must have shape {shape}, got {got}")
            checked.append(array)
        check_least_lengths(bound, self._least)
        return checked

    def _prepare(self, xp, device):
        try:
            key = (xp, device)
            prepared = self._prepared.get(key)
        except TypeError:           # an unhashable device: prepared again at every call
            key, prepared = None, None
        if prepared is None:
            # a copy: a read-only NumPy array is refused (or warned about) by some libraries
            prepared = (ArrayNamespace(xp, device),
                        tuple(xp.asarray(value.copy(), device=device)
                              for value in self._constants))
            if key is not None:
                self._prepared[key] = prepared
        return prepared


__all__ = ["ArrayAPIEntry", "ArrayNamespace", "ELEMENTWISE", "NAMES", "array_api_available",
           "checked_source"]
