"""Every op symgrad knows, grouped by family; importing this package registers them all in OPS
and then gives Expr the methods that build ops of those families.

Its modules import only those before them in this order (tests/test_layering.py checks it):
core <- shape <- elementwise <- special <- reduce <- linalg <- arrays <- order <- matrix
<- convolution <- decompositions <- sparse <- stability <- custom <- loops <- printing
<- methods.
"""

from .core import (OPS, PUBLIC, Emission, Expr, Op, Public, apply, broadcast_shapes, check_name, check_shape, const, defop, graph_of,
                   lift, literal, normalize_axes, public, static_shape)
from . import arrays  # noqa: F401 (registers NumPy's building and reshaping functions)
from . import order  # noqa: F401 (registers sort, argsort, argmax, median, quantile...)
from . import matrix  # noqa: F401 (registers the solves, inverses, determinants, Cholesky)
from . import convolution  # noqa: F401 (registers convolution and pooling)
from . import decompositions  # noqa: F401 (registers eigh, svd, qr, expm, norm's ord 2)
from . import sparse  # noqa: F401 (registers csr_matrix, the sparse Jacobians' result)
from .custom import custom_gradient
from .loops import fori_loop, scan
from .elementwise import (absolute, add, clip, cos, divide, exp, expm1, heaviside, leaky_relu, log,
                          log1p, maximum, minimum, multiply, negative, power, relu, sigmoid, sign,
                          sin, softplus, sqrt, subtract, tan, tanh, where)
from .linalg import dot, inner, matmul
from .methods import attach_methods
from .printing import to_text
from .reduce import log_softmax, logsumexp, max, mean, min, softmax, sum
from .reduce import average, cumprod, cumsum, diff, norm, prod, ptp, select, std, variance
from . import stability  # noqa: F401 (registers the stability rewrites)
from .special import erf, erfc, expit, gelu, logit, xlogy
from .shape import (broadcast_to_like, concatenate, expand_dims, getitem, identity, identity_like,
                    reshape, squeeze, stop_gradient, transpose, unbroadcast, zeros_like)

# core's Expr cannot import the families that import core: it gets their methods now they are loaded
attach_methods()
