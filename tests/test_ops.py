"""Every op in sg.OPS, table-driven, as JAX's LAX_GRAD_OPS tests are.

CASES says how to build each op from random inputs and what NumPy computes for it. Each case is
checked for its shape rule, its emitted code, its vjp against central differences (also with
batched cotangents), its jvp, and its second derivatives; scalar ops are checked against SymPy.
Defining an op without a case fails test_every_op_has_a_case. The tie conventions and the
large-input behaviour of the stable ops have their own tests at the end.
"""

import dataclasses
import itertools
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import scipy.special
import sympy

import symgrad as sg
import symgrad.scipy.signal as sg_signal
from symgrad.ops import apply, expand_dims, heaviside, squeeze
from symgrad.ops.shape import fancy_index, normalize_index
from symgrad.ops import matrix
from symgrad.ops.elementwise import polynomial as sg_polynomial
from symgrad.ops.convolution import USES_WINDOWS
from symgrad.ops.shape import USES_DATA_LENGTHS
from symgrad.ops.decompositions import USES_SCIPY as USES_SCIPY_LINALG
from symgrad.ops.special import USES_SCIPY

DIMS = {"n": 5}             # the size bound to the symbolic dimension at call time
NAMES = "abc"               # variable names of a case's inputs, by position
LEAVES = {"var", "const"}
EPS = 1e-6                  # central-difference step
RTOL, ATOL = 1e-6, 1e-6     # tolerances against central differences
MARGIN = 0.05               # sampled inputs keep at least this far from kinks and ties
ALPHA = 0.1                 # leaky_relu slope used throughout


# -- input domains ---------------------------------------------------------------------------------


def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def uniform(low, high):
    def sample(rng, shape):
        return rng.uniform(low, high, shape)
    return sample


def integers(rng, shape):
    """Small integers as floats, so that comparisons meet ties."""
    return rng.integers(-1, 2, shape).astype(np.float64)


def itself(a, *rest):
    return a


def difference(a, b):
    return a - b


def first_two_gap(axis):
    """Distances between the two largest and the two smallest entries over ``axis``: max and min
    reductions have a tie where either vanishes."""
    def kink(a):
        axes = tuple(range(a.ndim)) if axis is None else tuple(np.atleast_1d(axis) % a.ndim)
        moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
        ordered = np.sort(moved.reshape(moved.shape[:a.ndim - len(axes)] + (-1,)), axis=-1)
        return np.concatenate([(ordered[..., -1] - ordered[..., -2]).ravel(),
                               (ordered[..., 1] - ordered[..., 0]).ravel()])
    return kink


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: str
    label: str
    build: Callable         # input Exprs -> an Expr whose op is ``op``
    shapes: tuple           # one shape per input; "n" is bound to DIMS["n"] at call time
    reference: Callable     # input arrays -> NumPy's answer
    domains: tuple = ()     # one sampler per input, standard normal by default
    kink: Callable = None   # input arrays -> distances to a kink or tie, kept above MARGIN

    @property
    def id(self):
        return f"{self.op}-{self.label}"

    @property
    def differentiable(self):
        """Input positions a gradient flows into (the op's operands, by position)."""
        skip = sg.OPS[self.op].nondifferentiable
        return [i for i in range(len(self.shapes)) if i not in skip]

    @property
    def nondifferentiable(self):
        return [i for i in range(len(self.shapes)) if i not in self.differentiable]

    @property
    def symbolic(self):
        return any(isinstance(d, str) for shape in self.shapes for d in shape)


def unary(op, build, reference, domain=normal, kink=None):
    return [Case(op, label, build, (shape,), reference, (domain,), kink)
            for label, shape in [("matrix", (3, 4)), ("batch", ("n", 3))]]


BINARY_SHAPES = [("same", (3, 4), (3, 4)), ("broadcast", (3, 1), (4,)), ("scalar", (), (3,)),
                 ("batch", ("n", 1), (4,))]


def binary(op, build, reference, domains=(normal, normal), kink=None, shapes=BINARY_SHAPES):
    return [Case(op, label, build, (a, b), reference, domains, kink) for label, a, b in shapes]


def reduction(op, label, shape, build, reference, axis, keepdims=False, kink=None):
    return Case(op, label, lambda a: build(a, axis=axis, keepdims=keepdims), (shape,),
                lambda a: reference(a, axis=axis, keepdims=keepdims), (normal,),
                kink and kink(axis))


def reductions(op, build, reference, kink=None):
    return [reduction(op, label, shape, build, reference, axis, keepdims, kink)
            for label, shape, axis, keepdims in [("all", (3, 4), None, False),
                                                 ("axis0", (3, 4), 0, False),
                                                 ("axes-keepdims", (2, 3, 4), (0, 2), True),
                                                 ("batch", ("n", 3), -1, False),
                                                 ("over-n", ("n", 3), 0, False)]]


