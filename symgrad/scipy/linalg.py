"""``scipy.linalg``'s functions on expressions, with SciPy's names and semantics, differentiable
to any order. Imports errors and ops only.
"""

# -- decompositions (symgrad.ops.decompositions) ---------------------------------------------------

from ..ops.decompositions import expm

__all__ = ["expm"]
