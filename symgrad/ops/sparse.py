"""Sparse results: csr_matrix, a SciPy CSR matrix made of its nonzeros and a structure fixed when
the graph is built (a sparse Jacobian's or Hessian's: symgrad.sparsity builds them).
Imports ops.core.
"""

from ..errors import ShapeError
from .core import apply, defop, literal, same_dtype


def _csr_shape(shapes, shape, colors, method):
    data, indices, indptr = shapes
    if len(data) != 1 or tuple(indices) != tuple(data) or tuple(indptr) != (shape[0] + 1,):
        raise ShapeError(f"a CSR matrix of shape {shape} takes its nonzeros and their columns "
                         f"as 1-D arrays of one length and {shape[0] + 1} row pointers, got "
                         f"{data}, {indices} and {indptr}")
    return tuple(shape)


def _emit_csr(ctx):
    # the structure in arrays of the matrix's own, so that no call's matrix shares them with the
    # next, and as int32 where it fits, as SciPy makes them (its solvers convert int64 ones)
    data, indices, indptr = ctx.args
    sparse = ctx.library("sparse")
    wide = max(ctx.shapes[0][0], ctx.shape[1]) >= 2**31
    index_type = "np.int64" if wide else "np.int32"
    return (f"{sparse}.csr_array(({data}, {indices}.astype({index_type}), "
            f"{indptr}.astype({index_type})), shape={literal(ctx.shape)})")


# A terminal value: no op reads it (codegen refuses one that does) and no gradient flows
# through it; its matrix holds the nonzeros' array, a view in codegen's sense. ``colors`` and
# ``method`` say how its nonzeros were computed (symgrad.sparsity).
defop("csr_matrix", 3, _csr_shape, _emit_csr, None, nondifferentiable=(1, 2), view=True,
      fresh=True, foldable=False, loop=None)


def _put_add_shape(shapes):
    base, values, positions = shapes
    if len(base) != 1 or len(values) != 1 or tuple(positions) != tuple(values):
        raise ShapeError(f"put_add takes a 1-D base and values with one position each, got "
                         f"{base}, {values} and {positions}")
    return tuple(base)


def _put_added(ctx, array):
    return ctx.scatter_add(array, [ctx.args[2]], ctx.args[1])


def _put_add_vjp(g, out, base, values, positions):
    return [g, apply("gather", g, positions, index=(("array", 0),)), None]


# base + the values added at their positions (repeats add up), 1-D: how a sparse Jacobian's
# nonzeros built by direct emission (symgrad.sparsity) sum the terms of a node whose pattern
# they fill in part, on a copy of the base or in its buffer when it dies there
defop("put_add", 3, _put_add_shape,
      lambda ctx: [f"{ctx.out} = np.array({ctx.args[0]})", *_put_added(ctx, ctx.out)],
      _put_add_vjp, dtype=same_dtype, nondifferentiable=(2,),
      numpy_into=lambda ctx: [*_put_added(ctx, ctx.into), f"{ctx.out} = {ctx.into}"],
      into_positions=(0,), loop=None, sparsity="adds")