def np_logsumexp(a, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


def np_softmax(a, axis):
    e = np.exp(a)
    return e / np.sum(e, axis=axis, keepdims=True)


def normalisers(op, build, reference):
    return [Case(op, label, lambda a, axis=axis: build(a, axis=axis), (shape,),
                 lambda a, axis=axis: reference(a, axis))
            for label, shape, axis in [("vector", (4,), -1), ("rows", (3, 4), -1),
                                       ("columns", (3, 4), 0), ("batch", ("n", 4), -1),
                                       ("over-n", ("n", 3), 0)]]


def getitem_case(label, shape, index):
    return Case("getitem", label, lambda a: a[index], (shape,), lambda a: a[index])


def index_grad_case(label, g_shape, like_shape, index, keep=0):
    normalized = normalize_index(index, len(like_shape))

    def reference(g, like):
        result = np.zeros(g.shape[:keep] + like.shape)
        result[(slice(None),) * keep + index] = g
        return result
    return Case("index_grad", label,
                lambda g, like: apply("index_grad", g, like, index=normalized, keep=keep),
                (g_shape, like_shape), reference)


def index_add_case(label, base_shape, g_shape, index, keep=0):
    normalized = normalize_index(index, len(base_shape) - keep)

    def reference(base, g):
        result = base.copy()
        result[(slice(None),) * keep + index] += g
        return result
    return Case("index_add", label,
                lambda base, g: apply("index_add", base, g, index=normalized, keep=keep),
                (base_shape, g_shape), reference)


def reshape_like_case(label, shape, like_shape, keep=0):
    return Case("reshape_like", label, lambda a, like: apply("reshape_like", a, like, keep=keep),
                (shape, like_shape), lambda a, like: a.reshape(a.shape[:keep] + like.shape))


def concatenate_case(label, shapes, axis):
    return Case("concatenate", label, lambda *parts: sg.concatenate(parts, axis=axis), shapes,
                lambda *parts: np.concatenate(parts, axis=axis))


def np_broadcast_to_like(a, like):
    return np.broadcast_to(a, np.broadcast_shapes(a.shape, like.shape))


def with_zeros(*positions):
    """Normal entries with zeros at ``positions`` (flat indices): the derivatives of products
    and running products are exact there, without a division (central differences are exact
    too: those are multilinear)."""
    def sample(rng, shape):
        a = rng.standard_normal(shape)
        a.flat[list(positions)] = 0.0
        return a
    return sample


def spread_cases(op, build, reference):
    """variance and std: over every axis, one axis with ddof=1, two axes kept, a batch."""
    return [Case(op, label, lambda a, axis=axis, ddof=ddof, keepdims=keepdims:
                 build(a, axis=axis, ddof=ddof, keepdims=keepdims), (shape,),
                 lambda a, axis=axis, ddof=ddof, keepdims=keepdims:
                 reference(a, axis=axis, ddof=ddof, keepdims=keepdims))
            for label, shape, axis, ddof, keepdims in [
                ("all", (3, 4), None, 0, False), ("axis0-ddof1", (3, 4), 0, 1, False),
                ("axes-keepdims", (2, 3, 4), (0, 2), 0, True), ("batch", ("n", 3), -1, 1, False),
                ("over-n", ("n", 3), 0, 0, False)]]


def scan_cases(op, build, reference, shapes_and_axes, domain=normal):
    return [Case(op, label, lambda a, axis=axis: build(a, axis=axis), (shape,),
                 lambda a, axis=axis: reference(a, axis=axis), (domain,))
            for label, shape, axis in shapes_and_axes]


# The cases of issue 18's families, one list each (filled in by the work on each family; kept
# apart so that each grows without touching the others)
ELEMENTWISE_MORE = [       # element-wise functions beyond the first ones, activations, special
    *unary("sinh", sg.sinh, np.sinh),
    *unary("cosh", sg.cosh, np.cosh),
    *unary("arcsin", sg.arcsin, np.arcsin, uniform(-0.9, 0.9)),
    *unary("arccos", sg.arccos, np.arccos, uniform(-0.9, 0.9)),
    *unary("arctan", sg.arctan, np.arctan),
    *unary("arcsinh", sg.arcsinh, np.arcsinh),
    *unary("arccosh", sg.arccosh, np.arccosh, uniform(1.2, 3.0)),
    *unary("arctanh", sg.arctanh, np.arctanh, uniform(-0.9, 0.9)),
    *unary("log2", sg.log2, np.log2, positive),
    *unary("log10", sg.log10, np.log10, positive),
    *unary("cbrt", sg.cbrt, np.cbrt, nonzero),
    # away from the branch cut of arctan2 (x < 0, y = 0): x > 0
    *binary("arctan2", sg.arctan2, np.arctan2, (normal, positive)),
    *binary("hypot", sg.hypot, np.hypot, (nonzero, nonzero)),
    *binary("logaddexp", sg.logaddexp, np.logaddexp),
    *binary("logaddexp2", sg.logaddexp2, np.logaddexp2),
    *binary("fmax", sg.fmax, np.fmax, kink=difference),
    *binary("fmin", sg.fmin, np.fmin, kink=difference),
    # the remainders jump where a / b is an integer
    *binary("remainder", lambda a, b: a % b, np.remainder, (uniform(-5.0, 5.0), nonzero),
            kink=lambda a, b: a / b - np.round(a / b)),
    *binary("fmod", sg.fmod, np.fmod, (uniform(-5.0, 5.0), nonzero),
            kink=lambda a, b: a / b - np.round(a / b)),
    # steps at the integers (at the half-integers for round), zero derivative between them
    *unary("floor", sg.floor, np.floor, uniform(-3.0, 3.0), kink=lambda a: a - np.round(a)),
    *unary("ceil", sg.ceil, np.ceil, uniform(-3.0, 3.0), kink=lambda a: a - np.round(a)),
    *unary("trunc", sg.trunc, np.trunc, uniform(-3.0, 3.0), kink=lambda a: a - np.round(a)),
    *unary("round", sg.round, np.round, uniform(-3.0, 3.0),
           kink=lambda a: a - np.floor(a) - 0.5),
    Case("round", "decimals", lambda a: sg.round(a, decimals=1), ((3, 4),),
         lambda a: np.round(a, 1), (uniform(-3.0, 3.0),),
         lambda a: a * 10.0 - np.floor(a * 10.0) - 0.5),   # in steps of 0.1
    Case("round", "negative-decimals", lambda a: sg.round(a, decimals=-1), ((3, 4),),
         lambda a: np.round(a, -1), (uniform(-30.0, 30.0),),
         lambda a: a / 10.0 - np.floor(a / 10.0) - 0.5),
    # special functions, against SciPy's
    *unary("erf", sg.erf, scipy.special.erf),
    *unary("erfc", sg.erfc, scipy.special.erfc),
    *unary("logit", sg.logit, scipy.special.logit, uniform(0.05, 0.95)),
    *binary("xlogy", sg.xlogy, scipy.special.xlogy, (normal, positive)),
]


def array_api_refuses(case):
    """The ops of the case's value whose NumPy form the array-API backend has no counterpart
    for, and refuses: SciPy's functions (ops.special, ops.matrix's triangular solves,
    ops.decompositions' expm), strided windows (ops.convolution)."""
    with sg.use_graph():
        _, out = build(case)
        nodes = out.graph.ancestors_in_order([out.node])
        ops = {out.graph.nodes[node]["op"] for node in nodes}
    return sorted(ops & (set(USES_SCIPY) | set(matrix.USES_SCIPY) | set(USES_SCIPY_LINALG)
                         | set(USES_WINDOWS) | set(USES_DATA_LENGTHS)))


REDUCTIONS_MORE = [         # reductions, scans, norms and order statistics
    # products: their derivatives never divide, so zeros among the entries are exact
    *[reduction("prod", label, shape, sg.prod, np.prod, axis, keepdims)
      for label, shape, axis, keepdims in [("all", (3, 4), None, False),
                                           ("axis0", (3, 4), 0, False),
                                           ("axes-keepdims", (2, 3, 4), (0, 2), True),
                                           ("batch", ("n", 3), -1, False)]],
    *[Case("prod", label, lambda a, axis=axis: sg.prod(a, axis=axis), (shape,),
           lambda a, axis=axis: np.prod(a, axis=axis), (domain,))
      for label, shape, axis, domain in [("one-zero", (5,), None, with_zeros(2)),
                                         ("two-zeros", (5,), None, with_zeros(1, 3)),
                                         ("zeros-rows", (3, 4), 1, with_zeros(0, 5, 7)),
                                         ("zeros-axes", (2, 3, 2), (0, 2), with_zeros(1, 4, 9))]],
    *spread_cases("variance", sg.ops.variance, np.var),
    *spread_cases("std", sg.std, np.std),
    *scan_cases("cumsum", sg.cumsum, np.cumsum, [("axis1", (3, 4), 1), ("flat", (3, 4), None),
                                                 ("batch", ("n", 3), -1),
                                                 ("over-n", ("n", 3), 0)]),
    *scan_cases("cumprod", sg.cumprod, np.cumprod, [("axis1", (3, 5), 1), ("axis0", (4, 3), 0),
                                                    ("flat", (2, 3), None),
                                                    ("batch", ("n", 3), -1)]),
    *[case for label, domain in [("one-zero", with_zeros(2)), ("two-zeros", with_zeros(1, 3)),
                                 ("zeros-ends", with_zeros(0, 6))]
      for case in scan_cases("cumprod", sg.cumprod, np.cumprod, [(label, (7,), 0)], domain)],
    *[Case("weighted_logsumexp", label,
           lambda a, b, axis=axis, keepdims=keepdims: sg.logsumexp(a, axis, keepdims, b=b),
           shapes, lambda a, b, axis=axis, keepdims=keepdims:
           scipy.special.logsumexp(a, axis=axis, b=b, keepdims=keepdims), (normal, domain))
      for label, shapes, axis, keepdims, domain in [
          ("all", ((3, 4), (3, 4)), None, False, positive),
          ("rows-broadcast", ((3, 4), (4,)), 1, False, positive),
          ("keepdims", ((3, 4), (3, 1)), 0, True, positive),
          ("zero-weights", ((2, 4), (4,)), -1, False, lambda rng, shape: positive(rng, shape)
           * (np.arange(shape[0]) % 3 != 1)),
          ("batch", (("n", 3), (3,)), -1, False, positive)]],
    *[Case("norm", label, lambda a, axis=axis, keepdims=keepdims:
           sg.norm(a, axis=axis, keepdims=keepdims), (shape,),
           lambda a, axis=axis, keepdims=keepdims: np.linalg.norm(a, axis=axis, keepdims=keepdims))
      for label, shape, axis, keepdims in [("vector", (4,), None, False),
                                           ("rows-keepdims", (3, 4), 1, True),
                                           ("frobenius", (3, 4), None, False),
                                           ("matrices", (2, 3, 4), (0, 2), False),
                                           ("batch", ("n", 3), -1, False),
                                           ("over-n", ("n", 3), 0, False)]],
]


@dataclass(frozen=True)
class Composed(Case):
    """A case of a public function composed of ops (sg.triu is a where): ``op`` is the op its
    result comes from, and a gradient flows into every input, whatever positions that op's own
    operands hold."""

    @property
    def differentiable(self):
        return list(range(len(self.shapes)))


def shapes_case(op, label, build, shapes, reference):
    return Composed(op, label, build, shapes, reference)


SHAPES_MORE = [            # building and reshaping arrays
    # joining
    shapes_case("concatenate", "stack", lambda a, b: sg.stack([a, b]), ((3,), (3,)),
                lambda a, b: np.stack([a, b])),
    shapes_case("concatenate", "stack-batch", lambda a, b: sg.stack([a, b], axis=-1),
                (("n", 2), ("n", 2)), lambda a, b: np.stack([a, b], axis=-1)),
    shapes_case("concatenate", "vstack", lambda a, b: sg.vstack([a, b]), ((2, 3), (3,)),
                lambda a, b: np.vstack([a, b])),
    shapes_case("concatenate", "hstack", lambda a, b: sg.hstack([a, b]), ((2,), (3,)),
                lambda a, b: np.hstack([a, b])),
    shapes_case("concatenate", "hstack-batch", lambda a, b: sg.hstack([a, b]),
                (("n", 2), ("n", 1)), lambda a, b: np.hstack([a, b])),
    shapes_case("concatenate", "dstack", lambda a, b: sg.dstack([a, b]), ((2, 3), (2, 3)),
                lambda a, b: np.dstack([a, b])),
    shapes_case("concatenate", "column_stack", lambda a, b: sg.column_stack([a, b]),
                ((3,), (3, 2)), lambda a, b: np.column_stack([a, b])),
    shapes_case("concatenate", "append", lambda a, b: sg.append(a, b), ((2, 3), (4,)), np.append),
    shapes_case("concatenate", "append-axis", lambda a, b: sg.append(a, b, axis=0),
                ((2, 3), (1, 3)), lambda a, b: np.append(a, b, axis=0)),
    shapes_case("concatenate", "array", lambda a, b, c: sg.array([[a, b], [c, a * b]]),
                ((), (), ()), lambda a, b, c: np.array([[a, b], [c, a * b]])),
    # splitting
    shapes_case("getitem", "split", lambda a: sg.split(a, 3, axis=1)[1], ((2, 6),),
                lambda a: np.split(a, 3, axis=1)[1]),
    shapes_case("getitem", "split-batch", lambda a: sg.split(a, [1, 3], axis=1)[2],
                (("n", 5),), lambda a: np.split(a, [1, 3], axis=1)[2]),
    shapes_case("getitem", "array_split", lambda a: sg.array_split(a, 3)[0], ((7,),),
                lambda a: np.array_split(a, 3)[0]),
    # axes of size one, flattening, moving axes
    shapes_case("squeeze", "squeeze-all", sg.squeeze, ((1, 3, 1),), np.squeeze),
    shapes_case("squeeze", "squeeze-batch", sg.squeeze, (("n", 1),), np.squeeze),
    shapes_case("expand_dims", "expand_dims-public", lambda a: sg.expand_dims(a, (0, 2)),
                (("n", 3),), lambda a: np.expand_dims(a, (0, 2))),
    shapes_case("reshape", "ravel", sg.ravel, ((3, 4),), np.ravel),
    shapes_case("transpose", "moveaxis", lambda a: sg.moveaxis(a, 0, -1), ((2, 3, 4),),
                lambda a: np.moveaxis(a, 0, -1)),
    shapes_case("transpose", "moveaxis-two", lambda a: sg.moveaxis(a, (0, 1), (2, 0)),
                ((2, 3, 4),), lambda a: np.moveaxis(a, (0, 1), (2, 0))),
    shapes_case("transpose", "swapaxes-batch", lambda a: sg.swapaxes(a, 0, 2), (("n", 2, 3),),
                lambda a: np.swapaxes(a, 0, 2)),
    # reversing and rolling
    shapes_case("getitem", "flip", sg.flip, ((3, 4),), np.flip),
    shapes_case("getitem", "flip-batch", lambda a: sg.flip(a, 0), (("n", 3),),
                lambda a: np.flip(a, 0)),
    shapes_case("getitem", "fliplr", sg.fliplr, ((3, 4),), np.fliplr),
    shapes_case("getitem", "flipud-batch", sg.flipud, (("n", 3),), np.flipud),
    shapes_case("roll", "rows", lambda a: sg.roll(a, 1, axis=0), ((3, 4),),
                lambda a: np.roll(a, 1, axis=0)),
    shapes_case("roll", "two-axes", lambda a: sg.roll(a, (-1, 5), axis=(1, 0)), ((3, 4),),
                lambda a: np.roll(a, (-1, 5), axis=(1, 0))),
    shapes_case("roll", "batch", lambda a: sg.roll(a, (2, -1), axis=(0, 1)), (("n", 3),),
                lambda a: np.roll(a, (2, -1), axis=(0, 1))),
    shapes_case("reshape", "roll-flat", lambda a: sg.roll(a, 5), ((3, 4),),
                lambda a: np.roll(a, 5)),
    # padding
    *[shapes_case("concatenate", f"pad-{label}", lambda a, w=width, kw=options:
                  sg.pad(a, w, **kw), (shape,), lambda a, w=width, kw=options: np.pad(a, w, **kw))
      for label, shape, width, options in [
          ("constant", (3, 4), ((1, 2), (0, 1)), {"constant_values": 1.5}),
          ("edge", (3, 4), ((2, 1), (1, 3)), {"mode": "edge"}),
          ("reflect", (3, 4), ((2, 1), (5, 2)), {"mode": "reflect"}),
          ("symmetric", (4,), (3, 2), {"mode": "symmetric"}),
          ("wrap", (3, 4), ((1, 4), (2, 1)), {"mode": "wrap"}),
          ("batch", ("n", 4), ((0, 0), (2, 1)), {"mode": "wrap"}),
          ("batch-constant", ("n", 2), ((0, 0), (1, 1)), {})]],
    # replicating
    shapes_case("reshape", "tile", lambda a: sg.tile(a, (2, 2)), ((2, 3),),
                lambda a: np.tile(a, (2, 2))),
    shapes_case("reshape", "tile-more-axes", lambda a: sg.tile(a, (2, 1, 3)), ((2,),),
                lambda a: np.tile(a, (2, 1, 3))),
    shapes_case("reshape", "tile-batch", lambda a: sg.tile(a, (1, 2)), (("n", 3),),
                lambda a: np.tile(a, (1, 2))),
    shapes_case("reshape", "repeat", lambda a: sg.repeat(a, 2, axis=1), ((2, 3),),
                lambda a: np.repeat(a, 2, axis=1)),
    shapes_case("reshape", "repeat-flat", lambda a: sg.repeat(a, 3), ((2, 2),),
                lambda a: np.repeat(a, 3)),
    shapes_case("reshape", "repeat-batch", lambda a: sg.repeat(a, 2, axis=-1), (("n", 3),),
                lambda a: np.repeat(a, 2, axis=-1)),
    *[shapes_case("broadcast_to", label, lambda a, s=shape: sg.broadcast_to(a, s), (source,),
                  lambda a, s=shape: np.broadcast_to(a, tuple(DIMS.get(d, d) for d in s)))
      for label, source, shape in [("rows", (3, 1), (2, 3, 4)), ("scalar", (), (3,)),
                                   ("batch", ("n", 1), ("n", 4))]],
    # diagonals and triangles
    shapes_case("getitem", "diagonal", lambda a: sg.diagonal(a, 1), ((3, 4),),
                lambda a: np.diagonal(a, 1)),
    shapes_case("getitem", "diagonal-axes", lambda a: sg.diagonal(a, -1, 2, 0), ((3, 2, 4),),
                lambda a: np.diagonal(a, -1, 2, 0)),
    shapes_case("getitem", "diagonal-batch", lambda a: sg.diagonal(a, 0, 1, 2), (("n", 3, 3),),
                lambda a: np.diagonal(a, 0, 1, 2)),
    shapes_case("sum", "trace", sg.trace, ((3, 4),), np.trace),
    shapes_case("sum", "trace-batch", lambda a: sg.trace(a, 1, -2, -1), (("n", 3, 3),),
                lambda a: np.trace(a, 1, -2, -1)),
    shapes_case("multiply", "diag", sg.diag, ((3,),), np.diag),
    shapes_case("concatenate", "diag-above", lambda a: sg.diag(a, 2), ((3,),),
                lambda a: np.diag(a, 2)),
    shapes_case("concatenate", "diag-below", lambda a: sg.diag(a, -1), ((3,),),
                lambda a: np.diag(a, -1)),
    shapes_case("getitem", "diag-of-matrix", lambda a: sg.diag(a, -1), ((4, 4),),
                lambda a: np.diag(a, -1)),
    shapes_case("where", "triu", lambda a: sg.triu(a, 1), ((3, 4),), lambda a: np.triu(a, 1)),
    shapes_case("where", "tril-batch", sg.tril, (("n", 3, 3),), np.tril),
]


CONTRACTIONS_MORE = [       # einsum, tensordot, outer, kron, cross, N-D dot and matmul
    *[Case("einsum", label, lambda *xs, subscripts=subscripts: sg.einsum(subscripts, *xs), shapes,
           lambda *xs, subscripts=subscripts: np.einsum(subscripts, *xs))
      for label, subscripts, shapes in [
          ("attention", "bqd,bkd->bqk", ((2, 3, 4), (2, 5, 4))),
          ("attention-batch", "bqd,bkd->bqk", (("n", 3, 4), ("n", 2, 4))),
          ("diagonal", "ii->i", ((3, 3),)),
          ("trace", "ii", ((3, 3),)),
          ("outer", "i,j->ij", ((3,), (4,))),
          ("ellipsis", "...ij,...j->...i", ((2, 3, 4), (4,))),
          ("ellipsis-batch", "...j,...j", (("n", 1, 3), (2, 3))),
          ("chain", "ij,jk,kl->il", ((2, 3), (3, 4), (4, 2))),
          ("chain-batch", "ni,ij,nj->n", (("n", 3), (3, 2), ("n", 2))),
          ("implicit", "jk,ij", ((3, 4), (2, 3))),
          ("sum-out", "ijk->ki", ((2, 3, 4),)),
          ("stretch", "ij,j->i", ((3, 1), (4,))),
          ("over-n", "ni,nj->ij", (("n", 3), ("n", 2))),
          ("diagonal-product", "iij,j->ji", ((3, 3, 2), (2,))),
          ("diagonal-batch", "nii->n", (("n", 3, 3),)),
          ("named-diagonal", "ii->i", (("n", "n"),)),
          ("scalar", ",i->i", ((), (3,))),
          ("hadamard", "ij,ij->ij", ((3, 4), (3, 4)))]],
    Case("einsum", "interleaved", lambda a, b: sg.einsum(a, [0, 1], b, [1, 2], [2, 0]),
         ((3, 4), (4, 2)), lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [2, 0])),
    *[Case("einsum", f"tensordot-{label}", lambda a, b, axes=axes: sg.tensordot(a, b, axes),
           shapes, lambda a, b, axes=axes: np.tensordot(a, b, axes))
      for label, axes, shapes in [("2", 2, ((2, 3, 4), (3, 4, 2))),
                                  ("0", 0, ((2,), (3,))),
                                  ("pairs", ([1, 0], [0, 2]), ((3, 2, 4), (2, 5, 3))),
                                  ("batch", ([1], [0]), (("n", 3), (3, 2)))]],
    Case("einsum", "outer-matrix", sg.outer, ((2, 3), (4,)), np.outer),
    Case("einsum", "outer-batch", sg.outer, (("n",), (3,)), np.outer),
    Case("einsum", "inner-matrix", sg.inner, ((2, 3), (4, 3)), np.inner),
    Case("einsum", "inner-stack", sg.inner, ((2, 2, 3), (3,)), np.inner),
    Case("einsum", "inner-batch", sg.inner, (("n", 3), (2, 3)), np.inner),
    Case("einsum", "dot-3d", sg.dot, ((2, 3, 4), (5, 4, 2)), np.dot),
    Case("einsum", "dot-3d-vector", sg.dot, ((2, 3, 4), (4,)), np.dot),
    Case("einsum", "dot-vector-3d", sg.dot, ((3,), (2, 3, 4)), np.dot),
    Case("einsum", "dot-batch", sg.dot, (("n", 2, 3), (3, 2)), np.dot),
    Case("reshape", "kron-matrix", sg.kron, ((2, 3), (2, 2)), np.kron),
    Case("reshape", "kron-pad", sg.kron, ((3,), (2, 2)), np.kron),
    Case("einsum", "cross", sg.cross, ((3,), (3,)), np.cross),
    Case("einsum", "cross-batch", sg.cross, (("n", 3), (3,)), np.cross),
    Case("transpose", "cross-axes", lambda a, b: sg.cross(a, b, axisa=0, axisb=1, axisc=0),
         ((3, 2), (2, 3)), lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0)),
    Case("matmul", "stacked-both", lambda a, b: a @ b, ((2, 3, 4), (2, 4, 5)), np.matmul),
    Case("matmul", "batch-both", lambda a, b: a @ b, (("n", 1, 3, 4), (2, 4, 2)), np.matmul),
]
INDEXING_MORE = []          # integer and boolean indexing, take, one_hot, functional updates


def gather_case(label, shape, build, reference):
    """A case of integer-array indexing: the index arrays are NumPy constants of the case."""
    return Case("gather", label, build, (shape,), reference)


def scatter_add_case(label, g_shape, like_shape, index):
    """scatter_add of a cotangent into zeros shaped like ``like`` at ``index`` (a NumPy index
    with integer arrays), its leading extra axes batch axes."""
    def build(g, like):
        arrays, normalized = fancy_index(like, index)
        return apply("scatter_add", g, like, *arrays, index=normalized)

    def reference(g, like):
        batch = g.ndim - np.zeros(like.shape)[index].ndim
        result = np.zeros(g.shape[:batch] + like.shape)
        np.add.at(result, (slice(None),) * batch + index, g)
        return result
    return Case("scatter_add", label, build, (g_shape, like_shape), reference)


REPEATED = np.array([0, 2, 2, -1])
LABELS = np.array([1, 0, 3, 3, 2])
INDEXING_MORE += [
    gather_case("rows-repeated", (4, 3), lambda a: a[REPEATED], lambda a: a[REPEATED]),
    gather_case("labels", (5, 4), lambda a: a[np.arange(5), LABELS],
                lambda a: a[np.arange(5), LABELS]),
    gather_case("columns", (3, 5), lambda a: a[:, np.array([4, 0, 4])],
                lambda a: a[:, np.array([4, 0, 4])]),
    gather_case("matrix-rows-tail", (4, 3), lambda a: a[np.array([[1, 1], [3, 0]]), 1:],
                lambda a: a[np.array([[1, 1], [3, 0]]), 1:]),
    gather_case("int-and-array", (3, 4), lambda a: a[1, np.array([3, 3, 0])],
                lambda a: a[1, np.array([3, 3, 0])]),
    gather_case("non-adjacent", (3, 4, 5), lambda a: a[np.array([0, 2]), :, np.array([1, 1])],
                lambda a: a[np.array([0, 2]), :, np.array([1, 1])]),
    gather_case("list", (4,), lambda a: a[[3, 0, 3]], lambda a: a[[3, 0, 3]]),
    gather_case("batch-columns", ("n", 3), lambda a: a[:, np.array([2, 0, 2, 1])],
                lambda a: a[:, np.array([2, 0, 2, 1])]),
    gather_case("batch-rows", ("n", 3), lambda a: a[np.array([0, 4, 4]), ...],
                lambda a: a[np.array([0, 4, 4]), ...]),
    gather_case("take-flat", (3, 4), lambda a: sg.take(a, np.array([[11, 0], [5, 5]])),
                lambda a: np.take(a, np.array([[11, 0], [5, 5]]))),
    gather_case("take-axis", (3, 4), lambda a: sg.take(a, np.array([3, 1, 1]), axis=-1),
                lambda a: np.take(a, np.array([3, 1, 1]), axis=-1)),
    gather_case("take-batch", ("n", 3), lambda a: sg.take(a, np.array([2, 2]), axis=1),
                lambda a: np.take(a, np.array([2, 2]), axis=1)),
    gather_case("take-along-rows", (3, 4),
                lambda a: sg.take_along_axis(a, np.array([[3, 1], [0, 0], [2, 3]]), axis=1),
                lambda a: np.take_along_axis(a, np.array([[3, 1], [0, 0], [2, 3]]), axis=1)),
    gather_case("take-along-columns", (3, 4),
                lambda a: sg.take_along_axis(a, np.array([[2, 0, 1, 1]] * 2), axis=0),
                lambda a: np.take_along_axis(a, np.array([[2, 0, 1, 1]] * 2), axis=0)),
    gather_case("take-along-batch", ("n", 4),
                lambda a: sg.take_along_axis(a, np.array([[3, 1]]), axis=-1),
                lambda a: np.take_along_axis(a, np.array([[3, 1]]), axis=-1)),
    scatter_add_case("rows-repeated", (4, 3), (4, 3), (REPEATED,)),
    scatter_add_case("labels", (5,), (5, 4), (np.arange(5), LABELS)),
    scatter_add_case("keep", (2, 3, 3), (4, 3), (np.array([0, 2, 2]),)),
    scatter_add_case("non-adjacent", (2, 4), (3, 4, 5), (np.array([0, 2]), slice(None),
                                                        np.array([1, 1]))),
    scatter_add_case("batch", ("n", 3), ("n", 4), (slice(None), np.array([1, 1, 0]))),
    # put_add: a sparse Jacobian's nonzeros added at constant positions (symgrad.sparsity)
    Case("put_add", "repeated", lambda base, values: apply(
        "put_add", base, values, sg.ops.const(np.array([4, 0, 4]), values.graph, dtype="int64")),
         ((6,), (3,)), lambda base, values: base + np.bincount(np.array([4, 0, 4]), values, 6)),
    Case("put_add", "batch", lambda base, values: apply(
        "put_add", base, values, sg.ops.const(np.array([1, 3]), values.graph, dtype="int64")),
         (("n",), (2,)), lambda base, values: base + np.bincount(np.array([1, 3]), values,
                                                                   base.size)),
]

ORDER_STATISTICS = []        # sort, argsort, partition, argmax, argmin, median, quantile


def sorted_gaps(axis):
    """Distances between neighbours in sorted order over ``axis`` (all axes when None): a
    sort's derivative jumps where two entries tie, a quantile's too."""
    def kink(a):
        axes = tuple(range(a.ndim)) if axis is None else tuple(np.atleast_1d(axis) % a.ndim)
        moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
        ordered = np.sort(moved.reshape(moved.shape[:a.ndim - len(axes)] + (-1,)), axis=-1)
        return np.diff(ordered, axis=-1).ravel()
    return kink


def order_case(label, build, shape, reference, axis):
    """A case of a public function of order statistics on one operand, its op read from what
    it builds (median and quantile end in where, reshape or transpose)."""
    with sg.use_graph():
        op = build(sg.var("a", shape=shape)).op
    return Composed(op, label, build, (shape,), reference, (normal,), sorted_gaps(axis))


ORDER_STATISTICS += [
    *[Case("sort", label, lambda a, axis=axis: sg.sort(a, axis=axis), (shape,),
           lambda a, axis=axis: np.sort(a, axis=axis), (normal,), sorted_gaps(axis))
      for label, shape, axis in [("last", (3, 4), -1), ("axis0", (3, 4), 0),
                                 ("flat", (3, 4), None), ("three-axes", (2, 3, 4), 1),
                                 ("batch", ("n", 4), -1), ("over-n", ("n", 3), 0)]],
    *[Case("sort", f"partition-{label}", lambda a, kth=kth, axis=axis:
           sg.partition(a, kth, axis=axis), (shape,),
           lambda a, axis=axis: np.sort(a, axis=axis), (normal,), sorted_gaps(axis))
      for label, shape, kth, axis in [("kth", (3, 5), 2, -1), ("kths", (4, 3), [0, -1], 0),
                                      ("flat", (3, 4), 5, None)]],
    *[Case("argsort", label, lambda a, axis=axis: sg.argsort(a, axis=axis), (shape,),
           lambda a, axis=axis: np.argsort(a, axis=axis, kind="stable"), (integers,))
      for label, shape, axis in [("last", (3, 4), -1), ("axis0", (4, 3), 0),
                                 ("flat", (3, 4), None), ("batch", ("n", 4), -1),
                                 ("over-n", ("n", 3), 0)]],
    *[Case(op, label, lambda a, op=op, axis=axis, keepdims=keepdims:
           getattr(sg, op)(a, axis=axis, keepdims=keepdims), (shape,),
           lambda a, op=op, axis=axis, keepdims=keepdims:
           getattr(np, op)(a, axis=axis, keepdims=keepdims), (integers,))
      for op in ("argmax", "argmin")
      for label, shape, axis, keepdims in [("all", (3, 4), None, False),
                                           ("all-keepdims", (3, 4), None, True),
                                           ("axis1", (3, 4), 1, False),
                                           ("keepdims", (2, 3, 4), 0, True),
                                           ("vector", (5,), 0, False),
                                           ("batch", ("n", 3), -1, False),
                                           ("over-n", ("n", 3), 0, False)]],
    *[order_case(f"median-{label}", lambda a, axis=axis, keepdims=keepdims:
                 sg.median(a, axis=axis, keepdims=keepdims), shape,
                 lambda a, axis=axis, keepdims=keepdims: np.median(a, axis=axis,
                                                                   keepdims=keepdims), axis)
      for label, shape, axis, keepdims in [("odd", (3, 5), 1, False), ("even", (4, 3), 0, False),
                                           ("all", (3, 4), None, False),
                                           ("axes-keepdims", (2, 3, 4), (0, 2), True),
                                           ("batch", ("n", 4), -1, False)]],
    *[order_case(f"quantile-{label}", lambda a, q=q, axis=axis, keepdims=keepdims:
                 sg.quantile(a, q, axis=axis, keepdims=keepdims), shape,
                 lambda a, q=q, axis=axis, keepdims=keepdims: np.quantile(a, q, axis=axis,
                                                                          keepdims=keepdims),
                 axis)
      for label, shape, q, axis, keepdims in [
          ("levels", (3, 5), [0.1, 0.5, 0.75, 1.0], 1, False),
          ("level", (4, 3), 0.3, 0, False),
          ("grid", (6,), np.array([[0.0, 0.2], [0.9, 0.6]]), None, False),
          ("axes-keepdims", (2, 3, 4), [0.25, 0.8], (0, 2), True),
          ("batch", ("n", 4), [0.4, 0.95], -1, False)]],
    *[order_case(f"percentile-{label}", lambda a, q=q, axis=axis:
                 sg.percentile(a, q, axis=axis), shape,
                 lambda a, q=q, axis=axis: np.percentile(a, q, axis=axis), axis)
      for label, shape, q, axis in [("level", (3, 5), 37.5, -1), ("levels", (5,), [10, 90], 0)]],
]


@dataclass(frozen=True)
class NoGradient(Case):
    """A case whose op passes no gradient to its inputs on these operands (a cast into or out
    of bool), though its operand positions are differentiable for other dtypes."""

    @property
    def differentiable(self):
        return []


def sinc_derivative_reference(order):
    """The ``order``-th derivative of sin(pi x) / (pi x) by sympy.diff, evaluated to 40 digits
    (the closed form cancels near 0 in floats)."""
    x = sympy.Symbol("x", real=True)
    derivative = sympy.diff(sympy.sin(sympy.pi * x) / (sympy.pi * x), x, order)
    return np.vectorize(lambda a: float(derivative.evalf(40, subs={x: sympy.Float(a, 40)})))


ROWS_MASK = np.array([True, False, True, True])
GRID_MASK = np.array([[True, False, False, True], [False, False, False, False],
                      [True, True, False, True]])
MISC_MORE = [               # sinc (and its derivatives, one op), casts, boolean masks
    *unary("sinc", sg.sinc, np.sinc, uniform(-1.5, 1.5)),     # both forms of each order
    # the op of order k is the k-th derivative; its own derivatives are the next orders
    Case("sinc", "order-2", lambda a: apply("sinc", a, order=2), (("n", 3),),
         sinc_derivative_reference(2), (uniform(-1.5, 1.5),)),
    # casts into or out of bool: no gradient flows through them (zero, as JAX's); float64 <->
    # float32 in tests/test_sinc_cast_mask.py, where finite differences in float32 are judged
    NoGradient("astype", "mask-matrix", lambda a: (a > 0.0).astype(a.dtype), ((3, 4),),
               lambda a: (a > 0.0).astype(float)),
    NoGradient("astype", "mask-batch", lambda a: (a > 0.0).astype(a.dtype), (("n", 3),),
               lambda a: (a > 0.0).astype(float)),
    NoGradient("astype", "to-bool", lambda a: a.astype(bool), (("n", 3),),
               lambda a: a.astype(bool), (nonzero,)),
    # constant boolean masks: a gather at the mask's True positions (np.nonzero)
    gather_case("mask-rows", (4, 3), lambda a: a[ROWS_MASK], lambda a: a[ROWS_MASK]),
    gather_case("mask-2d", (3, 4), lambda a: a[GRID_MASK], lambda a: a[GRID_MASK]),
    gather_case("mask-batch-columns", ("n", 3), lambda a: a[:, ROWS_MASK[:3]],
                lambda a: a[:, ROWS_MASK[:3]]),
    gather_case("mask-ellipsis", (2, 3, 4), lambda a: a[..., ROWS_MASK],
                lambda a: a[..., ROWS_MASK]),
]

# the exact polynomials higher derivatives are kept as (optimize.compaction): an odd one with
# real roots (written in t * t), a general one, and one with complex roots
POLYNOMIALS = {"odd": ((0, 3, 0, -7, 0, 2), 4), "general": ((3, -2, 0, 5), 2),
               "complex-roots": ((5, 2, 1), 1)}
MISC_MORE += [
    Case("polynomial", f"{label}-{shape_label}",
         lambda a, c=coefficients, d=denominator: sg_polynomial(a, c, d), (shape,),
         lambda a, c=coefficients, d=denominator: np.polynomial.polynomial.polyval(a, c) / d)
    for label, (coefficients, denominator) in POLYNOMIALS.items()
    for shape_label, shape in [("matrix", (3, 4)), ("batch", ("n", 3))]
]


# sg.compress with a constant condition and a named length: the cotangent's u binds "n" (5),
# so every backend's call checks the count; symbolic conditions in tests/test_compress.py
FIVE_OF_SEVEN = np.array([True, False, True, True, False, True, True])


def _compress_grad_reference(g, like, axis):
    out = np.zeros(g.shape[:g.ndim - like.ndim] + like.shape)
    out[(Ellipsis, FIVE_OF_SEVEN) + (slice(None),) * (-axis - 1)] = g
    return out


INDEXING_MORE += [
    Case("compress", "rows", lambda a: sg.compress(FIVE_OF_SEVEN, a, axis=0, length="n"),
         ((7, 3),), lambda a: np.compress(FIVE_OF_SEVEN, a, axis=0)),
    Case("compress", "columns", lambda a: sg.compress(FIVE_OF_SEVEN, a, axis=-1, length="n"),
         ((2, 7),), lambda a: np.compress(FIVE_OF_SEVEN, a, axis=-1)),
    Case("compress", "batch-columns",
         lambda a: sg.compress(FIVE_OF_SEVEN, a, axis=-1, length="n"), (("n", 7),),
         lambda a: np.compress(FIVE_OF_SEVEN, a, axis=-1)),
    Case("compress_grad", "rows",
         lambda g, like: apply("compress_grad", g, like, sg.const(FIVE_OF_SEVEN, g.graph),
                               axis=-2, length="n"),
         (("n", 3), (7, 3)), lambda g, like: _compress_grad_reference(g, like, -2)),
    Case("compress_grad", "batch",
         lambda g, like: apply("compress_grad", g, like, sg.const(FIVE_OF_SEVEN, g.graph),
                               axis=-1, length="n"),
         ((2, "n"), (7,)), lambda g, like: _compress_grad_reference(g, like, -1)),
]


PEER_MORE = [               # NumPy's functions the peer suite (tests/test_peer_suite.py) needs
    shapes_case("reshape", "atleast_1d", sg.atleast_1d, ((),), np.atleast_1d),
    shapes_case("expand_dims", "atleast_2d", sg.atleast_2d, ((3,),), np.atleast_2d),
    shapes_case("expand_dims", "atleast_3d-vector", sg.atleast_3d, ((3,),), np.atleast_3d),
    shapes_case("expand_dims", "atleast_3d-batch", sg.atleast_3d, (("n", 3),), np.atleast_3d),
    shapes_case("transpose", "rollaxis", lambda a: sg.rollaxis(a, 2), ((2, 3, 4),),
                lambda a: np.rollaxis(a, 2)),
    shapes_case("transpose", "rollaxis-batch", lambda a: sg.rollaxis(a, -1, 1), (("n", 3, 4),),
                lambda a: np.rollaxis(a, -1, 1)),
    shapes_case("getitem", "vsplit", lambda a: sg.vsplit(a, [1])[1], ((3, 4),),
                lambda a: np.vsplit(a, [1])[1]),
    shapes_case("getitem", "hsplit-batch", lambda a: sg.hsplit(a, 2)[1], (("n", 4),),
                lambda a: np.hsplit(a, 2)[1]),
    shapes_case("getitem", "dsplit", lambda a: sg.dsplit(a, [1, 3])[1], ((2, 3, 4),),
                lambda a: np.dsplit(a, [1, 3])[1]),
    shapes_case("transpose", "rot90", sg.rot90, ((3, 4),), np.rot90),
    shapes_case("getitem", "rot90-half", lambda a: sg.rot90(a, 2), ((3, 4),),
                lambda a: np.rot90(a, 2)),
    shapes_case("getitem", "rot90-back-batch", lambda a: sg.rot90(a, -1, (1, 2)), (("n", 3, 4),),
                lambda a: np.rot90(a, -1, (1, 2))),
    shapes_case("concatenate", "linspace", lambda a, b: sg.linspace(a, b, 5), ((), ()),
                lambda a, b: np.linspace(a, b, 5)),
    shapes_case("concatenate", "linspace-arrays", lambda a, b: sg.linspace(a, b, 4), ((3,), (3,)),
                lambda a, b: np.linspace(a, b, 4)),
    shapes_case("add", "linspace-open", lambda a, b: sg.linspace(a, b, 4, endpoint=False),
                ((), ()), lambda a, b: np.linspace(a, b, 4, endpoint=False)),
    shapes_case("concatenate", "gradient", sg.gradient, ((6,),), np.gradient),
    shapes_case("concatenate", "gradient-second-order-spaced",
                lambda a: sg.gradient(a, 0.5, axis=1, edge_order=2), ((2, 5),),
                lambda a: np.gradient(a, 0.5, axis=1, edge_order=2)),
    shapes_case("concatenate", "gradient-batch", lambda a: sg.gradient(a, axis=-1), (("n", 3),),
                lambda a: np.gradient(a, axis=-1)),
    shapes_case("multiply", "degrees", np.degrees, ((3,),), np.degrees),
    shapes_case("multiply", "radians-batch", np.radians, (("n",),), np.radians),
    Composed("arctan2", "angle", np.angle, ((3, 4),), np.angle, domains=(nonzero,)),
]


def spd(rng, shape):
    """Symmetric positive-definite matrices in the last two axes, well conditioned."""
    size = shape[-1]
    x = rng.standard_normal(shape)
    return x @ np.swapaxes(x, -1, -2) / size + np.eye(size)


def well_conditioned(rng, shape):
    """Matrices in the last two axes with a dominant diagonal of either sign: invertible, far
    from singular, determinants of either sign."""
    x = rng.uniform(-0.5, 0.5, shape)
    rows = min(shape[-2:])
    signs = rng.choice([-1.0, 1.0], shape[:-2] + (rows,))
    diagonal = np.zeros(shape)
    diagonal[..., range(rows), range(rows)] = signs * (1.0 + 0.5 * max(shape[-2:]))
    return x + diagonal


def symmetrized(a):
    return 0.5 * (a + sg.swapaxes(a, -1, -2))


def triangular_case(label, shapes, **flags):
    return Case("solve_triangular", label,
                lambda a, b: sg.solve_triangular(a, b, **flags), shapes,
                lambda a, b: scipy.linalg.solve_triangular(a, b, **flags),
                (well_conditioned, normal))


LINALG_MORE = [             # solves, inverses, determinants, Cholesky, pseudo-inverse
    # a vector b is solved as a matrix of one column, which is then squeezed away
    *[Case(op, label, sg.solve, shapes, np.linalg.solve, (well_conditioned, normal))
      for op, label, shapes in [("solve", "matrix", ((3, 3), (3, 2))),
                                ("squeeze", "solve-vector", ((3, 3), (3,))),
                                ("solve", "batch", (("n", 3, 3), (3, 2))),
                                ("squeeze", "solve-batch-vector", (("n", 3, 3), (3,))),
                                ("solve", "broadcast-b", ((3, 3), (2, 3, 1)))]],
    *[Case("inv", label, sg.inv, (shape,), np.linalg.inv, (well_conditioned,))
      for label, shape in [("matrix", (3, 3)), ("batch", ("n", 3, 3))]],
    *[Case("det", label, sg.det, (shape,), np.linalg.det, (well_conditioned,))
      for label, shape in [("matrix", (3, 3)), ("batch", ("n", 3, 3))]],
    *[Case("slogdet", label, lambda a: apply("slogdet", a), (shape,),
           lambda a: np.stack(np.linalg.slogdet(a), axis=-1), (well_conditioned,))
      for label, shape in [("matrix", (3, 3)), ("batch", ("n", 3, 3))]],
    # np.linalg.cholesky reads the lower triangle: the gradient is that of a symmetric operand
    *[Case("cholesky", label, lambda a: sg.cholesky(symmetrized(a)), (shape,),
           np.linalg.cholesky, (spd,))
      for label, shape in [("matrix", (3, 3)), ("batch", ("n", 3, 3)), ("one", (1, 1))]],
    Case("transpose", "cholesky-upper", lambda a: sg.cholesky(symmetrized(a), upper=True),
         ((3, 3),), lambda a: np.linalg.cholesky(a, upper=True), (spd,)),
    triangular_case("lower", ((3, 3), (3, 2)), lower=True),
    triangular_case("upper", ((3, 3), (3, 2))),
    triangular_case("transposed", ((3, 3), (3, 2)), trans=1, lower=True),
    triangular_case("unit-diagonal", ((3, 3), (3, 2)), unit_diagonal=True),
    triangular_case("batch", (("n", 3, 3), (3, 2)), lower=True, trans="T"),
    *[Case("pinv", label, sg.pinv, (shape,), np.linalg.pinv, (well_conditioned,))
      for label, shape in [("tall", (4, 3)), ("wide", (2, 4)), ("square", (3, 3)),
                           ("batch", ("n", 4, 2))]],
    *[Case("lstsq_singular_values", label,
           lambda a: apply("lstsq_singular_values", a), (shape,), np.linalg.svdvals)
      for label, shape in [("tall", (4, 3)), ("batch", ("n", 2, 3))]],
]


def _taps(kernel, stride, dilation, lengths):
    """For each kernel offset, the strided slices of an input it meets at ``lengths`` output
    positions along each axis: a direct reference, made without windows."""
    for offset in np.ndindex(*kernel):
        yield offset, tuple(slice(k * d, k * d + (n - 1) * s + 1, s)
                            for k, s, d, n in zip(offset, stride, dilation, lengths))


def _conv_lengths(sizes, kernel, stride, dilation):
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, s, d in zip(sizes, kernel, stride, dilation))


def np_conv(x, w, stride, dilation, groups, padding=0):
    """PyTorch's conv (a correlation), offset by offset: every tap of the filters times the
    strided slice of the zero-padded input it meets."""
    nd = w.ndim - 2
    x = np.pad(x, ((0, 0),) * (x.ndim - nd) + ((padding, padding),) * nd)
    out_channels, per_group, kernel = w.shape[0], w.shape[1], w.shape[2:]
    lengths = _conv_lengths(x.shape[-nd:], kernel, stride, dilation)
    batch, letters = x.shape[:-nd - 1], "xyz"[:nd]
    grouped_x = x.reshape(batch + (groups, per_group) + x.shape[-nd:])
    grouped_w = w.reshape((groups, out_channels // groups, per_group) + kernel)
    out = np.zeros(batch + (groups, out_channels // groups) + lengths)
    for offset, slices in _taps(kernel, stride, dilation, lengths):
        out += np.einsum(f"...gc{letters},goc->...go{letters}", grouped_x[(Ellipsis,) + slices],
                         grouped_w[(Ellipsis,) + offset])
    return out.reshape(batch + (out_channels,) + lengths)


def np_conv_transpose(g, w, stride, dilation, groups, size):
    """The adjoint of np_conv in its input: each tap spreads the cotangent back over its
    slice."""
    nd = len(size)
    out_channels, per_group, kernel = w.shape[0], w.shape[1], w.shape[2:]
    lengths, batch, letters = g.shape[-nd:], g.shape[:-nd - 1], "xyz"[:nd]
    grouped_g = g.reshape(batch + (groups, out_channels // groups) + lengths)
    grouped_w = w.reshape((groups, out_channels // groups, per_group) + kernel)
    out = np.zeros(batch + (groups, per_group) + tuple(size))
    for offset, slices in _taps(kernel, stride, dilation, lengths):
        out[(Ellipsis,) + slices] += np.einsum(f"...go{letters},goc->...gc{letters}", grouped_g,
                                               grouped_w[(Ellipsis,) + offset])
    return out.reshape(batch + (groups * per_group,) + tuple(size))


def np_conv_weight(x, g, stride, dilation, groups, kernel):
    """The adjoint of np_conv in its filters: each tap is the input's slice against the
    cotangent, summed over the batch."""
    nd = len(kernel)
    channels, out_channels = x.shape[-nd - 1], g.shape[-nd - 1]
    lengths, letters = g.shape[-nd:], "xyz"[:nd]
    grouped_x = x.reshape((-1, groups, channels // groups) + x.shape[-nd:])
    grouped_g = g.reshape((-1, groups, out_channels // groups) + lengths)
    out = np.zeros((groups, out_channels // groups, channels // groups) + tuple(kernel))
    for offset, slices in _taps(kernel, stride, dilation, lengths):
        out[(Ellipsis,) + offset] = np.einsum(f"bgc{letters},bgo{letters}->goc",
                                              grouped_x[(Ellipsis,) + slices], grouped_g)
    return out.reshape((out_channels, channels // groups) + tuple(kernel))


def np_windows(x, window, stride, dilation):
    nd = len(window)
    lengths = _conv_lengths(x.shape[-nd:], window, stride, dilation)
    out = np.zeros(x.shape[:-nd] + lengths + tuple(window))
    for offset, slices in _taps(window, stride, dilation, lengths):
        out[(Ellipsis,) + offset] = x[(Ellipsis,) + slices]
    return out


def np_unwindows(g, window, stride, dilation, size):
    nd = len(window)
    out = np.zeros(g.shape[:-2 * nd] + tuple(size))
    for offset, slices in _taps(window, stride, dilation, g.shape[-2 * nd:-nd]):
        out[(Ellipsis,) + slices] += g[(Ellipsis,) + offset]
    return out


def np_pool(x, kernel, stride, padding, reduce, fill):
    nd = len(kernel)
    x = np.pad(x, ((0, 0),) * (x.ndim - nd) + ((padding, padding),) * nd, constant_values=fill)
    windows = np_windows(x, kernel, stride, (1,) * nd)
    return reduce(windows, axis=tuple(range(-nd, 0)))


def window_gaps(kernel, stride, padding):
    """Distances between the two largest entries of each pooling window: max_pool has a tie
    where one vanishes."""
    def kink(x):
        nd = len(kernel)
        padded = np.pad(x, ((0, 0),) * (x.ndim - nd) + ((padding, padding),) * nd,
                        constant_values=-np.inf)
        windows = np_windows(padded, kernel, stride, (1,) * nd)
        ordered = np.sort(windows.reshape(windows.shape[:-nd] + (-1,)), axis=-1)
        return ordered[..., -1] - ordered[..., -2]
    return kink


def conv_case(label, shapes, stride=1, dilation=1, groups=1, padding=0):
    nd = len(shapes[1]) - 2
    per_axis = (lambda v: (v,) * nd if isinstance(v, int) else v)
    return Case("conv", label, lambda x, w: sg.conv(x, w, stride=stride, padding=padding,
                                                     dilation=dilation, groups=groups),
                shapes, lambda x, w: np_conv(x, w, per_axis(stride), per_axis(dilation), groups,
                                             padding))


def adjoint_case(op, label, shapes, reference, **attrs):
    return Case(op, label, lambda a, b: apply(op, a, b, **attrs), shapes,
                lambda a, b: reference(a, b, **attrs))


def window_case(op, label, shape, reference, **attrs):
    return Case(op, label, lambda a: apply(op, a, **attrs), (shape,),
                lambda a: reference(a, **attrs))


def signal_case(op, label, build_function, reference, shapes):
    return Composed(op, label, build_function, shapes, reference)


CONVOLUTION_MORE = [       # convolutions and pooling
    conv_case("1d", ((2, 3, 7), (4, 3, 3))),
    conv_case("2d", ((2, 2, 5, 4), (3, 2, 2, 3))),
    conv_case("2d-stride-dilation", ((1, 2, 7, 6), (2, 2, 2, 2)), stride=(2, 1),
              dilation=(1, 2)),
    conv_case("2d-groups-padding", ((2, 4, 4, 4), (4, 2, 3, 3)), groups=2, padding=1),
    conv_case("3d", ((1, 1, 3, 4, 3), (2, 1, 2, 2, 2))),
    conv_case("unbatched-stride", ((2, 6), (2, 2, 3)), stride=2),
    conv_case("batch-same", (("n", 2, 5), (3, 2, 3)), padding=1),
    conv_case("batch-groups", (("n", 3, 6), (3, 1, 2)), groups=3, dilation=2),
    Composed("add", "conv-bias", lambda x, w, b: sg.conv(x, w, b), ((2, 2, 4, 4), (3, 2, 3, 3),
                                                                     (3,)),
             lambda x, w, b: np_conv(x, w, (1, 1), (1, 1), 1) + b[:, None, None]),
    adjoint_case("conv_transpose", "2d", ((2, 3, 3, 2), (3, 2, 2, 3)), np_conv_transpose,
                 stride=(1, 1), dilation=(1, 1), groups=1, size=(4, 4)),
    adjoint_case("conv_transpose", "stride-dilation-groups", ((2, 4, 3, 2), (4, 1, 2, 2)),
                 np_conv_transpose, stride=(2, 2), dilation=(1, 2), groups=2, size=(6, 5)),
    adjoint_case("conv_transpose", "batch", (("n", 2, 4), (2, 3, 2)), np_conv_transpose,
                 stride=(2,), dilation=(1,), groups=1, size=(9,)),
    adjoint_case("conv_weight", "2d", ((2, 2, 5, 4), (2, 3, 4, 2)), np_conv_weight,
                 stride=(1, 1), dilation=(1, 1), groups=1, kernel=(2, 3)),
    adjoint_case("conv_weight", "groups-stride", ((1, 4, 6, 5), (1, 2, 3, 2)), np_conv_weight,
                 stride=(2, 2), dilation=(1, 2), groups=2, kernel=(2, 2)),
    adjoint_case("conv_weight", "batch", (("n", 2, 6), ("n", 3, 4)), np_conv_weight,
                 stride=(1,), dilation=(1,), groups=1, kernel=(3,)),
    window_case("windows", "2d", (2, 5, 6), np_windows, window=(2, 3), stride=(1, 2),
                dilation=(2, 1)),
    window_case("windows", "batch", ("n", 7), np_windows, window=(3,), stride=(2,),
                dilation=(1,)),
    window_case("unwindows", "2d", (2, 3, 2, 2, 3), np_unwindows, window=(2, 3), stride=(1, 2),
                dilation=(2, 1), size=(5, 6)),
    window_case("unwindows", "batch", ("n", 3, 3), np_unwindows, window=(3,), stride=(2,),
                dilation=(1,), size=(7,)),
    *[Composed("max", f"max_pool-{label}", lambda x, k=kernel, s=stride, p=padding:
               sg.max_pool(x, k, stride=s, padding=p), (shape,),
               lambda x, k=kernel, s=stride, p=padding:
               np_pool(x, k, s or k, p, np.max, -np.inf), (normal,),
               window_gaps(kernel, stride or kernel, padding))
      for label, shape, kernel, stride, padding in [
          ("2d", (2, 2, 4, 6), (2, 2), None, 0),
          ("stride-padding", (1, 2, 5, 5), (3, 3), (2, 2), 1),
          ("batch", ("n", 2, 6), (3,), (2,), 0)]],
    *[Composed("mean", f"avg_pool-{label}", lambda x, k=kernel, s=stride, p=padding:
               sg.avg_pool(x, k, stride=s, padding=p), (shape,),
               lambda x, k=kernel, s=stride, p=padding:
               np_pool(x, k, s or k, p, np.mean, 0.0))
      for label, shape, kernel, stride, padding in [
          ("2d", (2, 2, 4, 4), (2, 2), None, 0),
          ("stride-padding", (1, 2, 5, 5), (3, 3), (2, 2), 1),
          ("batch", ("n", 2, 7), (3,), (2,), 0)]],
    signal_case("reshape", "np-convolve-full", lambda a, v: np.convolve(a, v), np.convolve,
                ((5,), (3,))),
    signal_case("reshape", "np-convolve-same-swapped", lambda a, v: np.convolve(a, v, "same"),
                lambda a, v: np.convolve(a, v, "same"), ((3,), (5,))),
    signal_case("reshape", "np-correlate-valid", lambda a, v: np.correlate(a, v), np.correlate,
                ((6,), (3,))),
    signal_case("getitem", "np-correlate-full-swapped",
                lambda a, v: np.correlate(a, v, "full"),
                lambda a, v: np.correlate(a, v, "full"), ((2,), (4,))),
    signal_case("reshape", "convolve2d-same",
                lambda a, v: sg_signal.convolve2d(a, v, "same"),
                lambda a, v: scipy.signal.convolve2d(a, v, "same"), ((4, 5), (2, 3))),
    signal_case("getitem", "correlate2d-valid-swapped",
                lambda a, v: sg_signal.correlate2d(a, v, "valid"),
                lambda a, v: scipy.signal.correlate2d(a, v, "valid"), ((2, 3), (4, 5))),
    signal_case("reshape", "correlate2d-wrap",
                lambda a, v: sg_signal.correlate2d(a, v, boundary="wrap"),
                lambda a, v: scipy.signal.correlate2d(a, v, boundary="wrap"), ((3, 4), (2, 2))),
    signal_case("reshape", "convolve-3d-same",
                lambda a, v: sg_signal.convolve(a, v, "same"),
                lambda a, v: scipy.signal.convolve(a, v, "same"), ((3, 4, 3), (2, 2, 2))),
]


def away_from_integers(a):
    """Distances to the poles of the gamma family (and the jumps of gammasgn)."""
    return a - np.round(a)


SPECIAL_MORE = [            # issue 19: SciPy's special functions (their shape parameters constant)
    *unary("gammaln", sg.gammaln, scipy.special.gammaln, positive),
    Case("gammaln", "negative", sg.gammaln, ((3, 4),), scipy.special.gammaln,
         (uniform(-2.8, -2.2),), away_from_integers),
    *unary("digamma", sg.digamma, scipy.special.digamma, positive),
    Case("digamma", "negative", sg.digamma, ((3, 4),), scipy.special.digamma,
         (uniform(-1.8, -1.2),), away_from_integers),
    *unary("polygamma", lambda a: sg.polygamma(1, a), lambda a: scipy.special.polygamma(1, a),
           positive),
    Case("polygamma", "order-3", lambda a: sg.polygamma(3, a), ((3, 4),),
         lambda a: scipy.special.polygamma(3, a), (uniform(1.0, 3.0),)),
    *binary("betaln", sg.betaln, scipy.special.betaln, (positive, positive)),
    *unary("gamma", sg.gamma, scipy.special.gamma, uniform(0.5, 3.0)),
    Case("gamma", "negative", sg.gamma, ((3, 4),), scipy.special.gamma, (uniform(-1.8, -1.2),),
         away_from_integers),
    *unary("rgamma", sg.rgamma, scipy.special.rgamma, uniform(0.3, 3.0)),
    Case("rgamma", "negative", sg.rgamma, ((3, 4),), scipy.special.rgamma,
         (uniform(-2.8, -2.2),), away_from_integers),
    *binary("beta", sg.beta, scipy.special.beta, (positive, positive)),
    *unary("gammasgn", sg.gammasgn, scipy.special.gammasgn, uniform(-3.9, 3.9),
           away_from_integers),
    *unary("erfinv", sg.erfinv, scipy.special.erfinv, uniform(-0.9, 0.9)),
    *unary("erfcinv", sg.erfcinv, scipy.special.erfcinv, uniform(0.1, 1.9)),
    *unary("erfcx", sg.erfcx, scipy.special.erfcx),
    *unary("ndtr", sg.ndtr, scipy.special.ndtr),
    *unary("ndtri", sg.ndtri, scipy.special.ndtri, uniform(0.05, 0.95)),
    *unary("log_ndtr", sg.log_ndtr, scipy.special.log_ndtr, uniform(-8.0, 4.0)),
    *binary("xlog1py", sg.xlog1py, scipy.special.xlog1py, (normal, uniform(-0.5, 2.0))),
    *unary("gammainc", lambda a: sg.gammainc(2.5, a), lambda a: scipy.special.gammainc(2.5, a),
           positive),
    *unary("gammaincc", lambda a: sg.gammaincc(2.5, a), lambda a: scipy.special.gammaincc(2.5, a),
           positive),
    *unary("betainc", lambda a: sg.betainc(2.0, 3.5, a),
           lambda a: scipy.special.betainc(2.0, 3.5, a), uniform(0.05, 0.95)),
    *unary("stdtr", lambda a: sg.stdtr(3.5, a), lambda a: scipy.special.stdtr(3.5, a)),
    *unary("j0", sg.j0, scipy.special.j0, uniform(0.5, 8.0)),
    *unary("j1", sg.j1, scipy.special.j1, uniform(0.5, 8.0)),
    *unary("jv", lambda a: sg.jv(2.5, a), lambda a: scipy.special.jv(2.5, a), uniform(0.5, 8.0)),
    Case("jv", "integer-order", lambda a: sg.jn(3, a), ((3, 4),),
         lambda a: scipy.special.jn(3, a), (uniform(-8.0, 8.0),)),
    *unary("y0", sg.y0, scipy.special.y0, uniform(0.5, 8.0)),
    *unary("y1", sg.y1, scipy.special.y1, uniform(0.5, 8.0)),
    *unary("yn", lambda a: sg.yn(3, a), lambda a: scipy.special.yn(3, a), uniform(1.0, 8.0)),
    *unary("i0", sg.i0, scipy.special.i0),
    *unary("i1", sg.i1, scipy.special.i1),
    *unary("iv", lambda a: sg.iv(1.5, a), lambda a: scipy.special.iv(1.5, a), positive),
    # the exponentially scaled ones have the kink of exp(-|x|) at 0
    *unary("i0e", sg.i0e, scipy.special.i0e, nonzero),
    *unary("i1e", sg.i1e, scipy.special.i1e, nonzero),
    *unary("ive", lambda a: sg.ive(2.0, a), lambda a: scipy.special.ive(2.0, a), nonzero),
]


# -- decompositions: eigh, svd, qr, expm, the norms of singular values -----------------------------
#
# Each packed op has a case of its own result (LAPACK's signs are constant near a point, so central
# differences of the raw factors agree with the rule); the public functions are checked through
# functions that do not depend on the signs. eigh's input is made symmetric in the graph: its
# rule gives the symmetric gradient, which is the one of a function of a + aᵀ.


def symmetric(a):
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def symmetric_expr(a):
    return 0.5 * (a + sg.swapaxes(a, -1, -2))


def spread_diagonal(rng, shape):
    """Matrices whose symmetric part has eigenvalues about 2 apart."""
    return rng.standard_normal(shape) + np.diag(2.0 * np.arange(shape[-1]))


def eigen_gaps(a):
    return np.diff(np.linalg.eigvalsh(symmetric(a)), axis=-1)


def singular_gaps(a):
    """The singular values' gaps and the smallest one: the rules divide by both."""
    s = np.linalg.svd(a, compute_uv=False)
    return np.concatenate([np.diff(s, axis=-1).ravel(), s[..., -1].ravel()])


def r_diagonal(a):
    return np.diagonal(np.linalg.qr(a)[1], axis1=-2, axis2=-1)


def packed_eigh(a):
    w, v = np.linalg.eigh(symmetric(a))
    return np.concatenate([w[..., None, :], v], axis=-2)


def packed_svd(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return np.concatenate([np.swapaxes(u, -1, -2), s[..., None], vh], axis=-1)


def packed_qr(a):
    q, r = np.linalg.qr(a)
    return np.concatenate([q, r, np.linalg.inv(r)], axis=-2)


def decomposition_case(op, label, build, shapes, reference, domain=normal, kink=None):
    return Composed(op, label, build, shapes, reference, (domain,) * len(shapes), kink)


def _scan_step(c, x, w):
    """A loop's step for the cases of scan: a carry mixed with a row of the scanned array."""
    return np.sin(c) * x + w * c, c * x


def _scan_reference(result):
    def reference(xs, init, w):
        carry, ys = init, []
        for x in xs:
            carry, y = _scan_step(carry, x, w)
            ys.append(y)
        return carry if result == "final" else np.stack(ys)
    return reference


def _scan_case(result, label, shapes):
    def build(xs, init, w):
        final, ys = sg.scan(lambda c, x: (sg.sin(c) * x + w * c, c * x), init, xs)
        return final if result == "final" else ys
    return Case("scan", f"{result}-{label}", build, shapes, _scan_reference(result))


LOOPS = [*[_scan_case(result, label, shapes) for result in ("final", "stacked")
           for label, shapes in [("rows", ((4, 3), (3,), (3,))),
                                 ("batch", (("n", 2), (2,), ())),
                                 ("matrices", ((3, 2, 2), (2, 2), (2, 1)))]]]


DECOMPOSITIONS_MORE = [     # eigh, svd, qr, expm and the norms of singular values
    *[decomposition_case("eigh", f"packed-{label}",
                         lambda a: apply("eigh", symmetric_expr(a), UPLO="L"), (shape,),
                         packed_eigh, spread_diagonal, eigen_gaps)
      for label, shape in [("3", (3, 3)), ("batch", ("n", 3, 3))]],
    *[decomposition_case("eigvalsh", label, lambda a: sg.eigvalsh(symmetric_expr(a)),
                         (shape,), lambda a: np.linalg.eigvalsh(symmetric(a)),
                         spread_diagonal, eigen_gaps)
      for label, shape in [("4", (4, 4)), ("batch", ("n", 2, 2))]],
    decomposition_case("multiply", "eigh-squares",
                       lambda a: sg.eigh(symmetric_expr(a), UPLO="U")[1] ** 2 * a,
                       ((3, 3),), lambda a: np.linalg.eigh(symmetric(a))[1] ** 2 * a,
                       spread_diagonal, eigen_gaps),
    *[decomposition_case("svd", f"packed-{label}", lambda a: apply("svd", a), (shape,),
                         packed_svd, normal, singular_gaps)
      for label, shape in [("square", (3, 3)), ("tall", (4, 3)), ("wide", (2, 4)),
                           ("batch", ("n", 3, 2))]],
    *[decomposition_case("matmul", f"svd-product-{label}",
                         lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ (vh * vh))(
                             *sg.svd(a, full_matrices=False)),
                         (shape,),
                         lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ (vh * vh))(
                             *np.linalg.svd(a, full_matrices=False)),
                         normal, singular_gaps)
      for label, shape in [("tall", (4, 3)), ("wide", (3, 4))]],
    *[decomposition_case("svdvals", label, sg.svdvals, (shape,), np.linalg.svdvals, normal,
                         singular_gaps)
      for label, shape in [("stack", (2, 4, 3)), ("batch", ("n", 2, 3))]],
    *[decomposition_case("qr", f"packed-{label}", lambda a: apply("qr", a), (shape,), packed_qr,
                         normal, r_diagonal)
      for label, shape in [("square", (3, 3)), ("tall", (4, 2)), ("batch", ("n", 3, 2))]],
    *[decomposition_case("absolute", f"qr-{label}",
                         lambda a, axis=axis: abs(sg.concatenate(list(sg.qr(a)), axis=axis)),
                         (shape,),
                         lambda a, axis=axis: np.abs(np.concatenate(np.linalg.qr(a), axis=axis)),
                         normal, r_diagonal)
      for label, shape, axis in [("tall", (4, 3), -2), ("wide", (2, 3), -1)]],
    decomposition_case("power", "qr-r", lambda a: sg.qr(a, mode="r") ** 2, ((3, 2),),
                       lambda a: np.linalg.qr(a, mode="r") ** 2, normal, r_diagonal),
    *[decomposition_case("expm", label, sg.expm, (shape,), scipy.linalg.expm, uniform(-0.8, 0.8))
      for label, shape in [("3", (3, 3)), ("batch", ("n", 2, 2))]],
    *[decomposition_case("squeeze", f"norm-{order}", lambda a, order=order: sg.norm(a, ord=order),
                         ((4, 3),), lambda a, order=order: np.linalg.norm(a, ord=order), normal,
                         singular_gaps)
      for order in (2, -2, "nuc")],
    decomposition_case("squeeze", "norm-axes", lambda a: sg.norm(a, ord="nuc", axis=(2, 0)),
                       ((3, 2, 2),), lambda a: np.linalg.norm(a, ord="nuc", axis=(2, 0)), normal,
                       lambda a: singular_gaps(np.moveaxis(a, (2, 0), (-2, -1)))),
]

CASES = [
    # element-wise functions
    *unary("sin", sg.sin, np.sin),
    *unary("cos", sg.cos, np.cos),
    *unary("tan", sg.tan, np.tan, uniform(-1.2, 1.2)),
    *unary("exp", sg.exp, np.exp),
    *unary("log", sg.log, np.log, positive),
    *unary("log1p", sg.log1p, np.log1p, uniform(-0.5, 2.0)),
    *unary("expm1", sg.expm1, np.expm1),
    *unary("sqrt", sg.sqrt, np.sqrt, positive),
    *unary("tanh", sg.tanh, np.tanh),
    *unary("sign", sg.sign, np.sign, kink=itself),
    *unary("absolute", abs, np.abs, kink=itself),
    *unary("negative", lambda a: -a, np.negative),
    *unary("heaviside", heaviside, lambda a: np.heaviside(a, 0.5), kink=itself),
    *unary("sigmoid", sg.sigmoid, lambda a: 1.0 / (1.0 + np.exp(-a)), uniform(-4.0, 4.0)),
    *unary("softplus", sg.softplus, lambda a: np.log1p(np.exp(a)), uniform(-4.0, 4.0)),
    *unary("relu", sg.relu, lambda a: np.maximum(a, 0.0), kink=itself),
    *unary("leaky_relu", lambda a: sg.leaky_relu(a, alpha=ALPHA),
           lambda a: np.where(a > 0, a, ALPHA * a), kink=itself),
    # binary arithmetic, with broadcasting
    *binary("add", lambda a, b: a + b, np.add),
    *binary("subtract", lambda a, b: a - b, np.subtract),
    *binary("multiply", lambda a, b: a * b, np.multiply),
    *binary("divide", lambda a, b: a / b, np.divide, (normal, nonzero)),
    *binary("power", lambda a, b: a ** b, np.power, (positive, normal)),
    *binary("maximum", sg.maximum, np.maximum, kink=difference),
    *binary("minimum", sg.minimum, np.minimum, kink=difference),
    # comparisons and selection
    *[case for name, build, reference in [
        ("less", lambda a, b: a < b, np.less),
        ("less_equal", lambda a, b: a <= b, np.less_equal),
        ("greater", lambda a, b: a > b, np.greater),
        ("greater_equal", lambda a, b: a >= b, np.greater_equal),
        ("equal", lambda a, b: a == b, np.equal),
        ("not_equal", lambda a, b: a != b, np.not_equal)]
      for case in binary(name, build, reference, (integers, integers),
                         shapes=[BINARY_SHAPES[1], BINARY_SHAPES[3]])],
    *[Case("where", label, lambda c, a, b: sg.where(c > 0, a, b), shapes,
           lambda c, a, b: np.where(c > 0, a, b), kink=lambda c, a, b: c)
      for label, shapes in [("same", ((3, 4), (3, 4), (3, 4))),
                            ("broadcast", ((3, 1), (4,), ())),
                            ("batch", (("n", 1), ("n", 4), (4,)))]],
    # reductions
    *reductions("sum", sg.sum, np.sum),
    *reductions("mean", sg.mean, np.mean),
    *reductions("max", sg.max, np.max, kink=first_two_gap),
    *reductions("min", sg.min, np.min, kink=first_two_gap),
    *[reduction("logsumexp", label, shape, sg.logsumexp, np_logsumexp, axis, keepdims)
      for label, shape, axis, keepdims in [("all", (3, 4), None, False),
                                           ("axis1-keepdims", (3, 4), 1, True),
                                           ("batch", ("n", 3), -1, False),
                                           ("over-n", ("n", 3), 0, False)]],
    *normalisers("softmax", sg.softmax, np_softmax),
    *normalisers("log_softmax", sg.log_softmax, lambda a, axis: np.log(np_softmax(a, axis))),
    Case("axis_size", "static", lambda a: apply("axis_size", a, axis=(-1,)), ((3, 4),),
         lambda a: np.float64(a.shape[-1])),
    Case("axis_size", "batch", lambda a: apply("axis_size", a, axis=(-3, -1)), (("n", 3, 2),),
         lambda a: np.float64(a.shape[0] * a.shape[2])),
    # moving, replicating and selecting entries
    Case("broadcast_to_like", "rows", lambda a, b: apply("broadcast_to_like", a, b),
         ((3, 1), (2, 3, 4)), np_broadcast_to_like),
    Case("broadcast_to_like", "scalar", lambda a, b: apply("broadcast_to_like", a, b),
         ((), (3,)), np_broadcast_to_like),
    Case("broadcast_to_like", "batch", lambda a, b: apply("broadcast_to_like", a, b),
         ((4,), ("n", 4)), np_broadcast_to_like),
    Case("broadcast_to_like", "batch-rows", lambda a, b: apply("broadcast_to_like", a, b),
         (("n", 1), (3,)), np_broadcast_to_like),
    Case("expand_dims", "front", lambda a: expand_dims(a, 0), ((3, 4),),
         lambda a: np.expand_dims(a, 0)),
    Case("expand_dims", "batch", lambda a: expand_dims(a, (0, -1)), (("n", 3),),
         lambda a: np.expand_dims(a, (0, -1))),
    Case("squeeze", "middle", lambda a: squeeze(a, 1), ((3, 1, 4),), lambda a: np.squeeze(a, 1)),
    Case("squeeze", "two", lambda a: squeeze(a, (0, 2)), ((1, 3, 1),),
         lambda a: np.squeeze(a, (0, 2))),
    Case("squeeze", "batch", lambda a: squeeze(a, -1), (("n", 1),), lambda a: np.squeeze(a, -1)),
    Case("reshape", "matrix", lambda a: sg.reshape(a, (2, 6)), ((3, 4),),
         lambda a: a.reshape(2, 6)),
    Case("reshape", "infer", lambda a: a.reshape((6, -1)), ((2, 3, 4),),
         lambda a: a.reshape(6, -1)),
    Case("reshape", "batch-merge", lambda a: a.reshape(("n", 6)), (("n", 3, 2),),
         lambda a: a.reshape(a.shape[0], 6)),
    Case("reshape", "batch-split", lambda a: a.reshape(("n", 2, 3)), (("n", 6),),
         lambda a: a.reshape(a.shape[0], 2, 3)),
    reshape_like_case("static", (3, 4), (2, 6)),
    reshape_like_case("keep", (2, 3, 4), (12,), keep=1),
    reshape_like_case("batch", ("n", 6), ("n", 2, 3)),
    Case("transpose", "matrix", lambda a: a.T, ((3, 4),), lambda a: a.T),
    Case("transpose", "cycle", lambda a: sg.transpose(a, (1, 2, 0)), ((2, 3, 4),),
         lambda a: np.transpose(a, (1, 2, 0))),
    Case("transpose", "batch", lambda a: a.T, (("n", 3),), lambda a: a.T),
    Case("transpose", "batch-last", lambda a: sg.transpose(a, (0, 2, 1)), (("n", 2, 3),),
         lambda a: np.transpose(a, (0, 2, 1))),
    getitem_case("tail", (4, 3), slice(1, None)),
    getitem_case("column", (3, 4), (slice(None), 0)),
    getitem_case("newaxis-step", (5, 3), (None, slice(None, None, 2))),
    getitem_case("int-slice", (3, 4), (-1, slice(1, 3))),
    getitem_case("batch-ellipsis", ("n", 3), (Ellipsis, 1)),
    getitem_case("batch-reverse", ("n", 3), (slice(None, None, -1), None)),
    getitem_case("batch-columns", ("n", 3), (slice(None), slice(1, None))),
    getitem_case("batch-int", ("n", 3), 0),
    index_grad_case("column", (3,), (3, 4), (slice(None), 1)),
    index_grad_case("tail", (3, 3), (4, 3), (slice(1, None),)),
    index_grad_case("keep", (2, 3), (3, 4), (slice(None), 1), keep=1),
    index_grad_case("keep-tail", (2, 3, 3), (4, 3), (slice(1, None),), keep=1),
    index_grad_case("batch", ("n",), ("n", 3), (slice(None), 0)),
    index_add_case("tail", (4, 3), (3, 3), (slice(1, None),)),
    index_add_case("column", (3, 4), (3,), (slice(None), 1)),
    index_add_case("keep", (2, 3, 4), (2, 3), (slice(None), 1), keep=1),
    index_add_case("batch", ("n", 3), ("n",), (slice(None), 0)),
    concatenate_case("rows", ((2, 3), (4, 3)), 0),
    concatenate_case("three", ((2, 1), (2, 2), (2, 3)), 1),
    concatenate_case("batch", (("n", 2), ("n", 3)), -1),
    Case("zeros_like", "matrix", lambda a: apply("zeros_like", a), ((3, 4),), np.zeros_like),
    Case("zeros_like", "batch", lambda a: apply("zeros_like", a), (("n", 3),), np.zeros_like),
    Case("identity_like", "matrix", lambda a: apply("identity_like", a), ((2, 3),),
         lambda a: np.eye(a.size).reshape(a.shape * 2)),
    Case("identity_like", "batch", lambda a: apply("identity_like", a), (("n", 3),),
         lambda a: np.eye(a.size).reshape(a.shape * 2)),
    Case("stop_gradient", "matrix", sg.stop_gradient, ((3, 4),), np.copy),
    Case("stop_gradient", "batch", sg.stop_gradient, (("n", 3),), np.copy),
    # matrix products
    *[Case("matmul", label, lambda a, b: a @ b, shapes, np.matmul)
      for label, shapes in [("matrix", ((3, 4), (4, 2))), ("vector-matrix", ((4,), (4, 2))),
                            ("matrix-vector", ((3, 4), (4,))), ("vector-vector", ((4,), (4,))),
                            ("stacked", ((2, 3, 4), (4, 5))),
                            ("broadcast-batch", ((2, 1, 3, 4), (5, 4, 2))),
                            ("batch", (("n", 4), (4, 3))),
                            ("contract-n", ((2, "n"), ("n", 3)))]],
    Case("matmul", "dot", sg.dot, ((3, 4), (4,)), np.dot),
    Case("inner", "matrix", lambda a, b: apply("inner", a, b), ((3, 4), (3, 4)), np.vdot),
    Case("inner", "batch", lambda a, b: apply("inner", a, b), (("n", 3), ("n", 3)), np.vdot),
    *ELEMENTWISE_MORE, *REDUCTIONS_MORE, *SHAPES_MORE, *CONTRACTIONS_MORE, *INDEXING_MORE,
    *ORDER_STATISTICS,
    *MISC_MORE,
    *PEER_MORE,
    *LINALG_MORE,
    *CONVOLUTION_MORE,
    *SPECIAL_MORE,
    *DECOMPOSITIONS_MORE,
    *LOOPS,
]

def derived_cases(name):
    """Cases for op ``name`` when CASES has none and its record says enough: a public op of one
    operand (defop's ``public``) that keeps its operand's shape and has a Python-float form,
    which is the reference, entry by entry, for its NumPy form; its kinks are kept away from 0.
    None otherwise."""
    op = sg.OPS[name]
    function = next((p.function for p in sg.PUBLIC.values() if p.op == name), None)
    if function is None or op.arity != 1 or op.emit.scalar is None:
        return None
    try:
        if op.shape([(3, 4)]) != (3, 4):
            return None
    except (TypeError, sg.ShapeError):      # a shape rule that needs attributes, or refuses
        return None

    def scalar_reference(a):
        with sg.use_graph():
            v = sg.var("v")
            on_floats = sg.compile(function(v), inputs=[v])
        return np.vectorize(lambda entry: float(on_floats(float(entry))))(a)
    return unary(name, function, scalar_reference, kink=itself)


def op_cases():
    """Every case: those CASES lists, and those derived_cases gives for each other op."""
    listed = {case.op for case in CASES}
    derived = [derived_cases(name) for name in sg.OPS if name not in listed]
    return [*CASES, *(case for made in derived if made for case in made)]


CASES_BY_OP = {}
for _case in op_cases():
    CASES_BY_OP.setdefault(_case.op, []).append(_case)


def cases(where=lambda case: True):
    """Parametrize a test over the cases (op_cases) ``where`` selects."""
    def decorate(test):
        params = []
        for case in op_cases():
            if not where(case):
                continue
            params.append(pytest.param(case, id=case.id))
        return pytest.mark.parametrize("case", params)(test)
    return decorate


# Ops with no SymPy check, and why; every other op has a SymPy form (Op.sympy) and is checked.
NO_SYMPY = {
    **dict.fromkeys(["sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax",
                     "axis_size"], "reduces over an axis"),
    **dict.fromkeys(["broadcast_to_like", "expand_dims", "squeeze", "reshape", "reshape_like",
                     "transpose", "getitem", "index_grad", "index_add", "concatenate", "matmul",
                     "inner"],
                    "moves or contracts axes of an array"),
    **dict.fromkeys(["zeros_like", "identity_like"], "a constant: its operand only lends a shape"),
    "stop_gradient": "its derivative is zero by design, unlike the function it computes",
    "round": "SymPy has no element-wise rounding to even (Python's round needs a number)",
    **dict.fromkeys(["floor", "ceil", "trunc", "remainder", "fmod"],
                    "sympy.diff leaves the derivative of floor unevaluated (a step function)"),
    "einsum": "contracts axes of arrays",
    **dict.fromkeys(["prod", "variance", "std", "cumsum", "cumprod", "weighted_logsumexp",
                     "norm"],
                    "reduces or scans over an axis"),
    **dict.fromkeys(["roll", "broadcast_to"], "moves or replicates entries of an array"),
}
NO_SYMPY.update(dict.fromkeys(["gather", "scatter_add"], "moves entries of an array by an index"))
NO_SYMPY["put_add"] = "adds into entries of a 1-D array by an index"
NO_SYMPY.update(dict.fromkeys(["sort", "argsort", "argmax", "argmin"],
                              "orders or searches entries along an axis"))
NO_SYMPY["astype"] = "changes the dtype only: SymPy's numbers have none"
NO_SYMPY.update(dict.fromkeys(["solve", "inv", "det", "slogdet", "cholesky", "solve_triangular",
                               "pinv", "lstsq_singular_values"], "a function of whole matrices"))
NO_SYMPY.update(dict.fromkeys(["conv", "conv_transpose", "conv_weight"],
                             "contracts windows of arrays"))
NO_SYMPY.update(dict.fromkeys(["windows", "unwindows"], "moves entries of an array into windows"))
NO_SYMPY["gammasgn"] = "a step at each pole: sympy.diff of sign(gamma(x)) does not evaluate"
NO_SYMPY.update(dict.fromkeys(["eigh", "eigvalsh", "svd", "svdvals", "qr", "expm"],
                              "a function of a matrix"))
NO_SYMPY.update(dict.fromkeys(["compress", "compress_grad"],
                              "selects entries of an array along an axis by a mask"))
NO_SYMPY["scan"] = "a loop over the first axis of arrays"


def sympy_checked():
    """The ops whose derivatives are checked against sympy.diff: those with a SymPy form that
    NO_SYMPY does not exempt."""
    return sorted(name for name, op in sg.OPS.items()
                  if op.sympy is not None and name not in NO_SYMPY)


# -- helpers ---------------------------------------------------------------------------------------


def concrete(shape):
    return tuple(DIMS.get(d, d) for d in shape)


def sample(case, seed=0):
    """Random inputs from the case's domains, away from its kinks; fixed per case."""
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), seed])
    domains = case.domains or (normal,) * len(case.shapes)
    for _ in range(1000):
        arrays = [np.asarray(domain(rng, concrete(shape)), dtype=np.float64)
                  for domain, shape in zip(domains, case.shapes)]
        if case.kink is None or np.min(np.abs(case.kink(*arrays)), initial=np.inf) > MARGIN:
            return arrays, rng
    raise AssertionError(f"{case.id}: could not sample away from the kinks")


def build(case):
    inputs = [sg.var(name, shape=shape) for name, shape in zip(NAMES, case.shapes)]
    return inputs, case.build(*inputs)


def central_difference(f, args, position, direction=None):
    """d f(args) / d args[position] by central differences: the whole gradient array, or with
    ``direction`` (one array per argument) the derivative along it (f may return several arrays)."""
    if direction is not None:
        plus = [a + EPS * d for a, d in zip(args, direction)]
        minus = [a - EPS * d for a, d in zip(args, direction)]
        return [(p - m) / (2 * EPS) for p, m in zip(f(*plus), f(*minus))]
    x = args[position]
    gradient = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        step = np.zeros(x.shape)
        step[index] = EPS
        plus, minus = list(args), list(args)
        plus[position], minus[position] = x + step, x - step
        gradient[index] = (f(*plus) - f(*minus)) / (2 * EPS)
    return gradient


# -- the table covers every op ---------------------------------------------------------------------


# Ops whose derivative rule is supplied by the user, tested with the rules users give them.
USER_RULES = {"custom_gradient": "tests/test_custom_rules.py"}
# Ops whose result is no array but a compiled function's result of its own, tested there.
RESULTS_ONLY = {"csr_matrix": "tests/test_sparse.py: a SciPy CSR matrix, with no gradient",
                "identity": "tests/test_dense_seed.py: no operand, so no case with the dimension "
                            "'n' (identity_like has them) and nothing to differentiate"}


def test_every_op_has_a_case():
    missing = set(sg.OPS) - LEAVES - set(USER_RULES) - set(RESULTS_ONLY) - set(CASES_BY_OP)
    assert not missing, f"ops with no entry in CASES: {sorted(missing)}"
    assert not set(CASES_BY_OP) - set(sg.OPS), "CASES names ops that do not exist"


def test_every_op_has_a_case_with_a_symbolic_dimension():
    missing = [op for op, op_cases in CASES_BY_OP.items()
               if not any(case.symbolic for case in op_cases)]
    assert not missing, f"ops with no case using the dimension 'n': {missing}"


def test_every_op_is_checked_against_sympy_or_says_why():
    ops = set(sg.OPS) - LEAVES - set(USER_RULES) - set(RESULTS_ONLY)
    assert set(sympy_checked()) | set(NO_SYMPY) == ops, \
        f"give these ops a SymPy form (defop's sympy=) or say in NO_SYMPY why they have none: " \
        f"{sorted(ops - set(sympy_checked()) - set(NO_SYMPY))}"


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


# -- per case: shape rule, emitted code, first and second derivatives ------------------------------


@cases()
def test_shape_rule_matches_numpy(case):
    arrays, _ = sample(case)
    _, out = build(case)
    expected = np.asarray(case.reference(*arrays))
    assert out.op == case.op
    assert concrete(out.shape) == expected.shape
    assert out.dtype == ("bool" if expected.dtype == bool else
                         "int64" if expected.dtype.kind in "iu" else "float64")


@cases()
def test_emitted_code_matches_numpy(case):
    arrays, _ = sample(case)
    inputs, out = build(case)
    got = np.asarray(sg.compile(out, inputs=inputs)(*arrays))
    expected = np.asarray(case.reference(*arrays))
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _vjp_function(case):
    """The compiled forward value and vjp of the case, and sampled inputs and cotangent."""
    arrays, rng = sample(case)
    inputs, out = build(case)
    u = sg.var("u", shape=out.shape)
    wrts = [inputs[i] for i in case.differentiable]
    gradients = sg.vjp(out, wrts, u)
    forward = sg.compile(out, inputs=inputs)
    backward = sg.compile(gradients, inputs=[*inputs, u])
    u_value = rng.standard_normal(concrete(out.shape))
    return arrays, u_value, forward, backward, (inputs, out, u, wrts, gradients)


@cases(lambda case: case.differentiable)
def test_vjp_matches_finite_differences(case):
    arrays, u_value, forward, backward, _ = _vjp_function(case)
    got = backward(*arrays, u_value)

    def objective(*args):
        return np.sum(forward(*args) * u_value)

    for position, gradient in zip(case.differentiable, got):
        assert gradient.shape == arrays[position].shape
        np.testing.assert_allclose(gradient, central_difference(objective, arrays, position),
                                   rtol=RTOL, atol=ATOL, err_msg=f"operand {position}")


@cases(lambda case: case.differentiable)
def test_vjp_with_batched_cotangent_matches_each_row(case):
    arrays, _, _, backward, (inputs, out, u, wrts, _) = _vjp_function(case)
    batched = sg.var("U", shape=(2,) + out.shape)
    fn = sg.compile(sg.vjp(out, wrts, batched), inputs=[*inputs, batched])
    rows = np.random.default_rng(1).standard_normal((2,) + concrete(out.shape))
    got = fn(*arrays, rows)
    for k in range(2):
        for position, batch, row in zip(case.differentiable, got, backward(*arrays, rows[k])):
            assert batch.shape == (2,) + arrays[position].shape
            np.testing.assert_allclose(batch[k], row, rtol=1e-12, atol=1e-12,
                                       err_msg=f"operand {position}, row {k}")


@cases(lambda case: case.differentiable)
def test_hvp_matches_finite_differences_of_the_gradient(case):
    arrays, u_value, _, backward, (inputs, out, u, wrts, _) = _vjp_function(case)
    directions = [sg.var(f"v{i}", shape=w.shape) for i, w in enumerate(wrts)]
    products = sg.hvp(sg.sum(out * u), wrts, directions)
    fn = sg.compile(products, inputs=[*inputs, u, *directions])
    rng = np.random.default_rng(2)
    for _ in range(2):
        v_values = [rng.standard_normal(arrays[i].shape) for i in case.differentiable]
        got = fn(*arrays, u_value, *v_values)
        along = [np.zeros(a.shape) for a in arrays]
        for i, v in zip(case.differentiable, v_values):
            along[i] = v
        expected = central_difference(lambda *args: backward(*args, u_value), arrays, None,
                                      direction=along)
        for position, h, e in zip(case.differentiable, got, expected):
            assert h.shape == arrays[position].shape
            np.testing.assert_allclose(h, e, rtol=RTOL, atol=ATOL, err_msg=f"operand {position}")


@cases(lambda case: case.differentiable)
def test_jvp_matches_directional_finite_differences(case):
    arrays, rng = sample(case)
    inputs, out = build(case)
    wrts = [inputs[i] for i in case.differentiable]
    tangents = [sg.var(f"t{i}", shape=w.shape) for i, w in enumerate(wrts)]
    fn = sg.compile(sg.jvp(out, wrts, tangents), inputs=[*inputs, *tangents])
    forward = sg.compile([out], inputs=inputs)
    along = [np.zeros(a.shape) for a in arrays]
    for i in case.differentiable:
        along[i] = rng.standard_normal(arrays[i].shape)
    got = fn(*arrays, *(along[i] for i in case.differentiable))
    (expected,) = central_difference(forward, arrays, None, direction=along)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@cases(lambda case: case.differentiable and not case.symbolic)
def test_hessian_matches_finite_differences_of_the_gradient(case):
    arrays, u_value, _, backward, (inputs, out, u, wrts, _) = _vjp_function(case)
    blocks = sg.hessian(sg.sum(out * u), wrts)
    fn = sg.compile(list(itertools.chain(*blocks)), inputs=[*inputs, u])
    got = fn(*arrays, u_value)
    count = len(wrts)
    for j, position in enumerate(case.differentiable):
        columns = [np.zeros(arrays[i].shape + arrays[position].shape)
                   for i in case.differentiable]
        for index in np.ndindex(arrays[position].shape):
            along = [np.zeros(a.shape) for a in arrays]
            along[position][index] = 1.0
            for column, d in zip(columns, central_difference(
                    lambda *args: backward(*args, u_value), arrays, None, along)):
                column[(Ellipsis,) + index] = d
        for i in range(count):
            np.testing.assert_allclose(got[i * count + j], columns[i], rtol=RTOL, atol=ATOL,
                                       err_msg=f"block ({i}, {j})")


@cases(lambda case: case.nondifferentiable)
def test_nondifferentiable_operands_get_zero_gradient(case):
    arrays, rng = sample(case)
    inputs, out = build(case)
    u = sg.var("u", shape=out.shape)
    wrts = [inputs[i] for i in case.nondifferentiable]
    fn = sg.compile(sg.vjp(out, wrts, u, disconnected="zero"), inputs=[*inputs, u])
    got = fn(*arrays, rng.standard_normal(concrete(out.shape)))
    for position, gradient in zip(case.nondifferentiable, got):
        np.testing.assert_array_equal(gradient, np.zeros(arrays[position].shape))


# -- scalar ops against SymPy ----------------------------------------------------------------------


@pytest.mark.parametrize("op", sympy_checked())
def test_first_and_second_derivatives_match_sympy(op):
    """The op's first case on scalars, its value and derivatives against its SymPy form's
    (through to_sympy) and sympy.diff's: the value check holds the form to the op."""
    case = next(case for case in op_cases() if case.op == op)
    case = dataclasses.replace(case, shapes=((),) * len(case.shapes))
    xs, out = build(case)
    assert out.shape == () and out.op == op
    f = sg.where(out, 1.0, 0.0) if out.dtype == "bool" else out
    first = sg.grad(f, xs, disconnected="zero")
    second = [sg.grad(g, xs, disconnected="zero") for g in first]
    fn = sg.compile([f, *first, *itertools.chain(*second)], inputs=xs)

    symbols = sympy.symbols(list(NAMES[:len(xs)]), real=True)
    expr = sg.to_sympy(f).xreplace({sympy.Symbol(s.name): s for s in symbols})
    expected_exprs = [expr, *(sympy.diff(expr, s) for s in symbols),
                      *(sympy.diff(expr, s, t) for s in symbols for t in symbols)]
    for seed in range(4):
        arrays, _ = sample(case, seed)
        point = {s: sympy.Float(float(a)) for s, a in zip(symbols, arrays)}
        expected = [float(e.subs(point)) for e in expected_exprs]
        np.testing.assert_allclose(np.array(fn(*arrays), dtype=float), expected,
                                   rtol=1e-10, atol=1e-12, err_msg=f"at {point}")


# -- conventions: ties split evenly, documented derivatives ----------------------------------------


def compiled_derivative(build_output, value):
    """d/dx of sum(build_output(x)) at ``value`` (x has value's shape)."""
    value = np.asarray(value, dtype=np.float64)
    with sg.use_graph():
        x = sg.var("x", shape=value.shape)
        gradient = sg.grad(sg.sum(build_output(x)), x, disconnected="zero")
        return sg.compile(gradient, inputs=[x])(value)


def test_sigmoid_derivative_is_s_times_one_minus_s():
    points = np.linspace(-8.0, 8.0, 9)
    s = 1.0 / (1.0 + np.exp(-points))
    np.testing.assert_allclose(compiled_derivative(sg.sigmoid, points), s * (1.0 - s),
                               rtol=1e-12)


def test_softplus_derivative_is_sigmoid_and_half_at_zero():
    assert compiled_derivative(sg.softplus, 0.0) == 0.5
    points = np.linspace(-8.0, 8.0, 9)
    np.testing.assert_allclose(compiled_derivative(sg.softplus, points),
                               1.0 / (1.0 + np.exp(-points)), rtol=1e-12)


@pytest.mark.parametrize("build_output, at_zero", [
    (sg.relu, 0.0), (abs, 0.0), (sg.sign, 0.0), (heaviside, 0.0),
    (lambda x: sg.leaky_relu(x, alpha=ALPHA), ALPHA),
], ids=["relu", "abs", "sign", "heaviside", "leaky_relu"])
def test_derivative_at_the_kink(build_output, at_zero):
    assert compiled_derivative(build_output, 0.0) == at_zero
    np.testing.assert_array_equal(compiled_derivative(build_output, np.zeros(3)), at_zero)


@pytest.mark.parametrize("function", [sg.maximum, sg.minimum], ids=["maximum", "minimum"])
def test_elementwise_tie_splits_the_gradient_evenly(function):
    x, y = sg.var("x"), sg.var("y")
    fn = sg.compile(sg.grad(function(x, y), [x, y]), inputs=[x, y])
    assert fn(1.5, 1.5) == (0.5, 0.5)
    assert compiled_derivative(lambda z: function(z, z), 1.5) == 1.0
    # broadcast: the scalar collects half of each tie it takes part in
    a, b = sg.var("a", shape=(3,)), sg.var("b")
    fn = sg.compile(sg.grad(sg.sum(function(a, b)), [a, b]), inputs=[a, b])
    grad_a, grad_b = fn(np.array([1.0, 1.0, 1.0]), 1.0)
    np.testing.assert_array_equal(grad_a, [0.5, 0.5, 0.5])
    assert grad_b == 1.5


@pytest.mark.parametrize("reduce", [sg.max, sg.min], ids=["max", "min"])
def test_reduction_ties_share_the_gradient_evenly(reduce):
    sign = 1.0 if reduce is sg.max else -1.0
    np.testing.assert_allclose(compiled_derivative(reduce, sign * np.array([1.0, 3.0, 3.0, 2.0])),
                               [0.0, 0.5, 0.5, 0.0])
    rows = sign * np.array([[2.0, 2.0, 2.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(compiled_derivative(lambda x: reduce(x, axis=1), rows),
                               [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(compiled_derivative(lambda x: reduce(x, axis=0), rows.T),
                               [[1 / 3, 0.5], [1 / 3, 0.0], [1 / 3, 0.5]])


# -- the normalisers' Jacobians --------------------------------------------------------------------


def test_softmax_jacobian_is_diag_p_minus_p_p_transpose():
    z = np.array([0.3, -1.2, 2.0, 0.1, -0.5])
    x = sg.var("x", shape=(5,))
    p, jacobian = sg.compile([sg.softmax(x), sg.jacobian(sg.softmax(x), x)], inputs=[x])(z)
    np.testing.assert_allclose(p, np_softmax(z, -1), rtol=1e-12)
    np.testing.assert_allclose(jacobian, np.diag(p) - np.outer(p, p), rtol=1e-12, atol=1e-15)


def test_softmax_jacobian_over_rows_is_block_diagonal():
    z = np.random.default_rng(3).standard_normal((2, 3))
    x = sg.var("x", shape=(2, 3))
    jacobian = sg.compile(sg.jacobian(sg.softmax(x, axis=1), x), inputs=[x])(z)
    expected = np.zeros((2, 3, 2, 3))
    for row in range(2):
        p = np_softmax(z[row], -1)
        expected[row, :, row, :] = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(jacobian, expected, rtol=1e-12, atol=1e-15)


def test_softmax_over_two_axes_has_the_flattened_closed_form():
    # normalising over the last two axes of (2, 3, 4) is a softmax of each flattened (12,) block
    z = np.random.default_rng(5).standard_normal((2, 3, 4))
    x = sg.var("x", shape=(2, 3, 4))
    p = sg.softmax(x, axis=(1, 2))
    p, jacobian = sg.compile([p, sg.jacobian(sg.softmax(x, axis=(-1, -2)), x)], inputs=[x])(z)
    expected = np.zeros((2, 12, 2, 12))
    for block in range(2):
        q = np_softmax(z[block].ravel(), -1)
        np.testing.assert_allclose(p[block].ravel(), q, rtol=1e-12)
        expected[block, :, block, :] = np.diag(q) - np.outer(q, q)
    np.testing.assert_allclose(jacobian, expected.reshape(2, 3, 4, 2, 3, 4), rtol=1e-12,
                               atol=1e-15)


def test_log_softmax_jacobian_is_identity_minus_ones_p_transpose():
    z = np.array([0.3, -1.2, 2.0, 0.1])
    x = sg.var("x", shape=(4,))
    jacobian = sg.compile(sg.jacobian(sg.log_softmax(x), x), inputs=[x])(z)
    p = np_softmax(z, -1)
    np.testing.assert_allclose(jacobian, np.eye(4) - np.outer(np.ones(4), p), rtol=1e-12,
                               atol=1e-15)


# -- stability for large inputs --------------------------------------------------------------------


def _stable_logsumexp(z):
    top = np.max(z)
    return top + np.log(np.sum(np.exp(z - top)))


def _stable_sigmoid(z):
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


# op -> (build, value, gradient of <out, u>) with the expectations written in stable NumPy
STABLE = {
    "sigmoid": (sg.sigmoid, _stable_sigmoid,
                lambda z, u: u * _stable_sigmoid(z) * _stable_sigmoid(-z)),
    "softplus": (sg.softplus, lambda z: np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))),
                 lambda z, u: u * _stable_sigmoid(z)),
    "logsumexp": (sg.logsumexp, _stable_logsumexp,
                  lambda z, u: u * np.exp(z - _stable_logsumexp(z))),
    "log_softmax": (sg.log_softmax, lambda z: z - _stable_logsumexp(z),
                    lambda z, u: u - np.exp(z - _stable_logsumexp(z)) * np.sum(u)),
    "softmax": (sg.softmax, lambda z: np.exp(z - _stable_logsumexp(z)),
                lambda z, u: (lambda p: p * (u - np.sum(u * p)))(np.exp(z - _stable_logsumexp(z)))),
}
EXTREMES = {"mixed": [1000.0, -1000.0, 0.0, 999.0], "all-large": [1000.0, 1001.0, 999.5, 1000.0],
            "all-small": [-1000.0, -1001.0, -999.5, -1000.0]}


@pytest.mark.parametrize("inputs", EXTREMES.values(), ids=EXTREMES.keys())
@pytest.mark.parametrize("op", STABLE)
def test_stable_for_large_inputs(op, inputs):
    build_output, value, vjp = STABLE[op]
    z = np.array(inputs)
    x = sg.var("x", shape=(4,))
    out = build_output(x)
    u = sg.var("u", shape=out.shape)
    v = sg.var("v", shape=(4,))
    u_value = np.array([0.5, -1.0, 2.0, 0.25]) if out.ndim else np.float64(1.5)
    fn = sg.compile([out, sg.vjp(out, x, u), sg.hvp(sg.sum(out * u), x, v)], inputs=[x, u, v])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got_value, got_gradient, got_hvp = fn(z, u_value, np.ones(4))
    np.testing.assert_allclose(got_value, value(z), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_gradient, vjp(z, u_value), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(got_hvp))


# -- reductions over an empty axis: refused when built, the identity when bound to 0 at run time -----

EMPTY_AXIS_REDUCTIONS = {
    "max": (sg.max, -np.inf), "min": (sg.min, np.inf), "logsumexp": (sg.logsumexp, -np.inf),
    "softmax": (sg.softmax, None), "log_softmax": (sg.log_softmax, None)}


@pytest.mark.parametrize("name", EMPTY_AXIS_REDUCTIONS)
def test_reduction_over_a_static_empty_axis_is_refused_when_built(name):
    reduce, _ = EMPTY_AXIS_REDUCTIONS[name]
    v = sg.var("v", shape=(2,))
    M = sg.var("M", shape=(3, 0))
    tail = v[2:]                                    # shape (0,), known when built
    nodes = v.graph.number_of_nodes()
    with pytest.raises(sg.ShapeError, match=f"{name}: axis 0 has length 0"):
        reduce(tail)
    with pytest.raises(sg.ShapeError, match=f"{name}: axis 1 has length 0"):
        reduce(M, axis=1)
    assert v.graph.number_of_nodes() == nodes


@pytest.mark.parametrize("backend", sg.api.BACKENDS)
@pytest.mark.parametrize("name", EMPTY_AXIS_REDUCTIONS)
def test_reduction_over_a_named_dimension_bound_to_zero_gives_its_identity(name, backend):
    reduce, identity = EMPTY_AXIS_REDUCTIONS[name]
    x = sg.var("x", shape=("n",))
    M = sg.var("M", shape=(3, "m"))
    whole, rows = reduce(x), reduce(M, axis=1)
    scalar = whole if whole.ndim == 0 else sg.sum(whole * x)
    outputs = [whole, rows, sg.grad(scalar, x), sg.grad(sg.sum(rows * rows), M),
               sg.hessian(scalar, x)]
    fn = sg.compile(outputs, inputs=[x, M], backend=backend)
    with np.errstate(divide="ignore"):              # log(0) and 1/0 in the gradients' shares
        got = [np.asarray(a) for a in fn(np.zeros(0), np.zeros((3, 0)))]
    if identity is None:                            # the normalisers: empty, as JAX's
        assert got[0].shape == (0,) and got[1].shape == (3, 0)
    else:
        assert got[0] == identity and got[1].tolist() == [identity] * 3
    assert [a.shape for a in got[2:]] == [(0,), (3, 0), (0, 0)]
    # a non-empty call still computes the reduction itself
    z = np.array([0.5, -2.0, 3.0])
    expected = {"max": np.max, "min": np.min, "logsumexp": np_logsumexp,
                "softmax": lambda a: np.exp(a - np_logsumexp(a)),
                "log_softmax": lambda a: a - np_logsumexp(a)}[name]
    np.testing.assert_allclose(np.asarray(fn(z, np.ones((3, 2)))[0]), expected(z), rtol=1e-12)


def test_max_and_min_of_a_mask_over_a_named_dimension_bound_to_zero():
    x = sg.var("x", shape=("n",))
    fn = sg.compile([sg.max(x > 0), sg.min(x > 0)], inputs=[x])
    assert fn(np.zeros(0)) == (False, True)
    assert fn(np.array([-1.0, -2.0])) == (False, False)
    assert fn(np.array([1.0, -2.0])) == (True, False)


# -- a new op is added in one place: its defop call ------------------------------------------------


def _softsign_on_floats(a):
    return a / (1.0 + np.abs(a))


def test_a_new_op_defined_in_one_record_parses_exports_compiles_and_is_tested():
    from symgrad.ops.core import defop
    from symgrad.parse import function_names
    defop("softsign_example", 1, lambda shapes: shapes[0], "{0} / (1.0 + np.abs({0}))",
          lambda g, out, x: [g / (1.0 + sg.abs(x)) ** 2],
          scalar="{0} / (1.0 + math.fabs({0}))", public="softsign_example",
          sympy=lambda sympy, x: x / (1 + sympy.Abs(x)))
    try:
        # exported, and a formula function
        assert sg.softsign_example is sg.PUBLIC["softsign_example"].function
        x = sg.var("x", shape=("n",))
        parsed = sg.parse("softsign_example(x) * x", shapes={"x": ("n",)})
        assert parsed.inputs[0].op == "softsign_example"
        assert "softsign_example" in function_names()

        # every backend: values against the closed form, the gradient against differences
        f = sg.sum(sg.softsign_example(x) * x)
        outputs = [f, sg.grad(f, x)]
        value = np.random.default_rng(3).uniform(-3.0, 3.0, 200)
        value[np.abs(value) < MARGIN] = 0.5
        closed = float(np.sum(_softsign_on_floats(value) * value))
        numeric = np.array([(np.sum(_softsign_on_floats(value + e) * (value + e))
                             - np.sum(_softsign_on_floats(value - e) * (value - e))) / (2 * EPS)
                            for e in np.eye(value.size) * EPS])
        backends = [b for b in ("numpy", "numba", "array_api") if b in sg.api.BACKENDS]
        for backend in backends:
            fn = sg.compile(outputs, inputs=[x], backend=backend)
            got_value, got_grad = fn(value)
            np.testing.assert_allclose(float(got_value), closed, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(got_grad), numeric, rtol=1e-6, atol=1e-8)
            if backend == "numba":      # fused: its loop form is its Python-float form
                assert "math.fabs" in fn.kernel_source

        # the table-driven tests pick it up, and it passes them
        new = [case for case in op_cases() if case.op == "softsign_example"]
        assert [case.label for case in new] == ["matrix", "batch"]
        for case in new:
            with sg.use_graph():
                test_shape_rule_matches_numpy(case)
                test_emitted_code_matches_numpy(case)
                test_vjp_matches_finite_differences(case)
                test_hvp_matches_finite_differences_of_the_gradient(case)
        # and is checked against SymPy through its SymPy form, which to_sympy also uses
        assert "softsign_example" in sympy_checked()
        with sg.use_graph():
            test_first_and_second_derivatives_match_sympy("softsign_example")
        assert str(sg.to_sympy(sg.softsign_example(sg.var("y")))) == "y/(Abs(y) + 1)"
    finally:
        del sg.OPS["softsign_example"]
        sg.PUBLIC.pop("softsign_example", None)
    assert not hasattr(sg, "softsign_example")
    with pytest.raises(sg.ParseError, match="unknown function 'softsign_example'"):
        sg.parse("softsign_example(x)")
    assert all(case.op != "softsign_example" for case in op_cases())
    assert "softsign_example" not in sympy_checked()


def test_broadcast_shapes_agrees_with_numpy_on_every_pair_of_small_shapes():
    # equal shapes and a number's () take a short way through broadcast_shapes: every pair
    # of shapes of up to 3 axes of lengths 1, 2 and 3 must still get NumPy's answer or error
    shapes = [()] + [shape for ndim in (1, 2, 3)
                     for shape in itertools.product((1, 2, 3), repeat=ndim)]
    for a, b in itertools.product(shapes, repeat=2):
        try:
            want = np.broadcast_shapes(a, b)
        except ValueError:
            with pytest.raises(sg.ShapeError):
                sg.ops.broadcast_shapes(a, b)
            continue
        got = sg.ops.broadcast_shapes(a, b)
        assert type(got) is tuple and got == want, (a, b)
    assert sg.ops.broadcast_shapes(("n", 1), ("n", 1)) == ("n", 1)
    assert sg.ops.broadcast_shapes(("n", 3), ()) == ("n", 3)
    assert sg.ops.broadcast_shapes((), ()) == ()
